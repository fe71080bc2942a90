"""`POST /api/webhooks/azure-devops/{integration}`: receive a service-hook delivery and queue it."""

from __future__ import annotations

import azure.functions as func

from functions._deps import services
from functions._http import handle_errors, json_response
from shared.routes import WEBHOOK_ROUTE

bp = func.Blueprint()


@bp.route(route=WEBHOOK_ROUTE, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def azure_devops_webhook(req: func.HttpRequest) -> func.HttpResponse:
    answer = services().ingestion.accept(req.route_params["integration"], req.headers, req.get_body() or b"")
    return json_response(answer.status, answer.body, answer.headers)
