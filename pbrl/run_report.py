"""What a run reports: each round's TensorBoard log, its evaluations during the run (``--eval-every``), and
``metrics.json`` at the end.

The loop calls these with what they need: the config, the ``LoopState`` they read and update, the policy and its
observation statistics, the store's counts, and the reward model's correlations (``reward_model_corrs``: learned
vs true returns over the held-out sample, the recent unqueried segments and the validation comparisons' segments,
and where a scripted judge labels, learned return vs the judge's score).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from tqdm import tqdm

from pbrl.checkpoint import LoopState
from pbrl.config import TrainConfig
from pbrl.evaluation import load_obs_rms, policy_report, selection_score
from pbrl.heldout import HeldOutSample
from pbrl.reward import EnsembleBase
from pbrl.reward.diagnostics import learned_true_corr, pearson, validation_segments
from pbrl.rollout import RelabelingPPO
from pbrl.run_dir import RunDir, write_json_atomic
from pbrl.seeds import FINAL_EVAL_SEED, RUN_EVAL_SEED
from pbrl.segments import MemberReturns, Segment

if TYPE_CHECKING:
    from pbrl.store import PreferenceStore

class Progress(BaseCallback):
    """Moves the progress bar after every rollout."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.bar.update(self.model.num_timesteps - self.bar.n)


class ShortfallWarning:
    """Says once, when it first happens, that the buffer held too few pairs never asked before for the queries
    due: the run will end short of its label budget unless new segments arrive (metrics.json counts both)."""

    def __init__(self, n_labels: int):
        self.n_labels, self.told = n_labels, False

    def __call__(self, round_: int, n_chosen: int, n_due: int, n_segments: int) -> None:
        if self.told:
            return
        self.told = True
        tqdm.write(f"pbrl: warning: round {round_} could ask only {n_chosen} of the {n_due} queries due: its "
                   f"{n_segments} buffered segments form too few pairs not asked before; the run may end short of "
                   f"--n-labels {self.n_labels} (raise --segment-buffer-size or lower --n-labels)", file=sys.stderr)


# --- the reward model's correlations ---------------------------------------------------------------------------------


def heldout_judge_corr(ensemble: EnsembleBase | None, heldout: HeldOutSample) -> float | None:
    """Where a scripted judge labels: learned return vs the judge's score over the held-out sample (the env pays no
    reward there, so this is the test of the reward model); None for other runs."""
    scores = heldout.scores()
    if ensemble is None or scores is None:
        return None
    return learned_true_corr(ensemble, heldout.segments(), targets=scores)


def recent_corr(ensemble: EnsembleBase, recent: Sequence[Segment], returns: MemberReturns) -> float:
    """Learned vs true return over the ``recent`` segments that no comparison used (NaN for fewer than 3), from the
    member returns the round already has (``returns``)."""
    unqueried = [s for s in recent if s.id is None]
    if len(unqueried) < 3:
        return float("nan")
    learned = ensemble.normalised_returns(returns.get(ensemble, unqueried), unqueried[0].length).mean(axis=0)
    return pearson(learned, np.array([s.true_return for s in unqueried], dtype=np.float64))


def reward_model_corrs(ensemble: EnsembleBase, heldout: HeldOutSample, recent: Sequence[Segment],
                       judged: bool, returns: MemberReturns) -> dict[str, float]:
    """What each round logs of the reward model: learned vs true return over the held-out sample (never queried)
    and over the ``recent`` segments that no comparison used (from ``returns``); where a judge labels
    (``judged``), learned return vs the judge's score over the held-out sample."""
    out = {"learned_true_return_corr": learned_true_corr(ensemble, heldout.segments()),
           "learned_true_return_corr_recent": recent_corr(ensemble, recent, returns)}
    if judged:
        out["learned_judge_return_corr"] = heldout_judge_corr(ensemble, heldout)  # type: ignore[assignment]
    return out


def final_reward_model_corrs(ensemble: EnsembleBase, heldout: HeldOutSample, recent: Sequence[Segment],
                             store: PreferenceStore, returns: MemberReturns) -> dict[str, Any]:
    """What metrics.json keeps of the reward model: ``reward_model_corrs`` (the judge's None where none labels),
    the held-out sample's size, and learned vs true return over the validation comparisons' segments (never
    fitted, but picked by the selector where members disagreed)."""
    return {**reward_model_corrs(ensemble, heldout, recent, judged=False, returns=returns),
            "n_heldout_segments": len(heldout),
            "learned_judge_return_corr": heldout_judge_corr(ensemble, heldout),
            "learned_true_return_corr_val": learned_true_corr(ensemble, validation_segments(store))}


#: What metrics.json says of the reward model in a run without one (true reward).
NO_REWARD_MODEL: dict[str, Any] = dict.fromkeys((
    "learned_true_return_corr", "learned_true_return_corr_recent", "n_heldout_segments", "learned_judge_return_corr",
    "learned_true_return_corr_val"))


# --- each round ------------------------------------------------------------------------------------------------------


def log_round(log: Logger, counts, state: LoopState, reward_corrs: dict[str, Any], ep_infos, step: int) -> None:
    """Log the round (labels, the last fit, the reward model's correlations, the training episodes' true return)
    and keep what was logged in ``state.last_round`` for ``pbrl status``."""
    log.record("preferences/n_labels", counts.n_labels)
    log.record("preferences/n_pending", counts.n_pending)
    log.record("preferences/n_incomparable", counts.n_incomparable)
    for key, value in state.last_fit.items():
        log.record(f"reward_model/{key}", value)
    last: dict[str, float] = dict(reward_corrs)
    for key, value in last.items():
        log.record(f"reward_model/{key}", value)
    if len(ep_infos):
        last["ep_true_return"] = float(np.mean([e["r"] for e in ep_infos]))
        log.record("rollout/ep_true_return", last["ep_true_return"])
    state.last_round = last
    log.dump(step)


