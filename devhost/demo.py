"""`make demo`: the main loop on real input, from service hooks to runs and statuses.

Starts the service with its local dependencies and the fake Azure DevOps server, in memory on free
ports of 127.0.0.1. Registers a space, an integration and two stacks on the sample repository, then
replays a push and a pull request series from `tests/payloads/` through the real webhook endpoint.
Plays a worker that finishes the tracked runs, and prints the deliveries, the runs and the statuses
Azure DevOps received. Ends with a service-hook install and a subscription put on probation.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.stack import REPOSITORY_ROOT, LocalStack, StackOptions
from shared.storage.names import RUN_UPDATES_QUEUE

PAYLOADS = REPOSITORY_ROOT / "tests" / "payloads"
ADMIN = {"X-MS-CLIENT-PRINCIPAL-NAME": "local-admin", "X-MS-CLIENT-PRINCIPAL-ID": "local-admin"}
SERIES = (
    ("git.push", "Alex pushes two commits to main"),
    ("git.push.branch-created", "Alex creates the branch feature/retry"),
    ("git.pullrequest.created", "Alex opens pull request 57 into main"),
    ("git.pullrequest.updated.vote", "a reviewer approves (a vote starts nothing)"),
    ("git.pullrequest.updated.source-pushed", "Alex pushes a second commit to the pull request"),
    ("git.pullrequest.merged.succeeded", "Azure DevOps recomputes the merge"),
    ("git.pullrequest.updated.completed", "the pull request is completed"),
)


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def call(client: httpx.Client, method: str, url: str, **options: Any) -> Any:
    response = client.request(method, url, **options)
    if response.status_code >= 400:
        raise SystemExit(f"{method} {url} returned {response.status_code}: {response.text}")
    return response.json() if response.content else None


def replay(stack: LocalStack, client: httpx.Client, endpoint: str, secret: str) -> list[tuple[str, str]]:
    """Post each payload and wait until it is processed, as events a few seconds apart would be."""
    delivered = []
    for name, story in SERIES:
        if name == "git.pullrequest.updated.completed":
            assert stack.fake_ado is not None
            stack.fake_ado.set_pull_request_status(57, "completed")  # Azure DevOps completes it first
        document = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
        document["id"] = str(uuid.uuid4())  # a fresh event id, so a second demo run is not a duplicate
        response = client.post(endpoint, content=json.dumps(document), auth=("", secret),
                               headers={"Content-Type": "application/json; charset=utf-8"})
        answer = response.json()
        print(f"  {name:<42} {response.status_code} {answer.get('status')}   ({story})")
        delivered.append((name, answer.get("deliveryId", "")))
        stack.wait_for_processing(timeout=60)
    return delivered


def play_worker(stack: LocalStack, client: httpx.Client, stacks: list[str]) -> None:
    """Report planning and finished for each queued tracked run, as a worker would."""
    assert stack.azurite is not None
    queue = QueueClient.from_connection_string(stack.azurite.connection_string, RUN_UPDATES_QUEUE,
                                               message_encode_policy=TextBase64EncodePolicy())
    for stack_id in stacks:
        for run in call(client, "GET", f"{stack.base_url}/api/runs/stack/{stack_id}", headers=ADMIN)["runs"]:
            if run["runType"] != "tracked" or run["state"] != "queued":
                continue
            for state in ("planning", "finished"):
                queue.send_message(json.dumps({"runId": run["id"], "stackKind": "stack", "stackId": stack_id,
                                               "state": state, "message": "demo worker"}))
                print(f"  worker: run {run['id']} of stack {stack_id} -> {state}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log_file = REPOSITORY_ROOT / ".local" / "demo-host.log"
    log_file.parent.mkdir(exist_ok=True)
    step("Starting Azurite, the local Key Vault, the fake Azure DevOps server and the Functions host")
    with LocalStack(StackOptions(host_port=0, log_file=log_file)) as stack, httpx.Client(timeout=60) as client:
        assert stack.fake_ado is not None
        api = f"{stack.base_url}/api"
        print(f"  service: {api}   fake Azure DevOps: {stack.fake_ado.base_url}   host log: {log_file}")

        step("Registering a space, an integration and two stacks on Widgets/widget-service")
        call(client, "POST", f"{api}/spaces", headers=ADMIN, json={"name": "Platform", "parentId": "root"})
        integration = call(client, "POST", f"{api}/integrations", headers=ADMIN, json={
            "name": "Demo ADO", "spaceId": "platform", "organizationUrl": stack.fake_ado.base_url,
            "personalAccessToken": stack.sample_pat, "labels": ["demo"]})
        print(f"  integration {integration['id']}: webhook endpoint {integration['webhookEndpoint']}")
        stack_ids = []
        for name, root in (("network", "stacks/network"), ("app", "stacks/app")):
            created = call(client, "POST", f"{api}/stacks", headers=ADMIN, json={
                "name": name, "spaceId": "platform", "integrationId": integration["id"],
                "repository": {"project": "Widgets", "repository": "widget-service"}, "projectRoot": root})
            stack_ids.append(created["id"])
            print(f"  stack {created['id']}: {root} on {created['repositoryName']}, tracking "
                  f"{created['trackedBranch']}")

        step("Replaying the service hooks through the webhook endpoint")
        delivered = replay(stack, client, integration["webhookEndpoint"], integration["webhookSecret"])

        step("Delivery log (newest last)")
        log = call(client, "GET", f"{api}/integrations/{integration['id']}/deliveries?pageSize=50", headers=ADMIN)
        by_id = {entry["id"]: entry for entry in log["deliveries"]}
        for name, delivery_id in delivered:
            entry = by_id.get(delivery_id, {})
            print(f"  {name:<42} {entry.get('outcome', '?'):<10} {entry.get('reason', '')}")

        step("A worker reports progress on the tracked runs")
        play_worker(stack, client, stack_ids)
        time.sleep(0.5)
        stack.wait_for_processing(timeout=120)

        step("Runs")
        for stack_id in stack_ids:
            for run in call(client, "GET", f"{api}/runs/stack/{stack_id}", headers=ADMIN)["runs"]:
                pull_request = f" PR {run['pullRequestId']} iteration {run['iterationId']}" \
                    if run.get("pullRequestId") else ""
                print(f"  {stack_id:<8} {run['runType']:<9} {run['state']:<9} {run['commit'][:8]} "
                      f"{run.get('branch') or '':<14}{pull_request}  trigger {run['trigger']}")

        step("Statuses Azure DevOps received")
        for request in stack.fake_ado.requests:
            if request.method == "POST" and request.path.endswith("/statuses") and isinstance(request.body, dict):
                target = request.path.split("/_apis/git/repositories/", 1)[-1]
                context = request.body.get("context", {})
                iteration = request.body.get("iterationId")
                print(f"  {context.get('genre')}/{context.get('name'):<16} {request.body.get('state'):<10} "
                      f"{target[target.find('/') + 1:]}" + (f" (iteration {iteration})" if iteration else ""))
        step("Installing the five service hooks in project Widgets, twice")
        hooks_url = f"{api}/integrations/{integration['id']}/service-hooks"
        for attempt in ("first", "second"):
            installed = call(client, "POST", hooks_url, headers=ADMIN, json={"project": "Widgets"})
            print(f"  {attempt} request: created {len(installed['created'])}, updated {len(installed['updated'])}, "
                  f"unchanged {len(installed['unchanged'])}")

        step("Azure DevOps puts the push subscription on probation; the watcher notices")
        push_hook = next(item for item in installed["unchanged"] if item["eventType"] == "git.push")
        stack.fake_ado.set_subscription_status(push_hook["subscriptionId"], "onProbation")
        checked = call(client, "POST", f"{hooks_url}/check", headers=ADMIN)
        for warning in checked["warnings"]:
            print(f"  warning on the integration: {warning['code']}: {warning['message']}")
        health = call(client, "GET", f"{api}/health")
        print(f"  /api/health warnings: {health['warnings']}")
    print("\nDone. The same steps by hand against `make run` are in the README.")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
