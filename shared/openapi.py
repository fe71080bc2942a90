"""The OpenAPI 3.1 document of the HTTP API, generated from the pydantic models in `api_models`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import api_models as m
from shared import stack_models as stacks
from shared.routes import HEALTH_ROUTE, ROUTE_PREFIX, WEBHOOK_ROUTE
from shared.services import service_hooks as hooks
from shared.settings import APP_VERSION


@dataclass(frozen=True)
class Operation:
    """One method on one path, with its bodies and the statuses it can return."""

    method: str
    path: str
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    request: type[BaseModel] | None = None
    errors: tuple[int, ...] = (401, 403, 404)
    tag: str = "integrations"
    parameters: tuple[str, ...] = ()
    security: bool = True


OPERATIONS: tuple[Operation, ...] = (
    Operation("get", HEALTH_ROUTE, "Version and dependency health", m.HealthOut, errors=(503,), tag="health",
              security=False),
    Operation("get", "spaces", "List the spaces you can read", m.SpaceList, errors=(401,), tag="spaces"),
    Operation("post", "spaces", "Create a space (admin of the parent)", m.SpaceOut, 201, m.SpaceCreate,
              (401, 403, 404, 409, 422), tag="spaces"),
    Operation("get", "spaces/{id}", "Read a space", m.SpaceOut, tag="spaces"),
    Operation("delete", "spaces/{id}", "Delete an empty space (admin of the parent)", None, 204,
              errors=(401, 403, 404, 409), tag="spaces"),
    Operation("get", "spaces/{id}/roles", "List role bindings (admin)", m.RoleBindingList, tag="spaces"),
    Operation("post", "spaces/{id}/roles", "Grant a role (admin)", m.RoleBindingOut, 200, m.RoleGrant,
              (401, 403, 404, 422), tag="spaces"),
    Operation("delete", "spaces/{id}/roles/{subject}", "Revoke a role (admin)", None, 204, tag="spaces"),
    Operation("get", "integrations", "List the integrations you can see (no secrets)", m.IntegrationList,
              errors=(401,)),
    Operation("post", "integrations", "Register an integration", m.IntegrationDetails, 201, m.IntegrationCreate,
              (401, 403, 404, 409, 422, 503)),
    Operation("get", "integrations/{id}", "Read details, including the webhook secret (admin)",
              m.IntegrationDetails),
    Operation("patch", "integrations/{id}", "Change an integration; If-Match makes it conditional",
              m.IntegrationDetails, 200, m.IntegrationUpdate, (401, 403, 404, 412, 422, 503),
              parameters=("If-Match",)),
    Operation("delete", "integrations/{id}", "Delete an integration and soft-delete its secrets", None, 204),
    Operation("post", "integrations/{id}/rotate-secret", "Issue a new webhook secret", m.IntegrationDetails, 200,
              m.RotateSecretRequest, (401, 403, 404, 422, 503)),
    Operation("post", "integrations/{id}/test", "Test the connection to Azure DevOps", None),
    Operation("get", "integrations/{id}/deliveries", "Latest deliveries, newest first", m.DeliveryList,
              parameters=("pageSize", "continuationToken")),
    Operation("get", "integrations/{id}/deliveries/{delivery}", "One delivery", m.DeliveryOut),
    Operation("post", "integrations/{id}/deliveries/{delivery}/replay", "Queue a stored delivery again", None, 202,
              errors=(401, 403, 404, 409)),
    Operation("get", "integrations/{id}/service-hooks", "Subscriptions pointing at the integration, with "
              "their Azure DevOps status and last delivery (admin)", hooks.ServiceHookListOut,
              errors=(401, 403, 404, 502, 503), parameters=("project",)),
    Operation("post", "integrations/{id}/service-hooks", "Install the five Web Hooks subscriptions in a "
              "project (idempotent)", hooks.ServiceHookInstallOut, 200, hooks.ServiceHookInstall,
              (401, 403, 404, 409, 422, 502, 503)),
    Operation("delete", "integrations/{id}/service-hooks", "Remove the subscriptions stackhook installed",
              hooks.ServiceHookRemovalOut, errors=(401, 403, 404, 502, 503), parameters=("project",)),
    Operation("post", "integrations/{id}/service-hooks/check", "Check the installed subscriptions now and "
              "return the integration's service-hook warnings (admin)", None, errors=(401, 403, 404, 503)),
    Operation("get", "stacks", "List the stacks you can read", stacks.StackList, errors=(401,), tag="stacks"),
    Operation("post", "stacks", "Create a stack (write on its space)", stacks.StackOut, 201, stacks.StackCreate,
              (401, 403, 404, 409, 422, 503), tag="stacks"),
    Operation("get", "stacks/{id}", "Read a stack", stacks.StackOut, tag="stacks"),
    Operation("patch", "stacks/{id}", "Change a stack; If-Match makes it conditional", stacks.StackOut, 200,
              stacks.StackUpdate, (401, 403, 404, 412, 422, 503), tag="stacks", parameters=("If-Match",)),
    Operation("delete", "stacks/{id}", "Delete a stack", None, 204, errors=(401, 403, 404, 412), tag="stacks",
              parameters=("If-Match",)),
    Operation("get", "modules", "List the modules you can read", stacks.ModuleList, errors=(401,), tag="stacks"),
    Operation("post", "modules", "Create a module (write on its space)", stacks.ModuleOut, 201,
              stacks.ModuleCreate, (401, 403, 404, 409, 422, 503), tag="stacks"),
    Operation("get", "modules/{id}", "Read a module", stacks.ModuleOut, tag="stacks"),
    Operation("patch", "modules/{id}", "Change a module; If-Match makes it conditional", stacks.ModuleOut, 200,
              stacks.ModuleUpdate, (401, 403, 404, 412, 422, 503), tag="stacks", parameters=("If-Match",)),
    Operation("delete", "modules/{id}", "Delete a module", None, 204, errors=(401, 403, 404, 412), tag="stacks",
              parameters=("If-Match",)),
    Operation("get", "runs/{kind}/{stackId}", "Runs of a stack or module, newest first", None, tag="runs",
              parameters=("pageSize", "continuationToken")),
    Operation("get", "runs/{kind}/{stackId}/{runId}", "One run, with its status posts", None, tag="runs"),
    Operation("post", WEBHOOK_ROUTE, "Receive an Azure DevOps service-hook delivery (Basic auth: webhook secret)",
              m.WebhookAnswer, 202, None, (400, 401, 404, 413, 415, 503), tag="webhooks", security=False),
)

_QUERY = {"pageSize", "continuationToken", "project"}


def build_openapi() -> dict[str, Any]:
    """Return the OpenAPI document as a JSON-able dict."""
    models: set[type[BaseModel]] = {m.ErrorBody}
    for operation in OPERATIONS:
        models.update(model for model in (operation.request, operation.response) if model is not None)
    _, definitions = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda model: model.__name__)],
        ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        path = f"/{ROUTE_PREFIX}/{operation.path}"
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in _path_names(operation.path)]
        for name in operation.parameters:
            location = "query" if name in _QUERY else "header"
            parameters.append({"name": name, "in": location, "required": False, "schema": {"type": "string"}})
        responses: dict[str, Any] = {}
        if operation.response is None:
            responses[str(operation.status)] = {"description": "Success."}
        else:
            schema = {"$ref": f"#/components/schemas/{operation.response.__name__}"}
            responses[str(operation.status)] = {"description": "Success.",
                                                "content": {"application/json": {"schema": schema}}}
        for status in operation.errors:
            responses[str(status)] = {"description": "Error.", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        entry: dict[str, Any] = {"summary": operation.summary, "tags": [operation.tag],
                                 "parameters": parameters, "responses": responses}
        if operation.request is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{operation.request.__name__}"}}}}
        if not operation.security:
            entry["security"] = []
        paths.setdefault(path, {})[operation.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "stackhook", "version": APP_VERSION,
                 "description": "Azure DevOps as a source-code provider for infrastructure stacks and modules."},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"appServiceAuthentication": {
                "type": "apiKey", "in": "header", "name": "X-MS-CLIENT-PRINCIPAL",
                "description": "Set by App Service Authentication (Microsoft Entra ID) in front of the app."}},
        },
        "security": [{"appServiceAuthentication": []}],
    }


def _path_names(path: str) -> list[str]:
    return [segment[1:-1].split(":")[0] for segment in path.split("/") if segment.startswith("{")]
