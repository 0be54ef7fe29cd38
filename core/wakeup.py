"""Waking an idle engine from another process, so a job queued there starts at once.

The engine serving a database listens on a datagram socket named after that database (a
Linux abstract socket: no file to leave behind, no path-length limit); a process that queues
a job or asks for a stop sends it one byte after its commit. Nobody listening, or another
platform, costs nothing: the engine's poll remains the fallback. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
from collections.abc import Callable
from urllib.parse import unquote

SUPPORTED = sys.platform.startswith("linux")


def address(db_url: str) -> str:
    """The abstract socket name of the engine serving ``db_url``: a SQLite database's by
    its file's absolute path (its URL may quote the path, or not: the same file)."""
    key = db_url
    if db_url.startswith("sqlite:///"):
        key = "sqlite:" + os.path.abspath(unquote(db_url.removeprefix("sqlite:///")))
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"\0modeldeck-engine-{digest}"


def poke(db_url: str) -> None:
    """Tell the engine serving ``db_url`` that there is work; nothing when none listens."""
    if not SUPPORTED:
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b".", address(db_url))
    except OSError:
        pass  # no engine listens (or its queue is full: it is awake anyway)


class Listener:
    """The engine's end: ``on_poke()`` runs (on a thread of its own) when a poke arrives."""

    def __init__(self, db_url: str, on_poke: Callable[[], None]) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(address(db_url))  # OSError when another engine listens
        except OSError:
            self._sock.close()
            raise
        self._on_poke = on_poke
        self._thread = threading.Thread(target=self._run, name="modeldeck-wakeup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self._sock.recv(64)
            except OSError:
                return
            if not data:
                return  # closed (a poke is never empty)
            self._on_poke()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # ends the blocking recv
        except OSError:
            pass
        self._sock.close()


def listen(db_url: str, on_poke: Callable[[], None]) -> Listener | None:
    """A listener for ``db_url``, or None where that cannot be (another engine has it, or
    this platform has no abstract sockets)."""
    if not SUPPORTED:
        return None
    try:
        return Listener(db_url, on_poke)
    except OSError:
        return None
