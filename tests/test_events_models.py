"""Tests of the wire models in shared.ado.events: envelopes, resources and validation errors."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.ado.events import (
    HANDLED_EVENT_TYPES,
    PullRequestCommentResource,
    PullRequestResource,
    PushResource,
    ServiceHookEnvelope,
    parse_envelope,
    parse_resource,
)
from shared.core.events import misconfiguration, to_domain_event
from shared.errors import ValidationFailed
from tests.payloads import load_payload_json, payload_names

ALL_PAYLOADS = payload_names()


def _envelope(name: str) -> ServiceHookEnvelope:
    return parse_envelope(load_payload_json(name))


def _invalid(document: object) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_resource(parse_envelope(document))
    return caught.value


# --- envelope ---------------------------------------------------------------------------------


def test_payload_files_present() -> None:
    for prefix in HANDLED_EVENT_TYPES:
        assert payload_names(prefix), f"no payload file for {prefix}"


@pytest.mark.parametrize("name", ALL_PAYLOADS)
def test_envelope_parses_every_payload(name: str) -> None:
    document = load_payload_json(name)
    envelope = parse_envelope(document)

    assert envelope.event_type == document["eventType"]
    assert envelope.event_type in HANDLED_EVENT_TYPES
    assert envelope.id == document["id"]
    assert envelope.notification_id == document["notificationId"]
    assert envelope.subscription_id == document.get("subscriptionId")
    assert envelope.created_date is not None
    assert envelope.created_date.tzinfo is not None
    assert envelope.resource_containers is not None
    assert envelope.resource_containers.project is not None
    assert envelope.resource_containers.project.id == document["resourceContainers"]["project"]["id"]


def test_envelope_fields_of_push() -> None:
    envelope = _envelope("git.push")

    assert envelope.subscription_id == "5b5b5b00-0000-4000-8000-000000000003"
    assert envelope.notification_id == 41
    assert envelope.id == "e1e1e1e1-1111-4111-8111-000000000001"
    assert envelope.publisher_id == "tfs"
    assert envelope.resource_version == "1.0"
    assert envelope.created_date == datetime(2025, 3, 4, 10, 16, 20, 456123, tzinfo=UTC)
    assert envelope.message is not None
    assert envelope.message.text == "Alex Example pushed updates to widget-service:main."
    assert envelope.resource_containers is not None
    assert envelope.resource_containers.collection is not None
    assert envelope.resource_containers.collection.base_url == "https://dev.azure.com/contoso-test/"


def test_envelope_message_null() -> None:
    envelope = _envelope("git.push.message-null")

    assert envelope.message is None
    assert envelope.detailed_message is None


def test_envelope_publisher_azure_devops() -> None:
    assert _envelope("git.push.publisher-azure-devops").publisher_id == "azure-devops"


def test_envelope_without_subscription_id() -> None:
    envelope = _envelope("git.push.no-subscription-id")

    assert envelope.subscription_id is None
    assert envelope.notification_id == 106


def test_envelope_minimal_fields() -> None:
    envelope = parse_envelope({"eventType": "git.push", "publisherId": "tfs"})

    assert envelope.resource is None
    assert envelope.resource_containers is None
    assert envelope.created_date is None


def test_envelope_ignores_extra_fields() -> None:
    document = load_payload_json("git.push")
    document["scope"] = "all"
    document["sessionToken"] = {"token": None}

    assert parse_envelope(document).event_type == "git.push"


def test_envelope_accepts_unknown_event_type() -> None:
    envelope = parse_envelope({"eventType": "build.complete", "publisherId": "tfs", "resource": {}})

    assert envelope.event_type == "build.complete"


@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        ({"publisherId": "tfs"}, "eventType", "is missing"),
        ({"eventType": "git.push"}, "publisherId", "is missing"),
        ({"eventType": 5, "publisherId": "tfs"}, "eventType", "is invalid"),
        ({"eventType": "", "publisherId": "tfs"}, "eventType", "is invalid"),
        ({"eventType": "git.push", "publisherId": "tfs", "notificationId": "seven"}, "notificationId", "is invalid"),
        ({"eventType": "git.push", "publisherId": "tfs", "message": "hi"}, "message", "is invalid"),
        (
            {"eventType": "git.push", "publisherId": "tfs", "resourceContainers": {"project": {"id": 3}}},
            "resourceContainers.project.id",
            "is invalid",
        ),
        ({"eventType": "git.push", "publisherId": "tfs", "createdDate": "yesterday"}, "createdDate", "is invalid"),
    ],
)
def test_envelope_invalid_field(document: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_envelope(document)

    assert caught.value.field == field
    assert caught.value.status == 400
    assert caught.value.code == "invalid_payload"
    assert f"{field} {problem}" in caught.value.message


@pytest.mark.parametrize("document", [None, [], "git.push", 3, True])
def test_envelope_not_an_object(document: object) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_envelope(document)

    assert caught.value.field is None
    assert caught.value.status == 400
    assert "must be a JSON object" in caught.value.message


# --- resources --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", payload_names("git.push"))
def test_resource_push_model(name: str) -> None:
    resource = parse_resource(_envelope(name))

    assert isinstance(resource, PushResource)
    assert resource.repository.id == "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    assert resource.repository.project.id == "11111111-2222-4333-8444-555555555555"
    assert resource.pushed_by.id == "0a1e0a1e-0000-4000-8000-00000000a1e0"


@pytest.mark.parametrize("name", payload_names("git.pullrequest"))
def test_resource_pull_request_model(name: str) -> None:
    resource = parse_resource(_envelope(name))

    assert isinstance(resource, PullRequestResource)
    assert resource.pull_request_id == 57
    assert resource.source_ref_name == "refs/heads/feature/retry"
    assert resource.target_ref_name == "refs/heads/main"


@pytest.mark.parametrize("name", payload_names("ms.vss-code.git-pullrequest-comment-event"))
def test_resource_comment_model(name: str) -> None:
    resource = parse_resource(_envelope(name))

    assert isinstance(resource, PullRequestCommentResource)
    assert resource.comment.author.id


def test_resource_push_commits_null() -> None:
    resource = parse_resource(_envelope("git.push.commits-null"))

    assert isinstance(resource, PushResource)
    assert resource.commits is None


def test_resource_push_commits_missing() -> None:
    resource = parse_resource(_envelope("git.push.commits-missing"))

    assert isinstance(resource, PushResource)
    assert resource.commits is None


def test_resource_push_ref_updates_empty() -> None:
    resource = parse_resource(_envelope("git.push.ref-updates-empty"))

    assert isinstance(resource, PushResource)
    assert resource.ref_updates == []


def test_resource_push_ref_updates_null() -> None:
    document = load_payload_json("git.push")
    document["resource"]["refUpdates"] = None
    resource = parse_resource(parse_envelope(document))

    assert isinstance(resource, PushResource)
    assert resource.ref_updates == []


def test_resource_pull_request_defaults() -> None:
    document = load_payload_json("git.pullrequest.created")
    for key in ("isDraft", "reviewers", "labels", "lastMergeCommit", "closedBy", "title"):
        document["resource"].pop(key, None)
    resource = parse_resource(parse_envelope(document))

    assert isinstance(resource, PullRequestResource)
    assert resource.is_draft is False
    assert resource.reviewers == []
    assert resource.labels == []
    assert resource.last_merge_commit is None
    assert resource.title == ""


def test_resource_pull_request_unknown_status() -> None:
    document = load_payload_json("git.pullrequest.updated.source-pushed")
    document["resource"]["status"] = "someFutureStatus"
    resource = parse_resource(parse_envelope(document))

    assert isinstance(resource, PullRequestResource)
    assert resource.status == "someFutureStatus"


def test_resource_pull_request_reviewer_votes() -> None:
    resource = parse_resource(_envelope("git.pullrequest.updated.reviewers"))

    assert isinstance(resource, PullRequestResource)
    assert [(reviewer.vote, reviewer.is_container) for reviewer in resource.reviewers] == [(0, False), (0, True)]


def test_resource_merge_conflicts_no_merge_commit() -> None:
    resource = parse_resource(_envelope("git.pullrequest.merged.conflicts"))

    assert isinstance(resource, PullRequestResource)
    assert resource.merge_status == "conflicts"
    assert resource.last_merge_commit is None
    assert resource.merge_failure_message == "The merge has conflicts in main.tf."


def test_resource_comment_fields() -> None:
    resource = parse_resource(_envelope("ms.vss-code.git-pullrequest-comment-event"))

    assert isinstance(resource, PullRequestCommentResource)
    comment = resource.comment
    assert comment.id == 2
    assert comment.parent_comment_id == 1
    assert comment.content == "/review please re-run the checks"
    assert comment.comment_type == "text"
    assert comment.is_deleted is False
    assert comment.links is not None
    assert comment.links["threads"].href is not None
    assert comment.links["threads"].href.endswith("/threads/311")
    assert resource.pull_request is not None
    assert resource.pull_request.pull_request_id == 57


def test_resource_comment_deleted_null_content() -> None:
    resource = parse_resource(_envelope("ms.vss-code.git-pullrequest-comment-event.deleted"))

    assert isinstance(resource, PullRequestCommentResource)
    assert resource.comment.is_deleted is True
    assert resource.comment.content is None


def test_resource_comment_missing_is_deleted() -> None:
    document = load_payload_json("ms.vss-code.git-pullrequest-comment-event.no-is-deleted")
    assert "isDeleted" not in document["resource"]["comment"]

    resource = parse_resource(parse_envelope(document))
    assert isinstance(resource, PullRequestCommentResource)
    assert resource.comment.is_deleted is False


def test_resource_comment_version_1_without_pull_request() -> None:
    resource = parse_resource(_envelope("ms.vss-code.git-pullrequest-comment-event.resource-version-1"))

    assert isinstance(resource, PullRequestCommentResource)
    assert resource.pull_request is None
    assert resource.comment.id == 2


def test_resource_comment_sent_bare() -> None:
    document = load_payload_json("ms.vss-code.git-pullrequest-comment-event.resource-version-1")
    document["resource"] = document["resource"]["comment"]
    resource = parse_resource(parse_envelope(document))

    assert isinstance(resource, PullRequestCommentResource)
    assert resource.comment.id == 2


def test_resource_non_ascii_names() -> None:
    resource = parse_resource(_envelope("git.push.non-ascii"))

    assert isinstance(resource, PushResource)
    assert resource.repository.name == "módulos de red"
    assert resource.repository.project.name == "Équipe Données"
    assert resource.pushed_by.display_name == "Zoë Núñez-Łukasiewicz"


# --- invalid resources ------------------------------------------------------------------------


def _push_with(path: list[str | int], value: object) -> dict[str, Any]:
    document = load_payload_json("git.push")
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "field", "problem"),
    [
        (["resource", "refUpdates", 0, "newObjectId"], None, "resource.refUpdates[0].newObjectId", "is invalid"),
        (["resource", "refUpdates", 0, "newObjectId"], "main", "resource.refUpdates[0].newObjectId",
         "is not a Git object id"),
        (["resource", "refUpdates"], "refs/heads/main", "resource.refUpdates", "is invalid"),
        (["resource", "repository", "project", "id"], 7, "resource.repository.project.id", "is invalid"),
        (["resource", "pushedBy"], None, "resource.pushedBy", "is invalid"),
        (["resource", "pushId"], "eight", "resource.pushId", "is invalid"),
        (["resource", "commits"], [{"commitId": "xyz"}], "resource.commits[0].commitId", "is not a Git object id"),
    ],
)
def test_resource_invalid_field(path: list[str | int], value: object, field: str, problem: str) -> None:
    error = _invalid(_push_with(path, value))

    assert error.field == field
    assert error.status == 400
    assert error.code == "invalid_payload"
    assert f"{field} {problem}" in error.message


def test_resource_missing_field() -> None:
    document = load_payload_json("git.pullrequest.created")
    del document["resource"]["sourceRefName"]
    error = _invalid(document)

    assert error.field == "resource.sourceRefName"
    assert "resource.sourceRefName is missing" in error.message


def test_resource_missing_comment_author() -> None:
    document = load_payload_json("ms.vss-code.git-pullrequest-comment-event")
    del document["resource"]["comment"]["author"]["id"]
    error = _invalid(document)

    assert error.field == "resource.comment.author.id"


def test_resource_null_explains_fix() -> None:
    document = load_payload_json("git.push")
    document["resource"] = None
    error = _invalid(document)

    assert error.field == "resource"
    assert "'Resource details to send' to 'All'" in error.message


def test_resource_not_an_object() -> None:
    document = load_payload_json("git.pullrequest.updated.vote")
    document["resource"] = ["pullRequestId", 57]
    error = _invalid(document)

    assert error.field == "resource"
    assert "must be a JSON object, not an array" in error.message


def test_resource_unhandled_event_type() -> None:
    error = _invalid({"eventType": "build.complete", "publisherId": "tfs", "resource": {}})

    assert error.field == "eventType"
    assert error.code == "unsupported_event_type"
    assert "'build.complete'" in error.message


def test_resource_error_chained() -> None:
    document = _push_with(["resource", "pushId"], "eight")
    error = _invalid(document)

    assert error.__cause__ is not None


# --- property: parsing raises nothing but ValidationFailed ------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["0" * 40, "refs/heads/main", "2025-03-05T09:45:00Z", "1.0", "2.0", "text", "system"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _run_everything(document: object) -> None:
    """Parse a document the way ingestion and a processor do; only ValidationFailed may escape."""
    try:
        envelope = parse_envelope(document)
        misconfiguration(envelope)
        if envelope.event_type in HANDLED_EVENT_TYPES:
            to_domain_event(envelope).summary()
    except ValidationFailed as error:
        assert error.status == 400
        assert error.message


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


PAYLOAD_DOCUMENTS = {name: load_payload_json(name) for name in ALL_PAYLOADS}
PAYLOAD_PATHS = [(name, path) for name, document in PAYLOAD_DOCUMENTS.items() for path in _paths(document)]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=JSON_VALUES)
def test_property_any_json_value(document: object) -> None:
    _run_everything(document)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    event_type=st.sampled_from(sorted(HANDLED_EVENT_TYPES)),
    resource=JSON_VALUES,
    version=st.sampled_from([None, "1.0", "2.0"]),
)
def test_property_any_resource(event_type: str, resource: object, version: str | None) -> None:
    _run_everything({"eventType": event_type, "publisherId": "tfs", "resource": resource, "resourceVersion": version})


@settings(max_examples=600, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(PAYLOAD_PATHS), replacement=JSON_VALUES, delete=st.booleans())
def test_property_payload_mutation(
    target: tuple[str, tuple[str | int, ...]], replacement: object, delete: bool
) -> None:
    name, path = target
    document = copy.deepcopy(PAYLOAD_DOCUMENTS[name])
    parent: Any = document
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement

    _run_everything(document)
