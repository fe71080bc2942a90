"""Request and response bodies of the management API (JSON, camelCase fields).

These pydantic models are the edge of the API: requests are validated by them, and the OpenAPI
document at `/api/openapi.json` is generated from them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of the API bodies: camelCase on the wire, unknown fields rejected in requests."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ErrorDetail(ApiModel):
    code: str = Field(description="Machine-readable error code, such as `invalid` or `not_found`.")
    message: str = Field(description="What was wrong and what to do about it.")
    field: str | None = Field(default=None, description="The request field or JSON path at fault, if any.")


class ErrorBody(ApiModel):
    error: ErrorDetail


# Spaces and roles

class SpaceCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    id: str | None = Field(default=None, description="Defaults to an id derived from the name.")
    parent_id: str = Field(default="root", description="The parent space; `root` by default.")
    description: str = Field(default="", max_length=4000)


class SpaceOut(ApiModel):
    id: str
    name: str
    parent_id: str | None
    description: str
    your_role: Literal["read", "write", "admin"] | None = Field(
        default=None, description="The caller's effective role on this space.")


class SpaceList(ApiModel):
    spaces: list[SpaceOut]


class RoleGrant(ApiModel):
    subject: str = Field(min_length=1, max_length=256, description=(
        "An Entra object id, a user principal name or email, or a group object id."))
    role: Literal["read", "write", "admin"]


class RoleBindingOut(ApiModel):
    space_id: str
    subject: str
    role: Literal["read", "write", "admin"]


class RoleBindingList(ApiModel):
    bindings: list[RoleBindingOut]


# Integrations

class IntegrationCreate(ApiModel):
    name: str = Field(description="Unique in the account and immutable; the webhook endpoint is derived from it.")
    is_default: bool = Field(default=False, description="A default integration is usable in every space; "
                                                        "at most one per account.")
    space_id: str | None = Field(default=None, description="Required for a space-specific integration; "
                                                           "`root` (or omitted) for the default one.")
    organization_url: str = Field(description="https://dev.azure.com/{org}, https://{org}.visualstudio.com, "
                                              "or an Azure DevOps Server collection URL.")
    user_facing_host_url: str | None = Field(default=None, description="Defaults to the organization URL; "
                                             "or private://<vcs-agent-pool>/<path>.")
    personal_access_token: SecretStr = Field(description="Write-only. Needs the Code (Read & write) scope.")
    labels: list[str] = Field(default_factory=list)
    description: str = Field(default="")


class IntegrationUpdate(ApiModel):
    name: str | None = Field(default=None, description="Cannot change; accepted only if equal to the current name.")
    is_default: bool | None = Field(default=None, description="Cannot change.")
    space_id: str | None = Field(default=None, description="Cannot change.")
    organization_url: str | None = None
    user_facing_host_url: str | None = None
    personal_access_token: SecretStr | None = Field(default=None, description="Write-only; replaces the token.")
    labels: list[str] | None = None
    description: str | None = None


class RotateSecretRequest(ApiModel):
    grace_period_minutes: int = Field(default=0, ge=0, le=7 * 24 * 60, description=(
        "How long the previous secret stays valid for webhook authentication (0 to 10080 minutes)."))


class ConnectionTestOut(ApiModel):
    ok: bool
    kind: str
    message: str
    identity_id: str | None = None
    identity_name: str | None = None
    retry_after: float | None = None
    api_version: str | None = Field(default=None, description="The Azure DevOps REST API version the test used.")
    tested_at: str | None = None


class IntegrationSummary(ApiModel):
    id: str
    name: str
    is_default: bool
    space_id: str
    labels: list[str]
    description: str
    created_at: str
    updated_at: str
    connection_status: str | None = Field(default=None, description="`ok`, a failure kind, or null if not tested.")


class IntegrationDetails(IntegrationSummary):
    organization_url: str
    user_facing_host_url: str
    webhook_endpoint: str
    webhook_secret: str
    previous_secret_valid_until: str | None = None
    connection_test: ConnectionTestOut | None = None
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    etag: str | None = None


class IntegrationList(ApiModel):
    integrations: list[IntegrationSummary]


class DeliveryOut(ApiModel):
    id: str
    integration_id: str
    event_type: str
    subscription_id: str | None
    notification_id: int | None
    event_id: str | None
    publisher_id: str
    resource_version: str | None
    received_at: str
    outcome: str
    reason: str
    classification: dict[str, Any] | None
    processed_at: str | None
    attempts: int
    body_kept: bool
    body_expires_at: str | None
    duplicate_of: str | None


class DeliveryList(ApiModel):
    deliveries: list[DeliveryOut]
    next_continuation_token: str | None


class WebhookAnswer(ApiModel):
    status: Literal["queued", "ignored", "misconfigured", "duplicate"]
    message: str
    delivery_id: str | None = None
    event_type: str | None = None


class HealthCheck(ApiModel):
    ok: bool
    milliseconds: float
    error: str | None = None


class HealthOut(ApiModel):
    status: Literal["ok", "degraded"]
    version: str
    checks: dict[str, HealthCheck]
    warnings: dict[str, int] = Field(default_factory=dict, description=(
        "Integration warnings by code, such as service-hook subscriptions on probation or disabled; "
        "the details are on each integration."))
