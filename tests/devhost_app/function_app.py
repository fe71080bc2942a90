"""A small function app used only by the tests of the local Functions host.

Functions record what they received in `RECEIVED`, keyed by function name, so a test in the
same process can check what the host passed in.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any

import azure.functions as func

WORK_QUEUE = "devhost-work"
FAILING_QUEUE = "devhost-failing"
RELAY_QUEUE = "devhost-relay"

RECEIVED: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
_lock = threading.Lock()


def record(function_name: str, **values: Any) -> None:
    with _lock:
        RECEIVED[function_name].append(values)


app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
queues = func.Blueprint()
web = func.Blueprint()


@web.route(route="enqueue/{id:int}", methods=["POST"])
@web.queue_output(arg_name="out", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode())
    body = json.dumps({"id": int(req.route_params["id"])})
    return func.HttpResponse(body, status_code=202, mimetype="application/json")


@web.route(route="enqueue-many", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@web.queue_output(arg_name="out", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
def enqueue_many(req: func.HttpRequest, out: func.Out[list[str]]) -> func.HttpResponse:
    out.set(req.get_json())
    return func.HttpResponse(status_code=204)


@web.route(route="items/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_id(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"item {req.route_params['id']}")


@web.route(route="files/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"file {req.route_params.get('path', '')}")


@web.route(route="files/readme", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def readme(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("readme", headers={"X-Served-By": "readme"})


@web.route(route="ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS, trigger_arg_name="request")
async def ping(request: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"name": context.function_name, "query": request.params.get("q")}),
                             mimetype="application/json")


@web.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@web.route(route="broken", auth_level=func.AuthLevel.ANONYMOUS)
def broken(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("broken on purpose")


@queues.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
def consume(msg: func.QueueMessage) -> None:
    record("consume", id=msg.id, body=msg.get_body().decode(), dequeue_count=msg.dequeue_count,
           insertion_time=msg.insertion_time)


@queues.queue_trigger(arg_name="msg", queue_name=FAILING_QUEUE, connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    record("always_fails", id=msg.id, dequeue_count=msg.dequeue_count)
    raise ValueError(f"failing on purpose, attempt {msg.dequeue_count}")


@queues.queue_trigger(arg_name="msg", queue_name=RELAY_QUEUE, connection="AzureWebJobsStorage")
@queues.queue_output(arg_name="$return", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
async def relay(msg: func.QueueMessage) -> str:
    return "relayed " + msg.get_body().decode()


@queues.timer_trigger(arg_name="timer", schedule="%DEVHOST_TICK_SCHEDULE%")
def tick(timer: func.TimerRequest) -> None:
    record("tick", past_due=timer.past_due)


app.register_functions(web)
app.register_functions(queues)
