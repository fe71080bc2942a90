"""The app's secret store: personal access tokens and webhook secrets in Key Vault.

`SecretStore` wraps the real `azure.keyvault.secrets.SecretClient`, in Azure and locally alike.
Only the client options differ. In Azure the client authenticates with `DefaultAzureCredential`.
In local mode it sends a fixed token to the local Key Vault (`devhost.keyvault`) and trusts that
server's private CA certificate.

Failures of Key Vault itself (connection refused, timeout, 5xx, authentication or authorization
failure) raise `DependencyUnavailable`. Messages name the secret but never contain its value.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

from shared.errors import DependencyUnavailable, ValidationFailed
from shared.settings import Settings

logger = logging.getLogger(__name__)

DEPENDENCY = "Key Vault"
SECRET_NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
# The fixed token of the local Key Vault. It grants nothing anywhere else.
LOCAL_ACCESS_TOKEN = "stackhook-local-key-vault-token"  # noqa: S105
PING_SECRET_NAME = "stackhook-ping"  # noqa: S105 - a name, not a value

# Short timeouts and few retries, so that an outage surfaces as a 503 within seconds.
CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 3,
    "read_timeout": 5,
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 1,
}
# Recovery of a deleted secret can take several seconds in Azure. The local Key Vault recovers at once.
RECOVERY_TIMEOUT_SECONDS = 30.0
RECOVERY_POLL_SECONDS = 1.0
# Inner error codes of a 409 on set that a wait or a recovery resolves.
DELETED_BUT_RECOVERABLE = "ObjectIsDeletedButRecoverable"
TRANSIENT_CONFLICTS = frozenset({"ObjectIsBeingRecovered", "ObjectIsBeingDeleted"})


@dataclass(frozen=True)
class SecretVersionInfo:
    """Metadata of one secret version, without its value."""

    version: str
    created_on: datetime.datetime | None
    enabled: bool


def validate_secret_name(name: str) -> str:
    """Return `name` if Key Vault accepts it as a secret name, or raise `ValidationFailed`."""
    if not SECRET_NAME_PATTERN.match(name):
        raise ValidationFailed(
            f"Secret name {name!r} is invalid: Key Vault accepts 1 to 127 letters, digits and dashes.",
            field="name")
    return name


class LocalKeyVaultCredential:
    """A credential that returns a fixed token, accepted by the local Key Vault only."""

    def __init__(self, token: str = LOCAL_ACCESS_TOKEN) -> None:
        self._token = token

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


def _inner_error_code(error: HttpResponseError) -> str | None:
    details = error.error
    if details is None or not details.innererror:
        return None
    code = details.innererror.get("code")
    return code if isinstance(code, str) else None


def _describe(error: AzureError, vault_url: str) -> str:
    """Say why a Key Vault call failed and what to check, without the request or response body."""
    if isinstance(error, ServiceRequestError):
        return (f"the request to {vault_url} could not be sent ({type(error).__name__}). "
                "Check that the vault URL is reachable")
    if isinstance(error, ServiceResponseError):
        return f"no complete response arrived ({type(error).__name__}, for example a timeout). Retry later"
    if isinstance(error, ClientAuthenticationError):
        return ("authentication failed. Check the app's managed identity (in Azure) or that the local "
                "Key Vault accepts the local token")
    if isinstance(error, HttpResponseError):
        code = error.error.code if error.error is not None else None
        if error.status_code == 403:
            return (f"access was denied (HTTP 403, code {code}). Grant the app's identity the "
                    "Key Vault Secrets Officer role on the vault")
        return f"the vault returned HTTP {error.status_code} (code {code}). Retry later"
    return f"the call failed ({type(error).__name__}). Retry later"


def _dependency_error(action: str, name: str, error: AzureError, vault_url: str) -> DependencyUnavailable:
    return DependencyUnavailable(DEPENDENCY, f"{action} secret {name!r} failed: {_describe(error, vault_url)}.")


class SecretStore:
    """Store of stackhook's secrets over a `SecretClient`, safe to share between threads."""

    def __init__(self, client: SecretClient, *, cache_seconds: float = 60,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._sleep = sleep
        self._cache: dict[str, tuple[str, float]] = {}
        # Incremented by set, delete and invalidate, so that a read that started earlier cannot cache an old value.
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretStore:
        """Build the store for Azure (`DefaultAzureCredential`) or for the local Key Vault."""
        options = dict(CLIENT_OPTIONS)
        credential: TokenCredential
        if settings.is_local:
            credential = LocalKeyVaultCredential()
            # The local vault's challenge names https://vault.azure.net, which does not match 127.0.0.1.
            options["verify_challenge_resource"] = False
            if settings.key_vault_ca_bundle:
                options["connection_verify"] = settings.key_vault_ca_bundle
        else:
            credential = DefaultAzureCredential()
        client = SecretClient(settings.key_vault_url, credential, **options)
        return cls(client, cache_seconds=settings.secret_cache_seconds)

    def close(self) -> None:
        self._client.close()

    # Reads

    def get(self, name: str, version: str | None = None) -> str | None:
        """Read a secret's value (latest or one version), or None when it is missing, deleted or disabled."""
        validate_secret_name(name)
        try:
            secret = self._client.get_secret(name, version)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            if error.status_code == 403 and _inner_error_code(error) == "SecretDisabled":
                logger.info("Secret %s (version %s) is disabled, so it is treated as missing",
                            name, version or "latest")
                return None
            raise self._unavailable("Reading", name, error) from error
        except AzureError as error:
            raise self._unavailable("Reading", name, error) from error
        return secret.value

    def get_cached(self, name: str, *, refresh: bool = False) -> str | None:
        """Read the latest value through a cache kept for `cache_seconds`. `refresh` forces a read."""
        with self._lock:
            entry = self._cache.get(name)
            generation = self._generations.get(name, 0)
        if not refresh and entry is not None and entry[1] > self._clock():
            logger.debug("Secret %s read from the cache", name)
            return entry[0]
        value = self.get(name)
        self._remember(name, value, generation)
        return value

    def invalidate(self, name: str) -> None:
        """Drop a secret from the cache, so the next `get_cached` reads Key Vault."""
        with self._lock:
            self._cache.pop(name, None)
            self._generations[name] = self._generations.get(name, 0) + 1

    def list_versions(self, name: str) -> list[SecretVersionInfo]:
        """List a secret's versions, oldest first, or an empty list when the secret does not exist."""
        validate_secret_name(name)
        try:
            versions = [SecretVersionInfo(version=properties.version or "", created_on=properties.created_on,
                                          enabled=bool(properties.enabled))
                        for properties in self._client.list_properties_of_secret_versions(name)]
        except ResourceNotFoundError:
            return []
        except AzureError as error:
            raise self._unavailable("Listing versions of", name, error) from error
        minimum = datetime.datetime.min.replace(tzinfo=datetime.UTC)
        return sorted(versions, key=lambda info: info.created_on or minimum)

    def ping(self) -> None:
        """Make one cheap authenticated call and raise `DependencyUnavailable` if it fails."""
        try:
            self._client.get_secret(PING_SECRET_NAME)
        except ResourceNotFoundError:
            return
        except AzureError as error:
            raise self._unavailable("Reading the health probe", PING_SECRET_NAME, error) from error

    # Writes

    def set(self, name: str, value: str, *, content_type: str | None = None,
            tags: dict[str, str] | None = None) -> str:
        """Store a new version of a secret and return its version id.

        A name that is deleted but recoverable is recovered first, and the recovered secret then
        gets the new version. Recovery is used because purge protection in Azure rejects a purge.
        """
        validate_secret_name(name)
        deadline = self._clock() + RECOVERY_TIMEOUT_SECONDS
        while True:
            try:
                secret = self._client.set_secret(name, value, content_type=content_type, tags=tags)
                break
            except ResourceExistsError as error:
                inner_code = _inner_error_code(error)
                if inner_code != DELETED_BUT_RECOVERABLE and inner_code not in TRANSIENT_CONFLICTS:
                    raise self._unavailable("Setting", name, error) from error
                if self._clock() >= deadline:
                    raise DependencyUnavailable(
                        DEPENDENCY, f"Setting secret {name!r} failed: it stayed in state {inner_code} for "
                        f"{RECOVERY_TIMEOUT_SECONDS:.0f} seconds. Retry later.") from error
                if inner_code == DELETED_BUT_RECOVERABLE:
                    self._recover(name, deadline)
                else:
                    logger.info("Secret %s is in state %s, retrying the set", name, inner_code)
                    self._sleep(RECOVERY_POLL_SECONDS)
            except AzureError as error:
                raise self._unavailable("Setting", name, error) from error
        version = secret.properties.version or ""
        self._replace(name, value)
        logger.info("Set secret %s, new version %s", name, version)
        return version

    def _recover(self, name: str, deadline: float) -> None:
        """Recover a soft-deleted secret and wait until it can be read again."""
        logger.warning("Secret %s is deleted but recoverable, recovering it before setting a new version", name)
        try:
            self._client.begin_recover_deleted_secret(name)
        except ResourceNotFoundError:
            # Another caller recovered it already, or the deletion has not finished yet. Retry the set.
            self._sleep(RECOVERY_POLL_SECONDS)
            return
        except AzureError as error:
            raise self._unavailable("Recovering", name, error) from error
        while True:
            try:
                self._client.get_secret(name)
                return
            except ResourceNotFoundError as error:
                if self._clock() >= deadline:
                    raise DependencyUnavailable(
                        DEPENDENCY, f"Recovering secret {name!r} did not finish within "
                        f"{RECOVERY_TIMEOUT_SECONDS:.0f} seconds. Retry later.") from error
                self._sleep(RECOVERY_POLL_SECONDS)
            except HttpResponseError as error:
                if error.status_code == 403 and _inner_error_code(error) == "SecretDisabled":
                    return
                raise self._unavailable("Recovering", name, error) from error
            except AzureError as error:
                raise self._unavailable("Recovering", name, error) from error

    def delete(self, name: str) -> None:
        """Soft-delete a secret and drop it from the cache. Deleting a missing secret does nothing."""
        validate_secret_name(name)
        self.invalidate(name)
        try:
            # The poller is not awaited, because the secret is unreadable as soon as the call returns.
            self._client.begin_delete_secret(name)
        except ResourceNotFoundError:
            logger.info("Secret %s was already missing or deleted", name)
        except AzureError as error:
            raise self._unavailable("Deleting", name, error) from error
        else:
            logger.info("Deleted secret %s (soft delete)", name)
        self.invalidate(name)

    # Helpers

    def _unavailable(self, action: str, name: str, error: AzureError) -> DependencyUnavailable:
        return _dependency_error(action, name, error, self._client.vault_url)

    def _replace(self, name: str, value: str) -> None:
        """Cache a value this store has just written, so that an earlier read cannot overwrite it."""
        with self._lock:
            generation = self._generations.get(name, 0) + 1
            self._generations[name] = generation
            if self._cache_seconds > 0:
                self._cache[name] = (value, self._clock() + self._cache_seconds)

    def _remember(self, name: str, value: str | None, generation: int) -> None:
        """Cache `value` unless the secret changed since `generation` was read."""
        with self._lock:
            if self._generations.get(name, 0) != generation:
                return
            if value is None or self._cache_seconds <= 0:
                self._cache.pop(name, None)
            else:
                self._cache[name] = (value, self._clock() + self._cache_seconds)
