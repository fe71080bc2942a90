"""`/api/integrations` end to end through the local host: names and endpoints, URL and field rules,
secrets, rotation, PATCH and ETags, connection tests, the default slot and malformed requests.

Who may do what is tested in test_access_matrix.py. The last test of this module checks that no
secret the service stored reached the host log, so keep it last.
"""

from __future__ import annotations

import string
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from devhost.fake_ado import FakeAzureDevOps
from devhost.fake_ado.sample import ALEX, BLAIR
from devhost.keyvault import LocalKeyVault
from devhost.stack import LocalStack, free_port
from shared.storage.names import INTEGRATIONS_TABLE, pat_secret_name, webhook_secret_name
from tests.api_helpers import (
    create_space,
    current_default,
    delete_integration,
    delete_space,
    error_of,
    unique,
    wait_for_connection_test,
)
from tests.fixtures.app_host import Api, principal_headers

SECOND_PAT = "second-pat-9876543210zyxwvutsrqponmlkjihgfedcba"


@pytest.fixture
def fake(app_stack: LocalStack) -> Iterator[FakeAzureDevOps]:
    """The stack's fake Azure DevOps server, with injected failures and recorded requests cleared."""
    assert app_stack.fake_ado is not None
    app_stack.fake_ado.clear()
    yield app_stack.fake_ado
    app_stack.fake_ado.clear()


@pytest.fixture
def vault(app_stack: LocalStack) -> LocalKeyVault:
    assert app_stack.key_vault is not None
    return app_stack.key_vault


@pytest.fixture
def created(api: Api) -> Iterator[list[str]]:
    """Integration ids the test appends are deleted afterwards."""
    ids: list[str] = []
    yield ids
    for integration_id in ids:
        delete_integration(api, integration_id)


@pytest.fixture
def integration(api: Api, created: list[str]) -> dict[str, Any]:
    """A new integration in the root space whose queued connection test has finished.

    Waiting for the queued test keeps the ETag stable, because the test writes its result.
    """
    response = api.create_integration(unique("Fixture"))
    assert response.status_code == 201, response.text
    created.append(response.json()["id"])
    return wait_for_connection_test(api, response.json()["id"])


@pytest.fixture
def tfs_integration(api: Api, fake: FakeAzureDevOps, created: list[str]) -> dict[str, Any]:
    """An integration addressed as `/tfs/<collection>`, which no other test uses, so failures injected
    for that path reach only this integration's connection tests."""
    response = api.create_integration(unique("Tested"), organizationUrl=_tfs_url(fake))
    assert response.status_code == 201, response.text
    created.append(response.json()["id"])
    return wait_for_connection_test(api, response.json()["id"])


@pytest.fixture
def default_slot(api: Api) -> Iterator[None]:
    """Fail when a default integration exists already; the test deletes the one it creates."""
    existing = current_default(api)
    if existing is not None:
        pytest.fail(f"default integration {existing!r} was left behind by another test; it must be deleted")
    yield
    left = current_default(api)
    if left is not None:
        delete_integration(api, left)


def _tfs_url(fake: FakeAzureDevOps) -> str:
    return f"{fake.server_url}/tfs/{fake.collection}"


def _tfs_connection_data(fake: FakeAzureDevOps) -> str:
    return f"/tfs/{fake.collection}/_apis/connectionData"


def _secret_value(vault: LocalKeyVault, name: str) -> str:
    return vault.state.secrets[name].latest.value


def _table_entity(app_stack: LocalStack, integration_id: str) -> dict[str, Any]:
    assert app_stack.azurite is not None
    with TableClient.from_connection_string(app_stack.azurite.connection_string, INTEGRATIONS_TABLE) as table:
        return dict(table.get_entity("integration", integration_id))


# Creating: names, ids and endpoints

def test_create_returns_details(api: Api, fake: FakeAzureDevOps, created: list[str]) -> None:
    name = unique("Create")

    response = api.create_integration(name, labels=["infra"], description="Builds the stacks.")
    body = response.json()
    created.append(body["id"])

    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/integrations/{body['id']}"
    assert response.headers["ETag"] == body["etag"]
    assert body["name"] == name
    assert body["isDefault"] is False
    assert body["spaceId"] == "root"
    assert body["organizationUrl"] == fake.base_url
    assert body["userFacingHostUrl"] == body["organizationUrl"]
    assert body["labels"] == ["infra"]
    assert body["description"] == "Builds the stacks."
    assert "personalAccessToken" not in body
    assert api.stack.sample_pat not in response.text


