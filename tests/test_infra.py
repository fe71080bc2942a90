"""Offline checks of the Bicep templates under infra/.

No Bicep CLI is needed: tree-sitter-bicep parses the syntax, checkov runs its Bicep checks with
network calls turned off, and the template tests read the parsed declarations. When a `bicep`
executable is on PATH, `bicep build` and `bicep lint` run as well.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_bicep

from shared.routes import UNAUTHENTICATED_PATHS
from shared.settings import read_setting_names, required_setting_names

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
EXAMPLE_PARAMETERS = INFRA / "main.parameters.example.json"
ROLES_MODULE = INFRA / "modules" / "role-assignments.bicep"
CHECKS_DIR = INFRA / "checkov"
SKIPS_FILE = CHECKS_DIR / "skips.toml"
CHECKOV_TIMEOUT_SECONDS = 300

# App settings that the template sets for the platform, not for the app: shared/settings.py does
# not list them, and the app never reads them.
PLATFORM_SETTINGS = {
    # Application Insights connection of the Functions host.
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    # Blob endpoint of the identity-based AzureWebJobsStorage connection. The Functions host uses
    # it for leases and its own bookkeeping.
    "AzureWebJobsStorage__blobServiceUri",
}

_LANGUAGE = tree_sitter.Language(tree_sitter_bicep.language())


# ---------------------------------------------------------------------------------------------
# Reading Bicep with tree-sitter
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A Bicep value that is not a literal (a reference, call, interpolation or condition)."""

    text: str


@dataclass(frozen=True)
class Resource:
    symbol: str
    type: str
    body: dict[str, Any]


def _parse(path: Path) -> tree_sitter.Tree:
    return tree_sitter.Parser(_LANGUAGE).parse(path.read_bytes())


def _syntax_errors(node: tree_sitter.Node) -> list[str]:
    """Return one `line N, column M: ...` entry per error or missing node under `node`."""
    problems = []
    if node.is_error or node.is_missing:
        line, column = node.start_point
        kind = "missing " + node.type if node.is_missing else "unexpected " + repr(node.text.decode()[:40])
        problems.append(f"line {line + 1}, column {column + 1}: {kind}")
    for child in node.children:
        problems.extend(_syntax_errors(child))
    return problems


def _value(node: tree_sitter.Node, variables: dict[str, Any]) -> Any:
    """Convert a Bicep literal to Python, resolving a reference to a literal `var`."""
    if node.type == "object":
        result = {}
        for prop in node.named_children:
            if prop.type != "object_property":
                continue
            key_node, value_node = prop.named_children[0], prop.named_children[-1]
            result[_key(key_node)] = _value(value_node, variables)
        return result
    if node.type == "array":
        return [_value(child, variables) for child in node.named_children if child.type != "comment"]
    if node.type == "string" and all(child.type == "string_content" for child in node.named_children):
        return "".join(child.text.decode() for child in node.named_children)
    if node.type == "boolean":
        return node.text.decode() == "true"
    if node.type == "number":
        return int(node.text.decode())
    if node.type == "identifier" and node.text.decode() in variables:
        return variables[node.text.decode()]
    return Expression(node.text.decode())


def _key(node: tree_sitter.Node) -> str:
    if node.type == "string":
        return "".join(child.text.decode() for child in node.named_children)
    return node.text.decode()


def read_template(path: Path) -> tuple[dict[str, Any], list[Resource]]:
    """Return the literal variables and the resource declarations of a Bicep file."""
    root = _parse(path).root_node
    variables: dict[str, Any] = {}
    resources = []
    for declaration in root.named_children:
        if declaration.type == "variable_declaration":
            name, value = declaration.named_children[0], declaration.named_children[-1]
            variables[name.text.decode()] = _value(value, variables)
        elif declaration.type == "resource_declaration":
            symbol = declaration.named_children[0].text.decode()
            type_node = declaration.named_children[1]
            body = declaration.named_children[-1]
            assert body.type == "object", f"{path.name}: resource {symbol} is not a plain object declaration"
            resources.append(Resource(symbol, _value(type_node, variables), _value(body, variables)))
    return variables, resources


