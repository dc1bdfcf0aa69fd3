"""A provider API (one of :data:`tests.fault_server.BACKENDS`) answering every request
after a fixed latency, in a process of its own: the client's event loop under test then
shares no GIL with the server's threads.

``python -m tests.slow_server stripe 0.2`` prints ``PORT <n>`` once it listens, then serves
until its stdin closes. :func:`running` starts and stops one.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # every concurrent client connects at once
    daemon_threads = True
    backend: Any
    latency: float


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        time.sleep(self.server.latency)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        with self.server.backend.lock:
            status, answer_headers, payload = self.server.backend.handle(
                self.command, self.path.split("?")[0], headers, body
            )
        self.send_response(status)
        for name, value in answer_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:  # the base's name
        pass


def main() -> None:
    from tests.fault_server import BACKENDS

    server = _Server(("127.0.0.1", 0), _Handler)
    server.backend = BACKENDS[sys.argv[1]]()
    server.latency = float(sys.argv[2])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the parent closes it
    server.shutdown()
    server.server_close()


@contextlib.contextmanager
def running(provider: str, latency: float) -> Iterator[str]:
    """The URL of a slow ``provider`` API in a child process, stopped on exit."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.slow_server", provider, str(latency)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline().split()
        assert line[:1] == ["PORT"], line
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


if __name__ == "__main__":
    main()
