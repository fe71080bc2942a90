"""Helpers shared by the webhook tests: an integration to post to, payload copies with fresh ids,
posting a delivery and reading the delivery log."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tests.api_helpers import unique
from tests.fixtures.app_host import Api, basic_auth
from tests.payloads import load_payload_json

WEBHOOK_PATH = "/api/webhooks/azure-devops/{integration}"


@dataclass(frozen=True)
class Hook:
    """An integration that deliveries are posted to, with its current webhook secret."""

    id: str
    secret: str


def create_hook(api: Api, prefix: str = "Hooks", **fields: Any) -> Hook:
    """Create an integration in the root space and return its id and webhook secret."""
    response = api.create_integration(unique(prefix), **fields)
    assert response.status_code == 201, response.text
    details = response.json()
    return Hook(details["id"], details["webhookSecret"])


def fresh(name: str, *, pull_request_id: int | None = None) -> dict[str, Any]:
    """Return payload `name` with a new event id and notification id, so no earlier post is a duplicate.

    `pull_request_id` replaces the pull request id, so that the stored state of one test's pull
    request is not shared with another test.
    """
    document = load_payload_json(name)
    document["id"] = str(uuid.uuid4())
    document["notificationId"] = random.randint(1, 2**31 - 1)
    if pull_request_id is not None:
        resource = document["resource"]
        target = resource["pullRequest"] if "pullRequest" in resource else resource
        target["pullRequestId"] = pull_request_id
    return document


def new_pull_request_id() -> int:
    return random.randint(10_000, 2**31 - 1)


def post_hook(api: Api, hook_id: str, body: dict[str, Any] | bytes, *, password: str | bytes | None,
              user: str = "", content_type: str | None = "application/json",
              headers: dict[str, str] | None = None) -> httpx.Response:
    """POST one delivery; `password=None` sends no Authorization header."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    request_headers = dict(headers or {})
    if password is not None:
        request_headers.update(basic_auth(password, user))
    return api.call("POST", WEBHOOK_PATH.format(integration=hook_id), headers=request_headers, raw=raw,
                    content_type=content_type)


def get_delivery(api: Api, hook_id: str, delivery_id: str) -> dict[str, Any]:
    response = api.as_admin("GET", f"/api/integrations/{hook_id}/deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_for_outcome(api: Api, hook_id: str, delivery_id: str, *, timeout: float = 20.0) -> dict[str, Any]:
    """Poll the delivery until processing has recorded an outcome other than `queued`, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        delivery = get_delivery(api, hook_id, delivery_id)
        if delivery["outcome"] != "queued":
            return delivery
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery {delivery_id} was still queued after {timeout} seconds: {delivery}")
        time.sleep(0.1)


def log_entries(api: Api, hook_id: str, page_size: int = 500) -> list[dict[str, Any]]:
    """Return the whole delivery log of an integration, newest first, following continuation tokens."""
    entries: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query = f"?pageSize={page_size}" + (f"&continuationToken={quote(token)}" if token else "")
        response = api.as_admin("GET", f"/api/integrations/{hook_id}/deliveries{query}")
        assert response.status_code == 200, response.text
        entries += response.json()["deliveries"]
        token = response.json()["nextContinuationToken"]
        if not token:
            return entries


def entries_for_event(api: Api, hook_id: str, event_id: str) -> list[dict[str, Any]]:
    return [entry for entry in log_entries(api, hook_id) if entry["eventId"] == event_id]
