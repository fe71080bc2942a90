"""`/api/integrations/{id}/service-hooks` and the service-hook watcher, end to end through the local
host and the fake Azure DevOps server.

Each test installs into a project of its own, so the fake's subscription list starts empty there.
The watcher, `after_secret_rotation` and `remove_all` run in-process on a `Services` built from the
stack's settings, against the same Azurite, Key Vault and fake server as the host.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devhost.fake_ado import FakeAzureDevOps
from devhost.fake_ado.server import RecordedRequest
from devhost.stack import LocalStack
from functions._deps import Services
from shared.services.service_hooks import COMMENT_EVENT, RESOURCE_VERSIONS
from shared.settings import Settings
from shared.storage.deliveries import NewDelivery
from shared.storage.names import webhook_secret_name
from shared.storage.service_hooks import ServiceHookRepository
from tests.api_helpers import delete_integration, error_of, unique, user, wait_for_connection_test
from tests.fixtures.app_host import Api, basic_auth
from tests.payloads import load_payload_json

EVENT_TYPES = set(RESOURCE_VERSIONS)


@pytest.fixture
def fake(app_stack: LocalStack) -> Iterator[FakeAzureDevOps]:
    assert app_stack.fake_ado is not None
    app_stack.fake_ado.clear()
    yield app_stack.fake_ado
    app_stack.fake_ado.clear()


@pytest.fixture
def project(fake: FakeAzureDevOps) -> dict[str, str]:
    """A new project with one repository, with no subscriptions yet."""
    project_id, repository_id = str(uuid.uuid4()), str(uuid.uuid4())
    name = unique("Hooks")
    with fake.lock:
        fake.state.add_project(project_id, name)
        fake.state.add_repository(repository_id, f"{name}-repo", project_id)
    return {"id": project_id, "name": name, "repositoryId": repository_id, "repositoryName": f"{name}-repo"}


@pytest.fixture
def integration(api: Api) -> Iterator[dict[str, Any]]:
    response = api.create_integration(unique("Hooks"))
    assert response.status_code == 201, response.text
    details = wait_for_connection_test(api, response.json()["id"])
    yield details
    delete_integration(api, details["id"])


def _services(app_stack: LocalStack, **settings: str) -> Services:
    return Services(Settings.from_environ({**app_stack.settings(), **settings}))


@pytest.fixture
def local(app_stack: LocalStack) -> Services:
    """The services of the app, built in this process with the host's settings."""
    return _services(app_stack)


