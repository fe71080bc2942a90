"""Runs end to end. Runs are created in process, against the stack's Azurite, Key Vault and fake
Azure DevOps. Worker updates go through the `run-updates` queue of the running host, and the tests
check the commit and pull request statuses the host posts to the fake Azure DevOps server."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devhost.fake_ado import FakeAzureDevOps
from devhost.fake_ado.sample import FEATURE_HEAD, MAIN_HEAD, PROJECT_ID, PULL_REQUEST_ID, REPOSITORY_ID
from devhost.stack import LocalStack
from functions._deps import Services
from shared.core.runs import RunRequest
from shared.settings import Settings
from shared.storage.integrations import IntegrationRecord
from shared.storage.names import RUN_UPDATES_QUEUE, RUNS_QUEUE
from shared.storage.runs import RunRecord
from tests.api_helpers import delete_integration, unique, wait_for_connection_test
from tests.fixtures.app_host import ADMIN, Api

WAIT_SECONDS = 30.0


@pytest.fixture(scope="module")
def app(app_stack: LocalStack) -> Services:
    """The service objects built in this process from the host's settings."""
    return Services(Settings.from_environ(app_stack.settings()))


@pytest.fixture
def fake(app_stack: LocalStack) -> FakeAzureDevOps:
    assert app_stack.fake_ado is not None
    return app_stack.fake_ado


@pytest.fixture
def integration(api: Api, app: Services) -> Iterator[IntegrationRecord]:
    """A new integration in the root space, with its queued connection test done."""
    response = api.create_integration(unique("Runs"))
    assert response.status_code == 201, response.text
    integration_id = response.json()["id"]
    wait_for_connection_test(api, integration_id)
    yield app.integration_records.get(integration_id)
    delete_integration(api, integration_id)


def request(stack_id: str, *, commit: str = FEATURE_HEAD, run_type: str = "proposed", kind: str = "stack",
            pull_request_id: int | None = PULL_REQUEST_ID, iteration_id: int | None = 2, trigger: str = "pull_request",
            force_new: bool = False) -> RunRequest:
    return RunRequest(kind=kind, stack_id=stack_id, run_type=run_type, commit=commit,  # type: ignore[arg-type]
                      branch="feature/retry" if run_type == "proposed" else "main",
                      pull_request_id=pull_request_id, iteration_id=iteration_id if pull_request_id else None,
                      trigger=trigger, triggered_by="alex.example@example.com", force_new=force_new)


def create(app: Services, integration: IntegrationRecord, *requests: RunRequest) -> list[RunRecord]:
    return app.runs.create_runs(requests, integration=integration, project_id=PROJECT_ID,
                                repository_id=REPOSITORY_ID)


def send_update(app: Services, run: RunRecord, state: str, message: str | None = None) -> None:
    body: dict[str, Any] = {"runId": run.id, "stackKind": run.stack_kind, "stackId": run.stack_id, "state": state}
    if message is not None:
        body["message"] = message
    app.storage.queue(RUN_UPDATES_QUEUE).send_message(json.dumps(body))


