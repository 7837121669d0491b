"""pbrl bench: the grid a spec describes, which trials are done / resumed / new, bench.json, and a grid run by Ray
Tune that equals the same runs made by hand, resumes by skipping, survives a failing trial and a Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pbrl.bench.cli import build_parser, main
from pbrl.bench.directory import Trial, merge_bench_json, trial_command, trial_status, trial_time
from pbrl.bench.errors import BenchDirError, SpecError
from pbrl.bench.grid import expand
from pbrl.bench.progress import Progress, TrialTime
from pbrl.bench.spec import read_spec, spec_from_flags
from pbrl.run_dir import RunDir

ROOT = Path(__file__).parents[1]


def spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def trials_of(tmp_path: Path, text: str) -> list[Trial]:
    return expand(read_spec(spec_file(tmp_path, text)), "spec.toml")[1]


# -- the grid ----------------------------------------------------------------------------------------------------


def test_the_papers_grid_has_its_96_trials_with_shorter_runs_for_the_envs_that_converge_early():
    name, trials = expand(read_spec(ROOT / "benchmarks" / "mujoco8.toml"), "mujoco8.toml")
    by_name = {t.name: t for t in trials}
    assert name == "mujoco8" and len(trials) == len(by_name) == 8 * (3 + 1) * 3
    assert sum(t.reward == "true" for t in trials) == 8 * 3  # not multiplied by the label budgets
    hopper = by_name["Hopper-v5__learned__n700__s0"]
    assert (hopper.n_labels, hopper.total_timesteps, hopper.run_dir) == (700, 1_000_000, "trials/" + hopper.name)
    assert hopper.train_args[:10] == ["--env", "Hopper-v5", "--reward", "learned", "--n-labels", "700", "--seed", "0",
                                      "--total-timesteps", "1000000"]
    assert hopper.train_args[10:] == ["--eval-every", "100000"]
    true = by_name["InvertedPendulum-v5__true__s2"]
    assert (true.n_labels, true.total_timesteps) == (None, 200_000) and "--n-labels" not in true.train_args
    assert by_name["Reacher-v5__true__s0"].total_timesteps == 500_000
    assert by_name["InvertedDoublePendulum-v5__learned__n700__s0"].total_timesteps == 2_000_000
    assert [t.seed for t in trials[:32]] == [0] * 32  # seed by seed: a sweep stopped half way has whole seeds


def test_the_tiny_grid_is_four_short_trials():
    _, trials = expand(read_spec(ROOT / "benchmarks" / "tiny.toml"), "tiny.toml")
    assert len(trials) == 4 and {t.total_timesteps for t in trials} == {4096}
    assert trials[0].train_args[-6:] == ["--ppo", "n_steps=512", "--ppo", "batch_size=64", "--ppo", "n_epochs=2"]


def test_extra_axes_multiply_every_trial_and_name_their_values(tmp_path):
    trials = trials_of(tmp_path, """
[bench]
envs = ["ALE/Pong-v5", "tests.custom_env_module:Gridworld-v0"]
rewards = ["learned", "true"]
n_labels = [100, 200]
seeds = [3]
total_timesteps = 5000
[bench.train]
pretrain-epochs = 7
[bench.train.env_kwargs]
size = 4
[bench.axes]
query_selection = ["disagreement", "random"]
ppo.n_steps = [64, 128]
[bench.env."ALE/Pong-v5"]
total_timesteps = 9000
n_envs = 2
""")
    assert len(trials) == 2 * (2 + 1) * 2 * 2
    names = [t.name for t in trials]
    assert "ALE_Pong-v5__learned__n200__s3__query_selection=random__ppo.n_steps=128" in names
    assert "tests.custom_env_module_Gridworld-v0__true__s3__query_selection=disagreement__ppo.n_steps=64" in names
    pong = next(t for t in trials if t.name.startswith("ALE_Pong-v5__true"))
    assert pong.env_id == "ALE/Pong-v5" and pong.total_timesteps == 9000
    assert pong.axes == {"query_selection": "disagreement", "ppo.n_steps": 64}
    assert pong.train_args == ["--env", "ALE/Pong-v5", "--reward", "true", "--seed", "3", "--total-timesteps", "9000",
                               "--pretrain-epochs", "7", "--env-kwargs", "size=4", "--n-envs", "2",
                               "--query-selection", "disagreement", "--ppo", "n_steps=64"]
    grid = next(t for t in trials if t.env_id.startswith("tests."))
    assert grid.total_timesteps == 5000 and "--n-envs" not in grid.train_args


def test_a_grid_by_flags_is_the_grid_of_the_same_spec(tmp_path):
    args = build_parser().parse_args([
        "--env", "Hopper-v5", "--env", "Swimmer-v5", "--reward", "learned", "--reward", "true", "--n-labels", "350",
        "--n-labels", "700", "--seeds", "0", "1", "--total-timesteps", "100000", "--train", "eval_every=5000",
        "--train", "teacher-beta=1.5", "--ppo", "n_steps=1024", "--axis", "query_selection=random,disagreement",
        "--dir", str(tmp_path)])
    by_flags = expand(spec_from_flags(args), "flags")[1]
    by_file = trials_of(tmp_path, """
