"""End-to-end tests of the local Functions host: a real host on a free port, real Azurite."""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import httpx
import pytest
from azure.storage.queue import QueueClient

from devhost.azurite import Azurite, free_port
from devhost.host import HostStartError, LocalFunctionsHost
from tests.devhost_app import function_app as test_app

HOST_JSON = Path(test_app.__file__).with_name("host.json")
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
KEYS = {"masterKey": "master-test-key", "functionKeys": {"default": "host-test-key"},
        "functions": {"enqueue": {"own": "enqueue-test-key"}}}


@pytest.fixture(scope="module")
def local_host(azurite: Azurite) -> Iterator[LocalFunctionsHost]:
    host = LocalFunctionsHost(test_app.app, host_json=HOST_JSON, storage_connection_string=azurite.connection_string,
                              port=0, function_keys=KEYS, environ={"DEVHOST_TICK_SCHEDULE": "0 0 0 1 1 *"})
    with host:
        yield host


@pytest.fixture()
def client(local_host: LocalFunctionsHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_host.base_url, timeout=5) as http:
        yield http


def queue(azurite: Azurite, name: str) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, name)


def received(function_name: str, key: str, value: object) -> list[dict[str, object]]:
    return [item for item in test_app.RECEIVED[function_name] if item.get(key) == value]


def test_queue_output_reaches_trigger(local_host: LocalFunctionsHost, client: httpx.Client) -> None:
    response = client.post("/api/enqueue/7", content=b"first message", headers={"x-functions-key": "host-test-key"})
    assert response.status_code == 202
    assert response.json() == {"id": 7}
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    local_host.wait_idle(10)
    matches = received("consume", "body", "first message")
    assert len(matches) == 1
    assert matches[0]["dequeue_count"] == 1
    assert matches[0]["id"]
    assert matches[0]["insertion_time"] is not None


def test_queue_output_list(local_host: LocalFunctionsHost, client: httpx.Client) -> None:
    response = client.post("/api/enqueue-many", json=["many-1", "many-2", "many-3"])
    assert response.status_code == 204
    local_host.wait_idle(10)
    bodies = sorted(str(item["body"]) for item in test_app.RECEIVED["consume"] if str(item["body"]).startswith("many-"))
    assert bodies == ["many-1", "many-2", "many-3"]


def test_queue_trigger_decodes_base64(azurite: Azurite, local_host: LocalFunctionsHost) -> None:
    queue(azurite, test_app.WORK_QUEUE).send_message(base64.b64encode(b"encoded check").decode())
    local_host.wait_idle(10)
    assert len(received("consume", "body", "encoded check")) == 1


def test_return_queue_output(azurite: Azurite, local_host: LocalFunctionsHost) -> None:
    queue(azurite, test_app.RELAY_QUEUE).send_message(base64.b64encode(b"hop").decode())
    local_host.wait_idle(10)
    assert len(received("consume", "body", "relayed hop")) == 1


def test_retries_then_poison(azurite: Azurite, local_host: LocalFunctionsHost) -> None:
    failing = queue(azurite, test_app.FAILING_QUEUE)
    failing.send_message(base64.b64encode(b"doomed").decode())
    local_host.wait_idle(15)
    attempts = [item["dequeue_count"] for item in test_app.RECEIVED["always_fails"]]
    assert attempts == [1, 2, 3]
    assert len({item["id"] for item in test_app.RECEIVED["always_fails"]}) == 1
    assert failing.get_queue_properties().approximate_message_count == 0
    poisoned = list(queue(azurite, f"{test_app.FAILING_QUEUE}-poison").receive_messages())
    assert [base64.b64decode(item.content) for item in poisoned] == [b"doomed"]


@pytest.mark.parametrize(("headers", "path", "status"), [
    ({}, "/api/enqueue/1", 401),
    ({"x-functions-key": "wrong"}, "/api/enqueue/1", 401),
    ({"x-functions-key": "host-test-key"}, "/api/enqueue/1", 202),
    ({}, "/api/enqueue/1?code=host-test-key", 202),
    ({}, "/api/enqueue/1?code=enqueue-test-key", 202),
    ({"x-functions-key": "master-test-key"}, "/api/enqueue/1", 202),
    ({"x-functions-key": "host-test-key"}, "/api/admin-only", 401),
    ({"x-functions-key": "master-test-key"}, "/api/admin-only", 200),
    ({}, "/api/admin-only?code=master-test-key", 200),
])
def test_auth_levels(client: httpx.Client, local_host: LocalFunctionsHost, headers: dict[str, str], path: str,
                     status: int) -> None:
    response = client.post(path, content=b"auth check", headers=headers)
    assert response.status_code == status
    local_host.wait_idle(10)


def test_route_int_constraint(client: httpx.Client) -> None:
    assert client.get("/api/items/42").text == "item 42"
    assert client.get("/api/items/abc").status_code == 404


def test_route_catch_all(client: httpx.Client) -> None:
    assert client.get("/api/files/a/b%20c.txt").text == "file a/b c.txt"
    assert client.get("/api/files").text == "file "


def test_route_literal_wins(client: httpx.Client) -> None:
    response = client.get("/api/files/readme")
    assert response.text == "readme"
    assert response.headers["x-served-by"] == "readme"


def test_route_not_found(client: httpx.Client) -> None:
    assert client.get("/api/nothing-here").status_code == 404
    assert client.get("/ping").status_code == 404
    assert client.get("/other/ping").status_code == 404


def test_method_not_allowed(client: httpx.Client) -> None:
    response = client.post("/api/ping")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_async_function_with_context(client: httpx.Client) -> None:
    response = client.get("/api/ping", params={"q": "x y"})
    assert response.status_code == 200
    assert response.json() == {"name": "ping", "query": "x y"}


def test_function_error_is_500(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="devhost.host"):
        response = client.get("/api/broken")
    assert response.status_code == 500
    assert response.content == b""
    failed = [record for record in caplog.records if "(Failed, Id=" in record.getMessage()]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    assert "broken on purpose" in str(failed[0].exc_info[1])


def test_invocation_log_lines(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="devhost.host"):
        client.post("/api/enqueue/3", content=b"log-body-marker", headers={"x-functions-key": "host-test-key"})
    messages = [record.getMessage() for record in caplog.records if record.name == "devhost.host"]
    assert any(message.startswith("Executing 'Functions.enqueue' (Reason=") for message in messages)
    assert any(message.startswith("Executed 'Functions.enqueue' (Succeeded, Id=") for message in messages)
    assert "host-test-key" not in caplog.text
    assert "log-body-marker" not in caplog.text


def test_timer_on_demand(local_host: LocalFunctionsHost) -> None:
    before = len(test_app.RECEIVED["tick"])
    result = local_host.run_timer("tick")
    assert result.succeeded
    assert test_app.RECEIVED["tick"][before:] == [{"past_due": False}]


def test_timer_unknown_name(local_host: LocalFunctionsHost) -> None:
    with pytest.raises(KeyError, match="No running timer function"):
        local_host.run_timer("consume")


def test_timer_fires_on_schedule(azurite: Azurite) -> None:
    app = func.FunctionApp()
    fired: list[bool] = []

    @app.timer_trigger(arg_name="timer", schedule="* * * * * *")
    def every_second(timer: func.TimerRequest) -> None:
        fired.append(timer.past_due)

    host = LocalFunctionsHost(app, host_json=HOST_JSON, storage_connection_string=azurite.connection_string, port=0)
    with host:
        deadline = time.monotonic() + 3
        while len(fired) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(fired) >= 2


def build_host(app: func.FunctionApp, environ: dict[str, str] | None = None) -> LocalFunctionsHost:
    return LocalFunctionsHost(app, host_json=HOST_JSON, storage_connection_string="UseDevelopmentStorage=true",
                              port=0, environ=environ or {})


def test_refuses_duplicate_names() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="one")
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("one")

    @app.function_name("handler")
    @app.route(route="two")
    def other(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("two")

    with pytest.raises(HostStartError, match="handler does not have a unique function name"):
        build_host(app)


def test_refuses_missing_trigger() -> None:
    app = func.FunctionApp()

    @app.queue_output(arg_name="out", queue_name="orphans", connection="AzureWebJobsStorage")
    def orphan(out: func.Out[str]) -> None:
        out.set("x")

    with pytest.raises(HostStartError, match="orphan does not have a trigger"):
        build_host(app)


def test_refuses_unsupported_trigger() -> None:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="blob", path="uploads/{name}", connection="AzureWebJobsStorage")
    def on_upload(blob: func.InputStream) -> None:
        return None

    with pytest.raises(HostStartError, match="'on_upload' uses the trigger type 'blobTrigger'"):
        build_host(app)


def test_refuses_parameter_mismatch() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="mismatch")
    def mismatch(request: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("never")

    with pytest.raises(HostStartError, match=r"'mismatch' declares the parameters \['request'\]"):
        build_host(app)


def test_refuses_missing_app_setting() -> None:
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="%NOT_SET_SCHEDULE%")
    def unset(timer: func.TimerRequest) -> None:
        return None

    with pytest.raises(HostStartError, match="%NOT_SET_SCHEDULE%"):
        build_host(app)


def test_refuses_invalid_queue_name() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="Bad_Name", connection="AzureWebJobsStorage")
    def bad_queue(msg: func.QueueMessage) -> None:
        return None

    with pytest.raises(HostStartError, match="queue name 'bad_name', which is invalid"):
        build_host(app)


def test_cli_serves_until_sigterm(azurite: Azurite) -> None:
    port = free_port()
    environment = {**os.environ, "AzureWebJobsStorage": azurite.connection_string,
                   "DEVHOST_TICK_SCHEDULE": "0 0 0 1 1 *"}
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost.host", "--app", "tests.devhost_app.function_app:app",
         "--host-json", str(HOST_JSON), "--port", str(port), "--queue-api-version", "2025-11-05"],
        cwd=REPOSITORY_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status = None
        deadline = time.monotonic() + 15
        while status != 200 and time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/items/5", timeout=1).status_code
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert b"Executed 'Functions.item_by_id' (Succeeded" in output
    assert b"Host stopped" in output
