"""Settings are read once and a missing or invalid one stops start-up with a message naming it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import pytest

from functions._http import caller
from shared.errors import AuthenticationRequired, SettingsError
from shared.settings import SETTINGS, Settings, read_setting_names, required_setting_names

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {
    "STACKHOOK_ENVIRONMENT": "local",
    "STACKHOOK_PUBLIC_BASE_URL": "http://127.0.0.1:7071",
    "STACKHOOK_KEY_VAULT_URL": "https://127.0.0.1:8200",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}
AZURE = {
    "STACKHOOK_PUBLIC_BASE_URL": "https://stackhook.example.com",
    "STACKHOOK_KEY_VAULT_URL": "https://stackhook-kv.vault.azure.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://stackhookdata.table.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://stackhookdata.queue.core.windows.net",
}


def settings_error(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        Settings.from_environ(environ)
    return str(raised.value)


def test_local_defaults() -> None:
    settings = Settings.from_environ(LOCAL)
    assert settings.is_local
    assert settings.bootstrap_admins == ("local-admin",)
    assert settings.command_prefix == "/stackhook"
    assert settings.max_webhook_body_bytes == 2 * 1024 * 1024


def test_azure_with_identity_storage() -> None:
    settings = Settings.from_environ(AZURE)
    assert not settings.is_local
    assert settings.bootstrap_admins == ()
    assert settings.key_vault_url == "https://stackhook-kv.vault.azure.net"


@pytest.mark.parametrize("name", required_setting_names())
def test_missing_required_setting(name: str) -> None:
    message = settings_error({key: value for key, value in LOCAL.items() if key != name})
    assert f"Missing setting {name}" in message
    assert "Example:" in message


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("STACKHOOK_PUBLIC_BASE_URL", "not a url", "absolute http or https URL"),
    ("STACKHOOK_ENVIRONMENT", "staging", "STACKHOOK_ENVIRONMENT"),
    ("STACKHOOK_MAX_WEBHOOK_BODY_BYTES", "lots", "STACKHOOK_MAX_WEBHOOK_BODY_BYTES"),
    ("STACKHOOK_MAX_WEBHOOK_BODY_BYTES", "10", "STACKHOOK_MAX_WEBHOOK_BODY_BYTES"),
    ("STACKHOOK_SERVICE_HOOK_WATCH_SCHEDULE", "*/5 * * * *", "six fields"),
    ("STACKHOOK_COMMAND_PREFIX", "/stack hook", "without spaces"),
    ("STACKHOOK_SERVICE_HOOK_REENABLE", "maybe", "not a boolean"),
    ("STACKHOOK_LOG_LEVEL", "LOUD", "STACKHOOK_LOG_LEVEL"),
])
def test_invalid_setting_named(name: str, value: str, fragment: str) -> None:
    message = settings_error({**LOCAL, name: value})
    assert name in message
    assert fragment in message


def test_storage_required() -> None:
    message = settings_error({key: value for key, value in LOCAL.items() if key != "AzureWebJobsStorage"})
    assert "AzureWebJobsStorage" in message


def test_azure_rejects_http_key_vault() -> None:
    message = settings_error({**AZURE, "STACKHOOK_KEY_VAULT_URL": "http://vault.example.com"})
    assert "must use https" in message


def test_azure_rejects_local_certificates() -> None:
    message = settings_error({**AZURE, "STACKHOOK_KEY_VAULT_CA_BUNDLE": "/tmp/ca.pem"})
    assert "only allowed with STACKHOOK_ENVIRONMENT=local" in message


def test_setting_names_unique() -> None:
    names = read_setting_names()
    assert len(names) == len(set(names))
    assert len(names) == len(SETTINGS)


def principal_request(headers: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest("GET", "http://127.0.0.1/api/spaces", headers=headers, body=b"")


def identity_headers(name: str) -> dict[str, str]:
    claims = {"auth_typ": "aad", "claims": [{"typ": "preferred_username", "val": name}]}
    return {"X-MS-CLIENT-PRINCIPAL-NAME": name,
            "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(claims).encode()).decode()}


def test_identity_refused_without_platform_auth() -> None:
    settings = Settings.from_environ(AZURE)
    with pytest.raises(AuthenticationRequired) as raised:
        caller(principal_request(identity_headers("mallory@example.com")), settings)
    assert raised.value.code == "authentication_not_configured"
    assert "App Service Authentication" in raised.value.message


def test_identity_trusted_with_platform_auth() -> None:
    settings = Settings.from_environ({**AZURE, "WEBSITE_AUTH_ENABLED": "True"})
    principal = caller(principal_request(identity_headers("alice@example.com")), settings)
    assert "alice@example.com" in principal.subjects


def test_missing_identity_is_401() -> None:
    with pytest.raises(AuthenticationRequired) as raised:
        caller(principal_request({}), Settings.from_environ(LOCAL))
    assert raised.value.status == 401


def test_host_refuses_start_without_settings() -> None:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("STACKHOOK_", "AzureWebJobs"))}
    environment["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"
    result = subprocess.run([sys.executable, "-m", "devhost.host", "--app", "function_app:app", "--port", "0"],
                            cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "STACKHOOK_PUBLIC_BASE_URL" in result.stdout + result.stderr
