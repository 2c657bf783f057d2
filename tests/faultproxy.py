"""A TCP proxy between the service and PostgreSQL that can take the database away.

`drop()` cuts every open connection (both directions, at once: what a server restart, a
failover or a network cut looks like to the client) and closes each new one as soon as it is
accepted, until `restore()`. The shared PostgreSQL server is never touched, so the other tests
running beside this one see nothing.
"""
from __future__ import annotations

import socket
import threading

from tests.servers import free_port


class DroppingProxy:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self._up = True
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def drop(self) -> None:
        with self._lock:
            self._up = False
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:
                _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self._stopped.set()
        self.drop()
        self._thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                up = self._up
            if not up:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                if not self._up:  # dropped while we connected
                    _close(client), _close(upstream)
                    continue
                self._pairs.add(pair)
            for a, b in (pair, pair[::-1]):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _close(source), _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
