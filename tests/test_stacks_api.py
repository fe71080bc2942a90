"""`/api/stacks` and `/api/modules` end to end through the local host and the fake Azure DevOps
server: repository resolution, defaults, input rules, integration reach, roles, ETags, Azure DevOps
failures and the routing index.

The spaces of this module: `parent` under root, `team` and `sibling` under `parent`. Each has its
own integration. Only the test that needs the default integration creates it, and it deletes it
again, because other modules expect the default slot to be free.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from devhost.fake_ado import FakeAzureDevOps
from devhost.fake_ado.sample import (
    ACCENTED_REPOSITORY_ID,
    ACCENTED_REPOSITORY_NAME,
    PROJECT_ID,
    PROJECT_NAME,
    REPOSITORY_ID,
    REPOSITORY_NAME,
    SPACED_PROJECT_ID,
    SPACED_PROJECT_NAME,
)
from devhost.stack import LocalStack, free_port
from shared.errors import ValidationFailed
from shared.services.stacks import (
    normalise_branch,
    normalise_globs,
    normalise_project_root,
    stack_id,
    validate_module_part,
)
from shared.settings import Settings
from shared.storage.clients import StorageClients
from shared.storage.stacks import StackRecord, StackRepository
from tests.api_helpers import (
    create_space,
    current_default,
    delete_integration,
    delete_space,
    error_of,
    grant,
    revoke,
    unique,
    user,
)
from tests.fixtures.app_host import ADMIN, Api

WIDGETS = {"project": PROJECT_NAME, "repository": REPOSITORY_NAME}
ACCENTED = {"project": SPACED_PROJECT_NAME, "repository": ACCENTED_REPOSITORY_NAME}


# Input rules, without the host

@pytest.mark.parametrize(("raw", "expected"), [
    ("main", "main"),
    ("refs/heads/main", "main"),
    (" refs/heads/feature/retry ", "feature/retry"),
    ("release-1.2", "release-1.2"),
])
def test_branch_accepted(raw: str, expected: str) -> None:
    assert normalise_branch(raw) == expected


@pytest.mark.parametrize("raw", ["", "refs/heads/", "refs/tags/v1", "a b", "a..b", "a/", "/a", "a.lock",
                                 "a/.hidden", "a~1", "a:b", "a@{1}", "@", "a.", "a\tb", "x" * 251])
def test_branch_rejected(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_branch(raw)
    assert caught.value.field == "trackedBranch"


@pytest.mark.parametrize(("raw", "expected"), [
    ("", ""), ("/", ""), (".", ""), ("stacks/network", "stacks/network"), ("/stacks/network/", "stacks/network"),
    ("./stacks//network/.", "stacks/network"), (" stacks/édition ", "stacks/édition"),
])
def test_project_root_normalised(raw: str, expected: str) -> None:
    assert normalise_project_root(raw) == expected


@pytest.mark.parametrize("raw", ["../outside", "stacks/../../x", "stacks\\network", "a\nb", "a" * 1025])
def test_project_root_rejected(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_project_root(raw)
    assert caught.value.field == "projectRoot"


def test_globs_normalised() -> None:
    raw = ["modules/**/*.tf", "/modules/**/*.tf", "./shared/*.tfvars", "config/[ab]?.json", "docs/[]x].md"]
    assert normalise_globs(raw) == ["modules/**/*.tf", "shared/*.tfvars", "config/[ab]?.json", "docs/[]x].md"]


@pytest.mark.parametrize("globs", [[""], ["../x/*.tf"], ["modules/**.tf"], ["a/[bc.tf"], ["!a/*.tf"],
                                   ["a/{b,c}.tf"], ["a\\b"], ["/"], ["x" * 257],
                                   [f"dir{index}/*.tf" for index in range(51)]])
def test_globs_rejected(globs: list[str]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_globs(globs)
    assert caught.value.field == "additionalProjectGlobs"


@pytest.mark.parametrize(("raw", "valid"), [("azurerm", True), ("network-core", True), ("a1", True),
                                            ("Azurerm", False), ("-a", False), ("a-", False), ("a_b", False),
                                            ("", False), ("a" * 65, False)])
def test_module_part_rule(raw: str, valid: bool) -> None:
    if valid:
        assert validate_module_part(raw, "moduleName") == raw
    else:
        with pytest.raises(ValidationFailed):
            validate_module_part(raw, "moduleName")


def test_stack_id_rules() -> None:
    assert stack_id("Network Core", None) == "network-core"
    assert stack_id("Réseau", None) == "reseau"
    assert stack_id("Anything", "my-id") == "my-id"
    with pytest.raises(ValidationFailed) as caught:
        stack_id("Anything", "My_Id")
    assert caught.value.field == "id"
    assert "'my-id'" in caught.value.message


# Fixtures

@dataclass
class Setup:
    parent: str
    team: str
    sibling: str
    team_integration: str
    parent_integration: str
    sibling_integration: str
    callers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def setup(app_stack: LocalStack) -> Iterator[Setup]:
    suffix = unique("s").removeprefix("s-")
    parent, team, sibling = f"parent-{suffix}", f"team-{suffix}", f"sibling-{suffix}"
    with httpx.Client(timeout=30) as client:
        api = Api(app_stack, client)
        create_space(api, parent)
        create_space(api, team, parent)
        create_space(api, sibling, parent)
        bindings = {"read": (team, "read"), "write": (team, "write"), "admin": (team, "admin"),
                    "sibling-write": (sibling, "write"), "parent-read": (parent, "read")}
        callers = {"none": user(f"stack-none-{suffix}"), "root-admin": ADMIN}
        for role, (space_id, bound) in bindings.items():
            subject = f"stack-{role}-{suffix}"
            grant(api, space_id, subject, bound)
            callers[role] = user(subject)
        integrations = {}
        for space_id in (team, parent, sibling):
            response = api.create_integration(f"Stacks {space_id}", space_id=space_id)
            assert response.status_code == 201, response.text
            integrations[space_id] = response.json()["id"]

        yield Setup(parent, team, sibling, integrations[team], integrations[parent], integrations[sibling],
                    callers)

        for collection in ("stacks", "modules"):
            for entry in api.as_admin("GET", f"/api/{collection}").json()[collection]:
                if entry["spaceId"] in (parent, team, sibling):
                    api.as_admin("DELETE", f"/api/{collection}/{entry['id']}")
        for integration_id in integrations.values():
            delete_integration(api, integration_id)
        for space_id, subject in ((space, f"stack-{role}-{suffix}") for role, (space, _) in bindings.items()):
            revoke(api, space_id, subject)
        for space_id in (team, sibling, parent):
            delete_space(api, space_id)


@pytest.fixture
def fake(app_stack: LocalStack) -> Iterator[FakeAzureDevOps]:
    """The stack's fake Azure DevOps server, with injected failures and recorded requests cleared."""
    assert app_stack.fake_ado is not None
    app_stack.fake_ado.clear()
    yield app_stack.fake_ado
    app_stack.fake_ado.clear()