def _install(api: Api, integration_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.as_admin("POST", f"/api/integrations/{integration_id}/service-hooks", body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _subscriptions_to(fake: FakeAzureDevOps, url: str) -> dict[str, dict[str, Any]]:
    with fake.lock:
        return {key: json.loads(json.dumps(value)) for key, value in fake.state.subscriptions.items()
                if value["consumerInputs"]["url"] == url}


def _writes(fake: FakeAzureDevOps) -> list[RecordedRequest]:
    return [request for request in fake.find(path_contains="/_apis/hooks/subscriptions")
            if request.method in ("POST", "PUT", "DELETE") and "subscriptionsquery" not in request.path]


def _by_event(result: dict[str, Any], key: str) -> dict[str, str]:
    return {item["eventType"]: item["subscriptionId"] for item in result[key]}


def _warnings(api: Api, integration_id: str) -> list[dict[str, Any]]:
    return [warning for warning in api.details(integration_id)["warnings"]
            if warning["code"].startswith("service_hook_")]


# Installing

def test_install_creates_five(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                              project: dict[str, str]) -> None:
    result = _install(api, integration["id"], {"project": project["name"]})

    assert {item["eventType"] for item in result["created"]} == EVENT_TYPES
    assert result["updated"] == []
    assert result["unchanged"] == []
    assert result["projectId"] == project["id"]
    bodies = [request.body for request in fake.find("POST", "/_apis/hooks/subscriptions")
              if not request.path.endswith("subscriptionsquery")]
    assert len(bodies) == 5
    for body in bodies:
        assert body["publisherId"] == "tfs"
        assert body["resourceVersion"] == ("2.0" if body["eventType"] == COMMENT_EVENT else "1.0")
        assert body["consumerId"] == "webHooks"
        assert body["consumerActionId"] == "httpRequest"
        assert body["publisherInputs"] == {"projectId": project["id"]}
        inputs = body["consumerInputs"]
        assert inputs["url"] == integration["webhookEndpoint"]
        assert inputs["basicAuthPassword"] == integration["webhookSecret"]
        assert "basicAuthUsername" not in inputs
        assert inputs["resourceDetailsToSend"] == "all"
        assert inputs["messagesToSend"] == "none"
        assert inputs["detailedMessagesToSend"] == "none"
    assert set(_subscriptions_to(fake, integration["webhookEndpoint"])) == set(_by_event(result, "created").values())


def test_install_records_rows(api: Api, local: Services, integration: dict[str, Any],
                              project: dict[str, str]) -> None:
    result = _install(api, integration["id"], {"project": project["id"]})

    rows = ServiceHookRepository(local.storage).list_for(integration["id"])
    record = local.integration_records.get(integration["id"])
    assert {row.subscription_id for row in rows} == set(_by_event(result, "created").values())
    assert {row.event_type for row in rows} == EVENT_TYPES
    assert all(row.project_id == project["id"] for row in rows)
    assert all(row.secret_version == record.webhook_secret_version for row in rows)


def test_install_with_repository(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                                 project: dict[str, str]) -> None:
    result = _install(api, integration["id"], {"project": project["name"], "repository": project["repositoryName"]})

    assert result["repositoryId"] == project["repositoryId"]
    assert len(result["created"]) == 5
    for subscription in _subscriptions_to(fake, integration["webhookEndpoint"]).values():
        assert subscription["publisherInputs"]["repository"] == project["repositoryId"]


def test_install_again_changes_nothing(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                                       project: dict[str, str]) -> None:
    first = _install(api, integration["id"], {"project": project["name"]})
    fake.clear()

    second = _install(api, integration["id"], {"project": project["name"]})

    assert second["created"] == []
    assert second["updated"] == []
    assert _by_event(second, "unchanged") == _by_event(first, "created")
    assert _writes(fake) == []


def test_install_repairs_drift(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                               project: dict[str, str]) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    with fake.lock:
        del fake.state.subscriptions[created["git.push"]]
        fake.state.subscriptions[created[COMMENT_EVENT]]["resourceVersion"] = "1.0"
    fake.clear()

    result = _install(api, integration["id"], {"project": project["name"]})

    assert [item["eventType"] for item in result["created"]] == ["git.push"]
    assert [item["subscriptionId"] for item in result["updated"]] == [created[COMMENT_EVENT]]
    assert result["updated"][0]["changes"] == ["resourceVersion 1.0 -> 2.0"]
    assert len(result["unchanged"]) == 3
    put = fake.last("PUT", f"/_apis/hooks/subscriptions/{created[COMMENT_EVENT]}")
    assert put.body["resourceVersion"] == "2.0"
    assert put.body["consumerInputs"]["basicAuthPassword"] == integration["webhookSecret"]


def _create_by_hand(local: Services, fake: FakeAzureDevOps, project_id: str, url: str, **inputs: str) -> str:
    """Create a git.push subscription through the REST API, as a user who sets one up by hand would."""
    body = {"publisherId": "tfs", "eventType": "git.push", "resourceVersion": "1.0", "consumerId": "webHooks",
            "consumerActionId": "httpRequest", "publisherInputs": {"projectId": project_id},
            "consumerInputs": {"url": url, **inputs}}
    with local.azure_devops_client(fake.base_url, fake.sample_pat) as client:
        return str(client.create_subscription(body)["id"])


def test_install_takes_over_handmade(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                                     project: dict[str, str]) -> None:
    handmade = _create_by_hand(local, fake, project["id"], integration["webhookEndpoint"],
                               basicAuthPassword="typed-by-hand", resourceDetailsToSend="all", messagesToSend="text",
                               detailedMessagesToSend="none")
    fake.set_subscription_status(handmade, "disabledByUser")

    result = _install(api, integration["id"], {"project": project["name"]})

    assert len(result["created"]) == 4
    assert [item["subscriptionId"] for item in result["updated"]] == [handmade]
    assert set(result["updated"][0]["changes"]) == {"consumer input messagesToSend -> none",
                                                    "webhook secret was stale or unknown",
                                                    "status disabledByUser -> enabled"}
    stored = _subscriptions_to(fake, integration["webhookEndpoint"])[handmade]
    assert stored["status"] == "enabled"
    assert stored["consumerInputs"]["basicAuthPassword"] == integration["webhookSecret"]


def test_install_leaves_others_alone(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                                     project: dict[str, str]) -> None:
    other = _create_by_hand(local, fake, project["id"], "https://elsewhere.example.com/hook")

    result = _install(api, integration["id"], {"project": project["name"]})

    assert len(result["created"]) == 5
    assert fake.find("PUT", other) == []
    assert fake.find("DELETE", other) == []


@pytest.mark.parametrize("status", [401, 403])
def test_install_without_permission(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                                    project: dict[str, str], status: int) -> None:
    fake.fail_next(status=status, path_contains="/_apis/hooks/subscriptionsquery")

    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/service-hooks",
                            {"project": project["name"]})

    error = error_of(response)
    assert response.status_code == 403
    assert error["code"] == "azure_devops_permission_missing"
    assert project["name"] in error["message"]
    assert "EditSubscriptions" in error["message"]
    assert "Project Collection Administrators" in error["message"]
    assert integration["webhookSecret"] not in response.text


def test_install_update_refused(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                                project: dict[str, str]) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    with fake.lock:
        fake.state.subscriptions[created["git.push"]]["resourceVersion"] = "5.0"
    fake.fail_next(status=403, path_contains="/_apis/hooks/subscriptions/")

    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/service-hooks",
                            {"project": project["name"]})

    assert response.status_code == 403, response.text
    assert error_of(response)["code"] == "azure_devops_permission_missing"
    assert fake.last("PUT").status == 403


