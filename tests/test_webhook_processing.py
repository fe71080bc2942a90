"""Processing of queued deliveries through the local host: the classification each payload file
gets in the delivery log, pull request update sequences, duplicates, replay, who may read the
log, and failed deliveries that end in the poison queue."""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.stack import LocalStack, StackOptions
from shared.storage.names import DELIVERIES_TABLE, EVENT_QUEUES
from tests.api_helpers import create_space, delete_integration, delete_space, grant, unique, user
from tests.fixtures.app_host import Api
from tests.payloads import payload_names
from tests.webhook_helpers import (
    Hook,
    create_hook,
    entries_for_event,
    fresh,
    get_delivery,
    log_entries,
    new_pull_request_id,
    post_hook,
    wait_for_outcome,
)

COMMENT = "ms.vss-code.git-pullrequest-comment-event"


@pytest.fixture(scope="module")
def module_api(app_stack: LocalStack) -> Iterator[Api]:
    with httpx.Client(timeout=30) as client:
        yield Api(app_stack, client)


@pytest.fixture(scope="module")
def hook(module_api: Api) -> Iterator[Hook]:
    created = create_hook(module_api, "Process")
    yield created
    delete_integration(module_api, created.id)


def deliver(api: Api, hook: Hook, document: dict[str, Any]) -> dict[str, Any]:
    """Post one delivery, wait until it is processed, and return its delivery log entry."""
    response = post_hook(api, hook.id, document, password=hook.secret)
    assert response.status_code == 202, response.text
    return wait_for_outcome(api, hook.id, response.json()["deliveryId"])


# --- classification of every payload file -----------------------------------------------------