def resources_of_type(resources: list[Resource], type_name: str) -> list[Resource]:
    return [resource for resource in resources if resource.type.split("@")[0] == type_name]


def single_resource(resources: list[Resource], type_name: str, name: str | None = None) -> Resource:
    matches = [
        resource
        for resource in resources_of_type(resources, type_name)
        if name is None or resource.body.get("name") == name
    ]
    assert len(matches) == 1, f"expected one {type_name} named {name!r}, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module")
def main_resources() -> list[Resource]:
    return read_template(MAIN)[1]


# ---------------------------------------------------------------------------------------------
# Syntax
# ---------------------------------------------------------------------------------------------


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def test_bicep_files_found() -> None:
    assert MAIN in bicep_files()
    assert ROLES_MODULE in bicep_files()


@pytest.mark.parametrize("path", bicep_files(), ids=lambda path: str(path.relative_to(INFRA)))
def test_bicep_syntax(path: Path) -> None:
    problems = _syntax_errors(_parse(path).root_node)
    assert not problems, f"{path.relative_to(ROOT)} has syntax errors: " + "; ".join(problems)


# ---------------------------------------------------------------------------------------------
# checkov
# ---------------------------------------------------------------------------------------------


def _load_skips() -> dict[str, dict[str, Any]]:
    with SKIPS_FILE.open("rb") as file:
        return tomllib.load(file)


def run_checkov(directory: Path) -> dict[str, Any]:
    """Run checkov's Bicep checks offline on `directory` and return its JSON report."""
    environment = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}
    command = [
        sys.executable, "-m", "checkov.main",
        "-d", str(directory),
        "--framework", "bicep",
        "-o", "json",
        "--external-checks-dir", str(CHECKS_DIR),
        "--skip-download",
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=CHECKOV_TIMEOUT_SECONDS, check=False,
    )
    # checkov exits 1 when a check fails; anything else means it did not finish.
    assert completed.returncode in (0, 1), f"checkov failed with exit code {completed.returncode}: {completed.stderr}"
    report = json.loads(completed.stdout)
    if isinstance(report, list):
        (report,) = [item for item in report if item.get("check_type") == "bicep"]
    return report


def check_results(report: dict[str, Any], outcome: str) -> list[tuple[str, str]]:
    return [(item["check_id"], item["resource"]) for item in report["results"][f"{outcome}_checks"]]


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    return run_checkov(INFRA)


def test_checkov_parses_every_file(checkov_report: dict[str, Any]) -> None:
    # checkov exits 0 on a template it cannot parse, so the count is the only signal.
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["summary"]["resource_count"] > 0


def test_checkov_failures_all_skipped(checkov_report: dict[str, Any]) -> None:
    skips = _load_skips()
    unexpected = []
    for check_id, resource in check_results(checkov_report, "failed"):
        skip = skips.get(check_id)
        if skip is None or ("resources" in skip and resource not in skip["resources"]):
            unexpected.append(f"{check_id} on {resource}")
    assert not unexpected, (
        "checkov checks failed; fix the template or add the check to infra/checkov/skips.toml "
        "with a reason: " + ", ".join(unexpected)
    )


def test_checkov_custom_checks_pass(checkov_report: dict[str, Any]) -> None:
    passed = check_results(checkov_report, "passed")
    assert ("CKV_STACKHOOK_1", "Microsoft.KeyVault/vaults.vault") in passed
    assert ("CKV_STACKHOOK_2", "Microsoft.Web/sites/config.authentication") in passed


def test_checkov_skips_have_reasons() -> None:
    for check_id, skip in _load_skips().items():
        assert check_id.startswith("CKV"), f"{check_id} is not a checkov check id"
        assert len(str(skip.get("reason", "")).strip()) >= 20, f"skip of {check_id} has no written reason"
        assert set(skip) <= {"reason", "resources"}, f"skip of {check_id} has unknown keys {set(skip)}"


