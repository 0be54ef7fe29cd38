"""A real webhook for the alert tests: an HTTP server on 127.0.0.1 in a thread of the test,
answering each POST as the test scripts it (a status, or an answer that never ends) and keeping what
it was sent."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# An answer begun and never finished: a byte of it every tenth of a second while the
# webhook's ``trickling`` is set (the client's 5 s timeout is for each read, so it keeps
# waiting), then nothing (it gives up 5 s later).
TRICKLE = -2


@dataclass
class Received:
    path: str
    body: Any
    headers: dict[str, str]
    query: str = ""


@dataclass
class Webhook:
    """What the server was sent, and how it answers (``answers`` in turn, then ``default``)."""

    port: int = 0
    answers: list[int] = field(default_factory=list)
    default: int = 200
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    trickling: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: int = 0  # requests whose answer is still under way (TRICKLE)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str | None = None) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received if path is None or r.path == path]

    def _next_answer(self) -> int:
        with self.lock:
            return self.answers.pop(0) if self.answers else self.default


def _handler(hook: Webhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            with hook.lock:
                path, _, query = self.path.partition("?")
                hook.received.append(Received(path, body, dict(self.headers), query))
            status = hook._next_answer()
            if status == TRICKLE:
                self._trickle()
                return
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def _trickle(self) -> None:
            with hook.lock:
                hook.open += 1
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while hook.trickling.is_set() and not hook.release.wait(0.1):
                    self.wfile.write(b"a")
                hook.release.wait(60)
            except OSError:  # the client gave up and closed the connection
                pass
            finally:
                with hook.lock:
                    hook.open -= 1
                self.close_connection = True

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serve_webhook() -> Iterator[Webhook]:
    hook = Webhook()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hook))
    server.daemon_threads = True
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.release.set()
        server.shutdown()
        server.server_close()
