"""The preference loop: collect, ask, label, fit, relabel, update, in that order, on one screen (``run``).

``PreferenceRun`` owns the pieces of one run (vector env, PPO, reward ensemble, store, labeler, segment buffer)
and the stages the loop calls; each stage is small and works on arrays. A run checkpoints at the end of every
labelling round, so ``resume`` continues from the last completed round; labels are in the store the moment they
are given, whatever happens after.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize
from tqdm import tqdm

from pbrl import cnn_reward
from pbrl.allocator import reuse_freed_memory
from pbrl.cnn_reward import CnnRewardConfig, CnnRewardEnsemble
from pbrl.config import ConfigError, TrainConfig
from pbrl.envs import make_env
from pbrl.envs.make import obs_action_dims
from pbrl.evaluation import learned_true_corr, load_obs_rms, policy_report, selection_score, validation_segments
from pbrl.families import family_of
from pbrl.faults import kill_point
from pbrl.finite import assert_finite_parameters
from pbrl.frames import PackedObs, PackedPairs
from pbrl.judges import Judge, judge_name, make_judge
from pbrl.labelers import Labeler, SyntheticOracle
from pbrl.ppo_defaults import policy_kwargs_for_sb3
from pbrl.queries import LabelSchedule, select_queries
from pbrl.reward_model import RewardEnsemble, RewardModelConfig, load_ensemble
from pbrl.rollout import RelabelingPPO, ReturnNormalizer, RolloutRecorder
from pbrl.run_dir import RunDir, RunDirError, copy_tree_atomic, write_json_atomic
from pbrl.segments import HeldOutSample, RolloutRecord, Segment, SegmentBuffer, SegmentPair, cut_segments, stack
from pbrl.store import PreferenceStore
from pbrl.trainer import FitStats, PreferenceDataset, RewardTrainer, TrainerConfig

VAL_FRACTION = 1.0 / math.e  # the paper's held-out share of labels
IMAGE_SEGMENT_SAMPLE = 200


@dataclass
class LoopState:
    """Where the loop stands; saved as loop_state.json at every checkpoint."""

    round: int = 0
    pretrained: bool = False
    n_pretrain_env_steps: int = 0
    num_timesteps: int = 0
    wall_time_s: float = 0.0
    fit_time_s: float = 0.0
    ppo_time_s: float = 0.0
    return_normalizer: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    last_fit: dict[str, float] = field(default_factory=dict)
    code_version: str = ""
    last_eval_step: int = 0  # with --eval-every: the agent step of the last evaluation
    best_eval: dict[str, Any] = field(default_factory=dict)  # and the best one so far (kept in RUN_DIR/best)
    last_round: dict[str, float] = field(default_factory=dict)  # what the last round logged, for `pbrl status`


def code_version() -> str:
    """pbrl's version, with the git commit (and '-dirty') when run from a checkout: results say what made them."""
    import subprocess
    from pathlib import Path

    from pbrl import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+{commit}{'-dirty' if dirty else ''}" if commit else __version__