def test_id_and_endpoint_from_name(api: Api, created: list[str]) -> None:
    suffix = unique("x").removeprefix("x-")

    response = api.create_integration(f"  Prod  ADO {suffix} ")
    body = response.json()
    created.append(body["id"])

    assert response.status_code == 201
    assert body["id"] == f"prod-ado-{suffix}"
    assert body["name"] == f"Prod  ADO {suffix}"
    assert body["webhookEndpoint"] == f"{api.stack.base_url}/api/webhooks/azure-devops/prod-ado-{suffix}"


@pytest.mark.parametrize("variant", ["prod_ado {}", "PROD-ADO {}", "prod.ado  {}", "Prød ADO {}"])
def test_normalised_name_collision(api: Api, created: list[str], variant: str) -> None:
    suffix = unique("x").removeprefix("x-")
    first = api.create_integration(f"Prod ADO {suffix}")
    created.append(first.json()["id"])

    response = api.create_integration(variant.format(suffix))

    assert first.status_code == 201
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "name_taken"
    assert error["field"] == "name"
    assert first.json()["id"] in error["message"]


def test_recreate_same_endpoint_new_secret(api: Api, vault: LocalKeyVault, created: list[str]) -> None:
    name = unique("Recreate")
    first = api.create_integration(name).json()
    assert api.as_admin("DELETE", f"/api/integrations/{first['id']}").status_code == 204

    second = api.create_integration(name)
    created.append(second.json()["id"])

    assert second.status_code == 201
    assert second.json()["id"] == first["id"]
    assert second.json()["webhookEndpoint"] == first["webhookEndpoint"]
    assert second.json()["webhookSecret"] != first["webhookSecret"]
    assert _secret_value(vault, webhook_secret_name(first["id"])) == second.json()["webhookSecret"]


def test_webhook_secret_format(api: Api, app_stack: LocalStack, vault: LocalKeyVault,
                               integration: dict[str, Any]) -> None:
    secret = integration["webhookSecret"]
    allowed = set(string.printable) - set(string.whitespace)

    assert 43 <= len(secret) <= 256  # 32 random bytes are at least 43 base64 characters
    assert set(secret) <= allowed
    assert _secret_value(vault, webhook_secret_name(integration["id"])) == secret


def test_secrets_not_in_table(api: Api, app_stack: LocalStack, integration: dict[str, Any]) -> None:
    entity = _table_entity(app_stack, integration["id"])
    stored = " ".join(str(value) for value in entity.values())

    assert integration["webhookSecret"] not in stored
    assert api.stack.sample_pat not in stored


def test_pat_stored_in_key_vault(api: Api, vault: LocalKeyVault, integration: dict[str, Any]) -> None:
    assert _secret_value(vault, pat_secret_name(integration["id"])) == api.stack.sample_pat


# Creating: field rules

@pytest.mark.parametrize(("given", "stored"), [
    ("{server}/{collection}/", "{server}/{collection}"),
    ("HTTPS://127.0.0.1:{port}/tfs/{collection}", "https://127.0.0.1:{port}/tfs/{collection}"),
    ("{server}//{collection}", "{server}/{collection}"),
], ids=["trailing-slash", "upper-case-scheme-tfs", "double-slash"])
def test_organization_url_accepted(api: Api, fake: FakeAzureDevOps, created: list[str], given: str,
                                   stored: str) -> None:
    values = {"server": fake.server_url, "port": fake.port, "collection": fake.collection}

    response = api.create_integration(unique("Url"), organizationUrl=given.format(**values))
    if response.status_code == 201:
        created.append(response.json()["id"])

    assert response.status_code == 201, response.text
    assert response.json()["organizationUrl"] == stored.format(**values)


