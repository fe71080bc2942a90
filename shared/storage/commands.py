"""Pull request comment commands in Table Storage: handled comments with their replies, and locks.

Table `CommandComments`, partition `pr:<integration id>:<repository id>:<pull request id>`:
- `c-<thread id>-<comment id>`: one comment whose commands ran. The row is created before any
  command runs, so a second delivery of the same comment finds it and runs nothing. It then keeps
  the reply, gzip-compressed in binary chunks, so a reply whose post failed is posted again from
  the queue without running the commands again.
- `closed`: the one reply stating that the pull request is completed or abandoned.

Table `StackLocks`:
- partition `stack`, row key the stack id: the lock and the pull request that holds it. Creating a
  row that exists fails, so of two pull requests locking a stack at once exactly one wins.
- partition `pr:<integration id>:<repository id>:<pull request id>`, row key the stack id: an index
  of the locks a pull request holds, read when it is completed or abandoned.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import Conflict, ValidationFailed
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.names import COMMAND_COMMENTS_TABLE, STACK_LOCKS_TABLE
from shared.storage.runs import check_key_part, pull_request_partition

logger = logging.getLogger(__name__)

_DEPENDENCY = "Table Storage"
_LOCK_PARTITION = "stack"
CLOSED_ROW = "closed"
_LOCK_ATTEMPTS = 3
_CHUNK_BYTES = 60_000
# 14 chunks of 60,000 bytes stay under the 1 MiB entity limit. A reply of 140,000 characters is at
# most 560,000 bytes of UTF-8, and gzip adds only a few bytes to incompressible text, so it fits.
_MAX_CHUNKS = 14

ReplyState = Literal["running", "pending", "posted", "failed"]
ClaimOutcome = Literal["claimed", "resumed", "handled"]


@dataclass(frozen=True)
class ReplyTarget:
    """The destination of a reply: the thread of a pull request and the comment it replies to."""

    integration_id: str
    project_id: str
    repository_id: str
    pull_request_id: int
    thread_id: int
    parent_comment_id: int

    @property
    def partition(self) -> str:
        return pull_request_partition(self.integration_id, self.repository_id, self.pull_request_id)


def comment_row(thread_id: int, comment_id: int) -> str:
    return f"c-{int(thread_id)}-{int(comment_id)}"


@dataclass(frozen=True)
class CommentRecord:
    """A handled comment: who delivered it, its reply and how posting the reply went.

    `state` is `running` while the commands run, `pending` once the reply is stored, then `posted`
    or `failed` (given up). `row` is `c-<thread>-<comment>` or `closed`.
    """

    target: ReplyTarget
    row: str
    delivery_id: str
    state: ReplyState
    reply: str | None
    attempts: int
    last_error: str | None
    etag: str | None = None


@dataclass(frozen=True)
class StackLock:
    """A lock on a stack and the pull request that holds it."""

    stack_id: str
    integration_id: str
    repository_id: str
    pull_request_id: int
    locked_by: str
    locked_at: datetime

    def held_by(self, integration_id: str, repository_id: str, pull_request_id: int) -> bool:
        return (self.integration_id == integration_id and self.repository_id == repository_id.lower()
                and self.pull_request_id == int(pull_request_id))

    @classmethod
    def from_entity(cls, entity: Any) -> StackLock:
        return cls(stack_id=entity["RowKey"], integration_id=entity["integrationId"],
                   repository_id=entity["repositoryId"], pull_request_id=int(entity["pullRequestId"]),
                   locked_by=entity.get("lockedBy", ""), locked_at=entity["lockedAt"])


class CommandStore:
    """Reads and writes handled comments, their replies and stack locks."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    @property
    def _comments(self) -> TableClient:
        return self._clients.table(COMMAND_COMMENTS_TABLE)

    @property
    def _locks(self) -> TableClient:
        return self._clients.table(STACK_LOCKS_TABLE)

    # Handled comments -------------------------------------------------------------------------

    def claim_comment(self, target: ReplyTarget, comment_id: int, delivery_id: str) -> ClaimOutcome:
        """Create the row of a comment before its commands run.

        Returns `claimed` for a new row, and `handled` when another delivery created it or the reply
        is already stored. Returns `resumed` when the same delivery created it and stopped before
        storing its reply, because the queue is retrying that delivery after a storage failure.
        """
        return self._claim(target, comment_row(target.thread_id, comment_id), delivery_id)

    def claim_closed_notice(self, target: ReplyTarget, delivery_id: str) -> ClaimOutcome:
        """Create the row of the one reply about a completed or abandoned pull request."""
        return self._claim(target, CLOSED_ROW, delivery_id)

    def _claim(self, target: ReplyTarget, row: str, delivery_id: str) -> ClaimOutcome:
        entity = {"PartitionKey": target.partition, "RowKey": row, "deliveryId": delivery_id,
                  "state": "running", "attempts": 0, "projectId": target.project_id,
                  "threadId": target.thread_id, "parentCommentId": target.parent_comment_id,
                  "claimedAt": datetime.now(UTC)}
        try:
            with storage_errors(_DEPENDENCY):
                self._comments.create_entity(entity)
            return "claimed"
        except ResourceExistsError:
            existing = self.find(target, row)
            if existing is not None and existing.state == "running" and existing.delivery_id == delivery_id:
                return "resumed"
            return "handled"

    def store_reply(self, target: ReplyTarget, row: str, reply: str) -> None:
        """Store the reply of a comment, compressed, with the state `pending`."""
        compressed = gzip.compress(reply.encode("utf-8"), compresslevel=6)
        chunks = [compressed[index:index + _CHUNK_BYTES] for index in range(0, len(compressed), _CHUNK_BYTES)]
        if len(chunks) > _MAX_CHUNKS:
            raise ValidationFailed(f"the reply compresses to {len(compressed)} bytes, more than a table row can store",
                                   field="reply")
        entity: dict[str, Any] = {"PartitionKey": target.partition, "RowKey": row, "state": "pending",
                                  "replyChunks": len(chunks)}
        for index, chunk in enumerate(chunks):
            entity[f"reply{index}"] = chunk
        with storage_errors(_DEPENDENCY):
            self._comments.update_entity(entity, mode=UpdateMode.MERGE)

    def record_attempt(self, target: ReplyTarget, row: str, *, state: ReplyState, attempts: int,
                       error: str | None = None) -> None:
        entity: dict[str, Any] = {"PartitionKey": target.partition, "RowKey": row, "state": state,
                                  "attempts": attempts, "updatedAt": datetime.now(UTC)}
        if error is not None:
            entity["lastError"] = error[:2_000]
        with storage_errors(_DEPENDENCY):
            self._comments.update_entity(entity, mode=UpdateMode.MERGE)

    def find(self, target: ReplyTarget, row: str) -> CommentRecord | None:
        try:
            with storage_errors(_DEPENDENCY):
                entity = self._comments.get_entity(target.partition, row)
        except ResourceNotFoundError:
            return None
        count = int(entity.get("replyChunks") or 0)
        reply = None
        if count:
            reply = gzip.decompress(b"".join(bytes(entity[f"reply{index}"]) for index in range(count))).decode("utf-8")
        stored_target = ReplyTarget(target.integration_id, entity.get("projectId", target.project_id),
                                    target.repository_id, target.pull_request_id,
                                    int(entity.get("threadId", target.thread_id)),
                                    int(entity.get("parentCommentId", target.parent_comment_id)))
        return CommentRecord(target=stored_target, row=row, delivery_id=entity.get("deliveryId", ""),
                             state=entity.get("state", "running"), reply=reply,
                             attempts=int(entity.get("attempts") or 0), last_error=entity.get("lastError"),
                             etag=entity.metadata.get("etag"))

    # Locks ------------------------------------------------------------------------------------

    def find_lock(self, stack_id: str) -> StackLock | None:
        try:
            with storage_errors(_DEPENDENCY):
                entity = self._locks.get_entity(_LOCK_PARTITION, check_key_part(stack_id, "stackId"))
        except ResourceNotFoundError:
            return None
        return StackLock.from_entity(entity)

    def acquire(self, stack_id: str, integration_id: str, repository_id: str, pull_request_id: int,
                locked_by: str) -> StackLock:
        """Lock the stack for the pull request unless another one holds it; return the lock as stored.

        The caller compares the holder of the returned lock with its pull request. The index row is
        written first, so a lock never exists without it. It is removed again when the lock belongs
        to another pull request.
        """
        check_key_part(stack_id, "stackId")
        partition = pull_request_partition(integration_id, repository_id, pull_request_id)
        now = datetime.now(UTC)
        with storage_errors(_DEPENDENCY):
            self._locks.upsert_entity({"PartitionKey": partition, "RowKey": stack_id, "lockedAt": now})
        lock = {"PartitionKey": _LOCK_PARTITION, "RowKey": stack_id, "integrationId": integration_id,
                "repositoryId": repository_id.lower(), "pullRequestId": int(pull_request_id),
                "lockedBy": locked_by, "lockedAt": now}
        for _attempt in range(_LOCK_ATTEMPTS):
            try:
                with storage_errors(_DEPENDENCY):
                    self._locks.create_entity(lock)
                return StackLock.from_entity(lock)
            except ResourceExistsError:
                holder = self.find_lock(stack_id)
            if holder is None:
                continue  # the holder released it between the two calls
            if not holder.held_by(integration_id, repository_id, pull_request_id):
                self._delete(self._locks, partition, stack_id, None)
            return holder
        raise Conflict(f"The lock of stack {stack_id!r} changed {_LOCK_ATTEMPTS} times while it was being taken. "
                       "Write the command again.", code="concurrent_update")

    def release(self, stack_id: str, integration_id: str, repository_id: str, pull_request_id: int
                ) -> StackLock | None:
        """Release the stack's lock if this pull request holds it.

        Returns the lock as it was, which names another holder when it was not released, or None
        when the stack was not locked.
        """
        try:
            with storage_errors(_DEPENDENCY):
                entity = self._locks.get_entity(_LOCK_PARTITION, check_key_part(stack_id, "stackId"))
        except ResourceNotFoundError:
            return None
        lock = StackLock.from_entity(entity)
        if lock.held_by(integration_id, repository_id, pull_request_id):
            self._delete(self._locks, _LOCK_PARTITION, stack_id, entity.metadata.get("etag"))
            self._delete(self._locks, pull_request_partition(integration_id, repository_id, pull_request_id),
                         stack_id, None)
        return lock

    def release_pull_request(self, integration_id: str, repository_id: str, pull_request_id: int) -> list[str]:
        """Release every lock the pull request holds; return the ids of the stacks released."""
        partition = pull_request_partition(integration_id, repository_id, pull_request_id)
        with storage_errors(_DEPENDENCY):
            pointers = list(self._locks.query_entities("PartitionKey eq @pk", parameters={"pk": partition}))
        released: list[str] = []
        for pointer in pointers:
            stack_id = pointer["RowKey"]
            lock = self.release(stack_id, integration_id, repository_id, pull_request_id)
            if lock is not None and lock.held_by(integration_id, repository_id, pull_request_id):
                released.append(stack_id)
            self._delete(self._locks, partition, stack_id, None)
        return released

    @staticmethod
    def _delete(table: TableClient, partition: str, row: str, etag: str | None) -> None:
        """Delete a row. A row already gone or changed since `etag` was read is left as it is."""
        try:
            with storage_errors(_DEPENDENCY):
                if etag is None:
                    table.delete_entity(partition, row)
                else:
                    table.delete_entity(partition, row, etag=etag, match_condition=MatchConditions.IfNotModified)
        except ResourceNotFoundError:
            pass
        except ResourceModifiedError:
            logger.info("Lock row %s/%s changed while it was being deleted; left in place", partition, row)
