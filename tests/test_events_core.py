"""Tests of the pure event core in shared.core.events."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from shared.ado.events import parse_envelope
from shared.core.events import (
    ChangeKind,
    CommentEvent,
    Identity,
    MergeOutcome,
    PullRequestEvent,
    PullRequestSnapshot,
    PushEvent,
    RefChange,
    classify_merge_attempt,
    classify_pull_request_update,
    misconfiguration,
    split_ref_name,
    to_domain_event,
)
from shared.errors import ValidationFailed
from tests.payloads import load_payload_json, payload_names

REPOSITORY_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
PROJECT_ID = "11111111-2222-4333-8444-555555555555"
COLLECTION_ID = "c0c0c0c0-0000-4000-8000-000000000001"
ZERO = "0" * 40
HEAD = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"


def _event(name: str) -> PushEvent | PullRequestEvent | CommentEvent:
    return to_domain_event(parse_envelope(load_payload_json(name)))


def _push(name: str) -> PushEvent:
    event = _event(name)
    assert isinstance(event, PushEvent)
    return event


def _pull_request(name: str) -> PullRequestEvent:
    event = _event(name)
    assert isinstance(event, PullRequestEvent)
    return event


def _comment(name: str) -> CommentEvent:
    event = _event(name)
    assert isinstance(event, CommentEvent)
    return event


def _snapshot(name: str) -> PullRequestSnapshot:
    return _pull_request(name).pull_request


# --- every payload ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", payload_names())
def test_domain_event_of_every_payload(name: str) -> None:
    event = _event(name)
    summary = event.summary()

    assert json.loads(json.dumps(summary)) == summary
    if isinstance(event, CommentEvent) and event.repository is None:
        assert summary["repositoryId"] is None
        return
    assert event.repository is not None
    assert event.repository.repository_id == REPOSITORY_ID
    assert event.repository.project_id == PROJECT_ID
    assert event.repository.collection_id == COLLECTION_ID
    assert summary["repositoryId"] == REPOSITORY_ID


@pytest.mark.parametrize(
    ("prefix", "event_type", "summary_kind"),
    [
        ("git.push", PushEvent, "push"),
        ("git.pullrequest.created", PullRequestEvent, "pull_request.created"),
        ("git.pullrequest.updated", PullRequestEvent, "pull_request.updated"),
        ("git.pullrequest.merged", PullRequestEvent, "pull_request.merge_attempted"),
        ("ms.vss-code.git-pullrequest-comment-event", CommentEvent, "pull_request.comment"),
    ],
)
def test_domain_event_type(prefix: str, event_type: type, summary_kind: str) -> None:
    for name in payload_names(prefix):
        event = _event(name)
        assert isinstance(event, event_type), name
        assert event.summary()["event"] == summary_kind, name


# --- push -------------------------------------------------------------------------------------


def test_push_fields() -> None:
    event = _push("git.push")

    assert event.push_id == 812
    assert event.pusher == Identity(
        id="0a1e0a1e-0000-4000-8000-00000000a1e0",
        display_name="Alex Example",
        unique_name="alex.example@example.com",
    )
    assert event.commit_ids_in_payload == (HEAD, "3f1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d")
    assert event.repository.repository_name == "widget-service"
    assert event.repository.project_name == "Widgets"
    assert event.repository.remote_url == "https://dev.azure.com/contoso-test/Widgets/_git/widget-service"
    assert event.ref_changes == (
        RefChange(
            ref_name="refs/heads/main",
            kind="branch",
            short_name="main",
            old_object_id="1234abcd5678ef901234abcd5678ef901234abcd",
            new_object_id=HEAD,
            created=False,
            deleted=False,
        ),
    )


def test_push_branch_created() -> None:
    (change,) = _push("git.push.branch-created").ref_changes

    assert change.kind == "branch"
    assert change.short_name == "feature/retry"
    assert change.created is True
    assert change.deleted is False
    assert change.old_object_id == ZERO


def test_push_branch_deleted() -> None:
    event = _push("git.push.branch-deleted")
    (change,) = event.ref_changes

    assert change.deleted is True
    assert change.created is False
    assert change.new_object_id == ZERO
    assert event.commit_ids_in_payload == ()
    assert event.summary()["refs"] == [{"ref": "refs/heads/feature/retry", "created": False, "deleted": True}]


def test_push_tag() -> None:
    (change,) = _push("git.push.tag").ref_changes

    assert change.kind == "tag"
    assert change.short_name == "v1.4.0"
    assert change.created is True


def test_push_several_refs() -> None:
    changes = _push("git.push.several-refs").ref_changes

    assert [(change.kind, change.short_name, change.created, change.deleted) for change in changes] == [
        ("branch", "main", False, False),
        ("branch", "release/2025.03", True, False),
        ("tag", "v1.4.0", True, False),
        ("branch", "old-spike", False, True),
    ]


@pytest.mark.parametrize("name", ["git.push.commits-null", "git.push.commits-missing"])
def test_push_without_commits(name: str) -> None:
    event = _push(name)

    assert event.commit_ids_in_payload == ()
    assert len(event.ref_changes) == 1


def test_push_ref_updates_empty() -> None:
    event = _push("git.push.ref-updates-empty")

    assert event.ref_changes == ()
    assert event.summary()["refs"] == []


def test_push_non_ascii_names() -> None:
    event = _push("git.push.non-ascii")

    assert event.repository.repository_name == "módulos de red"
    assert event.repository.project_name == "Équipe Données"
    assert event.pusher.display_name == "Zoë Núñez-Łukasiewicz"
    assert event.summary()["repositoryName"] == "módulos de red"


def test_push_legacy_url_same_identity() -> None:
    modern = _push("git.push").repository
    legacy = _push("git.push.legacy-url").repository

    assert legacy.remote_url != modern.remote_url
    assert legacy.key == modern.key


def test_push_object_ids_lowercased() -> None:
    document = load_payload_json("git.push")
    document["resource"]["refUpdates"][0]["newObjectId"] = HEAD.upper()
    event = to_domain_event(parse_envelope(document))

    assert isinstance(event, PushEvent)
    assert event.ref_changes[0].new_object_id == HEAD


@pytest.mark.parametrize(
    ("ref_name", "kind", "short_name"),
    [
        ("refs/heads/main", "branch", "main"),
        ("refs/heads/feature/a b", "branch", "feature/a b"),
        ("refs/tags/v1", "tag", "v1"),
        ("refs/notes/commits", "other", "refs/notes/commits"),
        ("refs/pull/57/merge", "other", "refs/pull/57/merge"),
        ("main", "other", "main"),
    ],
)
def test_split_ref_name(ref_name: str, kind: str, short_name: str) -> None:
    assert split_ref_name(ref_name) == (kind, short_name)


# --- pull request snapshot --------------------------------------------------------------------


def test_snapshot_fields() -> None:
    snapshot = _snapshot("git.pullrequest.created")

    assert snapshot.pull_request_id == 57
    assert snapshot.status == "active"
    assert snapshot.is_draft is False
    assert snapshot.source_ref == "refs/heads/feature/retry"
    assert snapshot.target_ref == "refs/heads/main"
    assert snapshot.source_commit == "c4c4c4c4d5d5d5d5e6e6e6e6f7f7f7f7a8a8a8a8"
    assert snapshot.target_commit == HEAD
    assert snapshot.merge_commit == "d9d9d9d9e0e0e0e0f1f1f1f1a2a2a2a2b3b3b3b3"
    assert snapshot.merge_status == "succeeded"
    assert snapshot.title == "Add retry to widget client"
    assert snapshot.reviewer_votes == (("0b1a0b1a-0000-4000-8000-00000000b1a0", 0),)
    assert snapshot.reviewer_ids == ("0b1a0b1a-0000-4000-8000-00000000b1a0",)
    assert snapshot.label_names == ("needs-review",)
    assert snapshot.created_by is not None
    assert snapshot.created_by.id == "0a1e0a1e-0000-4000-8000-00000000a1e0"
    assert snapshot.closed_by is None
    assert snapshot.closed_date is None


def test_snapshot_completed() -> None:
    event = _pull_request("git.pullrequest.updated.completed")
    snapshot = event.pull_request

    assert snapshot.status == "completed"
    assert snapshot.closed_date == datetime(2025, 3, 5, 10, 5, 41, tzinfo=UTC)
    assert snapshot.closed_by is not None
    assert event.actor == snapshot.closed_by


def test_snapshot_inactive_labels_dropped() -> None:
    assert _snapshot("git.pullrequest.updated.labels").label_names == ("infra", "needs-review")


def test_snapshot_placeholder_closed_date() -> None:
    document = load_payload_json("git.pullrequest.created")
    document["resource"]["closedDate"] = "0001-01-01T00:00:00"

    event = to_domain_event(parse_envelope(document))
    assert isinstance(event, PullRequestEvent)
    assert event.pull_request.closed_date is None


@pytest.mark.parametrize("name", payload_names("git.pullrequest"))
def test_snapshot_state_round_trip(name: str) -> None:
    snapshot = _snapshot(name)
    state = snapshot.to_state()

    for key, value in state.items():
        assert value is None or isinstance(value, str | int | bool), key
    assert PullRequestSnapshot.from_state(json.loads(json.dumps(state))) == snapshot


def test_snapshot_state_non_ascii() -> None:
    snapshot = _comment("ms.vss-code.git-pullrequest-comment-event.non-ascii").pull_request
    assert snapshot is not None
    changed = dataclasses.replace(snapshot, label_names=("módulo", "réseau"))

    assert PullRequestSnapshot.from_state(changed.to_state()) == changed


def test_snapshot_state_ignores_table_keys() -> None:
    snapshot = _snapshot("git.pullrequest.created")
    state: dict[str, object] = {**snapshot.to_state(), "PartitionKey": "x", "RowKey": "57", "etag": "W/1"}

    assert PullRequestSnapshot.from_state(state) == snapshot


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pullRequestId", "57"),
        ("isDraft", "false"),
        ("status", None),
        ("reviewerVotes", "not json"),
        ("closedDate", "yesterday"),
        ("stateVersion", 99),
    ],
)
def test_snapshot_state_invalid(key: str, value: object) -> None:
    state: dict[str, object] = {**_snapshot("git.pullrequest.created").to_state(), key: value}

    with pytest.raises(ValidationFailed) as caught:
        PullRequestSnapshot.from_state(state)
    assert caught.value.code == "invalid_pull_request_state"
    assert key in caught.value.message


def test_snapshot_state_missing_key() -> None:
    state = _snapshot("git.pullrequest.created").to_state()
    del state["title"]

    with pytest.raises(ValidationFailed) as caught:
        PullRequestSnapshot.from_state(state)
    assert caught.value.field == "title"


# --- pull request update classification -------------------------------------------------------

C = ChangeKind


@pytest.mark.parametrize(
    ("previous", "current", "kinds", "starts", "cancels"),
    [
        ("git.pullrequest.created", "git.pullrequest.updated.source-pushed", {C.NEW_SOURCE_COMMIT}, True, False),
        ("git.pullrequest.created", "git.pullrequest.updated.vote", {C.VOTES}, False, False),
        ("git.pullrequest.created", "git.pullrequest.updated.reviewers", {C.REVIEWERS}, False, False),
        ("git.pullrequest.created", "git.pullrequest.updated.title", {C.TITLE}, False, False),
        ("git.pullrequest.created", "git.pullrequest.updated.labels", {C.LABELS}, False, False),
        ("git.pullrequest.created", "git.pullrequest.updated.message-null", {C.NO_CHANGE}, False, False),
        ("git.pullrequest.created", "git.pullrequest.updated.completed", {C.COMPLETED, C.VOTES}, False, True),
        ("git.pullrequest.created", "git.pullrequest.updated.abandoned", {C.ABANDONED}, False, True),
        ("git.pullrequest.created.draft", "git.pullrequest.updated.draft-published",
         {C.DRAFT_PUBLISHED, C.REVIEWERS}, True, False),
        ("git.pullrequest.updated.abandoned", "git.pullrequest.updated.reactivated", {C.REACTIVATED}, True, False),
        ("git.pullrequest.created", "git.pullrequest.created.draft", {C.CONVERTED_TO_DRAFT, C.REVIEWERS},
         False, False),
    ],
)
def test_classify_update_from_files(
    previous: str, current: str, kinds: set[ChangeKind], starts: bool, cancels: bool
) -> None:
    change = classify_pull_request_update(_snapshot(previous), _snapshot(current))

    assert change.kinds == kinds
    assert change.starts_runs is starts
    assert change.cancels_runs is cancels


BASE = PullRequestSnapshot(
    pull_request_id=57,
    status="active",
    is_draft=False,
    source_ref="refs/heads/feature/retry",
    target_ref="refs/heads/main",
    source_commit="a" * 40,
    target_commit="b" * 40,
    merge_commit="c" * 40,
    merge_status="succeeded",
    title="Add retry",
    reviewer_votes=(("r1", 0), ("r2", 0)),
    reviewer_ids=("r1", "r2"),
    label_names=("infra",),
    created_by=Identity("u1", "Alex", "alex@example.com"),
    closed_by=None,
    closed_date=None,
)


def _with(**changes: object) -> PullRequestSnapshot:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "kinds", "starts", "cancels"),
    [
        (_with(), {C.NO_CHANGE}, False, False),
        (_with(source_commit="d" * 40), {C.NEW_SOURCE_COMMIT}, True, False),
        (_with(source_commit=None), {C.NO_CHANGE}, False, False),
        (_with(source_commit="d" * 40, is_draft=True), {C.NEW_SOURCE_COMMIT, C.CONVERTED_TO_DRAFT}, False, False),
        (_with(target_commit="e" * 40, merge_commit="f" * 40), {C.NO_CHANGE}, False, False),
        (_with(merge_status="conflicts"), {C.NO_CHANGE}, False, False),
        (_with(target_ref="refs/heads/release"), {C.TARGET_CHANGED}, True, False),
        (_with(reviewer_votes=(("r1", 10), ("r2", -5))), {C.VOTES}, False, False),
        (_with(reviewer_votes=(("r1", 0),), reviewer_ids=("r1",)), {C.REVIEWERS}, False, False),
        (_with(reviewer_votes=(("r1", 5), ("r3", 0)), reviewer_ids=("r1", "r3")), {C.VOTES, C.REVIEWERS},
         False, False),
        (_with(title="Add retries"), {C.TITLE}, False, False),
        (_with(label_names=()), {C.LABELS}, False, False),
        (_with(status="completed"), {C.COMPLETED}, False, True),
        (_with(status="abandoned"), {C.ABANDONED}, False, True),
        (_with(status="someFutureStatus"), {C.NO_CHANGE}, False, False),
        (_with(title="Add retries", source_commit="d" * 40), {C.TITLE, C.NEW_SOURCE_COMMIT}, True, False),
    ],
)
def test_classify_update_table(
    current: PullRequestSnapshot, kinds: set[ChangeKind], starts: bool, cancels: bool
) -> None:
    change = classify_pull_request_update(BASE, current)

    assert change.kinds == kinds
    assert change.starts_runs is starts
    assert change.cancels_runs is cancels


@pytest.mark.parametrize(
    ("previous", "current", "kinds", "starts"),
    [
        (_with(is_draft=True), _with(), {C.DRAFT_PUBLISHED}, True),
        (_with(is_draft=True), _with(is_draft=True, source_commit="d" * 40), {C.NEW_SOURCE_COMMIT}, False),
        (_with(status="abandoned"), _with(), {C.REACTIVATED}, True),
        (_with(status="abandoned"), _with(is_draft=True), {C.REACTIVATED, C.CONVERTED_TO_DRAFT}, False),
        (_with(status="completed"), _with(status="completed", merge_commit="f" * 40), {C.NO_CHANGE}, False),
    ],
)
def test_classify_update_transitions(
    previous: PullRequestSnapshot, current: PullRequestSnapshot, kinds: set[ChangeKind], starts: bool
) -> None:
    change = classify_pull_request_update(previous, current)

    assert change.kinds == kinds
    assert change.starts_runs is starts


@pytest.mark.parametrize(
    ("current", "kinds", "starts", "cancels"),
    [
        (_with(), {C.FIRST_SEEN}, True, False),
        (_with(is_draft=True), {C.FIRST_SEEN}, False, False),
        (_with(status="completed"), {C.FIRST_SEEN, C.COMPLETED}, False, True),
        (_with(status="abandoned"), {C.FIRST_SEEN, C.ABANDONED}, False, True),
        (_with(status="someFutureStatus"), {C.FIRST_SEEN}, False, False),
    ],
)
def test_classify_update_first_seen(
    current: PullRequestSnapshot, kinds: set[ChangeKind], starts: bool, cancels: bool
) -> None:
    change = classify_pull_request_update(None, current)

    assert change.kinds == kinds
    assert change.starts_runs is starts
    assert change.cancels_runs is cancels


def test_classify_ignores_message_text() -> None:
    document = load_payload_json("git.pullrequest.updated.vote")
    document["message"]["text"] = "Alex Example updated the source branch of pull request 57"
    event = to_domain_event(parse_envelope(document))
    assert isinstance(event, PullRequestEvent)

    change = classify_pull_request_update(_snapshot("git.pullrequest.created"), event.pull_request)
    assert change.kinds == {C.VOTES}


def test_update_summary_lists_changes() -> None:
    event = _pull_request("git.pullrequest.updated.source-pushed")
    change = classify_pull_request_update(_snapshot("git.pullrequest.created"), event.pull_request)

    assert event.summary(change)["changes"] == ["new_source_commit"]
    assert "changes" not in event.summary()


# --- merge attempts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("merge_status", "outcome"),
    [
        ("succeeded", MergeOutcome.SUCCEEDED),
        ("conflicts", MergeOutcome.CONFLICTS),
        ("failure", MergeOutcome.FAILURE),
        ("rejectedByPolicy", MergeOutcome.REJECTED_BY_POLICY),
        ("queued", MergeOutcome.QUEUED),
        ("notSet", MergeOutcome.NOT_SET),
        (None, MergeOutcome.NOT_SET),
        ("someFutureStatus", MergeOutcome.NOT_SET),
    ],
)
def test_merge_outcome_table(merge_status: str | None, outcome: MergeOutcome) -> None:
    assert classify_merge_attempt(_with(merge_status=merge_status)) is outcome


def test_merge_attempt_conflicts() -> None:
    event = _pull_request("git.pullrequest.merged.conflicts")

    assert event.kind == "merge_attempted"
    assert event.pull_request.merge_commit is None
    assert event.pull_request.status == "active"
    assert classify_merge_attempt(event.pull_request) is MergeOutcome.CONFLICTS
    assert event.summary()["mergeOutcome"] == "conflicts"


def test_merge_attempt_not_completion() -> None:
    event = _pull_request("git.pullrequest.merged.succeeded")

    assert classify_merge_attempt(event.pull_request) is MergeOutcome.SUCCEEDED
    assert "completed" not in {outcome.value for outcome in MergeOutcome}
    assert event.summary()["status"] == "active"


def test_created_draft() -> None:
    event = _pull_request("git.pullrequest.created.draft")

    assert event.kind == "created"
    assert event.pull_request.is_draft is True
    assert event.summary()["isDraft"] is True
    assert classify_pull_request_update(None, event.pull_request).starts_runs is False


# --- comments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state", "carries_command"),
    [
        ("ms.vss-code.git-pullrequest-comment-event", "new", True),
        ("ms.vss-code.git-pullrequest-comment-event.no-is-deleted", "new", True),
        ("ms.vss-code.git-pullrequest-comment-event.non-ascii", "new", True),
        ("ms.vss-code.git-pullrequest-comment-event.edited", "edited", False),
        ("ms.vss-code.git-pullrequest-comment-event.deleted", "deleted", False),
        ("ms.vss-code.git-pullrequest-comment-event.system", "system", False),
        ("ms.vss-code.git-pullrequest-comment-event.code-change", "new", False),
        ("ms.vss-code.git-pullrequest-comment-event.resource-version-1", "new", False),
    ],
)
def test_comment_state_table(name: str, state: str, carries_command: bool) -> None:
    event = _comment(name)

    assert event.state == state
    assert event.summary()["commentState"] == state
    assert event.may_carry_command() is carries_command


def test_comment_fields() -> None:
    event = _comment("ms.vss-code.git-pullrequest-comment-event")

    assert event.comment_id == 2
    assert event.thread_id == 311
    assert event.parent_comment_id == 1
    assert event.author.id == "0b1a0b1a-0000-4000-8000-00000000b1a0"
    assert event.content == "/review please re-run the checks"
    assert event.comment_type == "text"
    assert event.published == datetime(2025, 3, 5, 9, 45, tzinfo=UTC)
    assert event.pull_request is not None
    assert event.pull_request.pull_request_id == 57
    assert event.repository is not None
    assert event.repository.remote_url == "https://contoso-test.visualstudio.com/Widgets/_git/widget-service"


def test_comment_actor_is_author() -> None:
    event = _comment("ms.vss-code.git-pullrequest-comment-event")

    assert event.pull_request is not None
    assert event.pull_request.created_by is not None
    assert event.author.id != event.pull_request.created_by.id


def test_comment_own_comment_ignored() -> None:
    event = _comment("ms.vss-code.git-pullrequest-comment-event")

    assert event.may_carry_command("0B1A0B1A-0000-4000-8000-00000000B1A0") is False
    assert event.may_carry_command("0a1e0a1e-0000-4000-8000-00000000a1e0") is True


def test_comment_thread_from_self_link() -> None:
    event = _comment("ms.vss-code.git-pullrequest-comment-event.no-is-deleted")

    assert event.thread_id == 311
    assert event.comment_id == 3


def test_comment_system_thread() -> None:
    assert _comment("ms.vss-code.git-pullrequest-comment-event.system").thread_id == 312


def test_comment_without_links() -> None:
    document = load_payload_json("ms.vss-code.git-pullrequest-comment-event")
    del document["resource"]["comment"]["_links"]
    event = to_domain_event(parse_envelope(document))

    assert isinstance(event, CommentEvent)
    assert event.thread_id is None


def test_comment_deleted_null_content() -> None:
    event = _comment("ms.vss-code.git-pullrequest-comment-event.deleted")

    assert event.content is None
    assert event.may_carry_command() is False


def test_comment_edited_dates() -> None:
    event = _comment("ms.vss-code.git-pullrequest-comment-event.edited")

    assert event.published is not None
    assert event.last_content_updated is not None
    assert event.last_content_updated > event.published


def test_comment_naive_and_aware_dates() -> None:
    document = load_payload_json("ms.vss-code.git-pullrequest-comment-event")
    document["resource"]["comment"]["publishedDate"] = "2025-03-05T09:45:00"
    document["resource"]["comment"]["lastContentUpdatedDate"] = "2025-03-05T09:46:00Z"
    event = to_domain_event(parse_envelope(document))

    assert isinstance(event, CommentEvent)
    assert event.state == "edited"


def test_comment_non_ascii() -> None:
    event = _comment("ms.vss-code.git-pullrequest-comment-event.non-ascii")

    assert event.author.display_name == "Łukasz Żółć"
    assert event.content is not None
    assert event.content.startswith("/plan — proszę")
    assert event.repository is not None
    assert event.repository.project_name == "Équipe Données"


def test_comment_version_1() -> None:
    event = _comment("ms.vss-code.git-pullrequest-comment-event.resource-version-1")

    assert event.pull_request is None
    assert event.repository is None
    assert event.thread_id == 311
    assert event.summary()["pullRequestId"] is None


# --- misconfiguration -------------------------------------------------------------------------


def test_misconfiguration_comment_version_1() -> None:
    envelope = parse_envelope(load_payload_json("ms.vss-code.git-pullrequest-comment-event.resource-version-1"))
    message = misconfiguration(envelope)

    assert message is not None
    assert "resource version 2.0" in message
    assert "resource version 1.0" in message


def test_misconfiguration_resource_missing() -> None:
    document = load_payload_json("git.pullrequest.updated.vote")
    document["resource"] = None
    message = misconfiguration(parse_envelope(document))

    assert message is not None
    assert "'Resource details to send' to 'All'" in message


@pytest.mark.parametrize(
    "name",
    [name for name in payload_names() if not name.endswith("resource-version-1")],
)
def test_misconfiguration_none(name: str) -> None:
    assert misconfiguration(parse_envelope(load_payload_json(name))) is None


def test_misconfiguration_unhandled_type() -> None:
    envelope = parse_envelope({"eventType": "build.complete", "publisherId": "tfs"})

    assert misconfiguration(envelope) is None


# --- invalid resources ------------------------------------------------------------------------


def test_domain_event_invalid_resource() -> None:
    document = load_payload_json("git.push")
    del document["resource"]["refUpdates"][0]["newObjectId"]

    with pytest.raises(ValidationFailed) as caught:
        to_domain_event(parse_envelope(document))
    assert caught.value.field == "resource.refUpdates[0].newObjectId"
    assert caught.value.code == "invalid_payload"
