"""`/api/runs`: the runs of a stack or module, newest first, and one run, for callers with read on
the stack's space. Status links posted to Azure DevOps point here."""

from __future__ import annotations

from typing import Any

import azure.functions as func
from pydantic import Field

from functions._deps import services
from functions._http import caller, handle_errors, json_response, query_int
from shared.api_models import ApiModel
from shared.services.access import AccessContext

bp = func.Blueprint()


class StatusPostOut(ApiModel):
    state: str | None
    outcome: str = Field(description="pending, retrying, posted, failed or skipped.")
    attempts: int
    commit_status_posted: bool
    pull_request_status: str | None = Field(description="posted, skipped, or null for runs without a pull request.")
    note: str | None
    last_error: dict[str, Any] | None = Field(description="The last failed post: kind, message and time.")
    posted_at: str | None


class RunOut(ApiModel):
    id: str
    stack_kind: str
    stack_id: str
    run_type: str
    state: str
    commit: str
    branch: str | None
    pull_request_id: int | None
    iteration_id: int | None
    trigger: str
    triggered_by: str | None
    integration_id: str
    project_id: str
    repository_id: str
    message: str | None
    created_at: str
    updated_at: str
    status_post: StatusPostOut
    merge_status: str | None
    rejected_updates: list[dict[str, Any]]
    module_version: dict[str, Any] | None
    dispatched_at: str | None


class RunList(ApiModel):
    runs: list[RunOut]
    next_continuation_token: str | None


def _context(req: func.HttpRequest) -> AccessContext:
    app = services()
    return AccessContext.load(caller(req, app.settings), app.spaces, app.settings.bootstrap_admins)


@bp.route(route="runs/{kind}/{stackId}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    page_size = query_int(req, "pageSize", 20, 1, 200)
    runs, token = services().runs.list_runs(_context(req), req.route_params["kind"], req.route_params["stackId"],
                                            page_size=page_size, continuation=req.params.get("continuationToken"))
    body = RunList(runs=[RunOut.model_validate(run.to_api()) for run in runs], next_continuation_token=token)
    return json_response(200, body)


@bp.route(route="runs/{kind}/{stackId}/{runId}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@handle_errors
def get_run(req: func.HttpRequest) -> func.HttpResponse:
    run = services().runs.get_run(_context(req), req.route_params["kind"], req.route_params["stackId"],
                                  req.route_params["runId"])
    return json_response(200, RunOut.model_validate(run.to_api()))
