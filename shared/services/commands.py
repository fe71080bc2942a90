"""Pull request comment commands: screen a comment, run its commands and reply in its thread.

The actor of a command is the comment author, matched to role bindings by the author's unique
name (a UPN or email address) and Azure DevOps identity id. `propose` and `status` need read on the
stack's space, `deploy`, `lock` and `unlock` need write. A stack the author cannot read is reported
as unknown, so a reply never shows that it exists.

A comment runs its commands once: a row keyed by (pull request, thread, comment id) is created
before the first command runs, and a second delivery of the comment finds it. The reply is stored
on that row and posted afterwards. When the post fails, the delivery shows `failed` with the error
and the `command-replies` queue posts the stored reply again, so the commands never run twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.ado.client import AzureDevOpsClient
from shared.core.access import Role, RoleBinding, SpaceTree, effective_role, integration_usable_in, role_at_least
from shared.core.commands import (
    Command,
    CommandError,
    ReferenceKind,
    StackReference,
    is_own_reply,
    parse_commands,
    required_role,
)
from shared.core.events import STATUS_ABANDONED, STATUS_COMPLETED, CommentEvent, Identity, split_ref_name
from shared.core.identity import Principal, normalise_subject
from shared.core.matching import compile_route
from shared.core.replies import (
    ReplyPart,
    RunLink,
    StatusRow,
    render_closed_pull_request,
    render_error,
    render_help,
    render_lock_conflict,
    render_locked,
    render_refused,
    render_replies,
    render_started,
    render_status,
    render_unlocked,
)
from shared.core.runs import RunRequest, run_target_url, runs_for_pull_request
from shared.errors import AzureDevOpsError, NotFound, ValidationFailed
from shared.secrets import SecretStore
from shared.services.routing import iteration_of
from shared.services.runs import RunService, retry_delay
from shared.settings import Settings
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.commands import CLOSED_ROW, CommandStore, ReplyTarget, comment_row
from shared.storage.deliveries import DeliveryRepository
from shared.storage.integrations import IntegrationRecord, IntegrationRepository
from shared.storage.names import COMMAND_REPLIES_QUEUE, pat_secret_name
from shared.storage.runs import RunRecord, RunRepository
from shared.storage.spaces import SpaceRepository
from shared.storage.stacks import StackRepository, StackRoute

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str, str], AzureDevOpsClient]

TRIGGER_PROPOSE: Final = "comment.propose"
TRIGGER_DEPLOY: Final = "comment.deploy"
# Suggestions listed when a command is rejected. The reply renderer bounds the whole reply as well.
_MAX_SUGGESTIONS: Final = 25
# Newest runs of a stack read by `status` when it looks for a run of the pull request's head commit.
_STATUS_PAGE_SIZE: Final = 10


# --- screening (pure) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Screened:
    """A comment to act on: its parsed commands, or the reason it is ignored."""

    commands: tuple[Command | CommandError, ...] = ()
    ignored_because: str | None = None


def screen_comment(event: CommentEvent, own_identity_id: str | None, prefix: str) -> Screened:
    """Decide whether a comment carries commands to run, without any I/O.

    Ignored: events without a pull request (resource version 1.0), edited, deleted and system
    comments, other comment types, comments by the integration's own identity or carrying the
    reply marker, comments without a thread id, and comments without a command line.
    """
    if event.pull_request is None or event.repository is None:
        return Screened(ignored_because="The comment event carries no pull request (resource version 1.0); choose "
                                        "resource version 2.0 in the subscription.")
    if event.state != "new":
        return Screened(ignored_because=f"The comment is {event.state}; commands run only when a comment is "
                                        "first published.")
    if event.comment_type.lower() != "text":
        return Screened(ignored_because=f"The comment type is {event.comment_type}; only text comments carry "
                                        "commands.")
    if own_identity_id is not None and event.author.id.lower() == own_identity_id.lower():
        return Screened(ignored_because="The comment was written by this integration's own identity.")
    if is_own_reply(event.content):
        return Screened(ignored_because="The comment is a reply of stackhook (it carries the reply marker).")
    commands = tuple(parse_commands(event.content, prefix))
    if not commands:
        return Screened(ignored_because=f"The comment has no command line starting with {prefix}.")
    if event.thread_id is None:
        return Screened(ignored_because="The comment's links name no thread, so there is nowhere to reply; "
                                        "its commands were not run.")
    return Screened(commands=commands)


def comment_principal(author: Identity) -> Principal:
    """Build the principal of a comment author from the unique name and the identity id."""
    values = [value for value in (author.unique_name, author.id) if value]
    subjects = frozenset(normalise_subject(value) for value in values if normalise_subject(value))
    return Principal(id=author.id, name=author.unique_name or author.display_name or author.id,
                     subjects=subjects, identity_provider="azure-devops")


def matching_routes(reference: StackReference, routes: Sequence[StackRoute], kinds: Sequence[str]
                    ) -> list[StackRoute]:
    """Return the routes whose id or name matches the reference, among the allowed kinds."""
    expected = reference.normalised
    allowed = [reference.kind] if reference.kind is not None else list(kinds)
    by_id = [route for route in routes
             if route.kind in allowed and StackReference(None, route.id).normalised == expected]
    if by_id:
        return by_id
    return [route for route in routes
            if route.kind in allowed and route.name and StackReference(None, route.name).normalised == expected]


def reference_text(route: StackRoute, *, qualified: bool) -> str:
    """Return how to name the route in a command: `stack:<id>` when the kind must be explicit."""
    return StackReference(reference_kind(route.kind) if qualified else None, route.id).text


def reference_kind(kind: str) -> ReferenceKind:
    """Return a stored stack kind as a reference kind; anything but `module` is a stack."""
    return "module" if kind == "module" else "stack"


# --- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommentOutcome:
    """The result of handling a comment: `processed`, `ignored` or `failed`, the reason, and details for the log."""

    outcome: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class ReplyRetryMessage(BaseModel):
    """A reply to post again, on the `command-replies` queue; the reply itself is in the table."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    integration_id: str = Field(min_length=1, max_length=200)
    project_id: str = Field(min_length=1, max_length=200)
    repository_id: str = Field(min_length=1, max_length=200)
    pull_request_id: int = Field(ge=1)
    thread_id: int = Field(ge=0)
    parent_comment_id: int = Field(ge=0)
    row: str = Field(min_length=1, max_length=200)
    delivery_id: str = Field(min_length=1, max_length=200)
    attempt: int = Field(default=2, ge=1)


