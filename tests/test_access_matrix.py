"""Who may do what to an integration: role × integration kind × action, through the local host.

The space integration lives in `team`, whose parent is `parent` and whose sibling is `sibling`;
the default integration lives in the root space. Each role is a separate user with only the
binding its row names, so one binding never affects another row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from devhost.stack import LocalStack
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

ACTIONS = ("get", "create", "update", "delete", "rotate", "test")

# Expected status per action, in the order of ACTIONS. Callers who cannot read the integration's
# space get 404, so its existence does not leak. Callers who can see it but are not admins get 403.
HIDDEN = (404, 404, 404, 404, 404, 404)
REFUSED = (403, 403, 403, 403, 403, 403)
ALLOWED = (200, 201, 200, 204, 200, 200)

# role: (listed, statuses). Roles are bound on `team` unless the role name names another space.
SPACE_TABLE = {
    "none": (False, HIDDEN),
    "read": (True, REFUSED),
    "write": (True, REFUSED),
    "admin": (True, ALLOWED),
    "sibling-admin": (False, HIDDEN),
    "parent-admin": (True, ALLOWED),
    "root-admin": (True, ALLOWED),
}

# The default integration is listed to everyone and managed by root admins only. Roles are bound
# on root, except `space-admin`, which is admin of `team`, a space below root.
DEFAULT_TABLE = {
    "none": (True, REFUSED),
    "read": (True, REFUSED),
    "write": (True, REFUSED),
    "admin": (True, ALLOWED),
    "space-admin": (True, REFUSED),
    "root-admin": (True, ALLOWED),
}

TABLES = {"space": SPACE_TABLE, "default": DEFAULT_TABLE}
LIST_CASES = [(kind, role, listed) for kind, table in TABLES.items() for role, (listed, _) in table.items()]
ACTION_CASES = [(kind, role, action, statuses[position])
                for kind, table in TABLES.items()
                for role, (_, statuses) in table.items()
                for position, action in enumerate(ACTIONS)]


@dataclass
class Setup:
    """The spaces of this module and the headers of each role's user, per integration kind."""

    parent: str
    team: str
    sibling: str
    callers: dict[str, dict[str, dict[str, str]]]
    space_integration: str


@pytest.fixture(scope="module")
def setup(app_stack: LocalStack) -> Iterator[Setup]:
    suffix = unique("m").removeprefix("m-")
    parent, team, sibling = f"parent-{suffix}", f"team-{suffix}", f"sibling-{suffix}"
    with httpx.Client(timeout=30) as client:
        api = Api(app_stack, client)
        create_space(api, parent)
        create_space(api, team, parent)
        create_space(api, sibling, parent)
        space_bindings = {"read": (team, "read"), "write": (team, "write"), "admin": (team, "admin"),
                          "sibling-admin": (sibling, "admin"), "parent-admin": (parent, "admin")}
        default_bindings = {"read": ("root", "read"), "write": ("root", "write"), "admin": ("root", "admin"),
                            "space-admin": (team, "admin")}
        callers: dict[str, dict[str, dict[str, str]]] = {}
        granted: list[tuple[str, str]] = []
        for kind, bindings in (("space", space_bindings), ("default", default_bindings)):
            callers[kind] = {"none": user(f"{kind}-none-{suffix}"), "root-admin": ADMIN}
            for role, (space_id, bound_role) in bindings.items():
                subject = f"{kind}-{role}-{suffix}"
                grant(api, space_id, subject, bound_role)
                granted.append((space_id, subject))
                callers[kind][role] = user(subject)
        created = api.create_integration(f"Matrix {suffix}", space_id=team)
        assert created.status_code == 201, created.text

        yield Setup(parent, team, sibling, callers, created.json()["id"])

        delete_integration(api, created.json()["id"])
        for space_id, subject in granted:
            revoke(api, space_id, subject)
        for space_id in (team, sibling, parent):
            delete_space(api, space_id)


