"""What a labelling front end tells its person about the run: progress against the budget, the trainer's side, and
what it waits for when no pair is on screen. Shared by the pygame window and ``pbrl serve``'s page; no pygame here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pbrl.run_dir import RunDir
from pbrl.store import PreferenceStore


@dataclass
class RunInfo:
    """What the status line shows about the training side (re-read about once a second)."""

    budget: int = 0
    timesteps: int | None = None
    val_accuracy: float | None = None
    n_labels: int = 0
    n_pending: int = 0
    n_leased: int = 0
    n_incomparable: int = 0
    n_asked: int = 0
    finished: bool = False  # the run wrote metrics.json
    pretrained: bool = False
    next_round_step: int | None = None
    trainer_pid: int | None = None  # 0: no trainer holds the run; None: the OS does not say

    @property
    def n_answered(self) -> int:
        """Every answer a person gave, "can't tell" included: each took their time and counts against the budget."""
        return self.n_labels + self.n_incomparable


class RunWatcher:
    """Reads a run's ``RunInfo``: the store's counts, the budget from its config, the trainer's last checkpoint."""

    def __init__(self, run_dir: RunDir, store: PreferenceStore):
        self.run_dir, self.store = run_dir, store
        self._round_steps: int | None = None

    def read(self, last: RunInfo) -> RunInfo:
        """The run as it is now; figures that cannot be read this moment (a file being replaced) keep ``last``'s."""
        counts = self.store.counts()
        info = dataclasses.replace(last, n_labels=counts.n_labels, n_pending=counts.n_pending,
                                   n_leased=counts.n_leased, n_incomparable=counts.n_incomparable,
                                   n_asked=counts.n_asked, finished=self.run_dir.metrics.exists(),
                                   trainer_pid=self.run_dir.writer_pid())
        try:
            if not info.budget:  # the config never changes what was asked once the run exists
                from pbrl.config import TrainConfig

                cfg = TrainConfig.load(self.run_dir.config)
                info.budget, self._round_steps = cfg.n_labels, cfg.round_steps
            if self.run_dir.holds_checkpoint():
                state = self.run_dir.read_json(self.run_dir.state)
                info.timesteps = state.get("num_timesteps")
                info.pretrained = bool(state.get("pretrained"))
                info.val_accuracy = state.get("last_fit", {}).get("val_accuracy")
                if self._round_steps and info.timesteps is not None:
                    info.next_round_step = (info.timesteps // self._round_steps + 1) * self._round_steps
        except (OSError, ValueError):  # a file being replaced right now: keep the last figures
            pass
        return info


def progress_line(info: RunInfo, per_minute: float) -> str:
    """Answers against the budget (can't-tell ones included), queued, rate, ETA at ``per_minute`` answers."""
    left = max(info.budget - info.n_answered, 0)
    eta = f"{left / per_minute:.0f} min" if per_minute > 0 and left else "-"
    answered = f"answered {info.n_answered}/{info.budget}"
    if info.n_incomparable:
        answered += f" ({info.n_incomparable} can't tell)"
    return "   ".join([answered, f"queued {info.n_pending}", f"{per_minute:.1f} labels/min", f"ETA {eta}"])


def agent_words(info: RunInfo) -> list[str]:
    """The trainer's side: agent step and the reward model's validation accuracy."""
    words = [f"agent step {info.timesteps:,}" if info.timesteps is not None else "agent not started"]
    if info.val_accuracy is not None:
        words.append(f"reward model val acc {info.val_accuracy:.2f}")
    return words


class SessionView(Protocol):
    """What ``waiting_text`` asks of a labelling session (``pbrl.ui.session.LabelSession``)."""

    error: BaseException | None

    @property
    def idle(self) -> bool: ...

    def has_next(self) -> bool: ...


def waiting_text(info: RunInfo, run: Path, session: SessionView, close: str = "Close the window (q)") -> str:
    """What a front end waits for when no pair is on screen; ``close`` says how its person leaves."""
    if session.error is not None:
        return f"clips cannot be rendered: {session.error}"
    if info.finished:
        return f"Training has finished: all {info.n_answered} answers are in. Thank you! {close}."
    if info.budget and info.n_answered >= info.budget:
        return f"The label budget is spent: all {info.budget} answers are in. {close}."
    if session.idle:
        return "Paused because you were away: press any key to go on"
    if session.has_next():
        return "Loading the next pair..."
    if info.n_pending > info.n_leased:
        return "Loading the next pair..."
    if info.trainer_pid == 0:
        return f"The trainer is not running: start it with  pbrl train --resume --run-dir {run}"
    if info.n_pending:
        return "Every open question is on another labeler's screen; more come with the trainer's next round"
    if not info.pretrained:
        return "Waiting for the trainer's first questions..."
    step = f" at agent step {info.next_round_step:,}" if info.next_round_step else ""
    return f"All caught up: the trainer asks its next questions{step}"
