"""The one exception hierarchy of stackhook.

    StackhookError                  base: catch this to handle any failure the service expects
    ├── SettingsError               a setting is missing or invalid; start-up stops
    ├── RequestError                the caller sent something wrong (4xx); carries status and code
    │   ├── ValidationFailed        a field is invalid (422 by default, 400 for webhook envelopes)
    │   ├── AuthenticationRequired  no or unusable identity (401)
    │   ├── PermissionDenied        identity known, action not allowed (403)
    │   ├── NotFound                missing, or hidden from this caller (404)
    │   ├── Conflict                clashes with what exists (409)
    │   └── PreconditionFailed      stale ETag (412)
    ├── DependencyUnavailable       Table Storage, queues or Key Vault did not answer (503)
    └── AzureDevOpsError            a call to Azure DevOps failed; `kind` says how

Messages say what failed, on which value, and what to do next. They never contain a secret,
a personal access token or an Authorization header.
"""

from __future__ import annotations


class StackhookError(Exception):
    """Base class of every error the service raises on purpose."""


class SettingsError(StackhookError):
    """A setting is missing or invalid, so the app cannot start."""


class RequestError(StackhookError):
    """The request cannot be carried out as sent; maps to a 4xx response."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})


class ValidationFailed(RequestError):
    """A field of the request is missing or invalid."""

    status = 422
    code = "invalid"


class AuthenticationRequired(RequestError):
    """The caller did not prove who they are."""

    status = 401
    code = "unauthenticated"


class PermissionDenied(RequestError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"


class NotFound(RequestError):
    """The resource does not exist, or the caller may not know that it exists."""

    status = 404
    code = "not_found"


class Conflict(RequestError):
    """The request clashes with a resource that already exists."""

    status = 409
    code = "conflict"


class PreconditionFailed(RequestError):
    """The resource changed since the caller read it (stale ETag)."""

    status = 412
    code = "precondition_failed"


class DependencyUnavailable(StackhookError):
    """A service the request needs (tables, queues, Key Vault) failed or timed out."""

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency} is unavailable: {message}")
        self.dependency = dependency


class AzureDevOpsError(StackhookError):
    """A call to Azure DevOps failed.

    `kind` is one of: invalid_credentials, forbidden, not_found, unreachable, throttled,
    version_out_of_range, server_error, bad_response, rejected.
    """

    def __init__(self, kind: str, message: str, *, status: int | None = None,
                 retry_after: float | None = None, type_key: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.type_key = type_key
