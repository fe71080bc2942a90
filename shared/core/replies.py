"""Markdown replies to pull request comment commands.

Each `render_*` function returns a `ReplyPart`: the reply to one command, split into fixed
blocks and a list of items (table rows or list items). `render_replies` joins the parts of one
comment in order, starts the text with `REPLY_MARKER` and keeps it within `max_length`
characters. Azure DevOps accepts at most 150,000 characters per comment, and the default of
140,000 leaves room for what the caller adds. When the parts do not fit, whole items are left out
from the end of each list, and a line gives how many. Text is never cut inside a markdown
construct.

User-controlled text (stack names, command lines, reasons) goes through `_text` or `_code`, so
it cannot add links, HTML, mentions, tables or line breaks to a reply.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from shared.core.commands import (
    REFERENCE_HELP,
    REPLY_MARKER,
    USAGE,
    Command,
    CommandError,
    ReferenceKind,
)

DEFAULT_MAX_REPLY_LENGTH: Final = 140_000
MIN_REPLY_LENGTH: Final = 4_000
MAX_TEXT_LENGTH: Final = 200
MAX_REASON_LENGTH: Final = 1_000
SHORT_SHA_LENGTH: Final = 8

_PART_SEPARATOR: Final = "\n\n---\n\n"
_ASCII_PUNCTUATION: Final = frozenset(string.punctuation)
# Bidirectional controls can make a name display differently from what it is.
_BIDI_CONTROLS: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Characters that would end or break a link destination, percent-encoded.
_URL_ESCAPES: Final = {" ": "%20", "<": "%3C", ">": "%3E", "(": "%28", ")": "%29", "|": "%7C", "\\": "%5C",
                       "`": "%60", '"': "%22", "[": "%5B", "]": "%5D"}


@dataclass(frozen=True, slots=True)
class RunLink:
    """A run that a command started, or found already started when `deduplicated` is true."""

    kind: ReferenceKind
    stack_id: str
    stack_name: str
    run_id: str
    run_type: str
    url: str | None
    state: str
    deduplicated: bool


@dataclass(frozen=True, slots=True)
class StatusRow:
    """The latest run of a stack or module, or None fields when it has no run yet."""

    kind: ReferenceKind
    stack_id: str
    stack_name: str
    run_type: str | None
    run_state: str | None
    commit_sha: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class ReplyPart:
    """The markdown reply to one command.

    `lead` and `trailer` are whole markdown blocks that are always shown. `items` are lines
    (table rows under `table_header`, or list items when `table_header` is empty) that
    `render_replies` may leave out from the end. `item_noun` is the plural word for an item in
    the line that counts the left-out items.
    """

    lead: str
    items: tuple[str, ...] = ()
    table_header: str = ""
    trailer: str = ""
    item_noun: str = "items"

    def fixed_length(self, max_length: int) -> int:
        """Return the length of the part with no items but room for the omission line."""
        return len(self.to_markdown(0, max_length)) + (len(_omission(len(self.items), self.item_noun, max_length))
                                                     if self.items else 0)

    def to_markdown(self, item_count: int, max_length: int) -> str:
        """Return the part with its first `item_count` items and, when items are left out, the line
        that counts them."""
        blocks = [self.lead]
        if self.items:
            lines = ([self.table_header] if self.table_header else []) + list(self.items[:item_count])
            if lines:
                blocks.append("\n".join(lines))
            if item_count < len(self.items):
                blocks.append(_omission(len(self.items) - item_count, self.item_noun, max_length))
        if self.trailer:
            blocks.append(self.trailer)
        return "\n\n".join(blocks)


# --- joining and bounding ---------------------------------------------------------------------


def render_replies(parts: Sequence[ReplyPart], max_length: int = DEFAULT_MAX_REPLY_LENGTH) -> str:
    """Join the replies to the commands of one comment, in order, into one reply.

    The reply starts with `REPLY_MARKER` and has at most `max_length` characters. Items are left
    out from the end of each part's list when needed, and whole parts from the end when even
    their fixed blocks do not fit, each time with a line saying how many.

    Raises ValueError when `max_length` is below `MIN_REPLY_LENGTH`.
    """
    if max_length < MIN_REPLY_LENGTH:
        raise ValueError(f"max_length is {max_length}; a reply needs at least {MIN_REPLY_LENGTH} characters")

    fitting_parts = list(parts)
    header = REPLY_MARKER + "\n\n"
    dropped_note = ""
    while True:
        dropped = len(parts) - len(fitting_parts)
        dropped_note = _dropped_note(dropped, max_length) if dropped else ""
        fixed = (len(header) + sum(part.fixed_length(max_length) for part in fitting_parts)
                 + len(_PART_SEPARATOR) * len(fitting_parts) + len(dropped_note))
        if fixed <= max_length or not fitting_parts:
            break
        fitting_parts.pop()

    remaining = max_length - fixed
    bodies: list[str] = []
    for part in fitting_parts:
        item_count = 0
        for item in part.items:
            if len(item) + 1 > remaining:
                break
            remaining -= len(item) + 1
            item_count += 1
        bodies.append(part.to_markdown(item_count, max_length))
    if dropped_note:
        bodies.append(dropped_note)
    return header + _PART_SEPARATOR.join(bodies)


def _omission(count: int, noun: str, max_length: int) -> str:
    return f"*{count:,} more {noun} were left out to keep this reply under {max_length:,} characters.*"


def _dropped_note(count: int, max_length: int) -> str:
    replies = "reply to a command was" if count == 1 else "replies to commands were"
    return (f"*{count:,} more {replies} left out to keep this reply under {max_length:,} characters. "
            "Write those commands in another comment.*")


# --- replies ----------------------------------------------------------------------------------


def render_help(prefix: str) -> ReplyPart:
    """Render the list of commands with their syntax and explanation."""
    rows = tuple(f"| {_code(usage.syntax(prefix), in_table=True)} | {_text(usage.summary, limit=None)} |"
                 for usage in USAGE)
    return ReplyPart(
        lead="Write one command per line, at the start of the line, in a new comment of this pull request:",
        table_header="| Command | What it does |\n|---|---|",
        items=rows,
        trailer=_text(REFERENCE_HELP, limit=None),
        item_noun="commands",
    )


def render_started(command: Command, runs: Sequence[RunLink]) -> ReplyPart:
    """Render the runs that a command started, and those it found already started."""
    repeated = sum(1 for run in runs if run.deduplicated)
    started = len(runs) - repeated
    lead = f"{_code(command.line)} started {_plural(started, 'new run', 'new runs')}"
    if repeated:
        lead += f", and {_plural(repeated, 'run was', 'runs were')} already started for the same commit"
    lead += "." if runs else ": no stack or module that you can use needed one."

    rows = tuple(
        f"| {_stack(run.stack_name, run.stack_id)} | {run.kind} "
        f"| {_link(f'{_text(run.run_type)} {_code(run.run_id, in_table=True)}', run.url)} "
        f"| {_text(run.state)}{' (already started)' if run.deduplicated else ''} |"
        for run in runs
    )
    return ReplyPart(lead=lead, items=rows, table_header="| Stack | Type | Run | State |\n|---|---|---|---|",
                     item_noun="runs")


def render_refused(command: Command, reason: str, suggestions: Sequence[str]) -> ReplyPart:
    """Render why a command was not run and, when given, what would work instead.

    The caller passes only suggestions that the author may see, such as the stacks the author
    can use, because this reply shows each of them.
    """
    lead = f"{_code(command.line)} was not run: {_sentence(_text(reason, limit=MAX_REASON_LENGTH))}"
    if not suggestions:
        return ReplyPart(lead=lead)
    return ReplyPart(lead=lead + "\n\nThese would work instead:",
                     items=tuple(f"- {_code(suggestion)}" for suggestion in suggestions),
                     item_noun="suggestions")


def render_status(rows: Sequence[StatusRow]) -> ReplyPart:
    """Render the latest run of each stack and module as a table."""
    if not rows:
        return ReplyPart(lead="This pull request changes no stack or module that you can see.")
    lines = tuple(
        f"| {_stack(row.stack_name, row.stack_id)} | {row.kind} | {_latest_run(row)} "
        f"| {_code(row.commit_sha[:SHORT_SHA_LENGTH], in_table=True) if row.commit_sha else ''} "
        f"| {_link('open', row.url) if row.url else ''} |"
        for row in rows
    )
    return ReplyPart(
        lead=f"Latest runs of {_plural(len(rows), 'stack or module', 'stacks and modules')}:",
        table_header="| Stack | Type | Latest run | Commit | Link |\n|---|---|---|---|---|",
        items=lines,
        item_noun="stacks",
    )


def render_error(error: CommandError, prefix: str) -> ReplyPart:
    """Render a command line that cannot be run, with the usage of its command."""
    lead = (f"Line {error.line_number}, {_code(error.line)}, was not run: "
            f"{_sentence(_text(error.problem, limit=MAX_REASON_LENGTH))}\n\n{_fenced(error.usage)}")
    trailer = ""
    if error.command_name is not None:
        trailer = f"Write {_code(prefix + ' help')} for the list of commands."
    return ReplyPart(lead=lead, trailer=trailer)


def render_locked(stack_name: str, stack_id: str, prefix: str) -> ReplyPart:
    """Render the reply to a lock that this pull request now holds."""
    stack = _stack(stack_name, stack_id, in_table=False)
    unlock = _code(f"{prefix} unlock {stack_id}")
    return ReplyPart(lead=(f"Locked stack {stack} to this pull request. Other pull requests cannot lock or "
                           f"deploy it until {unlock} is written here."))


def render_unlocked(stack_name: str, stack_id: str) -> ReplyPart:
    """Render the reply to an unlock of a stack that this pull request held."""
    stack = _stack(stack_name, stack_id, in_table=False)
    return ReplyPart(lead=f"Unlocked stack {stack}. Other pull requests can lock and deploy it again.")


def render_lock_conflict(stack: str, holder_pull_request_id: int) -> ReplyPart:
    """Render the refusal of a command on a stack that another pull request has locked.

    `!<id>` is how Azure DevOps links to a pull request in markdown.
    """
    holder = f"!{int(holder_pull_request_id)}"
    return ReplyPart(lead=(f"Stack {_text(stack)} is locked by pull request {holder}, so it cannot be locked "
                           f"or deployed from here. Ask the author of {holder} to unlock it."))


def render_closed_pull_request(status: str) -> ReplyPart:
    """Render the reply sent once to comments on a completed or abandoned pull request."""
    lead = f"This pull request is {_text(status)}, so stackhook runs no commands from its comments."
    if status.strip().lower() == "abandoned":
        lead += " Reactivate it to use commands again."
    else:
        lead += " Open a new pull request to propose or deploy changes."
    return ReplyPart(lead=lead)


# --- escaping ---------------------------------------------------------------------------------


def _clean(value: str, limit: int | None) -> str:
    """Replace line breaks, control and bidirectional characters with spaces and cut the text."""
    cleaned = "".join(
        " " if unicodedata.category(character) in ("Cc", "Zl", "Zp") or character in _BIDI_CONTROLS
        else character
        for character in value
    )
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[:limit - 1] + "…"
    return cleaned


def _text(value: str, limit: int | None = MAX_TEXT_LENGTH) -> str:
    """Escape text for markdown: every ASCII punctuation character gets a backslash, so the text
    opens no link, emphasis, HTML, table cell, mention (`@`), work item (`#`) or pull request
    (`!`) reference."""
    return "".join("\\" + character if character in _ASCII_PUNCTUATION else character
                   for character in _clean(value, limit))


def _code(value: str, *, in_table: bool = False, limit: int | None = MAX_TEXT_LENGTH) -> str:
    """Render text as an inline code span, delimited by more backticks than any run inside."""
    cleaned = _clean(value, limit)
    if in_table:
        cleaned = cleaned.replace("|", "\\|")
    delimiter = "`" * (_longest_run(cleaned, "`") + 1)
    if cleaned.startswith(("`", " ")) or cleaned.endswith(("`", " ")) or not cleaned:
        cleaned = f" {cleaned} "
    return f"{delimiter}{cleaned}{delimiter}"


def _fenced(value: str) -> str:
    """Render multi-line text as a fenced code block, with a fence longer than any run inside."""
    lines = [_clean(line, None) for line in value.splitlines()]
    fence = "`" * max(3, _longest_run(value, "`") + 1)
    return "\n".join([fence, *lines, fence])


def _link(label: str, url: str | None) -> str:
    """Link the already escaped label to an http or https URL, or return the label alone."""
    if not url:
        return label
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return label
    destination = "".join(_URL_ESCAPES.get(character, character) for character in url.strip()
                          if unicodedata.category(character) != "Cc")
    return f"[{label}]({destination})"



def _stack(name: str, stack_id: str, *, in_table: bool = True) -> str:
    if name.strip() == stack_id.strip() or not name.strip():
        return _code(stack_id, in_table=in_table)
    return f"{_text(name)} ({_code(stack_id, in_table=in_table)})"


def _latest_run(row: StatusRow) -> str:
    if row.run_state is None:
        return "no run yet"
    if row.run_type is None:
        return _text(row.run_state)
    return f"{_text(row.run_state)} ({_text(row.run_type)})"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count:,} {singular if count == 1 else plural}"


def _longest_run(text: str, character: str) -> int:
    longest = current = 0
    for current_character in text:
        current = current + 1 if current_character == character else 0
        longest = max(longest, current)
    return longest
