import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.matching import (
    RouteSpec,
    compile_route,
    glob_matches,
    normalise_project_root,
    route_touched,
    validate_glob,
)
from shared.errors import ValidationFailed


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.tf", "main.tf", True),
        ("*.tf", "/main.tf", True),
        ("*.tf", "modules/main.tf", False),
        ("modules/*.tf", "modules/a.tf", True),
        ("modules/*.tf", "modules/x/a.tf", False),
        ("modules/?.tf", "modules/a.tf", True),
        ("modules/?.tf", "modules/ab.tf", False),
        ("a?b", "a/b", False),
        ("modules/**/*.tf", "modules/a.tf", True),
        ("modules/**/*.tf", "modules/x/a.tf", True),
        ("modules/**/*.tf", "modules/x/y/z/a.tf", True),
        ("modules/**/*.tf", "modulesx/a.tf", False),
        ("modules/**/*.tf", "other/modules/a.tf", False),
        ("**/*.tf", "main.tf", True),
        ("**/*.tf", "a/b/c/main.tf", True),
        ("**/*.tf", "a/b/c/main.tfvars", False),
        ("**", "anything/at/all.txt", True),
        ("modules/**", "modules/a/b.tf", True),
        ("modules/**", "modules", False),
        ("modules/**", "modulesx/a.tf", False),
        ("modules/", "modules/a/b.tf", True),
        ("/modules/*.tf", "/modules/a.tf", True),
        ("modules//*.tf", "modules/a.tf", True),
        ("a**b", "axxb", True),
        ("a**b", "ax/xb", False),
        ("env/[abc].tfvars", "env/b.tfvars", True),
        ("env/[abc].tfvars", "env/d.tfvars", False),
        ("env/[a-c].tfvars", "env/b.tfvars", True),
        ("env/[!a-c].tfvars", "env/d.tfvars", True),
        ("env/[^a-c].tfvars", "env/a.tfvars", False),
        ("env/[!a-c].tfvars", "env//.tfvars", False),
        ("a[!x]b", "a/b", False),
        ("[]]x", "]x", True),
        ("[*]x", "*x", True),
        ("[*]x", "ax", False),
        ("my stacks/*.tf", "/my stacks/main.tf", True),
        ("Dépôts/日本/*.tf", "/Dépôts/日本/main.tf", True),
        ("Modules/*.tf", "modules/a.tf", False),
        ("modules/*.tf", "Modules/a.tf", False),
        ("a.tf", "a-tf", False),
        ("a+b(c)$.tf", "a+b(c)$.tf", True),
    ],
)
def test_glob_matches(pattern: str, path: str, expected: bool) -> None:
    assert glob_matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/modules/*.tf", "modules/*.tf"),
        ("//a", "a"),
        ("a//b", "a/b"),
        ("**/*.tf", "**/*.tf"),
        ("x" * 256, "x" * 256),
    ],
)
def test_validate_glob_valid(pattern: str, expected: str) -> None:
    assert validate_glob(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty"),
        ("/", "empty"),
        ("x" * 257, "at most 256"),
        ("../x/*.tf", "'..' segment"),
        ("a/../b", "'..' segment"),
        ("modules\\*.tf", "backslash"),
        ("a[bc", "without a matching ']'"),
        ("a[]", "without a matching ']'"),
        ("a[/]b", "without a matching ']'"),
        ("[z-a]", "start is after its end"),
        ("a\nb", "control character"),
    ],
)
def test_validate_glob_rejected(pattern: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_glob(pattern)
    assert caught.value.field == "projectGlobs"
    assert fragment in caught.value.message


def test_glob_matches_rejects_invalid_pattern() -> None:
    with pytest.raises(ValidationFailed):
        glob_matches("a/../b", "b")


_LITERAL_SEGMENT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\*?[]"
    ),
    min_size=1,
    max_size=12,
).filter(lambda segment: segment not in (".", ".."))


@given(st.lists(_LITERAL_SEGMENT, min_size=1, max_size=5))
def test_glob_literal_path_matches_itself(segments: list[str]) -> None:
    path = "/".join(segments)
    assert glob_matches(path, path)
    assert glob_matches(path, "/" + path)
    assert glob_matches("**/" + segments[-1], path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("/", ""),
        (".", ""),
        ("./", ""),
        ("modules/vpc", "modules/vpc"),
        ("/modules/vpc/", "modules/vpc"),
        ("./modules//vpc/", "modules/vpc"),
        ("modules/./vpc", "modules/vpc"),
        ("  stacks/prod  ", "stacks/prod"),
        ("my stacks/日本", "my stacks/日本"),
        ("...", "..."),
        ("a/..b", "a/..b"),
    ],
)
def test_project_root_normalised(value: str, expected: str) -> None:
    assert normalise_project_root(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("..", "'..' segment"),
        ("modules/../../etc", "'..' segment"),
        ("C:\\repo\\stack", "Windows path"),
        ("C:/repo/stack", "Windows path"),
        ("\\\\server\\share", "Windows path"),
        ("modules\\vpc", "Windows path"),
        ("a\tb", "control character"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_project_root_rejected(value: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_project_root(value)
    assert caught.value.field == "projectRoot"
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("root", "globs", "paths", "expected"),
    [
        ("", (), ["/README.md"], True),
        ("", (), [], False),
        ("stacks/prod", (), ["/stacks/prod/main.tf"], True),
        ("stacks/prod", (), ["/stacks/prod"], True),
        ("stacks/prod", (), ["/stacks/production/main.tf"], False),
        ("stacks/prod", (), ["/stacks/dev/main.tf", "/README.md"], False),
        ("./stacks/prod/", (), ["/stacks/prod/a/b.tf"], True),
        ("stacks/prod", ("modules/**/*.tf",), ["/modules/vpc/main.tf"], True),
        ("stacks/prod", ("modules/**/*.tf",), ["/modules/vpc/README.md"], False),
        ("stacks/prod", ("*.tfvars", "shared/"), ["/shared/x.tf"], True),
        ("stacks/prod", ("*.tfvars", "shared/"), ["/common.tfvars"], True),
        ("Stacks/Prod", (), ["/stacks/prod/main.tf"], False),
    ],
)
def test_route_touched(root: str, globs: tuple[str, ...], paths: list[str], expected: bool) -> None:
    route = RouteSpec(kind="stack", id="prod", tracked_branch="main", project_root=root, project_globs=globs)
    assert route_touched(route, paths) is expected


def test_route_touched_many_paths() -> None:
    route = RouteSpec(kind="stack", id="prod", tracked_branch="main", project_root="stacks/prod",
                      project_globs=("modules/**/*.tf", "env/[a-c]*.tfvars"))
    compiled = compile_route(route)
    paths = [f"/other/{index}/file {index}.txt" for index in range(20_000)]
    assert not compiled.touched_by(paths)
    assert compiled.touched_by([*paths, "/env/b-prod.tfvars"])


def test_compile_route_rejects_bad_glob() -> None:
    route = RouteSpec(kind="stack", id="prod", tracked_branch="main", project_globs=("a[b",))
    with pytest.raises(ValidationFailed) as caught:
        compile_route(route)
    assert caught.value.field == "projectGlobs"