def test_install_unknown_project(api: Api, integration: dict[str, Any]) -> None:
    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/service-hooks",
                            {"project": "No Such Project"})

    error = error_of(response)
    assert response.status_code == 404
    assert error["code"] == "azure_devops_project_not_found"
    assert "'No Such Project'" in error["message"]


def test_install_unknown_repository(api: Api, integration: dict[str, Any], project: dict[str, str]) -> None:
    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/service-hooks",
                            {"project": project["name"], "repository": "missing-repo"})

    assert response.status_code == 404
    assert error_of(response)["code"] == "azure_devops_repository_not_found"


def test_install_throttled(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                           project: dict[str, str]) -> None:
    fake.fail_next(5, status=429, retry_after=0, path_contains="/_apis/hooks/subscriptionsquery")

    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/service-hooks",
                            {"project": project["name"]})

    assert response.status_code == 503
    assert error_of(response)["code"] == "azure_devops_throttled"
    assert "Retry-After" in response.headers


def test_install_needs_admin(api: Api, integration: dict[str, Any], project: dict[str, str]) -> None:
    response = api.call("POST", f"/api/integrations/{integration['id']}/service-hooks", {"project": project["name"]},
                        headers=user(unique("reader")))

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_install_rejects_unknown_field(api: Api, integration: dict[str, Any]) -> None:
    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/service-hooks",
                            {"project": "x", "branch": "main"})

    assert response.status_code == 422
    assert error_of(response)["field"] == "branch"


# Removing

def test_delete_removes_installed(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                                  project: dict[str, str]) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")

    response = api.as_admin("DELETE", f"/api/integrations/{integration['id']}/service-hooks")

    assert response.status_code == 200, response.text
    assert set(response.json()["removed"]) == set(created.values())
    assert _subscriptions_to(fake, integration["webhookEndpoint"]) == {}
    assert ServiceHookRepository(local.storage).list_for(integration["id"]) == []


def test_delete_by_project(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                           project: dict[str, str]) -> None:
    _install(api, integration["id"], {"project": project["name"]})
    with fake.lock:
        fake.state.add_project(str(uuid.uuid4()), f"{project['name']}-2")
    second = _by_event(_install(api, integration["id"], {"project": f"{project['name']}-2"}), "created")

    response = api.as_admin("DELETE", f"/api/integrations/{integration['id']}/service-hooks?project={project['id']}")

    assert response.status_code == 200, response.text
    assert len(response.json()["removed"]) == 5
    assert set(_subscriptions_to(fake, integration["webhookEndpoint"])) == set(second.values())


def test_delete_unknown_project(api: Api, integration: dict[str, Any]) -> None:
    response = api.as_admin("DELETE", f"/api/integrations/{integration['id']}/service-hooks?project=nowhere")

    assert response.status_code == 404
    assert error_of(response)["code"] == "service_hooks_not_found"


def test_remove_all_deletes(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                            project: dict[str, str]) -> None:
    _install(api, integration["id"], {"project": project["name"]})
    with fake.lock:
        first = next(iter(_subscriptions_to(fake, integration["webhookEndpoint"])))
        del fake.state.subscriptions[first]

    result = local.service_hooks.remove_all(local.integration_records.get(integration["id"]))

    assert len(result.removed) == 4
    assert result.already_gone == [first]
    assert _subscriptions_to(fake, integration["webhookEndpoint"]) == {}


