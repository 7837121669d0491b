"""A user's own env and labeler: from the command line by ``module:EnvId``, and the Python example of
``docs/your_own_env.md`` as written."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from pbrl.cli import main

GUIDE = Path(__file__).parents[1] / "docs" / "your_own_env.md"


def test_the_cli_trains_an_env_named_by_its_module_with_its_kwargs(tmp_path, capsys):
    run = tmp_path / "reach"
    argv = ["train", "--env", "tests.custom_env_module:PbrlTestReach-v0", "--env-kwargs", "target=2.0",
            "--n-labels", "12", "--total-timesteps", "256", "--label-interval", "128", "--segment-length", "10",
            "--pretrain-epochs", "2", "--fit-epochs", "1", "--eval-episodes", "2", "--no-progress",
            "--ppo", "n_steps=64", "--ppo", "batch_size=32", "--ppo", "n_epochs=1", "--run-dir", str(run)]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env_id"] == "tests.custom_env_module:PbrlTestReach-v0" and cfg["env_kwargs"] == {"target": 2.0}
    assert metrics["n_labels"] == 12 and metrics["n_labels_asked"] == metrics["n_labels_budget"] == 12
    # the reward is minus the distance to the target at x = 2: a point starting near the origin pays about -2 a step
    assert -2.7 * 50 < metrics["eval_true_return_mean"] < -0.5 * 50
    assert main(["eval", "--run-dir", str(run), "--episodes", "2"]) == 0  # eval builds the same env again
    report = json.loads(capsys.readouterr().out)
    assert -2.7 * 50 < report["eval_true_return_mean"] < -0.5 * 50


def test_the_guide_python_example_runs_as_written(tmp_path, monkeypatch):
    text = GUIDE.read_text()
    section = text[text.index("## Your own env, your own labeler"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # the example writes runs/drift
    exec(compile(code, str(GUIDE), "exec"), {"__name__": "guide_example"})
    run = tmp_path / "runs" / "drift"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_labels"] == 40 and metrics["total_timesteps"] >= 4096
    with sqlite3.connect(run / "preferences.sqlite") as conn:  # the user's labeler answered every query
        names = conn.execute("SELECT DISTINCT labeler FROM comparisons WHERE status='answered'").fetchall()
    assert names == [("nearer-the-centre",)]
