import itertools

import pytest

from shared.core.events import PullRequestSnapshot, RefChange, split_ref_name
from shared.core.matching import RouteSpec
from shared.core.runs import (
    TERMINAL_STATES,
    RunRequest,
    RunState,
    apply_transition,
    can_transition,
    check_state_for_run_type,
    run_target_url,
    runs_for_pull_request,
    runs_for_push,
    status_context,
    status_description,
    status_state,
)
from shared.errors import ValidationFailed

OLD = "1" * 40
NEW = "a" * 40
ZERO = "0" * 40

PROD = RouteSpec(kind="stack", id="prod", tracked_branch="main", project_root="stacks/prod")
DEV = RouteSpec(kind="stack", id="dev", tracked_branch="develop", project_root="stacks/dev")
VPC = RouteSpec(kind="module", id="vpc", tracked_branch="refs/heads/main", project_root="modules/vpc")
ROUTES = (PROD, DEV, VPC)


def ref(name: str, old: str = OLD, new: str = NEW) -> RefChange:
    kind, short = split_ref_name(name)
    return RefChange(ref_name=name, kind=kind, short_name=short, old_object_id=old, new_object_id=new,
                     created=old == ZERO, deleted=new == ZERO)


def pull_request(target: str = "refs/heads/main", source_commit: str | None = NEW) -> PullRequestSnapshot:
    return PullRequestSnapshot(
        pull_request_id=7, status="active", is_draft=False, source_ref="refs/heads/feature/x",
        target_ref=target, source_commit=source_commit, target_commit=OLD, merge_commit=None,
        merge_status=None, title="t", reviewer_votes=(), reviewer_ids=(), label_names=(),
        created_by=None, closed_by=None, closed_date=None,
    )


def summary(requests: list[RunRequest]) -> list[tuple[str, str]]:
    return [(request.stack_id, request.run_type) for request in requests]


# --- push -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref_name", "paths", "expected"),
    [
        ("refs/heads/main", ["/stacks/prod/main.tf"], [("prod", "tracked")]),
        ("refs/heads/main", ["/stacks/prod/a.tf", "/modules/vpc/b.tf"], [("prod", "tracked"), ("vpc", "tracked")]),
        ("refs/heads/main", ["/stacks/dev/main.tf"], [("dev", "proposed")]),
        ("refs/heads/develop", ["/stacks/dev/main.tf"], [("dev", "tracked")]),
        ("refs/heads/feature/x", ["/stacks/prod/main.tf", "/stacks/dev/a.tf"],
         [("prod", "proposed"), ("dev", "proposed")]),
        ("refs/heads/Main", ["/stacks/prod/main.tf"], [("prod", "proposed")]),
        ("refs/heads/main", ["/README.md"], []),
        ("refs/heads/main", [], []),
        ("refs/tags/v1.0.0", ["/stacks/prod/main.tf"], []),
        ("refs/notes/commits", ["/stacks/prod/main.tf"], []),
    ],
)
def test_push_runs(ref_name: str, paths: list[str], expected: list[tuple[str, str]]) -> None:
    assert summary(runs_for_push(ROUTES, ref(ref_name), paths, "alice")) == expected


def test_push_deleted_branch_starts_nothing() -> None:
    deleted = ref("refs/heads/main", new=ZERO)
    assert runs_for_push(ROUTES, deleted, ["/stacks/prod/main.tf"], "alice") == []


def test_push_created_branch_starts_runs() -> None:
    created = ref("refs/heads/feature/x", old=ZERO)
    assert summary(runs_for_push(ROUTES, created, ["/stacks/prod/main.tf"], "alice")) == [("prod", "proposed")]


def test_push_request_fields() -> None:
    [request] = runs_for_push([PROD], ref("refs/heads/feature/x", new="B" * 40), ["/stacks/prod/a.tf"], "alice")
    assert request.kind == "stack"
    assert request.commit == "b" * 40
    assert request.branch == "feature/x"
    assert request.pull_request_id is None
    assert request.iteration_id is None
    assert request.trigger == "push"
    assert request.triggered_by == "alice"
    assert request.force_new is False


def test_push_paths_single_use_iterator() -> None:
    paths = iter(["/stacks/prod/a.tf", "/stacks/dev/a.tf"])
    assert summary(runs_for_push(ROUTES, ref("refs/heads/x"), paths, "alice")) == [
        ("prod", "proposed"), ("dev", "proposed")]


