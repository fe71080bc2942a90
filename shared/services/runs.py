"""Runs: creating them from run requests, applying the states workers report, posting commit and
pull request statuses back to Azure DevOps, and storing module versions.

The queues and messages are described in docs/runs.md. Azure DevOps is called only while handling
a `status-posts` or `run-updates` message. A failed call is then retried through the queue, and the
run stays stored whatever the outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from shared.ado.client import AzureDevOpsClient
from shared.core.runs import (
    RunRequest,
    RunState,
    RunType,
    apply_transition,
    check_state_for_run_type,
    run_target_url,
    status_context,
    status_description,
    status_state,
)
from shared.core.versions import CONFIG_PATH, SemanticVersion, next_version_allowed, parse_module_version
from shared.errors import AzureDevOpsError, DependencyUnavailable, NotFound, ValidationFailed
from shared.secrets import SecretStore
from shared.services.access import AccessContext
from shared.settings import Settings
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.integrations import IntegrationRecord, IntegrationRepository
from shared.storage.names import RUNS_QUEUE, STATUS_POSTS_QUEUE, pat_secret_name
from shared.storage.runs import (
    ModuleVersionRecord,
    ModuleVersionRepository,
    RunRecord,
    RunRepository,
    StatusPost,
    new_run_id,
)
from shared.storage.spaces import ROOT_SPACE_ID
from shared.storage.stacks import STACK_KINDS, StackRepository

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str, str], AzureDevOpsClient]

RETRYABLE_KINDS = frozenset({"server_error", "unreachable", "throttled"})
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 300.0
MAX_POST_ATTEMPTS = 10
# Azure Queue Storage hides a message for at most 7 days; the delays here stay far below that.


# --- messages ---------------------------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class RunUpdateMessage(_Message):
    """A state change reported by a worker on the `run-updates` queue."""

    run_id: str = Field(min_length=1, max_length=200)
    stack_kind: str = Field(min_length=1, max_length=20)
    stack_id: str = Field(min_length=1, max_length=200)
    state: RunState
    message: str | None = Field(default=None, max_length=4000)


class StatusPostMessage(_Message):
    """A request on the `status-posts` queue to post the statuses of one state of a run."""

    run_id: str
    stack_kind: str
    stack_id: str
    state: RunState
    state_version: int = Field(ge=1)
    attempt: int = Field(default=1, ge=1)
    commit_status_posted: bool = False


def parse_message(model: type[_Message], body: bytes) -> Any:
    """Validate a queue message body; raise `ValidationFailed` naming the field at fault."""
    try:
        return model.model_validate_json(body)
    except PydanticValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ())) or None
        raise ValidationFailed(f"Queue message field {location!r} is invalid: {first.get('msg')}.",
                               field=location) from None


# --- pure decisions ---------------------------------------------------------------------------


def retry_delay(kind: str, attempt: int, retry_after: float | None) -> float | None:
    """Return the seconds to wait before post attempt `attempt + 1`, or None to give up.

    Only failures that may pass by themselves are retried: server errors, unreachable servers and
    throttling, whose Retry-After is honoured. The delay doubles from 2 seconds up to 5 minutes,
    for at most `MAX_POST_ATTEMPTS` attempts (about 15 minutes in all).
    """
    if kind not in RETRYABLE_KINDS or attempt >= MAX_POST_ATTEMPTS:
        return None
    delay: float = min(RETRY_BASE_SECONDS * 2.0 ** (attempt - 1), RETRY_MAX_SECONDS)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_MAX_SECONDS))
    return delay


def token_rejected(integration: IntegrationRecord) -> bool:
    """Tell whether the integration's last connection test or status post found its token rejected."""
    test = integration.connection_test or {}
    return test.get("ok") is False and test.get("kind") == "invalid_credentials"


UpdateOutcome = Literal["applied", "repeated", "rejected", "run_missing"]


@dataclass(frozen=True)
class UpdateResult:
    outcome: UpdateOutcome
    run: RunRecord | None
    reason: str | None = None


