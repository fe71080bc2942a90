"""Run requests from pushes and pull requests, run states, and the commit statuses they map to.

A push to the branch a stack tracks starts a tracked run. A push to any other branch, and a pull
request into the tracked branch, start a proposed run. Both kinds start only for stacks whose
files the change touches (see `shared.core.matching`). A push and a pull request for the same
commit share one deduplication key, so together they make one proposed run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal
from urllib.parse import quote

from shared.core.events import PullRequestSnapshot, RefChange, split_ref_name
from shared.core.matching import CompiledRoute, RouteLike, compile_route
from shared.errors import ValidationFailed
from shared.routes import ROUTE_PREFIX

RunType = Literal["tracked", "proposed"]
StatusState = Literal["pending", "succeeded", "failed", "error"]

STATUS_GENRE: Final = "stackhook"
TRIGGER_PUSH: Final = "push"

_COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")


# --- states -----------------------------------------------------------------------------------


class RunState(StrEnum):
    """A state of a run, as the worker reports it, listed in the order a run passes through them."""

    QUEUED = "queued"
    PREPARING = "preparing"
    PLANNING = "planning"
    UNCONFIRMED = "unconfirmed"
    APPLYING = "applying"
    FINISHED = "finished"
    FAILED = "failed"
    DISCARDED = "discarded"
    CANCELED = "canceled"


TERMINAL_STATES: Final = frozenset({RunState.FINISHED, RunState.FAILED, RunState.DISCARDED, RunState.CANCELED})

_ACTIVE_ORDER: Final = (
    RunState.QUEUED,
    RunState.PREPARING,
    RunState.PLANNING,
    RunState.UNCONFIRMED,
    RunState.APPLYING,
)


def can_transition(current: RunState, new: RunState) -> bool:
    """Tell whether a run may move from `current` to `new`.

    The same state is always allowed, as a no-op for a repeated report. Otherwise a terminal state
    is final, any other state may end in any terminal state, and an active state may only move
    forward in the order queued, preparing, planning, unconfirmed, applying. States may be
    skipped, so planning may go straight to applying, but nothing goes back, to queued or elsewhere.
    """
    if current == new:
        return True
    if current in TERMINAL_STATES:
        return False
    if new in TERMINAL_STATES:
        return True
    return _ACTIVE_ORDER.index(new) > _ACTIVE_ORDER.index(current)


def apply_transition(current: RunState, new: RunState) -> RunState:
    """Return the state after moving from `current` to `new`.

    Raises ValidationFailed(field="state") when `can_transition` rejects the move.
    """
    if not can_transition(current, new):
        reason = "it has ended" if current in TERMINAL_STATES else "a run never goes back to an earlier state"
        raise ValidationFailed(
            f"a run cannot move from {current.value} to {new.value} because {reason}; start a new run instead",
            field="state",
        )
    return new


# States that only a tracked run reaches: a proposed run plans and stops, it never applies.
TRACKED_ONLY_STATES: Final = frozenset({RunState.UNCONFIRMED, RunState.APPLYING})


def check_state_for_run_type(run_type: str, new: RunState) -> None:
    """Raise ValidationFailed(field="state") when a proposed run is asked to reach an apply state."""
    if run_type == "proposed" and new in TRACKED_ONLY_STATES:
        raise ValidationFailed(
            f"a proposed run cannot be {new.value}: proposed runs only plan; report finished or failed after "
            "the plan instead", field="state")


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A run to start: which stack or module, which commit, and what caused it.

    `pull_request_id` and `iteration_id` are set for runs caused by a pull request. `force_new`
    marks a request that repeats a run on purpose, such as a comment command, so the caller
    starts it even when a run with the same `dedup_key` exists. Raises ValidationFailed for a
    commit that is not a lower-case 40-digit SHA-1, a tracked run with a pull request, or an
    iteration without a pull request.
    """

    kind: str
    stack_id: str
    run_type: RunType
    commit: str
    branch: str
    pull_request_id: int | None
    iteration_id: int | None
    trigger: str
    triggered_by: str
    force_new: bool = False

    def __post_init__(self) -> None:
        if self.run_type not in ("tracked", "proposed"):
            raise ValidationFailed(
                f"run type {self.run_type!r} is invalid; use 'tracked' or 'proposed'", field="runType"
            )
        if not _COMMIT_ID.fullmatch(self.commit):
            raise ValidationFailed(
                f"commit {self.commit!r} is not a commit id; give the 40 lower-case hexadecimal digits of a "
                "SHA-1 commit id",
                field="commit",
            )
        if self.run_type == "tracked" and self.pull_request_id is not None:
            raise ValidationFailed(
                f"a tracked run cannot belong to pull request {self.pull_request_id}; pull requests start "
                "proposed runs",
                field="pullRequestId",
            )
        if self.iteration_id is not None and self.pull_request_id is None:
            raise ValidationFailed(
                f"iteration {self.iteration_id} is given without a pull request; give the pull request id too",
                field="iterationId",
            )

    @property
    def dedup_key(self) -> str:
        """The key `<kind>:<stack id>:<run type>:<commit>` under which one run of a commit is kept.

        It leaves out the branch, trigger and pull request, so a push and a pull request for the
        same commit and run type give one key. Azure Table Storage keys allow `:`.
        """
        return f"{self.kind}:{self.stack_id}:{self.run_type}:{self.commit}"


