from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.core.urls import (
    OrganizationUrl,
    encode_path_segment,
    normalise_organization_url,
    normalise_user_facing_host_url,
    repository_key,
)
from shared.errors import ValidationFailed

ORGANIZATION_FORMS = "https://dev.azure.com/{organization}"


@pytest.mark.parametrize(
    ("value", "url", "kind", "organization", "host"),
    [
        ("https://dev.azure.com/fabrikam", "https://dev.azure.com/fabrikam", "services", "fabrikam", "dev.azure.com"),
        ("https://dev.azure.com/Fabrikam/", "https://dev.azure.com/Fabrikam", "services", "Fabrikam", "dev.azure.com"),
        ("HTTPS://DEV.AZURE.COM:443/fabrikam", "https://dev.azure.com/fabrikam", "services", "fabrikam",
         "dev.azure.com"),
        ("https://fabrikam.visualstudio.com", "https://fabrikam.visualstudio.com", "services_legacy", "fabrikam",
         "fabrikam.visualstudio.com"),
        ("https://Fabrikam.VisualStudio.com/", "https://fabrikam.visualstudio.com", "services_legacy", "fabrikam",
         "fabrikam.visualstudio.com"),
        ("https://fabrikam.visualstudio.com/DefaultCollection", "https://fabrikam.visualstudio.com",
         "services_legacy", "fabrikam", "fabrikam.visualstudio.com"),
        ("https://fabrikam.visualstudio.com/defaultcollection/", "https://fabrikam.visualstudio.com",
         "services_legacy", "fabrikam", "fabrikam.visualstudio.com"),
        ("https://ado.corp.example/tfs/DefaultCollection", "https://ado.corp.example/tfs/DefaultCollection",
         "server", "DefaultCollection", "ado.corp.example"),
        ("https://ADO.corp.example:8443/tfs/Fabrikam/", "https://ado.corp.example:8443/tfs/Fabrikam", "server",
         "Fabrikam", "ado.corp.example"),
        ("https://ado.corp.example:443/Fabrikam", "https://ado.corp.example/Fabrikam", "server", "Fabrikam",
         "ado.corp.example"),
        ("https://127.0.0.1:8080/tfs/DefaultCollection", "https://127.0.0.1:8080/tfs/DefaultCollection", "server",
         "DefaultCollection", "127.0.0.1"),
        ("https://tfs01/DefaultCollection", "https://tfs01/DefaultCollection", "server", "DefaultCollection",
         "tfs01"),
        ("https://[::1]:8080/Collection", "https://[::1]:8080/Collection", "server", "Collection", "::1"),
        ("https://ado.corp.example/tfs/My%20Collection", "https://ado.corp.example/tfs/My%20Collection", "server",
         "My Collection", "ado.corp.example"),
    ],
)
def test_organization_url_accepted(value: str, url: str, kind: str, organization: str, host: str) -> None:
    assert normalise_organization_url(value) == OrganizationUrl(
        url=url, kind=kind, organization=organization, host=host  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("http://dev.azure.com/fabrikam", "must use https"),
        ("http://ado.corp.example/tfs/DefaultCollection", "must use https"),
        ("https://user:secret@dev.azure.com/fabrikam", "user info"),
        ("https://fabrikam@dev.azure.com/fabrikam", "user info"),
        ("https://dev.azure.com/fabrikam?api-version=7.1", "query or fragment"),
        ("https://dev.azure.com/fabrikam#top", "query or fragment"),
        ("https://dev.azure.com/fabrikam?", "query or fragment"),
        ("https://dev.azure.com", "organization name is missing"),
        ("https://dev.azure.com/", "organization name is missing"),
        ("https://dev.azure.com/fabrikam/Fabrikam%20Fiber", "use the organization URL https://dev.azure.com/fabrikam"),
        ("https://dev.azure.com/fabrikam/web/_git/web", "looks like a project or repository URL"),
        ("https://dev.azure.com/_apis", "not an organization name"),
        ("https://dev.azure.com:8443/fabrikam", "default https port"),
        ("https://fabrikam.visualstudio.com/Fabrikam%20Fiber", "use the organization URL https://fabrikam.visualstudio.com"),
        ("https://fabrikam.visualstudio.com/DefaultCollection/web", "looks like a project"),
        ("https://visualstudio.com", "not an organization host"),
        ("https://app.vssps.visualstudio.com", "not an organization host"),
        ("https://vssps.dev.azure.com/fabrikam", "not an organization host"),
        ("https://ado.corp.example", "collection is missing"),
        ("https://ado.corp.example/tfs", "collection is missing"),
        ("https://ado.corp.example/tfs/DefaultCollection/Project", "use the collection URL"),
        (" https://dev.azure.com/fabrikam", "whitespace"),
        ("https://dev.azure.com/fabrikam ", "whitespace"),
        ("https://dev.azure.com/my org", "whitespace"),
        ("dev.azure.com/fabrikam", "not an https URL"),
        ("fabrikam", "not an https URL"),
        ("ftp://dev.azure.com/fabrikam", "not an https URL"),
        ("https://", "not an https URL"),
        ("https://ado_server/tfs/Collection", "invalid host name"),
        ("https://ado.corp.example:99999/Collection", "invalid port"),
        ("", "empty"),
        (None, "must be a string"),
        (42, "must be a string"),
    ],
)
def test_organization_url_rejected(value: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_organization_url(value)
    assert caught.value.field == "organizationUrl"
    assert fragment in caught.value.message


@pytest.mark.parametrize("value", ["http://dev.azure.com/fabrikam", "https://dev.azure.com", "not-a-url"])
def test_organization_url_error_shows_forms(value: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_organization_url(value)
    assert ORGANIZATION_FORMS in caught.value.message
    assert "/tfs]/{collection}" in caught.value.message


def test_organization_url_hides_user_info() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_organization_url("https://me:hunter2@dev.azure.com/fabrikam")
    assert "hunter2" not in caught.value.message


SERVICES = normalise_organization_url("https://dev.azure.com/fabrikam")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "https://dev.azure.com/fabrikam"),
        ("", "https://dev.azure.com/fabrikam"),
        ("https://ADO.example.com:443/tfs/Fabrikam/", "https://ado.example.com/tfs/Fabrikam"),
        ("https://ado.example.com:8443", "https://ado.example.com:8443"),
        ("https://dev.azure.com/fabrikam", "https://dev.azure.com/fabrikam"),
        ("private://vcs-pool_1", "private://vcs-pool_1"),
        ("private://vcs-pool/tfs/DefaultCollection/", "private://vcs-pool/tfs/DefaultCollection"),
        ("PRIVATE://pool/Path", "private://pool/Path"),
    ],
)
def test_host_url_accepted(value: str | None, expected: str) -> None:
    assert normalise_user_facing_host_url(value, SERVICES) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("http://ado.example.com", "must use https"),
        ("https://user@ado.example.com", "user info"),
        ("https://ado.example.com/?a=1", "query or fragment"),
        ("https://ado.example.com/ x", "whitespace"),
        ("private://", "invalid VCS agent pool name"),
        ("private://pool.name/x", "invalid VCS agent pool name"),
        ("private://pool/a b", "whitespace, a query or a fragment"),
        ("private://pool/a?b", "whitespace, a query or a fragment"),
        ("ado.example.com", "not an https URL"),
        (42, "must be a string"),
    ],
)
def test_host_url_rejected(value: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_user_facing_host_url(value, SERVICES)
    assert caught.value.field == "userFacingHostUrl"
    assert fragment in caught.value.message


SERVICES_FORMS = [
    "https://dev.azure.com/fabrikam/My%20Project/_git/Infra",
    "https://dev.azure.com/Fabrikam/My%20Project/_git/Infra/",
    "https://dev.azure.com/fabrikam/My Project/_git/Infra",
    "https://DEV.AZURE.COM/FABRIKAM/my%20project/_git/infra",
    "https://fabrikam@dev.azure.com/fabrikam/My%20Project/_git/Infra",
    "https://fabrikam.visualstudio.com/My%20Project/_git/Infra",
    "https://fabrikam.visualstudio.com/DefaultCollection/My%20Project/_git/Infra",
    "https://Fabrikam.visualstudio.com:443/My%20Project/_git/Infra",
    "git@ssh.dev.azure.com:v3/fabrikam/My%20Project/Infra",
    "ssh://git@ssh.dev.azure.com/v3/fabrikam/My%20Project/Infra",
    "fabrikam@vs-ssh.visualstudio.com:v3/fabrikam/My%20Project/Infra",
]

SERVER_FORMS = [
    "https://ado.corp.example/tfs/DefaultCollection/Platform/_git/Modules",
    "https://ado.corp.example:8080/tfs/DefaultCollection/Platform/_git/Modules",
    "http://ado.corp.example:8080/tfs/DefaultCollection/Platform/_git/Modules",
    "https://ADO.corp.example/DefaultCollection/Platform/_git/Modules",
    "https://admin@ado.corp.example/tfs/defaultcollection/platform/_git/modules",
    "ssh://ado.corp.example:22/tfs/DefaultCollection/Platform/_git/Modules",
]


@pytest.mark.parametrize("url", SERVICES_FORMS)
def test_repository_key_services_forms(url: str) -> None:
    assert repository_key(url) == "dev.azure.com/fabrikam/my%20project/infra"


@pytest.mark.parametrize("url", SERVER_FORMS)
def test_repository_key_server_forms(url: str) -> None:
    assert repository_key(url) == "ado.corp.example/defaultcollection/platform/modules"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # A URL without a project names the repository that has the project's name.
        ("https://fabrikam.visualstudio.com/DefaultCollection/_git/Infra",
         "https://dev.azure.com/fabrikam/Infra/_git/Infra"),
        ("https://dev.azure.com/fabrikam/_git/Infra", "https://dev.azure.com/fabrikam/Infra/_git/Infra"),
        ("https://ado.corp.example/tfs/Coll/_git/Infra", "https://ado.corp.example/Coll/Infra/_git/Infra"),
        # Non-ASCII names, raw or percent-encoded as UTF-8, in NFC or NFD.
        ("https://dev.azure.com/fabrikam/D%C3%A9ploiement/_git/R%C3%A9seau",
         "https://dev.azure.com/fabrikam/Déploiement/_git/Réseau"),
        ("https://dev.azure.com/fabrikam/De\u0301ploiement/_git/Re\u0301seau",
         "git@ssh.dev.azure.com:v3/fabrikam/D%C3%A9ploiement/R%C3%A9seau"),
        ("https://dev.azure.com/fabrikam/%E6%9C%AC%E7%95%AA/_git/infra",
         "fabrikam@vs-ssh.visualstudio.com:v3/fabrikam/本番/infra"),
        (" https://dev.azure.com/fabrikam/p/_git/r ", "https://dev.azure.com/fabrikam/p/_git/r"),
    ],
)
def test_repository_key_equal(first: str, second: str) -> None:
    assert repository_key(first) == repository_key(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://dev.azure.com/fabrikam/p/_git/a", "https://dev.azure.com/fabrikam/p/_git/b"),
        ("https://dev.azure.com/fabrikam/p/_git/r", "https://dev.azure.com/contoso/p/_git/r"),
        ("https://dev.azure.com/fabrikam/p/_git/r", "https://ado.corp.example/fabrikam/p/_git/r"),
        ("https://ado.corp.example/tfs/A/p/_git/r", "https://ado.corp.example/tfs/B/p/_git/r"),
        # Decoded once: %2520 is a literal "%20" in the name, not a space.
        ("https://dev.azure.com/fabrikam/My%2520Project/_git/r", "https://dev.azure.com/fabrikam/My%20Project/_git/r"),
        # A plus sign is a plus sign in a path, never a space.
        ("https://dev.azure.com/fabrikam/My+Project/_git/r", "https://dev.azure.com/fabrikam/My%20Project/_git/r"),
    ],
)
def test_repository_key_distinct(first: str, second: str) -> None:
    assert repository_key(first) != repository_key(second)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://dev.azure.com/fabrikam", "no /_git/ segment"),
        ("https://dev.azure.com/fabrikam/project", "no /_git/ segment"),
        ("https://dev.azure.com/fabrikam/p/_git/", "exactly one repository name"),
        ("https://dev.azure.com/fabrikam/p/_git/r/pullrequest/12", "exactly one repository name"),
        ("https://dev.azure.com/fabrikam/p/_git/r?path=/main.tf", "query or fragment"),
        ("https://dev.azure.com/a/b/c/_git/r", "expected /{org}/{project}/_git/{repo}"),
        ("https://dev.azure.com/_git/r", "expected /{org}/{project}/_git/{repo}"),
        ("https://fabrikam.visualstudio.com/a/b/_git/r", "{org}.visualstudio.com"),
        ("https://ado.corp.example/_git/r", "expected /[tfs/]{collection}"),
        ("https://ado.corp.example/tfs/c/p/x/_git/r", "expected /[tfs/]{collection}"),
        ("git@ssh.dev.azure.com:v3/fabrikam/p", "v3/{org}/{project}/{repo}"),
        ("git@ssh.dev.azure.com:v2/fabrikam/p/r", "v3/{org}/{project}/{repo}"),
        ("git@ado.corp.example:tfs/Coll/p/r", "no /_git/ segment"),
        ("ftp://dev.azure.com/fabrikam/p/_git/r", "scheme 'ftp'"),
        ("https:///fabrikam/p/_git/r", "no host"),
        ("https://dev.azure.com/fabrikam/p/_git/%FF", "not UTF-8"),
        ("https://dev.azure.com/fabrikam/p/_git/r\nx", "control character"),
        ("https://dev.azure.com/fabrikam/p\t/_git/r", "control character"),
        ("", "empty"),
        ("not a url", "no host"),
        (None, "expected a string"),
    ],
)
def test_repository_key_rejected(url: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        repository_key(url)
    assert caught.value.field == "url"
    assert fragment in caught.value.message


def test_repository_key_hides_password() -> None:
    with pytest.raises(ValidationFailed) as caught:
        repository_key("https://me:hunter2@dev.azure.com/fabrikam/p")
    assert "hunter2" not in caught.value.message
    assert "https://dev.azure.com/fabrikam/p" in caught.value.message


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("Infra", "Infra"),
        ("My Project", "My%20Project"),
        ("a+b", "a%2Bb"),
        ("a/b", "a%2Fb"),
        ("Déploiement", "D%C3%A9ploiement"),
        ("本番", "%E6%9C%AC%E7%95%AA"),
        ("100%", "100%25"),
        ("a?b#c", "a%3Fb%23c"),
        ("safe-._~", "safe-._~"),
    ],
)
def test_encode_path_segment_values(segment: str, expected: str) -> None:
    assert encode_path_segment(segment) == expected


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40))
def test_encode_path_segment_round_trip(segment: str) -> None:
    encoded = encode_path_segment(segment)
    assert unquote(encoded, errors="strict") == segment
    assert "/" not in encoded
    assert "+" not in encoded
    assert " " not in encoded
    assert encoded.isascii()


@given(
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/"), min_size=1,
            max_size=20).filter(lambda text: text.strip() == text and text not in (".", "..", "_git")),
)
def test_repository_key_encoded_names(name: str) -> None:
    encoded = encode_path_segment(name)
    https_url = f"https://dev.azure.com/fabrikam/{encoded}/_git/{encoded}"
    ssh_url = f"git@ssh.dev.azure.com:v3/fabrikam/{encoded}/{encoded}"
    assert repository_key(https_url) == repository_key(ssh_url)
