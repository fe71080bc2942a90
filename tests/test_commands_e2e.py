"""Pull request comment commands end to end: comments delivered through the webhook endpoint run
their commands once, with the comment author's roles, and the reply lands in the comment's thread
of the fake Azure DevOps server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devhost.fake_ado import FakeAzureDevOps
from devhost.fake_ado.model import Comment, Identity
from devhost.stack import LocalStack
from shared.core.commands import REPLY_MARKER
from tests.api_helpers import create_space, delete_space, grant, unique, wait_for_connection_test
from tests.fixtures.app_host import Api
from tests.webhook_helpers import create_hook, fresh, post_hook, wait_for_outcome

COMMENT_EVENT = "ms.vss-code.git-pullrequest-comment-event"
PULL_REQUEST = 57
OTHER_PULL_REQUEST = 58
THREAD = 311
# The pull request's head in the fake server now: a later push than the comment event saw.
LIVE_HEAD = "abababababababababababababababababab0002"
ALEX_ID = "0a1e0a1e-0000-4000-8000-00000000a1e0"  # the identity of the sample token
BLAIR = Identity("0b1a0b1a-0000-4000-8000-00000000b1a0", "Blair Sample", "blair.sample@example.com")
REPOSITORY = {"project": "Widgets", "repository": "widget-service"}
OTHER_REPOSITORY = {"project": "My Project", "repository": "dépôt infra"}
LINK_BASE = ("https://contoso-test.visualstudio.com/_apis/git/repositories/aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee/"
             "pullRequests/{pr}/threads/{thread}")


@dataclass(frozen=True)
class Setup:
    hook_id: str
    secret: str
    app: str
    network: str
    vpc: str
    reseau: str
    reseau_name: str
    hidden: str
    elsewhere: str
    read_space: str
    write_space: str


@pytest.fixture(scope="module")
def fake(app_stack: LocalStack) -> FakeAzureDevOps:
    assert app_stack.fake_ado is not None
    return app_stack.fake_ado


@pytest.fixture(scope="module")
def module_api(app_stack: LocalStack) -> Iterator[Api]:
    with httpx.Client(timeout=30) as client:
        yield Api(app_stack, client)


@pytest.fixture(scope="module")
def setup(module_api: Api, fake: FakeAzureDevOps) -> Iterator[Setup]:
    """One integration with stacks in three spaces: Blair writes one, reads one and cannot see the third."""
    api = module_api
    fake.reset()
    hook = create_hook(api, "Commands")
    details = wait_for_connection_test(api, hook.id)
    assert details["connectionTest"]["ok"], details
    spaces = {role: unique(f"cmd-{role}") for role in ("read", "write", "hidden")}
    for space_id in spaces.values():
        create_space(api, space_id)
    grant(api, spaces["read"], BLAIR.unique_name, "read")
    grant(api, spaces["write"], BLAIR.unique_name, "write")
    grant(api, spaces["read"], "żaneta.łoś@example.com", "read")

    created: list[tuple[str, str]] = []

    def add(kind: str, name: str, space: str, root: str, repository: dict[str, str] = REPOSITORY,
            **fields: Any) -> str:
        body = {"name": name, "spaceId": spaces[space], "integrationId": hook.id, "repository": repository,
                "projectRoot": root, **fields}
        response = api.as_admin("POST", f"/api/{kind}", body)
        assert response.status_code == 201, response.text
        created.append((kind, response.json()["id"]))
        return str(response.json()["id"])

    reseau_name = unique("Réseau Ü")
    yield Setup(
        hook_id=hook.id, secret=hook.secret,
        app=add("stacks", unique("app"), "write", "stacks/app"),
        network=add("stacks", unique("network"), "write", "stacks/network"),
        vpc=add("modules", unique("vpc"), "read", "modules/vpc", terraformProvider="azurerm", moduleName="vpc"),
        reseau=add("stacks", reseau_name, "read", "stacks/network"),
        reseau_name=reseau_name,
        hidden=add("stacks", unique("hidden"), "hidden", "stacks/app"),
        elsewhere=add("stacks", unique("elsewhere"), "write", "stacks/édition", OTHER_REPOSITORY),
        read_space=spaces["read"], write_space=spaces["write"],
    )
    for kind, stack_id in created:
        api.as_admin("DELETE", f"/api/{kind}/{stack_id}")
    for space_id in spaces.values():
        delete_space(api, space_id)
    api.as_admin("DELETE", f"/api/integrations/{hook.id}")


# --- helpers ----------------------------------------------------------------------------------


def add_comment(fake: FakeAzureDevOps, content: str) -> int:
    """Write a comment in thread 311 of pull request 57, as a user would, and return its id."""
    with fake.lock:
        thread = fake.state.pull_request(PULL_REQUEST).threads[THREAD]
        comment_id = max(comment.id for comment in thread.comments) + 1
        thread.comments.append(Comment(comment_id, 0, content, BLAIR))
    return comment_id


def comment_payload(content: str | None, comment_id: int, *, name: str = COMMENT_EVENT,
                    pull_request_id: int = PULL_REQUEST, author: dict[str, str] | None = None,
                    status: str | None = None) -> dict[str, Any]:
    document = fresh(name, pull_request_id=pull_request_id)
    comment = document["resource"]["comment"]
    comment["id"] = comment_id
    comment["parentCommentId"] = 0
    comment["content"] = content
    links = LINK_BASE.format(pr=pull_request_id, thread=THREAD)
    comment["_links"]["threads"] = {"href": links}
    comment["_links"]["self"] = {"href": f"{links}/comments/{comment_id}"}
    if author is not None:
        comment["author"].update(author)
    if status is not None:
        document["resource"]["pullRequest"]["status"] = status
    return document


def deliver(api: Api, setup: Setup, document: dict[str, Any]) -> dict[str, Any]:
    response = post_hook(api, setup.hook_id, document, password=setup.secret)
    assert response.status_code == 202, response.text
    return wait_for_outcome(api, setup.hook_id, response.json()["deliveryId"])


def say(api: Api, setup: Setup, fake: FakeAzureDevOps, content: str, **options: Any) -> tuple[dict[str, Any], int]:
    """Write a comment and deliver its event; return the delivery and the comment id."""
    comment_id = add_comment(fake, content)
    return deliver(api, setup, comment_payload(content, comment_id, **options)), comment_id


def replies_to(fake: FakeAzureDevOps, comment_id: int, pull_request_id: int = PULL_REQUEST) -> list[str]:
    """Return the contents of the replies the service posted to a comment, as the fake recorded them."""
    path = f"/pullRequests/{pull_request_id}/threads/{THREAD}/comments"
    return [request.body["content"] for request in fake.find("POST", path)
            if request.status == 200 and isinstance(request.body, dict)
            and request.body.get("parentCommentId") == comment_id]


def runs_of(api: Api, kind: str, stack_id: str) -> list[dict[str, Any]]:
    response = api.as_admin("GET", f"/api/runs/{kind}/{stack_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


def wait_for(condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


# --- comment bodies ---------------------------------------------------------------------------

# name: (comment body with {placeholders} from Setup, texts the reply contains, stacks with one new run)
BODIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "help": ("/stackhook help", ("| Command | What it does |", "/stackhook deploy <stack>"), ()),
    "propose named": ("/stackhook propose {app}", ("started 1 new run", "/api/runs/stack/{app}/"), ("app",)),
    "case and spaces": ("   /STACKHOOK   Propose   {app}  ", ("started 1 new run",), ("app",)),
    "propose changed": ("/stackhook propose", ("started 2 new runs", "/api/runs/module/{vpc}/"), ("app", "vpc")),
    "propose quoted": ('/stackhook propose "{reseau_name}"', ("started 1 new run",), ("reseau",)),
    "deploy": ("/stackhook deploy {network}", ("started 1 new run", "tracked"), ("network",)),
    "status": ("/stackhook status", ("Latest runs of", "{app}"), ()),
    "two commands": ("/stackhook help\nsome text\n/stackhook propose {app}",
                     ("| Command |", "---", "started 1 new run"), ("app",)),
    "unknown command": ("/stackhook frobnicate", ("is not a command", "/stackhook propose"), ()),
    "unknown stack": ("/stackhook propose nosuch", ("is not a stack or module of repository",
                                                    "These would work instead", "/stackhook propose {app}"), ()),
    "other repository": ("/stackhook propose {elsewhere}", ("uses repository",), ()),
    "hidden stack": ("/stackhook propose {hidden}", ("is not a stack or module of repository",), ()),
    "read only deploy": ("/stackhook deploy {reseau}", ("needs the write role",), ()),
    "module deploy": ("/stackhook deploy module:{vpc}", ("applies to stacks only",), ()),
}


@pytest.mark.parametrize("case", sorted(BODIES))
def test_comment_body(module_api: Api, setup: Setup, fake: FakeAzureDevOps, case: str) -> None:
    template, expected, started = BODIES[case]
    values = vars(setup)
    ids = {"app": ("stack", setup.app), "vpc": ("module", setup.vpc), "reseau": ("stack", setup.reseau),
           "network": ("stack", setup.network)}
    before = {name: len(runs_of(module_api, *ids[name])) for name in ids}

    delivery, comment_id = say(module_api, setup, fake, template.format(**values))

    assert delivery["outcome"] == "processed", delivery
    replies = replies_to(fake, comment_id)
    assert len(replies) == 1, replies
    assert replies[0].startswith(REPLY_MARKER)
    for text in expected:
        assert text.format(**values) in replies[0], (text, replies[0])
    # The hidden stack shows only where the comment's own line is quoted back.
    assert replies[0].count(setup.hidden) == template.count("{hidden}")
    after = {name: len(runs_of(module_api, *ids[name])) for name in ids}
    assert {name for name in ids if after[name] == before[name] + 1} == set(started)
    assert {name for name in ids if after[name] not in (before[name], before[name] + 1)} == set()


def test_proposed_run_fields(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    say(module_api, setup, fake, f"/stackhook propose {setup.app}")
    say(module_api, setup, fake, f"/stackhook propose {setup.app}")

    runs = runs_of(module_api, "stack", setup.app)
    assert runs[0]["runType"] == "proposed"
    assert runs[0]["commit"] == LIVE_HEAD
    assert runs[0]["iterationId"] == 2
    assert runs[0]["pullRequestId"] == PULL_REQUEST
    assert runs[0]["triggeredBy"] == BLAIR.unique_name
    assert runs[0]["id"] != runs[1]["id"]
    assert runs[1]["commit"] == LIVE_HEAD


@pytest.mark.parametrize("body", [
    "```\n/stackhook propose app\n```",
    "~~~hcl\n/stackhook deploy app\n",
    "> /stackhook deploy app",
    "    /stackhook deploy app",
    "please run /stackhook propose",
    "no commands here",
])
def test_no_command_ignored(module_api: Api, setup: Setup, fake: FakeAzureDevOps, body: str) -> None:
    delivery, comment_id = say(module_api, setup, fake, body)

    assert delivery["outcome"] == "ignored", delivery
    assert "no command line" in delivery["reason"]
    assert replies_to(fake, comment_id) == []


@pytest.mark.parametrize("name, reason", [
    (f"{COMMENT_EVENT}.edited", "edited"),
    (f"{COMMENT_EVENT}.deleted", "deleted"),
    (f"{COMMENT_EVENT}.system", "system"),
    (f"{COMMENT_EVENT}.code-change", "codeChange"),
])
def test_comment_state_ignored(module_api: Api, setup: Setup, fake: FakeAzureDevOps, name: str,
                               reason: str) -> None:
    comment_id = add_comment(fake, "/stackhook help")
    document = comment_payload("/stackhook help", comment_id, name=name)
    if name.endswith(".deleted"):
        document["resource"]["comment"]["content"] = None

    delivery = deliver(module_api, setup, document)

    assert delivery["outcome"] == "ignored", delivery
    assert reason in delivery["reason"]
    assert replies_to(fake, comment_id) == []


def test_resource_version_one_ignored(module_api: Api, setup: Setup) -> None:
    response = post_hook(module_api, setup.hook_id, fresh(f"{COMMENT_EVENT}.resource-version-1"),
                         password=setup.secret)

    assert response.status_code == 200, response.text
    assert "2.0" in response.text


def test_own_reply_ignored(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    delivery, comment_id = say(module_api, setup, fake, f"{REPLY_MARKER}\n\n/stackhook help")

    assert delivery["outcome"] == "ignored", delivery
    assert "reply marker" in delivery["reason"]
    assert replies_to(fake, comment_id) == []


def test_own_identity_ignored(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    delivery, comment_id = say(module_api, setup, fake, "/stackhook help",
                               author={"id": ALEX_ID, "uniqueName": "alex.example@example.com"})

    assert delivery["outcome"] == "ignored", delivery
    assert "own identity" in delivery["reason"]
    assert replies_to(fake, comment_id) == []


def test_duplicate_runs_once(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    body = f"/stackhook propose {setup.app}"
    comment_id = add_comment(fake, body)
    before = len(runs_of(module_api, "stack", setup.app))

    first = deliver(module_api, setup, comment_payload(body, comment_id))
    second = deliver(module_api, setup, comment_payload(body, comment_id))

    assert first["outcome"] == "processed", first
    assert second["outcome"] == "ignored", second
    assert "already handled" in second["reason"]
    assert len(replies_to(fake, comment_id)) == 1
    assert len(runs_of(module_api, "stack", setup.app)) == before + 1


def test_author_without_roles(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    stranger = {"id": "0c0c0c0c-0000-4000-8000-000000000c0c", "uniqueName": "casey@example.com",
                "displayName": "Casey"}
    before = len(runs_of(module_api, "stack", setup.app))

    delivery, comment_id = say(module_api, setup, fake, f"/stackhook propose {setup.app}\n/stackhook status",
                               author=stranger)

    assert delivery["outcome"] == "processed", delivery
    reply = replies_to(fake, comment_id)[0]
    assert "is not a stack or module of repository" in reply
    assert "changes no stack or module that you can see" in reply
    assert setup.app not in reply.replace(f"propose {setup.app}", "")
    assert len(runs_of(module_api, "stack", setup.app)) == before


def test_non_ascii_author(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    author = {"uniqueName": "Żaneta.Łoś@example.com", "displayName": "Żaneta Łoś",
              "id": "0d0d0d0d-0000-4000-8000-000000000d0d"}
    before = len(runs_of(module_api, "stack", setup.reseau))

    delivery, comment_id = say(module_api, setup, fake, f"/stackhook propose {setup.reseau}\n"
                                                        f"/stackhook lock {setup.reseau}", author=author)

    assert delivery["outcome"] == "processed", delivery
    reply = replies_to(fake, comment_id)[0]
    assert "started 1 new run" in reply
    assert "needs the write role" in reply
    runs = runs_of(module_api, "stack", setup.reseau)
    assert len(runs) == before + 1
    assert runs[0]["triggeredBy"] == "Żaneta.Łoś@example.com"


def test_lock_contention(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    stack = setup.network
    # The fake has no pull request 58, so replies there fail; the lock must hold all the same.
    other, _ = say(module_api, setup, fake, f"/stackhook lock {stack}", pull_request_id=OTHER_PULL_REQUEST)
    assert other["outcome"] == "failed", other
    assert "reply failed" in other["reason"]
    before = len(runs_of(module_api, "stack", stack))

    refused, refused_id = say(module_api, setup, fake, f"/stackhook deploy {stack}\n/stackhook lock {stack}\n"
                                                       f"/stackhook unlock {stack}")

    reply = replies_to(fake, refused_id)[0]
    assert refused["outcome"] == "processed", refused
    assert reply.count(f"locked by pull request !{OTHER_PULL_REQUEST}") == 2
    assert f"locked by pull request {OTHER_PULL_REQUEST}\\, and only that pull request" in reply
    assert len(runs_of(module_api, "stack", stack)) == before

    completed = deliver(module_api, setup, fresh("git.pullrequest.updated.completed",
                                                 pull_request_id=OTHER_PULL_REQUEST))
    assert completed["classification"]["routing"]["releasedLocks"] == [stack], completed

    _, deployed_id = say(module_api, setup, fake, f"/stackhook lock {stack}\n/stackhook deploy {stack}\n"
                                                  f"/stackhook unlock {stack}")
    reply = replies_to(fake, deployed_id)[0]
    assert "Locked stack" in reply
    assert "started 1 new run" in reply
    assert "Unlocked stack" in reply
    assert len(runs_of(module_api, "stack", stack)) == before + 1


def test_closed_answered_once(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    first, first_id = say(module_api, setup, fake, f"/stackhook propose {setup.app}", status="abandoned")
    second, second_id = say(module_api, setup, fake, "/stackhook help", status="abandoned")

    assert first["outcome"] == "ignored", first
    assert second["outcome"] == "ignored", second
    assert "already said" in second["reason"]
    replies = replies_to(fake, first_id)
    assert len(replies) == 1
    assert "abandoned" in replies[0]
    assert replies_to(fake, second_id) == []


def test_failed_reply_retried(module_api: Api, setup: Setup, fake: FakeAzureDevOps) -> None:
    body = f"/stackhook propose {setup.app}"
    comment_id = add_comment(fake, body)
    before = len(runs_of(module_api, "stack", setup.app))
    fake.fail_next(1, status=500, path_contains=f"/threads/{THREAD}/comments")

    delivery = deliver(module_api, setup, comment_payload(body, comment_id))

    assert delivery["outcome"] == "failed", delivery
    assert "500" in delivery["reason"]
    replies = wait_for(lambda: replies_to(fake, comment_id))
    assert len(replies) == 1
    assert "started 1 new run" in replies[0]
    assert len(runs_of(module_api, "stack", setup.app)) == before + 1
    retried = wait_for(lambda: (entry := wait_for_outcome(module_api, setup.hook_id, delivery["id"]))
                       and entry["outcome"] == "processed" and entry)
    assert "attempt 2" in retried["reason"]
