"""The last seen state of each pull request, so "updated" events can be classified by what changed.

Partition: integration id; row key: `<repository id>-<pull request id>`. Writes use the ETag, so
two deliveries about one pull request processed at once cannot both build on the same state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.core.events import PullRequestSnapshot
from shared.errors import ValidationFailed
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.names import PULL_REQUESTS_TABLE

_DEPENDENCY = "Table Storage"


class StateChanged(Exception):
    """Another writer changed the pull request state since it was read; read it again."""


@dataclass(frozen=True)
class StoredPullRequest:
    """A pull request snapshot as stored, with the last merge outcome and the row's ETag."""

    snapshot: PullRequestSnapshot | None
    merge_outcome: str | None
    etag: str | None
    event_created: datetime | None = None


class PullRequestRepository:
    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _table(self) -> TableClient:
        return self._clients.table(PULL_REQUESTS_TABLE)

    @staticmethod
    def _key(repository_id: str, pull_request_id: int) -> str:
        return f"{repository_id.lower()}-{pull_request_id}"

    def get(self, integration_id: str, repository_id: str, pull_request_id: int) -> StoredPullRequest:
        try:
            with storage_errors(_DEPENDENCY):
                entity = self._table.get_entity(integration_id, self._key(repository_id, pull_request_id))
        except ResourceNotFoundError:
            return StoredPullRequest(None, None, None)
        snapshot: PullRequestSnapshot | None
        try:
            snapshot = PullRequestSnapshot.from_state(json.loads(entity.get("state") or "{}"))
        except (ValidationFailed, ValueError):
            # A state written by an older version is treated as not seen before.
            snapshot = None
        event_created = entity.get("eventCreated")
        return StoredPullRequest(snapshot, entity.get("mergeOutcome") or None, entity.metadata.get("etag"),
                                 event_created if isinstance(event_created, datetime) else None)

    def record_merge_outcome(self, integration_id: str, repository_id: str, pull_request_id: int,
                             merge_outcome: str) -> None:
        """Store only the merge outcome, for a pull request whose state was not seen yet."""
        entity = {"PartitionKey": integration_id, "RowKey": self._key(repository_id, pull_request_id),
                  "mergeOutcome": merge_outcome, "updatedAt": datetime.now(UTC)}
        with storage_errors(_DEPENDENCY):
            self._table.upsert_entity(entity, mode=UpdateMode.MERGE)

    def save(self, integration_id: str, repository_id: str, snapshot: PullRequestSnapshot, *,
             merge_outcome: str | None, etag: str | None, event_created: datetime | None = None) -> None:
        """Store the snapshot; raise `StateChanged` when the row changed since `etag` was read."""
        entity: dict[str, Any] = {
            "PartitionKey": integration_id, "RowKey": self._key(repository_id, snapshot.pull_request_id),
            "state": json.dumps(snapshot.to_state()), "status": snapshot.status,
            "mergeOutcome": merge_outcome or "", "updatedAt": datetime.now(UTC),
        }
        if event_created is not None:
            entity["eventCreated"] = event_created
        try:
            with storage_errors(_DEPENDENCY):
                if etag is None:
                    self._table.create_entity(entity)
                else:
                    self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                              match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError) as error:
            raise StateChanged(snapshot.pull_request_id) from error
