"""The run directory: the whole state of a run, enough on its own to resume, evaluate, re-label or refit.

    config.json          the resolved TrainConfig
    preferences.sqlite   comparisons, labels and the segments they refer to (PreferenceStore)
    checkpoint.json      the manifest: which generation under checkpoints/ is the run's current checkpoint
    checkpoints/NNNNNN/  one generation of the checkpoint, a consistent set written together:
        policy.zip           the SB3 PPO checkpoint;  vecnormalize.pkl: its observation statistics
        reward_model.pt      the reward ensemble with its config and normalisation statistics
        heldout_segments.npz the reward model's never-queried test segments
        loop_state.json      where the loop stands (round, pretrained, return scaling, rng state)
    metrics.json         final figures of the run
    tb/                  TensorBoard logs
    evals.jsonl          with --eval-every: one line per evaluation during the run
    best/                with --eval-every: the best evaluated policy so far (config, loop state, policy,
                         observation statistics, eval.json): a run directory for ``pbrl eval`` and ``pbrl video``
    train.lock           held (an OS lock) by the one ``pbrl train`` writing the run; it names that process

A checkpoint is written as a new generation: every file goes to a temporary name, is flushed to disk and renamed,
and only then does the manifest, itself replaced atomically, name the generation. A kill at any instant leaves the
manifest naming a whole generation, the previous one or the new one, never a mix. The generation before the
current one is kept, so that a reader that looked at the manifest just before a checkpoint still finds its files.
Runs written before generations existed keep their checkpoint files at the top of the directory (as ``best/`` does)
and are read from there; their first new checkpoint moves them to the layout above.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pbrl.errors import UserError
from pbrl.faults import kill_point

#: The files of one checkpoint generation (the reward model and held-out segments only in learned-reward runs).
CHECKPOINT_FILES = ("policy.zip", "vecnormalize.pkl", "reward_model.pt", "heldout_segments.npz", "loop_state.json")
LOCK_NAME = "train.lock"
#: What a run that was killed before it saved its config may leave, and a fresh start may write over.
_STARTING_FILES = frozenset({LOCK_NAME, "config.json.tmp"})


class RunDirError(UserError):
    """A run directory that cannot be used as asked, with what to do instead."""


class RunDir:
    """Paths of a run directory. The checkpoint files resolve to the current generation (``pinned`` fixes one)."""

    def __init__(self, path: str | Path, pinned: Path | None = None):
        self.path = Path(path)
        self._pinned = pinned
        self._lock_fd: int | None = None

    config = property(lambda self: self.path / "config.json")
    store = property(lambda self: self.path / "preferences.sqlite")
    manifest = property(lambda self: self.path / "checkpoint.json")
    metrics = property(lambda self: self.path / "metrics.json")
    tb = property(lambda self: self.path / "tb")
    evals = property(lambda self: self.path / "evals.jsonl")
    best = property(lambda self: self.path / "best")
    lock_file = property(lambda self: self.path / LOCK_NAME)

    policy = property(lambda self: self.checkpoint_dir() / "policy.zip")
    vecnormalize = property(lambda self: self.checkpoint_dir() / "vecnormalize.pkl")
    reward_model = property(lambda self: self.checkpoint_dir() / "reward_model.pt")
    heldout = property(lambda self: self.checkpoint_dir() / "heldout_segments.npz")
    state = property(lambda self: self.checkpoint_dir() / "loop_state.json")

    # -- the checkpoint's generation -------------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None for a run that has none (never checkpointed, older runs, kept policies)."""
        try:
            data = json.loads(self.manifest.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{self.manifest} cannot be read ({exc}); the checkpoints it names are in "
                              f"{self.path / 'checkpoints'}") from None
        if not isinstance(data, dict) or not isinstance(data.get("generation"), int):
            raise RunDirError(f"{self.manifest} is not a pbrl checkpoint manifest; the checkpoints it named are in "
                              f"{self.path / 'checkpoints'}")
        return data

    def generation(self) -> int:
        manifest = self.read_manifest()
        return 0 if manifest is None else int(manifest["generation"])

    def checkpoint_dir(self) -> Path:
        """Where the current checkpoint's files are: the generation the manifest names, else the directory itself."""
        if self._pinned is not None:
            return self._pinned
        manifest = self.read_manifest()
        return self.path if manifest is None else self.path / manifest["dir"]

    def pinned(self) -> RunDir:
        """This run directory with its checkpoint files fixed to the current generation: a reader that loads
        several files gets them all from one checkpoint even if the run writes a new one meanwhile."""
        return RunDir(self.path, self.checkpoint_dir())

    def holds_checkpoint(self) -> bool:
        return self.manifest.exists() or (self.path / "loop_state.json").exists()

    def holds_run(self) -> bool:
        return self.config.exists() and self.holds_checkpoint()

    def never_checkpointed(self) -> bool:
        """A run was started here (its config is saved) but was stopped before its first checkpoint."""
        return self.config.exists() and not self.holds_checkpoint()

    def write_checkpoint(self, writers: Mapping[str, Path | Callable[[Path], None]], summary: dict[str, Any]) -> int:
        """Write a new generation: ``writers[name](path)`` writes each file, or a ``Path`` (an unchanged file of the
        previous generation) is linked in; the manifest naming the generation is written last. Returns the
        generation."""
        gen = self.generation() + 1
        rel = f"checkpoints/{gen:06d}"
        gen_dir = self.path / rel
        if gen_dir.exists():  # a torn attempt at this generation, which no manifest names
            shutil.rmtree(gen_dir)
        gen_dir.mkdir(parents=True)
        files = {}
        for name, write in writers.items():
            write_file_atomic(gen_dir / name, _writer(write), sync_dir=False)
            files[name] = {"bytes": (gen_dir / name).stat().st_size, "sha256": _sha256(gen_dir / name)}
        _fsync_dir(gen_dir)
        _fsync_dir(gen_dir.parent)
        write_json_atomic(self.manifest, {"generation": gen, "dir": rel, "files": files, **summary})
        kill_point("checkpointed")
        self._prune(keep={f"{gen:06d}", f"{gen - 1:06d}"})
        return gen

    def _prune(self, keep: set[str]) -> None:
        for old in (self.path / "checkpoints").iterdir():
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
        for name in CHECKPOINT_FILES:  # an older run's files, superseded by the generations
            (self.path / name).unlink(missing_ok=True)

    def verify_checkpoint(self) -> None:
        """Check that every file the manifest names is whole (its size and hash), before a run resumes from it."""
        manifest = self.read_manifest()
        if manifest is None:
            return
        for name, meta in manifest.get("files", {}).items():
            path = self.path / manifest["dir"] / name
            if not path.exists() or path.stat().st_size != meta["bytes"] or _sha256(path) != meta["sha256"]:
                raise RunDirError(f"{path} is damaged or missing (it does not match {self.manifest}); the previous "
                                  f"checkpoint may still be in {self.path / 'checkpoints'}")

    # -- the states a directory can be in ------------------------------------------------------------------

    def check_new(self) -> None:
        """A fresh run may not write into a directory that already holds anything (but what a start that was killed
        before it saved its config leaves: the lock file, a config half written)."""
        if self.path.exists() and (not self.path.is_dir() or
                                   any(p.name not in _STARTING_FILES for p in self.path.iterdir())):
            if self.never_checkpointed():
                raise RunDirError(f"{self.path} holds a run that stopped before its first checkpoint; pass --resume "
                                  "to start it afresh from its config.json, or choose another --run-dir")
            what = "a run" if self.holds_run() else "files"
            raise RunDirError(
                f"{self.path} already holds {what}; pass --resume to continue it or choose another --run-dir"
            )

    def check_existing(self) -> None:
        if not self.holds_run():
            if self.never_checkpointed():
                raise RunDirError(f"{self.path} holds a run that stopped before its first checkpoint; start it afresh "
                                  f"with pbrl train --resume --run-dir {self.path}")
            raise RunDirError(f"{self.path} holds no pbrl run (no config.json and checkpoint); "
                              "start one with pbrl train --run-dir " + str(self.path))

    def check_whole(self) -> None:
        """A run that can be resumed, labelled or shown: not a kept policy (a run's ``best/``), which holds only
        what ``pbrl eval`` and ``pbrl video`` read."""
        self.check_existing()
        if (self.path / "eval.json").exists() and not self.store.exists():
            raise RunDirError(f"{self.path} is a kept policy, for pbrl eval and pbrl video only; resume, label or "
                              f"see the status of its run with --run-dir {self.path.parent}")

    # -- one writer ------------------------------------------------------------------------------------

    def lock(self) -> None:
        """Hold this run's writer lock until ``unlock`` or the process ends (the OS releases it after a kill, so a
        lock is never left stale). A second writer is refused, naming the holder; readers never take it. The lock
        file stays empty: taking the lock writes nothing."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot write to {self.path} ({exc.strerror}); a run needs a directory you may "
                              "write to (pbrl status, eval and video only read)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            pid = self.writer_pid()
            holder = f" (pid {pid})" if pid else ""
            raise RunDirError(f"{self.path} is being trained by another process{holder}; wait for it to end or "
                              "stop it first (pbrl status and pbrl label may run alongside it)") from None
        self._lock_fd = fd

    def writer_pid(self) -> int | None:
        """The pid of the process holding this run's writer lock, 0 when nobody holds it, None where the OS does not
        tell (it is read from Linux's /proc/locks, without touching the lock)."""
        try:
            st = os.stat(self.lock_file)
        except FileNotFoundError:
            return 0
        inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        try:
            lines = Path("/proc/locks").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
                return int(fields[4])
        return 0

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def read_json(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{path} is missing; {self.path} is not a whole pbrl run") from None
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{path} cannot be read ({exc})") from None


def _writer(src: Path | Callable[[Path], None]) -> Callable[[Path], None]:
    """A writer as given, or for a ``Path`` one that hard-links it (a checkpoint's files are never changed once
    written, so a link is a copy), copying where the file system cannot link."""
    if not isinstance(src, Path):
        return src

    def link(tmp: Path) -> None:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)

    return link


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, write: Callable[[Path], None], sync_dir: bool = True) -> None:
    """``write(tmp)`` writes the file under a temporary name; it is flushed to disk and renamed to ``path``, so a
    crash leaves either the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    kill_point(f"write:{path.name}")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        _fsync_dir(path.parent)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a crash leaves either the old or the new file, never half of one."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_file_atomic(path, lambda tmp: tmp.write_text(text))


def copy_tree_atomic(files: Mapping[str, Path | Callable[[Path], None]], dest: Path) -> None:
    """Make ``dest`` a directory of ``files`` (a source to link or copy, or a writer), complete before it replaces the
    old ``dest``."""
    tmp, old = dest.with_name(dest.name + ".tmp"), dest.with_name(dest.name + ".old")
    for d in (tmp, old):
        shutil.rmtree(d, ignore_errors=True)
    tmp.mkdir()
    for name, src in files.items():
        write_file_atomic(tmp / name, _writer(src), sync_dir=False)
    _fsync_dir(tmp)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    shutil.rmtree(old, ignore_errors=True)