class _Progress(BaseCallback):
    """Moves the progress bar after every rollout."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.bar.update(self.model.num_timesteps - self.bar.n)


class PreferenceRun:
    """The pieces of one run and the loop's stages."""

    def __init__(self, cfg: TrainConfig, run: RunDir, resume: bool, labeler: Labeler | None = None):
        """Build the run's pieces. Resuming, this takes the run's writer lock and loads its last checkpoint; for a
        new run nothing is written (``create`` writes once every piece is built, so a config that cannot run
        leaves no trace)."""
        self.cfg, self.run_dir = cfg, run
        self.store: PreferenceStore | None = None
        self.venv = None
        self.finished = False  # metrics.json is written
        try:
            self._build(cfg, run, resume, labeler)
        except BaseException:
            self.close()
            raise

    def _build(self, cfg: TrainConfig, run: RunDir, resume: bool, labeler: Labeler | None) -> None:
        if resume:  # what can be checked by reading is checked before the lock, the run's first write
            run.verify_checkpoint()
            PreferenceStore(run.store, readonly=True).close()
            run.lock()
            run = run.pinned()  # every file of the checkpoint from one generation
        self.device = cfg.torch_device()
        torch.set_num_threads(cfg.torch_threads)
        reuse_freed_memory()  # CPU fits of the CNN reward spent half their time faulting in fresh mmaps
        torch.manual_seed(cfg.seed)
        self.state = LoopState(**run.read_json(run.state)) if resume else LoopState()
        self.state.code_version = self.state.code_version or code_version()
        self.rng = np.random.default_rng(cfg.seed)
        if self.state.rng:
            self.rng.bit_generator.state = self.state.rng
        self.schedule = LabelSchedule(cfg.n_labels, cfg.total_timesteps, cfg.initial_label_fraction,
                                      cfg.label_rate_constant)
        self.n_initial_steps = math.ceil(2.4 * self.schedule.n_initial * cfg.segment_length / cfg.n_envs)
        self.images = family_of(cfg.env_id).images
        # the recorder holds a rollout; for vector observations also the whole initial collection (images are
        # collected in rollout-sized chunks instead: a stack of frames is 28 KB a step)
        capacity = max(cfg.ppo["n_steps"], self.n_initial_steps if cfg.learned and not self.images else 0)

        # -- env: Monitor(make_env) x n_envs -> DummyVecEnv -> RolloutRecorder (raw steps) -> VecNormalize (obs)
        fns = [lambda i=i: Monitor(make_env(cfg.env_id, seed=cfg.seed + i, max_episode_steps=cfg.episode_steps,
                                            env_kwargs=cfg.env_kwargs))
               for i in range(cfg.n_envs)]
        vec_env_cls = SubprocVecEnv if cfg.vec_env == "subproc" else DummyVecEnv
        self.recorder = RolloutRecorder(vec_env_cls(fns), capacity, env_id=cfg.env_id)
        self.venv = self.recorder
        if resume:
            self.venv = VecNormalize.load(str(run.vecnormalize), self.recorder)
        else:
            self.venv = VecNormalize(self.recorder, norm_obs=bool(cfg.ppo["normalize"]), norm_reward=False,
                                     gamma=cfg.ppo["gamma"])
        self.ppo = self._build_ppo(resume)
        self.ppo.recorder = self.recorder
        self.ppo.return_normalizer = ReturnNormalizer(cfg.n_envs, cfg.ppo["gamma"])
        if self.state.return_normalizer:
            self.ppo.return_normalizer.load_state_dict(self.state.return_normalizer)

        self.buffer = SegmentBuffer(cfg.segment_buffer_size)
        self._packed: dict[int, tuple[PackedObs, np.ndarray]] = {}  # labelled image segments by id, packed
        self.labeler: Labeler | None = labeler
        self.judge: Judge | None = None  # a scripted judge labels: the env pays nothing, the judge's score stands in
        if labeler is None and cfg.learned and judge_name(cfg.labeler):
            self.labeler = self.judge = make_judge(judge_name(cfg.labeler))
        elif labeler is None and not cfg.human:
            self.labeler = SyntheticOracle(cfg.teacher(), np.random.default_rng(cfg.seed + 1))
        self.heldout = HeldOutSample(cfg.heldout_size, cfg.heldout_rate, self.judge.score if self.judge else None)
        if resume and run.heldout.exists():
            self.heldout.load(run.heldout)
        self.ppo.on_rollout = self._on_rollout
        self.ensemble: RewardEnsemble | None = None
        self.trainer: RewardTrainer | None = None
        if cfg.learned:
            self._build_reward_model(resume)
            self.ppo.reward_fn = self._learned_reward
        self.episode_length = int(self.venv.get_attr("spec")[0].max_episode_steps or 1000)
        if cfg.learned:
            self._check_segments_fit()
        self._shortfall_told = False
        if resume:
            self._open_outputs()

    def _check_segments_fit(self) -> None:
        """Segments are cut within one episode and one rollout: a segment longer than either is never cut, and the
        run would train on a reward model fitted to nothing."""
        cfg, n = self.cfg, self.cfg.segment_length
        limits = [(self.episode_length, "an episode", "--max-episode-steps"),
                  (int(cfg.ppo["n_steps"]), "a PPO rollout per env copy", "--ppo n_steps")]
        if self.schedule.n_initial and cfg.initial_episode_steps:
            limits.append((cfg.initial_episode_steps, "the initial episodes", "--initial-episode-steps"))
        for limit, what, flag in limits:
            if n > limit:
                raise ConfigError(f"--segment-length {n} is longer than {what} ({limit} steps): no segment could be "
                                  f"cut; use --segment-length {limit} or less, or raise {flag}")

    def _open_outputs(self) -> None:
        """The store and the TensorBoard log: opened only once the run is to be written."""
        self.store = PreferenceStore(self.run_dir.store)
        self.ppo.set_logger(configure(str(self.run_dir.tb), ["tensorboard"]))

    @classmethod
    def create(cls, cfg: TrainConfig, labeler: Labeler | None = None, restart: bool = False) -> PreferenceRun:
        """Start a new run in ``cfg.run_dir`` (which must not hold anything yet, or with ``restart`` a run that
        stopped before its first checkpoint): build every piece, then take the run's lock, save its config and
        write the first checkpoint. A config that cannot run fails while building, before anything is written."""
        run = RunDir(cfg.run_dir)
        if not restart:
            run.check_new()
        session = cls(cfg, run, resume=False, labeler=labeler)
        try:
            run.lock()
            if restart and not run.never_checkpointed():
                raise RunDirError(f"{run.path} holds a checkpoint; continue it with pbrl train --resume")
            if not restart:
                run.check_new()  # again, under the lock: nobody started a run here meanwhile
            cfg.save(run.config)
            kill_point("created")
            session._open_outputs()
            session.checkpoint()  # a run exists from the start: status, label and resume work before the first round
        except BaseException:
            session.close()
            raise
        return session

    # -- construction ------------------------------------------------------------------------------------

    def _build_ppo(self, resume: bool) -> RelabelingPPO:
        ppo = (RelabelingPPO.load(str(self.run_dir.policy), env=self.venv, device=self.device) if resume
               else self._new_ppo())
        if cnn_reward.CPU_CHANNELS_LAST and ppo.device.type == "cpu":  # only conv weights change (CnnPolicy)
            ppo.policy.to(memory_format=torch.channels_last)
        return ppo

    def _new_ppo(self) -> RelabelingPPO:
        p = self.cfg.ppo
        try:
            return self._ppo_from(p)
        except (AssertionError, ValueError, TypeError, KeyError) as exc:  # SB3 checks its settings with asserts
            raise ConfigError(f"PPO rejected its settings ({type(exc).__name__}: {exc}); change them with "
                              f"--ppo KEY=VALUE (settings: {json.dumps(p, sort_keys=True)})") from None

    def _ppo_from(self, p: dict[str, Any]) -> RelabelingPPO:
        return RelabelingPPO(
            p.get("policy", "MlpPolicy"), self.venv, n_steps=p["n_steps"], batch_size=p["batch_size"],
            n_epochs=p["n_epochs"],
            gamma=p["gamma"], gae_lambda=p["gae_lambda"], learning_rate=p["learning_rate"], ent_coef=p["ent_coef"],
            clip_range=p["clip_range"], max_grad_norm=p["max_grad_norm"], vf_coef=p["vf_coef"],
            policy_kwargs=policy_kwargs_for_sb3(p["policy_kwargs"]), seed=self.cfg.seed, device=self.device, verbose=0,
        )

    def _build_reward_model(self, resume: bool) -> None:
        cfg = self.cfg
        obs_dim, act_dim = obs_action_dims(self.venv.observation_space, self.venv.action_space)
        if resume and self.run_dir.reward_model.exists():
            self.ensemble, extra = load_ensemble(self.run_dir.reward_model)
        elif self.images:
            self.ensemble, extra = CnnRewardEnsemble(CnnRewardConfig(
                obs_shape=tuple(self.venv.observation_space.shape), act_dim=act_dim, n_members=cfg.n_members,
                hidden=cfg.reward_hidden)), {}
        else:
            self.ensemble, extra = RewardEnsemble(RewardModelConfig(
                obs_dim=obs_dim, act_dim=act_dim, n_members=cfg.n_members, hidden=cfg.reward_hidden,
                use_actions=cfg.reward_inputs == "obs+action")), {}
        self.ensemble.to(self.device).eval()
        self.trainer = RewardTrainer(self.ensemble, TrainerConfig(lr=cfg.reward_lr, batch_size=cfg.reward_batch_size,
                                                                  max_batches=cfg.fit_max_batches,
                                                                  l2_init=cfg.l2_init), self.rng)
        if "optimizer" in extra:
            self.trainer.optimizer.load_state_dict(extra["optimizer"])
            self.trainer.l2 = extra["l2"]

    def _learned_reward(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        assert self.ensemble is not None
        if not self.images:
            return self.ensemble.mean_reward(obs, acts)  # (T, n_envs)
        # the envs wait while a rollout is relabelled, so the CNN may use every core for it
        threads = torch.get_num_threads()
        torch.set_num_threads(max(threads, os.cpu_count() or 1))
        try:
            return self.ensemble.mean_reward(obs, acts)
        finally:
            torch.set_num_threads(threads)

    def _on_rollout(self, rec: RolloutRecord) -> None:
        if self.cfg.learned:
            self._add_segments(cut_segments(rec, self.cfg.segment_length, self.rng))

    def _add_segments(self, segments: list[Segment]) -> None:
        """New segments become query candidates, except the few set aside as the never-queried test set."""
        self.buffer.extend(self.heldout.split(segments, self.rng))

    # -- stages ------------------------------------------------------------------------------------------

    def collect_initial_segments(self) -> None:
        """Act with uniform random actions or the untrained policy (not counted as PPO steps) to fill the buffer
        for the first queries, restarting the env every ``initial_episode_steps`` steps when that is set."""
        space = self.venv.action_space
        space.seed(self.cfg.seed)
        chunk = min(self.cfg.initial_episode_steps or self.n_initial_steps, self.n_initial_steps,
                    self.recorder.capacity)
        obs = self.venv.reset()
        for done in range(0, self.n_initial_steps, chunk):
            n = min(chunk, self.n_initial_steps - done)
            if self.cfg.initial_episode_steps:
                obs = self.venv.reset()
            for _ in range(n):
                if self.cfg.initial_policy == "random":
                    actions = np.stack([space.sample() for _ in range(self.venv.num_envs)])
                else:
                    actions, _ = self.ppo.predict(obs, deterministic=False)
                obs, _, _, _ = self.venv.step(actions)
            self._add_segments(cut_segments(self.recorder.take(n, 0), self.cfg.segment_length, self.rng))
        self.state.n_pretrain_env_steps = self.n_initial_steps * self.cfg.n_envs
        self.ppo._last_obs = None  # PPO starts from a fresh reset

    def ask(self, n_queries: int) -> list[int]:
        """Choose ``n_queries`` pairs from the buffer and store them as pending comparisons."""
        assert self.ensemble is not None
        if n_queries <= 0:
            return []
        if len(self.buffer) < 2:
            self._tell_shortfall(0, n_queries, len(self.buffer))
            return []
        segments = self.buffer.segments()
        obs, acts = stack(segments)
        with torch.no_grad():
            member_returns = self.ensemble.raw(obs, acts).sum(-1).cpu().numpy()  # (n_members, n_segments)
        candidates = self.buffer.sample_pairs(n_queries * self.cfg.oversample, self.rng, self.cfg.pair_phase)
        asked = self.store.asked_pairs()
        fresh = [(i, j) not in asked and (j, i) not in asked for i, j in
                 ((segments[a].id, segments[b].id) for a, b in candidates)]
        candidates = candidates[np.asarray(fresh, dtype=bool)]
        chosen = select_queries(member_returns, candidates, n_queries, self.cfg.query_selection, self.rng)
        if len(chosen) < n_queries:
            self._tell_shortfall(len(chosen), n_queries, len(segments))
        splits = np.where(self.rng.random(len(chosen)) < VAL_FRACTION, "val", "train").tolist()
        pairs = [(segments[i], segments[j]) for i, j in chosen]
        ids, seg_ids = self.store.add_queries(pairs, splits, self.state.round, self.ppo.num_timesteps)
        for (i, j), (a, b) in zip(chosen, seg_ids, strict=True):  # the buffer now knows which are stored
            self.buffer[i], self.buffer[j] = segments[i].with_id(a), segments[j].with_id(b)
        return ids

    def _tell_shortfall(self, n_chosen: int, n_due: int, n_segments: int) -> None:
        """Say once, when it first happens, that the buffer held too few pairs never asked before for the queries
        due: the run will end short of its label budget unless new segments arrive (metrics.json counts both)."""
        if self._shortfall_told:
            return
        self._shortfall_told = True
        tqdm.write(f"pbrl: warning: round {self.state.round} could ask only {n_chosen} of the {n_due} queries due: "
                   f"its {n_segments} buffered segments form too few pairs not asked before; the run may end short "
                   f"of --n-labels {self.cfg.n_labels} (raise --segment-buffer-size or lower --n-labels)",
                   file=sys.stderr)

    def label_pending(self) -> None:
        """Have the (synchronous) labeler answer every pending comparison; answers are stored one by one.

        With people labelling (no labeler in this process) answers arrive through the store instead.
        """
        pending = self.store.comparisons("pending")
        if not pending or self.labeler is None:
            return
        if isinstance(self.labeler, SyntheticOracle):
            recent = self.recorder.drain_finished_returns() or [0.0]
            self.labeler.set_round(float(np.mean(recent)), self.cfg.segment_length, self.episode_length)
        pairs = [SegmentPair(self.store.segment(c.first_id), self.store.segment(c.second_id)) for c in pending]
        self.store.answer_many([c.id for c in pending], self.labeler(pairs), self.labeler.name)

    def n_to_ask(self) -> int:
        """Queries due by the schedule now, bounded by --max-pending unanswered ones when people label."""
        counts = self.store.counts()
        n = self.schedule.due(self.ppo.num_timesteps) - counts.n_asked
        if self.cfg.human and self.cfg.max_pending:
            n = min(n, self.cfg.max_pending - counts.n_pending)
        return n

    def wait_for_answers(self, until, bar: tqdm, what: str) -> None:
        """Block until ``until(counts)`` holds, polling the store (people answer in other processes)."""
        told = False
        while not until(self.store.counts()):
            if not told:
                msg = f"waiting for {what}: answer them with  pbrl label --run-dir {self.run_dir.path}"
                bar.set_postfix_str(msg)
                if bar.disable:
                    print(f"pbrl: {msg}", flush=True)
                told = True
            time.sleep(1.0)

    def dataset(self) -> PreferenceDataset | None:
        """The labelled pairs the ensemble is fitted on (the most recent --max-labels-used)."""
        comps = self.store.answered(self.cfg.max_labels_used or None)
        if not comps:
            return None
        labels = np.array([c.label for c in comps], dtype=np.float32)
        is_val = np.array([c.split == "val" for c in comps])
        if self.images:
            return PreferenceDataset(*self._packed_pairs(comps), labels, is_val)
        pairs = [(self.store.segment(c.first_id), self.store.segment(c.second_id)) for c in comps]
        obs = np.stack([np.stack([a.obs, b.obs]) for a, b in pairs])  # (N, 2, T, *obs_shape)
        acts = np.stack([np.stack([a.acts, b.acts]) for a, b in pairs])  # (N, 2, T, act_dim)
        return PreferenceDataset(obs, acts, labels, is_val)

    def _packed_pairs(self, comps: list) -> tuple[PackedPairs, np.ndarray]:
        """Image observations of the labelled pairs, packed (``pbrl.frames``): each segment is read from the store
        and packed once, then kept between fits, 2.5 KB for a Pong segment instead of 706 KB."""
        keep: dict[int, tuple[PackedObs, np.ndarray]] = {}
        for c in comps:
            for sid in (c.first_id, c.second_id):
                if sid not in keep:
                    keep[sid] = self._packed.get(sid) or self._pack(sid)
        self._packed = keep  # segments of labels that fell out of the FIFO go
        obs = PackedPairs([(keep[c.first_id][0], keep[c.second_id][0]) for c in comps])
        acts = np.stack([np.stack([keep[c.first_id][1], keep[c.second_id][1]]) for c in comps])
        return obs, acts

    def _pack(self, segment_id: int) -> tuple[PackedObs, np.ndarray]:
        seg = self.store.segment(segment_id)
        return PackedObs(seg.obs), seg.acts

    def fit(self, n_epochs: int) -> FitStats | None:
        """Refit the ensemble on all labels, then renormalise each member over the recent segments."""
        assert self.ensemble is not None and self.trainer is not None
        data = self.dataset()
        if data is None or n_epochs == 0:
            return None
        t0 = time.perf_counter()
        if not self.images:  # the CNN scales frames by 1/255 and fits no input statistics
            self.ensemble.fit_input_stats(data.obs.reshape(-1, *data.obs.shape[3:]),
                                          data.acts.reshape(-1, data.acts.shape[-1]))
        stats = self.trainer.fit(data, n_epochs)
        obs, acts = stack(self.recent_segments())
        self.ensemble.fit_output_stats(obs.reshape(-1, *obs.shape[2:]), acts.reshape(-1, acts.shape[-1]))
        self.state.fit_time_s += time.perf_counter() - t0
        self.state.last_fit = {"train_loss": stats.train_loss, "val_loss": stats.val_loss,
                               "val_accuracy": stats.val_accuracy, "val_tie_share": stats.val_tie_share,
                               "l2": stats.l2}
        return stats

    def heldout_corr(self) -> float:
        """Learned vs true return over the held-out sample of the whole run's segments (never queried)."""
        assert self.ensemble is not None
        return learned_true_corr(self.ensemble, self.heldout.segments())

    def heldout_judge_corr(self) -> float | None:
        """Where a scripted judge labels: learned return vs the judge's score over the held-out sample (the env
        pays no reward there, so this is the test of the reward model); None for other runs."""
        scores = self.heldout.scores()
        if self.ensemble is None or scores is None:
            return None
        return learned_true_corr(self.ensemble, self.heldout.segments(), targets=scores)

    def recent_corr(self) -> float:
        """Learned vs true return over recent segments that no comparison used."""
        assert self.ensemble is not None
        return learned_true_corr(self.ensemble, [s for s in self.recent_segments() if s.id is None])

    def recent_segments(self) -> list:
        """The buffer's segments, or for image observations a random 200 of them (a CNN pass over all of them
        every round would cost more than the round's PPO update)."""
        segments = self.buffer.segments()
        if not self.images or len(segments) <= IMAGE_SEGMENT_SAMPLE:
            return segments
        keep = self.rng.choice(len(segments), IMAGE_SEGMENT_SAMPLE, replace=False)
        return [segments[i] for i in sorted(keep)]

    def log_round(self) -> None:
        log = self.ppo.logger
        counts = self.store.counts()
        log.record("preferences/n_labels", counts.n_labels)
        log.record("preferences/n_pending", counts.n_pending)
        log.record("preferences/n_incomparable", counts.n_incomparable)
        for key, value in self.state.last_fit.items():
            log.record(f"reward_model/{key}", value)
        last: dict[str, float] = {}
        if self.ensemble is not None:
            last["learned_true_return_corr"] = self.heldout_corr()
            last["learned_true_return_corr_recent"] = self.recent_corr()
            if self.judge is not None:
                last["learned_judge_return_corr"] = self.heldout_judge_corr()
        for key, value in last.items():
            log.record(f"reward_model/{key}", value)
        if len(self.ppo.ep_info_buffer):
            last["ep_true_return"] = float(np.mean([e["r"] for e in self.ppo.ep_info_buffer]))
            log.record("rollout/ep_true_return", last["ep_true_return"])
        self.state.last_round = last
        log.dump(self.ppo.num_timesteps)

    # -- evaluations during the run (--eval-every) ---------------------------------------------------------

    #: Seed offsets of the episodes each evaluation plays: the run's own (--eval-every), the final one in
    #: metrics.json, and ``pbrl eval``'s (``EVAL_COMMAND_SEED``) differ, so a policy picked on one set is reported
    #: on another.
    EVAL_SEED, FINAL_SEED = 30_000, 10_000

    def _report(self, model, obs_rms, seed_offset: int) -> dict[str, Any]:
        cfg = self.cfg
        return policy_report(model, cfg.env_id, cfg.eval_episodes, cfg.seed + seed_offset, obs_rms,
                             max_episode_steps=cfg.eval_steps, env_kwargs=cfg.env_kwargs)

    def _obs_rms(self):
        return self.venv.obs_rms if self.cfg.ppo["normalize"] else None  # VecNormalize has none without norm_obs

    def evaluate_if_due(self, last_round: bool = False) -> bool:
        """Every --eval-every agent steps, and after the ``last_round`` (the final policy can be the best): evaluate
        the deterministic policy on its own episodes, log it to TensorBoard and evals.jsonl, and remember it as the
        best when it beats the best so far (on the behaviour envs the behaviour counts first, ``selection_score``).
        True when this policy is the new best."""
        cfg, state = self.cfg, self.state
        step = self.ppo.num_timesteps
        due = step - state.last_eval_step >= cfg.eval_every or (last_round and step > state.last_eval_step)
        if not cfg.eval_every or not due:
            return False
        report = {"num_timesteps": step, "round": state.round, **self._report(self.ppo, self._obs_rms(),
                                                                               self.EVAL_SEED)}
        state.last_eval_step = step
        best = not state.best_eval or selection_score(report, cfg.env_id) > selection_score(state.best_eval, cfg.env_id)
        if best:
            state.best_eval = report
        log = self.ppo.logger
        log.record("eval/true_return_mean", report["eval_true_return_mean"])
        if report.get("game_score_mean") is not None:  # Atari: the mean score of the games finished in the episodes
            log.record("eval/game_score_mean", report["game_score_mean"])
        if "flips_per_episode" in report:
            log.record("eval/flips_per_episode", float(np.mean(report["flips_per_episode"])))
            log.record("eval/episodes_with_a_flip", report["episodes_with_a_flip"])
            log.record("eval/furthest_back_turn", float(np.mean(report["furthest_back_turn_per_episode"])))
        with open(self.run_dir.evals, "a") as fh:
            fh.write(json.dumps({**report, "best": best}) + "\n")
        return best

    def keep_best(self) -> None:
        """Copy the checkpoint just written, the best evaluated policy so far, to RUN_DIR/best: a run directory
        that ``pbrl eval`` and ``pbrl video`` read. The new copy is complete before it replaces the old one."""
        run = self.run_dir.pinned()
        eval_json = json.dumps(self.state.best_eval, indent=2, sort_keys=True) + "\n"
        copy_tree_atomic({"config.json": run.config, "loop_state.json": run.state, "policy.zip": run.policy,
                          "vecnormalize.pkl": run.vecnormalize,
                          "eval.json": lambda path: path.write_text(eval_json)}, run.best)

    def best_report(self) -> dict[str, Any] | None:
        """The kept best policy, evaluated on the final evaluation's episodes (not those it was picked on)."""
        best = RunDir(self.run_dir.best)
        if not self.state.best_eval or not best.policy.exists():
            return None
        model = RelabelingPPO.load(str(best.policy), device="cpu")
        obs_rms = load_obs_rms(best.vecnormalize) if self.cfg.ppo["normalize"] else None
        return {"num_timesteps": self.state.best_eval["num_timesteps"], "picked_on": self.state.best_eval,
                **self._report(model, obs_rms, self.FINAL_SEED)}

    def checkpoint(self) -> None:
        """Save PPO, its observation statistics, the ensemble, the held-out segments and the loop state as one new
        generation of the checkpoint (``RunDir.write_checkpoint``: a kill at any instant leaves a whole one)."""
        self.state.num_timesteps = self.ppo.num_timesteps
        self.state.return_normalizer = self.ppo.return_normalizer.state_dict()  # type: ignore[union-attr]
        self.state.rng = self.rng.bit_generator.state
        state_json = json.dumps(self.state.__dict__, indent=2, sort_keys=True) + "\n"
        writers: dict[str, Any] = {"policy.zip": lambda path: self.ppo.save(str(path)),
                                   "vecnormalize.pkl": lambda path: self.venv.save(str(path))}
        if self.ensemble is not None and self.trainer is not None:
            assert_finite_parameters(self.ensemble)  # nothing non-finite is checkpointed
            extra = {"optimizer": self.trainer.optimizer.state_dict(), "l2": self.trainer.l2}
            writers["reward_model.pt"] = lambda path: self.ensemble.save(path, extra)
            previous = self.run_dir.heldout  # the current generation's, unless the sample changed since
            writers["heldout_segments.npz"] = (previous if self.heldout.unchanged_since_save and previous.exists()
                                               else self.heldout.save)
        writers["loop_state.json"] = lambda path: path.write_text(state_json)
        self.run_dir.write_checkpoint(writers, {"num_timesteps": self.state.num_timesteps, "round": self.state.round})

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self, progress: bool = True, position: int | None = None) -> dict[str, Any]:
        cfg, state = self.cfg, self.state
        start = time.perf_counter() - state.wall_time_s
        # PPO runs whole rollouts, so the run ends at the first rollout boundary at or past total_timesteps
        last_step = math.ceil(cfg.total_timesteps / cfg.rollout_size) * cfg.rollout_size
        bar = tqdm(total=last_step, initial=self.ppo.num_timesteps, unit="step", disable=not progress,
                   dynamic_ncols=True, desc=f"{cfg.env_id} {cfg.reward}", position=position)
        # ---- 1. labels on the untrained policy, then pretrain the reward model
        if cfg.learned and not state.pretrained:
            self.collect_initial_segments()
            self.label_pending()  # answers anything a stopped run left pending
            self.ask(self.schedule.n_initial - self.store.counts().n_asked)
            self.label_pending()
            if cfg.human:  # the reward model is pretrained on the initial labels; RL cannot start without them
                self.wait_for_answers(lambda c: c.n_pending == 0, bar, f"the first {self.schedule.n_initial} labels")
            kill_point("pretrain")
            self.fit(cfg.pretrain_epochs)
            state.pretrained = True
            state.wall_time_s = time.perf_counter() - start
            self.checkpoint()
        # ---- 2. rounds: PPO on the current reward, then ask, label and refit
        while self.ppo.num_timesteps < cfg.total_timesteps:
            if cfg.human and cfg.when_full == "pause" and cfg.max_pending:
                self.wait_for_answers(lambda c: c.n_pending < cfg.max_pending, bar, "answers (--when-full pause)")
            t0, steps_before = time.perf_counter(), self.ppo.num_timesteps
            chunk = min(cfg.round_steps, cfg.total_timesteps - self.ppo.num_timesteps)
            self.ppo.learn(chunk, callback=_Progress(bar), reset_num_timesteps=False)
            state.ppo_time_s += time.perf_counter() - t0
            state.round += 1
            if cfg.learned:
                self.ask(self.n_to_ask())
                self.label_pending()
                self.fit(cfg.fit_epochs)
                acc = state.last_fit.get("val_accuracy", float("nan"))
                counts = self.store.counts()
                waiting = f" pending {counts.n_pending}" if cfg.human else ""
                bar.set_postfix_str(f"labels {counts.n_labels}/{cfg.n_labels}{waiting} val_acc {acc:.2f}")
            new_best = self.evaluate_if_due(last_round=self.ppo.num_timesteps >= cfg.total_timesteps)
            self.log_round()
            now = time.perf_counter()
            state.last_round["steps_per_s"] = (self.ppo.num_timesteps - steps_before) / (now - t0)  # whole round
            state.wall_time_s = now - start
            self.checkpoint()
            if new_best:  # copied from the checkpoint just written
                self.keep_best()
        bar.close()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Evaluate the final policy on the true reward and write metrics.json."""
        cfg, state = self.cfg, self.state
        report = self._report(self.ppo, self._obs_rms(), self.FINAL_SEED)
        report.pop("returns")
        counts = self.store.counts()
        metrics = {
            "env_id": cfg.env_id, "reward": cfg.reward, "labeler": cfg.labeler if cfg.learned else None,
            "n_labels": counts.n_labels, "n_incomparable": counts.n_incomparable,
            "n_labels_budget": cfg.n_labels if cfg.learned else None,
            "n_labels_asked": counts.n_asked if cfg.learned else None,
            "total_timesteps": self.ppo.num_timesteps, "seed": cfg.seed, **report,
            "reward_model_val_accuracy": state.last_fit.get("val_accuracy") if cfg.learned else None,
            # the accuracy is over decided labels: with many ties (a pendulum that falls at once) read it beside this
            "reward_model_val_tie_share": state.last_fit.get("val_tie_share") if cfg.learned else None,
            # held out: a uniform sample of the whole run's segments, never queried (--heldout-rate); beside it the
            # validation comparisons' segments (never fitted, but picked by the selector where members disagreed)
            # and the final buffer's unqueried ones (a converged policy's: nearly equal true returns)
            "learned_true_return_corr": self.heldout_corr() if cfg.learned else None,
            "n_heldout_segments": len(self.heldout) if cfg.learned else None,
            "learned_judge_return_corr": self.heldout_judge_corr(),
            "learned_true_return_corr_val": learned_true_corr(self.ensemble, validation_segments(self.store))
            if cfg.learned and self.ensemble is not None else None,
            "learned_true_return_corr_recent": self.recent_corr() if cfg.learned else None,
            "wall_time_s": state.wall_time_s, "env_steps_per_s": self.ppo.num_timesteps / max(state.wall_time_s, 1e-9),
            "ppo_time_s": state.ppo_time_s, "reward_fit_time_s": state.fit_time_s,
            "reward_fit_share": state.fit_time_s / max(state.wall_time_s, 1e-9),
            "n_pretrain_env_steps": state.n_pretrain_env_steps, "code_version": state.code_version,
        }
        if cfg.learned and counts.n_asked < cfg.n_labels:
            tqdm.write(f"pbrl: warning: the run asked {counts.n_asked} of its --n-labels {cfg.n_labels} budget "
                       f"({counts.n_labels} answered); metrics.json records both", file=sys.stderr)
        best = self.best_report()
        if best is not None:
            metrics["best"] = best
        metrics = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
        write_json_atomic(self.run_dir.metrics, metrics)
        self.finished = True
        return metrics

    def close(self) -> None:
        """Close the store and the envs and give up the run's writer lock."""
        if self.store is not None:
            self.store.close()
        if self.venv is not None:
            self.venv.close()
        self.run_dir.unlock()
