"""Helpers shared by the end-to-end tests of the management API: unique names, callers with roles,
the error body shape and polling for the queued connection test."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.fixtures.app_host import Api, principal_headers

ERROR_KEYS = {"code", "message", "field"}


def unique(prefix: str) -> str:
    """Return `prefix` with a random suffix, so names and ids never clash across tests or runs."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def user(name: str) -> dict[str, str]:
    """Return the App Service Authentication headers of a user whose subject is `name`."""
    return principal_headers(name)


def create_space(api: Api, space_id: str, parent_id: str = "root") -> None:
    response = api.as_admin("POST", "/api/spaces", {"name": space_id, "id": space_id, "parentId": parent_id})
    assert response.status_code == 201, response.text


def grant(api: Api, space_id: str, subject: str, role: str) -> None:
    response = api.as_admin("POST", f"/api/spaces/{space_id}/roles", {"subject": subject, "role": role})
    assert response.status_code == 200, response.text


def revoke(api: Api, space_id: str, subject: str) -> None:
    response = api.as_admin("DELETE", f"/api/spaces/{space_id}/roles/{subject}")
    assert response.status_code in (204, 404), response.text


def delete_integration(api: Api, integration_id: str) -> None:
    """Delete an integration as root admin; a missing one is fine, because clean-up may repeat."""
    response = api.as_admin("DELETE", f"/api/integrations/{integration_id}")
    assert response.status_code in (204, 404), response.text


def delete_space(api: Api, space_id: str) -> None:
    response = api.as_admin("DELETE", f"/api/spaces/{space_id}")
    assert response.status_code in (204, 404), response.text


def error_of(response: httpx.Response) -> dict[str, Any]:
    """Return the `error` member of an error body after checking the body has the one error shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == ERROR_KEYS, body
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])


def current_default(api: Api) -> str | None:
    """Return the id of the account's default integration, or None when the slot is free."""
    response = api.as_admin("GET", "/api/integrations")
    assert response.status_code == 200, response.text
    defaults = [entry["id"] for entry in response.json()["integrations"] if entry["isDefault"]]
    return defaults[0] if defaults else None


def wait_for_connection_test(api: Api, integration_id: str, *, timeout: float = 20.0) -> dict[str, Any]:
    """Poll the details until a connection test result is stored, and return the details."""
    deadline = time.monotonic() + timeout
    while True:
        details = api.details(integration_id)
        if details["connectionTest"] is not None:
            return details
        if time.monotonic() > deadline:
            raise AssertionError(f"no connection test result for {integration_id} within {timeout} seconds")
        time.sleep(0.1)
