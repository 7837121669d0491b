"""A scripted person labels in the real window, under a real X server, with real key presses, beside a live run.

    python scripts/ui/person_under_x.py --answers 100 --out results/ui/person_under_x

It starts Xvfb (1280x800, unless --display names a running server), ``pbrl train --labeler human`` on Hopper-v5
(30 initial labels, then about 25 a round) and ``pbrl label`` as separate processes, as a person would. The person
"looks" at the screen through the window's own log (it writes a ``shown`` line when a pair is first drawn), decides
as the synthetic oracle would (the side with the higher true return; "equal" on a tie), waits a human 1-3 s, and
presses the arrow key with xdotool. Every
tenth answer starts a burst: the next two pairs are answered 0.3 s after each appears, three answers within a
second. After the last answer it presses q and times how long the window and the process take to go. Then it
checks the store: every key sent is one stored answer with that label (none lost, none duplicated), and counts the
window's 'refused' lines (keys that came before a pair was drawn: should be none for a person who waits to see it).

A second check starts ``pbrl train --labeler human --ui`` and presses q in its window before the initial labels are
in: the trainer must say in one line how to go on, and the window's process must not linger as a zombie.
Screenshots of the window go to --screenshots (Hopper at the default size, and at --size 160).

Needs Xvfb, xdotool and ImageMagick's import (Debian: apt-get install xvfb xdotool imagemagick).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PBRL = [sys.executable, "-m", "pbrl"]
STARTED: list[subprocess.Popen] = []  # every process this script starts, killed at the end if still running


def start(cmd: list[str], **kw) -> subprocess.Popen:
    STARTED.append(subprocess.Popen(cmd, **kw))
    return STARTED[-1]
KEY = {"left": "Left", "right": "Right", "equal": "Up"}


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} (Debian: apt-get install xvfb xdotool imagemagick)")


def start_x(display: str | None) -> tuple[str, subprocess.Popen | None]:
    if display:
        return display, None
    for n in range(90, 110):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                if Path(f"/tmp/.X11-unix/X{n}").exists():
                    return f":{n}", proc
                time.sleep(0.05)
            proc.kill()
    raise SystemExit("could not start Xvfb")


def xdo(*args: str) -> str:
    return subprocess.run(["xdotool", *args], capture_output=True, text=True).stdout.strip()


def window_id(pid: int, timeout: float = 120.0) -> str:
    """The X window of process ``pid`` (its _NET_WM_PID; xdotool's name search misses SDL's UTF-8 titles)."""
    end = time.time() + timeout
    while time.time() < end:
        found = xdo("search", "--pid", str(pid))
        if found:
            return found.splitlines()[-1]
        time.sleep(0.2)
    raise SystemExit("the labelling window did not appear")


def press(window: str, key: str) -> None:
    xdo("windowfocus", window)
    xdo("key", key)


def screenshot(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["import", "-window", "root", str(path)], check=True)


class WindowLog:
    """The window's JSON-lines log, read as it grows."""

    def __init__(self, run_dir: Path, name: str):
        self.run_dir, self.name, self.pos, self.path = run_dir, name, 0, None

    def new_events(self) -> list[dict]:
        if self.path is None:
            found = sorted((self.run_dir / "label_logs").glob(f"{self.name}-*.jsonl"))
            if not found:
                return []
            self.path = found[-1]
        with open(self.path) as fh:
            fh.seek(self.pos)
            text = fh.read()
        whole = text[: text.rfind("\n") + 1]
        self.pos += len(whole)
        return [json.loads(line) for line in whole.splitlines() if line]


def choice_for(store: Path, comparison: int, swapped: bool) -> str:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        first, second = conn.execute("SELECT first_id, second_id FROM comparisons WHERE id=?", (comparison,)).fetchone()
        ret = dict(conn.execute("SELECT id, true_return FROM segments WHERE id IN (?, ?)", (first, second)))
    left, right = (ret[second], ret[first]) if swapped else (ret[first], ret[second])
    if abs(left - right) < 1e-6:
        return "equal"
    return "left" if left > right else "right"


def label_for_first(choice: str, swapped: bool) -> float:
    p_left = {"left": 1.0, "right": 0.0, "equal": 0.5}[choice]
    return 1.0 - p_left if swapped else p_left


