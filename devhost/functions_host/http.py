"""HTTP triggers: the route table and a threaded HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devhost.functions_host.indexing import IndexedFunction
from devhost.functions_host.invocation import Invoker
from devhost.functions_host.keys import HostKeys, is_authorized
from devhost.functions_host.routing import split_path

logger = logging.getLogger(__name__)

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
# The Functions runtime rejects request bodies over 100 MB (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT).
MAX_BODY_BYTES = 100 * 1024 * 1024
HTTP_REASON = "This function was programmatically called via the host APIs."


@dataclass(frozen=True)
class RouteMatch:
    function: IndexedFunction | None
    route_params: dict[str, str]
    status: int = 200
    allow: tuple[str, ...] = ()


class RouteTable:
    """HTTP-triggered functions under the route prefix, where `find` picks the most specific route."""

    def __init__(self, functions: Sequence[IndexedFunction], route_prefix: str) -> None:
        self._functions = [function for function in functions if function.http is not None]
        self._prefix = split_path(route_prefix)

    def find(self, method: str, path: str) -> RouteMatch:
        segments = split_path(path)
        if [segment.lower() for segment in segments[:len(self._prefix)]] != [p.lower() for p in self._prefix]:
            return RouteMatch(None, {}, 404)
        segments = segments[len(self._prefix):]
        candidates: list[tuple[tuple[int, ...], IndexedFunction, dict[str, str]]] = []
        allowed: set[str] = set()
        for function in self._functions:
            assert function.http is not None
            params = function.http.route.match(segments)
            if params is None:
                continue
            methods = function.http.methods
            allowed.update(methods or ALL_METHODS)
            if methods is None or method in methods:
                candidates.append((function.http.route.precedence, function, params))
        if candidates:
            _, best, params = min(candidates, key=lambda item: item[0])
            return RouteMatch(best, params)
        if allowed:
            return RouteMatch(None, {}, 405, tuple(sorted(allowed)))
        return RouteMatch(None, {}, 404)


class _Handler(BaseHTTPRequestHandler):
    server: FunctionsHttpServer
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes. Without TCP_NODELAY, Nagle's algorithm can hold the
    # body back until the client's delayed ACK (40 ms on Linux) on a keep-alive connection.
    disable_nagle_algorithm = True
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the standard access log line, because the invoker logs each invocation."""

    def _handle(self) -> None:
        self.server.dispatch(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = _handle

    def read_body(self) -> bytes | None:
        """Return the body, or None when it is larger than the runtime allows."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailer headers
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def send(self, status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


class FunctionsHttpServer(ThreadingHTTPServer):
    """Server of the HTTP-triggered functions, with one thread per connection."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], routes: RouteTable, keys: HostKeys, invoker: Invoker) -> None:
        super().__init__(address, _Handler)
        self.routes = routes
        self.keys = keys
        self.invoker = invoker

    def dispatch(self, request: _Handler) -> None:
        method = request.command.upper()
        url = urlsplit(request.path)
        match = self.routes.find(method, url.path)
        body = request.read_body()
        if body is None:
            request.close_connection = True
            request.send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return
        if match.function is None:
            request.send(match.status, headers=[("Allow", ", ".join(match.allow))] if match.allow else ())
            return
        function = match.function
        assert function.http is not None
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        given_key = request.headers.get("x-functions-key") or params.get("code")
        if not is_authorized(self.keys, function.http.auth_level, function.name, given_key):
            request.send(HTTPStatus.UNAUTHORIZED)
            return

        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        host = request.headers.get("Host") or "{}:{}".format(*self.server_address[:2])
        http_request = func.HttpRequest(method, f"http://{host}{request.path}", headers=headers, params=params,
                                        route_params=match.route_params, body=body)
        result = self.invoker.invoke(function, HTTP_REASON, http_request)
        if not result.succeeded:
            request.send(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        self._send_response(request, function, result.return_value)

    def _send_response(self, request: _Handler, function: IndexedFunction, value: Any) -> None:
        if isinstance(value, str | bytes):
            value = func.HttpResponse(value)
        if not isinstance(value, func.HttpResponse):
            logger.error("Function %s returned %s instead of an HttpResponse, so the response is 500", function.name,
                         type(value).__name__)
            request.send(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        headers = [(name, str(item)) for name, item in value.headers.items() if name.lower() != "content-length"]
        if value.mimetype and not any(name.lower() == "content-type" for name, _ in headers):
            content_type = value.mimetype
            if value.charset:
                content_type += f"; charset={value.charset}"
            headers.append(("Content-Type", content_type))
        request.send(value.status_code, value.get_body() or b"", headers)
