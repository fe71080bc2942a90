"""`/api/spaces`: the space tree and the roles bound on each space."""

from __future__ import annotations

import azure.functions as func

from functions._deps import services
from functions._http import caller, handle_errors, json_response, parse_body
from shared.api_models import RoleBindingList, RoleGrant, SpaceCreate, SpaceList
from shared.services.access import AccessContext
from shared.services.spaces import SpaceService

bp = func.Blueprint()


def _setup(req: func.HttpRequest) -> tuple[SpaceService, AccessContext]:
    app = services()
    context = AccessContext.load(caller(req, app.settings), app.spaces, app.settings.bootstrap_admins)
    return SpaceService(app.spaces, app.integration_records, app.stacks.repository), context


@bp.route(route="spaces", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def spaces(req: func.HttpRequest) -> func.HttpResponse:
    service, context = _setup(req)
    if req.method == "GET":
        return json_response(200, SpaceList(spaces=service.list_visible(context)))
    created = service.create(context, parse_body(req, SpaceCreate))
    return json_response(201, created, {"Location": f"/api/spaces/{created.id}"})


@bp.route(route="spaces/{id}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def space(req: func.HttpRequest) -> func.HttpResponse:
    service, context = _setup(req)
    space_id = req.route_params["id"]
    if req.method == "GET":
        return json_response(200, service.get(context, space_id))
    service.delete(context, space_id)
    return func.HttpResponse(status_code=204)


@bp.route(route="spaces/{id}/roles", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def space_roles(req: func.HttpRequest) -> func.HttpResponse:
    service, context = _setup(req)
    space_id = req.route_params["id"]
    if req.method == "GET":
        return json_response(200, RoleBindingList(bindings=service.list_bindings(context, space_id)))
    return json_response(200, service.grant(context, space_id, parse_body(req, RoleGrant)))


@bp.route(route="spaces/{id}/roles/{subject}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def space_role(req: func.HttpRequest) -> func.HttpResponse:
    service, context = _setup(req)
    service.revoke(context, req.route_params["id"], req.route_params["subject"])
    return func.HttpResponse(status_code=204)
