"""Stacks and modules in Table Storage, with the routing index that event processing reads.

`Stacks` contains one row per stack or module: partition `stack` or `module`, row key the id.
`StackRoutes` contains one row per stack too, in partition `<integration id>|<repository id>` (the
repository GUID in lowercase) with row key `<kind>|<id>`. It copies every field routing needs, so
routing an event of one repository reads one partition, whatever the number of stacks.

The two tables cannot share a transaction. Writes go in an order that a repeated request repairs:
create writes the stack and then its route, and removes the stack again if the route fails.
Replace writes the stack and then rewrites its route. Delete removes the route and then the stack.
NOTE: a process that dies between the two writes of `replace` leaves the route stale until the
next update of that stack. Nothing repairs it in the background yet.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import Conflict, NotFound, PreconditionFailed, StackhookError
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.names import STACK_ROUTES_TABLE, STACKS_TABLE

logger = logging.getLogger(__name__)

STACK_KINDS = ("stack", "module")
_DEPENDENCY = "Table Storage"
_KEY_SEPARATOR = "|"
_TRANSACTION_LIMIT = 100  # operations per Table Storage transaction, all in one partition


def route_partition(integration_id: str, repository_id: str) -> str:
    """Return the `StackRoutes` partition key of one integration and repository."""
    return f"{integration_id}{_KEY_SEPARATOR}{repository_id.lower()}"


def route_row(kind: str, stack_id: str) -> str:
    return f"{kind}{_KEY_SEPARATOR}{stack_id}"


def _label(kind: str) -> str:
    return "Module" if kind == "module" else "Stack"


@dataclass(frozen=True)
class StackRoute:
    """The fields routing needs about one stack of a repository, as stored in the routing index.

    `project_globs` are the additional globs; the project root is in `project_root`.
    """

    kind: str
    id: str
    name: str
    space_id: str
    tracked_branch: str
    project_root: str
    project_globs: tuple[str, ...]
    repository_id: str
    project_id: str
    integration_id: str = ""
    project_name: str = ""
    repository_name: str = ""

    @classmethod
    def from_entity(cls, entity: Any) -> StackRoute:
        return cls(kind=entity["kind"], id=entity["stackId"], name=entity.get("name", ""),
                   space_id=entity["spaceId"], tracked_branch=entity["trackedBranch"],
                   project_root=entity.get("projectRoot", ""),
                   project_globs=tuple(json.loads(entity.get("projectGlobs") or "[]")),
                   repository_id=entity["repositoryId"], project_id=entity["projectId"],
                   integration_id=entity.get("integrationId", ""), project_name=entity.get("projectName", ""),
                   repository_name=entity.get("repositoryName", ""))


@dataclass(frozen=True)
class StackRecord:
    """A stack or module as stored. `terraform_provider` and `module_name` are set for modules only."""

    kind: str
    id: str
    name: str
    space_id: str
    integration_id: str
    project_id: str
    project_name: str
    repository_id: str
    repository_name: str
    tracked_branch: str
    project_root: str
    additional_project_globs: tuple[str, ...]
    labels: tuple[str, ...]
    description: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    terraform_provider: str | None = None
    module_name: str | None = None
    etag: str | None = None

    @property
    def route_key(self) -> tuple[str, str]:
        """The (partition, row) of this stack's row in the routing index."""
        return route_partition(self.integration_id, self.repository_id), route_row(self.kind, self.id)

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.kind,
            "RowKey": self.id,
            "name": self.name,
            "spaceId": self.space_id,
            "integrationId": self.integration_id,
            "projectId": self.project_id,
            "projectName": self.project_name,
            "repositoryId": self.repository_id,
            "repositoryName": self.repository_name,
            "trackedBranch": self.tracked_branch,
            "projectRoot": self.project_root,
            "additionalProjectGlobs": json.dumps(list(self.additional_project_globs)),
            "labels": json.dumps(list(self.labels)),
            "description": self.description,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "createdBy": self.created_by,
            "updatedBy": self.updated_by,
        }
        if self.kind == "module":
            entity["terraformProvider"] = self.terraform_provider or ""
            entity["moduleName"] = self.module_name or ""
        return entity

    def to_route_entity(self) -> dict[str, Any]:
        partition, row = self.route_key
        return {
            "PartitionKey": partition,
            "RowKey": row,
            "kind": self.kind,
            "stackId": self.id,
            "name": self.name,
            "spaceId": self.space_id,
            "integrationId": self.integration_id,
            "trackedBranch": self.tracked_branch,
            "projectRoot": self.project_root,
            "projectGlobs": json.dumps(list(self.additional_project_globs)),
            "projectId": self.project_id,
            "projectName": self.project_name,
            "repositoryId": self.repository_id,
            "repositoryName": self.repository_name,
        }

    @classmethod
    def from_entity(cls, entity: Any) -> StackRecord:
        etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
        kind = entity["PartitionKey"]
        return cls(
            kind=kind,
            id=entity["RowKey"],
            name=entity["name"],
            space_id=entity["spaceId"],
            integration_id=entity["integrationId"],
            project_id=entity["projectId"],
            project_name=entity.get("projectName", ""),
            repository_id=entity["repositoryId"],
            repository_name=entity.get("repositoryName", ""),
            tracked_branch=entity["trackedBranch"],
            project_root=entity.get("projectRoot", ""),
            additional_project_globs=tuple(json.loads(entity.get("additionalProjectGlobs") or "[]")),
            labels=tuple(json.loads(entity.get("labels") or "[]")),
            description=entity.get("description", ""),
            created_at=entity["createdAt"],
            updated_at=entity["updatedAt"],
            created_by=entity.get("createdBy", ""),
            updated_by=entity.get("updatedBy", ""),
            terraform_provider=(entity.get("terraformProvider") or None) if kind == "module" else None,
            module_name=(entity.get("moduleName") or None) if kind == "module" else None,
            etag=etag,
        )