def test_push_repeated_route_gives_one_run() -> None:
    requests = runs_for_push([PROD, PROD], ref("refs/heads/main"), ["/stacks/prod/a.tf"], "alice")
    assert len(requests) == 1


# --- pull requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "paths", "expected"),
    [
        ("refs/heads/main", ["/stacks/prod/a.tf"], [("prod", "proposed")]),
        ("refs/heads/main", ["/stacks/prod/a.tf", "/modules/vpc/a.tf"], [("prod", "proposed"), ("vpc", "proposed")]),
        ("refs/heads/main", ["/stacks/dev/a.tf"], []),
        ("refs/heads/develop", ["/stacks/dev/a.tf", "/stacks/prod/a.tf"], [("dev", "proposed")]),
        ("refs/heads/release", ["/stacks/prod/a.tf"], []),
        ("refs/heads/main", ["/docs/x.md"], []),
        ("refs/tags/main", ["/stacks/prod/a.tf"], []),
    ],
)
def test_pull_request_runs(target: str, paths: list[str], expected: list[tuple[str, str]]) -> None:
    requests = runs_for_pull_request(ROUTES, pull_request(target=target), 3, paths, "bob", "pull_request")
    assert summary(requests) == expected


def test_pull_request_unknown_commit() -> None:
    snapshot = pull_request(source_commit=None)
    assert runs_for_pull_request(ROUTES, snapshot, 3, ["/stacks/prod/a.tf"], "bob", "pull_request") == []


def test_pull_request_request_fields() -> None:
    [request] = runs_for_pull_request([PROD], pull_request(), 3, ["/stacks/prod/a.tf"], "bob", "comment",
                                      force_new=True)
    assert request.commit == NEW
    assert request.branch == "feature/x"
    assert request.pull_request_id == 7
    assert request.iteration_id == 3
    assert request.trigger == "comment"
    assert request.triggered_by == "bob"
    assert request.force_new is True


def test_dedup_key_push_and_pull_request() -> None:
    [from_push] = runs_for_push([PROD], ref("refs/heads/feature/x"), ["/stacks/prod/a.tf"], "alice")
    [from_pr] = runs_for_pull_request([PROD], pull_request(), 3, ["/stacks/prod/a.tf"], "bob", "pull_request")
    assert from_push.dedup_key == from_pr.dedup_key
    assert from_push.dedup_key == f"stack:prod:proposed:{NEW}"


def test_dedup_key_differs_by_type_and_stack() -> None:
    [tracked] = runs_for_push([PROD], ref("refs/heads/main"), ["/stacks/prod/a.tf"], "alice")
    [proposed] = runs_for_push([PROD], ref("refs/heads/other"), ["/stacks/prod/a.tf"], "alice")
    [module] = runs_for_push([VPC], ref("refs/heads/other"), ["/modules/vpc/a.tf"], "alice")
    assert len({tracked.dedup_key, proposed.dedup_key, module.dedup_key}) == 3


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"commit": "abc"}, "commit"),
        ({"commit": "A" * 40}, "commit"),
        ({"run_type": "manual"}, "runType"),
        ({"run_type": "tracked", "pull_request_id": 7}, "pullRequestId"),
        ({"pull_request_id": None, "iteration_id": 2}, "iterationId"),
    ],
)
def test_run_request_rejected(changes: dict[str, object], field: str) -> None:
    values: dict[str, object] = {
        "kind": "stack", "stack_id": "prod", "run_type": "proposed", "commit": NEW, "branch": "x",
        "pull_request_id": 7, "iteration_id": 1, "trigger": "push", "triggered_by": "alice",
    }
    values.update(changes)
    with pytest.raises(ValidationFailed) as caught:
        RunRequest(**values)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- states -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (RunState.QUEUED, RunState.PREPARING, True),
        (RunState.PREPARING, RunState.PLANNING, True),
        (RunState.PLANNING, RunState.UNCONFIRMED, True),
        (RunState.PLANNING, RunState.APPLYING, True),
        (RunState.PLANNING, RunState.FINISHED, True),
        (RunState.UNCONFIRMED, RunState.APPLYING, True),
        (RunState.UNCONFIRMED, RunState.DISCARDED, True),
        (RunState.APPLYING, RunState.FINISHED, True),
        (RunState.APPLYING, RunState.FAILED, True),
        (RunState.QUEUED, RunState.CANCELED, True),
        (RunState.QUEUED, RunState.PLANNING, True),
        (RunState.PREPARING, RunState.QUEUED, False),
        (RunState.PLANNING, RunState.QUEUED, False),
        (RunState.APPLYING, RunState.PLANNING, False),
        (RunState.UNCONFIRMED, RunState.PLANNING, False),
        (RunState.FINISHED, RunState.QUEUED, False),
        (RunState.FAILED, RunState.PLANNING, False),
        (RunState.CANCELED, RunState.FINISHED, False),
        (RunState.DISCARDED, RunState.APPLYING, False),
    ],
)
def test_can_transition(current: RunState, new: RunState, allowed: bool) -> None:
    assert can_transition(current, new) is allowed


