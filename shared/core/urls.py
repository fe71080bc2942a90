"""Organization URLs, user-facing host URLs and repository keys of Azure DevOps.

Azure DevOps Services has two forms of organization URL, `https://dev.azure.com/{org}` and the
legacy `https://{org}.visualstudio.com`. Azure DevOps Server (formerly TFS) is addressed by
collection: `https://{server}[:port][/tfs]/{collection}`. The same repository appears under
several URLs (both Services forms, `DefaultCollection/`, user info, SSH), so `repository_key`
maps each form to one comparable key.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, quote, unquote, urlsplit

from shared.errors import ValidationFailed

OrganizationKind = Literal["services", "services_legacy", "server"]

SERVICES_HOST = "dev.azure.com"
LEGACY_DOMAIN = ".visualstudio.com"
SERVICES_SSH_HOST = "ssh.dev.azure.com"
LEGACY_SSH_HOST = "vs-ssh.visualstudio.com"
DEFAULT_COLLECTION = "defaultcollection"
TFS_SEGMENT = "tfs"

ACCEPTED_ORGANIZATION_FORMS = (
    "https://dev.azure.com/{organization}, https://{organization}.visualstudio.com, "
    "or for Azure DevOps Server https://{server}[:port][/tfs]/{collection}"
)

_HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_POOL_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# User info may carry a password or token, so it is removed before a URL is echoed in a message.
_USER_INFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:]+):(?P<path>[^/].*)$")


@dataclass(frozen=True)
class OrganizationUrl:
    """A normalised Azure DevOps organization (Services) or collection (Server) URL."""

    url: str
    kind: OrganizationKind
    organization: str
    host: str


def normalise_organization_url(value: str) -> OrganizationUrl:
    """Validate and normalise an organization or collection URL.

    The scheme and host are lower-cased, port 443 and a trailing slash are dropped and the path
    keeps its case. A legacy URL ending in `/DefaultCollection` is the organization itself, so
    that segment is dropped: `https://fabrikam.visualstudio.com/DefaultCollection` becomes
    `https://fabrikam.visualstudio.com`. Raises ValidationFailed(field="organizationUrl").
    """
    field = "organizationUrl"
    parts = _split_https(value, field=field, value_name="organization URL", forms=ACCEPTED_ORGANIZATION_FORMS)
    host = parts.hostname or ""
    authority = _authority(parts)
    segments = _path_segments(parts.path, field=field)

    if host == SERVICES_HOST:
        return _services_organization(value, authority, segments)
    if host.endswith(LEGACY_DOMAIN):
        return _legacy_organization(value, host, authority, segments)
    if host.endswith("." + SERVICES_HOST) or host == LEGACY_DOMAIN[1:]:
        raise _organization_error(value, f"host {host} is not an organization host")
    return _server_collection(value, host, authority, segments)


def normalise_user_facing_host_url(value: str | None, organization_url: OrganizationUrl) -> str:
    """Validate the URL shown to users in links, defaulting to the organization URL.

    Accepts an https URL (same rules as an organization URL, any path) or
    `private://{vcs-agent-pool}[/{path}]` for repositories reached through a VCS agent pool.
    Raises ValidationFailed(field="userFacingHostUrl").
    """
    field = "userFacingHostUrl"
    forms = "an https URL such as https://ado.example.com/tfs/Collection, or private://{vcs-agent-pool}/{path}"
    if value is None or value == "":
        return organization_url.url
    if not isinstance(value, str):
        raise ValidationFailed(f"user-facing host URL must be a string, got {type(value).__name__}; use {forms}",
                               field=field)
    if value[:10].lower() == "private://":
        return _private_url(value, field=field, forms=forms)

    parts = _split_https(value, field=field, value_name="user-facing host URL", forms=forms)
    segments = _path_segments(parts.path, field=field)
    path = "".join("/" + segment for segment in segments)
    return f"https://{_authority(parts)}{path}"


def repository_key(url: str) -> str:
    """Return one comparison key for every URL form of the same Azure DevOps repository.

    The key is `{host}/{organization or collection}/{project}/{repository}`, where the host is
    `dev.azure.com` for both Services forms and the server name for Azure DevOps Server. Names
    are percent-decoded once (a literal space equals `%20`), NFC-normalised and lower-cased,
    because payloads spell one organization in different cases. A URL without a project
    (`.../{collection}/_git/{repo}`) names the repository that has the project's name.

    NOTE: project and repository names are lower-cased on the assumption that Azure DevOps
    treats them case-insensitively, as it does organization names. The Azure DevOps
    documentation does not confirm this, so match on repository GUIDs where a payload has them.
    Raises ValidationFailed(field="url").
    """
    if not isinstance(url, str):
        raise _repository_error(url, f"expected a string, got {type(url).__name__}")
    url = url.strip()
    if not url:
        raise _repository_error(url, "it is empty")
    if any(unicodedata.category(character) == "Cc" for character in url):
        raise _repository_error(url, "it contains a control character such as a tab or line break")

    scp = _SCP_LIKE.match(url)
    if scp and "://" not in url:
        return _ssh_key(url, scp.group("host").lower(), scp.group("path"))

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise _repository_error(url, "it has a query or fragment, so it is a web page rather than the repository")
    if not parts.hostname:
        raise _repository_error(url, "it has no host")
    if scheme == "ssh":
        path = parts.path.lstrip("/")
        return _ssh_key(url, parts.hostname, path)
    if scheme not in ("https", "http"):
        raise _repository_error(url, f"scheme {parts.scheme!r} is not https, http or ssh")
    return _http_key(url, parts.hostname, _path_segments(parts.path, field="url", decode=True))


def encode_path_segment(segment: str) -> str:
    """Percent-encode one URL path segment: UTF-8 escapes, `%20` for a space, `/` encoded."""
    return quote(segment, safe="")


def _split_https(value: object, *, field: str, value_name: str, forms: str) -> SplitResult:
    """Split an https URL after the checks shared by organization and host URLs."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{value_name} must be a string, got {type(value).__name__}; use {forms}", field=field)
    if not value:
        raise ValidationFailed(f"{value_name} is empty; use {forms}", field=field)
    if any(character.isspace() for character in value):
        raise ValidationFailed(f"{value_name} {value!r} contains whitespace; remove it and use {forms}", field=field)
    if any(unicodedata.category(character) == "Cc" for character in value):
        raise ValidationFailed(f"{value_name} {value!r} contains a control character; use {forms}", field=field)

    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise ValidationFailed(f"{value_name} {value!r} uses http; it must use https. Use {forms}", field=field)
    if scheme != "https" or not parts.netloc:
        raise ValidationFailed(f"{value_name} {value!r} is not an https URL; use {forms}", field=field)
    if "@" in parts.netloc:
        # The value is not echoed because user info may contain a password or token.
        raise ValidationFailed(
            f"{value_name} contains user info (a name or password before @); remove it and use {forms}", field=field
        )
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValidationFailed(
            f"{value_name} {value!r} has a query or fragment; remove everything from ? or # and use {forms}",
            field=field,
        )
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValidationFailed(f"{value_name} {value!r} has an invalid port; use {forms}", field=field) from None
    if not parts.hostname or not _valid_host(parts.hostname):
        raise ValidationFailed(f"{value_name} {value!r} has an invalid host name; use {forms}", field=field)
    return parts


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return all(_HOST_LABEL.fullmatch(label) for label in host.split("."))
    return True