# name: (payloads posted first about the same pull request, outcome, expected classification entries)
EXPECTED: dict[str, tuple[tuple[str, ...], str, dict[str, Any]]] = {
    "git.push": ((), "processed", {"event": "push", "refs": [
        {"ref": "refs/heads/main", "created": False, "deleted": False}]}),
    "git.push.branch-created": ((), "processed", {"refs": [
        {"ref": "refs/heads/feature/retry", "created": True, "deleted": False}]}),
    "git.push.branch-deleted": ((), "ignored", {"refs": [
        {"ref": "refs/heads/feature/retry", "created": False, "deleted": True}]}),
    "git.push.commits-missing": ((), "processed", {"event": "push"}),
    "git.push.commits-null": ((), "processed", {"event": "push"}),
    "git.push.legacy-url": ((), "processed", {"event": "push"}),
    "git.push.message-null": ((), "processed", {"event": "push"}),
    "git.push.no-subscription-id": ((), "processed", {"event": "push"}),
    "git.push.non-ascii": ((), "processed", {"repositoryName": "módulos de red"}),
    "git.push.publisher-azure-devops": ((), "processed", {"event": "push"}),
    "git.push.ref-updates-empty": ((), "ignored", {"refs": []}),
    "git.push.several-refs": ((), "processed", {"refs": [
        {"ref": "refs/heads/main", "created": False, "deleted": False},
        {"ref": "refs/heads/release/2025.03", "created": True, "deleted": False},
        {"ref": "refs/tags/v1.4.0", "created": True, "deleted": False},
        {"ref": "refs/heads/old-spike", "created": False, "deleted": True}]}),
    "git.push.tag": ((), "ignored", {"refs": [{"ref": "refs/tags/v1.4.0", "created": True, "deleted": False}]}),
    "git.pullrequest.created": ((), "processed", {"event": "pull_request.created", "changes": ["first_seen"]}),
    "git.pullrequest.created.draft": ((), "ignored", {"isDraft": True, "changes": ["first_seen"]}),
    "git.pullrequest.merged.succeeded": (("git.pullrequest.created",), "processed", {
        "event": "pull_request.merge_attempted", "mergeOutcome": "succeeded", "status": "active"}),
    "git.pullrequest.merged.conflicts": (("git.pullrequest.created",), "processed", {
        "event": "pull_request.merge_attempted", "mergeOutcome": "conflicts", "status": "active"}),
    "git.pullrequest.updated.abandoned": (("git.pullrequest.created",), "processed", {"changes": ["abandoned"]}),
    "git.pullrequest.updated.completed": (("git.pullrequest.created",), "processed", {
        "status": "completed", "changes": ["completed", "votes"]}),
    "git.pullrequest.updated.draft-published": (("git.pullrequest.created.draft",), "processed", {
        "isDraft": False, "changes": ["draft_published", "reviewers"]}),
    "git.pullrequest.updated.labels": (("git.pullrequest.created",), "ignored", {"changes": ["labels"]}),
    "git.pullrequest.updated.message-null": (("git.pullrequest.created",), "ignored", {"changes": ["no_change"]}),
    "git.pullrequest.updated.reactivated": (
        ("git.pullrequest.created", "git.pullrequest.updated.abandoned"), "processed", {"changes": ["reactivated"]}),
    "git.pullrequest.updated.reviewers": (("git.pullrequest.created",), "ignored", {"changes": ["reviewers"]}),
    "git.pullrequest.updated.source-pushed": (("git.pullrequest.created",), "processed", {
        "changes": ["new_source_commit"]}),
    "git.pullrequest.updated.title": (("git.pullrequest.created",), "ignored", {"changes": ["title"]}),
    "git.pullrequest.updated.vote": (("git.pullrequest.created",), "ignored", {"changes": ["votes"]}),
    # A new text comment without a command line starts nothing, so it is ignored as well.
    COMMENT: ((), "ignored", {"commentState": "new", "threadId": 311, "commentId": 2}),
    f"{COMMENT}.code-change": ((), "ignored", {"commentType": "codeChange"}),
    f"{COMMENT}.deleted": ((), "ignored", {"commentState": "deleted", "threadId": 311}),
    f"{COMMENT}.edited": ((), "ignored", {"commentState": "edited", "threadId": 311}),
    f"{COMMENT}.no-is-deleted": ((), "ignored", {"commentState": "new", "commentId": 3}),
    f"{COMMENT}.non-ascii": ((), "ignored", {"commentState": "new"}),
    f"{COMMENT}.system": ((), "ignored", {"commentState": "system", "threadId": 312}),
}


def test_every_payload_has_expectation() -> None:
    handled = set(payload_names()) - {f"{COMMENT}.resource-version-1"}

    assert handled == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_payload_classification(api: Api, hook: Hook, name: str) -> None:
    predecessors, outcome, expected = EXPECTED[name]
    pull_request_id = new_pull_request_id()
    is_pull_request = name.startswith("git.pullrequest") or name.startswith(COMMENT)
    number = pull_request_id if is_pull_request else None
    for predecessor in predecessors:
        assert deliver(api, hook, fresh(predecessor, pull_request_id=number))["outcome"] != "failed"

    entry = deliver(api, hook, fresh(name, pull_request_id=number))

    assert entry["outcome"] == outcome, entry
    assert entry["reason"]
    assert entry["attempts"] == 1
    assert entry["processedAt"] is not None
    classification = entry["classification"]
    for key, value in expected.items():
        assert classification[key] == value, (key, classification)
    if number is not None:
        assert classification["pullRequestId"] == pull_request_id


def test_push_of_many_refs(api: Api, hook: Hook) -> None:
    """A classification too long for one table property is stored shortened, and the log still reads."""
    document = fresh("git.push")
    update = document["resource"]["refUpdates"][0]
    document["resource"]["refUpdates"] = [
        {**update, "name": f"refs/tags/mirror/v{index}", "oldObjectId": "0" * 40} for index in range(600)]
    document["resource"]["refUpdates"].append(update)

    entry = deliver(api, hook, document)

    assert entry["outcome"] == "processed"
    assert entry["classification"]["truncated"] is True
    assert entry["classification"]["event"] == "push"
    assert "refs" not in entry["classification"]
    assert len(log_entries(api, hook.id)) >= 1


