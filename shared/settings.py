"""The one settings object of the service, read once from the environment at start-up.

Every setting the app reads is declared in `SETTINGS` with its environment variable, whether it
is required, and an example value. `Settings.from_environ` is the only place that reads the
environment; the core receives a `Settings` value and never looks at `os.environ`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import SettingsError

APP_VERSION = "0.1.0"
LOCAL_DEFAULT_ADMIN = "local-admin"


@dataclass(frozen=True)
class SettingSpec:
    """One environment variable the app reads."""

    env: str
    field: str
    example: str
    description: str
    required: bool = False


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("STACKHOOK_ENVIRONMENT", "environment", "azure",
                "`azure` (default) or `local`. Local mode trusts App Service Authentication "
                "headers without the platform and allows connection strings and local certificates."),
    SettingSpec("STACKHOOK_PUBLIC_BASE_URL", "public_base_url", "https://stackhook.example.com",
                "Base URL that Azure DevOps uses to reach the service; webhook endpoints are built on it.",
                required=True),
    SettingSpec("AzureWebJobsStorage", "storage_connection_string",
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;...",
                "Storage connection string (local development). In Azure use the identity-based "
                "AzureWebJobsStorage__tableServiceUri and __queueServiceUri instead."),
    SettingSpec("AzureWebJobsStorage__tableServiceUri", "table_service_uri",
                "https://stackhookdata.table.core.windows.net",
                "Table service URI, used with the app's managed identity."),
    SettingSpec("AzureWebJobsStorage__queueServiceUri", "queue_service_uri",
                "https://stackhookdata.queue.core.windows.net",
                "Queue service URI, used with the app's managed identity."),
    SettingSpec("AzureWebJobsStorage__credential", "storage_credential", "managedidentity",
                "Read by the Functions runtime for identity-based storage connections."),
    SettingSpec("AzureWebJobsStorage__clientId", "storage_client_id", "00000000-0000-0000-0000-000000000000",
                "Client id of a user-assigned identity for storage (optional)."),
    SettingSpec("STACKHOOK_STORAGE_API_VERSION", "storage_api_version", "2025-11-05",
                "Storage REST API version the queue client sends (optional; pins it for emulators)."),
    SettingSpec("STACKHOOK_KEY_VAULT_URL", "key_vault_url", "https://stackhook-kv.vault.azure.net/",
                "Key Vault that holds personal access tokens and webhook secrets.", required=True),
    SettingSpec("STACKHOOK_KEY_VAULT_CA_BUNDLE", "key_vault_ca_bundle", ".local/tls/ca.pem",
                "Local mode only: certificate bundle that signs the local Key Vault's certificate."),
    SettingSpec("STACKHOOK_AZURE_DEVOPS_CA_BUNDLE", "azure_devops_ca_bundle", ".local/tls/ca.pem",
                "Local mode only: certificate bundle for an Azure DevOps server with a private certificate."),
    SettingSpec("STACKHOOK_BOOTSTRAP_ADMINS", "bootstrap_admins", "platform-admins@example.com,00000000-...",
                "Comma-separated subjects (object ids, user principal names, group ids) that are "
                "admins of the root space. Local default: local-admin."),
    SettingSpec("WEBSITE_AUTH_ENABLED", "platform_auth_enabled", "True",
                "Set by App Service when App Service Authentication is on; the management API "
                "trusts identity headers only then (or in local mode)."),
    SettingSpec("STACKHOOK_COMMAND_PREFIX", "command_prefix", "/stackhook",
                "Prefix of pull request comment commands."),
    SettingSpec("STACKHOOK_MAX_WEBHOOK_BODY_BYTES", "max_webhook_body_bytes", "2097152",
                "Largest service-hook body accepted, in bytes (larger ones get 413)."),
    SettingSpec("STACKHOOK_DELIVERY_BODY_RETENTION_HOURS", "delivery_body_retention_hours", "168",
                "How long delivery bodies are kept for replay, in hours."),
    SettingSpec("STACKHOOK_SECRET_CACHE_SECONDS", "secret_cache_seconds", "60",
                "How long secrets read from Key Vault are cached, in seconds."),
    SettingSpec("STACKHOOK_SERVICE_HOOK_WATCH_SCHEDULE", "service_hook_watch_schedule", "0 */15 * * * *",
                "NCRONTAB schedule (with seconds) of the service-hook subscription check."),
    SettingSpec("STACKHOOK_SERVICE_HOOK_REENABLE", "service_hook_reenable", "false",
                "Re-enable subscriptions that Azure DevOps disabled once deliveries succeed again."),
    SettingSpec("STACKHOOK_LOG_LEVEL", "log_level", "INFO", "Log level of the stackhook loggers."),
)

_BY_FIELD = {spec.field: spec for spec in SETTINGS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(value: str, env: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"Setting {env} is invalid: {value!r} is not a boolean. Use true or false.")


class Settings(BaseModel):
    """Validated settings; build it with `Settings.from_environ`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: Literal["azure", "local"] = "azure"
    public_base_url: str
    storage_connection_string: str | None = None
    table_service_uri: str | None = None
    queue_service_uri: str | None = None
    storage_credential: str | None = None
    storage_client_id: str | None = None
    storage_api_version: str | None = None
    key_vault_url: str
    key_vault_ca_bundle: str | None = None
    azure_devops_ca_bundle: str | None = None
    bootstrap_admins: tuple[str, ...] = ()
    platform_auth_enabled: bool = False
    command_prefix: str = "/stackhook"
    max_webhook_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    delivery_body_retention_hours: int = Field(default=168, ge=1, le=24 * 90)
    secret_cache_seconds: int = Field(default=60, ge=0, le=3600)
    service_hook_watch_schedule: str = "0 */15 * * * *"
    service_hook_reenable: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    @field_validator("public_base_url", "key_vault_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http or https URL")
        return value.rstrip("/")

    @field_validator("command_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip()
        if not value or any(character.isspace() for character in value):
            raise ValueError("must be one word without spaces, such as /stackhook")
        return value

    @field_validator("service_hook_watch_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError("must be an NCRONTAB expression with six fields (seconds first)")
        return value

    @model_validator(mode="after")
    def _storage_and_tls(self) -> Settings:
        if not self.storage_connection_string and not (self.table_service_uri and self.queue_service_uri):
            raise ValueError(
                "storage is not configured: set AzureWebJobsStorage (a connection string) or both "
                "AzureWebJobsStorage__tableServiceUri and AzureWebJobsStorage__queueServiceUri")
        if not self.is_local:
            if urlsplit(self.key_vault_url).scheme != "https":
                raise ValueError("STACKHOOK_KEY_VAULT_URL must use https outside local mode")
            if self.key_vault_ca_bundle or self.azure_devops_ca_bundle:
                raise ValueError("local certificate bundles are only allowed with STACKHOOK_ENVIRONMENT=local")
        return self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read and validate every setting; raise `SettingsError` naming the first bad one."""
        values: dict[str, object] = {}
        for spec in SETTINGS:
            raw = environ.get(spec.env)
            if raw is None or (raw.strip() == "" and not spec.required):
                continue
            if spec.field in ("platform_auth_enabled", "service_hook_reenable"):
                values[spec.field] = _parse_bool(raw, spec.env)
            elif spec.field == "bootstrap_admins":
                values[spec.field] = tuple(item.strip() for item in raw.split(",") if item.strip())
            else:
                values[spec.field] = raw.strip()
        if values.get("environment") == "local" and "bootstrap_admins" not in values:
            values["bootstrap_admins"] = (LOCAL_DEFAULT_ADMIN,)
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise SettingsError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    """Turn a pydantic error into one message per setting, with the variable name and an example."""
    lines = []
    for item in error.errors():
        location = item.get("loc") or ()
        field = str(location[0]) if location else ""
        spec = _BY_FIELD.get(field)
        reason = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if spec is None:
            lines.append(f"Invalid settings: {reason}.")
        elif item.get("type") == "missing":
            lines.append(f"Missing setting {spec.env}: {spec.description} Example: {spec.env}={spec.example}")
        else:
            lines.append(f"Invalid setting {spec.env}: {reason}. Example: {spec.env}={spec.example}")
    return " ".join(lines)


def read_setting_names() -> list[str]:
    """Return the environment variable names the app reads, for deployment checks."""
    return [spec.env for spec in SETTINGS]


def required_setting_names() -> list[str]:
    """Return the environment variable names that have no default."""
    return [spec.env for spec in SETTINGS if spec.required]
