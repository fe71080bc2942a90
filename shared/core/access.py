"""Spaces, role bindings and the access decisions for integrations.

Spaces form a tree under the root space `root`. A role bound on a space applies to that space
and every space below it, and a caller's role on a space is the highest role bound to any of
the caller's subjects on the space or an ancestor. Bootstrap admins from the settings are
admins of the root space, and so of every space.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from shared.core.identity import Principal, normalise_subject
from shared.core.naming import ROOT_SPACE_ID
from shared.errors import NotFound, PermissionDenied, RequestError, ValidationFailed

Role = Literal["read", "write", "admin"]
ROLE_ORDER: tuple[Role, ...] = ("read", "write", "admin")
_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLE_ORDER)}


def parse_role(value: object) -> Role:
    """Parse `read`, `write` or `admin` (surrounding whitespace and case ignored)."""
    if isinstance(value, str):
        candidate = value.strip().lower()
        for role in ROLE_ORDER:
            if candidate == role:
                return role
    raise ValidationFailed(f"role {value!r} is not valid; use one of read, write, admin", field="role")


def highest_role(roles: Iterable[Role | None]) -> Role | None:
    """Return the highest of the roles, ignoring None, or None when no role is given."""
    best: Role | None = None
    for role in roles:
        if role is not None and (best is None or _RANK[role] > _RANK[best]):
            best = role
    return best


def role_at_least(role: Role | None, needed: Role) -> bool:
    """Tell whether `role` grants everything `needed` grants."""
    return role is not None and _RANK[role] >= _RANK[needed]


@dataclass(frozen=True)
class Space:
    """A space: a node of the tree that groups stacks, integrations and role bindings."""

    id: str
    parent_id: str | None
    name: str


@dataclass(frozen=True)
class RoleBinding:
    """A role granted to a subject (user, group or object id) on a space and the spaces below it."""

    space_id: str
    subject: str
    role: Role


@dataclass(frozen=True)
class SpaceTree:
    """A validated tree of spaces, built by `SpaceTree.from_spaces`."""

    spaces: Mapping[str, Space]
    children: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_spaces(cls, spaces: Iterable[Space]) -> SpaceTree:
        """Build the tree, adding the root space when the list lacks it.

        Raises ValidationFailed for a repeated id, a space other than root without a parent, a
        root with a parent, an unknown parent or a cycle.
        """
        by_id: dict[str, Space] = {}
        for space in spaces:
            if space.id in by_id:
                raise ValidationFailed(f"space id {space.id!r} appears twice; space ids must be unique", field="id")
            by_id[space.id] = space
        root = by_id.setdefault(ROOT_SPACE_ID, Space(id=ROOT_SPACE_ID, parent_id=None, name=ROOT_SPACE_ID))
        if root.parent_id is not None:
            raise ValidationFailed(
                f"the root space cannot have a parent, but it names {root.parent_id!r}", field="parentId"
            )

        children: dict[str, list[str]] = {space_id: [] for space_id in by_id}
        for space in by_id.values():
            if space.id == ROOT_SPACE_ID:
                continue
            if space.parent_id is None:
                raise ValidationFailed(
                    f"space {space.id!r} has no parent; every space except {ROOT_SPACE_ID!r} needs one",
                    field="parentId",
                )
            if space.parent_id not in by_id:
                raise ValidationFailed(
                    f"space {space.id!r} names parent {space.parent_id!r}, which does not exist; "
                    "create the parent first or choose an existing space",
                    field="parentId",
                )
            children[space.parent_id].append(space.id)

        tree = cls(spaces=by_id, children={key: tuple(value) for key, value in children.items()})
        reachable = set(tree.descendants(ROOT_SPACE_ID))
        unreachable = sorted(set(by_id) - reachable)
        if unreachable:
            raise ValidationFailed(
                f"spaces {', '.join(unreachable)} form a cycle of parents and are not below the root space; "
                "point one of them at an existing space outside the cycle",
                field="parentId",
            )
        return tree

    def contains(self, space_id: str) -> bool:
        """Tell whether the tree has a space with this id."""
        return space_id in self.spaces

    def ancestors(self, space_id: str) -> tuple[str, ...]:
        """Return the space id and those of its ancestors, the space itself first and root last.

        Raises NotFound for an unknown space.
        """
        self._require(space_id)
        chain: list[str] = []
        current: str | None = space_id
        while current is not None:
            chain.append(current)
            current = self.spaces[current].parent_id
        return tuple(chain)

    def descendants(self, space_id: str) -> tuple[str, ...]:
        """Return the space id and those of every space below it, the space itself first.

        Raises NotFound for an unknown space.
        """
        self._require(space_id)
        order = [space_id]
        position = 0
        while position < len(order):
            order.extend(self.children.get(order[position], ()))
            position += 1
        return tuple(order)

    def is_within(self, space_id: str, ancestor_id: str) -> bool:
        """Tell whether `space_id` is `ancestor_id` or below it (False when either is unknown)."""
        if not (self.contains(space_id) and self.contains(ancestor_id)):
            return False
        return ancestor_id in self.ancestors(space_id)

    def _require(self, space_id: str) -> None:
        if space_id not in self.spaces:
            raise not_found(f"space {space_id!r}")


def effective_role(principal: Principal, space_id: str, tree: SpaceTree, bindings: Iterable[RoleBinding],
                   bootstrap_admins: Iterable[str]) -> Role | None:
    """Return the caller's role on a space: the highest role bound to any of the caller's subjects
    on the space or an ancestor, or None. Raises NotFound for an unknown space."""
    ancestors = set(tree.ancestors(space_id))
    direct = _direct_roles(principal, bindings, bootstrap_admins)
    return highest_role(role for bound_space, role in direct.items() if bound_space in ancestors)


def has_role(principal: Principal, space_id: str, tree: SpaceTree, bindings: Iterable[RoleBinding],
             bootstrap_admins: Iterable[str], needed: Role) -> bool:
    """Tell whether the caller has at least the `needed` role on the space."""
    return role_at_least(effective_role(principal, space_id, tree, bindings, bootstrap_admins), needed)


def readable_spaces(principal: Principal, tree: SpaceTree, bindings: Iterable[RoleBinding],
                    bootstrap_admins: Iterable[str]) -> frozenset[str]:
    """Return the ids of the spaces on which the caller has at least the read role."""
    direct = _direct_roles(principal, bindings, bootstrap_admins)
    readable: set[str] = set()
    for bound_space in direct:
        if tree.contains(bound_space):
            readable.update(tree.descendants(bound_space))
    return frozenset(readable)


def _direct_roles(principal: Principal, bindings: Iterable[RoleBinding],
                  bootstrap_admins: Iterable[str]) -> dict[str, Role]:
    """Map each space to the highest role bound there to one of the caller's subjects."""
    direct: dict[str, Role] = {}
    admins = {normalise_subject(subject) for subject in bootstrap_admins}
    if admins & principal.subjects:
        direct[ROOT_SPACE_ID] = "admin"
    for binding in bindings:
        if normalise_subject(binding.subject) not in principal.subjects:
            continue
        best = highest_role((direct.get(binding.space_id), binding.role))
        if best is not None:
            direct[binding.space_id] = best
    return direct


