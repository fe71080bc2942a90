"""Shared parts of the local HTTPS servers (Key Vault, fake Azure DevOps): the TLS server, the
request handler's method dispatch, and stopping in a `with` block."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self

logger = logging.getLogger(__name__)


class TlsThreadingServer(ThreadingHTTPServer):
    """A threaded HTTP server that runs each TLS handshake on its connection's own thread.

    A slow client therefore cannot stall the accept loop. Open connections are tracked so that
    `close_connections` can cut keep-alive clients when the server stops.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TCP_NODELAY stops Nagle's algorithm from holding back a body sent after its headers
        # (about 40 ms per response otherwise).
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            logger.debug("TLS handshake with %s failed: %s", client_address, error)
            return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            super().finish_request(connection, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            connection.close()

    def close_connections(self) -> None:
        """Cut open keep-alive connections, so that clients see the server go away."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection was already closed")

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Dropped connections are normal for a local server, so they are logged at debug level only.
        logger.debug("connection from %s failed", client_address, exc_info=True)  # noqa: LOG014


class DispatchingHandler(BaseHTTPRequestHandler):
    """A keep-alive request handler that sends every method to `_handle`."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds an idle keep-alive connection stays open

    def _handle(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()


class _ClosableServer(Protocol):
    def shutdown(self) -> None: ...

    def close_connections(self) -> None: ...

    def server_close(self) -> None: ...


class BackgroundServer:
    """A server that runs `serve_forever` on a thread; subclasses set `_server` and `_thread` in start()."""

    _server: Any
    _thread: threading.Thread | None
    server_name = "local server"

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop listening and close open connections, so clients see the server as unreachable."""
        server: _ClosableServer | None = self._server
        self._server = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("%s stopped", self.server_name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
