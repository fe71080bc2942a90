import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.versions import SemanticVersion, next_version_allowed, parse_module_version
from shared.errors import ValidationFailed


def v(text: str) -> SemanticVersion:
    return SemanticVersion.parse(text)


@pytest.mark.parametrize(
    ("text", "major", "minor", "patch", "prerelease", "build"),
    [
        ("0.0.0", 0, 0, 0, (), ()),
        ("1.2.3", 1, 2, 3, (), ()),
        ("10.20.30", 10, 20, 30, (), ()),
        ("1.0.0-alpha", 1, 0, 0, ("alpha",), ()),
        ("1.0.0-alpha.1", 1, 0, 0, ("alpha", "1"), ()),
        ("1.0.0-0.3.7", 1, 0, 0, ("0", "3", "7"), ()),
        ("1.0.0-x.7.z.92", 1, 0, 0, ("x", "7", "z", "92"), ()),
        ("1.0.0-x-y-z.--", 1, 0, 0, ("x-y-z", "--"), ()),
        ("1.0.0-alpha+001", 1, 0, 0, ("alpha",), ("001",)),
        ("1.0.0+20130313144700", 1, 0, 0, (), ("20130313144700",)),
        ("1.0.0-beta+exp.sha.5114f85", 1, 0, 0, ("beta",), ("exp", "sha", "5114f85")),
        ("1.0.0+21AF26D3----117B344092BD", 1, 0, 0, (), ("21AF26D3----117B344092BD",)),
        ("99999999999999999999.0.0", 99999999999999999999, 0, 0, (), ()),
    ],
)
def test_parse_version_valid(
    text: str, major: int, minor: int, patch: int, prerelease: tuple[str, ...], build: tuple[str, ...]
) -> None:
    version = v(text)
    assert (version.major, version.minor, version.patch) == (major, minor, patch)
    assert version.prerelease == prerelease
    assert version.build == build
    assert str(version) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("v1.2.3", "remove it and write 1.2.3"),
        ("V1.2.3", "remove it"),
        ("01.2.3", "leading zero"),
        ("1.02.3", "leading zero"),
        ("1.2.3-01", "leading zero"),
        ("1.2.3-rc.01", "leading zero"),
        ("1.2", "not a semantic version"),
        ("1.2.3.4", "not a semantic version"),
        ("1.2.3-", "not a semantic version"),
        ("1.2.3+", "not a semantic version"),
        ("1.2.3-a..b", "not a semantic version"),
        ("1.2.3-a_b", "not a semantic version"),
        ("1.2.3 ", "not a semantic version"),
        ("1.2.３", "not a semantic version"),
        ("", "not a semantic version"),
        ("1.0.0-" + "a" * 260, "at most 256"),
    ],
)
def test_parse_version_rejected(text: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        v(text)
    assert caught.value.field == "module_version"
    assert fragment in caught.value.message


def test_build_metadata_may_have_leading_zero() -> None:
    assert v("1.2.3+01").build == ("01",)


# The precedence example of the Semantic Versioning 2.0.0 specification (rule 11), lowest first.
SEMVER_ORG_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


@pytest.mark.parametrize(("lower", "higher"), list(itertools.pairwise(SEMVER_ORG_ORDER)))
def test_precedence_pairs(lower: str, higher: str) -> None:
    assert v(lower) < v(higher)
    assert v(higher) > v(lower)
    assert v(lower) != v(higher)


def test_precedence_sorts_semver_example() -> None:
    shuffled = list(reversed(SEMVER_ORG_ORDER))
    assert [str(version) for version in sorted(map(v, shuffled))] == SEMVER_ORG_ORDER


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.9.0", "1.10.0"),
        ("1.0.0-2", "1.0.0-10"),
        ("1.0.0-999", "1.0.0-a"),
        ("1.0.0-B", "1.0.0-a"),
        ("1.0.0-rc.1", "1.0.0+build"),
    ],
)
def test_precedence_edge_cases(lower: str, higher: str) -> None:
    assert v(lower) < v(higher)


def test_build_metadata_ignored() -> None:
    assert v("1.0.0+a") == v("1.0.0+b")
    assert hash(v("1.0.0+a")) == hash(v("1.0.0"))
    assert not v("1.0.0+a") < v("1.0.0+b")
    assert str(v("1.0.0+a")) == "1.0.0+a"