@pytest.mark.parametrize(("given", "reason"), [
    ("http://127.0.0.1:{port}/{collection}", "https"),
    ("https://someone:hunter2-token@127.0.0.1:{port}/{collection}", "user info"),
    ("https://127.0.0.1:{port}/{collection}?api-version=7.1", "query"),
    ("https://127.0.0.1:{port}/{collection}#projects", "fragment"),
    ("https://dev.azure.com/fabrikam/Widgets/_git/widget-service", "extra path segments"),
    ("https://dev.azure.com", "organization name is missing"),
    ("ftp://127.0.0.1/{collection}", "not an https URL"),
    ("", "empty"),
], ids=["http", "user-info", "query", "fragment", "repository-url", "no-organization", "ftp", "empty"])
def test_organization_url_rejected(api: Api, fake: FakeAzureDevOps, given: str, reason: str) -> None:
    response = api.create_integration(unique("Url"), organizationUrl=given.format(port=fake.port,
                                                                                  collection=fake.collection))

    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "organizationUrl"
    assert reason in error["message"]
    assert "hunter2-token" not in response.text


def test_host_url_defaults_to_organization(api: Api, integration: dict[str, Any]) -> None:
    assert integration["userFacingHostUrl"] == integration["organizationUrl"]


@pytest.mark.parametrize(("given", "stored"), [
    ("private://vcs-pool_1/ado/Collection/", "private://vcs-pool_1/ado/Collection"),
    ("https://ADO.example.com:443/tfs/Collection/", "https://ado.example.com/tfs/Collection"),
], ids=["private", "https"])
def test_host_url_accepted(api: Api, created: list[str], given: str, stored: str) -> None:
    response = api.create_integration(unique("Host"), userFacingHostUrl=given)
    if response.status_code == 201:
        created.append(response.json()["id"])

    assert response.status_code == 201, response.text
    assert response.json()["userFacingHostUrl"] == stored


@pytest.mark.parametrize("given", ["http://ado.example.com/tfs/Collection", "private://bad pool/path",
                                   "https://ado.example.com/tfs?x=1"], ids=["http", "bad-pool", "query"])
def test_host_url_rejected(api: Api, given: str) -> None:
    response = api.create_integration(unique("Host"), userFacingHostUrl=given)

    assert response.status_code == 422
    assert error_of(response)["field"] == "userFacingHostUrl"


def test_host_url_user_info_not_echoed(api: Api) -> None:
    response = api.create_integration(unique("Host"), userFacingHostUrl="private://me:pool-token-123@pool/path")

    assert response.status_code == 422
    assert "pool-token-123" not in response.text


def test_labels_trimmed_and_deduplicated(api: Api, created: list[str]) -> None:
    response = api.create_integration(unique("Labels"), labels=["  infra ", "Infra", "", "prod", "prod  "])
    created.append(response.json()["id"])

    assert response.status_code == 201
    assert response.json()["labels"] == ["infra", "prod"]


@pytest.mark.parametrize("labels", [[f"label-{n}" for n in range(21)], ["x" * 65], "infra", [1]],
                         ids=["too-many", "too-long", "not-a-list", "not-a-string"])
def test_labels_rejected(api: Api, labels: Any) -> None:
    response = api.create_integration(unique("Labels"), labels=labels)

    assert response.status_code == 422
    assert error_of(response)["field"].startswith("labels")


def test_description_returned_as_written(api: Api, created: list[str]) -> None:
    text = "  # Runbook\n\n* Ask **#platform** first.  \n\t<details>\n"

    response = api.create_integration(unique("Description"), description=text)
    created.append(response.json()["id"])

    assert response.status_code == 201
    assert response.json()["description"] == text
    assert api.details(response.json()["id"])["description"] == text


def test_description_too_long(api: Api) -> None:
    response = api.create_integration(unique("Description"), description="x" * 4001)

    assert response.status_code == 422
    assert error_of(response)["field"] == "description"


@pytest.mark.parametrize("field", ["name", "organizationUrl", "personalAccessToken"])
def test_required_field_missing(api: Api, fake: FakeAzureDevOps, field: str) -> None:
    body = {"name": unique("Missing"), "spaceId": "root", "organizationUrl": fake.base_url,
            "personalAccessToken": api.stack.sample_pat}
    del body[field]

    response = api.as_admin("POST", "/api/integrations", body)

    assert response.status_code == 422
    assert error_of(response)["field"] == field


