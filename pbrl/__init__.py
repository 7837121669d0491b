"""pbrl: preference-based reinforcement learning on Gymnasium, after Christiano et al. (2017).

The core (this package) never imports the UI. The public pieces, importable from here: ``TrainConfig`` (a run's
settings), ``PreferenceRun`` (the loop), ``RunDir`` (a run's directory), ``Labeler`` (the protocol a labeler
answers by), ``SyntheticOracle``, ``RewardEnsemble`` and ``PreferenceStore``; env construction lives in
``pbrl.envs`` (``make_env``). They load on first use, so ``import pbrl`` stays cheap for the command line.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {"TrainConfig": "pbrl.config", "PreferenceRun": "pbrl.loop", "RunDir": "pbrl.run_dir",
           "Labeler": "pbrl.labelers", "SyntheticOracle": "pbrl.labelers", "RewardEnsemble": "pbrl.reward_model",
           "PreferenceStore": "pbrl.store"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pbrl' has no attribute {name!r}")
