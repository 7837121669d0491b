"""Every mistake a user can make gets a non-zero exit and at most three lines on stderr, no traceback, and leaves
every file that was there before byte for byte as it was."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from pbrl.cli import main
from pbrl.run_dir import RunDir

TINY = ["--env", "Pendulum-v1", "--n-labels", "10", "--total-timesteps", "256", "--label-interval", "128",
        "--segment-length", "10", "--pretrain-epochs", "2", "--fit-epochs", "1", "--eval-episodes", "1",
        "--reward-hidden", "8", "--no-progress", "--ppo", "n_steps=64", "--ppo", "batch_size=32",
        "--ppo", "n_epochs=1"]
CUSTOM = "tests.custom_env_module"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("bad-input") / "run"
    assert main(["train", "--run-dir", str(run), *TINY, "--eval-every", "128"]) == 0
    return run


def _snapshot(*roots: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


class Case:
    """A place to make a mistake in: a new run dir path, and copies of a finished run to damage."""

    def __init__(self, tmp: Path, finished: Path):
        self.tmp, self.finished = tmp, finished
        self.new = str(tmp / "new-run")

    def run(self, damage: Callable[[RunDir], None] | None = None) -> str:
        """A private copy of the finished run, damaged as given."""
        path = self.tmp / "copy"
        shutil.copytree(self.finished, path)
        if damage is not None:
            damage(RunDir(path))
        return str(path)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _newer_schema(run: RunDir) -> None:
    with sqlite3.connect(run.store) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.close()


def _hold_lock(run: RunDir) -> None:
    holder = RunDir(run.path)  # another writer: a lock on its own open file, released after the case
    holder.lock()
    _held.append(holder)


_held: list[RunDir] = []


def _train(*argv: str) -> Callable[[Case], list[str]]:
    return lambda c: ["train", "--run-dir", c.new, *TINY, *argv]


CASES: list[tuple[str, Callable[[Case], list[str]], str]] = [
    # unknown or unsupported envs
    ("unknown env", _train("--env", "Hoper-v5"), "unknown env id 'Hoper-v5'"),
    ("unprepared Atari game", _train("--env", "ALE/Tetris-v5"), "not one of the Atari games"),
    ("tuple observations", _train("--env", "Blackjack-v1"), "Blackjack-v1"),
    ("discrete observations", _train("--env", "FrozenLake-v1"), "FrozenLake-v1"),
    ("missing optional dependency", _train("--env", "CarRacing-v3"), "box2d"),
    ("module that does not exist", _train("--env", "no_such_pkg.envs:Foo-v0"), "cannot import module"),
    ("module without the id", _train("--env", f"{CUSTOM}:NoSuch-v0"), "does not register"),
    ("env kwarg the env does not take", _train("--env", f"{CUSTOM}:PbrlTestReach-v0", "--env-kwargs", "speed=2"),
     "speed"),
    ("env kwarg without a value", _train("--env-kwargs", "target"), "--env-kwargs takes KEY=VALUE"),
    ("env kwarg the env trips over when it steps", _train("--env", "Hopper-v5", "--env-kwargs", "ctrl_cost_weight=abc"),
     "fails on its first step (TypeError"),
    # numbers
    ("zero labels", _train("--n-labels", "0"), "--n-labels must be a positive number"),
    ("negative labels", _train("--n-labels", "-5"), "--n-labels must be a positive number"),
    ("zero steps", _train("--total-timesteps", "0"), "--total-timesteps must be a positive number"),
    ("zero segment length", _train("--segment-length", "0"), "--segment-length must be a positive number"),
    ("negative seed", _train("--seed", "-1"), "--seed must be a whole number"),
    ("negative reward learning rate", _train("--reward-lr", "-1"), "--reward-lr must be a positive number"),
    ("NaN reward learning rate", _train("--reward-lr", "nan"), "--reward-lr must be a positive number"),
    ("negative L2", _train("--l2-init", "-0.5"), "--l2-init must be >= 0"),
    ("teacher gamma above 1", _train("--teacher-gamma", "1.5"), "teacher gamma must be in (0, 1]"),
    ("held-out rate of 1.5", _train("--heldout-rate", "1.5"), "--heldout-rate must be in [0, 1)"),
    ("buffer of one segment", _train("--segment-buffer-size", "1"), "--segment-buffer-size must be >= 2"),
    ("fewer steps than a rollout", _train("--total-timesteps", "32"), "less than one PPO rollout"),
    ("one-step rollouts and minibatches", _train("--total-timesteps", "1", "--ppo", "n_steps=1", "--ppo",
                                                 "batch_size=1"), "PPO batch_size must be at least 2"),
    ("one-step rollouts", _train("--total-timesteps", "64", "--ppo", "n_steps=1"), "at least 2 steps"),
    ("unknown PPO key", _train("--ppo", "n_stepz=5"), "--ppo takes KEY=VALUE"),
    ("zero PPO steps", _train("--ppo", "n_steps=0"), "PPO n_steps must be a positive integer"),
    ("PPO learning rate as text", _train("--ppo", "learning_rate=fast"), "PPO learning_rate must be a positive"),
    ("PPO gamma above 1", _train("--ppo", "gamma=2"), "PPO gamma must be in (0, 1]"),
    ("unknown learning-rate schedule", _train("--ppo", "lr_schedule=cosine"),
     "PPO lr_schedule must be one of constant, linear, got 'cosine'"),
    ("PPO policy kwargs not an object", _train("--ppo", "policy_kwargs=[64]"), "PPO policy_kwargs must be"),
    ("unknown device", _train("--device", "tpu"), "--device must be auto, cpu, cuda or cuda:N"),
    ("unknown labeler", _train("--labeler", "nobody"), "--labeler must be one of"),
    ("a judge for another env", _train("--labeler", "judge:backflip"), "judges pbrl/HopperBackflip-v0"),
    ("window without people", _train("--ui"), "--ui opens the labelling window"),
    # segments that cannot be cut, checked before anything is written
    ("segment longer than an episode", _train("--max-episode-steps", "20", "--segment-length", "50"),
     "--segment-length 50 is longer than an episode (20 steps)"),
    ("segment longer than a rollout", _train("--segment-length", "100"), "longer than a PPO rollout"),
    ("segment longer than the initial episodes", lambda c: ["train", "--run-dir", c.new, "--env", "Hopper-v5",
                                                            "--segment-length", "150", "--no-progress"],
     "longer than the initial episodes (100 steps)"),
    # run directories in the wrong state
    ("occupied run dir", lambda c: ["train", "--run-dir", str(c.finished), *TINY], "pass --resume"),
    ("resume of a dir with other files", lambda c: ["train", "--resume", "--run-dir", str(c.tmp)],
     "holds no pbrl run"),
    ("resume of a missing dir", lambda c: ["train", "--resume", "--run-dir", c.new], "holds no pbrl run"),
    ("resume of a kept policy", lambda c: ["train", "--resume", "--run-dir", str(c.finished / "best")],
     "is a kept policy"),
    ("resume with fewer steps than taken", lambda c: ["train", "--resume", "--run-dir", str(c.finished),
                                                      "--total-timesteps", "64"], "below the 256 steps"),
    ("second writer", lambda c: ["train", "--resume", "--run-dir", c.run(_hold_lock), "--total-timesteps", "512"],
     "is being trained by another process"),
    ("resume with a damaged config", lambda c: ["train", "--resume", "--run-dir",
                                                c.run(lambda r: _truncate(r.config))], "config.json cannot be read"),
    ("resume with a damaged policy", lambda c: ["train", "--resume", "--run-dir",
                                                c.run(lambda r: _truncate(r.policy))], "is damaged or missing"),
    ("eval of a damaged policy", lambda c: ["eval", "--run-dir", c.run(lambda r: _truncate(r.policy))],
     "is damaged or missing"),
    ("status with a damaged manifest", lambda c: ["status", "--run-dir", c.run(lambda r: _truncate(r.manifest))],
     "checkpoint.json cannot be read"),
    # the preference store
    ("status of a truncated store", lambda c: ["status", "--run-dir", c.run(lambda r: _truncate(r.store))],
     "preferences.sqlite"),
    ("resume of a truncated store", lambda c: ["train", "--resume", "--run-dir",
                                               c.run(lambda r: _truncate(r.store)), "--total-timesteps", "512"],
     "preferences.sqlite"),
    ("status of a store that is not a database", lambda c: ["status", "--run-dir",
                                                            c.run(lambda r: r.store.write_bytes(b"x" * 4096))],
     "preferences.sqlite"),
    ("status of a newer store", lambda c: ["status", "--run-dir", c.run(_newer_schema)], "upgrade pbrl"),
    ("resume of a newer store", lambda c: ["train", "--resume", "--run-dir", c.run(_newer_schema),
                                           "--total-timesteps", "512"], "upgrade pbrl"),
    # the other commands
    ("status of a missing dir", lambda c: ["status", "--run-dir", c.new], "holds no pbrl run"),
    ("eval with zero episodes", lambda c: ["eval", "--run-dir", str(c.finished), "--episodes", "0"],
     "--episodes must be a positive number"),
    ("video with zero episodes", lambda c: ["video", "--run-dir", str(c.finished), "--episodes", "0"],
     "--episodes must be a positive number"),
    ("video of the wrong kind", lambda c: ["video", "--run-dir", str(c.finished), "--out", str(c.tmp / "v.avi")],
     "--out must end in .mp4 or .gif"),
    # an env that breaks mid-run
    ("NaN observations", _train("--env", f"{CUSTOM}:PbrlTestNaN-v0"), "observation"),
]


@pytest.mark.parametrize("name, argv, message", CASES, ids=[c[0] for c in CASES])
def test_a_mistake_is_one_short_message_and_changes_nothing(tmp_path, finished, capsys, name, argv, message):
    case = Case(tmp_path, finished)
    (tmp_path / "notes.txt").write_text("a file that is not a run")
    args = argv(case)
    before = _snapshot(tmp_path, finished)
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert 1 <= len(err) <= 3 and not any("Traceback" in line for line in err), err
    assert message in err[-1], err
    after = _snapshot(tmp_path, finished)
    assert {k: v for k, v in after.items() if k in before} == before  # what was there is untouched
    if name != "NaN observations":  # the NaN is met only once the run is under way, its checkpoint kept
        assert not Path(case.new).exists()
    for run in _held:
        run.unlock()
    _held.clear()


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40
