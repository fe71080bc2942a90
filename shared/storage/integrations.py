"""Integrations in Table Storage.

All integrations share the partition `integration`, with the integration id as row key. The
marker row `~default` names the account's default integration; it is created in the same
transaction as the default integration, so of several concurrent creates exactly one succeeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.errors import Conflict, NotFound, PreconditionFailed
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.names import INTEGRATIONS_TABLE

PARTITION = "integration"
DEFAULT_MARKER = "~default"
_DEPENDENCY = "Table Storage"
_UPDATE_ATTEMPTS = 5


@dataclass(frozen=True)
class IntegrationRecord:
    """One Azure DevOps integration as stored; secrets live in Key Vault, only their versions here."""

    id: str
    name: str
    normalized_name: str
    is_default: bool
    space_id: str
    organization_url: str
    organization_kind: str
    user_facing_host_url: str
    labels: tuple[str, ...]
    description: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    pat_version: str | None = None
    webhook_secret_version: str | None = None
    previous_secret_version: str | None = None
    previous_secret_valid_until: datetime | None = None
    connection_test: dict[str, Any] | None = None
    identity_id: str | None = None
    warnings: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    etag: str | None = None

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": self.id,
            "name": self.name,
            "normalizedName": self.normalized_name,
            "isDefault": self.is_default,
            "spaceId": self.space_id,
            "organizationUrl": self.organization_url,
            "organizationKind": self.organization_kind,
            "userFacingHostUrl": self.user_facing_host_url,
            "labels": json.dumps(list(self.labels)),
            "description": self.description,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "createdBy": self.created_by,
            "updatedBy": self.updated_by,
            "patVersion": self.pat_version or "",
            "webhookSecretVersion": self.webhook_secret_version or "",
            "previousSecretVersion": self.previous_secret_version or "",
            "connectionTest": json.dumps(self.connection_test) if self.connection_test else "",
            "identityId": self.identity_id or "",
            "warnings": json.dumps(list(self.warnings)),
        }
        if self.previous_secret_valid_until is not None:
            entity["previousSecretValidUntil"] = self.previous_secret_valid_until
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> IntegrationRecord:
        etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
        until = entity.get("previousSecretValidUntil")
        return cls(
            id=entity["RowKey"],
            name=entity["name"],
            normalized_name=entity["normalizedName"],
            is_default=bool(entity["isDefault"]),
            space_id=entity["spaceId"],
            organization_url=entity["organizationUrl"],
            organization_kind=entity.get("organizationKind", ""),
            user_facing_host_url=entity["userFacingHostUrl"],
            labels=tuple(json.loads(entity.get("labels") or "[]")),
            description=entity.get("description", ""),
            created_at=entity["createdAt"],
            updated_at=entity["updatedAt"],
            created_by=entity.get("createdBy", ""),
            updated_by=entity.get("updatedBy", ""),
            pat_version=entity.get("patVersion") or None,
            webhook_secret_version=entity.get("webhookSecretVersion") or None,
            previous_secret_version=entity.get("previousSecretVersion") or None,
            previous_secret_valid_until=until if isinstance(until, datetime) else None,
            connection_test=json.loads(entity["connectionTest"]) if entity.get("connectionTest") else None,
            identity_id=entity.get("identityId") or None,
            warnings=tuple(json.loads(entity.get("warnings") or "[]")),
            etag=etag,
        )


class IntegrationRepository:
    """Reads and writes `IntegrationRecord`s."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _table(self) -> TableClient:
        return self._clients.table(INTEGRATIONS_TABLE)

    def create(self, record: IntegrationRecord) -> IntegrationRecord:
        """Insert a new integration; raise `Conflict` when the id or the default slot is taken."""
        operations: list[tuple[str, dict[str, Any]]] = [("create", record.to_entity())]
        if record.is_default:
            operations.append(("create", {"PartitionKey": PARTITION, "RowKey": DEFAULT_MARKER,
                                          "integrationId": record.id}))
        try:
            with storage_errors(_DEPENDENCY):
                self._table.submit_transaction(operations)
        except TableTransactionError as error:
            if error.status_code != 409:
                raise
            if record.is_default and error.index == 1:
                existing = self.default_integration_id()
                raise Conflict(
                    f"A default integration already exists ({existing}); an account has at most one. "
                    "Create a space-specific integration instead, or delete the existing default first.",
                    field="isDefault", code="default_exists") from error
            raise self._name_conflict(record) from error
        except ResourceExistsError as error:
            raise self._name_conflict(record) from error
        return self.get(record.id)

    @staticmethod
    def _name_conflict(record: IntegrationRecord) -> Conflict:
        return Conflict(
            f"An integration named like {record.name!r} already exists (id {record.id!r}); names are "
            "compared after normalising case, accents, spaces and punctuation. Choose another name.",
            field="name", code="name_taken")

    def get(self, integration_id: str) -> IntegrationRecord:
        if integration_id == DEFAULT_MARKER:
            raise NotFound(f"Integration {integration_id!r} was not found.")
        try:
            with storage_errors(_DEPENDENCY):
                entity = self._table.get_entity(PARTITION, integration_id)
        except ResourceNotFoundError as error:
            raise NotFound(f"Integration {integration_id!r} was not found.") from error
        return IntegrationRecord.from_entity(entity)

    def find(self, integration_id: str) -> IntegrationRecord | None:
        try:
            return self.get(integration_id)
        except NotFound:
            return None

    def list(self) -> list[IntegrationRecord]:
        with storage_errors(_DEPENDENCY):
            entities = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION}))
        return sorted((IntegrationRecord.from_entity(entity) for entity in entities
                       if entity["RowKey"] != DEFAULT_MARKER), key=lambda record: record.normalized_name)

    def default_integration_id(self) -> str | None:
        try:
            with storage_errors(_DEPENDENCY):
                entity = self._table.get_entity(PARTITION, DEFAULT_MARKER)
        except ResourceNotFoundError:
            return None
        return str(entity["integrationId"])

    def replace(self, record: IntegrationRecord, *, if_match: str | None = None) -> IntegrationRecord:
        """Write `record` over the stored one; with `if_match`, only if the ETag still matches."""
        try:
            with storage_errors(_DEPENDENCY):
                if if_match:
                    self._table.update_entity(record.to_entity(), mode=UpdateMode.REPLACE, etag=if_match,
                                              match_condition=MatchConditions.IfNotModified)
                else:
                    self._table.update_entity(record.to_entity(), mode=UpdateMode.REPLACE)
        except ResourceModifiedError as error:
            raise PreconditionFailed(
                f"Integration {record.id!r} changed since you read it (ETag mismatch). "
                "Read it again, reapply your change and send the new ETag in If-Match.",
                field="If-Match") from error
        except ResourceNotFoundError as error:
            raise NotFound(f"Integration {record.id!r} was not found.") from error
        return self.get(record.id)

    def update_fields(self, record: IntegrationRecord, **changes: Any) -> IntegrationRecord:
        """Apply `changes` to the stored integration and keep every other field as stored now.

        The integration is read again and written with its ETag, and read again after a concurrent
        write, so a slow writer such as a connection test cannot undo a change made meanwhile.
        """
        for _attempt in range(_UPDATE_ATTEMPTS):
            current = self.get(record.id)
            try:
                return self.replace(replace(current, **changes), if_match=current.etag)
            except PreconditionFailed:
                continue
        raise Conflict(f"Integration {record.id!r} changed {_UPDATE_ATTEMPTS} times while it was being updated. "
                       "Try again.", code="concurrent_update")

    def delete(self, record: IntegrationRecord) -> None:
        operations: list[tuple[str, dict[str, Any]]] = [
            ("delete", {"PartitionKey": PARTITION, "RowKey": record.id})]
        if record.is_default and self.default_integration_id() == record.id:
            operations.append(("delete", {"PartitionKey": PARTITION, "RowKey": DEFAULT_MARKER}))
        try:
            with storage_errors(_DEPENDENCY):
                self._table.submit_transaction(operations)
        except TableTransactionError as error:
            if error.status_code == 404:
                raise NotFound(f"Integration {record.id!r} was not found.") from error
            raise
