"""The one mapping from outcomes to HTTP responses, shared by every HTTP function.

Each outcome has one status, one log level and one JSON body shape:
  success                  the function's own status and body
  RequestError (4xx)       {"error": {"code", "message", "field"}}, logged at INFO
  DependencyUnavailable    503 with Retry-After, logged at WARNING
Anything else is a bug: it propagates, the host answers 500 and logs the traceback.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.core.identity import Principal, principal_from_headers
from shared.errors import AuthenticationRequired, DependencyUnavailable, RequestError, ValidationFailed
from shared.settings import Settings

logger = logging.getLogger("stackhook.http")

ModelT = TypeVar("ModelT", bound=BaseModel)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    if isinstance(body, BaseModel):
        text = body.model_dump_json(by_alias=True)
    else:
        text = json.dumps(body, default=str)
    return func.HttpResponse(text, status_code=status, headers=headers or {}, mimetype="application/json",
                             charset="utf-8")


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> func.HttpResponse:
    return json_response(status, {"error": {"code": code, "message": message, "field": field}}, headers)


def handle_errors(function: Callable[..., func.HttpResponse]) -> Callable[..., func.HttpResponse]:
    """Wrap an HTTP function so that expected failures become JSON error responses."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            return function(*args, **kwargs)
        except RequestError as error:
            logger.info("%s returned %s %s: %s", function.__name__, error.status, error.code, error.message)
            return error_response(error.status, error.code, error.message, error.field, error.headers)
        except DependencyUnavailable as error:
            logger.warning("%s returned 503: %s", function.__name__, error)
            return error_response(503, "dependency_unavailable",
                                  f"{error} Try again shortly.", None, {"Retry-After": "5"})

    return wrapper


def parse_body(req: func.HttpRequest, model: type[ModelT]) -> ModelT:
    """Validate a JSON request body against `model`; errors name the camelCase field at fault."""
    content_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    raw = req.get_body() or b""
    if raw and content_type not in ("application/json", ""):
        raise RequestError(f"Content type {content_type!r} is not supported; send application/json.",
                           status=415, code="unsupported_media_type", field="Content-Type")
    try:
        document = json.loads(raw.decode("utf-8-sig") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValidationFailed(f"The request body is not valid JSON: {error}.", status=400,
                               code="invalid_json") from error
    if not isinstance(document, dict):
        raise ValidationFailed("The request body must be a JSON object.", status=400, code="invalid_json")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ()))
        message = str(first.get("msg", "invalid"))
        if first.get("type") == "missing":
            message = f"Field {location!r} is required."
        elif first.get("type") == "extra_forbidden":
            message = f"Field {location!r} is not known. Check the spelling against GET /api/openapi.json."
        else:
            message = f"Field {location!r} is invalid: {message}."
        raise ValidationFailed(message, field=location or None) from None


def caller(req: func.HttpRequest, settings: Settings) -> Principal:
    """Return the signed-in caller, from App Service Authentication headers.

    The headers are trusted only when the platform reports that authentication is on, or in local
    mode. Otherwise anyone could send them, so the management API is refused.
    """
    if not (settings.is_local or settings.platform_auth_enabled):
        raise AuthenticationRequired(
            "The management API needs App Service Authentication, and it is not enabled for this app. Enable "
            "Microsoft Entra ID authentication on the function app (see the deployment guide), or set "
            "STACKHOOK_ENVIRONMENT=local for local development.", code="authentication_not_configured")
    principal = principal_from_headers(dict(req.headers))
    if principal is None:
        raise AuthenticationRequired("Sign in first: no App Service Authentication identity came with the request.")
    return principal


def query_int(req: func.HttpRequest, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = req.params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"Query parameter {name!r} must be an integer, not {raw!r}.", field=name,
                               status=400) from None
    if not minimum <= value <= maximum:
        raise ValidationFailed(f"Query parameter {name!r} must be between {minimum} and {maximum}.", field=name,
                               status=400)
    return value
