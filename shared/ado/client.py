"""The one client for outbound Azure DevOps REST calls (Services and Server), authenticated with a PAT.

Every request sends `Authorization: Basic base64(":" + PAT)`, `Accept: application/json`,
`X-TFS-FedAuthRedirect: Suppress` and an `api-version` query parameter, and never follows redirects.
Outcomes map to `AzureDevOpsError.kind`:

    203, 3xx, or a 2xx whose body is HTML or not JSON   invalid_credentials (a sign-in page; no retry)
    401 / 403 / 404                                     invalid_credentials / forbidden / not_found
    429, 503                                            retried after Retry-After, then throttled / server_error
    other 5xx, connection errors, timeouts              retried with backoff, then server_error / unreachable
    400 VssVersionOutOfRangeException                   switch to the version the server names, repeat once
    other 4xx                                           rejected, with the Azure DevOps message

A `Retry-After` header on any other answer, 200 included, delays the next request made with the same
token. Messages and logs never contain the token or the Authorization header.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from shared.errors import AzureDevOpsError

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]

MAX_RETRY_AFTER_SECONDS = 60.0
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
ITERATION_CHANGES_PAGE = 2000
DIFF_PAGE = 1000
_OUT_OF_RANGE = "VssVersionOutOfRangeException"
_SUPPORTED_VERSION = re.compile(r"supports is\s+(\d+\.\d+)")
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def encode_segment(value: str) -> str:
    """Percent-encode one URL path segment: spaces become %20 (never +), non-ASCII becomes UTF-8 escapes."""
    return quote(value, safe="")


class TokenThrottle:
    """Per-token delays requested by Retry-After headers, shared by all clients of the process.

    Tokens are kept only as SHA-256 digests.
    """

    def __init__(self) -> None:
        self._not_before: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def delay(self, key: str, seconds: float, now: float) -> None:
        with self._lock:
            self._not_before[key] = max(self._not_before.get(key, 0.0), now + seconds)

    def take_wait(self, key: str, now: float) -> float:
        """Return how long to wait before the next request with this token, and forget the delay."""
        with self._lock:
            not_before = self._not_before.pop(key, 0.0)
        return max(0.0, not_before - now)


DEFAULT_THROTTLE = TokenThrottle()


@dataclass(frozen=True)
class FileChange:
    """One changed file of a commit, a commit range or a pull request iteration."""

    path: str
    change_type: str
    original_path: str | None = None
    change_tracking_id: int | None = None

    @property
    def change_types(self) -> frozenset[str]:
        """The flags of `change_type`, which Azure DevOps sends comma-separated (for example "rename, edit")."""
        return frozenset(part.strip() for part in self.change_type.split(",") if part.strip())


@dataclass(frozen=True)
class ConnectionTestResult:
    """Outcome of `AzureDevOpsClient.test_connection`, stored with the integration."""

    ok: bool
    kind: str
    message: str
    identity_id: str | None = None
    identity_name: str | None = None
    retry_after: float | None = None
    api_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AzureDevOpsClient:
    """Synchronous Azure DevOps REST client for one organization (or Server collection) and one PAT.

    `organization_url` is `https://dev.azure.com/{org}`, `https://{org}.visualstudio.com` or
    `https://{server}[/tfs]/{collection}`. `verify` is passed to httpx (a CA bundle path or a bool).
    Project and repository arguments accept names or GUIDs.
    """

    def __init__(self, organization_url: str, personal_access_token: str, *, verify: str | bool = True,
                 timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep, max_retries: int = 4,
                 api_version: str = "7.1", throttle: TokenThrottle | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not personal_access_token:
            raise AzureDevOpsError("invalid_credentials", "No personal access token is configured for Azure DevOps; "
                                   "save one in the integration.")
        self.organization_url = organization_url.rstrip("/")
        self.api_version = api_version
        self.max_retries = max_retries
        self._sleep = sleep
        self._clock = clock
        self._throttle = throttle or DEFAULT_THROTTLE
        self._throttle_key = TokenThrottle.key(personal_access_token)
        credentials = base64.b64encode(f":{personal_access_token}".encode()).decode("ascii")
        trust: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._http = httpx.Client(
            verify=trust, timeout=timeout, follow_redirects=False,
            headers={"Authorization": f"Basic {credentials}", "Accept": "application/json",
                     "X-TFS-FedAuthRedirect": "Suppress", "User-Agent": "stackhook"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AzureDevOpsClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # Organization and identity ------------------------------------------------------------------

    def connection_data(self) -> JsonObject:
        """Return connectionData: the authenticated identity and the deployment."""
        return self._json("GET", "_apis/connectionData", preview=True)

    def list_projects(self, *, page_size: int = 100) -> list[JsonObject]:
        return list(self._continuation_pages("_apis/projects", {"$top": str(page_size)}))

    def get_project(self, project: str) -> JsonObject:
        return self._json("GET", f"_apis/projects/{encode_segment(project)}")

    def get_repository(self, project: str, repository: str) -> JsonObject:
        return self._json("GET", self._repository_path(project, repository))

    def list_repositories(self, project: str) -> list[JsonObject]:
        return _values(self._json("GET", f"{encode_segment(project)}/_apis/git/repositories"))

    # Files and changes ----------------------------------------------------------------------------

    def get_item_content(self, project: str, repository: str, path: str, commit: str) -> str | None:
        """Return the text of the file at `path` in `commit`, or None when the file does not exist there."""
        try:
            item = self._json("GET", f"{self._repository_path(project, repository)}/items", {
                "path": path, "versionDescriptor.version": commit, "versionDescriptor.versionType": "commit",
                "includeContent": "true"})
        except AzureDevOpsError as error:
            if error.kind == "not_found" and error.type_key == "GitItemNotFoundException":
                return None
            raise
        if item.get("isFolder"):
            return None
        content = item.get("content")
        return content if isinstance(content, str) else None

    def get_commit_changes(self, project: str, repository: str, commit: str) -> list[FileChange]:
        """Return the files that `commit` changed against its first parent (folders left out)."""
        path = f"{self._repository_path(project, repository)}/commits/{encode_segment(commit)}/changes"
        changes: list[FileChange] = []
        skip = 0
        while True:
            page = self._json("GET", path, {"top": str(DIFF_PAGE), "skip": str(skip)})
            entries = page.get("changes") or []
            changes.extend(_file_changes(entries))
            if len(entries) < DIFF_PAGE:
                return changes
            skip += len(entries)

    def diff_commits_detailed(self, project: str, repository: str, base: str, target: str, *,
                              base_type: str = "commit", target_type: str = "commit") -> list[FileChange]:
        """Return the files changed between `base` and `target` (from their common commit), all pages.

        A version type is `commit`, `branch` (a short branch name) or `tag`.
        """
        path = f"{self._repository_path(project, repository)}/diffs/commits"
        params = {"baseVersion": base, "baseVersionType": base_type, "targetVersion": target,
                  "targetVersionType": target_type}
        return [change for page in self._skip_pages(path, params, "changes") for change in _file_changes(page)]

    def diff_commits(self, project: str, repository: str, base: str, target: str, *,
                     base_type: str = "commit", target_type: str = "commit") -> list[str]:
        """Return the changed paths between two versions; a rename lists the old and the new path."""
        return changed_paths(self.diff_commits_detailed(project, repository, base, target, base_type=base_type,
                                                        target_type=target_type))

    # Pull requests ----------------------------------------------------------------------------------

    def get_pull_request(self, project: str, repository: str, pull_request_id: int) -> JsonObject:
        return self._json("GET", self._pull_request_path(project, repository, pull_request_id))

    def list_iterations(self, project: str, repository: str, pull_request_id: int) -> list[JsonObject]:
        path = f"{self._pull_request_path(project, repository, pull_request_id)}/iterations"
        return _values(self._json("GET", path, {"includeCommits": "false"}))

    def get_iteration_change_entries(self, project: str, repository: str, pull_request_id: int,
                                     iteration_id: int) -> list[FileChange]:
        """Return the files an iteration changed against the merge base, following nextSkip/nextTop."""
        path = f"{self._pull_request_path(project, repository, pull_request_id)}/iterations/{iteration_id}/changes"
        changes: list[FileChange] = []
        skip, top = 0, ITERATION_CHANGES_PAGE
        while True:
            page = self._json("GET", path, {"$compareTo": "0", "$top": str(top), "$skip": str(skip)})
            changes.extend(_file_changes(page.get("changeEntries") or []))
            next_top = int(page.get("nextTop") or 0)
            next_skip = int(page.get("nextSkip") or 0)
            if next_top <= 0 or next_skip <= skip:
                return changes
            skip, top = next_skip, min(next_top, ITERATION_CHANGES_PAGE)

    def get_iteration_changes(self, project: str, repository: str, pull_request_id: int,
                              iteration_id: int) -> list[str]:
        """Return the changed paths of an iteration; a rename lists the old and the new path."""
        return changed_paths(self.get_iteration_change_entries(project, repository, pull_request_id, iteration_id))

    def create_thread(self, project: str, repository: str, pull_request_id: int, content: str,
                      status: str = "active") -> JsonObject:
        """Start a pull request comment thread with one text comment."""
        body = {"comments": [{"parentCommentId": 0, "content": content, "commentType": 1}], "status": status}
        path = f"{self._pull_request_path(project, repository, pull_request_id)}/threads"
        return self._json("POST", path, body=body)

    def reply(self, project: str, repository: str, pull_request_id: int, thread_id: int, parent_comment_id: int,
              content: str) -> JsonObject:
        """Add a text comment to a thread, as a reply to `parent_comment_id`."""
        body = {"parentCommentId": parent_comment_id, "content": content, "commentType": 1}
        path = f"{self._pull_request_path(project, repository, pull_request_id)}/threads/{thread_id}/comments"
        return self._json("POST", path, body=body)

    # Statuses -----------------------------------------------------------------------------------------

    def post_commit_status(self, project: str, repository: str, commit: str, *, state: str, genre: str, name: str,
                           description: str, target_url: str | None = None) -> JsonObject:
        """Post a commit status; branch policies match `genre` and `name` separately."""
        path = f"{self._repository_path(project, repository)}/commits/{encode_segment(commit)}/statuses"
        return self._json("POST", path, body=_status_body(state, genre, name, description, target_url))

    def post_pull_request_status(self, project: str, repository: str, pull_request_id: int, *, state: str,
                                 genre: str, name: str, description: str, target_url: str | None = None,
                                 iteration_id: int | None = None) -> JsonObject:
        """Post a pull request status; pass `iteration_id` so branch policies tie it to an iteration."""
        body = _status_body(state, genre, name, description, target_url)
        if iteration_id is not None:
            body["iterationId"] = iteration_id
        path = f"{self._pull_request_path(project, repository, pull_request_id)}/statuses"
        return self._json("POST", path, body=body)

    # Service-hook subscriptions ------------------------------------------------------------------------

    def list_subscriptions(self, *, publisher_id: str | None = None, event_type: str | None = None,
                           consumer_id: str | None = None, consumer_action_id: str | None = None) -> list[JsonObject]:
        params = {key: value for key, value in (("publisherId", publisher_id), ("eventType", event_type),
                                                ("consumerId", consumer_id), ("consumerActionId", consumer_action_id))
                  if value}
        return _values(self._json("GET", "_apis/hooks/subscriptions", params))

    def query_subscriptions(self, project_id: str, *, publisher_id: str = "tfs", consumer_id: str = "webHooks",
                            consumer_action_id: str = "httpRequest") -> list[JsonObject]:
        """Return the Web Hooks subscriptions whose publisher input projectId is `project_id`."""
        body = {"publisherId": publisher_id, "consumerId": consumer_id, "consumerActionId": consumer_action_id,
                "publisherInputFilters": [{"conditions": [
                    {"inputId": "projectId", "operator": "equals", "inputValue": project_id}]}]}
        answer = self._json("POST", "_apis/hooks/subscriptionsquery", body=body, idempotent=True)
        results = answer.get("results") or []
        return [item for item in results if isinstance(item, dict)]

    def create_subscription(self, body: JsonObject) -> JsonObject:
        return self._json("POST", "_apis/hooks/subscriptions", body=body)

    def get_subscription(self, subscription_id: str) -> JsonObject:
        return self._json("GET", f"_apis/hooks/subscriptions/{encode_segment(subscription_id)}")

    def replace_subscription(self, subscription_id: str, body: JsonObject) -> JsonObject:
        return self._json("PUT", f"_apis/hooks/subscriptions/{encode_segment(subscription_id)}", body=body)

    def delete_subscription(self, subscription_id: str) -> None:
        self._request("DELETE", f"_apis/hooks/subscriptions/{encode_segment(subscription_id)}")

    # Connection test ----------------------------------------------------------------------------------------

    def test_connection(self) -> ConnectionTestResult:
        """Check the URL and the token, returning every AzureDevOpsError as a failed result instead of raising it."""
        try:
            data = self.connection_data()
        except AzureDevOpsError as error:
            if error.kind not in ("not_found", "rejected"):
                return self._failed_test(error)
            return self._test_with_projects()
        user = data.get("authenticatedUser") if isinstance(data.get("authenticatedUser"), dict) else {}
        identity_id = user.get("id") if isinstance(user, dict) else None
        name = user.get("providerDisplayName") if isinstance(user, dict) else None
        if not identity_id or str(name or "").strip().lower() == "anonymous":
            return ConnectionTestResult(
                False, "invalid_credentials",
                f"Azure DevOps at {self.organization_url} treated the request as anonymous, so the personal access "
                "token was not accepted. Create a new token and save it in the integration.",
                api_version=self.api_version)
        return ConnectionTestResult(True, "ok", f"Connected to {self.organization_url} as {name or identity_id}.",
                                    identity_id=str(identity_id), identity_name=str(name) if name else None,
                                    api_version=self.api_version)

    def _test_with_projects(self) -> ConnectionTestResult:
        try:
            self._json("GET", "_apis/projects", {"$top": "1"})
        except AzureDevOpsError as error:
            return self._failed_test(error)
        return ConnectionTestResult(True, "ok", f"Connected to {self.organization_url}; the token can list projects.",
                                    api_version=self.api_version)

    def _failed_test(self, error: AzureDevOpsError) -> ConnectionTestResult:
        messages = {
            "invalid_credentials": f"Azure DevOps at {self.organization_url} rejected the personal access token: it "
                                   "is invalid, expired or revoked. Create a new token and save it in the integration.",
            "forbidden": f"The personal access token may not read {self.organization_url}. Give the token the Code "
                         "(Read & write) and Project and Team (Read) scopes, or use an account with access.",
            "not_found": f"No Azure DevOps organization or collection was found at {self.organization_url}. Check the "
                         "URL: https://dev.azure.com/{organization} or https://{server}/tfs/{collection}.",
            "unreachable": f"Azure DevOps at {self.organization_url} could not be reached. Check the URL, DNS, "
                           "firewall and TLS certificate.",
        }
        message = messages.get(error.kind, str(error))
        return ConnectionTestResult(False, error.kind, message, retry_after=error.retry_after,
                                    api_version=self.api_version)

    # Paths ------------------------------------------------------------------------------------------------------

    @staticmethod
    def _repository_path(project: str, repository: str) -> str:
        return f"{encode_segment(project)}/_apis/git/repositories/{encode_segment(repository)}"

    def _pull_request_path(self, project: str, repository: str, pull_request_id: int) -> str:
        return f"{self._repository_path(project, repository)}/pullRequests/{int(pull_request_id)}"

    # Paging -------------------------------------------------------------------------------------------------------

    def _continuation_pages(self, path: str, params: dict[str, str]) -> Iterator[JsonObject]:
        token: str | None = None
        while True:
            page_params = dict(params)
            if token:
                page_params["continuationToken"] = token
            response = self._request("GET", path, page_params)
            yield from _values(_parse_json(response, self._describe("GET", path)))
            token = response.headers.get("x-ms-continuationtoken")
            if not token:
                return

    def _skip_pages(self, path: str, params: dict[str, str], key: str) -> Iterator[list[Any]]:
        skip = 0
        while True:
            page = self._json("GET", path, {**params, "$top": str(DIFF_PAGE), "$skip": str(skip)})
            entries = page.get(key) or []
            yield entries
            if len(entries) < DIFF_PAGE or page.get("allChangesIncluded") is True:
                return
            skip += len(entries)

    # Requests ---------------------------------------------------------------------------------------------------

    def _json(self, method: str, path: str, params: dict[str, str] | None = None, *, body: Any = None,
              preview: bool = False, idempotent: bool | None = None) -> JsonObject:
        response = self._request(method, path, params, body=body, preview=preview, idempotent=idempotent)
        return _parse_json(response, self._describe(method, path))

    def _describe(self, method: str, path: str) -> str:
        return f"{method} {self.organization_url}/{path}"

    def _request(self, method: str, path: str, params: dict[str, str] | None = None, *, body: Any = None,
                 preview: bool = False, idempotent: bool | None = None) -> httpx.Response:
        """Send one call with retries, throttling and version fallback; return a 2xx JSON response."""
        url = f"{self.organization_url}/{path}"
        described = self._describe(method, path)
        retryable = method in _IDEMPOTENT_METHODS if idempotent is None else idempotent
        version_switched = False
        attempt = 0
        while True:
            version = f"{self.api_version}-preview" if preview else self.api_version
            self._wait_for_throttle()
            try:
                response = self._http.request(method, url, params={**(params or {}), "api-version": version},
                                              json=body)
            except httpx.TransportError as error:
                safe_to_retry = retryable or isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                if safe_to_retry and attempt < self.max_retries:
                    attempt = self._back_off(attempt, None, described, type(error).__name__)
                    continue
                kind_text = "timed out" if isinstance(error, httpx.TimeoutException) else "failed"
                raise AzureDevOpsError(
                    "unreachable", f"{described} {kind_text}: {type(error).__name__}: {error}. Check that the "
                    "organization URL is right and that Azure DevOps is reachable from here.") from error

            status = response.status_code
            retry_after = _retry_after(response)
            logger.debug("%s returned %s", described, status)
            if status in (429, 503) or (status >= 500 and retryable):
                if attempt < self.max_retries:
                    attempt = self._back_off(attempt, retry_after, described, str(status))
                    continue
                if retry_after is not None:
                    self._throttle.delay(self._throttle_key, retry_after, self._clock())
                raise self._error(response, described, retry_after)
            if retry_after is not None:
                logger.info("%s asked to wait %s seconds before the next request", described, retry_after)
                self._throttle.delay(self._throttle_key, retry_after, self._clock())
            if status == 400 and not version_switched and _type_key(response) == _OUT_OF_RANGE:
                supported = _supported_version(response)
                if supported is not None and supported != self.api_version:
                    logger.warning("%s: the server supports REST API version %s at most; switching from %s",
                                   described, supported, self.api_version)
                    self.api_version = supported
                    version_switched = True
                    continue
            if 200 <= status < 300 and status != 203:
                return response
            raise self._error(response, described, retry_after)

    def _wait_for_throttle(self) -> None:
        wait = self._throttle.take_wait(self._throttle_key, self._clock())
        if wait > 0:
            logger.info("waiting %.1f seconds before calling Azure DevOps, as Retry-After requested", wait)
            self._sleep(min(wait, MAX_RETRY_AFTER_SECONDS))

    def _back_off(self, attempt: int, retry_after: float | None, described: str, reason: str) -> int:
        delay = retry_after if retry_after is not None else BACKOFF_BASE_SECONDS * (2 ** attempt)
        delay = min(delay, MAX_RETRY_AFTER_SECONDS if retry_after is not None else BACKOFF_MAX_SECONDS)
        logger.warning("%s failed with %s; retry %s of %s in %.1f seconds", described, reason, attempt + 1,
                       self.max_retries, delay)
        self._sleep(delay)
        return attempt + 1

    def _error(self, response: httpx.Response, described: str, retry_after: float | None) -> AzureDevOpsError:
        status = response.status_code
        type_key = _type_key(response)
        detail = _error_message(response)
        suffix = f": {detail}" if detail else ""

        if status == 203 or 300 <= status < 400:
            return AzureDevOpsError(
                "invalid_credentials",
                f"{described} returned {status} with a sign-in page instead of data, so the personal access token "
                "was not accepted (invalid, expired or revoked, or IIS Basic authentication is enabled on the "
                "server). Create a new token and save it in the integration.", status=status)

        if status == 401:
            return AzureDevOpsError("invalid_credentials",
                                    f"{described} was rejected with 401{suffix}. The personal access token is invalid, "
                                    "expired or revoked; create a new token and save it in the integration.",
                                    status=status, type_key=type_key)

        if status == 403:
            return AzureDevOpsError("forbidden",
                                    f"{described} was refused with 403{suffix}. Give the token's account the "
                                    "permission or the token the scope this call needs.",
                                    status=status, type_key=type_key)
        if status == 404:
            return AzureDevOpsError("not_found",
                                    f"{described} found nothing (404){suffix}. Check the organization URL and the "
                                    "project, repository or id; Azure DevOps also answers 404 when the token may "
                                    "not see the resource.", status=status, type_key=type_key)

        if status == 429:
            return AzureDevOpsError("throttled",
                                    f"{described} was throttled (429) after {self.max_retries} retries{suffix}. "
                                    "Try again later.", status=status, retry_after=retry_after, type_key=type_key)
        if status >= 500:
            return AzureDevOpsError("server_error",
                                    f"{described} failed with {status} after retries{suffix}. Azure DevOps is "
                                    "having trouble; try again later.",
                                    status=status, retry_after=retry_after, type_key=type_key)

        if type_key == _OUT_OF_RANGE:
            return AzureDevOpsError("version_out_of_range",
                                    f"{described} failed: REST API version {self.api_version} is not supported"
                                    f"{suffix}", status=status, type_key=type_key)
        return AzureDevOpsError("rejected", f"{described} was rejected with {status}{suffix}",
                                status=status, type_key=type_key)


# Helpers ---------------------------------------------------------------------------------------------------------

def changed_paths(changes: list[FileChange]) -> list[str]:
    """Return the distinct paths of `changes` in order, including the original path of a rename."""
    paths: list[str] = []
    for change in changes:
        for path in (change.original_path, change.path):
            if path and path not in paths:
                paths.append(path)
    return paths


def _status_body(state: str, genre: str, name: str, description: str, target_url: str | None) -> JsonObject:
    body: JsonObject = {"state": state, "description": description, "context": {"genre": genre, "name": name}}
    if target_url:
        body["targetUrl"] = target_url
    return body


def _file_changes(entries: list[Any]) -> list[FileChange]:
    changes = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        item = entry.get("item")
        if not isinstance(item, dict):
            continue
        path = item.get("path")
        if not isinstance(path, str) or item.get("isFolder") or item.get("gitObjectType") == "tree":
            continue
        tracking = entry.get("changeTrackingId")
        original = entry.get("originalPath") or entry.get("sourceServerItem")
        changes.append(FileChange(path, str(entry.get("changeType") or ""),
                                  original if isinstance(original, str) else None,
                                  tracking if isinstance(tracking, int) else None))
    return changes


def _values(page: JsonObject) -> list[JsonObject]:
    values = page.get("value") or []
    return [item for item in values if isinstance(item, dict)]


def _is_json(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    return "json" in content_type


def _parse_json(response: httpx.Response, described: str) -> JsonObject:
    """Parse a 2xx body; an HTML or non-JSON body is a sign-in page, so it becomes invalid_credentials."""
    if response.status_code == 204 or not response.content:
        return {}
    if not _is_json(response):
        raise AzureDevOpsError(
            "invalid_credentials",
            f"{described} returned {response.status_code} with "
            f"{response.headers.get('content-type') or 'no content type'} instead of JSON, which is how Azure DevOps "
            "shows a sign-in page. Check the personal access token and the organization URL.",
            status=response.status_code)
    try:
        parsed = response.json()
    except ValueError as error:
        raise AzureDevOpsError("invalid_credentials",
                               f"{described} returned {response.status_code} with a body that is not valid JSON. "
                               "Check the personal access token and the organization URL.",
                               status=response.status_code) from error
    if not isinstance(parsed, dict):
        raise AzureDevOpsError("bad_response", f"{described} returned JSON that is not an object.",
                               status=response.status_code)
    return parsed


def _error_fields(response: httpx.Response) -> JsonObject:
    if not _is_json(response):
        return {}
    try:
        parsed = response.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _type_key(response: httpx.Response) -> str | None:
    value = _error_fields(response).get("typeKey")
    return value if isinstance(value, str) else None


def _error_message(response: httpx.Response) -> str | None:
    value = _error_fields(response).get("message")
    return value if isinstance(value, str) else None


def _supported_version(response: httpx.Response) -> str | None:
    match = _SUPPORTED_VERSION.search(_error_message(response) or "")
    return match.group(1) if match else None


def _retry_after(response: httpx.Response) -> float | None:
    """Read Retry-After as seconds (a number or an HTTP date), capped at MAX_RETRY_AFTER_SECONDS."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            logger.warning("ignored a Retry-After header that is neither seconds nor a date: %s", raw)
            return None
        seconds = moment.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
