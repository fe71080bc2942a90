"""Pydantic models of Azure DevOps service-hook deliveries (the "Web Hooks" consumer).

These models describe the wire format only. They are lenient where Azure DevOps is lenient (nullable
or missing lists, unknown statuses, extra fields) and strict on the fields the service decides on
(repository and project GUIDs, ref names, object ids, pull request ids, comment ids). The domain
events built from them live in `shared.core.events`.

`parse_envelope` and `parse_resource` raise `ValidationFailed` (status 400, code `invalid_payload`)
for every invalid JSON value, with `field` set to the JSON path of the first problem, for example
`resource.refUpdates[0].newObjectId`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from shared.errors import ValidationFailed

EVENT_GIT_PUSH: Final = "git.push"
EVENT_PULL_REQUEST_CREATED: Final = "git.pullrequest.created"
EVENT_PULL_REQUEST_MERGED: Final = "git.pullrequest.merged"
EVENT_PULL_REQUEST_UPDATED: Final = "git.pullrequest.updated"
EVENT_PULL_REQUEST_COMMENTED: Final = "ms.vss-code.git-pullrequest-comment-event"

HANDLED_EVENT_TYPES: Final[frozenset[str]] = frozenset({
    EVENT_GIT_PUSH,
    EVENT_PULL_REQUEST_CREATED,
    EVENT_PULL_REQUEST_MERGED,
    EVENT_PULL_REQUEST_UPDATED,
    EVENT_PULL_REQUEST_COMMENTED,
})

PULL_REQUEST_EVENT_TYPES: Final[frozenset[str]] = frozenset({
    EVENT_PULL_REQUEST_CREATED,
    EVENT_PULL_REQUEST_MERGED,
    EVENT_PULL_REQUEST_UPDATED,
})

INVALID_PAYLOAD: Final = "invalid_payload"
UNSUPPORTED_EVENT_TYPE: Final = "unsupported_event_type"

# Git object ids are SHA-1 (40 hex digits). 64 digits (SHA-256) is accepted so that such a
# repository is not rejected at the edge.
_OBJECT_ID_PATTERN: Final = r"^[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?$"


def _assume_utc(value: datetime) -> datetime:
    """Attach UTC to a date without an offset, so that dates from one payload can be compared."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _empty_if_null(value: object) -> object:
    return [] if value is None else value