@pytest.mark.parametrize("token", ["   ", "two words-pat"], ids=["blank", "whitespace"])
def test_pat_with_whitespace_rejected(api: Api, token: str) -> None:
    response = api.create_integration(unique("Pat"), personalAccessToken=token)

    assert response.status_code == 422
    assert error_of(response)["field"] == "personalAccessToken"
    assert "words-pat" not in response.text


@pytest.mark.parametrize("name", ["", "   ", "tab\there", "x" * 101], ids=["empty", "blank", "control", "long"])
def test_invalid_name_rejected(api: Api, name: str) -> None:
    response = api.create_integration(name)

    assert response.status_code == 422
    assert error_of(response)["field"] == "name"


def test_space_integration_needs_space(api: Api) -> None:
    response = api.create_integration(unique("Space"), space_id=None)

    assert response.status_code == 422
    assert error_of(response)["field"] == "spaceId"


def test_unknown_space_rejected(api: Api) -> None:
    response = api.create_integration(unique("Space"), space_id=unique("no-such-space"))

    assert response.status_code == 422
    assert error_of(response)["field"] == "spaceId"


def test_default_outside_root_rejected(api: Api) -> None:
    response = api.create_integration(unique("Default"), space_id="some-team", is_default=True)

    assert response.status_code == 422
    assert error_of(response)["field"] == "spaceId"


# The default slot

def test_concurrent_default_creates(app_stack: LocalStack, api: Api, default_slot: None) -> None:
    names = [unique(f"Default {n}") for n in range(10)]
    barrier = threading.Barrier(len(names))

    def create(name: str) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            return Api(app_stack, client).create_integration(name, space_id=None, is_default=True)

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        responses = list(pool.map(create, names))

    winners = [response for response in responses if response.status_code == 201]
    losers = [response for response in responses if response.status_code != 201]
    assert len(winners) == 1, [response.text for response in responses]
    winner = winners[0].json()["id"]
    assert [response.status_code for response in losers] == [409] * 9
    assert all(error_of(response)["code"] == "default_exists" for response in losers)
    assert all(winner in error_of(response)["message"] for response in losers)
    assert current_default(api) == winner


def test_default_recreated_after_delete(api: Api, default_slot: None) -> None:
    first = api.create_integration(unique("Default"), space_id=None, is_default=True)
    deleted = api.as_admin("DELETE", f"/api/integrations/{first.json()['id']}")

    second = api.create_integration(unique("Default"), space_id=None, is_default=True)

    assert first.status_code == 201
    assert deleted.status_code == 204
    assert second.status_code == 201, second.text
    assert second.json()["spaceId"] == "root"
    assert current_default(api) == second.json()["id"]


# Deleting

def test_delete_removes_everything(api: Api, vault: LocalKeyVault) -> None:
    integration_id = api.create_integration(unique("Delete")).json()["id"]

    response = api.as_admin("DELETE", f"/api/integrations/{integration_id}")

    assert response.status_code == 204
    assert api.as_admin("GET", f"/api/integrations/{integration_id}").status_code == 404
    listed = api.as_admin("GET", "/api/integrations").json()["integrations"]
    assert integration_id not in [entry["id"] for entry in listed]
    for name in (pat_secret_name(integration_id), webhook_secret_name(integration_id)):
        assert name in vault.state.deleted
        assert name not in vault.state.secrets
    assert api.as_admin("DELETE", f"/api/integrations/{integration_id}").status_code == 404


# Rotating the webhook secret

def test_rotate_without_grace(api: Api, vault: LocalKeyVault, integration: dict[str, Any]) -> None:
    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/rotate-secret", {})

    assert response.status_code == 200
    body = response.json()
    assert body["webhookSecret"] != integration["webhookSecret"]
    assert body["previousSecretValidUntil"] is None
    assert body["webhookEndpoint"] == integration["webhookEndpoint"]
    assert _secret_value(vault, webhook_secret_name(integration["id"])) == body["webhookSecret"]
    assert api.details(integration["id"])["webhookSecret"] == body["webhookSecret"]


