"""A local HTTPS server that speaks the Key Vault secrets REST API, for development and tests.

No Key Vault emulator is installable from the package registries, so this module implements the
subset of the secrets API that stackhook uses. Responses have the JSON shapes that
`azure-keyvault-secrets` 4.12 parses. The operations are: set, get (latest or by version), list
secrets and versions (paged with `nextLink`), update attributes, soft delete, get and list deleted
secrets, recover and purge.

Key Vault behaviours it keeps:

- A request without `Authorization: Bearer ...` gets 401 with the bearer challenge that the SDK
  needs before it sends a token. A token is accepted when it equals the configured token, or is
  any non-empty token when none is configured.
- Every request needs the `api-version` query parameter (400 otherwise).
- Secret names match `^[0-9a-zA-Z-]{1,127}$` (400 otherwise). Version ids are 32 hex characters.
- A deleted secret stays recoverable for `RECOVERABLE_DAYS` days. Setting a secret whose name is
  deleted but recoverable returns 409 with inner error code `ObjectIsDeletedButRecoverable`.
- Purge protection, when switched on, makes purge return 403.
- Errors have Key Vault's shape `{"error": {"code", "message", "innererror"?}}`.

State lives in memory, or in a JSON file that is replaced atomically after every change. The
file stores secret values in plain text, so it is created readable by its owner only. The server
never logs a secret value or an Authorization header.

Run it on its own with `python -m devhost.keyvault --port 8443 --data-file .local/keyvault.json
--tls-folder .local/tls`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hmac
import json
import logging
import os
import re
import secrets
import signal
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from devhost.serving import BackgroundServer, DispatchingHandler, TlsThreadingServer
from devhost.tls import LocalCertificates, ensure_local_ca
from shared.errors import RequestError

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
VERSION_PATTERN = re.compile(r"^[0-9a-f]{32}$")
LOCAL_TENANT_ID = "00000000-0000-0000-0000-000000000000"
CHALLENGE = (f'Bearer authorization="https://login.microsoftonline.com/{LOCAL_TENANT_ID}", '
             'resource="https://vault.azure.net"')
RECOVERABLE_DAYS = 90
MAX_PAGE_SIZE = 25
MAX_VALUE_BYTES = 25 * 1024  # Key Vault's limit on the size of a secret value.
MAX_BODY_BYTES = 256 * 1024
IDLE_CONNECTION_SECONDS = 30


class VaultRequestError(RequestError):
    """A request the local vault rejects, with Key Vault's error code and optional inner code."""

    def __init__(self, status: int, code: str, message: str, *, inner_code: str | None = None) -> None:
        super().__init__(message, code=code, status=status)
        self.inner_code = inner_code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}


def _secret_not_found(name: str, *, deleted: bool = False) -> VaultRequestError:
    kind = "Deleted secret" if deleted else "Secret"
    return VaultRequestError(404, "SecretNotFound", f"{kind} {name} was not found in this key vault.")


# The pure core: vault state and the operations on it, without sockets or files.

@dataclass
class SecretVersion:
    """One version of a secret with its value and attributes, with times in Unix seconds."""

    version: str
    value: str
    content_type: str | None
    tags: dict[str, str]
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int


@dataclass
class StoredSecret:
    """A secret's versions, oldest first, and its deletion times (set only while it is deleted)."""

    versions: list[SecretVersion] = field(default_factory=list)
    deleted_date: int | None = None
    scheduled_purge_date: int | None = None

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]


def _optional_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VaultRequestError(400, "BadParameter", f"Attribute {name} must be a Unix time in seconds.")
    return int(value)


