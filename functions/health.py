"""`GET /api/health`: the app version, and for each dependency whether it responded and how fast."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import azure.functions as func

from functions._deps import services
from functions._http import json_response
from shared.api_models import HealthCheck, HealthOut
from shared.errors import StackhookError
from shared.routes import HEALTH_ROUTE
from shared.settings import APP_VERSION

bp = func.Blueprint()


def _timed(check: Callable[[], None]) -> HealthCheck:
    started = time.perf_counter()
    try:
        check()
    except StackhookError as error:
        # Only the error's type and dependency: messages of storage errors can carry endpoints.
        return HealthCheck(ok=False, milliseconds=round((time.perf_counter() - started) * 1000, 1),
                           error=str(error).split(":", 1)[0])
    return HealthCheck(ok=True, milliseconds=round((time.perf_counter() - started) * 1000, 1))


def _warning_counts() -> dict[str, int]:
    """Count the integrations' warnings by code; the details are on each integration (admins only)."""
    counts: Counter[str] = Counter()
    try:
        for warning in services().service_hooks.warnings():
            counts[str(warning.get("code", "unknown"))] += 1
    except StackhookError:
        return {}
    return dict(counts)


@bp.route(route=HEALTH_ROUTE, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    app = services()
    checks = {
        "tables": _timed(app.storage.ping_tables),
        "queues": _timed(app.storage.ping_queues),
        "keyVault": _timed(app.secrets.ping),
    }
    healthy = all(check.ok for check in checks.values())
    body = HealthOut(status="ok" if healthy else "degraded", version=APP_VERSION, checks=checks,
                     warnings=_warning_counts() if checks["tables"].ok else {})
    return json_response(200 if healthy else 503, body)
