"""``pbrl.reward.frames``: labelled image segments are kept packed (distinct frames once, compressed) and unpack
exactly."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from pbrl.heldout import HeldOutSample
from pbrl.reward import CnnRewardConfig, CnnRewardEnsemble, PreferenceDataset, RewardTrainer, TrainerConfig
from pbrl.reward.diagnostics import learned_true_corr
from pbrl.reward.frames import PackedObs, PackedPairs
from pbrl.segments import Segment

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K, H, W = 4, 84, 84


def _stacks(rng: np.random.Generator, t: int) -> np.ndarray:
    """(t, K, H, W) frame stacks of a moving square over a dark, mostly flat screen, as FrameStackObservation
    makes them: stack t+1 is stack t shifted by one frame."""
    frames = np.zeros((t + K - 1, H, W), np.uint8)
    frames[:, 70:, :] = 90  # a floor
    for i in range(len(frames)):
        y, x = rng.integers(0, 60, size=2)
        frames[i, y:y + 8, x:x + 8] = 236
    return np.stack([frames[i:i + K] for i in range(t)])


def test_a_frame_stack_round_trips_exactly_and_packs_small():
    obs = _stacks(np.random.default_rng(0), 25)
    packed = PackedObs(obs)
    assert packed.stacked
    np.testing.assert_array_equal(packed.unpack(), obs)
    assert packed.nbytes < obs.nbytes / 50  # 28 distinct frames of 100, compressed


@pytest.mark.parametrize("obs", [
    np.random.default_rng(1).integers(0, 255, size=(25, K, H, W), dtype=np.uint8),  # frames that do not line up
    np.random.default_rng(2).normal(size=(50, 11)).astype(np.float32),  # vector observations
    _stacks(np.random.default_rng(3), 1),  # a single step
])
def test_anything_else_round_trips_exactly(obs):
    packed = PackedObs(obs)
    assert not packed.stacked
    got = packed.unpack()
    assert got.dtype == obs.dtype
    np.testing.assert_array_equal(got, obs)


def test_packed_pairs_unpack_the_pairs_an_index_asks_for():
    rng = np.random.default_rng(4)
    obs = np.stack([np.stack([_stacks(rng, 5), _stacks(rng, 5)]) for _ in range(6)])  # (6, 2, 5, K, H, W)
    pairs = PackedPairs([(PackedObs(a), PackedObs(b)) for a, b in obs])
    assert pairs.shape == obs.shape and len(pairs) == 6
    idx = np.array([[0, 5, 5], [3, 1, 2]])  # (members, pairs) as the trainer draws them
    np.testing.assert_array_equal(pairs[idx], obs[idx])
    np.testing.assert_array_equal(pairs[np.array([True, False, False, True, False, True])], obs[[0, 3, 5]])


def test_the_frame_table_gathers_the_same_stacks():
    rng = np.random.default_rng(6)
    obs = np.stack([np.stack([_stacks(rng, 5), _stacks(rng, 5)]) for _ in range(4)])  # (4, 2, 5, K, H, W)
    pairs = PackedPairs([(PackedObs(a), PackedObs(b)) for a, b in obs])
    assert pairs.stacked
    frames, index = pairs.frame_table(torch.device("cpu"))
    assert frames.shape == (4 * 2 * (5 + K - 1), H, W) and frames.dtype == torch.uint8  # distinct frames only
    idx = torch.tensor([[0, 3, 3], [2, 1, 0]])
    np.testing.assert_array_equal(frames[index[idx]].numpy(), obs[idx.numpy()])
    not_stacks = PackedPairs([(PackedObs(a), PackedObs(a[::-1].copy())) for a, _ in obs])
    assert not not_stacks.stacked  # reversed in time: the frames no longer slide, so no table


def test_the_cnn_ensemble_fits_packed_pairs_exactly_as_arrays():
    """Same seed, same data: fitting on packed pairs gives the same weights as fitting on the stacked arrays."""
    rng = np.random.default_rng(5)
    n = 12
    obs = np.stack([np.stack([_stacks(rng, 3), _stacks(rng, 3)]) for _ in range(n)])
    acts = np.eye(6, dtype=np.float32)[rng.integers(0, 6, (n, 2, 3))]
    labels = rng.integers(0, 2, n).astype(np.float32)
    is_val = np.arange(n) % 4 == 0
    packed = PackedPairs([(PackedObs(a), PackedObs(b)) for a, b in obs])
    weights = []
    for data_obs, resident in ((obs, False), (packed, False), (packed, True)):  # resident: the GPU's frame table
        torch.manual_seed(0)
        model = CnnRewardEnsemble(CnnRewardConfig(obs_shape=(K, H, W), act_dim=6, n_members=2))
        model.pair_source = functools.partial(model.pair_source, resident=resident)
        trainer = RewardTrainer(model, TrainerConfig(batch_size=4), np.random.default_rng(0))
        stats = trainer.fit(PreferenceDataset(data_obs, acts, labels, is_val), n_epochs=2)
        weights.append((torch.cat([p.detach().flatten() for p in model.parameters()]), stats))
    for other in weights[1:]:
        torch.testing.assert_close(weights[0][0], other[0], rtol=0, atol=0)
        assert weights[0][1] == other[1]


def _atari_segments(n: int, t: int = 25) -> list[Segment]:
    rng = np.random.default_rng(7)
    return [Segment(obs=_stacks(rng, t), acts=np.eye(6, dtype=np.float32)[rng.integers(0, 6, t)],
                    true_rews=rng.integers(-1, 2, t).astype(np.float32), policy_step=i, episode=i, env_step=3 * i)
            for i in range(n)]


def test_the_held_out_sample_keeps_frame_stacks_packed_and_gives_them_back_exactly(tmp_path):
    """Held-out Atari segments take a few KB each, not 706 KB, in memory and on disk, and read back unchanged."""
    segs = _atari_segments(12)
    sample = HeldOutSample(capacity=10, rate=1.0)
    sample.split(segs, np.random.default_rng(0))
    raw = sum(s.obs.nbytes for s in segs[:10])
    assert len(sample) == 10 and sample.nbytes < raw / 20
    sample.save(tmp_path / "h.npz")
    assert (tmp_path / "h.npz").stat().st_size < raw / 10
    again = HeldOutSample(capacity=10, rate=1.0)
    again.load(tmp_path / "h.npz")
    by_step = {s.policy_step: s for s in segs}
    for held in (sample.segments(), again.segments()):
        for seg in held:
            want = by_step[seg.policy_step]
            assert seg.obs.dtype == np.uint8 and np.array_equal(seg.obs, want.obs)
            assert np.array_equal(seg.acts, want.acts) and seg.true_return == want.true_return


def test_a_held_out_sample_saved_whole_by_an_older_pbrl_still_loads(tmp_path):
    segs = _atari_segments(3)
    np.savez(tmp_path / "old.npz", n_seen=np.array(5), obs=np.stack([s.obs for s in segs]),
             acts=np.stack([s.acts for s in segs]), true_rews=np.stack([s.true_rews for s in segs]),
             meta=np.array([[s.policy_step, s.episode, s.env_step, s.env_index] for s in segs]))
    sample = HeldOutSample(capacity=500, rate=0.025)
    sample.load(tmp_path / "old.npz")
    assert sample.n_seen == 5 and [s.policy_step for s in sample.segments()] == [0, 1, 2]
    assert all(np.array_equal(a.obs, b.obs) for a, b in zip(sample.segments(), segs, strict=True))


def test_the_correlation_read_a_few_segments_at_a_time_is_the_same():
    torch.manual_seed(0)
    model = CnnRewardEnsemble(CnnRewardConfig(obs_shape=(K, H, W), act_dim=6, n_members=2))
    model.eval()
    sample = HeldOutSample(capacity=20, rate=1.0)
    sample.split(_atari_segments(9), np.random.default_rng(0))
    whole = learned_true_corr(model, list(sample.segments()), chunk=64)
    assert np.isfinite(whole)
    assert learned_true_corr(model, sample.segments(), chunk=2) == pytest.approx(whole, abs=1e-6)
