"""Creating and deleting spaces, and granting and revoking roles on them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from shared.api_models import RoleBindingOut, RoleGrant, SpaceCreate, SpaceOut
from shared.core.access import not_found, parse_role, refusal
from shared.core.identity import normalise_subject
from shared.core.naming import space_id as derive_space_id
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.services.access import AccessContext
from shared.storage.integrations import IntegrationRepository
from shared.storage.spaces import ROOT_SPACE_ID, SpaceRecord, SpaceRepository
from shared.storage.stacks import StackRepository

logger = logging.getLogger(__name__)


class SpaceService:
    """The space and role use cases, each checked against the caller's roles."""

    def __init__(self, spaces: SpaceRepository, integrations: IntegrationRepository,
                 stacks: StackRepository | None = None) -> None:
        self._spaces = spaces
        self._integrations = integrations
        self._stacks = stacks

    @staticmethod
    def to_api(context: AccessContext, record: SpaceRecord) -> SpaceOut:
        return SpaceOut(id=record.id, name=record.name, parent_id=record.parent_id, description=record.description,
                        your_role=context.role_on(record.id))

    def list_visible(self, context: AccessContext) -> list[SpaceOut]:
        readable = context.readable()
        return [self.to_api(context, record) for record in context.spaces if record.id in readable]

    def get(self, context: AccessContext, space_id: str) -> SpaceOut:
        if not context.has(space_id, "read"):
            raise NotFound(f"Space {space_id!r} was not found.")
        return self.to_api(context, context.space(space_id))

    def create(self, context: AccessContext, body: SpaceCreate) -> SpaceOut:
        new_id = body.id.strip() if body.id else derive_space_id(body.name)
        if new_id != derive_space_id(new_id):
            raise ValidationFailed(f"Space id {new_id!r} is invalid: use lowercase letters, digits and single "
                                   f"hyphens, such as {derive_space_id(new_id)!r}.", field="id")
        action, target = "create a space in", f"space {body.parent_id!r}"
        if not context.tree.contains(body.parent_id):
            # Only callers who can read every space learn that a space does not exist. To anyone
            # else, a missing space looks like one they cannot see.
            if not context.has(ROOT_SPACE_ID, "read"):
                raise refusal(False, action, target)
            raise ValidationFailed(f"Parent space {body.parent_id!r} does not exist. Use an id from GET /api/spaces.",
                                   field="parentId")
        context.require(body.parent_id, "admin", action=action, target=target)
        if context.tree.contains(new_id):
            raise Conflict(f"Space {new_id!r} already exists. Choose another name or id.", field="id",
                           code="space_exists")
        record = SpaceRecord(id=new_id, parent_id=body.parent_id, name=body.name.strip(),
                             description=body.description, created_at=datetime.now(UTC),
                             created_by=context.actor)
        self._spaces.create_space(record)
        logger.info("Created space %s under %s by %s", new_id, body.parent_id, context.actor)
        return SpaceOut(id=record.id, name=record.name, parent_id=record.parent_id, description=record.description,
                        your_role=context.role_on(body.parent_id))

    def delete(self, context: AccessContext, space_id: str) -> None:
        if space_id == ROOT_SPACE_ID:
            raise ValidationFailed("The root space cannot be deleted.", field="id", status=409, code="root_space")
        if not context.tree.contains(space_id):
            # The same error as the refusal below, so a missing space and a hidden one look alike.
            raise not_found(f"space {space_id!r}")
        parent = context.space(space_id).parent_id or ROOT_SPACE_ID
        if not context.has(parent, "admin"):
            raise refusal(context.has(space_id, "read"), "delete", f"space {space_id!r}")
        children = [record.id for record in context.spaces if record.parent_id == space_id]
        if children:
            raise Conflict(f"Space {space_id!r} still has child spaces ({', '.join(children)}). Delete them first.",
                           code="space_not_empty")
        used_by = [record.id for record in self._integrations.list() if record.space_id == space_id]
        if used_by:
            raise Conflict(f"Space {space_id!r} still has integrations ({', '.join(used_by)}). Delete them first.",
                           code="space_not_empty")
        if self._stacks is not None:
            in_space = [f"{record.kind} {record.id}" for kind in ("stack", "module")
                        for record in self._stacks.list(kind) if record.space_id == space_id]
            if in_space:
                raise Conflict(f"Space {space_id!r} still has stacks or modules ({', '.join(in_space)}). Delete or "
                               "move them first.", code="space_not_empty")
        self._spaces.delete_space(space_id)
        logger.info("Deleted space %s by %s", space_id, context.actor)

    def list_bindings(self, context: AccessContext, space_id: str) -> list[RoleBindingOut]:
        context.require(space_id, "admin", action="list roles of", target=f"space {space_id!r}")
        return [RoleBindingOut(space_id=binding.space_id, subject=binding.subject, role=binding.role)
                for binding in context.bindings if binding.space_id == space_id]

    def grant(self, context: AccessContext, space_id: str, body: RoleGrant) -> RoleBindingOut:
        context.require(space_id, "admin", action="grant roles on", target=f"space {space_id!r}")
        subject = normalise_subject(body.subject)
        if not subject:
            raise ValidationFailed("The subject is empty. Use an Entra object id, a user principal name or email, "
                                   "or a group object id.", field="subject")
        role = parse_role(body.role)
        self._spaces.grant(space_id, body.subject.strip(), subject, role, context.actor)
        logger.info("Granted %s on space %s to %s by %s", role, space_id, subject, context.actor)
        return RoleBindingOut(space_id=space_id, subject=subject, role=role)

    def revoke(self, context: AccessContext, space_id: str, subject: str) -> None:
        context.require(space_id, "admin", action="revoke roles on", target=f"space {space_id!r}")
        if not self._spaces.revoke(space_id, normalise_subject(subject)):
            raise NotFound(f"Subject {subject!r} has no role on space {space_id!r}.")
        logger.info("Revoked the role on space %s of %s by %s", space_id, subject, context.actor)

