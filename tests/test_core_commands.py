import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.commands import (
    DEFAULT_PREFIX,
    MAX_COMMANDS,
    MAX_LINE_LENGTH,
    MAX_REFERENCES,
    REPLY_MARKER,
    USAGE,
    Command,
    CommandError,
    StackReference,
    is_own_reply,
    parse_commands,
    required_role,
    usage_text,
    validate_prefix,
)

P = DEFAULT_PREFIX


def stack(name: str) -> StackReference:
    return StackReference(kind=None, name=name)


def summary(content: str | None, prefix: str = P) -> list[tuple[str, tuple[StackReference, ...]] | str]:
    """Commands as (name, references) and errors as "error", for compact tables."""
    return [(item.name, item.references) if isinstance(item, Command) else "error"
            for item in parse_commands(content, prefix)]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("/stackhook help", [("help", ())]),
        ("/stackhook status", [("status", ())]),
        ("/stackhook propose", [("propose", ())]),
        ("/stackhook propose network", [("propose", (stack("network"),))]),
        ("/stackhook propose a b c", [("propose", (stack("a"), stack("b"), stack("c")))]),
        ("/stackhook propose a,b , c,,", [("propose", (stack("a"), stack("b"), stack("c")))]),
        ("/stackhook deploy network", [("deploy", (stack("network"),))]),
        ("/stackhook lock network", [("lock", (stack("network"),))]),
        ("/stackhook unlock network", [("unlock", (stack("network"),))]),
        ("/STACKHOOK  Propose  network", [("propose", (stack("network"),))]),
        ("   /stackhook deploy x  ", [("deploy", (stack("x"),))]),
        ("/stackhook\tdeploy\tx", [("deploy", (stack("x"),))]),
        ("/stackhook ＤＥＰＬＯＹ x", [("deploy", (stack("x"),))]),
        ("/stackhook deploy stack:x", [("deploy", (StackReference("stack", "x"),))]),
        ("/stackhook propose module:vpc", [("propose", (StackReference("module", "vpc"),))]),
        ("/stackhook propose STACK:x Module:y", [("propose", (StackReference("stack", "x"),
                                                               StackReference("module", "y")))]),
        ('/stackhook deploy "my stack"', [("deploy", (stack("my stack"),))]),
        ('/stackhook deploy stack:"my, stack"', [("deploy", (StackReference("stack", "my, stack"),))]),
        ('/stackhook deploy "db:primary"', [("deploy", (stack("db:primary"),))]),
        ("/stackhook deploy 本番", [("deploy", (stack("本番"),))]),
        ("/stackhook deploy Déploiement", [("deploy", (stack("Déploiement"),))]),
        ("/stackhook propose a A stack:a", [("propose", (stack("a"), StackReference("stack", "a")))]),
        ("/stackhook propose Straße STRASSE", [("propose", (stack("Straße"),))]),
    ],
)
def test_parse_valid(content: str, expected: list[object]) -> None:
    assert summary(content) == expected