PostOutcome = Literal["posted", "retrying", "failed", "skipped", "superseded", "run_missing"]


@dataclass(frozen=True)
class PostResult:
    outcome: PostOutcome
    reason: str | None = None


# --- module versions ------------------------------------------------------------------------

def create_module_version(client: AzureDevOpsClient, versions: ModuleVersionRepository,
                          run: RunRecord) -> dict[str, Any]:
    """Read the module's config file at the run's commit and store the version it names.

    Return the outcome to record on the run: `created`, `missing_config`, `invalid_config` or
    `version_reused`. Azure DevOps and storage failures propagate, so the caller can retry.
    """
    text = client.get_item_content(run.project_id, run.repository_id, CONFIG_PATH, run.commit)
    if text is None:
        return {"outcome": "missing_config", "message": f"{CONFIG_PATH} does not exist at commit {run.commit}, so "
                                                        "no version was published. Add it with module_version set, "
                                                        "then push again."}
    try:
        version = parse_module_version(text)
    except ValidationFailed as error:
        return {"outcome": "invalid_config", "message": error.message}
    existing = [SemanticVersion.parse(record.version) for record in versions.list_versions(run.stack_id)]
    try:
        next_version_allowed(version, existing)
    except ValidationFailed as error:
        return {"outcome": "version_reused", "version": str(version), "message": error.message}
    record = ModuleVersionRecord(module_id=run.stack_id, version=str(version), run_id=run.id, commit=run.commit,
                                 created_at=datetime.now(UTC))
    if not versions.create(record, precedence_key=_without_build(version)):
        # Another run stored the same version between the check and the write.
        return {"outcome": "version_reused", "version": str(version),
                "message": f"module version {version} already exists; versions are never reused, so set "
                           f"module_version in {CONFIG_PATH} to a new version"}
    return {"outcome": "created", "version": str(version)}


def _without_build(version: SemanticVersion) -> str:
    """Return the version without build metadata, which semver precedence ignores."""
    return str(replace(version, build=()))


# --- the service ------------------------------------------------------------------------------


