import pytest

from shared.core.access import (
    ROLE_ORDER,
    Role,
    RoleBinding,
    Space,
    SpaceTree,
    can_list_integration,
    can_manage,
    can_view_details,
    effective_role,
    has_role,
    highest_role,
    integration_access_space,
    integration_usable_in,
    not_found,
    parse_role,
    readable_spaces,
    refusal,
)
from shared.core.identity import Principal
from shared.errors import NotFound, PermissionDenied, ValidationFailed

# root
# ├── platform
# │   ├── networking
# │   │   └── dns
# │   └── databases
# └── apps
TREE = SpaceTree.from_spaces([
    Space("platform", "root", "Platform"),
    Space("networking", "platform", "Networking"),
    Space("dns", "networking", "DNS"),
    Space("databases", "platform", "Databases"),
    Space("apps", "root", "Apps"),
])
ALL_SPACES = {"root", "platform", "networking", "dns", "databases", "apps"}

BINDINGS = [
    RoleBinding("platform", "Platform-Readers-Group", "read"),
    RoleBinding("networking", "alex@contoso.com", "write"),
    RoleBinding("dns", "ALEX@CONTOSO.COM", "admin"),
    RoleBinding("apps", "apps-admins", "admin"),
    RoleBinding("apps", "apps-admins", "read"),
]


def caller(*subjects: str) -> Principal:
    return Principal(id=subjects[0] if subjects else "nobody", name="caller", subjects=frozenset(subjects),
                     identity_provider="aad")


ALEX = caller("alex@contoso.com", "platform-readers-group")
APPS_ADMIN = caller("apps-admins")
BOOTSTRAP = caller("00000000-0000-0000-0000-00000000000a")
STRANGER = caller("someone@contoso.com")
BOOTSTRAP_ADMINS = ("00000000-0000-0000-0000-00000000000A ", "platform-admins@contoso.com")


@pytest.mark.parametrize(("value", "expected"), [("read", "read"), ("write", "write"), ("admin", "admin"),
                                                 (" Admin ", "admin"), ("WRITE", "write")])
def test_parse_role_valid(value: str, expected: Role) -> None:
    assert parse_role(value) == expected


@pytest.mark.parametrize("value", ["owner", "", "reader", None, 1, ["read"]])
def test_parse_role_rejected(value: object) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_role(value)
    assert caught.value.field == "role"
    assert "read, write, admin" in caught.value.message


def test_role_order() -> None:
    assert ROLE_ORDER == ("read", "write", "admin")


@pytest.mark.parametrize(
    ("roles", "expected"),
    [((), None), ((None,), None), (("read", None, "write"), "write"), (("admin", "read"), "admin")],
)
def test_highest_role_values(roles: tuple[Role | None, ...], expected: Role | None) -> None:
    assert highest_role(roles) == expected


@pytest.mark.parametrize(
    ("space_id", "ancestors"),
    [
        ("root", ("root",)),
        ("platform", ("platform", "root")),
        ("dns", ("dns", "networking", "platform", "root")),
        ("apps", ("apps", "root")),
    ],
)
def test_tree_ancestors(space_id: str, ancestors: tuple[str, ...]) -> None:
    assert TREE.ancestors(space_id) == ancestors


@pytest.mark.parametrize(
    ("space_id", "descendants"),
    [
        ("root", ALL_SPACES),
        ("platform", {"platform", "networking", "dns", "databases"}),
        ("networking", {"networking", "dns"}),
        ("dns", {"dns"}),
    ],
)
def test_tree_descendants(space_id: str, descendants: set[str]) -> None:
    result = TREE.descendants(space_id)
    assert result[0] == space_id
    assert set(result) == descendants
    assert len(result) == len(descendants)


@pytest.mark.parametrize(
    ("space_id", "ancestor_id", "expected"),
    [
        ("dns", "platform", True),
        ("dns", "dns", True),
        ("dns", "root", True),
        ("platform", "dns", False),
        ("apps", "platform", False),
        ("missing", "root", False),
        ("dns", "missing", False),
    ],
)
def test_tree_is_within(space_id: str, ancestor_id: str, expected: bool) -> None:
    assert TREE.is_within(space_id, ancestor_id) is expected


