"""`/api/stacks` and `/api/modules`: register, list, read, change and delete stacks and modules.

Both collections share one service; the route decides the kind and the request and response
models. Reading needs the read role on the stack's space; writing needs the write role.
"""

from __future__ import annotations

import azure.functions as func

from functions._deps import services
from functions._http import caller, handle_errors, json_response, parse_body
from shared.services.access import AccessContext
from shared.stack_models import (
    ModuleCreate,
    ModuleList,
    ModuleOut,
    ModuleUpdate,
    StackCreate,
    StackList,
    StackUpdate,
)
from shared.storage.stacks import StackRecord

bp = func.Blueprint()

_COLLECTIONS = {"stack": "stacks", "module": "modules"}


def _context(req: func.HttpRequest) -> AccessContext:
    app = services()
    return AccessContext.load(caller(req, app.settings), app.spaces, app.settings.bootstrap_admins)


def _record_response(status: int, record: StackRecord, headers: dict[str, str] | None = None) -> func.HttpResponse:
    body = services().stacks.to_api(record)
    return json_response(status, body, {"ETag": record.etag or "", **(headers or {})})


def _collection(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    app = services()
    context = _context(req)
    if req.method == "GET":
        records = app.stacks.list_visible(context, kind)
        bodies = [app.stacks.to_api(record) for record in records]
        if kind == "module":
            return json_response(200, ModuleList(modules=[body for body in bodies if isinstance(body, ModuleOut)]))
        return json_response(200, StackList(stacks=bodies))
    body = parse_body(req, ModuleCreate if kind == "module" else StackCreate)
    record = app.stacks.create(context, kind, body)
    return _record_response(201, record, {"Location": f"/api/{_COLLECTIONS[kind]}/{record.id}"})


def _item(req: func.HttpRequest, kind: str) -> func.HttpResponse:
    app = services()
    context = _context(req)
    stack_id = req.route_params["id"]
    if req.method == "GET":
        return _record_response(200, app.stacks.get(context, kind, stack_id))
    if req.method == "PATCH":
        body = parse_body(req, ModuleUpdate if kind == "module" else StackUpdate)
        record = app.stacks.update(context, kind, stack_id, body, req.headers.get("if-match"))
        return _record_response(200, record)
    app.stacks.delete(context, kind, stack_id, req.headers.get("if-match"))
    return func.HttpResponse(status_code=204)


@bp.route(route="stacks", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def stacks(req: func.HttpRequest) -> func.HttpResponse:
    return _collection(req, "stack")


@bp.route(route="stacks/{id}", methods=["GET", "PATCH", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def stack(req: func.HttpRequest) -> func.HttpResponse:
    return _item(req, "stack")


@bp.route(route="modules", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def modules(req: func.HttpRequest) -> func.HttpResponse:
    return _collection(req, "module")


@bp.route(route="modules/{id}", methods=["GET", "PATCH", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def module(req: func.HttpRequest) -> func.HttpResponse:
    return _item(req, "module")
