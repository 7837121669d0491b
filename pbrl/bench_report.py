"""``pbrl bench report DIR``: the statistics, the Markdown table and the plots of a benchmark sweep.

A sweep directory (written by ``pbrl bench``) holds ``bench.json``, the list of its trials, and one ordinary run
directory per trial under ``trials/``. The trials are grouped into **cells**: one env x reward x label budget (plus
the sweep's extra axes, if any), the seeds being the repeats. Per cell this module computes the final policy's
true return over seeds (median, IQM, mean, percentile-bootstrap 95 % CIs), its ratio to the true-reward baseline of
the same env (or the difference, where the baseline's median is not positive), the labels used and the wall time,
and sets the paper's verdict (REFERENCE.md's summary of Christiano et al. 2017) beside ours.

``build_report(bench_dir)`` returns everything as one JSON-ready dict (what ``report.json`` holds); the writers
below turn that dict into ``report.md`` and the PNGs, so each part can be tested on its own. ``main`` is the command.
Trials that have not finished (no ``metrics.json``) are counted as such; a garbled ``metrics.json`` makes its trial
"unreadable", never the whole report fail. Needs scipy and matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.errors import UserError
from pbrl.extras import MissingExtra, require
from pbrl.families import task_of

__all__ = ["BenchReportError", "PAPER_ATARI", "PAPER_MUJOCO", "build_report", "main", "plot_label_efficiency",
           "plot_learning_curves", "render_markdown", "write_report"]


class BenchReportError(UserError):
    """A sweep directory that cannot be reported on (missing, or its bench.json garbled), with what to check."""


# --- the statistics used ------------------------------------------------------------------------------------------

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same sweep gives the same CIs on every run of the report
IQM_CUT = 0.25  # scipy.stats.trim_mean(x, 0.25) cuts int(0.25 n) values from each end
MATCH_RATIO = 0.9  # our verdict: "matches" where median(learned) / median(true) >= this

STATISTICS = (
    "per seed: the final policy's true return (metrics.json eval_true_return_mean); over seeds: median, "
    f"IQM = scipy.stats.trim_mean(x, {IQM_CUT}), mean; 95 % CIs: percentile bootstrap over seeds "
    f"(scipy.stats.bootstrap, {N_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}), none with fewer than 2 seeds; "
    "vs true: median(learned) / median(true reward) of the same env, both groups resampled independently, or "
    "the difference median(learned) - median(true) where the true median is not > 0; "
    f"ours: matches where the ratio >= {MATCH_RATIO}"
)

# --- what the paper says (REFERENCE.md: Christiano et al. 2017, synthetic labels) ---------------------------------

#: The 8 MuJoCo tasks of the paper, by base name (``Hopper`` for ``Hopper-v5``).
PAPER_MUJOCO_TASKS = frozenset({"Hopper", "Walker2d", "Swimmer", "HalfCheetah", "Ant", "Reacher", "InvertedPendulum",
                                "InvertedDoublePendulum"})
#: The paper's verdict on those tasks, by label budget. It also ran 350 labels; REFERENCE.md records no verdict
#: for that budget, so none is made up here.
PAPER_MUJOCO: dict[int, str] = {
    700: "paper: nearly matches true-reward RL (all 8 MuJoCo tasks)",
    1400: "paper: slightly better than true-reward RL",
}
#: Atari: the paper's budgets (3.3k / 5.5k / 10k) and its verdict per game over them.
PAPER_ATARI_BUDGETS = frozenset({3300, 5500, 10000})
PAPER_ATARI: dict[str, str] = {
    "BeamRider": "paper: matches or comes close to RL",
    "Pong": "paper: matches or comes close to RL",
    "Seaquest": "paper: near RL but learns slower",
    "Qbert": "paper: near RL but learns slower",
    "Breakout": "paper: does not match RL",
    "SpaceInvaders": "paper: does not match RL",
}  # Enduro: REFERENCE.md gives no verdict for synthetic labels


def paper_verdict(env_id: str, reward: str, budget: int | None) -> str | None:
    """What REFERENCE.md says the paper found for this cell, or None where it says nothing."""
    if reward != "learned" or budget is None:
        return None
    base = task_of(env_id).base  # "" for an env pbrl does not know (a user's own, even if named Hopper)
    if base in PAPER_MUJOCO_TASKS:
        return PAPER_MUJOCO.get(budget)
    if env_id.startswith("ALE/") and budget in PAPER_ATARI_BUDGETS:
        return PAPER_ATARI.get(base)
    return None


# --- statistics ---------------------------------------------------------------------------------------------------


def _scipy_stats() -> Any:
    return require("scipy.stats", "bench", "the statistics of pbrl bench report")


def _iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return _scipy_stats().trim_mean(x, IQM_CUT, axis=axis)


def _median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def _bootstrap_ci(samples: Sequence[np.ndarray], statistic: Callable[..., np.ndarray]) -> list[float] | None:
    """The percentile-bootstrap 95 % CI of ``statistic(*samples, axis)``, each sample resampled on its own; None
    where a sample has fewer than 2 values or the bootstrap distribution is not finite."""
    if any(len(s) < 2 for s in samples):
        return None
    stats = _scipy_stats()
    # scipy >= 1.15 names the generator ``rng``; older versions ``random_state``
    seed_arg = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    result = stats.bootstrap(tuple(samples), statistic, n_resamples=N_RESAMPLES, vectorized=True, paired=False,
                             confidence_level=CONFIDENCE, method="percentile",
                             **{seed_arg: np.random.default_rng(BOOTSTRAP_SEED)})
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return [low, high] if math.isfinite(low) and math.isfinite(high) else None


def summarize_returns(returns: Sequence[float]) -> dict[str, Any]:
    """n, median, IQM, mean and the bootstrap CIs of median and IQM of one cell's per-seed returns."""
    x = np.asarray(returns, dtype=float)  # (n_seeds,)
    if len(x) == 0:
        return {"n": 0, "median": None, "median_ci": None, "iqm": None, "iqm_ci": None, "mean": None}
    return {"n": len(x), "median": float(np.median(x)), "median_ci": _bootstrap_ci([x], _median),
            "iqm": float(_iqm(x)), "iqm_ci": _bootstrap_ci([x], _iqm), "mean": float(np.mean(x))}


