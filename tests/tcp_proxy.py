"""A TCP forwarder in front of a test endpoint: to take it off the network and bring it back, or to slow it down.

Stopping moto_server itself would lose every object it holds (it keeps them in memory); an S3 that
stops answering keeps them. down() closes the listening port and cuts open connections, so clients
see connection refused and reset, as from an endpoint that went away; up() listens again on the
same port. throttle(bytes_per_s) slows every byte through it, both ways and all connections
together, as a slow link to the endpoint would; throttle(None) lifts it.
"""
from __future__ import annotations

import socket
import threading
import time

from tests.ray_head import free_port

CHUNK = 65536


class TcpProxy:
    def __init__(self, target_port: int):
        self.port = free_port()
        self._target = ("127.0.0.1", target_port)
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._bytes_per_s: float | None = None
        self._link_free_at = 0.0  # when the throttled link has sent every byte handed to it so far
        self.bytes = 0  # forwarded, both ways

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self._listener is not None:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def throttle(self, bytes_per_s: float | None) -> None:
        with self._lock:
            self._bytes_per_s = bytes_per_s
            self._link_free_at = time.monotonic()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(self._chunk()):
                self._wait_for_link(len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                for sock in (source, sink):
                    self._open.discard(sock)
                    _close(sock)

    def _chunk(self) -> int:
        """Bytes read at once: a slow link's arrive steadily, about a hundredth of a second's worth at a time."""
        rate = self._bytes_per_s
        return CHUNK if not rate else int(min(CHUNK, max(4096, rate / 100)))

    def _wait_for_link(self, size: int) -> None:
        """Holds these bytes until a link of the throttled rate, shared by every connection, has carried them."""
        with self._lock:
            self.bytes += size
            if not self._bytes_per_s:
                return
            self._link_free_at = max(self._link_free_at, time.monotonic()) + size / self._bytes_per_s
            sent_at = self._link_free_at
        time.sleep(max(0.0, sent_at - time.monotonic()))


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
