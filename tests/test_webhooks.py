"""`POST /api/webhooks/azure-devops/{integration}` through the local host: the status and body that
each delivery gets, and what the delivery log records for it.

Classification by the processors, duplicates and replay are tested in test_webhook_processing.py.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from devhost.stack import LocalStack, free_port
from functions._deps import Services
from shared.errors import DependencyUnavailable
from shared.settings import Settings
from shared.storage.names import DELIVERIES_TABLE
from tests.api_helpers import delete_integration, error_of, wait_for_connection_test
from tests.fixtures.app_host import Api, basic_auth
from tests.payloads import load_payload, payload_names
from tests.webhook_helpers import (
    Hook,
    create_hook,
    entries_for_event,
    fresh,
    get_delivery,
    post_hook,
)

TWO_MIB = 2 * 1024 * 1024
MISCONFIGURED = {"ms.vss-code.git-pullrequest-comment-event.resource-version-1"}


@pytest.fixture(scope="module")
def module_api(app_stack: LocalStack) -> Iterator[Api]:
    with httpx.Client(timeout=30) as client:
        yield Api(app_stack, client)


@pytest.fixture(scope="module")
def hook(module_api: Api) -> Iterator[Hook]:
    """One integration shared by the tests of this module; each test posts its own event ids."""
    created = create_hook(module_api, "Ingest")
    yield created
    delete_integration(module_api, created.id)


@pytest.fixture
def own_hook(api: Api) -> Iterator[Hook]:
    """An integration for one test, for tests that rotate its secret or delete it."""
    created = create_hook(api, "Own")
    wait_for_connection_test(api, created.id)
    yield created
    delete_integration(api, created.id)


def rotate(api: Api, hook_id: str, grace_minutes: int) -> str:
    response = api.as_admin("POST", f"/api/integrations/{hook_id}/rotate-secret",
                            {"gracePeriodMinutes": grace_minutes})
    assert response.status_code == 200, response.text
    return str(response.json()["webhookSecret"])


def assert_challenge(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers.get("WWW-Authenticate", "").startswith("Basic")


# --- payload files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", payload_names())
def test_payload_file_answer(api: Api, hook: Hook, name: str) -> None:
    document = fresh(name)

    response = post_hook(api, hook.id, document, password=hook.secret)

    body = response.json()
    if name in MISCONFIGURED:
        assert response.status_code == 200, response.text
        assert body["status"] == "misconfigured"
    else:
        assert response.status_code == 202, response.text
        assert body["status"] == "queued"
    assert body["eventType"] == document["eventType"]
    assert body["message"]
    entry = get_delivery(api, hook.id, body["deliveryId"])
    assert entry["eventId"] == document["id"]
    assert entry["eventType"] == document["eventType"]
    assert entry["subscriptionId"] == document.get("subscriptionId")
    assert entry["notificationId"] == document["notificationId"]
    assert entry["publisherId"] == document["publisherId"]
    assert entry["integrationId"] == hook.id
    assert entry["receivedAt"]
    assert entry["bodyKept"] is True


def test_comment_version_1_misconfigured(api: Api, hook: Hook) -> None:
    document = fresh("ms.vss-code.git-pullrequest-comment-event.resource-version-1")

    response = post_hook(api, hook.id, document, password=hook.secret)

    assert response.status_code == 200, response.text
    assert "resource version 2.0" in response.json()["message"]
    entry = get_delivery(api, hook.id, response.json()["deliveryId"])
    assert entry["outcome"] == "misconfigured"
    assert "2.0" in entry["reason"]


def test_unhandled_event_type_ignored(api: Api, hook: Hook) -> None:
    document = {"subscriptionId": str(uuid.uuid4()), "notificationId": 3, "id": str(uuid.uuid4()),
                "eventType": "workitem.created", "publisherId": "tfs", "message": None,
                "resource": {"id": 5, "fields": {"System.Title": "Fix the build"}}, "resourceVersion": "1.0"}

    response = post_hook(api, hook.id, document, password=hook.secret)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"
    assert "workitem.created" in response.json()["message"]
    entry = get_delivery(api, hook.id, response.json()["deliveryId"])
    assert entry["outcome"] == "ignored"
    assert entry["eventType"] == "workitem.created"


def test_resource_details_none(api: Api, hook: Hook) -> None:
    document = fresh("git.push")
    document["resource"] = None

    response = post_hook(api, hook.id, document, password=hook.secret)

    assert response.status_code == 200, response.text
    assert "Resource details to send" in response.json()["message"]
    assert get_delivery(api, hook.id, response.json()["deliveryId"])["outcome"] == "misconfigured"


def test_test_button_sample(api: Api, hook: Hook) -> None:
    """The canned sample of the "Test" button names a repository that no stack uses and repeats its ids."""
    sample = fresh("git.push")
    sample["id"] = "03c164c2-8912-4d5e-8009-3707d5f83734"
    sample["subscriptionId"] = "00000000-0000-0000-0000-000000000000"
    sample["notificationId"] = 1
    sample["resource"]["repository"]["id"] = str(uuid.uuid4())
    sample["resource"]["repository"]["name"] = "Fabrikam-Fiber-Git"

    first = post_hook(api, hook.id, sample, password=hook.secret)
    second = post_hook(api, hook.id, sample, password=hook.secret)

    assert first.status_code == 202, first.text
    assert first.json()["message"]
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "duplicate"


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["", "azure-devops", "any user name", "nöel"])
def test_any_username_accepted(api: Api, hook: Hook, user: str) -> None:
    response = post_hook(api, hook.id, fresh("git.push"), password=hook.secret, user=user)

    assert response.status_code == 202, response.text


def test_missing_credentials(api: Api, hook: Hook) -> None:
    response = post_hook(api, hook.id, fresh("git.push"), password=None)

    assert_challenge(response)
    assert error_of(response)["code"] == "missing_credentials"


@pytest.mark.parametrize("password", ["wrong", "", " ", "pässwörd-ñ", "密码"])
def test_wrong_password(api: Api, hook: Hook, password: str) -> None:
    response = post_hook(api, hook.id, fresh("git.push"), password=password)

    assert_challenge(response)
    assert error_of(response)["code"] == "invalid_credentials"


@pytest.mark.parametrize("password", [b"\xff\xfe\x00", "é".encode("latin-1")])
def test_non_utf8_password(api: Api, hook: Hook, password: bytes) -> None:
    response = post_hook(api, hook.id, fresh("git.push"), password=password)

    assert_challenge(response)


def test_secret_prefix_and_suffix(api: Api, hook: Hook) -> None:
    for password in (hook.secret[:-1], hook.secret + "x", hook.secret.upper()):
        assert_challenge(post_hook(api, hook.id, fresh("git.push"), password=password))


@pytest.mark.parametrize("authorization", ["Bearer {secret}", "Basic", "Basic !!!not-base64!!!",
                                           "Basic c2VjcmV0", "Digest username=x"])
def test_unusable_authorization(api: Api, hook: Hook, authorization: str) -> None:
    headers = {"Authorization": authorization.format(secret=hook.secret)}

    response = post_hook(api, hook.id, fresh("git.push"), password=None, headers=headers)

    assert_challenge(response)
    assert error_of(response)["code"] in ("missing_credentials", "invalid_credentials")


def test_scheme_case_insensitive(api: Api, hook: Hook) -> None:
    value = basic_auth(hook.secret)["Authorization"].replace("Basic", "basic")

    response = post_hook(api, hook.id, fresh("git.push"), password=None, headers={"Authorization": value})

    assert response.status_code == 202, response.text


def test_credentials_checked_first(api: Api, hook: Hook) -> None:
    """Without the secret, nothing about the body is revealed: every request gets the same 401."""
    for raw, content_type in ((b"{", "application/json"), (b"x" * (TWO_MIB + 1), "application/json"),
                              (b"{}", "text/plain")):
        response = post_hook(api, hook.id, raw, password="wrong", content_type=content_type)
        assert_challenge(response)


def test_rotation_with_grace(api: Api, own_hook: Hook) -> None:
    new_secret = rotate(api, own_hook.id, grace_minutes=30)

    old = post_hook(api, own_hook.id, fresh("git.push"), password=own_hook.secret)
    new = post_hook(api, own_hook.id, fresh("git.push"), password=new_secret)

    assert new_secret != own_hook.secret
    assert old.status_code == 202, old.text
    assert new.status_code == 202, new.text
    assert api.details(own_hook.id)["previousSecretValidUntil"] is not None


def test_rotation_without_grace(api: Api, own_hook: Hook) -> None:
    accepted = post_hook(api, own_hook.id, fresh("git.push"), password=own_hook.secret)
    new_secret = rotate(api, own_hook.id, grace_minutes=0)

    old = post_hook(api, own_hook.id, fresh("git.push"), password=own_hook.secret)
    new = post_hook(api, own_hook.id, fresh("git.push"), password=new_secret)

    assert accepted.status_code == 202, accepted.text
    assert_challenge(old)
    assert new.status_code == 202, new.text


def test_second_rotation_ends_first_grace(api: Api, own_hook: Hook) -> None:
    middle = rotate(api, own_hook.id, grace_minutes=30)
    newest = rotate(api, own_hook.id, grace_minutes=30)

    assert_challenge(post_hook(api, own_hook.id, fresh("git.push"), password=own_hook.secret))
    assert post_hook(api, own_hook.id, fresh("git.push"), password=middle).status_code == 202
    assert post_hook(api, own_hook.id, fresh("git.push"), password=newest).status_code == 202


def test_deleted_integration(api: Api) -> None:
    hook = create_hook(api, "Deleted")
    delete_integration(api, hook.id)

    response = post_hook(api, hook.id, fresh("git.push"), password=hook.secret)

    assert response.status_code == 404, response.text
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize("integration_id", ["no-such-integration", "x" * 200, "%20", "a.b"])
def test_unknown_integration(api: Api, integration_id: str) -> None:
    response = post_hook(api, integration_id, fresh("git.push"), password="anything")

    assert response.status_code == 404, response.text


# --- body checks ------------------------------------------------------------------------------


def test_body_over_limit(api: Api, hook: Hook) -> None:
    document = json.dumps(fresh("git.push")).encode()
    body = document + b" " * (TWO_MIB + 1 - len(document))

    response = post_hook(api, hook.id, body, password=hook.secret)

    assert response.status_code == 413, response.text
    assert error_of(response)["code"] == "body_too_large"
    assert str(TWO_MIB) in error_of(response)["message"]


def test_body_at_limit(api: Api, hook: Hook) -> None:
    document = json.dumps(fresh("git.push")).encode()
    body = document + b" " * (TWO_MIB - len(document))

    response = post_hook(api, hook.id, body, password=hook.secret)

    assert len(body) == TWO_MIB
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=UTF-8", "application/json ; charset=\"utf-8\""])
def test_json_content_types(api: Api, hook: Hook, content_type: str) -> None:
    response = post_hook(api, hook.id, fresh("git.push"), password=hook.secret, content_type=content_type)

    assert response.status_code == 202, response.text


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx"])
def test_other_content_types(api: Api, hook: Hook, content_type: str | None) -> None:
    response = post_hook(api, hook.id, fresh("git.push"), password=hook.secret, content_type=content_type)

    assert response.status_code == 415, response.text
    assert error_of(response)["field"] == "Content-Type"


@pytest.mark.parametrize(("raw", "position"), [(b'{"eventType": ', "character 14"),
                                               (b'{"a": 1,}', "character 8"),
                                               (b"", "character 0"),
                                               (b"\xff\xfe{}", "position 0")])
def test_malformed_json(api: Api, hook: Hook, raw: bytes, position: str) -> None:
    response = post_hook(api, hook.id, raw, password=hook.secret)

    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "invalid_json"
    assert position in error_of(response)["message"]


def test_deeply_nested_json(api: Api, hook: Hook) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000

    response = post_hook(api, hook.id, raw, password=hook.secret)

    assert response.status_code == 400, response.text


def _set_path(document: dict[str, Any], path: str, value: Any) -> None:
    keys: list[str | int] = [int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", path)]
    target: Any = document
    for key in keys[:-1]:
        target = target[key]
    if value is _MISSING:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


_MISSING = object()

INVALID_FIELDS = [
    ("git.push", "eventType", _MISSING, "eventType"),
    ("git.push", "eventType", "", "eventType"),
    ("git.push", "publisherId", _MISSING, "publisherId"),
    ("git.push", "notificationId", "seven", "notificationId"),
    ("git.push", "resource.refUpdates[0].newObjectId", "not-a-sha", "resource.refUpdates[0].newObjectId"),
    ("git.push", "resource.repository.id", _MISSING, "resource.repository.id"),
    ("git.push", "resource.pushId", "x", "resource.pushId"),
    ("git.push", "resource", [1, 2], "resource"),
    ("git.pullrequest.updated.vote", "resource.pullRequestId", _MISSING, "resource.pullRequestId"),
    ("git.pullrequest.updated.vote", "resource.reviewers[0].vote", "yes", "resource.reviewers[0].vote"),
    ("git.pullrequest.created", "resource.sourceRefName", "", "resource.sourceRefName"),
    ("ms.vss-code.git-pullrequest-comment-event", "resource.comment.id", _MISSING, "resource.comment.id"),
]


@pytest.mark.parametrize(("name", "path", "value", "field"), INVALID_FIELDS)
def test_invalid_field_named(api: Api, hook: Hook, name: str, path: str, value: Any, field: str) -> None:
    document = fresh(name)
    _set_path(document, path, value)

    response = post_hook(api, hook.id, document, password=hook.secret)

    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "invalid_payload"
    assert error_of(response)["field"] == field


@pytest.mark.parametrize(("value", "status"), [(2**31 - 1, 202), (-(2**31), 202), (2**31, 400), (2**64, 400)])
def test_notification_id_range(api: Api, hook: Hook, value: int, status: int) -> None:
    document = fresh("git.push")
    document["notificationId"] = value

    response = post_hook(api, hook.id, document, password=hook.secret)

    assert response.status_code == status, response.text
    if status == 400:
        assert error_of(response)["field"] == "notificationId"


@pytest.mark.parametrize(("field", "value"), [("subscriptionId", "\ud800"), ("resourceVersion", "1.\udfff"),
                                              ("id", "e" * 40_000), ("subscriptionId", "s" * 40_000),
                                              ("publisherId", "p" * 40_000)])
def test_odd_envelope_value_logged(api: Api, hook: Hook, field: str, value: str) -> None:
    """Values storage cannot hold as sent (lone surrogates, over 64 KiB) still leave a readable log entry."""
    document = fresh("git.push")
    document[field] = value

    response = post_hook(api, hook.id, document, password=hook.secret)

    assert response.status_code == 202, response.text
    entry = get_delivery(api, hook.id, response.json()["deliveryId"])
    assert entry["eventType"] == "git.push"
    assert len(entry[{"id": "eventId"}.get(field, field)]) <= 1_000


def test_long_unhandled_event_type(api: Api, hook: Hook) -> None:
    document = fresh("git.push")
    document["eventType"] = "x" * 40_000

    response = post_hook(api, hook.id, document, password=hook.secret)

    assert response.status_code == 200, response.text
    assert get_delivery(api, hook.id, response.json()["deliveryId"])["outcome"] == "ignored"


def test_surrogate_event_type(api: Api, hook: Hook) -> None:
    document = fresh("git.push")
    document["eventType"] = "build.\ud800"

    response = post_hook(api, hook.id, document, password=hook.secret)

    assert response.status_code == 400, response.text
    assert error_of(response)["field"] == "eventType"


@pytest.mark.parametrize("raw", [b"[]", b"null", b"42", b'"text"'])
def test_body_not_an_object(api: Api, hook: Hook, raw: bytes) -> None:
    response = post_hook(api, hook.id, raw, password=hook.secret)

    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "invalid_payload"


def test_utf8_bom_accepted(api: Api, hook: Hook) -> None:
    raw = b"\xef\xbb\xbf" + json.dumps(fresh("git.push")).encode()

    response = post_hook(api, hook.id, raw, password=hook.secret)

    assert response.status_code == 202, response.text


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods(api: Api, hook: Hook, method: str) -> None:
    response = api.call(method, f"/api/webhooks/azure-devops/{hook.id}", headers=basic_auth(hook.secret))

    assert response.status_code in (404, 405), response.text


# --- what is stored ---------------------------------------------------------------------------


def test_stored_without_authorization(api: Api, hook: Hook, app_stack: LocalStack) -> None:
    raw = load_payload("git.push").replace(b"e1e1e1e1-1111-4111-8111-000000000001", str(uuid.uuid4()).encode())

    response = post_hook(api, hook.id, raw, password=hook.secret, user="hook-user")

    assert response.status_code == 202, response.text
    assert app_stack.azurite is not None
    with TableClient.from_connection_string(app_stack.azurite.connection_string, DELIVERIES_TABLE) as table:
        entity = table.get_entity(hook.id, f"d-{response.json()['deliveryId']}")
    chunks = b"".join(bytes(entity[f"body{index}"]) for index in range(int(entity["bodyChunks"])))
    assert gzip.decompress(chunks) == raw
    stored_text = repr(dict(entity))
    assert hook.secret not in stored_text
    assert basic_auth(hook.secret, "hook-user")["Authorization"].split()[1] not in stored_text
    assert "hook-user" not in stored_text


def test_body_retention_bounded(api: Api, hook: Hook) -> None:
    response = post_hook(api, hook.id, fresh("git.push"), password=hook.secret)

    entry = get_delivery(api, hook.id, response.json()["deliveryId"])
    received = entry["receivedAt"]
    expires = entry["bodyExpiresAt"]

    assert expires is not None
    hours = (_parse(expires) - _parse(received)).total_seconds() / 3600
    assert hours == pytest.approx(168, abs=0.01)


def _parse(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value)


# --- outages ----------------------------------------------------------------------------------


def test_queue_outage_answers_503(api: Api, hook: Hook, app_stack: LocalStack) -> None:
    """With Queue Storage down, nothing is recorded as accepted, so the redelivery is accepted later."""
    assert app_stack.azurite is not None
    closed_port = free_port()
    environ = dict(app_stack.settings())
    environ["AzureWebJobsStorage"] = re.sub(r"QueueEndpoint=http://127\.0\.0\.1:\d+/",
                                            f"QueueEndpoint=http://127.0.0.1:{closed_port}/",
                                            app_stack.azurite.connection_string)
    assert f":{closed_port}/" in environ["AzureWebJobsStorage"]
    services = Services(Settings.from_environ(environ))
    document = fresh("git.push")
    raw = json.dumps(document).encode()
    headers = {**basic_auth(hook.secret), "Content-Type": "application/json"}

    with pytest.raises(DependencyUnavailable) as raised:
        services.ingestion.accept(hook.id, headers, raw)

    assert "Queue Storage" in str(raised.value)
    assert entries_for_event(api, hook.id, document["id"]) == []
    redelivery = post_hook(api, hook.id, raw, password=hook.secret)
    assert redelivery.status_code == 202, redelivery.text
    assert redelivery.json()["status"] == "queued"
