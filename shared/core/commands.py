"""Commands written in pull request comments, such as `/stackhook propose network`.

A command is a line of the comment that starts with the configured prefix (case-insensitive,
after at most three spaces), followed by whitespace or the end of the line. Lines that the
markdown renderer shows as code, quotes or hidden text never carry a command:

- lines inside fenced code blocks (``` or ~~~, with or without an info string, closed or not);
- lines indented by four or more columns (a tab counts as reaching the next multiple of four),
  which are indented code or the continuation of a paragraph;
- lines starting with `>` after optional spaces (quoted text);
- lines whose start lies inside an inline code span or an HTML comment of the paragraph;
- every line of a comment that contains `REPLY_MARKER`, so the service never obeys its replies.

Lists are not tracked, so a fence indented inside a list item is still recognised as a fence.
Being unsure errs on the side of "not a command", because a missed command can be written again
but an unintended deploy cannot be undone.

Arguments are separated by whitespace or commas. A reference is `id`, `stack:id`, `module:id`
or a double-quoted name that may contain spaces and commas (`"my stack"`, `stack:"my stack"`).
Names are kept as written and compared by `StackReference.normalised`.
"""

from __future__ import annotations

import bisect
import difflib
import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal, get_args

CommandName = Literal["help", "propose", "deploy", "lock", "unlock", "status"]
ReferenceKind = Literal["stack", "module"]

COMMAND_NAMES: Final[tuple[CommandName, ...]] = get_args(CommandName)
REFERENCE_KINDS: Final[tuple[ReferenceKind, ...]] = get_args(ReferenceKind)

DEFAULT_PREFIX: Final = "/stackhook"
MAX_COMMANDS: Final = 20
MAX_REFERENCES: Final = 50
MAX_LINE_LENGTH: Final = 1000
MAX_REFERENCE_LENGTH: Final = 100

REPLY_MARKER: Final = "<!-- stackhook:reply -->"
_REPLY_MARKER_PATTERN: Final = re.compile(r"<!--\s*stackhook:reply\s*-->", re.IGNORECASE)

# Characters of an over-long line that a `CommandError` keeps, so replies stay short.
_SHOWN_LINE_LENGTH: Final = 120


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StackReference:
    """A stack or module named in a command: `kind` is None when the reference had no `stack:` or
    `module:` in front, and `name` is the id or name as written."""

    kind: ReferenceKind | None
    name: str

    @property
    def normalised(self) -> str:
        """The name for comparison: NFKC, casefolded, trimmed, whitespace runs as one space."""
        return normalise_reference_name(self.name)

    @property
    def text(self) -> str:
        """The reference as a user would write it, quoted when the name contains a separator."""
        name = f'"{self.name}"' if _needs_quotes(self.name) else self.name
        return name if self.kind is None else f"{self.kind}:{name}"


@dataclass(frozen=True, slots=True)
class Command:
    """A valid command: `line` is the command line without surrounding whitespace and
    `line_number` counts the lines of the comment from 1."""

    name: CommandName
    references: tuple[StackReference, ...]
    line: str
    line_number: int


@dataclass(frozen=True, slots=True)
class CommandError:
    """A command line that cannot be run.

    `problem` is a sentence saying what is wrong. `usage` is the syntax of the command, or of
    every command when the command name is missing or unknown. `command_name` is None in that
    case. `line` is cut to 120 characters when the line was longer than `MAX_LINE_LENGTH`.
    """

    line: str
    line_number: int
    problem: str
    usage: str
    command_name: CommandName | None = None


@dataclass(frozen=True, slots=True)
class CommandUsage:
    """The syntax of a command without the prefix, and one line of explanation."""

    name: CommandName
    arguments: str
    summary: str

    def syntax(self, prefix: str) -> str:
        """Return the full command line to write, such as `/stackhook deploy <stack>`."""
        return f"{prefix} {self.name} {self.arguments}".rstrip()


