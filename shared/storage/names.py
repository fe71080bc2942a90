"""Names of the tables, queues and Key Vault secrets the service uses."""

from __future__ import annotations

SPACES_TABLE = "Spaces"
ROLE_BINDINGS_TABLE = "RoleBindings"
INTEGRATIONS_TABLE = "Integrations"
DELIVERIES_TABLE = "Deliveries"
PULL_REQUESTS_TABLE = "PullRequests"
STACKS_TABLE = "Stacks"
STACK_ROUTES_TABLE = "StackRoutes"

# One queue per handled event type, so a slow or failing processor of one kind never delays
# the others. Queue names: 3-63 lowercase letters, digits and hyphens.
EVENT_QUEUES: dict[str, str] = {
    "git.push": "events-git-push",
    "git.pullrequest.created": "events-pr-created",
    "git.pullrequest.merged": "events-pr-merged",
    "git.pullrequest.updated": "events-pr-updated",
    "ms.vss-code.git-pullrequest-comment-event": "events-pr-commented",
}
CONNECTION_TEST_QUEUE = "connection-tests"


def pat_secret_name(integration_id: str) -> str:
    return f"integration-{integration_id}-pat"


def webhook_secret_name(integration_id: str) -> str:
    return f"integration-{integration_id}-webhook-secret"


RUNS_TABLE = "Runs"
MODULE_VERSIONS_TABLE = "ModuleVersions"
# New runs for the workers that execute them, state changes reported by those workers, and the
# commit and pull request statuses to post back to Azure DevOps (see docs/runs.md).
RUNS_QUEUE = "runs"
RUN_UPDATES_QUEUE = "run-updates"
STATUS_POSTS_QUEUE = "status-posts"

# Pull request comment commands: one row per handled comment (with its reply, for retries), the
# stack locks that pull requests hold, and replies whose first post failed (see
# shared/storage/commands.py).
COMMAND_COMMENTS_TABLE = "CommandComments"
STACK_LOCKS_TABLE = "StackLocks"
COMMAND_REPLIES_QUEUE = "command-replies"