@pytest.mark.parametrize("method", ["ancestors", "descendants"])
def test_tree_unknown_space(method: str) -> None:
    with pytest.raises(NotFound):
        getattr(TREE, method)("missing")


def test_tree_root_added() -> None:
    tree = SpaceTree.from_spaces([])
    assert tree.contains("root")
    assert tree.ancestors("root") == ("root",)


def test_tree_explicit_root() -> None:
    tree = SpaceTree.from_spaces([Space("root", None, "Everything"), Space("a", "root", "A")])
    assert tree.spaces["root"].name == "Everything"
    assert tree.ancestors("a") == ("a", "root")


@pytest.mark.parametrize(
    ("spaces", "fragment"),
    [
        ([Space("a", "missing", "A")], "does not exist"),
        ([Space("a", "b", "A"), Space("b", "a", "B")], "cycle"),
        ([Space("a", "a", "A")], "cycle"),
        ([Space("a", "root", "A"), Space("b", "c", "B"), Space("c", "b", "C")], "b, c form a cycle"),
        ([Space("a", None, "A")], "has no parent"),
        ([Space("root", "a", "Root"), Space("a", "root", "A")], "root space cannot have a parent"),
        ([Space("a", "root", "A"), Space("a", "root", "A again")], "appears twice"),
    ],
)
def test_tree_rejected(spaces: list[Space], fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        SpaceTree.from_spaces(spaces)
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("principal", "space_id", "expected"),
    [
        (ALEX, "root", None),
        (ALEX, "platform", "read"),
        (ALEX, "databases", "read"),
        (ALEX, "networking", "write"),
        (ALEX, "dns", "admin"),
        (ALEX, "apps", None),
        (APPS_ADMIN, "apps", "admin"),
        (APPS_ADMIN, "platform", None),
        (BOOTSTRAP, "root", "admin"),
        (BOOTSTRAP, "dns", "admin"),
        (BOOTSTRAP, "apps", "admin"),
        (STRANGER, "root", None),
        (STRANGER, "dns", None),
    ],
)
def test_effective_role_inherited(principal: Principal, space_id: str, expected: Role | None) -> None:
    assert effective_role(principal, space_id, TREE, BINDINGS, BOOTSTRAP_ADMINS) == expected


def test_effective_role_any_subject() -> None:
    # A group binding and a user binding on the same space: the higher role wins.
    bindings = [RoleBinding("apps", "group-1", "write"), RoleBinding("apps", "user-1", "read")]
    assert effective_role(caller("user-1", "group-1"), "apps", TREE, bindings, ()) == "write"


def test_effective_role_unknown_space() -> None:
    with pytest.raises(NotFound):
        effective_role(ALEX, "missing", TREE, BINDINGS, BOOTSTRAP_ADMINS)


def test_effective_role_bootstrap_by_email() -> None:
    admin = caller("platform-admins@contoso.com")
    assert effective_role(admin, "dns", TREE, [], BOOTSTRAP_ADMINS) == "admin"
    assert effective_role(admin, "dns", TREE, [], ()) is None


@pytest.mark.parametrize(
    ("space_id", "needed", "expected"),
    [
        ("networking", "read", True),
        ("networking", "write", True),
        ("networking", "admin", False),
        ("dns", "admin", True),
        ("apps", "read", False),
    ],
)
def test_has_role_levels(space_id: str, needed: Role, expected: bool) -> None:
    assert has_role(ALEX, space_id, TREE, BINDINGS, BOOTSTRAP_ADMINS, needed) is expected


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (ALEX, {"platform", "networking", "dns", "databases"}),
        (APPS_ADMIN, {"apps"}),
        (BOOTSTRAP, ALL_SPACES),
        (STRANGER, set()),
    ],
)
def test_readable_spaces_sets(principal: Principal, expected: set[str]) -> None:
    assert readable_spaces(principal, TREE, BINDINGS, BOOTSTRAP_ADMINS) == frozenset(expected)


