"""A run survives SIGKILL at any instant: checkpoints are whole generations, labels stay, one writer per run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pbrl.cli import main
from pbrl.run_dir import RunDir, RunDirError

TRAIN = ["--env", "Pendulum-v1", "--n-labels", "12", "--total-timesteps", "512", "--label-interval", "128",
         "--segment-length", "10", "--pretrain-epochs", "2", "--fit-epochs", "1", "--eval-episodes", "1",
         "--reward-hidden", "8", "--eval-every", "256", "--no-progress", "--ppo", "n_steps=64",
         "--ppo", "batch_size=32", "--ppo", "n_epochs=1"]


def _train(run: Path, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PBRL_KILL_AT"}
    if kill_at:
        env["PBRL_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "pbrl", "train", "--run-dir", str(run), *extra], env=env,
                          capture_output=True, text=True, timeout=300)


def _labels(store: Path) -> dict[int, tuple]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT id, first_id, second_id, status, label FROM comparisons "
                            "WHERE status != 'pending'").fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


@pytest.mark.slow
@pytest.mark.parametrize("kill_at, holds_checkpoint", [
    ("write:config.json", False),       # config half written: the fresh command starts it again
    ("created", False),                 # config saved, first checkpoint not yet: --resume starts it afresh
    ("pretrain", True),                 # the initial labels are in the store, the reward model not yet fitted
    ("write:policy.zip:3", True),       # the third checkpoint's policy file half done
    ("write:checkpoint.json:4", True),  # every file of the fourth generation written, the manifest not yet renamed
    ("store-commit:9", True),           # inside a label's transaction
])
def test_a_run_killed_at_any_point_resumes_to_the_end_with_every_label(tmp_path, kill_at, holds_checkpoint):
    run = tmp_path / "run"
    killed = _train(run, *TRAIN, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert RunDir(run).holds_run() == holds_checkpoint
    before = _labels(run / "preferences.sqlite") if (run / "preferences.sqlite").exists() else {}
    if kill_at.startswith("store-commit"):
        assert before  # the kill came after some labels were stored

    resumed = _train(run, "--resume")
    if kill_at == "write:config.json":  # nothing of the run was written: resume says so, the fresh command works
        assert resumed.returncode == 2 and "holds no pbrl run" in resumed.stderr
        resumed = _train(run, *TRAIN)
    assert resumed.returncode == 0, resumed.stderr
    after = _labels(run / "preferences.sqlite")
    assert all(after[k] == v for k, v in before.items())  # nothing stored before the kill was lost or changed
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_labels"] == 12 and metrics["total_timesteps"] == 512
    with sqlite3.connect(run / "preferences.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    RunDir(run).verify_checkpoint()
    kept = sorted(int(p.name) for p in (run / "checkpoints").iterdir())  # the last two generations
    assert len(kept) == 2 and kept[0] + 1 == kept[1] == RunDir(run).generation()


def test_a_torn_manifest_file_is_never_read(tmp_path):
    """A checkpoint's generation is named only by a manifest written last: files of a later, unfinished generation
    are ignored, and a damaged file of the named one is refused in one line."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    files = {"policy.zip": b"one", "loop_state.json": b"{}"}
    run.write_checkpoint({k: (lambda p, v=v: p.write_bytes(v)) for k, v in files.items()}, {})
    (run.path / "checkpoints" / "000002").mkdir()  # a generation a kill cut short: no manifest names it
    (run.path / "checkpoints" / "000002" / "policy.zip").write_bytes(b"tw")
    assert run.policy == run.path / "checkpoints" / "000001" / "policy.zip" and run.policy.read_bytes() == b"one"
    run.verify_checkpoint()
    assert run.write_checkpoint({"policy.zip": lambda p: p.write_bytes(b"two")}, {}) == 2  # the torn one replaced
    assert run.policy.read_bytes() == b"two"
    run.policy.write_bytes(b"tw0")
    with pytest.raises(RunDirError, match="damaged"):
        run.verify_checkpoint()


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TRAIN, "--total-timesteps", "128"]) == 0
    capsys.readouterr()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pbrl.run_dir import RunDir; RunDir(sys.argv[1]).lock(); print('held', flush=True); "
        "time.sleep(60)"), str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        assert main(["train", "--resume", "--run-dir", str(run), "--total-timesteps", "256"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0] and "being trained by another process" in err[0]
        assert {p: p.read_bytes() for p in before} == before  # the refused writer changed nothing
        assert main(["status", "--run-dir", str(run)]) == 0  # readers stay allowed
    finally:
        holder.kill()
        holder.wait()
    # the OS released the killed holder's lock: the run goes on
    assert main(["train", "--resume", "--run-dir", str(run), "--total-timesteps", "256"]) == 0


def test_ctrl_c_at_start_leaves_a_run_that_resume_starts_afresh(tmp_path, capsys, monkeypatch):
    from pbrl.loop import PreferenceRun

    run = tmp_path / "run"

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreferenceRun, "checkpoint", interrupted)  # Ctrl-C after the config, before a checkpoint
    assert main(["train", "--run-dir", str(run), *TRAIN]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pbrl: stopped before the first checkpoint; start it afresh: pbrl train --resume --run-dir {run}"]
    monkeypatch.undo()
    assert main(["train", "--run-dir", str(run), *TRAIN]) == 2  # not silently overwritten
    assert "pass --resume to start it afresh" in capsys.readouterr().err
    assert main(["train", "--resume", "--run-dir", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["n_labels"] == 12


def test_a_run_from_before_generations_resumes_and_moves_to_them(tmp_path, capsys):
    """Older runs kept one set of checkpoint files at the top of the run directory; they still read and resume, and
    their first new checkpoint moves them to the generations."""
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TRAIN, "--total-timesteps", "128"]) == 0
    current = RunDir(run).checkpoint_dir()
    for f in current.iterdir():  # the layout an older pbrl wrote
        f.rename(run / f.name)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoint.json").unlink()
    assert RunDir(run).holds_run() and RunDir(run).policy == run / "policy.zip"
    capsys.readouterr()
    assert main(["status", "--run-dir", str(run)]) == 0 and '"timesteps": 128' in capsys.readouterr().out
    assert main(["train", "--resume", "--run-dir", str(run), "--total-timesteps", "256"]) == 0
    assert RunDir(run).generation() == 1 and not (run / "policy.zip").exists()  # moved on: no stale copy left
    assert json.loads((run / "metrics.json").read_text())["total_timesteps"] == 256


@pytest.mark.parametrize("when", ["while loading", "after the first checkpoint"])
def test_a_real_ctrl_c_is_one_line_and_the_run_goes_on_after(tmp_path, when):
    """SIGINT as a terminal sends it, while Python still loads torch and once the run is under way."""
    import time

    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "pbrl", "train", "--run-dir", str(run), *TRAIN,
                             "--total-timesteps", "20000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    if when == "while loading":
        time.sleep(0.3)
    else:
        while not RunDir(run).holds_run() and time.monotonic() < deadline:
            time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1 and "Traceback" not in err, err
    if when == "while loading":
        assert lines[0].startswith("pbrl: stopped before")
    else:
        assert lines[0] == f"pbrl: stopped; continue from the last checkpoint with: pbrl train --resume --run-dir {run}"
        assert main(["train", "--resume", "--run-dir", str(run), "--total-timesteps", "512"]) == 0


def test_an_unchanged_held_out_sample_is_linked_into_the_next_generation_not_written_again(tiny_config):
    from pbrl.loop import PreferenceRun

    run = PreferenceRun.create(tiny_config(heldout_rate=0.0))  # nothing is ever set aside: the sample is fixed
    run_dir = run.run_dir
    first = run_dir.heldout
    run.checkpoint()
    second = run_dir.heldout
    run.close()
    assert first.parent != second.parent and first.read_bytes() == second.read_bytes()
    assert first.stat().st_ino == second.stat().st_ino  # one file, two names
    RunDir(run_dir.path).verify_checkpoint()