@pytest.mark.parametrize("state", list(RunState))
def test_same_state_is_noop(state: RunState) -> None:
    assert apply_transition(state, state) is state


def test_transition_rules_hold_for_all_pairs() -> None:
    for current, new in itertools.permutations(RunState, 2):
        if current in TERMINAL_STATES or new is RunState.QUEUED:
            assert not can_transition(current, new), (current, new)
        if current not in TERMINAL_STATES and new in TERMINAL_STATES:
            assert can_transition(current, new), (current, new)


@pytest.mark.parametrize(
    ("current", "new", "fragment"),
    [
        (RunState.FINISHED, RunState.PLANNING, "it has ended"),
        (RunState.PLANNING, RunState.QUEUED, "never goes back"),
    ],
)
def test_apply_transition_rejected(current: RunState, new: RunState, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        apply_transition(current, new)
    assert caught.value.field == "state"
    assert fragment in caught.value.message


def test_terminal_states() -> None:
    assert {RunState.FINISHED, RunState.FAILED, RunState.DISCARDED, RunState.CANCELED} == TERMINAL_STATES


# --- statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (RunState.QUEUED, "pending"),
        (RunState.PREPARING, "pending"),
        (RunState.PLANNING, "pending"),
        (RunState.UNCONFIRMED, "pending"),
        (RunState.APPLYING, "pending"),
        (RunState.FINISHED, "succeeded"),
        (RunState.FAILED, "failed"),
        (RunState.DISCARDED, "error"),
        (RunState.CANCELED, "error"),
    ],
)
def test_status_state(state: RunState, expected: str) -> None:
    assert status_state(state) == expected


@pytest.mark.parametrize(
    ("state", "run_type", "expected"),
    [
        (RunState.PLANNING, "proposed", "Proposed run is planning"),
        (RunState.UNCONFIRMED, "tracked", "Tracked run is waiting for confirmation"),
        (RunState.FINISHED, "tracked", "Tracked run finished"),
        (RunState.CANCELED, "proposed", "Proposed run was canceled"),
    ],
)
def test_status_description(state: RunState, run_type: str, expected: str) -> None:
    assert status_description(state, run_type) == expected  # type: ignore[arg-type]


def test_status_description_all_short() -> None:
    for state in RunState:
        assert len(status_description(state, "proposed")) <= 60


def test_status_context() -> None:
    assert status_context("module", "vpc") == ("stackhook", "module/vpc")


@pytest.mark.parametrize(
    ("host", "base", "expected"),
    [
        ("https://dev.azure.com/org", "https://hook.example.com",
         "https://hook.example.com/api/runs/stack/prod/01HZ"),
        ("private://pool/ado", "https://hook.example.com/", "https://hook.example.com/api/runs/stack/prod/01HZ"),
    ],
)
def test_run_target_url(host: str, base: str, expected: str) -> None:
    assert run_target_url(host, base, "stack", "prod", "01HZ") == expected


def test_run_target_url_quotes_segments() -> None:
    assert run_target_url("", "https://h", "stack", "a/b", "r 1") == "https://h/api/runs/stack/a%2Fb/r%201"


def test_run_target_url_rejects_empty_id() -> None:
    with pytest.raises(ValidationFailed) as caught:
        run_target_url("", "https://h", "stack", "", "r")
    assert caught.value.field == "stackId"


@pytest.mark.parametrize("state", [RunState.UNCONFIRMED, RunState.APPLYING])
def test_proposed_run_never_applies(state: RunState) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_state_for_run_type("proposed", state)
    assert raised.value.field == "state"


@pytest.mark.parametrize("state", list(RunState))
def test_tracked_run_any_state(state: RunState) -> None:
    check_state_for_run_type("tracked", state)
