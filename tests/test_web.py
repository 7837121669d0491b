"""Tests for ``pbrl.web`` (``pbrl serve``): a live server on a real run's store, over HTTP.

Each test runs the app in uvicorn on a free port (a thread of the test) and talks to it with httpx, as a page would;
clips are pictures of Pendulum's observations, so no simulator is needed. The security checks of issue 27 are the
tables below: no or a wrong token is 401, another labeler's pair 403, a clip path outside the cache 404, a replayed
answer is stored once, and ``--host`` other than loopback without invitations is one line.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from pbrl.run_dir import RunDir  # noqa: E402
from pbrl.store import PreferenceStore  # noqa: E402
from pbrl.store.invitations import invite, revoke  # noqa: E402
from pbrl.ui.render import ObservationBars  # noqa: E402
from pbrl.ui.session import LabelSession  # noqa: E402
from pbrl.web.app import make_app  # noqa: E402
from pbrl.web.cli import listen  # noqa: E402
from pbrl.web.server import LabelServer  # noqa: E402

KEY = "k" * 16


def _key(i: int) -> str:
    return f"request-key-{i:08d}"


class Live:
    """``pbrl serve``'s app on a free port of 127.0.0.1, in a thread; ``tokens[name]`` opens it as ``name``."""

    def __init__(self, run_dir: Path, names=("alice", "bob"), **server_kw):
        self.run_dir, self.lines = run_dir, []
        with PreferenceStore(run_dir / "preferences.sqlite") as store:
            self.tokens = {name: invite(store, name) for name in names}
        self.server = LabelServer(RunDir(run_dir), lambda: ObservationBars(32), run_dir / "web_clips" / "32px",
                                  log=self.lines.append, **server_kw)
        sock = listen("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(make_app(self.server), log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=1)
        self.uv = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uv.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        end = time.time() + 30
        while not self.uv.started:
            assert time.time() < end and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=20)

    def headers(self, name: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"} if name else {}

    def post(self, path: str, name: str | None, body=None, **kw) -> httpx.Response:
        return self.http.post(path, json={} if body is None else body, headers=self.headers(name), **kw)

    def state(self, name: str) -> dict:
        r = self.http.get("/api/state", headers=self.headers(name))
        assert r.status_code == 200, r.text
        return r.json()

    def pair(self, name: str, timeout: float = 20.0) -> dict:
        """The pair on ``name``'s screen, marked shown (as the page does once both clips play)."""
        end = time.time() + timeout
        while (state := self.state(name))["pair"] is None:
            assert time.time() < end, f"no pair reached {name}: {state['waiting']}"
            time.sleep(0.05)
        assert self.post("/api/shown", name, {"pair": state["pair"]["id"]}).status_code == 200
        return state["pair"]

    def answer(self, name: str, pair: int, choice: str = "left", key: str | None = None) -> httpx.Response:
        return self.post("/api/answer", name, {"pair": pair, "choice": choice, "key": key or _key(pair)})

    def close(self) -> None:
        self.uv.should_exit = True
        self.thread.join(timeout=20)
        self.http.close()


@pytest.fixture
def live(human_run):
    servers: list[Live] = []

    def make(n: int = 6, names=("alice", "bob"), **server_kw) -> Live:
        run_dir, _ = human_run(n)
        servers.append(Live(run_dir, names, **server_kw))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _rows(run_dir: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(run_dir / "preferences.sqlite")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _store_digest(run_dir: Path) -> list[tuple]:
    """Everything answered or undone (what a refused request must leave as it was)."""
    return (_rows(run_dir, "SELECT id, status, label, labeler FROM comparisons ORDER BY id")
            + _rows(run_dir, "SELECT comparison_id, kind, label, labeler FROM events ORDER BY id"))


def _raw_get(port: int, path: str, headers: dict[str, str]) -> int:
    """GET ``path`` exactly as written (no client normalises its dots away); the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


# -- who may do what: the security checks -----------------------------------------------------------------------

PROTECTED = [("POST", "/api/login"), ("GET", "/api/state"), ("GET", "/api/events"), ("POST", "/api/shown"),
             ("POST", "/api/answer"), ("POST", "/api/undo"), ("POST", "/api/touch"), ("POST", "/api/leave"),
             ("GET", "/clips/1.mp4")]


@pytest.mark.parametrize("credentials", ["none", "wrong token", "revoked token", "wrong cookie", "malformed header"])
def test_every_request_but_the_page_needs_a_valid_token(live, credentials):
    server = live()
    before = _store_digest(server.run_dir)
    if credentials == "revoked token":
        with PreferenceStore(server.run_dir / "preferences.sqlite") as store:
            revoke(store, "bob")
        server.server.refresh_tokens()
    headers, cookies = {
        "none": ({}, {}), "wrong token": ({"Authorization": "Bearer " + "x" * 32}, {}),
        "revoked token": (server.headers("bob"), {}), "wrong cookie": ({}, {"pbrl_token": "y" * 32}),
        "malformed header": ({"Authorization": server.tokens["alice"]}, {}),  # no "Bearer"
    }[credentials]
    body = {"pair": 1, "choice": "left", "key": KEY}
    for method, path in PROTECTED:
        r = server.http.request(method, path, headers=headers, cookies=cookies, json=body if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
    for path in ("/", "/page.js", "/page.css"):  # the page itself holds no data
        assert server.http.get(path).status_code == 200
    assert _store_digest(server.run_dir) == before


def test_a_cookie_alone_opens_what_a_browser_fetches_by_itself_but_changes_nothing(live):
    server = live()
    login = server.post("/api/login", "alice")
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    token = {"pbrl_token": server.tokens["alice"]}
    assert server.http.get("/api/state", cookies=token).status_code == 200
    pair = server.pair("alice")
    assert server.http.get(pair["left"], cookies=token).status_code == 200
    # a form on another site could send the cookie, never the header: POSTs need the header
    r = server.http.post("/api/answer", cookies=token, json={"pair": pair["id"], "choice": "left", "key": KEY})
    assert r.status_code == 401
    assert _rows(server.run_dir, "SELECT COUNT(*) FROM events") == [(0,)]


def test_a_labeler_cannot_answer_another_labelers_pair(live):
    server = live()
    alices = server.pair("alice")["id"]
    bobs = server.pair("bob")["id"]
    assert alices != bobs  # never the same pair on two screens
    before = _store_digest(server.run_dir)
    r = server.answer("bob", alices, key=_key(1))
    assert r.status_code == 403 and "not yours" in r.json()["error"]
    assert server.post("/api/undo", "bob", {"pair": alices, "key": _key(2)}).status_code == 409  # nothing of his
    assert server.http.get(f"/clips/{alices}.mp4", headers=server.headers("bob")).status_code in (404, 200)
    assert _store_digest(server.run_dir) == before
    assert server.answer("alice", alices).status_code == 200


def test_clips_of_pairs_a_labeler_does_not_hold_are_not_served(live):
    server = live(n=8)
    alices = server.pair("alice")
    server.pair("bob")
    time.sleep(0.5)  # bob's next pair is leased too
    bobs = {f"/clips/{sid}.mp4" for pair in _rows(server.run_dir, "SELECT first_id, second_id FROM comparisons "
                                                  "WHERE leased_by LIKE 'bob:%'") for sid in pair}
    for url in (alices["left"], alices["right"]):
        assert server.http.get(url, headers=server.headers("alice")).status_code == 200
        # a segment can be in several pairs: bob gets it only if one of them is his
        assert server.http.get(url, headers=server.headers("bob")).status_code == (200 if url in bobs else 404)
    assert {alices["left"], alices["right"]} - bobs


@pytest.mark.parametrize("path", [
    "/clips/../preferences.sqlite", "/clips/%2e%2e/preferences.sqlite", "/clips/..%2fpreferences.sqlite",
    "/clips/%2e%2e%2f%2e%2e%2fconfig.json", "/clips/1.mp4/../../config.json", "/clips/..%5cpreferences.sqlite",
    "/clips/32px/seg-0000001.mp4", "/clips/seg-0000001.mp4", "/clips/1.json", "/clips/-1.mp4", "/clips/1.mp4%00",
    "/clips/%2fetc%2fpasswd", "/clips//etc/passwd", "/clips/1.MP4", "/clips/99999999999999.mp4",
    "/preferences.sqlite", "/config.json", "/web_clips/32px/seg-0000001.mp4", "/static/../config.json",
    "/../preferences.sqlite", "/%2e%2e/preferences.sqlite", "/page.js/../config.json", "/label_logs",
])
def test_a_path_outside_the_clip_cache_is_404(live, path):
    server = live()
    pair = server.pair("alice")
    assert server.http.get(pair["left"], headers=server.headers("alice")).status_code == 200  # the cache is there
    assert _raw_get(server.port, path, server.headers("alice")) == 404


BAD_BODIES = [  # (body or raw bytes, content type, status)
    ({"choice": "left", "key": KEY}, "application/json", 422),
    ({"pair": "1", "choice": "left", "key": KEY}, "application/json", 422),
    ({"pair": True, "choice": "left", "key": KEY}, "application/json", 422),
    ({"pair": -3, "choice": "left", "key": KEY}, "application/json", 422),
    ({"pair": 2**70, "choice": "left", "key": KEY}, "application/json", 422),
    ({"pair": 1.0, "choice": "left", "key": KEY}, "application/json", 422),
    ({"pair": 1, "choice": "up", "key": KEY}, "application/json", 422),
    ({"pair": 1, "choice": None, "key": KEY}, "application/json", 422),
    ({"pair": 1, "choice": "left"}, "application/json", 422),
    ({"pair": 1, "choice": "left", "key": "short"}, "application/json", 422),
    ({"pair": 1, "choice": "left", "key": "k" * 65}, "application/json", 422),
    ({"pair": 1, "choice": "left", "key": "k" * 15 + "'"}, "application/json", 422),
    (b"[1, 2]", "application/json", 400),
    (b"{not json", "application/json", 400),
    (b"pair=1&choice=left", "application/x-www-form-urlencoded", 415),
    (b"pair=1&choice=left", "text/plain", 415),
    (json.dumps({"pair": 1, "choice": "left", "key": KEY, "pad": "x" * 5000}).encode(), "application/json", 413),
]


@pytest.mark.parametrize(("body", "content_type", "status"), BAD_BODIES)
def test_a_malformed_answer_is_refused_and_changes_nothing(live, body, content_type, status):
    server = live()
    pair = server.pair("alice")
    before = _store_digest(server.run_dir)
    if isinstance(body, dict) and type(body.get("pair")) is int and body["pair"] == 1:  # not True, not 1.0
        body = {**body, "pair": pair["id"]}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = server.http.post("/api/answer", content=raw,
                         headers={**server.headers("alice"), "Content-Type": content_type})
    assert r.status_code == status, r.text
    assert _store_digest(server.run_dir) == before
    assert server.answer("alice", pair["id"]).status_code == 200  # the pair is still there to answer


def test_an_unknown_pair_is_404_and_an_unshown_one_409(live):
    server = live()
    before = _store_digest(server.run_dir)
    assert server.answer("alice", 999_999).status_code == 404
    end = time.time() + 20
    while (state := server.state("alice"))["pair"] is None:  # on screen, but not yet playing
        assert time.time() < end
        time.sleep(0.05)
    r = server.answer("alice", state["pair"]["id"])
    assert r.status_code == 409 and "not been shown" in r.json()["error"]
    assert _store_digest(server.run_dir) == before


def test_a_replayed_answer_is_stored_once(live):
    server = live()
    pair = server.pair("alice")["id"]
    first = server.answer("alice", pair, "right", key=_key(7))
    again = server.answer("alice", pair, "right", key=_key(7))  # the page retries after a lost reply
    assert first.status_code == again.status_code == 200
    assert first.json()["saved"] and again.json()["repeated"]
    events = _rows(server.run_dir, "SELECT comparison_id, kind FROM events")
    assert events == [(pair, "answer")]
    assert server.answer("alice", pair, "left", key=_key(8)).status_code == 409  # a new answer to an answered pair
    # the same key for another pair is refused, not taken as a replay
    other = server.pair("alice")["id"]
    assert server.answer("alice", other, "left", key=_key(7)).status_code == 409
    undo = server.post("/api/undo", "alice", {"pair": pair, "key": _key(9)})
    undo_again = server.post("/api/undo", "alice", {"pair": pair, "key": _key(9)})
    assert undo.status_code == undo_again.status_code == 200 and undo_again.json()["repeated"]
    assert server.answer("alice", pair, "right", key=_key(7)).json()["repeated"]  # still once, after the undo
    assert _rows(server.run_dir, "SELECT kind FROM events ORDER BY id") == [("answer",), ("undo",)]
    assert _rows(server.run_dir, "SELECT status FROM comparisons WHERE id=?", (pair,)) == [("pending",)]


def test_an_answer_keeps_who_gave_it_when_it_was_shown_and_how_long_it_took(live):
    server = live()
    pair = server.pair("alice")["id"]
    time.sleep(0.3)
    r = server.answer("alice", pair, "equal", key=_key(3))
    assert r.status_code == 200 and r.json()["said"] == "equally good"
    [(status, label, labeler, shown_at, response_s, swapped)] = _rows(
        server.run_dir, "SELECT status, label, labeler, shown_at, response_s, swapped FROM comparisons WHERE id=?",
        (pair,))
    assert (status, label, labeler) == ("answered", 0.5, "alice") and swapped in (0, 1)
    assert 0.3 <= response_s < 30 and abs(shown_at - (time.time() - response_s)) < 30
    [event] = _rows(server.run_dir, "SELECT labeler, shown_at, response_s, request_key FROM events")
    assert event == ("alice", shown_at, response_s, _key(3))
    assert any(line.startswith(f"pbrl serve: alice answered pair #{pair}: equally good") for line in server.lines)


@pytest.mark.parametrize(("choice", "p_left"), [("left", 1.0), ("right", 0.0), ("equal", 0.5), ("cant_tell", None)])
def test_each_choice_stores_its_label_with_the_order_undone(live, choice, p_left):
    server = live(n=8, seed=0)  # seeded: both sides come up within six pairs every time
    seen_swapped = set()
    for i in range(6):
        pair = server.pair("alice")
        assert server.answer("alice", pair["id"], choice, key=_key(i)).status_code == 200
        [(status, label, swapped)] = _rows(server.run_dir, "SELECT status, label, swapped FROM comparisons WHERE id=?",
                                           (pair["id"],))
        seen_swapped.add(swapped)
        if p_left is None:
            assert status == "incomparable" and label is None
        else:
            assert status == "answered" and label == (1.0 - p_left if swapped else p_left)
    assert seen_swapped == {0, 1}


def test_undo_takes_back_only_the_last_answer_and_shows_that_pair_again(live):
    server = live()
    first = server.pair("alice")["id"]
    server.answer("alice", first, "left", key=_key(1))
    second = server.pair("alice")["id"]
    server.answer("alice", second, "left", key=_key(2))
    assert server.post("/api/undo", "alice", {"pair": first, "key": _key(3)}).status_code == 409  # not the last
    r = server.post("/api/undo", "alice", {"pair": second, "key": _key(4)})
    assert r.status_code == 200 and r.json()["state"]["pair"]["id"] == second
    assert server.answer("alice", second, "right", key=_key(5)).status_code == 200
    assert _rows(server.run_dir, "SELECT comparison_id, kind, labeler FROM events ORDER BY id") == [
        (first, "answer", "alice"), (second, "answer", "alice"), (second, "undo", "alice"),
        (second, "answer", "alice")]


def test_clips_are_h264_mp4_with_range_requests(live):
    server = live()
    pair = server.pair("alice")
    headers = server.headers("alice")
    whole = server.http.get(pair["left"], headers=headers)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes" and "private" in whole.headers["cache-control"]
    data = whole.content
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")  # playable before it is all in
    assert b"avc1" in data  # H.264
    part = server.http.get(pair["left"], headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert server.http.get(pair["left"], headers={**headers, "Range": f"bytes={len(data) + 5}-"}).status_code == 416
    assert pair["fps"] == 30.0 and pair["n_frames"] == 10


def test_every_response_carries_the_security_headers(live):
    server = live()
    for r in (server.http.get("/"), server.post("/api/login", "alice"), server.http.get("/nowhere"),
              server.http.get("/api/state")):
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert server.post("/api/login", "alice").headers["cache-control"] == "no-store"


# -- one labelling core: pages, windows, the trainer ------------------------------------------------------------

def test_a_page_and_a_window_label_one_run_without_sharing_a_pair(live):
    server = live(n=10)
    window = LabelSession(server.run_dir / "preferences.sqlite", "carol", lambda: ObservationBars(32), seed=0)
    try:
        on_page, in_window = set(), set()
        end = time.time() + 60
        while len(on_page | in_window) < 10:
            assert time.time() < end, (on_page, in_window)
            state = server.state("alice")
            if state["pair"] is not None:
                pid = state["pair"]["id"]
                server.post("/api/shown", "alice", {"pair": pid})
                assert server.answer("alice", pid, key=_key(pid)).status_code == 200
                on_page.add(pid)
            item = window.next()
            if item is not None:
                window.shown(item)
                assert window.answer("right")
                in_window.add(item.comparison.id)
            time.sleep(0.01)
    finally:
        window.close()
    assert on_page and in_window and not on_page & in_window
    labelers = dict(_rows(server.run_dir, "SELECT id, labeler FROM comparisons WHERE status='answered'"))
    assert {labelers[i] for i in on_page} == {"alice"} and {labelers[i] for i in in_window} == {"carol"}


def test_new_pairs_reach_an_open_page_by_server_sent_events(live, human_run):
    server = live(n=1)
    server.answer("alice", server.pair("alice")["id"])
    with server.http.stream("GET", "/api/events", headers=server.headers("alice")) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        states = _states(stream.iter_lines())
        assert next(states)["pair"] is None  # nothing left to answer
        with PreferenceStore(server.run_dir / "preferences.sqlite") as store:  # the trainer asks a new question
            segs = [store.segment(c.first_id) for c in store.comparisons()]
            [new], _ = store.add_queries([(segs[0], segs[0])], ["train"], 1, 64)
        end = time.time() + 20
        for state in states:
            assert time.time() < end
            if state["pair"] is not None:
                assert state["pair"]["id"] == new
                break


def _states(lines):
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "state":
            yield json.loads(line[6:])


def test_with_no_trainer_running_the_page_says_how_to_start_it(live):
    server = live(n=1)
    server.answer("alice", server.pair("alice")["id"])
    end = time.time() + 10
    while "trainer is not running" not in (server.state("alice")["waiting"] or ""):
        assert time.time() < end, server.state("alice")
        time.sleep(0.1)
    assert "pbrl train --resume --run-dir" in server.state("alice")["waiting"]


def test_a_revoked_labeler_is_turned_away_within_a_second_and_their_pairs_go_back(live):
    server = live(n=2)
    held = server.pair("bob")["id"]
    with PreferenceStore(server.run_dir / "preferences.sqlite") as store:  # pbrl serve --revoke bob, elsewhere
        revoke(store, "bob")
    time.sleep(1.6)
    assert server.http.get("/api/state", headers=server.headers("bob")).status_code == 401
    assert server.answer("bob", held).status_code == 401
    assert _rows(server.run_dir, "SELECT leased_by FROM comparisons WHERE id=?", (held,)) == [(None,)]
    assert any("bob's invitation was revoked" in line for line in server.lines)


def test_leaving_gives_the_pairs_back_at_once(live):
    server = live(n=2, names=("alice",))
    server.pair("alice")
    assert server.post("/api/leave", "alice").status_code == 200
    assert _rows(server.run_dir, "SELECT COUNT(*) FROM comparisons WHERE leased_by IS NOT NULL") == [(0,)]


def test_a_finished_run_says_so_and_offers_no_pair(live):
    server = live(n=2)
    server.pair("alice")
    (server.run_dir / "metrics.json").write_text("{}")
    end = time.time() + 10
    while not (state := server.state("alice"))["finished"] or state["pair"] is not None:
        assert time.time() < end, state
        time.sleep(0.1)
    assert state["waiting"].startswith("Training has finished")
    # a pair whose clips were being rendered goes back as soon as its render ends
    held, end = "SELECT COUNT(*) FROM comparisons WHERE leased_by IS NOT NULL", time.time() + 10
    while _rows(server.run_dir, held) != [(0,)]:
        assert time.time() < end, _rows(server.run_dir, held)
        time.sleep(0.1)


# -- pbrl serve: the command ---------------------------------------------------------------------------------------

def _serve(args: list[str], capsys) -> tuple[int, list[str]]:
    from pbrl.cli import main

    code = main(["serve", *args])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("args", "says"), [
    (["--run-dir", "no/such/run"], "no run directory no/such/run"),
    (["--run-dir", "{empty}"], "no run in"),
    (["--run-dir", "{run}", "--host", "0.0.0.0"], "--host 0.0.0.0 lets other machines connect"),
    (["--run-dir", "{run}", "--host", "::"], "--host :: lets other machines connect"),
    (["--run-dir", "{run}", "--port", "{busy}"], "cannot listen on 127.0.0.1:"),
    (["--run-dir", "{run}", "--host", "no.such.host.invalid", "--invite", "a"], "--host no.such.host.invalid"),
    (["--run-dir", "{run}", "--revoke", "zed"], "--revoke zed: nobody of that name was invited"),
    (["--run-dir", "{run}", "--revoke", "zed", "--invite", "amy"], "--revoke closes links and exits"),
    (["--run-dir", "{run}", "--invite", "a b"], "--invite 'a b'"),
    (["--run-dir", "{run}", "--size", "8"], "--size must be 32 to 1024"),
    (["--run-dir", "{run}", "--lease-s", "0"], "--lease-s must be a positive number"),
    (["--run-dir", "{run}", "--url", "ftp://x"], "--url must start with http"),
])
def test_bad_serve_input_is_one_line(human_run, tmp_path, capsys, args, says):
    run_dir, _ = human_run(1)
    (tmp_path / "empty").mkdir()
    busy = listen("127.0.0.1", 0)
    try:
        args = [a.format(run=run_dir, empty=tmp_path / "empty", busy=busy.getsockname()[1]) for a in args]
        code, err = _serve(args, capsys)
    finally:
        busy.close()
    assert code == 2 and len(err) == 1 and says in err[0], err


def test_serve_without_the_extra_is_one_line(human_run, monkeypatch, capsys):
    import pbrl.extras

    run_dir, _ = human_run(1)
    real = pbrl.extras.importlib.import_module

    def no_starlette(name, *a):
        if name.split(".")[0] == "starlette":
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(pbrl.extras.importlib, "import_module", no_starlette)
    code, err = _serve(["--run-dir", str(run_dir)], capsys)
    assert code == 2 and err == ['pbrl: error: pbrl serve needs starlette: pip install "pbrl[web]"']


def test_revoke_closes_every_link_of_a_name(human_run, capsys):
    from pbrl.store.invitations import labelers, open_tokens, token_hash

    run_dir, _ = human_run(1)
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        tokens = [invite(store, "bob"), invite(store, "bob"), invite(store, "amy")]
    from pbrl.cli import main

    assert main(["serve", "--run-dir", str(run_dir), "--revoke", "bob"]) == 0
    assert "bob: 2 link(s) closed" in capsys.readouterr().out
    with PreferenceStore(run_dir / "preferences.sqlite") as store:
        assert open_tokens(store) == {token_hash(tokens[2]): "amy"} and labelers(store) == {"amy": 1, "bob": 0}
    raw = b"".join(p.read_bytes() for p in run_dir.glob("preferences.sqlite*"))
    assert not any(t.encode() in raw for t in tokens)  # only hashes are stored


def test_a_killed_server_loses_no_answer_the_page_showed_as_saved(human_run):
    """``pbrl serve`` in its own process: three answers acknowledged, SIGKILL, then a new server; the store holds
    exactly those three, and a retry of the last one (its reply lost in the kill) is not stored again."""
    run_dir, _ = human_run(5)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start() -> tuple[subprocess.Popen, str, str]:
        proc = subprocess.Popen([sys.executable, "-m", "pbrl", "serve", "--run-dir", str(run_dir), "--port", "0",
                                 "--invite", "alice", "--size", "32"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        for line in proc.stdout:
            if line.strip().startswith("alice: "):
                link = line.split()[1]
                return proc, link.split("/#")[0], link.split("#token=")[1]
        raise AssertionError(f"pbrl serve did not print a link (exit {proc.wait()})")

    proc, url, token = start()
    saved = []
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            for i in range(3):
                end = time.time() + 60
                while (pair := client.get("/api/state").json()["pair"]) is None:
                    assert time.time() < end
                    time.sleep(0.05)
                client.post("/api/shown", json={"pair": pair["id"]})
                r = client.post("/api/answer", json={"pair": pair["id"], "choice": "left", "key": _key(i)})
                assert r.status_code == 200 and r.json()["saved"]
                saved.append(pair["id"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rows = _rows(run_dir, "SELECT id, labeler FROM comparisons WHERE status='answered' ORDER BY id")
    assert sorted(rows) == sorted((i, "alice") for i in saved)
    leased_when_killed = _rows(run_dir, "SELECT id FROM comparisons WHERE leased_by IS NOT NULL")  # they lapse
    proc, url, token = start()
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            r = client.post("/api/answer", json={"pair": saved[-1], "choice": "left", "key": _key(2)})
            assert r.status_code == 200 and r.json()["repeated"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) in (0, 130, -signal.SIGTERM)
    assert _rows(run_dir, "SELECT COUNT(*) FROM events WHERE kind='answer'") == [(3,)]
    # the second server gave its pairs back when stopped; the killed one's lapse after --lease-s
    assert _rows(run_dir, "SELECT id FROM comparisons WHERE leased_by IS NOT NULL") == leased_when_killed


def test_a_labeler_idle_for_lease_s_gives_the_pairs_back(live):
    server = live(n=2, names=("alice",), lease_s=1.0)
    server.pair("alice")
    time.sleep(1.8)
    state = server.state("alice")
    assert state["idle"] and state["pair"] is None and state["waiting"].startswith("Paused because you were away")
    assert _rows(server.run_dir, "SELECT COUNT(*) FROM comparisons WHERE leased_by IS NOT NULL AND "
                                 "lease_expires > ?", (time.time(),)) == [(0,)]
    touched = server.post("/api/touch", "alice")
    assert touched.status_code == 200 and not touched.json()["idle"]
    assert server.pair("alice")["id"] > 0


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("no.such.host.invalid", False),
])
def test_only_loopback_addresses_count_as_this_machine_only(host, loopback):
    from pbrl.web.cli import is_loopback

    assert is_loopback(host) is loopback


def test_pbrl_and_its_other_commands_need_none_of_the_web_extra(human_run):
    """With starlette and uvicorn missing, ``pbrl`` imports, ``--help`` works, and ``serve`` says what to install."""
    run_dir, _ = human_run(1)
    code = ("import sys; sys.modules.update(starlette=None, uvicorn=None); from pbrl.cli import build_parser, main; "
            "build_parser().format_help(); sys.exit(main(['serve', '--run-dir', sys.argv[1]]))")
    done = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == 'pbrl: error: pbrl serve needs starlette: pip install "pbrl[web]"'


def test_a_seeded_server_shows_each_labeler_the_same_sides_every_time(human_run):
    run_dir, _ = human_run(4)

    def sides(seed):
        server = LabelServer(RunDir(run_dir), lambda: ObservationBars(32), run_dir / "web_clips" / "32px",
                             log=lambda line: None, seed=seed)
        out = [server._labeler(name).session.rng.random(8).round(6).tolist() for name in ("alice", "bob")]
        for name in ("alice", "bob"):
            server._drop(name)
        return out

    first, again, other = sides(3), sides(3), sides(4)
    assert first == again and first != other
    assert first[0] != first[1]  # two labelers do not share one sequence of sides
