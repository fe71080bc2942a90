"""Pull request sub-routes of the fake collection: iterations, iteration changes, threads, comments
and pull request statuses."""

from __future__ import annotations

from typing import Any

from devhost.fake_ado.model import (
    CollectionState,
    Comment,
    Iteration,
    PullRequest,
    Repository,
    Status,
    Thread,
    blob_id,
    diff_trees,
    now_iso,
)
from devhost.fake_ado.routes import (
    COMMENT_TYPES,
    MAX_COMMENT_LENGTH,
    MAX_COMMENTS_PER_THREAD,
    MAX_ITERATION_CHANGES_TOP,
    THREAD_STATUSES,
    ApiError,
    Call,
    Reply,
    _allow,
    _int,
    new_status,
    pull_request_json,
    status_json,
)


def pull_request_routes(state: CollectionState, call: Call, repository: Repository, pull_request: PullRequest,
                        rest: list[str]) -> Reply:
    keys = [segment.lower() for segment in rest]
    if not keys:
        _allow(call, "GET")
        return Reply(200, pull_request_json(state, pull_request, call.base_url))
    if keys == ["iterations"]:
        _allow(call, "GET")
        return Reply(200, {"count": len(pull_request.iterations),
                           "value": [_iteration_json(state, repository, iteration)
                                     for iteration in pull_request.iterations]})
    if keys[:1] == ["iterations"] and len(keys) >= 2:
        iteration = _iteration(pull_request, rest[1])
        if len(keys) == 2:
            _allow(call, "GET")
            return Reply(200, _iteration_json(state, repository, iteration))
        if keys[2:] == ["changes"]:
            _allow(call, "GET")
            return _iteration_changes(state, repository, pull_request, iteration, call)
    if keys == ["threads"]:
        _allow(call, "GET", "POST")
        if call.method == "GET":
            threads = list(pull_request.threads.values())
            return Reply(200, {"count": len(threads), "value": [_thread_json(thread) for thread in threads]})
        return Reply(200, _thread_json(_create_thread(pull_request, call)))
    if keys[:1] == ["threads"] and len(keys) >= 2:
        thread = pull_request.threads.get(_int(rest[1], "threadId", 0))
        if thread is None:
            raise ApiError(404, "CommentThreadNotFoundException", f"The thread {rest[1]} was not found.")
        if len(keys) == 2:
            _allow(call, "GET")
            return Reply(200, _thread_json(thread))
        if keys[2:] == ["comments"]:
            _allow(call, "GET", "POST")
            if call.method == "GET":
                return Reply(200, {"count": len(thread.comments),
                                   "value": [_comment_json(comment) for comment in thread.comments]})
            return Reply(200, _comment_json(_reply(thread, call)))
    if keys == ["statuses"]:
        _allow(call, "GET", "POST")
        if call.method == "GET":
            return Reply(200, {"count": len(pull_request.statuses),
                               "value": [status_json(status) for status in pull_request.statuses]})
        return Reply(200, _post_status(state, pull_request, call))
    raise ApiError(404, "ApiResourceNotFoundException",
                   f"API resource location pullRequests/{{id}}/{'/'.join(rest)} is not registered.")


def _iteration(pull_request: PullRequest, raw_id: str) -> Iteration:
    iteration_id = _int(raw_id, "iterationId", 0)
    if not 1 <= iteration_id <= len(pull_request.iterations):
        raise ApiError(404, "GitPullRequestIterationNotFoundException",
                       f"The iteration {raw_id} of pull request {pull_request.id} was not found.")
    return pull_request.iterations[iteration_id - 1]


def _iteration_json(state: CollectionState, repository: Repository, iteration: Iteration) -> dict[str, Any]:
    common = state.merge_base(repository, iteration.source_commit, iteration.target_commit)
    return {"id": iteration.id, "sourceRefCommit": {"commitId": iteration.source_commit},
            "targetRefCommit": {"commitId": iteration.target_commit},
            "commonRefCommit": {"commitId": common} if common else None, "reason": iteration.reason,
            "createdDate": iteration.created_date, "updatedDate": iteration.created_date, "hasMoreCommits": False}


def _iteration_changes(state: CollectionState, repository: Repository, pull_request: PullRequest,
                       iteration: Iteration, call: Call) -> Reply:
    top = _int(call.query.get("$top"), "$top", 100)
    skip = _int(call.query.get("$skip"), "$skip", 0)
    if not 0 < top <= MAX_ITERATION_CHANGES_TOP:
        raise ApiError(400, "InvalidArgumentValueException",
                       f"The value of $top must be between 1 and {MAX_ITERATION_CHANGES_TOP}; it was {top}.")
    compare_to = _int(call.query.get("$compareTo"), "$compareTo", 0)
    if compare_to:
        base_commit: str | None = _iteration(pull_request, str(compare_to)).source_commit
    else:
        base_commit = state.merge_base(repository, iteration.source_commit, iteration.target_commit)
    before = repository.commits[base_commit].tree if base_commit else {}
    after = repository.commits[iteration.source_commit].tree
    changes = diff_trees(before, after)
    page = changes[skip:skip + top]
    entries = []
    for index, (change_type, path) in enumerate(page, start=skip + 1):
        item: dict[str, Any] = {"path": path}
        if path in after:
            item["objectId"] = blob_id(after[path])
            if path in before:
                item["originalObjectId"] = blob_id(before[path])
        entries.append({"changeTrackingId": index, "changeId": index, "item": item, "changeType": change_type})
    more = skip + top < len(changes)
    return Reply(200, {"changeEntries": entries, "nextSkip": skip + top if more else 0, "nextTop": top if more else 0})