# --- pull request update sequences ------------------------------------------------------------


def _with_source_commit(document: dict[str, Any], commit_id: str) -> dict[str, Any]:
    document["resource"]["lastMergeSourceCommit"]["commitId"] = commit_id
    return document


def test_pull_request_lifecycle(api: Api, hook: Hook) -> None:
    """created → vote only → source pushed → completed, each classified against the stored state."""
    number = new_pull_request_id()
    pushed_commit = fresh("git.pullrequest.updated.source-pushed")["resource"]["lastMergeSourceCommit"]["commitId"]

    created = deliver(api, hook, fresh("git.pullrequest.created", pull_request_id=number))
    vote = deliver(api, hook, fresh("git.pullrequest.updated.vote", pull_request_id=number))
    pushed = deliver(api, hook, _with_source_commit(
        fresh("git.pullrequest.updated.vote", pull_request_id=number), pushed_commit))
    completed = deliver(api, hook, _with_source_commit(
        fresh("git.pullrequest.updated.completed", pull_request_id=number), pushed_commit))

    assert created["outcome"] == "processed"
    assert created["classification"]["changes"] == ["first_seen"]
    assert vote["outcome"] == "ignored"
    assert vote["classification"]["changes"] == ["votes"]
    assert pushed["outcome"] == "processed"
    assert pushed["classification"]["changes"] == ["new_source_commit"]
    assert "starts proposed runs" in pushed["reason"]
    assert completed["outcome"] == "processed"
    assert completed["classification"]["changes"] == ["completed"]
    assert "cancels" in completed["reason"]


def test_merge_attempt_keeps_source_commit(api: Api, hook: Hook) -> None:
    """A merge attempt must not hide a later new source commit from the next update."""
    number = new_pull_request_id()
    deliver(api, hook, fresh("git.pullrequest.created", pull_request_id=number))
    merged_document = fresh("git.pullrequest.merged.succeeded", pull_request_id=number)
    _with_source_commit(merged_document, "ab" * 20)

    merged = deliver(api, hook, merged_document)
    pushed = deliver(api, hook, fresh("git.pullrequest.updated.source-pushed", pull_request_id=number))

    assert merged["classification"]["event"] == "pull_request.merge_attempted"
    assert merged["classification"]["status"] == "active"
    assert "not a completion" in merged["reason"]
    assert pushed["classification"]["changes"] == ["new_source_commit"]


def test_conflict_unused_repository_quiet(api: Api, hook: Hook, app_stack: LocalStack) -> None:
    """A merge conflict in a repository that no stack uses is recorded, and nothing is posted to Azure DevOps."""
    assert app_stack.fake_ado is not None
    sample_pull_request = 57  # the pull request in the fake Azure DevOps server's sample data
    document = fresh("git.pullrequest.merged.conflicts", pull_request_id=sample_pull_request)
    posted_before = len(app_stack.fake_ado.find("POST", f"pullRequests/{sample_pull_request}/statuses"))

    entry = deliver(api, hook, document)

    assert entry["outcome"] == "processed", entry["reason"]
    assert entry["classification"]["mergeOutcome"] == "conflicts"
    posted = app_stack.fake_ado.find("POST", f"pullRequests/{sample_pull_request}/statuses")
    assert len(posted) == posted_before


def test_draft_commit_then_publish(api: Api, hook: Hook) -> None:
    number = new_pull_request_id()
    deliver(api, hook, fresh("git.pullrequest.created.draft", pull_request_id=number))
    draft_push = fresh("git.pullrequest.created.draft", pull_request_id=number)
    draft_push["eventType"] = "git.pullrequest.updated"
    _with_source_commit(draft_push, "ab" * 20)
    published = fresh("git.pullrequest.created.draft", pull_request_id=number)
    published["eventType"] = "git.pullrequest.updated"
    published["resource"]["isDraft"] = False
    _with_source_commit(published, "ab" * 20)

    on_draft = deliver(api, hook, draft_push)
    on_publish = deliver(api, hook, published)

    assert on_draft["outcome"] == "ignored"
    assert on_draft["classification"]["changes"] == ["new_source_commit"]
    assert on_publish["outcome"] == "processed"
    assert on_publish["classification"]["changes"] == ["draft_published"]


