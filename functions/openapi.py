"""`GET /api/openapi.json`: the OpenAPI 3.1 document of the whole API."""

from __future__ import annotations

import azure.functions as func

from functions._http import json_response
from shared.openapi import build_openapi

bp = func.Blueprint()


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(200, build_openapi())