def _tags(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise VaultRequestError(400, "BadParameter", "Property tags must be an object of string values.")
    return dict(value)


def _content_type(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise VaultRequestError(400, "BadParameter", "Property contentType must be a string.")
    return value


def _attributes(body: dict[str, Any]) -> dict[str, Any]:
    attributes = body.get("attributes")
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise VaultRequestError(400, "BadParameter", "Property attributes must be an object.")
    return attributes


class VaultState:
    """Secrets of one vault and the operations of the REST API, returning JSON-ready bodies.

    The class is not thread-safe, so `LocalKeyVault` serialises calls with a lock. `vault_url` is
    used only to build the `id` and `recoveryId` values of responses.
    """

    def __init__(self, *, purge_protection: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.vault_url = "https://127.0.0.1"
        self.purge_protection = purge_protection
        self._clock = clock
        self.secrets: dict[str, StoredSecret] = {}
        self.deleted: dict[str, StoredSecret] = {}

    # Rendering

    def _recovery_level(self) -> str:
        return "Recoverable" if self.purge_protection else "Recoverable+Purgeable"

    def _attributes_json(self, version: SecretVersion) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.updated,
            "recoveryLevel": self._recovery_level(),
            "recoverableDays": RECOVERABLE_DAYS,
        }
        if version.not_before is not None:
            attributes["nbf"] = version.not_before
        if version.expires is not None:
            attributes["exp"] = version.expires
        return attributes

    def _bundle(self, name: str, version: SecretVersion, *, with_value: bool) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "id": f"{self.vault_url}/secrets/{name}/{version.version}",
            "attributes": self._attributes_json(version),
            "tags": dict(version.tags),
        }
        if with_value:
            bundle["value"] = version.value
        if version.content_type is not None:
            bundle["contentType"] = version.content_type
        return bundle

    def _item(self, name: str, version: SecretVersion, *, with_version: bool) -> dict[str, Any]:
        suffix = f"/{version.version}" if with_version else ""
        item: dict[str, Any] = {
            "id": f"{self.vault_url}/secrets/{name}{suffix}",
            "attributes": self._attributes_json(version),
            "tags": dict(version.tags),
        }
        if version.content_type is not None:
            item["contentType"] = version.content_type
        return item

    def _deleted_fields(self, name: str, secret: StoredSecret) -> dict[str, Any]:
        return {
            "recoveryId": f"{self.vault_url}/deletedsecrets/{name}",
            "deletedDate": secret.deleted_date,
            "scheduledPurgeDate": secret.scheduled_purge_date,
        }

    # Lookups

    def _expire_deleted(self) -> None:
        """Purge deleted secrets whose retention has ended, as Key Vault does on its schedule."""
        now = int(self._clock())
        for name in [name for name, secret in self.deleted.items()
                     if secret.scheduled_purge_date is not None and secret.scheduled_purge_date <= now]:
            del self.deleted[name]

    def _active(self, name: str) -> StoredSecret:
        secret = self.secrets.get(name)
        if secret is None:
            raise _secret_not_found(name)
        return secret

    def _deleted(self, name: str) -> StoredSecret:
        self._expire_deleted()
        secret = self.deleted.get(name)
        if secret is None:
            raise _secret_not_found(name, deleted=True)
        return secret

    def _version(self, name: str, version: str) -> SecretVersion:
        secret = self._active(name)
        if not version:
            return secret.latest
        for candidate in secret.versions:
            if candidate.version == version:
                return candidate
        raise VaultRequestError(404, "SecretNotFound", f"Secret {name} has no version {version}.")

    # Operations

    def set_secret(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._expire_deleted()
        if name in self.deleted:
            raise VaultRequestError(
                409, "Conflict",
                f"Secret {name} is deleted but recoverable, so its name cannot be reused. "
                "Recover or purge the deleted secret first.",
                inner_code="ObjectIsDeletedButRecoverable")
        value = body.get("value")
        if not isinstance(value, str):
            raise VaultRequestError(400, "BadParameter", "Property value is missing or not a string.")
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise VaultRequestError(400, "BadParameter",
                                    f"Secret value is larger than the limit of {MAX_VALUE_BYTES} bytes.")
        attributes = _attributes(body)
        now = int(self._clock())
        version = SecretVersion(
            version=secrets.token_hex(16),
            value=value,
            content_type=_content_type(body.get("contentType")),
            tags=_tags(body.get("tags")) or {},
            enabled=bool(attributes.get("enabled", True)),
            not_before=_optional_int(attributes.get("nbf"), "nbf"),
            expires=_optional_int(attributes.get("exp"), "exp"),
            created=now,
            updated=now,
        )
        self.secrets.setdefault(name, StoredSecret()).versions.append(version)
        return self._bundle(name, version, with_value=True)

    def get_secret(self, name: str, version: str) -> dict[str, Any]:
        found = self._version(name, version)
        if not found.enabled:
            raise VaultRequestError(403, "Forbidden", f"Operation get is not allowed on a disabled secret: {name}.",
                                    inner_code="SecretDisabled")
        # NOTE: nbf and exp are stored and returned but not enforced on get.
        return self._bundle(name, found, with_value=True)

    def update_secret(self, name: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
        found = self._version(name, version)
        attributes = _attributes(body)
        if "enabled" in attributes:
            found.enabled = bool(attributes["enabled"])
        if "nbf" in attributes:
            found.not_before = _optional_int(attributes["nbf"], "nbf")
        if "exp" in attributes:
            found.expires = _optional_int(attributes["exp"], "exp")
        if "contentType" in body:
            found.content_type = _content_type(body["contentType"])
        tags = _tags(body.get("tags"))
        if tags is not None:
            found.tags = tags
        found.updated = int(self._clock())
        return self._bundle(name, found, with_value=False)

    def list_secrets(self) -> list[dict[str, Any]]:
        return [self._item(name, self.secrets[name].latest, with_version=False) for name in sorted(self.secrets)]

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        secret = self.secrets.get(name)
        if secret is None:
            return []
        return [self._item(name, version, with_version=True) for version in secret.versions]

    def delete_secret(self, name: str) -> dict[str, Any]:
        secret = self._active(name)
        now = int(self._clock())
        secret.deleted_date = now
        secret.scheduled_purge_date = now + RECOVERABLE_DAYS * 24 * 3600
        del self.secrets[name]
        self.deleted[name] = secret
        return self._deleted_bundle(name, secret)

    def _deleted_bundle(self, name: str, secret: StoredSecret) -> dict[str, Any]:
        bundle = self._bundle(name, secret.latest, with_value=False)
        bundle.update(self._deleted_fields(name, secret))
        return bundle

    def get_deleted_secret(self, name: str) -> dict[str, Any]:
        return self._deleted_bundle(name, self._deleted(name))

    def list_deleted_secrets(self) -> list[dict[str, Any]]:
        self._expire_deleted()
        items = []
        for name in sorted(self.deleted):
            secret = self.deleted[name]
            item = self._item(name, secret.latest, with_version=False)
            item.update(self._deleted_fields(name, secret))
            items.append(item)
        return items

    def recover_deleted_secret(self, name: str) -> dict[str, Any]:
        secret = self._deleted(name)
        del self.deleted[name]
        secret.deleted_date = None
        secret.scheduled_purge_date = None
        self.secrets[name] = secret
        return self._bundle(name, secret.latest, with_value=False)

    def purge_deleted_secret(self, name: str) -> None:
        self._deleted(name)
        if self.purge_protection:
            raise VaultRequestError(
                403, "Forbidden",
                f"Operation purge is not allowed on {name} because purge protection is enabled for this "
                f"vault. The deleted secret is kept for {RECOVERABLE_DAYS} days; recover it to reuse the name.")
        del self.deleted[name]

    # Persistence

    def to_json(self) -> dict[str, Any]:
        def dump(table: dict[str, StoredSecret]) -> dict[str, Any]:
            return {name: {"versions": [vars(version) for version in secret.versions],
                           "deletedDate": secret.deleted_date,
                           "scheduledPurgeDate": secret.scheduled_purge_date}
                    for name, secret in table.items()}

        return copy.deepcopy({"secrets": dump(self.secrets), "deleted": dump(self.deleted)})

    def load_json(self, data: dict[str, Any]) -> None:
        def load(table: dict[str, Any]) -> dict[str, StoredSecret]:
            return {name: StoredSecret(versions=[SecretVersion(**version) for version in entry["versions"]],
                                       deleted_date=entry.get("deletedDate"),
                                       scheduled_purge_date=entry.get("scheduledPurgeDate"))
                    for name, entry in table.items()}

        self.secrets = load(data.get("secrets", {}))
        self.deleted = load(data.get("deleted", {}))


# The HTTP adapter.

@dataclass(frozen=True)
class RecordedRequest:
    """One request the server handled, without body, query or headers, so no secret value is kept."""

    method: str
    path: str
    operation: str
    name: str | None
    status: int


@dataclass(frozen=True)
class _Route:
    operation: str
    name: str | None = None
    version: str = ""
    mutates: bool = False


def _route(method: str, path: str) -> _Route:
    """Map a method and path to an operation; raise `VaultRequestError` for anything else."""
    segments = [unquote(segment) for segment in path.strip("/").split("/")] if path.strip("/") else []
    # The SDK requests the latest version as /secrets/{name}/ with an empty version segment.
    if path.endswith("/") and len(segments) == 2:
        segments.append("")
    collection = segments[0] if segments else ""
    rest = segments[1:]
    route: _Route | None = None
    if collection == "secrets":
        if not rest and method == "GET":
            route = _Route("list_secrets")
        elif len(rest) == 1:
            route = {"PUT": _Route("set_secret", rest[0], mutates=True),
                     "GET": _Route("get_secret", rest[0]),
                     "DELETE": _Route("delete_secret", rest[0], mutates=True)}.get(method)
        elif len(rest) == 2 and rest[1] == "versions" and method == "GET":
            route = _Route("list_versions", rest[0])
        elif len(rest) == 2:
            route = {"GET": _Route("get_secret", rest[0], rest[1]),
                     "PATCH": _Route("update_secret", rest[0], rest[1], mutates=True)}.get(method)
    elif collection == "deletedsecrets":
        if not rest and method == "GET":
            route = _Route("list_deleted_secrets")
        elif len(rest) == 1:
            route = {"GET": _Route("get_deleted_secret", rest[0]),
                     "DELETE": _Route("purge_deleted_secret", rest[0], mutates=True)}.get(method)
        elif len(rest) == 2 and rest[1] == "recover" and method == "POST":
            route = _Route("recover_deleted_secret", rest[0], mutates=True)
    if route is None:
        raise VaultRequestError(404, "NotFound",
                                f"{method} {path} is not an operation of the local Key Vault secrets API.")
    if route.name is not None and not NAME_PATTERN.match(route.name):
        raise VaultRequestError(400, "BadParameter",
                                f"Secret name {route.name!r} is invalid: use 1 to 127 letters, digits and dashes.")
    return route


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], next_base: str) -> dict[str, Any]:
    """Cut one page from `items` using `maxresults` and `$skiptoken` (an offset) from the query."""
    try:
        size = int(query.get("maxresults", [str(MAX_PAGE_SIZE)])[0])
        offset = int(query.get("$skiptoken", ["0"])[0])
    except ValueError as error:
        raise VaultRequestError(400, "BadParameter", "maxresults and $skiptoken must be integers.") from error
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise VaultRequestError(400, "BadParameter", f"maxresults must be between 1 and {MAX_PAGE_SIZE}.")
    body: dict[str, Any] = {"value": items[offset:offset + size], "nextLink": None}
    if offset + size < len(items):
        next_query = urlencode({"api-version": query["api-version"][0], "maxresults": size,
                                "$skiptoken": offset + size})
        body["nextLink"] = f"{next_base}?{next_query}"
    return body


class _Handler(DispatchingHandler):
    server: _VaultHTTPServer
    timeout = IDLE_CONNECTION_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        message = format % args
        logger.debug("local Key Vault: %s", message)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise VaultRequestError(413, "RequestTooLarge", f"Request body is larger than {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        route = _Route("unknown")
        status = 500
        headers: dict[str, str] = {}
        try:
            raw_body = self._read_body()
            route = _route(self.command, parts.path)
            self.server.vault.check_authorization(self.headers.get("Authorization"))
            query = parse_qs(parts.query)
            if not query.get("api-version", [""])[0]:
                raise VaultRequestError(400, "BadParameter",
                                        "Query parameter api-version is missing. Send api-version=2026-04-01.")
            body = self._json_body(raw_body)
            status, payload = self.server.vault.dispatch(route, body, query, parts.path)
        except VaultRequestError as error:
            logger.debug("local Key Vault: %s %s failed with %s %s", self.command, parts.path, error.status,
                         error.code)
            status, payload = error.status, error.body()
            if status == 401:
                headers["WWW-Authenticate"] = CHALLENGE
        self.server.vault.record(RecordedRequest(self.command, parts.path, route.operation, route.name, status))
        self._send(status, payload, headers)

    @staticmethod
    def _json_body(raw_body: bytes) -> dict[str, Any]:
        if not raw_body:
            return {}
        try:
            body = json.loads(raw_body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise VaultRequestError(400, "BadParameter", f"Request body is not valid JSON: {error}.") from error
        if not isinstance(body, dict):
            raise VaultRequestError(400, "BadParameter", "Request body must be a JSON object.")
        return body

    def _send(self, status: int, payload: dict[str, Any] | None, headers: dict[str, str]) -> None:
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status, HTTPStatus(status).phrase)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-keyvault-service-version", "local")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _VaultHTTPServer(TlsThreadingServer):
    """The TLS server of one local Key Vault."""

    def __init__(self, address: tuple[str, int], vault: LocalKeyVault, tls_context: ssl.SSLContext) -> None:
        self.vault = vault
        super().__init__(address, _Handler, tls_context)


class LocalKeyVault(BackgroundServer):
    """A Key Vault-compatible HTTPS server on 127.0.0.1 for the secrets API.

    `token` is the bearer token the server accepts. With `None`, any non-empty token is accepted.
    With `data_file`, state is loaded from that JSON file at start and written after each change.
    """

    server_name = "local Key Vault"

    def __init__(self, certificates: LocalCertificates, *, port: int = 0, data_file: Path | str | None = None,
                 purge_protection: bool = False, token: str | None = None) -> None:
        self.certificates = certificates
        self.data_file = Path(data_file) if data_file is not None else None
        self.token = token
        self.state = VaultState(purge_protection=purge_protection)
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failure_status: int | None = None
        self._server: _VaultHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("The local Key Vault is not running; call start() first.")
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_path(self) -> Path:
        return self.certificates.ca_path

    def start(self) -> LocalKeyVault:
        if self._server is not None:
            return self
        if self.data_file is not None and self.data_file.exists():
            self._load()
        self._server = _VaultHTTPServer(("127.0.0.1", self._port), self, self.certificates.server_context())
        self.state.vault_url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-key-vault", daemon=True)
        self._thread.start()
        logger.info("local Key Vault listening on %s (data file: %s)", self.url, self.data_file or "memory only")
        return self


    # Requests

    def fail_with(self, status: int | None) -> None:
        """Make every authorized request fail with `status` (for outage tests) until called with None."""
        with self._lock:
            self._failure_status = status

    def check_authorization(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise VaultRequestError(401, "Unauthorized", "Request is missing a bearer token.")
        if self.token is not None and not hmac.compare_digest(token.encode(), self.token.encode()):
            raise VaultRequestError(401, "Unauthorized", "The bearer token is not the local Key Vault token.")

    def dispatch(self, route: _Route, body: dict[str, Any], query: dict[str, list[str]],
                 path: str) -> tuple[int, dict[str, Any] | None]:
        """Run one operation under the state lock and persist the state if it changed."""
        state = self.state
        name = route.name or ""
        with self._lock:
            if self._failure_status is not None:
                raise VaultRequestError(self._failure_status, "ServiceUnavailable",
                                        "The local Key Vault is set to fail every request (LocalKeyVault.fail_with).")
            operations: dict[str, Callable[[], dict[str, Any] | None]] = {
                "set_secret": lambda: state.set_secret(name, body),
                "get_secret": lambda: state.get_secret(name, route.version),
                "update_secret": lambda: state.update_secret(name, route.version, body),
                "delete_secret": lambda: state.delete_secret(name),
                "get_deleted_secret": lambda: state.get_deleted_secret(name),
                "recover_deleted_secret": lambda: state.recover_deleted_secret(name),
                "purge_deleted_secret": lambda: state.purge_deleted_secret(name),
                "list_secrets": lambda: _page(state.list_secrets(), query, self.url + path),
                "list_versions": lambda: _page(state.list_versions(name), query, self.url + path),
                "list_deleted_secrets": lambda: _page(state.list_deleted_secrets(), query, self.url + path),
            }
            payload = operations[route.operation]()
            if route.mutates:
                self._save()
        return (204 if payload is None else 200), payload

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests handled so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, operation: str, name: str | None = None, *, status: int | None = None) -> int:
        """Count handled requests of one operation, optionally for one secret name and status."""
        return sum(1 for request in self.requests
                   if request.operation == operation
                   and (name is None or request.name == name)
                   and (status is None or request.status == status))

    # Persistence

    def _load(self) -> None:
        assert self.data_file is not None
        try:
            data = json.loads(self.data_file.read_text(encoding="utf-8"))
            self.state.load_json(data)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RuntimeError(f"Cannot read the local Key Vault data file {self.data_file}: {error}. "
                               "Fix or delete the file and start again.") from error

    def _save(self) -> None:
        if self.data_file is None:
            return
        self.data_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".keyvault-", suffix=".json", dir=self.data_file.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(self.state.to_json(), handle, indent=1, sort_keys=True)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.data_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devhost.keyvault",
                                     description="Serve the Key Vault secrets API on https://127.0.0.1.")
    parser.add_argument("--port", type=int, default=8443, help="TCP port on 127.0.0.1 (0 picks a free port).")
    parser.add_argument("--data-file", type=Path, default=None,
                        help="JSON file that keeps the secrets across restarts (default: memory only).")
    parser.add_argument("--tls-folder", type=Path, default=Path(".local/tls"),
                        help="Folder of the local CA and server certificate; created when missing.")
    parser.add_argument("--token", default=None,
                        help="Bearer token to accept (default: any non-empty token).")
    parser.add_argument("--purge-protection", action="store_true",
                        help="Reject purges with 403, as a vault with purge protection does.")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    vault = LocalKeyVault(ensure_local_ca(arguments.tls_folder), port=arguments.port,
                          data_file=arguments.data_file, purge_protection=arguments.purge_protection,
                          token=arguments.token)
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.set())
    vault.start()
    print(f"Key Vault URL: {vault.url}  CA certificate: {vault.ca_path}", flush=True)
    try:
        stop_requested.wait()
    except KeyboardInterrupt:
        pass
    finally:
        vault.stop()


if __name__ == "__main__":
    main()
