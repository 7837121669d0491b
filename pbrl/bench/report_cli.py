"""``pbrl bench report DIR``: the statistics, the Markdown table and the plots of a sweep ``pbrl bench`` wrote.

``main`` builds the report (``pbrl.bench.report``), writes report.md, report.json and the two PNGs (``write_report``)
and prints the table; a missing or garbled sweep, or a missing extra (SciPy, matplotlib), ends in one line and
exit 2. ``pbrl bench report`` reaches it through ``pbrl.bench.cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pbrl.bench.errors import BenchReportError
from pbrl.bench.markdown import render_markdown
from pbrl.bench.plots import plot_label_efficiency, plot_learning_curves
from pbrl.bench.report import build_report
from pbrl.errors import UserError
from pbrl.extras import MissingExtra

__all__ = ["build_parser", "main", "write_report"]


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
                    "true-reward RL (where its returns are not positive, the share of its gain over a uniform-random "
                    "policy, whose return is cached in DIR/random_policy.json), and the paper's verdict beside ours.")
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

