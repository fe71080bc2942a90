"""`FakeAzureDevOps`: an HTTPS server on 127.0.0.1 that plays an Azure DevOps Server collection.

It checks personal access tokens and api-versions the way Azure DevOps does, serves the in-memory
model in `model.py` and records every request. `fail_next` makes the next requests fail with 401, 403,
404, a 203 or 302 sign-in response, 429 with Retry-After, 5xx, or a 200 with Retry-After.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from devhost.fake_ado.model import CollectionState, Identity
from devhost.fake_ado.routes import ApiError, Call, Reply, connection_data, dispatch
from devhost.fake_ado.sample import SAMPLE_COLLECTION_ID, SAMPLE_PAT, seed_sample
from devhost.serving import BackgroundServer, DispatchingHandler, TlsThreadingServer
from devhost.tls import LocalCertificates

logger = logging.getLogger(__name__)

FailureKind = Literal["auto", "error", "html", "redirect", "passthrough"]
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:-preview(?:\.\d+)?)?$")
_ERROR_TYPE_KEYS = {401: "UnauthorizedRequestException", 403: "UnauthorizedRequestException",
                    404: "NotFoundException", 409: "ConflictException", 429: "RequestBlockedException",
                    500: "InternalServerErrorException", 503: "ServiceUnavailableException"}
_ERROR_MESSAGES = {
    401: "TF400813: The user '' is not authorized to access this resource.",
    403: "TF400813: The user is not authorized to access this resource.",
    429: "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource "
         "'Concurrency' in namespace 'User'.",
    503: "TF246017: Azure DevOps Server could not connect to the database. The service is temporarily unavailable.",
}
SIGN_IN_PAGE = (b"<!DOCTYPE html><html><head><title>Sign in to your account</title></head>"
                b"<body><form method=\"post\" action=\"/_signin\"><p>Sign in to continue to Azure DevOps</p>"
                b"</form></body></html>")


@dataclass
class RecordedRequest:
    """One request as the fake received it; `path` is percent-decoded once, `raw_path` is as sent."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: list[tuple[str, str]]
    body: Any
    status: int = 0

    def header(self, name: str) -> str | None:
        """Return the first value of header `name` (case-insensitive), or None."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


@dataclass
class InjectedFailure:
    status: int
    remaining: int
    path_contains: str | None
    retry_after: float | None
    kind: FailureKind
    type_key: str | None = None
    message: str | None = None


@dataclass
class _Parsed:
    segments: list[str] = field(default_factory=list)
    query: dict[str, str] = field(default_factory=dict)


def error_body(type_key: str, message: str) -> dict[str, Any]:
    """Return the VSS error envelope that Azure DevOps sends with 4xx and 5xx responses."""
    return {"$id": "1", "innerException": None, "message": message,
            "typeName": f"Microsoft.VisualStudio.Services.WebApi.{type_key}, Microsoft.VisualStudio.Services.WebApi",
            "typeKey": type_key, "errorCode": 0, "eventId": 3000}


def _parse_version(value: str) -> tuple[int, int] | None:
    match = _VERSION.match(value.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


class FakeAzureDevOps(BackgroundServer):
    """A local Azure DevOps Server collection at `https://127.0.0.1:<port>/<collection>`.

    Settings: `max_api_version` is the highest version it accepts. `auth_failure_mode` "signin" returns
    203 with an HTML sign-in page to unknown tokens when `X-TFS-FedAuthRedirect: Suppress` is missing
    ("401" returns 401 always). `anonymous_connection_data` makes connectionData return an anonymous
    identity to unknown tokens.
    """

    sample_pat = SAMPLE_PAT

    server_name = "fake Azure DevOps"

    def __init__(self, certificates: LocalCertificates, *, port: int = 0, collection: str = "DefaultCollection",
                 max_api_version: str = "7.1") -> None:
        self.certificates = certificates
        self.collection = collection
        self.requested_port = port
        self.max_api_version = max_api_version
        self.auth_failure_mode: Literal["401", "signin"] = "401"
        self.anonymous_connection_data = False
        self.lock = threading.RLock()
        self.state = CollectionState(SAMPLE_COLLECTION_ID)
        self.requests: list[RecordedRequest] = []
        self._failures: list[InjectedFailure] = []
        self._server: _HTTPSServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeAzureDevOps:
        server = _HTTPSServer(("127.0.0.1", self.requested_port), self.certificates.server_context(), self)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-azure-devops", daemon=True)
        self._thread.start()
        logger.info("fake Azure DevOps listening at %s", self.base_url)
        return self


    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Azure DevOps server is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The collection URL that clients use as their organization URL."""
        return f"{self.server_url}/{self.collection}"

    # Setup -------------------------------------------------------------------------------------

    def add_pat(self, token: str, identity: Identity) -> None:
        with self.lock:
            self.state.add_pat(token, identity)

    def seed_sample(self) -> None:
        """Load the sample organization of the payload files and the sample PAT."""
        with self.lock:
            seed_sample(self.state)

    def reset(self) -> None:
        """Forget recorded requests, injected failures, configuration changes and model changes, then reseed."""
        with self.lock:
            self.clear()
            self.max_api_version = "7.1"
            self.auth_failure_mode = "401"
            self.anonymous_connection_data = False
            self.state = CollectionState(SAMPLE_COLLECTION_ID)
            seed_sample(self.state)

    def set_subscription_status(self, subscription_id: str, status: str) -> None:
        with self.lock:
            self.state.set_subscription_status(subscription_id, status)

    def set_pull_request_status(self, pull_request_id: int, status: str) -> None:
        with self.lock:
            self.state.set_pull_request_status(pull_request_id, status)

    def fail_next(self, count: int = 1, *, status: int, path_contains: str | None = None,
                  retry_after: float | None = None, kind: FailureKind = "auto", type_key: str | None = None,
                  message: str | None = None) -> None:
        """Fail the next `count` requests whose decoded path contains `path_contains`.

        `kind` "auto" picks an HTML sign-in page for 203, a redirect to a sign-in URL for 3xx, the normal
        response plus a Retry-After header for 200, and a JSON error body otherwise. `type_key` and
        `message` replace the defaults of a JSON error body.
        """
        if kind == "auto" and status == 203:
            kind = "html"
        elif kind == "auto" and 300 <= status < 400:
            kind = "redirect"
        elif kind == "auto" and status == 200:
            kind = "passthrough"
        elif kind == "auto":
            kind = "error"
        with self.lock:
            self._failures.append(InjectedFailure(status, count, path_contains, retry_after, kind, type_key, message))

    # Recording ---------------------------------------------------------------------------------

    def find(self, method: str | None = None, path_contains: str | None = None) -> list[RecordedRequest]:
        """Return recorded requests with this method whose decoded or raw path contains `path_contains`."""
        with self.lock:
            return [request for request in self.requests
                    if (method is None or request.method == method.upper())
                    and (path_contains is None or path_contains in request.path or path_contains in request.raw_path)]

    def last(self, method: str | None = None, path_contains: str | None = None) -> RecordedRequest:
        found = self.find(method, path_contains)
        if not found:
            raise AssertionError(f"no {method or 'any'} request with a path containing {path_contains!r} was recorded")
        return found[-1]

    def clear(self) -> None:
        """Forget recorded requests and injected failures."""
        with self.lock:
            self.requests.clear()
            self._failures.clear()

    # Request handling --------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: list[tuple[str, str]], raw_body: bytes) -> Reply:
        """Record one request and build its reply."""
        raw_path, _, raw_query = target.partition("?")
        parsed = _Parsed([unquote(segment) for segment in raw_path.split("/") if segment],
                         dict(parse_qsl(raw_query, keep_blank_values=True)))
        body: Any = None
        body_valid = True
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body, body_valid = raw_body.decode("utf-8", "replace"), False
        record = RecordedRequest(method, "/" + "/".join(parsed.segments), raw_path, parsed.query, headers, body)
        with self.lock:
            self.requests.append(record)
            failure = self._take_failure(record.path)
        if failure is not None and failure.kind != "passthrough":
            reply = self._failure_reply(failure)
        else:
            reply = self._answer(method, parsed, record, body_valid)
            if failure is not None and failure.retry_after is not None:
                reply.headers["Retry-After"] = _seconds(failure.retry_after)
        record.status = reply.status
        return reply

    def _take_failure(self, path: str) -> InjectedFailure | None:
        for failure in self._failures:
            if failure.path_contains is None or failure.path_contains in path:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _failure_reply(self, failure: InjectedFailure) -> Reply:
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = _seconds(failure.retry_after)
        if failure.status == 429:
            headers.update({"X-RateLimit-Resource": "Core", "X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"})
        if failure.kind == "html":
            return Reply(failure.status, headers=headers, raw=SIGN_IN_PAGE, content_type="text/html; charset=utf-8")
        if failure.kind == "redirect":
            headers["Location"] = f"{self.server_url}/_signin?realm=127.0.0.1&reply_to=%2F{self.collection}"
            return Reply(failure.status, headers=headers, raw=SIGN_IN_PAGE, content_type="text/html; charset=utf-8")
        type_key = failure.type_key or _ERROR_TYPE_KEYS.get(failure.status, "VssServiceException")
        message = failure.message or _ERROR_MESSAGES.get(
            failure.status, f"The fake server was told to fail with {failure.status}.")
        return Reply(failure.status, error_body(type_key, message), headers)

    def _answer(self, method: str, parsed: _Parsed, record: RecordedRequest, body_valid: bool) -> Reply:
        segments = self._strip_collection(parsed.segments)
        if segments is None or "_apis" not in [segment.lower() for segment in segments]:
            return Reply(404, raw=b"<html><body>The resource cannot be found.</body></html>",
                         content_type="text/html; charset=utf-8")
        index = [segment.lower() for segment in segments].index("_apis")
        if index > 1:
            return Reply(404, raw=b"<html><body>The resource cannot be found.</body></html>",
                         content_type="text/html; charset=utf-8")
        project = segments[0] if index == 1 else None
        route = segments[index + 1:]
        is_connection_data = [segment.lower() for segment in route] == ["connectiondata"]
        identity = self._identity(record.header("Authorization"))
        try:
            if identity is None and not (is_connection_data and self.anonymous_connection_data):
                return self._unauthorized(record)
            self._check_version(parsed.query, record.header("Accept") or "", required=not is_connection_data)
            if identity is None:
                return Reply(200, connection_data(self.state, None))
            if method in ("POST", "PUT", "PATCH") and not body_valid:
                raise ApiError(400, "VssRequestContentException", "The request body is not valid JSON.")
            call = Call(method, project, route, parsed.query, record.body, identity, self.base_url,
                        record.header("Accept") or "application/json")
            with self.lock:
                return dispatch(self.state, call)
        except ApiError as error:
            return Reply(error.status, error_body(error.type_key, error.message))

    def _strip_collection(self, segments: list[str]) -> list[str] | None:
        lowered = [segment.lower() for segment in segments]
        if lowered[:2] == ["tfs", self.collection.lower()]:
            return segments[2:]
        if lowered[:1] == [self.collection.lower()]:
            return segments[1:]
        return None

    def _identity(self, authorization: str | None) -> Identity | None:
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, token = decoded.partition(":")
        with self.lock:
            return self.state.pats.get(token)

    def _unauthorized(self, record: RecordedRequest) -> Reply:
        suppressed = (record.header("X-TFS-FedAuthRedirect") or "").lower() == "suppress"
        if self.auth_failure_mode == "signin" and not suppressed:
            return Reply(203, raw=SIGN_IN_PAGE, content_type="text/html; charset=utf-8")
        return Reply(401, error_body("UnauthorizedRequestException", _ERROR_MESSAGES[401]),
                     {"WWW-Authenticate": f'Basic realm="{self.server_url}/"'})

    def _check_version(self, query: dict[str, str], accept: str, *, required: bool) -> None:
        requested = query.get("api-version")
        if requested is None:
            match = re.search(r"api-version=([^;,\s]+)", accept)
            requested = match.group(1) if match else None
        if requested is None:
            if required:
                raise ApiError(400, "VssVersionNotSpecifiedException",
                               "No api-version was supplied for the request. The version must be supplied either "
                               "as part of the Accept header (e.g. \"application/json; api-version=1.0\") or as a "
                               "query parameter (e.g. '?api-version=1.0').")
            return
        version = _parse_version(requested)
        if version is None:
            # NOTE: the typeKey of a malformed api-version answer is not documented; this one is a stand-in.
            raise ApiError(400, "VssInvalidApiVersionException",
                           f"The api-version '{requested}' is not valid. Use a version such as 7.1 or 7.1-preview.1.")
        maximum = _parse_version(self.max_api_version)
        if maximum is not None and version > maximum:
            raise ApiError(400, "VssVersionOutOfRangeException",
                           f"The requested REST API version of {requested} is out of range for this server. "
                           f"The latest REST API version this server supports is {self.max_api_version}.")


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class _HTTPSServer(TlsThreadingServer):
    """The TLS server of one fake collection."""

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, fake: FakeAzureDevOps) -> None:
        super().__init__(address, _Handler, context)
        self.fake = fake


class _Handler(DispatchingHandler):
    server: _HTTPSServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake Azure DevOps: " + format, *args)  # noqa: G003 - format is the stdlib's template

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        reply = self.server.fake.handle(self.command, self.path, list(self.headers.items()), raw_body)
        payload = b"" if reply.status in (204, 304) else (
            reply.raw if reply.raw is not None else json.dumps(reply.body).encode("utf-8"))
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-VSS-E2EID", "fake-e2e")
        self.end_headers()
        self.wfile.write(payload)