@pytest.fixture
def created_ids(api: Api) -> Iterator[list[str]]:
    """Check that the default slot is free, and delete the integration ids the test appends afterwards."""
    existing = current_default(api)
    if existing is not None:
        pytest.fail(f"default integration {existing!r} was left behind by another test; it must be deleted")
    created: list[str] = []
    yield created
    for integration_id in created:
        delete_integration(api, integration_id)


def _new_integration(api: Api, setup: Setup, kind: str, created_ids: list[str]) -> str:
    if kind == "default":
        response = api.create_integration(unique("matrix-default"), space_id=None, is_default=True)
    else:
        response = api.create_integration(unique("matrix-space"), space_id=setup.team)
    assert response.status_code == 201, response.text
    created_ids.append(response.json()["id"])
    return str(response.json()["id"])


def _perform(api: Api, action: str, integration_id: str, headers: dict[str, str]) -> httpx.Response:
    path = f"/api/integrations/{integration_id}"
    if action == "get":
        return api.call("GET", path, headers=headers)
    if action == "update":
        return api.call("PATCH", path, {"description": "changed by the access matrix"}, headers=headers)
    if action == "delete":
        return api.call("DELETE", path, headers=headers)
    if action == "rotate":
        return api.call("POST", f"{path}/rotate-secret", {"gracePeriodMinutes": 0}, headers=headers)
    return api.call("POST", f"{path}/test", headers=headers)


@pytest.mark.parametrize(("kind", "role", "listed"), LIST_CASES, ids=[f"{k}-{r}" for k, r, _ in LIST_CASES])
def test_list_visibility(api: Api, setup: Setup, created_ids: list[str], kind: str, role: str,
                         listed: bool) -> None:
    integration_id = setup.space_integration
    if kind == "default":
        integration_id = _new_integration(api, setup, kind, created_ids)
    secret = api.details(integration_id)["webhookSecret"]

    response = api.call("GET", "/api/integrations", headers=setup.callers[kind][role])

    assert response.status_code == 200
    ids = [entry["id"] for entry in response.json()["integrations"]]
    assert (integration_id in ids) is listed
    assert secret not in response.text
    assert api.stack.sample_pat not in response.text


@pytest.mark.parametrize(("kind", "role", "action", "expected"), ACTION_CASES,
                         ids=[f"{k}-{r}-{a}" for k, r, a, _ in ACTION_CASES])
def test_action_status(api: Api, setup: Setup, created_ids: list[str], kind: str, role: str, action: str,
                       expected: int) -> None:
    headers = setup.callers[kind][role]
    if action == "create":
        space_id = None if kind == "default" else setup.team
        response = api.create_integration(unique("matrix-new"), space_id=space_id, is_default=kind == "default",
                                          headers=headers)
        if response.status_code == 201:
            created_ids.append(response.json()["id"])
        assert response.status_code == expected, response.text
        assert api.stack.sample_pat not in response.text
        return

    # The default integration and every deleted one are made for the case; the rest share one.
    integration_id = setup.space_integration
    if kind == "default" or action == "delete":
        integration_id = _new_integration(api, setup, kind, created_ids)
    secret = api.details(integration_id)["webhookSecret"]

    response = _perform(api, action, integration_id, headers)

    assert response.status_code == expected, response.text
    assert api.stack.sample_pat not in response.text
    if expected >= 400:
        assert error_of(response)["code"] == ("not_found" if expected == 404 else "forbidden")
        assert secret not in response.text


def test_refused_get_hides_existence(api: Api, setup: Setup) -> None:
    stranger = setup.callers["space"]["none"]

    missing_id = unique("no-such-integration")

    hidden = api.call("GET", f"/api/integrations/{setup.space_integration}", headers=stranger)
    missing = api.call("GET", f"/api/integrations/{missing_id}", headers=stranger)

    assert hidden.status_code == 404
    assert missing.status_code == 404
    assert error_of(missing) == {**error_of(hidden),
                                 "message": error_of(hidden)["message"].replace(setup.space_integration, missing_id)}
