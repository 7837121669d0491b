"""Concurrency of ``pbrl serve``: simulated labelers over HTTP against one live run, and one pygame window beside them.

    .venv/bin/python scripts/web/bench_web.py --labelers 20 --seconds 60 --out results/web/concurrency

It starts ``pbrl train --labeler human`` on Pendulum-v1 (its own process: the trainer asks its initial questions,
waits for the answers, pretrains and goes on asking while the labelers answer), ``pbrl serve`` with one invitation
per simulated labeler (its own process), and, with ``--window``, the pygame labelling window headless in a third
process. Each simulated labeler is an HTTP client in this process doing what the page does: log in, listen to the
event stream, say when a pair is shown, look at it for ``--min-s`` to ``--max-s`` seconds, answer (a random choice),
sometimes send the same answer twice (a retry after a lost reply) and sometimes undo and answer again.

Measured, from the store after the run (read-only):

- pairs answered twice: comparisons with more answer events than undo events plus one;
- answers lost: answers acknowledged to a labeler (HTTP 200, or the window's answer returning) that the store does
  not hold as that labeler's final answer (undone ones excepted), and acknowledged answers without an event;
- answer -> next pair: from sending an answer to having the next pair (in the reply, else by the event stream), for
  answers given while the server had the labeler's next pair ready or was preparing it (leased, clips on the way);
  answers given when every open question was on someone's screen or the trainer had none are counted apart
  ("starved"): what they wait for is the trainer, not the server.

The figures, with the machine they ran on, go to ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

PBRL = [sys.executable, "-m", "pbrl"]
CHOICES = ("left", "right", "equal", "cant_tell")
WEIGHTS = (0.45, 0.45, 0.05, 0.05)


# -- the simulated labelers ----------------------------------------------------------------------------------------

class Labeler:
    """One person's page, over HTTP: the event stream in a task, answers in ``run``."""

    def __init__(self, name: str, url: str, token: str, rng: random.Random, args: argparse.Namespace):
        self.name, self.rng, self.args = name, rng, args
        self.client = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.state: dict | None = None
        self.changed = asyncio.Event()
        self.acked: list[tuple[int, str]] = []  # (pair, choice) answered with HTTP 200
        self.undone: list[int] = []
        self.latency_s: list[float] = []  # answer -> next pair, the store holding an unheld pair
        self.starved_s: list[float] = []  # answer -> next pair, every open pair held elsewhere or none asked
        self.repeats_ok = self.repeats = 0
        self.errors: Counter[str] = Counter()

    async def listen(self) -> None:
        async with self.client.stream("GET", "/api/events", timeout=None) as stream:
            event = None
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "state":
                    self.state = json.loads(line[6:])
                    self.changed.set()

    async def next_pair(self, deadline: float) -> dict | None:
        while time.monotonic() < deadline:
            if self.state is not None and self.state["pair"] is not None:
                return self.state["pair"]
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(deadline - time.monotonic(), 0.01))
            except asyncio.TimeoutError:
                return None
        return None

    async def post(self, path: str, body: dict) -> httpx.Response:
        return await self.client.post(path, json=body)

    def key(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    async def run(self, deadline: float) -> None:
        r = await self.post("/api/login", {})
        r.raise_for_status()
        self.state = r.json()
        listener = asyncio.create_task(self.listen())
        try:
            while (pair := await self.next_pair(deadline)) is not None:
                r = await self.post("/api/shown", {"pair": pair["id"]})
                if r.status_code != 200:
                    self.errors[f"shown {r.status_code}"] += 1
                    await asyncio.sleep(0.05)
                    continue
                await asyncio.sleep(self.rng.uniform(self.args.min_s, self.args.max_s))  # looking at the clips
                if time.monotonic() >= deadline:
                    break
                await self.answer(pair["id"], deadline)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self.client.aclose()

    async def answer(self, pair: int, deadline: float) -> None:
        choice = self.rng.choices(CHOICES, WEIGHTS)[0]
        key = self.key()
        t0 = time.perf_counter()
        r = await self.post("/api/answer", {"pair": pair, "choice": choice, "key": key})
        if r.status_code != 200:
            self.errors[f"answer {r.status_code}: {r.json().get('error', '')[:60]}"] += 1
            return
        reply = r.json()
        self.acked.append((pair, choice))
        self.state = reply["state"]
        if self.rng.random() < self.args.repeat_share:  # the reply was "lost": the page sends it again
            self.repeats += 1
            again = await self.post("/api/answer", {"pair": pair, "choice": choice, "key": key})
            self.repeats_ok += again.status_code == 200 and again.json().get("repeated") is True
        # the server had the next pair, or was preparing it (leased, its clips on the way): its own latency
        had_unheld = reply["state"]["pair"] is not None or reply["state"]["preparing"]
        nxt = reply["state"]["pair"] or await self.next_pair(deadline)
        if nxt is None:
            return
        (self.latency_s if had_unheld else self.starved_s).append(time.perf_counter() - t0)
        if self.rng.random() < self.args.undo_share:  # second thoughts: take it back and answer again
            await self.post("/api/shown", {"pair": nxt["id"]})
            u = await self.post("/api/undo", {"pair": pair, "key": self.key()})
            if u.status_code == 200:
                self.undone.append(pair)
                self.state = u.json()["state"]
            else:
                self.errors[f"undo {u.status_code}"] += 1


async def run_labelers(links: dict[str, str], args: argparse.Namespace) -> list[Labeler]:
    rng = random.Random(args.seed)
    labelers = [Labeler(name, link.split("/#")[0], link.split("#token=")[1], random.Random(rng.random()), args)
                for name, link in links.items()]
    deadline = time.monotonic() + args.seconds
    await asyncio.gather(*(lab.run(deadline) for lab in labelers))
    return labelers


# -- the pygame window, in its own process ---------------------------------------------------------------------------

def window_worker(run_dir: Path, seconds: float, out: Path, seed: int) -> None:
    """The labelling window, headless, answering a pair 0.5-1.5 s after it is drawn; writes what it answered."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from pbrl.ui.app import LabelApp, pygame
    from pbrl.ui.render import ObservationBars
    from pbrl.ui.session import LabelSession

    rng = random.Random(seed)
    session = LabelSession(run_dir / "preferences.sqlite", "window", lambda: ObservationBars(64))
    app = LabelApp(run_dir, session, clip_size=64)
    acked, end, due = [], time.time() + seconds, None
    keys = {pygame.K_LEFT: "left", pygame.K_RIGHT: "right", pygame.K_UP: "equal"}
    while time.time() < end and app.step():
        item = session.current
        if item is not None and item.shown_at is not None:
            due = due or item.shown_at + rng.uniform(0.5, 1.5)
            if time.time() >= due:
                key = rng.choice(list(keys))
                before = session.stats.answered
                app.handle(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode=""))
                if session.stats.answered > before:
                    acked.append((item.comparison.id, keys[key]))
                due = None
    app.close()
    out.write_text(json.dumps({"acked": acked, **app.summary()}))


# -- the run, the server, the figures ---------------------------------------------------------------------------------

def start_trainer(run_dir: Path, args: argparse.Namespace) -> subprocess.Popen:
    return subprocess.Popen(
        [*PBRL, "train", "--env", "Pendulum-v1", "--labeler", "human", "--run-dir", str(run_dir),
         "--n-labels", str(args.n_labels), "--initial-label-fraction", str(args.initial_fraction),
         "--max-pending", "400", "--total-timesteps", "1000000", "--segment-length", "25", "--torch-threads", "1",
         "--n-members", "3", "--reward-hidden", "32", "--pretrain-epochs", "10", "--fit-epochs", "1",
         "--label-interval", "2048", "--no-progress", "--seed", str(args.seed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_questions(run_dir: Path, n: int, trainer: subprocess.Popen, timeout: float = 600) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if trainer.poll() is not None:
            raise RuntimeError(f"the trainer stopped: {trainer.stderr.read()[-2000:]}")
        try:
            conn = sqlite3.connect(f"file:{run_dir / 'preferences.sqlite'}?mode=ro", uri=True)
            [(pending,)] = conn.execute("SELECT COUNT(*) FROM comparisons WHERE status='pending'").fetchall()
            conn.close()
            if pending >= n:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.5)
    raise TimeoutError("the trainer asked no questions")


def start_server(run_dir: Path, names: list[str], log: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """``pbrl serve`` with one invitation per name; its output (a line per answer) goes to ``log``, which is read
    for the links (a pipe nobody reads would stop the server once full)."""
    invites = [a for name in names for a in ("--invite", name)]
    with open(log, "w") as out:
        proc = subprocess.Popen([*PBRL, "serve", "--run-dir", str(run_dir), "--port", "0", "--size", "64", *invites],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    end = time.time() + 120
    while time.time() < end and proc.poll() is None:
        links = {}
        for line in log.read_text().splitlines():
            name, _, link = line.strip().partition(": ")
            if name in names:
                links[name] = link
        if len(links) == len(names):
            return proc, links
        time.sleep(0.2)
    raise RuntimeError(f"pbrl serve printed no links: {log.read_text()[-2000:]}")


def check_store(run_dir: Path, acked: dict[str, list[tuple[int, str]]], undone: dict[str, list[int]]) -> dict:
    conn = sqlite3.connect(f"file:{run_dir / 'preferences.sqlite'}?mode=ro", uri=True)
    events = conn.execute("SELECT comparison_id, kind, labeler FROM events ORDER BY id").fetchall()
    final = {cid: (status, labeler) for cid, status, labeler in
             conn.execute("SELECT id, status, labeler FROM comparisons")}
    conn.close()
    answers, undos = Counter(), Counter()
    answers_by = Counter()
    for cid, kind, labeler in events:
        (answers if kind == "answer" else undos)[cid] += 1
        if kind == "answer":
            answers_by[labeler] += 1
    twice = sorted(cid for cid in answers if answers[cid] > undos[cid] + 1)
    lost = []
    for name, pairs in acked.items():
        for cid, n_acked in Counter(cid for cid, _ in pairs).items():
            if n_acked > undone.get(name, []).count(cid) and final.get(cid, ("pending", None)) not in (
                    ("answered", name), ("incomparable", name)):
                lost.append((name, cid))  # acknowledged, never taken back, and not in the store as theirs
    missing_events = {name: len(pairs) - answers_by[name] for name, pairs in acked.items()
                      if len(pairs) != answers_by[name]}
    return {"pairs_answered_twice": len(twice), "answers_lost": len(lost), "acked_without_event": missing_events,
            "answer_events": sum(answers.values()), "undo_events": sum(undos.values()),
            "examples_twice": twice[:5], "examples_lost": lost[:5]}


def trainer_side(run_dir: Path) -> dict:
    """How far the trainer got: questions asked, the last round that asked, whether it pretrained."""
    conn = sqlite3.connect(f"file:{run_dir / 'preferences.sqlite'}?mode=ro", uri=True)
    [(asked, last_round)] = conn.execute("SELECT COUNT(*), MAX(round) FROM comparisons").fetchall()
    conn.close()
    state = {}
    manifest = run_dir / "checkpoint.json"
    if manifest.exists():
        state = json.loads((run_dir / json.loads(manifest.read_text())["dir"] / "loop_state.json").read_text())
    return {"asked": asked, "last_round_asking": last_round, "pretrained": bool(state.get("pretrained")),
            "agent_steps_at_last_checkpoint": state.get("num_timesteps")}


def write_md(figures: dict, path: Path) -> None:
    lat, st, tr = figures["answer_to_next_pair_ms"], figures["starved_answer_to_next_pair_ms"], figures["trainer"]
    trainer = (f"pretrained, then asked in {tr['last_round_asking']} rounds ({tr['asked']} questions in all, agent "
               f"step {tr['agent_steps_at_last_checkpoint']:,} at its last checkpoint)" if tr["pretrained"] else
               f"asked its {tr['asked']} initial questions and waited for their answers throughout")
    starved = f"n = {st['n']}, p50 {st['p50']} ms" if st["n"] else "none"
    lines = [
        "# pbrl serve: concurrent labelers on one live run", "",
        f"Command: `{figures['command']}`", "",
        f"{figures['labelers']} simulated labelers over HTTP (each looks {'-'.join(map(str, figures['look_s']))} s "
        f"at a pair, then answers; {figures['repeated_requests']} answers sent twice, {figures['undos']} undone and "
        f"answered again) and {'one pygame window (headless)' if figures['window'] else 'no window'}, for "
        f"{figures['seconds']:.0f} s, against `pbrl train --labeler human` on Pendulum-v1 (64 px clips).", "",
        "| figure | value |", "|---|---|",
        f"| answers acknowledged to pages | {figures['answers_acknowledged']} ({figures['answers_per_s']}/s) |",
        f"| answers given in the window | {figures['window_answers']} |",
        f"| pairs answered twice | {figures['pairs_answered_twice']} |",
        f"| answers lost | {figures['answers_lost']} |",
        f"| repeated requests stored once | {figures['repeated_requests_answered_as_repeats']} of "
        f"{figures['repeated_requests']} |",
        f"| answer -> next pair, p50 / p95 / p99 / max | {lat['p50']} / {lat['p95']} / {lat['p99']} / {lat['max']} ms "
        f"(n = {lat['n']}) |",
        f"| the same when the trainer had no free pair (waits for the trainer) | {starved} |",
        f"| window: answer -> next pair on screen, median / max | {figures['window_delay_ms']['median_delay_ms']} / "
        f"{figures['window_delay_ms']['max_delay_ms']} ms |",
        f"| the trainer | {trainer} |",
        f"| requests refused | {figures['refused'] or 'none'} |", "",
        f"Machine: {figures['machine']['cpus']} CPU cores, load average {figures['load_average']} (start, end) with "
        "other jobs running at lower priority (training sweeps); the trainer, the server, the window and the 20 "
        "clients all ran on it. The latency is measured by the clients: from sending an answer to holding the next "
        "pair (in the answer's reply, else from the event stream), so it includes the HTTP round trip and the "
        "clients' own scheduling.", "",
    ]
    path.write_text("\n".join(lines))


def python_name() -> str:
    """The Python running this, as typed from the repository (``.venv/bin/python``), else ``python``."""
    here = os.path.relpath(sys.executable)
    return here if not here.startswith("..") else "python"


def pct(xs: list[float], q: float) -> float | None:
    return round(1000 * statistics.quantiles(xs, n=100, method="inclusive")[q - 1], 1) if len(xs) >= 2 else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labelers", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--min-s", type=float, default=0.5, help="shortest look at a pair before answering")
    p.add_argument("--max-s", type=float, default=1.5, help="longest look")
    p.add_argument("--repeat-share", type=float, default=0.05, help="answers sent twice with the same key")
    p.add_argument("--undo-share", type=float, default=0.03, help="answers taken back and given again")
    p.add_argument("--n-labels", type=int, default=6000, help="the run's label budget")
    p.add_argument("--initial-fraction", type=float, default=0.2, help="of the budget asked at the start")
    p.add_argument("--window", action=argparse.BooleanOptionalAction, default=True,
                   help="a pygame window (headless) labels beside the pages")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", default=None, help="keep the run in this directory")
    p.add_argument("--out", default="results/web/concurrency")
    p.add_argument("--window-worker", nargs=3, metavar=("RUN_DIR", "SECONDS", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.window_worker:
        window_worker(Path(args.window_worker[0]), float(args.window_worker[1]), Path(args.window_worker[2]),
                      args.seed)
        return 0

    load_start = os.getloadavg()[0]
    tmp = tempfile.TemporaryDirectory()
    root = Path(args.keep or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / "run"
    names = [f"bench-{i:02d}" for i in range(args.labelers)]
    trainer = start_trainer(run_dir, args)
    server = window = None
    try:
        n_initial = int(args.n_labels * args.initial_fraction)
        wait_for_questions(run_dir, n_initial, trainer)
        server, links = start_server(run_dir, names, root / "serve.log")
        time.sleep(5.0)  # the server encodes the oldest pending pairs' clips ahead
        window_out = root / "window.json"
        if args.window:
            window = subprocess.Popen([sys.executable, __file__, "--window-worker", str(run_dir), str(args.seconds),
                                       str(window_out), "--seed", str(args.seed)])
        t0 = time.time()
        labelers = asyncio.run(run_labelers(links, args))
        wall = time.time() - t0
        window_summary = {}
        if window is not None:
            window.wait(timeout=120)
            window_summary = json.loads(window_out.read_text())
    finally:
        for proc, sig in ((server, signal.SIGTERM), (window, signal.SIGTERM), (trainer, signal.SIGINT)):
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    acked = {lab.name: lab.acked for lab in labelers}
    undone = {lab.name: lab.undone for lab in labelers}
    if window_summary:
        acked["window"] = [tuple(a) for a in window_summary["acked"]]
    store = check_store(run_dir, acked, undone)
    trainer_figures = trainer_side(run_dir)
    latency = [x for lab in labelers for x in lab.latency_s]
    starved = [x for lab in labelers for x in lab.starved_s]
    figures = {
        "labelers": args.labelers, "window": args.window, "seconds": args.seconds, "wall_s": round(wall, 1),
        "look_s": [args.min_s, args.max_s],
        "answers_acknowledged": sum(len(lab.acked) for lab in labelers),
        "window_answers": len(window_summary.get("acked", [])),
        "answers_per_s": round(sum(len(lab.acked) for lab in labelers) / wall, 2),
        "undos": sum(len(lab.undone) for lab in labelers),
        "repeated_requests": sum(lab.repeats for lab in labelers),
        "repeated_requests_answered_as_repeats": sum(lab.repeats_ok for lab in labelers),
        **store,
        "answer_to_next_pair_ms": {"n": len(latency), "p50": pct(latency, 50), "p95": pct(latency, 95),
                                   "p99": pct(latency, 99), "max": round(1000 * max(latency), 1) if latency else None},
        "starved_answer_to_next_pair_ms": {"n": len(starved), "p50": pct(starved, 50), "p95": pct(starved, 95)},
        "window_delay_ms": {k: window_summary.get(k) for k in ("n_delays", "median_delay_ms", "max_delay_ms")},
        "refused": dict(sum((lab.errors for lab in labelers), Counter())),
        "trainer": trainer_figures,
        "load_average": [round(load_start, 1), round(os.getloadavg()[0], 1)],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "command": " ".join([python_name(), "scripts/web/bench_web.py", *sys.argv[1:]]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
    write_md(figures, out.with_suffix(".md"))
    print(json.dumps(figures, indent=2))
    tmp.cleanup()
    return 0 if figures["pairs_answered_twice"] == figures["answers_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