Timestamp = Annotated[datetime, AfterValidator(_assume_utc)]
ObjectId = Annotated[str, Field(pattern=_OBJECT_ID_PATTERN)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class _WireModel(BaseModel):
    """Base of every wire model: camelCase aliases on input, extra fields ignored, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        extra="ignore",
        frozen=True,
    )


# --- envelope ---------------------------------------------------------------------------------


class Message(_WireModel):
    """Human-readable text of a delivery. It is localised, so no decision reads it."""

    text: str | None = None
    html: str | None = None
    markdown: str | None = None


class ResourceContainer(_WireModel):
    """One entry of `resourceContainers`: the GUID of a collection, account or project."""

    id: str | None = None
    base_url: str | None = None


class ResourceContainers(_WireModel):
    """The collection, account and project that an event belongs to."""

    collection: ResourceContainer | None = None
    account: ResourceContainer | None = None
    project: ResourceContainer | None = None


class ServiceHookEnvelope(_WireModel):
    """The body of one service-hook delivery. `parse_resource` validates its `resource`."""

    subscription_id: str | None = None
    notification_id: int | None = None
    id: str | None = None
    event_type: NonEmptyStr
    publisher_id: str
    message: Message | None = None
    detailed_message: Message | None = None
    resource: Any = None
    resource_version: str | None = None
    resource_containers: ResourceContainers | None = None
    created_date: Timestamp | None = None


# --- shared resource parts --------------------------------------------------------------------


class Link(_WireModel):
    """One entry of a `_links` object."""

    href: str | None = None


class IdentityRef(_WireModel):
    """A user or group as Azure DevOps sends it (`pushedBy`, `createdBy`, `author`, …)."""

    id: NonEmptyStr
    display_name: str | None = None
    unique_name: str | None = None
    descriptor: str | None = None
    is_container: bool = False


class ReviewerRef(IdentityRef):
    """A reviewer of a pull request and their vote (10, 5, 0, -5 or -10)."""

    vote: int = 0
    is_required: bool = False
    has_declined: bool = False
    is_flagged: bool = False


class LabelRef(_WireModel):
    """A label (tag) of a pull request. A label with `active: false` was removed."""

    id: str | None = None
    name: str
    active: bool = True


class ProjectRef(_WireModel):
    """The project a repository belongs to."""

    id: NonEmptyStr
    name: str
    url: str | None = None


class RepositoryRef(_WireModel):
    """A Git repository. Push payloads carry no `sshUrl` or `webUrl`."""

    id: NonEmptyStr
    name: str
    project: ProjectRef
    url: str | None = None
    default_branch: str | None = None
    remote_url: str | None = None
    ssh_url: str | None = None
    web_url: str | None = None


class GitUserDate(_WireModel):
    """Author or committer of a commit."""

    name: str | None = None
    email: str | None = None
    date: Timestamp | None = None


class CommitRef(_WireModel):
    """A commit as listed in a push or named by a pull request (`lastMergeSourceCommit`, …)."""

    commit_id: ObjectId
    url: str | None = None
    comment: str | None = None
    author: GitUserDate | None = None
    committer: GitUserDate | None = None


# --- resources --------------------------------------------------------------------------------


class RefUpdate(_WireModel):
    """One ref that a push moved. An old id of 40 zeros marks a create, a new id of 40 zeros a delete."""

    name: NonEmptyStr
    old_object_id: ObjectId
    new_object_id: ObjectId


class PushResource(_WireModel):
    """The `resource` of `git.push`. `commits` may be null, missing or incomplete."""

    commits: list[CommitRef] | None = None
    ref_updates: Annotated[list[RefUpdate], BeforeValidator(_empty_if_null)]
    repository: RepositoryRef
    pushed_by: IdentityRef
    push_id: int
    date: Timestamp | None = None
    url: str | None = None


class PullRequestResource(_WireModel):
    """A pull request: the `resource` of the three pull request events.

    `status` is kept as a string so that a status added by a later Azure DevOps release is accepted.
    """

    repository: RepositoryRef
    pull_request_id: int
    code_review_id: int | None = None
    status: NonEmptyStr
    is_draft: Annotated[bool, BeforeValidator(lambda value: False if value is None else value)] = False
    title: str = ""
    description: str | None = None
    source_ref_name: NonEmptyStr
    target_ref_name: NonEmptyStr
    merge_status: str | None = None
    merge_failure_type: str | None = None
    merge_failure_message: str | None = None
    last_merge_source_commit: CommitRef | None = None
    last_merge_target_commit: CommitRef | None = None
    last_merge_commit: CommitRef | None = None
    reviewers: Annotated[list[ReviewerRef], BeforeValidator(_empty_if_null)] = Field(default_factory=list)
    labels: Annotated[list[LabelRef], BeforeValidator(_empty_if_null)] = Field(default_factory=list)
    created_by: IdentityRef | None = None
    creation_date: Timestamp | None = None
    closed_by: IdentityRef | None = None
    closed_date: Timestamp | None = None
    url: str | None = None


class CommentRef(_WireModel):
    """A pull request comment. `content` is null for some deleted comments."""

    id: int
    parent_comment_id: Annotated[int, BeforeValidator(lambda value: 0 if value is None else value)] = 0
    author: IdentityRef
    content: str | None = None
    published_date: Timestamp | None = None
    last_updated_date: Timestamp | None = None
    last_content_updated_date: Timestamp | None = None
    comment_type: str | None = None
    is_deleted: Annotated[bool, BeforeValidator(lambda value: False if value is None else value)] = False
    links: dict[str, Link] | None = Field(default=None, alias="_links")


class PullRequestCommentResource(_WireModel):
    """The `resource` of the comment event. Only resource version 2.0 carries `pullRequest`."""

    comment: CommentRef
    pull_request: PullRequestResource | None = None


Resource = PushResource | PullRequestResource | PullRequestCommentResource


# --- parsing ----------------------------------------------------------------------------------


def _json_path(location: tuple[int | str, ...], prefix: str) -> str:
    """Render a pydantic error location as a JSON path such as `resource.refUpdates[0].name`."""
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{part}"
        else:
            path = part
    return path


def _describe(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return "is missing"
    if error["type"] == "string_pattern_mismatch":
        return "is not a Git object id (40 hexadecimal digits)"
    return f"is invalid: {error['msg']}"


def _to_validation_failed(error: ValidationError, *, prefix: str, subject: str) -> ValidationFailed:
    first = error.errors(include_url=False, include_input=False)[0]
    path = _json_path(tuple(first["loc"]), prefix)
    where = path or "the document root"
    extra = error.error_count() - 1
    more = f" ({extra} more problem{'s' if extra != 1 else ''} in this body)" if extra else ""
    message = (
        f"The {subject} is not a valid Azure DevOps service-hook payload: {where} {_describe(first)}{more}. "
        "Check that the subscription is a Web Hooks subscription with resource details set to 'All'."
    )
    return ValidationFailed(message, field=path or None, status=400, code=INVALID_PAYLOAD)


def parse_envelope(document: object) -> ServiceHookEnvelope:
    """Validate a decoded JSON body as a service-hook envelope.

    Raises `ValidationFailed` (400, `invalid_payload`) naming the JSON path of the first problem.
    """
    if not isinstance(document, dict):
        raise ValidationFailed(
            f"The service-hook body must be a JSON object, not {_json_type(document)}. "
            "Send the body exactly as Azure DevOps delivered it.",
            status=400,
            code=INVALID_PAYLOAD,
        )
    try:
        return ServiceHookEnvelope.model_validate(document)
    except ValidationError as error:
        raise _to_validation_failed(error, prefix="", subject="service-hook body") from error


def parse_resource(envelope: ServiceHookEnvelope) -> PushResource | PullRequestResource | PullRequestCommentResource:
    """Validate `envelope.resource` with the model of its event type.

    Raises `ValidationFailed`: code `unsupported_event_type` for an event type outside
    `HANDLED_EVENT_TYPES`, and `invalid_payload` for a missing or invalid resource.
    """
    event_type = envelope.event_type
    model: type[PushResource] | type[PullRequestResource] | type[PullRequestCommentResource]
    if event_type == EVENT_GIT_PUSH:
        model = PushResource
    elif event_type in PULL_REQUEST_EVENT_TYPES:
        model = PullRequestResource
    elif event_type == EVENT_PULL_REQUEST_COMMENTED:
        model = PullRequestCommentResource
    else:
        raise ValidationFailed(
            f"Event type {event_type!r} is not handled. The handled types are "
            f"{', '.join(sorted(HANDLED_EVENT_TYPES))}. Remove this event type from the subscription.",
            field="eventType",
            status=400,
            code=UNSUPPORTED_EVENT_TYPE,
        )

    resource = envelope.resource
    if resource is None:
        raise ValidationFailed(
            f"The {event_type} delivery has no resource. Edit the service-hook subscription and set "
            "'Resource details to send' to 'All'.",
            field="resource",
            status=400,
            code=INVALID_PAYLOAD,
        )
    if not isinstance(resource, dict):
        raise ValidationFailed(
            f"The resource of the {event_type} delivery must be a JSON object, not {_json_type(resource)}. "
            "Send the body exactly as Azure DevOps delivered it.",
            field="resource",
            status=400,
            code=INVALID_PAYLOAD,
        )
    if model is PullRequestCommentResource:
        resource = _wrap_bare_comment(resource)

    try:
        return model.model_validate(resource)
    except ValidationError as error:
        raise _to_validation_failed(error, prefix="resource", subject=f"{event_type} resource") from error


def _wrap_bare_comment(resource: dict[str, Any]) -> dict[str, Any]:
    """Accept a comment sent as the resource itself instead of under `comment`.

    NOTE: Microsoft does not document the comment event at resource version 1.0. This code accepts
    both `{comment}` without `pullRequest` and the bare comment object.
    """
    if "comment" not in resource and "id" in resource and "author" in resource:
        return {"comment": resource}
    return resource


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