def _comment_body(raw: Any, *, parent_default: int) -> tuple[int, str, str]:
    if not isinstance(raw, dict):
        raise ApiError(400, "InvalidArgumentValueException", "A comment must be a JSON object.")
    content = raw.get("content")
    if not isinstance(content, str) or not content:
        raise ApiError(400, "InvalidArgumentValueException", "The comment content is required.")
    if len(content) > MAX_COMMENT_LENGTH:
        raise ApiError(400, "InvalidArgumentValueException",
                       f"The comment content is {len(content)} characters long; the maximum is {MAX_COMMENT_LENGTH}.")
    comment_type = raw.get("commentType", 1)
    if isinstance(comment_type, int):
        comment_type = COMMENT_TYPES.get(comment_type, "unknown")
    parent = raw.get("parentCommentId", parent_default)
    return int(parent or 0), content, str(comment_type)


def _create_thread(pull_request: PullRequest, call: Call) -> Thread:
    body = call.body if isinstance(call.body, dict) else {}
    comments = body.get("comments")
    if not isinstance(comments, list) or not comments:
        raise ApiError(400, "InvalidArgumentValueException", "A new thread must contain at least one comment.")
    status = body.get("status", "active")
    if isinstance(status, int):
        status = THREAD_STATUSES.get(status, "unknown")
    if status not in THREAD_STATUSES.values():
        raise ApiError(400, "InvalidArgumentValueException", f"The thread status '{status}' is not valid.")
    parsed = [_comment_body(raw, parent_default=0) for raw in comments]
    thread_id = max(pull_request.threads, default=0) + 1
    thread = Thread(thread_id, [Comment(index, parent, content, call.identity, comment_type)
                                for index, (parent, content, comment_type) in enumerate(parsed, start=1)],
                    status=str(status), thread_context=body.get("threadContext"),
                    pull_request_thread_context=body.get("pullRequestThreadContext"), properties=body.get("properties"))
    pull_request.threads[thread_id] = thread
    return thread


def _reply(thread: Thread, call: Call) -> Comment:
    parent, content, comment_type = _comment_body(call.body, parent_default=0)
    if len(thread.comments) >= MAX_COMMENTS_PER_THREAD:
        raise ApiError(400, "InvalidArgumentValueException",
                       f"The thread {thread.id} already has {MAX_COMMENTS_PER_THREAD} comments, the maximum.")
    if parent and all(comment.id != parent for comment in thread.comments):
        raise ApiError(400, "InvalidArgumentValueException",
                       f"The parent comment {parent} does not exist in thread {thread.id}.")
    comment = Comment(max((item.id for item in thread.comments), default=0) + 1, parent, content, call.identity,
                      comment_type)
    thread.comments.append(comment)
    return comment


def _comment_json(comment: Comment) -> dict[str, Any]:
    return {"id": comment.id, "parentCommentId": comment.parent_comment_id, "author": comment.author.to_ref(),
            "content": comment.content, "publishedDate": comment.published_date,
            "lastUpdatedDate": comment.published_date, "lastContentUpdatedDate": comment.published_date,
            "commentType": comment.comment_type, "isDeleted": False, "usersLiked": []}


def _thread_json(thread: Thread) -> dict[str, Any]:
    body: dict[str, Any] = {"id": thread.id, "publishedDate": thread.published_date,
                            "lastUpdatedDate": now_iso(), "status": thread.status, "isDeleted": False,
                            "comments": [_comment_json(comment) for comment in thread.comments],
                            "properties": thread.properties or {}}
    if thread.thread_context is not None:
        body["threadContext"] = thread.thread_context
    if thread.pull_request_thread_context is not None:
        body["pullRequestThreadContext"] = thread.pull_request_thread_context
    return body


def _post_status(state: CollectionState, pull_request: PullRequest, call: Call) -> dict[str, Any]:
    if pull_request.status != "active":
        # NOTE: Azure DevOps rejects statuses on completed or abandoned pull requests. The status code and
        # typeKey of that response are not documented, so this fake returns 400.
        raise ApiError(400, "InvalidArgumentValueException",
                       f"The pull request {pull_request.id} is {pull_request.status}; statuses can only be "
                       "posted to active pull requests.")
    status = new_status(state, call)
    iteration_id = call.body.get("iterationId") if isinstance(call.body, dict) else None
    if iteration_id is not None:
        if not isinstance(iteration_id, int) or not 1 <= iteration_id <= len(pull_request.iterations):
            raise ApiError(400, "InvalidArgumentValueException",
                           f"The iteration {iteration_id} does not exist in pull request {pull_request.id}.")
        status["iterationId"] = iteration_id
    if isinstance(call.body, dict) and isinstance(call.body.get("properties"), dict):
        status["properties"] = call.body["properties"]
    pull_request.statuses.append(Status(status))
    return status
