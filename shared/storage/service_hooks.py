"""Service-hook subscriptions that stackhook installed in Azure DevOps, in Table Storage.

Table `ServiceHooks`: partition = integration id, row key = subscription id (lowercase GUID).
Each row keeps the project and repository the subscription filters on, its event type, the Key
Vault version of the webhook secret it was installed with (Azure DevOps masks the password in its
responses, so this version is how a stale secret is detected), and the status the watcher last saw.

`last_deliveries` reads the newest rows of the `Deliveries` table to show what the service last
received for each subscription.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.storage.clients import StorageClients, storage_errors
from shared.storage.names import DELIVERIES_TABLE

SERVICE_HOOKS_TABLE = "ServiceHooks"
_DEPENDENCY = "Table Storage"
# The delivery scan stops after this many rows (newest first), so a long log costs a bounded read.
DELIVERY_SCAN_LIMIT = 2000


@dataclass(frozen=True)
class InstalledSubscription:
    """One subscription that stackhook created or took over for an integration."""

    integration_id: str
    subscription_id: str
    project_id: str
    project_name: str
    event_type: str
    repository_id: str | None
    secret_version: str | None
    installed_at: datetime
    updated_at: datetime
    status: str = "enabled"
    status_since: datetime | None = None

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.integration_id,
            "RowKey": self.subscription_id.lower(),
            "projectId": self.project_id.lower(),
            "projectName": self.project_name,
            "eventType": self.event_type,
            "repositoryId": (self.repository_id or "").lower(),
            "secretVersion": self.secret_version or "",
            "installedAt": self.installed_at,
            "updatedAt": self.updated_at,
            "status": self.status,
        }
        if self.status_since is not None:
            entity["statusSince"] = self.status_since
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> InstalledSubscription:
        since = entity.get("statusSince")
        return cls(
            integration_id=entity["PartitionKey"],
            subscription_id=entity["RowKey"],
            project_id=entity.get("projectId", ""),
            project_name=entity.get("projectName", ""),
            event_type=entity.get("eventType", ""),
            repository_id=entity.get("repositoryId") or None,
            secret_version=entity.get("secretVersion") or None,
            installed_at=entity["installedAt"],
            updated_at=entity.get("updatedAt") or entity["installedAt"],
            status=entity.get("status") or "enabled",
            status_since=since if isinstance(since, datetime) else None,
        )

    def with_status(self, status: str, now: datetime) -> InstalledSubscription:
        """Return a copy with `status`. `status_since` moves only when the status changes."""
        if status == self.status and self.status_since is not None:
            return self
        return replace(self, status=status, status_since=now)


@dataclass(frozen=True)
class ReceivedDelivery:
    """The fields of a recorded delivery that the service-hook views need."""

    subscription_id: str
    received_at: datetime
    outcome: str
    reason: str


class ServiceHookRepository:
    """Reads and writes `InstalledSubscription` rows."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _table(self) -> TableClient:
        return self._clients.table(SERVICE_HOOKS_TABLE)

    def list_for(self, integration_id: str) -> list[InstalledSubscription]:
        with storage_errors(_DEPENDENCY):
            entities = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": integration_id}))
        return [InstalledSubscription.from_entity(entity) for entity in entities]

    def integration_ids(self) -> list[str]:
        """Return the ids of the integrations that have at least one installed subscription."""
        with storage_errors(_DEPENDENCY):
            entities = self._table.list_entities(select=["PartitionKey"])
            return sorted({str(entity["PartitionKey"]) for entity in entities})

    def save(self, record: InstalledSubscription) -> None:
        with storage_errors(_DEPENDENCY):
            self._table.upsert_entity(record.to_entity(), mode=UpdateMode.REPLACE)

    def save_all(self, records: Iterable[InstalledSubscription]) -> None:
        for record in records:
            self.save(record)

    def delete(self, integration_id: str, subscription_id: str) -> None:
        """Remove one row. A row that does not exist is not an error."""
        try:
            with storage_errors(_DEPENDENCY):
                self._table.delete_entity(integration_id, subscription_id.lower())
        except ResourceNotFoundError:
            return

    def last_deliveries(self, integration_id: str, subscription_ids: Iterable[str],
                        per_subscription: int = 1) -> dict[str, list[ReceivedDelivery]]:
        """Return up to `per_subscription` newest deliveries of each subscription id, newest first.

        Delivery row keys sort newest first, so the scan reads rows in that order and stops once
        every subscription has enough, or after `DELIVERY_SCAN_LIMIT` rows.
        """
        requested = {subscription_id.lower() for subscription_id in subscription_ids}
        found: dict[str, list[ReceivedDelivery]] = {subscription_id: [] for subscription_id in requested}
        if not requested:
            return found
        table = self._clients.table(DELIVERIES_TABLE)
        with storage_errors(_DEPENDENCY):
            rows = table.query_entities(
                "PartitionKey eq @pk and RowKey ge 'd-' and RowKey lt 'd.'", parameters={"pk": integration_id},
                select=["RowKey", "subscriptionId", "receivedAt", "outcome", "reason"], results_per_page=500)
            for scanned, row in enumerate(rows):
                if scanned >= DELIVERY_SCAN_LIMIT:
                    break
                subscription_id = str(row.get("subscriptionId") or "").lower()
                deliveries = found.get(subscription_id)
                if deliveries is None or len(deliveries) >= per_subscription:
                    continue
                deliveries.append(ReceivedDelivery(subscription_id, row["receivedAt"], str(row.get("outcome", "")),
                                                   str(row.get("reason", ""))))
                if all(len(items) >= per_subscription for items in found.values()):
                    break
        return found