[bench]
envs = ["Hopper-v5", "Swimmer-v5"]
rewards = ["learned", "true"]
n_labels = [350, 700]
seeds = [0, 1]
total_timesteps = 100000
[bench.train]
eval_every = 5000
teacher_beta = 1.5
ppo = { n_steps = 1024 }
[bench.axes]
query_selection = ["random", "disagreement"]
""")
    assert by_flags == by_file and len(by_file) == 2 * 3 * 2 * 2
    assert "--teacher-beta" in by_file[0].train_args and "1.5" in by_file[0].train_args


HEADER = '[bench]\nenvs = ["Hopper-v5"]\n'


@pytest.mark.parametrize("text, message", [
    ('[bench]\nenvs = ["Hopper-v5"]\nseed = [0]\n', "unknown key 'seed'; did you mean 'seeds'?"),
    (HEADER + "[bench.train]\npretrain_epoch = 5\n", "unknown key 'pretrain_epoch'; did you mean 'pretrain_epochs'?"),
    (HEADER + "[bench.train]\nseed = 1\n", "seed is set by the grid; give it as seeds in [bench]"),
    (HEADER + "[bench.train]\ntotal_timesteps = 1\n", "total_timesteps in [bench] (or per env"),
    (HEADER + "[bench.train]\npretrain_epochs = \"five\"\n", "pretrain_epochs must be a whole number, got 'five'"),
    (HEADER + "[bench.train]\nppo = 3\n", "ppo must be a table"),
    (HEADER + "[bench.axes]\nquery_selection = \"random\"\n", "query_selection must be a list of values"),
    (HEADER + "[bench.axes]\nquery_selection = [\"best\"]\n", "query_selection must be one of"),
    (HEADER + "[bench.axes]\nseed = [1, 2]\n", "seed is set by the grid"),
    (HEADER + "[bench.axes]\nn_members = []\n", "n_members is empty: the grid has no trials"),
    (HEADER + "[bench.axes]\nn_members = [3, 3]\n", "n_members lists a value twice"),
    (HEADER + "[bench.train]\nn_members = 3\n[bench.axes]\nn_members = [1, 2]\n", "n_members is both an axis and set"),
    (HEADER + "[bench.env.\"Swimmer-v5\"]\ntotal_timesteps = 5\n", "names an env that is not in envs (Hopper-v5)"),
    (HEADER + "[bench.env.\"Hopper-v5\"]\ntotal_timesteps = 0\n", "total_timesteps must be a positive whole number"),
    ("[bench]\nenvs = []\n", "envs is empty: the grid has no trials"),
    ("[bench]\nseeds = [0]\n", "[bench] needs envs"),
    ('[bench]\nenvs = "Hopper-v5"\n', "envs must be a list"),
    (HEADER + 'rewards = ["learnt"]\n', "rewards must list rewards from learned, true, got 'learnt'"),
    (HEADER + "n_labels = [0]\n", "n_labels must list positive whole numbers"),
    (HEADER + "seeds = [-1]\n", "seeds must list whole numbers from 0"),
    (HEADER + 'name = "a/b"\n', "name must be text without / or :"),
    ('[bnch]\nenvs = ["Hopper-v5"]\n', "a spec is one [bench] table; unknown 'bnch'"),
    ('[bench]\nenvs = ["a/b", "a:b"]\n', "two trials would share the name a_b__learned__n700__s0"),
])
def test_a_spec_that_is_no_grid_is_one_line_saying_what_to_write(tmp_path, text, message):
    with pytest.raises(SpecError) as err:
        trials_of(tmp_path, text)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("args, message", [
    (["missing.toml"], "no spec file missing.toml"),
    (["BAD"], "is not valid TOML"),
    ([], "give a spec file"),
    (["--env", "Hopper-v5"], "needs --dir"),
    (["--seeds", "0", "--dir", "d"], "needs at least one --env"),
    (["GOOD", "--env", "Hopper-v5"], "not both"),
    (["GOOD", "--only", "Swim"], "--only 'Swim' matches none of the 1 trials (e.g. Hopper-v5__learned__n700__s0)"),
    (["GOOD", "--max-concurrent", "0"], "--max-concurrent must be at least 1"),
    (["--env", "Hopper-v5", "--train", "pretrain_epochs=many", "--dir", "d"], "pretrain_epochs must be a whole number"),
    (["--env", "Hopper-v5", "--train", "pretrain_epochs", "--dir", "d"], "--train takes KEY=VALUE"),
])
def test_bad_input_ends_in_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD").write_text("[bench\n")
    (tmp_path / "GOOD").write_text(HEADER)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("pbrl bench: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


# -- the bench directory -----------------------------------------------------------------------------------------


def _checkpointed(run: Path) -> None:
    (run / "config.json").write_text("{}")
    (run / "checkpoint.json").write_text('{"generation": 1, "dir": "checkpoints/000001"}')


@pytest.mark.parametrize("make, status", [
    (lambda run: (run / "metrics.json").write_text("{}"), "done"),
    (_checkpointed, "resume"),
    (lambda run: (run / "loop_state.json").write_text("{}"), "resume"),  # a run from before checkpoint generations
    (lambda run: (run / "config.json").write_text("{}"), "resume"),  # stopped before its first checkpoint
    (lambda run: (run / "train.lock").write_text(""), "new"),  # killed before it saved its config
    (lambda run: None, "new"),
])
def test_a_trial_is_done_resumed_or_new_by_what_its_run_dir_holds(tmp_path, make, status):
    run = tmp_path / "trials" / "t"
    run.mkdir(parents=True)
    make(run)
    assert trial_status(run) == status
    cmd = trial_command(run, ["--env", "Hopper-v5"])
    expected = {"done": [], "resume": [sys.executable, "-m", "pbrl", "train", "--resume", "--run-dir", str(run),
                                       "--no-progress"],
                "new": [sys.executable, "-m", "pbrl", "train", "--env", "Hopper-v5", "--run-dir", str(run),
                        "--no-progress"]}[status]
    assert cmd == expected


def test_a_trial_never_started_is_new():
    assert trial_status(Path("/nonexistent/trials/t")) == "new"


def test_bench_json_takes_new_trials_and_refuses_a_changed_one(tmp_path):
    first = trials_of(tmp_path, HEADER + "seeds = [0]\n")
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(merge_bench_json(path, first, ["pbrl", "bench", "a"])))
    grown = trials_of(tmp_path, HEADER + "seeds = [0, 1]\n")
    record = merge_bench_json(path, grown, ["pbrl", "bench", "b"])
    assert [t["name"] for t in record["trials"]] == ["Hopper-v5__learned__n700__s0", "Hopper-v5__learned__n700__s1"]
    assert record["command"] == ["pbrl", "bench", "b"] and record["trials"][1]["run_dir"] == "trials/" + grown[1].name
    path.write_text(json.dumps(record))
    longer = trials_of(tmp_path, HEADER + "seeds = [0]\ntotal_timesteps = 5000\n")
    with pytest.raises(BenchDirError, match="holds trial Hopper-v5__learned__n700__s0 with total_timesteps 1000000; "
                                            "the spec now gives 5000. A changed spec needs a new --dir"):
        merge_bench_json(path, longer, [])
    assert merge_bench_json(path, first, [])["trials"] == record["trials"]  # a smaller spec forgets nothing


def test_a_dry_run_lists_the_trials_and_writes_nothing(tmp_path, capsys):
    spec = spec_file(tmp_path, HEADER + 'rewards = ["learned", "true"]\nseeds = [0, 1]\n')
    bench = tmp_path / "bench"
    (bench / "trials" / "Hopper-v5__true__s1").mkdir(parents=True)
    (bench / "trials" / "Hopper-v5__true__s1" / "metrics.json").write_text("{}")
    (bench / "trials" / "Hopper-v5__true__s0").mkdir()
    (bench / "trials" / "Hopper-v5__true__s0" / "config.json").write_text("{}")
    assert main([str(spec), "--dir", str(bench), "--dry-run", "--only", "true"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["Hopper-v5__true__s0", "resume", "pbrl", "train"] and "--resume" in out[1]
    assert out[2].split() == ["Hopper-v5__true__s1", "done", "(skipped)"]
    assert out[-1] == f"bench: 2 trials (1 done, 1 to resume, 0 new) in {bench}"
    assert not (bench / "bench.json").exists()


def test_without_ray_the_command_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "0")
    monkeypatch.setenv("TUNE_DISABLE_SIGINT_HANDLER", "1")
    assert main([str(spec_file(tmp_path, HEADER)), "--dir", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == 'pbrl bench needs Ray Tune: pip install "pbrl[bench]"\n'


def test_progress_lines_count_the_trials_and_give_an_eta_from_those_finished(tmp_path, capsys):
    now = [0.0]
    log = tmp_path / "c.log"
    log.write_text("[bench x] cmd\nTraceback\nValueError: bad\n[bench 2026-01-01 00:00:00] exit code 1\n")
    progress = Progress(n_total=6, n_done=1, concurrency=2, logs={"c": log}, statuses={"a": "resume"}, every_s=60,
                        clock=lambda: now[0])
    progress.start("a")
    progress.start("b")
    assert progress.line() == "1/6 done, 2 running, 0 failed, ETA ?"
    now[0] = 600.0
    progress.finish("a", {"eval_true_return_mean": 12.34})
    progress.start("c")
    now[0] = 630.0
    progress.fail("c")
    assert progress.line() == "2/6 done, 1 running, 1 failed, ETA 15m00s"  # 600 s each x 3 left / 2 at a time
    progress.tick()
    now[0] = 661.0
    progress.tick()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["bench: start a (resume)", "bench: start b (new)",
                     "bench: done a in 10m00s, eval_true_return_mean 12.3", "bench: start c (new)",
                     "bench: FAILED c after 30s: ValueError: bad; exit code 1",
                     "bench: 2/6 done, 1 running, 1 failed, ETA 15m00s"]


def test_a_resumed_sweep_has_an_eta_at_once_from_the_trials_done_before_by_kind(tmp_path):
    now = [0.0]
    log = tmp_path / "c.log"
    log.write_text("ValueError: bad\n")
    times = {"A__true__s0": TrialTime("A true", wall_s=600.0, share_left=0.0),
             "A__true__s1": TrialTime("A true", share_left=0.5),  # resumed half way
             "B__learned__s0": TrialTime("B learned", wall_s=100.0, share_left=0.0),  # done, not chosen
             "B__learned__s1": TrialTime("B learned"),
             "C__true__s0": TrialTime("C true")}  # no C done yet: the mean of all done trials
    statuses = {"A__true__s0": "done", "A__true__s1": "resume", "B__learned__s1": "new", "C__true__s0": "new"}
    progress = Progress(n_total=4, n_done=1, concurrency=2, logs={"C__true__s0": log}, statuses=statuses,
                        clock=lambda: now[0], times=times)
    # A: 600 x 0.5 = 300, B: 100, C: (600 + 100) / 2 = 350; 750 s of work on 2 at a time
    assert progress.line() == "1/4 done, 0 running, 0 failed, ETA 6m15s"
    progress.start("A__true__s1")
    progress.start("B__learned__s1")
    now[0] = 100.0  # A: 200 left, B: 0, C: 350, which alone takes longer than the rest shared out
    assert progress.line() == "1/4 done, 2 running, 0 failed, ETA 5m50s"
    now[0] = 120.0
    progress.finish("B__learned__s1", {"wall_time_s": 130.0})  # the run's own count: B learned takes 100 or 130
    # A: 300 - 120 = 180; C: the mean of 600, 100 and 130 = 276.7
    assert progress.line() == "2/4 done, 1 running, 0 failed, ETA 4m37s"
    progress.fail("C__true__s0")
    assert progress.line() == "2/4 done, 1 running, 1 failed, ETA 3m00s"


def test_the_eta_waits_for_a_trial_of_known_length():
    times = {"A__true__s0": TrialTime("A true"), "A__true__s1": TrialTime("A true", share_left=0.2)}
    progress = Progress(n_total=2, n_done=0, concurrency=2, logs={},
                        statuses={"A__true__s0": "new", "A__true__s1": "resume"}, times=times)
    assert progress.line() == "0/2 done, 0 running, 0 failed, ETA ?"


def test_trial_time_reads_a_done_trials_wall_time_and_a_resumed_ones_steps_left(tmp_path):
    done, resumed, new, broken = (tmp_path / n for n in ("done", "resumed", "new", "broken"))
    for d in (done, resumed, broken):
        d.mkdir()
    (done / "metrics.json").write_text(json.dumps({"wall_time_s": 12.5, "eval_true_return_mean": 1.0}))
    (resumed / "checkpoint.json").write_text(json.dumps({"generation": 3, "dir": "checkpoints/000003",
                                                         "num_timesteps": 250}))
    (broken / "metrics.json").write_text("{not json")
    assert trial_time(done, 1000) == (12.5, 0.0)
    assert trial_time(resumed, 1000) == (None, 0.75)
    assert trial_time(new, 1000) == (None, 1.0)
    assert trial_time(broken, 1000) == (None, 1.0)  # an estimate is not worth stopping the sweep for


# -- run by Ray Tune ---------------------------------------------------------------------------------------------

TINY = """
[bench]
envs = {envs}
rewards = {rewards}
n_labels = [10]
seeds = [0]
total_timesteps = 1024
[bench.train]
n_envs = 1
label_interval = 256
segment_length = 10
pretrain_epochs = 5
fit_epochs = 1
n_members = 2
reward_hidden = 16
eval_episodes = 2
[bench.train.ppo]
n_steps = 256
batch_size = 64
n_epochs = 2
{extra}
"""
TINY_FLAGS = ["--total-timesteps", "1024", "--n-envs", "1", "--label-interval", "256", "--segment-length", "10",
              "--pretrain-epochs", "5", "--fit-epochs", "1", "--n-members", "2", "--reward-hidden", "16",
              "--eval-episodes", "2", "--ppo", "n_steps=256", "--ppo", "batch_size=64", "--ppo", "n_epochs=2",
              "--seed", "0"]
#: metrics that depend on nothing but the run's config and seed (wall times differ from run to run)
SAME = ("eval_true_return_mean", "eval_true_return_std", "n_labels", "n_labels_asked", "total_timesteps", "seed")

BENCH = [sys.executable, "-m", "pbrl.bench"]


def bench(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, cwd=ROOT, timeout=300, **kw)


@pytest.mark.slow  # about 70 s on 2 cores: Ray's start, and four runs (two by hand) at once
def test_a_grid_run_by_ray_equals_the_same_runs_by_hand_and_running_it_again_skips_them(tmp_path):
    pytest.importorskip("ray", reason="pbrl bench runs trials by Ray Tune (pip install 'pbrl[bench]')")
    grid = {"InvertedPendulum-v5__learned__n10__s0": ["--reward", "learned", "--n-labels", "10"],
            "InvertedPendulum-v5__true__s0": ["--reward", "true"]}
    by_hand = {name: subprocess.Popen([sys.executable, "-m", "pbrl", "train", "--env", "InvertedPendulum-v5", *flags,
                                       *TINY_FLAGS, "--run-dir", str(tmp_path / "by_hand" / name), "--no-progress"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=ROOT)
               for name, flags in grid.items()}  # alongside the bench: the results do not depend on the load
    spec = spec_file(tmp_path, TINY.format(envs='["InvertedPendulum-v5"]', rewards='["learned", "true"]', extra=""))
    out = tmp_path / "bench"
    first = bench(str(spec), "--dir", str(out), "--max-concurrent", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "bench: 2 done, 0 failed, 0 skipped (done before)" in first.stdout
    assert all(p.wait(timeout=300) == 0 for p in by_hand.values())
    for name in by_hand:
        ours = json.loads((out / "trials" / name / "metrics.json").read_text())
        theirs = json.loads((tmp_path / "by_hand" / name / "metrics.json").read_text())
        assert {k: ours[k] for k in SAME} == {k: theirs[k] for k in SAME}, name
        assert f"bench: done {name} in " in first.stdout
    record = json.loads((out / "bench.json").read_text())
    assert [t["name"] for t in record["trials"]] == [*by_hand] and record["command"][:3] == ["pbrl", "bench", str(spec)]

    logs = {p: p.stat().st_size for p in (out / "trials").glob("*.log")}
    experiments = list((out / "ray").iterdir())
    again = bench(str(spec), "--dir", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "bench: 0 done, 0 failed, 2 skipped (done before)" in again.stdout and "start" not in again.stdout
    assert {p: p.stat().st_size for p in logs} == logs and list((out / "ray").iterdir()) == experiments


def test_a_failing_trial_is_reported_while_the_others_finish(tmp_path):
    pytest.importorskip("ray", reason="pbrl bench runs trials by Ray Tune (pip install 'pbrl[bench]')")
    spec = spec_file(tmp_path, TINY.format(envs='["InvertedPendulum-v5", "Pendulum-v1"]', rewards='["true"]',
                                           extra='[bench.env."Pendulum-v1"]\ntotal_timesteps = 1\n'))
    out = tmp_path / "bench"
    run = bench(str(spec), "--dir", str(out), "--max-concurrent", "2")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "bench: 1 done, 1 failed, 0 skipped (done before)" in run.stdout
    failed = [line for line in run.stdout.splitlines() if line.startswith("  failed Pendulum-v1__true__s0: ")]
    assert len(failed) == 1 and "less than one PPO rollout" in failed[0] and "exit code 2" in failed[0]
    assert (out / "trials" / "InvertedPendulum-v5__true__s0" / "metrics.json").exists()
    assert "Traceback" not in run.stderr  # Tune's own report of the error stays out of sight


def test_ctrl_c_stops_the_sweep_and_leaves_no_trial_running(tmp_path):
    pytest.importorskip("ray", reason="pbrl bench runs trials by Ray Tune (pip install 'pbrl[bench]')")
    out = tmp_path / "bench"
    proc = subprocess.Popen([*BENCH, "--env", "InvertedPendulum-v5", "--reward", "true", "--seeds", "0", "1",
                             "--total-timesteps", "1000000", "--dir", str(out), "--max-concurrent", "2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal's foreground job
    runs = [RunDir(out / "trials" / f"InvertedPendulum-v5__true__s{seed}") for seed in (0, 1)]
    try:
        deadline = time.monotonic() + 180
        started = lambda: all(run.writer_pid() and run.config.exists() for run in runs)  # noqa: E731
        while not started() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert started(), "the trials never started"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at the terminal
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stdout + stderr
    assert stderr.strip().endswith("pbrl bench: stopped; every trial's run dir is kept: run the same command again "
                                   "to resume")
    deadline = time.monotonic() + 10  # the kernel ends each trial with its Ray worker
    while any(run.writer_pid() for run in runs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [run.writer_pid() for run in runs] == [0, 0]
    dry = bench("--env", "InvertedPendulum-v5", "--reward", "true", "--seeds", "0", "1", "--total-timesteps",
                "1000000", "--dir", str(out), "--dry-run")
    assert dry.stdout.splitlines()[-1].startswith("bench: 2 trials (0 done, 2 to resume, 0 new)"), dry.stdout
