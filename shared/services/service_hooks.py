"""Installing and watching the Azure DevOps service-hook subscriptions of an integration.

stackhook needs five Web Hooks subscriptions per project: Code pushed, Pull request created, Pull
request merge attempted, Pull request updated and Pull request commented on. `install` creates
them, or updates the ones that already point at the integration's webhook endpoint, and records
them in the `ServiceHooks` table. The watcher (`watch_all`) checks their status, stores warnings
on the integration and, when `STACKHOOK_SERVICE_HOOK_REENABLE` is on, re-enables subscriptions that
Azure DevOps disabled while the deliveries stackhook received for them succeeded.

Azure DevOps masks confidential consumer inputs such as `basicAuthPassword` in its responses, so
the password of a subscription cannot be compared. Each recorded subscription keeps the Key Vault
version of the webhook secret it was installed with instead; a subscription whose version is not
the integration's current one (or is not recorded) gets the current secret with a PUT.

Failures of Azure DevOps become request errors:
    401 / 403 on a subscription call      403 azure_devops_permission_missing (the PAT's user needs
                                          the Edit subscriptions permission in the project)
    401 on reading the project            409 azure_devops_token_rejected
    403 on reading the project            403 azure_devops_forbidden
    404 project or repository             404 azure_devops_project_not_found / _repository_not_found
    unreachable / throttled               503 azure_devops_unreachable / azure_devops_throttled
    5xx, a bad answer, other rejections   502 azure_devops_failed / azure_devops_rejected
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.ado.client import AzureDevOpsClient
from shared.core.naming import webhook_endpoint
from shared.errors import (
    AzureDevOpsError,
    Conflict,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RequestError,
    StackhookError,
)
from shared.secrets import SecretStore
from shared.settings import Settings
from shared.storage.integrations import IntegrationRecord, IntegrationRepository
from shared.storage.names import pat_secret_name, webhook_secret_name
from shared.storage.service_hooks import InstalledSubscription, ReceivedDelivery, ServiceHookRepository

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]
ClientFactory = Callable[[str, str], AzureDevOpsClient]

PUBLISHER_ID = "tfs"
CONSUMER_ID = "webHooks"
CONSUMER_ACTION_ID = "httpRequest"
COMMENT_EVENT = "ms.vss-code.git-pullrequest-comment-event"
# Event type -> resource version. The comment event needs 2.0 to carry the pull request.
RESOURCE_VERSIONS: dict[str, str] = {
    "git.push": "1.0",
    "git.pullrequest.created": "1.0",
    "git.pullrequest.merged": "1.0",
    "git.pullrequest.updated": "1.0",
    COMMENT_EVENT: "2.0",
}
CONSUMER_SETTINGS: dict[str, str] = {"resourceDetailsToSend": "all", "messagesToSend": "none",
                                     "detailedMessagesToSend": "none"}
PASSWORD_INPUT = "basicAuthPassword"  # noqa: S105 - the name of the input, not a password
# Publisher inputs that Azure DevOps adds to every subscription it stores.
_SERVER_INPUTS = frozenset({"hostId", "tfsSubscriptionId"})
# Consumer inputs whose value equals leaving them out.
_INPUT_DEFAULTS: dict[str, str] = {"acceptUntrustedCerts": "false"}
DISABLED_STATUSES = frozenset({"disabledBySystem", "disabledByUser", "disabledByInactiveIdentity"})
MISSING = "missing"
WARNING_PREFIX = "service_hook_"
# Delivery outcomes that mean stackhook could not handle what Azure DevOps sent.
FAILED_OUTCOMES = frozenset({"failed"})
# How many of a subscription's newest deliveries must all have succeeded before a re-enable.
REENABLE_EVIDENCE = 3
_UPDATE_ATTEMPTS = 5


# API bodies ---------------------------------------------------------------------------------------

class _ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ServiceHookInstall(_ApiModel):
    project: str = Field(min_length=1, max_length=256, description="Project name or id.")
    repository: str | None = Field(default=None, min_length=1, max_length=256, description=(
        "Repository name or id. Without it the subscriptions cover every repository of the project."))


class SubscriptionChange(_ApiModel):
    subscription_id: str
    event_type: str
    resource_version: str
    repository_id: str | None = None
    changes: list[str] = Field(default_factory=list, description=(
        "What an update changed. Empty for created and unchanged ones."))


class ServiceHookInstallOut(_ApiModel):
    integration_id: str
    endpoint: str
    project_id: str
    project_name: str
    repository_id: str | None = None
    repository_name: str | None = None
    created: list[SubscriptionChange]
    updated: list[SubscriptionChange]
    unchanged: list[SubscriptionChange]
    duplicates: list[str] = Field(default_factory=list, description=(
        "Further subscriptions to this endpoint for the same event and repository; left alone, and "
        "Azure DevOps delivers each event once per subscription."))


class ServiceHookRemovalOut(_ApiModel):
    integration_id: str
    removed: list[str]
    already_gone: list[str]
    failed: list[str] = Field(default_factory=list)


class LastDelivery(_ApiModel):
    received_at: str
    outcome: str
    reason: str


class ServiceHookOut(_ApiModel):
    subscription_id: str
    event_type: str
    resource_version: str | None
    project_id: str
    project_name: str | None
    repository_id: str | None
    status: str = Field(description="Azure DevOps status (`enabled`, `onProbation`, `disabledBySystem`, "
                                    "`disabledByUser`, `disabledByInactiveIdentity`), or `missing`.")
    installed_by_stackhook: bool
    secret_current: bool | None = Field(description="Whether the installed secret is the current one. Null when "
                                                    "stackhook did not install the subscription.")
    installed_at: str | None
    last_delivery: LastDelivery | None


class ServiceHookListOut(_ApiModel):
    integration_id: str
    endpoint: str
    subscriptions: list[ServiceHookOut]
    warnings: list[dict[str, Any]]


# Pure decisions -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DesiredSubscription:
    """The subscription stackhook wants for one event type in one project (and repository)."""

    event_type: str
    resource_version: str
    project_id: str
    repository_id: str | None
    url: str

    @property
    def scope(self) -> tuple[str, str]:
        return self.event_type, (self.repository_id or "").lower()

    def publisher_inputs(self) -> dict[str, str]:
        inputs = {"projectId": self.project_id}
        if self.repository_id:
            inputs["repository"] = self.repository_id
        return inputs

    def body(self, password: str, status: str | None = None) -> JsonObject:
        """Build the request body of a create or replace call.

        `basicAuthUsername` is left out because Azure DevOps rejects an empty one.
        """
        body: JsonObject = {
            "publisherId": PUBLISHER_ID, "eventType": self.event_type, "resourceVersion": self.resource_version,
            "consumerId": CONSUMER_ID, "consumerActionId": CONSUMER_ACTION_ID,
            "publisherInputs": self.publisher_inputs(),
            "consumerInputs": {"url": self.url, PASSWORD_INPUT: password, **CONSUMER_SETTINGS},
        }
        if status is not None:
            body["status"] = status
        return body


def desired_subscriptions(project_id: str, repository_id: str | None, url: str) -> list[DesiredSubscription]:
    return [DesiredSubscription(event_type, version, project_id, repository_id, url)
            for event_type, version in RESOURCE_VERSIONS.items()]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _inputs(subscription: Mapping[str, Any], name: str) -> dict[str, str]:
    raw = subscription.get(name)
    if not isinstance(raw, dict):
        return {}
    return {str(key): str(value) for key, value in raw.items() if value not in (None, "")}


def points_at(subscription: Mapping[str, Any], url: str) -> bool:
    """Tell whether `subscription` is a Web Hooks subscription that delivers to `url`."""
    if subscription.get("consumerId") != CONSUMER_ID or subscription.get("consumerActionId") != CONSUMER_ACTION_ID:
        return False
    target = _inputs(subscription, "consumerInputs").get("url", "")
    return target.rstrip("/").casefold() == url.rstrip("/").casefold()


def scope_of(subscription: Mapping[str, Any]) -> tuple[str, str]:
    return _text(subscription.get("eventType")), _inputs(subscription, "publisherInputs").get("repository", "").lower()


def differences(desired: DesiredSubscription, existing: Mapping[str, Any], *, secret_current: bool) -> list[str]:
    """List what differs between `existing` and `desired`. An empty list means nothing to update.

    GUIDs compare case-insensitively, inputs that Azure DevOps adds are ignored, and the masked
    password is judged by `secret_current` alone.
    """
    changes: list[str] = []
    version = _text(existing.get("resourceVersion"))
    if version != desired.resource_version:
        changes.append(f"resourceVersion {version or '(none)'} -> {desired.resource_version}")
    if existing.get("publisherId") != PUBLISHER_ID:
        changes.append(f"publisherId {existing.get('publisherId')} -> {PUBLISHER_ID}")

    have = {key: value for key, value in _inputs(existing, "publisherInputs").items() if key not in _SERVER_INPUTS}
    want = desired.publisher_inputs()
    for key in sorted(set(have) | set(want)):
        if have.get(key, "").lower() != want.get(key, "").lower():
            changes.append(f"publisher input {key} {have.get(key) or '(none)'} -> {want.get(key) or '(none)'}")

    have_consumer = {key: value for key, value in _inputs(existing, "consumerInputs").items()
                     if key != PASSWORD_INPUT and _INPUT_DEFAULTS.get(key) != value}
    want_consumer = {"url": desired.url, **CONSUMER_SETTINGS}
    for key in sorted(set(have_consumer) | set(want_consumer)):
        if key == "url":
            continue  # `points_at` already matched it, ignoring case and a trailing slash
        if have_consumer.get(key) != want_consumer.get(key):
            # The value of an unknown consumer input may be a credential, so only its name is shown.
            expected_value = want_consumer.get(key) or "(none)"
            changes.append(f"consumer input {key} -> {expected_value}")

    if PASSWORD_INPUT not in _inputs(existing, "consumerInputs"):
        changes.append("password was missing")
    elif not secret_current:
        changes.append("webhook secret was stale or unknown")
    status = _text(existing.get("status"))
    if status in DISABLED_STATUSES:
        changes.append(f"status {status} -> enabled")
    return changes


@dataclass(frozen=True)
class PlannedChange:
    desired: DesiredSubscription
    subscription_id: str | None
    changes: tuple[str, ...] = ()
    status: str | None = None


@dataclass(frozen=True)
class InstallPlan:
    create: tuple[PlannedChange, ...]
    update: tuple[PlannedChange, ...]
    unchanged: tuple[PlannedChange, ...]
    duplicates: tuple[str, ...]


def plan_install(desired: Iterable[DesiredSubscription], existing: Iterable[Mapping[str, Any]],
                 recorded_versions: Mapping[str, str | None], current_secret_version: str | None) -> InstallPlan:
    """Decide which desired subscriptions to create, update or leave unchanged.

    Only subscriptions of `existing` that deliver to the desired URL take part. For each event type and
    repository one of them is matched, and one that stackhook recorded comes first. `recorded_versions`
    maps a recorded subscription id (lowercase) to the secret version it was installed with.
    """
    expected = list(desired)
    url = expected[0].url if expected else ""
    candidates: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for subscription in existing:
        if points_at(subscription, url):
            candidates[scope_of(subscription)].append(subscription)

    create: list[PlannedChange] = []
    update: list[PlannedChange] = []
    unchanged: list[PlannedChange] = []
    duplicates: list[str] = []
    for item in expected:
        matches = sorted(candidates.get(item.scope, []),
                         key=lambda found: (_text(found.get("id")).lower() not in recorded_versions,
                                            _text(found.get("id")).lower()))
        if not matches:
            create.append(PlannedChange(item, None))
            continue
        chosen, extra = matches[0], matches[1:]
        duplicates.extend(_text(subscription.get("id")) for subscription in extra)
        subscription_id = _text(chosen.get("id"))
        recorded = recorded_versions.get(subscription_id.lower())
        secret_current = current_secret_version is not None and recorded == current_secret_version
        changes = differences(item, chosen, secret_current=secret_current)
        planned = PlannedChange(item, subscription_id, tuple(changes), _text(chosen.get("status")) or None)
        (update if changes else unchanged).append(planned)
    return InstallPlan(tuple(create), tuple(update), tuple(unchanged), tuple(duplicates))


@dataclass(frozen=True)
class WatchDecision:
    """What the watcher found for one recorded subscription and what it should do."""

    status: str
    reenable: bool = False
    refresh_secret: bool = False
    warning: dict[str, Any] | None = None


def deliveries_succeeded(recent: Iterable[ReceivedDelivery]) -> bool:
    """Tell whether there is at least one recent delivery and none of them failed."""
    outcomes = [delivery.outcome for delivery in recent]
    return bool(outcomes) and not any(outcome in FAILED_OUTCOMES for outcome in outcomes)


def decide_watch(record: InstalledSubscription, subscription: Mapping[str, Any] | None,
                 recent: list[ReceivedDelivery], *, current_secret_version: str | None, reenable_allowed: bool,
                 since: datetime, now: datetime) -> WatchDecision:
    """Decide the warning and the repairs for one recorded subscription.

    `subscription` is what Azure DevOps returned for it (None when it no longer exists), `recent`
    its newest recorded deliveries, and `since` when the watcher first saw its current status.
    """
    if subscription is None:
        return WatchDecision(MISSING, warning=_warning(
            "service_hook_missing", record, MISSING, since,
            f"Subscription {record.subscription_id} ({record.event_type} in project {_project_label(record)}) "
            "no longer exists in Azure DevOps, so stackhook receives no such events from that project. Install "
            f"the service hooks again with POST /api/integrations/{record.integration_id}/service-hooks."))

    status = _text(subscription.get("status")) or "enabled"
    stale = current_secret_version is not None and record.secret_version != current_secret_version
    label = f"Subscription {record.subscription_id} ({record.event_type} in project {_project_label(record)})"
    if status == "enabled":
        return WatchDecision(status, refresh_secret=stale)
    if status == "onProbation":
        return WatchDecision(status, refresh_secret=stale, warning=_warning(
            "service_hook_on_probation", record, status, since,
            f"{label} is on probation because deliveries to stackhook failed. Azure DevOps retries with growing "
            "delays and disables the subscription after about 36 hours of failures. Check its history in "
            "Project settings > Service hooks and the integration's delivery log."))
    if status == "disabledBySystem":
        if reenable_allowed and deliveries_succeeded(recent):
            return WatchDecision(status, reenable=True, warning=_warning(
                "service_hook_reenabled", record, "enabled", now,
                f"{label} was disabled by Azure DevOps after failed deliveries; stackhook enabled it again at "
                f"{now.isoformat()} because the last {len(recent)} deliveries it received for it succeeded."))
        if reenable_allowed:
            advice = ("stackhook does not enable it again, because no recent delivery for it succeeded. Fix the "
                      "cause shown in its history, then enable it in Project settings > Service hooks.")
        else:
            advice = ("Fix the cause shown in its history, then enable it in Project settings > Service hooks, or "
                      "set STACKHOOK_SERVICE_HOOK_REENABLE=true to let stackhook enable it once its deliveries "
                      "succeed.")
        return WatchDecision(status, refresh_secret=stale, warning=_warning(
            "service_hook_disabled", record, status, since,
            f"{label} was disabled by Azure DevOps after repeated delivery failures. {advice}"))
    if status == "disabledByInactiveIdentity":
        return WatchDecision(status, refresh_secret=stale, warning=_warning(
            "service_hook_disabled", record, status, since,
            f"{label} was disabled because the user who owns it is inactive or lost access to the project. Save "
            "a personal access token of an active user in the integration and install the service hooks again."))
    if status == "disabledByUser":
        return WatchDecision(status, refresh_secret=stale, warning=_warning(
            "service_hook_disabled", record, status, since,
            f"{label} was disabled by a user, so stackhook receives no such events. Enable it in Project settings "
            "> Service hooks, or install the service hooks again."))
    return WatchDecision(status, refresh_secret=stale, warning=_warning(
        "service_hook_unknown_status", record, status, since,
        f"{label} has status {status!r}, which stackhook does not know; check it in Project settings > Service "
        "hooks."))


def _project_label(record: InstalledSubscription) -> str:
    return record.project_name or record.project_id


def _warning(code: str, record: InstalledSubscription, status: str, since: datetime, message: str
             ) -> dict[str, Any]:
    return {"code": code, "message": message, "subscriptionId": record.subscription_id, "status": status,
            "since": since.isoformat(), "eventType": record.event_type, "projectId": record.project_id}


def _warning_key(warning: Mapping[str, Any]) -> tuple[Any, ...]:
    return warning.get("code"), warning.get("subscriptionId"), warning.get("projectId"), warning.get("status")


def merge_warnings(current: Iterable[Mapping[str, Any]], service_hook_warnings: Iterable[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """Replace the service-hook warnings in `current` and keep every other warning.

    A new warning that repeats a current one (same code, subscription, project and status) keeps the
    current `since`, so a condition that lasts does not look new on every check.
    """
    existing = [dict(warning) for warning in current]
    since = {_warning_key(warning): warning.get("since") for warning in existing
             if str(warning.get("code", "")).startswith(WARNING_PREFIX)}
    other_warnings = [warning for warning in existing
                      if not str(warning.get("code", "")).startswith(WARNING_PREFIX)]
    merged = []
    for warning in service_hook_warnings:
        earlier = since.get(_warning_key(warning))
        merged.append({**warning, "since": earlier} if earlier else dict(warning))
    return other_warnings + merged


# Errors ---------------------------------------------------------------------------------------------

Step = Literal["project", "repository", "subscriptions"]


def translate_error(error: AzureDevOpsError, step: Step, target: str, *, identity: str | None = None,
                    progress: str = "") -> RequestError:
    """Turn a failed Azure DevOps call into the request error the caller gets.

    `target` names the project (or repository) involved. `progress` describes what was done before
    the failure, so the caller knows that sending the request again finishes the job.
    """
    prefix = f"{progress} " if progress else ""
    identity_note = f" ({identity})" if identity else ""
    if step == "subscriptions" and error.kind in ("invalid_credentials", "forbidden"):
        return PermissionDenied(
            f"{prefix}Azure DevOps refused to change service-hook subscriptions in project {target} (HTTP "
            f"{error.status or 401}). The user of the integration's personal access token{identity_note} needs "
            "permission to edit subscriptions in that project. Add the user to Project Collection Administrators, "
            "or grant it the Service Hooks permission 'Edit subscriptions' (EditSubscriptions) for the project. If "
            "the token has expired, save a new one in the integration.", code="azure_devops_permission_missing")
    if error.kind == "invalid_credentials":
        return Conflict(f"{prefix}Azure DevOps rejected the integration's personal access token while reading "
                        f"{step} {target}: it is invalid, expired or revoked. Save a new token in the integration.",
                        code="azure_devops_token_rejected")
    if error.kind == "forbidden":
        return PermissionDenied(f"{prefix}The user of the integration's personal access token{identity_note} may "
                                f"not read {step} {target} in Azure DevOps. Give the user access to the project.",
                                code="azure_devops_forbidden")
    if error.kind == "not_found" and step in ("project", "repository"):
        return NotFound(f"{prefix}The {step} {target} was not found in Azure DevOps. Check the name or id; Azure "
                        f"DevOps also answers 404 when the token's user may not see the {step}.",
                        code=f"azure_devops_{step}_not_found", field=step)
    if error.kind == "unreachable":
        return RequestError(f"{prefix}Azure DevOps could not be reached: {error} Try again later.", status=503,
                            code="azure_devops_unreachable", headers={"Retry-After": "30"})
    if error.kind == "throttled":
        wait = str(int(error.retry_after or 60))
        return RequestError(f"{prefix}Azure DevOps throttled the requests of the integration's token. Try again "
                            f"in {wait} seconds.", status=503, code="azure_devops_throttled",
                            headers={"Retry-After": wait})
    if error.kind in ("server_error", "bad_response"):
        return RequestError(f"{prefix}Azure DevOps failed: {error}", status=502, code="azure_devops_failed")
    return RequestError(f"{prefix}Azure DevOps rejected the request: {error}", status=502,
                        code="azure_devops_rejected")


# I/O ------------------------------------------------------------------------------------------------

@dataclass
class _Progress:
    created: list[SubscriptionChange] = field(default_factory=list)
    updated: list[SubscriptionChange] = field(default_factory=list)

    def describe(self) -> str:
        if not (self.created or self.updated):
            return ""
        return (f"Before the failure stackhook created {len(self.created)} and updated {len(self.updated)} "
                "subscriptions; sending the request again finishes the installation.")


@dataclass(frozen=True)
class WatchSummary:
    """Counts of one watcher run, for the log."""

    integrations: int = 0
    warnings: int = 0
    reenabled: int = 0
    secrets_refreshed: int = 0
    failed_integrations: int = 0


class ServiceHookService:
    """Installs, lists, removes and watches the service-hook subscriptions of integrations."""

    def __init__(self, settings: Settings, integrations: IntegrationRepository, installed: ServiceHookRepository,
                 secret_store: SecretStore, client_factory: ClientFactory,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings
        self._integrations = integrations
        self._installed = installed
        self._secrets = secret_store
        self._client_factory = client_factory
        self._clock = clock

    # Installing -------------------------------------------------------------------------------------

    def install(self, record: IntegrationRecord, request: ServiceHookInstall, actor: str) -> ServiceHookInstallOut:
        """Create or update the five subscriptions of `record` in one project; safe to repeat."""
        url = self.endpoint(record)
        password, secret_version = self._webhook_secret(record)
        identity = _identity_name(record)
        with self._client(record) as client:
            try:
                project = client.get_project(request.project)
            except AzureDevOpsError as error:
                raise translate_error(error, "project", repr(request.project), identity=identity) from error
            project_id, project_name = str(project["id"]).lower(), str(project.get("name") or project["id"])
            repository_id: str | None = None
            repository_name: str | None = None
            if request.repository:
                try:
                    repository = client.get_repository(project_id, request.repository)
                except AzureDevOpsError as error:
                    raise translate_error(error, "repository", f"{request.repository!r} in project {project_name}",
                                          identity=identity) from error
                repository_id, repository_name = str(repository["id"]).lower(), str(repository.get("name") or "")

            try:
                existing = client.query_subscriptions(project_id)
            except AzureDevOpsError as error:
                raise translate_error(error, "subscriptions", project_name, identity=identity) from error
            recorded = {item.subscription_id: item for item in self._installed.list_for(record.id)}
            plan = plan_install(desired_subscriptions(project_id, repository_id, url), existing,
                                {key: item.secret_version for key, item in recorded.items()}, secret_version)
            progress = _Progress()
            now = self._clock()
            try:
                for planned in plan.create:
                    created = client.create_subscription(planned.desired.body(password))
                    subscription_id = str(created["id"]).lower()
                    self._installed.save(self._record(record, planned.desired, subscription_id, project_name,
                                                      secret_version, None, "enabled", now))
                    progress.created.append(_change(planned, subscription_id))
                for planned in plan.update:
                    assert planned.subscription_id is not None
                    enable = planned.status in DISABLED_STATUSES
                    client.replace_subscription(planned.subscription_id,
                                                planned.desired.body(password, "enabled" if enable else None))
                    self._installed.save(self._record(record, planned.desired, planned.subscription_id, project_name,
                                                      secret_version, recorded.get(planned.subscription_id.lower()),
                                                      "enabled" if enable else planned.status or "enabled", now))
                    progress.updated.append(_change(planned, planned.subscription_id))
            except AzureDevOpsError as error:
                raise translate_error(error, "subscriptions", project_name, identity=identity,
                                      progress=progress.describe()) from error

        for planned in plan.unchanged:
            assert planned.subscription_id is not None
            self._installed.save(self._record(record, planned.desired, planned.subscription_id, project_name,
                                              secret_version, recorded.get(planned.subscription_id.lower()),
                                              planned.status or "enabled", now))
        self._forget_vanished(record.id, project_id, repository_id, existing, recorded.values())
        logger.info("Installed service hooks of integration %s in project %s (repository %s) by %s: created %s, "
                    "updated %s, unchanged %s", record.id, project_id, repository_id or "any", actor,
                    [item.subscription_id for item in progress.created],
                    [item.subscription_id for item in progress.updated],
                    [planned.subscription_id for planned in plan.unchanged])
        return ServiceHookInstallOut(
            integration_id=record.id, endpoint=url, project_id=project_id, project_name=project_name,
            repository_id=repository_id, repository_name=repository_name, created=progress.created,
            updated=progress.updated,
            unchanged=[_change(planned, planned.subscription_id or "") for planned in plan.unchanged],
            duplicates=list(plan.duplicates))

    def _record(self, record: IntegrationRecord, desired: DesiredSubscription, subscription_id: str,
                project_name: str, secret_version: str | None, previous: InstalledSubscription | None,
                status: str, now: datetime) -> InstalledSubscription:
        fresh = InstalledSubscription(
            integration_id=record.id, subscription_id=subscription_id.lower(), project_id=desired.project_id,
            project_name=project_name, event_type=desired.event_type, repository_id=desired.repository_id,
            secret_version=secret_version, installed_at=previous.installed_at if previous else now, updated_at=now,
            status=status, status_since=now)
        if previous is not None and previous.status == status and previous.status_since is not None:
            return replace(fresh, status_since=previous.status_since)
        return fresh

    def _forget_vanished(self, integration_id: str, project_id: str, repository_id: str | None,
                         existing: list[JsonObject], recorded: Iterable[InstalledSubscription]) -> None:
        """Drop rows of this project and repository whose subscription no longer exists in Azure DevOps."""
        present = {_text(subscription.get("id")).lower() for subscription in existing}
        for item in recorded:
            same_scope = item.project_id == project_id and (item.repository_id or None) == repository_id
            if same_scope and item.subscription_id not in present:
                logger.info("Forgot subscription %s of integration %s: it no longer exists in Azure DevOps",
                            item.subscription_id, integration_id)
                self._installed.delete(integration_id, item.subscription_id)

    # Removing ---------------------------------------------------------------------------------------

    def remove(self, record: IntegrationRecord, project: str | None, actor: str) -> ServiceHookRemovalOut:
        """Delete the subscriptions stackhook installed for `record`, in one project or in all."""
        installed = self._installed.list_for(record.id)
        if project:
            requested = project.strip().casefold()
            installed = [item for item in installed
                         if requested in (item.project_id.casefold(), item.project_name.casefold())]
            if not installed:
                raise NotFound(f"Integration {record.id!r} has no recorded service hooks in project {project!r}. "
                               "GET /api/integrations/{id}/service-hooks lists them.", field="project",
                               code="service_hooks_not_found")
        removed: list[str] = []
        already_gone: list[str] = []
        with self._client(record) as client:
            for item in installed:
                try:
                    client.delete_subscription(item.subscription_id)
                    removed.append(item.subscription_id)
                except AzureDevOpsError as error:
                    if error.kind != "not_found":
                        count = len(removed) + len(already_gone)
                        done = f"Before the failure stackhook removed {count} subscriptions."
                        raise translate_error(error, "subscriptions", _project_label(item),
                                              identity=_identity_name(record), progress=done) from error
                    already_gone.append(item.subscription_id)
                self._installed.delete(record.id, item.subscription_id)
        self._store_warnings(record.id, lambda warnings: [
            warning for warning in warnings if warning.get("subscriptionId") not in set(removed + already_gone)])
        logger.info("Removed service hooks of integration %s by %s: removed %s, already gone %s", record.id, actor,
                    removed, already_gone)
        return ServiceHookRemovalOut(integration_id=record.id, removed=removed, already_gone=already_gone)

    def remove_all(self, record: IntegrationRecord) -> ServiceHookRemovalOut:
        """Delete every subscription stackhook installed for `record`, when the integration is deleted.

        Azure DevOps failures are logged and listed in `failed` instead of raised, so deleting the
        integration goes on. A subscription left behind then fails its deliveries with 404 until Azure
        DevOps disables it. Table Storage and Key Vault errors propagate.
        """
        removed: list[str] = []
        already_gone: list[str] = []
        failed: list[str] = []
        installed = self._installed.list_for(record.id)
        if not installed:
            return ServiceHookRemovalOut(integration_id=record.id, removed=[], already_gone=[])
        try:
            client = self._client(record)
        except (AzureDevOpsError, RequestError) as error:
            logger.warning("Could not remove the service hooks %s of integration %s: %s",
                           [item.subscription_id for item in installed], record.id, error)
            client = None
        for item in installed:
            if client is not None:
                try:
                    client.delete_subscription(item.subscription_id)
                    removed.append(item.subscription_id)
                except AzureDevOpsError as error:
                    if error.kind == "not_found":
                        already_gone.append(item.subscription_id)
                    else:
                        logger.warning("Could not remove subscription %s of integration %s in project %s: %s",
                                       item.subscription_id, record.id, item.project_id, error)
                        failed.append(item.subscription_id)
            else:
                failed.append(item.subscription_id)
            self._installed.delete(record.id, item.subscription_id)
        if client is not None:
            client.close()
        logger.info("Removed service hooks of deleted integration %s: removed %s, already gone %s, failed %s",
                    record.id, removed, already_gone, failed)
        return ServiceHookRemovalOut(integration_id=record.id, removed=removed, already_gone=already_gone,
                                     failed=failed)

    # Secret rotation ------------------------------------------------------------------------------

    def after_secret_rotation(self, record: IntegrationRecord) -> list[str]:
        """Give every installed subscription the integration's current webhook secret; return their ids.

        This updates them at once, with or without a grace period: the new secret is valid from the
        rotation on, and the previous one only until the grace period ends. A subscription that
        cannot be updated now keeps its old secret version in the table, so the watcher updates it
        on its next run; Azure DevOps failures are logged, not raised.
        """
        current = self._integrations.get(record.id)
        installed = self._installed.list_for(current.id)
        refreshed: list[str] = []
        if not installed:
            return refreshed
        try:
            with self._client(current) as client:
                for item in installed:
                    try:
                        if self._refresh_secret(client, current, item):
                            refreshed.append(item.subscription_id)
                    except AzureDevOpsError as error:
                        logger.warning("Could not give subscription %s of integration %s the new webhook secret "
                                       "(the watcher retries): %s", item.subscription_id, current.id, error)
        except (AzureDevOpsError, RequestError) as error:
            logger.warning("Could not update the service hooks of integration %s after a secret rotation (the "
                           "watcher retries): %s", current.id, error)
        logger.info("Gave %s subscriptions of integration %s the new webhook secret", len(refreshed), current.id)
        return refreshed

    def _refresh_secret(self, client: AzureDevOpsClient, record: IntegrationRecord,
                        item: InstalledSubscription, *, enable: bool = False) -> bool:
        """PUT the desired body with the current secret. Return False when the secret was already current."""
        password, version = self._webhook_secret(record)
        if item.secret_version == version and not enable:
            return False
        desired = DesiredSubscription(item.event_type, RESOURCE_VERSIONS.get(item.event_type, "1.0"),
                                      item.project_id, item.repository_id, self.endpoint(record))
        # NOTE: without `status` the fake server keeps the stored status; that Azure DevOps does the same
        # on a PUT is not verified.
        client.replace_subscription(item.subscription_id, desired.body(password, "enabled" if enable else None))
        self._installed.save(replace(item, secret_version=version, updated_at=self._clock()))
        return True

    # Listing ----------------------------------------------------------------------------------------

    def list_subscriptions(self, record: IntegrationRecord, project: str | None = None) -> ServiceHookListOut:
        """Return the subscriptions that deliver to `record`'s endpoint, in the projects stackhook installed
        into (and `project`), with their status and the last delivery received for each."""
        url = self.endpoint(record)
        installed = {item.subscription_id: item for item in self._installed.list_for(record.id)}
        projects = {item.project_id: item.project_name for item in installed.values()}
        identity = _identity_name(record)
        found: list[tuple[JsonObject, str, str]] = []
        with self._client(record) as client:
            if project:
                try:
                    resolved = client.get_project(project)
                except AzureDevOpsError as error:
                    raise translate_error(error, "project", repr(project), identity=identity) from error
                projects[str(resolved["id"]).lower()] = str(resolved.get("name") or "")
            for project_id, project_name in sorted(projects.items()):
                try:
                    subscriptions = client.query_subscriptions(project_id)
                except AzureDevOpsError as error:
                    raise translate_error(error, "subscriptions", project_name or project_id,
                                          identity=identity) from error
                found.extend((subscription, project_id, project_name) for subscription in subscriptions
                             if points_at(subscription, url))

        seen = {_text(subscription.get("id")).lower() for subscription, _, _ in found}
        deliveries = self._installed.last_deliveries(record.id, seen | set(installed))
        current_version = record.webhook_secret_version
        items: list[ServiceHookOut] = []
        for subscription, project_id, project_name in found:
            subscription_id = _text(subscription.get("id")).lower()
            mine = installed.get(subscription_id)
            items.append(ServiceHookOut(
                subscription_id=subscription_id, event_type=_text(subscription.get("eventType")),
                resource_version=_text(subscription.get("resourceVersion")) or None, project_id=project_id,
                project_name=project_name or None,
                repository_id=_inputs(subscription, "publisherInputs").get("repository"),
                status=_text(subscription.get("status")) or "enabled", installed_by_stackhook=mine is not None,
                secret_current=(mine.secret_version == current_version) if mine else None,
                installed_at=mine.installed_at.isoformat() if mine else None,
                last_delivery=_last(deliveries.get(subscription_id))))
        for subscription_id, mine in sorted(installed.items()):
            if subscription_id not in seen:
                items.append(ServiceHookOut(
                    subscription_id=subscription_id, event_type=mine.event_type,
                    resource_version=RESOURCE_VERSIONS.get(mine.event_type), project_id=mine.project_id,
                    project_name=mine.project_name or None, repository_id=mine.repository_id, status=MISSING,
                    installed_by_stackhook=True, secret_current=mine.secret_version == current_version,
                    installed_at=mine.installed_at.isoformat(), last_delivery=_last(deliveries.get(subscription_id))))
        warnings = [dict(warning) for warning in record.warnings
                    if str(warning.get("code", "")).startswith(WARNING_PREFIX)]
        return ServiceHookListOut(integration_id=record.id, endpoint=url, subscriptions=items, warnings=warnings)

    # Watching ---------------------------------------------------------------------------------------

    def watch_all(self) -> WatchSummary:
        """Check the installed subscriptions of every integration; one failing integration does not stop the run."""
        summary = WatchSummary()
        for integration_id in self._installed.integration_ids():
            record = self._integrations.find(integration_id)
            if record is None:
                logger.info("Forgetting the service hooks of deleted integration %s", integration_id)
                for item in self._installed.list_for(integration_id):
                    self._installed.delete(integration_id, item.subscription_id)
                continue
            try:
                result = self.watch(record)
            except StackhookError as error:
                logger.warning("Could not check the service hooks of integration %s: %s", integration_id, error)
                summary = replace(summary, failed_integrations=summary.failed_integrations + 1)
                continue
            summary = replace(summary, integrations=summary.integrations + 1,
                              warnings=summary.warnings + result.warnings,
                              reenabled=summary.reenabled + result.reenabled,
                              secrets_refreshed=summary.secrets_refreshed + result.secrets_refreshed)
        logger.info("Service-hook check: %s integrations, %s warnings, %s re-enabled, %s secrets updated, %s failed",
                    summary.integrations, summary.warnings, summary.reenabled, summary.secrets_refreshed,
                    summary.failed_integrations)
        return summary

    def watch(self, record: IntegrationRecord) -> WatchSummary:
        """Check the installed subscriptions of one integration, repair what it may and store warnings."""
        installed = self._installed.list_for(record.id)
        by_project: dict[str, list[InstalledSubscription]] = defaultdict(list)
        for item in installed:
            by_project[item.project_id].append(item)
        previous = [warning for warning in record.warnings if str(warning.get("code", "")).startswith(WARNING_PREFIX)]
        deliveries = self._installed.last_deliveries(record.id, [item.subscription_id for item in installed],
                                                     per_subscription=REENABLE_EVIDENCE)
        now = self._clock()
        warnings: list[dict[str, Any]] = []
        reenabled = refreshed = 0

        try:
            client = self._client(record)
        except (AzureDevOpsError, RequestError) as error:
            warnings = [warning for warning in previous if warning.get("code") != "service_hook_check_failed"]
            warnings.append(_check_failed(record.id, None, str(error), now))
            self._store_warnings(record.id, lambda _: warnings)
            raise

        with client:
            for project_id, items in sorted(by_project.items()):
                try:
                    subscriptions = {_text(subscription.get("id")).lower(): subscription
                                     for subscription in client.query_subscriptions(project_id)}
                except AzureDevOpsError as error:
                    logger.warning("Could not read the subscriptions of integration %s in project %s: %s",
                                   record.id, project_id, error)
                    ids = {item.subscription_id for item in items}
                    warnings.extend(warning for warning in previous if warning.get("subscriptionId") in ids)
                    warnings.append(_check_failed(record.id, items[0], str(error), now))
                    continue

                for item in items:
                    outcome = self._watch_one(client, record, item, subscriptions.get(item.subscription_id),
                                              deliveries.get(item.subscription_id, []), now)
                    if outcome.warning is not None:
                        warnings.append(outcome.warning)
                    reenabled += outcome.reenable
                    refreshed += outcome.refresh_secret

        self._store_warnings(record.id, lambda _: warnings)
        return WatchSummary(1, len(warnings), reenabled, refreshed, 0)

    def _watch_one(self, client: AzureDevOpsClient, record: IntegrationRecord, item: InstalledSubscription,
                   subscription: JsonObject | None, recent: list[ReceivedDelivery], now: datetime) -> WatchDecision:
        status = MISSING if subscription is None else (_text(subscription.get("status")) or "enabled")
        tracked = item.with_status(status, now)
        decision = decide_watch(tracked, subscription, recent, current_secret_version=record.webhook_secret_version,
                                reenable_allowed=self._settings.service_hook_reenable,
                                since=tracked.status_since or now, now=now)
        if tracked != item:
            self._installed.save(tracked)
            logger.info("Subscription %s of integration %s is now %s (was %s)", item.subscription_id, record.id,
                        status, item.status)
        try:
            if decision.reenable:
                self._refresh_secret(client, record, tracked.with_status("enabled", now), enable=True)
                logger.warning("Re-enabled subscription %s of integration %s, which Azure DevOps had disabled; its "
                               "last %s recorded deliveries succeeded", item.subscription_id, record.id, len(recent))
            elif decision.refresh_secret:
                self._refresh_secret(client, record, tracked)
                logger.info("Gave subscription %s of integration %s the current webhook secret",
                            item.subscription_id, record.id)
        except AzureDevOpsError as error:
            logger.warning("Could not update subscription %s of integration %s: %s", item.subscription_id,
                           record.id, error)
            failed = _warning("service_hook_update_failed", tracked, status, now,
                              f"stackhook could not update subscription {item.subscription_id} "
                              f"({'to enable it' if decision.reenable else 'with the current webhook secret'}): "
                              f"{error}")
            return WatchDecision(status, warning=decision.warning if not decision.reenable else failed)
        return decision

    def _store_warnings(self, integration_id: str,
                        build: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """Replace the service-hook warnings of an integration and keep its other warnings.

        The write uses the ETag it read, and reads again after a concurrent change, so no other writer's
        change is lost.
        """
        for _attempt in range(_UPDATE_ATTEMPTS):
            current = self._integrations.find(integration_id)
            if current is None:
                return
            mine = [dict(warning) for warning in current.warnings
                    if str(warning.get("code", "")).startswith(WARNING_PREFIX)]
            merged = merge_warnings(current.warnings, build(mine))
            if merged == [dict(warning) for warning in current.warnings]:
                return
            try:
                self._integrations.replace(replace(current, warnings=tuple(merged)), if_match=current.etag)
                return
            except PreconditionFailed:
                continue
        logger.warning("Could not store the service-hook warnings of integration %s: it changed %s times meanwhile",
                       integration_id, _UPDATE_ATTEMPTS)

    def warnings(self) -> list[dict[str, Any]]:
        """Return the service-hook warnings of every integration, each with its `integrationId`."""
        found: list[dict[str, Any]] = []
        for record in self._integrations.list():
            found.extend({"integrationId": record.id, **warning} for warning in record.warnings
                         if str(warning.get("code", "")).startswith(WARNING_PREFIX))
        return found

    # Helpers ----------------------------------------------------------------------------------------

    def endpoint(self, record: IntegrationRecord) -> str:
        return webhook_endpoint(self._settings.public_base_url, record.id)

    def _client(self, record: IntegrationRecord) -> AzureDevOpsClient:
        pat = self._secrets.get(pat_secret_name(record.id), record.pat_version)
        if pat is None:
            raise Conflict(f"No personal access token is stored for integration {record.id!r}. Save one with "
                           "PATCH /api/integrations/{id} first.", code="missing_token")
        return self._client_factory(record.organization_url, pat)

    def _webhook_secret(self, record: IntegrationRecord) -> tuple[str, str | None]:
        secret = self._secrets.get(webhook_secret_name(record.id), record.webhook_secret_version)
        if secret is None:
            raise Conflict(f"The webhook secret of integration {record.id!r} is missing from Key Vault. Rotate it "
                           "with POST /api/integrations/{id}/rotate-secret.", code="missing_webhook_secret")
        return secret, record.webhook_secret_version


def _identity_name(record: IntegrationRecord) -> str | None:
    test = record.connection_test or {}
    name = test.get("identity_name") or record.identity_id
    return str(name) if name else None


def _change(planned: PlannedChange, subscription_id: str) -> SubscriptionChange:
    return SubscriptionChange(subscription_id=subscription_id, event_type=planned.desired.event_type,
                              resource_version=planned.desired.resource_version,
                              repository_id=planned.desired.repository_id, changes=list(planned.changes))


def _last(deliveries: list[ReceivedDelivery] | None) -> LastDelivery | None:
    if not deliveries:
        return None
    newest = deliveries[0]
    return LastDelivery(received_at=newest.received_at.isoformat(), outcome=newest.outcome, reason=newest.reason)


def _check_failed(integration_id: str, item: InstalledSubscription | None, error: str, now: datetime
                  ) -> dict[str, Any]:
    where = f" in project {_project_label(item)}" if item else ""
    return {"code": "service_hook_check_failed", "subscriptionId": None, "status": None, "since": now.isoformat(),
            "projectId": item.project_id if item else None,
            "message": f"stackhook could not check the service hooks of integration {integration_id}{where}: {error}"}