def _authority(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is None or parts.port == 443:
        return host
    return f"{host}:{parts.port}"


def _path_segments(path: str, *, field: str, decode: bool = False) -> list[str]:
    """Split a URL path, ignoring empty segments (repeated or trailing slashes)."""
    segments = [segment for segment in path.split("/") if segment]
    if not decode:
        return segments
    decoded: list[str] = []
    for segment in segments:
        try:
            text = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            raise ValidationFailed(
                f"path segment {segment!r} has percent-escapes that are not UTF-8; "
                "copy the URL from Azure DevOps again",
                field=field,
            ) from None
        decoded.append(unicodedata.normalize("NFC", text))
    return decoded


def _organization_error(value: str, reason: str) -> ValidationFailed:
    return ValidationFailed(
        f"organization URL {value!r} is not accepted: {reason}. Use {ACCEPTED_ORGANIZATION_FORMS}",
        field="organizationUrl",
    )


def _services_organization(value: str, authority: str, segments: list[str]) -> OrganizationUrl:
    if authority != SERVICES_HOST:
        raise _organization_error(value, "Azure DevOps Services is reached on the default https port only")
    if not segments:
        raise _organization_error(value, "the organization name is missing")
    organization = segments[0]
    if organization.startswith("_"):
        raise _organization_error(value, f"{organization!r} is not an organization name")
    url = f"https://{SERVICES_HOST}/{organization}"
    if len(segments) > 1:
        raise ValidationFailed(
            f"organization URL {value!r} has extra path segments, so it looks like a project or repository URL; "
            f"use the organization URL {url} instead",
            field="organizationUrl",
        )
    return OrganizationUrl(url=url, kind="services", organization=organization, host=SERVICES_HOST)


def _legacy_organization(value: str, host: str, authority: str, segments: list[str]) -> OrganizationUrl:
    organization = host[: -len(LEGACY_DOMAIN)]
    if "." in organization or organization in ("", "vs-ssh"):
        raise _organization_error(value, f"host {host} is not an organization host")
    if authority != host:
        raise _organization_error(value, "Azure DevOps Services is reached on the default https port only")
    url = f"https://{host}"
    if segments and segments[0].lower() == DEFAULT_COLLECTION:
        segments = segments[1:]
    if segments:
        raise ValidationFailed(
            f"organization URL {value!r} has extra path segments, so it looks like a project or repository URL; "
            f"use the organization URL {url} instead",
            field="organizationUrl",
        )
    return OrganizationUrl(url=url, kind="services_legacy", organization=organization, host=host)


def _server_collection(value: str, host: str, authority: str, segments: list[str]) -> OrganizationUrl:
    prefix = ""
    if segments and segments[0].lower() == TFS_SEGMENT:
        prefix = "/" + segments[0]
        segments = segments[1:]
    if not segments:
        raise _organization_error(
            value, "the Azure DevOps Server collection is missing, for example /tfs/DefaultCollection"
        )
    collection = segments[0]
    url = f"https://{authority}{prefix}/{collection}"
    if len(segments) > 1:
        # NOTE: only `/tfs` is recognised as a virtual directory before the collection. A server
        # installed under another path cannot be registered until that path is supported here.
        raise ValidationFailed(
            f"organization URL {value!r} has path segments after the collection {collection!r}, so it looks like "
            f"a project or repository URL; use the collection URL {url} instead",
            field="organizationUrl",
        )
    return OrganizationUrl(url=url, kind="server", organization=unquote(collection), host=host)


def _private_url(value: str, *, field: str, forms: str) -> str:
    rest = value[len("private://"):]
    pool, _, path = rest.partition("/")
    if "@" in pool:
        # Never echo the value: the part before "@" may be a credential.
        raise ValidationFailed(
            f"The user-facing host URL must not contain user info (a name or token before '@'). Use {forms}",
            field=field,
        )
    if not _POOL_NAME.fullmatch(pool):
        raise ValidationFailed(
            f"user-facing host URL {value!r} has an invalid VCS agent pool name {pool!r}; a pool name contains "
            f"letters, digits, hyphens and underscores. Use {forms}",
            field=field,
        )
    if any(character.isspace() or character in "?#" for character in path) or any(
        unicodedata.category(character) == "Cc" for character in path
    ):
        raise ValidationFailed(
            f"user-facing host URL {value!r} has whitespace, a query or a fragment in its path; use {forms}",
            field=field,
        )
    segments = [segment for segment in path.split("/") if segment]
    return "private://" + "/".join([pool, *segments])


def _repository_error(url: object, reason: str) -> ValidationFailed:
    display_url = repr(_USER_INFO.sub(r"\1", url)) if isinstance(url, str) else "the value"
    return ValidationFailed(
        f"{display_url} is not an Azure DevOps repository URL: {reason}. Expected https://dev.azure.com/{{org}}/"
        "{project}/_git/{repo}, https://{org}.visualstudio.com/{project}/_git/{repo}, "
        "https://{server}[/tfs]/{collection}/{project}/_git/{repo} or an Azure DevOps SSH URL",
        field="url",
    )


def _make_key(host: str, collection: str, project: str, repository: str) -> str:
    names = (collection, project, repository)
    return "/".join([host.lower(), *(encode_path_segment(name.lower()) for name in names)])


def _http_key(url: str, host: str, segments: list[str]) -> str:
    if "_git" not in segments:
        raise _repository_error(url, "the path has no /_git/ segment")
    marker = segments.index("_git")
    before, after = segments[:marker], segments[marker + 1:]
    if len(after) != 1:
        raise _repository_error(url, "expected exactly one repository name after /_git/")
    repository = after[0]

    if host == SERVICES_HOST:
        if len(before) not in (1, 2):
            raise _repository_error(url, "expected /{org}/{project}/_git/{repo}")
        organization = before[0]
        project = before[1] if len(before) == 2 else repository
        return _make_key(SERVICES_HOST, organization, project, repository)

    if host.endswith(LEGACY_DOMAIN):
        organization = host[: -len(LEGACY_DOMAIN)]
        if before and before[0].lower() == DEFAULT_COLLECTION:
            before = before[1:]
        if "." in organization or not organization or len(before) > 1:
            raise _repository_error(url, "expected https://{org}.visualstudio.com/{project}/_git/{repo}")
        project = before[0] if before else repository
        return _make_key(SERVICES_HOST, organization, project, repository)

    return _server_key(url, host, before, repository)


def _server_key(url: str, host: str, before: list[str], repository: str) -> str:
    # NOTE: the port is left out of the key because the https and SSH URLs of one server use
    # different ports. So two Azure DevOps Servers on one host, on different ports, share keys.
    if before and before[0].lower() == TFS_SEGMENT and len(before) > 1:
        before = before[1:]
    if len(before) not in (1, 2):
        raise _repository_error(url, "expected /[tfs/]{collection}/{project}/_git/{repo}")
    collection = before[0]
    project = before[1] if len(before) == 2 else repository
    return _make_key(host, collection, project, repository)


def _ssh_key(url: str, host: str, path: str) -> str:
    segments = _path_segments(path, field="url", decode=True)
    if host in (SERVICES_SSH_HOST, LEGACY_SSH_HOST):
        if len(segments) != 4 or segments[0].lower() != "v3":
            raise _repository_error(url, "expected an SSH path v3/{org}/{project}/{repo}")
        return _make_key(SERVICES_HOST, segments[1], segments[2], segments[3])
    if "_git" not in segments:
        raise _repository_error(url, "the SSH path has no /_git/ segment")
    marker = segments.index("_git")
    if len(segments) - marker != 2:
        raise _repository_error(url, "expected exactly one repository name after /_git/")
    return _server_key(url, host, segments[:marker], segments[-1])
