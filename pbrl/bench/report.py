"""``build_report``: a sweep directory read and summarised into the one JSON-ready dict that report.json holds.

The trials of bench.json are grouped into **cells**: one env x reward x label budget (plus the sweep's extra axes,
if any), the seeds being the repeats. Per cell: the final policy's true return over seeds (``pbrl.bench.stats``),
its comparison with the true-reward baseline of the same env, the labels used, the wall time, the median learning
curve, and the paper's verdict beside ours. Where an env's true-reward median is not > 0, the comparison is
normalised by a uniform-random policy's return (``pbrl.bench.random_policy``, cached in ``DIR/random_policy.json``).
Trials that have not finished (no ``metrics.json``) are counted as such; a garbled ``metrics.json`` makes its trial
"unreadable", never the whole report fail. The writers in ``pbrl.bench.markdown`` and ``pbrl.bench.plots`` turn the
dict into report.md and the PNGs.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.bench.directory import finite_number, trial_run_dir
from pbrl.bench.errors import BenchReportError
from pbrl.bench.paper import PAPER_ATARI, PAPER_MUJOCO, PAPER_SOURCE, paper_verdict
from pbrl.bench.random_policy import random_policy_returns
from pbrl.bench.stats import (
    BOOTSTRAP_SEED,
    CONFIDENCE,
    IQM_CUT,
    MATCH_RATIO,
    N_RESAMPLES,
    STATISTICS,
    compare_to_true,
    our_verdict,
    summarize_returns,
)

__all__ = ["axes_key", "build_report"]

# --- reading the sweep --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _read_bench(bench_dir: Path) -> dict[str, Any]:
    if not bench_dir.is_dir():
        raise BenchReportError(f"no sweep directory at {bench_dir}: give the DIR that pbrl bench wrote")
    path = bench_dir / "bench.json"
    if not path.is_file():
        raise BenchReportError(f"{bench_dir} has no bench.json: is it a sweep directory written by pbrl bench?")
    try:
        bench = _read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchReportError(f"{path} is not readable JSON ({exc}): rerun pbrl bench to rewrite it") from None
    trials = bench.get("trials") if isinstance(bench, dict) else None
    if not isinstance(trials, list):
        raise BenchReportError(f"{path} has no list of trials under \"trials\": is it a pbrl bench sweep?")
    for i, entry in enumerate(trials):
        missing = [k for k in ("name", "env_id", "reward") if not isinstance(entry, dict) or entry.get(k) is None]
        if missing:
            raise BenchReportError(f"{path}: trial {i} lacks {', '.join(missing)}: rerun pbrl bench to rewrite it")
        if not isinstance(entry.get("axes") or {}, dict):
            raise BenchReportError(f"{path}: trial {i} has axes that are not an object: rerun pbrl bench")
    return bench


def _read_evals(path: Path) -> tuple[list[tuple[int, float]], int]:
    """The (num_timesteps, eval_true_return_mean) points of evals.jsonl, and how many lines could not be read."""
    points, n_bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            points.append((int(row["num_timesteps"]), float(row["eval_true_return_mean"])))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            n_bad += 1
    return points, n_bad


def _read_trial(bench_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """One trial of bench.json with its status: "finished", "not finished" (no metrics.json) or "unreadable"."""
    run_dir = bench_dir / (entry.get("run_dir") or trial_run_dir(entry["name"]))
    trial: dict[str, Any] = {
        "name": entry["name"], "run_dir": str(run_dir), "env_id": entry["env_id"], "reward": entry["reward"],
        "n_labels_budget": entry.get("n_labels") if entry["reward"] == "learned" else None,
        "seed": entry.get("seed"), "axes": dict(entry.get("axes") or {}), "status": "not finished", "reason": None,
        "final_return": None, "n_labels": None, "wall_time_s": None, "code_version": None, "evals": None,
    }
    metrics_path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        trial["reason"] = "no run directory (not started)"
        return trial
    if not metrics_path.exists():
        trial["reason"] = "no metrics.json (running, stopped or crashed)"
        return trial
    try:
        metrics = _read_json(metrics_path)
        if not isinstance(metrics, dict):
            raise ValueError("not a JSON object")
        final = metrics.get("eval_true_return_mean")
        if not finite_number(final):
            raise ValueError(f"eval_true_return_mean is {final!r}, not a number")
        if metrics.get("env_id") not in (None, entry["env_id"]):
            raise ValueError(f"it is a run of {metrics['env_id']}, bench.json says {entry['env_id']}")
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        trial.update(status="unreadable", reason=f"metrics.json: {exc}")
        return trial
    trial.update(status="finished", final_return=float(final), n_labels=metrics.get("n_labels"),
                 wall_time_s=metrics.get("wall_time_s"), code_version=metrics.get("code_version"))
    if trial["seed"] is None:
        trial["seed"] = metrics.get("seed")
    evals_path = run_dir / "evals.jsonl"
    if evals_path.is_file():
        trial["evals"], n_bad = _read_evals(evals_path)
        if n_bad:
            trial["reason"] = f"evals.jsonl: {n_bad} unreadable line(s) skipped"
    return trial


# --- the cells --------------------------------------------------------------------------------------------------------


def axes_key(axes: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    # values as JSON text: an axis may hold a list or a dict (a PPO setting), which a key cannot
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in axes.items()))


def _cell_key(trial: dict[str, Any]) -> tuple[Any, ...]:
    return trial["env_id"], trial["reward"], trial["n_labels_budget"], axes_key(trial["axes"])


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    env_id, reward, budget, axes = key  # true reward first in its env, then the budgets in order
    return env_id, reward != "true", reward, budget if budget is not None else -1, repr(axes)


def _median_curve(trials: list[dict[str, Any]]) -> dict[str, list[Any]] | None:
    """The median over seeds of eval_true_return_mean at each num_timesteps some seed evaluated at."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for t in trials:
        for step, value in dict(t["evals"] or []).items():  # the last line wins where a resumed run repeats a step
            by_step[step].append(value)
    if not by_step:
        return None
    steps = sorted(by_step)
    return {"num_timesteps": steps, "median": [float(np.median(by_step[s])) for s in steps],
            "q25": [float(np.percentile(by_step[s], 25)) for s in steps],
            "q75": [float(np.percentile(by_step[s], 75)) for s in steps],
            "n_seeds": [len(by_step[s]) for s in steps]}


