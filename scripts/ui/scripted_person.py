"""A scripted person labels pairs in the real window while a Hopper run trains beside it.

    SDL_VIDEODRIVER=dummy python scripts/ui/scripted_person.py --labels 100 --out results/ui/scripted_person

It starts ``pbrl train --labeler human`` as its own process, opens the labelling window in this process (headless)
and posts a key every 2-4 s of looking at a pair (the side with the higher true return, as the synthetic oracle
would; equal returns get "equal"). It then checks the store: every key press is one stored answer (none lost,
none duplicated), PPO kept stepping while the person labelled, and the window's own log gives the delay from an
answer to the next pair on screen. Figures go to ``OUT.md``/``OUT.json``; ``--screenshot`` saves the window.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np  # noqa: E402

PBRL = [sys.executable, "-m", "pbrl"]  # the pbrl of the Python running this script

from pbrl import RunDir, TrainConfig  # noqa: E402
from pbrl.ui.app import LabelApp, pygame  # noqa: E402
from pbrl.ui.render import AutoRenderer  # noqa: E402
from pbrl.ui.session import LabelSession  # noqa: E402

KEY_FOR = {"left": pygame.K_LEFT, "right": pygame.K_RIGHT, "equal": pygame.K_UP}


def choice_for(item, store) -> str:
    """The scripted person's preference: the side whose segment has the higher true return."""
    first, second = store.segment(item.comparison.first_id), store.segment(item.comparison.second_id)
    left, right = (second, first) if item.swapped else (first, second)
    if abs(left.true_return - right.true_return) < 1e-6:
        return "equal"
    return "left" if left.true_return > right.true_return else "right"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=int, default=100, help="answers the scripted person gives")
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--run-dir", default="runs/scripted-person")
    p.add_argument("--n-labels", type=int, default=400, help="the run's label budget")
    p.add_argument("--total-timesteps", type=int, default=1_000_000)
    p.add_argument("--initial-label-fraction", type=float, default=0.05)
    p.add_argument("--min-s", type=float, default=2.0)
    p.add_argument("--max-s", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--screenshot", default=None, help="save the window as this PNG after the 10th answer")
    p.add_argument("--out", default="results/ui/scripted_person")
    a = p.parse_args()

    run = RunDir(a.run_dir)
    train_cmd = [*PBRL, "train", "--env", a.env, "--labeler", "human", "--n-labels", str(a.n_labels),
                 "--total-timesteps", str(a.total_timesteps), "--initial-label-fraction",
                 str(a.initial_label_fraction), "--seed", str(a.seed), "--run-dir", a.run_dir, "--no-progress",
                 "--instructions", "Which hopper moves forward better? (scripted person)"]
    run.path.parent.mkdir(parents=True, exist_ok=True)
    log = open(run.path.parent / f"{run.path.name}.train.log", "w")
    trainer = subprocess.Popen(train_cmd, stdout=log, stderr=subprocess.STDOUT)
    while not run.holds_run():
        time.sleep(0.5)
        if trainer.poll() is not None:
            print("the training process ended before the run existed", file=sys.stderr)
            return 1
    cfg = TrainConfig.load(run.config)
    session = LabelSession(run.store, "scripted", lambda: AutoRenderer(cfg.env_id, 256, cfg.episode_steps),
                           seed=a.seed)
    app = LabelApp(run.path, session, instructions=cfg.instructions)
    rng = np.random.default_rng(a.seed)
    pressed, steps_seen, t_start = 0, [], time.time()
    due: float | None = None
    shown_id: int | None = None
    while pressed < a.labels:
        if not app.step():
            break
        if session.error is not None:
            raise SystemExit(f"the window cannot render clips: {session.error}")
        item = session.current
        if item is not None and item.comparison.id != shown_id:
            shown_id, due = item.comparison.id, time.time() + rng.uniform(a.min_s, a.max_s)
        if item is not None and due is not None and time.time() >= due:
            if a.screenshot and pressed == 9:  # a pair on screen, mid-clip
                Path(a.screenshot).parent.mkdir(parents=True, exist_ok=True)
                pygame.image.save(app.screen, a.screenshot)
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=KEY_FOR[choice_for(item, session.store)],
                                                 mod=0, unicode=""))
            pressed += 1
            due = None
        if app.info.timesteps is not None and (not steps_seen or time.time() - steps_seen[-1][0] >= 5.0):
            steps_seen.append((time.time(), app.info.timesteps))
    for _ in range(30):  # the last answer is stored on the next event pass
        app.step()
    summary = app.summary()
    app.close()
    trainer.send_signal(signal.SIGINT)
    trainer.wait(timeout=120)

    conn = sqlite3.connect(run.store)
    stored = conn.execute("SELECT COUNT(*) FROM comparisons WHERE labeler='scripted' AND status!='pending'")
    n_stored = stored.fetchone()[0]
    n_events = conn.execute("SELECT COUNT(*) FROM events WHERE labeler='scripted' AND kind='answer'").fetchone()[0]
    n_distinct = conn.execute("SELECT COUNT(DISTINCT comparison_id) FROM events WHERE labeler='scripted'"
                              " AND kind='answer'").fetchone()[0]
    conn.close()
    # PPO progress while the person labelled: the longest stretch without new timesteps after RL started
    started = [(t, s) for t, s in steps_seen if s > 0]
    stalls = [t1 - t0 for (t0, s0), (t1, s1) in zip(started, started[1:], strict=False) if s1 == s0]
    figures = {
        "env": a.env, "key_presses": pressed, "answers_stored": n_stored, "answer_events": n_events,
        "lost": pressed - n_stored, "duplicated": n_events - n_distinct,
        "median_answer_to_next_pair_ms": summary["median_delay_ms"], "max_answer_to_next_pair_ms":
        summary["max_delay_ms"], "n_delays_measured": summary["n_delays"],
        "labelling_minutes": round((time.time() - t_start) / 60, 2),
        "ppo_timesteps_first_seen": started[0][1] if started else None,
        "ppo_timesteps_last_seen": started[-1][1] if started else None,
        "ppo_longest_stall_s (checkpoints are per 10k-step round)": round(max(stalls), 1) if stalls else 0.0,
        "window_log": str(app.log_path), "command": " ".join(["python"] + sys.argv),
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = ["# A scripted person labels in the window beside a running training", "",
             "Command (2-core machine; the training is a separate `pbrl train --labeler human` process):", "",
             f"    SDL_VIDEODRIVER=dummy {figures['command']}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in figures.items() if k not in ("command", "window_log")]
    delays = [json.loads(x).get("delay_ms") for x in open(app.log_path) if '"shown"' in x]
    if delays:
        lines += ["", f"All {len(delays)} answer-to-next-pair delays in the window's log (ms): median "
                  f"{statistics.median(delays):.1f}, including waits for the agent to produce new queries."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if figures["lost"] == 0 and figures["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
