"""Domain events built from service-hook deliveries, and the pure decisions over them.

Nothing here does I/O. A queue-triggered processor loads a stored delivery, calls
`to_domain_event`, and for "pull request updated" compares the new `PullRequestSnapshot` with the
one it stored for that pull request (`classify_pull_request_update`). Decisions never read
`message` or `detailedMessage`, because their text is localised and changes between releases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from shared.ado.events import (
    EVENT_PULL_REQUEST_COMMENTED,
    EVENT_PULL_REQUEST_CREATED,
    EVENT_PULL_REQUEST_MERGED,
    EVENT_PULL_REQUEST_UPDATED,
    HANDLED_EVENT_TYPES,
    CommentRef,
    CommitRef,
    IdentityRef,
    PullRequestCommentResource,
    PullRequestResource,
    PushResource,
    RefUpdate,
    RepositoryRef,
    ServiceHookEnvelope,
    parse_resource,
)
from shared.errors import ValidationFailed

ZERO_OBJECT_ID: Final = "0" * 40

RefKind = Literal["branch", "tag", "other"]
PullRequestEventKind = Literal["created", "updated", "merge_attempted"]
CommentState = Literal["new", "edited", "deleted", "system"]

STATUS_ACTIVE: Final = "active"
STATUS_COMPLETED: Final = "completed"
STATUS_ABANDONED: Final = "abandoned"


# --- shared parts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """A user or group. The `id` identifies it, and the names are for display only."""

    id: str
    display_name: str | None
    unique_name: str | None

    @classmethod
    def from_wire(cls, ref: IdentityRef) -> Identity:
        return cls(id=ref.id, display_name=ref.display_name, unique_name=ref.unique_name)


@dataclass(frozen=True, slots=True)
class RepositoryIdentity:
    """A repository as the service identifies it: by GUIDs, with names kept for display.

    The same repository appears under several URL forms (`dev.azure.com`, `{org}.visualstudio.com`,
    with a user name before the host, SSH), so `remote_url` is informational and never a key.
    """

    collection_id: str | None
    project_id: str
    project_name: str
    repository_id: str
    repository_name: str
    remote_url: str | None

    @property
    def key(self) -> tuple[str, str]:
        """The (project id, repository id) pair, lower-cased, that matches this repository."""
        return (self.project_id.lower(), self.repository_id.lower())


def _repository_identity(envelope: ServiceHookEnvelope, repository: RepositoryRef) -> RepositoryIdentity:
    containers = envelope.resource_containers
    collection = containers.collection if containers is not None else None
    return RepositoryIdentity(
        collection_id=collection.id if collection is not None else None,
        project_id=repository.project.id,
        project_name=repository.project.name,
        repository_id=repository.id,
        repository_name=repository.name,
        remote_url=repository.remote_url,
    )


# --- push -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefChange:
    """One ref moved by a push. The all-zeros object id as old id marks a create, as new id a delete."""

    ref_name: str
    kind: RefKind
    short_name: str
    old_object_id: str
    new_object_id: str
    created: bool
    deleted: bool

    @classmethod
    def from_wire(cls, update: RefUpdate) -> RefChange:
        kind, short_name = split_ref_name(update.name)
        old_id = update.old_object_id.lower()
        new_id = update.new_object_id.lower()
        return cls(
            ref_name=update.name,
            kind=kind,
            short_name=short_name,
            old_object_id=old_id,
            new_object_id=new_id,
            created=_is_zero(old_id),
            deleted=_is_zero(new_id),
        )


def split_ref_name(ref_name: str) -> tuple[RefKind, str]:
    """Split `refs/heads/x` into ("branch", "x") and `refs/tags/y` into ("tag", "y")."""
    if ref_name.startswith("refs/heads/"):
        return "branch", ref_name.removeprefix("refs/heads/")
    if ref_name.startswith("refs/tags/"):
        return "tag", ref_name.removeprefix("refs/tags/")
    return "other", ref_name


def _is_zero(object_id: str) -> bool:
    return object_id.strip("0") == ""


@dataclass(frozen=True, slots=True)
class PushEvent:
    """A push (`git.push`). One push may move several refs, or none.

    `commit_ids_in_payload` lists the commits that the delivery named. The list can be incomplete
    for large or forced pushes, so fetch the push from Azure DevOps when the full list matters.
    """

    repository: RepositoryIdentity
    ref_changes: tuple[RefChange, ...]
    pusher: Identity
    push_id: int
    commit_ids_in_payload: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        """Return the classification shown in the delivery log."""
        return {
            "event": "push",
            "repositoryId": self.repository.repository_id,
            "repositoryName": self.repository.repository_name,
            "pushId": self.push_id,
            "refs": [
                {"ref": change.ref_name, "created": change.created, "deleted": change.deleted}
                for change in self.ref_changes
            ],
        }


def _push_event(envelope: ServiceHookEnvelope, resource: PushResource) -> PushEvent:
    commits = resource.commits or []
    return PushEvent(
        repository=_repository_identity(envelope, resource.repository),
        ref_changes=tuple(RefChange.from_wire(update) for update in resource.ref_updates),
        pusher=Identity.from_wire(resource.pushed_by),
        push_id=resource.push_id,
        commit_ids_in_payload=tuple(commit.commit_id.lower() for commit in commits),
    )


# --- pull requests ----------------------------------------------------------------------------

_STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class PullRequestSnapshot:
    """The fields of a pull request that decide what an update means.

    `status` keeps the Azure DevOps value (`active`, `completed`, `abandoned`, or a value added
    later). `reviewer_votes` and `reviewer_ids` are sorted by reviewer id and `label_names` by name,
    so two snapshots of the same state compare equal.
    """

    pull_request_id: int
    status: str
    is_draft: bool
    source_ref: str
    target_ref: str
    source_commit: str | None
    target_commit: str | None
    merge_commit: str | None
    merge_status: str | None
    title: str
    reviewer_votes: tuple[tuple[str, int], ...]
    reviewer_ids: tuple[str, ...]
    label_names: tuple[str, ...]
    created_by: Identity | None
    closed_by: Identity | None
    closed_date: datetime | None

    @classmethod
    def from_wire(cls, resource: PullRequestResource) -> PullRequestSnapshot:
        votes: dict[str, int] = {}
        for reviewer in resource.reviewers:
            votes[reviewer.id.lower()] = reviewer.vote
        labels = {label.name for label in resource.labels if label.active}
        return cls(
            pull_request_id=resource.pull_request_id,
            status=resource.status,
            is_draft=resource.is_draft,
            source_ref=resource.source_ref_name,
            target_ref=resource.target_ref_name,
            source_commit=_commit_id(resource.last_merge_source_commit),
            target_commit=_commit_id(resource.last_merge_target_commit),
            merge_commit=_commit_id(resource.last_merge_commit),
            merge_status=resource.merge_status,
            title=resource.title,
            reviewer_votes=tuple(sorted(votes.items())),
            reviewer_ids=tuple(sorted(votes)),
            label_names=tuple(sorted(labels)),
            created_by=Identity.from_wire(resource.created_by) if resource.created_by else None,
            closed_by=Identity.from_wire(resource.closed_by) if resource.closed_by else None,
            closed_date=_real_date(resource.closed_date),
        )

    def to_state(self) -> dict[str, str | int | bool | None]:
        """Flatten the snapshot into scalar values that a Table Storage entity can hold.

        Lists are stored as JSON text because table properties cannot hold lists.
        """
        return {
            "stateVersion": _STATE_VERSION,
            "pullRequestId": self.pull_request_id,
            "status": self.status,
            "isDraft": self.is_draft,
            "sourceRef": self.source_ref,
            "targetRef": self.target_ref,
            "sourceCommit": self.source_commit,
            "targetCommit": self.target_commit,
            "mergeCommit": self.merge_commit,
            "mergeStatus": self.merge_status,
            "title": self.title,
            "reviewerVotes": json.dumps([[reviewer, vote] for reviewer, vote in self.reviewer_votes]),
            "labelNames": json.dumps(list(self.label_names), ensure_ascii=False),
            "createdById": self.created_by.id if self.created_by else None,
            "createdByDisplayName": self.created_by.display_name if self.created_by else None,
            "createdByUniqueName": self.created_by.unique_name if self.created_by else None,
            "closedById": self.closed_by.id if self.closed_by else None,
            "closedByDisplayName": self.closed_by.display_name if self.closed_by else None,
            "closedByUniqueName": self.closed_by.unique_name if self.closed_by else None,
            "closedDate": self.closed_date.isoformat() if self.closed_date else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, object]) -> PullRequestSnapshot:
        """Rebuild a snapshot from `to_state` output, ignoring other keys (PartitionKey, etag, …).

        Raises `ValidationFailed` (code `invalid_pull_request_state`) when a value is missing or of
        the wrong type. A processor can then treat the pull request as not seen before.
        """
        reader = _StateReader(state)
        version = reader.integer("stateVersion")
        if version != _STATE_VERSION:
            raise reader.invalid("stateVersion", f"is {version}, expected {_STATE_VERSION}")
        votes_json = reader.text("reviewerVotes")
        labels_json = reader.text("labelNames")
        closed_date = reader.optional_text("closedDate")
        try:
            votes = tuple((str(reviewer), int(vote)) for reviewer, vote in json.loads(votes_json))
            labels = tuple(str(name) for name in json.loads(labels_json))
            parsed_closed = datetime.fromisoformat(closed_date) if closed_date else None
        except (TypeError, ValueError) as error:
            raise reader.invalid("reviewerVotes, labelNames or closedDate", "cannot be decoded") from error
        return cls(
            pull_request_id=reader.integer("pullRequestId"),
            status=reader.text("status"),
            is_draft=reader.boolean("isDraft"),
            source_ref=reader.text("sourceRef"),
            target_ref=reader.text("targetRef"),
            source_commit=reader.optional_text("sourceCommit"),
            target_commit=reader.optional_text("targetCommit"),
            merge_commit=reader.optional_text("mergeCommit"),
            merge_status=reader.optional_text("mergeStatus"),
            title=reader.text("title"),
            reviewer_votes=votes,
            reviewer_ids=tuple(reviewer for reviewer, _ in votes),
            label_names=labels,
            created_by=reader.identity("createdBy"),
            closed_by=reader.identity("closedBy"),
            closed_date=parsed_closed,
        )


class _StateReader:
    """Typed access to a stored snapshot, raising `ValidationFailed` that names the key."""

    def __init__(self, state: Mapping[str, object]) -> None:
        self._state = state

    def invalid(self, key: str, problem: str) -> ValidationFailed:
        return ValidationFailed(
            f"The stored pull request state {problem} at {key}. Delete the stored state so that "
            "the next event stores it again.",
            field=key,
            code="invalid_pull_request_state",
        )

    def _get(self, key: str) -> object:
        if key not in self._state:
            raise self.invalid(key, "is missing a value")
        return self._state[key]

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.invalid(key, "has a value that is not an integer")
        return value

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self.invalid(key, "has a value that is not a boolean")
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self.invalid(key, "has a value that is not a string")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self._state.get(key)
        if value is not None and not isinstance(value, str):
            raise self.invalid(key, "has a value that is neither a string nor null")
        return value

    def identity(self, prefix: str) -> Identity | None:
        identity_id = self.optional_text(f"{prefix}Id")
        if identity_id is None:
            return None
        return Identity(
            id=identity_id,
            display_name=self.optional_text(f"{prefix}DisplayName"),
            unique_name=self.optional_text(f"{prefix}UniqueName"),
        )


def _commit_id(commit: CommitRef | None) -> str | None:
    return commit.commit_id.lower() if commit is not None else None


def _real_date(value: datetime | None) -> datetime | None:
    """Drop the year-1 placeholder that Azure DevOps sends for an unset date."""
    if value is None or value.year <= 1:
        return None
    return value


@dataclass(frozen=True, slots=True)
class PullRequestEvent:
    """A pull request event: `created`, `updated` or `merge_attempted` (`git.pullrequest.merged`).

    `actor` is the identity that closed the pull request when Azure DevOps names one, otherwise
    the pull request author. The delivery does not name who made other updates.
    """

    kind: PullRequestEventKind
    repository: RepositoryIdentity
    pull_request: PullRequestSnapshot
    actor: Identity | None

    def summary(self, change: PullRequestChange | None = None) -> dict[str, Any]:
        """Return the classification shown in the delivery log, with the change kinds if known."""
        summary: dict[str, Any] = {
            "event": f"pull_request.{self.kind}",
            "repositoryId": self.repository.repository_id,
            "repositoryName": self.repository.repository_name,
            "pullRequestId": self.pull_request.pull_request_id,
            "status": self.pull_request.status,
            "isDraft": self.pull_request.is_draft,
        }
        if self.kind == "merge_attempted":
            summary["mergeOutcome"] = classify_merge_attempt(self.pull_request).value
        if change is not None:
            summary["changes"] = sorted(change.kinds)
        return summary


_EVENT_KINDS: Final[dict[str, PullRequestEventKind]] = {
    EVENT_PULL_REQUEST_CREATED: "created",
    EVENT_PULL_REQUEST_UPDATED: "updated",
    EVENT_PULL_REQUEST_MERGED: "merge_attempted",
}


def _pull_request_event(
    envelope: ServiceHookEnvelope, kind: PullRequestEventKind, resource: PullRequestResource
) -> PullRequestEvent:
    snapshot = PullRequestSnapshot.from_wire(resource)
    return PullRequestEvent(
        kind=kind,
        repository=_repository_identity(envelope, resource.repository),
        pull_request=snapshot,
        actor=snapshot.closed_by or snapshot.created_by,
    )


# --- pull request update classification -------------------------------------------------------


class ChangeKind(StrEnum):
    """A kind of change in a "pull request updated" delivery, found by comparing two snapshots."""

    NEW_SOURCE_COMMIT = "new_source_commit"
    DRAFT_PUBLISHED = "draft_published"
    CONVERTED_TO_DRAFT = "converted_to_draft"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    REACTIVATED = "reactivated"
    VOTES = "votes"
    REVIEWERS = "reviewers"
    TITLE = "title"
    LABELS = "labels"
    TARGET_CHANGED = "target_changed"
    NO_CHANGE = "no_change"
    FIRST_SEEN = "first_seen"


_RUN_TRIGGERS: Final = frozenset({
    ChangeKind.NEW_SOURCE_COMMIT,
    ChangeKind.DRAFT_PUBLISHED,
    ChangeKind.REACTIVATED,
    ChangeKind.TARGET_CHANGED,
    ChangeKind.FIRST_SEEN,
})


@dataclass(frozen=True, slots=True)
class PullRequestChange:
    """The change kinds of one update, and whether they start or cancel runs.

    `starts_runs` is true when the pull request is now active and not a draft and one of these
    happened: a new source commit, draft published, reactivated, target branch changed, or the
    pull request was seen for the first time. A new commit on a draft starts nothing, but publishing
    the draft does. `cancels_runs` is true when the pull request was completed or abandoned.
    Votes, reviewer, title and label changes do neither.
    """

    kinds: frozenset[ChangeKind]
    is_active: bool
    is_draft: bool

    @property
    def starts_runs(self) -> bool:
        return self.is_active and not self.is_draft and bool(self.kinds & _RUN_TRIGGERS)

    @property
    def cancels_runs(self) -> bool:
        return bool(self.kinds & {ChangeKind.COMPLETED, ChangeKind.ABANDONED})


def classify_pull_request_update(
    previous: PullRequestSnapshot | None, current: PullRequestSnapshot
) -> PullRequestChange:
    """Compare the stored snapshot of a pull request with the new one and name what changed.

    With no stored snapshot the result contains `first_seen`, plus `completed` or `abandoned`
    when the current status is one of those.
    """
    kinds: set[ChangeKind] = set()
    if previous is None:
        kinds.add(ChangeKind.FIRST_SEEN)
        kinds |= _closing_kinds(current.status)
    else:
        kinds |= _status_kinds(previous, current)
        kinds |= _content_kinds(previous, current)
        if not kinds:
            kinds.add(ChangeKind.NO_CHANGE)
    return PullRequestChange(
        kinds=frozenset(kinds),
        is_active=current.status == STATUS_ACTIVE,
        is_draft=current.is_draft,
    )


def _closing_kinds(status: str) -> set[ChangeKind]:
    if status == STATUS_COMPLETED:
        return {ChangeKind.COMPLETED}
    if status == STATUS_ABANDONED:
        return {ChangeKind.ABANDONED}
    return set()


def _status_kinds(previous: PullRequestSnapshot, current: PullRequestSnapshot) -> set[ChangeKind]:
    kinds: set[ChangeKind] = set()
    if previous.status != current.status:
        # NOTE: a change to or from a status this code does not know (such as `notSet`) adds no kind.
        if current.status == STATUS_ACTIVE and previous.status in (STATUS_COMPLETED, STATUS_ABANDONED):
            kinds.add(ChangeKind.REACTIVATED)
        kinds |= _closing_kinds(current.status)
    if previous.is_draft and not current.is_draft:
        kinds.add(ChangeKind.DRAFT_PUBLISHED)
    if not previous.is_draft and current.is_draft:
        kinds.add(ChangeKind.CONVERTED_TO_DRAFT)
    return kinds


def _content_kinds(previous: PullRequestSnapshot, current: PullRequestSnapshot) -> set[ChangeKind]:
    kinds: set[ChangeKind] = set()
    # A missing source commit means Azure DevOps is still computing the merge, not that a commit arrived.
    if current.source_commit is not None and current.source_commit != previous.source_commit:
        kinds.add(ChangeKind.NEW_SOURCE_COMMIT)
    if current.target_ref != previous.target_ref:
        kinds.add(ChangeKind.TARGET_CHANGED)
    if set(current.reviewer_ids) != set(previous.reviewer_ids):
        kinds.add(ChangeKind.REVIEWERS)
    previous_votes = dict(previous.reviewer_votes)
    for reviewer, vote in current.reviewer_votes:
        if reviewer in previous_votes and previous_votes[reviewer] != vote:
            kinds.add(ChangeKind.VOTES)
    if current.title != previous.title:
        kinds.add(ChangeKind.TITLE)
    if current.label_names != previous.label_names:
        kinds.add(ChangeKind.LABELS)
    return kinds


class MergeOutcome(StrEnum):
    """The result of a merge attempt (`git.pullrequest.merged`). A merge attempt is not a completion."""

    SUCCEEDED = "succeeded"
    CONFLICTS = "conflicts"
    FAILURE = "failure"
    REJECTED_BY_POLICY = "rejected_by_policy"
    QUEUED = "queued"
    NOT_SET = "not_set"


_MERGE_STATUSES: Final[dict[str, MergeOutcome]] = {
    "succeeded": MergeOutcome.SUCCEEDED,
    "conflicts": MergeOutcome.CONFLICTS,
    "failure": MergeOutcome.FAILURE,
    "rejectedbypolicy": MergeOutcome.REJECTED_BY_POLICY,
    "queued": MergeOutcome.QUEUED,
    "notset": MergeOutcome.NOT_SET,
}


def classify_merge_attempt(snapshot: PullRequestSnapshot) -> MergeOutcome:
    """Map `mergeStatus` to a merge outcome. A missing or unknown value maps to `not_set`."""
    if snapshot.merge_status is None:
        return MergeOutcome.NOT_SET
    return _MERGE_STATUSES.get(snapshot.merge_status.lower(), MergeOutcome.NOT_SET)


# --- comments ---------------------------------------------------------------------------------

_THREAD_PATH = re.compile(r"/threads/(\d+)(?:/comments/\d+)?/?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CommentEvent:
    """A pull request comment (`ms.vss-code.git-pullrequest-comment-event`).

    `repository` and `pull_request` are None at resource version 1.0, which carries no pull request.
    `thread_id` is None when neither `_links.threads` nor `_links.self` names a thread.
    `author` is the actor of a command in the comment, not the pull request author.
    """

    repository: RepositoryIdentity | None
    pull_request: PullRequestSnapshot | None
    comment_id: int
    thread_id: int | None
    parent_comment_id: int
    author: Identity
    content: str | None
    comment_type: str
    state: CommentState
    published: datetime | None
    last_content_updated: datetime | None

    def may_carry_command(self, own_identity_id: str | None = None) -> bool:
        """Tell whether this comment is a new text comment by someone other than the integration.

        Edited, deleted and system comments, non-text types, comments without a pull request and
        comments written by `own_identity_id` (the integration's own identity) never carry a command.
        """
        if self.state != "new" or self.comment_type.lower() != "text" or self.pull_request is None:
            return False
        if own_identity_id is not None and self.author.id.lower() == own_identity_id.lower():
            return False
        return bool(self.content and self.content.strip())

    def summary(self) -> dict[str, Any]:
        """Return the classification shown in the delivery log."""
        return {
            "event": "pull_request.comment",
            "repositoryId": self.repository.repository_id if self.repository else None,
            "repositoryName": self.repository.repository_name if self.repository else None,
            "pullRequestId": self.pull_request.pull_request_id if self.pull_request else None,
            "commentId": self.comment_id,
            "threadId": self.thread_id,
            "commentState": self.state,
            "commentType": self.comment_type,
        }


def comment_state(comment: CommentRef) -> CommentState:
    """Classify a comment: deleted first, then system, then edited (content changed after publishing)."""
    if comment.is_deleted:
        return "deleted"
    if (comment.comment_type or "").lower() == "system":
        return "system"
    published = comment.published_date
    content_updated = comment.last_content_updated_date
    if published is not None and content_updated is not None and content_updated > published:
        return "edited"
    return "new"


def thread_id_from_links(comment: CommentRef) -> int | None:
    """Read the thread id from `_links.threads.href` or `_links.self.href`."""
    links = comment.links or {}
    for name in ("threads", "self"):
        link = links.get(name)
        if link is None or link.href is None:
            continue
        match = _THREAD_PATH.search(urlsplit(link.href).path)
        if match is not None:
            return int(match.group(1))
    return None


def _comment_event(envelope: ServiceHookEnvelope, resource: PullRequestCommentResource) -> CommentEvent:
    comment = resource.comment
    pull_request = resource.pull_request
    return CommentEvent(
        repository=_repository_identity(envelope, pull_request.repository) if pull_request else None,
        pull_request=PullRequestSnapshot.from_wire(pull_request) if pull_request else None,
        comment_id=comment.id,
        thread_id=thread_id_from_links(comment),
        parent_comment_id=comment.parent_comment_id,
        author=Identity.from_wire(comment.author),
        content=comment.content,
        # NOTE: a missing commentType is read as "unknown", so such a comment never carries a command.
        comment_type=comment.comment_type or "unknown",
        state=comment_state(comment),
        published=comment.published_date,
        last_content_updated=comment.last_content_updated_date,
    )


# --- entry points -----------------------------------------------------------------------------


def misconfiguration(envelope: ServiceHookEnvelope) -> str | None:
    """Return what to change in the subscription when a delivery cannot be acted on, else None."""
    if envelope.event_type not in HANDLED_EVENT_TYPES:
        return None
    if envelope.resource is None:
        return (
            f"The {envelope.event_type} subscription sends no resource details. Edit the service-hook "
            "subscription in Azure DevOps and set 'Resource details to send' to 'All'."
        )
    if envelope.event_type != EVENT_PULL_REQUEST_COMMENTED:
        return None
    version = envelope.resource_version or ""
    lacks_pull_request = isinstance(envelope.resource, dict) and "pullRequest" not in envelope.resource
    if version.startswith("1.") or lacks_pull_request:
        return (
            f"The 'Pull request commented on' subscription uses resource version {version or 'unknown'}, "
            "which carries no pull request. Edit the service-hook subscription in Azure DevOps and "
            "choose resource version 2.0."
        )
    return None


DomainEvent = PushEvent | PullRequestEvent | CommentEvent


def to_domain_event(envelope: ServiceHookEnvelope) -> DomainEvent:
    """Build the domain event of a delivery of one of the `HANDLED_EVENT_TYPES`.

    Raises `ValidationFailed` like `parse_resource` when the resource is missing or invalid.
    """
    resource = parse_resource(envelope)
    if isinstance(resource, PushResource):
        return _push_event(envelope, resource)
    if isinstance(resource, PullRequestCommentResource):
        return _comment_event(envelope, resource)
    kind = _EVENT_KINDS[envelope.event_type]
    return _pull_request_event(envelope, kind, resource)