_NUMBER = st.integers(min_value=0, max_value=30)
_IDENTIFIER = st.one_of(
    st.integers(min_value=0, max_value=30).map(str),
    st.text(alphabet="abcXYZ-", min_size=1, max_size=3),
)
_VERSIONS = st.builds(
    SemanticVersion,
    major=_NUMBER,
    minor=_NUMBER,
    patch=_NUMBER,
    prerelease=st.lists(_IDENTIFIER, max_size=3).map(tuple),
    build=st.lists(st.sampled_from(["b1", "007", "x"]), max_size=2).map(tuple),
)


@given(st.lists(_VERSIONS, max_size=8))
def test_sorting_is_consistent(versions: list[SemanticVersion]) -> None:
    ordered = sorted(versions)
    for lower, higher in itertools.pairwise(ordered):
        assert lower <= higher
        assert not higher < lower
    assert sorted(reversed(ordered)) == ordered
    assert [version.precedence_key for version in ordered] == sorted(version.precedence_key for version in versions)


@given(_VERSIONS)
def test_str_parses_back(version: SemanticVersion) -> None:
    again = SemanticVersion.parse(str(version))
    assert again == version
    assert again.build == version.build


@given(_VERSIONS, _VERSIONS)
def test_order_is_total(first: SemanticVersion, second: SemanticVersion) -> None:
    assert sum([first < second, first == second, first > second]) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("module_version: 1.2.3\n", "1.2.3"),
        ("version: 1\nmodule_version: 1.2.3\n", "1.2.3"),
        ("module_version: '1.2.3'\n", "1.2.3"),
        ('module_version: "1.2.3-rc.1+b.7"\n', "1.2.3-rc.1+b.7"),
        ("module_version: 1.2.3 # bump on release\n", "1.2.3"),
        ("module_version: '1.2.3'  # quoted\n", "1.2.3"),
        ("module_version:\t1.2.3\r\n", "1.2.3"),
        ("module_version : 1.2.3", "1.2.3"),
        ("\ufeffmodule_version: 1.2.3", "1.2.3"),
        ("# module_version: 9.9.9\nmodule_version: 1.2.3\n", "1.2.3"),
        ("module:\n  module_version: 9.9.9\nmodule_version: 1.2.3\n", "1.2.3"),
        ("---\nversion: 1\nmodule_version: 0.1.0\nstacks: []\n", "0.1.0"),
    ],
)
def test_module_version_read(text: str, expected: str) -> None:
    assert str(parse_module_version(text)) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no top-level module_version"),
        ("version: 1\n", "no top-level module_version"),
        ("  module_version: 1.2.3\n", "no top-level module_version"),
        ("module:\n  version: 1.2.3\n", "no top-level module_version"),
        ("module_version:1.2.3\n", "no top-level module_version"),
        ("module_version:\n", "is empty"),
        ("module_version: # later\n", "is empty"),
        ("module_version: 1.2.3\nmodule_version: 1.2.4\n", "2 times"),
        ("module_version: v1.2.3\n", "remove it"),
        ("module_version: 1.2.3#x\n", "not a semantic version"),
        ("module_version: '1.2.3\n", "not a semantic version"),
        ("module_version: 1.2\n", "not a semantic version"),
    ],
)
def test_module_version_rejected(text: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_module_version(text)
    assert caught.value.field == "module_version"
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("new", "existing"),
    [
        ("1.0.0", []),
        ("1.0.1", ["1.0.0"]),
        ("0.9.0", ["1.0.0"]),
        ("1.0.0", ["1.0.0-rc.1"]),
        ("1.0.0-rc.2", ["1.0.0-rc.1", "1.0.0"]),
    ],
)
def test_next_version_allowed(new: str, existing: list[str]) -> None:
    next_version_allowed(v(new), [v(text) for text in existing])


@pytest.mark.parametrize(
    ("new", "existing", "suggestion"),
    [
        ("1.0.0", ["1.0.0"], "such as 1.0.1"),
        ("1.0.0+b2", ["0.1.0", "1.0.0+b1"], "published as 1.0.0+b1"),
        ("1.0.0-rc.1", ["1.0.0-rc.1", "2.3.4"], "such as 2.3.5"),
    ],
)
def test_next_version_reused(new: str, existing: list[str], suggestion: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        next_version_allowed(v(new), (v(text) for text in existing))
    assert caught.value.field == "module_version"
    assert "never reused" in caught.value.message
    assert suggestion in caught.value.message
