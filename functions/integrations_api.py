"""`/api/integrations`: register, read, change, rotate, test and delete Azure DevOps integrations,
and read and replay their delivery log."""

from __future__ import annotations

import json

import azure.functions as func

from functions._deps import services
from functions._http import caller, handle_errors, json_response, parse_body, query_int
from shared.api_models import (
    ConnectionTestOut,
    DeliveryList,
    DeliveryOut,
    IntegrationCreate,
    IntegrationList,
    IntegrationUpdate,
    RotateSecretRequest,
)
from shared.errors import Conflict, ValidationFailed
from shared.services.access import AccessContext
from shared.storage.clients import storage_errors
from shared.storage.names import EVENT_QUEUES

bp = func.Blueprint()


def _context(req: func.HttpRequest) -> AccessContext:
    app = services()
    return AccessContext.load(caller(req, app.settings), app.spaces, app.settings.bootstrap_admins)


def _details_response(status: int, record_id: str, headers: dict[str, str] | None = None) -> func.HttpResponse:
    app = services()
    details = app.integrations.details(app.integration_records.get(record_id))
    response_headers = {"ETag": details.etag or "", **(headers or {})}
    return json_response(status, details, response_headers)


@bp.route(route="integrations", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def integrations(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    context = _context(req)
    if req.method == "GET":
        return json_response(200, IntegrationList(integrations=app.integrations.list_visible(context)))
    record = app.integrations.create(context, parse_body(req, IntegrationCreate))
    return _details_response(201, record.id, {"Location": f"/api/integrations/{record.id}"})


@bp.route(route="integrations/{id}", methods=["GET", "PATCH", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def integration(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    context = _context(req)
    integration_id = req.route_params["id"]
    if req.method == "GET":
        record = app.integrations.get_for_admin(context, integration_id, "view")
        return _details_response(200, record.id)
    if req.method == "PATCH":
        body = parse_body(req, IntegrationUpdate)
        record = app.integrations.update(context, integration_id, body, req.headers.get("if-match"))
        return _details_response(200, record.id)
    app.integrations.delete(context, integration_id)
    return func.HttpResponse(status_code=204)


@bp.route(route="integrations/{id}/rotate-secret", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def rotate_integration_secret(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    body = parse_body(req, RotateSecretRequest)
    record = app.integrations.rotate_secret(_context(req), req.route_params["id"], body)
    return _details_response(200, record.id)


@bp.route(route="integrations/{id}/test", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def test_integration(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    record = app.integrations.test(_context(req), req.route_params["id"])
    result = ConnectionTestOut(**(record.connection_test or {}))
    return json_response(200, {"integrationId": record.id,
                               "connectionTest": result.model_dump(mode="json", by_alias=True)})


@bp.route(route="integrations/{id}/deliveries", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def list_deliveries(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    record = app.integrations.get_for_admin(_context(req), req.route_params["id"], "view")
    page_size = query_int(req, "pageSize", 50, 1, 500)
    records, token = app.deliveries.list_page(record.id, page_size=page_size,
                                              continuation=req.params.get("continuationToken"))
    body = DeliveryList(deliveries=[DeliveryOut(**delivery.to_api()) for delivery in records],
                        next_continuation_token=token)
    return json_response(200, body)


@bp.route(route="integrations/{id}/deliveries/{delivery}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def get_delivery(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    record = app.integrations.get_for_admin(_context(req), req.route_params["id"], "view")
    delivery = app.deliveries.get(record.id, req.route_params["delivery"])
    return json_response(200, DeliveryOut(**delivery.to_api()))


@bp.route(route="integrations/{id}/deliveries/{delivery}/replay", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def replay_delivery(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    record = app.integrations.get_for_admin(_context(req), req.route_params["id"], "replay deliveries of")
    delivery = app.deliveries.get(record.id, req.route_params["delivery"])
    queue_name = EVENT_QUEUES.get(delivery.event_type)
    if queue_name is None:
        raise ValidationFailed(f"Delivery {delivery.delivery_id} is a {delivery.event_type!r} event, which stackhook "
                               "does not process; there is nothing to replay.", status=409, code="not_replayable")
    try:
        body = app.deliveries.body(record.id, delivery.delivery_id)
    except (OSError, EOFError) as error:
        raise Conflict(f"The stored body of delivery {delivery.delivery_id} cannot be read ({error}), so it cannot "
                       "be replayed.", code="body_unreadable") from error
    if body is None:
        raise Conflict(f"The body of delivery {delivery.delivery_id} is no longer kept (bodies are kept for "
                       f"{app.settings.delivery_body_retention_hours} hours), so it cannot be replayed.",
                       code="body_expired")
    with storage_errors("Queue Storage"):
        app.storage.queue(queue_name).send_message(
            json.dumps({"integrationId": record.id, "deliveryId": delivery.delivery_id, "replay": True}))
    app.deliveries.update_outcome(record.id, delivery.delivery_id, outcome="queued",
                                  reason=f"Replayed by {_context(req).actor}; waiting for processing.")
    return json_response(202, {"status": "queued", "deliveryId": delivery.delivery_id,
                               "message": f"Delivery {delivery.delivery_id} was queued again."})
