"""Matching of changed files to the stacks and modules they touch.

A route names a stack or module, the branch it tracks, its project root and extra globs. A change
touches a route when a changed file lies under the project root (every file does when the root is
the repository root) or matches one of the globs.

Glob rules follow git pathspecs (`git help glossary`, "glob" magic) and `.gitignore` patterns:

- a pattern is matched against the whole repository-relative path, so `*.tf` matches only files
  at the repository root, while `**/*.tf` matches them at any depth;
- `*` matches any run of characters except `/`, and `?` matches one character except `/`;
- `[abc]`, `[a-z]` and the negations `[!a-z]` and `[^a-z]` match one character, never `/`.
  A `]` right after the opening bracket (or after `!` or `^`) is a literal `]`;
- `**` as a whole path segment matches zero or more folders: `modules/**/*.tf` matches
  `modules/a.tf` and `modules/x/y/a.tf`, a leading `**/` matches any folder or none, and a
  trailing `/**` matches every file inside that folder. Elsewhere `**` acts like `*`;
- matching is case-sensitive, as in git, and a path may contain spaces and non-ASCII letters;
- a trailing `/` names a folder and matches every file inside it, like a trailing `/**`;
- a backslash is rejected instead of being read as an escape, because it usually means a Windows
  path. To match a literal `*`, `?` or `[`, wrap it in brackets: `[*]`, `[?]`, `[[]`.

Paths from Azure DevOps start with `/`, which is stripped before matching.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Protocol

from shared.errors import ValidationFailed

MAX_GLOB_LENGTH: Final = 256
# Git sets no limit. This one keeps stored values and error messages readable.
MAX_PROJECT_ROOT_LENGTH: Final = 1024

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class RouteLike(Protocol):
    """The attributes of a stack or module route that matching and run decisions read."""

    @property
    def kind(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def tracked_branch(self) -> str: ...

    @property
    def project_root(self) -> str: ...

    @property
    def project_globs(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A route built directly, for callers and tests that have no stored route at hand."""

    kind: str
    id: str
    tracked_branch: str
    project_root: str = ""
    project_globs: tuple[str, ...] = ()


# --- input checks -----------------------------------------------------------------------------


def normalise_project_root(value: str) -> str:
    """Normalise a project root to a repository-relative folder without leading or trailing `/`.

    `./` and `.` segments are dropped and repeated slashes collapse, so `./modules//vpc/` becomes
    `modules/vpc`. The empty string is the repository root. Raises
    ValidationFailed(field="projectRoot") for `..` segments, backslashes, absolute Windows paths,
    control characters and values longer than 1024 characters.
    """
    field = "projectRoot"
    if not isinstance(value, str):
        raise ValidationFailed(f"project root must be a string, got {type(value).__name__}", field=field)
    if _has_control_character(value):
        raise ValidationFailed(
            f"project root {value!r} contains a control character; remove tabs, line breaks and other "
            "control characters",
            field=field,
        )
    if _WINDOWS_DRIVE.match(value) or "\\" in value:
        raise ValidationFailed(
            f"project root {value!r} looks like a Windows path; give a folder relative to the repository "
            "root with / between folders, such as modules/vpc",
            field=field,
        )
    segments = [segment for segment in value.strip().split("/") if segment not in ("", ".")]
    if ".." in segments:
        raise ValidationFailed(
            f"project root {value!r} contains a '..' segment; give a folder inside the repository, "
            "relative to its root, such as modules/vpc",
            field=field,
        )
    root = "/".join(segments)
    if len(root) > MAX_PROJECT_ROOT_LENGTH:
        raise ValidationFailed(
            f"project root is {len(root)} characters long; it may have at most {MAX_PROJECT_ROOT_LENGTH}",
            field=field,
        )
    return root


def validate_glob(pattern: str) -> str:
    """Check a project glob and return it without leading `/`.

    Raises ValidationFailed(field="projectGlobs") for an empty pattern, one longer than 256
    characters, a `..` segment, a backslash, a control character or an unclosed `[`.
    """
    field = "projectGlobs"
    if not isinstance(pattern, str):
        raise ValidationFailed(f"project glob must be a string, got {type(pattern).__name__}", field=field)
    stripped = pattern.lstrip("/")
    if not stripped:
        raise ValidationFailed(
            f"project glob {pattern!r} is empty; give a pattern such as modules/**/*.tf", field=field
        )
    if len(stripped) > MAX_GLOB_LENGTH:
        raise ValidationFailed(
            f"project glob {stripped[:40]!r}… is {len(stripped)} characters long; a glob may have at most "
            f"{MAX_GLOB_LENGTH}",
            field=field,
        )
    if _has_control_character(stripped):
        raise ValidationFailed(
            f"project glob {pattern!r} contains a control character; remove tabs, line breaks and other "
            "control characters",
            field=field,
        )
    if "\\" in stripped:
        raise ValidationFailed(
            f"project glob {pattern!r} contains a backslash; separate folders with / and match a literal "
            "*, ? or [ with [*], [?] or [[]",
            field=field,
        )
    if ".." in stripped.split("/"):
        raise ValidationFailed(
            f"project glob {pattern!r} contains a '..' segment; globs match paths inside the repository, "
            "relative to its root",
            field=field,
        )
    # Repeated slashes collapse, as no repository path contains them.
    normalised = re.sub("/{2,}", "/", stripped)
    _glob_regex(normalised)
    return normalised