@dataclass
class _Access:
    """The comment author's roles, computed from one read of spaces and bindings."""

    principal: Principal
    tree: SpaceTree
    bindings: Sequence[RoleBinding]
    bootstrap_admins: Sequence[str]

    def role(self, space_id: str) -> Role | None:
        try:
            return effective_role(self.principal, space_id, self.tree, self.bindings, self.bootstrap_admins)
        except NotFound:
            return None


class _Rejected(Exception):
    """Raised for a command that cannot run, with the reply part to send instead."""

    def __init__(self, part: ReplyPart) -> None:
        super().__init__("command rejected")
        self.part = part


# --- the service ------------------------------------------------------------------------------


class CommandService:
    """Runs the commands of pull request comments and posts the replies."""

    def __init__(self, settings: Settings, integrations: IntegrationRepository, stacks: StackRepository,
                 spaces: SpaceRepository, runs: RunService, run_records: RunRepository, store: CommandStore,
                 deliveries: DeliveryRepository, secrets: SecretStore, clients: StorageClients,
                 client_factory: ClientFactory) -> None:
        self._settings = settings
        self._integrations = integrations
        self._stacks = stacks
        self._spaces = spaces
        self._runs = runs
        self._run_records = run_records
        self._store = store
        self._deliveries = deliveries
        self._secrets = secrets
        self._clients = clients
        self._client_factory = client_factory

    @property
    def prefix(self) -> str:
        return self._settings.command_prefix

    def handle(self, integration: IntegrationRecord, event: CommentEvent, delivery_id: str) -> CommentOutcome:
        """Run the commands of one comment delivery and reply to it."""
        screened = screen_comment(event, integration.identity_id, self.prefix)
        if screened.ignored_because is not None:
            return CommentOutcome("ignored", screened.ignored_because)
        assert event.pull_request is not None
        assert event.repository is not None
        assert event.thread_id is not None
        target = ReplyTarget(integration.id, event.repository.project_id, event.repository.repository_id.lower(),
                             event.pull_request.pull_request_id, event.thread_id, event.comment_id)

        live = self._live_pull_request(integration, target)
        # Closed in the event or closed now: either way the commands do not run.
        status = event.pull_request.status
        if status not in (STATUS_COMPLETED, STATUS_ABANDONED) and live:
            status = str(live.get("status") or status)
        if status in (STATUS_COMPLETED, STATUS_ABANDONED):
            if self._store.claim_closed_notice(target, delivery_id) == "handled":
                return CommentOutcome("ignored", f"The pull request is {status}; this was already said in a reply.")
            reply = render_replies([render_closed_pull_request(status)])
            reason = f"The pull request is {status}, so its commands were not run; a reply says so."
            return self._reply(integration, target, CLOSED_ROW, delivery_id, reply, reason, "ignored", {})

        claim = self._store.claim_comment(target, event.comment_id, delivery_id)
        if claim == "handled":
            return CommentOutcome("ignored", f"Comment {event.comment_id} in thread {event.thread_id} was already "
                                             "handled by another delivery.")
        session = _CommentSession(self, integration, event, live)
        try:
            parts, summaries = session.run(screened.commands)
        finally:
            session.close()
        reply = render_replies(parts)
        names = ", ".join(summary["command"] for summary in summaries)
        reason = f"Ran {len(summaries)} command(s) from comment {event.comment_id}: {names}."
        return self._reply(integration, target, comment_row(target.thread_id, event.comment_id), delivery_id, reply,
                           reason, "processed", {"commands": summaries})

    def _live_pull_request(self, integration: IntegrationRecord, target: ReplyTarget) -> dict[str, Any]:
        """Read the pull request as it is now; the event may be older than its last push or its closing."""
        try:
            with self._client(integration) as client:
                return dict(client.get_pull_request(target.project_id, target.repository_id, target.pull_request_id))
        except AzureDevOpsError as error:
            logger.warning("Could not read pull request %s of integration %s (%s); using the event's copy",
                           target.pull_request_id, integration.id, error.kind)
            return {}

    def release_locks(self, integration_id: str, repository_id: str, pull_request_id: int) -> list[str]:
        """Release the locks a completed or abandoned pull request holds; return the stack ids."""
        released = self._store.release_pull_request(integration_id, repository_id, pull_request_id)
        if released:
            logger.info("Released locks of pull request %s on stacks %s", pull_request_id, ", ".join(released))
        return released

    # Replies ----------------------------------------------------------------------------------

    def _reply(self, integration: IntegrationRecord, target: ReplyTarget, row: str, delivery_id: str, reply: str,
               reason: str, outcome: str, details: dict[str, Any]) -> CommentOutcome:
        self._store.store_reply(target, row, reply)
        error = self._post(integration, target, row, reply, attempt=1, delivery_id=delivery_id)
        if error is None:
            return CommentOutcome(outcome, f"{reason} Replied in thread {target.thread_id}.", details)
        return CommentOutcome("failed", f"{reason} Posting the reply failed: {error}", details)

    def retry_reply(self, message: ReplyRetryMessage) -> str:
        """Post a stored reply again; return `posted`, `retrying`, `failed` or `skipped`."""
        target = ReplyTarget(message.integration_id, message.project_id, message.repository_id,
                             message.pull_request_id, message.thread_id, message.parent_comment_id)
        record = self._store.find(target, message.row)
        if record is None or record.reply is None or record.state in ("posted", "failed"):
            return "skipped"
        integration = self._integrations.find(message.integration_id)
        if integration is None:
            self._store.record_attempt(target, message.row, state="failed", attempts=message.attempt,
                                       error="the integration was deleted")
            return "failed"
        error = self._post(integration, record.target, message.row, record.reply, attempt=message.attempt,
                           delivery_id=message.delivery_id)
        if error is None:
            self._record_delivery(integration.id, message.delivery_id, message.attempt, "processed",
                                  f"The commands ran once; the reply was posted on attempt {message.attempt}.")
            return "posted"
        final = self._store.find(target, message.row)
        return "retrying" if final is not None and final.state == "pending" else "failed"

    def _post(self, integration: IntegrationRecord, target: ReplyTarget, row: str, reply: str, *, attempt: int,
              delivery_id: str) -> str | None:
        """Post the reply; on failure record it, queue a retry when one can help, and return the error text."""
        try:
            with self._client(integration) as client:
                client.reply(target.project_id, target.repository_id, target.pull_request_id, target.thread_id,
                             target.parent_comment_id, reply)
        except AzureDevOpsError as error:
            delay = retry_delay(error.kind, attempt, error.retry_after)
            logger.warning("Reply to comment %s of pull request %s (delivery %s) failed on attempt %s (%s): %s",
                           target.parent_comment_id, target.pull_request_id, delivery_id, attempt, error.kind, error)
            if delay is None:
                self._store.record_attempt(target, row, state="failed", attempts=attempt, error=str(error))
                text = f"{error} The reply was not retried (attempt {attempt}, {error.kind})."
                self._record_delivery(integration.id, delivery_id, attempt, "failed", text)
                return text
            self._store.record_attempt(target, row, state="pending", attempts=attempt, error=str(error))
            self._queue_retry(target, row, delivery_id, attempt + 1, delay)
            text = f"{error} The reply is queued on {COMMAND_REPLIES_QUEUE} for attempt {attempt + 1}."
            self._record_delivery(integration.id, delivery_id, attempt, "failed", text)
            return text
        self._store.record_attempt(target, row, state="posted", attempts=attempt)
        logger.info("Replied to comment %s of pull request %s in thread %s (delivery %s, attempt %s)",
                    target.parent_comment_id, target.pull_request_id, target.thread_id, delivery_id, attempt)
        return None

    def _queue_retry(self, target: ReplyTarget, row: str, delivery_id: str, attempt: int, delay: float) -> None:
        body = {"integrationId": target.integration_id, "projectId": target.project_id,
                "repositoryId": target.repository_id, "pullRequestId": target.pull_request_id,
                "threadId": target.thread_id, "parentCommentId": target.parent_comment_id, "row": row,
                "deliveryId": delivery_id, "attempt": attempt}
        with storage_errors("Queue Storage"):
            self._clients.queue(COMMAND_REPLIES_QUEUE).send_message(json.dumps(body),
                                                                    visibility_timeout=max(1, int(delay)))

    def _record_delivery(self, integration_id: str, delivery_id: str, attempt: int, outcome: str,
                         reason: str) -> None:
        """Record the outcome of a reply retry on its delivery.

        The first attempt records nothing here, because the event processor stores the outcome that
        `handle` returns.
        """
        if attempt > 1:
            self._deliveries.update_outcome(integration_id, delivery_id, outcome=outcome, reason=reason)

    # Helpers shared with the session -----------------------------------------------------------

    def _client(self, integration: IntegrationRecord) -> AzureDevOpsClient:
        pat = self._secrets.get(pat_secret_name(integration.id), integration.pat_version)
        if pat is None:
            raise AzureDevOpsError("invalid_credentials", f"No personal access token is stored for integration "
                                   f"{integration.id!r}; save one with PATCH /api/integrations/{integration.id}.")
        return self._client_factory(integration.organization_url, pat)