def test_checkov_skips_still_needed(checkov_report: dict[str, Any]) -> None:
    failed = {check_id for check_id, _ in check_results(checkov_report, "failed")}
    stale = sorted(set(_load_skips()) - failed)
    assert not stale, f"these skips match no failed check any more; remove them from skips.toml: {stale}"


def test_custom_checks_catch_regressions(tmp_path: Path) -> None:
    template = MAIN.read_text()
    broken = template.replace("enableRbacAuthorization: true", "enableRbacAuthorization: false")
    broken = broken.replace("unauthenticatedClientAction: 'Return401'", "unauthenticatedClientAction: 'AllowAnonymous'")
    assert broken.count("false") > template.count("false")
    assert "AllowAnonymous" in broken
    (tmp_path / "main.bicep").write_text(broken)

    failed = check_results(run_checkov(tmp_path), "failed")

    assert ("CKV_STACKHOOK_1", "Microsoft.KeyVault/vaults.vault") in failed
    assert ("CKV_STACKHOOK_2", "Microsoft.Web/sites/config.authentication") in failed


# ---------------------------------------------------------------------------------------------
# What the template deploys
# ---------------------------------------------------------------------------------------------


def test_vault_rbac_and_purge_protection(main_resources: list[Resource]) -> None:
    properties = single_resource(main_resources, "Microsoft.KeyVault/vaults").body["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enablePurgeProtection"] is True
    assert properties["enableSoftDelete"] is True
    assert 7 <= properties["softDeleteRetentionInDays"] <= 90
    assert "accessPolicies" not in properties


def test_storage_shared_keys_off(main_resources: list[Resource]) -> None:
    storage = single_resource(main_resources, "Microsoft.Storage/storageAccounts").body
    assert storage["kind"] == "StorageV2"
    assert storage["sku"]["name"] == "Standard_LRS"
    assert storage["properties"]["allowSharedKeyAccess"] is False
    assert storage["properties"]["allowBlobPublicAccess"] is False
    assert storage["properties"]["supportsHttpsTrafficOnly"] is True
    assert storage["properties"]["minimumTlsVersion"] == "TLS1_2"


def test_function_app_transport(main_resources: list[Resource]) -> None:
    site = single_resource(main_resources, "Microsoft.Web/sites").body
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "SystemAssigned"
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["properties"]["siteConfig"]["ftpsState"] == "Disabled"


