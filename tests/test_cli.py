"""The command line: bad input gets one clear line and a non-zero exit, and an existing run is left untouched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pbrl.cli import main

TINY = ["--env", "Pendulum-v1", "--n-labels", "10", "--total-timesteps", "256", "--label-interval", "128",
        "--segment-length", "10", "--pretrain-epochs", "2", "--fit-epochs", "1", "--eval-episodes", "1",
        "--reward-hidden", "8", "--no-progress", "--ppo", "n_steps=64", "--ppo", "batch_size=32",
        "--ppo", "n_epochs=1"]


def _snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--run-dir", str(run), *TINY]) == 0
    return run


def _fails_with_one_line(capsys, argv, message) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and message in err[0], err
    assert "Traceback" not in err[0]


@pytest.mark.parametrize("argv, message", [
    (["--env", "Hoper-v5"], "unknown env id 'Hoper-v5'"),
    (["--env", "ALE/Tetris-v5"], "not one of the Atari games"),
    (["--n-labels", "0"], "--n-labels must be a positive number"),
    (["--n-labels", "-5"], "--n-labels must be a positive number"),
    (["--total-timesteps", "0"], "--total-timesteps must be a positive number"),
    (["--segment-length", "0"], "--segment-length must be a positive number"),
    (["--teacher-gamma", "1.5"], "teacher gamma must be in (0, 1]"),
    (["--total-timesteps", "100"], "less than one PPO rollout"),
    (["--ppo", "n_stepz=5"], "--ppo takes KEY=VALUE"),
    (["--ppo", "n_steps=0"], "PPO n_steps must be a positive integer"),
    (["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
])
def test_bad_train_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    run = tmp_path / "new-run"
    _fails_with_one_line(capsys, ["train", "--run-dir", str(run), *argv], message)
    assert not run.exists()


def test_existing_run_dir_without_resume_is_refused_and_unchanged(finished_run, capsys):
    before = _snapshot(finished_run)
    _fails_with_one_line(capsys, ["train", "--run-dir", str(finished_run), *TINY], "pass --resume")
    assert _snapshot(finished_run) == before


def test_resume_of_a_dir_without_a_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    before = _snapshot(tmp_path)
    _fails_with_one_line(capsys, ["train", "--resume", "--run-dir", str(tmp_path)], "holds no pbrl run")
    _fails_with_one_line(capsys, ["train", "--resume", "--run-dir", str(tmp_path / "missing")], "holds no pbrl run")
    assert _snapshot(tmp_path) == before


def test_status_and_eval_of_a_finished_run(finished_run, capsys):
    assert main(["status", "--run-dir", str(finished_run)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["timesteps"] == 256 and status["n_labels"] == 10 and status["n_pending"] == 0
    assert status["finished"] and status["label_budget"] == 10
    assert main(["eval", "--run-dir", str(finished_run), "--episodes", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_eval_episodes"] == 2 and len(result["returns"]) == 2


def test_a_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pbrl.cli", "train", "--run-dir", str(tmp_path / "r"),
                           "--env", "NoSuchEnv-v0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown env id" in proc.stderr


def test_demo_compares_learned_true_and_random(tmp_path, capsys):
    """The README's main command, shrunk: both agents train in their own processes and the table is printed."""
    root = tmp_path / "demo"
    assert main(["demo", "--run-dir", str(root), "--env", "Pendulum-v1", "--total-timesteps", "2048",
                 "--n-labels", "10", "--eval-episodes", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("random actions", "PPO on the learned reward", "PPO on the true reward"):
        assert row in out
    for reward in ("learned", "true"):
        metrics = json.loads((root / reward / "metrics.json").read_text())
        assert metrics["reward"] == reward and metrics["total_timesteps"] == 2048
    _fails_with_one_line(capsys, ["demo", "--run-dir", str(root)], "already holds")


def test_label_without_pygame_names_the_extra(capsys, finished_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame now fails as if it were not installed
    _fails_with_one_line(capsys, ["label", "--run-dir", str(finished_run)], 'pip install "pbrl[ui]"')


def test_label_on_a_true_reward_run_or_ui_without_people_is_one_line(capsys, tmp_path, finished_run):
    _fails_with_one_line(capsys, ["train", "--run-dir", str(tmp_path / "x"), "--ui", *TINY], "--labeler human")
    assert not (tmp_path / "x").exists()
    true_run = tmp_path / "true"
    assert main(["train", "--run-dir", str(true_run), "--reward", "true", *TINY]) == 0
    capsys.readouterr()
    _fails_with_one_line(capsys, ["label", "--run-dir", str(true_run)], "asks no questions")


def test_status_reports_labels_pending_and_leased(capsys, tmp_path, tiny_config):
    from pbrl.loop import PreferenceRun
    from pbrl.store import PreferenceStore

    run = PreferenceRun.create(tiny_config(labeler="human", run_dir=str(tmp_path / "h")))
    run.collect_initial_segments()
    ids = run.ask(3)
    run.close()
    with PreferenceStore(tmp_path / "h" / "preferences.sqlite") as store:
        store.answer(ids[0], 1.0, "alice")
        store.lease_next("bob:1", 60.0)
    assert main(["status", "--run-dir", str(tmp_path / "h")]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["n_labels"], status["n_pending"], status["n_leased"], status["timesteps"]) == (1, 2, 1, 0)


@pytest.mark.parametrize(("flag", "module", "extra"),
                         [("--ui", "pygame", "ui"), ("--video", "imageio_ffmpeg", "video")])
def test_a_flag_whose_extra_is_missing_is_one_line_and_writes_nothing(capsys, tmp_path, monkeypatch, flag, module,
                                                                       extra):
    monkeypatch.setitem(sys.modules, module, None)
    run = tmp_path / "run"
    _fails_with_one_line(capsys, ["train", "--run-dir", str(run), "--labeler", "human", flag, *TINY],
                         f'pip install "pbrl[{extra}]"')
    assert not run.exists()


def test_video_of_a_run_without_mujoco_states_is_one_line(capsys, finished_run):
    _fails_with_one_line(capsys, ["video", "--run-dir", str(finished_run), "--out", "x.gif"], "not a MuJoCo env")


def test_family_defaults_fill_only_what_the_user_did_not_give():
    from pbrl.config import family_defaults

    assert family_defaults("Hopper-v5", {})["initial_episode_steps"] == 100  # a body that falls over
    assert family_defaults("Walker2d-v5", {"initial_episode_steps": 0})["initial_episode_steps"] == 0
    assert "initial_episode_steps" not in family_defaults("HalfCheetah-v5", {})
    assert family_defaults("pbrl/HopperBackflip-v0", {})["segment_length"] == 125  # 1 s clips for the backflip
    assert family_defaults("pbrl/HopperBackflip-v0", {"segment_length": 50})["segment_length"] == 50
    atari = family_defaults("ALE/Pong-v5", {"n_labels": 3300, "segment_length": 30})
    assert atari["segment_length"] == 30 and atari["label_rate_constant"] == 5e6
    assert atari["initial_label_fraction"] == pytest.approx(500 / 3300)


def test_resume_may_change_how_often_it_refits_but_not_the_method(finished_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    before = json.loads((run / "config.json").read_text())
    assert main(["train", "--resume", "--run-dir", str(run), "--label-interval", "256", "--fit-max-batches", "2",
                 "--seed", "5"]) == 0
    err = capsys.readouterr().err
    after = json.loads((run / "config.json").read_text())
    assert after["label_interval"] == 256 and after["fit_max_batches"] == 2 and after["seed"] == before["seed"]
    assert "label_interval=256" in err and "ignoring seed" in err


def test_a_finished_run_resumed_with_more_steps_trains_on_without_more_labels(finished_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "longer"
    shutil.copytree(finished_run, run)
    _fails_with_one_line(capsys, ["train", "--resume", "--run-dir", str(run), "--total-timesteps", "128"],
                         "below the 256 steps this run has taken")
    assert main(["train", "--resume", "--run-dir", str(run), "--total-timesteps", "512", "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["total_timesteps"] == 512 and metrics["n_labels"] == 10  # the whole budget was spent before
    assert json.loads((run / "config.json").read_text())["total_timesteps"] == 512


def test_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _fails_with_one_line(capsys, ["train", "--run-dir", str(tmp_path / "run"), *TINY, "--device", "cuda"],
                         "this torch sees no CUDA GPU")


def test_env_copies_in_their_own_processes(tmp_path):
    """--vec-env subproc: the same loop with each env copy stepping in a process of its own."""
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TINY, "--n-envs", "2", "--vec-env", "subproc"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_labels"] == 10 and metrics["total_timesteps"] == 256
    assert json.loads((run / "config.json").read_text())["vec_env"] == "subproc"
