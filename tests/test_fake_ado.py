"""The fake Azure DevOps server: authentication, api-version checks, recording and seeded responses."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import httpx
import pytest

from devhost.fake_ado import FakeAzureDevOps
from devhost.fake_ado.sample import FEATURE_HEAD, MAIN_HEAD, REPOSITORY_ID
from devhost.tls import LocalCertificates

REPO = "Widgets/_apis/git/repositories/widget-service"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f":{token}".encode()).decode()}


@pytest.fixture
def http(local_ca: LocalCertificates) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=local_ca.ca_path), follow_redirects=False)


def _get(http: httpx.Client, ado: FakeAzureDevOps, route: str, **params: str) -> httpx.Response:
    return http.get(f"{ado.base_url}/{route}", params={"api-version": "7.1", **params}, headers=_auth(ado.sample_pat))


def test_connection_data_identity(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    response = http.get(f"{ado.base_url}/_apis/connectionData", headers=_auth(ado.sample_pat))
    assert response.status_code == 200
    assert response.json()["authenticatedUser"]["id"] == "0a1e0a1e-0000-4000-8000-00000000a1e0"


def test_unknown_pat_gets_401_error_shape(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    response = http.get(f"{ado.base_url}/_apis/projects", params={"api-version": "7.1"}, headers=_auth("wrong"))
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"$id", "innerException", "message", "typeName", "typeKey", "errorCode", "eventId"}
    assert body["typeKey"] == "UnauthorizedRequestException"


def test_signin_mode_needs_suppress_header(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    ado.auth_failure_mode = "signin"
    url = f"{ado.base_url}/_apis/projects?api-version=7.1"
    page = http.get(url, headers=_auth("expired"))
    assert page.status_code == 203
    assert page.headers["content-type"].startswith("text/html")
    suppressed = http.get(url, headers={**_auth("expired"), "X-TFS-FedAuthRedirect": "Suppress"})
    assert suppressed.status_code == 401


def test_missing_api_version_rejected(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    response = http.get(f"{ado.base_url}/_apis/projects", headers=_auth(ado.sample_pat))
    assert response.status_code == 400
    assert response.json()["typeKey"] == "VssVersionNotSpecifiedException"


def test_version_above_maximum_rejected(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    ado.max_api_version = "6.0"
    response = _get(http, ado, "_apis/projects")
    assert response.status_code == 400
    assert response.json()["typeKey"] == "VssVersionOutOfRangeException"
    assert response.json()["message"] == (
        "The requested REST API version of 7.1 is out of range for this server. "
        "The latest REST API version this server supports is 6.0.")
    assert _get(http, ado, "_apis/projects", **{"api-version": "6.0-preview.1"}).status_code == 200


def test_records_request(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    http.post(f"{ado.base_url}/{REPO}/pullRequests/57/threads", params={"api-version": "7.1"},
              headers={**_auth(ado.sample_pat), "X-Test": "yes"},
              json={"comments": [{"parentCommentId": 0, "content": "hello", "commentType": 1}]})
    recorded = ado.last("POST", "/threads")
    assert recorded.path == "/DefaultCollection/Widgets/_apis/git/repositories/widget-service/pullRequests/57/threads"
    assert recorded.query == {"api-version": "7.1"}
    assert recorded.header("x-test") == "yes"
    assert recorded.body["comments"][0]["content"] == "hello"
    assert recorded.status == 200
    ado.clear()
    assert ado.requests == []


def test_tfs_prefix_accepted(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    response = http.get(f"{ado.server_url}/tfs/DefaultCollection/_apis/projects/Widgets",
                        params={"api-version": "7.1"}, headers=_auth(ado.sample_pat))
    assert response.status_code == 200
    assert response.json()["id"] == "11111111-2222-4333-8444-555555555555"


def test_unknown_collection_404(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    response = http.get(f"{ado.server_url}/Other/_apis/projects", params={"api-version": "7.1"},
                        headers=_auth(ado.sample_pat))
    assert response.status_code == 404


def test_projects_continuation(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    first = _get(http, ado, "_apis/projects", **{"$top": "1"})
    token = first.headers["x-ms-continuationtoken"]
    second = _get(http, ado, "_apis/projects", **{"$top": "1", "continuationToken": token})
    assert "x-ms-continuationtoken" not in second.headers
    names = [first.json()["value"][0]["name"], second.json()["value"][0]["name"]]
    assert sorted(names) == ["My Project", "Widgets"]


def test_repository_by_id_and_name(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    by_id = _get(http, ado, f"_apis/git/repositories/{REPOSITORY_ID}")
    by_name = _get(http, ado, "11111111-2222-4333-8444-555555555555/_apis/git/repositories/WIDGET-SERVICE")
    assert by_id.json()["name"] == "widget-service"
    assert by_name.json()["id"] == REPOSITORY_ID
    assert by_id.json()["defaultBranch"] == "refs/heads/main"


def test_item_content_and_missing(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    params = {"versionDescriptor.version": MAIN_HEAD, "versionDescriptor.versionType": "commit",
              "includeContent": "true"}
    found = _get(http, ado, f"{REPO}/items", path="/stacks/network/main.tf", **params)
    assert 'cidr   = "10.1.0.0/16"' in found.json()["content"]
    missing = _get(http, ado, f"{REPO}/items", path="/stacks/app/variables.tf", **params)
    assert missing.status_code == 404
    assert missing.json()["typeKey"] == "GitItemNotFoundException"


def test_commit_changes_follow_model(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    body = _get(http, ado, f"{REPO}/commits/{FEATURE_HEAD}/changes").json()
    changes = {(change["changeType"], change["item"]["path"]) for change in body["changes"]}
    assert changes == {("edit", "/modules/vpc/main.tf"), ("add", "/stacks/app/variables.tf")}


def test_iteration_changes_against_merge_base(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    body = _get(http, ado, f"{REPO}/pullRequests/57/iterations/2/changes").json()
    paths = [entry["item"]["path"] for entry in body["changeEntries"]]
    assert paths == ["/modules/vpc/main.tf", "/stacks/app/main.tf", "/stacks/app/variables.tf"]
    assert (body["nextSkip"], body["nextTop"]) == (0, 0)
    assert _get(http, ado, f"{REPO}/pullRequests/57/iterations/2/changes", **{"$top": "2001"}).status_code == 400


def test_comment_length_limit(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    url = f"{ado.base_url}/{REPO}/pullRequests/57/threads/311/comments"

    def post(length: int) -> httpx.Response:
        return http.post(url, params={"api-version": "7.1"}, headers=_auth(ado.sample_pat),
                         json={"parentCommentId": 2, "content": "x" * length, "commentType": 1})

    assert post(150_000).status_code == 200
    assert post(150_001).status_code == 400


def test_pull_request_status_needs_active(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    body = {"state": "pending", "context": {"genre": "stackhook", "name": "plan"}, "iterationId": 2}
    url = f"{ado.base_url}/{REPO}/pullRequests/57/statuses"
    assert http.post(url, params={"api-version": "7.1"}, headers=_auth(ado.sample_pat), json=body).status_code == 200
    ado.set_pull_request_status(57, "completed")
    rejected = http.post(url, params={"api-version": "7.1"}, headers=_auth(ado.sample_pat), json=body)
    assert rejected.status_code == 400


def test_subscription_lifecycle(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    body: dict[str, Any] = {
        "publisherId": "tfs", "eventType": "git.push", "resourceVersion": "1.0", "consumerId": "webHooks",
        "consumerActionId": "httpRequest",
        "publisherInputs": {"projectId": "11111111-2222-4333-8444-555555555555", "repository": REPOSITORY_ID},
        "consumerInputs": {"url": "https://127.0.0.1:9/hook", "basicAuthUsername": "ado", "basicAuthPassword": "s3"}}
    params = {"api-version": "7.1"}
    created = http.post(f"{ado.base_url}/_apis/hooks/subscriptions", params=params, headers=_auth(ado.sample_pat),
                        json=body).json()
    assert created["status"] == "enabled"
    assert created["consumerInputs"]["basicAuthPassword"] == "********"
    ado.set_subscription_status(created["id"], "disabledBySystem")
    query = {"publisherId": "tfs", "publisherInputFilters": [{"conditions": [
        {"inputId": "projectId", "operator": "equals", "inputValue": "11111111-2222-4333-8444-555555555555"}]}]}
    results = http.post(f"{ado.base_url}/_apis/hooks/subscriptionsquery", params=params,
                        headers=_auth(ado.sample_pat), json=query).json()["results"]
    assert [item["status"] for item in results] == ["disabledBySystem"]
    url = f"{ado.base_url}/_apis/hooks/subscriptions/{created['id']}"
    assert http.delete(url, params=params, headers=_auth(ado.sample_pat)).status_code == 204
    assert http.get(url, params=params, headers=_auth(ado.sample_pat)).status_code == 404


def test_fail_next_then_recovers(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    ado.fail_next(1, status=429, path_contains="/_apis/projects", retry_after=7)
    throttled = _get(http, ado, "_apis/projects")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert _get(http, ado, "_apis/projects").status_code == 200


def test_fail_next_redirect_to_signin(http: httpx.Client, ado: FakeAzureDevOps) -> None:
    ado.fail_next(1, status=302)
    response = _get(http, ado, "_apis/projects")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(ado.server_url + "/_signin")


def test_context_manager_stops(local_ca: LocalCertificates) -> None:
    with FakeAzureDevOps(local_ca, collection="Other") as fake:
        url = f"{fake.base_url}/_apis/connectionData"
        trust = ssl.create_default_context(cafile=local_ca.ca_path)
        assert httpx.get(url, verify=trust).status_code == 401
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, verify=trust)
