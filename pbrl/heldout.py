"""The held-out sample: a uniform sample of a run's segments that is never queried, the reward model's test set.

The loop sets segments aside as rollouts are cut (``HeldOutSample.split``) and reports the learned/true return
correlation over them (``pbrl.reward.diagnostics``); the sample is saved with every checkpoint, so a resumed run and
``scripts/tools/heldout_corr.py`` see the same one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from pbrl.reward.frames import PackedObs
from pbrl.segments import Segment


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
