"""The stackhook function app: it registers the blueprints and nothing else.

Settings are read here, at start-up, so that a missing or invalid setting stops the app with a
message naming it instead of failing on the first request.
"""

import azure.functions as func

from functions import connection_tests, health, integrations_api, maintenance, openapi, spaces_api, webhooks
from functions._deps import services

services()

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (health.bp, openapi.bp, spaces_api.bp, integrations_api.bp, webhooks.bp, connection_tests.bp,
                  maintenance.bp):
    app.register_functions(blueprint)
