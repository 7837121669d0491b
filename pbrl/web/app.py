"""The HTTP side of ``pbrl serve``: a Starlette app over a ``LabelServer``.

Who may do what is checked here and in ``LabelServer``:

- The page itself (``/``, ``page.js``, ``page.css``) is public: it holds no data. Everything else needs a labeler's
  token, else 401. The invitation link carries the token after ``#``, which browsers never send to a server (nor
  put in logs or Referer headers); the page sends it as ``Authorization: Bearer``. ``POST /api/login`` also sets it
  as an HttpOnly, SameSite=Strict cookie, for what a browser fetches by itself (the clips, the event stream).
- Requests that change anything are POSTs of JSON with the ``Authorization`` header: a cookie alone does not do, so
  another site cannot make a labeler's browser answer (no cross-site request forgery). Bodies over 4 KB: 413;
  not JSON: 415 or 400; a field missing or of the wrong kind: 422.
- Clips are served from the clip cache only, by segment number (``/clips/123.mp4``), and only those of pairs the
  labeler holds; any other path is 404. Nothing else of the run directory is reachable.
- Every response carries a Content-Security-Policy that allows only this origin's script, style and media, and
  ``nosniff``; API responses are not cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pbrl.ui.session import CHOICES
from pbrl.web.server import LabelServer, Reply

STATIC = Path(__file__).parent / "static"
PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"), "/page.js": ("page.js", "text/javascript"),
              "/page.css": ("page.css", "text/css")}
COOKIE = "pbrl_token"
MAX_BODY = 4096
KEEPALIVE_S = 15.0
REQUEST_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
CLIP_NAME = re.compile(r"([0-9]{1,12})\.mp4")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; media-src 'self'; "
                                 b"connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class SecurityHeaders:
    """ASGI middleware: the headers above on every response, and ``Cache-Control: no-store`` unless it says
    otherwise (a pure ASGI wrapper: it leaves the event stream's body alone)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.response = JSONResponse({"error": message}, status)


def _token(request: Request, cookie_ok: bool) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.cookies.get(COOKIE) if cookie_ok else None


def _unauthorized() -> Response:
    return JSONResponse({"error": "this needs a valid invitation link: ask whoever runs pbrl serve for yours"}, 401,
                        headers={"www-authenticate": "Bearer"})


async def _json_body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise BadRequest(415, "send the request as JSON (Content-Type: application/json)")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise BadRequest(413, f"a request is at most {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadRequest(413, f"a request is at most {MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise BadRequest(400, "the request is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "the request must be a JSON object")
    return data


def _pair(data: dict[str, Any]) -> int:
    pair = data.get("pair")
    if not isinstance(pair, int) or isinstance(pair, bool) or not 0 < pair < 2**63:
        raise BadRequest(422, "pair must be the number of a pair")
    return pair


def _key(data: dict[str, Any]) -> str:
    key = data.get("key")
    if not isinstance(key, str) or not REQUEST_KEY.fullmatch(key):
        raise BadRequest(422, "key must be 16 to 64 letters, digits, '-' or '_': the request's own random key")
    return key


def _choice(data: dict[str, Any]) -> str:
    choice = data.get("choice")
    if not isinstance(choice, str) or choice not in CHOICES:
        raise BadRequest(422, f"choice must be one of {', '.join(CHOICES)}")
    return choice


def make_app(server: LabelServer) -> Starlette:
    """The app serving ``server``'s labelers: its startup starts ``server`` (bound to the app's event loop), its
    shutdown closes it, which gives every labeler's open pairs back to the queue."""

    def reply(r: Reply) -> Response:
        return JSONResponse(r.body, r.status)

    def post(handler: Callable[..., Reply], *fields: Callable[[dict[str, Any]], Any]):
        async def endpoint(request: Request) -> Response:
            name = server.labeler_of(_token(request, cookie_ok=False))
            if name is None:
                return _unauthorized()
            try:
                data = await _json_body(request)
                values = [field(data) for field in fields]
            except BadRequest as exc:
                return exc.response
            return reply(await run_in_threadpool(handler, name, *values))

        return endpoint

    async def page(request: Request) -> Response:
        name, media_type = PAGE_FILES[request.url.path]
        return FileResponse(STATIC / name, media_type=media_type)

    async def login(request: Request) -> Response:
        token = _token(request, cookie_ok=False)
        name = server.labeler_of(token)
        if name is None:
            return _unauthorized()
        response = JSONResponse(await run_in_threadpool(server.state, name))
        response.set_cookie(COOKIE, token or "", httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    async def state(request: Request) -> Response:
        name = server.labeler_of(_token(request, cookie_ok=True))
        if name is None:
            return _unauthorized()
        return JSONResponse(await run_in_threadpool(server.state, name))

    async def events(request: Request) -> Response:
        token = _token(request, cookie_ok=True)
        name = server.labeler_of(token)
        if name is None:
            return _unauthorized()

        async def stream():
            await run_in_threadpool(server.stream_opened, name)
            try:
                yield "retry: 1000\n\n"
                last = None
                while True:
                    if server.labeler_of(token) is None:
                        yield "event: revoked\ndata: {}\n\n"
                        return
                    woken = server.notifier.arm(name)
                    text = json.dumps(await run_in_threadpool(server.state, name))
                    if text != last:
                        yield f"event: state\ndata: {text}\n\n"
                        last = text
                    if not await server.notifier.wait(woken, KEEPALIVE_S):
                        yield ": still here\n\n"  # keeps proxies from closing an idle stream
            finally:
                server.stream_closed(name)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    async def clip(request: Request) -> Response:
        name = server.labeler_of(_token(request, cookie_ok=True))
        if name is None:
            return _unauthorized()
        match = CLIP_NAME.fullmatch(request.path_params["name"])
        path = server.clip(name, int(match.group(1))) if match else None
        if path is None:
            return JSONResponse({"error": "no such clip"}, 404)
        return FileResponse(path, media_type="video/mp4", headers={"cache-control": "private, max-age=86400"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        server.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await run_in_threadpool(server.close)

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [Route(path, page) for path in PAGE_FILES] + [
        Route("/favicon.ico", no_icon),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/state", state),
        Route("/api/events", events),
        Route("/api/shown", post(server.shown, _pair), methods=["POST"]),
        Route("/api/answer", post(server.answer, _pair, _choice, _key), methods=["POST"]),
        Route("/api/undo", post(server.undo, _pair, _key), methods=["POST"]),
        Route("/api/touch", post(server.touch), methods=["POST"]),
        Route("/api/leave", post(server.leave), methods=["POST"]),
        Route("/clips/{name:path}", clip),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    return app
