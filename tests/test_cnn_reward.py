"""Tests for ``pbrl.reward.cnn``: the paper's Atari CNN ensemble, fitted through the same trainer as the MLPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pbrl.reward import CnnRewardConfig, CnnRewardEnsemble, PreferenceDataset, RewardTrainer, TrainerConfig

SHAPE, ACT_DIM, T = (4, 84, 84), 6, 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _frames(rng: np.random.Generator, bright: np.ndarray) -> np.ndarray:
    """Dim noise frames; where ``bright`` a white square sits in the middle (the 'reward' a judge sees)."""
    obs = rng.integers(0, 40, size=(*bright.shape, *SHAPE), dtype=np.uint8)
    obs[bright, :, 30:54, 30:54] = 255
    return obs


def _dataset(n_pairs: int, rng: np.random.Generator) -> PreferenceDataset:
    bright = rng.random((n_pairs, 2, T)) < 0.5
    obs = _frames(rng, bright)
    acts = np.eye(ACT_DIM, dtype=np.float32)[rng.integers(0, ACT_DIM, (n_pairs, 2, T))]
    counts = bright.sum(-1)
    labels = np.where(counts[:, 0] > counts[:, 1], 1.0, np.where(counts[:, 0] < counts[:, 1], 0.0, 0.5))
    is_val = rng.random(n_pairs) < 0.25
    return PreferenceDataset(obs=obs, acts=acts, labels=labels, is_val=is_val)


def _model(seed: int = 0, **kw) -> CnnRewardEnsemble:
    torch.manual_seed(seed)
    return CnnRewardEnsemble(CnnRewardConfig(obs_shape=SHAPE, act_dim=ACT_DIM, **kw))


def test_the_paper_architecture():
    member = _model().net[0]
    convs = [m for m in member.conv if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [7, 5, 3, 3] and [c.stride[0] for c in convs] == [3, 2, 1, 1]
    assert {c.out_channels for c in convs} == {16}
    assert member.fc.out_features == 64 and member.norm.num_features == 64 and member.drop.p == 0.5


def test_shapes_and_uint8_inputs_stay_uint8():
    rng = np.random.default_rng(0)
    model = _model().eval()
    obs = _frames(rng, rng.random((3, T)) < 0.5)  # (B, T, C, H, W)
    acts = np.zeros((3, T, ACT_DIM), np.float32)
    assert model.segment_returns(obs, acts).shape == (3, 3)
    assert model.mean_reward(obs[0], acts[0]).shape == (T,)
    data = _dataset(8, rng)
    source = model.pair_source(data.obs, data.acts)
    assert source.obs.dtype == torch.uint8 and np.shares_memory(source.obs.numpy(), data.obs)  # no float copy
    batch = source[torch.zeros((3, 2), dtype=torch.long)]
    assert model.member_pair_returns(batch).shape == (3, 2, 2)


def test_the_ensemble_learns_a_visual_reward_from_preferences():
    rng = np.random.default_rng(0)
    data = _dataset(160, rng)
    model = _model()
    trainer = RewardTrainer(model, TrainerConfig(lr=1e-3, batch_size=16), rng)
    stats = trainer.fit(data, n_epochs=8)
    assert stats.val_accuracy > 0.85
    model.eval()
    bright = _frames(rng, np.ones(20, bool))
    dark = _frames(rng, np.zeros(20, bool))
    acts = np.zeros((20, ACT_DIM), np.float32)
    assert (model.raw(bright, acts).mean(1) > model.raw(dark, acts).mean(1)).all()  # every member


def test_outputs_are_normalised_to_the_paper_std():
    rng = np.random.default_rng(1)
    model = _model().eval()
    obs = _frames(rng, rng.random(200) < 0.5)
    acts = np.zeros((200, ACT_DIM), np.float32)
    model.fit_output_stats(obs, acts)
    with torch.no_grad():
        r = model(obs, acts)
    np.testing.assert_allclose(r.std(dim=1).numpy(), 0.05, rtol=1e-3)
    np.testing.assert_allclose(r.mean(dim=1).numpy(), 0.0, atol=1e-6)


def test_l2_is_per_member_and_save_load_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    model = _model(n_members=2).eval()
    assert model.net.l2().shape == (2,) and (model.net.l2() > 0).all()
    obs = _frames(rng, rng.random(10) < 0.5)
    acts = np.zeros((10, ACT_DIM), np.float32)
    model.fit_output_stats(obs, acts)
    model.save(tmp_path / "cnn.pt", {"l2": 0.1})
    loaded, extra = CnnRewardEnsemble.load(tmp_path / "cnn.pt")
    loaded.eval()
    assert extra == {"l2": 0.1}
    with torch.no_grad():
        torch.testing.assert_close(loaded(obs, acts), model(obs, acts))
    from pbrl.reward import load_ensemble  # scripts load a run's model without knowing its kind

    either, _ = load_ensemble(tmp_path / "cnn.pt")
    assert isinstance(either, CnnRewardEnsemble) and not either.training  # ready to predict: no dropout
    with torch.no_grad():
        torch.testing.assert_close(either(obs, acts), model(obs, acts))


def test_channels_last_training_matches_the_default_layout():
    """On a CPU the frames of a training batch are laid out channels-last: the same rewards and gradients."""
    from pbrl.reward import cnn

    torch.manual_seed(0)
    member = cnn._CnnMember(CnnRewardConfig((4, 44, 44), 3)).train()
    frames = torch.randint(0, 256, (6, 4, 44, 44), dtype=torch.uint8)
    acts = torch.eye(3)[torch.arange(6) % 3]
    results = []
    for layout in (False, True):
        member.channels_last = layout
        member.zero_grad()
        torch.manual_seed(1)  # the same dropout mask
        out = member(frames, acts)
        out.pow(2).sum().backward()
        results.append((out.detach(), member.conv[0].weight.grad.clone()))
    (out0, grad0), (out1, grad1) = results
    assert out0.abs().max() > 0 and grad0.abs().max() > 0
    torch.testing.assert_close(out1, out0, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad1, grad0, rtol=1e-4, atol=1e-5)