# --- evaluations -----------------------------------------------------------------------------------------------------


def evaluate(cfg: TrainConfig, model: BaseAlgorithm, obs_rms, seed_offset: int) -> dict[str, Any]:
    """``policy_report`` of ``model`` on the run's env, on the episodes of ``cfg.seed + seed_offset``."""
    return policy_report(model, cfg.env_id, cfg.eval_episodes, cfg.seed + seed_offset, obs_rms,
                         max_episode_steps=cfg.eval_steps, env_kwargs=cfg.env_kwargs)


def evaluate_if_due(cfg: TrainConfig, state: LoopState, model: BaseAlgorithm, obs_rms, log: Logger,
                    evals_path: Path, last_round: bool = False) -> bool:
    """Every --eval-every agent steps, and after the ``last_round`` (the final policy can be the best): evaluate
    the deterministic policy on its own episodes, log it to TensorBoard and evals.jsonl, and remember it as the
    best when it beats the best so far (on the behaviour envs the behaviour counts first, ``selection_score``).
    True when this policy is the new best."""
    step = model.num_timesteps
    due = step - state.last_eval_step >= cfg.eval_every or (last_round and step > state.last_eval_step)
    if not cfg.eval_every or not due:
        return False
    report = {"num_timesteps": step, "round": state.round, **evaluate(cfg, model, obs_rms, RUN_EVAL_SEED)}
    state.last_eval_step = step
    best = not state.best_eval or selection_score(report, cfg.env_id) > selection_score(state.best_eval, cfg.env_id)
    if best:
        state.best_eval = report
    log.record("eval/true_return_mean", report["eval_true_return_mean"])
    if report.get("game_score_mean") is not None:  # Atari: the mean score of the games finished in the episodes
        log.record("eval/game_score_mean", report["game_score_mean"])
    if "flips_per_episode" in report:
        log.record("eval/flips_per_episode", float(np.mean(report["flips_per_episode"])))
        log.record("eval/episodes_with_a_flip", report["episodes_with_a_flip"])
        log.record("eval/furthest_back_turn", float(np.mean(report["furthest_back_turn_per_episode"])))
    with open(evals_path, "a") as fh:
        fh.write(json.dumps({**report, "best": best}) + "\n")
    return best


def best_report(cfg: TrainConfig, state: LoopState, best_dir: Path) -> dict[str, Any] | None:
    """The kept best policy, evaluated on the final evaluation's episodes (not those it was picked on)."""
    best = RunDir(best_dir)
    if not state.best_eval or not best.policy.exists():
        return None
    model = RelabelingPPO.load(str(best.policy), device="cpu")
    obs_rms = load_obs_rms(best.vecnormalize) if cfg.ppo.settings["normalize"] else None
    return {"num_timesteps": state.best_eval["num_timesteps"], "picked_on": state.best_eval,
            **evaluate(cfg, model, obs_rms, FINAL_EVAL_SEED)}


# --- metrics.json ----------------------------------------------------------------------------------------------------

def write_metrics(cfg: TrainConfig, state: LoopState, run_dir: RunDir, counts, num_timesteps: int,
                  report: dict[str, Any], reward_corrs: dict[str, Any]) -> dict[str, Any]:
    """Write metrics.json, and return it: the final policy's ``report`` (its returns left out), the labels, the
    reward model's fit and correlations (``final_reward_model_corrs``, or ``NO_REWARD_MODEL``), where the time went,
    and the kept best policy's report (``best_report``). NaN is written as null."""
    report = {k: v for k, v in report.items() if k != "returns"}
    metrics = {
        "env_id": cfg.env_id, "reward": cfg.reward, "labeler": cfg.labeler if cfg.learned else None,
        "n_labels": counts.n_labels, "n_incomparable": counts.n_incomparable,
        "n_labels_budget": cfg.n_labels if cfg.learned else None,
        "n_labels_asked": counts.n_asked if cfg.learned else None,
        "total_timesteps": num_timesteps, "seed": cfg.seed, **report,
        "reward_model_val_accuracy": state.last_fit.get("val_accuracy") if cfg.learned else None,
        # the accuracy is over decided labels: with many ties (a pendulum that falls at once) read it beside this
        "reward_model_val_tie_share": state.last_fit.get("val_tie_share") if cfg.learned else None,
        # held out: a uniform sample of the whole run's segments, never queried (--heldout-rate); beside it the
        # validation comparisons' segments and the final buffer's unqueried ones (a converged policy's: nearly
        # equal true returns)
        **reward_corrs,
        "wall_time_s": state.wall_time_s, "env_steps_per_s": num_timesteps / max(state.wall_time_s, 1e-9),
        "ppo_time_s": state.ppo_time_s, "reward_fit_time_s": state.fit_time_s,
        "reward_fit_share": state.fit_time_s / max(state.wall_time_s, 1e-9),
        "n_pretrain_env_steps": state.n_pretrain_env_steps, "code_version": state.code_version,
    }
    metrics = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    if cfg.learned and counts.n_asked < cfg.n_labels:
        tqdm.write(f"pbrl: warning: the run asked {counts.n_asked} of its --n-labels {cfg.n_labels} budget "
                   f"({counts.n_labels} answered); metrics.json records both", file=sys.stderr)
    best = best_report(cfg, state, run_dir.best)
    if best is not None:
        metrics["best"] = best
    write_json_atomic(run_dir.metrics, metrics)
    return metrics