def wait_for_run(run: Path, proc: subprocess.Popen) -> None:
    while not (run / "checkpoint.json").exists():
        if proc.poll() is not None:
            raise SystemExit(f"the trainer ended before its run existed (exit {proc.returncode})")
        time.sleep(0.2)


def label_live_run(a, display: str, root: Path, shots: Path | None) -> dict:
    run, name = root / "hopper", "scripted"
    env = {**os.environ, "DISPLAY": display}
    trainer = start([*PBRL, "train", "--env", "Hopper-v5", "--labeler", "human", "--n-labels", "2000",
                     "--initial-label-fraction", "0.015", "--total-timesteps", "1000000", "--seed", str(a.seed),
                     "--no-progress", "--run-dir", str(run), "--instructions", "Which hopper moves forward better?"],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_run(run, trainer)
    window = start([*PBRL, "label", "--run-dir", str(run), "--name", name], env=env, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True)
    wid = window_id(window.pid)
    log, rng = WindowLog(run, name), np.random.default_rng(a.seed)
    sent: dict[int, float] = {}  # comparison -> the label for its first segment that the key meant
    burst, shown_at, on_screen, steps = 0, None, None, []
    while len(sent) < a.answers:
        for e in log.new_events():
            if e["event"] == "shown":
                on_screen, shown_at = e, time.time()
        if window.poll() is not None:
            raise SystemExit(f"the window ended early: {window.stderr.read()}")
        if on_screen is None or on_screen["comparison"] in sent:
            time.sleep(0.02)
            continue
        if burst == 0 and len(sent) % 10 == 9:
            burst = 3
        wait = 0.3 if burst else rng.uniform(a.min_s, a.max_s)
        if time.time() - shown_at < wait:
            time.sleep(0.01)
            continue
        if shots is not None and len(sent) == 12:
            screenshot(shots / "label_window_hopper.png")
        choice = choice_for(run / "preferences.sqlite", on_screen["comparison"], on_screen["swapped"])
        press(wid, KEY[choice])
        sent[on_screen["comparison"]] = label_for_first(choice, on_screen["swapped"])
        burst = max(burst - 1, 0)
        steps.append(time.time())
    time.sleep(1.0)  # the last answer is stored, the next pair drawn (rendering goes on in the background)
    t0 = time.time()
    press(wid, "q")
    while xdo("search", "--pid", str(window.pid)):
        time.sleep(0.005)
    window_gone = time.time() - t0
    window.wait(timeout=30)
    process_gone = time.time() - t0
    trainer.send_signal(signal.SIGINT)
    trainer.wait(timeout=120)

    events = [e for e in json.loads("[" + ",".join(open(log.path).read().splitlines()) + "]")]
    refused = [e for e in events if e["event"] == "refused"]
    delays = [e["delay_ms"] for e in events if e["event"] == "shown" and e.get("delay_ms") is not None]
    with sqlite3.connect(f"file:{run / 'preferences.sqlite'}?mode=ro", uri=True) as conn:
        stored = dict(conn.execute("SELECT id, label FROM comparisons WHERE labeler=? AND status='answered'",
                                   (name,)).fetchall())
        n_events = conn.execute("SELECT COUNT(*) FROM events WHERE labeler=? AND kind='answer'", (name,)).fetchone()[0]
    bursts = sum(1 for k in range(2, len(steps)) if steps[k] - steps[k - 2] < 1.0)
    return {"answers_sent": len(sent), "answers_stored": len(stored),
            "lost": sum(1 for c in sent if c not in stored),
            "wrong_label": sum(1 for c, v in sent.items() if c in stored and stored[c] != v),
            "duplicated": n_events - len(stored), "not_sent_but_stored": sum(1 for c in stored if c not in sent),
            "refused_keys": len(refused), "three_answers_within_a_second": bursts,
            "answer_to_next_pair_ms_median": round(statistics.median(delays), 1) if delays else None,
            "answer_to_next_pair_ms_p95": round(float(np.percentile(delays, 95)), 1) if delays else None,
            "quit_window_gone_s": round(window_gone, 3), "quit_process_gone_s": round(process_gone, 3),
            "labelling_minutes": round((steps[-1] - steps[0]) / 60, 2)}


def _window_process_of(pid: int, timeout: float = 60.0) -> int:
    """The ``pbrl label`` process the trainer ``pid`` started (it starts others too, such as git, briefly)."""
    end = time.time() + timeout
    while time.time() < end:
        kids = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid=,args="], capture_output=True, text=True).stdout
        for line in kids.splitlines():
            if " label " in f" {line} ":
                return int(line.split()[0])
        time.sleep(0.1)
    raise SystemExit("the trainer did not open its window")


def quit_during_initial_labels(display: str, root: Path) -> dict:
    run, said = root / "ui", root / "ui.stderr"
    with open(said, "w") as err:
        trainer = start([*PBRL, "train", "--env", "Hopper-v5", "--labeler", "human", "--ui", "--n-labels", "200",
                         "--no-progress", "--run-dir", str(run)], env={**os.environ, "DISPLAY": display},
                        stdout=subprocess.DEVNULL, stderr=err)
    try:
        wid = window_id(_window_process_of(trainer.pid))
        time.sleep(3.0)
        press(wid, "q")
        end = time.time() + 60
        while time.time() < end and "labelling window" not in said.read_text():
            time.sleep(0.1)
        time.sleep(1.0)  # time for a zombie to show, were the window's process left unreaped
        children = subprocess.run(["ps", "--ppid", str(trainer.pid), "-o", "stat=,pid=,args="], capture_output=True,
                                  text=True).stdout.strip().splitlines()
    finally:
        trainer.send_signal(signal.SIGINT)
        trainer.wait(timeout=60)
    lines = [line for line in said.read_text().splitlines() if "labelling window" in line]
    return {"trainer_said": lines, "one_line": len(lines) == 1,
            "zombies": [c for c in children if c.split()[0].startswith("Z")], "children_left": children}


def small_window_screenshot(display: str, root: Path, shots: Path) -> None:
    run = root / "hopper"
    window = start([*PBRL, "label", "--run-dir", str(run), "--name", "small", "--size", "160"],
                   env={**os.environ, "DISPLAY": display}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wid = window_id(window.pid)
    time.sleep(8.0)
    screenshot(shots / "label_window_small.png")
    press(wid, "q")
    window.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", type=int, default=100)
    p.add_argument("--min-s", type=float, default=1.0)
    p.add_argument("--max-s", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--display", default=None, help="an X display to use instead of starting Xvfb")
    p.add_argument("--screenshots", default=None, help="folder for screenshots of the window")
    p.add_argument("--keep", default=None, help="keep the runs in this folder (else a temporary one)")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    a = p.parse_args()
    need("Xvfb", "xdotool", "import")
    display, xvfb = start_x(a.display)
    os.environ["DISPLAY"] = display  # for xdotool and import, and the processes started below
    os.environ.pop("SDL_VIDEODRIVER", None)  # a real window on that display (tests set the dummy driver)
    root = Path(a.keep or tempfile.mkdtemp(prefix="pbrl-person-"))
    shots = Path(a.screenshots) if a.screenshots else None
    try:
        live = label_live_run(a, display, root, shots)
        if shots is not None:
            small_window_screenshot(display, root, shots)
        ui = quit_during_initial_labels(display, root)
    finally:
        for proc in STARTED:  # a failed check leaves nothing running
            if proc.poll() is None:
                proc.kill()
        if xvfb is not None:
            xvfb.kill()
    figures = {**live, "ui_quit_before_initial_labels": ui,
               "command": "python " + " ".join(sys.argv), "display": "Xvfb 1280x800" if xvfb else display}
    print(json.dumps(figures, indent=1))
    ok = (live["lost"] == live["duplicated"] == live["wrong_label"] == 0 and live["answers_stored"] == a.answers
          and ui["one_line"] and not ui["zombies"])
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")
        lines = ["# A scripted person in the labelling window under a real X server", "",
                 f"Command: `{figures['command']}` ({figures['display']}, real key presses with xdotool; the "
                 "training is a separate `pbrl train --labeler human` process on Hopper-v5).", "",
                 "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in live.items()]
        lines += ["", "`pbrl train --labeler human --ui`, q pressed in the window before the initial labels were in:",
                  "", f"- the trainer said: {ui['trainer_said']}", f"- zombie processes left: {len(ui['zombies'])}"]
        out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