USAGE: Final[tuple[CommandUsage, ...]] = (
    CommandUsage("propose", "[stack ...]",
                 "Start proposed runs for the named stacks and modules, or for the stacks that this pull "
                 "request changes when none is named."),
    CommandUsage("deploy", "<stack>", "Start a tracked run of one stack at the pull request's latest commit."),
    CommandUsage("lock", "<stack>", "Lock one stack to this pull request, so that other pull requests cannot "
                 "deploy it."),
    CommandUsage("unlock", "<stack>", "Release the lock that this pull request holds on one stack."),
    CommandUsage("status", "", "Show the latest run of each stack that this pull request changes."),
    CommandUsage("help", "", "Show this list of commands."),
)

REFERENCE_HELP: Final = (
    'A stack is an id, stack:<id>, module:<id> or a quoted name such as "my stack". '
    "Separate several stacks with spaces or commas."
)

_USAGE_BY_NAME: Final[dict[CommandName, CommandUsage]] = {usage.name: usage for usage in USAGE}

_ROLES: Final[dict[CommandName, Literal["read", "write"] | None]] = {
    "help": None,
    "propose": "read",
    "status": "read",
    "deploy": "write",
    "lock": "write",
    "unlock": "write",
}


def usage_text(prefix: str, name: CommandName | None = None) -> str:
    """Return the plain-text usage of one command, or of every command when `name` is None.

    Each command takes two lines: its syntax with the prefix, then its explanation, indented.
    """
    usages = USAGE if name is None else (_USAGE_BY_NAME[name],)
    lines: list[str] = []
    for usage in usages:
        lines.append(usage.syntax(prefix))
        lines.append(f"    {usage.summary}")
    if name is None or _USAGE_BY_NAME[name].arguments:
        lines.append(REFERENCE_HELP)
    return "\n".join(lines)


def required_role(command_name: CommandName) -> Literal["read", "write"] | None:
    """Return the role that the author needs on the stack's space, or None for `help`.

    `propose` and `status` need read. `deploy`, `lock` and `unlock` need write.
    """
    return _ROLES[command_name]


def is_own_reply(content: str | None) -> bool:
    """Tell whether the comment contains `REPLY_MARKER`, in any case and spacing inside the
    HTML comment, so the service ignores it."""
    return bool(content) and _REPLY_MARKER_PATTERN.search(content or "") is not None


