"""The service answers through the local host the way a first-time user meets it."""

from tests.fixtures.app_host import Api


def test_health_reports_every_dependency(api: Api) -> None:
    response = api.call("GET", "/api/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"tables", "queues", "keyVault"}
    assert all(check["ok"] for check in body["checks"].values())


def test_openapi_document_lists_api(api: Api) -> None:
    document = api.call("GET", "/api/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert "/api/integrations" in document["paths"]
    assert "IntegrationCreate" in document["components"]["schemas"]
