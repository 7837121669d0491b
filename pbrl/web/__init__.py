"""``pbrl serve``: a run's queries on a web page for remote labelers (an extra: ``pip install "pbrl[web]"``).

The page is a second front end of the labelling core the pygame window uses (``pbrl.ui.session``): the same leases,
answers and undo, over the same store, so windows and pages label one run together.

    clips.py    each segment's clip rendered once and encoded as H.264 MP4, ahead of the labelers, in the run dir
    server.py   the labelers' sessions, tokens, progress and answers, without HTTP (``LabelServer``)
    app.py      the HTTP side (Starlette): routes, authentication, server-sent events, security headers
    cli.py      ``pbrl serve``: flags, invitations and revocations, the listening socket
    static/     the page itself (HTML, CSS, JavaScript; no build step, no third-party code)

Nothing here is imported by ``pbrl`` itself; importing this package needs none of the extra's dependencies.
"""

from __future__ import annotations


def require_web() -> None:
    """Import the web extra's dependencies, or raise ``pbrl.extras.MissingExtra`` with the install line."""
    from pbrl.extras import require

    for module in ("starlette", "uvicorn", "imageio_ffmpeg"):
        require(module, "web", "pbrl serve")