def normalise_reference_name(name: str) -> str:
    """Normalise a stack or module name for comparison: NFKC, casefolded, trimmed, with each
    run of whitespace as one space."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def validate_prefix(prefix: str) -> str:
    """Return the prefix without surrounding whitespace.

    Raises ValueError when it is empty or contains whitespace, because a command line could
    then never match it.
    """
    cleaned = prefix.strip()
    if not cleaned or any(character.isspace() for character in cleaned):
        raise ValueError(f"command prefix {prefix!r} is invalid; use one word without spaces, such as /stackhook")
    return cleaned


# --- parsing ----------------------------------------------------------------------------------


def parse_commands(content: str | None, prefix: str) -> list[Command | CommandError]:
    """Parse the command lines of a comment, in order.

    Returns an empty list for None, for text without commands and for the service's own
    replies. Every problem of a line becomes a `CommandError` item, never an exception. At most
    `MAX_COMMANDS` lines are parsed. When there are more, one more `CommandError` reports how many
    were ignored, so the list has at most `MAX_COMMANDS + 1` items. A command whose references
    would bring the comment's total above `MAX_REFERENCES` becomes a `CommandError`.

    Raises ValueError for an invalid prefix (see `validate_prefix`).
    """
    prefix = validate_prefix(prefix)
    if not content or is_own_reply(content):
        return []

    results: list[Command | CommandError] = []
    references_used = 0
    candidates = _command_lines(content.removeprefix("\ufeff"), prefix)
    for position, (line_number, line) in enumerate(candidates):
        if position == MAX_COMMANDS:
            ignored = len(candidates) - MAX_COMMANDS
            results.append(CommandError(
                line=_cut_for_display(line), line_number=line_number,
                problem=(f"a comment may hold at most {MAX_COMMANDS} commands, so this line and "
                         f"{ignored - 1} more after it were ignored; write them in another comment"),
                usage=usage_text(prefix)))
            break

        item = _parse_line(line, line_number, prefix)
        if isinstance(item, Command) and references_used + len(item.references) > MAX_REFERENCES:
            item = CommandError(
                line=item.line, line_number=line_number,
                problem=(f"a comment may name at most {MAX_REFERENCES} stacks in all, and this command "
                         f"would bring the total to {references_used + len(item.references)}; "
                         "split the commands over several comments"),
                usage=usage_text(prefix, item.name), command_name=item.name)
        if isinstance(item, Command):
            references_used += len(item.references)
        results.append(item)
    return results


def _parse_line(line: str, line_number: int, prefix: str) -> Command | CommandError:
    text = line.strip()
    if len(line) > MAX_LINE_LENGTH:
        return CommandError(
            line=_cut_for_display(text), line_number=line_number,
            problem=(f"the command line has {len(line)} characters, more than the maximum of "
                     f"{MAX_LINE_LENGTH}, so it was ignored"),
            usage=usage_text(prefix))

    tokens = _split_arguments(text[len(prefix):])
    if isinstance(tokens, str):
        return CommandError(line=text, line_number=line_number, problem=tokens, usage=usage_text(prefix))
    if not tokens:
        return CommandError(line=text, line_number=line_number, problem="the command is missing",
                            usage=usage_text(prefix))

    name = _command_name(tokens[0].text)
    if name is None:
        return CommandError(line=text, line_number=line_number, problem=_unknown_command(tokens[0].text),
                            usage=usage_text(prefix))

    def error(problem: str) -> CommandError:
        return CommandError(line=text, line_number=line_number, problem=problem,
                            usage=usage_text(prefix, name), command_name=name)

    arguments = tokens[1:]
    if name in ("help", "status") and arguments:
        return error(f"{name} takes no arguments, but {_count(len(arguments), 'was', 'were')} given")
    if name in ("deploy", "lock", "unlock") and len(arguments) != 1:
        count_given = "none was" if not arguments else _count(len(arguments), "was", "were")
        return error(f"{name} takes exactly one stack, but {count_given} given")

    references: list[StackReference] = []
    seen: set[tuple[ReferenceKind | None, str]] = set()
    for token in arguments:
        reference = _reference(token)
        if isinstance(reference, str):
            return error(reference)
        if reference.kind == "module" and name != "propose":
            return error(f"{name} applies to stacks only, and {reference.text} is a module")
        key = (reference.kind, reference.normalised)
        if key not in seen:
            seen.add(key)
            references.append(reference)
    return Command(name=name, references=tuple(references), line=text, line_number=line_number)


def _command_name(word: str) -> CommandName | None:
    folded = normalise_reference_name(word)
    for name in COMMAND_NAMES:
        if folded == name:
            return name
    return None


def _unknown_command(word: str) -> str:
    problem = f'"{word}" is not a command'
    close = difflib.get_close_matches(normalise_reference_name(word), COMMAND_NAMES, n=1)
    if close:
        problem += f"; did you mean {close[0]}?"
    return problem


def _count(number: int, singular_verb: str, plural_verb: str) -> str:
    return f"{number} {singular_verb if number == 1 else plural_verb}"


def _cut_for_display(line: str) -> str:
    return line if len(line) <= _SHOWN_LINE_LENGTH else line[:_SHOWN_LINE_LENGTH - 1] + "…"


# --- arguments --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    """An argument with its quotes removed. `head` is the text before the first quote, the only
    place where a `stack:` or `module:` kind is recognised."""

    text: str
    head: str


def _is_separator(character: str) -> bool:
    return character == "," or character.isspace()


def _split_arguments(text: str) -> list[_Token] | str:
    """Split the text after the prefix into tokens, or return the problem when a quote is open."""
    tokens: list[_Token] = []
    current: list[str] = []
    head: str | None = None
    in_token = False
    in_quote = False
    for character in text:
        if in_quote:
            if character == '"':
                in_quote = False
            else:
                current.append(character)
        elif character == '"':
            if head is None:
                head = "".join(current)
            in_quote = True
            in_token = True
        elif _is_separator(character):
            if in_token:
                joined = "".join(current)
                tokens.append(_Token(text=joined, head=joined if head is None else head))
            current, head, in_token = [], None, False
        else:
            current.append(character)
            in_token = True
    if in_quote:
        return 'a quote (") is not closed; put the name between two double quotes'
    if in_token:
        joined = "".join(current)
        tokens.append(_Token(text=joined, head=joined if head is None else head))
    return tokens


def _reference(token: _Token) -> StackReference | str:
    """Build a reference from a token, or return the problem with it."""
    kind: ReferenceKind | None = None
    name = token.text
    if ":" in token.head:
        written_kind, _, _ = token.head.partition(":")
        folded = normalise_reference_name(written_kind)
        matched = [candidate for candidate in REFERENCE_KINDS if candidate == folded]
        if not matched:
            return (f'"{written_kind}:" is not a kind of reference; write stack:<id> or module:<id>, '
                    'or quote a name that contains a colon')
        kind = matched[0]
        name = token.text[len(written_kind) + 1:]

    name = name.strip()
    described = f"{kind}:" if kind else "a stack reference"
    if not name:
        return f"{described} has no name; write the id after it"
    if len(name) > MAX_REFERENCE_LENGTH:
        return f"the stack reference {name[:20]}… has {len(name)} characters, more than {MAX_REFERENCE_LENGTH}"
    if any(unicodedata.category(character) == "Cc" for character in name):
        return "a stack reference contains a control character; write the id without it"
    return StackReference(kind=kind, name=name)


def _needs_quotes(name: str) -> bool:
    return any(_is_separator(character) or character in "\":" for character in name)


# --- finding command lines --------------------------------------------------------------------

_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
_FENCE_OPEN: Final = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SPAN_START: Final = re.compile(r"[\\`<]")
_ASCII_PUNCTUATION: Final = frozenset(string.punctuation)


def _command_lines(content: str, prefix: str) -> list[tuple[int, str]]:
    """Return (line number, line) for each line that starts with the prefix outside code,
    quotes and hidden text.

    NOTE: a line right after a quoted line, with no blank line between, renders inside the quote
    (lazy continuation) but is still read as a command, because only lines starting with `>`
    count as quoted. HTML blocks other than comments (`<pre>`, `<details>`) are not recognised.
    """
    lines = _LINE_BREAK.split(content)
    paragraphs = _paragraphs(lines)
    hidden_starts = _lines_starting_hidden(lines, paragraphs)
    folded_prefix = prefix.casefold()

    found: list[tuple[int, str]] = []
    for group in paragraphs:
        for index in group:
            line = lines[index]
            if index in hidden_starts or _indent_width(line) >= 4:
                continue
            stripped = line.lstrip(" ")
            if not stripped[:len(prefix)].casefold() == folded_prefix:
                continue
            rest = stripped[len(prefix):]
            if rest and not rest[0].isspace():
                continue
            found.append((index + 1, stripped))
    return found


def _indent_width(line: str) -> int:
    width = 0
    for character in line:
        if character == " ":
            width += 1
        elif character == "\t":
            width += 4 - width % 4
        else:
            break
    return width


def _paragraphs(lines: list[str]) -> list[list[int]]:
    """Group the indexes of lines that may hold text into paragraphs.

    Blank lines, fenced code blocks (with their fences), HTML comment blocks and indented code
    blocks separate paragraphs and belong to none. Quoted lines stay in the groups, so that an
    inline code span opened in a quote can hide the lazy continuation line after it.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        skip_to = _block_end(lines, index, paragraph_open=bool(current))
        if skip_to is not None:
            if current:
                groups.append(current)
                current = []
            index = skip_to
            continue
        if not line.strip():
            if current:
                groups.append(current)
                current = []
        else:
            current.append(index)
        index += 1
    if current:
        groups.append(current)
    return groups


