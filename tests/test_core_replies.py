import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.commands import (
    DEFAULT_PREFIX,
    REPLY_MARKER,
    Command,
    CommandError,
    StackReference,
    is_own_reply,
    parse_commands,
)
from shared.core.replies import (
    DEFAULT_MAX_REPLY_LENGTH,
    MIN_REPLY_LENGTH,
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

P = DEFAULT_PREFIX
DEPLOY = Command(name="deploy", references=(StackReference(None, "network"),), line="/stackhook deploy network",
                 line_number=1)
PROPOSE = Command(name="propose", references=(), line="/stackhook propose", line_number=2)
HOSTILE = (
    'x](https://evil.example) | <b>y</b>\n| a | b |\n<!-- stackhook:reply --> @alice #12 !3 `tick` '
    "www.evil.example *bold* \u202eevil"
)


def run(name: str = "network", *, deduplicated: bool = False, url: str | None = "https://host/runs/1") -> RunLink:
    return RunLink(kind="stack", stack_id="network", stack_name=name, run_id="01HRUN", run_type="proposed",
                   url=url, state="queued", deduplicated=deduplicated)


def row(number: int, name: str | None = None) -> StatusRow:
    return StatusRow(kind="stack", stack_id=f"stack-{number}", stack_name=name or f"Stack {number}",
                     run_type="tracked", run_state="finished", commit_sha="0123456789abcdef0123456789abcdef01234567",
                     url=f"https://host/runs/{number}")


def table_rows(reply: str) -> list[str]:
    return [line for line in reply.splitlines() if line.startswith("| ") and not line.startswith("| Stack |")]


def cells(table_row: str) -> list[str]:
    """Split a table row at the pipes that are not escaped."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", table_row.strip())[1:-1]]


ALL_PARTS = [
    render_help(P),
    render_started(DEPLOY, [run(), run(deduplicated=True)]),
    render_started(PROPOSE, []),
    render_refused(DEPLOY, "you need the write role on the space of this stack", ["dns", "edge"]),
    render_refused(DEPLOY, "no such stack", []),
    render_status([row(1), row(2)]),
    render_status([]),
    render_error(CommandError("/stackhook deploy", 3, "deploy takes exactly one stack", "usage", "deploy"), P),
    render_locked("Network", "network", P),
    render_unlocked("Network", "network"),
    render_lock_conflict("Network", 42),
    render_closed_pull_request("completed"),
    render_closed_pull_request("abandoned"),
]


@pytest.mark.parametrize("part", ALL_PARTS)
def test_reply_starts_with_marker(part: ReplyPart) -> None:
    reply = render_replies([part])
    assert reply.startswith(REPLY_MARKER + "\n")
    assert is_own_reply(reply)
    assert reply.count("stackhook:reply") == 1


@pytest.mark.parametrize("part", ALL_PARTS)
def test_reply_carries_no_command(part: ReplyPart) -> None:
    reply = render_replies([part])
    without_marker = reply.replace(REPLY_MARKER, "")
    assert parse_commands(without_marker, P) == []


def test_replies_joined_in_order() -> None:
    reply = render_replies([render_locked("A", "a", P), render_unlocked("B", "b"), render_lock_conflict("C", 7)])
    assert reply.index("Locked stack A") < reply.index("Unlocked stack B") < reply.index("Stack C is locked")
    assert reply.count("\n---\n") == 2
    assert reply.count(REPLY_MARKER) == 1


def test_help_lists_commands() -> None:
    reply = render_replies([render_help("!sh")])
    for name in ("propose", "deploy", "lock", "unlock", "status", "help"):
        assert f"`!sh {name}" in reply
    assert "/stackhook" not in reply.replace(REPLY_MARKER, "")


def test_started_rows() -> None:
    reply = render_replies([render_started(DEPLOY, [run(), run("Edge", deduplicated=True, url=None)])])
    assert "started 1 new run, and 1 run was already started" in reply
    rows = table_rows(reply)
    assert len(rows) == 2
    assert cells(rows[0]) == ["`network`", "stack", "[proposed `01HRUN`](https://host/runs/1)", "queued"]
    assert cells(rows[1]) == ["Edge (`network`)", "stack", "proposed `01HRUN`", "queued (already started)"]


def test_started_without_runs() -> None:
    reply = render_replies([render_started(PROPOSE, [])])
    assert "started 0 new runs: no stack or module that you can use needed one." in reply
    assert "| Stack |" not in reply


def test_refused_lists_suggestions() -> None:
    reply = render_replies([render_refused(DEPLOY, "you need write", ["dns", "edge"])])
    assert "`/stackhook deploy network` was not run: you need write." in reply
    assert "- `dns`\n- `edge`" in reply


def test_status_table() -> None:
    reply = render_replies([render_status([row(1), StatusRow("module", "vpc", "vpc", None, None, None, None)])])
    rows = table_rows(reply)
    assert cells(rows[0]) == ["Stack 1 (`stack-1`)", "stack", "finished (tracked)", "`01234567`",
                              "[open](https://host/runs/1)"]
    assert cells(rows[1]) == ["`vpc`", "module", "no run yet", "", ""]


def test_error_shows_usage() -> None:
    [error] = parse_commands("/stackhook deploy", P)
    assert isinstance(error, CommandError)
    reply = render_replies([render_error(error, P)])
    assert "Line 1, `/stackhook deploy`, was not run" in reply
    assert "```\n/stackhook deploy <stack>\n" in reply
    assert "Write `/stackhook help` for the list of commands." in reply


def test_error_unknown_command() -> None:
    [error] = parse_commands('/stackhook "x](y)"', P)
    assert isinstance(error, CommandError)
    reply = render_replies([render_error(error, P)])
    assert "x\\]\\(y\\)\\\" is not a command" in reply
    assert "/stackhook help\n" in reply  # full usage in the code block
    assert "for the list of commands" not in reply


def test_lock_conflict_links_holder() -> None:
    reply = render_replies([render_lock_conflict("net", 42)])
    assert "pull request !42," in reply
    assert "author of !42" in reply


@pytest.mark.parametrize(
    ("status", "fragment"),
    [("abandoned", "Reactivate it"), ("completed", "Open a new pull request")],
)
def test_closed_pull_request(status: str, fragment: str) -> None:
    reply = render_replies([render_closed_pull_request(status)])
    assert f"This pull request is {status}" in reply
    assert fragment in reply


# --- escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "part",
    [
        render_started(DEPLOY, [run(HOSTILE)]),
        render_status([row(1, HOSTILE)]),
        render_lock_conflict(HOSTILE, 1),
        render_refused(DEPLOY, HOSTILE, []),
        render_closed_pull_request(HOSTILE),
        render_locked(HOSTILE, "network", P),
    ],
)
def test_hostile_name_escaped(part: ReplyPart) -> None:
    reply = render_replies([part])
    assert reply.count("stackhook:reply") == 1
    assert "](https://evil" not in reply
    assert "<b>" not in reply
    assert "\u202e" not in reply
    for escaped in ("\\@alice", "\\#12", "\\!3", "\\*bold\\*", "www\\.evil", "\\<\\!\\-\\-"):
        assert escaped in reply
    assert all(len(cells(line)) in (4, 5) for line in table_rows(reply))


def test_table_cell_escaping() -> None:
    reply = render_replies([render_status([row(1, "a|b\nc"), row(2)])])
    rows = table_rows(reply)
    assert len(rows) == 2
    assert len(cells(rows[0])) == 5
    assert cells(rows[0])[0] == "a\\|b c (`stack-1`)"


@pytest.mark.parametrize(
    ("line", "span"),
    [
        ("/stackhook status `x`` y|z", "```/stackhook status `x`` y|z```"),
        ("/stackhook status `x`", "`` /stackhook status `x` ``"),
        ("/stackhook status", "`/stackhook status`"),
    ],
)
def test_code_span_backticks(line: str, span: str) -> None:
    command = Command(name="status", references=(), line=line, line_number=1)
    reply = render_replies([render_started(command, [])])
    assert f"{span} started 0 new runs" in reply


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://host/runs/1", "[proposed `01HRUN`](https://host/runs/1)"),
        ("https://host/a b(c)", "[proposed `01HRUN`](https://host/a%20b%28c%29)"),
        ("javascript:alert(1)", "proposed `01HRUN`"),
        ("ftp://host/x", "proposed `01HRUN`"),
        (None, "proposed `01HRUN`"),
    ],
)
def test_run_link(url: str | None, expected: str) -> None:
    reply = render_replies([render_started(DEPLOY, [run(url=url)])])
    assert cells(table_rows(reply)[0])[2] == expected


# --- size bound -------------------------------------------------------------------------------


def test_long_table_truncated() -> None:
    rows = [row(number, "name " * 30) for number in range(5000)]
    reply = render_replies([render_status(rows)])
    assert len(reply) <= DEFAULT_MAX_REPLY_LENGTH
    shown_rows = table_rows(reply)
    assert 0 < len(shown_rows) < 5000
    assert all(len(cells(line)) == 5 for line in shown_rows)
    omitted = 5000 - len(shown_rows)
    assert f"*{omitted:,} more stacks were left out to keep this reply under 140,000 characters.*" in reply
    assert reply.rstrip().endswith("characters.*")
    assert "|\n\n*" in reply  # the count is a paragraph of its own, not a table row


def test_short_table_whole() -> None:
    reply = render_replies([render_status([row(1), row(2)])])
    assert "left out" not in reply
    assert len(table_rows(reply)) == 2


@pytest.mark.parametrize("max_length", [MIN_REPLY_LENGTH, 10_000, 50_000])
def test_several_parts_bounded(max_length: int) -> None:
    parts = [render_status([row(number) for number in range(2000)]),
             render_refused(DEPLOY, "no", [f"stack-{number}" for number in range(2000)]),
             render_unlocked("Network", "network")]
    reply = render_replies(parts, max_length=max_length)
    assert len(reply) <= max_length
    assert "Unlocked stack Network" in reply
    assert "more stacks were left out" in reply
    assert "more suggestions were left out" in reply


def test_many_parts_dropped() -> None:
    [error] = parse_commands("/stackhook nope", P)
    assert isinstance(error, CommandError)
    parts = [render_error(error, P)] * 30
    reply = render_replies(parts, max_length=MIN_REPLY_LENGTH)
    assert len(reply) <= MIN_REPLY_LENGTH
    assert "more replies to commands were left out" in reply
    assert reply.count("Line 1,") >= 1


def test_max_length_too_small() -> None:
    with pytest.raises(ValueError, match="max_length"):
        render_replies([render_help(P)], max_length=MIN_REPLY_LENGTH - 1)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.text(max_size=300), max_size=60),
    max_length=st.integers(min_value=MIN_REPLY_LENGTH, max_value=20_000),
)
def test_reply_always_bounded(names: list[str], max_length: int) -> None:
    rows = [row(number, name) for number, name in enumerate(names)]
    parts = [render_status(rows), render_refused(DEPLOY, "".join(names), names), render_help(P)]
    reply = render_replies(parts, max_length=max_length)
    assert len(reply) <= max_length
    assert reply.startswith(REPLY_MARKER)
    assert reply.count("stackhook:reply") == 1
    assert all(len(cells(line)) == 5 for line in table_rows(reply) if "(`stack-" in line)
