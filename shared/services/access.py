"""The caller's roles for one request: spaces and bindings loaded once, decisions from the core."""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.access import (
    Role,
    RoleBinding,
    SpaceTree,
    effective_role,
    has_role,
    readable_spaces,
    refusal,
)
from shared.core.identity import Principal
from shared.errors import NotFound
from shared.storage.spaces import SpaceRecord, SpaceRepository


@dataclass(frozen=True)
class AccessContext:
    """Who is calling, and the space tree and role bindings their roles derive from."""

    principal: Principal
    tree: SpaceTree
    spaces: tuple[SpaceRecord, ...]
    bindings: tuple[RoleBinding, ...]
    bootstrap_admins: tuple[str, ...]

    @classmethod
    def load(cls, principal: Principal, spaces: SpaceRepository, bootstrap_admins: tuple[str, ...]) -> AccessContext:
        records = tuple(spaces.list_spaces())
        tree = SpaceTree.from_spaces([record.to_space() for record in records])
        return cls(principal, tree, records, tuple(spaces.list_bindings()), bootstrap_admins)

    @property
    def actor(self) -> str:
        return self.principal.name or self.principal.id

    def role_on(self, space_id: str) -> Role | None:
        if not self.tree.contains(space_id):
            return None
        return effective_role(self.principal, space_id, self.tree, self.bindings, self.bootstrap_admins)

    def has(self, space_id: str, needed: Role) -> bool:
        if not self.tree.contains(space_id):
            return False
        return has_role(self.principal, space_id, self.tree, self.bindings, self.bootstrap_admins, needed)

    def readable(self) -> frozenset[str]:
        return readable_spaces(self.principal, self.tree, self.bindings, self.bootstrap_admins)

    def require(self, space_id: str, needed: Role, *, action: str, target: str) -> None:
        """Raise 404 if the caller cannot read the space, 403 if they can but lack `needed`."""
        if self.has(space_id, needed):
            return
        raise refusal(self.has(space_id, "read"), action, target)

    def space(self, space_id: str) -> SpaceRecord:
        for record in self.spaces:
            if record.id == space_id:
                return record
        raise NotFound(f"Space {space_id!r} was not found.")