class RunService:
    """Creates runs, applies worker updates, posts statuses and reads runs for the API."""

    def __init__(self, settings: Settings, runs: RunRepository, versions: ModuleVersionRepository,
                 integrations: IntegrationRepository, stacks: StackRepository, secrets: SecretStore,
                 clients: StorageClients, client_factory: ClientFactory) -> None:
        self._settings = settings
        self._runs = runs
        self._versions = versions
        self._integrations = integrations
        self._stacks = stacks
        self._secrets = secrets
        self._clients = clients
        self._client_factory = client_factory

    # Creating and cancelling ------------------------------------------------------------------

    def create_runs(self, requests: Sequence[RunRequest], *, integration: IntegrationRecord, project_id: str,
                    repository_id: str) -> list[RunRecord]:
        """Create one run per request, or return the run its `dedup_key` already has.

        A new run is queued on `runs` for the workers, and its `queued` status is queued for posting.
        A request with `force_new` always creates a run.
        """
        created: list[RunRecord] = []
        for request in requests:
            now = datetime.now(UTC)
            record = RunRecord(
                id=new_run_id(), stack_kind=request.kind, stack_id=request.stack_id, run_type=request.run_type,
                commit=request.commit, branch=request.branch or None, pull_request_id=request.pull_request_id,
                iteration_id=request.iteration_id, trigger=request.trigger, triggered_by=request.triggered_by or None,
                integration_id=integration.id, project_id=project_id, repository_id=repository_id.lower(),
                state=RunState.QUEUED.value, created_at=now, updated_at=now,
                status_post=StatusPost(state=RunState.QUEUED.value, state_version=1))
            stored, is_new = self._runs.create(record, None if request.force_new else request.dedup_key)
            if is_new or stored.dispatched_at is None:
                stored = self._dispatch(stored, integration)
            if is_new:
                logger.info("Created %s run %s of %s %s at commit %s (trigger %s)", stored.run_type, stored.id,
                            stored.stack_kind, stored.stack_id, stored.commit, stored.trigger)
                self.queue_status_post(stored)
            else:
                logger.info("Run request for %s %s at commit %s matched existing run %s", request.kind,
                            request.stack_id, request.commit, stored.id)
                if request.pull_request_id is not None and stored.pull_request_id is None:
                    # A push started this run before the pull request existed: tie it to the pull
                    # request, so it gets a pull request status and is cancelled with it.
                    stored = self._runs.attach_pull_request(stored, request.pull_request_id, request.iteration_id)
                    self.queue_status_post(stored)
            created.append(stored)
        return created

    def _dispatch(self, run: RunRecord, integration: IntegrationRecord) -> RunRecord:
        """Queue the run for the workers and record when; a run without the record is queued again."""
        self._send(RUNS_QUEUE, {
            "runId": run.id, "stackKind": run.stack_kind, "stackId": run.stack_id, "runType": run.run_type,
            "commit": run.commit, "branch": run.branch, "pullRequestId": run.pull_request_id,
            "iterationId": run.iteration_id, "trigger": run.trigger, "triggeredBy": run.triggered_by,
            "integrationId": run.integration_id, "organizationUrl": integration.organization_url,
            "projectId": run.project_id, "repositoryId": run.repository_id,
            "createdAt": run.created_at.isoformat()})
        stamp = datetime.now(UTC)
        updated, _ = self._runs.modify(run.stack_kind, run.stack_id, run.id,
                                       lambda current: replace(current, dispatched_at=stamp))
        return updated

    def cancel_pull_request_runs(self, integration_id: str, repository_id: str, pull_request_id: int,
                                 reason: str, *, keep_commit: str | None = None) -> list[RunRecord]:
        """Cancel the queued proposed runs of a pull request, except those of `keep_commit`; return them."""
        canceled: list[RunRecord] = []
        for run in self._runs.pull_request_runs(integration_id, repository_id, pull_request_id):
            if run.run_type != "proposed" or run.state != RunState.QUEUED.value:
                continue
            if keep_commit is not None and run.commit.lower() == keep_commit.lower():
                continue

            def cancel(current: RunRecord) -> RunRecord | None:
                if current.state != RunState.QUEUED.value:
                    return None
                return _with_state(current, apply_transition(RunState.QUEUED, RunState.CANCELED), reason)

            updated, written = self._runs.modify(run.stack_kind, run.stack_id, run.id, cancel)
            if written:
                logger.info("Canceled run %s of %s %s: %s", updated.id, updated.stack_kind, updated.stack_id, reason)
                self.queue_status_post(updated)
                canceled.append(updated)
        return canceled

    # Worker updates ---------------------------------------------------------------------------

    def apply_update(self, update: RunUpdateMessage) -> UpdateResult:
        """Apply a worker's state change, queue its status post and, for modules, store the version.

        A repeated state changes nothing. A transition the rules forbid is recorded on the run and
        dropped. Raises `AzureDevOpsError` or `DependencyUnavailable` when the module version could
        not be stored for a reason that may pass, so that the queue retries the update.
        """
        if update.stack_kind not in STACK_KINDS:
            return UpdateResult("run_missing", None, f"stack kind {update.stack_kind!r} is not one of {STACK_KINDS}")
        run = self._runs.find(update.stack_kind, update.stack_id, update.run_id)
        if run is None:
            return UpdateResult("run_missing", None, f"run {update.run_id} of {update.stack_kind} "
                                                      f"{update.stack_id} does not exist")
        rejection: list[str] = []

        def change(current: RunRecord) -> RunRecord | None:
            rejection.clear()
            if current.state == update.state.value:
                return None
            try:
                check_state_for_run_type(current.run_type, update.state)
                new_state = apply_transition(RunState(current.state), update.state)
            except ValidationFailed as error:
                rejection.append(error.message)
                return current.with_rejected_update({
                    "state": update.state.value, "from": current.state, "reason": error.message,
                    "at": datetime.now(UTC).isoformat()})
            changed = _with_state(current, new_state, update.message)
            if _publishes_version(changed):
                changed = replace(changed, module_version={"outcome": "pending"})
            return changed

        updated, written = self._runs.modify(run.stack_kind, run.stack_id, run.id, change)
        if rejection:
            logger.warning("Rejected update of run %s of %s %s to %s: %s", run.id, run.stack_kind, run.stack_id,
                           update.state.value, rejection[0])
            return UpdateResult("rejected", updated, rejection[0])
        if written:
            logger.info("Run %s of %s %s is now %s", updated.id, updated.stack_kind, updated.stack_id, updated.state)
            self.queue_status_post(updated)
        if _publishes_version(updated) and (updated.module_version or {}).get("outcome") in ("pending", "retrying"):
            updated = self._store_module_version(updated)
        return UpdateResult("applied" if written else "repeated", updated)

    def _store_module_version(self, run: RunRecord) -> RunRecord:
        integration = self._integrations.find(run.integration_id)
        try:
            if integration is None:
                result = {"outcome": "failed", "message": f"Integration {run.integration_id!r} was deleted, so the "
                                                          "module's config file could not be read."}
            else:
                with self._client_for(integration) as client:
                    result = create_module_version(client, self._versions, run)
        except (AzureDevOpsError, DependencyUnavailable) as error:
            kind = error.kind if isinstance(error, AzureDevOpsError) else "dependency_unavailable"
            retry = kind in RETRYABLE_KINDS or kind == "dependency_unavailable"
            result = {"outcome": "retrying" if retry else "failed", "kind": kind, "message": str(error)}
            self._record_module_version(run, result)
            logger.warning("Storing the version of module %s from run %s failed (%s): %s", run.stack_id, run.id,
                           kind, error)
            if retry:
                raise
            return self._runs.get(run.stack_kind, run.stack_id, run.id)
        logger.info("Module %s run %s: version %s", run.stack_id, run.id, result.get("outcome"))
        return self._record_module_version(run, result)

    def _record_module_version(self, run: RunRecord, result: dict[str, Any]) -> RunRecord:
        stamped = {**result, "at": datetime.now(UTC).isoformat()}
        updated, _ = self._runs.modify(run.stack_kind, run.stack_id, run.id,
                                       lambda current: replace(current, module_version=stamped))
        return updated

    # Status posts -----------------------------------------------------------------------------

    def queue_status_post(self, run: RunRecord, *, attempt: int = 1, commit_status_posted: bool = False,
                          delay_seconds: float = 0) -> None:
        """Queue posting the statuses of the run's current state, after `delay_seconds`."""
        message = StatusPostMessage(run_id=run.id, stack_kind=run.stack_kind, stack_id=run.stack_id,
                                    state=RunState(run.state), state_version=run.state_version, attempt=attempt,
                                    commit_status_posted=commit_status_posted)
        self._send(STATUS_POSTS_QUEUE, message.model_dump(mode="json", by_alias=True),
                   delay_seconds=delay_seconds)

    def post_statuses(self, post: StatusPostMessage) -> PostResult:
        """Post the commit status and, for a pull request run, the pull request status of one state.

        A post for a state the run has left is skipped, because the newer state has its own post.
        Failures are recorded on the run. Retryable ones are queued again with a delay; rejected
        credentials mark the integration's connection test as failed and are not retried.
        """
        run = self._runs.find(post.stack_kind, post.stack_id, post.run_id)
        if run is None:
            return PostResult("run_missing")
        if run.state_version != post.state_version:
            return PostResult("superseded")
        integration = self._integrations.find(run.integration_id)
        if integration is None:
            return self._give_up(run, post, "skipped", None,
                                 f"Integration {run.integration_id!r} was deleted, so no status was posted.")
        if token_rejected(integration):
            return self._give_up(run, post, "failed", "invalid_credentials",
                                 f"Not posted: Azure DevOps rejected the personal access token of integration "
                                 f"{integration.id!r}. Save a new token in the integration; the next state change "
                                 "of the run posts again.")
        state = RunState(run.state)
        genre, name = status_context(run.stack_kind, run.stack_id)
        description = status_description(state, _run_type(run.run_type))
        target_url = run_target_url(integration.user_facing_host_url, self._settings.public_base_url,
                                    run.stack_kind, run.stack_id, run.id)
        commit_posted = post.commit_status_posted
        try:
            with self._client_for(integration) as client:
                if not commit_posted:
                    client.post_commit_status(run.project_id, run.repository_id, run.commit, state=status_state(state),
                                              genre=genre, name=name, description=description, target_url=target_url)
                    commit_posted = True
                pull_request_outcome, note, merge_status = None, None, run.merge_status
                if run.pull_request_id is not None:
                    pull_request = client.get_pull_request(run.project_id, run.repository_id, run.pull_request_id)
                    merge_status = str(pull_request.get("mergeStatus") or "") or merge_status
                    pull_request_state = str(pull_request.get("status") or "")
                    if pull_request_state != "active":
                        pull_request_outcome = "skipped"
                        note = (f"No pull request status was posted: pull request {run.pull_request_id} is "
                                f"{pull_request_state or 'not active'}.")
                    else:
                        client.post_pull_request_status(
                            run.project_id, run.repository_id, run.pull_request_id, state=status_state(state),
                            genre=genre, name=name, description=description, target_url=target_url,
                            iteration_id=run.iteration_id)
                        pull_request_outcome = "posted"
        except AzureDevOpsError as error:
            return self._post_failed(run, post, integration, error, commit_posted)
        except DependencyUnavailable as error:
            self._record_post(run, post, outcome="retrying", commit_posted=commit_posted,
                              error=("dependency_unavailable", str(error)))
            raise
        self._record_post(run, post, outcome="posted", commit_posted=True, pull_request=pull_request_outcome,
                          note=note, merge_status=merge_status)
        logger.info("Posted %s statuses of run %s of %s %s (attempt %s)", run.state, run.id, run.stack_kind,
                    run.stack_id, post.attempt)
        return PostResult("posted", note)

    def _post_failed(self, run: RunRecord, post: StatusPostMessage, integration: IntegrationRecord,
                     error: AzureDevOpsError, commit_posted: bool) -> PostResult:
        logger.warning("Posting %s statuses of run %s of %s %s failed on attempt %s (%s): %s", run.state, run.id,
                       run.stack_kind, run.stack_id, post.attempt, error.kind, error)
        if error.kind == "invalid_credentials":
            self._mark_token_rejected(integration, error)
        delay = retry_delay(error.kind, post.attempt, error.retry_after)
        outcome: PostOutcome = "retrying" if delay is not None else "failed"
        self._record_post(run, post, outcome=outcome, commit_posted=commit_posted, error=(error.kind, str(error)))
        if delay is not None:
            self.queue_status_post(run, attempt=post.attempt + 1, commit_status_posted=commit_posted,
                                   delay_seconds=delay)
        return PostResult(outcome, error.kind)

    def _mark_token_rejected(self, integration: IntegrationRecord, error: AzureDevOpsError) -> None:
        result = {"ok": False, "kind": "invalid_credentials", "tested_at": datetime.now(UTC).isoformat(),
                  "message": f"Posting a status to Azure DevOps failed: {error} Save a new personal access token "
                             "in the integration, or run the connection test after fixing it."}
        self._integrations.update_fields(integration, connection_test=result)
        logger.warning("Marked the connection test of integration %s as failed: a status post was rejected",
                       integration.id)

    def _give_up(self, run: RunRecord, post: StatusPostMessage, outcome: PostOutcome, kind: str | None,
                 message: str) -> PostResult:
        logger.warning("Statuses of run %s of %s %s were not posted: %s", run.id, run.stack_kind, run.stack_id,
                       message)
        error = (kind, message) if kind else None
        self._record_post(run, post, outcome=outcome, commit_posted=False, error=error,
                          note=None if kind else message)
        return PostResult(outcome, message)

    def _record_post(self, run: RunRecord, post: StatusPostMessage, *, outcome: str, commit_posted: bool,
                     pull_request: str | None = None, note: str | None = None,
                     error: tuple[str, str] | None = None, merge_status: str | None = None) -> None:
        now = datetime.now(UTC)

        def change(current: RunRecord) -> RunRecord | None:
            if current.state_version != post.state_version:
                return None
            previous = current.status_post
            status = replace(previous, state=current.state, state_version=current.state_version, outcome=outcome,
                             attempts=post.attempt, commit_status_posted=commit_posted,
                             pull_request_status=pull_request, note=note)
            if error is not None:
                status = replace(status, last_error_kind=error[0], last_error_message=error[1], last_error_at=now)
            if outcome == "posted":
                status = replace(status, posted_at=now)
            return replace(current, status_post=status, merge_status=merge_status or current.merge_status)

        self._runs.modify(run.stack_kind, run.stack_id, run.id, change)

    # Reading ----------------------------------------------------------------------------------

    def list_runs(self, context: AccessContext, kind: str, stack_id: str, *, page_size: int,
                  continuation: str | None) -> tuple[list[RunRecord], str | None]:
        """Return a page of the stack's runs, newest first, if the caller may read the stack's space."""
        _check_kind(kind)
        runs, token = self._runs.list_page(kind, stack_id, page_size=page_size, continuation=continuation)
        space_id = self._space_of(kind, stack_id, runs[0] if runs else None)
        if space_id is None:
            raise NotFound(f"{kind.capitalize()} {stack_id!r} was not found.")
        context.require(space_id, "read", action="read runs of", target=f"{kind} {stack_id!r}")
        return runs, token

    def get_run(self, context: AccessContext, kind: str, stack_id: str, run_id: str) -> RunRecord:
        """Return one run if the caller may read the stack's space; 404 hides the others."""
        _check_kind(kind)
        run = self._runs.get(kind, stack_id, run_id)
        space_id = self._space_of(kind, stack_id, run) or ROOT_SPACE_ID
        if not context.has(space_id, "read"):
            raise NotFound(f"Run {run_id!r} of {kind} {stack_id!r} was not found.")
        return run

    def _space_of(self, kind: str, stack_id: str, run: RunRecord | None) -> str | None:
        """Return the stack's space, or for a deleted stack the space of its run's integration."""
        stack = self._stacks.find(kind, stack_id)
        if stack is not None:
            return stack.space_id
        if run is None:
            return None
        integration = self._integrations.find(run.integration_id)
        return integration.space_id if integration is not None else ROOT_SPACE_ID

    # Helpers ----------------------------------------------------------------------------------

    def _client_for(self, integration: IntegrationRecord) -> AzureDevOpsClient:
        pat = self._secrets.get(pat_secret_name(integration.id), integration.pat_version)
        if pat is None:
            raise AzureDevOpsError("invalid_credentials", f"No personal access token is stored for integration "
                                   f"{integration.id!r}. Set one with PATCH /api/integrations/{integration.id}.")
        return self._client_factory(integration.organization_url, pat)

    def _send(self, queue: str, body: dict[str, Any], *, delay_seconds: float = 0) -> None:
        with storage_errors("Queue Storage"):
            self._clients.queue(queue).send_message(json.dumps(body),
                                                    visibility_timeout=int(delay_seconds) or None)


def _with_state(run: RunRecord, state: RunState, message: str | None) -> RunRecord:
    """Return `run` in `state`, with a new state version and its status post pending."""
    version = run.state_version + 1
    return replace(run, state=state.value, state_version=version, message=message or run.message,
                   status_post=replace(run.status_post, state=state.value, state_version=version, outcome="pending",
                                       attempts=0, commit_status_posted=False, pull_request_status=None, note=None))


def _publishes_version(run: RunRecord) -> bool:
    return run.stack_kind == "module" and run.run_type == "tracked" and run.state == RunState.FINISHED.value


def _run_type(value: str) -> RunType:
    return "tracked" if value == "tracked" else "proposed"


def _check_kind(kind: str) -> None:
    if kind not in STACK_KINDS:
        raise NotFound(f"{kind!r} is not a kind of stack; use one of {', '.join(STACK_KINDS)}.")