# Secret rotation

def test_rotation_updates_secret(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                                 project: dict[str, str]) -> None:
    _install(api, integration["id"], {"project": project["name"]})
    fake.clear()

    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/rotate-secret", {})

    assert response.status_code == 200, response.text
    new_secret = response.json()["webhookSecret"]
    puts = fake.find("PUT", "/_apis/hooks/subscriptions/")
    assert len(puts) == 5
    assert {put.body["consumerInputs"]["basicAuthPassword"] for put in puts} == {new_secret}
    assert all("status" not in put.body for put in puts)
    again = _install(api, integration["id"], {"project": project["name"]})
    assert len(again["unchanged"]) == 5


def test_rotation_update_is_idempotent(api: Api, fake: FakeAzureDevOps, local: Services,
                                       integration: dict[str, Any], project: dict[str, str]) -> None:
    _install(api, integration["id"], {"project": project["name"]})
    api.as_admin("POST", f"/api/integrations/{integration['id']}/rotate-secret", {})
    fake.clear()

    updated = local.service_hooks.after_secret_rotation(local.integration_records.get(integration["id"]))

    assert updated == []
    assert fake.find("PUT", "/_apis/hooks/subscriptions/") == []


def test_watch_updates_stale_secret(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                                    project: dict[str, str]) -> None:
    _install(api, integration["id"], {"project": project["name"]})
    # Rotate in-process without the subscription update, as if Azure DevOps was unreachable then.
    record = local.integration_records.get(integration["id"])
    version = local.secrets.set(webhook_secret_name(record.id), "rotated-while-unreachable-0123456789abcdef")
    local.integration_records.update_fields(record, webhook_secret_version=version)
    fake.clear()

    local.service_hooks.watch(local.integration_records.get(integration["id"]))

    assert {put.body["consumerInputs"]["basicAuthPassword"] for put in fake.find("PUT")} == {
        "rotated-while-unreachable-0123456789abcdef"}
    assert len(fake.find("PUT")) == 5


# Listing

def test_list_shows_status_and_delivery(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                                        project: dict[str, str]) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    fake.set_subscription_status(created["git.pullrequest.updated"], "onProbation")
    delivery = load_payload_json("git.push")
    delivery.update(subscriptionId=created["git.push"], id=str(uuid.uuid4()))
    posted = api.call("POST", f"/api/webhooks/azure-devops/{integration['id']}", delivery,
                      headers=basic_auth(integration["webhookSecret"]))
    assert posted.status_code == 202, posted.text

    response = api.as_admin("GET", f"/api/integrations/{integration['id']}/service-hooks")

    assert response.status_code == 200, response.text
    items = {item["subscriptionId"]: item for item in response.json()["subscriptions"]}
    assert set(items) == set(created.values())
    assert items[created["git.pullrequest.updated"]]["status"] == "onProbation"
    assert items[created["git.push"]]["status"] == "enabled"
    assert items[created["git.push"]]["lastDelivery"]["outcome"] in ("queued", "processed", "ignored")
    assert items[created["git.pullrequest.created"]]["lastDelivery"] is None
    assert all(item["installedByStackhook"] and item["secretCurrent"] for item in items.values())
    assert all(item["projectName"] == project["name"] for item in items.values())


def test_list_shows_missing(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                            project: dict[str, str]) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    with fake.lock:
        del fake.state.subscriptions[created["git.push"]]

    items = api.as_admin("GET", f"/api/integrations/{integration['id']}/service-hooks").json()["subscriptions"]

    assert {item["subscriptionId"]: item["status"] for item in items}[created["git.push"]] == "missing"


# Watching

@pytest.mark.parametrize("status", ["onProbation", "disabledBySystem", "disabledByUser", "disabledByInactiveIdentity"])
def test_watch_warns_and_clears(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                                project: dict[str, str], status: str) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    subscription_id = created["git.pullrequest.merged"]
    fake.set_subscription_status(subscription_id, status)

    local.service_hooks.watch_all()
    warnings = _warnings(api, integration["id"])

    assert [warning["subscriptionId"] for warning in warnings] == [subscription_id]
    assert warnings[0]["status"] == status
    assert warnings[0]["code"] == ("service_hook_on_probation" if status == "onProbation"
                                   else "service_hook_disabled")
    assert warnings[0]["since"]
    assert subscription_id in warnings[0]["message"]
    assert fake.find("PUT") == []
    assert {"integrationId": integration["id"], **warnings[0]} in local.service_hooks.warnings()

    fake.set_subscription_status(subscription_id, "enabled")
    local.service_hooks.watch_all()

    assert _warnings(api, integration["id"]) == []


