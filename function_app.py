"""The stackhook function app: it registers the blueprints and nothing else.

Settings are read here, at start-up, so that a missing or invalid setting stops the app with a
message naming it instead of failing on the first request.
"""

import azure.functions as func

from functions import (
    command_replies,
    connection_tests,
    health,
    integrations_api,
    maintenance,
    openapi,
    process_git_push,
    process_pr_commented,
    process_pr_created,
    process_pr_merged,
    process_pr_updated,
    run_updates,
    runs_api,
    service_hooks_api,
    service_hooks_watch,
    spaces_api,
    stacks_api,
    status_posts,
    webhooks,
)
from functions._deps import services

services()

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (health.bp, openapi.bp, spaces_api.bp, integrations_api.bp, webhooks.bp, connection_tests.bp,
                  maintenance.bp, process_git_push.bp, process_pr_created.bp, process_pr_merged.bp,
                  process_pr_updated.bp, process_pr_commented.bp):
    app.register_functions(blueprint)
for blueprint in (service_hooks_api.bp, service_hooks_watch.bp):
    app.register_functions(blueprint)
app.register_functions(stacks_api.bp)
for blueprint in (runs_api.bp, run_updates.bp, status_posts.bp):
    app.register_functions(blueprint)
app.register_functions(command_replies.bp)