def test_rotate_with_grace(api: Api, integration: dict[str, Any]) -> None:
    before = datetime.now(UTC)

    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/rotate-secret",
                            {"gracePeriodMinutes": 30})

    assert response.status_code == 200
    body = response.json()
    assert body["webhookSecret"] != integration["webhookSecret"]
    until = datetime.fromisoformat(body["previousSecretValidUntil"])
    assert before + timedelta(minutes=29) < until < datetime.now(UTC) + timedelta(minutes=31)
    assert api.details(integration["id"])["previousSecretValidUntil"] == body["previousSecretValidUntil"]


def test_rotate_again_ends_grace(api: Api, integration: dict[str, Any]) -> None:
    path = f"/api/integrations/{integration['id']}/rotate-secret"
    api.as_admin("POST", path, {"gracePeriodMinutes": 30})

    response = api.as_admin("POST", path, {"gracePeriodMinutes": 0})

    assert response.status_code == 200
    assert response.json()["previousSecretValidUntil"] is None


@pytest.mark.parametrize("minutes", [-1, 10081, "soon", 1.5], ids=["negative", "too-long", "text", "fraction"])
def test_rotate_invalid_grace(api: Api, integration: dict[str, Any], minutes: Any) -> None:
    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/rotate-secret",
                            {"gracePeriodMinutes": minutes})

    assert response.status_code == 422
    assert error_of(response)["field"] == "gracePeriodMinutes"
    assert api.details(integration["id"])["webhookSecret"] == integration["webhookSecret"]


# Changing: PATCH and ETags

@pytest.mark.parametrize(("change", "field"), [
    ({"name": "Another name"}, "name"),
    ({"isDefault": True}, "isDefault"),
    ({"spaceId": "some-other-space"}, "spaceId"),
], ids=["name", "is-default", "space"])
def test_patch_immutable_field(api: Api, integration: dict[str, Any], change: dict[str, Any], field: str) -> None:
    response = api.as_admin("PATCH", f"/api/integrations/{integration['id']}", change)

    assert response.status_code == 422
    assert error_of(response)["field"] == field
    assert api.details(integration["id"])["etag"] == integration["etag"]


def test_patch_same_name_accepted(api: Api, integration: dict[str, Any]) -> None:
    unchanged = {"name": integration["name"].upper(), "isDefault": False, "spaceId": "root"}

    response = api.as_admin("PATCH", f"/api/integrations/{integration['id']}", unchanged)

    assert response.status_code == 200, response.text
    assert response.json()["name"] == integration["name"]


def test_patch_labels_and_description(api: Api, integration: dict[str, Any]) -> None:
    change = {"labels": [" blue ", "BLUE", "green"], "description": "Moved to *blue*.\n"}

    response = api.as_admin("PATCH", f"/api/integrations/{integration['id']}", change)

    assert response.status_code == 200
    body = response.json()
    assert body["labels"] == ["blue", "green"]
    assert body["description"] == "Moved to *blue*.\n"
    assert body["webhookSecret"] == integration["webhookSecret"]
    assert body["organizationUrl"] == integration["organizationUrl"]
    assert body["updatedAt"] > integration["updatedAt"]


def test_patch_host_url(api: Api, integration: dict[str, Any]) -> None:
    path = f"/api/integrations/{integration['id']}"

    changed = api.as_admin("PATCH", path, {"userFacingHostUrl": "private://pool-a/ado"})
    rejected = api.as_admin("PATCH", path, {"userFacingHostUrl": "http://ado.example.com"})

    assert changed.status_code == 200
    assert changed.json()["userFacingHostUrl"] == "private://pool-a/ado"
    assert rejected.status_code == 422
    assert error_of(rejected)["field"] == "userFacingHostUrl"


def test_patch_organization_url_rejected(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any]) -> None:
    response = api.as_admin("PATCH", f"/api/integrations/{integration['id']}",
                            {"organizationUrl": f"http://127.0.0.1:{fake.port}/{fake.collection}"})

    assert response.status_code == 422
    assert error_of(response)["field"] == "organizationUrl"


