"""Segments: short pieces of behaviour cut from the rollouts PPO already collects, and a bounded buffer of them.

A ``Segment`` owns its arrays (copies, never views into a rollout), so keeping one alive keeps nothing else alive.
``cut_segments`` splits a recorded rollout into non-overlapping segments that never cross an episode boundary;
``SegmentBuffer`` keeps the most recent ones and stacks them for batched evaluation by the reward ensemble.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pbrl.frames import PackedObs


@dataclass(frozen=True)
class Segment:
    """``length`` consecutive steps of one episode, as the reward model and the labeler see them."""

    obs: np.ndarray  # (T, *obs_shape) observation before each step
    acts: np.ndarray  # (T, act_dim) action taken (one-hot for Discrete)
    true_rews: np.ndarray  # (T,) the env's true reward, for the oracle and for evaluation only
    policy_step: int  # agent timesteps when the segment was collected
    episode: int  # episode index within its env copy
    env_step: int  # step within the episode of the first step
    env_index: int = 0  # which env copy of the VecEnv
    states: np.ndarray | None = None  # (T, state_dim) simulator state before each step, for rendering clips
    id: int | None = field(default=None, compare=False)  # id in the PreferenceStore once saved

    @property
    def length(self) -> int:
        return int(self.obs.shape[0])

    @property
    def true_return(self) -> float:
        return float(self.true_rews.sum())

    def with_id(self, segment_id: int) -> Segment:
        return Segment(**{**self.__dict__, "id": segment_id})


@dataclass(frozen=True)
class SegmentPair:
    """Two segments to compare; the label is P(first preferred)."""

    first: Segment
    second: Segment


@dataclass
class RolloutRecord:
    """Raw arrays of one rollout, time-major, as recorded below any observation normalisation."""

    obs: np.ndarray  # (T, n_envs, *obs_shape)
    acts: np.ndarray  # (T, n_envs, act_dim)
    true_rews: np.ndarray  # (T, n_envs)
    dones: np.ndarray  # (T, n_envs) the step ended its episode
    episodes: np.ndarray  # (T, n_envs) episode index of each step
    env_steps: np.ndarray  # (T, n_envs) step within the episode
    states: np.ndarray | None  # (T, n_envs, state_dim)
    policy_step: int


def cut_segments(rollout: RolloutRecord, length: int, rng: np.random.Generator) -> list[Segment]:
    """Cut non-overlapping ``length``-step segments out of each env's part of ``rollout``.

    Segments never cross an episode end; each run of steps within one episode starts at a random offset so
    that segment starts are not locked to the episode start.
    """
    if length < 1:
        raise ValueError(f"segment length must be >= 1, got {length}")
    n_steps, n_envs = rollout.true_rews.shape
    segments: list[Segment] = []
    for e in range(n_envs):
        # runs of steps belonging to one episode: a new run starts after each done
        ends = np.flatnonzero(rollout.dones[:, e]) + 1
        bounds = [0, *ends.tolist(), n_steps]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            span = hi - lo
            if span < length:
                continue
            start = lo + int(rng.integers(0, span % length + 1))
            for s in range(start, hi - length + 1, length):
                sl = slice(s, s + length)
                segments.append(
                    Segment(
                        obs=rollout.obs[sl, e].copy(),
                        acts=rollout.acts[sl, e].copy(),
                        true_rews=rollout.true_rews[sl, e].astype(np.float32, copy=True),
                        policy_step=rollout.policy_step,
                        episode=int(rollout.episodes[s, e]),
                        env_step=int(rollout.env_steps[s, e]),
                        env_index=e,
                        states=None if rollout.states is None else rollout.states[sl, e].copy(),
                    )
                )
    return segments


class SegmentBuffer:
    """The ``capacity`` most recent segments; old ones fall out first."""

    def __init__(self, capacity: int):
        if capacity < 2:
            raise ValueError(f"segment buffer capacity must be >= 2, got {capacity}")
        self.capacity = capacity
        self._segments: collections.deque[Segment] = collections.deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._segments)

    def __getitem__(self, i: int) -> Segment:
        return self._segments[i]

    def __setitem__(self, i: int, segment: Segment) -> None:
        self._segments[i] = segment

    def extend(self, segments: Iterable[Segment]) -> None:
        self._segments.extend(segments)

    def segments(self) -> list[Segment]:
        return list(self._segments)

    def sample_pairs(self, n_pairs: int, rng: np.random.Generator, phase: int = 0) -> np.ndarray:
        """``n_pairs`` index pairs of two different segments.  # (n_pairs, 2)

        The first of each pair is drawn uniformly. With ``phase`` 0 so is the second; with ``phase`` N the second
        is drawn among the segments that start in the same N-step stretch of their episodes (two episode starts,
        say), like for like, falling back to any segment when the first has no such partner.
        """
        n = len(self._segments)
        if n < 2:
            raise ValueError("need at least two segments to form a pair")
        first = rng.integers(0, n, size=n_pairs)
        second = (first + rng.integers(1, n, size=n_pairs)) % n  # never equal to first
        if phase > 0:
            bins = np.array([s.env_step // phase for s in self._segments])
            for b in np.unique(bins[first]):
                members = np.flatnonzero(bins == b)
                if len(members) < 2:
                    continue
                rows = np.flatnonzero(bins[first] == b)
                pos = np.searchsorted(members, first[rows])  # where each first sits among its bin's members
                shift = rng.integers(1, len(members), size=len(rows))
                second[rows] = members[(pos + shift) % len(members)]  # another member, never the first itself
        return np.stack([first, second], axis=1)


class HeldOutSample:
    """A uniform sample of the run's segments that are never offered as queries: the reward model's test set.

    Each segment cut from a rollout is set aside with probability ``rate`` (so the sample spreads evenly over the
    whole run, not only over what the query selector found interesting); a reservoir keeps at most ``capacity``
    of the set-aside ones, each equally likely. Saved beside the run so a resumed run and later scripts see it.
    Observations are held packed (``PackedObs``): an Atari segment's frame stack is 706 KB as an array and a few KB
    packed, so the Atari sample can be as large as the MuJoCo one; ``segments()`` unpacks them as they are read.
    Simulator states are not kept; with a ``scorer`` (a scripted judge's ``score``, where a judge labels and the env
    pays no reward) each segment's score is taken as it is set aside, and ``scores()`` gives them.
    """

    def __init__(self, capacity: int, rate: float, scorer: Callable[[Segment], float] | None = None):
        if capacity < 0 or not 0.0 <= rate <= 1.0:
            raise ValueError(f"held-out sample needs capacity >= 0 and 0 <= rate <= 1, got {capacity}, {rate}")
        self.capacity, self.rate, self.scorer = capacity, rate, scorer
        self.n_seen = 0  # segments set aside so far (the reservoir's stream length)
        self._held: list[tuple[PackedObs, Segment]] = []  # (observations, the segment without them)
        self._scores: list[float] = []  # the scorer's score of each held segment (empty without a scorer)
        self._saved_to: str | None = None  # the file that holds exactly this sample, if any

    def __len__(self) -> int:
        return len(self._held)

    @property
    def nbytes(self) -> int:
        """Bytes the sample's observations take, packed."""
        return sum(packed.nbytes for packed, _ in self._held)

    def segments(self) -> Sequence[Segment]:
        """The held-out segments, each unpacked when it is read (index or slice them to read a few at a time)."""
        return _Unpacked(self._held)

    def scores(self) -> np.ndarray | None:
        """The scorer's score of each held-out segment, in ``segments()`` order; None without a scorer."""
        return np.array(self._scores) if self.scorer is not None else None

    @staticmethod
    def _hold(seg: Segment) -> tuple[PackedObs, Segment]:
        return PackedObs(seg.obs), Segment(**{**seg.__dict__, "obs": np.empty((seg.length, 0), seg.obs.dtype),
                                              "states": None})

    def split(self, segments: Sequence[Segment], rng: np.random.Generator) -> list[Segment]:
        """Set some of ``segments`` aside into the sample; return the others (the query candidates)."""
        if self.capacity == 0 or self.rate == 0.0 or not segments:
            return list(segments)
        aside = rng.random(len(segments)) < self.rate
        for seg in (s for s, a in zip(segments, aside, strict=True) if a):
            self.n_seen += 1
            self._saved_to = None
            if len(self._held) < self.capacity:
                self._held.append(self._hold(seg))
                if self.scorer is not None:
                    self._scores.append(self.scorer(seg))
            else:
                j = int(rng.integers(0, self.n_seen))
                if j < self.capacity:
                    self._held[j] = self._hold(seg)
                    if self.scorer is not None:
                        self._scores[j] = self.scorer(seg)
        return [s for s, a in zip(segments, aside, strict=True) if not a]

    @property
    def unchanged_since_save(self) -> bool:
        """Nothing was set aside (or cut) since the sample was last saved: that file still holds exactly it."""
        return self._saved_to is not None

    def save(self, path) -> None:
        """Write the sample to ``path`` (.npz) atomically, observations packed (uint8 frames stay uint8). Nothing is
        written when the sample has not changed since it was last saved there (every checkpoint saves it)."""
        if self._saved_to == str(path) and os.path.exists(path):
            return
        arrays: dict[str, np.ndarray] = {"n_seen": np.array(self.n_seen)}
        if self._held:
            packed, segs = zip(*self._held, strict=True)
            data = [p.to_bytes() for p in packed]
            arrays.update({
                "packed": np.frombuffer(b"".join(data), dtype=np.uint8),
                "packed_ends": np.cumsum([len(d) for d in data]),
                "obs_shape": np.array(packed[0].shape), "obs_dtype": np.array(packed[0].dtype.str),
                "stacked": np.array([p.stacked for p in packed]),
                "acts": np.stack([s.acts for s in segs]), "true_rews": np.stack([s.true_rews for s in segs]),
                "meta": np.array([[s.policy_step, s.episode, s.env_step, s.env_index] for s in segs])})
            if self.scorer is not None:
                arrays["scores"] = np.array(self._scores)
        tmp = str(path) + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        self._saved_to = str(path)

    def load(self, path) -> None:
        """Read a sample saved by ``save`` (or by an older pbrl, which saved whole observation arrays). Segments
        saved without scores are dropped from a sample with a scorer (they cannot be scored again)."""
        with np.load(path) as z:
            self.n_seen = int(z["n_seen"])
            self._held, self._scores = [], []
            if "meta" not in z or (self.scorer is not None and "scores" not in z):
                return
            if self.scorer is not None:
                self._scores = [float(x) for x in z["scores"][: self.capacity]]
            if "packed" in z:
                blob, ends = z["packed"].tobytes(), z["packed_ends"]
                shape, dtype = tuple(int(n) for n in z["obs_shape"]), str(z["obs_dtype"])
                packed = [PackedObs.from_bytes(blob[start:end], shape, dtype, stacked)
                          for start, end, stacked in zip([0, *ends[:-1]], ends, z["stacked"], strict=True)]
            else:
                packed = [PackedObs(o) for o in z["obs"]]
            self._held = [(p, Segment(obs=np.empty((len(a), 0), p.dtype), acts=a, true_rews=r,
                                      policy_step=int(m[0]), episode=int(m[1]), env_step=int(m[2]),
                                      env_index=int(m[3])))
                          for p, a, r, m in zip(packed, z["acts"], z["true_rews"], z["meta"], strict=True)]
        self._held = self._held[: self.capacity]
        self._saved_to = None  # a capacity cut may have changed it


class _Unpacked(Sequence[Segment]):
    """A read-only view of held segments that unpacks each one's observations when it is read."""

    def __init__(self, held: list[tuple[PackedObs, Segment]]):
        self._held = list(held)

    def __len__(self) -> int:
        return len(self._held)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return [self[i] for i in range(*idx.indices(len(self)))]
        packed, seg = self._held[idx]
        return Segment(**{**seg.__dict__, "obs": packed.unpack()})


def stack(segments: Sequence[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """Stack equal-length segments for one batched pass. Returns obs (B, T, *obs_shape), acts (B, T, act_dim)."""
    return np.stack([s.obs for s in segments]), np.stack([s.acts for s in segments])
