"""The return R of a uniform-random policy on an env, which ``pbrl bench report`` normalises against where true
reward's returns are not positive (Reacher: about -4 trained, about -40 random, so a ratio of returns means nothing).

``random_policy_returns`` gives R per env: read from ``DIR/random_policy.json`` where a report has already computed
it (so a report of a committed snapshot repeats exactly and needs no env), else computed by ``evaluate_random_policy``
from one finished trial's ``config.json`` and added to that file. R is measured on the episodes the trial's final
evaluation played (same seed, number of episodes, episode length and env kwargs, through ``pbrl.evaluation``), with
the action space sampled from a fixed seed. Gymnasium and SB3 are imported only when R is computed: a report of a
sweep whose returns are positive, or whose R is cached, needs neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.bench.directory import finite_number
from pbrl.run_dir import write_json_atomic
from pbrl.seeds import FINAL_EVAL_SEED

__all__ = ["ACTION_SEED", "CACHE_NAME", "ENTRY_KEYS", "UniformRandomPolicy", "evaluate_random_policy",
           "random_policy_returns"]

CACHE_NAME = "random_policy.json"
ACTION_SEED = 0  # fixed: the same actions on every computation, so a recomputed R is the cached one
#: What an entry of random_policy.json holds (``config``: the trial's config.json, relative to the sweep directory)
ENTRY_KEYS = ("mean", "std", "n_episodes", "returns", "env_seed", "action_seed", "eval_steps", "env_kwargs", "config")


class UniformRandomPolicy:
    """Uniform random actions from ``action_space``, seeded: what SB3's ``evaluate_policy`` takes as a model."""

    def __init__(self, action_space: Any, seed: int) -> None:
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """One action per env copy of the batch ``obs`` (n_envs, ...), whatever the observations."""
        return np.stack([self.action_space.sample() for _ in range(len(obs))]), None  # (n_envs, *action_shape)


def evaluate_random_policy(config_path: Path) -> dict[str, Any]:
    """R of the run whose ``config.json`` is at ``config_path``: the mean true return of uniform random actions on
    the episodes of its final evaluation (``run_report.evaluate`` with ``FINAL_EVAL_SEED``). Raises whatever
    loading the config or building the env raises (``ConfigError``, ``EnvSpecError``, ``ImportError``, ...)."""
    from pbrl.config import TrainConfig
    from pbrl.envs import make_env
    from pbrl.evaluation import true_returns

    cfg = TrainConfig.load(config_path)
    env_seed = cfg.seed + FINAL_EVAL_SEED
    # an env of its own for the action space only: the episodes are played by true_returns, exactly as the final
    # evaluation plays them (the same wrappers, seed and time limit)
    probe = make_env(cfg.env_id, max_episode_steps=cfg.eval_steps, env_kwargs=cfg.env_kwargs, for_evaluation=True)
    try:
        policy = UniformRandomPolicy(probe.action_space, ACTION_SEED)
    finally:
        probe.close()
    rets = true_returns(policy, cfg.env_id, cfg.eval_episodes, env_seed, obs_rms=None,  # type: ignore[arg-type]
                        max_episode_steps=cfg.eval_steps, env_kwargs=cfg.env_kwargs)  # (n_episodes,)
    return {"mean": float(rets.mean()), "std": float(rets.std()), "n_episodes": len(rets),
            "returns": [round(float(r), 3) for r in rets], "env_seed": env_seed, "action_seed": ACTION_SEED,
            "eval_steps": cfg.eval_steps, "env_kwargs": cfg.env_kwargs}


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The complete entries of random_policy.json (every key of ``ENTRY_KEYS``, a finite mean); a missing or garbled
    file or entry counts as absent (computed again, and the file rewritten)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {env_id: entry for env_id, entry in data.items()
            if isinstance(entry, dict) and set(ENTRY_KEYS) <= set(entry) and finite_number(entry["mean"])}


def random_policy_returns(bench_dir: Path, run_dirs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """R for each env of ``run_dirs`` (env id -> the run directory of a finished trial whose evaluation R repeats).

    Each entry is the cached one of ``bench_dir/random_policy.json``, else computed now and added to that file (with
    the trial's ``config`` relative to ``bench_dir``); an env whose R cannot be computed gets ``{"mean": None,
    "reason": one line}`` and stays out of the file, so a later report tries again.
    """
    path = bench_dir / CACHE_NAME
    cache = _read_cache(path) if run_dirs else {}
    out: dict[str, dict[str, Any]] = {}
    added: list[str] = []
    for env_id, run_dir in sorted(run_dirs.items()):
        if env_id in cache:
            out[env_id] = cache[env_id]
            continue
        config_path = run_dir / "config.json"
        try:
            entry = evaluate_random_policy(config_path)
        except Exception as exc:  # no MuJoCo, a garbled config...: the report is still written, and says why
            reason = " ".join(str(exc).split()) or "no message"
            out[env_id] = {"mean": None, "reason": f"{type(exc).__name__}: {reason}"}
            continue
        config = config_path.relative_to(bench_dir) if config_path.is_relative_to(bench_dir) else config_path
        out[env_id] = cache[env_id] = {**entry, "config": str(config)}
        added.append(env_id)
    if added:
        try:
            write_json_atomic(path, cache)
        except OSError as exc:  # a read-only snapshot: the values stand, only later reports compute them again
            for env_id in added:
                out[env_id] = {**out[env_id], "cache_error": f"{path} not written ({type(exc).__name__}: {exc})"}
    return out