def test_completed_then_reactivated(api: Api, hook: Hook) -> None:
    number = new_pull_request_id()
    deliver(api, hook, fresh("git.pullrequest.created", pull_request_id=number))
    deliver(api, hook, fresh("git.pullrequest.updated.abandoned", pull_request_id=number))

    reactivated = deliver(api, hook, fresh("git.pullrequest.updated.reactivated", pull_request_id=number))

    assert reactivated["outcome"] == "processed"
    assert reactivated["classification"]["changes"] == ["reactivated"]


def test_same_update_twice_no_change(api: Api, hook: Hook) -> None:
    number = new_pull_request_id()
    deliver(api, hook, fresh("git.pullrequest.created", pull_request_id=number))
    first = deliver(api, hook, fresh("git.pullrequest.updated.source-pushed", pull_request_id=number))

    second = deliver(api, hook, fresh("git.pullrequest.updated.source-pushed", pull_request_id=number))

    assert first["outcome"] == "processed"
    assert second["outcome"] == "ignored"
    assert second["classification"]["changes"] == ["no_change"]


def test_burst_of_updates_one_pull_request(api: Api, hook: Hook) -> None:
    """Updates about one pull request processed at the same time all succeed at the first attempt."""
    number = new_pull_request_id()
    deliver(api, hook, fresh("git.pullrequest.created", pull_request_id=number))
    names = ["git.pullrequest.updated.vote", "git.pullrequest.updated.title", "git.pullrequest.updated.labels",
             "git.pullrequest.updated.reviewers", "git.pullrequest.merged.succeeded"] * 2
    documents = [fresh(name, pull_request_id=number) for name in names]

    with ThreadPoolExecutor(max_workers=len(documents)) as pool:
        responses = list(pool.map(lambda document: post_hook(api, hook.id, document, password=hook.secret),
                                  documents))
    entries = [wait_for_outcome(api, hook.id, response.json()["deliveryId"]) for response in responses]

    assert [response.status_code for response in responses] == [202] * len(documents)
    assert [entry["outcome"] for entry in entries if entry["outcome"] == "failed"] == []
    assert {entry["attempts"] for entry in entries} == {1}


# --- duplicates -------------------------------------------------------------------------------


def test_redelivery_is_duplicate(api: Api, hook: Hook) -> None:
    document = fresh("git.push")
    first = post_hook(api, hook.id, document, password=hook.secret)

    second = post_hook(api, hook.id, document, password=hook.secret)

    assert first.status_code == 202, first.text
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "duplicate"
    assert second.json()["deliveryId"] == first.json()["deliveryId"]
    original = wait_for_outcome(api, hook.id, first.json()["deliveryId"])
    entries = entries_for_event(api, hook.id, document["id"])
    assert sorted(entry["outcome"] for entry in entries) == ["duplicate", "processed"]
    assert original["attempts"] == 1
    duplicate = next(entry for entry in entries if entry["outcome"] == "duplicate")
    assert duplicate["duplicateOf"] == first.json()["deliveryId"]
    assert duplicate["bodyKept"] is False


def test_event_through_second_subscription(api: Api, hook: Hook) -> None:
    document = fresh("git.pullrequest.created", pull_request_id=new_pull_request_id())
    other = dict(document, subscriptionId=str(uuid.uuid4()), notificationId=document["notificationId"] + 1)

    first = post_hook(api, hook.id, document, password=hook.secret)
    second = post_hook(api, hook.id, other, password=hook.secret)

    assert first.status_code == 202, first.text
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "duplicate"
    entries = entries_for_event(api, hook.id, document["id"])
    assert len(entries) == 2
    assert {entry["subscriptionId"] for entry in entries} == {document["subscriptionId"], other["subscriptionId"]}


