"""In-memory state of the fake Azure DevOps collection: identities, projects, repositories, commits,
pull requests, threads, statuses and service-hook subscriptions.

Commits store a full file tree, so item contents, commit changes, commit diffs and pull request
iteration changes all follow from the same data. Blob object ids are real git blob hashes.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field
from typing import Any

SUBSCRIPTION_STATUSES = ("enabled", "onProbation", "disabledByUser", "disabledBySystem", "disabledByInactiveIdentity")
PULL_REQUEST_STATUSES = ("active", "abandoned", "completed")


def now_iso() -> str:
    """Return the current UTC time in the format Azure DevOps uses in JSON bodies."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def blob_id(content: str) -> str:
    """Return the git blob hash of a UTF-8 file content."""
    data = content.encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Identity:
    """A user or service account that a personal access token authenticates as."""

    id: str
    display_name: str
    unique_name: str

    def to_ref(self) -> dict[str, Any]:
        """Return the IdentityRef shape used in pull request, thread and status bodies."""
        return {"id": self.id, "displayName": self.display_name, "uniqueName": self.unique_name}


@dataclass
class Project:
    id: str
    name: str
    description: str = ""
    state: str = "wellFormed"
    visibility: str = "private"


@dataclass
class Commit:
    """A commit with its parents, its full file tree and the files it changed against its first parent."""

    commit_id: str
    parents: list[str]
    comment: str
    tree: dict[str, str]
    changes: list[tuple[str, str]]
    author: Identity
    date: str


@dataclass
class Status:
    """A commit or pull request status as posted."""

    body: dict[str, Any]


@dataclass
class Comment:
    id: int
    parent_comment_id: int
    content: str
    author: Identity
    comment_type: str = "text"
    published_date: str = field(default_factory=now_iso)


@dataclass
class Thread:
    id: int
    comments: list[Comment]
    status: str = "active"
    thread_context: dict[str, Any] | None = None
    pull_request_thread_context: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    published_date: str = field(default_factory=now_iso)


@dataclass
class Iteration:
    id: int
    source_commit: str
    target_commit: str
    reason: str = "push"
    created_date: str = field(default_factory=now_iso)


@dataclass
class PullRequest:
    id: int
    repository_id: str
    title: str
    source_ref: str
    target_ref: str
    created_by: Identity
    status: str = "active"
    is_draft: bool = False
    iterations: list[Iteration] = field(default_factory=list)
    threads: dict[int, Thread] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)
    merge_commit: str | None = None


@dataclass
class Repository:
    id: str
    name: str
    project_id: str
    default_branch: str = "refs/heads/main"
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    commit_statuses: dict[str, list[Status]] = field(default_factory=dict)


class ModelError(Exception):
    """A setup call refers to something the model does not contain."""


