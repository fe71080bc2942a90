"""Runs and module versions in Table Storage.

Table `Runs`, three kinds of rows:
- `PartitionKey = "<kind>:<stack id>"`, `RowKey = "r-<run id>"`: one run. Run ids start with the
  inverted creation time in milliseconds, so a partition query lists a stack's runs newest first.
- same partition, `RowKey = "k-<sha256 of the deduplication key>"`: the run a (stack, commit, run
  type) already has. It is created before the run, so of two concurrent creators only one wins.
- `PartitionKey = "pr:<integration id>:<repository id>:<pull request id>"`,
  `RowKey = "<kind>:<stack id>:<run id>"`: an index of the runs a pull request started, so that
  cancelling them reads one small partition instead of every stack.

Table `ModuleVersions`: `PartitionKey = "<module id>"`, `RowKey = <version without build metadata>`;
creating a row that exists fails, so a version is never stored twice.

Run rows are changed with their ETag and read again after a concurrent write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import Conflict, DependencyUnavailable, NotFound, ValidationFailed
from shared.storage.clients import StorageClients, decode_page_token, encode_page_token, storage_errors
from shared.storage.names import MODULE_VERSIONS_TABLE, RUNS_TABLE

logger = logging.getLogger(__name__)

_DEPENDENCY = "Table Storage"
_MAX_MS = 10**13 - 1
_UPDATE_ATTEMPTS = 8
_MAX_REJECTED_UPDATES = 10
# Characters that Table Storage does not allow in partition and row keys.
_FORBIDDEN_KEY_CHARACTERS = set("/\\#?")


def new_run_id() -> str:
    """Return a run id that sorts newest first: inverted milliseconds, then random hex."""
    return f"{_MAX_MS - int(time.time() * 1000):013d}-{secrets.token_hex(4)}"


def check_key_part(value: str, field_name: str) -> str:
    """Return `value` if it can be part of a table key; raise `ValidationFailed` otherwise."""
    if not value or len(value) > 200 or any(
            character in _FORBIDDEN_KEY_CHARACTERS or ord(character) < 32 or 127 <= ord(character) < 160
            for character in value):
        raise ValidationFailed(f"{field_name} {value!r} is invalid: it must be 1-200 characters without "
                               "'/', '\\', '#', '?' or control characters.", field=field_name)
    return value


def stack_partition(kind: str, stack_id: str) -> str:
    return f"{check_key_part(kind, 'stackKind')}:{check_key_part(stack_id, 'stackId')}"


def pull_request_partition(integration_id: str, repository_id: str, pull_request_id: int) -> str:
    return f"pr:{integration_id}:{repository_id.lower()}:{int(pull_request_id)}"


def dedup_row_key(dedup_key: str) -> str:
    return "k-" + hashlib.sha256(dedup_key.encode("utf-8")).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class StatusPost:
    """The progress of posting the run's statuses to Azure DevOps.

    `outcome` is `pending` (queued), `retrying` (a post failed and is queued again), `posted`,
    `failed` (given up) or `skipped` (nothing to post, see `note`). `last_error_*` keep the most
    recent failure for the current state, also after a later attempt succeeded.
    """

    state: str | None = None
    state_version: int = 0
    outcome: str = "pending"
    attempts: int = 0
    commit_status_posted: bool = False
    pull_request_status: str | None = None
    note: str | None = None
    last_error_kind: str | None = None
    last_error_message: str | None = None
    last_error_at: datetime | None = None
    posted_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps({
            "state": self.state, "stateVersion": self.state_version, "outcome": self.outcome,
            "attempts": self.attempts, "commitStatusPosted": self.commit_status_posted,
            "pullRequestStatus": self.pull_request_status, "note": self.note,
            "lastErrorKind": self.last_error_kind, "lastErrorMessage": self.last_error_message,
            "lastErrorAt": _iso(self.last_error_at), "postedAt": _iso(self.posted_at),
        })

    @classmethod
    def from_json(cls, text: str | None) -> StatusPost:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            state=data.get("state"), state_version=int(data.get("stateVersion") or 0),
            outcome=data.get("outcome") or "pending", attempts=int(data.get("attempts") or 0),
            commit_status_posted=bool(data.get("commitStatusPosted")),
            pull_request_status=data.get("pullRequestStatus"), note=data.get("note"),
            last_error_kind=data.get("lastErrorKind"), last_error_message=data.get("lastErrorMessage"),
            last_error_at=_parse_time(data.get("lastErrorAt")), posted_at=_parse_time(data.get("postedAt")),
        )

    def to_api(self) -> dict[str, Any]:
        error = None
        if self.last_error_kind:
            error = {"kind": self.last_error_kind, "message": self.last_error_message,
                     "at": _iso(self.last_error_at)}
        return {"state": self.state, "outcome": self.outcome, "attempts": self.attempts,
                "commitStatusPosted": self.commit_status_posted, "pullRequestStatus": self.pull_request_status,
                "note": self.note, "lastError": error, "postedAt": _iso(self.posted_at)}


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class RunRecord:
    """One run of a stack or module as stored."""

    id: str
    stack_kind: str
    stack_id: str
    run_type: str
    commit: str
    branch: str | None
    pull_request_id: int | None
    iteration_id: int | None
    trigger: str
    triggered_by: str | None
    integration_id: str
    project_id: str
    repository_id: str
    state: str
    created_at: datetime
    updated_at: datetime
    state_version: int = 1
    message: str | None = None
    status_post: StatusPost = field(default_factory=StatusPost)
    merge_status: str | None = None
    rejected_updates: tuple[dict[str, Any], ...] = ()
    module_version: dict[str, Any] | None = None
    dispatched_at: datetime | None = None
    etag: str | None = None

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": stack_partition(self.stack_kind, self.stack_id),
            "RowKey": f"r-{self.id}",
            "runId": self.id, "stackKind": self.stack_kind, "stackId": self.stack_id, "runType": self.run_type,
            "commit": self.commit, "branch": self.branch or "", "trigger": self.trigger,
            "triggeredBy": self.triggered_by or "", "integrationId": self.integration_id,
            "projectId": self.project_id, "repositoryId": self.repository_id, "state": self.state,
            "stateVersion": self.state_version, "message": self.message or "",
            "createdAt": self.created_at, "updatedAt": self.updated_at,
            "statusPost": self.status_post.to_json(), "mergeStatus": self.merge_status or "",
            "rejectedUpdates": json.dumps(list(self.rejected_updates)),
            "moduleVersion": json.dumps(self.module_version) if self.module_version else "",
        }
        if self.pull_request_id is not None:
            entity["pullRequestId"] = self.pull_request_id
        if self.iteration_id is not None:
            entity["iterationId"] = self.iteration_id
        if self.dispatched_at is not None:
            entity["dispatchedAt"] = self.dispatched_at
        return entity

    @classmethod
    def from_entity(cls, entity: Any) -> RunRecord:
        pull_request_id = entity.get("pullRequestId")
        iteration_id = entity.get("iterationId")
        return cls(
            id=entity["runId"], stack_kind=entity["stackKind"], stack_id=entity["stackId"],
            run_type=entity["runType"], commit=entity["commit"], branch=entity.get("branch") or None,
            pull_request_id=int(pull_request_id) if pull_request_id is not None else None,
            iteration_id=int(iteration_id) if iteration_id is not None else None,
            trigger=entity.get("trigger", ""), triggered_by=entity.get("triggeredBy") or None,
            integration_id=entity["integrationId"], project_id=entity["projectId"],
            repository_id=entity["repositoryId"], state=entity["state"],
            created_at=entity["createdAt"], updated_at=entity["updatedAt"],
            state_version=int(entity.get("stateVersion") or 1), message=entity.get("message") or None,
            status_post=StatusPost.from_json(entity.get("statusPost")),
            merge_status=entity.get("mergeStatus") or None,
            rejected_updates=tuple(json.loads(entity.get("rejectedUpdates") or "[]")),
            module_version=json.loads(entity["moduleVersion"]) if entity.get("moduleVersion") else None,
            dispatched_at=entity.get("dispatchedAt"),
            etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
        )

    def with_rejected_update(self, update: dict[str, Any]) -> RunRecord:
        """Return a copy that also lists `update`, keeping the last few rejected updates."""
        kept = (*self.rejected_updates, update)[-_MAX_REJECTED_UPDATES:]
        return replace(self, rejected_updates=kept)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "stackKind": self.stack_kind, "stackId": self.stack_id, "runType": self.run_type,
            "state": self.state, "commit": self.commit, "branch": self.branch,
            "pullRequestId": self.pull_request_id, "iterationId": self.iteration_id, "trigger": self.trigger,
            "triggeredBy": self.triggered_by, "integrationId": self.integration_id, "projectId": self.project_id,
            "repositoryId": self.repository_id, "message": self.message, "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(), "statusPost": self.status_post.to_api(),
            "mergeStatus": self.merge_status, "rejectedUpdates": list(self.rejected_updates),
            "moduleVersion": self.module_version,
            "dispatchedAt": _iso(self.dispatched_at),
        }


class RunRepository:
    """Reads and writes `RunRecord`s, their deduplication keys and the pull request index."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _table(self) -> TableClient:
        return self._clients.table(RUNS_TABLE)

    def create(self, record: RunRecord, dedup_key: str | None) -> tuple[RunRecord, bool]:
        """Store a new run; return it and True, or the run `dedup_key` already names and False.

        The order is key row, pull request index row, run row. If the run row cannot be written,
        the other two are removed again; an index row whose run is missing is skipped when read.
        """
        partition = stack_partition(record.stack_kind, record.stack_id)
        key_row = dedup_row_key(dedup_key) if dedup_key is not None else None
        if key_row is not None:
            existing_id = self._claim(partition, key_row, record.id)
            if existing_id is not None:
                return self._existing(record, existing_id), False
        index = self._index_entity(record)
        try:
            with storage_errors(_DEPENDENCY):
                if index is not None:
                    self._table.upsert_entity(index)
                self._table.create_entity(record.to_entity())
        except DependencyUnavailable:
            self._remove(partition, key_row, index)
            raise
        return self.get(record.stack_kind, record.stack_id, record.id), True

    def _claim(self, partition: str, key_row: str, run_id: str) -> str | None:
        """Create the key row; return None if created, or the run id of the existing key."""
        try:
            with storage_errors(_DEPENDENCY):
                self._table.create_entity({"PartitionKey": partition, "RowKey": key_row, "runId": run_id})
            return None
        except ResourceExistsError:
            with storage_errors(_DEPENDENCY):
                return str(self._table.get_entity(partition, key_row)["runId"])

    def _existing(self, record: RunRecord, run_id: str) -> RunRecord:
        """Return the run a key row names, waiting briefly for a creator that is still writing it."""
        for _attempt in range(10):
            found = self.find(record.stack_kind, record.stack_id, run_id)
            if found is not None:
                return found
            time.sleep(0.2)
        # The creator failed between the key row and the run row: finish its work under its id.
        replacement = replace(record, id=run_id)
        index = self._index_entity(replacement)
        try:
            with storage_errors(_DEPENDENCY):
                if index is not None:
                    self._table.upsert_entity(index)
                self._table.create_entity(replacement.to_entity())
        except ResourceExistsError:
            pass
        return self.get(record.stack_kind, record.stack_id, run_id)

    def attach_pull_request(self, run: RunRecord, pull_request_id: int, iteration_id: int | None) -> RunRecord:
        """Tie a run started by a push to the pull request that later proposed the same commit."""
        updated, written = self.modify(
            run.stack_kind, run.stack_id, run.id,
            lambda current: None if current.pull_request_id is not None
            else replace(current, pull_request_id=pull_request_id, iteration_id=iteration_id))
        index = self._index_entity(updated)
        if written and index is not None:
            with storage_errors(_DEPENDENCY):
                self._table.upsert_entity(index)
        return updated

    @staticmethod
    def _index_entity(record: RunRecord) -> dict[str, Any] | None:
        if record.pull_request_id is None:
            return None
        return {"PartitionKey": pull_request_partition(record.integration_id, record.repository_id,
                                                      record.pull_request_id),
                "RowKey": f"{record.stack_kind}:{record.stack_id}:{record.id}",
                "stackKind": record.stack_kind, "stackId": record.stack_id, "runId": record.id,
                "runType": record.run_type}

    def _remove(self, partition: str, key_row: str | None, index: dict[str, Any] | None) -> None:
        rows = [(partition, key_row)] if key_row else []
        if index is not None:
            rows.append((index["PartitionKey"], index["RowKey"]))
        for partition_key, row_key in rows:
            try:
                with storage_errors(_DEPENDENCY):
                    self._table.delete_entity(partition_key, row_key)
            except DependencyUnavailable:
                # NOTE: a key row left behind makes the next request for this commit return a run
                # that was never written; `_existing` then writes it.
                logger.error("Could not remove row %s/%s after a failed run write", partition_key, row_key)

    def get(self, kind: str, stack_id: str, run_id: str) -> RunRecord:
        found = self.find(kind, stack_id, run_id)
        if found is None:
            raise NotFound(f"Run {run_id!r} of {kind} {stack_id!r} was not found.")
        return found

    def find(self, kind: str, stack_id: str, run_id: str) -> RunRecord | None:
        try:
            with storage_errors(_DEPENDENCY):
                entity = self._table.get_entity(stack_partition(kind, stack_id), f"r-{check_key_part(run_id, 'runId')}")
        except ResourceNotFoundError:
            return None
        return RunRecord.from_entity(entity)

    def list_page(self, kind: str, stack_id: str, *, page_size: int, continuation: str | None
                  ) -> tuple[list[RunRecord], str | None]:
        """Return runs of a stack newest first, and the token of the next page (None at the end)."""
        token = decode_page_token(continuation)
        with storage_errors(_DEPENDENCY):
            pages = self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge 'r-' and RowKey lt 'r.'",
                parameters={"pk": stack_partition(kind, stack_id)}, results_per_page=page_size,
            ).by_page(continuation_token=token)  # type: ignore[arg-type]  # the table SDK's tokens are dicts
            page = list(next(pages, []))
            next_token = pages.continuation_token  # type: ignore[attr-defined]
        encoded = encode_page_token(next_token)
        return [RunRecord.from_entity(entity) for entity in page], encoded

    def pull_request_runs(self, integration_id: str, repository_id: str, pull_request_id: int) -> list[RunRecord]:
        """Return the runs started for a pull request, oldest first."""
        with storage_errors(_DEPENDENCY):
            pointers = list(self._table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": pull_request_partition(integration_id, repository_id, pull_request_id)}))
        runs = [self.find(pointer["stackKind"], pointer["stackId"], pointer["runId"]) for pointer in pointers]
        return sorted((run for run in runs if run is not None), key=lambda run: run.created_at)

    def modify(self, kind: str, stack_id: str, run_id: str,
               change: Callable[[RunRecord], RunRecord | None]) -> tuple[RunRecord, bool]:
        """Apply `change` to the stored run and write the result with its ETag.

        `change` gets the current run and returns the new one, or None to leave it as it is. It is
        called again with a fresh read after a concurrent write, so it must have no side effects.
        Return the run as stored and whether it was written.
        """
        for _attempt in range(_UPDATE_ATTEMPTS):
            current = self.get(kind, stack_id, run_id)
            changed = change(current)
            if changed is None:
                return current, False
            entity = replace(changed, updated_at=datetime.now(UTC)).to_entity()
            try:
                with storage_errors(_DEPENDENCY):
                    self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=current.etag,
                                              match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                continue
            except ResourceNotFoundError as error:
                raise NotFound(f"Run {run_id!r} of {kind} {stack_id!r} was not found.") from error
            return self.get(kind, stack_id, run_id), True
        raise Conflict(f"Run {run_id!r} of {kind} {stack_id!r} changed {_UPDATE_ATTEMPTS} times while it was being "
                       "updated. Try again.", code="concurrent_update")


@dataclass(frozen=True)
class ModuleVersionRecord:
    """One published version of a module and the run that created it."""

    module_id: str
    version: str
    run_id: str
    commit: str
    created_at: datetime


class ModuleVersionRepository:
    """Stores module versions; a version, once stored, is never written again."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _table(self) -> TableClient:
        return self._clients.table(MODULE_VERSIONS_TABLE)

    def list_versions(self, module_id: str) -> list[ModuleVersionRecord]:
        with storage_errors(_DEPENDENCY):
            entities = list(self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": check_key_part(module_id, "moduleId")}))
        return [ModuleVersionRecord(entity["PartitionKey"], entity["version"], entity["runId"], entity["commit"],
                                    entity["createdAt"]) for entity in entities]

    def create(self, record: ModuleVersionRecord, *, precedence_key: str) -> bool:
        """Store a new version; return False if the module has a version with this precedence key.

        `precedence_key` is the version without build metadata, so `1.0.0+a` and `1.0.0+b`, which
        semver treats as equal, share one row.
        """
        entity = {"PartitionKey": check_key_part(record.module_id, "moduleId"),
                  "RowKey": check_key_part(precedence_key, "version"), "version": record.version,
                  "runId": record.run_id, "commit": record.commit, "createdAt": record.created_at}
        try:
            with storage_errors(_DEPENDENCY):
                self._table.create_entity(entity)
        except ResourceExistsError:
            return False
        return True