def test_notification_without_event_id(api: Api, hook: Hook) -> None:
    document = fresh("git.push")
    del document["id"]
    document["subscriptionId"] = str(uuid.uuid4())

    first = post_hook(api, hook.id, document, password=hook.secret)
    second = post_hook(api, hook.id, document, password=hook.secret)

    assert first.status_code == 202, first.text
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "duplicate"


def test_ignored_redelivery_is_duplicate(api: Api, hook: Hook) -> None:
    document = fresh(f"{COMMENT}.resource-version-1")

    first = post_hook(api, hook.id, document, password=hook.secret)
    second = post_hook(api, hook.id, document, password=hook.secret)

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "duplicate"


def test_parallel_redeliveries_queue_once(api: Api, hook: Hook) -> None:
    document = fresh("git.push")
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: post_hook(api, hook.id, document, password=hook.secret), range(6)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 200, 200, 200, 200, 202]
    assert len({response.json()["deliveryId"] for response in responses}) == 1


# --- replay -----------------------------------------------------------------------------------


def test_replay_processes_again(api: Api, hook: Hook) -> None:
    first = deliver(api, hook, fresh("git.push.branch-created"))
    before = first["processedAt"]

    response = api.as_admin("POST", f"/api/integrations/{hook.id}/deliveries/{first['id']}/replay")

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    deadline = time.monotonic() + 20
    replayed = get_delivery(api, hook.id, first["id"])
    while replayed["processedAt"] == before or replayed["outcome"] == "queued":
        assert time.monotonic() < deadline, replayed
        time.sleep(0.1)
        replayed = get_delivery(api, hook.id, first["id"])
    assert replayed["outcome"] == "processed"
    assert replayed["classification"] == first["classification"]


def test_replay_unhandled_type(api: Api, hook: Hook) -> None:
    document = {"id": str(uuid.uuid4()), "subscriptionId": str(uuid.uuid4()), "notificationId": 1,
                "eventType": "build.complete", "publisherId": "tfs", "resource": {}}
    ignored = post_hook(api, hook.id, document, password=hook.secret)

    response = api.as_admin("POST", f"/api/integrations/{hook.id}/deliveries/{ignored.json()['deliveryId']}/replay")

    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "not_replayable"


def test_replay_unknown_delivery(api: Api, hook: Hook) -> None:
    response = api.as_admin("POST", f"/api/integrations/{hook.id}/deliveries/0000000000000-deadbeef/replay")

    assert response.status_code == 404, response.text


# --- the delivery log -------------------------------------------------------------------------


def test_log_pages_newest_first(api: Api) -> None:
    own = create_hook(api, "Paging")
    try:
        ids = [post_hook(api, own.id, fresh("git.push"), password=own.secret).json()["deliveryId"]
               for _ in range(5)]
        first = api.as_admin("GET", f"/api/integrations/{own.id}/deliveries?pageSize=2")
        everything = log_entries(api, own.id, page_size=2)
    finally:
        delete_integration(api, own.id)

    assert first.status_code == 200, first.text
    assert [entry["id"] for entry in first.json()["deliveries"]] == ids[::-1][:2]
    assert first.json()["nextContinuationToken"]
    assert [entry["id"] for entry in everything] == ids[::-1]


@pytest.fixture
def space_hook(api: Api) -> Iterator[tuple[str, Hook]]:
    space_id = unique("hooks-space")
    create_space(api, space_id)
    created = create_hook(api, "Spaced", space_id=space_id)
    yield space_id, created
    delete_integration(api, created.id)
    delete_space(api, space_id)


