"""Trials run by Ray Tune: ``run_with_ray`` schedules them, ``run_trial`` runs one in a Ray worker.

Ray Tune only schedules: it gives each trial a CPU (and GPUs where asked), here or on a cluster, and the trial is an
ordinary ``pbrl train`` subprocess writing its own run directory, so a trial that crashes or is killed never takes
the sweep down, and a stopped one resumes from its run directory the next time. Ray is imported only here, when
the grid runs; without it the sweep ends in the one line of ``RayMissing``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pbrl.bench.directory import last_line, trial_command
from pbrl.bench.errors import RayMissing, TrialFailed
from pbrl.bench.progress import Progress
from pbrl.errors import UserError
from pbrl.run_dir import RunDir

__all__ = ["RAY_MISSING", "run_trial", "run_with_ray"]

RAY_MISSING = 'pbrl bench needs Ray Tune: pip install "pbrl[bench]"'

# -- one trial, in a Ray worker ------------------------------------------------------------------------------------

#: Runs the command with PR_SET_PDEATHSIG, so the kernel kills ``pbrl train`` when the thread of the Ray worker that
#: started it dies, however it dies (a SIGKILL leaves no ``finally`` to run). The run dir is crash-safe: it resumes.
_DIE_WITH_PARENT = ("import ctypes, os, signal, sys\n"
                    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
                    "if os.getppid() != int(sys.argv[1]):\n"
                    "    os._exit(137)\n"
                    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")


def _launch(cmd: list[str], log, cwd: str) -> subprocess.Popen:
    """Start ``cmd`` in a process group of its own (a Ctrl-C at the terminal reaches the sweep, which stops it)."""
    if sys.platform.startswith("linux") and cmd[0] == sys.executable:
        cmd = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd[1:]]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """End ``proc``'s group: SIGINT first (``pbrl train`` stops at once, saying how to resume), then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue


def _timesteps(run_dir: Path) -> int | None:
    try:
        return int(json.loads(RunDir(run_dir).state.read_text())["num_timesteps"])
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None


def run_trial(config: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> None:
    """Ray Tune's trainable: run trial ``config["trial"]`` as a ``pbrl train`` subprocess, report its timesteps
    while it runs and its metrics.json at the end, or raise ``TrialFailed`` so Tune records the trial as errored."""
    from ray import tune

    job = jobs[config["trial"]]
    run_dir, log_path = Path(job["run_dir"]), Path(job["log"])
    cmd = trial_command(run_dir, job["train_args"])
    if cmd:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        cwd = job["cwd"] if os.path.isdir(job["cwd"]) else str(log_path.parent)
        with open(log_path, "a") as log:
            log.write(f"[bench {time.strftime('%Y-%m-%d %H:%M:%S')}] {shlex.join(cmd)}\n")
            log.flush()
            proc = _launch(cmd, log, cwd)
            try:
                seen = None
                while proc.poll() is None:
                    try:
                        proc.wait(timeout=job["poll_s"])
                    except subprocess.TimeoutExpired:
                        steps = _timesteps(run_dir)
                        if steps is not None and steps != seen:
                            tune.report({"timesteps": steps, "finished": False})
                            seen = steps
            finally:
                _stop(proc)
            log.write(f"[bench {time.strftime('%Y-%m-%d %H:%M:%S')}] exit code {proc.returncode}\n")
        if proc.returncode != 0:
            raise TrialFailed(f"{config['trial']}: {last_line(log_path)}")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        raise TrialFailed(f"{config['trial']}: pbrl train ended without a readable metrics.json") from None
    tune.report({**metrics, "timesteps": metrics.get("total_timesteps"), "finished": True})


# -- the sweep ------------------------------------------------------------------------------------------------------


def _tune_callback(tune, progress: Progress):
    """A Tune callback that tells ``progress`` what happens to the trials."""

    class ProgressLines(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            progress.start(trial.config["trial"])

        def on_trial_complete(self, iteration, trials, trial, **info):
            progress.finish(trial.config["trial"], trial.last_result or {})

        def on_trial_error(self, iteration, trials, trial, **info):
            progress.fail(trial.config["trial"])

        def on_step_end(self, iteration, trials, **info):
            progress.tick()

    return ProgressLines()


def _trial_name(trial) -> str:
    return trial.config["trial"]


def run_with_ray(root: Path, names: list[str], jobs: dict[str, dict[str, Any]], progress: Progress,
                 max_concurrent: int | None, address: str | None, gpus_per_trial: float) -> None:
    """Run the trials ``names`` by Ray Tune, locally (``max_concurrent`` CPUs) or on the cluster at ``address``."""
    import logging

    # before Ray reads them: the old quiet console (verbose=0 prints nothing), and Ctrl-C raised at once (the
    # trials' run dirs resume; Tune's own handler would first save an experiment state we do not use)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    try:
        import ray
        from ray import tune
    except ImportError:
        raise RayMissing(RAY_MISSING) from None
    started = not ray.is_initialized()
    if started and address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    elif started:
        ray.init(num_cpus=max_concurrent, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    tune_logger = logging.getLogger("ray.tune")
    level = tune_logger.level
    tune_logger.setLevel(logging.CRITICAL)  # a failed trial is our one line, not Tune's traceback
    try:
        if max_concurrent is None:  # on a cluster: as many at a time as it has CPUs for
            progress.concurrency = max(1, int(ray.cluster_resources().get("CPU", 1)))
        resources = {"cpu": 1, **({"gpu": gpus_per_trial} if gpus_per_trial else {})}
        trainable = tune.with_resources(tune.with_parameters(run_trial, jobs=jobs), resources)
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(names)},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, trial_name_creator=_trial_name,
                                        trial_dirname_creator=_trial_name),
            run_config=tune.RunConfig(storage_path=str((root / "ray").resolve()),
                                      name=time.strftime("%Y%m%d-%H%M%S"),
                                      failure_config=tune.FailureConfig(max_failures=0), verbose=0,
                                      callbacks=[_tune_callback(tune, progress)]))
        tuner.fit()
    finally:
        tune_logger.setLevel(level)
        if started:
            ray.shutdown()  # ends the workers; each trial's pbrl train dies with its worker (_DIE_WITH_PARENT)
