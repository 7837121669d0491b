"""Tests for ``ui``: the labelling window driven headless by posted pygame events, against a real run's store."""

from __future__ import annotations

import math
import sqlite3
import threading
import time

import numpy as np
import pytest

pygame = pytest.importorskip("pygame")

from pbrl.loop import PreferenceRun  # noqa: E402
from pbrl.store import PreferenceStore  # noqa: E402
from pbrl.ui.app import LabelApp  # noqa: E402
from pbrl.ui.render import ClipRenderer, ObservationBars  # noqa: E402
from pbrl.ui.session import LabelSession  # noqa: E402


def _session(run_dir, name="alice", **kw) -> LabelSession:
    return LabelSession(run_dir / "preferences.sqlite", name, lambda: ObservationBars(48), seed=0, **kw)


def _pump(app: LabelApp, until, timeout: float = 10.0) -> None:
    """Step the app until ``until()`` holds (the prefetch thread renders in the background)."""
    end = time.time() + timeout
    while not until():
        assert time.time() < end, "the app did not get there in time"
        assert app.step(dt=0.02)
        time.sleep(0.005)


def _key(key: int, unicode: str = "") -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode=unicode))


def _rows(run_dir) -> dict[int, tuple]:
    conn = sqlite3.connect(run_dir / "preferences.sqlite")
    try:
        rows = conn.execute("SELECT id, status, label, labeler, swapped, shown_at, response_s FROM comparisons")
        return {r[0]: r[1:] for r in rows.fetchall()}
    finally:
        conn.close()


@pytest.fixture
def app_on(tmp_path):
    apps: list[LabelApp] = []

    def make(run_dir, session: LabelSession) -> LabelApp:
        apps.append(LabelApp(run_dir, session, clip_size=48))
        return apps[-1]

    yield make
    for app in apps:
        app.close()


@pytest.mark.parametrize(("key", "unicode", "p_left"), [
    (pygame.K_LEFT, "", 1.0), (pygame.K_RIGHT, "", 0.0), (pygame.K_UP, "", 0.5), (pygame.K_EQUALS, "=", 0.5),
    (pygame.K_DOWN, "", math.nan),
])
def test_each_answer_key_stores_its_label_with_the_order_undone(human_run, app_on, key, unicode, p_left):
    run_dir, ids = human_run(4)
    app = app_on(run_dir, _session(run_dir))
    answered = []
    for _ in range(4):  # four pairs: both left/right orders occur with seed 0
        _pump(app, lambda: app.session.current is not None)
        item = app.session.current
        answered.append(item)
        _key(key, unicode)
        _pump(app, lambda item=item: app.session.current is not item)
    rows = _rows(run_dir)
    assert {i.swapped for i in answered} == {True, False}
    for item in answered:
        status, label, labeler, swapped, shown_at, response_s = rows[item.comparison.id]
        assert labeler == "alice" and swapped == int(item.swapped)
        assert shown_at is not None and response_s is not None and response_s >= 0
        if math.isnan(p_left):
            assert status == "incomparable" and label is None
        else:
            assert status == "answered"
            assert label == (1.0 - p_left if item.swapped else p_left)  # P(first), whichever side it was on


def test_mouse_buttons_answer_like_keys(human_run, app_on):
    run_dir, _ = human_run(2)
    app = app_on(run_dir, _session(run_dir))
    rect = {choice: r for r, choice in app.buttons}
    _pump(app, lambda: app.session.current is not None)
    item = app.session.current
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect["equal"].center, button=1))
    _pump(app, lambda: app.session.current is not item)
    assert _rows(run_dir)[item.comparison.id][:2] == ("answered", 0.5)


