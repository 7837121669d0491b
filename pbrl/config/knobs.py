"""What a knob is: one dataclass field with its default, its doc (the ``--help`` line), its flag and its check.

Every knob of a run is declared once, in ``pbrl.config.tree``, with :func:`knob`. A knob has a **flat name**, the
one the command line, ``config.json``, bench specs and the env-family registry use (``reward_lr``), which is the
field's name unless the field is declared with ``name=`` (the field ``lr`` of the reward-model group); its flag is
``--`` plus the flat name in dashes unless declared with ``flag=``. Checks are named in the field's metadata and
turned into one line by :func:`problem`.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, field
from typing import Any

from pbrl.errors import UserError


class ConfigError(UserError):
    """A config value that cannot work, with what to do instead."""


#: The checks a knob can name: a test of the value and what the one-line error says when it fails.
CHECKS = {
    "positive": (lambda v: v > 0, "must be a positive number"),  # NaN fails too
    "nonneg": (lambda v: 0 <= v < math.inf, "must be >= 0"),
    "two_or_more": (lambda v: v >= 2, "must be >= 2"),
    "share": (lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
    "share_below_1": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    "discount": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
    "rationality": (lambda v: v > 0, "must be > 0 (inf for a perfect oracle)"),
    "seed": (lambda v: 0 <= v < 2**31, f"must be a whole number from 0 to {2**31 - 1}"),
}


def knob(default: Any, help: str, *, name: str | None = None, flag: str | None = None, check: str | None = None,
         choices: tuple[str, ...] | None = None, cli: bool = True, resume: bool = False) -> Any:
    """A config field: ``default`` and ``help`` (the ``--help`` line); ``name``, the flat name where it is not the
    field's; ``flag``, where it is not ``--flat-name``; ``check``, a key of ``CHECKS``; ``choices``, the values
    allowed; ``cli=False`` for values with no flag of their own; ``resume=True`` for what ``--resume`` may change."""
    assert check is None or check in CHECKS, check
    meta = {"help": help, "name": name, "flag": flag, "check": check, "choices": choices, "cli": cli,
            "resume": resume}
    return field(default=default, metadata=meta)


def flat_name(f: Field) -> str:
    return f.metadata.get("name") or f.name


def flag_of(f: Field) -> str:
    return f.metadata.get("flag") or "--" + flat_name(f).replace("_", "-")


def default_of(f: Field) -> Any:
    return None if f.default is MISSING else f.default


def problem(value: Any, f: Field, label: str) -> str | None:
    """What is wrong with ``value`` for the knob ``f`` as one line starting with ``label``, or None."""
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        return f"{label} must be one of {', '.join(choices)}, got {value!r}"
    check = f.metadata.get("check")
    if check is not None:
        test, text = CHECKS[check]
        if not test(value):
            return f"{label} {text}, got {value}"
    return None