def test_watch_keeps_since(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                           project: dict[str, str]) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    fake.set_subscription_status(created["git.push"], "onProbation")
    record = local.integration_records.get(integration["id"])

    local.service_hooks.watch(record)
    first = _warnings(api, integration["id"])
    local.service_hooks.watch(record)

    assert _warnings(api, integration["id"]) == first


def test_watch_warns_missing(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                             project: dict[str, str]) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    with fake.lock:
        del fake.state.subscriptions[created["git.push"]]

    local.service_hooks.watch(local.integration_records.get(integration["id"]))

    assert [warning["code"] for warning in _warnings(api, integration["id"])] == ["service_hook_missing"]


def test_watch_check_failure_warns(api: Api, fake: FakeAzureDevOps, local: Services, integration: dict[str, Any],
                                   project: dict[str, str]) -> None:
    _install(api, integration["id"], {"project": project["name"]})
    fake.fail_next(status=403, path_contains="/_apis/hooks/subscriptionsquery")

    local.service_hooks.watch(local.integration_records.get(integration["id"]))

    warnings = _warnings(api, integration["id"])
    assert [warning["code"] for warning in warnings] == ["service_hook_check_failed"]
    assert warnings[0]["projectId"] == project["id"]


def _record_delivery(local: Services, integration_id: str, subscription_id: str, outcome: str) -> None:
    local.deliveries.record(NewDelivery(
        integration_id=integration_id, event_type="git.push", subscription_id=subscription_id, notification_id=1,
        event_id=str(uuid.uuid4()), publisher_id="tfs", resource_version="1.0", body=b"{}", outcome=outcome,
        reason="Recorded by the test."), [])


@pytest.mark.parametrize(("reenable", "outcome", "expected"), [
    ("true", "processed", "enabled"),
    ("false", "processed", "disabledBySystem"),
    ("true", "failed", "disabledBySystem"),
])
def test_watch_reenable(api: Api, fake: FakeAzureDevOps, app_stack: LocalStack, integration: dict[str, Any],
                        project: dict[str, str], reenable: str, outcome: str, expected: str) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    subscription_id = created["git.push"]
    local = _services(app_stack, STACKHOOK_SERVICE_HOOK_REENABLE=reenable)
    _record_delivery(local, integration["id"], subscription_id, outcome)
    fake.set_subscription_status(subscription_id, "disabledBySystem")
    fake.clear()

    local.service_hooks.watch(local.integration_records.get(integration["id"]))

    assert _subscriptions_to(fake, integration["webhookEndpoint"])[subscription_id]["status"] == expected
    warnings = _warnings(api, integration["id"])
    assert len(warnings) == 1
    if expected == "enabled":
        assert warnings[0]["code"] == "service_hook_reenabled"
        assert fake.last("PUT", subscription_id).body["status"] == "enabled"
    else:
        assert warnings[0]["code"] == "service_hook_disabled"
        assert fake.find("PUT") == []


def test_watch_reenable_needs_deliveries(api: Api, fake: FakeAzureDevOps, app_stack: LocalStack,
                                         integration: dict[str, Any], project: dict[str, str]) -> None:
    created = _by_event(_install(api, integration["id"], {"project": project["name"]}), "created")
    fake.set_subscription_status(created["git.push"], "disabledBySystem")
    local = _services(app_stack, STACKHOOK_SERVICE_HOOK_REENABLE="true")

    local.service_hooks.watch(local.integration_records.get(integration["id"]))

    assert _subscriptions_to(fake, integration["webhookEndpoint"])[created["git.push"]]["status"] == "disabledBySystem"


def test_check_endpoint_reports_probation(api: Api, fake: FakeAzureDevOps, integration: dict[str, Any],
                                          project: dict[str, str]) -> None:
    installed = _install(api, integration["id"], {"project": project["name"]})
    push = next(item for item in installed["created"] if item["eventType"] == "git.push")
    fake.set_subscription_status(push["subscriptionId"], "onProbation")

    response = api.as_admin("POST", f"/api/integrations/{integration['id']}/service-hooks/check")

    assert response.status_code == 200, response.text
    codes = [warning["code"] for warning in response.json()["warnings"]]
    assert codes == ["service_hook_on_probation"]
    details = api.details(integration["id"])
    assert [warning["code"] for warning in details["warnings"]] == ["service_hook_on_probation"]