def test_undo_puts_the_last_answer_back_on_screen_and_records_it(human_run, app_on):
    run_dir, _ = human_run(3)
    app = app_on(run_dir, _session(run_dir))
    _pump(app, lambda: app.session.current is not None)
    first = app.session.current
    _key(pygame.K_LEFT)
    _pump(app, lambda: app.session.current not in (None, first))
    _key(pygame.K_u)
    _pump(app, lambda: app.session.current is first)
    assert _rows(run_dir)[first.comparison.id][0] == "pending"
    _key(pygame.K_RIGHT)  # the corrected answer
    _pump(app, lambda: app.session.current is not first)
    assert _rows(run_dir)[first.comparison.id][1] == (1.0 if first.swapped else 0.0)
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        kinds = [k for (k,) in store._conn.execute(
            "SELECT kind FROM events WHERE comparison_id=? ORDER BY id", (first.comparison.id,))]
    assert kinds == ["answer", "undo", "answer"]
    _key(pygame.K_BACKSPACE)  # backspace undoes too
    _pump(app, lambda: app.session.current is first)


def test_speed_pause_and_replay_keys(human_run, app_on):
    run_dir, _ = human_run(1)
    app = app_on(run_dir, _session(run_dir))
    _pump(app, lambda: app.session.current is not None)
    _key(pygame.K_r)
    app.step(dt=0.0)
    assert app.clip_t == 0.0
    speeds = []
    for key, text in [(pygame.K_PLUS, "+")] * 3 + [(pygame.K_MINUS, "-")] * 6:
        _key(key, text)
        app.step(dt=0.0)
        speeds.append(app.speed)
    assert speeds == [2.0, 4.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.25, 0.25]
    app.step(dt=1.0)
    assert app.clip_t == pytest.approx(0.25)  # 1 s at 0.25x
    _key(pygame.K_SPACE)
    app.step(dt=1.0)
    assert app.paused and app.clip_t == pytest.approx(0.25)
    _key(pygame.K_r)
    app.step(dt=0.0)
    assert not app.paused and app.clip_t == 0.0
    _key(pygame.K_q)
    assert not app.step(dt=0.0)


def test_two_labelers_never_see_the_same_pair(human_run, app_on):
    run_dir, ids = human_run(8)
    a = app_on(run_dir, _session(run_dir, "alice"))
    b = app_on(run_dir, _session(run_dir, "bob"))
    seen: dict[str, set[int]] = {"alice": set(), "bob": set()}
    end = time.time() + 20
    while len(seen["alice"] | seen["bob"]) < len(ids) or any(app.session.current for app in (a, b)):
        assert time.time() < end
        for app, key in ((a, pygame.K_LEFT), (b, pygame.K_RIGHT)):
            app.step(dt=0.02)
            if app.session.current is not None:
                seen[app.session.name].add(app.session.current.comparison.id)
                _key(key)
                app.step(dt=0.02)
        time.sleep(0.005)
    assert not seen["alice"] & seen["bob"] and seen["alice"] and seen["bob"]
    rows = _rows(run_dir)
    assert all(rows[i][0] == "answered" for i in ids)
    assert {rows[i][2] for i in seen["alice"]} == {"alice"} and {rows[i][2] for i in seen["bob"]} == {"bob"}


def test_reopening_after_a_close_continues_with_the_rest(human_run, app_on):
    run_dir, ids = human_run(4)
    app = app_on(run_dir, _session(run_dir))
    for _ in range(2):
        _pump(app, lambda: app.session.current is not None)
        item = app.session.current
        _key(pygame.K_LEFT)
        _pump(app, lambda item=item: app.session.current is not item)
    _pump(app, lambda: app.session.current is not None)  # a third pair on screen when the window closes
    on_screen = app.session.current.comparison.id
    app.close()
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        assert store.counts().n_leased == 0  # closing gave every held pair back
    again = app_on(run_dir, _session(run_dir))
    shown = set()
    while len(shown) < 2:
        _pump(again, lambda: again.session.current is not None)
        item = again.session.current
        shown.add(item.comparison.id)
        _key(pygame.K_RIGHT)
        _pump(again, lambda item=item: again.session.current is not item)
    assert on_screen in shown
    assert all(status == "answered" for status, *_ in _rows(run_dir).values())


def test_an_idle_window_gives_its_pairs_back(human_run, app_on):
    run_dir, ids = human_run(2)
    app = app_on(run_dir, _session(run_dir, lease_s=2.0))
    _pump(app, lambda: app.session.current is not None)
    time.sleep(2.1)
    app.step(dt=0.02)
    assert app.session.idle and app.session.current is None
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        assert store.lease_next("bob:1", 60.0) is not None  # someone else can take them now
    end = time.time() + 20
    while app.session.current is None:  # any key brings the window back; keys keep it active while it renders
        assert time.time() < end
        _key(pygame.K_a)
        app.step(dt=0.02)
        time.sleep(0.01)
    assert not app.session.idle