def test_patch_pat_replaces_token(api: Api, fake: FakeAzureDevOps, vault: LocalKeyVault,
                                  integration: dict[str, Any]) -> None:
    fake.add_pat(SECOND_PAT, BLAIR)

    response = api.as_admin("PATCH", f"/api/integrations/{integration['id']}", {"personalAccessToken": SECOND_PAT})

    assert response.status_code == 200
    assert SECOND_PAT not in response.text
    assert "personalAccessToken" not in response.json()
    assert response.json()["connectionTest"] is None
    assert _secret_value(vault, pat_secret_name(integration["id"])) == SECOND_PAT


@pytest.mark.parametrize("token", ["", "  ", 42], ids=["empty", "blank", "number"])
def test_patch_invalid_pat(api: Api, vault: LocalKeyVault, integration: dict[str, Any], token: Any) -> None:
    response = api.as_admin("PATCH", f"/api/integrations/{integration['id']}", {"personalAccessToken": token})

    assert response.status_code == 422
    assert error_of(response)["field"] == "personalAccessToken"
    assert _secret_value(vault, pat_secret_name(integration["id"])) == api.stack.sample_pat


def test_get_returns_etag(api: Api, integration: dict[str, Any]) -> None:
    response = api.as_admin("GET", f"/api/integrations/{integration['id']}")

    assert response.status_code == 200
    assert response.headers["ETag"]
    assert response.headers["ETag"] == response.json()["etag"]


def test_patch_matching_etag(api: Api, integration: dict[str, Any]) -> None:
    response = api.as_admin("PATCH", f"/api/integrations/{integration['id']}", {"description": "fresh"},
                            headers={"If-Match": integration["etag"]})

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] != integration["etag"]


def test_patch_stale_etag(api: Api, integration: dict[str, Any]) -> None:
    path = f"/api/integrations/{integration['id']}"
    api.as_admin("PATCH", path, {"description": "first"})

    response = api.as_admin("PATCH", path, {"description": "second"}, headers={"If-Match": integration["etag"]})

    assert response.status_code == 412
    assert error_of(response)["code"] == "precondition_failed"
    assert api.details(integration["id"])["description"] == "first"


def test_patch_without_etag_wins(api: Api, integration: dict[str, Any]) -> None:
    path = f"/api/integrations/{integration['id']}"
    api.as_admin("PATCH", path, {"description": "first"})

    response = api.as_admin("PATCH", path, {"description": "second"})

    assert response.status_code == 200
    assert api.details(integration["id"])["description"] == "second"


def test_stale_etag_with_pat_keeps_token(api: Api, vault: LocalKeyVault, integration: dict[str, Any]) -> None:
    path = f"/api/integrations/{integration['id']}"
    api.as_admin("PATCH", path, {"description": "first"})

    response = api.as_admin("PATCH", path, {"personalAccessToken": SECOND_PAT},
                            headers={"If-Match": integration["etag"]})

    assert response.status_code == 412
    assert _secret_value(vault, pat_secret_name(integration["id"])) == api.stack.sample_pat


# Connection tests

def test_queued_test_after_create(api: Api, tfs_integration: dict[str, Any]) -> None:
    result = tfs_integration["connectionTest"]

    assert result["ok"] is True
    assert result["kind"] == "ok"
    assert result["identityId"] == ALEX.id
    assert tfs_integration["connectionStatus"] == "ok"


def test_queued_test_after_pat_update(api: Api, fake: FakeAzureDevOps, tfs_integration: dict[str, Any]) -> None:
    fake.add_pat(SECOND_PAT, BLAIR)
    api.as_admin("PATCH", f"/api/integrations/{tfs_integration['id']}", {"personalAccessToken": SECOND_PAT})

    details = wait_for_connection_test(api, tfs_integration["id"])

    assert details["connectionTest"]["ok"] is True
    assert details["connectionTest"]["identityId"] == BLAIR.id


def test_connection_test_ok(api: Api, fake: FakeAzureDevOps, tfs_integration: dict[str, Any]) -> None:
    response = api.as_admin("POST", f"/api/integrations/{tfs_integration['id']}/test")

    assert response.status_code == 200
    result = response.json()["connectionTest"]
    assert result["ok"] is True
    assert result["identityName"] == ALEX.display_name
    request = fake.last("GET", _tfs_connection_data(fake))
    assert request.header("Authorization") is not None


