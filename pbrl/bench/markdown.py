"""report.md: the Markdown table of ``pbrl bench report``, one row per cell of the dict ``build_report`` returns.

Each value is shown with its 95 % CI at one precision, the comparison with true reward as a ratio or a difference,
and our verdict beside the paper's; the trials that did not finish or could not be read are listed below the table.
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
    ]
    for status in ("not finished", "unreadable"):
        missing = [t for t in report["trials"] if t["status"] == status]
        if missing:
            lines += ["", f"{status.capitalize()} ({len(missing)}):", ""]
            lines += [f"- `{t['name']}`: {t['reason']}" for t in missing]
    return "\n".join(lines) + "\n"
