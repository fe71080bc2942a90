"""From classified events to runs: which stacks and modules an event touches, and what it starts.

The decisions are pure (`shared.core.runs`, `shared.core.matching`), and this module fetches what
they need. Changed files always come from the Azure DevOps REST API: the diff of a push's old and
new commit, the diff against the tracked branch for a new branch, or the pull request iteration's
changes. The event's `commits` list is never used, because it can be null or partial.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shared.ado.client import AzureDevOpsClient
from shared.core.events import MergeOutcome, PullRequestChange, PullRequestEvent, PushEvent
from shared.core.runs import RunRequest, runs_for_pull_request, runs_for_push
from shared.errors import AzureDevOpsError, DependencyUnavailable
from shared.secrets import SecretStore
from shared.services.runs import RunService
from shared.storage.commands import CommandStore
from shared.storage.integrations import IntegrationRecord
from shared.storage.names import pat_secret_name
from shared.storage.runs import RunRecord, RunRepository
from shared.storage.stacks import StackRepository, StackRoute

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str, str], AzureDevOpsClient]

# Kinds of Azure DevOps failure that a later attempt can get past; the queue retries them.
_TRANSIENT = frozenset({"unreachable", "throttled", "server_error"})
MERGE_STATUS_NAME = "merge"


@dataclass(frozen=True)
class RoutingResult:
    """The runs an event started or stopped, with a note for the delivery log."""

    note: str
    runs: tuple[RunRecord, ...] = ()
    canceled: tuple[RunRecord, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"runs": [{"id": run.id, "stack": f"{run.stack_kind}/{run.stack_id}",
                                             "type": run.run_type, "commit": run.commit} for run in self.runs]}
        if self.canceled:
            summary["canceledRuns"] = [run.id for run in self.canceled]
        summary.update(self.details)
        return summary


class EventRouter:
    """Starts, deduplicates and cancels runs for push and pull request events."""

    def __init__(self, stacks: StackRepository, runs: RunService, run_records: RunRepository,
                 secret_store: SecretStore, client_factory: ClientFactory, locks: CommandStore | None = None) -> None:
        self._locks = locks
        self._stacks = stacks
        self._runs = runs
        self._run_records = run_records
        self._secrets = secret_store
        self._client_factory = client_factory

    def push(self, integration: IntegrationRecord, event: PushEvent) -> RoutingResult:
        repository = event.repository
        routes = self._stacks.routes_for(integration.id, repository.repository_id)
        if not routes:
            return RoutingResult(_nobody_uses(repository.repository_name, repository.repository_id))
        branches = [ref for ref in event.ref_changes if ref.kind == "branch" and not ref.deleted]
        if not branches:
            return RoutingResult("No branch was updated, so no run starts.")
        pusher = (event.pusher.unique_name or event.pusher.display_name or "") if event.pusher else ""
        requests: list[RunRequest] = []
        with self._client(integration) as client:
            for ref in branches:
                for group, changed in self._push_changes(client, event, ref, routes):
                    requests += runs_for_push(group, ref, changed, pusher)
        started = datetime.now(UTC)
        runs = self._runs.create_runs(requests, integration=integration, project_id=repository.project_id,
                                      repository_id=repository.repository_id)
        return RoutingResult(_describe_runs(runs, len(routes), started), tuple(runs))

    def _push_changes(self, client: AzureDevOpsClient, event: PushEvent, ref: Any,
                      routes: list[StackRoute]) -> list[tuple[list[StackRoute], list[str]]]:
        """Return the changed paths for each group of routes that shares a comparison base."""
        project, repository = event.repository.project_id, event.repository.repository_id
        if not ref.created:
            changed = _ado(lambda: client.diff_commits(project, repository, ref.old_object_id, ref.new_object_id))
            return [(routes, changed)]
        # A new branch has no old commit: compare it with each tracked branch that routes follow.
        groups: dict[str, list[StackRoute]] = {}
        for route in routes:
            groups.setdefault(route.tracked_branch, []).append(route)
        result = []
        for branch, group in groups.items():
            changed = _ado(lambda branch=branch: client.diff_commits(  # type: ignore[misc]
                project, repository, branch, ref.new_object_id, base_type="branch"))
            result.append((group, changed))
        return result

    def pull_request(self, integration: IntegrationRecord, event: PullRequestEvent,
                     change: PullRequestChange | None) -> RoutingResult:
        repository = event.repository
        pull_request = event.pull_request
        if (change is not None and change.cancels_runs) or pull_request.status in ("completed", "abandoned"):
            canceled = self._runs.cancel_pull_request_runs(
                integration.id, repository.repository_id, pull_request.pull_request_id,
                f"Pull request {pull_request.pull_request_id} was {pull_request.status}.")
            note = f"Canceled {len(canceled)} queued proposed run(s) of the pull request."
            details: dict[str, Any] = {}
            if self._locks is not None:
                released = self._locks.release_pull_request(integration.id, repository.repository_id,
                                                            pull_request.pull_request_id)
                note += f" Released {len(released)} stack lock(s)."
                details["releasedLocks"] = released
            return RoutingResult(note, canceled=tuple(canceled), details=details)
        if change is not None and not change.starts_runs:
            return RoutingResult("No run starts for this change.")
        if event.kind == "created" and (pull_request.status != "active" or pull_request.is_draft):
            return RoutingResult("The pull request is a draft or not active, so no run starts until it is "
                                 "published.")
        routes = self._stacks.routes_for(integration.id, repository.repository_id)
        if not routes:
            return RoutingResult(_nobody_uses(repository.repository_name, repository.repository_id))
        project, repository_id = repository.project_id, repository.repository_id
        with self._client(integration) as client:
            iterations = _ado(lambda: client.list_iterations(project, repository_id, pull_request.pull_request_id))
            iteration_id = iteration_of(iterations, pull_request.source_commit)
            if iteration_id < 1:
                return RoutingResult("The pull request has no iteration yet, so no run starts.")
            changed = _ado(lambda: client.get_iteration_changes(project, repository_id,
                                                                pull_request.pull_request_id, iteration_id))
        actor = (event.actor.unique_name or event.actor.display_name or "") if event.actor else ""
        requests = runs_for_pull_request(routes, pull_request, iteration_id, changed, actor,
                                         f"pull_request.{event.kind}")
        started = datetime.now(UTC)
        runs = self._runs.create_runs(requests, integration=integration, project_id=project,
                                      repository_id=repository_id)
        superseded: list[RunRecord] = []
        if pull_request.source_commit:
            # Queued proposed runs of an earlier commit of this pull request would plan stale code.
            superseded = self._runs.cancel_pull_request_runs(
                integration.id, repository_id, pull_request.pull_request_id,
                f"Superseded by commit {pull_request.source_commit[:8]} of the pull request.",
                keep_commit=pull_request.source_commit)
        note = _describe_runs(runs, len(routes), started)
        if superseded:
            note += f" Canceled {len(superseded)} queued run(s) of earlier commits."
        return RoutingResult(note, tuple(runs), tuple(superseded), details={"iterationId": iteration_id})

    def merge_attempt(self, integration: IntegrationRecord, event: PullRequestEvent, outcome: MergeOutcome,
                      previous_outcome: str | None) -> RoutingResult:
        """Show the merge status on the pull request's runs; report conflicts once as a PR status."""
        repository = event.repository
        pull_request = event.pull_request
        merge_status = pull_request.merge_status or outcome.value
        updated = 0
        for run in self._run_records.pull_request_runs(integration.id, repository.repository_id,
                                                       pull_request.pull_request_id):
            _, written = self._run_records.modify(
                run.stack_kind, run.stack_id, run.id,
                lambda current: None if current.merge_status == merge_status
                else replace(current, merge_status=merge_status))
            updated += int(written)
        details = {"mergeStatus": merge_status, "runsUpdated": updated}
        if outcome != MergeOutcome.CONFLICTS or previous_outcome == MergeOutcome.CONFLICTS.value:
            return RoutingResult(f"Merge status {merge_status} recorded on {updated} run(s).", details=details)
        if pull_request.status != "active":
            return RoutingResult("Merge conflicts on a pull request that is no longer active; not reported.",
                                 details=details)
        if not self._stacks.routes_for(integration.id, repository.repository_id):
            return RoutingResult(_nobody_uses(repository.repository_name, repository.repository_id), details=details)
        with self._client(integration) as client:
            _ado(lambda: client.post_pull_request_status(
                repository.project_id, repository.repository_id, pull_request.pull_request_id,
                state="failed", genre="stackhook", name=MERGE_STATUS_NAME,
                description="The pull request has merge conflicts; resolve them so runs can use the merged code.",
                target_url=None))
        return RoutingResult("Merge conflicts reported on the pull request.", details={**details, "reported": True})

    def _client(self, integration: IntegrationRecord) -> AzureDevOpsClient:
        pat = self._secrets.get(pat_secret_name(integration.id), integration.pat_version)
        if pat is None:
            raise AzureDevOpsError("invalid_credentials", f"No personal access token is stored for integration "
                                   f"{integration.id!r}; save one with PATCH /api/integrations/{{id}}.")
        return self._client_factory(integration.organization_url, pat)