def test_an_empty_queue_shows_the_waiting_message(human_run, app_on):
    run_dir, _ = human_run(1)
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        store.answer(store.comparisons("pending")[0].id, 1.0, "synthetic")
    app = app_on(run_dir, _session(run_dir))
    for _ in range(10):
        assert app.step(dt=0.02)
    assert app.session.current is None and app.info.n_labels == 1 and app.info.budget == 40


def test_the_log_records_the_delay_from_answer_to_next_pair(human_run, app_on):
    run_dir, _ = human_run(4)
    app = app_on(run_dir, _session(run_dir))
    for _ in range(3):
        _pump(app, lambda: app.session.current is not None and app.session.has_next())
        item = app.session.current
        _key(pygame.K_LEFT)
        _pump(app, lambda item=item: app.session.current not in (None, item))
    summary = app.summary()
    assert summary["answered"] == 3 and summary["n_delays"] == 3 and summary["median_delay_ms"] < 1000
    assert '"event": "shown"' in app.log_path.read_text()


def test_hopper_clips_render_from_saved_states():
    from pbrl.envs import make_env
    from pbrl.segments import Segment

    env = make_env("Hopper-v5", seed=0)
    _, info = env.reset(seed=0)
    states = [info["pbrl_state"]]
    for _ in range(5):
        _, _, _, _, info = env.step(env.action_space.sample())
        states.append(info["pbrl_state"])
    env.close()
    seg = Segment(obs=np.zeros((6, 11), np.float32), acts=np.zeros((6, 3), np.float32),
                  true_rews=np.zeros(6, np.float32), policy_step=0, episode=0, env_step=0,
                  states=np.stack(states))
    renderer = ClipRenderer("Hopper-v5", size=64)
    try:
        frames = renderer.frames(seg)
    finally:
        renderer.close()
    assert frames.shape == (6, 64, 64, 3) and frames.dtype == np.uint8 and renderer.fps == 125
    assert frames.std() > 5  # a picture, not a blank
    assert not np.array_equal(frames[0], frames[-1])  # the body moved


def _train_in_thread(cfg) -> tuple[threading.Thread, dict]:
    """Train in a thread that owns the run (SQLite connections belong to their thread); box["run"] is set."""
    box: dict = {}
    ready = threading.Event()

    def train() -> None:
        run = box["run"] = PreferenceRun.create(cfg)
        ready.set()
        try:
            box.update(run.run(progress=False))
        finally:
            run.close()

    worker = threading.Thread(target=train)
    worker.start()
    assert ready.wait(60)
    return worker, box


def test_training_with_people_waits_only_for_the_initial_labels(tiny_config):
    """PPO starts once the initial labels are in, then never has more than --max-pending queries waiting."""
    cfg = tiny_config(labeler="human", n_labels=30, total_timesteps=1024, label_interval=64, max_pending=3)
    worker, box = _train_in_thread(cfg)
    store = PreferenceStore(box["run"].run_dir.store)
    run, result = box["run"], box
    max_pending_after_start, rng = 0, np.random.default_rng(0)
    while worker.is_alive():
        counts = store.counts()
        if run.state.pretrained:
            max_pending_after_start = max(max_pending_after_start, counts.n_pending)
        for c in store.comparisons("pending")[:1]:  # a slow person: one answer per poll
            store.answer(c.id, float(rng.integers(0, 2)), "scripted")
        time.sleep(0.02)
    worker.join()
    store.close()
    assert result["total_timesteps"] >= 1024 and result["labeler"] == "human"
    assert result["n_labels"] >= run.schedule.n_initial
    assert max_pending_after_start <= 3


