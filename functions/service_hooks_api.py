"""`/api/integrations/{id}/service-hooks`: install, list and remove the Azure DevOps service-hook
subscriptions of an integration. Each needs the admin role that managing the integration needs."""

from __future__ import annotations

import azure.functions as func

from functions._deps import services
from functions._http import caller, handle_errors, json_response, parse_body
from shared.services.access import AccessContext
from shared.services.service_hooks import ServiceHookInstall

bp = func.Blueprint()


def _context(req: func.HttpRequest) -> AccessContext:
    app = services()
    return AccessContext.load(caller(req, app.settings), app.spaces, app.settings.bootstrap_admins)


@bp.route(route="integrations/{id}/service-hooks", methods=["GET", "POST", "DELETE"],
          auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def service_hooks(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    context = _context(req)
    integration_id = req.route_params["id"]
    project = (req.params.get("project") or "").strip() or None
    if req.method == "GET":
        record = app.integrations.get_for_admin(context, integration_id, "view")
        return json_response(200, app.service_hooks.list_subscriptions(record, project))
    if req.method == "POST":
        body = parse_body(req, ServiceHookInstall)
        record = app.integrations.get_for_admin(context, integration_id, "install service hooks for")
        return json_response(200, app.service_hooks.install(record, body, context.actor))
    record = app.integrations.get_for_admin(context, integration_id, "remove service hooks of")
    return json_response(200, app.service_hooks.remove(record, project, context.actor))


@bp.route(route="integrations/{id}/service-hooks/check", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def check_service_hooks(req: func.HttpRequest) -> func.HttpResponse:
    """Run the subscription check the timer runs, now, for one integration, and return its warnings."""
    app = services()
    record = app.integrations.get_for_admin(_context(req), req.route_params["id"], "check service hooks of")
    summary = app.service_hooks.watch(record)
    warnings = [warning for warning in app.integration_records.get(record.id).warnings
                if str(warning.get("code", "")).startswith("service_hook_")]
    return json_response(200, {"integrationId": record.id, "warnings": warnings,
                               "reenabled": summary.reenabled, "secretsRefreshed": summary.secrets_refreshed})
