"""Tests for ``pbrl.segments``: cutting rollouts into segments, and the buffer of recent segments."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.heldout import HeldOutSample
from pbrl.segments import RolloutRecord, Segment, SegmentBuffer, cut_segments, stack


def _rollout(dones: np.ndarray, with_states: bool = True, policy_step: int = 4096) -> RolloutRecord:
    """A rollout whose arrays encode (step, env) so every value says where it came from."""
    n_steps, n_envs = dones.shape
    step = np.arange(n_steps)[:, None] * np.ones((1, n_envs))
    env = np.ones((n_steps, 1)) * np.arange(n_envs)[None, :]
    # episode index and step within the episode, as a VecEnv would count them
    episodes = np.zeros((n_steps, n_envs), dtype=int)
    env_steps = np.zeros((n_steps, n_envs), dtype=int)
    for e in range(n_envs):
        ep, k = 5 * e, 3  # episodes need not start at 0 at the start of a rollout
        for t in range(n_steps):
            episodes[t, e], env_steps[t, e] = ep, k
            k += 1
            if dones[t, e]:
                ep, k = ep + 1, 0
    return RolloutRecord(
        obs=np.stack([step, env], axis=-1).astype(np.float32),  # (T, n_envs, 2)
        acts=(step * 10 + env)[..., None].astype(np.float32),  # (T, n_envs, 1)
        true_rews=step + 1000 * env,  # (T, n_envs), float64 on purpose
        dones=dones.astype(bool),
        episodes=episodes,
        env_steps=env_steps,
        states=np.stack([step, env, -step], axis=-1) if with_states else None,
        policy_step=policy_step,
    )


def _dones(n_steps: int, ends_per_env: list[list[int]]) -> np.ndarray:
    dones = np.zeros((n_steps, len(ends_per_env)), dtype=bool)
    for e, ends in enumerate(ends_per_env):
        dones[ends, e] = True
    return dones


_CASES = [
    # (n_steps, episode ends per env, segment length)
    (20, [[]], 5),
    (20, [[]], 3),
    (30, [[6, 17]], 4),
    (30, [[6, 17], [0, 1, 2, 29]], 5),
    (25, [[3], [12], []], 1),
    (40, [[9, 19, 29, 39]], 10),  # episodes exactly one segment long
    (12, [[2, 5, 8, 11]], 4),  # every episode too short: no segments
]


@pytest.mark.parametrize(("n_steps", "ends", "length"), _CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_segments_never_cross_an_episode_end(n_steps, ends, length, seed):
    rollout = _rollout(_dones(n_steps, ends))
    segments = cut_segments(rollout, length, np.random.default_rng(seed))
    for seg in segments:
        steps = seg.obs[:, 0].astype(int)
        e = int(seg.obs[0, 1])
        assert seg.env_index == e
        # consecutive steps of one env ...
        np.testing.assert_array_equal(steps, np.arange(steps[0], steps[0] + length))
        np.testing.assert_array_equal(seg.obs[:, 1], e)
        # ... of which only the last may end the episode
        assert not rollout.dones[steps[:-1], e].any()
        assert len(set(rollout.episodes[steps, e].tolist())) == 1


@pytest.mark.parametrize(("n_steps", "ends", "length"), _CASES)
def test_segment_count_lengths_and_no_overlap(n_steps, ends, length):
    rollout = _rollout(_dones(n_steps, ends))
    segments = cut_segments(rollout, length, np.random.default_rng(2))
    # each run of steps in one episode yields floor(span / length) segments
    expected = 0
    for e_ends in ends:
        bounds = [0, *[t + 1 for t in e_ends], n_steps]
        expected += sum((hi - lo) // length for lo, hi in zip(bounds[:-1], bounds[1:], strict=True))
    assert len(segments) == expected
    for seg in segments:
        assert seg.length == length
        assert seg.obs.shape == (length, 2) and seg.acts.shape == (length, 1)
        assert seg.true_rews.shape == (length,) and seg.states.shape == (length, 3)
    used = [(int(s.obs[0, 1]), int(t)) for s in segments for t in s.obs[:, 0]]
    assert len(used) == len(set(used))  # non-overlapping


@pytest.mark.parametrize(("n_steps", "ends", "length"), _CASES)
def test_segment_metadata_and_contents(n_steps, ends, length):
    rollout = _rollout(_dones(n_steps, ends), policy_step=777)
    for seg in cut_segments(rollout, length, np.random.default_rng(3)):
        e, s = seg.env_index, int(seg.obs[0, 0])
        sl = slice(s, s + length)
        assert seg.policy_step == 777
        assert seg.episode == rollout.episodes[s, e]
        assert seg.env_step == rollout.env_steps[s, e]
        assert seg.id is None
        np.testing.assert_array_equal(seg.acts, rollout.acts[sl, e])
        np.testing.assert_array_equal(seg.true_rews, rollout.true_rews[sl, e])
        np.testing.assert_array_equal(seg.states, rollout.states[sl, e])
        assert seg.true_rews.dtype == np.float32
        assert seg.true_return == pytest.approx(float(rollout.true_rews[sl, e].sum()))


def test_segment_metadata_hand_computed():
    # one env, an episode ends at step 3; steps 4..11 are episode 1 with env_step 0..7
    rollout = _rollout(_dones(12, [[3]]))
    segments = cut_segments(rollout, 8, np.random.default_rng(0))
    assert len(segments) == 1
    (seg,) = segments
    assert (seg.episode, seg.env_step, seg.env_index) == (1, 0, 0)
    np.testing.assert_array_equal(seg.obs[:, 0], np.arange(4, 12))


def test_segments_own_their_arrays():
    rollout = _rollout(_dones(30, [[9], [19]]))
    segments = cut_segments(rollout, 5, np.random.default_rng(4))
    assert segments
    for seg in segments:
        for name in ("obs", "acts", "true_rews", "states", "episodes", "env_steps"):
            source = getattr(rollout, name)
            for field in ("obs", "acts", "true_rews", "states"):
                assert not np.shares_memory(getattr(seg, field), source), (field, name)
    # writing into the rollout buffer (as the next rollout will) does not change a kept segment
    before = segments[0].obs.copy()
    rollout.obs[...] = -1
    rollout.true_rews[...] = -1
    np.testing.assert_array_equal(segments[0].obs, before)
    assert (segments[0].true_rews != -1).all()


def test_segments_without_states():
    segments = cut_segments(_rollout(_dones(10, [[]]), with_states=False), 5, np.random.default_rng(5))
    assert len(segments) == 2
    assert all(s.states is None for s in segments)


def test_segment_starts_are_not_locked_to_episode_start():
    rollout = _rollout(_dones(23, [[]]))
    starts = {int(cut_segments(rollout, 5, np.random.default_rng(seed))[0].obs[0, 0]) for seed in range(30)}
    assert starts == {0, 1, 2, 3}  # span 23 = 4 * 5 + 3: any offset 0..3


@pytest.mark.parametrize("length", [0, -2])
def test_invalid_length_raises(length):
    with pytest.raises(ValueError, match="segment length"):
        cut_segments(_rollout(_dones(10, [[]])), length, np.random.default_rng(0))


def test_with_id_keeps_data():
    (seg,) = cut_segments(_rollout(_dones(5, [[]])), 5, np.random.default_rng(0))
    saved = seg.with_id(12)
    assert saved.id == 12 and seg.id is None
    assert saved.obs is seg.obs and saved.episode == seg.episode


# --- SegmentBuffer ----------------------------------------------------------------------------------------

def _tagged(i: int) -> Segment:
    return Segment(obs=np.full((3, 2), i, np.float32), acts=np.zeros((3, 1), np.float32),
                   true_rews=np.zeros(3, np.float32), policy_step=i, episode=0, env_step=0)


@pytest.mark.parametrize(("capacity", "n_added"), [(2, 1), (2, 5), (5, 5), (5, 12), (10, 3)])
def test_buffer_keeps_most_recent(capacity, n_added):
    buf = SegmentBuffer(capacity)
    for start in range(0, n_added, 3):  # added in batches, as rollouts arrive
        buf.extend(_tagged(i) for i in range(start, min(start + 3, n_added)))
    kept = list(range(max(0, n_added - capacity), n_added))
    assert len(buf) == len(kept)
    assert [s.policy_step for s in buf.segments()] == kept
    assert [buf[i].policy_step for i in range(len(buf))] == kept


@pytest.mark.parametrize("capacity", [1, 0, -3])
def test_buffer_invalid_capacity(capacity):
    with pytest.raises(ValueError, match="capacity"):
        SegmentBuffer(capacity)


@pytest.mark.parametrize(("n_segments", "n_pairs"), [(2, 100), (3, 500), (10, 1000)])
def test_sample_pairs_never_pairs_segment_with_itself(n_segments, n_pairs):
    buf = SegmentBuffer(20)
    buf.extend(_tagged(i) for i in range(n_segments))
    pairs = buf.sample_pairs(n_pairs, np.random.default_rng(6))
    assert pairs.shape == (n_pairs, 2)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert ((pairs >= 0) & (pairs < n_segments)).all()
    # every ordered pair of distinct segments turns up: the draw is not stuck on a few
    assert len({tuple(p) for p in pairs.tolist()}) == n_segments * (n_segments - 1)


@pytest.mark.parametrize(("n_segments", "limit"), [(5, None), (5, 5), (5, 8), (30, 10)])
def test_a_sample_of_the_buffer_is_bounded_in_buffer_order_and_draws_only_when_it_must(n_segments, limit):
    buf = SegmentBuffer(50)
    buf.extend(_tagged(i) for i in range(n_segments))
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    steps = [s.policy_step for s in buf.sample(limit, rng)]
    assert len(steps) == min(n_segments, limit or n_segments) and steps == sorted(set(steps))
    assert (rng.bit_generator.state == before) == (limit is None or n_segments <= limit)


def test_sample_pairs_needs_two_segments():
    buf = SegmentBuffer(4)
    buf.extend([_tagged(0)])
    with pytest.raises(ValueError):
        buf.sample_pairs(1, np.random.default_rng(0))


def test_stack_shapes():
    obs, acts = stack([_tagged(i) for i in range(4)])  # (B, T, obs_dim), (B, T, act_dim)
    assert obs.shape == (4, 3, 2) and acts.shape == (4, 3, 1)
    np.testing.assert_array_equal(obs[:, 0, 0], np.arange(4))


def test_image_segments_are_owned_uint8_copies_and_the_buffer_is_bounded():
    """Atari frame stacks: each segment holds its own uint8 frames, so the rollout can be freed (no views that keep
    whole rollouts alive), and the buffer's memory stops growing at its capacity."""
    t, n_envs = 100, 2
    rollout = RolloutRecord(
        obs=np.random.default_rng(0).integers(0, 255, (t, n_envs, 4, 84, 84), dtype=np.uint8),
        acts=np.zeros((t, n_envs, 6), np.float32), true_rews=np.zeros((t, n_envs), np.float32),
        dones=np.zeros((t, n_envs), bool), episodes=np.zeros((t, n_envs), np.int64),
        env_steps=np.tile(np.arange(t)[:, None], (1, n_envs)), states=None, policy_step=0)
    buffer = SegmentBuffer(capacity=10)
    for _ in range(3):
        buffer.extend(cut_segments(rollout, 25, np.random.default_rng(1)))
    segs = buffer.segments()
    assert len(segs) == 10
    for s in segs:
        assert s.obs.dtype == np.uint8 and s.obs.flags.owndata and s.obs.base is None
        assert not np.shares_memory(s.obs, rollout.obs)
    assert sum(s.obs.nbytes for s in segs) == 10 * 25 * 4 * 84 * 84