def _block_end(lines: list[str], index: int, *, paragraph_open: bool) -> int | None:
    """Return the index after a code block or HTML comment block starting at `index`, or None
    when the line starts no such block."""
    line = lines[index]
    opening = _FENCE_OPEN.match(line)
    if opening and not (opening["fence"][0] == "`" and "`" in opening["info"]):
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        for end in range(index + 1, len(lines)):
            if closing.match(lines[end]):
                return end + 1
        return len(lines)

    if line.lstrip(" \t").startswith("<!--") and "-->" not in line.lstrip(" \t")[4:]:
        for end in range(index + 1, len(lines)):
            if "-->" in lines[end]:
                return end + 1
        return len(lines)

    if not paragraph_open and _indent_width(line) >= 4 and line.strip():
        end = index + 1
        while end < len(lines) and (_indent_width(lines[end]) >= 4 or not lines[end].strip()):
            end += 1
        return end
    return None


def _lines_starting_hidden(lines: list[str], paragraphs: list[list[int]]) -> set[int]:
    """Return the indexes of lines that are quoted or start inside an inline code span or an
    inline HTML comment."""
    hidden: set[int] = set()
    for group in paragraphs:
        starts: list[int] = []
        offset = 0
        for index in group:
            line = lines[index]
            starts.append(offset + len(line) - len(line.lstrip(" ")))
            offset += len(line) + 1
            if line.lstrip(" ").startswith(">"):
                hidden.add(index)
        text = "\n".join(lines[index] for index in group)
        for start, end in _hidden_ranges(text):
            first = bisect.bisect_right(starts, start)
            last = bisect.bisect_left(starts, end)
            hidden.update(group[first:last])
    return hidden


