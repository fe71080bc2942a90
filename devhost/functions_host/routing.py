"""Route templates of HTTP triggers, matched the way ASP.NET Core routing matches them.

A template is a `/`-separated list of segments. A segment is literal text, a parameter
(`{id}`, `{id?}` optional, `{*path}` catch-all), or literal text mixed with parameters
(`{name}.json`). Parameters take constraints after colons: `int`, `long`, `bool`, `guid`,
`alpha`, `double`, `float`, `decimal`, `min(n)`, `max(n)`, `range(a,b)`, `length(n)`,
`minlength(n)`, `maxlength(n)`. When several routes match a path, the most specific wins:
segment by segment, literal text beats a mixed segment, which beats a constrained parameter,
which beats a free parameter, which beats a catch-all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from devhost.functions_host.errors import HostStartError

_PARAMETER = re.compile(r"\{([^{}]*)\}")
_CONSTRAINT_WITH_ARGUMENT = re.compile(r"^(min|max|range|length|minlength|maxlength)\((-?\d+)(?:,(-?\d+))?\)$")

# Precedence of a segment kind: lower is more specific.
_LITERAL, _MIXED, _CONSTRAINED, _FREE, _CATCH_ALL = 1, 2, 3, 4, 5


def _is_number(value: str, kind: type) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _is_integer(value: str, bits: int) -> bool:
    if not re.fullmatch(r"-?\d+", value):
        return False
    return -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1)


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


_SIMPLE_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": lambda value: _is_integer(value, 32),
    "long": lambda value: _is_integer(value, 64),
    "bool": lambda value: value.lower() in ("true", "false"),
    "guid": _is_guid,
    "alpha": lambda value: value.isascii() and value.isalpha(),
    "double": lambda value: _is_number(value, float),
    "float": lambda value: _is_number(value, float),
    "decimal": lambda value: _is_number(value, float),
}


def _compile_constraint(text: str, template: str) -> Callable[[str], bool]:
    simple = _SIMPLE_CONSTRAINTS.get(text.lower())
    if simple is not None:
        return simple
    match = _CONSTRAINT_WITH_ARGUMENT.match(text.lower())
    if match is None:
        raise HostStartError(f"Route template {template!r} uses the constraint {text!r}, which the local host "
                             f"does not support. Supported: {', '.join(_SIMPLE_CONSTRAINTS)}, min(n), max(n), "
                             "range(a,b), length(n), minlength(n), maxlength(n).")
    name, first, second = match[1], int(match[2]), int(match[3]) if match[3] else None
    if name == "min":
        return lambda value: _is_integer(value, 64) and int(value) >= first
    if name == "max":
        return lambda value: _is_integer(value, 64) and int(value) <= first
    if name == "range":
        upper = first if second is None else second
        return lambda value: _is_integer(value, 64) and first <= int(value) <= upper
    if name == "minlength":
        return lambda value: len(value) >= first
    if name == "maxlength":
        return lambda value: len(value) <= first
    if second is None:
        return lambda value: len(value) == first
    return lambda value: first <= len(value) <= second  # length(a,b)


@dataclass(frozen=True)
class _Parameter:
    name: str
    constraints: tuple[Callable[[str], bool], ...] = ()
    optional: bool = False
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


@dataclass(frozen=True)
class _Segment:
    pattern: re.Pattern[str]
    parameters: tuple[_Parameter, ...]
    precedence: int

    @property
    def single(self) -> _Parameter | None:
        """The parameter when the segment is exactly one parameter."""
        return self.parameters[0] if self.precedence in (_CONSTRAINED, _FREE, _CATCH_ALL) else None


def _parse_parameter(text: str, template: str) -> _Parameter:
    catch_all = text.startswith("*")
    name_part, *constraint_texts = text.lstrip("*").split(":")
    optional = False
    if constraint_texts and constraint_texts[-1].endswith("?"):
        constraint_texts[-1] = constraint_texts[-1][:-1]
        optional = True
    elif name_part.endswith("?"):
        name_part, optional = name_part[:-1], True
    if "=" in name_part:
        raise HostStartError(f"Route template {template!r} gives {name_part!r} a default value, which the local "
                             "host does not support; make the parameter optional with '?' instead.")
    if not re.fullmatch(r"[A-Za-z_]\w*", name_part):
        raise HostStartError(f"Route template {template!r} has an invalid parameter name {name_part!r}; use "
                             "letters, digits and underscores.")
    constraints = tuple(_compile_constraint(item, template) for item in constraint_texts)
    return _Parameter(name_part, constraints, optional, catch_all)


def _parse_segment(text: str, template: str) -> _Segment:
    parameters: list[_Parameter] = []
    pattern_parts: list[str] = []
    position = 0
    for match in _PARAMETER.finditer(text):
        pattern_parts.append(re.escape(text[position:match.start()]))
        parameter = _parse_parameter(match[1], template)
        parameters.append(parameter)
        pattern_parts.append(f"(?P<{parameter.name}>.+?)")
        position = match.end()
    pattern_parts.append(re.escape(text[position:]))
    if "{" in text[position:] or "}" in text[position:] or any("{" in part for part in pattern_parts[::2]):
        raise HostStartError(f"Route template {template!r} has an unbalanced brace in segment {text!r}.")
    if not parameters:
        precedence = _LITERAL
    elif len(parameters) == 1 and pattern_parts[0] == "" and pattern_parts[-1] == "":
        parameter = parameters[0]
        if parameter.catch_all:
            precedence = _CATCH_ALL
        elif parameter.constraints:
            precedence = _CONSTRAINED
        else:
            precedence = _FREE
    else:
        if any(item.catch_all or item.optional for item in parameters):
            raise HostStartError(f"Route template {template!r} mixes text with an optional or catch-all parameter "
                                 f"in segment {text!r}; give such a parameter a segment of its own.")
        precedence = _MIXED
    return _Segment(re.compile("".join(pattern_parts), re.IGNORECASE | re.DOTALL), tuple(parameters), precedence)


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route template; `match` returns route parameters or None."""

    template: str
    segments: tuple[_Segment, ...]
    precedence: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "precedence", tuple(segment.precedence for segment in self.segments))

    def match(self, path_segments: Sequence[str]) -> dict[str, str] | None:
        """Match already split, still percent-encoded path segments; return the decoded route parameters."""
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            single = segment.single
            if single is not None and single.catch_all:
                rest = "/".join(path_segments[index:])
                if rest:
                    values[single.name] = unquote(rest)
                return values if not rest or single.accepts(unquote(rest)) else None
            if index >= len(path_segments):
                return values if single is not None and single.optional else None
            decoded = unquote(path_segments[index])
            match = segment.pattern.fullmatch(decoded)
            if match is None:
                return None
            for parameter in segment.parameters:
                value = match[parameter.name]
                if not value or not parameter.accepts(value):
                    return None
                values[parameter.name] = value
        return values if len(path_segments) == len(self.segments) else None


def compile_route(template: str) -> RouteTemplate:
    """Compile a route template; raise `HostStartError` when it is invalid or unsupported."""
    texts = template.strip("/").split("/") if template.strip("/") else []
    if any(not text for text in texts):
        raise HostStartError(f"Route template {template!r} has an empty segment ('//').")
    segments = tuple(_parse_segment(text, template) for text in texts)
    names = [parameter.name.lower() for segment in segments for parameter in segment.parameters]
    if len(names) != len(set(names)):
        raise HostStartError(f"Route template {template!r} uses a parameter name twice.")
    for index, segment in enumerate(segments):
        single = segment.single
        last = index == len(segments) - 1
        if single is not None and (single.catch_all or single.optional) and not last:
            raise HostStartError(f"Route template {template!r} has an optional or catch-all parameter "
                                 f"{single.name!r} before the last segment; move it to the end.")
    return RouteTemplate(template, segments)


def split_path(path: str) -> list[str]:
    """Split a URL path (without the query) into segments, ignoring leading and trailing slashes."""
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []
