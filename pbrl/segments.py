"""Segments: short pieces of behaviour cut from the rollouts PPO already collects, and a bounded buffer of them.

A ``Segment`` owns its arrays (copies, never views into a rollout), so keeping one alive keeps nothing else alive.
``cut_segments`` splits a recorded rollout into non-overlapping segments that never cross an episode boundary;
``SegmentBuffer`` keeps the most recent ones and stacks them for batched evaluation by the reward ensemble.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


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

    def sample(self, limit: int | None, rng: np.random.Generator) -> list[Segment]:
        """The buffer's segments, or ``limit`` of them drawn at random (kept in buffer order) when it holds more."""
        segments = self.segments()
        if limit is None or len(segments) <= limit:
            return segments
        keep = rng.choice(len(segments), limit, replace=False)
        return [segments[i] for i in sorted(keep)]

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


def stack(segments: Sequence[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """Stack equal-length segments for one batched pass. Returns obs (B, T, *obs_shape), acts (B, T, act_dim)."""
    return np.stack([s.obs for s in segments]), np.stack([s.acts for s in segments])


class MemberReturns:
    """Each reward member's raw return of segments, kept while the ensemble stays as it is.

    Right after a fit the output statistics evaluate a sample of the buffer; the round's logged correlation over
    those segments and, after the next rollouts, the query choice (its candidates' segments) reuse what that pass
    computed, since the ensemble does not change in between, and only segments outside it cost a pass. Entries are
    keyed by the segment's observation array, which they hold (so its id is not reused while the entry lives);
    ``clear`` whenever the ensemble changes.
    """

    def __init__(self) -> None:
        self._sums: dict[int, tuple[object, np.ndarray]] = {}  # id(seg.obs) -> (seg.obs, (n_members,))

    def __len__(self) -> int:
        return len(self._sums)

    def clear(self) -> None:
        self._sums.clear()

    def put(self, segments: Sequence[Segment], sums: np.ndarray) -> None:
        """Remember ``sums`` (n_members, B), the raw member returns of ``segments`` under the current ensemble."""
        for seg, col in zip(segments, np.asarray(sums).T, strict=True):
            self._sums[id(seg.obs)] = (seg.obs, col)

    def retain(self, segments: Sequence[Segment]) -> None:
        """Forget every segment but these (the ones still in the buffer)."""
        wanted = {id(s.obs) for s in segments}
        self._sums = {k: v for k, v in self._sums.items() if k in wanted}

    def get(self, ensemble, segments: Sequence[Segment]) -> np.ndarray:
        """The raw member returns of ``segments``, evaluating (in one batch) only those not kept yet.
        # (n_members, B)"""
        if not segments:
            return np.zeros((ensemble.n_members, 0), dtype=np.float32)
        missing = [s for s in segments if id(s.obs) not in self._sums]
        if missing:
            import torch

            with torch.no_grad():
                self.put(missing, ensemble.raw(*stack(missing)).sum(-1).cpu().numpy())
        return np.stack([self._sums[id(s.obs)][1] for s in segments], axis=1)