def _ado(call: Callable[[], Any]) -> Any:
    """Run one Azure DevOps call; transient failures become `DependencyUnavailable` so the queue retries."""
    try:
        return call()
    except AzureDevOpsError as error:
        if error.kind in _TRANSIENT:
            raise DependencyUnavailable("Azure DevOps", str(error)) from error
        raise


def _nobody_uses(repository_name: str, repository_id: str) -> str:
    return (f"No stack or module uses repository {repository_name} ({repository_id}) through this integration, "
            "so nothing runs.")


def iteration_of(iterations: list[dict[str, Any]], source_commit: str | None) -> int:
    """Return the newest iteration whose source commit is `source_commit`, else the newest one (0 if none).

    The event names the head commit it saw. By the time it is processed, a newer push may have added
    an iteration, and a status must name the iteration of the commit it is about.
    """
    newest = 0
    matching = 0
    for item in iterations:
        number = int(item.get("id", 0) or 0)
        newest = max(newest, number)
        commit = (item.get("sourceRefCommit") or {}).get("commitId")
        if source_commit and isinstance(commit, str) and commit.lower() == source_commit.lower():
            matching = max(matching, number)
    return matching or newest


def _describe_runs(runs: list[RunRecord], route_count: int, started: datetime) -> str:
    if not runs:
        return f"None of the {route_count} stack(s) and module(s) on this repository is affected."
    names = ", ".join(f"{run.run_type} run of {run.stack_kind} {run.stack_id}"
                      + (" (already existed)" if run.created_at < started else "") for run in runs)
    return f"Runs: {names}."
