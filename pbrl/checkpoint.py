"""What a run saves: ``LoopState`` (where the loop stands), each checkpoint generation, and the kept best policy.

The loop checkpoints at the end of every labelling round (``save_checkpoint``); ``RunDir.write_checkpoint`` makes
each one a whole generation, so a kill at any instant leaves the last one complete. With ``--eval-every`` the best
evaluated policy is copied to ``RUN_DIR/best`` (``keep_best``), a run directory ``pbrl eval`` and ``pbrl video`` read.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbrl.config import TrainConfig
from pbrl.faults import kill_point
from pbrl.finite import assert_finite_parameters
from pbrl.heldout import HeldOutSample
from pbrl.reward import EnsembleBase, RewardTrainer
from pbrl.rollout import RelabelingPPO
from pbrl.run_dir import RunDir, RunDirError, copy_tree_atomic
from pbrl.store import PreferenceStore


@dataclass
class LoopState:
    """Where the loop stands; saved as loop_state.json at every checkpoint."""

    round: int = 0
    pretrained: bool = False
    n_pretrain_env_steps: int = 0
    num_timesteps: int = 0
    wall_time_s: float = 0.0
    fit_time_s: float = 0.0
    ppo_time_s: float = 0.0
    return_normalizer: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    last_fit: dict[str, float] = field(default_factory=dict)
    code_version: str = ""
    last_eval_step: int = 0  # with --eval-every: the agent step of the last evaluation
    best_eval: dict[str, Any] = field(default_factory=dict)  # and the best one so far (kept in RUN_DIR/best)
    last_round: dict[str, float] = field(default_factory=dict)  # what the last round logged, for `pbrl status`


def code_version() -> str:
    """pbrl's version, with the git commit (and '-dirty') when run from a checkout: results say what made them."""
    from pbrl import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+{commit}{'-dirty' if dirty else ''}" if commit else __version__


def claim_run_dir(run_dir: RunDir, cfg: TrainConfig, restart: bool) -> None:
    """Take a new run's writer lock and save its config: from here on the directory is the run's. ``restart``: the
    directory may hold a run that stopped before its first checkpoint, which this one replaces."""
    run_dir.lock()
    if restart and not run_dir.never_checkpointed():
        raise RunDirError(f"{run_dir.path} holds a checkpoint; continue it with pbrl train --resume")
    if not restart:
        run_dir.check_new()  # again, under the lock: nobody started a run here meanwhile
    cfg.save(run_dir.config)
    kill_point("created")


def open_checkpoint(run_dir: RunDir) -> RunDir:
    """Check a run's last checkpoint and its store by reading them, then take its writer lock: the run directory
    with every file of that checkpoint from one generation."""
    run_dir.verify_checkpoint()
    PreferenceStore(run_dir.store, readonly=True).close()
    run_dir.lock()
    return run_dir.pinned()


def load_state(run_dir: RunDir | None) -> LoopState:
    """The loop state of a checkpoint (``run_dir`` pinned to it), or a new run's; either records the code version
    that started the run."""
    state = LoopState(**run_dir.read_json(run_dir.state)) if run_dir is not None else LoopState()
    state.code_version = state.code_version or code_version()
    return state


def save_checkpoint(run_dir: RunDir, state: LoopState, ppo: RelabelingPPO, venv, ensemble: EnsembleBase | None,
                    trainer: RewardTrainer | None, heldout: HeldOutSample) -> None:
    """Save PPO, its observation statistics (``venv``, a VecNormalize), the ensemble with its optimiser, the held-out
    segments and ``state`` as one new generation of the checkpoint."""
    state_json = json.dumps(state.__dict__, indent=2, sort_keys=True) + "\n"
    writers: dict[str, Any] = {"policy.zip": lambda path: ppo.save(str(path)),
                               "vecnormalize.pkl": lambda path: venv.save(str(path))}
    if ensemble is not None and trainer is not None:
        assert_finite_parameters(ensemble)  # nothing non-finite is checkpointed
        extra = {"optimizer": trainer.optimizer.state_dict(), "l2": trainer.l2}
        writers["reward_model.pt"] = lambda path: ensemble.save(path, extra)
        previous = run_dir.heldout  # the current generation's, unless the sample changed since
        writers["heldout_segments.npz"] = (previous if heldout.unchanged_since_save and previous.exists()
                                           else heldout.save)
    writers["loop_state.json"] = lambda path: path.write_text(state_json)
    run_dir.write_checkpoint(writers, {"num_timesteps": state.num_timesteps, "round": state.round})


def keep_best(run_dir: RunDir, best_eval: dict[str, Any]) -> None:
    """Copy the checkpoint just written, the best evaluated policy so far, to RUN_DIR/best with its evaluation
    (``eval.json``). The new copy is complete before it replaces the old one."""
    run = run_dir.pinned()
    eval_json = json.dumps(best_eval, indent=2, sort_keys=True) + "\n"
    copy_tree_atomic({"config.json": run.config, "loop_state.json": run.state, "policy.zip": run.policy,
                      "vecnormalize.pkl": run.vecnormalize,
                      "eval.json": lambda path: path.write_text(eval_json)}, run.best)
