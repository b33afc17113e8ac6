"""The HTTP server of ``sesim view`` (standard library only).

It serves a fixed set of things and nothing else: the page's three files (read from the package
into memory at start, matched by exact name) and the JSON / PNG answers of
:class:`~sesim.view.session.ViewSession`, which name images and runs by number, never by path.
So no request can reach a file of the machine, whatever its ``..``, ``%2e%2e`` or absolute path.
It binds to 127.0.0.1 by default and then also refuses requests whose ``Host`` header is not
this machine's loopback name (a web page elsewhere cannot read it through DNS rebinding).

Routes (all GET): ``/`` (the page), ``/static/<file>``, ``/api/info``, ``/api/image?image=I``,
``/api/translation?image=I&run=K[&step=S&style=T]``,
``/api/map?image=I&x=X&y=Y&layer=L&mode=run|local|global[&stepK=S&styleK=T ...]``,
``/api/error?image=I[&stepK=S&styleK=T ...]``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Sequence
from urllib.parse import parse_qs, urlsplit

from .inputs import SINGLE_IMAGE_SIDE, load_inputs, run_images
from .runs import ViewError, ViewRun
from .session import Variant, ViewSession

log = logging.getLogger("sesim")

DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}
_CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; object-src 'none'"


def static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, ``name -> (bytes, content type)``, read once from ``sesim/view/static``."""
    folder = resources.files("sesim.view") / "static"
    return {p.name: (p.read_bytes(), _TYPES[Path(p.name).suffix]) for p in folder.iterdir()
            if p.is_file() and Path(p.name).suffix in _TYPES}


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int:
    values = query.get(name)
    if not values:
        if default is None:
            raise ViewError(f"missing parameter {name}")
        return default
    try:
        return int(values[0])
    except ValueError:
        raise ViewError(f"parameter {name} must be an integer, got {values[0]!r}") from None


def _style(text: str) -> int | str:
    if text == "ref":
        return text
    try:
        return int(text)
    except ValueError:
        raise ViewError(f"style must be an integer or ref, got {text!r}") from None


def _variants(query: dict[str, list[str]], session: ViewSession, only: int | None = None) -> dict[int, Variant]:
    """``stepK`` / ``styleK`` parameters (or ``step`` / ``style`` for run ``only``) -> ``{K: (step, style)}``."""
    out = {}
    for k in range(len(session.runs)) if only is None else [only]:
        suffix = "" if only is not None else str(k)
        step, style = session.default_variant(session.runs[k])
        step = _int(query, "step" + suffix, step)
        if query.get("style" + suffix):
            style = _style(query["style" + suffix][0])
        out[k] = (step, style)
    return out


def _translation(s: ViewSession, query: dict[str, list[str]]) -> bytes:
    k = _int(query, "run", 0)
    s.run(k)
    return s.translation_png(_int(query, "image"), k, _variants(query, s, only=k)[k])


def _map(s: ViewSession, query: dict[str, list[str]]) -> dict:
    layer = (query.get("layer") or [s.runs[0].layers[0]])[0]
    mode = (query.get("mode") or ["run"])[0]
    return s.query(_int(query, "image"), (_int(query, "x"), _int(query, "y")), layer, mode, _variants(query, s))


#: ``path -> answer(session, query)``: a dict is sent as JSON, bytes as a PNG
_API = {
    "/api/info": lambda s, query: s.info(),
    "/api/image": lambda s, query: s.image_png(_int(query, "image")),
    "/api/translation": _translation,
    "/api/map": _map,
    "/api/error": lambda s, query: s.errors(_int(query, "image"), _variants(query, s)),
}