def integration_access_space(integration_space_id: str, is_default: bool) -> str:
    """Return the space whose roles govern an integration: root for the default integration."""
    return ROOT_SPACE_ID if is_default else integration_space_id


def can_list_integration(is_default: bool, role: Role | None) -> bool:
    """Tell whether the integration appears in the caller's list.

    `role` is the caller's role on the integration's space. The default integration is listed
    to every authenticated caller, a space integration to readers of its space.
    """
    return is_default or role_at_least(role, "read")


def can_view_details(is_default: bool, role: Role | None) -> bool:
    """Tell whether the caller may see the webhook endpoint and secret, organization URL and host URL.

    `role` is the caller's role on `integration_access_space(...)`: admins of root for the
    default integration, admins of the integration's space otherwise.
    """
    del is_default  # one rule for both, because `role` is already taken on the right space
    return role_at_least(role, "admin")


def can_manage(is_default: bool, role: Role | None) -> bool:
    """Tell whether the caller may create, update, delete, rotate or test the integration.

    `role` is the caller's role on `integration_access_space(...)`, so managing the default
    integration needs admin on root.
    """
    del is_default  # one rule for both, because `role` is already taken on the right space
    return role_at_least(role, "admin")


def integration_usable_in(integration_space_id: str, is_default: bool, stack_space_id: str,
                          tree: SpaceTree) -> bool:
    """Tell whether a stack in `stack_space_id` may use the integration.

    The default integration is usable in every space of the tree. A space integration is usable
    in its own space and the spaces below it.
    """
    if is_default:
        return tree.contains(stack_space_id)
    return tree.is_within(stack_space_id, integration_space_id)


def not_found(target: str) -> NotFound:
    """Build the NotFound error for a missing target.

    `refusal` returns the same error for a target the caller cannot see, so use this for real
    misses too and the two stay indistinguishable.
    """
    return NotFound(f"{target} was not found; check the id, or ask an admin of its space for read access")


def refusal(can_see: bool, action: str, target: str, *, needed: Role = "admin") -> RequestError:
    """Build the error for a refused action.

    Returns NotFound when the caller cannot see the target, so its existence does not leak, and
    PermissionDenied naming the `needed` role when the caller can see it.
    """
    if not can_see:
        return not_found(target)
    return PermissionDenied(
        f"you may not {action} {target}: this needs the {needed} role on its space; "
        "ask an admin of that space to grant it"
    )
