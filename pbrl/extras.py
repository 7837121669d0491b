"""Optional dependencies (the extras of pyproject.toml): import one, or fail with the line that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message is the one line that says what to install."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` for ``what`` ("the labelling window"), or raise ``MissingExtra`` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f'{what} needs {module.split(".")[0]}: pip install "pbrl[{extra}]"') from None
