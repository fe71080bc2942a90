"""REST routes of the fake collection: turn an authenticated, version-checked call into a reply.

Route segments after `_apis` are matched case-insensitively, as Azure DevOps does. Project segments
accept a name or an id; repositories are found by id anywhere and by name inside their project.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from devhost.fake_ado.model import (
    CollectionState,
    Identity,
    Project,
    PullRequest,
    Repository,
    Status,
    blob_id,
    diff_trees,
    normalize_path,
    now_iso,
)

MAX_COMMENT_LENGTH = 150_000
MAX_COMMENTS_PER_THREAD = 500
MAX_ITERATION_CHANGES_TOP = 2000
THREAD_STATUSES = {0: "unknown", 1: "active", 2: "fixed", 3: "wontFix", 4: "closed", 5: "byDesign", 6: "pending"}
COMMENT_TYPES = {0: "unknown", 1: "text", 2: "codeChange", 3: "system"}
STATUS_STATES = ("notSet", "pending", "succeeded", "failed", "error", "notApplicable")
CONFIDENTIAL_INPUTS = ("basicAuthPassword",)
MASKED = "********"


@dataclass
class Reply:
    """An HTTP response: a JSON-serialisable body, or `raw` bytes sent with `content_type`."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json; charset=utf-8"


class ApiError(Exception):
    """An Azure DevOps error response, which the server renders in the VSS error shape."""

    def __init__(self, status: int, type_key: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type_key = type_key
        self.message = message


@dataclass
class Call:
    """One request after routing off the collection prefix and `_apis`."""

    method: str
    project: str | None
    segments: list[str]
    query: dict[str, str]
    body: Any
    identity: Identity
    base_url: str
    accept: str = "application/json"


def dispatch(state: CollectionState, call: Call) -> Reply:
    """Route `call` to its handler, which raises `ApiError` for every error response."""
    keys = [segment.lower() for segment in call.segments]
    if keys == ["connectiondata"]:
        _allow(call, "GET")
        return Reply(200, connection_data(state, call.identity))
    if keys[:1] == ["projects"] and call.project is None:
        return _projects(state, call, call.segments[1:])
    if keys[:1] == ["git"]:
        return _git(state, call, call.segments[1:])
    if keys[:1] == ["hooks"] and call.project is None:
        return _hooks(state, call, call.segments[1:])
    raise ApiError(404, "ApiResourceNotFoundException",
                   f"API resource location {'/'.join(call.segments)} is not registered on this server.")


def _allow(call: Call, *methods: str) -> None:
    if call.method not in methods:
        raise ApiError(405, "HttpMethodNotAllowedException",
                       f"The requested resource does not support http method '{call.method}'.")


def _int(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "InvalidArgumentValueException",
                       f"The value '{value}' of parameter {name} is not a valid integer.") from None


def _segment(value: str) -> str:
    return quote(value, safe="")


# Identity and projects ---------------------------------------------------------------------------

def connection_data(state: CollectionState, identity: Identity | None) -> dict[str, Any]:
    """Return the connectionData body for `identity`, or the anonymous identity when it is None."""
    if identity is None:
        user: dict[str, Any] = {"id": "aa442a5b-0000-4000-8000-0000000a0000", "providerDisplayName": "Anonymous",
                                "descriptor": "System:PublicAccess;aa442a5b", "isActive": True, "properties": {}}
    else:
        user = {"id": identity.id,
                "descriptor": f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{identity.unique_name}",
                "providerDisplayName": identity.display_name, "isActive": True,
                "properties": {"Account": {"$type": "System.String", "$value": identity.unique_name}}}
    return {"authenticatedUser": user, "authorizedUser": dict(user), "instanceId": state.collection_id,
            "deploymentId": "d0d0d0d0-0000-4000-8000-000000000004", "deploymentType": "onPremises",
            "locationServiceData": {"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
                                    "defaultAccessMappingMoniker": "PublicAccessMapping"}}


def _project_json(project: Project, base_url: str) -> dict[str, Any]:
    return {"id": project.id, "name": project.name, "description": project.description,
            "url": f"{base_url}/_apis/projects/{project.id}", "state": project.state, "revision": 1,
            "visibility": project.visibility, "lastUpdateTime": "2025-03-01T12:00:00Z"}


def _projects(state: CollectionState, call: Call, rest: list[str]) -> Reply:
    _allow(call, "GET")
    if rest:
        project = _project(state, rest[0])
        return Reply(200, _project_json(project, call.base_url))
    projects = sorted(state.projects.values(), key=lambda project: project.name.lower())
    top = _int(call.query.get("$top"), "$top", 100)
    skip = _int(call.query.get("continuationToken"), "continuationToken", 0)
    page = projects[skip:skip + top]
    headers = {}
    if skip + top < len(projects):
        headers["x-ms-continuationtoken"] = str(skip + top)
    return Reply(200, {"count": len(page), "value": [_project_json(project, call.base_url) for project in page]},
                 headers)


def _project(state: CollectionState, name_or_id: str) -> Project:
    project = state.find_project(name_or_id)
    if project is None:
        raise ApiError(404, "ProjectDoesNotExistWithNameException",
                       f"TF200016: The following project does not exist: {name_or_id}. Verify that the name of "
                       "the project is correct and that the project exists on the specified Azure DevOps Server.")
    return project


# Git ------------------------------------------------------------------------------------------------

def _git(state: CollectionState, call: Call, rest: list[str]) -> Reply:
    keys = [segment.lower() for segment in rest]
    project = _project(state, call.project) if call.project is not None else None
    if keys == ["repositories"]:
        _allow(call, "GET")
        repositories = [repository for repository in state.repositories.values()
                        if project is None or repository.project_id == project.id]
        return Reply(200, {"count": len(repositories),
                           "value": [repository_json(state, repository, call.base_url)
                                     for repository in repositories]})
    if keys[:1] == ["repositories"] and len(keys) >= 2:
        repository = state.find_repository(rest[1], project)
        if repository is None:
            raise ApiError(404, "GitRepositoryNotFoundException",
                           f"TF401019: The Git repository with name or identifier {rest[1]} does not exist or you "
                           "do not have permissions for the operation you are attempting.")
        return _repository_routes(state, call, repository, rest[2:])
    if keys[:1] == ["pullrequests"] and len(keys) == 2:
        _allow(call, "GET")
        pull_request = _pull_request(state, rest[1], None)
        repository = state.repository_by_id(pull_request.repository_id)
        if project is not None and repository.project_id != project.id:
            raise _pull_request_missing(rest[1])
        return Reply(200, pull_request_json(state, pull_request, call.base_url))
    raise ApiError(404, "ApiResourceNotFoundException",
                   f"API resource location git/{'/'.join(rest)} is not registered.")


def repository_json(state: CollectionState, repository: Repository, base_url: str) -> dict[str, Any]:
    """Return the GitRepository body of `repository`."""
    project = state.projects[repository.project_id.lower()]
    web_url = f"{base_url}/{_segment(project.name)}/_git/{_segment(repository.name)}"
    host = base_url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    collection_path = base_url.split("://", 1)[1].split("/", 1)[1]
    return {"id": repository.id, "name": repository.name,
            "url": f"{base_url}/{project.id}/_apis/git/repositories/{repository.id}",
            "project": _project_json(project, base_url), "defaultBranch": repository.default_branch, "size": 1024,
            "remoteUrl": web_url, "webUrl": web_url,
            "sshUrl": f"ssh://{host}:22/{collection_path}/{_segment(project.name)}/_git/{_segment(repository.name)}",
            "isDisabled": False, "isFork": False, "isInMaintenance": False}


def _repository_routes(state: CollectionState, call: Call, repository: Repository, rest: list[str]) -> Reply:
    keys = [segment.lower() for segment in rest]
    if not keys:
        _allow(call, "GET")
        return Reply(200, repository_json(state, repository, call.base_url))
    if keys == ["items"]:
        _allow(call, "GET")
        return _item(repository, call)
    if keys[:1] == ["commits"] and len(keys) == 3 and keys[2] == "changes":
        _allow(call, "GET")
        return _commit_changes(repository, call, rest[1])
    if keys[:1] == ["commits"] and len(keys) == 3 and keys[2] == "statuses":
        return _commit_statuses(state, repository, call, rest[1])
    if keys == ["diffs", "commits"]:
        _allow(call, "GET")
        return _diff_commits(state, repository, call)
    if keys[:1] == ["pullrequests"] and len(keys) >= 2:
        pull_request = _pull_request(state, rest[1], repository)
        from devhost.fake_ado.pull_requests import pull_request_routes

        return pull_request_routes(state, call, repository, pull_request, rest[2:])
    raise ApiError(404, "ApiResourceNotFoundException",
                   f"API resource location git/repositories/{{id}}/{'/'.join(rest)} is not registered.")


def resolve_commit(repository: Repository, version: str | None, version_type: str | None) -> str:
    """Resolve a version descriptor (commit, branch or the default branch) to a commit id."""
    kind = (version_type or "branch").lower()
    if not version:
        commit_id = repository.refs.get(repository.default_branch)
    elif kind == "commit":
        commit_id = version.lower() if version.lower() in repository.commits else None
    elif kind in ("branch", "tag"):
        prefix = "refs/heads/" if kind == "branch" else "refs/tags/"
        commit_id = repository.refs.get(version if version.startswith("refs/") else prefix + version)
    else:
        raise ApiError(400, "InvalidArgumentValueException", f"The version type '{version_type}' is not valid.")
    if commit_id is None:
        raise ApiError(404, "GitUnresolvableToCommitException",
                       f"TF401175: The version descriptor <{kind.capitalize()}: {version}> could not be resolved "
                       f"to a version in the repository {repository.name}")
    return commit_id


def _item(repository: Repository, call: Call) -> Reply:
    path = call.query.get("path") or call.query.get("scopePath")
    if not path:
        raise ApiError(400, "ArgumentNullException", "Value cannot be null. Parameter name: path")
    path = normalize_path(path)
    commit_id = resolve_commit(repository, call.query.get("versionDescriptor.version"),
                               call.query.get("versionDescriptor.versionType"))
    tree = repository.commits[commit_id].tree
    item_url = f"{call.base_url}/_apis/git/repositories/{repository.id}/items?path={quote(path)}"
    if path not in tree:
        if path == "/" or any(name.startswith(path.rstrip("/") + "/") for name in tree):
            return Reply(200, {"objectId": commit_id, "gitObjectType": "tree", "commitId": commit_id,
                               "path": path, "isFolder": True, "url": item_url})
        raise ApiError(404, "GitItemNotFoundException",
                       f"TF401174: The item '{path}' could not be found in the repository '{repository.name}' at "
                       f"the version specified by '<Commit: {commit_id}>' (resolved from '{commit_id}').")
    content = tree[path]
    wants_raw = ("octet-stream" in call.accept or call.query.get("$format", "").lower() == "octetstream"
                 or call.query.get("download", "").lower() == "true")
    if wants_raw:
        return Reply(200, raw=content.encode("utf-8"), content_type="application/octet-stream")
    body: dict[str, Any] = {"objectId": blob_id(content), "gitObjectType": "blob", "commitId": commit_id,
                            "path": path, "url": item_url}
    if call.query.get("includeContent", "").lower() == "true":
        body["content"] = content
    return Reply(200, body)


def _change_json(repository: Repository, base_url: str, change_type: str, path: str,
                 before: dict[str, str], after: dict[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {"gitObjectType": "blob", "path": path,
                            "url": f"{base_url}/_apis/git/repositories/{repository.id}/items?path={quote(path)}"}
    if path in after:
        item["objectId"] = blob_id(after[path])
    if path in before:
        item["originalObjectId"] = blob_id(before[path])
    return {"item": item, "changeType": change_type}


def _change_counts(changes: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for change_type, _ in changes:
        key = change_type.capitalize()
        counts[key] = counts.get(key, 0) + 1
    return counts


def _commit(repository: Repository, commit_id: str) -> str:
    if commit_id.lower() not in repository.commits:
        raise ApiError(404, "GitUnresolvableToCommitException",
                       f"TF401175: The version descriptor <Commit: {commit_id}> could not be resolved to a version "
                       f"in the repository {repository.name}")
    return commit_id.lower()


def _commit_changes(repository: Repository, call: Call, commit_id: str) -> Reply:
    commit = repository.commits[_commit(repository, commit_id)]
    before = repository.commits[commit.parents[0]].tree if commit.parents else {}
    top = _int(call.query.get("top") or call.query.get("$top"), "top", 100)
    skip = _int(call.query.get("skip") or call.query.get("$skip"), "skip", 0)
    page = commit.changes[skip:skip + top]
    return Reply(200, {"changeCounts": _change_counts(commit.changes),
                       "changes": [_change_json(repository, call.base_url, change_type, path, before, commit.tree)
                                   for change_type, path in page]})


def _diff_commits(state: CollectionState, repository: Repository, call: Call) -> Reply:
    # Azure DevOps defaults both version types to branch; commit ids and tags resolve too.
    base_id = resolve_commit(repository, call.query.get("baseVersion") or None, call.query.get("baseVersionType"))
    target_id = resolve_commit(repository, call.query.get("targetVersion") or None,
                               call.query.get("targetVersionType"))
    common = state.merge_base(repository, base_id, target_id)
    compare_from = base_id
    if call.query.get("diffCommonCommit", "true").lower() == "true" and common is not None:
        compare_from = common
    before = repository.commits[compare_from].tree
    after = repository.commits[target_id].tree
    changes = diff_trees(before, after)
    top = _int(call.query.get("$top"), "$top", 100)
    skip = _int(call.query.get("$skip"), "$skip", 0)
    page = changes[skip:skip + top]
    return Reply(200, {"allChangesIncluded": skip + top >= len(changes), "changeCounts": _change_counts(changes),
                       "changes": [_change_json(repository, call.base_url, change_type, path, before, after)
                                   for change_type, path in page],
                       "commonCommit": common, "baseCommit": base_id, "targetCommit": target_id,
                       "aheadCount": 0, "behindCount": 0})


def status_json(status: Status) -> dict[str, Any]:
    return dict(status.body)


def new_status(state: CollectionState, call: Call) -> dict[str, Any]:
    """Validate a GitStatus body and return it completed with id, dates and creator."""
    body = call.body if isinstance(call.body, dict) else None
    if body is None:
        raise ApiError(400, "InvalidArgumentValueException", "The status body is missing or is not a JSON object.")
    context = body.get("context")
    if not isinstance(context, dict) or not context.get("name"):
        raise ApiError(400, "InvalidArgumentValueException", "The status context name is required.")
    state_value = body.get("state", "notSet")
    if state_value not in STATUS_STATES:
        raise ApiError(400, "InvalidArgumentValueException", f"The status state '{state_value}' is not valid.")
    status = {"id": state.next_status_id, "state": state_value, "description": body.get("description", ""),
              "context": {"genre": context.get("genre", ""), "name": context["name"]},
              "targetUrl": body.get("targetUrl"), "creationDate": now_iso(), "updatedDate": now_iso(),
              "createdBy": call.identity.to_ref()}
    state.next_status_id += 1
    return status


def _commit_statuses(state: CollectionState, repository: Repository, call: Call, commit_id: str) -> Reply:
    _allow(call, "GET", "POST")
    commit_id = _commit(repository, commit_id)
    statuses = repository.commit_statuses.setdefault(commit_id, [])
    if call.method == "GET":
        return Reply(200, {"count": len(statuses), "value": [status_json(status) for status in reversed(statuses)]})
    status = Status(new_status(state, call))
    statuses.append(status)
    return Reply(201, status_json(status))


# Pull requests (shared helpers; the sub-routes live in pull_requests.py) -----------------------------

def _pull_request_missing(raw_id: str) -> ApiError:
    return ApiError(404, "GitPullRequestNotFoundException",
                    f"TF401180: The requested pull request {raw_id} was not found.")


def _pull_request(state: CollectionState, raw_id: str, repository: Repository | None) -> PullRequest:
    pull_request_id = _int(raw_id, "pullRequestId", 0)
    pull_request = state.pull_requests.get(pull_request_id)
    if pull_request is None or (repository is not None and pull_request.repository_id != repository.id.lower()):
        raise _pull_request_missing(raw_id)
    return pull_request


def pull_request_json(state: CollectionState, pull_request: PullRequest, base_url: str) -> dict[str, Any]:
    """Return the GitPullRequest body of `pull_request`."""
    repository = state.repository_by_id(pull_request.repository_id)
    commits_url = f"{base_url}/{repository.project_id}/_apis/git/repositories/{repository.id}/commits"
    body: dict[str, Any] = {
        "repository": repository_json(state, repository, base_url), "pullRequestId": pull_request.id,
        "codeReviewId": pull_request.id, "status": pull_request.status, "createdBy": pull_request.created_by.to_ref(),
        "creationDate": "2025-03-04T10:30:00Z", "title": pull_request.title, "description": "",
        "sourceRefName": pull_request.source_ref, "targetRefName": pull_request.target_ref,
        "mergeStatus": "succeeded", "isDraft": pull_request.is_draft,
        "mergeId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{repository.id}/{pull_request.id}")),
        "reviewers": [], "labels": [], "supportsIterations": True,
        "url": f"{commits_url.removesuffix('/commits')}/pullRequests/{pull_request.id}",
        "artifactId": f"vstfs:///Git/PullRequestId/{repository.project_id}%2f{repository.id}%2f{pull_request.id}",
    }
    if pull_request.iterations:
        latest = pull_request.iterations[-1]
        body["lastMergeSourceCommit"] = {"commitId": latest.source_commit,
                                         "url": f"{commits_url}/{latest.source_commit}"}
        body["lastMergeTargetCommit"] = {"commitId": latest.target_commit,
                                         "url": f"{commits_url}/{latest.target_commit}"}
    if pull_request.merge_commit:
        body["lastMergeCommit"] = {"commitId": pull_request.merge_commit,
                                   "url": f"{commits_url}/{pull_request.merge_commit}"}
    if pull_request.status != "active":
        body["closedDate"] = "2025-03-05T10:00:00Z"
        body["closedBy"] = pull_request.created_by.to_ref()
    return body


# Service hooks ---------------------------------------------------------------------------------------

def _hooks(state: CollectionState, call: Call, rest: list[str]) -> Reply:
    from devhost.fake_ado.hooks import hooks_routes

    return hooks_routes(state, call, rest)