@pytest.mark.parametrize(("failure", "kind"), [
    ({"status": 401}, "invalid_credentials"),
    ({"status": 203}, "invalid_credentials"),
    ({"status": 302}, "invalid_credentials"),
    ({"status": 403}, "forbidden"),
    ({"status": 429, "count": 5, "retry_after": 0.1}, "throttled"),
], ids=["401", "203-sign-in-page", "302-sign-in-redirect", "403", "429"])
def test_connection_test_failure(api: Api, fake: FakeAzureDevOps, tfs_integration: dict[str, Any],
                                 failure: dict[str, Any], kind: str) -> None:
    fake.fail_next(path_contains=_tfs_connection_data(fake), **failure)

    response = api.as_admin("POST", f"/api/integrations/{tfs_integration['id']}/test")

    assert response.status_code == 200
    result = response.json()["connectionTest"]
    assert result["ok"] is False
    assert result["kind"] == kind
    assert tfs_integration["organizationUrl"] in result["message"]
    assert api.stack.sample_pat not in response.text
    stored = api.details(tfs_integration["id"])
    assert stored["connectionTest"]["kind"] == kind
    assert stored["connectionStatus"] == kind


def test_connection_test_throttled_retry_after(api: Api, fake: FakeAzureDevOps,
                                               tfs_integration: dict[str, Any]) -> None:
    fake.fail_next(5, status=429, retry_after=0.1, path_contains=_tfs_connection_data(fake))

    response = api.as_admin("POST", f"/api/integrations/{tfs_integration['id']}/test")

    assert response.json()["connectionTest"]["retryAfter"] == 0.1


def test_connection_test_unreachable(api: Api, fake: FakeAzureDevOps, tfs_integration: dict[str, Any]) -> None:
    closed = f"https://127.0.0.1:{free_port()}/{fake.collection}"
    path = f"/api/integrations/{tfs_integration['id']}"
    assert api.as_admin("PATCH", path, {"organizationUrl": closed}).status_code == 200

    response = api.as_admin("POST", f"{path}/test")

    assert response.status_code == 200
    result = response.json()["connectionTest"]
    assert result["ok"] is False
    assert result["kind"] == "unreachable"
    assert closed in result["message"]


def test_connection_status_listed(api: Api, fake: FakeAzureDevOps, tfs_integration: dict[str, Any]) -> None:
    fake.fail_next(status=403, path_contains=_tfs_connection_data(fake))
    api.as_admin("POST", f"/api/integrations/{tfs_integration['id']}/test")

    listed = api.as_admin("GET", "/api/integrations").json()["integrations"]

    entry = next(entry for entry in listed if entry["id"] == tfs_integration["id"])
    assert entry["connectionStatus"] == "forbidden"


def test_slow_test_keeps_patch(api: Api, fake: FakeAzureDevOps, created: list[str]) -> None:
    # Two throttled responses keep the queued test busy for about two seconds after it read the record.
    fake.fail_next(2, status=429, retry_after=1, path_contains=_tfs_connection_data(fake))
    response = api.create_integration(unique("Slow"), organizationUrl=_tfs_url(fake))
    integration_id = response.json()["id"]
    created.append(integration_id)
    _wait_for_request(fake, _tfs_connection_data(fake))

    patched = api.as_admin("PATCH", f"/api/integrations/{integration_id}", {"description": "patched meanwhile"})
    details = wait_for_connection_test(api, integration_id)

    assert patched.status_code == 200
    assert details["connectionTest"]["ok"] is True
    assert details["description"] == "patched meanwhile"