def test_function_app_flex_consumption(main_resources: list[Resource]) -> None:
    plan = single_resource(main_resources, "Microsoft.Web/serverfarms").body
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True

    config = single_resource(main_resources, "Microsoft.Web/sites").body["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["type"] == "blobContainer"
    assert config["deployment"]["storage"]["authentication"] == {"type": "SystemAssignedIdentity"}


def test_basic_publishing_credentials_off(main_resources: list[Resource]) -> None:
    policies = resources_of_type(main_resources, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert sorted(policy.body["name"] for policy in policies) == ["ftp", "scm"]
    for policy in policies:
        assert policy.body["properties"]["allow"] is False, f"{policy.body['name']} publishing credentials allowed"


def test_auth_excluded_paths_match_routes(main_resources: list[Resource]) -> None:
    auth = single_resource(main_resources, "Microsoft.Web/sites/config", "authsettingsV2").body["properties"]
    validation = auth["globalValidation"]
    assert validation["excludedPaths"] == list(UNAUTHENTICATED_PATHS)
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert validation["requireAuthentication"] is True
    assert auth["platform"]["enabled"] is True


def test_auth_entra_provider(main_resources: list[Resource]) -> None:
    auth = single_resource(main_resources, "Microsoft.Web/sites/config", "authsettingsV2").body["properties"]
    provider = auth["identityProviders"]["azureActiveDirectory"]
    assert provider["enabled"] is True
    assert provider["registration"]["clientId"] == Expression("entraClientId")
    assert provider["registration"]["openIdIssuer"] == Expression(
        "'https://login.microsoftonline.com/${entraTenantId}/v2.0'"
    )


def _app_settings(resources: list[Resource]) -> dict[str, Any]:
    return single_resource(resources, "Microsoft.Web/sites/config", "appsettings").body["properties"]


def test_app_settings_are_read(main_resources: list[Resource]) -> None:
    unknown = set(_app_settings(main_resources)) - set(read_setting_names()) - PLATFORM_SETTINGS
    assert not unknown, f"the template sets settings that the app does not read: {sorted(unknown)}"


def test_app_settings_required_present(main_resources: list[Resource]) -> None:
    missing = set(required_setting_names()) - set(_app_settings(main_resources))
    assert not missing, f"the template does not set required settings: {sorted(missing)}"


def test_app_settings_identity_storage(main_resources: list[Resource]) -> None:
    settings = _app_settings(main_resources)
    assert settings["STACKHOOK_ENVIRONMENT"] == "azure"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "AzureWebJobsStorage" not in settings
    for service in ("blob", "queue", "table"):
        assert f"AzureWebJobsStorage__{service}ServiceUri" in settings
    # The platform sets WEBSITE_AUTH_ENABLED itself when authentication is on. Setting it by hand
    # would make the app trust identity headers that nothing has checked.
    assert "WEBSITE_AUTH_ENABLED" not in settings


def test_platform_settings_not_read() -> None:
    assert not PLATFORM_SETTINGS & set(read_setting_names())


def test_parameters_not_secure() -> None:
    text = MAIN.read_text() + ROLES_MODULE.read_text()
    assert "@secure" not in text


def _parameters(path: Path) -> dict[str, bool]:
    """Return each `param` of a Bicep file, mapped to whether it has a default value."""
    declarations = [node for node in _parse(path).root_node.named_children if node.type == "parameter_declaration"]
    return {node.named_children[0].text.decode(): len(node.named_children) > 2 for node in declarations}


def test_example_parameters_match_template() -> None:
    parameters = _parameters(MAIN)
    example = json.loads(EXAMPLE_PARAMETERS.read_text())["parameters"]
    assert set(example) <= set(parameters), f"unknown parameters: {sorted(set(example) - set(parameters))}"
    required = {name for name, has_default in parameters.items() if not has_default}
    assert required == {"entraClientId", "bootstrapAdmins"}
    assert required <= set(example)


def test_role_assignments_least_privilege() -> None:
    variables, resources = read_template(ROLES_MODULE)
    assignments = resources_of_type(resources, "Microsoft.Authorization/roleAssignments")
    expected = {
        # Storage Table Data Contributor, on the storage account.
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "storage",
        # Storage Queue Data Contributor, on the storage account.
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "storage",
        # Storage Blob Data Owner, on the deployment container only.
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "deploymentContainer",
        # Key Vault Secrets Officer, on the vault.
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "vault",
    }
    found = {}
    for assignment in assignments:
        role_variable = assignment.body["properties"]["roleDefinitionId"].text.split(", ")[-1].rstrip(")")
        role_id = variables[role_variable]
        scope = assignment.body["scope"].text
        found[role_id] = scope
        assert assignment.body["name"] == Expression(f"guid({scope}.id, principalId, {role_variable})")
        assert assignment.body["properties"]["principalType"] == "ServicePrincipal"
    assert found == expected


# ---------------------------------------------------------------------------------------------
# Bicep CLI, when present
# ---------------------------------------------------------------------------------------------

BICEP = shutil.which("bicep")


@pytest.mark.skipif(BICEP is None, reason="no bicep executable on PATH; its installers download a binary")
@pytest.mark.parametrize("command", ["build", "lint"])
def test_bicep_cli(command: str, tmp_path: Path) -> None:
    assert BICEP is not None
    arguments = [BICEP, command, str(MAIN)]
    if command == "build":
        arguments += ["--outdir", str(tmp_path)]
    completed = subprocess.run(arguments, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