@pytest.fixture
def created(api: Api) -> Iterator[list[str]]:
    """Paths such as `/api/stacks/<id>` that the test appends are deleted afterwards as root admin."""
    paths: list[str] = []
    yield paths
    for path in paths:
        response = api.as_admin("DELETE", path)
        assert response.status_code in (204, 404), response.text


@pytest.fixture(scope="module")
def repository(app_stack: LocalStack) -> Iterator[StackRepository]:
    """The service's stack repository in this process, on the host's Azurite."""
    clients = StorageClients.from_settings(Settings.from_environ(app_stack.settings()))
    yield StackRepository(clients)


def _body(setup: Setup, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": unique("Stack"), "spaceId": setup.team, "integrationId": setup.team_integration,
                            "repository": WIDGETS}
    body.update(fields)
    return body


def _create(api: Api, created: list[str], body: dict[str, Any], *, collection: str = "stacks",
            headers: dict[str, str] | None = None) -> httpx.Response:
    response = api.call("POST", f"/api/{collection}", body, headers=headers or ADMIN)
    if response.status_code == 201:
        created.append(f"/api/{collection}/{response.json()['id']}")
    return response


# Create, read, update, delete

def test_stack_lifecycle(api: Api, setup: Setup, fake: FakeAzureDevOps, created: list[str]) -> None:
    body = _body(setup, projectRoot="/stacks/network/", additionalProjectGlobs=["modules/**/*.tf"],
                 labels=["prod", "Prod"], description="The *network*.")

    response = _create(api, created, body)

    assert response.status_code == 201, response.text
    stack = response.json()
    path = f"/api/stacks/{stack['id']}"
    assert response.headers["Location"] == path
    assert response.headers["ETag"] == stack["etag"]
    assert stack["kind"] == "stack"
    assert stack["name"] == body["name"]
    assert stack["id"] == body["name"].lower()
    assert stack["spaceId"] == setup.team
    assert stack["integrationId"] == setup.team_integration
    assert (stack["projectId"], stack["projectName"]) == (PROJECT_ID, PROJECT_NAME)
    assert (stack["repositoryId"], stack["repositoryName"]) == (REPOSITORY_ID, REPOSITORY_NAME)
    assert stack["trackedBranch"] == "main"
    assert stack["projectRoot"] == "stacks/network"
    assert stack["additionalProjectGlobs"] == ["modules/**/*.tf"]
    assert stack["labels"] == ["prod"]
    assert stack["createdBy"] == "local-admin"
    assert "terraformProvider" not in stack
    assert len(fake.find("GET", f"/_apis/git/repositories/{REPOSITORY_NAME}")) == 1

    fetched = api.as_admin("GET", path)
    assert fetched.status_code == 200
    assert fetched.json() == stack

    listed = api.as_admin("GET", "/api/stacks").json()["stacks"]
    assert stack["id"] in [entry["id"] for entry in listed]

    changed = api.as_admin("PATCH", path, {"description": "changed", "trackedBranch": "refs/heads/feature/retry"},
                           headers={"If-Match": stack["etag"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "changed"
    assert changed.json()["trackedBranch"] == "feature/retry"
    assert changed.json()["etag"] != stack["etag"]
    assert changed.headers["ETag"] == changed.json()["etag"]
    assert len(fake.find("GET", "/_apis/git/repositories/")) == 1, "a PATCH without repository needs no lookup"

    stale = api.as_admin("PATCH", path, {"description": "again"}, headers={"If-Match": stack["etag"]})
    assert stale.status_code == 412
    assert error_of(stale)["field"] == "If-Match"

    stale_delete = api.as_admin("DELETE", path, headers={"If-Match": stack["etag"]})
    assert stale_delete.status_code == 412
    assert api.as_admin("GET", path).status_code == 200

    assert api.as_admin("DELETE", path, headers={"If-Match": changed.json()["etag"]}).status_code == 204
    assert api.as_admin("GET", path).status_code == 404
    assert api.as_admin("DELETE", path).status_code == 404


def test_module_lifecycle(api: Api, setup: Setup, created: list[str]) -> None:
    body = _body(setup, name=unique("Module"), terraformProvider="azurerm", moduleName="network")

    response = _create(api, created, body, collection="modules")

    assert response.status_code == 201, response.text
    module = response.json()
    path = f"/api/modules/{module['id']}"
    assert response.headers["Location"] == path
    assert module["kind"] == "module"
    assert (module["terraformProvider"], module["moduleName"]) == ("azurerm", "network")
    modules = [entry["id"] for entry in api.as_admin("GET", "/api/modules").json()["modules"]]
    stacks = [entry["id"] for entry in api.as_admin("GET", "/api/stacks").json()["stacks"]]
    assert module["id"] in modules
    assert module["id"] not in stacks
    assert api.as_admin("GET", f"/api/stacks/{module['id']}").status_code == 404

    changed = api.as_admin("PATCH", path, {"moduleName": "network-core"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["moduleName"] == "network-core"

    invalid = api.as_admin("PATCH", path, {"terraformProvider": "AzureRM"})
    assert invalid.status_code == 422
    assert error_of(invalid)["field"] == "terraformProvider"

    assert api.as_admin("DELETE", path).status_code == 204
    assert api.as_admin("GET", path).status_code == 404


def test_module_needs_address(api: Api, setup: Setup, created: list[str]) -> None:
    response = _create(api, created, _body(setup, terraformProvider="azurerm"), collection="modules")

    assert response.status_code == 422
    assert error_of(response)["field"] == "moduleName"


def test_stack_rejects_module_fields(api: Api, setup: Setup, created: list[str]) -> None:
    response = _create(api, created, _body(setup, terraformProvider="azurerm", moduleName="network"))

    assert response.status_code == 422
    assert error_of(response)["field"] == "terraformProvider"


def test_same_id_conflicts(api: Api, setup: Setup, created: list[str]) -> None:
    body = _body(setup)
    assert _create(api, created, body).status_code == 201

    again = _create(api, created, {**body, "name": body["name"].upper()})

    assert again.status_code == 409
    assert error_of(again)["field"] == "id"


def test_given_id_used(api: Api, setup: Setup, created: list[str]) -> None:
    given = unique("given")
    response = _create(api, created, _body(setup, name="Any name at all", id=given))

    assert response.status_code == 201, response.text
    assert response.json()["id"] == given
    invalid = _create(api, created, _body(setup, id="Not Valid"))
    assert invalid.status_code == 422
    assert error_of(invalid)["field"] == "id"


def test_id_cannot_change(api: Api, setup: Setup, created: list[str]) -> None:
    stack = _create(api, created, _body(setup)).json()

    response = api.as_admin("PATCH", f"/api/stacks/{stack['id']}", {"id": "other-id"})

    assert response.status_code == 422
    assert error_of(response)["field"] == "id"


@pytest.mark.parametrize(("fields", "field"), [
    ({"projectRoot": "../x"}, "projectRoot"),
    ({"additionalProjectGlobs": ["modules/**.tf"]}, "additionalProjectGlobs"),
    ({"trackedBranch": "bad branch"}, "trackedBranch"),
    ({"labels": ["x" * 65]}, "labels"),
    ({"description": "x" * 4001}, "description"),
    ({"name": ""}, "name"),
    ({"spaceId": "no-such-space"}, "spaceId"),
    ({"repository": {"project": PROJECT_NAME}}, "repository.repository"),
])
def test_invalid_field_named(api: Api, setup: Setup, fake: FakeAzureDevOps, created: list[str],
                             fields: dict[str, Any], field: str) -> None:
    response = _create(api, created, _body(setup, **fields))

    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field
    assert fake.find("GET", "/_apis/git/repositories/") == [], "invalid input is rejected before any lookup"


# Repository resolution

def test_resolved_by_id(api: Api, setup: Setup, created: list[str]) -> None:
    response = _create(api, created, _body(setup, repository={"project": PROJECT_ID.upper(),
                                                              "repository": REPOSITORY_ID}))

    assert response.status_code == 201, response.text
    stack = response.json()
    assert (stack["projectId"], stack["projectName"]) == (PROJECT_ID, PROJECT_NAME)
    assert (stack["repositoryId"], stack["repositoryName"]) == (REPOSITORY_ID, REPOSITORY_NAME)


def test_resolved_non_ascii(api: Api, setup: Setup, fake: FakeAzureDevOps, created: list[str]) -> None:
    response = _create(api, created, _body(setup, repository=ACCENTED, projectRoot="stacks/édition"))

    assert response.status_code == 201, response.text
    stack = response.json()
    assert (stack["projectId"], stack["projectName"]) == (SPACED_PROJECT_ID, SPACED_PROJECT_NAME)
    assert (stack["repositoryId"], stack["repositoryName"]) == (ACCENTED_REPOSITORY_ID, ACCENTED_REPOSITORY_NAME)
    assert stack["projectRoot"] == "stacks/édition"
    request = fake.last("GET", "/_apis/git/repositories/")
    assert "/My%20Project/_apis/git/repositories/d%C3%A9p%C3%B4t%20infra" in request.raw_path


def test_repository_change_resolved(api: Api, setup: Setup, created: list[str]) -> None:
    stack = _create(api, created, _body(setup, trackedBranch="feature/retry")).json()

    response = api.as_admin("PATCH", f"/api/stacks/{stack['id']}", {"repository": ACCENTED})

    assert response.status_code == 200, response.text
    assert response.json()["repositoryId"] == ACCENTED_REPOSITORY_ID
    assert response.json()["projectName"] == SPACED_PROJECT_NAME
    assert response.json()["trackedBranch"] == "feature/retry", "an explicit branch is kept"


def test_repository_not_found(api: Api, setup: Setup, created: list[str]) -> None:
    response = _create(api, created, _body(setup, repository={"project": PROJECT_NAME, "repository": "nope"}))

    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "repository"
    assert "'nope'" in error["message"]


def test_invalid_token_names_integration(api: Api, setup: Setup, fake: FakeAzureDevOps,
                                         created: list[str]) -> None:
    fake.fail_next(status=401, path_contains=f"/_apis/git/repositories/{REPOSITORY_NAME}")

    response = _create(api, created, _body(setup))

    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "integrationId"
    assert f"PATCH /api/integrations/{setup.team_integration}" in error["message"]
    assert fake.sample_pat not in response.text


def test_forbidden_names_repository(api: Api, setup: Setup, fake: FakeAzureDevOps, created: list[str]) -> None:
    fake.fail_next(status=403, path_contains=f"/_apis/git/repositories/{REPOSITORY_NAME}")

    response = _create(api, created, _body(setup))

    assert response.status_code == 422
    assert error_of(response)["field"] == "repository"


def test_azure_devops_down_is_503(api: Api, setup: Setup, fake: FakeAzureDevOps, created: list[str]) -> None:
    fake.fail_next(5, status=503, retry_after=0.05, path_contains=f"/_apis/git/repositories/{REPOSITORY_NAME}")

    response = _create(api, created, _body(setup))

    assert response.status_code == 503
    assert error_of(response)["code"] == "dependency_unavailable"
    assert "Retry-After" in response.headers


def test_unreachable_is_503(api: Api, setup: Setup, fake: FakeAzureDevOps, created: list[str]) -> None:
    closed = f"https://127.0.0.1:{free_port()}/{fake.collection}"
    integration = api.create_integration(unique("Closed"), space_id=setup.team, organizationUrl=closed)
    assert integration.status_code == 201, integration.text
    try:
        response = _create(api, created, _body(setup, integrationId=integration.json()["id"]))
    finally:
        delete_integration(api, integration.json()["id"])

    assert response.status_code == 503
    assert closed in error_of(response)["message"]


# Which integrations a stack may use

def test_integration_reach(api: Api, setup: Setup, created: list[str]) -> None:
    for integration_id in (setup.team_integration, setup.parent_integration):
        response = _create(api, created, _body(setup, integrationId=integration_id))
        assert response.status_code == 201, (integration_id, response.text)
        assert response.json()["integrationId"] == integration_id

    response = _create(api, created, _body(setup, integrationId=setup.sibling_integration))

    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "integrationId"
    assert setup.team_integration in error["message"]
    assert setup.parent_integration in error["message"]
    assert setup.sibling_integration in error["message"].split(":")[0]


def test_unknown_integration_rejected(api: Api, setup: Setup, created: list[str]) -> None:
    response = _create(api, created, _body(setup, integrationId="no-such-integration"))

    assert response.status_code == 422
    assert error_of(response)["field"] == "integrationId"


def test_default_integration_reach(api: Api, setup: Setup, created: list[str]) -> None:
    existing = current_default(api)
    if existing is not None:
        pytest.fail(f"default integration {existing!r} was left behind by another test; it must be deleted")
    without_default = _create(api, created, _body(setup, integrationId=None))
    assert without_default.status_code == 422
    assert error_of(without_default)["field"] == "integrationId"

    default = api.create_integration(unique("Stacks default"), space_id=None, is_default=True)
    assert default.status_code == 201, default.text
    default_id = default.json()["id"]
    try:
        explicit = _create(api, created, _body(setup, integrationId=default_id))
        implicit = _create(api, created, _body(setup, integrationId=None))
        sibling = _create(api, created, _body(setup, spaceId=setup.sibling, integrationId=None))
        for response in (explicit, implicit, sibling):
            assert response.status_code == 201, response.text
            assert response.json()["integrationId"] == default_id
    finally:
        for path in list(created):
            api.as_admin("DELETE", path)
        delete_integration(api, default_id)


def test_move_checks_integration(api: Api, setup: Setup, created: list[str]) -> None:
    stack = _create(api, created, _body(setup)).json()
    path = f"/api/stacks/{stack['id']}"

    rejected = api.as_admin("PATCH", path, {"spaceId": setup.sibling})
    moved = api.as_admin("PATCH", path, {"spaceId": setup.sibling, "integrationId": setup.parent_integration})

    assert rejected.status_code == 422
    assert error_of(rejected)["field"] == "integrationId"
    assert moved.status_code == 200, moved.text
    assert (moved.json()["spaceId"], moved.json()["integrationId"]) == (setup.sibling, setup.parent_integration)


# Roles: read to see, write to change

# role: (create, listed, get, update, delete). Roles are bound on `team` unless the name says otherwise.
ROLE_TABLE = {
    "none": (404, False, 404, 404, 404),
    "parent-read": (403, True, 200, 403, 403),
    "read": (403, True, 200, 403, 403),
    "write": (201, True, 200, 200, 204),
    "admin": (201, True, 200, 200, 204),
    "sibling-write": (404, False, 404, 404, 404),
    "root-admin": (201, True, 200, 200, 204),
}


@pytest.mark.parametrize("role", list(ROLE_TABLE))
def test_role_rules(api: Api, setup: Setup, created: list[str], role: str) -> None:
    create_status, listed, get_status, update_status, delete_status = ROLE_TABLE[role]
    headers = setup.callers[role]
    existing = _create(api, created, _body(setup)).json()
    path = f"/api/stacks/{existing['id']}"

    created_response = _create(api, created, _body(setup), headers=headers)
    visible = [entry["id"] for entry in api.call("GET", "/api/stacks", headers=headers).json()["stacks"]]
    fetched = api.call("GET", path, headers=headers)
    updated = api.call("PATCH", path, {"description": f"by {role}"}, headers=headers)
    deleted = api.call("DELETE", path, headers=headers)

    assert created_response.status_code == create_status, created_response.text
    assert (existing["id"] in visible) is listed
    assert fetched.status_code == get_status
    assert updated.status_code == update_status
    assert deleted.status_code == delete_status
    for response in (created_response, fetched, updated, deleted):
        if response.status_code >= 400:
            error_of(response)


def test_write_role_named(api: Api, setup: Setup, created: list[str]) -> None:
    response = _create(api, created, _body(setup), headers=setup.callers["read"])

    assert response.status_code == 403
    assert "write role" in error_of(response)["message"]


def test_move_needs_write_on_target(api: Api, setup: Setup, created: list[str]) -> None:
    stack = _create(api, created, _body(setup, integrationId=setup.parent_integration)).json()
    path = f"/api/stacks/{stack['id']}"
    subject = unique("mover")
    grant(api, setup.team, subject, "write")
    grant(api, setup.parent, subject, "read")
    try:
        hidden = api.call("PATCH", path, {"spaceId": setup.parent}, headers=setup.callers["write"])
        rejected = api.call("PATCH", path, {"spaceId": setup.parent}, headers=user(subject))
    finally:
        revoke(api, setup.parent, subject)
        revoke(api, setup.team, subject)

    assert hidden.status_code == 404, "the writer of team cannot read parent, so parent looks missing"
    assert rejected.status_code == 403
    assert "write role" in error_of(rejected)["message"]
    assert api.as_admin("GET", path).json()["spaceId"] == setup.team


# The routing index

def test_routes_for_one_repository(api: Api, setup: Setup, created: list[str],
                                   repository: StackRepository) -> None:
    stacks = [_create(api, created, _body(setup, projectRoot=f"stacks/{index}")).json() for index in range(2)]
    module = _create(api, created, _body(setup, terraformProvider="azurerm", moduleName="vpc"),
                     collection="modules").json()
    other_repository = _create(api, created, _body(setup, repository=ACCENTED)).json()
    other_integration = _create(api, created, _body(setup, integrationId=setup.parent_integration)).json()

    routes = repository.routes_for(setup.team_integration, REPOSITORY_ID.upper())

    assert sorted((route.kind, route.id) for route in routes) == sorted(
        [("stack", stacks[0]["id"]), ("stack", stacks[1]["id"]), ("module", module["id"])])
    first = next(route for route in routes if route.id == stacks[0]["id"])
    assert (first.space_id, first.tracked_branch, first.project_root) == (setup.team, "main", "stacks/0")
    assert (first.repository_id, first.project_id) == (REPOSITORY_ID, PROJECT_ID)
    assert (first.repository_name, first.project_name, first.name) == (REPOSITORY_NAME, PROJECT_NAME,
                                                                       stacks[0]["name"])
    assert [route.id for route in repository.routes_for(setup.team_integration, ACCENTED_REPOSITORY_ID)] == [
        other_repository["id"]]
    assert [route.id for route in repository.routes_for(setup.parent_integration, REPOSITORY_ID)] == [
        other_integration["id"]]
    assert repository.routes_for(setup.sibling_integration, REPOSITORY_ID) == []


def test_routes_follow_changes(api: Api, setup: Setup, created: list[str], repository: StackRepository) -> None:
    stack = _create(api, created, _body(setup, additionalProjectGlobs=["modules/**/*.tf"])).json()
    path = f"/api/stacks/{stack['id']}"

    def ids(integration_id: str, repository_id: str) -> list[str]:
        return [route.id for route in repository.routes_for(integration_id, repository_id)]

    assert repository.routes_for(setup.team_integration, REPOSITORY_ID)[0].project_globs == ("modules/**/*.tf",)

    assert api.as_admin("PATCH", path, {"trackedBranch": "develop", "projectRoot": "infra"}).status_code == 200
    route = next(route for route in repository.routes_for(setup.team_integration, REPOSITORY_ID)
                 if route.id == stack["id"])
    assert (route.tracked_branch, route.project_root) == ("develop", "infra")

    assert api.as_admin("PATCH", path, {"repository": ACCENTED}).status_code == 200
    assert stack["id"] not in ids(setup.team_integration, REPOSITORY_ID)
    assert stack["id"] in ids(setup.team_integration, ACCENTED_REPOSITORY_ID)

    assert api.as_admin("PATCH", path, {"integrationId": setup.parent_integration}).status_code == 200
    assert stack["id"] not in ids(setup.team_integration, ACCENTED_REPOSITORY_ID)
    assert stack["id"] in ids(setup.parent_integration, ACCENTED_REPOSITORY_ID)
    assert [record.id for record in repository.by_integration(setup.parent_integration)] == [stack["id"]]

    assert api.as_admin("DELETE", path).status_code == 204
    assert stack["id"] not in ids(setup.parent_integration, ACCENTED_REPOSITORY_ID)
    assert repository.by_integration(setup.parent_integration) == []


def test_create_many_indexes(repository: StackRepository) -> None:
    integration_id = unique("bulk")
    now = datetime.now(UTC)
    records = [StackRecord(kind=kind, id=unique(kind), name=kind, space_id="root", integration_id=integration_id,
                           project_id=PROJECT_ID, project_name=PROJECT_NAME, repository_id=repository_id,
                           repository_name="r", tracked_branch="main", project_root="", additional_project_globs=(),
                           labels=(), description="", created_at=now, updated_at=now, created_by="test",
                           updated_by="test", terraform_provider="azurerm" if kind == "module" else None,
                           module_name="vpc" if kind == "module" else None)
               for kind, repository_id in (("stack", REPOSITORY_ID), ("module", REPOSITORY_ID),
                                           ("stack", ACCENTED_REPOSITORY_ID))]

    repository.create_many(records)
    try:
        routed = repository.routes_for(integration_id, REPOSITORY_ID)
        stored = repository.get("module", records[1].id)
        by_integration = repository.by_integration(integration_id)
    finally:
        for record in records:
            repository.delete(record)

    assert sorted(route.id for route in routed) == sorted([records[0].id, records[1].id])
    assert (stored.terraform_provider, stored.module_name) == ("azurerm", "vpc")
    assert sorted(record.id for record in by_integration) == sorted(record.id for record in records)
    assert repository.routes_for(integration_id, REPOSITORY_ID) == []
    assert repository.find("stack", records[0].id) is None


def test_space_with_stack_not_deleted(api: Api) -> None:
    space = unique("stackspace").lower()
    created = api.as_admin("POST", "/api/spaces", {"name": space, "parentId": "root"})
    assert created.status_code == 201, created.text
    space_id = created.json()["id"]
    integration = api.create_integration(unique("Holder"))
    assert integration.status_code == 201, integration.text
    stack = api.as_admin("POST", "/api/stacks", {"name": unique("held"), "spaceId": space_id,
                                                 "integrationId": integration.json()["id"],
                                                 "repository": {"project": "Widgets", "repository": "widget-service"}})
    assert stack.status_code == 201, stack.text

    refused = api.as_admin("DELETE", f"/api/spaces/{space_id}")

    assert refused.status_code == 409
    assert stack.json()["id"] in refused.json()["error"]["message"]
    api.as_admin("DELETE", f"/api/stacks/{stack.json()['id']}")
    assert api.as_admin("DELETE", f"/api/spaces/{space_id}").status_code == 204