class ViewHandler(BaseHTTPRequestHandler):
    """One request; ``server.session`` answers, ``server.static`` holds the page."""

    server_version = "sesim-view"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        self._send(status, json.dumps(data, allow_nan=False).encode(), "application/json")

    def _host_allowed(self) -> bool:
        if not getattr(self.server, "loopback_only", False):
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
        return name in LOOPBACK

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "only GET is served"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _route(self) -> None:
        if not self._host_allowed():
            self._json(HTTPStatus.FORBIDDEN, {"error": "requests must name this machine's loopback address as Host"})
            return
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        static: dict[str, tuple[bytes, str]] = self.server.static
        if path in ("/", "/index.html"):
            path = "/static/index.html"
        name = path.removeprefix("/static/")
        if path.startswith("/static/") and name in static:
            self._send(HTTPStatus.OK, *static[name])
            return
        if path not in _API:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            answer = _API[path](self.server.session, query)
            if isinstance(answer, bytes):
                self._send(HTTPStatus.OK, answer, "image/png")
            else:
                self._json(HTTPStatus.OK, answer)
        except ViewError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        except Exception as err:  # noqa: BLE001 - one bad computation must not stop the server
            log.error("sesim view: %s failed: %s: %s", path, type(err).__name__, err)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})


class ViewServer(ThreadingHTTPServer):
    """A threading HTTP server holding the session and the page."""

    daemon_threads = True
    allow_reuse_address = False  # a port in use must be reported, not shared

    def __init__(self, session: ViewSession, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.session = session
        self.static = static_files()
        self.loopback_only = host in LOOPBACK
        if ":" in host:
            import socket

            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), ViewHandler)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ViewError(f"port {port} on {host} is already in use; choose another with --port N "
                                "(--port 0 picks a free one)") from None
            if err.errno == errno.EACCES:
                raise ViewError(f"not allowed to listen on port {port} on {host}; choose a port above 1023") from None
            raise ViewError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"


def build_session(runs: Sequence[str | Path], input_path: str | Path | None = None, *,
                  style_from: str | Path | None = None, size: int | None = None) -> ViewSession:
    """Open the runs (the first one decides the images' channels and default size) and the images."""
    if not runs:
        raise ViewError("give at least one --run")
    if len(runs) > 4:
        raise ViewError(f"at most 4 runs side by side, got {len(runs)}")
    if style_from is not None and not Path(style_from).is_file():
        raise ViewError(f"--style-from {style_from} is not an image file")
    opened = []
    for run in runs:
        print(f"sesim view: loading run {run} ...", flush=True)
        opened.append(ViewRun(run, style_from=style_from))
    if style_from is not None and not any(r.style_dim is not None for r in opened):
        raise ViewError("--style-from needs a --mode multimodal run; none of the runs is one")
    first = opened[0]
    if input_path is None:
        return ViewSession(opened, run_images(first))
    if size is None:
        size = SINGLE_IMAGE_SIDE if first.cfg.mode == "single-image" else first.cfg.data.size
    return ViewSession(opened, load_inputs(input_path, first.cfg.data.channels, size))


def _can_open_browser() -> bool:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def serve(runs: Sequence[str | Path], input_path: str | Path | None = None, *, host: str = "127.0.0.1",
          port: int = DEFAULT_PORT, open_browser: bool = True, style_from: str | Path | None = None,
          size: int | None = None) -> int:
    """``sesim view``: open the runs, print the URL, serve until Ctrl-C (or SIGTERM); returns 0
    (130 when interrupted before the server started)."""
    if not 0 <= port <= 65535:
        raise ViewError(f"--port must be 0 .. 65535, got {port}")
    if size is not None and size < 0:
        raise ViewError(f"--size must be >= 0 (0 keeps the images' own size), got {size}")
    try:
        session = build_session(runs, input_path, style_from=style_from, size=size)
    except KeyboardInterrupt:  # Ctrl-C while the runs load
        print("sesim view: stopped", flush=True)
        return 130
    server = ViewServer(session, host, port)
    if not server.loopback_only:
        print(f"sesim view: warning: listening on {host}: anyone who can reach this machine can see these images",
              flush=True)
    print(f"sesim view: {len(session.images)} image(s), {len(session.runs)} run(s) at {server.url}  (Ctrl-C stops)",
          flush=True)
    if open_browser and _can_open_browser():
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("sesim view: stopped", flush=True)
    return 0


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt
