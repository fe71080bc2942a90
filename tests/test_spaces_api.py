"""`/api/spaces` end to end through the local host: the space tree, role bindings, inheritance and
the 401, 403 and 404 rules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.api_helpers import create_space, delete_integration, delete_space, error_of, grant, unique, user
from tests.fixtures.app_host import Api, principal_headers


@dataclass
class Tree:
    """`top` under root, `child` under `top` and `leaf` under `child`, each with a unique id."""

    top: str
    child: str
    leaf: str


@pytest.fixture
def tree(api: Api) -> Iterator[Tree]:
    top = unique("top")
    spaces = Tree(top, f"{top}-child", f"{top}-leaf")
    create_space(api, spaces.top)
    create_space(api, spaces.child, spaces.top)
    create_space(api, spaces.leaf, spaces.child)
    yield spaces
    for space_id in (spaces.leaf, spaces.child, spaces.top):
        delete_space(api, space_id)


def _subject() -> str:
    return f"{unique('user')}@example.com"


def _visible(api: Api, headers: dict[str, str]) -> set[str]:
    response = api.call("GET", "/api/spaces", headers=headers)
    assert response.status_code == 200, response.text
    return {space["id"] for space in response.json()["spaces"]}


# Creating, reading and listing

def test_create_nested_spaces(api: Api, tree: Tree) -> None:
    response = api.as_admin("GET", f"/api/spaces/{tree.leaf}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == tree.leaf
    assert body["parentId"] == tree.child
    assert body["yourRole"] == "admin"


def test_create_returns_space(api: Api) -> None:
    name = unique("Platform Team")

    response = api.as_admin("POST", "/api/spaces", {"name": f"  {name} ", "description": "Owns the VPCs."})

    assert response.status_code == 201, response.text
    body = response.json()
    space_id = name.lower().replace(" ", "-")
    delete_space(api, space_id)
    assert body["id"] == space_id
    assert response.headers["Location"] == f"/api/spaces/{space_id}"
    assert body["name"] == name
    assert body["parentId"] == "root"
    assert body["description"] == "Owns the VPCs."


def test_create_existing_id(api: Api, tree: Tree) -> None:
    response = api.as_admin("POST", "/api/spaces", {"name": tree.child.upper(), "parentId": tree.top})

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "space_exists"
    assert error["field"] == "id"


@pytest.mark.parametrize("space_id", ["Upper-Case", "under_score", "double--hyphen", "-edge"])
def test_create_invalid_id(api: Api, space_id: str) -> None:
    response = api.as_admin("POST", "/api/spaces", {"name": "Anything", "id": space_id})

    assert response.status_code == 422
    assert error_of(response)["field"] == "id"


def test_create_root_name(api: Api) -> None:
    response = api.as_admin("POST", "/api/spaces", {"name": "ROOT"})

    assert response.status_code == 409
    assert error_of(response)["code"] == "space_exists"


def test_create_unknown_parent(api: Api) -> None:
    response = api.as_admin("POST", "/api/spaces", {"name": unique("orphan"), "parentId": unique("nowhere")})

    assert response.status_code == 422
    assert error_of(response)["field"] == "parentId"


def test_list_shows_readable_only(api: Api, tree: Tree) -> None:
    subject = _subject()
    grant(api, tree.child, subject, "read")

    visible = _visible(api, user(subject))

    assert {tree.child, tree.leaf} <= visible
    assert tree.top not in visible
    assert "root" not in visible


def test_list_for_stranger_is_empty(api: Api, tree: Tree) -> None:
    assert _visible(api, user(_subject())) == set()


def test_root_admin_lists_all(api: Api, tree: Tree) -> None:
    assert {"root", tree.top, tree.child, tree.leaf} <= _visible(api, principal_headers("local-admin"))


def test_get_hidden_space(api: Api, tree: Tree) -> None:
    stranger = user(_subject())

    hidden = api.call("GET", f"/api/spaces/{tree.top}", headers=stranger)
    missing = api.call("GET", f"/api/spaces/{tree.top}-missing", headers=stranger)

    assert hidden.status_code == 404
    assert missing.status_code == 404
    assert error_of(missing)["message"] == error_of(hidden)["message"].replace(tree.top, f"{tree.top}-missing")


# Roles: granting, revoking and inheritance

@pytest.mark.parametrize("role", ["read", "write", "admin"])
def test_role_inherited(api: Api, tree: Tree, role: str) -> None:
    subject = _subject()
    grant(api, tree.top, subject, role)

    response = api.call("GET", f"/api/spaces/{tree.leaf}", headers=user(subject))

    assert response.status_code == 200
    assert response.json()["yourRole"] == role


def test_highest_role_wins(api: Api, tree: Tree) -> None:
    subject = _subject()
    grant(api, tree.top, subject, "admin")
    grant(api, tree.child, subject, "read")

    response = api.call("GET", f"/api/spaces/{tree.leaf}", headers=user(subject))

    assert response.json()["yourRole"] == "admin"


def test_role_not_inherited_upwards(api: Api, tree: Tree) -> None:
    subject = _subject()
    grant(api, tree.child, subject, "admin")

    response = api.call("GET", f"/api/spaces/{tree.top}", headers=user(subject))

    assert response.status_code == 404


def test_group_binding(api: Api, tree: Tree) -> None:
    group = "5a1b2c3d-0000-4000-8000-00000000cafe"
    grant(api, tree.child, group.upper(), "write")
    member = principal_headers(unique("member"), groups=(group,))

    response = api.call("GET", f"/api/spaces/{tree.child}", headers=member)

    assert response.status_code == 200
    assert response.json()["yourRole"] == "write"


def test_grant_returns_binding(api: Api, tree: Tree) -> None:
    response = api.as_admin("POST", f"/api/spaces/{tree.child}/roles",
                            {"subject": "  Someone@Example.com ", "role": "write"})

    assert response.status_code == 200
    assert response.json() == {"spaceId": tree.child, "subject": "someone@example.com", "role": "write"}
    listed = api.as_admin("GET", f"/api/spaces/{tree.child}/roles").json()["bindings"]
    assert {"spaceId": tree.child, "subject": "someone@example.com", "role": "write"} in listed


def test_grant_replaces_role(api: Api, tree: Tree) -> None:
    subject = _subject()
    grant(api, tree.child, subject, "admin")
    grant(api, tree.child, subject, "read")

    response = api.call("GET", f"/api/spaces/{tree.child}", headers=user(subject))

    assert response.json()["yourRole"] == "read"


def test_revoke_removes_access(api: Api, tree: Tree) -> None:
    subject = _subject()
    grant(api, tree.child, subject, "read")

    response = api.as_admin("DELETE", f"/api/spaces/{tree.child}/roles/{subject.upper()}")

    assert response.status_code == 204
    assert api.call("GET", f"/api/spaces/{tree.child}", headers=user(subject)).status_code == 404


def test_revoke_missing_binding(api: Api, tree: Tree) -> None:
    response = api.as_admin("DELETE", f"/api/spaces/{tree.child}/roles/{_subject()}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize("role", ["owner", "", "READ ", 3])
def test_grant_invalid_role(api: Api, tree: Tree, role: object) -> None:
    response = api.as_admin("POST", f"/api/spaces/{tree.child}/roles", {"subject": _subject(), "role": role})

    assert response.status_code == 422
    assert error_of(response)["field"] == "role"


@pytest.mark.parametrize("subject", ["", "   "], ids=["empty", "blank"])
def test_grant_invalid_subject(api: Api, tree: Tree, subject: str) -> None:
    response = api.as_admin("POST", f"/api/spaces/{tree.child}/roles", {"subject": subject, "role": "read"})

    assert response.status_code == 422
    assert error_of(response)["field"] == "subject"


# Who may manage spaces and roles

@pytest.mark.parametrize(("role", "expected"), [
    (None, 404), ("read", 403), ("write", 403), ("admin", 200),
], ids=["none", "read", "write", "admin"])
def test_grant_needs_admin(api: Api, tree: Tree, role: str | None, expected: int) -> None:
    caller = _subject()
    if role is not None:
        grant(api, tree.child, caller, role)

    response = api.call("POST", f"/api/spaces/{tree.child}/roles", {"subject": _subject(), "role": "read"},
                        headers=user(caller))

    assert response.status_code == expected


def test_grant_by_parent_admin(api: Api, tree: Tree) -> None:
    caller = _subject()
    grant(api, tree.top, caller, "admin")

    response = api.call("POST", f"/api/spaces/{tree.leaf}/roles", {"subject": _subject(), "role": "admin"},
                        headers=user(caller))

    assert response.status_code == 200


@pytest.mark.parametrize(("role", "expected"), [
    (None, 404), ("read", 403), ("write", 403), ("admin", 204),
], ids=["none", "read", "write", "admin"])
def test_revoke_needs_admin(api: Api, tree: Tree, role: str | None, expected: int) -> None:
    caller, target = _subject(), _subject()
    grant(api, tree.child, target, "read")
    if role is not None:
        grant(api, tree.child, caller, role)

    response = api.call("DELETE", f"/api/spaces/{tree.child}/roles/{target}", headers=user(caller))

    assert response.status_code == expected


@pytest.mark.parametrize(("role", "expected"), [
    (None, 404), ("read", 403), ("write", 403), ("admin", 201),
], ids=["none", "read", "write", "admin"])
def test_create_needs_parent_admin(api: Api, tree: Tree, role: str | None, expected: int) -> None:
    caller = _subject()
    if role is not None:
        grant(api, tree.child, caller, role)
    space_id = unique("new")

    response = api.call("POST", "/api/spaces", {"name": space_id, "parentId": tree.child}, headers=user(caller))

    if response.status_code == 201:
        delete_space(api, space_id)
    assert response.status_code == expected


@pytest.mark.parametrize(("bound_on", "expected"), [
    ("leaf", 403), ("child", 204), ("top", 204),
], ids=["space-itself", "parent", "grandparent"])
def test_delete_needs_parent_admin(api: Api, tree: Tree, bound_on: str, expected: int) -> None:
    caller = _subject()
    grant(api, getattr(tree, bound_on), caller, "admin")

    response = api.call("DELETE", f"/api/spaces/{tree.leaf}", headers=user(caller))

    assert response.status_code == expected


def test_delete_hidden_space(api: Api, tree: Tree) -> None:
    stranger = user(_subject())

    hidden = api.call("DELETE", f"/api/spaces/{tree.leaf}", headers=stranger)
    missing = api.call("DELETE", f"/api/spaces/{tree.leaf}-missing", headers=stranger)

    assert hidden.status_code == 404
    assert missing.status_code == 404
    assert error_of(missing)["message"] == error_of(hidden)["message"].replace(tree.leaf, f"{tree.leaf}-missing")


def test_create_in_hidden_parent(api: Api, tree: Tree) -> None:
    stranger = user(_subject())

    hidden = api.call("POST", "/api/spaces", {"name": unique("probe"), "parentId": tree.top}, headers=stranger)
    missing = api.call("POST", "/api/spaces", {"name": unique("probe"), "parentId": f"{tree.top}-missing"},
                       headers=stranger)

    assert hidden.status_code == 404
    assert missing.status_code == 404
    assert error_of(missing)["message"] == error_of(hidden)["message"].replace(tree.top, f"{tree.top}-missing")


def test_list_roles_needs_admin(api: Api, tree: Tree) -> None:
    caller = _subject()
    grant(api, tree.child, caller, "write")

    response = api.call("GET", f"/api/spaces/{tree.child}/roles", headers=user(caller))

    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


# Deleting

def test_delete_space(api: Api, tree: Tree) -> None:
    subject = _subject()
    grant(api, tree.leaf, subject, "read")

    response = api.as_admin("DELETE", f"/api/spaces/{tree.leaf}")

    assert response.status_code == 204
    assert api.as_admin("GET", f"/api/spaces/{tree.leaf}").status_code == 404
    assert tree.leaf not in _visible(api, principal_headers("local-admin"))
    assert api.call("GET", f"/api/spaces/{tree.leaf}", headers=user(subject)).status_code == 404


def test_delete_space_with_children(api: Api, tree: Tree) -> None:
    response = api.as_admin("DELETE", f"/api/spaces/{tree.child}")

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "space_not_empty"
    assert tree.leaf in error["message"]


def test_delete_space_with_integration(api: Api, tree: Tree) -> None:
    created = api.create_integration(unique("Blocker"), space_id=tree.leaf)
    assert created.status_code == 201, created.text
    try:
        response = api.as_admin("DELETE", f"/api/spaces/{tree.leaf}")
    finally:
        delete_integration(api, created.json()["id"])

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "space_not_empty"
    assert created.json()["id"] in error["message"]


def test_root_not_deleted(api: Api) -> None:
    response = api.as_admin("DELETE", "/api/spaces/root")

    assert response.status_code == 409
    assert error_of(response)["code"] == "root_space"
    assert "root" in _visible(api, principal_headers("local-admin"))


# Missing identity and malformed requests

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/spaces"), ("POST", "/api/spaces"), ("GET", "/api/spaces/root"), ("DELETE", "/api/spaces/{top}"),
    ("GET", "/api/spaces/root/roles"), ("POST", "/api/spaces/root/roles"),
    ("DELETE", "/api/spaces/root/roles/local-admin"),
])
def test_missing_identity(api: Api, tree: Tree, method: str, path: str) -> None:
    response = api.call(method, path.format(top=tree.top), {"name": "x", "subject": "x", "role": "admin"})

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"
    assert api.as_admin("GET", f"/api/spaces/{tree.top}").status_code == 200


@pytest.mark.parametrize(("path", "raw", "status"), [
    ("/api/spaces", b"{broken", 400),
    ("/api/spaces", b'"text"', 400),
    ("/api/spaces", b"", 422),
    ("/api/spaces", b'{"name": 7}', 422),
    ("/api/spaces", b'{"name": "x", "owner": "me"}', 422),
    ("/api/spaces/root/roles", b"{broken", 400),
    ("/api/spaces/root/roles", b'{"subject": ["a"], "role": "read"}', 422),
], ids=["broken", "string", "empty", "wrong-type", "unknown-field", "roles-broken", "roles-wrong-type"])
def test_malformed_request(api: Api, path: str, raw: bytes, status: int) -> None:
    response = api.as_admin("POST", path, raw=raw)

    assert response.status_code == status
    assert error_of(response)["code"] in ("invalid", "invalid_json")