def test_readable_spaces_stale_binding() -> None:
    # A binding left on a deleted space grants nothing.
    bindings = [RoleBinding("deleted", "user-1", "admin")]
    assert readable_spaces(caller("user-1"), TREE, bindings, ()) == frozenset()


ROLES: list[Role | None] = [None, "read", "write", "admin"]

# (is_default, role on the integration's access space) -> (list, view details, manage)
VISIBILITY = {
    (True, None): (True, False, False),
    (True, "read"): (True, False, False),
    (True, "write"): (True, False, False),
    (True, "admin"): (True, True, True),
    (False, None): (False, False, False),
    (False, "read"): (True, False, False),
    (False, "write"): (True, False, False),
    (False, "admin"): (True, True, True),
}


@pytest.mark.parametrize(("is_default", "role"), list(VISIBILITY))
def test_visibility_matrix(is_default: bool, role: Role | None) -> None:
    can_list, can_view, can_change = VISIBILITY[(is_default, role)]
    assert can_list_integration(is_default, role) is can_list
    assert can_view_details(is_default, role) is can_view
    assert can_manage(is_default, role) is can_change


@pytest.mark.parametrize(
    ("principal", "integration_space", "is_default", "expected"),
    [
        # The default integration is governed by roles on root.
        (ALEX, "dns", True, (True, False, False)),
        (BOOTSTRAP, "dns", True, (True, True, True)),
        (STRANGER, "apps", True, (True, False, False)),
        # A space integration by roles on its space, inherited from above.
        (ALEX, "dns", False, (True, True, True)),
        (ALEX, "networking", False, (True, False, False)),
        (ALEX, "databases", False, (True, False, False)),
        (ALEX, "apps", False, (False, False, False)),
        (APPS_ADMIN, "apps", False, (True, True, True)),
        (BOOTSTRAP, "databases", False, (True, True, True)),
    ],
)
def test_visibility_per_caller(principal: Principal, integration_space: str, is_default: bool,
                               expected: tuple[bool, bool, bool]) -> None:
    space = integration_access_space(integration_space, is_default)
    role = effective_role(principal, space, TREE, BINDINGS, BOOTSTRAP_ADMINS)
    result = (can_list_integration(is_default, role), can_view_details(is_default, role),
              can_manage(is_default, role))
    assert result == expected


@pytest.mark.parametrize(
    ("integration_space", "is_default", "stack_space", "expected"),
    [
        ("root", True, "dns", True),
        ("apps", True, "dns", True),
        ("root", True, "missing", False),
        ("platform", False, "platform", True),
        ("platform", False, "dns", True),
        ("platform", False, "apps", False),
        ("platform", False, "root", False),
        ("dns", False, "networking", False),
        ("root", False, "apps", True),
        ("missing", False, "apps", False),
    ],
)
def test_integration_usable_in_spaces(integration_space: str, is_default: bool, stack_space: str,
                                      expected: bool) -> None:
    assert integration_usable_in(integration_space, is_default, stack_space, TREE) is expected


@pytest.mark.parametrize(("space", "is_default", "expected"),
                         [("apps", True, "root"), ("apps", False, "apps"), ("root", False, "root")])
def test_integration_access_space_values(space: str, is_default: bool, expected: str) -> None:
    assert integration_access_space(space, is_default) == expected


def test_refusal_hidden_target() -> None:
    error = refusal(False, "delete", "integration 'prod-ado'")
    assert isinstance(error, NotFound)
    assert error.status == 404
    # Indistinguishable from a target that really does not exist.
    assert error.message == not_found("integration 'prod-ado'").message
    assert "needs the" not in error.message


@pytest.mark.parametrize(("needed", "fragment"), [("admin", "needs the admin role"), ("write", "needs the write role")])
def test_refusal_visible_target(needed: Role, fragment: str) -> None:
    error = refusal(True, "rotate the webhook secret of", "integration 'prod-ado'", needed=needed)
    assert isinstance(error, PermissionDenied)
    assert error.status == 403
    assert fragment in error.message
    assert "rotate the webhook secret of integration 'prod-ado'" in error.message