def _has_control_character(value: str) -> bool:
    return any(unicodedata.category(character) in ("Cc", "Cs") for character in value)


# --- glob compilation -------------------------------------------------------------------------


def glob_matches(pattern: str, path: str) -> bool:
    """Tell whether a repository path matches a glob. The module docstring lists the rules.

    Raises ValidationFailed like `validate_glob` when the pattern is invalid.
    """
    return _compiled_glob(pattern).fullmatch(_repository_path(path)) is not None


@lru_cache(maxsize=1024)
def _compiled_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(_glob_regex(validate_glob(pattern)), re.DOTALL)


def _repository_path(path: str) -> str:
    return path.lstrip("/")


def _glob_regex(pattern: str) -> str:
    """Translate a validated glob into a regular expression for `re.fullmatch`.

    A trailing `/` names a folder, so `modules/` is read as `modules/**`.
    """
    if pattern.endswith("/"):
        pattern += "**"
    segments = pattern.split("/")
    parts: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment != "**":
            parts.append(_segment_regex(segment, pattern))
            if index < last:
                parts.append("/")
        elif index == last:
            # A trailing `**` matches every file inside the folder, and `**` alone matches any path.
            parts.append(".+" if index > 0 else ".*")
        else:
            # `**/` matches zero or more whole folders.
            parts.append("(?:[^/]+/)*")
    return "".join(parts)


def _segment_regex(segment: str, pattern: str) -> str:
    parts: list[str] = []
    position = 0
    while position < len(segment):
        character = segment[position]
        if character == "*":
            parts.append("[^/]*")
            while position + 1 < len(segment) and segment[position + 1] == "*":
                position += 1
        elif character == "?":
            parts.append("[^/]")
        elif character == "[":
            bracket, position = _bracket_regex(segment, position, pattern)
            parts.append(bracket)
            continue
        else:
            parts.append(re.escape(character))
        position += 1
    return "".join(parts)


def _bracket_regex(segment: str, start: int, pattern: str) -> tuple[str, int]:
    """Translate the bracket expression at `segment[start]` and return it with the next position."""
    position = start + 1
    negated = position < len(segment) and segment[position] in "!^"
    if negated:
        position += 1

    members: list[str] = []
    first = True
    while position < len(segment) and (first or segment[position] != "]"):
        character = segment[position]
        is_range = position + 2 < len(segment) and segment[position + 1] == "-" and segment[position + 2] != "]"
        if is_range:
            low, high = character, segment[position + 2]
            if low > high:
                raise ValidationFailed(
                    f"project glob {pattern!r} has the range {low}-{high}, whose start is after its end; "
                    f"write it as {high}-{low}",
                    field="projectGlobs",
                )
            members.append(f"{re.escape(low)}-{re.escape(high)}")
            position += 3
        else:
            members.append(re.escape(character))
            position += 1
        first = False

    if position >= len(segment):
        raise ValidationFailed(
            f"project glob {pattern!r} has a '[' without a matching ']'; close the bracket, or write [[] "
            "to match a literal [",
            field="projectGlobs",
        )

    body = "".join(members)
    # A bracket expression never matches `/`, as `*` and `?` do not.
    regex = f"[^/{body}]" if negated else f"(?!/)[{body}]"
    return regex, position + 1


# --- routes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A route with its project root normalised and its globs compiled into one expression."""

    route: RouteLike
    project_root: str
    globs: re.Pattern[str] | None

    def matches(self, path: str) -> bool:
        """Tell whether a changed file (or folder) path touches the route.

        The project root folder itself counts as touched, so deleting or renaming it starts a run.
        """
        relative = _repository_path(path)
        if not self.project_root:
            return True
        if relative == self.project_root or relative.startswith(self.project_root + "/"):
            return True
        return self.globs is not None and self.globs.fullmatch(relative) is not None

    def touched_by(self, changed_paths: Iterable[str]) -> bool:
        """Tell whether any of the changed paths touches the route. An empty list touches nothing."""
        return any(self.matches(path) for path in changed_paths)


def compile_route(route: RouteLike) -> CompiledRoute:
    """Normalise the project root and compile the globs of a route once, for many paths.

    Raises ValidationFailed(field="projectRoot" or "projectGlobs") for an invalid root or glob.
    """
    globs = [_glob_regex(validate_glob(pattern)) for pattern in route.project_globs]
    combined = re.compile("|".join(f"(?:{regex})" for regex in globs), re.DOTALL) if globs else None
    return CompiledRoute(route=route, project_root=normalise_project_root(route.project_root), globs=combined)


def route_touched(route: RouteLike, changed_paths: Iterable[str]) -> bool:
    """Tell whether a change to `changed_paths` touches the route.

    Compile the route with `compile_route` instead when it is checked against several changes.
    """
    return compile_route(route).touched_by(changed_paths)
