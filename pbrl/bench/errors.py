"""The errors of ``pbrl bench`` and ``pbrl bench report``.

Each but ``TrialFailed`` is a ``UserError``: one line that says what is wrong and what to do, which the commands
print and end with exit 2. ``TrialFailed`` never reaches the user: a Ray worker raises it so Tune records the trial
as errored, and the sweep reports the trial's own last line instead.
"""

from __future__ import annotations

from pbrl.errors import UserError

__all__ = ["BenchDirError", "BenchError", "BenchReportError", "RayMissing", "SpecError", "TrialFailed"]


class SpecError(UserError):
    """A bench spec (file or flags) that does not describe a grid, with what to write instead."""


class BenchDirError(UserError):
    """A bench directory that cannot take this grid (its bench.json describes other trials)."""


class BenchError(UserError):
    """pbrl bench cannot run as asked (flags that do not fit together)."""


class RayMissing(BenchError):
    """Ray Tune is not installed; the message is the line that installs it."""


class TrialFailed(RuntimeError):
    """A trial's ``pbrl train`` ended without its metrics; raised in the Ray worker so Tune records an error."""


class BenchReportError(UserError):
    """A sweep directory that cannot be reported on (missing, or its bench.json garbled), with what to check."""
