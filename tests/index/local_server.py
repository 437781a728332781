"""A real HTTP server on 127.0.0.1 for fetch tests, with a table of paths and canned responses."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class LocalServer:
    """A real HTTP server on 127.0.0.1 with a table of paths; records which paths were requested."""

    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base + path


def respond(body: bytes | str, content_type: str = "text/html; charset=utf-8", status: int = 200) -> Route:
    data = body.encode() if isinstance(body, str) else body

    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return handle


def redirect(location: str, status: int = 302) -> Route:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return handle


def stream_without_length(total: int) -> Route:
    """Send ``total`` bytes of HTML with no Content-Length, ending the body by closing the connection."""

    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.end_headers()
        piece = b"<p>" + b"x" * 1017 + b"</p>\n"
        for _ in range(total // len(piece) + 1):
            handler.wfile.write(piece)

    return handle


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        state.hits.append(self.path)
        route = state.routes.get(self.path)
        if route is None:
            respond("<h1>Not found</h1>", status=404)(self)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client may give up on purpose
            route(self)

    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LocalServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextmanager
def running_server() -> Iterator[LocalServer]:
    """Serve on a random port in a background thread until the block ends."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = LocalServer(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.state.release.set()
        httpd.shutdown()
        httpd.server_close()