def test_pause_when_full_stops_ppo_until_answers_arrive(tiny_config):
    cfg = tiny_config(labeler="human", n_labels=40, total_timesteps=4096, label_interval=64, max_pending=2,
                      when_full="pause", initial_label_fraction=0.1)
    worker, box = _train_in_thread(cfg)
    run = box["run"]
    store = PreferenceStore(run.run_dir.store)
    try:
        end = time.time() + 60
        while not run.state.pretrained:  # answer the initial queries only
            for c in store.comparisons("pending"):
                store.answer(c.id, 1.0, "scripted")
            time.sleep(0.02)
            assert time.time() < end
        while store.counts().n_pending < 2:
            time.sleep(0.02)
            assert time.time() < end
        time.sleep(0.5)
        steps = run.ppo.num_timesteps
        time.sleep(1.0)
        assert run.ppo.num_timesteps == steps < 4096  # paused
    finally:
        while worker.is_alive():  # answering lets it finish
            for c in store.comparisons("pending"):
                store.answer(c.id, 0.0, "scripted")
            time.sleep(0.02)
        worker.join()
        store.close()
    assert run.ppo.num_timesteps >= 4096


def test_an_atari_pair_is_shown_headless(tmp_path, app_on):
    from pbrl.segments import Segment
    from pbrl.ui.render import AutoRenderer

    rng = np.random.default_rng(0)

    def seg() -> Segment:
        return Segment(obs=rng.integers(0, 255, (25, 4, 84, 84), dtype=np.uint8),
                       acts=np.eye(6, dtype=np.float32)[rng.integers(0, 6, 25)], true_rews=np.zeros(25, np.float32),
                       policy_step=0, episode=0, env_step=0)

    with PreferenceStore(tmp_path / "preferences.sqlite") as store:
        store.add_queries([(seg(), seg())], ["train"], 0, 0)
    session = LabelSession(tmp_path / "preferences.sqlite", "alice", lambda: AutoRenderer("ALE/Pong-v5", 48), seed=0)
    app = app_on(tmp_path, session)
    _pump(app, lambda: app.session.current is not None)
    item = app.session.current
    assert item.left.shape == (25, 48, 48, 3) and item.fps == 15
    _key(pygame.K_LEFT)
    _pump(app, lambda: app.session.current is None and app.session.stats.answered == 1)


def test_run_loops_until_quit_and_closes(human_run, tmp_path):
    run_dir, _ = human_run(1)
    app = LabelApp(run_dir, _session(run_dir), clip_size=48)
    _key(pygame.K_ESCAPE)
    app.run()  # returns on Esc, after closing the session (its leases given back) and the log
    assert '"event": "close"' in app.log_path.read_text()
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        assert store.counts().n_leased == 0 and store.counts().n_pending == 1


# -- keys as a US keyboard delivers them: key code, modifiers and the text typed -------------------------------

SHIFT, CTRL = pygame.KMOD_LSHIFT, pygame.KMOD_LCTRL
REAL_KEYS = [  # (name, key, mod, text typed, what it does)
    ("left arrow", pygame.K_LEFT, 0, "", "left"), ("right arrow", pygame.K_RIGHT, 0, "", "right"),
    ("up arrow", pygame.K_UP, 0, "", "equal"), ("down arrow", pygame.K_DOWN, 0, "", "cant_tell"),
    ("=", pygame.K_EQUALS, 0, "=", "equal"), ("keypad =", pygame.K_KP_EQUALS, 0, "=", "equal"),
    ("+ (shift and =)", pygame.K_EQUALS, SHIFT, "+", "faster"), ("keypad +", pygame.K_KP_PLUS, 0, "+", "faster"),
    ("+ with no text", pygame.K_EQUALS, SHIFT, "", "faster"), ("-", pygame.K_MINUS, 0, "-", "slower"),
    ("keypad -", pygame.K_KP_MINUS, 0, "-", "slower"), ("space", pygame.K_SPACE, 0, " ", "pause"),
    ("r", pygame.K_r, 0, "r", "replay"), ("R with caps lock", pygame.K_r, pygame.KMOD_CAPS, "R", "replay"),
    ("u", pygame.K_u, 0, "u", "undo"), ("backspace", pygame.K_BACKSPACE, 0, "\b", "undo"),
    ("q", pygame.K_q, 0, "q", "quit"), ("escape", pygame.K_ESCAPE, 0, "\x1b", "quit"),
    ("ctrl+q", pygame.K_q, CTRL, "\x11", "quit"), ("ctrl+r does nothing", pygame.K_r, CTRL, "\x12", None),
    ("a does nothing", pygame.K_a, 0, "a", None), ("shift alone", pygame.K_LSHIFT, SHIFT, "", None),
]


def _real_key(key: int, mod: int, text: str) -> None:
    """What SDL hands pygame for one key press: KEYDOWN with its modifiers and text, then TEXTINPUT, then KEYUP."""
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=mod, unicode=text))
    if text and text.isprintable():
        pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text=text))
    pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key, mod=mod, unicode=""))


@pytest.mark.parametrize("name, key, mod, text, action", REAL_KEYS, ids=[k[0] for k in REAL_KEYS])
def test_each_key_means_what_the_help_says(name, key, mod, text, action):
    from pbrl.ui.app import action_for

    assert action_for(key, mod, text) == action


@pytest.mark.parametrize("name, key, mod, text, action", REAL_KEYS, ids=[k[0] for k in REAL_KEYS])
def test_each_real_key_press_has_its_effect_in_the_window(human_run, app_on, name, key, mod, text, action):
    run_dir, ids = human_run(2)
    app = app_on(run_dir, _session(run_dir))
    _pump(app, lambda: app.session.current is not None and app.session.has_next())
    first = app.session.current
    if action == "undo":  # something to undo: answer the first pair
        _real_key(pygame.K_LEFT, 0, "")
        _pump(app, lambda: app.session.current not in (None, first))
    app.step(dt=0.5)
    before = (app.speed, app.paused, app.clip_t, app.session.current)
    _real_key(key, mod, text)
    alive = app.step(dt=0.0)
    rows = _rows(run_dir)
    answered = {i: r for i, r in rows.items() if r[0] != "pending"}
    if action == "quit":
        assert not alive and not answered
        return
    assert alive
    if action in ("left", "right", "equal", "cant_tell"):
        assert list(answered) == [first.comparison.id] and app.session.current is not first
        label = {"left": 1.0, "right": 0.0, "equal": 0.5, "cant_tell": None}[action]
        stored = answered[first.comparison.id][1]
        assert stored == (label if label is None or not first.swapped else 1.0 - label)
        return
    if action == "undo":
        assert not answered and app.session.current is first  # the answer is taken back, the pair shown again
        return
    assert not answered  # none of the other keys stores anything
    speed, paused, clip_t, current = before
    assert app.session.current is current
    assert app.speed == {"faster": 2.0, "slower": 0.5}.get(action, speed)
    assert app.paused == (action == "pause")
    assert (app.clip_t == 0.0) == (action == "replay")


def test_a_key_before_any_pair_is_drawn_is_refused_visibly(human_run, app_on):
    run_dir, _ = human_run(2)
    app = app_on(run_dir, _session(run_dir))
    _real_key(pygame.K_LEFT, 0, "")  # pressed while the window is still loading its first pair
    app.step(dt=0.0)
    assert app.message.startswith("not saved") and all(r[0] == "pending" for r in _rows(run_dir).values())
    _pump(app, lambda: app.session.current is not None and app.session.has_next())
    first = app.session.current
    _pump(app, lambda: app.session.n_ready() >= 1)
    _real_key(pygame.K_LEFT, 0, "")  # a burst: the second key comes before the next pair was drawn
    _real_key(pygame.K_RIGHT, 0, "")
    app.step(dt=0.0)
    rows = _rows(run_dir)
    assert [i for i, r in rows.items() if r[0] != "pending"] == [first.comparison.id]
    assert app.message.startswith("not saved: right is better came before a pair was on screen")
    second = app.session.current
    assert second is not None and second.shown_at is not None  # drawn now: the next key counts
    _real_key(pygame.K_RIGHT, 0, "")
    app.step(dt=0.0)
    assert _rows(run_dir)[second.comparison.id][0] == "answered"


def test_a_new_pair_starts_playing_even_if_the_last_was_paused(human_run, app_on):
    run_dir, _ = human_run(2)
    app = app_on(run_dir, _session(run_dir))
    _pump(app, lambda: app.session.current is not None and app.session.has_next())
    first = app.session.current
    _real_key(pygame.K_SPACE, 0, " ")
    app.step(dt=0.0)
    assert app.paused
    _real_key(pygame.K_LEFT, 0, "")
    _pump(app, lambda: app.session.current not in (None, first))
    assert not app.paused and app.status_lines()[1].endswith("clips at 1x")


def test_progress_counts_cant_tell_and_the_window_says_when_the_run_has_finished(human_run, app_on):
    run_dir, ids = human_run(3)
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        store.answer(ids[0], 1.0, "bob")
        store.answer(ids[1], math.nan, "bob")  # can't tell
    app = app_on(run_dir, _session(run_dir))
    _pump(app, lambda: app.session.current is not None)
    assert app.status_lines()[0].startswith("answered 2/40 (1 can't tell)")
    (run_dir / "metrics.json").write_text("{}")  # the trainer finished
    app._info_at = 0.0
    _pump(app, lambda: app.session.current is None)
    assert app.session.run_closed and app.waiting_text().startswith("Training has finished")
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        assert store.counts().n_leased == 0  # the pair on screen went back, unanswered


@pytest.mark.parametrize("aspect", [1.0, 160 / 210])
@pytest.mark.parametrize("size", [(480, 360), (640, 480), (853, 600), (1280, 800), (1920, 1080), (900, 1400)])
def test_the_layout_fits_the_window_at_any_size(size, aspect):
    from pbrl.ui.app import Layout

    lay = Layout.fit(*size, aspect)
    (lx, ly, lw, lh), (rx, ry, rw, rh) = lay.clips
    assert lw / lh == pytest.approx(aspect, abs=0.02) and (lw, lh) == (rw, rh) and ly == ry
    assert 0 <= lx < lx + lw < rx < rx + rw <= size[0]  # side by side, inside the window
    assert max(lay.status_y) < ly and ly + lh < min(y for _, y, _, _ in lay.buttons)
    for x, y, w, h in lay.buttons:
        assert 0 <= x and x + w <= size[0] and y + h < lay.message_y < lay.help_y[0] < lay.help_y[1] < size[1]
    if rx + rw - lx >= 4 * 40 * lay.scale:  # the buttons span exactly the two clips
        assert lay.buttons[0][0] == pytest.approx(lx, abs=1) and sum(lay.buttons[3][::2]) == pytest.approx(
            rx + rw, abs=2)
    window = Layout.window_for(lh, aspect)
    assert Layout.fit(*window, aspect).clips[0][3] == pytest.approx(lh, abs=3)  # the size that shows such clips


def test_a_resized_window_lays_itself_out_again(human_run, app_on):
    run_dir, _ = human_run(1)
    app = app_on(run_dir, _session(run_dir))
    _pump(app, lambda: app.session.current is not None)
    pygame.event.post(pygame.event.Event(pygame.VIDEORESIZE, w=1200, h=800, size=(1200, 800)))
    app.step(dt=0.0)
    assert app.screen.get_size() == (1200, 800) and app.layout.width == 1200
    assert app.layout.clips[0][3] > 300 and app.layout.scale > 1.0  # bigger clips, bigger text


def test_closing_the_ui_window_early_is_told_on_the_console(capsys):
    import subprocess
    import sys
    from types import SimpleNamespace

    from pbrl.commands.train import _watch_window

    for code, pretrained, want in [(0, False, "closed before the first 5 labels were in; training waits"),
                                   (3, True, "stopped with exit code 3; training goes on")]:
        window = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
        session = SimpleNamespace(finished=False, cfg=SimpleNamespace(human=True), run_dir=SimpleNamespace(
            path="runs/x"), schedule=SimpleNamespace(n_initial=5), state=SimpleNamespace(pretrained=pretrained))
        _watch_window(window, session)
        assert window.returncode == code  # reaped: no zombie
        err = capsys.readouterr().err.strip()
        assert want in err and err.endswith("pbrl label --run-dir runs/x") and len(err.splitlines()) == 1


def test_label_without_a_screen_is_one_line_not_an_invisible_window(human_run, monkeypatch, capsys):
    from pbrl.cli import main

    run_dir, _ = human_run(1)
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["label", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no screen to open the labelling window on" in err[0]
