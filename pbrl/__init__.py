"""pbrl: preference-based reinforcement learning on Gymnasium, after Christiano et al. (2017).

The public pieces, importable from here (``docs/python_api.md``): ``TrainConfig`` (a run's settings),
``PreferenceRun`` (the loop), ``RunDir`` (a run's directory), ``Labeler`` (the protocol every labeler answers by),
``SyntheticOracle`` (the labeler on the true return), ``RewardEnsemble`` (the reward models), ``PreferenceStore``
(labels and segments on SQLite) and ``make_env`` (an env with the wrappers ``pbrl train`` applies). They load on
first use, so ``import pbrl`` stays cheap for the command line. The core never imports the UI (``pbrl.ui``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {"TrainConfig": "pbrl.config", "PreferenceRun": "pbrl.loop", "RunDir": "pbrl.run_dir",
           "Labeler": "pbrl.labelers", "SyntheticOracle": "pbrl.labelers", "RewardEnsemble": "pbrl.reward",
           "PreferenceStore": "pbrl.store", "make_env": "pbrl.envs"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pbrl' has no attribute {name!r}")
