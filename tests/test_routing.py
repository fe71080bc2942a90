"""Events become runs: pushes and pull requests replayed through the webhook endpoint start, deduplicate
and cancel runs of the stacks and modules whose files changed, and statuses reach Azure DevOps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devhost.fake_ado import FakeAzureDevOps
from devhost.stack import LocalStack
from tests.api_helpers import unique
from tests.fixtures.app_host import Api
from tests.webhook_helpers import create_hook, fresh, post_hook, wait_for_outcome

MAIN_HEAD = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
FEATURE_FIRST = "c4c4c4c4d5d5d5d5e6e6e6e6f7f7f7f7a8a8a8a8"
FEATURE_HEAD = "abababababababababababababababababab0002"
REPOSITORY = {"project": "Widgets", "repository": "widget-service"}


@dataclass(frozen=True)
class Setup:
    hook_id: str
    secret: str
    network: str
    app: str
    vpc: str


@pytest.fixture
def fake(app_stack: LocalStack) -> FakeAzureDevOps:
    assert app_stack.fake_ado is not None
    return app_stack.fake_ado


@pytest.fixture
def setup(api: Api) -> Iterator[Setup]:
    """An integration with two stacks and one module on the sample repository."""
    hook = create_hook(api, "Routing")
    ids = []
    for kind, name, fields in (
            ("stacks", unique("network"), {"projectRoot": "stacks/network"}),
            ("stacks", unique("app"), {"projectRoot": "stacks/app"}),
            ("modules", unique("vpc"), {"projectRoot": "modules/vpc", "terraformProvider": "azurerm",
                                        "moduleName": "vpc"})):
        response = api.as_admin("POST", f"/api/{kind}", {"name": name, "spaceId": "root", "integrationId": hook.id,
                                                         "repository": REPOSITORY, **fields})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    yield Setup(hook.id, hook.secret, *ids)
    for kind, stack_id in (("stacks", ids[0]), ("stacks", ids[1]), ("modules", ids[2])):
        api.as_admin("DELETE", f"/api/{kind}/{stack_id}")


def deliver(api: Api, setup: Setup, payload: str, **options: Any) -> dict[str, Any]:
    response = post_hook(api, setup.hook_id, fresh(payload, **options), password=setup.secret)
    assert response.status_code == 202, response.text
    return wait_for_outcome(api, setup.hook_id, response.json()["deliveryId"])


def runs_of(api: Api, kind: str, stack_id: str) -> list[dict[str, Any]]:
    response = api.as_admin("GET", f"/api/runs/{kind}/{stack_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


def wait_for(condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_push_starts_tracked_runs(api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    delivery = deliver(api, setup, "git.push")

    assert delivery["outcome"] == "processed", delivery
    network = runs_of(api, "stack", setup.network)
    vpc = runs_of(api, "module", setup.vpc)
    assert [(run["runType"], run["commit"]) for run in network] == [("tracked", MAIN_HEAD)]
    assert [(run["runType"], run["commit"]) for run in vpc] == [("tracked", MAIN_HEAD)]
    assert runs_of(api, "stack", setup.app) == []
    assert delivery["classification"]["routing"]["runs"]
    diffs = fake.find("GET", "/diffs/commits")
    assert diffs and diffs[-1].query["baseVersion"] == "1234abcd5678ef901234abcd5678ef901234abcd"


def test_push_posts_queued_status(api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    deliver(api, setup, "git.push")

    def posted() -> list[Any]:
        return [request for request in fake.find("POST", f"/commits/{MAIN_HEAD}/statuses")
                if request.body and request.body["context"]["name"] == f"stack/{setup.network}"]

    statuses = wait_for(posted)
    assert statuses[0].body["state"] == "pending"
    assert statuses[0].body["context"]["genre"] == "stackhook"


def test_tag_push_starts_nothing(api: Api, setup: Setup) -> None:
    delivery = deliver(api, setup, "git.push.tag")

    assert delivery["outcome"] == "ignored"
    assert runs_of(api, "stack", setup.network) == []


def test_pull_request_starts_proposed_runs(api: Api, setup: Setup) -> None:
    delivery = deliver(api, setup, "git.pullrequest.created")

    assert delivery["outcome"] == "processed", delivery
    app = runs_of(api, "stack", setup.app)
    assert [(run["runType"], run["commit"], run["pullRequestId"]) for run in app] == [("proposed", FEATURE_FIRST, 57)]
    assert app[0]["iterationId"] == 1
    assert runs_of(api, "stack", setup.network) == []


def test_vote_starts_nothing(api: Api, setup: Setup) -> None:
    deliver(api, setup, "git.pullrequest.created")
    delivery = deliver(api, setup, "git.pullrequest.updated.vote")

    assert delivery["outcome"] == "ignored"
    assert len(runs_of(api, "stack", setup.app)) == 1


def test_source_push_adds_run(api: Api, setup: Setup) -> None:
    deliver(api, setup, "git.pullrequest.created")
    deliver(api, setup, "git.pullrequest.updated.source-pushed")

    runs = runs_of(api, "stack", setup.app)
    assert [run["commit"] for run in runs] == [FEATURE_HEAD, FEATURE_FIRST]
    assert [run["iterationId"] for run in runs] == [2, 1]


def test_redelivered_pull_request_deduplicates(api: Api, setup: Setup) -> None:
    deliver(api, setup, "git.pullrequest.created")
    deliver(api, setup, "git.pullrequest.created")

    assert len(runs_of(api, "stack", setup.app)) == 1


def test_completion_cancels_queued_runs(api: Api, setup: Setup) -> None:
    deliver(api, setup, "git.pullrequest.created")
    delivery = deliver(api, setup, "git.pullrequest.updated.completed")

    assert delivery["classification"]["routing"]["canceledRuns"]
    assert [run["state"] for run in runs_of(api, "stack", setup.app)] == ["canceled"]


def test_conflicts_reported_once(api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    deliver(api, setup, "git.pullrequest.created")
    fake.clear()
    first = deliver(api, setup, "git.pullrequest.merged.conflicts")
    second = deliver(api, setup, "git.pullrequest.merged.conflicts")

    reported = [request for request in fake.find("POST", "/pullRequests/57/statuses")
                if request.body and request.body["context"]["name"] == "merge"]
    assert len(reported) == 1
    assert reported[0].body["state"] == "failed"
    assert first["classification"]["routing"]["mergeStatus"] == "conflicts"
    assert first["classification"]["routing"].get("reported") is True
    assert "reported" not in second["classification"]["routing"]


def test_unused_repository_says_so(api: Api) -> None:
    hook = create_hook(api, "Unused")

    response = post_hook(api, hook.id, fresh("git.push"), password=hook.secret)

    assert response.status_code == 202
    assert "No stack or module uses repository widget-service" in response.json()["message"]


def test_used_repository_has_no_hint(api: Api, setup: Setup) -> None:
    response = post_hook(api, setup.hook_id, fresh("git.push"), password=setup.secret)

    assert response.status_code == 202
    assert "No stack or module" not in response.json()["message"]


def test_pull_request_adopts_push_run(api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    branch_push = fresh("git.push")
    branch_push["resource"]["refUpdates"] = [{"name": "refs/heads/feature/retry", "oldObjectId": MAIN_HEAD,
                                              "newObjectId": FEATURE_FIRST}]
    response = post_hook(api, setup.hook_id, branch_push, password=setup.secret)
    wait_for_outcome(api, setup.hook_id, response.json()["deliveryId"])
    deliver(api, setup, "git.pullrequest.created")

    runs = runs_of(api, "stack", setup.app)
    assert [(run["runType"], run["commit"]) for run in runs] == [("proposed", FEATURE_FIRST)]
    assert runs[0]["pullRequestId"] == 57
    assert runs[0]["iterationId"] == 1

    def pull_request_status() -> list[Any]:
        return [request for request in fake.find("POST", "/pullRequests/57/statuses")
                if request.body and request.body["context"]["name"] == f"stack/{setup.app}"]

    assert wait_for(pull_request_status)[0].body["iterationId"] == 1


def test_new_commit_cancels_older_runs(api: Api, setup: Setup) -> None:
    deliver(api, setup, "git.pullrequest.created")
    deliver(api, setup, "git.pullrequest.updated.source-pushed")

    states = {run["commit"]: run["state"] for run in runs_of(api, "stack", setup.app)}
    assert states == {FEATURE_HEAD: "queued", FEATURE_FIRST: "canceled"}


def test_repeated_completion_cancels_again(api: Api, setup: Setup) -> None:
    deliver(api, setup, "git.pullrequest.created")
    deliver(api, setup, "git.pullrequest.updated.completed")
    deliver(api, setup, "git.pullrequest.created")
    delivery = deliver(api, setup, "git.pullrequest.updated.completed")

    assert delivery["outcome"] == "processed", delivery
    assert {run["state"] for run in runs_of(api, "stack", setup.app)} == {"canceled"}
