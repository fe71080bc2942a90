"""AzureDevOpsClient against the fake Azure DevOps server over real TLS, with sleeps recorded."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devhost.fake_ado import FakeAzureDevOps, Identity
from devhost.fake_ado.sample import (
    ACCENTED_REPOSITORY_NAME,
    FEATURE_HEAD,
    MAIN_BEFORE_PUSH,
    MAIN_HEAD,
    PROJECT_ID,
    REPOSITORY_ID,
    SPACED_PROJECT_NAME,
)
from devhost.tls import LocalCertificates
from shared.ado.client import AzureDevOpsClient, TokenThrottle
from shared.errors import AzureDevOpsError

ClientFactory = Callable[..., AzureDevOpsClient]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(ado: FakeAzureDevOps, local_ca: LocalCertificates,
                sleeps: list[float]) -> Iterator[ClientFactory]:
    clients: list[AzureDevOpsClient] = []

    def make(url: str | None = None, token: str | None = None, **options: Any) -> AzureDevOpsClient:
        options.setdefault("throttle", TokenThrottle())
        client = AzureDevOpsClient(url or ado.base_url, token or ado.sample_pat, verify=str(local_ca.ca_path),
                                   sleep=sleeps.append, timeout=5.0, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: ClientFactory) -> AzureDevOpsClient:
    return make_client()


def test_headers_sent(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    client.get_project("Widgets")
    recorded = ado.last("GET", "/_apis/projects/Widgets")
    expected = "Basic " + base64.b64encode(f":{ado.sample_pat}".encode()).decode()
    assert recorded.header("Authorization") == expected
    assert recorded.header("Accept") == "application/json"
    assert recorded.header("X-TFS-FedAuthRedirect") == "Suppress"
    assert recorded.query["api-version"] == "7.1"


def test_connection_data_identity(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    data = client.connection_data()
    assert data["authenticatedUser"]["id"] == "0a1e0a1e-0000-4000-8000-00000000a1e0"
    assert ado.last("GET", "connectionData").query["api-version"] == "7.1-preview"


@pytest.mark.parametrize(("status", "kind"), [
    (401, "invalid_credentials"), (403, "forbidden"), (404, "not_found"), (203, "invalid_credentials"),
    (302, "invalid_credentials"), (400, "rejected"), (409, "rejected"),
])
def test_status_maps_to_kind(client: AzureDevOpsClient, ado: FakeAzureDevOps, sleeps: list[float],
                             status: int, kind: str) -> None:
    ado.fail_next(1, status=status)
    with pytest.raises(AzureDevOpsError) as caught:
        client.list_projects()
    assert caught.value.kind == kind
    assert caught.value.status == status
    assert len(ado.requests) == 1
    assert sleeps == []
    assert ado.sample_pat not in str(caught.value)


def test_html_on_200_is_invalid_credentials(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    ado.fail_next(1, status=200, kind="html")
    with pytest.raises(AzureDevOpsError) as caught:
        client.get_project("Widgets")
    assert caught.value.kind == "invalid_credentials"
    assert len(ado.requests) == 1


def test_unknown_token_is_invalid_credentials(make_client: ClientFactory, ado: FakeAzureDevOps) -> None:
    token = "not-a-known-token-value"
    with pytest.raises(AzureDevOpsError) as caught:
        make_client(token=token).get_project("Widgets")
    assert caught.value.kind == "invalid_credentials"
    assert caught.value.type_key == "UnauthorizedRequestException"
    assert token not in str(caught.value)
    assert base64.b64encode(f":{token}".encode()).decode() not in str(caught.value)


def test_404_carries_type_key(client: AzureDevOpsClient) -> None:
    with pytest.raises(AzureDevOpsError) as caught:
        client.get_repository("Widgets", "no-such-repo")
    assert caught.value.kind == "not_found"
    assert caught.value.type_key == "GitRepositoryNotFoundException"


def test_429_retries_after_retry_after(client: AzureDevOpsClient, ado: FakeAzureDevOps,
                                       sleeps: list[float]) -> None:
    ado.fail_next(2, status=429, retry_after=3)
    assert client.get_project("Widgets")["name"] == "Widgets"
    assert sleeps == [3.0, 3.0]
    assert len(ado.requests) == 3


def test_429_exhausted_is_throttled(make_client: ClientFactory, ado: FakeAzureDevOps,
                                    sleeps: list[float]) -> None:
    ado.fail_next(10, status=429, retry_after=120)
    with pytest.raises(AzureDevOpsError) as caught:
        make_client(max_retries=2).get_project("Widgets")
    assert caught.value.kind == "throttled"
    assert caught.value.retry_after == 60.0
    assert sleeps == [60.0, 60.0]
    assert len(ado.requests) == 3


def test_503_exhausted_is_server_error(make_client: ClientFactory, ado: FakeAzureDevOps,
                                       sleeps: list[float]) -> None:
    ado.fail_next(10, status=503, retry_after=2)
    with pytest.raises(AzureDevOpsError) as caught:
        make_client(max_retries=1).get_project("Widgets")
    assert caught.value.kind == "server_error"
    assert caught.value.retry_after == 2.0
    assert sleeps == [2.0]


def test_500_backs_off_exponentially(client: AzureDevOpsClient, ado: FakeAzureDevOps,
                                     sleeps: list[float]) -> None:
    ado.fail_next(3, status=500)
    assert client.get_project("Widgets")["id"] == PROJECT_ID
    assert sleeps == [0.5, 1.0, 2.0]


def test_500_on_post_not_retried(client: AzureDevOpsClient, ado: FakeAzureDevOps, sleeps: list[float]) -> None:
    ado.fail_next(1, status=500, path_contains="/threads")
    with pytest.raises(AzureDevOpsError) as caught:
        client.create_thread("Widgets", "widget-service", 57, "plan finished")
    assert caught.value.kind == "server_error"
    assert sleeps == []
    assert len(ado.find("POST", "/threads")) == 1


def test_retry_after_on_200_delays_next(client: AzureDevOpsClient, ado: FakeAzureDevOps,
                                        sleeps: list[float]) -> None:
    ado.fail_next(1, status=200, retry_after=5)
    client.get_project("Widgets")
    assert sleeps == []
    client.get_project("Widgets")
    assert len(sleeps) == 1
    assert 4.0 < sleeps[0] <= 5.0


def test_retry_after_shared_per_token(make_client: ClientFactory, ado: FakeAzureDevOps,
                                      sleeps: list[float]) -> None:
    throttle = TokenThrottle()
    first = make_client(throttle=throttle)
    second = make_client(throttle=throttle)
    other_token = make_client(token="other-token-value", throttle=throttle)
    ado.add_pat("other-token-value", Identity("0c1c0c1c-0000-4000-8000-00000000c1c0", "Casey", "casey@example.com"))
    ado.fail_next(1, status=200, retry_after=4)
    first.get_project("Widgets")
    other_token.get_project("Widgets")
    assert sleeps == []
    second.get_project("Widgets")
    assert len(sleeps) == 1


def test_unreachable_after_retries(make_client: ClientFactory, local_ca: LocalCertificates,
                                   sleeps: list[float]) -> None:
    fake = FakeAzureDevOps(local_ca).start()
    url = fake.base_url
    fake.stop()
    with pytest.raises(AzureDevOpsError) as caught:
        make_client(url=url, max_retries=2).get_project("Widgets")
    assert caught.value.kind == "unreachable"
    assert sleeps == [0.5, 1.0]


def test_version_fallback(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    ado.max_api_version = "6.0"
    assert client.get_project("Widgets")["name"] == "Widgets"
    assert [request.query["api-version"] for request in ado.requests] == ["7.1", "6.0"]
    assert client.api_version == "6.0"
    client.get_project("Widgets")
    assert ado.requests[-1].query["api-version"] == "6.0"


def test_version_fallback_once(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    message = ("The requested REST API version of 7.1 is out of range for this server. "
               "The latest REST API version this server supports is 6.0.")
    ado.fail_next(5, status=400, type_key="VssVersionOutOfRangeException", message=message)
    with pytest.raises(AzureDevOpsError) as caught:
        client.get_project("Widgets")
    assert caught.value.kind == "version_out_of_range"
    assert [request.query["api-version"] for request in ado.requests] == ["7.1", "6.0"]


def test_continuation_paging(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    projects = client.list_projects(page_size=1)
    assert sorted(project["name"] for project in projects) == ["My Project", "Widgets"]
    calls = ado.find("GET", "/_apis/projects")
    assert len(calls) == 2
    assert "continuationToken" not in calls[0].query
    assert calls[1].query["continuationToken"] == "1"


def test_segments_encoded(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    repository = client.get_repository(SPACED_PROJECT_NAME, ACCENTED_REPOSITORY_NAME)
    assert repository["name"] == ACCENTED_REPOSITORY_NAME
    raw_path = ado.last("GET", "_apis/git/repositories").raw_path
    assert "/My%20Project/" in raw_path
    assert raw_path.endswith("/d%C3%A9p%C3%B4t%20infra")
    assert "+" not in raw_path


def test_item_content(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    content = client.get_item_content("Widgets", "widget-service", "/stacks/network/main.tf", MAIN_HEAD)
    assert content is not None
    assert "10.1.0.0/16" in content
    query = ado.last("GET", "/items").query
    assert query["versionDescriptor.versionType"] == "commit"
    assert query["includeContent"] == "true"
    assert client.get_item_content("Widgets", "widget-service", "/stacks/app/variables.tf", MAIN_HEAD) is None


def test_commit_changes(client: AzureDevOpsClient) -> None:
    changes = client.get_commit_changes("Widgets", "widget-service", FEATURE_HEAD)
    assert {(change.change_type, change.path) for change in changes} == {
        ("edit", "/modules/vpc/main.tf"), ("add", "/stacks/app/variables.tf")}


def test_diff_commits(client: AzureDevOpsClient) -> None:
    paths = client.diff_commits("Widgets", "widget-service", MAIN_BEFORE_PUSH, MAIN_HEAD)
    assert paths == ["/modules/vpc/main.tf", "/stacks/network/main.tf"]


def test_iteration_changes_paging(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    files: dict[str, str | None] = {f"stacks/generated/file{index:04}.tf": f"# {index}\n" for index in range(2105)}
    with ado.lock:
        ado.state.add_commit(REPOSITORY_ID, "f" * 40, parents=[MAIN_HEAD], files=files, branch="feature/many")
        ado.state.add_pull_request(58, REPOSITORY_ID, source_ref="feature/many", target_ref="main",
                                   created_by=Identity(PROJECT_ID, "x", "x"))
        ado.state.add_iteration(58, source_commit="f" * 40, target_commit=MAIN_HEAD)
    paths = client.get_iteration_changes("Widgets", "widget-service", 58, 1)
    assert len(paths) == 2105
    calls = ado.find("GET", "/iterations/1/changes")
    assert [call.query["$skip"] for call in calls] == ["0", "2000"]
    assert all(call.query["$top"] == "2000" for call in calls)


def test_pull_request_and_iterations(client: AzureDevOpsClient) -> None:
    pull_request = client.get_pull_request("Widgets", "widget-service", 57)
    assert pull_request["lastMergeSourceCommit"]["commitId"] == FEATURE_HEAD
    iterations = client.list_iterations("Widgets", "widget-service", 57)
    assert [iteration["id"] for iteration in iterations] == [1, 2]


def test_thread_and_reply(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    thread = client.create_thread("Widgets", "widget-service", 57, "Plan: 1 to change.")
    assert ado.last("POST", "/threads").body == {
        "comments": [{"parentCommentId": 0, "content": "Plan: 1 to change.", "commentType": 1}], "status": "active"}
    comment = client.reply("Widgets", "widget-service", 57, thread["id"], 1, "Applied.")
    assert comment["parentCommentId"] == 1
    with pytest.raises(AzureDevOpsError) as caught:
        client.reply("Widgets", "widget-service", 57, thread["id"], 1, "x" * 150_001)
    assert caught.value.kind == "rejected"


def test_commit_status_body(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    status = client.post_commit_status("Widgets", "widget-service", FEATURE_HEAD, state="succeeded",
                                       genre="stackhook", name="plan/network", description="No changes",
                                       target_url="https://127.0.0.1:7071/runs/1")
    assert status["id"] >= 1
    recorded = ado.last("POST", "/statuses")
    assert recorded.status == 201
    assert recorded.body == {"state": "succeeded", "description": "No changes",
                             "context": {"genre": "stackhook", "name": "plan/network"},
                             "targetUrl": "https://127.0.0.1:7071/runs/1"}


def test_pull_request_status_rejected_when_completed(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    posted = client.post_pull_request_status("Widgets", "widget-service", 57, state="pending", genre="stackhook",
                                             name="plan", description="Planning", iteration_id=2)
    assert posted["iterationId"] == 2
    ado.set_pull_request_status(57, "completed")
    with pytest.raises(AzureDevOpsError) as caught:
        client.post_pull_request_status("Widgets", "widget-service", 57, state="pending", genre="stackhook",
                                        name="plan", description="Planning", iteration_id=2)
    assert caught.value.kind == "rejected"
    assert "completed" in str(caught.value)


def test_subscription_calls(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    body: dict[str, Any] = {
        "publisherId": "tfs", "eventType": "git.push", "resourceVersion": "1.0", "consumerId": "webHooks",
        "consumerActionId": "httpRequest", "publisherInputs": {"projectId": PROJECT_ID},
        "consumerInputs": {"url": "https://127.0.0.1:7071/api/hooks", "basicAuthUsername": "ado",
                           "basicAuthPassword": "hook-secret"}}
    created = client.create_subscription(body)
    assert client.get_subscription(created["id"])["status"] == "enabled"
    ado.set_subscription_status(created["id"], "onProbation")
    assert [item["status"] for item in client.query_subscriptions(PROJECT_ID)] == ["onProbation"]
    replaced = client.replace_subscription(created["id"], {**created, "status": "enabled"})
    assert replaced["status"] == "enabled"
    assert len(client.list_subscriptions(event_type="git.push")) == 1
    client.delete_subscription(created["id"])
    assert client.list_subscriptions() == []


def test_connection_test_ok(client: AzureDevOpsClient) -> None:
    result = client.test_connection()
    assert result.ok
    assert result.identity_id == "0a1e0a1e-0000-4000-8000-00000000a1e0"
    assert result.to_dict()["identity_name"] == "Alex Example"


def test_connection_test_bad_token(make_client: ClientFactory) -> None:
    result = make_client(token="revoked-token-value").test_connection()
    assert not result.ok
    assert result.kind == "invalid_credentials"
    assert "revoked-token-value" not in result.message


def test_connection_test_anonymous(make_client: ClientFactory, ado: FakeAzureDevOps) -> None:
    ado.anonymous_connection_data = True
    result = make_client(token="unknown-token-value").test_connection()
    assert result.kind == "invalid_credentials"


def test_connection_test_falls_back(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    ado.fail_next(1, status=404, path_contains="connectionData")
    result = client.test_connection()
    assert result.ok
    assert result.identity_id is None
    assert len(ado.find("GET", "/_apis/projects")) == 1


def test_connection_test_wrong_collection(make_client: ClientFactory, ado: FakeAzureDevOps) -> None:
    result = make_client(url=f"{ado.server_url}/NoSuchCollection").test_connection()
    assert result.kind == "not_found"
    assert "NoSuchCollection" in result.message


def test_connection_test_unreachable(make_client: ClientFactory, local_ca: LocalCertificates) -> None:
    fake = FakeAzureDevOps(local_ca).start()
    url = fake.base_url
    fake.stop()
    result = make_client(url=url, max_retries=0).test_connection()
    assert result.kind == "unreachable"
    assert not result.ok


def test_connection_test_throttled(client: AzureDevOpsClient, ado: FakeAzureDevOps) -> None:
    ado.fail_next(10, status=429, retry_after=9)
    result = client.test_connection()
    assert result.kind == "throttled"
    assert result.retry_after == 9.0
