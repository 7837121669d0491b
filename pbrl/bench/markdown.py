"""report.md: the Markdown table of ``pbrl bench report``, one row per cell of the dict ``build_report`` returns.

Each value is shown with its 95 % CI at one precision, the comparison with true reward as a ratio, a share of true
reward's gain over a random policy, or a difference, and our verdict beside the paper's. Below the table: each
random-policy return that comparison used (or why an env has none), and the trials that did not finish or could not
be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["axes_text", "render_markdown"]


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
    if vs["kind"] in ("ratio", "normalised"):
        ci = " (no CI)" if vs["ci"] is None else f" [{vs['ci'][0]:.2f}, {vs['ci'][1]:.2f}]"
        return f"{vs['value']:.2f}x" + (" of (true - random)" if vs["kind"] == "normalised" else "") + ci
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


def _random_policy_lines(report: dict[str, Any]) -> list[str]:
    """The note under the table: each env's random-policy return R and how it was measured, or why it has none."""
    entries = report.get("random_policy") or {}
    if not entries:
        return []
    lines = ["", "Random-policy return R, for the envs whose true-reward median is not > 0 (vs true \"x of (true - "
             "random)\" is (median(learned) - R) / (median(true) - R)): the mean true return of uniform random "
             "actions on the final evaluation's episodes of the env's true-reward trial of lowest seed, with its "
             "number of episodes, episode length and env kwargs (cached in random_policy.json of the sweep).", ""]
    for env_id, r in entries.items():
        if r.get("mean") is None:
            lines.append(f"- {env_id}: no R, so vs true is the difference: the random policy could not be evaluated "
                         f"({r.get('reason')})")
            continue
        length = "the env's time limit" if r.get("eval_steps") is None else f"{r['eval_steps']:,} steps"
        kwargs = f", env kwargs {r['env_kwargs']}" if r.get("env_kwargs") else ""
        text = (f"- {env_id}: R = {_num(r['mean'])} (std {_num(r['std'])}) over {r['n_episodes']} episodes of "
                f"{length}{kwargs}; env seed {r['env_seed']:,} (the final evaluation's), action seed "
                f"{r['action_seed']}; from `{r['config']}`")
        used = [c for c in report["cells"] if c["env_id"] == env_id and (c["vs_true"] or {}).get("kind")]
        if used and all(c["vs_true"]["kind"] == "diff" for c in used):
            text += "; not used: the true-reward median is not above R, so vs true is the difference"
        lines.append(text + (f" ({r['cache_error']})" if r.get("cache_error") else ""))
    return lines


def axes_text(axes: dict[str, Any]) -> str:
    """A cell's extra axes as ``KEY=VALUE, ...`` (a dash where it has none), in the table and the plots' legends."""
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
            *([axes_text(c["axes"])] if with_axes else []),
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
        *_random_policy_lines(report),
    ]
    for status in ("not finished", "unreadable"):
        missing = [t for t in report["trials"] if t["status"] == status]
        if missing:
            lines += ["", f"{status.capitalize()} ({len(missing)}):", ""]
            lines += [f"- `{t['name']}`: {t['reason']}" for t in missing]
    return "\n".join(lines) + "\n"
