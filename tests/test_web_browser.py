"""``pbrl serve``'s page in a real headless Chromium (the system's, driven by Playwright; skipped without one).

A labeler opens her invitation link, sees two clips playing, answers with keys and with the buttons, undoes one
answer and gives another; the store then holds exactly those answers, each with her name.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium: apt-get install chromium (.ci/run does)")]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[dev]'")
pytest.importorskip("starlette", reason='needs the web extra: pip install "pbrl[web]"')

from pbrl.loop import PreferenceRun  # noqa: E402

P_LEFT = {"left": 1.0, "right": 0.0, "equal": 0.5}


@pytest.fixture
def served(tiny_config):
    """``pbrl serve`` on a human run with 8 pending Pendulum pairs; yields (run dir, alice's link)."""
    run = PreferenceRun.create(tiny_config(labeler="human", n_labels=40))
    run.collect_initial_segments()
    run.ask(8)
    run.close()
    run_dir = run.run_dir.path
    proc = subprocess.Popen([sys.executable, "-m", "pbrl", "serve", "--run-dir", str(run_dir), "--port", "0",
                             "--invite", "alice", "--size", "64"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    link = None
    for line in proc.stdout:
        if line.strip().startswith("alice: "):
            link = line.split()[1]
            break
    assert link is not None, f"pbrl serve printed no link (exit {proc.poll()})"
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # its line per answer never fills the pipe
    yield run_dir, link
    proc.terminate()
    proc.wait(timeout=30)


def _until(page, predicate: str, arg=None, timeout: float = 30.0) -> None:
    """Poll ``predicate`` (a JavaScript function of ``arg``) in the page until it is true. Not Playwright's
    wait_for_function: that evaluates strings, which the page's Content-Security-Policy forbids, as it should."""
    end = time.time() + timeout
    while not page.evaluate(predicate, arg):
        assert time.time() < end, f"the page never got to: {predicate} ({page.evaluate(MESSAGE)!r})"
        time.sleep(0.05)


MESSAGE = "() => document.getElementById('message').textContent"


def _wait_for_new_pair(page, previous: int | None) -> int:
    """Wait until a pair other than ``previous`` plays in both clips and the server knows it is shown."""
    _until(page, """prev => pairId !== null && pairId !== prev && shownId === pairId
                            && [left, right].every(v => v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0)""",
           previous)
    return page.evaluate("pairId")


def _saved(page, text: str) -> None:
    _until(page, "t => document.getElementById('message').textContent.startsWith(t)", text)


def test_a_labeler_answers_with_keys_and_buttons_and_undoes_one_in_chromium(served, tmp_path):
    run_dir, link = served
    given: dict[int, str] = {}  # pair -> the choice the store must hold
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(link)
        pair = _wait_for_new_pair(page, None)
        assert "token" not in page.url  # taken out of the address bar
        playing = page.evaluate("[left, right].map(v => [v.paused, v.currentTime, v.videoWidth])")
        assert all(width == 64 for _, _, width in playing)
        _until(page, "() => [left, right].every(v => !v.paused || v.ended)")  # both play (and loop)
        page.screenshot(path=str(tmp_path / "page.png"))

        # keys: speed and pause change the clips, not the store
        page.keyboard.press("+")
        assert page.evaluate("[left.playbackRate, right.playbackRate]") == [2, 2]
        page.keyboard.press("-")
        page.keyboard.press("Space")
        assert page.evaluate("paused && left.paused && right.paused")
        page.keyboard.press("r")
        assert not page.evaluate("paused")

        # answers by key ...
        for key, choice in (("ArrowLeft", "left"), ("ArrowUp", "equal")):
            page.keyboard.press(key)
            _saved(page, f"saved: {'left is better' if choice == 'left' else 'equally good'} (pair #{pair})")
            given[pair] = choice
            pair = _wait_for_new_pair(page, pair)
        # ... and by button
        page.get_by_role("button", name="Right is better").click()
        _saved(page, f"saved: right is better (pair #{pair})")
        given[pair] = "right"
        undone = pair
        pair = _wait_for_new_pair(page, pair)
        # undo the last one: that pair is back on screen; answer it again, by button this time
        page.keyboard.press("u")
        _saved(page, f"undone: pair #{undone} is back on screen")
        del given[undone]
        pair = _wait_for_new_pair(page, pair)
        assert pair == undone
        page.get_by_role("button", name="Equally good").click()
        _saved(page, f"saved: equally good (pair #{pair})")
        given[pair] = "equal"
        pair = _wait_for_new_pair(page, pair)
        page.keyboard.press("ArrowDown")  # can't tell: kept, not used for fitting
        _saved(page, f"saved: can't tell (pair #{pair})")
        given[pair] = "cant_tell"
        progress = "() => document.getElementById('progress').textContent"
        _until(page, f"{progress}.startsWith('answered 4/40 (1 can\\'t tell)')")
        assert not errors
        browser.close()

    conn = sqlite3.connect(Path(run_dir) / "preferences.sqlite")
    rows = conn.execute("SELECT id, status, label, labeler, swapped, shown_at, response_s FROM comparisons "
                        "WHERE status != 'pending'").fetchall()
    kinds = conn.execute("SELECT kind FROM events ORDER BY id").fetchall()
    conn.close()
    assert {r[0] for r in rows} == set(given)
    for cid, status, label, labeler, swapped, shown_at, response_s in rows:
        assert labeler == "alice" and shown_at is not None and response_s >= 0
        if given[cid] == "cant_tell":
            assert status == "incomparable" and label is None
        else:
            p_left = P_LEFT[given[cid]]
            assert status == "answered" and label == (1.0 - p_left if swapped else p_left)
    assert [k for (k,) in kinds] == ["answer"] * 3 + ["undo"] + ["answer"] * 2