def _ratio(learned: np.ndarray, true: np.ndarray, axis: int = -1) -> np.ndarray:
    # a resample whose true median is not > 0 has no ratio: NaN, and a CI that takes it in becomes None
    t = np.median(true, axis=axis)
    return np.where(t > 0, np.median(learned, axis=axis) / np.where(t > 0, t, 1.0), np.nan)


def _difference(learned: np.ndarray, true: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(learned, axis=axis) - np.median(true, axis=axis)


def compare_to_true(learned: Sequence[float], true: Sequence[float]) -> dict[str, Any]:
    """median(learned) / median(true) with its bootstrap CI where the true median is > 0, else the difference.

    Returns ``{"kind": "ratio" | "diff" | None, "value", "ci"}``; kind None where either group is empty.
    """
    lx, tx = np.asarray(learned, dtype=float), np.asarray(true, dtype=float)  # (n_learned,), (n_true,)
    if len(lx) == 0 or len(tx) == 0:
        return {"kind": None, "value": None, "ci": None}
    kind, fn = ("ratio", _ratio) if np.median(tx) > 0 else ("diff", _difference)
    return {"kind": kind, "value": float(fn(lx, tx)), "ci": _bootstrap_ci([lx, tx], fn)}


def our_verdict(vs_true: dict[str, Any]) -> str | None:
    if vs_true["kind"] == "ratio":
        return f"matches (>= {MATCH_RATIO}x)" if vs_true["value"] >= MATCH_RATIO else "below"
    if vs_true["kind"] == "diff":
        return "n/a (true median <= 0: see diff)"
    return None


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
    run_dir = bench_dir / (entry.get("run_dir") or f"trials/{entry['name']}")
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
        if not isinstance(final, (int, float)) or isinstance(final, bool) or not math.isfinite(final):
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


# --- the report ---------------------------------------------------------------------------------------------------


def _axes_key(axes: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    # values as JSON text: an axis may hold a list or a dict (a PPO setting), which a key cannot
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in axes.items()))


def _cell_key(trial: dict[str, Any]) -> tuple[Any, ...]:
    return trial["env_id"], trial["reward"], trial["n_labels_budget"], _axes_key(trial["axes"])


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