class _CommentSession:
    """The state shared by the commands of one comment: access, routes, and Azure DevOps reads."""

    def __init__(self, service: CommandService, integration: IntegrationRecord, event: CommentEvent,
                 live: dict[str, Any]) -> None:
        assert event.pull_request is not None and event.repository is not None
        commit = (live.get("lastMergeSourceCommit") or {}).get("commitId") if live else None
        self._live_head: str | None = commit.lower() if isinstance(commit, str) else None
        self._service = service
        self._integration = integration
        self._event = event
        self._pull_request = event.pull_request
        self._repository = event.repository
        spaces = service._spaces
        self._access = _Access(comment_principal(event.author),
                               SpaceTree.from_spaces(record.to_space() for record in spaces.list_spaces()),
                               spaces.list_bindings(), service._settings.bootstrap_admins)
        self._routes = service._stacks.routes_for(integration.id, self._repository.repository_id)
        self._client: AzureDevOpsClient | None = None
        self._iteration: tuple[int, list[str]] | None = None
        self._actor = event.author.unique_name or event.author.display_name or event.author.id

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def run(self, commands: Sequence[Command | CommandError]) -> tuple[list[ReplyPart], list[dict[str, Any]]]:
        parts: list[ReplyPart] = []
        summaries: list[dict[str, Any]] = []
        for command in commands:
            if isinstance(command, CommandError):
                parts.append(render_error(command, self._service.prefix))
                summaries.append({"command": command.command_name or "unknown", "line": command.line_number,
                                  "result": "invalid"})
                continue
            try:
                part, result = self._run_one(command)
            except _Rejected as rejected:
                part, result = rejected.part, "rejected"
            except AzureDevOpsError as error:
                logger.warning("Command %s of comment %s failed on Azure DevOps (%s): %s", command.name,
                               self._event.comment_id, error.kind, error)
                part = render_refused(command, f"reading the pull request from Azure DevOps failed ({error.kind}); "
                                               "write the command again later", [])
                result = "failed"
            parts.append(part)
            summaries.append({"command": command.name, "line": command.line_number, "result": result})
        return parts, summaries

    def _run_one(self, command: Command) -> tuple[ReplyPart, str]:
        if command.name == "help":
            return render_help(self._service.prefix), "help"
        if command.name == "propose":
            return self._propose(command), "started"
        if command.name == "deploy":
            return self._deploy(command), "started"
        if command.name == "lock":
            return self._lock(command)
        if command.name == "unlock":
            return self._unlock(command)
        return self._status(), "status"

    # Commands ---------------------------------------------------------------------------------

    def _propose(self, command: Command) -> ReplyPart:
        head = self._head_commit(command)
        iteration_id, changed = self._latest_iteration()
        if command.references:
            routes = [self._resolve(command, reference, ("stack", "module")) for reference in command.references]
            requests = [self._request(route, "proposed", head, iteration_id) for route in routes]
        else:
            if iteration_id is None:
                raise _Rejected(render_refused(command, "the pull request has no iteration yet, so no changed files "
                                                       "are known; name the stacks to propose", []))
            readable = [route for route in self._routes if self._can_use(route, "read")]
            snapshot = replace(self._pull_request, source_commit=head)
            requests = runs_for_pull_request(readable, snapshot, iteration_id, changed, self._actor,
                                             TRIGGER_PROPOSE, force_new=True)
        return render_started(command, self._start(requests))

    def _deploy(self, command: Command) -> ReplyPart:
        route = self._resolve(command, command.references[0], ("stack",))
        head = self._head_commit(command)
        lock = self._service._store.find_lock(route.id)
        if lock is not None and not lock.held_by(self._integration.id, self._repository.repository_id,
                                                 self._pull_request.pull_request_id):
            raise _Rejected(render_lock_conflict(route.id, lock.pull_request_id))
        # NOTE: a tracked run cannot name a pull request (RunRequest rejects it), so a deploy from a
        # comment is not in the pull request's run index and completing the pull request leaves it alone.
        return render_started(command, self._start([self._request(route, "tracked", head, None)]))

    def _lock(self, command: Command) -> tuple[ReplyPart, str]:
        route = self._resolve(command, command.references[0], ("stack",))
        store = self._service._store
        lock = store.acquire(route.id, self._integration.id, self._repository.repository_id,
                             self._pull_request.pull_request_id, self._actor)
        if not lock.held_by(self._integration.id, self._repository.repository_id, self._pull_request.pull_request_id):
            return render_lock_conflict(route.id, lock.pull_request_id), "rejected"
        return render_locked(route.name, route.id, self._service.prefix), "locked"

    def _unlock(self, command: Command) -> tuple[ReplyPart, str]:
        route = self._resolve(command, command.references[0], ("stack",))
        lock = self._service._store.release(route.id, self._integration.id, self._repository.repository_id,
                                            self._pull_request.pull_request_id)
        if lock is None:
            return render_refused(command, f"stack {route.id} is not locked", []), "rejected"
        if not lock.held_by(self._integration.id, self._repository.repository_id, self._pull_request.pull_request_id):
            reason = (f"stack {route.id} is locked by pull request {lock.pull_request_id}, and only that pull "
                      "request can unlock it")
            return render_refused(command, reason, []), "rejected"
        return render_unlocked(route.name, route.id), "unlocked"

    def _status(self) -> ReplyPart:
        head = self._pull_request.source_commit
        _, changed = self._latest_iteration()
        _, target_branch = split_ref_name(self._pull_request.target_ref)
        pull_request_runs = self._service._run_records.pull_request_runs(
            self._integration.id, self._repository.repository_id, self._pull_request.pull_request_id)
        affected: dict[tuple[str, str], StackRoute] = {}
        for route in self._routes:
            tracks_target = route.tracked_branch.removeprefix("refs/heads/") == target_branch
            has_run = any(run.stack_kind == route.kind and run.stack_id == route.id for run in pull_request_runs)
            if (has_run or (tracks_target and compile_route(route).touched_by(changed))) and self._can_use(route,
                                                                                                           "read"):
                affected[(route.kind, route.id)] = route
        rows = [self._status_row(route, head, pull_request_runs) for _, route in sorted(affected.items())]
        return render_status(rows)

    def _status_row(self, route: StackRoute, head: str | None, pull_request_runs: Sequence[RunRecord]) -> StatusRow:
        candidates = [run for run in pull_request_runs if run.stack_kind == route.kind and run.stack_id == route.id]
        newest, _ = self._service._run_records.list_page(route.kind, route.id, page_size=_STATUS_PAGE_SIZE,
                                                         continuation=None)
        candidates += [run for run in newest if head is not None and run.commit == head]
        if not candidates:
            return StatusRow(reference_kind(route.kind), route.id, route.name, None, None, None, None)
        latest = max(candidates, key=lambda run: run.created_at)
        return StatusRow(reference_kind(route.kind), route.id, route.name, latest.run_type, latest.state,
                         latest.commit, self._run_url(latest))

    # Resolution and access --------------------------------------------------------------------

    def _resolve(self, command: Command, reference: StackReference, kinds: Sequence[str]) -> StackRoute:
        """Return the route the reference names, or raise `_Rejected` with what would work instead."""
        needed = required_role(command.name) or "read"
        matches = matching_routes(reference, self._routes, kinds)
        visible = [route for route in matches if self._role(route) is not None]
        if len(visible) > 1:
            names = " or ".join(reference_text(route, qualified=True) for route in visible)
            raise self._rejection(command, f"{reference.text} names more than one: write {names}", kinds, needed)
        if not visible:
            raise self._rejection(command, self._unknown_reason(reference, kinds), kinds, needed)
        route = visible[0]
        if not self._reachable(route):
            reason = (f"{route.kind} {route.id} is in space {route.space_id}, which integration "
                      f"{self._integration.name} does not serve")
            raise self._rejection(command, reason, kinds, needed)
        role = self._role(route)
        if not role_at_least(role, needed):
            reason = (f"{command.name} needs the {needed} role on space {route.space_id}, and you have the {role} "
                      "role there; ask an admin of that space to grant it")
            raise self._rejection(command, reason, kinds, needed)
        return route

    def _unknown_reason(self, reference: StackReference, kinds: Sequence[str]) -> str:
        """Explain a reference that no usable route matches, naming only what the author can read."""
        repository = self._repository.repository_name
        for kind in ([reference.kind] if reference.kind else kinds):
            for candidate in dict.fromkeys((reference.name, reference.name.strip().lower())):
                try:
                    stack = self._service._stacks.find(kind, candidate)
                except (NotFound, ValidationFailed):
                    stack = None
                if stack is None or self._access.role(stack.space_id) is None:
                    continue
                if stack.integration_id != self._integration.id:
                    return (f"{kind} {stack.id} uses integration {stack.integration_id}, not "
                            f"{self._integration.id}, which delivered this comment")
                return f"{kind} {stack.id} uses repository {stack.repository_name}, not {repository}"
        return f"{reference.text} is not a stack or module of repository {repository} that you can see"

    def _rejection(self, command: Command, reason: str, kinds: Sequence[str], needed: Role) -> _Rejected:
        usable = [route for route in self._routes if route.kind in kinds and self._can_use(route, needed)]
        ids = [route.id for route in usable]
        suggestions = [f"{self._service.prefix} {command.name} "
                       f"{reference_text(route, qualified=ids.count(route.id) > 1)}"
                       for route in usable[:_MAX_SUGGESTIONS]]
        return _Rejected(render_refused(command, reason, suggestions))

    def _role(self, route: StackRoute) -> Role | None:
        return self._access.role(route.space_id)

    def _reachable(self, route: StackRoute) -> bool:
        return integration_usable_in(self._integration.space_id, self._integration.is_default, route.space_id,
                                     self._access.tree)

    def _can_use(self, route: StackRoute, needed: Role) -> bool:
        return self._reachable(route) and role_at_least(self._role(route), needed)

    # Runs and Azure DevOps --------------------------------------------------------------------

    def _head_commit(self, command: Command) -> str:
        head = self._live_head or self._pull_request.source_commit
        if head is None:
            raise _Rejected(render_refused(command, "Azure DevOps has not computed the pull request's latest commit "
                                                   "yet; write the command again in a minute", []))
        return head

    def _request(self, route: StackRoute, run_type: str, commit: str, iteration_id: int | None) -> RunRequest:
        _, source_branch = split_ref_name(self._pull_request.source_ref)
        proposed = run_type == "proposed"
        return RunRequest(kind=route.kind, stack_id=route.id, run_type="proposed" if proposed else "tracked",
                          commit=commit, branch=source_branch,
                          pull_request_id=self._pull_request.pull_request_id if proposed else None,
                          iteration_id=iteration_id if proposed else None,
                          trigger=TRIGGER_PROPOSE if proposed else TRIGGER_DEPLOY, triggered_by=self._actor,
                          force_new=True)

    def _start(self, requests: Sequence[RunRequest]) -> list[RunLink]:
        runs = self._service._runs.create_runs(requests, integration=self._integration,
                                               project_id=self._repository.project_id,
                                               repository_id=self._repository.repository_id)
        route_names = {(route.kind, route.id): route.name for route in self._routes}
        return [RunLink(kind=reference_kind(run.stack_kind), stack_id=run.stack_id,
                        stack_name=route_names.get((run.stack_kind, run.stack_id), run.stack_id), run_id=run.id,
                        run_type=run.run_type, url=self._run_url(run), state=run.state, deduplicated=False)
                for run in runs]

    def _run_url(self, run: RunRecord) -> str:
        return run_target_url(self._integration.user_facing_host_url, self._service._settings.public_base_url,
                              run.stack_kind, run.stack_id, run.id)

    def _latest_iteration(self) -> tuple[int | None, list[str]]:
        """Return the latest iteration id and its changed paths, read once per comment."""
        if self._iteration is None:
            if self._client is None:
                self._client = self._service._client(self._integration)
            project, repository = self._repository.project_id, self._repository.repository_id
            number = self._pull_request.pull_request_id
            iterations = self._client.list_iterations(project, repository, number)
            latest = iteration_of(iterations, self._live_head or self._pull_request.source_commit)
            changed = self._client.get_iteration_changes(project, repository, number, latest) if latest else []
            self._iteration = (latest, changed)
        latest, changed = self._iteration
        return (latest or None), changed
