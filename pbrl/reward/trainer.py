"""Fitting the reward ensemble to labelled comparisons: bagging, a held-out validation split and adaptive L2.

``RewardTrainer.fit`` takes a ``PreferenceDataset`` (pairs of segments with labels and a fixed train/val flag),
draws one bootstrap resample of the training pairs per member, runs a few epochs of Bradley-Terry cross-entropy,
and after each epoch moves the L2 coefficient so that validation loss stays within 1.1-1.5x training loss (the
epoch's own minibatch losses: measuring the training pairs again cost as much as the epoch), never above ``l2_max``
(unbounded, it wound up and flattened the nets). Before the last epoch the validation loss is measured with each pair
by one member, after it by every member on every pair (the loss and accuracy the fit reports). A
dataset holding NaN or inf, or a loss that becomes non-finite, raises ``NonFiniteError`` instead of a fit that reports
NaN losses beside a perfect accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pbrl.config.tree import RewardConfig
from pbrl.finite import (
    NonFiniteError,
    assert_finite_parameters,
    describe_nonfinite,
    first_nonfinite,
    parameters_are_finite,
)
from pbrl.reward.base import EnsembleBase, PairSource, bradley_terry_loss
from pbrl.reward.dataset import PreferenceDataset


@dataclass
class TrainerConfig:
    """How the reward ensemble is fitted."""

    lr: float = RewardConfig.lr
    batch_size: int = RewardConfig.batch_size
    l2_init: float = RewardConfig.l2_init
    l2_min: float = 1e-7
    l2_max: float = RewardConfig.l2_max
    l2_factor: float = 1.5
    val_train_ratio_low: float = 1.1
    val_train_ratio_high: float = 1.5
    # minibatches per epoch at most (0 = the whole bootstrap); losses then on as many pairs
    max_batches: int = RewardConfig.fit_max_batches


def _tie_share(data: PreferenceDataset, idx: np.ndarray) -> float:
    return float(np.mean(data.labels[idx] == 0.5)) if len(idx) else float("nan")


@dataclass
class FitStats:
    train_loss: float  # the last epoch's mean minibatch loss (each member on its own bootstrap pairs, L2 left out)
    val_loss: float
    val_accuracy: float  # over the decided validation labels (NaN when every one is a tie)
    l2: float
    n_train: int
    n_val: int
    val_tie_share: float = float("nan")  # validation labels that are ties (0.5): beside the accuracy, which skips them

    def logged(self) -> dict[str, float]:
        """What a run logs of the fit (``reward_model/KEY``) and keeps in its loop state."""
        return {"train_loss": self.train_loss, "val_loss": self.val_loss, "val_accuracy": self.val_accuracy,
                "val_tie_share": self.val_tie_share, "l2": self.l2}


class RewardTrainer:
    """Fits a reward ensemble (of any kind); owns its optimiser and the adaptive L2 coefficient."""

    def __init__(self, model: EnsembleBase, cfg: TrainerConfig, rng: np.random.Generator):
        self.model = model
        self.cfg = cfg
        self.rng = rng
        self.l2 = cfg.l2_init
        self.optimizer = torch.optim.Adam(model.net.parameters(), lr=cfg.lr)
        self.last_bootstrap: np.ndarray | None = None  # (n_members, n_train) indices of the last fit

    def _member_losses(self, batch, labels: torch.Tensor) -> torch.Tensor:
        """Each member's pairs (the model's pair source indexed by (M, P)), labels (M, P) -> BT loss (M, P)."""
        r = self.model.member_pair_returns(batch)  # (M, P, 2)
        return bradley_terry_loss(r[..., 0], r[..., 1], labels)

    @torch.no_grad()
    def evaluate(self, data: PreferenceDataset, *groups: np.ndarray, source: PairSource | None = None
                 ) -> list[tuple[float, float]]:
        """Mean BT loss over members and accuracy of the ensemble's mean prediction on each group of pairs (one
        pass over all of them), read through ``source`` (the model's ``pair_source`` of ``data``, built here when
        not given)."""
        out = [(float("nan"), float("nan"))] * len(groups)
        idx = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
        if len(idx) == 0:
            return out
        source = source if source is not None else self.model.pair_source(data.obs, data.acts)
        r = self.model.pair_returns(source, idx)  # (M, P, 2)
        labels = torch.as_tensor(data.labels[idx], dtype=torch.float32, device=r.device)
        losses = bradley_terry_loss(r[..., 0], r[..., 1], labels).mean(0).cpu().numpy()  # (P,)
        diff = (r[..., 0] - r[..., 1]).mean(0).cpu().numpy()  # (P,)
        start = 0
        for g, group in enumerate(groups):
            part = slice(start, start + len(group))
            start += len(group)
            if len(group) == 0:
                continue
            decided = data.labels[group] != 0.5
            acc = (float(np.mean((diff[part][decided] > 0) == (data.labels[group][decided] > 0.5))) if decided.any()
                   else float("nan"))
            out[g] = (float(losses[part].mean()), acc)
        return out

    def fit(self, data: PreferenceDataset, n_epochs: int) -> FitStats:
        """Run ``n_epochs`` over a fresh bootstrap resample per member; adapt L2 after each epoch.

        Raises ``NonFiniteError`` before fitting when ``data`` holds NaN or inf, and when the training loss or the
        parameters become non-finite (then the model is spoilt: keep the last checkpoint)."""
        data.check_finite()
        train_idx = np.flatnonzero(~data.is_val)
        val_idx = np.flatnonzero(data.is_val)
        n_members = self.model.n_members
        if len(train_idx) == 0:
            [(loss, acc)] = self.evaluate(data, val_idx)
            return FitStats(float("nan"), loss, acc, self.l2, 0, len(val_idx), _tie_share(data, val_idx))
        boot = np.stack([self.rng.choice(train_idx, size=len(train_idx), replace=True) for _ in range(n_members)])
        self.last_bootstrap = boot  # (n_members, n_train)
        with torch.no_grad():  # inputs as the model takes them, indexable by (M, P) pair indices
            source = self.model.pair_source(data.obs, data.acts)
        labels_all = torch.as_tensor(data.labels, dtype=torch.float32, device=self.model.device)
        bs = min(self.cfg.batch_size, len(train_idx))
        was_finite = parameters_are_finite(self.model)
        self.model.train()
        train_loss, val_loss, val_acc = float("nan"), float("nan"), float("nan")
        try:
            for epoch in range(n_epochs):
                order = np.stack([self.rng.permutation(row) for row in boot])  # (M, n_train)
                starts = range(0, order.shape[1] - bs + 1, bs)[: self.cfg.max_batches or None]
                losses, fits = [], []  # read once an epoch, not once a batch: a GPU keeps running ahead of the host
                for start in starts:
                    batch = torch.as_tensor(order[:, start : start + bs], device=self.model.device)  # (M, bs)
                    fit = self._member_losses(source[batch], labels_all[batch]).mean(dim=1).sum()
                    loss = fit + self.l2 * self.model.net.l2().sum()
                    losses.append(loss.detach())
                    fits.append(fit.detach())
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                self._check_losses(torch.stack(losses).cpu().numpy(), epoch, n_epochs, was_finite)
                # the training loss is the epoch's own: each member on its bootstrap pairs as it fitted them (no
                # second pass over them; measuring it again cost as much as the epoch). Validation is measured:
                # in full (every member on every pair, and the ensemble's accuracy) after the last epoch, and before
                # it, where only L2 needs the loss, each pair by one member (a third of the pass for 3 members)
                train_loss = torch.stack(fits).sum().item() / (len(fits) * n_members)
                if epoch == n_epochs - 1 or len(val_idx) < 2 * n_members:
                    [(val_loss, val_acc)] = self.evaluate(data, self._sample(val_idx), source=source)
                else:
                    val_loss = self.split_val_loss(self._sample(val_idx), source, labels_all, bs)
                self.adapt_l2(train_loss, val_loss)
        finally:  # a raise leaves no dropout on
            self.model.eval()
        assert_finite_parameters(self.model, "the reward model's parameters became non-finite during the fit")
        return FitStats(train_loss, val_loss, val_acc, self.l2, len(train_idx), len(val_idx), _tie_share(data, val_idx))

    @torch.no_grad()
    def split_val_loss(self, idx: np.ndarray, source: PairSource, labels: torch.Tensor, chunk: int) -> float:
        """The mean BT loss over members and pairs ``idx``, estimated with each pair measured by one member: a fresh
        random split of ``idx`` into equal parts, one a member (the remainder of ``len(idx) / M`` left out), ``chunk``
        pairs a member at a time. Unbiased for what ``evaluate`` measures, at ``1 / M`` of its cost."""
        m = self.model.n_members
        k = len(idx) // m
        parts = self.rng.permutation(idx)[: k * m].reshape(m, k)  # (M, k)
        total = 0.0
        for start in range(0, k, chunk):
            batch = torch.as_tensor(parts[:, start : start + chunk], device=self.model.device)
            total += self._member_losses(source[batch], labels[batch]).sum().item()
        return total / (k * m)

    def _check_losses(self, losses: np.ndarray, epoch: int, n_epochs: int, was_finite: bool) -> None:
        """Raise on the first non-finite minibatch loss of an epoch: losses (n_batches,)."""
        where = first_nonfinite(losses)
        if where is None:
            return
        b = where[0]
        why = ("the fit diverged from finite parameters and pairs; a lower reward learning rate may help" if was_finite
               else "the reward model's parameters were non-finite before the fit")
        raise NonFiniteError(f"the reward model's training {describe_nonfinite('loss', losses[b])} at epoch "
                             f"{epoch + 1} of {n_epochs}, batch {b + 1} of {len(losses)}: {why}")

    def _sample(self, idx: np.ndarray) -> np.ndarray:
        """With ``max_batches``, at most as many pairs as one epoch fits; otherwise all of ``idx``."""
        cap = self.cfg.max_batches * self.cfg.batch_size
        return np.sort(self.rng.choice(idx, cap, replace=False)) if cap and len(idx) > cap else idx

    def adapt_l2(self, train_loss: float, val_loss: float) -> None:
        """More L2 when validation loss runs away from training loss, less when they are too close."""
        if not (np.isfinite(train_loss) and np.isfinite(val_loss)) or train_loss <= 0:
            return
        ratio = val_loss / train_loss
        if ratio > self.cfg.val_train_ratio_high:
            self.l2 = min(self.l2 * self.cfg.l2_factor, self.cfg.l2_max)
        elif ratio < self.cfg.val_train_ratio_low:
            self.l2 = max(self.l2 / self.cfg.l2_factor, self.cfg.l2_min)