def test_phase_pairs_match_episode_stretches():
    buffer = SegmentBuffer(capacity=100)
    buffer.extend(Segment(obs=np.zeros((5, 1)), acts=np.zeros((5, 1)), true_rews=np.zeros(5), policy_step=0,
                          episode=i, env_step=step) for i, step in enumerate([0, 3, 50, 60, 70, 99, 400]))
    pairs = buffer.sample_pairs(500, np.random.default_rng(0), phase=50)
    steps = np.array([[buffer[i].env_step, buffer[j].env_step] for i, j in pairs])
    assert (pairs[:, 0] != pairs[:, 1]).all()
    lonely = steps[:, 0] == 400  # alone in its stretch: paired with anything
    np.testing.assert_array_equal(steps[~lonely, 0] // 50, steps[~lonely, 1] // 50)
    assert lonely.any() and set(steps[steps[:, 0] == 0, 1]) == {3}


def _numbered(n: int, start: int = 0, dtype=np.float32) -> list[Segment]:
    return [Segment(obs=np.full((4, 3), i, dtype=dtype), acts=np.zeros((4, 1), np.float32),
                    true_rews=np.full(4, float(i)), policy_step=i, episode=i, env_step=0)
            for i in range(start, start + n)]


def test_heldout_sample_sets_aside_about_rate_and_never_returns_them():
    sample, rng = HeldOutSample(capacity=10_000, rate=0.1), np.random.default_rng(0)
    segs = _numbered(5000)
    kept = sample.split(segs, rng)
    aside = {s.policy_step for s in sample.segments()}
    assert len(kept) + len(sample) == 5000 and 400 < len(sample) < 600
    assert aside.isdisjoint(s.policy_step for s in kept)  # a held-out segment is never a query candidate


def test_heldout_sample_is_bounded_and_spread_over_the_whole_stream():
    sample, rng = HeldOutSample(capacity=100, rate=0.5), np.random.default_rng(1)
    for chunk in range(20):  # 20 rollouts of 500 segments
        sample.split(_numbered(500, start=500 * chunk), rng)
    steps = np.array([s.policy_step for s in sample.segments()])
    assert len(sample) == 100 and sample.n_seen > 4000
    # a reservoir: as many from the first half of the run as from the second, give or take
    assert 30 <= int((steps < 5000).sum()) <= 70


def test_heldout_sample_off_keeps_everything():
    segs = _numbered(50)
    assert HeldOutSample(capacity=0, rate=0.5).split(segs, np.random.default_rng(0)) == segs
    assert HeldOutSample(capacity=10, rate=0.0).split(segs, np.random.default_rng(0)) == segs


def test_heldout_sample_save_and_load_round_trip(tmp_path):
    sample = HeldOutSample(capacity=20, rate=1.0)
    sample.split(_numbered(30, dtype=np.uint8), np.random.default_rng(2))
    sample.save(tmp_path / "h.npz")
    again = HeldOutSample(capacity=20, rate=1.0)
    again.load(tmp_path / "h.npz")
    assert again.n_seen == 30 and len(again) == 20
    for a, b in zip(sample.segments(), again.segments(), strict=True):
        assert a.obs.dtype == b.obs.dtype == np.uint8 and np.array_equal(a.obs, b.obs)
        assert a.true_return == b.true_return and a.policy_step == b.policy_step
    empty = HeldOutSample(capacity=5, rate=0.1)
    empty.save(tmp_path / "e.npz")
    empty.load(tmp_path / "e.npz")
    assert len(empty) == 0 and empty.n_seen == 0


def test_a_scored_heldout_sample_keeps_each_score_with_its_segment(tmp_path):
    """With a scorer (a judge's score, taken before the states are dropped) each held segment keeps its own score,
    through reservoir replacements and a save and load; a file saved without scores loads as an empty sample."""
    def score(seg: Segment) -> float:
        assert seg.states is not None  # scored while the states are still there
        return 0.5 * seg.policy_step

    segs = [Segment(**{**s.__dict__, "states": np.zeros((4, 2))}) for s in _numbered(300)]
    sample = HeldOutSample(capacity=20, rate=0.5, scorer=score)
    sample.split(segs, np.random.default_rng(4))
    assert sample.n_seen > 100 and len(sample) == 20  # the reservoir replaced many
    np.testing.assert_array_equal(sample.scores(), [0.5 * s.policy_step for s in sample.segments()])
    sample.save(tmp_path / "h.npz")
    again = HeldOutSample(capacity=20, rate=0.5, scorer=score)
    again.load(tmp_path / "h.npz")
    np.testing.assert_array_equal(again.scores(), [0.5 * s.policy_step for s in again.segments()])
    assert HeldOutSample(capacity=20, rate=0.5).scores() is None
    unscored = HeldOutSample(capacity=20, rate=1.0)
    unscored.split(_numbered(5), np.random.default_rng(5))
    unscored.save(tmp_path / "u.npz")
    again.load(tmp_path / "u.npz")
    assert len(again) == 0 and len(again.scores()) == 0


def test_heldout_sample_is_written_again_only_when_it_changed(tmp_path):
    sample, rng, path = HeldOutSample(capacity=5, rate=1.0), np.random.default_rng(3), tmp_path / "h.npz"
    sample.split(_numbered(3), rng)
    sample.save(path)
    stamp = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes())  # a new mtime; an unchanged sample must not rewrite it
    again = path.stat().st_mtime_ns
    sample.save(path)
    assert path.stat().st_mtime_ns == again and again >= stamp
    sample.split(_numbered(1, start=3), rng)
    sample.save(path)
    reloaded = HeldOutSample(capacity=5, rate=1.0)
    reloaded.load(path)
    assert len(reloaded) == 4
