"""`SecretStore` over the real `SecretClient`, against the local Key Vault over TLS."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from devhost.keyvault import LocalKeyVault
from devhost.tls import LocalCertificates
from shared.errors import DependencyUnavailable, ValidationFailed
from shared.secrets import LOCAL_ACCESS_TOKEN, PING_SECRET_NAME, SecretStore
from shared.settings import Settings
from tests.fixtures.keyvault import make_secret_client


def _settings(vault: LocalKeyVault, *, cache_seconds: int = 60) -> Settings:
    return Settings(environment="local", public_base_url="http://127.0.0.1:7071",
                    storage_connection_string="UseDevelopmentStorage=true", key_vault_url=vault.url,
                    key_vault_ca_bundle=str(vault.ca_path), secret_cache_seconds=cache_seconds)


class _Clock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(keyvault: LocalKeyVault) -> Iterator[SecretStore]:
    secret_store = SecretStore.from_settings(_settings(keyvault))
    yield secret_store
    secret_store.close()


def test_set_then_get(store: SecretStore, secret_name: str) -> None:
    version = store.set(secret_name, "pat-value", content_type="text/plain", tags={"integration": "one"})

    assert len(version) == 32
    assert store.get(secret_name) == "pat-value"
    assert store.get(secret_name, version) == "pat-value"


def test_get_by_old_version(store: SecretStore, secret_name: str) -> None:
    first = store.set(secret_name, "first")
    store.set(secret_name, "second")

    assert store.get(secret_name) == "second"
    assert store.get(secret_name, first) == "first"


def test_get_missing_is_none(store: SecretStore, secret_name: str) -> None:
    assert store.get(secret_name) is None
    assert store.get_cached(secret_name) is None


def test_delete_then_get_is_none(store: SecretStore, secret_name: str) -> None:
    store.set(secret_name, "value")
    store.get_cached(secret_name)

    store.delete(secret_name)

    assert store.get(secret_name) is None
    assert store.get_cached(secret_name) is None


def test_delete_is_idempotent(keyvault: LocalKeyVault, store: SecretStore, secret_name: str) -> None:
    store.set(secret_name, "value")

    store.delete(secret_name)
    store.delete(secret_name)

    assert keyvault.count("delete_secret", secret_name, status=200) == 1
    assert keyvault.count("delete_secret", secret_name, status=404) == 1


def test_set_recovers_deleted_name(keyvault: LocalKeyVault, store: SecretStore, secret_name: str) -> None:
    old_version = store.set(secret_name, "old")
    store.delete(secret_name)

    new_version = store.set(secret_name, "new")

    assert store.get(secret_name) == "new"
    assert [info.version for info in store.list_versions(secret_name)] == [old_version, new_version]
    assert keyvault.count("set_secret", secret_name, status=409) == 1
    assert keyvault.count("recover_deleted_secret", secret_name, status=200) == 1


def test_list_versions(store: SecretStore, secret_name: str) -> None:
    versions = [store.set(secret_name, f"value-{index}") for index in range(3)]

    listed = store.list_versions(secret_name)

    assert [info.version for info in listed] == versions
    assert all(info.enabled for info in listed)
    assert all(info.created_on is not None for info in listed)


def test_list_versions_missing(store: SecretStore, secret_name: str) -> None:
    assert store.list_versions(secret_name) == []


def test_cache_avoids_second_read(keyvault: LocalKeyVault, store: SecretStore, secret_name: str) -> None:
    store.set(secret_name, "cached")
    store.invalidate(secret_name)

    assert store.get_cached(secret_name) == "cached"
    assert store.get_cached(secret_name) == "cached"
    assert keyvault.count("get_secret", secret_name) == 1

    assert store.get_cached(secret_name, refresh=True) == "cached"
    assert keyvault.count("get_secret", secret_name) == 2


def test_cache_invalidate(keyvault: LocalKeyVault, store: SecretStore, secret_name: str) -> None:
    store.set(secret_name, "value")
    store.get_cached(secret_name)
    reads = keyvault.count("get_secret", secret_name)

    store.invalidate(secret_name)
    store.get_cached(secret_name)

    assert keyvault.count("get_secret", secret_name) == reads + 1


def test_cache_expires(keyvault: LocalKeyVault, secret_name: str) -> None:
    clock = _Clock()
    store = SecretStore(make_secret_client(keyvault), cache_seconds=60, clock=clock)
    store.set(secret_name, "value")

    clock.now += 59
    store.get_cached(secret_name)
    reads_before_expiry = keyvault.count("get_secret", secret_name)
    clock.now += 2
    store.get_cached(secret_name)

    assert reads_before_expiry == 0
    assert keyvault.count("get_secret", secret_name) == 1
    store.close()


def test_cache_sees_own_set(keyvault: LocalKeyVault, store: SecretStore, secret_name: str) -> None:
    store.set(secret_name, "first")
    store.get_cached(secret_name)

    store.set(secret_name, "second")

    assert store.get_cached(secret_name) == "second"
    assert keyvault.count("get_secret", secret_name) == 0


def test_cache_disabled_with_zero(keyvault: LocalKeyVault, secret_name: str) -> None:
    store = SecretStore.from_settings(_settings(keyvault, cache_seconds=0))
    store.set(secret_name, "value")

    store.get_cached(secret_name)
    store.get_cached(secret_name)

    assert keyvault.count("get_secret", secret_name) == 2
    store.close()


def test_concurrent_cached_reads(store: SecretStore, secret_name: str) -> None:
    store.set(secret_name, "shared")
    store.invalidate(secret_name)
    results: list[str | None] = []
    lock = threading.Lock()

    def read() -> None:
        value = store.get_cached(secret_name)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert results == ["shared"] * 8


def test_ping(keyvault: LocalKeyVault, store: SecretStore) -> None:
    probes_before = keyvault.count("get_secret", PING_SECRET_NAME, status=404)

    store.ping()

    assert keyvault.count("get_secret", PING_SECRET_NAME, status=404) == probes_before + 1


def test_bad_name_rejected(store: SecretStore) -> None:
    with pytest.raises(ValidationFailed) as raised:
        store.set("not_valid", "value")

    assert "not_valid" in raised.value.message
    assert raised.value.field == "name"


def test_stopped_vault_unavailable(local_ca: LocalCertificates, secret_name: str) -> None:
    vault = LocalKeyVault(local_ca, token=LOCAL_ACCESS_TOKEN).start()
    store = SecretStore.from_settings(_settings(vault))
    store.set(secret_name, "very-secret-value")
    vault.stop()

    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as raised:
        store.get(secret_name)
    elapsed = time.monotonic() - started

    assert raised.value.dependency == "Key Vault"
    assert secret_name in str(raised.value)
    assert "very-secret-value" not in str(raised.value)
    assert raised.value.__cause__ is not None
    assert elapsed < 10
    with pytest.raises(DependencyUnavailable):
        store.ping()
    store.close()


def test_wrong_token_unavailable(local_ca: LocalCertificates, secret_name: str) -> None:
    with LocalKeyVault(local_ca, token="a-different-token") as vault:
        store = SecretStore.from_settings(_settings(vault))

        with pytest.raises(DependencyUnavailable) as raised:
            store.set(secret_name, "very-secret-value")

        assert "authentication failed" in str(raised.value)
        assert "very-secret-value" not in str(raised.value)
        assert LOCAL_ACCESS_TOKEN not in str(raised.value)
        store.close()


def test_server_error_unavailable(local_ca: LocalCertificates, secret_name: str) -> None:
    with LocalKeyVault(local_ca, token=LOCAL_ACCESS_TOKEN) as vault:
        store = SecretStore.from_settings(_settings(vault))
        store.set(secret_name, "very-secret-value")
        vault.fail_with(503)

        with pytest.raises(DependencyUnavailable) as raised:
            store.get(secret_name)

        assert "HTTP 503" in str(raised.value)
        assert "very-secret-value" not in str(raised.value)
        # One request and two retries (retry_total=2 in CLIENT_OPTIONS).
        assert vault.count("get_secret", secret_name, status=503) == 3
        vault.fail_with(None)
        assert store.get(secret_name) == "very-secret-value"
        store.close()


def test_cache_skips_stale_read(keyvault: LocalKeyVault, store: SecretStore, secret_name: str) -> None:
    store.set(secret_name, "old")
    store.invalidate(secret_name)
    original_get = store.get

    def get_then_change(name: str, version: str | None = None) -> str | None:
        value = original_get(name, version)
        store.set(name, "new")  # A write that lands while the read is in flight.
        return value

    store.get = get_then_change  # type: ignore[method-assign]
    assert store.get_cached(secret_name) == "old"
    store.get = original_get  # type: ignore[method-assign]

    assert store.get_cached(secret_name) == "new"
    assert keyvault.count("get_secret", secret_name) == 1
