"""Module versions: reading `module_version` from `.spacelift/config.yml` and comparing versions.

A module declares its version at a commit with a top-level `module_version` key in
`.spacelift/config.yml`, the key that Spacelift reads
(https://docs.spacelift.io/concepts/configuration/runtime-configuration/runtime-yaml-reference):

    version: 1
    module_version: 1.2.3   # optional comment

The file is read with a small line parser, not a YAML library. It reads only that one key,
unquoted and at the start of a line, with a plain, single-quoted or double-quoted value. A
`version:` key nested under `module:`, flow mappings (`{module_version: 1.2.3}`) and multi-line
values are not read. Versions follow Semantic Versioning 2.0.0. Spacelift's reference accepts
only MAJOR.MINOR.PATCH, but this parser also accepts pre-release and build parts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Final

from shared.errors import ValidationFailed

CONFIG_PATH: Final = ".spacelift/config.yml"
MAX_VERSION_LENGTH: Final = 256

_FIELD: Final = "module_version"

# The Semantic Versioning 2.0.0 grammar. It uses [0-9] because \d also matches non-ASCII digits.
_SEMVER = re.compile(
    r"^(?P<major>0|[1-9][0-9]*)\.(?P<minor>0|[1-9][0-9]*)\.(?P<patch>0|[1-9][0-9]*)"
    r"(?:-(?P<prerelease>(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_LEADING_ZERO = re.compile(r"(?:^|[.-])0[0-9]")
_KEY_LINE = re.compile(r"^module_version[ \t]*:(?P<rest>.*)$")
_QUOTED = re.compile(r"""^(?P<quote>["'])(?P<value>.*?)(?P=quote)[ \t]*(?:#.*)?$""")


@total_ordering
@dataclass(frozen=True, slots=True)
class SemanticVersion:
    """A Semantic Versioning 2.0.0 version.

    Equality and ordering follow semver precedence, so build metadata is kept for `str` but
    ignored when comparing: `1.0.0+a == 1.0.0+b`. A pre-release sorts before its release,
    numeric identifiers compare as numbers, and numeric identifiers sort before alphanumeric ones.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, value: str) -> SemanticVersion:
        """Parse a version such as `1.2.3-rc.1+build.5`.

        Raises ValidationFailed(field="module_version") when the value is not a strict
        Semantic Versioning 2.0.0 version, for example with a `v` prefix or leading zeros.
        """
        if len(value) > MAX_VERSION_LENGTH:
            raise ValidationFailed(
                f"module version is {len(value)} characters long; it may have at most {MAX_VERSION_LENGTH}",
                field=_FIELD,
            )
        match = _SEMVER.fullmatch(value)
        if match is None:
            raise ValidationFailed(_invalid_version_message(value), field=_FIELD)
        prerelease = match.group("prerelease")
        build = match.group("build")
        return cls(
            major=int(match.group("major")),
            minor=int(match.group("minor")),
            patch=int(match.group("patch")),
            prerelease=tuple(prerelease.split(".")) if prerelease else (),
            build=tuple(build.split(".")) if build else (),
        )

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self.precedence_key < other.precedence_key

    @property
    def precedence_key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """A tuple that sorts in semver precedence order, with a release after its pre-releases."""
        identifiers = tuple(
            (0, int(identifier), "") if identifier.isdigit() else (1, 0, identifier)
            for identifier in self.prerelease
        )
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, identifiers)

    def next_patch(self) -> SemanticVersion:
        """Return the release after this version: `1.2.4` for `1.2.3`, and `1.2.3` for `1.2.3-rc.1`."""
        if self.prerelease:
            return SemanticVersion(self.major, self.minor, self.patch)
        return SemanticVersion(self.major, self.minor, self.patch + 1)


def _invalid_version_message(value: str) -> str:
    example = "use MAJOR.MINOR.PATCH with an optional -pre-release and +build, such as 1.2.3 or 2.0.0-rc.1"
    if value[:1] in ("v", "V") and _SEMVER.fullmatch(value[1:]):
        return f"module version {value!r} starts with {value[0]!r}; remove it and write {value[1:]}"
    core = value.split("+", 1)[0]
    if _LEADING_ZERO.search(core):
        return f"module version {value!r} has a numeric part with a leading zero, which semver forbids; {example}"
    return f"module version {value!r} is not a semantic version; {example}"


def parse_module_version(text: str) -> SemanticVersion:
    """Read the top-level `module_version` from the text of `.spacelift/config.yml`.

    Raises ValidationFailed(field="module_version") when the key is missing, given twice, empty,
    or not a strict semantic version.
    """
    values: list[str] = []
    for line in text.removeprefix("\ufeff").splitlines():
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        rest = match.group("rest")
        # YAML needs a space after the colon, so `module_version:1.2.3` is a plain string, not this key.
        if rest and rest[0] not in " \t":
            continue
        values.append(_scalar(rest.strip()))

    if not values:
        raise ValidationFailed(
            f"{CONFIG_PATH} has no top-level module_version; add a line such as 'module_version: 1.2.3' "
            "at the start of a line, not nested under another key",
            field=_FIELD,
        )
    if len(values) > 1:
        raise ValidationFailed(
            f"{CONFIG_PATH} sets module_version {len(values)} times; keep one top-level module_version line",
            field=_FIELD,
        )
    if not values[0]:
        raise ValidationFailed(
            f"module_version in {CONFIG_PATH} is empty; give a version such as 'module_version: 1.2.3'",
            field=_FIELD,
        )
    return SemanticVersion.parse(values[0])


def _scalar(value: str) -> str:
    """Return a YAML scalar without quotes and trailing comment.

    In a plain scalar a comment starts at `#` after whitespace, so `1.2.3#x` keeps its `#x`.
    """
    quoted = _QUOTED.match(value)
    if quoted is not None:
        return quoted.group("value")
    if value.startswith("#"):
        return ""
    return re.split(r"[ \t]#", value, maxsplit=1)[0].rstrip()


def next_version_allowed(new: SemanticVersion, existing: Iterable[SemanticVersion]) -> None:
    """Raise ValidationFailed(field="module_version") when `new` was published before.

    A version is never reused. Versions that differ only in build metadata count as the same.
    Any unused version is allowed, even one lower than the latest.
    """
    published = list(existing)
    for version in published:
        if version == new:
            latest = max(published)
            raise ValidationFailed(
                f"module version {new} already exists (published as {version}); versions are never reused, "
                f"so set module_version in {CONFIG_PATH} to a new version such as {latest.next_patch()}",
                field=_FIELD,
            )
