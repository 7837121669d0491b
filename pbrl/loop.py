"""The preference loop: collect, ask, label, fit, relabel, update, in that order, on one screen (``run``).

``PreferenceRun`` holds the parts of one run (vector env, PPO, reward ensemble, store, labeler, segment buffer) and
the stages the loop calls; each stage is small and works on arrays. The parts are built by ``pbrl.run_parts``, what
a run saves is ``pbrl.checkpoint``'s and what it reports ``pbrl.run_report``'s. A run checkpoints at the end of
every labelling round, so ``resume`` continues from the last completed round; labels are in the store the moment
they are given, whatever happens after.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.logger import configure
from tqdm import tqdm

from pbrl import run_parts, run_report
from pbrl.checkpoint import claim_run_dir, keep_best, load_state, open_checkpoint, save_checkpoint
from pbrl.config import TrainConfig
from pbrl.faults import kill_point
from pbrl.labelers import Labeler, needs_round_returns
from pbrl.queries import n_queries_due, select_queries, unasked
from pbrl.reward import FitStats, LabelledPairs, PreferenceDataset
from pbrl.rollout import RolloutHooks
from pbrl.run_dir import RunDir
from pbrl.seeds import FINAL_EVAL_SEED
from pbrl.segments import MemberReturns, RolloutRecord, Segment, SegmentBuffer, SegmentPair, cut_segments, stack
from pbrl.store import PreferenceStore

VAL_FRACTION = 1.0 / math.e  # the paper's held-out share of labels


def wait_for_answers(store: PreferenceStore, until: Callable[[Any], bool], bar: tqdm, what: str, run_dir: RunDir
                     ) -> None:
    """Block until ``until(store.counts())`` holds, polling the store (people answer in other processes)."""
    told = False
    while not until(store.counts()):
        if not told:
            msg = (f"waiting for {what}: answer them with  pbrl label --run-dir {run_dir.path}  (or in a browser: "
                   f"pbrl serve --run-dir {run_dir.path})")
            bar.set_postfix_str(msg)
            if bar.disable:
                print(f"pbrl: {msg}", flush=True)
            told = True
        time.sleep(1.0)


class PreferenceRun:
    """The parts of one run and the loop's stages."""

    def __init__(self, cfg: TrainConfig, run: RunDir, resume: bool, labeler: Labeler | None = None):
        """Build the run's parts. Resuming, this takes the run's writer lock and loads its last checkpoint; for a
        new run nothing is written (``create`` writes once every part is built, so a config that cannot run leaves
        no trace)."""
        self.cfg, self.run_dir, self.finished = cfg, run, False  # finished: metrics.json is written
        self.store: PreferenceStore | None = None
        self.venv = None
        try:
            self._build(cfg, run, resume, labeler)
        except BaseException:
            self.close()
            raise

    def _build(self, cfg: TrainConfig, run: RunDir, resume: bool, labeler: Labeler | None) -> None:
        saved = open_checkpoint(run) if resume else None  # takes the run's lock
        self.device = cfg.torch_device()
        run_parts.start_torch(cfg)
        self.state = load_state(saved)
        self.rng = run_parts.run_rng(cfg, self.state.rng)
        self.schedule = run_parts.label_schedule(cfg)
        self.n_initial_steps = run_parts.initial_steps(cfg, self.schedule)
        capacity = run_parts.recorder_capacity(cfg, self.n_initial_steps)
        self.recorder, self.venv = run_parts.build_venv(cfg, capacity, saved and saved.vecnormalize)
        self.episode_length = int(self.venv.get_attr("spec")[0].max_episode_steps or 1000)
        self.return_normalizer = run_parts.return_normalizer(cfg, self.state.return_normalizer)
        hooks = RolloutHooks(self.recorder, self.return_normalizer, self._learned_reward if cfg.learned else None,
                             self._cut_segments)
        self.ppo = run_parts.build_ppo(cfg, self.venv, self.device, hooks, saved and saved.policy)
        self.buffer = SegmentBuffer(cfg.method.segment_buffer_size)
        self.member_returns = MemberReturns()  # the buffer's member returns under the ensemble since its last fit
        self.stats_segments: list[Segment] = []  # the recent segments the last fit's output statistics came from
        self.labeler, self.judge = run_parts.build_labeler(cfg, labeler)
        self.heldout = run_parts.build_heldout(cfg, self.judge, saved and saved.heldout)
        self.ensemble, self.trainer, self.pairs = None, None, None
        if cfg.learned:
            self.ensemble, self.trainer = run_parts.build_reward_model(cfg, self.venv, self.device, self.rng,
                                                                       saved and saved.reward_model)
            self.pairs = LabelledPairs(packed=self.ensemble.packed_pairs)
            run_parts.check_segments_fit(cfg, self.schedule, self.episode_length)
        self.warn_shortfall = run_report.ShortfallWarning(cfg.n_labels)
        if resume:
            self._open_outputs()

    def _open_outputs(self) -> None:
        """The store and the TensorBoard log: opened only once the run is to be written."""
        self.store = PreferenceStore(self.run_dir.store)
        self.ppo.set_logger(configure(str(self.run_dir.tb), ["tensorboard"]))

    @classmethod
    def create(cls, cfg: TrainConfig, labeler: Labeler | None = None, restart: bool = False) -> PreferenceRun:
        """Start a new run in ``cfg.run_dir`` (which must not hold anything yet, or with ``restart`` a run that
        stopped before its first checkpoint): build every part, then take the run's lock, save its config and
        write the first checkpoint. A config that cannot run fails while building, before anything is written."""
        run_dir = RunDir(cfg.run_dir)
        if not restart:
            run_dir.check_new()
        run = cls(cfg, run_dir, resume=False, labeler=labeler)
        try:
            claim_run_dir(run_dir, cfg, restart)
            run._open_outputs()
            run.checkpoint()  # a run exists from the start: status, label and resume work before the first round
        except BaseException:
            run.close()
            raise
        return run

    # -- what PPO calls back: once a rollout is complete, its learned reward and its segments ----------------------

    def _learned_reward(self, obs: np.ndarray, acts: np.ndarray) -> np.ndarray:
        return self.ensemble.rollout_reward(obs, acts)  # type: ignore[union-attr]  # (T, n_envs)

    def _cut_segments(self, rec: RolloutRecord) -> None:
        """Cut a recorded rollout into segments: query candidates, except the few set aside as the never-queried
        test set."""
        if self.cfg.learned:
            segments = cut_segments(rec, self.cfg.method.segment_length, self.rng)
            self.buffer.extend(self.heldout.split(segments, self.rng))

    # -- stages ------------------------------------------------------------------------------------------------------

    def collect_initial_segments(self) -> None:
        """Act with uniform random actions or the untrained policy (not counted as PPO steps) to fill the buffer
        for the first queries, restarting the env every ``initial_episode_steps`` steps when that is set."""
        space = self.venv.action_space
        space.seed(self.cfg.seed)
        chunk = min(self.cfg.method.initial_episode_steps or self.n_initial_steps, self.n_initial_steps,
                    self.recorder.capacity)
        obs = self.venv.reset()
        for done in range(0, self.n_initial_steps, chunk):
            n = min(chunk, self.n_initial_steps - done)
            if self.cfg.method.initial_episode_steps:
                obs = self.venv.reset()
            for _ in range(n):
                if self.cfg.method.initial_policy == "random":
                    actions = np.stack([space.sample() for _ in range(self.venv.num_envs)])
                else:
                    actions, _ = self.ppo.predict(obs, deterministic=False)
                obs, _, _, _ = self.venv.step(actions)
            self._cut_segments(self.recorder.take(n, 0))
        self.state.n_pretrain_env_steps = self.n_initial_steps * self.cfg.ppo.n_envs
        self.ppo.restart_episodes()

    def ask(self, n_queries: int) -> list[int]:
        """Choose ``n_queries`` pairs from the buffer and store them as pending comparisons."""
        assert self.ensemble is not None
        if n_queries <= 0:
            return []
        if len(self.buffer) < 2:
            self.warn_shortfall(self.state.round, 0, n_queries, len(self.buffer))
            return []
        segments = self.buffer.segments()
        self.member_returns.retain(segments)
        method = self.cfg.method
        candidates = self.buffer.sample_pairs(n_queries * method.oversample, self.rng, method.pair_phase)
        candidates = unasked(candidates, [s.id for s in segments], self.store.asked_pairs())
        # only the candidates' segments are evaluated (none for random selection), most of them kept since the fit
        member_returns = np.zeros((self.ensemble.n_members, len(segments)), dtype=np.float32)
        if method.query_selection != "random" and len(candidates):
            used = np.unique(candidates)
            member_returns[:, used] = self.member_returns.get(self.ensemble, [segments[i] for i in used])
        chosen = select_queries(member_returns, candidates, n_queries, method.query_selection, self.rng)
        if len(chosen) < n_queries:
            self.warn_shortfall(self.state.round, len(chosen), n_queries, len(segments))
        splits = np.where(self.rng.random(len(chosen)) < VAL_FRACTION, "val", "train").tolist()
        pairs = [(segments[i], segments[j]) for i, j in chosen]
        ids, seg_ids = self.store.add_queries(pairs, splits, self.state.round, self.ppo.num_timesteps)
        for (i, j), (a, b) in zip(chosen, seg_ids, strict=True):  # the buffer now knows which are stored
            self.buffer[i], self.buffer[j] = segments[i].with_id(a), segments[j].with_id(b)
        return ids

    def label_pending(self) -> None:
        """Have the labeler in this process answer every pending comparison, stored in one transaction.

        With people labelling (no labeler in this process) answers arrive through the store instead.
        """
        pending = self.store.comparisons("pending")
        if not pending or self.labeler is None:
            return
        if needs_round_returns(self.labeler):
            recent = self.recorder.drain_finished_returns() or [0.0]
            self.labeler.set_round(float(np.mean(recent)), self.cfg.method.segment_length,  # type: ignore[attr-defined]
                                   self.episode_length)
        pairs = [SegmentPair(self.store.segment(c.first_id), self.store.segment(c.second_id)) for c in pending]
        self.store.answer_many([c.id for c in pending], self.labeler(pairs), self.labeler.name)

    def n_to_ask(self) -> int:
        """Queries due by the schedule now, bounded by --max-pending unanswered ones when people label."""
        counts = self.store.counts()
        return n_queries_due(self.schedule, self.ppo.num_timesteps, counts.n_asked, counts.n_pending,
                             self.cfg.method.max_pending if self.cfg.human else 0)

    def dataset(self) -> PreferenceDataset | None:
        """The labelled pairs the ensemble is fitted on (the most recent --max-labels-used)."""
        return self.pairs.dataset(self.store, self.cfg.method.max_labels_used or None)  # type: ignore[union-attr]

    def fit(self, n_epochs: int) -> FitStats | None:
        """Refit the ensemble on all labels, then renormalise each member over the recent segments."""
        assert self.ensemble is not None and self.trainer is not None
        data = self.dataset()
        if data is None or n_epochs == 0:
            return None
        t0 = time.perf_counter()
        self.member_returns.clear()  # the fit changes the ensemble
        self.ensemble.fit_input_stats_on_pairs(data.obs, data.acts)
        stats = self.trainer.fit(data, n_epochs)
        self.stats_segments = recent = self.recent_segments()
        obs, acts = stack(recent)
        r = self.ensemble.fit_output_stats(obs.reshape(-1, *obs.shape[2:]), acts.reshape(-1, acts.shape[-1]))
        self.member_returns.put(recent, r.reshape(r.shape[0], len(recent), -1).sum(-1).cpu().numpy())
        self.state.fit_time_s += time.perf_counter() - t0
        self.state.last_fit = stats.logged()
        return stats

    def recent_segments(self) -> list[Segment]:
        """The buffer's segments, at most as many as the ensemble evaluates for its statistics (a random sample)."""
        return self.buffer.sample(self.ensemble.max_stats_segments, self.rng)  # type: ignore[union-attr]

    # -- reports and checkpoints (pbrl.run_report, pbrl.checkpoint) --------------------------------------------------

    def _obs_rms(self):
        # VecNormalize has no statistics without norm_obs
        return self.venv.obs_rms if self.cfg.ppo.settings["normalize"] else None

    def reported_segments(self) -> list[Segment]:
        """The recent segments the reports correlate over: the last fit's statistics sample (already evaluated)."""
        return self.stats_segments or self.recent_segments()

    def log_round(self) -> None:
        corrs = {} if self.ensemble is None else run_report.reward_model_corrs(
            self.ensemble, self.heldout, self.reported_segments(), judged=self.judge is not None,
            returns=self.member_returns)
        run_report.log_round(self.ppo.logger, self.store.counts(), self.state, corrs, self.ppo.ep_info_buffer,
                             self.ppo.num_timesteps)

    def checkpoint(self) -> None:
        """Save the run as one new generation of the checkpoint (a kill at any instant leaves a whole one)."""
        self.state.num_timesteps = self.ppo.num_timesteps
        self.state.return_normalizer = self.return_normalizer.state_dict()
        self.state.rng = self.rng.bit_generator.state
        save_checkpoint(self.run_dir, self.state, self.ppo, self.venv, self.ensemble, self.trainer, self.heldout)

    # -- the loop ----------------------------------------------------------------------------------------------------

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
                wait_for_answers(self.store, lambda c: c.n_pending == 0, bar,
                                 f"the first {self.schedule.n_initial} labels", self.run_dir)
            kill_point("pretrain")
            self.fit(cfg.reward_model.pretrain_epochs)
            state.pretrained = True
            state.wall_time_s = time.perf_counter() - start
            self.checkpoint()
        # ---- 2. rounds: PPO on the current reward, then ask, label and refit
        while self.ppo.num_timesteps < cfg.total_timesteps:
            if cfg.human and cfg.method.when_full == "pause" and cfg.method.max_pending:
                wait_for_answers(self.store, lambda c: c.n_pending < cfg.method.max_pending, bar,
                                 "answers (--when-full pause)", self.run_dir)
            t0, steps_before = time.perf_counter(), self.ppo.num_timesteps
            chunk = min(cfg.round_steps, cfg.total_timesteps - self.ppo.num_timesteps)
            if cfg.ppo.settings.get("lr_schedule") == "linear":  # SB3's own schedule restarts with each learn()
                self.ppo.learning_rate = run_parts.learning_rate_at(cfg.ppo.settings, self.ppo.num_timesteps,
                                                                    cfg.total_timesteps)
                self.ppo._setup_lr_schedule()  # SB3's constant schedule of that rate, for this round
            self.ppo.learn(chunk, callback=run_report.Progress(bar), reset_num_timesteps=False)
            state.ppo_time_s += time.perf_counter() - t0
            state.round += 1
            if cfg.learned:
                self.ask(self.n_to_ask())
                self.label_pending()
                self.fit(cfg.reward_model.fit_epochs)
                acc = state.last_fit.get("val_accuracy", float("nan"))
                counts = self.store.counts()
                waiting = f" pending {counts.n_pending}" if cfg.human else ""
                bar.set_postfix_str(f"labels {counts.n_labels}/{cfg.n_labels}{waiting} val_acc {acc:.2f}")
            new_best = run_report.evaluate_if_due(cfg, state, self.ppo, self._obs_rms(), self.ppo.logger,
                                                  self.run_dir.evals, self.ppo.num_timesteps >= cfg.total_timesteps)
            self.log_round()
            now = time.perf_counter()
            state.last_round["steps_per_s"] = (self.ppo.num_timesteps - steps_before) / (now - t0)  # whole round
            state.wall_time_s = now - start
            self.checkpoint()
            if new_best:  # copied from the checkpoint just written
                keep_best(self.run_dir, state.best_eval)
        bar.close()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Evaluate the final policy on the true reward and write metrics.json."""
        report = run_report.evaluate(self.cfg, self.ppo, self._obs_rms(), FINAL_EVAL_SEED)
        corrs = run_report.NO_REWARD_MODEL if self.ensemble is None else run_report.final_reward_model_corrs(
            self.ensemble, self.heldout, self.reported_segments(), self.store, returns=self.member_returns)
        metrics = run_report.write_metrics(self.cfg, self.state, self.run_dir, self.store.counts(),
                                           self.ppo.num_timesteps, report, corrs)
        self.finished = True
        return metrics

    def close(self) -> None:
        """Close the store and the envs and give up the run's writer lock."""
        if self.store is not None:
            self.store.close()
        if self.venv is not None:
            self.venv.close()
        self.run_dir.unlock()
