"""Spaces and role bindings in Table Storage.

Spaces share the partition `space`; role bindings are partitioned by space id with the
normalised subject as row key, so one subject has one role per space.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.core.access import Role, RoleBinding, Space
from shared.errors import Conflict, NotFound
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.names import ROLE_BINDINGS_TABLE, SPACES_TABLE

SPACE_PARTITION = "space"
ROOT_SPACE_ID = "root"
_DEPENDENCY = "Table Storage"


@dataclass(frozen=True)
class SpaceRecord:
    """A space as stored, with who created it."""

    id: str
    parent_id: str | None
    name: str
    description: str
    created_at: datetime
    created_by: str

    def to_space(self) -> Space:
        return Space(id=self.id, parent_id=self.parent_id, name=self.name)


def _space_from_entity(entity: Any) -> SpaceRecord:
    return SpaceRecord(id=entity["RowKey"], parent_id=entity.get("parentId") or None,
                       name=entity.get("name", entity["RowKey"]), description=entity.get("description", ""),
                       created_at=entity.get("createdAt") or datetime.now(UTC),
                       created_by=entity.get("createdBy", ""))


class SpaceRepository:
    """Reads and writes spaces and role bindings."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _spaces(self) -> TableClient:
        return self._clients.table(SPACES_TABLE)

    @property
    def _bindings(self) -> TableClient:
        return self._clients.table(ROLE_BINDINGS_TABLE)

    def list_spaces(self) -> list[SpaceRecord]:
        """Return every space; the root space is always included, stored or not."""
        with storage_errors(_DEPENDENCY):
            entities = list(self._spaces.query_entities("PartitionKey eq @pk", parameters={"pk": SPACE_PARTITION}))
        records = [_space_from_entity(entity) for entity in entities]
        if not any(record.id == ROOT_SPACE_ID for record in records):
            records.append(SpaceRecord(ROOT_SPACE_ID, None, "root", "The account's top space.",
                                       datetime(1970, 1, 1, tzinfo=UTC), "system"))
        return sorted(records, key=lambda record: record.id)

    def create_space(self, record: SpaceRecord) -> SpaceRecord:
        entity = {"PartitionKey": SPACE_PARTITION, "RowKey": record.id, "parentId": record.parent_id or "",
                  "name": record.name, "description": record.description, "createdAt": record.created_at,
                  "createdBy": record.created_by}
        try:
            with storage_errors(_DEPENDENCY):
                self._spaces.create_entity(entity)
        except ResourceExistsError as error:
            raise Conflict(f"Space {record.id!r} already exists. Choose another name or id.",
                           field="id", code="space_exists") from error
        return record

    def delete_space(self, space_id: str) -> None:
        try:
            with storage_errors(_DEPENDENCY):
                self._spaces.delete_entity(SPACE_PARTITION, space_id)
                bindings = list(self._bindings.query_entities("PartitionKey eq @pk", parameters={"pk": space_id}))
                for binding in bindings:
                    self._bindings.delete_entity(space_id, binding["RowKey"])
        except ResourceNotFoundError as error:
            raise NotFound(f"Space {space_id!r} was not found.") from error

    def list_bindings(self) -> list[RoleBinding]:
        with storage_errors(_DEPENDENCY):
            entities = list(self._bindings.list_entities())
        return [RoleBinding(space_id=entity["PartitionKey"], subject=entity["subject"], role=entity["role"])
                for entity in entities]

    def grant(self, space_id: str, subject: str, normalized_subject: str, role: Role, granted_by: str) -> None:
        entity = {"PartitionKey": space_id, "RowKey": _binding_key(normalized_subject), "subject": normalized_subject,
                  "displaySubject": subject, "role": role, "grantedBy": granted_by,
                  "grantedAt": datetime.now(UTC)}
        with storage_errors(_DEPENDENCY):
            self._bindings.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def revoke(self, space_id: str, normalized_subject: str) -> bool:
        """Remove the subject's role on the space; return False when it had none."""
        try:
            with storage_errors(_DEPENDENCY):
                self._bindings.get_entity(space_id, _binding_key(normalized_subject))
                self._bindings.delete_entity(space_id, _binding_key(normalized_subject))
        except ResourceNotFoundError:
            return False
        return True


def _binding_key(normalized_subject: str) -> str:
    # Row keys may not contain '/', '\\', '#' or '?'; subjects are GUIDs, emails and UPNs, so
    # escape those characters rather than reject a legitimate subject.
    return (normalized_subject.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
            .replace("#", "%23").replace("?", "%3F"))
