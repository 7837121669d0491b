"""``pbrl serve``: put a run's queries on a web page, invite labelers by name, or revoke their links.

    pbrl serve --run-dir runs/hop                                   # 127.0.0.1:8765, one link for you
    pbrl serve --run-dir runs/hop --invite alice --invite bob --host 0.0.0.0
    pbrl serve --run-dir runs/hop --revoke bob                      # bob's links stop working, then exit

The checks that need no server come first, each a one-line ``UsageError``: the extra installed, the run there,
a host other than this machine's loopback only with invitations, the port free. The server runs in uvicorn on a
socket bound here; Ctrl-C (or SIGTERM) gives every open pair back to the queue before it exits.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import socket
import sys

from pbrl.errors import UsageError

DEFAULT_PORT = 8765


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``serve`` and its flags to ``pbrl``'s sub-parsers."""
    p = subparsers.add_parser(
        "serve", help="put a run's queries on a web page for labelers anywhere (needs pbrl[web])",
        description="Serve the queries of a run trained with --labeler human on a web page: the same pairs, answers "
                    "and keys as pbrl label, for any number of labelers at once, each with their own secret link. "
                    "It has no TLS of its own: across the internet, put it behind a reverse proxy with TLS or an SSH "
                    "tunnel (docs/web.md).")
    p.add_argument("--run-dir", required=True, help="directory of the run")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only); any other needs --invite")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default: {DEFAULT_PORT}; 0: "
                                                                   "any free one)")
    p.add_argument("--invite", action="append", default=[], metavar="NAME",
                   help="print a new secret link for the labeler NAME, stored with each of their answers "
                        "(repeatable; earlier links stay valid until --revoke; default: one link for you)")
    p.add_argument("--revoke", action="append", default=[], metavar="NAME",
                   help="close every link of NAME and exit (repeatable); a running server turns them away within "
                        "a second and their open pairs go back to the queue")
    p.add_argument("--url", default=None,
                   help="the address labelers open, for links behind a reverse proxy or a tunnel, e.g. "
                        "https://label.example.org (default: http://HOST:PORT)")
    p.add_argument("--size", type=int, default=256, help="clip height in pixels, 32 to 1024 (default: 256)")
    p.add_argument("--lease-s", type=float, default=120.0,
                   help="seconds without input after which a page gives its pairs back (default: 120)")
    p.add_argument("--instructions", default=None,
                   help="the task in words, shown at the top (default: the run's --instructions)")
    p.add_argument("--encoders", type=int, default=None,
                   help="threads rendering and encoding clips ahead (default: one per 4 CPU cores, at least 1)")
    return p


def is_loopback(host: str) -> bool:
    """True if ``host`` names this machine's loopback only (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` and listening; a host that does not resolve or a port in use is one
    line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except OSError as exc:
        raise UsageError(f"--host {host}: not an address of this machine ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): another program (or another pbrl "
                         "serve) uses it; pick another --port") from None
    return sock


def _base_url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _default_name() -> str:
    from pbrl.store.invitations import NAME_PATTERN

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return "labeler"
    return name if NAME_PATTERN.fullmatch(name) else "labeler"


def _check_flags(args: argparse.Namespace) -> None:
    from pbrl.store.invitations import check_name

    if not 32 <= args.size <= 1024:
        raise UsageError(f"--size must be 32 to 1024 pixels, got {args.size}")
    if not args.lease_s > 0:
        raise UsageError(f"--lease-s must be a positive number of seconds, got {args.lease_s}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, got {args.port}")
    if args.encoders is not None and args.encoders < 1:
        raise UsageError(f"--encoders must be at least 1, got {args.encoders}")
    if args.url is not None and not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url must start with http:// or https://, got {args.url!r}")
    for flag in ("invite", "revoke"):
        for name in getattr(args, flag):
            try:
                check_name(name)
            except ValueError as exc:
                raise UsageError(f"--{flag} {name!r}: {exc}") from None
    if args.revoke and args.invite:
        raise UsageError("--revoke closes links and exits; give --invite to the pbrl serve that serves the run")


def cmd_serve(args: argparse.Namespace) -> int:
    from pbrl.web import require_web

    require_web()
    _check_flags(args)
    from pbrl.config import TrainConfig
    from pbrl.run_dir import RunDir
    from pbrl.store import PreferenceStore
    from pbrl.store.invitations import invite, labelers, revoke

    run = RunDir(args.run_dir)
    if not run.path.is_dir():
        raise UsageError(f"no run directory {run.path}: give the --run-dir of a run started with  pbrl train "
                         "--labeler human")
    if not (run.config.exists() and run.store.exists()):
        raise UsageError(f"no run in {run.path} yet: start it with  pbrl train --labeler human --run-dir {run.path}"
                         "  and serve it then")
    cfg = TrainConfig.load(run.config)
    if not cfg.learned:
        raise UsageError(f"{run.path} trains on the true reward; it asks no questions")
    with PreferenceStore(run.store) as store:
        if args.revoke:
            for name in args.revoke:
                if name not in labelers(store):
                    invited = ", ".join(labelers(store)) or "nobody yet"
                    raise UsageError(f"--revoke {name}: nobody of that name was invited to {run.path} (invited: "
                                     f"{invited})")
                n = revoke(store, name)
                print(f"pbrl serve: {name}: {n} link(s) closed; a running server turns them away within a second",
                      flush=True)
            return 0
        if not is_loopback(args.host) and not args.invite:
            raise UsageError(f"--host {args.host} lets other machines connect: say who may, with --invite NAME (a "
                             "secret link each); across the internet, also put a TLS reverse proxy or an SSH tunnel "
                             "in front (docs/web.md)")
        sock = listen(args.host, args.port)
        base = (args.url or _base_url(args.host, sock)).rstrip("/")
        links = {name: f"{base}/#token={invite(store, name)}" for name in args.invite or [_default_name()]}
    _serve(args, run, cfg, sock, base, links)
    return 0


def _serve(args: argparse.Namespace, run, cfg, sock: socket.socket, base: str, links: dict[str, str]) -> None:
    from pbrl.ui.render import AutoRenderer
    from pbrl.web.app import make_app
    from pbrl.web.server import LabelServer

    size = args.size
    server = LabelServer(run, lambda: AutoRenderer(cfg.env_id, size, cfg.episode_steps, cfg.env_kwargs),
                         clip_root=run.path / "web_clips" / f"{size}px",
                         instructions=cfg.instructions if args.instructions is None else args.instructions,
                         lease_s=args.lease_s, n_encoders=args.encoders or max(1, (os.cpu_count() or 1) // 4))
    print(f"pbrl serve: the queries of {run.path} on {base} (Ctrl-C to stop); one link per labeler, each secret:",
          flush=True)
    for name, link in links.items():
        print(f"  {name}: {link}", flush=True)
    run_app(make_app(server), sock)


def run_app(app, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM; the app's shutdown gives the labelers' pairs back."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])  # on Ctrl-C it shuts down, then raises the signal again
    except KeyboardInterrupt:
        pass
    print("pbrl serve: stopped; every open pair went back to the queue", file=sys.stderr, flush=True)
