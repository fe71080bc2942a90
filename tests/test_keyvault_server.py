"""The local Key Vault, driven through the real `SecretClient` and raw HTTPS requests."""

from __future__ import annotations

import http.client
import json
import ssl
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import SecretClient

from devhost.keyvault import CHALLENGE, LocalKeyVault
from devhost.tls import LocalCertificates
from shared.secrets import LOCAL_ACCESS_TOKEN
from tests.fixtures.keyvault import make_secret_client

API_VERSION = "2026-04-01"


class _OtherToken:
    """A credential whose token the session's vault does not accept."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("not-the-local-token", int(time.time()) + 3600)


def _raw_request(vault: LocalKeyVault, method: str, path: str, *, token: str | None = None,
                 body: dict[str, Any] | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(vault.ca_path))
    port = int(vault.url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), json.loads(data) if data else {}
    finally:
        connection.close()


def test_set_get_latest_and_version(secret_client: SecretClient, secret_name: str) -> None:
    first = secret_client.set_secret(secret_name, "value-one", content_type="text/plain", tags={"kind": "pat"})
    second = secret_client.set_secret(secret_name, "value-two")

    assert first.value == "value-one"
    assert first.properties.version is not None
    assert len(first.properties.version) == 32
    assert first.properties.version != second.properties.version
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"kind": "pat"}
    assert secret_client.get_secret(secret_name).value == "value-two"
    assert secret_client.get_secret(secret_name, first.properties.version).value == "value-one"


def test_get_unknown_version(secret_client: SecretClient, secret_name: str) -> None:
    secret_client.set_secret(secret_name, "value")

    with pytest.raises(ResourceNotFoundError) as raised:
        secret_client.get_secret(secret_name, "0" * 32)

    assert raised.value.error is not None
    assert raised.value.error.code == "SecretNotFound"


def test_list_versions(secret_client: SecretClient, secret_name: str) -> None:
    versions = [secret_client.set_secret(secret_name, f"value-{index}").properties.version for index in range(3)]

    listed = list(secret_client.list_properties_of_secret_versions(secret_name))

    assert [properties.version for properties in listed] == versions
    assert all(properties.enabled for properties in listed)
    assert all(properties.created_on is not None for properties in listed)


def test_list_secrets_paged(keyvault: LocalKeyVault, secret_client: SecretClient, secret_name: str) -> None:
    names = [f"{secret_name}-{index}" for index in range(5)]
    for name in names:
        secret_client.set_secret(name, "value")
    pages_before = keyvault.count("list_secrets", status=200)

    listed = [properties.name for properties in secret_client.list_properties_of_secrets(max_page_size=2)]

    assert set(names) <= set(listed)
    assert len(listed) == len(set(listed))
    assert keyvault.count("list_secrets", status=200) - pages_before >= 3


def test_update_disables_version(secret_client: SecretClient, secret_name: str) -> None:
    secret_client.set_secret(secret_name, "value")

    updated = secret_client.update_secret_properties(secret_name, enabled=False, tags={"state": "off"})

    assert updated.enabled is False
    assert updated.tags == {"state": "off"}
    with pytest.raises(HttpResponseError) as raised:
        secret_client.get_secret(secret_name)
    assert raised.value.status_code == 403
    assert raised.value.error is not None
    assert raised.value.error.innererror == {"code": "SecretDisabled"}


def test_delete_is_soft(secret_client: SecretClient, secret_name: str) -> None:
    secret_client.set_secret(secret_name, "value")

    deleted = secret_client.begin_delete_secret(secret_name).result()

    assert deleted.recovery_id is not None
    assert deleted.recovery_id.endswith(f"/deletedsecrets/{secret_name}")
    assert deleted.deleted_date is not None
    assert deleted.scheduled_purge_date is not None
    assert deleted.scheduled_purge_date > deleted.deleted_date
    assert secret_client.get_deleted_secret(secret_name).name == secret_name
    assert secret_name in [item.name for item in secret_client.list_deleted_secrets()]
    with pytest.raises(ResourceNotFoundError):
        secret_client.get_secret(secret_name)


def test_recover_deleted(secret_client: SecretClient, secret_name: str) -> None:
    secret_client.set_secret(secret_name, "value")
    secret_client.begin_delete_secret(secret_name).wait()

    poller = secret_client.begin_recover_deleted_secret(secret_name)
    poller.wait(timeout=10)

    assert poller.done()
    assert secret_client.get_secret(secret_name).value == "value"
    with pytest.raises(ResourceNotFoundError):
        secret_client.get_deleted_secret(secret_name)


def test_purge_deleted(secret_client: SecretClient, secret_name: str) -> None:
    secret_client.set_secret(secret_name, "value")
    secret_client.begin_delete_secret(secret_name).wait()

    secret_client.purge_deleted_secret(secret_name)

    with pytest.raises(ResourceNotFoundError):
        secret_client.get_deleted_secret(secret_name)
    assert secret_client.set_secret(secret_name, "reused").value == "reused"


def test_set_on_deleted_name_conflicts(secret_client: SecretClient, secret_name: str) -> None:
    secret_client.set_secret(secret_name, "value")
    secret_client.begin_delete_secret(secret_name).wait()

    with pytest.raises(ResourceExistsError) as raised:
        secret_client.set_secret(secret_name, "new value")

    assert raised.value.status_code == 409
    assert raised.value.error is not None
    assert raised.value.error.code == "Conflict"
    assert raised.value.error.innererror == {"code": "ObjectIsDeletedButRecoverable"}


def test_purge_protection_rejects_purge(local_ca: LocalCertificates) -> None:
    with LocalKeyVault(local_ca, purge_protection=True) as vault:
        client = make_secret_client(vault)
        client.set_secret("protected", "value")
        client.begin_delete_secret("protected").wait()

        with pytest.raises(HttpResponseError) as raised:
            client.purge_deleted_secret("protected")

        assert raised.value.status_code == 403
        assert client.get_deleted_secret("protected").properties.recovery_level == "Recoverable"
        client.close()


def test_request_without_token_gets_challenge(keyvault: LocalKeyVault) -> None:
    status, headers, body = _raw_request(keyvault, "GET", f"/secrets/anything?api-version={API_VERSION}")

    assert status == 401
    assert headers["WWW-Authenticate"] == CHALLENGE
    assert headers["WWW-Authenticate"].startswith('Bearer authorization="https://login.microsoftonline.com/')
    assert headers["WWW-Authenticate"].endswith('resource="https://vault.azure.net"')
    assert body["error"]["code"] == "Unauthorized"


def test_wrong_token_rejected(keyvault: LocalKeyVault, secret_name: str) -> None:
    client = make_secret_client(keyvault, _OtherToken())

    with pytest.raises(ClientAuthenticationError):
        client.get_secret(secret_name)

    assert keyvault.count("get_secret", secret_name, status=401) >= 1
    assert keyvault.count("get_secret", secret_name, status=200) == 0
    client.close()


def test_missing_api_version(keyvault: LocalKeyVault) -> None:
    status, _, body = _raw_request(keyvault, "GET", "/secrets", token=LOCAL_ACCESS_TOKEN)

    assert status == 400
    assert body["error"]["code"] == "BadParameter"
    assert "api-version" in body["error"]["message"]


@pytest.mark.parametrize("name", ["under_score", "a" * 128, "dot.name"])
def test_bad_name_rejected(keyvault: LocalKeyVault, name: str) -> None:
    status, _, body = _raw_request(keyvault, "PUT", f"/secrets/{name}?api-version={API_VERSION}",
                                   token=LOCAL_ACCESS_TOKEN, body={"value": "value"})

    assert status == 400
    assert body["error"]["code"] == "BadParameter"


def test_bad_name_through_sdk(secret_client: SecretClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        secret_client.set_secret("not_valid", "value")

    assert raised.value.status_code == 400


def test_missing_value_rejected(keyvault: LocalKeyVault, secret_name: str) -> None:
    status, _, body = _raw_request(keyvault, "PUT", f"/secrets/{secret_name}?api-version={API_VERSION}",
                                   token=LOCAL_ACCESS_TOKEN, body={"contentType": "text/plain"})

    assert status == 400
    assert "value" in body["error"]["message"]


def test_requests_recorded_without_values(keyvault: LocalKeyVault, secret_client: SecretClient,
                                          secret_name: str) -> None:
    secret_client.set_secret(secret_name, "recorded-value-7f3a")
    secret_client.get_secret(secret_name)

    assert keyvault.count("set_secret", secret_name, status=200) == 1
    assert keyvault.count("get_secret", secret_name, status=200) == 1
    assert "recorded-value-7f3a" not in repr(keyvault.requests)


def test_data_file_survives_restart(local_ca: LocalCertificates, tmp_path: Path) -> None:
    data_file = tmp_path / "keyvault.json"
    with LocalKeyVault(local_ca, data_file=data_file) as vault:
        client = make_secret_client(vault)
        version = client.set_secret("kept", "kept-value").properties.version
        client.set_secret("dropped", "value")
        client.begin_delete_secret("dropped").wait()
        client.close()

    assert stat.S_IMODE(data_file.stat().st_mode) == 0o600
    with LocalKeyVault(local_ca, data_file=data_file) as vault:
        client = make_secret_client(vault)
        assert client.get_secret("kept", version).value == "kept-value"
        assert client.get_deleted_secret("dropped").name == "dropped"
        client.close()
    assert not list(tmp_path.glob(".keyvault-*"))