class StackRepository:
    """Reads and writes `StackRecord`s and keeps the routing index in step with them."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _stacks(self) -> TableClient:
        return self._clients.table(STACKS_TABLE)

    @property
    def _routes(self) -> TableClient:
        return self._clients.table(STACK_ROUTES_TABLE)

    # Reading

    def get(self, kind: str, stack_id: str) -> StackRecord:
        _check_kind(kind)
        try:
            with storage_errors(_DEPENDENCY):
                entity = self._stacks.get_entity(kind, stack_id)
        except ResourceNotFoundError as error:
            raise NotFound(f"{_label(kind)} {stack_id!r} was not found.") from error
        return StackRecord.from_entity(entity)

    def find(self, kind: str, stack_id: str) -> StackRecord | None:
        try:
            return self.get(kind, stack_id)
        except NotFound:
            return None

    def list(self, kind: str) -> list[StackRecord]:
        """Return every stack (or module) of `kind`, ordered by id."""
        _check_kind(kind)
        with storage_errors(_DEPENDENCY):
            entities = list(self._stacks.query_entities("PartitionKey eq @pk", parameters={"pk": kind}))
        return sorted((StackRecord.from_entity(entity) for entity in entities), key=lambda record: record.id)

    def routes_for(self, integration_id: str, repository_id: str) -> builtins.list[StackRoute]:
        """Return the routes of the stacks and modules that use this integration and repository.

        Reads the one index partition of the pair, ordered by kind and id.
        """
        partition = route_partition(integration_id, repository_id)
        with storage_errors(_DEPENDENCY):
            entities = list(self._routes.query_entities("PartitionKey eq @pk", parameters={"pk": partition}))
        return [StackRoute.from_entity(entity) for entity in sorted(entities, key=lambda entity: entity["RowKey"])]

    def routes_of_integration(self, integration_id: str) -> builtins.list[StackRoute]:
        """Return the routes of every stack that uses the integration, from its index partitions only.

        Integration ids contain no `|` and `}` follows `|` in ASCII, so the key range
        [`<id>|`, `<id>}`) contains exactly the partitions of this integration.
        """
        low = f"{integration_id}{_KEY_SEPARATOR}"
        high = f"{integration_id}}}"
        with storage_errors(_DEPENDENCY):
            entities = list(self._routes.query_entities("PartitionKey ge @low and PartitionKey lt @high",
                                                        parameters={"low": low, "high": high}))
        return [StackRoute.from_entity(entity) for entity in entities]

    def by_integration(self, integration_id: str) -> builtins.list[StackRecord]:
        """Return the stacks and modules that use the integration (one index range read, then a read each)."""
        records = []
        for route in self.routes_of_integration(integration_id):
            record = self.find(route.kind, route.id)
            if record is not None and record.integration_id == integration_id:
                records.append(record)
        return records

    # Writing

    def create(self, record: StackRecord) -> StackRecord:
        """Insert a new stack and its route; raise `Conflict` when the id is taken."""
        _check_kind(record.kind)
        try:
            with storage_errors(_DEPENDENCY):
                self._stacks.create_entity(record.to_entity())
        except ResourceExistsError as error:
            raise Conflict(f"A {record.kind} with id {record.id!r} already exists. Choose another name, or "
                           "give another id.", field="id", code=f"{record.kind}_exists") from error
        try:
            self._write_route(record)
        except StackhookError:
            # Without its route the stack would never be triggered, so it must not stay behind.
            self._delete_stack_row(record.kind, record.id, None)
            raise
        return self.get(record.kind, record.id)

    def create_many(self, records: Sequence[StackRecord]) -> None:
        """Insert many new stacks and their routes in transactions of up to 100 rows per partition.

        For bulk loads such as benchmarks and imports: each transaction is atomic, the load as a
        whole is not, and a taken id fails its whole transaction with `TableTransactionError`.
        """
        for record in records:
            _check_kind(record.kind)
        stack_rows = _partition_batches(record.to_entity() for record in records)
        route_rows = _partition_batches(record.to_route_entity() for record in records)
        for table, batches in ((self._stacks, stack_rows), (self._routes, route_rows)):
            for batch in batches:
                with storage_errors(_DEPENDENCY):
                    table.submit_transaction([("create", entity) for entity in batch])

    def replace(self, record: StackRecord, if_match: str | None = None, *,
                previous: StackRecord | None = None) -> StackRecord:
        """Write `record` over the stored one (with `if_match`, only if the ETag still matches), then
        write its route and remove the route of `previous` when the stack moved to another
        integration or repository."""
        _check_kind(record.kind)
        old = previous or self.get(record.kind, record.id)
        try:
            with storage_errors(_DEPENDENCY):
                if if_match:
                    self._stacks.update_entity(record.to_entity(), mode=UpdateMode.REPLACE, etag=if_match,
                                               match_condition=MatchConditions.IfNotModified)
                else:
                    self._stacks.update_entity(record.to_entity(), mode=UpdateMode.REPLACE)
        except ResourceModifiedError as error:
            raise PreconditionFailed(
                f"{_label(record.kind)} {record.id!r} changed since you read it (ETag mismatch). Read it again, "
                "reapply your change and send the new ETag in If-Match.", field="If-Match") from error
        except ResourceNotFoundError as error:
            raise NotFound(f"{_label(record.kind)} {record.id!r} was not found.") from error
        self._write_route(record)
        if old.route_key != record.route_key:
            self._delete_route(old)
        return self.get(record.kind, record.id)

    def delete(self, record: StackRecord, if_match: str | None = None) -> None:
        """Delete the route, then the stack (with `if_match`, only if the ETag still matches)."""
        _check_kind(record.kind)
        if if_match:
            # Check the ETag before the route goes, so a stale delete leaves everything in place.
            current = self.get(record.kind, record.id)
            if current.etag != if_match:
                raise PreconditionFailed(
                    f"{_label(record.kind)} {record.id!r} changed since you read it (ETag mismatch). Read it "
                    "again and send the new ETag in If-Match.", field="If-Match")
        self._delete_route(record)
        try:
            self._delete_stack_row(record.kind, record.id, if_match)
        except PreconditionFailed:
            # Another writer got in between: the stack stays, so its route must come back.
            survivor = self.find(record.kind, record.id)
            if survivor is not None:
                self._write_route(survivor)
            raise

    # Helpers

    def _write_route(self, record: StackRecord) -> None:
        with storage_errors(_DEPENDENCY):
            self._routes.upsert_entity(record.to_route_entity(), mode=UpdateMode.REPLACE)

    def _delete_route(self, record: StackRecord) -> None:
        partition, row = record.route_key
        with storage_errors(_DEPENDENCY):
            self._routes.delete_entity(partition, row)  # a missing row is no error

    def _delete_stack_row(self, kind: str, stack_id: str, if_match: str | None) -> None:
        try:
            with storage_errors(_DEPENDENCY):
                if if_match:
                    self._stacks.delete_entity(kind, stack_id, etag=if_match,
                                               match_condition=MatchConditions.IfNotModified)
                else:
                    self._stacks.delete_entity(kind, stack_id)
        except ResourceModifiedError as error:
            raise PreconditionFailed(
                f"{_label(kind)} {stack_id!r} changed while it was being deleted. Read it again and repeat the "
                "delete with the new ETag in If-Match.",
                field="If-Match") from error


def _check_kind(kind: str) -> None:
    if kind not in STACK_KINDS:
        raise ValueError(f"kind {kind!r} is not a stack kind; use one of {', '.join(STACK_KINDS)}")


def _partition_batches(entities: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group entities by partition key into lists of at most `_TRANSACTION_LIMIT`."""
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for entity in entities:
        by_partition.setdefault(entity["PartitionKey"], []).append(entity)
    return [rows[start:start + _TRANSACTION_LIMIT] for rows in by_partition.values()
            for start in range(0, len(rows), _TRANSACTION_LIMIT)]