@pytest.mark.parametrize(
    "content",
    [
        "```\n/stackhook deploy x\n```",
        "```hcl\n/stackhook deploy x\n```",
        "~~~\n/stackhook deploy x\n~~~",
        "~~~ text\n/stackhook deploy x",
        "```\n/stackhook deploy x",
        "````\n```\n/stackhook deploy x\n````",
        "~~~\n```\n/stackhook deploy x\n~~~",
        "  ```\n/stackhook deploy x\n  ```",
        "    /stackhook deploy x",
        "\t/stackhook deploy x",
        "  \t/stackhook deploy x",
        "text\n\n    /stackhook deploy x",
        "text\n    /stackhook deploy x",
        "`/stackhook deploy x`",
        "`code\n/stackhook deploy x`",
        "`a\n/stackhook status\n`",
        "``a ` b\n/stackhook deploy x``",
        "> /stackhook deploy x",
        "   > /stackhook deploy x",
        ">/stackhook deploy x",
        "> > /stackhook deploy x",
        "> `a\n/stackhook deploy x`",
        "<!--\n/stackhook deploy x\n-->",
        "text <!--\n/stackhook deploy x -->",
        "please run /stackhook deploy x",
        "- /stackhook deploy x",
        "/stackhookx deploy x",
        "/stackhook-deploy x",
        "stackhook deploy x",
        "\u00a0/stackhook deploy x",
        "",
        "   \n\n",
        None,
        f"{REPLY_MARKER}\n/stackhook deploy x",
        "<!--  STACKHOOK:REPLY -->\n/stackhook deploy x",
    ],
)
def test_parse_ignored(content: str | None) -> None:
    assert parse_commands(content, P) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("```\n/stackhook deploy a\n```\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("```\ncode\n```\n\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("```js `x`\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("~~~\n/stackhook deploy a\n```\n/stackhook deploy b", []),
        ("> quoted\n\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("> ```\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("`a`\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("a ` b\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("\\`a\n/stackhook status\n`", [("status", ())]),
        ("`a\n\n/stackhook status\n`", [("status", ())]),
        ("<!-- hidden -->\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("    code\n/stackhook deploy b", [("deploy", (stack("b"),))]),
        ("\ufeff/stackhook deploy b", [("deploy", (stack("b"),))]),
    ],
)
def test_parse_around_code(content: str, expected: list[object]) -> None:
    assert summary(content) == expected


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_parse_line_endings(newline: str) -> None:
    content = newline.join(["Please:", "/stackhook propose a", "", "/stackhook deploy b", "```", "/stackhook lock c",
                            "```", "/stackhook status"])
    items = parse_commands(content, P)
    assert [item.line_number for item in items] == [2, 4, 8]
    assert [item.line for item in items] == ["/stackhook propose a", "/stackhook deploy b", "/stackhook status"]
    assert summary(content) == [("propose", (stack("a"),)), ("deploy", (stack("b"),)), ("status", ())]


@pytest.mark.parametrize(
    ("content", "command_name", "fragment"),
    [
        ("/stackhook", None, "missing"),
        ("/stackhook   ", None, "missing"),
        ("/stackhook frobnicate", None, "not a command"),
        ("/stackhook depoy x", None, "did you mean deploy"),
        ("/stackhook deploy", "deploy", "none was given"),
        ("/stackhook deploy a b", "deploy", "2 were given"),
        ("/stackhook lock", "lock", "exactly one"),
        ("/stackhook unlock a,b", "unlock", "exactly one"),
        ("/stackhook help me", "help", "no arguments"),
        ("/stackhook status x", "status", "1 was given"),
        ('/stackhook deploy "my stack', None, "not closed"),
        ("/stackhook deploy foo:bar", "deploy", "not a kind of reference"),
        ("/stackhook deploy stack:", "deploy", "has no name"),
        ('/stackhook deploy ""', "deploy", "has no name"),
        ("/stackhook deploy module:vpc", "deploy", "stacks only"),
        ("/stackhook lock module:vpc", "lock", "stacks only"),
        ("/stackhook deploy " + "x" * 101, "deploy", "more than 100"),
        ("/stackhook deploy a\x00b", "deploy", "control character"),
    ],
)
def test_parse_errors(content: str, command_name: str | None, fragment: str) -> None:
    [item] = parse_commands(content, P)
    assert isinstance(item, CommandError)
    assert item.command_name == command_name
    assert fragment in item.problem
    assert item.line == content.strip()
    assert item.line_number == 1
    assert item.usage == usage_text(P, item.command_name)


def test_error_usage_of_command() -> None:
    [item] = parse_commands("/stackhook deploy", P)
    assert isinstance(item, CommandError)
    assert item.usage.startswith("/stackhook deploy <stack>\n")
    assert "propose" not in item.usage


def test_errors_keep_order() -> None:
    content = "/stackhook deploy a\n/stackhook nope\n/stackhook status"
    items = parse_commands(content, P)
    assert [type(item) for item in items] == [Command, CommandError, Command]
    assert [item.line_number for item in items] == [1, 2, 3]


def test_custom_prefix() -> None:
    assert summary("!SH deploy a\n/stackhook deploy b", "!sh") == [("deploy", (stack("a"),))]
    assert summary("  @bot   status ", "  @bot ") == [("status", ())]


@pytest.mark.parametrize("prefix", ["", "   ", "two words"])
def test_prefix_invalid(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        validate_prefix(prefix)
    with pytest.raises(ValueError, match="prefix"):
        parse_commands("/stackhook help", prefix)


def test_command_limit() -> None:
    content = "\n".join(f"/stackhook deploy s{number}" for number in range(MAX_COMMANDS + 5))
    items = parse_commands(content, P)
    assert len(items) == MAX_COMMANDS + 1
    assert all(isinstance(item, Command) for item in items[:MAX_COMMANDS])
    last = items[-1]
    assert isinstance(last, CommandError)
    assert last.line_number == MAX_COMMANDS + 1
    assert f"at most {MAX_COMMANDS} commands" in last.problem
    assert "4 more" in last.problem


def test_errors_count_toward_limit() -> None:
    content = "\n".join(["/stackhook nope"] * MAX_COMMANDS + ["/stackhook status"])
    items = parse_commands(content, P)
    assert len(items) == MAX_COMMANDS + 1
    assert all(isinstance(item, CommandError) for item in items)


def test_reference_limit() -> None:
    first = "/stackhook propose " + " ".join(f"a{number}" for number in range(MAX_REFERENCES - 1))
    content = f"{first}\n/stackhook deploy b\n/stackhook deploy c\n/stackhook status"
    items = parse_commands(content, P)
    assert [type(item) for item in items] == [Command, Command, CommandError, Command]
    error = items[2]
    assert isinstance(error, CommandError)
    assert f"at most {MAX_REFERENCES} stacks" in error.problem
    assert error.command_name == "deploy"


def test_reference_limit_one_command() -> None:
    content = "/stackhook propose " + ",".join(f"a{number}" for number in range(MAX_REFERENCES + 1))
    [item] = parse_commands(content, P)
    assert isinstance(item, CommandError)
    assert str(MAX_REFERENCES + 1) in item.problem


def test_long_line_ignored() -> None:
    long_line = "/stackhook propose " + "a " * MAX_LINE_LENGTH
    items = parse_commands(f"{long_line}\n/stackhook status", P)
    assert isinstance(items[0], CommandError)
    assert str(MAX_LINE_LENGTH) in items[0].problem
    assert len(items[0].line) <= 120
    assert isinstance(items[1], Command)


def test_line_at_max_length() -> None:
    line = "/stackhook deploy " + "x" * (MAX_LINE_LENGTH - len("/stackhook deploy "))
    assert len(line) == MAX_LINE_LENGTH
    [item] = parse_commands(line, P)
    assert isinstance(item, CommandError)
    assert "more than 100" in item.problem


@pytest.mark.parametrize(
    ("reference", "normalised", "text"),
    [
        (StackReference(None, "Network"), "network", "Network"),
        (StackReference("stack", "My  Stack "), "my stack", 'stack:"My  Stack "'),
        (StackReference("module", "ＶＰＣ"), "vpc", "module:ＶＰＣ"),
        (StackReference(None, "Straße"), "strasse", "Straße"),
        (StackReference(None, "本番"), "本番", "本番"),
        (StackReference(None, "db:primary"), "db:primary", '"db:primary"'),
    ],
)
def test_reference_forms(reference: StackReference, normalised: str, text: str) -> None:
    assert reference.normalised == normalised
    assert reference.text == text


@pytest.mark.parametrize("reference", [StackReference(None, "my stack"), StackReference("module", "a,b"),
                                       StackReference("stack", "x:y"), StackReference(None, "本番")])
def test_reference_text_parses_back(reference: StackReference) -> None:
    [item] = parse_commands(f"/stackhook propose {reference.text}", P)
    assert isinstance(item, Command)
    assert item.references == (reference,)


@pytest.mark.parametrize(
    ("name", "role"),
    [("help", None), ("propose", "read"), ("status", "read"), ("deploy", "write"), ("lock", "write"),
     ("unlock", "write")],
)
def test_required_role(name: str, role: str | None) -> None:
    assert required_role(name) == role  # type: ignore[arg-type]


def test_usage_lists_every_command() -> None:
    text = usage_text("!sh")
    for usage in USAGE:
        assert f"!sh {usage.name}" in text
        assert usage.summary in text
    assert "/stackhook" not in text
    assert "!sh deploy <stack>" in text
    assert "!sh propose [stack ...]" in text


@pytest.mark.parametrize(
    ("content", "own"),
    [
        (REPLY_MARKER, True),
        (f"text\n{REPLY_MARKER}", True),
        ("<!--stackhook:reply-->", True),
        ("<!-- StackHook:Reply -->", True),
        ("stackhook:reply", False),
        ("<!-- stackhook -->", False),
        ("", False),
        (None, False),
    ],
)
def test_is_own_reply(content: str | None, own: bool) -> None:
    assert is_own_reply(content) is own


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("/stackhookPRDEPLY `~>\"\\,:<!-\n\r\t x本")) | st.characters(),
               max_size=400))
def test_parse_never_raises(content: str) -> None:
    items = parse_commands(content, P)
    assert len(items) <= MAX_COMMANDS + 1
    assert sum(len(item.references) for item in items if isinstance(item, Command)) <= MAX_REFERENCES
    for item in items:
        assert item.line_number >= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["/stackhook propose a b", "/stackhook deploy x", "text", "```", "> q", "",
                                 "/stackhook nope", "`", "    /stackhook status"]), max_size=80))
def test_parse_many_lines_bounded(lines: list[str]) -> None:
    items = parse_commands("\n".join(lines), P)
    assert len(items) <= MAX_COMMANDS + 1
    numbers = [item.line_number for item in items]
    assert numbers == sorted(numbers)