def _baseline_key(key: tuple[Any, ...], true_keys: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """The true-reward cell of the same env whose axes agree with the cell's on most axes (all that it has)."""
    env_id, _, _, axes = key
    fits = [k for k in true_keys if k[0] == env_id and set(k[3]) <= set(axes)]
    return max(fits, key=lambda k: len(k[3]), default=None)


def _random_policy_runs(cells: dict[tuple[Any, ...], dict[str, Any]],
                        trials: list[dict[str, Any]]) -> dict[str, Path]:
    """Env id -> the run directory whose final evaluation the random policy repeats, for each env with a true-reward
    median that is not > 0 (only they need R): its finished true-reward trial of lowest seed."""
    envs = {c["env_id"] for c in cells.values() if c["reward"] == "true" and c["n"] and c["median"] <= 0}
    runs: dict[str, Path] = {}
    for t in sorted(trials, key=lambda t: (t["seed"] if isinstance(t["seed"], int) else math.inf, t["name"])):
        if t["env_id"] in envs and t["reward"] == "true" and t["status"] == "finished":
            runs.setdefault(t["env_id"], Path(t["run_dir"]))
    return runs


def build_report(bench_dir: Path) -> dict[str, Any]:
    """Read the sweep in ``bench_dir`` and compute every cell's statistics: the dict report.json holds.

    Where an env's true-reward median is not > 0, this computes the random policy's return R on that env unless
    ``bench_dir/random_policy.json`` holds it, and adds it there. Raises ``BenchReportError`` where ``bench_dir``
    or its bench.json is missing or garbled.
    """
    bench_dir = Path(bench_dir)
    bench = _read_bench(bench_dir)
    trials = [_read_trial(bench_dir, entry) for entry in bench["trials"]]

    # --- group into cells and summarize each ---
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for t in trials:
        groups[_cell_key(t)].append(t)
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key in sorted(groups, key=_sort_key):
        members = groups[key]
        done = [t for t in members if t["status"] == "finished"]
        walls = [t["wall_time_s"] for t in done if isinstance(t["wall_time_s"], (int, float))]
        labels = [t["n_labels"] for t in done if isinstance(t["n_labels"], (int, float))]
        env_id, reward, budget, axes = key
        cells[key] = {
            "env_id": env_id, "reward": reward, "n_labels_budget": budget, "axes": members[0]["axes"],
            "n_trials": len(members), "n_finished": len(done),
            "n_not_finished": sum(t["status"] == "not finished" for t in members),
            "n_unreadable": sum(t["status"] == "unreadable" for t in members),
            "seeds": [t["seed"] for t in done], "returns": [t["final_return"] for t in done],
            **summarize_returns([t["final_return"] for t in done]),
            "n_labels_used_mean": float(np.mean(labels)) if labels and reward == "learned" else None,
            "wall_time_s_median": float(np.median(walls)) if walls else None,
            "curve": _median_curve(done),
        }

    # --- each learned cell against its env's true-reward baseline (normalised by R where returns are negative) ---
    random_policy = random_policy_returns(bench_dir, _random_policy_runs(cells, trials))
    true_keys = [k for k in cells if k[1] == "true"]
    for key, cell in cells.items():
        if cell["reward"] == "true":
            cell.update(baseline=None, vs_true=None, verdict_ours=None, verdict_paper=None)
            continue
        base = _baseline_key(key, true_keys)
        vs_true = compare_to_true(cell["returns"], cells[base]["returns"] if base else [],
                                  random_policy.get(cell["env_id"], {}).get("mean"))
        cell.update(baseline=None if base is None else {"env_id": base[0], "axes": cells[base]["axes"]},
                    vs_true=vs_true, verdict_ours=our_verdict(vs_true),
                    verdict_paper=paper_verdict(cell["env_id"], cell["reward"], cell["n_labels_budget"]))

    versions = Counter(t["code_version"] for t in trials if t["status"] == "finished" and t["code_version"])
    return {
        "bench_dir": str(bench_dir), "name": bench.get("name"), "command": bench.get("command"),
        "n_trials": len(trials), "n_finished": sum(t["status"] == "finished" for t in trials),
        "n_not_finished": sum(t["status"] == "not finished" for t in trials),
        "n_unreadable": sum(t["status"] == "unreadable" for t in trials),
        "code_versions": dict(versions.most_common()),
        "statistics": {"summary": STATISTICS, "confidence": CONFIDENCE, "n_resamples": N_RESAMPLES,
                       "bootstrap_seed": BOOTSTRAP_SEED, "bootstrap_method": "percentile", "iqm_cut": IQM_CUT,
                       "match_ratio": MATCH_RATIO},
        "paper": {"source": PAPER_SOURCE,
                  "mujoco_by_budget": PAPER_MUJOCO, "atari_by_game": PAPER_ATARI},
        "random_policy": random_policy,
        "cells": list(cells.values()),
        "trials": [{k: v for k, v in t.items() if k != "evals"} | {"has_evals": bool(t["evals"])} for t in trials],
    }
