"""Tests for ``pbrl.reward.trainer``: bagging, adaptive L2, that fitting learns a simple true reward, and that it
stops with one line on NaN or inf."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pbrl.finite import NonFiniteError
from pbrl.reward import PreferenceDataset, RewardEnsemble, RewardModelConfig, RewardTrainer, TrainerConfig
from pbrl.reward.base import bradley_terry_loss
from pbrl.reward.frames import PackedObs, PackedPairs

OBS_DIM, ACT_DIM, SEG_LEN = 2, 1, 5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dataset(n_pairs: int, val_fraction: float, rng: np.random.Generator) -> PreferenceDataset:
    """Pairs whose true reward is the first observation coordinate; label 1 when the first returns more."""
    obs = rng.normal(size=(n_pairs, 2, SEG_LEN, OBS_DIM)).astype(np.float32)
    acts = rng.normal(size=(n_pairs, 2, SEG_LEN, ACT_DIM)).astype(np.float32)
    returns = obs[..., 0].sum(-1)  # (N, 2)
    labels = (returns[:, 0] > returns[:, 1]).astype(np.float64)
    is_val = np.zeros(n_pairs, dtype=bool)
    is_val[rng.permutation(n_pairs)[: int(round(val_fraction * n_pairs))]] = True
    return PreferenceDataset(obs=obs, acts=acts, labels=labels, is_val=is_val)


def _trainer(n_members: int = 3, seed: int = 0, **cfg) -> RewardTrainer:
    torch.manual_seed(seed)
    model_cfg = RewardModelConfig(obs_dim=OBS_DIM, act_dim=ACT_DIM, n_members=n_members, hidden=16)
    model = RewardEnsemble(model_cfg)
    return RewardTrainer(model, TrainerConfig(**cfg), np.random.default_rng(seed))


# --- bagging ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n_members", "n_pairs"), [(2, 20), (3, 40), (5, 60)])
def test_each_member_gets_its_own_bootstrap_of_training_pairs(n_members, n_pairs):
    rng = np.random.default_rng(0)
    data = _dataset(n_pairs, 0.25, rng)
    trainer = _trainer(n_members=n_members, batch_size=8)
    trainer.fit(data, n_epochs=1)
    boot = trainer.last_bootstrap
    train_idx = np.flatnonzero(~data.is_val)
    assert boot is not None and boot.shape == (n_members, len(train_idx))
    # only training pairs, never validation pairs
    assert np.isin(boot, train_idx).all()
    assert not np.isin(boot, np.flatnonzero(data.is_val)).any()
    # each member's resample is different from every other member's
    for i in range(n_members):
        for j in range(i + 1, n_members):
            assert not np.array_equal(np.sort(boot[i]), np.sort(boot[j]))
    # a resample with replacement repeats some pairs
    assert any(len(np.unique(row)) < len(row) for row in boot)


def test_new_bootstrap_each_fit():
    rng = np.random.default_rng(1)
    data = _dataset(30, 0.2, rng)
    trainer = _trainer(batch_size=8)
    trainer.fit(data, n_epochs=1)
    first = trainer.last_bootstrap.copy()
    trainer.fit(data, n_epochs=1)
    assert not np.array_equal(first, trainer.last_bootstrap)


def test_fit_without_training_pairs_reports_nan_and_trains_nothing():
    rng = np.random.default_rng(2)
    data = _dataset(10, 1.0, rng)  # every pair is validation
    trainer = _trainer()
    before = [p.detach().clone() for p in trainer.model.parameters()]
    stats = trainer.fit(data, n_epochs=3)
    assert stats.n_train == 0 and stats.n_val == 10
    assert math.isnan(stats.train_loss)
    assert math.isfinite(stats.val_loss)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


# --- adaptive L2 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("train_loss", "val_loss", "l2_init", "expected"),
    [
        (1.0, 2.0, 1e-3, 1.5e-3),  # ratio 2 > 1.5: more L2
        (1.0, 1.6, 1e-3, 1.5e-3),
        (1.0, 1.0, 1e-3, 1e-3 / 1.5),  # ratio 1 < 1.1: less L2
        (1.0, 0.5, 1e-3, 1e-3 / 1.5),
        (1.0, 1.3, 1e-3, 1e-3),  # in between: unchanged
        (1.0, 1.1, 1e-3, 1e-3),  # the band's edges count as inside
        (1.0, 1.5, 1e-3, 1e-3),
        (1.0, 3.0, 9.0, 10.0),  # clamped at l2_max
        (1.0, 3.0, 10.0, 10.0),
        (1.0, 1.0, 1.2e-7, 1e-7),  # clamped at l2_min
        (1.0, 1.0, 1e-7, 1e-7),
        (float("nan"), 2.0, 1e-3, 1e-3),  # non-finite: left alone
        (1.0, float("nan"), 1e-3, 1e-3),
        (float("inf"), 1.0, 1e-3, 1e-3),
        (1.0, float("inf"), 1e-3, 1e-3),
        (0.0, 1.0, 1e-3, 1e-3),  # zero training loss: no ratio, left alone
    ],
)
def test_adapt_l2(train_loss, val_loss, l2_init, expected):
    trainer = _trainer(l2_init=l2_init, l2_max=10.0)
    trainer.adapt_l2(train_loss, val_loss)
    assert trainer.l2 == pytest.approx(expected, rel=1e-12)


def test_adapt_l2_repeated_stays_within_bounds():
    trainer = _trainer(l2_init=1e-3)
    for _ in range(100):
        trainer.adapt_l2(1.0, 5.0)
    assert trainer.l2 == pytest.approx(trainer.cfg.l2_max)
    for _ in range(200):
        trainer.adapt_l2(1.0, 1.0)
    assert trainer.l2 == pytest.approx(trainer.cfg.l2_min)


def _identical_members(trainer: RewardTrainer) -> None:
    with torch.no_grad():
        for p in trainer.model.net.parameters():
            p.copy_(p[:1].expand_as(p))


@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_the_split_validation_loss_equals_the_full_one_when_the_members_agree(chunk):
    # each pair measured by one member is the full measurement when every member is the same net
    data = _dataset(30, 0.5, np.random.default_rng(4))
    trainer = _trainer(n_members=3)
    _identical_members(trainer)
    val = np.flatnonzero(data.is_val)  # 15 pairs: 5 a member
    source = trainer.model.pair_source(data.obs, data.acts)
    labels = torch.as_tensor(data.labels, dtype=torch.float32)
    [(full, _)] = trainer.evaluate(data, val, source=source)
    assert trainer.split_val_loss(val, source, labels, chunk) == pytest.approx(full, rel=1e-5)


def test_the_split_validation_loss_averages_to_the_full_one_over_splits():
    # members that differ: one split is an estimate, unbiased over the random splits
    data = _dataset(60, 0.5, np.random.default_rng(5))
    trainer = _trainer(n_members=3, seed=5)
    val = np.flatnonzero(data.is_val)  # 30 pairs, so every split uses all of them
    source = trainer.model.pair_source(data.obs, data.acts)
    labels = torch.as_tensor(data.labels, dtype=torch.float32)
    [(full, _)] = trainer.evaluate(data, val, source=source)
    splits = [trainer.split_val_loss(val, source, labels, 64) for _ in range(400)]
    assert np.std(splits) > 0  # the members do differ
    assert np.mean(splits) == pytest.approx(full, rel=0.02)


def test_a_fit_measures_every_member_on_every_validation_pair_only_after_its_last_epoch(monkeypatch):
    data = _dataset(60, 0.5, np.random.default_rng(6))
    trainer = _trainer(batch_size=8)
    calls = []
    full, split = trainer.evaluate, trainer.split_val_loss
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: (calls.append("full"), full(*a, **k))[1])
    monkeypatch.setattr(trainer, "split_val_loss", lambda *a, **k: (calls.append("split"), split(*a, **k))[1])
    stats = trainer.fit(data, n_epochs=5)
    assert calls == ["split"] * 4 + ["full"]
    [(loss, acc)] = full(data, np.flatnonzero(data.is_val))
    assert (stats.val_loss, stats.val_accuracy) == pytest.approx((loss, acc))  # the report is the full measurement


# --- learning ---------------------------------------------------------------------------------------------

def test_fit_learns_simple_reward():
    rng = np.random.default_rng(3)
    data = _dataset(120, 0.25, rng)
    trainer = _trainer(seed=3, lr=3e-3, batch_size=30)
    [(_, acc_before)] = trainer.evaluate(data, np.flatnonzero(data.is_val))
    stats = trainer.fit(data, n_epochs=200)
    assert stats.n_train == 90 and stats.n_val == 30
    assert stats.val_accuracy >= 0.9
    assert stats.val_accuracy > acc_before
    assert stats.train_loss < math.log(2.0)
    assert trainer.cfg.l2_min <= stats.l2 <= trainer.cfg.l2_max
    # the learned reward ranks fresh segments like the true one
    fresh = _dataset(200, 0.0, np.random.default_rng(4))
    [(_, fresh_acc)] = trainer.evaluate(fresh, np.arange(200))
    assert fresh_acc >= 0.9


def test_max_batches_bounds_the_updates_and_the_pairs_scored():
    rng = np.random.default_rng(0)
    data = _dataset(400, 0.25, rng)
    trainer = _trainer(max_batches=3, batch_size=16)
    steps, scored = [], []
    step = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: (steps.append(1), step(*a, **k))[1]
    evaluate, split = trainer.evaluate, trainer.split_val_loss
    trainer.evaluate = lambda d, *groups, **kw: (scored.extend(map(len, groups)), evaluate(d, *groups, **kw))[1]
    trainer.split_val_loss = lambda idx, *a: (scored.append(len(idx)), split(idx, *a))[1]
    trainer.fit(data, n_epochs=2)
    assert len(steps) == 2 * 3  # 3 minibatches an epoch instead of ~18
    assert scored == [48, 48]  # the val loss on 3 x 16 pairs each epoch; the train loss is the epoch's own


# --- non-finite data and losses ---------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("field", "where", "value", "message"),
    [
        ("obs", (3, 1, 2, 1), NAN, "labelled pair 3 is not finite: second segment, step 2: observation has NaN at "
                                   "index 1"),
        ("obs", (0, 0, 4, 0), -INF, "labelled pair 0 is not finite: first segment, step 4: observation has -inf at "
                                    "index 0"),
        ("acts", (7, 0, 0, 0), INF, "labelled pair 7 is not finite: first segment, step 0: action has inf at index 0"),
        ("labels", (5,), NAN, "labelled pair 5 is not finite: label is NaN"),
    ],
)
def test_fit_refuses_a_dataset_with_a_non_finite_value_and_trains_nothing(field, where, value, message):
    data = _dataset(20, 0.25, np.random.default_rng(0))
    getattr(data, field)[where] = value
    trainer = _trainer(batch_size=8)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(NonFiniteError) as info:
        trainer.fit(data, n_epochs=2)
    assert str(info.value) == message
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_packed_image_pairs_are_not_unpacked_to_be_checked(monkeypatch):
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 2, 4, 4), dtype=np.uint8)  # (T, K, H, W)
    obs = PackedPairs([(PackedObs(frames), PackedObs(frames))] * 2)

    def unpack(self, idx):
        raise AssertionError("unpacked")

    monkeypatch.setattr(PackedPairs, "__getitem__", unpack)
    data = PreferenceDataset(obs, np.zeros((2, 2, 3, 1), np.float32), np.array([1.0, 0.0]), np.zeros(2, bool))
    data.check_finite()
    data.acts[1, 1, 2, 0] = NAN
    with pytest.raises(NonFiniteError) as info:
        data.check_finite()
    assert str(info.value) == "labelled pair 1 is not finite: second segment, step 2: action has NaN at index 0"


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        # weights that are NaN before the fit: the first minibatch's loss is NaN
        ({"nan_weight": True}, "the reward model's training loss is NaN at epoch 1 of 3, batch 1 of 2: the reward "
                               "model's parameters were non-finite before the fit"),
        # a learning rate that makes Adam's steps overflow: finite at first, NaN a step later
        ({"lr": 1e20}, "the reward model's training loss is NaN at epoch 1 of 3, batch 2 of 2: the fit diverged from "
                       "finite parameters and pairs; a lower reward learning rate may help"),
    ],
)
def test_a_loss_that_turns_non_finite_stops_the_fit_naming_epoch_and_batch(spoil, message):
    data = _dataset(20, 0.2, np.random.default_rng(1))  # 16 training pairs: 2 minibatches of 8
    trainer = _trainer(batch_size=8, lr=spoil.get("lr", 3e-4))
    if spoil.get("nan_weight"):
        with torch.no_grad():
            trainer.model.net.weights[1][0, 2, 3] = NAN
    with pytest.raises(NonFiniteError) as info:
        trainer.fit(data, n_epochs=3)
    assert str(info.value) == message
    assert not trainer.model.training  # left in eval mode, as a fit that returns


@pytest.mark.parametrize("n_ties, accuracy_defined", [(0, True), (3, True), (8, False)])
def test_the_share_of_tied_validation_labels_is_reported_beside_the_accuracy(n_ties, accuracy_defined):
    """The accuracy is over decided labels; where a task gives mostly ties (a pendulum that falls at once) it is
    undefined or rests on a few pairs, and the tie share says so (before, such a run read like a broken model)."""
    rng = np.random.default_rng(3)
    data = _dataset(24, 1 / 3, rng)  # 8 validation pairs
    val = np.flatnonzero(data.is_val)
    data.labels[val[:n_ties]] = 0.5
    stats = _trainer().fit(data, n_epochs=2)
    assert stats.val_tie_share == pytest.approx(n_ties / 8)
    assert math.isfinite(stats.val_accuracy) == accuracy_defined


def test_one_pass_over_train_and_val_scores_each_group_as_it_would_alone():
    rng = np.random.default_rng(3)
    data = _dataset(120, 0.25, rng)
    trainer = _trainer()
    trainer.fit(data, n_epochs=2)
    train, val = np.flatnonzero(~data.is_val), np.flatnonzero(data.is_val)
    together = trainer.evaluate(data, train, val)
    alone = trainer.evaluate(data, train) + trainer.evaluate(data, val)
    assert np.allclose(together, alone, rtol=1e-5)
    # and the same as the model's own reward of each segment, summed: the features computed once agree with raw
    r = trainer.model.raw(data.obs[val], data.acts[val]).sum(-1)  # (M, P, 2)
    labels = torch.as_tensor(data.labels[val], dtype=torch.float32)
    expected = bradley_terry_loss(r[..., 0], r[..., 1], labels).mean().item()
    assert together[1][0] == pytest.approx(expected, rel=1e-5)
    assert trainer.evaluate(data, train, np.zeros(0, dtype=np.int64))[1] == pytest.approx((float("nan"),) * 2,
                                                                                           nan_ok=True)


def test_the_training_loss_l2_adapts_to_is_the_last_epochs_minibatch_loss():
    rng = np.random.default_rng(5)
    data = _dataset(200, 0.3, rng)
    trainer = _trainer(batch_size=32)
    seen = []
    adapt = trainer.adapt_l2
    trainer.adapt_l2 = lambda train, val: (seen.append((train, val)), adapt(train, val))[1]
    stats = trainer.fit(data, n_epochs=3)
    assert len(seen) == 3 and stats.train_loss == seen[-1][0]
    # what the members fit on, measured again after the epoch, is a little lower (they improved during it) but close
    boot = torch.as_tensor(trainer.last_bootstrap)
    source = trainer.model.pair_source(data.obs, data.acts)
    with torch.no_grad():
        again = trainer._member_losses(source[boot], torch.as_tensor(data.labels, dtype=torch.float32)[boot])
    assert 0.5 * stats.train_loss < again.mean().item() < stats.train_loss * 1.05
