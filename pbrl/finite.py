"""Catching NaN and infinity where they enter a run, with one line that says where.

A NaN observation or reward does not fail where it appears: it is fitted (NaN losses beside a perfect accuracy),
checkpointed, and much later PPO dies inside torch or sqlite refuses a NULL return. ``RolloutRecorder`` checks
every step it records, ``RewardTrainer`` its dataset and its loss, the reward ensemble its normalisation
statistics, ``RelabelingPPO`` the learned reward, and the loop the ensemble's parameters before a checkpoint; all
raise ``NonFiniteError``. The checks on the hot path are one ``np.isfinite(x).all()`` per array; the helpers here
that locate the first bad value run only once something has failed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: What ``assert_finite_parameters`` says by default: the loop checks the ensemble so before it saves it.
PARAMETERS_MESSAGE = "the reward model's parameters became non-finite after fitting"


class NonFiniteError(ValueError):
    """A NaN or an infinity where a run needs finite numbers; the message is one line naming where it appeared."""


def can_be_nonfinite(dtype: np.dtype | torch.dtype) -> bool:
    """Floats can hold NaN and inf; integers (uint8 frames) and booleans cannot."""
    if isinstance(dtype, torch.dtype):
        return dtype.is_floating_point
    return bool(np.issubdtype(dtype, np.inexact))


def first_nonfinite(x: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN or inf in ``x`` (C order), or None when every value is finite."""
    bad = np.flatnonzero(~np.isfinite(x))
    if not len(bad):
        return None
    return tuple(int(i) for i in np.unravel_index(bad[0], np.shape(x)))


def _kind(value: float) -> str:
    if np.isnan(value):
        return "NaN"
    return "inf" if value > 0 else "-inf"


def describe_nonfinite(name: str, x: np.ndarray | float) -> str:
    """``"reward is inf"``, ``"observation has NaN at index 3"``, ``"... at index (0, 2)"`` and, when there are
    more, how many: what a message says about the non-finite values of ``x``."""
    x = np.asarray(x)
    where = first_nonfinite(x)
    if where is None:
        return f"{name} is finite"
    if x.ndim == 0:
        return f"{name} is {_kind(x.item())}"
    n_bad = int((~np.isfinite(x)).sum())
    more = f" ({n_bad - 1} more non-finite)" if n_bad > 1 else ""
    return f"{name} has {_kind(x[where].item())} at index {where[0] if len(where) == 1 else where}{more}"


def parameters_are_finite(module: nn.Module) -> bool:
    """Whether every floating parameter and buffer of ``module`` is finite; one device sync in all."""
    flags = [torch.isfinite(t).all() for t in (*module.parameters(), *module.buffers()) if can_be_nonfinite(t.dtype)]
    return bool(torch.stack(flags).all().item()) if flags else True


def describe_nonfinite_parameters(module: nn.Module) -> str | None:
    """``"net.weights.0 has NaN at index (1, 0, 3)"`` for the first non-finite parameter or buffer, or None."""
    for name, t in (*module.named_parameters(), *module.named_buffers()):
        if can_be_nonfinite(t.dtype) and not bool(torch.isfinite(t).all()):
            return describe_nonfinite(name, t.detach().cpu().double().numpy())
    return None


def assert_finite_parameters(module: nn.Module, message: str = PARAMETERS_MESSAGE) -> None:
    """Raise ``NonFiniteError(f"{message} ({which tensor, which value})")`` unless ``module`` is finite throughout.

    The loop calls it before it saves the reward ensemble, so that nothing non-finite is ever checkpointed."""
    if not parameters_are_finite(module):
        raise NonFiniteError(f"{message} ({describe_nonfinite_parameters(module)})")
