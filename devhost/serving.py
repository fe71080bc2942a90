"""What the local HTTPS servers (Key Vault, fake Azure DevOps) share: stopping and `with` blocks."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any, Protocol, Self

logger = logging.getLogger(__name__)


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
