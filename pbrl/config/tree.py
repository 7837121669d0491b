"""The config tree: the run's own knobs, and one group each for the method, the reward model, the synthetic teacher
and PPO. Each knob is declared here once, with its default and its doc (which is its ``--help`` line); the env
families of ``pbrl.families`` change some defaults per env before the user's flags do (``pbrl presets ENV``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pbrl.config.knobs import knob, problem

REWARDS = ("learned", "true")
LABELERS = ("synthetic", "human")
WHEN_FULL = ("keep-training", "pause")
INITIAL_POLICIES = ("random", "untrained")
VEC_ENVS = ("dummy", "subproc")
REWARD_INPUTS = ("obs+action", "obs")
SELECTIONS = ("disagreement", "random", "entropy")


@dataclass
class MethodConfig:
    """Segments, queries and the label schedule."""

    segment_length: int = knob(50, "agent steps per segment (the paper's 15-60 MuJoCo steps; a knob, not seconds)",
                               check="positive")
    segment_buffer_size: int = knob(1000, "recent segments kept as query candidates", check="two_or_more")
    heldout_rate: float = knob(0.025, "share of cut segments set aside, never queried, as the reward model's test "
                               "set (learned_true_return_corr)", check="share_below_1")
    heldout_size: int = knob(500, "at most this many held-out segments kept (a uniform sample of those set aside, "
                             "kept packed: an Atari one takes a few KB)", check="nonneg")
    query_selection: str = knob("disagreement", "how pairs are picked from the candidates", choices=SELECTIONS)
    oversample: int = knob(10, "candidate pairs drawn per query asked (the paper's 10x)", check="positive")
    pair_phase: int = knob(0, "draw candidate pairs among segments that start in the same N-step stretch of their "
                           "episodes (like for like, e.g. two episode starts); 0 = any two segments", check="nonneg")
    initial_label_fraction: float = knob(0.25, "share of the budget asked before RL, on --initial-policy's segments",
                                         check="share")
    initial_policy: str = knob("random", "who acts for the initial segments: 'random' (uniform actions, as the "
                               "paper) or 'untrained' (the PPO policy before any update)", choices=INITIAL_POLICIES)
    initial_episode_steps: int = knob(0, "restart the env every N steps while collecting the initial segments "
                                      "(0 = the run's episode length); more starts, more varied first comparisons",
                                      check="nonneg")
    label_rate_constant: float = knob(2e6, "label rate after T steps is proportional to c / (T + c); this is c",
                                      check="positive")
    label_interval: int = knob(10_000, "agent steps between labelling rounds (rounded up to whole rollouts)",
                               check="positive", resume=True)
    max_labels_used: int = knob(0, "FIFO cap: fit on only the most recent N labels (0 = all)", check="nonneg")
    max_pending: int = knob(50, "human labeler: at most this many unanswered queries at a time (0 = no bound)",
                            check="nonneg")
    when_full: str = knob("keep-training", "human labeler, when --max-pending queries wait unanswered: "
                          "'keep-training' on the current reward model or 'pause' PPO until answers arrive",
                          choices=WHEN_FULL)


@dataclass
class RewardConfig:
    """The reward ensemble and how it is fitted."""

    n_members: int = knob(3, "reward nets in the ensemble", check="positive")
    inputs: str = knob("obs+action", "what each reward net sees: 'obs+action' (r(o, a), the paper's) or 'obs' (r(o), "
                       "for tasks whose reward is the state's: random-action first segments can teach r(o, a) that "
                       "acting at all is bad)", name="reward_inputs", choices=REWARD_INPUTS)
    hidden: int = knob(64, "units per hidden layer of each reward net (2 layers, leaky ReLU)", name="reward_hidden",
                       check="positive")
    lr: float = knob(3e-4, "Adam learning rate of the reward nets", name="reward_lr", check="positive")
    batch_size: int = knob(64, "comparisons per reward-model minibatch", name="reward_batch_size", check="positive")
    pretrain_epochs: int = knob(200, "epochs fitted on the initial labels before RL starts", check="nonneg")
    fit_epochs: int = knob(5, "epochs fitted after each labelling round", check="nonneg", resume=True)
    fit_max_batches: int = knob(0, "at most this many minibatches per fitting epoch, and losses measured on as many "
                                "pairs (0 = whole epochs); bounds the fit's cost per round for the Atari CNN",
                                check="nonneg", resume=True)
    l2_init: float = knob(1e-3, "initial L2 coefficient (then adapted to keep val loss 1.1-1.5x train loss)",
                          check="nonneg")
    # 10 let a fit on few labels (the 200 pretraining epochs on the first quarter of 350) push L2 there and keep it,
    # and let a run's L2 climb x1.5 an epoch for ten rounds and flatten the reward model: Hopper at 350 labels 304 ->
    # 2,610, at 700 labels (seed 1) 1,582 -> 2,408 with 0.01 (results/mujoco/l2_windup.md)
    l2_max: float = knob(0.01, "the adapted L2 coefficient's upper bound (the penalty is this times each net's sum "
                         "of squared weights, ~43 for a fresh 2x64 MLP)", check="positive", resume=True)

    @property
    def use_actions(self) -> bool:
        return self.inputs == "obs+action"


@dataclass
class TeacherConfig:
    """B-Pref's irrational-teacher knobs for the synthetic labeler; the defaults make the perfect oracle.

    Thresholds for ``skip`` and ``equal`` are ``eps * mean_episode_return * segment_length / episode_length``,
    set once per labelling round from the true returns of recent episodes (``SyntheticOracle.set_round``).
    """

    beta: float = knob(math.inf, "Boltzmann rationality of the synthetic teacher (inf = perfect)",
                       name="teacher_beta", check="rationality")
    gamma: float = knob(1.0, "myopia: weight gamma**(T-1-t) on step t of a segment", name="teacher_gamma",
                        check="discount")
    eps_mistake: float = knob(0.0, "probability the teacher flips a decided label", name="teacher_eps_mistake",
                              check="share")
    eps_skip: float = knob(0.0, "skip pairs where both returns are below this share of a typical segment's",
                           name="teacher_eps_skip", check="share")
    eps_equal: float = knob(0.0, "answer 'equal' when returns differ by less than this share",
                            name="teacher_eps_equal", check="share")

    def __post_init__(self):
        from dataclasses import fields

        for f in fields(self):
            message = problem(getattr(self, f.name), f, f"teacher {f.name}")
            if message:
                raise ValueError(message)

    @property
    def is_perfect(self) -> bool:
        return (math.isinf(self.beta) and self.gamma == 1.0 and self.eps_mistake == 0 and self.eps_skip == 0
                and self.eps_equal == 0)


@dataclass
class PPOConfig:
    """The agent: which PPO preset, how many env copies, and the resolved settings."""

    preset: str = knob("", "PPO settings to start from: 'fast' (tuned for the fixed-horizon MuJoCo tasks), 'zoo' "
                       "(the RL Zoo's for the envs with termination), 'sb3' (SB3's defaults); '' = the env's own "
                       "(`pbrl presets ENV` lists them); --ppo KEY=VALUE changes single settings", name="ppo_preset")
    n_envs: int = knob(0, "parallel env copies (0 = the PPO preset's number)", check="nonneg")
    settings: dict[str, Any] = knob(None, "PPO settings; filled from the preset for the env", name="ppo", cli=False)


def _group(cls: type) -> Any:
    return field(default_factory=cls, metadata={"group": True})


@dataclass
class RunSettings:
    """The run's own knobs: what is trained, on what, for how long, and on what compute."""

    env_id: str = knob("Hopper-v5", "Gymnasium env id (state observations; MuJoCo v5 envs have tuned defaults)",
                       flag="--env")
    reward: str = knob("learned", "what PPO optimises: 'learned' (from preferences) or 'true' (the env reward)",
                       choices=REWARDS)
    labeler: str = knob("synthetic", "who answers queries: 'synthetic' (oracle on true segment returns), 'human' "
                        "(people in `pbrl label` windows; training goes on while they answer), or a scripted judge "
                        "standing in for a person: 'judge:backflip' (alias 'backflip-judge'), 'judge:one-leg'")
    n_labels: int = knob(700, "label budget: total comparisons asked for over the run", check="positive")
    total_timesteps: int = knob(1_000_000, "PPO agent steps", check="positive", resume=True)
    seed: int = knob(0, "seed for the env, PPO, the reward ensemble and query sampling", check="seed")
    max_episode_steps: int = knob(0, "fixed episode length in agent steps (0 = the env's registered time limit)",
                                  check="nonneg")
    eval_episode_steps: int = knob(0, "episode length of evaluations (0 = the training episodes' length): "
                                   "evaluations can measure longer episodes than training runs on", check="nonneg",
                                   resume=True)
    env_kwargs: dict[str, Any] = knob(None, "keyword arguments for the env's constructor (--env-kwargs KEY=VALUE)",
                                      cli=False)
    run_dir: str = knob("runs/default", "where the run's config, labels, checkpoints, logs and metrics live",
                        cli=False)
    instructions: str = knob("", "the task in words, shown at the top of the labelling window "
                             "(e.g. \"do a backflip and land on your foot\")")
    eval_episodes: int = knob(10, "episodes of the deterministic policy evaluated at the end of the run",
                              check="positive", resume=True)
    eval_every: int = knob(0, "also evaluate the deterministic policy every N agent steps (eval-episodes episodes of "
                           "its own), log it, and keep the best so far in RUN_DIR/best (for pbrl eval and pbrl "
                           "video); 0 = only at the end", check="nonneg", resume=True)
    torch_threads: int = knob(1, "torch CPU threads (1 is fastest for these small nets on 2 cores)",
                              check="positive", resume=True)
    device: str = knob("auto", "where PPO and the reward ensemble run: 'cpu', 'cuda' (or 'cuda:N'), or 'auto' (a GPU "
                       "when there is one and the observations are images; MLPs are faster on the CPU)", resume=True)
    vec_env: str = knob("dummy", "how the env copies step: 'dummy' (one process) or 'subproc' (one process per copy: "
                        "faster where there are more cores than copies)", choices=VEC_ENVS, resume=True)

    method: MethodConfig = _group(MethodConfig)
    reward_model: RewardConfig = _group(RewardConfig)
    teacher: TeacherConfig = _group(TeacherConfig)
    ppo: PPOConfig = _group(PPOConfig)
    sources: dict[str, str] = knob(None, "where values came from: 'flag', 'family NAME' or 'task NAME' "
                                   "(pbrl.families), 'preset ...' for PPO; the rest are the global defaults", cli=False)
