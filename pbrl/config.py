"""The configuration of a training run: one typed dataclass whose field docs become the CLI's ``--help``.

A run directory stores the resolved config (every default filled in, PPO settings included) as ``config.json``;
``validate`` turns bad values into one clear ``ConfigError`` line with the fix.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbrl.errors import UserError
from pbrl.queries import SELECTIONS


class ConfigError(UserError):
    """A config value that cannot work, with what to do instead."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


REWARDS = ("learned", "true")
LABELERS = ("synthetic", "human")
WHEN_FULL = ("keep-training", "pause")
INITIAL_POLICIES = ("random", "untrained")
VEC_ENVS = ("dummy", "subproc")
REWARD_INPUTS = ("obs+action", "obs")


def family_defaults(env_id: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` config values, completed with the settings of the env's family and task where not given
    (``pbrl.families``)."""
    from pbrl.families import ATARI_INITIAL_LABELS, family_of, method_defaults

    out = {**method_defaults(env_id), **given}
    if family_of(env_id).name == "atari" and "initial_label_fraction" not in given:
        n_labels = int(given.get("n_labels", TrainConfig.n_labels))
        out["initial_label_fraction"] = min(1.0, ATARI_INITIAL_LABELS / max(n_labels, 1))
    return out


def check_ppo_preset(env_id: str, preset: str) -> None:
    """Raise ``ConfigError`` unless ``preset`` ("" = the env's default) is one of ``env_id``'s PPO presets."""
    from pbrl.families import preset_names

    if preset and preset not in preset_names(env_id):
        raise ConfigError(f"--ppo-preset {preset!r} is not one of {env_id}'s: {', '.join(preset_names(env_id))}")


def value_sources(env_id: str, given: dict[str, Any], ppo_flags: dict[str, Any], preset_source: str) -> dict[str, str]:
    """Where the values of a new run come from, for ``config.json``: a flag, the env's family or task
    (``pbrl.families``), or the PPO preset; a value not named is the global default."""
    from pbrl.families import family_of, method_defaults, task_of

    task = task_of(env_id)
    out = {k: f"{'task ' + task.base if k in task.method else 'family ' + family_of(env_id).name}"
           for k in method_defaults(env_id)}
    if family_of(env_id).name == "atari":
        out["initial_label_fraction"] = "family atari (500 initial labels)"
    out.update({k: "flag" for k in given})
    out["ppo"] = f"preset {preset_source}"
    out.update({f"ppo.{k}": "flag --ppo" for k in ppo_flags})
    return out


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as config.json in the run directory."""

    env_id: str = _f("Hopper-v5", "Gymnasium env id (state observations; MuJoCo v5 envs have tuned defaults)",
                     flag="--env")
    reward: str = _f("learned", "what PPO optimises: 'learned' (from preferences) or 'true' (the env reward)",
                     choices=REWARDS)
    labeler: str = _f("synthetic", "who answers queries: 'synthetic' (oracle on true segment returns), 'human' "
                      "(people in `pbrl label` windows; training goes on while they answer), or a scripted judge "
                      "standing in for a person: 'judge:backflip' (alias 'backflip-judge'), 'judge:one-leg'")
    n_labels: int = _f(700, "label budget: total comparisons asked for over the run")
    total_timesteps: int = _f(1_000_000, "PPO agent steps")
    seed: int = _f(0, "seed for the env, PPO, the reward ensemble and query sampling")
    max_episode_steps: int = _f(0, "fixed episode length in agent steps (0 = the env's registered time limit)")
    eval_episode_steps: int = _f(0, "episode length of evaluations (0 = the training episodes' length): evaluations "
                                 "can measure longer episodes than training runs on")
    env_kwargs: dict[str, Any] = _f(None, "keyword arguments for the env's constructor (--env-kwargs KEY=VALUE)",
                                    cli=False)
    run_dir: str = _f("runs/default", "where the run's config, labels, checkpoints, logs and metrics live")

    # segments and queries
    segment_length: int = _f(50, "agent steps per segment (the paper's 15-60 MuJoCo steps; a knob, not seconds)")
    segment_buffer_size: int = _f(1000, "recent segments kept as query candidates")
    heldout_rate: float = _f(0.025, "share of cut segments set aside, never queried, as the reward model's test "
                             "set (learned_true_return_corr)")
    heldout_size: int = _f(500, "at most this many held-out segments kept (a uniform sample of those set aside, "
                           "kept packed: an Atari one takes a few KB)")
    query_selection: str = _f("disagreement", "how pairs are picked from the candidates", choices=SELECTIONS)
    oversample: int = _f(10, "candidate pairs drawn per query asked (the paper's 10x)")
    pair_phase: int = _f(0, "draw candidate pairs among segments that start in the same N-step stretch of their "
                         "episodes (like for like, e.g. two episode starts); 0 = any two segments")
    initial_label_fraction: float = _f(0.25, "share of the budget asked before RL, on --initial-policy's segments")
    initial_policy: str = _f("random", "who acts for the initial segments: 'random' (uniform actions, as the paper) "
                             "or 'untrained' (the PPO policy before any update)", choices=INITIAL_POLICIES)
    initial_episode_steps: int = _f(0, "restart the env every N steps while collecting the initial segments "
                                    "(0 = the run's episode length; 100 where not given for bodies that fall over: "
                                    "Hopper, Walker2d, Ant, Humanoid); more starts, more varied first comparisons")
    label_rate_constant: float = _f(2e6, "label rate after T steps is proportional to c / (T + c); this is c")
    label_interval: int = _f(10_000, "agent steps between labelling rounds (rounded up to whole rollouts)")
    max_labels_used: int = _f(0, "FIFO cap: fit on only the most recent N labels (0 = all)")
    max_pending: int = _f(50, "human labeler: at most this many unanswered queries at a time (0 = no bound)")
    when_full: str = _f("keep-training", "human labeler, when --max-pending queries wait unanswered: "
                        "'keep-training' on the current reward model or 'pause' PPO until answers arrive",
                        choices=WHEN_FULL)
    instructions: str = _f("", "the task in words, shown at the top of the labelling window "
                           "(e.g. \"do a backflip and land on your foot\")")

    # reward ensemble
    n_members: int = _f(3, "reward nets in the ensemble")
    reward_inputs: str = _f("obs+action", "what each reward net sees: 'obs+action' (r(o, a), the paper's) or 'obs' "
                            "(r(o), for tasks whose reward is the state's: random-action first segments can teach "
                            "r(o, a) that acting at all is bad)", choices=REWARD_INPUTS)
    reward_hidden: int = _f(64, "units per hidden layer of each reward net (2 layers, leaky ReLU)")
    reward_lr: float = _f(3e-4, "Adam learning rate of the reward nets")
    reward_batch_size: int = _f(64, "comparisons per reward-model minibatch")
    pretrain_epochs: int = _f(200, "epochs fitted on the initial labels before RL starts")
    fit_epochs: int = _f(5, "epochs fitted after each labelling round")
    fit_max_batches: int = _f(0, "at most this many minibatches per fitting epoch, and losses measured on as many "
                              "pairs (0 = whole epochs); bounds the fit's cost per round for the Atari CNN")
    l2_init: float = _f(1e-3, "initial L2 coefficient (then adapted to keep val loss 1.1-1.5x train loss)")

    # synthetic teacher (B-Pref irrational teachers; defaults are the perfect oracle)
    teacher_beta: float = _f(math.inf, "Boltzmann rationality of the synthetic teacher (inf = perfect)")
    teacher_gamma: float = _f(1.0, "myopia: weight gamma**(T-1-t) on step t of a segment")
    teacher_eps_mistake: float = _f(0.0, "probability the teacher flips a decided label")
    teacher_eps_skip: float = _f(0.0, "skip pairs where both returns are below this share of a typical segment's")
    teacher_eps_equal: float = _f(0.0, "answer 'equal' when returns differ by less than this share")

    # PPO
    n_envs: int = _f(0, "parallel env copies (0 = the PPO preset's number)")
    ppo_preset: str = _f("", "PPO settings to start from: 'fast' (tuned for the fixed-horizon MuJoCo tasks), 'zoo' "
                         "(the RL Zoo's for the envs with termination), 'sb3' (SB3's defaults); '' = the env's own "
                         "(`pbrl presets ENV` lists them); --ppo KEY=VALUE changes single settings")
    ppo: dict[str, Any] = _f(None, "PPO settings; filled from the preset for the env", cli=False)
    eval_episodes: int = _f(10, "episodes of the deterministic policy evaluated at the end of the run")
    eval_every: int = _f(0, "also evaluate the deterministic policy every N agent steps (eval-episodes episodes of "
                         "its own), log it, and keep the best so far in RUN_DIR/best (for pbrl eval and pbrl video); "
                         "0 = only at the end")
    torch_threads: int = _f(1, "torch CPU threads (1 is fastest for these small nets on 2 cores)")
    device: str = _f("auto", "where PPO and the reward ensemble run: 'cpu', 'cuda' (or 'cuda:N'), or 'auto' "
                     "(a GPU when there is one and the observations are images; MLPs are faster on the CPU)")
    vec_env: str = _f("dummy", "how the env copies step: 'dummy' (one process) or 'subproc' (one process per "
                      "copy: faster where there are more cores than copies)", choices=VEC_ENVS)

    sources: dict[str, str] = _f(None, "where values came from: 'flag', 'family NAME' or 'task NAME' "
                                 "(pbrl.families), 'preset ...' for PPO; the rest are the global defaults", cli=False)

    @property
    def learned(self) -> bool:
        return self.reward == "learned"

    @property
    def human(self) -> bool:
        """People answer in labelling windows, asynchronously (the loop never waits on them unless told to)."""
        return self.learned and self.labeler == "human"

    @property
    def episode_steps(self) -> int | None:
        """The fixed episode length asked for, or None for the env's own time limit."""
        return self.max_episode_steps or None

    @property
    def eval_steps(self) -> int | None:
        """The episode length evaluations measure, or None for the env's own time limit."""
        return self.eval_episode_steps or self.episode_steps

    @property
    def rollout_size(self) -> int:
        return int(self.ppo["n_steps"]) * self.n_envs

    @property
    def round_steps(self) -> int:
        """Agent steps per labelling round: ``label_interval`` rounded up to whole rollouts."""
        return max(1, math.ceil(self.label_interval / self.rollout_size)) * self.rollout_size

    def torch_device(self) -> str:
        """The device --device names, with 'auto' decided for this machine and env."""
        if self.device != "auto":
            return self.device
        import torch

        from pbrl.families import family_of

        return "cuda" if family_of(self.env_id).images and torch.cuda.is_available() else "cpu"

    def resolve(self) -> TrainConfig:
        """Fill the env-dependent defaults (PPO settings, n_envs); returns self."""
        from pbrl.ppo_defaults import ppo_defaults

        if self.ppo is None:
            self.ppo = ppo_defaults(self.env_id, self.ppo_preset)
        if self.n_envs <= 0:
            self.n_envs = int(self.ppo["n_envs"])
        self.ppo["n_envs"] = self.n_envs
        return self

    def validate(self) -> None:
        """Raise ``ConfigError`` on the first value that cannot work."""
        positive = ["n_labels", "total_timesteps", "segment_length", "oversample", "n_members", "reward_hidden",
                    "reward_batch_size", "eval_episodes", "label_interval", "torch_threads", "reward_lr",
                    "label_rate_constant"]
        for name in positive:
            value = getattr(self, name)
            if not value > 0:  # NaN too
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} must be a positive number, got {value}")
        if not 0 <= self.seed < 2**31:
            raise ConfigError(f"--seed must be a whole number from 0 to {2**31 - 1}, got {self.seed}")
        if not 0 <= self.l2_init < math.inf:
            raise ConfigError(f"--l2-init must be >= 0, got {self.l2_init}")
        for name in ("pretrain_epochs", "fit_epochs", "max_labels_used", "n_envs", "max_episode_steps", "max_pending",
                     "initial_episode_steps", "pair_phase", "fit_max_batches", "heldout_size", "eval_every",
                     "eval_episode_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.segment_buffer_size < 2:
            raise ConfigError(f"--segment-buffer-size must be >= 2, got {self.segment_buffer_size}")
        if not 0.0 <= self.heldout_rate < 1.0:
            raise ConfigError(f"--heldout-rate must be in [0, 1), got {self.heldout_rate}")
        if not 0.0 <= self.initial_label_fraction <= 1.0:
            raise ConfigError(f"--initial-label-fraction must be in [0, 1], got {self.initial_label_fraction}")
        if self.reward not in REWARDS:
            raise ConfigError(f"--reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        from pbrl.judges import JUDGES, judge_name

        judge = judge_name(self.labeler)
        if self.labeler not in LABELERS and judge not in JUDGES:
            names = ", ".join([*LABELERS, *(f"judge:{j}" for j in JUDGES)])
            raise ConfigError(f"--labeler must be one of {names}, got {self.labeler!r}")
        if judge is not None and JUDGES[judge][0] != self.env_id:
            env = JUDGES[judge][0]
            raise ConfigError(f"--labeler judge:{judge} judges {env}; run it with --env {env}")
        if self.when_full not in WHEN_FULL:
            raise ConfigError(f"--when-full must be one of {', '.join(WHEN_FULL)}, got {self.when_full!r}")
        if self.initial_policy not in INITIAL_POLICIES:
            raise ConfigError(f"--initial-policy must be one of {', '.join(INITIAL_POLICIES)}, "
                              f"got {self.initial_policy!r}")
        if self.reward_inputs not in REWARD_INPUTS:
            raise ConfigError(f"--reward-inputs must be one of {', '.join(REWARD_INPUTS)}, got {self.reward_inputs!r}")
        if self.vec_env not in VEC_ENVS:
            raise ConfigError(f"--vec-env must be one of {', '.join(VEC_ENVS)}, got {self.vec_env!r}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"--device {self.device}: this torch sees no CUDA GPU; use --device cpu (or auto)")
        check_ppo_preset(self.env_id, self.ppo_preset)
        if self.query_selection not in SELECTIONS:
            raise ConfigError(f"--query-selection must be one of {', '.join(SELECTIONS)}, got {self.query_selection!r}")
        try:
            self.teacher()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.env_kwargs is not None and not isinstance(self.env_kwargs, dict):
            raise ConfigError(f"env_kwargs must be a mapping of keyword arguments, got {self.env_kwargs!r}")
        if self.ppo is not None:
            self._validate_ppo()

    def _validate_ppo(self) -> None:
        """The PPO settings SB3 would reject only once PPO is built (with asserts), as one line each."""
        ppo = self.ppo
        for key in ("n_steps", "batch_size", "n_epochs"):
            if not isinstance(ppo.get(key), int) or isinstance(ppo.get(key), bool) or ppo[key] <= 0:
                raise ConfigError(f"PPO {key} must be a positive integer, got {ppo.get(key)!r}")
        for key in ("learning_rate", "clip_range", "max_grad_norm"):
            if key in ppo and not (isinstance(ppo[key], int | float) and ppo[key] > 0):
                raise ConfigError(f"PPO {key} must be a positive number, got {ppo[key]!r}")
        for key in ("gamma", "gae_lambda"):
            if key in ppo and not (isinstance(ppo[key], int | float) and 0 < ppo[key] <= 1):
                raise ConfigError(f"PPO {key} must be in (0, 1], got {ppo[key]!r}")
        for key in ("ent_coef", "vf_coef"):
            if key in ppo and not (isinstance(ppo[key], int | float) and ppo[key] >= 0):
                raise ConfigError(f"PPO {key} must be a number >= 0, got {ppo[key]!r}")
        if "policy_kwargs" in ppo and not isinstance(ppo["policy_kwargs"], dict):
            raise ConfigError(f"PPO policy_kwargs must be a JSON object, e.g. '{{\"net_arch\": [64, 64]}}', "
                              f"got {ppo['policy_kwargs']!r}")
        if ppo["batch_size"] < 2:
            raise ConfigError("PPO batch_size must be at least 2 (advantages are normalised per minibatch); "
                              "pass --ppo batch_size=N")
        n_envs = self.n_envs or int(ppo.get("n_envs", 1))
        if ppo["n_steps"] * n_envs < 2:
            raise ConfigError("a PPO rollout must hold at least 2 steps (advantages are normalised over it); "
                              "pass --ppo n_steps=N with N >= 2")
        if self.total_timesteps < ppo["n_steps"] * n_envs:
            raise ConfigError(
                f"--total-timesteps {self.total_timesteps} is less than one PPO rollout "
                f"({ppo['n_steps']} steps x {n_envs} envs); raise it or pass --ppo n_steps=N"
            )

    def teacher(self):
        from pbrl.labelers import TeacherConfig

        return TeacherConfig(beta=self.teacher_beta, gamma=self.teacher_gamma, eps_mistake=self.teacher_eps_mistake,
                             eps_skip=self.teacher_eps_skip, eps_equal=self.teacher_eps_equal)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["teacher_beta"] = None if math.isinf(self.teacher_beta) else self.teacher_beta
        return json.dumps(data, indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        from pbrl.run_dir import write_file_atomic

        text = self.to_json() + "\n"
        write_file_atomic(Path(path), lambda tmp: tmp.write_text(text))

    @staticmethod
    def load(path: str | Path) -> TrainConfig:
        """The config saved at ``path``; a missing, unreadable or damaged file is one ``ConfigError`` line."""
        try:
            return TrainConfig.from_json(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path} is missing: the directory holds no pbrl run") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path} cannot be read as a pbrl config ({type(exc).__name__}: {exc}); restore it "
                              "or start a new run in another --run-dir") from None

    @staticmethod
    def from_json(text: str) -> TrainConfig:
        data = json.loads(text)
        if data.get("teacher_beta") is None:
            data["teacher_beta"] = math.inf
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in data.items() if k in known})
