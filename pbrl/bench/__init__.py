"""``pbrl bench``: a grid of ordinary ``pbrl train`` runs, executed by Ray Tune, resumed by running it again; and
``pbrl bench report``, the statistics, table and plots of its results.

A spec (a TOML file, or flags) names envs, rewards, label budgets, seeds and optional extra axes; each point of the
grid is a *trial*: an ordinary run directory ``DIR/trials/<name>`` trained by a ``pbrl train`` subprocess, so a
trial that crashes or is killed never takes the sweep down, and ``pbrl eval/status/video --run-dir`` work on it.

The sweep: ``spec`` checks a spec into a grid, ``grid`` expands it into trials, ``directory`` is the bench directory
(its layout, bench.json, each trial's state), ``runner`` runs the trials by Ray Tune, ``progress`` prints what
happens, ``cli`` is the command. The report: ``report`` reads a sweep into cells, ``stats`` and ``paper`` give their
statistics and verdicts (``random_policy`` the random-policy return that negative returns are normalised by),
``markdown`` and ``plots`` write them, ``report_cli`` is the command. Ray, SciPy and matplotlib (the ``bench`` extra)
are imported only when a grid runs or a report is computed, Gymnasium and SB3 only when a random policy is evaluated.
"""

from pbrl.bench.cli import main

__all__ = ["main"]