def build_report(bench_dir: Path) -> dict[str, Any]:
    """Read the sweep in ``bench_dir`` and compute every cell's statistics: the dict report.json holds.

    Raises ``BenchReportError`` where ``bench_dir`` or its bench.json is missing or garbled.
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

    # --- each learned cell against its env's true-reward baseline ---
    true_keys = [k for k in cells if k[1] == "true"]
    for key, cell in cells.items():
        if cell["reward"] == "true":
            cell.update(baseline=None, vs_true=None, verdict_ours=None, verdict_paper=None)
            continue
        base = _baseline_key(key, true_keys)
        vs_true = compare_to_true(cell["returns"], cells[base]["returns"] if base else [])
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
        "paper": {"source": "REFERENCE.md (Christiano et al. 2017, synthetic labels)",
                  "mujoco_by_budget": PAPER_MUJOCO, "atari_by_game": PAPER_ATARI},
        "cells": list(cells.values()),
        "trials": [{k: v for k, v in t.items() if k != "evals"} | {"has_evals": bool(t["evals"])} for t in trials],
    }


# --- the Markdown table -------------------------------------------------------------------------------------------


def _decimals(*values: float) -> int:
    """One precision for a value and its CI: none from 1,000 up, one from 10, else two."""
    biggest = max(abs(v) for v in values)
    return 0 if biggest >= 1000 else 1 if biggest >= 10 else 2


def _num(v: float | None, decimals: int | None = None) -> str:
    if v is None:
        return "—"
    return f"{v:,.{_decimals(v) if decimals is None else decimals}f}"


def _with_ci(value: float | None, ci: list[float] | None, n: int) -> str:
    if value is None:
        return "— (no finished seed)"
    if ci is None:
        return f"{_num(value)} (no CI: {n} seed)" if n < 2 else f"{_num(value)} (no CI)"
    d = _decimals(value, *ci)
    return f"{_num(value, d)} [{_num(ci[0], d)}, {_num(ci[1], d)}]"


def _vs_true(cell: dict[str, Any]) -> str:
    vs = cell["vs_true"]
    if vs is None:
        return "baseline"
    if vs["kind"] is None:
        return "no true-reward baseline" if cell["baseline"] is None else "— (a group has no finished seed)"
    if vs["kind"] == "ratio":
        ci = " (no CI)" if vs["ci"] is None else f" [{vs['ci'][0]:.2f}, {vs['ci'][1]:.2f}]"
        return f"{vs['value']:.2f}x{ci}"
    d = _decimals(vs["value"], *(vs["ci"] or []))
    ci = " (no CI)" if vs["ci"] is None else f" [{_num(vs['ci'][0], d)}, {_num(vs['ci'][1], d)}]"
    return f"{vs['value']:+,.{d}f} (diff){ci}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _seeds(cell: dict[str, Any]) -> str:
    text = f"{cell['n_finished']}/{cell['n_trials']}"
    return text + (f" ({cell['n_unreadable']} unreadable)" if cell["n_unreadable"] else "")


def _axes(axes: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in axes.items()) or "—"


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: a header (sweep, trials finished, code versions, statistics), one row per cell, then the trials
    that did not finish or could not be read."""
    with_axes = any(c["axes"] for c in report["cells"])
    head = ["env", "reward", "labels (budget)", *(["axes"] if with_axes else []), "labels used", "seeds finished",
            "median [95 % CI]", "IQM [95 % CI]", "mean", "vs true [95 % CI]", "ours", "paper", "wall time (median)"]
    rows = []
    for c in report["cells"]:
        rows.append([
            c["env_id"], c["reward"], "—" if c["n_labels_budget"] is None else f"{c['n_labels_budget']:,}",
            *([_axes(c["axes"])] if with_axes else []),
            "—" if c["n_labels_used_mean"] is None else f"{c['n_labels_used_mean']:,.0f}", _seeds(c),
            _with_ci(c["median"], c["median_ci"], c["n"]), _with_ci(c["iqm"], c["iqm_ci"], c["n"]), _num(c["mean"]),
            _vs_true(c), c["verdict_ours"] or "—", c["verdict_paper"] or "—", _duration(c["wall_time_s_median"]),
        ])
    versions = ", ".join(f"{v} ({n})" for v, n in report["code_versions"].items()) or "none recorded"
    lines = [
        f"# Benchmark report: {report['name'] or Path(report['bench_dir']).name}", "",
        f"Sweep `{report['bench_dir']}`: {report['n_finished']} of {report['n_trials']} trials finished "
        f"({report['n_not_finished']} not finished, {report['n_unreadable']} unreadable). "
        f"Code versions: {versions}.", "",
        f"Statistics: {report['statistics']['summary']}. Paper: {report['paper']['source']}; it also ran 350 "
        "labels on MuJoCo, for which REFERENCE.md records no verdict.", "",
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    for status in ("not finished", "unreadable"):
        missing = [t for t in report["trials"] if t["status"] == status]
        if missing:
            lines += ["", f"{status.capitalize()} ({len(missing)}):", ""]
            lines += [f"- `{t['name']}`: {t['reason']}" for t in missing]
    return "\n".join(lines) + "\n"


# --- the plots ----------------------------------------------------------------------------------------------------


def _figure(n_panels: int) -> tuple[Any, list[Any]]:
    """A figure of one panel per env (up to 3 a row), drawn by Agg without touching pyplot's global backend."""
    require("matplotlib", "bench", "the plots of pbrl bench report")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_cols = min(n_panels, 3)
    n_rows = math.ceil(n_panels / n_cols)
    fig = Figure(figsize=(5.5 * n_cols, 4.2 * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _series_label(cell: dict[str, Any]) -> str:
    base = "true reward" if cell["reward"] == "true" else (
        f"{cell['n_labels_budget']:,} labels" if cell["n_labels_budget"] is not None else cell["reward"])
    return base + (f" ({_axes(cell['axes'])})" if cell["axes"] else "")


def _envs(report: dict[str, Any]) -> list[str]:
    return sorted({c["env_id"] for c in report["cells"]})


SHIFT = 1.07  # the factor between a budget's median, its IQM and its seeds on the log x axis


def plot_label_efficiency(report: dict[str, Any], path: Path) -> None:
    """One panel per env: the final true return against the label budget (log x).

    Each budget shows its median (filled) and IQM (hollow, set a little to the right) with each one's own 95 % CI,
    since an error bar of one statistic around the point of another need not even contain it; the seeds are grey
    dots. The true-reward median is a dashed line with its CI as a band.
    """
    envs = _envs(report)
    fig, axes = _figure(max(len(envs), 1))
    for ax, env in zip(axes, envs, strict=False):
        cells = [c for c in report["cells"] if c["env_id"] == env]
        for i, c in enumerate(c for c in cells if c["reward"] == "true" and c["median"] is not None):
            label = f"true reward median (n={c['n']})" + (f", {_axes(c['axes'])}" if c["axes"] else "")
            ax.axhline(c["median"], color="black", ls="--", lw=1.2, label=label, alpha=1 - 0.3 * i)
            if c["median_ci"]:
                ax.axhspan(*c["median_ci"], color="grey", alpha=0.2, label="true reward median 95 % CI")
        learned = [c for c in cells if c["reward"] != "true" and c["n_labels_budget"] and c["median"] is not None]
        by_axes: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for c in learned:
            by_axes[_axes_key(c["axes"])].append(c)
        for j, (axes_key, series) in enumerate(sorted(by_axes.items(), key=lambda kv: repr(kv[0]))):
            color = f"C{j}"
            suffix = f" ({_axes(series[0]['axes'])})" if axes_key else ""
            x = np.array([c["n_labels_budget"] for c in series], dtype=float)  # (n_budgets,)
            for c in series:  # the seeds a little to the left, the IQM a little to the right of the median
                ax.scatter([c["n_labels_budget"] / SHIFT] * c["n"], c["returns"], s=14, color="grey", alpha=0.7,
                           zorder=2)
            for stat, marker, shift, face in (("median", "o", 1.0, color), ("iqm", "s", SHIFT, "white")):
                y = np.array([c[stat] for c in series])
                err = np.array([[c[stat] - c[f"{stat}_ci"][0], c[f"{stat}_ci"][1] - c[stat]] if c[f"{stat}_ci"]
                                else [np.nan, np.nan] for c in series]).T  # (2, n_budgets)
                ax.errorbar(x * shift, y, yerr=np.clip(err, 0, None), fmt=marker + ("-" if stat == "median" else ""),
                            color=color, mfc=face, capsize=3, zorder=3,
                            label=f"learned {stat.upper() if stat == 'iqm' else stat} + 95 % CI{suffix}")
        budgets = sorted({c["n_labels_budget"] for c in learned})
        if budgets:
            ax.set_xscale("log")
            ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
            ax.minorticks_off()
            ax.set_xlim(budgets[0] / 1.5, budgets[-1] * 1.5)  # room for the shifted points, also for one budget
        low, high = ax.get_ylim()
        if low > 0:  # from zero: a ratio of returns reads right only on an axis that starts there
            ax.set_ylim(0, high * 1.08)  # and room above the true-reward line
        ax.set_title(env)
        ax.set_xlabel("label budget (log scale)")
        ax.set_ylabel("final true return")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no finished trial yet", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"Label efficiency: {report['name'] or Path(report['bench_dir']).name} "
                 "(grey dots: seeds)", fontsize=11)
    fig.savefig(path, dpi=110)


def plot_learning_curves(report: dict[str, Any], path: Path) -> None:
    """One panel per env: eval_true_return_mean against PPO steps from evals.jsonl, the median over a cell's
    finished seeds (the band: their 25-75 % range) per budget, and true reward dashed in black."""
    envs = _envs(report)
    fig, axes = _figure(max(len(envs), 1))
    for ax, env in zip(axes, envs, strict=False):
        cells = [c for c in report["cells"] if c["env_id"] == env and c["curve"]]
        for j, c in enumerate(c for c in cells if c["reward"] != "true"):
            curve = c["curve"]
            ax.plot(curve["num_timesteps"], curve["median"], "-o", ms=3, color=f"C{j}",
                    label=f"{_series_label(c)} (n={max(curve['n_seeds'])})")
            ax.fill_between(curve["num_timesteps"], curve["q25"], curve["q75"], color=f"C{j}", alpha=0.15)
        for c in (c for c in cells if c["reward"] == "true"):
            curve = c["curve"]
            ax.plot(curve["num_timesteps"], curve["median"], "--", color="black",
                    label=f"{_series_label(c)} (n={max(curve['n_seeds'])})")
            ax.fill_between(curve["num_timesteps"], curve["q25"], curve["q75"], color="grey", alpha=0.15)
        if not cells:
            ax.text(0.5, 0.5, "no evals.jsonl in finished trials", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=7, loc="best")
        ax.set_title(env)
        ax.set_xlabel("PPO steps")
        ax.set_ylabel("eval true return (median over seeds)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Learning curves: {report['name'] or Path(report['bench_dir']).name} "
                 "(bands: 25-75 % of seeds)", fontsize=11)
    fig.savefig(path, dpi=110)


# --- the command --------------------------------------------------------------------------------------------------


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write report.md, report.json, label_efficiency.png and learning_curves.png into ``out_dir``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BenchReportError(f"--out {out_dir} is a file: give a directory for the report")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in
             ("report.md", "report.json", "label_efficiency.png", "learning_curves.png")}
    paths["report.md"].write_text(render_markdown(report))
    paths["report.json"].write_text(json.dumps(report, indent=2) + "\n")
    plot_label_efficiency(report, paths["label_efficiency.png"])
    plot_learning_curves(report, paths["learning_curves.png"])
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbrl bench report",
        description="Statistics, a Markdown table and plots of a benchmark sweep written by pbrl bench: per env x "
                    "label budget the final true return over seeds (median, IQM, bootstrap CIs), the ratio to "
                    "true-reward RL, and the paper's verdict beside ours.")
    parser.add_argument("bench_dir", type=Path, metavar="DIR", help="the sweep directory (holds bench.json)")
    parser.add_argument("--out", type=Path, default=None, metavar="OUTDIR",
                        help="where to write report.md, report.json and the PNGs (default: DIR/report)")
    return parser


def main(argv: list[str]) -> int:
    """``pbrl bench report DIR [--out OUTDIR]``: print the table, write the report; 2 on a user's error."""
    args = build_parser().parse_args(argv)
    try:
        report = build_report(args.bench_dir)
        paths = write_report(report, args.out if args.out is not None else args.bench_dir / "report")
    except (UserError, MissingExtra) as exc:
        print(f"pbrl bench report: error: {exc}", file=sys.stderr)
        return 2
    print(render_markdown(report), end="")
    print(f"pbrl bench report: wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
