"""Screenshots of ``pbrl serve``'s page with real Hopper clips playing, for docs/web.md.

    .venv/bin/python scripts/web/screenshots.py --out docs

It makes a small Hopper-v5 run with people as the labeler (segments from the initial random policy, with their
simulator states), asks 6 questions, serves them with ``pbrl serve`` and opens alice's link in the system's
headless Chromium (Playwright drives it). It saves ``web_page.png`` (a pair playing, the answer to the previous one
saved) and ``web_waiting.png`` (every question answered: what the page waits for).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pbrl import TrainConfig
from pbrl.loop import PreferenceRun


def make_run(run_dir: Path, n_pairs: int) -> None:
    cfg = TrainConfig.of(env_id="Hopper-v5", labeler="human", n_labels=700, seed=0, run_dir=str(run_dir),
                         segment_buffer_size=4 * n_pairs, instructions="Which hopper moves forward better?")
    run = PreferenceRun.create(cfg.resolve())
    run.collect_initial_segments()
    run.ask(n_pairs)
    run.close()


def until(page, predicate: str, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while not page.evaluate(predicate):
        if time.time() > end:
            raise TimeoutError(predicate)
        time.sleep(0.05)


PLAYING = """() => pairId !== null && shownId === pairId
                   && [left, right].every(v => v.readyState >= 2 && v.currentTime > 0.15 && !v.paused)"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs", help="directory for web_page.png and web_waiting.png")
    p.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    p.add_argument("--size", type=int, default=320, help="clip height in pixels")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out).absolute()
    with tempfile.TemporaryDirectory() as tmp:
        make_run(Path(tmp) / "runs" / "hop", n_pairs=3)
        serve = subprocess.Popen([sys.executable, "-m", "pbrl", "serve", "--run-dir", "runs/hop", "--port", "0",
                                  "--invite", "alice", "--size", str(args.size)], stdout=subprocess.PIPE, text=True,
                                 cwd=tmp)  # the page names the run as its user typed it: runs/hop
        try:
            link = next(line.split()[1] for line in serve.stdout if line.strip().startswith("alice: "))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium,
                                             args=["--autoplay-policy=no-user-gesture-required"])
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.goto(link)
                until(page, PLAYING)
                page.keyboard.press("ArrowLeft")  # the first answer, so that the page shows one saved
                until(page, "() => document.getElementById('message').textContent.startsWith('saved')")
                until(page, PLAYING)
                time.sleep(0.8)  # into the clips, and the progress line has caught up
                page.screenshot(path=str(out / "web_page.png"))
                for _ in range(2):  # answer the rest
                    until(page, PLAYING)
                    shown = page.evaluate("pairId")
                    page.keyboard.press("ArrowRight")
                    until(page, f"() => pairId !== {shown}")
                until(page, "() => pairId === null && !document.getElementById('waiting').hidden")
                time.sleep(1.5)  # the progress line catches up
                page.screenshot(path=str(out / "web_waiting.png"))
                browser.close()
        finally:
            serve.terminate()
            serve.wait(timeout=30)
    print(f"wrote {out / 'web_page.png'} and {out / 'web_waiting.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