def _wait_for_request(fake: FakeAzureDevOps, path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not fake.find("GET", path):
        assert time.monotonic() < deadline, f"no request to {path} within {timeout} seconds"
        time.sleep(0.05)


# Malformed requests and missing identity

@pytest.mark.parametrize(("raw", "content_type", "status", "code"), [
    (b"{not json", "application/json", 400, "invalid_json"),
    (b"[1, 2]", "application/json", 400, "invalid_json"),
    (b"\xff\xfe\x00", "application/json", 400, "invalid_json"),
    (b"", "application/json", 422, "invalid"),
    (b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (b'{"name": 5, "organizationUrl": [], "personalAccessToken": {}}', "application/json", 422, "invalid"),
    (b'{"name": "x", "colour": "blue"}', "application/json", 422, "invalid"),
    (b'{"name": "x", "isDefault": "perhaps"}', "application/json", 422, "invalid"),
], ids=["broken", "array", "not-utf8", "empty", "form", "wrong-types", "unknown-field", "bool-text"])
def test_malformed_create(api: Api, raw: bytes, content_type: str, status: int, code: str) -> None:
    response = api.as_admin("POST", "/api/integrations", raw=raw, content_type=content_type)

    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_unknown_field_named(api: Api) -> None:
    response = api.create_integration(unique("Unknown"), colour="blue")

    assert response.status_code == 422

    assert error_of(response)["field"] == "colour"


@pytest.mark.parametrize(("method", "suffix", "raw", "status"), [
    ("PATCH", "", b"{oops", 400),
    ("PATCH", "", b'{"labels": "one"}', 422),
    ("PATCH", "", b'{"etag": "x"}', 422),
    ("POST", "/rotate-secret", b"[]", 400),
    ("POST", "/rotate-secret", b'{"grace": 5}', 422),
], ids=["patch-broken", "patch-wrong-type", "patch-unknown", "rotate-array", "rotate-unknown"])
def test_malformed_change(api: Api, integration: dict[str, Any], method: str, suffix: str, raw: bytes,
                          status: int) -> None:
    response = api.as_admin(method, f"/api/integrations/{integration['id']}{suffix}", raw=raw)

    assert response.status_code == status
    assert error_of(response)["code"] in ("invalid", "invalid_json")


@pytest.mark.parametrize(("method", "suffix"), [
    ("GET", ""), ("POST", ""), ("GET", "/{id}"), ("PATCH", "/{id}"), ("DELETE", "/{id}"),
    ("POST", "/{id}/rotate-secret"), ("POST", "/{id}/test"),
])
def test_missing_identity(api: Api, integration: dict[str, Any], method: str, suffix: str) -> None:
    path = "/api/integrations" + suffix.format(id=integration["id"])

    response = api.call(method, path, {})

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"
    assert integration["webhookSecret"] not in response.text


def test_hidden_space_like_missing(api: Api) -> None:
    hidden = unique("hidden")
    create_space(api, hidden)
    stranger = principal_headers(unique("stranger"))
    try:
        in_hidden = api.create_integration(unique("Probe"), space_id=hidden, headers=stranger)
        in_missing = api.create_integration(unique("Probe"), space_id=f"{hidden}-missing", headers=stranger)
    finally:
        delete_space(api, hidden)

    assert in_hidden.status_code == 404
    assert in_missing.status_code == 404
    assert error_of(in_missing)["message"] == error_of(in_hidden)["message"].replace(hidden, f"{hidden}-missing")


# Secrets in lists and in the log

def _stored_secrets(vault: LocalKeyVault) -> set[str]:
    """Return every value of every version of every secret the service stored, deleted ones included."""
    secrets: set[str] = set()
    for table in (vault.state.secrets, vault.state.deleted):
        for name, secret in list(table.items()):
            if name.startswith("integration-"):
                secrets.update(version.value for version in secret.versions)
    return secrets


def test_list_has_no_secret(api: Api, vault: LocalKeyVault, integration: dict[str, Any]) -> None:
    response = api.as_admin("GET", "/api/integrations")
    secrets = _stored_secrets(vault)

    assert response.status_code == 200
    assert integration["webhookSecret"] in secrets
    assert [secret for secret in secrets if secret in response.text] == []
    assert all("webhookSecret" not in entry for entry in response.json()["integrations"])


def test_host_log_has_no_secret(vault: LocalKeyVault, host_log: Path) -> None:
    secrets = _stored_secrets(vault) | {SECOND_PAT, "hunter2-token", "words-pat"}
    log = host_log.read_text(encoding="utf-8", errors="replace")

    assert "Created integration" in log
    assert [secret for secret in secrets if secret in log] == []