@pytest.mark.parametrize(("role", "status"), [(None, 404), ("read", 403), ("write", 403), ("admin", 200)])
def test_log_access_by_role(api: Api, space_hook: tuple[str, Hook], role: str | None, status: int) -> None:
    space_id, own = space_hook
    subject = unique("reader")
    if role is not None:
        grant(api, space_id, subject, role)
    delivery_id = post_hook(api, own.id, fresh("git.push"), password=own.secret).json()["deliveryId"]

    listing = api.call("GET", f"/api/integrations/{own.id}/deliveries", headers=user(subject))
    single = api.call("GET", f"/api/integrations/{own.id}/deliveries/{delivery_id}", headers=user(subject))
    replay = api.call("POST", f"/api/integrations/{own.id}/deliveries/{delivery_id}/replay", headers=user(subject))

    assert listing.status_code == status, listing.text
    assert single.status_code == status, single.text
    assert replay.status_code == (202 if status == 200 else status), replay.text


# --- failures and the poison queue ------------------------------------------------------------

POISON_HOST_JSON = {
    "version": "2.0",
    "logging": {"logLevel": {"default": "Information"}},
    "extensions": {
        "http": {"routePrefix": "api"},
        "queues": {"batchSize": 4, "maxDequeueCount": 2, "visibilityTimeout": "00:00:01",
                   "maxPollingInterval": "00:00:00.200", "messageEncoding": "base64"},
    },
}


@pytest.fixture(scope="module")
def poison_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A second stack whose host gives up on a message after two attempts, one second apart."""
    folder = Path(tmp_path_factory.mktemp("poison"))
    host_json = folder / "host.json"
    host_json.write_text(json.dumps(POISON_HOST_JSON))
    options = StackOptions(host_port=0, host_json=host_json, log_file=folder / "host.log")
    with LocalStack(options) as stack:
        yield stack


def test_failing_delivery_poisoned(poison_stack: LocalStack) -> None:
    assert poison_stack.azurite is not None
    connection = poison_stack.azurite.connection_string
    with httpx.Client(timeout=30) as client:
        api = Api(poison_stack, client)
        own = create_hook(api, "Poison")
        delivered = deliver(api, own, fresh("git.push"))
        delivery_id = delivered["id"]
        # Overwrite the stored body with bytes that are not gzip, so every attempt fails to read it.
        with TableClient.from_connection_string(connection, DELIVERIES_TABLE) as table:
            table.update_entity({"PartitionKey": own.id, "RowKey": f"d-{delivery_id}",
                                 "body0": b"not gzip data"}, mode=UpdateMode.MERGE)
        queue_name = EVENT_QUEUES["git.push"]
        message = json.dumps({"integrationId": own.id, "deliveryId": delivery_id})
        with QueueClient.from_connection_string(connection, queue_name,
                                                message_encode_policy=TextBase64EncodePolicy()) as queue:
            queue.send_message(message)

        poisoned = _wait_for_poison(connection, f"{queue_name}-poison", message)
        failed = get_delivery(api, own.id, delivery_id)

    assert poisoned
    assert failed["outcome"] == "failed"
    assert failed["attempts"] == 2
    assert "BadGzipFile" in failed["reason"]
    assert "Attempt 2 failed" in failed["reason"]


def _wait_for_poison(connection: str, poison_name: str, message: str, timeout: float = 30.0) -> bool:
    """Return True once `message` is in the poison queue; peeking leaves it there."""
    deadline = time.monotonic() + timeout
    with QueueClient.from_connection_string(connection, poison_name) as poison:
        while time.monotonic() < deadline:
            try:
                peeked = poison.peek_messages(max_messages=32)
            except ResourceNotFoundError:  # the host creates the poison queue on the first move
                peeked = []
            for item in peeked:
                if message in _decoded(item.content):
                    return True
            time.sleep(0.2)
    return False


def _decoded(content: str) -> str:
    try:
        return base64.b64decode(content, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return content
