"""The PNGs of ``pbrl bench report``: label efficiency (final return against label budget) and learning curves.

Both draw one panel per env from the dict ``build_report`` returns, on an Agg canvas of their own (pyplot's global
backend is left alone); matplotlib is imported on first use (the ``bench`` extra).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.bench.markdown import axes_text
from pbrl.bench.report import axes_key
from pbrl.extras import require

__all__ = ["plot_label_efficiency", "plot_learning_curves"]


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
    return base + (f" ({axes_text(cell['axes'])})" if cell["axes"] else "")


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
            label = f"true reward median (n={c['n']})" + (f", {axes_text(c['axes'])}" if c["axes"] else "")
            ax.axhline(c["median"], color="black", ls="--", lw=1.2, label=label, alpha=1 - 0.3 * i)
            if c["median_ci"]:
                ax.axhspan(*c["median_ci"], color="grey", alpha=0.2, label="true reward median 95 % CI")
        learned = [c for c in cells if c["reward"] != "true" and c["n_labels_budget"] and c["median"] is not None]
        by_axes: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for c in learned:
            by_axes[axes_key(c["axes"])].append(c)
        for j, (key, series) in enumerate(sorted(by_axes.items(), key=lambda kv: repr(kv[0]))):
            color = f"C{j}"
            suffix = f" ({axes_text(series[0]['axes'])})" if key else ""
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
        else:  # no budget to place: no numbers on the axis, and say why the panel holds only the baseline
            ax.set_xticks([])
            if any(c["reward"] != "true" for c in cells):
                ax.text(0.5, 0.5, "no learned-reward cell finished yet", ha="center", va="center",
                        transform=ax.transAxes, color="grey")
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


def steps_text(steps: float, _pos: object = None) -> str:
    """A step count as a short tick label: 0, 500, 250k, 1M, 1.5M (matplotlib's own labels for 100k-500k run into
    each other)."""
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if abs(steps) >= size:
            return f"{steps / size:.4g}{unit}"
    return f"{steps:.4g}"


def plot_learning_curves(report: dict[str, Any], path: Path) -> None:
    """One panel per env: eval_true_return_mean against PPO steps from evals.jsonl, the median over a cell's
    finished seeds (the band: their 25-75 % range) per budget, and true reward dashed in black."""
    envs = _envs(report)
    fig, axes = _figure(max(len(envs), 1))
    from matplotlib.ticker import FuncFormatter

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
        ax.xaxis.set_major_formatter(FuncFormatter(steps_text))
        ax.set_ylabel("eval true return (median over seeds)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Learning curves: {report['name'] or Path(report['bench_dir']).name} "
                 "(bands: 25-75 % of seeds)", fontsize=11)
    fig.savefig(path, dpi=110)
