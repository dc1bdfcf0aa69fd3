"""A TCP proxy on 127.0.0.1 for network faults between a store and its database.

``TcpProxy(host, port)`` listens on an ephemeral port of 127.0.0.1 and forwards every
connection to ``host:port``. Three faults:

* :meth:`blackhole`: stop forwarding, closing nothing -- the client's writes are accepted
  by the kernel and nothing ever answers (a partition behind a proxy or load balancer,
  a swallowed packet). :meth:`restore` forwards again (what was held, then the rest).
* :meth:`cut`: close every open connection at once, both sides (a database restart, a
  proxy reload); new connections are forwarded as before.

Threads and blocking sockets, one pump per direction: a few connections at most.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self._start(self._accept_loop)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            self._start(self._pump, client, upstream)
            self._start(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed.is_set():
            if not self._forwarding.is_set():
                # black-holed: read nothing, send nothing, close nothing
                self._forwarding.wait(0.05)
                continue
            try:
                ready, _, _ = select.select([source], [], [], 0.05)
                if not ready:
                    continue
                if not self._forwarding.is_set():
                    continue
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
            except (OSError, ValueError):  # closed by cut() or by the other pump
                break
        self._close_pair(source, sink)

    def _close_pair(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def blackhole(self) -> None:
        self._forwarding.clear()

    def restore(self) -> None:
        self._forwarding.set()

    def cut(self) -> None:
        """Close every open connection (both sides); later ones are forwarded."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        self._close_pair(*sockets)

    def close(self) -> None:
        self._closed.set()
        self._forwarding.set()
        self.cut()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)
