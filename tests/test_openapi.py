"""The OpenAPI document describes every HTTP function the app registers, and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.openapi import build_openapi

ROOT = Path(__file__).resolve().parent.parent
SELF_DESCRIBING = {"/api/openapi.json"}

# Indexing function_app needs settings, and a FunctionApp can be indexed once per process, so the
# routes are listed by a child process.
_LIST_ROUTES = """
import json, os
os.environ.update({"STACKHOOK_ENVIRONMENT": "local", "STACKHOOK_PUBLIC_BASE_URL": "http://127.0.0.1:7071",
                   "STACKHOOK_KEY_VAULT_URL": "https://127.0.0.1:1",
                   "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
import function_app
routes = []
for function in function_app.app.get_functions():
    trigger = function.get_trigger()
    if trigger.get_binding_name() == "httpTrigger":
        methods = [str(getattr(method, "value", method)).lower() for method in trigger.methods or []]
        routes.append({"route": trigger.route, "methods": methods})
print(json.dumps(routes))
"""


def registered_routes() -> set[tuple[str, str]]:
    output = subprocess.run([sys.executable, "-c", _LIST_ROUTES], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=120).stdout
    return {(f"/api/{entry['route']}", method) for entry in json.loads(output) for method in entry["methods"]}


def documented_routes() -> set[tuple[str, str]]:
    return {(path, method) for path, operations in build_openapi()["paths"].items() for method in operations}


def test_every_route_is_documented() -> None:
    missing = {route for route in registered_routes() if route[0] not in SELF_DESCRIBING} - documented_routes()
    assert missing == set()


def test_no_undocumented_extra_routes() -> None:
    extra = documented_routes() - registered_routes()
    assert extra == set()


def test_list_schema_has_no_secret() -> None:
    schemas = build_openapi()["components"]["schemas"]
    assert "webhookSecret" in schemas["IntegrationDetails"]["properties"]
    assert "webhookSecret" not in schemas["IntegrationSummary"]["properties"]
    assert "personalAccessToken" not in schemas["IntegrationDetails"]["properties"]