def runs_for_push(
    routes: Iterable[RouteLike], ref: RefChange, changed_paths: Iterable[str], pusher: str
) -> list[RunRequest]:
    """Decide the runs that one pushed ref starts.

    Tags, other refs and deleted branches start nothing. For a branch, each route whose files
    `changed_paths` touches gets a tracked run when the branch is the route's tracked branch, and
    a proposed run otherwise. Runs are in the order of `routes`, without repeated keys.
    """
    if ref.kind != "branch" or ref.deleted:
        return []
    paths = tuple(changed_paths)
    requests: list[RunRequest] = []
    for compiled in _touched_routes(routes, paths):
        route = compiled.route
        run_type: RunType = "tracked" if ref.short_name == _branch_name(route.tracked_branch) else "proposed"
        requests.append(
            RunRequest(
                kind=route.kind,
                stack_id=route.id,
                run_type=run_type,
                commit=ref.new_object_id.lower(),
                branch=ref.short_name,
                pull_request_id=None,
                iteration_id=None,
                trigger=TRIGGER_PUSH,
                triggered_by=pusher,
            )
        )
    return _without_repeats(requests)


def runs_for_pull_request(
    routes: Iterable[RouteLike],
    pull_request: PullRequestSnapshot,
    iteration_id: int,
    changed_paths: Iterable[str],
    actor: str,
    trigger: str,
    *,
    force_new: bool = False,
) -> list[RunRequest]:
    """Decide the proposed runs of a pull request's source commit.

    Each route that tracks the pull request's target branch and whose files `changed_paths`
    touches gets a proposed run. No runs start while the source commit is unknown (Azure DevOps
    has not computed the merge yet) or when the target is not a branch. Whether the pull request
    should start runs at all (active, not a draft) is decided before, by
    `PullRequestChange.starts_runs` or the comment command.
    """
    if pull_request.source_commit is None:
        return []
    target_kind, target_branch = split_ref_name(pull_request.target_ref)
    if target_kind != "branch":
        return []
    _, source_branch = split_ref_name(pull_request.source_ref)
    paths = tuple(changed_paths)
    tracking = [route for route in routes if _branch_name(route.tracked_branch) == target_branch]
    requests = [
        RunRequest(
            kind=compiled.route.kind,
            stack_id=compiled.route.id,
            run_type="proposed",
            commit=pull_request.source_commit.lower(),
            branch=source_branch,
            pull_request_id=pull_request.pull_request_id,
            iteration_id=iteration_id,
            trigger=trigger,
            triggered_by=actor,
            force_new=force_new,
        )
        for compiled in _touched_routes(tracking, paths)
    ]
    return _without_repeats(requests)


def _touched_routes(routes: Iterable[RouteLike], paths: Sequence[str]) -> list[CompiledRoute]:
    compiled = (compile_route(route) for route in routes)
    return [route for route in compiled if route.touched_by(paths)]


def _branch_name(tracked_branch: str) -> str:
    """Accept a tracked branch given as a short name or as a full `refs/heads/` ref."""
    return tracked_branch.removeprefix("refs/heads/")


def _without_repeats(requests: list[RunRequest]) -> list[RunRequest]:
    seen: set[str] = set()
    unique: list[RunRequest] = []
    for request in requests:
        if request.dedup_key not in seen:
            seen.add(request.dedup_key)
            unique.append(request)
    return unique


# --- commit statuses --------------------------------------------------------------------------

_STATUS_STATES: Final[dict[RunState, StatusState]] = {
    RunState.QUEUED: "pending",
    RunState.PREPARING: "pending",
    RunState.PLANNING: "pending",
    RunState.UNCONFIRMED: "pending",
    RunState.APPLYING: "pending",
    RunState.FINISHED: "succeeded",
    RunState.FAILED: "failed",
    # Canceled and discarded runs are not successes, so a branch policy that requires this status
    # must not pass on them. `error` keeps them apart from `failed`, which means the plan or apply failed.
    RunState.DISCARDED: "error",
    RunState.CANCELED: "error",
}

_STATUS_PHRASES: Final[dict[RunState, str]] = {
    RunState.QUEUED: "is queued",
    RunState.PREPARING: "is preparing",
    RunState.PLANNING: "is planning",
    RunState.UNCONFIRMED: "is waiting for confirmation",
    RunState.APPLYING: "is applying",
    RunState.FINISHED: "finished",
    RunState.FAILED: "failed",
    RunState.DISCARDED: "was discarded",
    RunState.CANCELED: "was canceled",
}


def status_state(run_state: RunState) -> StatusState:
    """Map a run state to the Azure DevOps status state posted for its commit or pull request."""
    return _STATUS_STATES[run_state]


def status_description(run_state: RunState, run_type: RunType) -> str:
    """Build the one-line status description, such as "Proposed run is planning"."""
    return f"{run_type.capitalize()} run {_STATUS_PHRASES[run_state]}"


def status_context(kind: str, stack_id: str) -> tuple[str, str]:
    """Return the status context (genre, name): `stackhook` and `<kind>/<stack id>`.

    Branch policies match a required status by genre and name separately.
    """
    return STATUS_GENRE, f"{kind}/{stack_id}"


def run_target_url(user_facing_host_url: str, public_base_url: str, kind: str, stack_id: str, run_id: str) -> str:
    """Build the link to a run, `<public base URL>/api/runs/<kind>/<stack id>/<run id>`.

    This service serves the run page, so the link always starts with its public base URL, and
    `user_facing_host_url` does not change it. That URL is for links into Azure DevOps, and a
    `private://` one cannot be opened in a browser at all. Raises ValidationFailed when kind,
    stack id or run id is empty.
    """
    for field, value in (("kind", kind), ("stackId", stack_id), ("runId", run_id)):
        if not value:
            raise ValidationFailed(f"{field} is empty; a run link needs the kind, stack id and run id", field=field)
    segments = "/".join(quote(segment, safe="") for segment in (kind, stack_id, run_id))
    return f"{public_base_url.rstrip('/')}/{ROUTE_PREFIX}/runs/{segments}"