def _hidden_ranges(text: str) -> list[tuple[int, int]]:
    """Return the [start, end) ranges of inline code spans and HTML comments in a paragraph.

    A backtick run opens a span that the next run of exactly the same length closes. A run
    without such a closer is literal text. A backslash before ASCII punctuation escapes it
    outside code spans.
    """
    runs_by_length: dict[int, list[int]] = {}
    for run in re.finditer(r"`+", text):
        runs_by_length.setdefault(len(run[0]), []).append(run.start())

    ranges: list[tuple[int, int]] = []
    comments_closable = True
    position = 0
    while True:
        match = _SPAN_START.search(text, position)
        if match is None:
            return ranges
        position = match.start()
        character = text[position]
        if character == "\\":
            escaped = position + 1 < len(text) and text[position + 1] in _ASCII_PUNCTUATION
            position += 2 if escaped else 1
        elif character == "`":
            length = _run_length(text, position)
            candidates = runs_by_length.get(length, [])
            next_run = bisect.bisect_left(candidates, position + length)
            if next_run < len(candidates):
                end = candidates[next_run] + length
                ranges.append((position, end))
                position = end
            else:
                position += length
        elif comments_closable and text.startswith("<!--", position):
            end = text.find("-->", position + 4)
            if end < 0:
                comments_closable = False
                position += 4
            else:
                ranges.append((position, end + 3))
                position = end + 3
        else:
            position += 1


def _run_length(text: str, position: int) -> int:
    end = position
    while end < len(text) and text[end] == "`":
        end += 1
    return end - position