class CollectionState:
    """Everything the fake collection serves. Callers hold `FakeAzureDevOps.lock` while they change it."""

    def __init__(self, collection_id: str) -> None:
        self.collection_id = collection_id
        self.pats: dict[str, Identity] = {}
        self.projects: dict[str, Project] = {}
        self.repositories: dict[str, Repository] = {}
        self.pull_requests: dict[int, PullRequest] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.next_status_id = 1

    # Setup -----------------------------------------------------------------------------------

    def add_pat(self, token: str, identity: Identity) -> None:
        self.pats[token] = identity

    def add_project(self, project_id: str, name: str, *, description: str = "") -> Project:
        project = Project(project_id, name, description)
        self.projects[project_id.lower()] = project
        return project

    def add_repository(self, repository_id: str, name: str, project: str,
                       *, default_branch: str = "refs/heads/main") -> Repository:
        owner = self.find_project(project)
        if owner is None:
            raise ModelError(f"project {project!r} does not exist; add it with add_project first")
        repository = Repository(repository_id, name, owner.id, default_branch)
        self.repositories[repository_id.lower()] = repository
        return repository

    def add_commit(self, repository_id: str, commit_id: str, *, parents: list[str] | None = None,
                   files: dict[str, str | None] | None = None, comment: str = "",
                   author: Identity | None = None, branch: str | None = None) -> Commit:
        """Add a commit whose tree is its first parent's tree with `files` applied (None deletes a file)."""
        repository = self.repository_by_id(repository_id)
        parents = list(parents or [])
        base: dict[str, str] = {}
        if parents:
            if parents[0] not in repository.commits:
                raise ModelError(f"parent commit {parents[0]} is not in repository {repository.name}")
            base = repository.commits[parents[0]].tree
        tree = dict(base)
        changes: list[tuple[str, str]] = []
        for raw_path, content in (files or {}).items():
            path = normalize_path(raw_path)
            if content is None:
                if path in tree:
                    del tree[path]
                    changes.append(("delete", path))
                continue
            changes.append(("edit" if path in base else "add", path))
            tree[path] = content
        commit = Commit(commit_id, parents, comment, tree, changes,
                        author or Identity("00000000-0000-4000-8000-000000000000", "Fake Author",
                                           "author@example.com"), now_iso())
        repository.commits[commit_id] = commit
        if branch is not None:
            repository.refs[qualify_branch(branch)] = commit_id
        return commit

    def set_branch(self, repository_id: str, branch: str, commit_id: str) -> None:
        self.repository_by_id(repository_id).refs[qualify_branch(branch)] = commit_id

    def add_pull_request(self, pull_request_id: int, repository_id: str, *, source_ref: str, target_ref: str,
                         created_by: Identity, title: str = "", status: str = "active",
                         is_draft: bool = False) -> PullRequest:
        self.repository_by_id(repository_id)
        pull_request = PullRequest(pull_request_id, repository_id.lower(), title, qualify_branch(source_ref),
                                   qualify_branch(target_ref), created_by, status, is_draft)
        self.pull_requests[pull_request_id] = pull_request
        return pull_request

    def add_iteration(self, pull_request_id: int, *, source_commit: str, target_commit: str,
                      reason: str = "push") -> Iteration:
        pull_request = self.pull_request(pull_request_id)
        repository = self.repository_by_id(pull_request.repository_id)
        for commit_id in (source_commit, target_commit):
            if commit_id not in repository.commits:
                raise ModelError(f"commit {commit_id} is not in repository {repository.name}")
        iteration = Iteration(len(pull_request.iterations) + 1, source_commit, target_commit, reason)
        pull_request.iterations.append(iteration)
        return iteration

    def set_pull_request_status(self, pull_request_id: int, status: str) -> None:
        if status not in PULL_REQUEST_STATUSES:
            raise ModelError(f"pull request status {status!r} is invalid; use one of {PULL_REQUEST_STATUSES}")
        self.pull_request(pull_request_id).status = status

    def set_subscription_status(self, subscription_id: str, status: str) -> None:
        if status not in SUBSCRIPTION_STATUSES:
            raise ModelError(f"subscription status {status!r} is invalid; use one of {SUBSCRIPTION_STATUSES}")
        if subscription_id.lower() not in self.subscriptions:
            raise ModelError(f"subscription {subscription_id} does not exist")
        self.subscriptions[subscription_id.lower()]["status"] = status

    # Lookups -----------------------------------------------------------------------------------

    def find_project(self, name_or_id: str) -> Project | None:
        key = name_or_id.lower()
        if key in self.projects:
            return self.projects[key]
        return next((project for project in self.projects.values() if project.name.lower() == key), None)

    def find_repository(self, name_or_id: str, project: Project | None) -> Repository | None:
        """Find a repository by id (anywhere) or by name (inside `project` only, as Azure DevOps does)."""
        key = name_or_id.lower()
        repository = self.repositories.get(key)
        if repository is not None:
            return repository if project is None or repository.project_id == project.id else None
        if project is None:
            return None
        return next((repository for repository in self.repositories.values()
                     if repository.project_id == project.id and repository.name.lower() == key), None)

    def repository_by_id(self, repository_id: str) -> Repository:
        repository = self.repositories.get(repository_id.lower())
        if repository is None:
            raise ModelError(f"repository {repository_id} does not exist; add it with add_repository first")
        return repository

    def pull_request(self, pull_request_id: int) -> PullRequest:
        if pull_request_id not in self.pull_requests:
            raise ModelError(f"pull request {pull_request_id} does not exist")
        return self.pull_requests[pull_request_id]

    def merge_base(self, repository: Repository, first: str, second: str) -> str | None:
        """Return the nearest common ancestor of two commits (breadth-first from `second`)."""
        ancestors = self._ancestors(repository, first)
        queue = [second]
        seen: set[str] = set()
        while queue:
            commit_id = queue.pop(0)
            if commit_id in ancestors:
                return commit_id
            if commit_id in seen or commit_id not in repository.commits:
                continue
            seen.add(commit_id)
            queue.extend(repository.commits[commit_id].parents)
        return None

    def _ancestors(self, repository: Repository, commit_id: str) -> set[str]:
        result: set[str] = set()
        stack = [commit_id]
        while stack:
            current = stack.pop()
            if current in result or current not in repository.commits:
                continue
            result.add(current)
            stack.extend(repository.commits[current].parents)
        return result


def normalize_path(path: str) -> str:
    """Return a repository path with one leading slash, as Azure DevOps reports paths."""
    return "/" + path.strip().lstrip("/")


def qualify_branch(branch: str) -> str:
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def diff_trees(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str]]:
    """Return (changeType, path) pairs that turn the `before` tree into the `after` tree, sorted by path."""
    changes: list[tuple[str, str]] = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            changes.append(("delete", path))
        elif path not in before:
            changes.append(("add", path))
        elif before[path] != after[path]:
            changes.append(("edit", path))
    return changes
