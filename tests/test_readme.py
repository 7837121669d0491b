"""The README is a first page: short, its two commands the ones CI runs, and its tour and Python example run as
written, shrunk to tiny settings (a few hundred agent steps, a handful of synthetic labels)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"

#: Appended to the tour's ``pbrl train`` lines: argparse keeps the last value of a flag, so these replace the
#: README's budgets (1M steps, 700 labels) with ones that run in seconds.
TINY_TRAIN = ["--n-labels", "8", "--total-timesteps", "256", "--label-interval", "128", "--segment-length", "10",
              "--pretrain-epochs", "2", "--fit-epochs", "1", "--eval-episodes", "1", "--n-envs", "1", "--no-progress",
              "--ppo", "n_steps=64", "--ppo", "batch_size=32", "--ppo", "n_epochs=1"]


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _fenced(heading: str, lang: str) -> str:
    """The first fenced ``lang`` block after ``heading``."""
    text = _text()
    section = text[text.index(heading):]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def _tour() -> list[list[str]]:
    """The tour's commands, each as argv without the leading ``pbrl`` (comments dropped)."""
    lines = [line.split("  #")[0].strip() for line in _fenced("## A tour", "bash").splitlines()]
    commands = [shlex.split(line) for line in lines if line]
    assert all(argv[0] == "pbrl" for argv in commands), "every tour line is a pbrl command"
    return [argv[1:] for argv in commands]


def _set_up_commands() -> list[str]:
    return [line.strip() for line in _text().splitlines() if line.startswith("    python3 -m venv .venv")]


def test_the_readme_is_a_first_page():
    assert len(README.read_bytes()) < 8000
    for heading in ("## Two commands", "## A tour", "## From Python", "## Results", "## Documentation"):
        assert heading in _text()


def test_the_test_command_is_the_one_ci_runs_and_the_demo_is_set_up_alike():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    demo, tests = _set_up_commands()
    assert ci == [tests]
    assert demo.endswith("&& .venv/bin/pbrl demo")
    assert demo.split(" && ")[:2] == [step.replace(" -q", "") for step in tests.split(" && ")[:2]]


def test_the_python_version_is_the_one_pyproject_requires():
    required = re.search(r'requires-python = ">=([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert set(re.findall(r"Python (3\.[0-9]+)", _text())) == {required}


def test_every_local_link_points_at_a_file():
    """Links into docs/ and results/ (docs/web.md, the browser page, is written beside this README's change)."""
    pending = {"docs/web.md"}
    for target in re.findall(r"\]\(([^)#:]+)\)", _text()):
        assert (ROOT / target).exists() or target in pending, target


def test_the_tour_runs_as_written(tmp_path, monkeypatch, capsys):
    """Each tour line in order, in a fresh folder: the train lines with tiny budgets appended; the lines that wait
    for a person (``--labeler human`` and ``pbrl label``) are only parsed; ``pbrl bench`` with ``--dry-run``; and
    ``pbrl bench report`` on a copy of the committed benchmark's finished trials. The commands run in this process
    (a fresh interpreter for each would double the test's time); ``presets`` runs as ``python -m pbrl``, the way
    the installed ``pbrl`` does."""
    from pbrl.cli import build_parser, main

    def pbrl(argv: list[str]) -> str:
        capsys.readouterr()
        assert main(argv) == 0, f"pbrl {shlex.join(argv)}\n{capsys.readouterr().err[-2000:]}"
        return capsys.readouterr().out

    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks")
    monkeypatch.chdir(tmp_path)
    seen = set()
    for argv in _tour():
        command = "bench report" if argv[:2] == ["bench", "report"] else argv[0]
        seen.add(command)
        if "human" in argv or command in ("label", "serve"):
            build_parser().parse_args(argv)  # exits (SystemExit) on a flag that does not exist
        elif command == "train" and "--resume" in argv:
            pbrl([*argv, "--total-timesteps", "384", "--no-progress"])  # the finished tiny run, trained on
            status = json.loads(pbrl(["status", *argv[argv.index("--run-dir"):][:2]]))
            assert status["timesteps"] >= 384 and status["finished"]
        elif command == "train":
            pbrl([*argv, *TINY_TRAIN])
            run = tmp_path / argv[argv.index("--run-dir") + 1]
            assert json.loads((run / "metrics.json").read_text())["total_timesteps"] >= 256
        elif command == "status":
            assert json.loads(pbrl(argv))["timesteps"] >= 256
        elif command == "eval":
            assert json.loads(pbrl([*argv, "--episodes", "1"]))["n_eval_episodes"] == 1
        elif command == "video":
            pbrl([*argv, "--max-steps", "8", "--size", "32"])
            assert (tmp_path / argv[argv.index("--out") + 1]).stat().st_size > 0
        elif command == "presets":
            proc = subprocess.run([sys.executable, "-m", "pbrl", *argv], capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0 and argv[1] in proc.stdout, proc.stderr
        elif command == "bench":
            assert "Hopper-v5" in pbrl([*argv, "--dir", "runs/bench/mujoco8", "--dry-run"])
        elif command == "bench report":
            shutil.copytree(ROOT / "results" / "benchmark" / "mujoco8", tmp_path / argv[2], dirs_exist_ok=True)
            pbrl([*argv, "--out", "report"])
            assert (tmp_path / "report" / "report.md").exists()
        else:
            pytest.fail(f"the tour has a command this test does not know how to run: pbrl {shlex.join(argv)}")
    assert {"train", "label", "eval", "status", "video", "bench", "presets"} <= seen


def test_the_python_example_runs_as_written(tmp_path, monkeypatch):
    code = _fenced("## From Python", "python")
    assert re.findall(r"^from pbrl import (.*)$", code, re.M) == ["PreferenceRun, RunDir, TrainConfig"]
    monkeypatch.chdir(tmp_path)  # the example writes runs/pendulum-api
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    metrics = json.loads((tmp_path / "runs" / "pendulum-api" / "metrics.json").read_text())
    assert metrics["n_labels"] == 20 and metrics["total_timesteps"] >= 2048 and metrics["reward"] == "learned"