def run_json(api: Api, run: RunRecord) -> dict[str, Any]:
    response = api.as_admin("GET", f"/api/runs/{run.stack_kind}/{run.stack_id}/{run.id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_run(api: Api, run: RunRecord, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        current = run_json(api, run)
        if condition(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run.id} did not reach the expected state: {current}")
        time.sleep(0.2)


def posted(state: str) -> Callable[[dict[str, Any]], bool]:
    """Return a condition: the run is in `state` and its statuses for that state are settled."""
    return lambda run: run["state"] == state and run["statusPost"]["outcome"] in ("posted", "failed", "skipped")


def status_posts(fake: FakeAzureDevOps, stack_id: str, *, pull_request: bool) -> list[dict[str, Any]]:
    """Return the status bodies the fake received for one stack, oldest first."""
    marker = "/pullRequests/" if pull_request else "/commits/"
    return [request.body for request in fake.find("POST", "/statuses")
            if marker in request.path and request.status in (200, 201)
            and request.body["context"]["name"] == f"stack/{stack_id}"]


def new_commit(fake: FakeAzureDevOps, files: dict[str, str | None]) -> str:
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    with fake.lock:
        fake.state.add_commit(REPOSITORY_ID, commit, parents=[MAIN_HEAD], files=files, comment="Module change")
    return commit


def queued_runs_messages(app: Services) -> list[dict[str, Any]]:
    messages = app.storage.queue(RUNS_QUEUE).peek_messages(max_messages=32)
    # The client encodes messages as base64 but does not decode them; the Functions runtime does.
    return [json.loads(base64.b64decode(message.content)) for message in messages]


def test_push_and_pr_share_one_run(app: Services, integration: IntegrationRecord) -> None:
    stack_id = unique("dedup")
    push = request(stack_id, pull_request_id=None, trigger="push")
    pull = request(stack_id)

    first = create(app, integration, push)
    second = create(app, integration, pull)
    forced = create(app, integration, request(stack_id, trigger="comment", force_new=True))

    assert first[0].id == second[0].id
    assert forced[0].id != first[0].id
    listed, _ = app.runs._runs.list_page("stack", stack_id, page_size=10, continuation=None)
    assert [run.id for run in listed] == [forced[0].id, first[0].id]


def test_runs_queue_message(app: Services, integration: IntegrationRecord) -> None:
    stack_id = unique("message")
    # No worker consumes `runs` in the tests, so earlier tests' messages would crowd out this one in a peek.
    app.storage.queue(RUNS_QUEUE).clear_messages()
    run = create(app, integration, request(stack_id))[0]

    messages = [message for message in queued_runs_messages(app) if message["stackId"] == stack_id]

    assert len(messages) == 1
    assert messages[0] == {
        "runId": run.id, "stackKind": "stack", "stackId": stack_id, "runType": "proposed", "commit": FEATURE_HEAD,
        "branch": "feature/retry", "pullRequestId": PULL_REQUEST_ID, "iterationId": 2, "trigger": "pull_request",
        "triggeredBy": "alex.example@example.com", "integrationId": integration.id,
        "organizationUrl": integration.organization_url, "projectId": PROJECT_ID, "repositoryId": REPOSITORY_ID,
        "createdAt": run.created_at.isoformat()}
    assert run.dispatched_at is not None


def test_updates_post_statuses(app: Services, api: Api, fake: FakeAzureDevOps,
                               integration: IntegrationRecord) -> None:
    stack_id = unique("statuses")
    run = create(app, integration, request(stack_id))[0]
    wait_run(api, run, posted("queued"))

    for state in ("preparing", "planning", "finished"):
        send_update(app, run, state, message=f"now {state}")
        final = wait_run(api, run, posted(state))

    commit_posts = status_posts(fake, stack_id, pull_request=False)
    pull_request_posts = status_posts(fake, stack_id, pull_request=True)
    assert [body["state"] for body in commit_posts] == ["pending", "pending", "pending", "succeeded"]
    assert [body["state"] for body in pull_request_posts] == ["pending", "pending", "pending", "succeeded"]
    assert all(body["context"]["genre"] == "stackhook" for body in commit_posts + pull_request_posts)
    assert all(body["iterationId"] == 2 for body in pull_request_posts)
    assert commit_posts[-1]["description"] == "Proposed run finished"
    commit_paths = [request.path for request in fake.find("POST", f"/commits/{FEATURE_HEAD}/statuses")]
    assert commit_paths and all(REPOSITORY_ID in path for path in commit_paths)
    assert fake.find("POST", f"/pullRequests/{PULL_REQUEST_ID}/statuses")
    assert final["statusPost"]["pullRequestStatus"] == "posted"
    assert final["message"] == "now finished"
    assert final["mergeStatus"] == "succeeded"

    target = commit_posts[-1]["targetUrl"]
    assert target.endswith(f"/api/runs/stack/{stack_id}/{run.id}")
    response = api.client.get(target, headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["id"] == run.id


def test_invalid_transition_is_recorded(app: Services, api: Api, integration: IntegrationRecord) -> None:
    stack_id = unique("rejected")
    run = create(app, integration, request(stack_id))[0]
    send_update(app, run, "failed")
    wait_run(api, run, posted("failed"))

    send_update(app, run, "planning")
    final = wait_run(api, run, lambda current: bool(current["rejectedUpdates"]))

    assert final["state"] == "failed"
    assert final["rejectedUpdates"][0]["state"] == "planning"
    assert final["rejectedUpdates"][0]["from"] == "failed"


def test_no_pr_status_after_completion(app: Services, api: Api, fake: FakeAzureDevOps,
                                       integration: IntegrationRecord) -> None:
    stack_id = unique("completed")
    run = create(app, integration, request(stack_id))[0]
    wait_run(api, run, posted("queued"))
    fake.set_pull_request_status(PULL_REQUEST_ID, "completed")
    try:
        send_update(app, run, "finished")
        final = wait_run(api, run, posted("finished"))
    finally:
        fake.set_pull_request_status(PULL_REQUEST_ID, "active")

    assert [body["state"] for body in status_posts(fake, stack_id, pull_request=True)] == ["pending"]
    assert [body["state"] for body in status_posts(fake, stack_id, pull_request=False)] == ["pending", "succeeded"]
    assert final["statusPost"]["pullRequestStatus"] == "skipped"
    assert "completed" in final["statusPost"]["note"]


def test_failed_post_is_retried(app: Services, api: Api, fake: FakeAzureDevOps,
                                integration: IntegrationRecord) -> None:
    stack_id = unique("retried")
    commit = new_commit(fake, {"stacks/app/retry.tf": "# retried\n"})
    run = create(app, integration, request(stack_id, commit=commit, pull_request_id=None, trigger="push"))[0]
    wait_run(api, run, posted("queued"))
    fake.fail_next(1, status=500, path_contains=f"/commits/{commit}/statuses")

    send_update(app, run, "planning")
    retrying = wait_run(api, run, lambda current: current["statusPost"]["outcome"] == "retrying")
    final = wait_run(api, run, posted("planning"))

    assert retrying["statusPost"]["lastError"]["kind"] == "server_error"
    assert final["statusPost"]["outcome"] == "posted"
    assert final["statusPost"]["attempts"] == 2
    assert final["statusPost"]["lastError"]["kind"] == "server_error"
    assert [request.status for request in fake.find("POST", f"/commits/{commit}/statuses")] == [201, 500, 201]


def test_rejected_token_stops_posts(app: Services, api: Api, fake: FakeAzureDevOps,
                                    integration: IntegrationRecord) -> None:
    stack_id = unique("token")
    commit = new_commit(fake, {"stacks/app/token.tf": "# token\n"})
    run = create(app, integration, request(stack_id, commit=commit, pull_request_id=None, trigger="push"))[0]
    wait_run(api, run, posted("queued"))
    fake.fail_next(1, status=203, path_contains=f"/commits/{commit}/statuses")

    send_update(app, run, "planning")
    final = wait_run(api, run, posted("planning"))
    send_update(app, run, "finished")
    after = wait_run(api, run, posted("finished"))

    assert final["statusPost"]["outcome"] == "failed"
    assert final["statusPost"]["lastError"]["kind"] == "invalid_credentials"
    assert "sample-pat" not in json.dumps(final)
    details = api.details(integration.id)
    assert details["connectionTest"]["ok"] is False
    assert details["connectionTest"]["kind"] == "invalid_credentials"
    assert after["statusPost"]["outcome"] == "failed"
    assert len(fake.find("POST", f"/commits/{commit}/statuses")) == 2


def test_cancel_queued_proposed_runs(app: Services, api: Api, fake: FakeAzureDevOps,
                                     integration: IntegrationRecord) -> None:
    queued_id, started_id = unique("cancel"), unique("cancel")
    queued, started = create(app, integration, request(queued_id), request(started_id))
    send_update(app, started, "planning")
    wait_run(api, started, posted("planning"))

    canceled = app.runs.cancel_pull_request_runs(integration.id, REPOSITORY_ID, PULL_REQUEST_ID,
                                                 "pull request 57 was abandoned")

    assert [run.id for run in canceled] == [queued.id]
    final = wait_run(api, queued, posted("canceled"))
    assert final["message"] == "pull request 57 was abandoned"
    assert run_json(api, started)["state"] == "planning"
    assert status_posts(fake, queued_id, pull_request=True)[-1]["state"] == "error"


def test_module_versions(app: Services, api: Api, fake: FakeAzureDevOps, integration: IntegrationRecord) -> None:
    module_id = unique("vpc")
    config = "version: 1\nmodule_version: 1.2.0\n"
    first = new_commit(fake, {".spacelift/config.yml": config})
    again = new_commit(fake, {".spacelift/config.yml": config, "modules/vpc/extra.tf": "# extra\n"})
    missing = new_commit(fake, {"modules/vpc/other.tf": "# no config\n"})
    invalid = new_commit(fake, {".spacelift/config.yml": "module_version: [not a version\n"})
    outcomes = {}
    for commit in (first, again, missing, invalid):
        run = create(app, integration, request(module_id, kind="module", run_type="tracked", commit=commit,
                                               pull_request_id=None, trigger="push"))[0]
        send_update(app, run, "finished")
        final = wait_run(api, run, lambda current: (current["moduleVersion"] or {}).get("outcome")
                         not in (None, "pending", "retrying"))
        outcomes[commit] = final["moduleVersion"]

    assert outcomes[first]["outcome"] == "created"
    assert outcomes[first]["version"] == "1.2.0"
    assert outcomes[again]["outcome"] == "version_reused"
    assert outcomes[missing]["outcome"] == "missing_config"
    assert outcomes[invalid]["outcome"] == "invalid_config"
    versions = app.runs._versions.list_versions(module_id)
    assert [(record.version, record.commit) for record in versions] == [("1.2.0", first)]


def test_list_runs_newest_first(app: Services, api: Api, integration: IntegrationRecord) -> None:
    stack_id = unique("list")
    older = create(app, integration, request(stack_id, trigger="comment", force_new=True))[0]
    newer = create(app, integration, request(stack_id, trigger="comment", force_new=True))[0]

    page = api.as_admin("GET", f"/api/runs/stack/{stack_id}?pageSize=1")
    assert page.status_code == 200, page.text
    token = page.json()["nextContinuationToken"]
    rest = api.as_admin("GET", f"/api/runs/stack/{stack_id}?pageSize=1&continuationToken={token}")

    assert [run["id"] for run in page.json()["runs"]] == [newer.id]
    assert [run["id"] for run in rest.json()["runs"]] == [older.id]
    assert api.as_admin("GET", f"/api/runs/stack/{unique('none')}").status_code == 404
    assert api.as_admin("GET", f"/api/runs/other/{stack_id}").status_code == 404
