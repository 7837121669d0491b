"""Kill ``pbrl train`` with SIGKILL at many moments, resume it each time, and check that nothing was lost.

Each trial starts a small synthetic-oracle run, kills it once, either at a named crash point (``pbrl.faults``:
inside each checkpoint file's write, inside a store transaction, before pretraining, right after the config is
saved, ...) or after a random delay (a third in the first second, the rest anywhere up to the end of a run, timed
by an uninterrupted run first), then resumes it as a user would
(``pbrl train --resume``; the fresh command again where the kill came before anything was written) until it
finishes. A trial passes when the resumed run ends with its whole label budget, every label stored before the kill
is still there with the same answer, SQLite's ``PRAGMA integrity_check`` is ok and the checkpoint's files match
its manifest.

    python scripts/experiments/fault_injection.py --trials 30 --out results/robustness/fault_injection
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_LABELS = 60
TRAIN = ["--env", "Pendulum-v1", "--n-labels", str(N_LABELS), "--total-timesteps", "4096", "--label-interval", "256",
         "--segment-length", "10", "--pretrain-epochs", "20", "--fit-epochs", "2", "--eval-episodes", "1",
         "--reward-hidden", "16", "--eval-every", "512", "--no-progress", "--ppo", "n_steps=128",
         "--ppo", "batch_size=64", "--ppo", "n_epochs=2", "--seed", "0"]

#: Named crash points and how many arrivals at them a trial may skip first (a later checkpoint, a later commit).
POINTS = [("write:config.json", 1), ("created", 1), ("pretrain", 1), ("store-commit", 12), ("store-commit", 40),
          ("write:policy.zip", 4), ("write:vecnormalize.pkl", 4), ("write:reward_model.pt", 4),
          ("write:heldout_segments.npz", 4), ("write:loop_state.json", 4), ("write:checkpoint.json", 4),
          ("checkpointed", 4), ("write:eval.json", 2), ("write:policy.zip", 1), ("write:checkpoint.json", 1),
          ("write:metrics.json", 1), ("store-commit", 1), ("write:reward_model.pt", 9)]


def pbrl(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pbrl", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def labels(store: Path) -> dict[int, tuple]:
    """Every answered or incomparable comparison: id -> (first, second, status, label)."""
    if not store.exists():
        return {}
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT id, first_id, second_id, status, label FROM comparisons "
                            "WHERE status != 'pending'").fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def integrity(store: Path) -> str:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def kill_after(delay: float, run: Path) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([sys.executable, "-m", "pbrl", "train", "--run-dir", str(run), *TRAIN],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", err)


def trial(i: int, kind: str, where: str, root: Path) -> dict:
    run = root / f"trial{i:02d}"
    t0 = time.perf_counter()
    if kind == "point":
        first = pbrl("train", "--run-dir", str(run), *TRAIN, env={"PBRL_KILL_AT": where})
    else:
        first = kill_after(float(where), run)
    killed = first.returncode == -signal.SIGKILL
    before = labels(run / "preferences.sqlite")
    status = pbrl("status", "--run-dir", str(run))
    resumed = pbrl("train", "--resume", "--run-dir", str(run))
    how = "resumed"
    if resumed.returncode == 2 and "holds no pbrl run" in resumed.stderr:  # killed before anything was written
        resumed, how = pbrl("train", "--run-dir", str(run), *TRAIN), "started again (nothing was written)"
    after = labels(run / "preferences.sqlite")
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    kept = all(after.get(k) == v for k, v in before.items())
    check = integrity(run / "preferences.sqlite") if (run / "preferences.sqlite").exists() else "no store"
    manifest_ok = _manifest_ok(run)
    ok = (killed and resumed.returncode == 0 and metrics.get("n_labels") == N_LABELS and kept and check == "ok"
          and manifest_ok)
    return {"trial": i, "kill": f"{kind} {where}", "killed_by_sigkill": killed, "labels_before_kill": len(before),
            "status_after_kill": status.returncode, "how": how, "resume_exit": resumed.returncode,
            "resume_stderr": resumed.stderr.strip().splitlines()[-1:] if resumed.returncode else [],
            "n_labels_at_end": metrics.get("n_labels"), "labels_kept": kept, "integrity_check": check,
            "checkpoint_matches_manifest": manifest_ok, "passed": ok, "seconds": round(time.perf_counter() - t0, 1)}


def _manifest_ok(run: Path) -> bool:
    from pbrl.run_dir import RunDir, RunDirError

    try:
        RunDir(run).verify_checkpoint()
    except RunDirError:
        return False
    return RunDir(run).manifest.exists()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md (else print only)")
    a = p.parse_args()
    rng = random.Random(a.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pbrl-faults-") as tmp:
        t0 = time.perf_counter()
        whole = pbrl("train", "--run-dir", str(Path(tmp) / "uninterrupted"), *TRAIN)
        duration = time.perf_counter() - t0
        assert whole.returncode == 0, whole.stderr
        print(f"an uninterrupted run takes {duration:.1f} s", flush=True)
        plan = [("point", f"{name}:{rng.randint(1, most)}") for name, most in POINTS]
        while len(plan) < a.trials:  # random moments: the first second, then anywhere up to the run's end
            early = len(plan) % 3 == 0
            plan.append(("delay", f"{rng.uniform(0.0, 1.0) if early else rng.uniform(1.0, 0.8 * duration):.2f}"))
        plan = plan[: a.trials]
        for i, (kind, where) in enumerate(plan):
            rows.append(trial(i, kind, where, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    passed = sum(r["passed"] for r in rows)
    print(f"{passed} of {len(rows)} trials resumed to the end with every label kept", flush=True)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
        lines = [f"# Fault injection: SIGKILL at {len(rows)} moments, then resume", "",
                 f"Command: `python scripts/experiments/fault_injection.py --trials {a.trials} --seed {a.seed} "
                 f"--out {a.out}`", "",
                 f"The run: `pbrl train --run-dir D {' '.join(TRAIN)}`", "",
                 f"An uninterrupted run took {duration:.1f} s.", "",
                 f"**{passed} of {len(rows)} trials resumed to the end with every stored label kept**, "
                 "integrity_check ok and the checkpoint matching its manifest.", "",
                 "| # | kill | labels before | resume | labels at end | kept | integrity | passed | s |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['trial']} | {r['kill']} | {r['labels_before_kill']} | {r['how']} | "
                         f"{r['n_labels_at_end']} | {r['labels_kept']} | {r['integrity_check']} | {r['passed']} | "
                         f"{r['seconds']} |")
        out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
