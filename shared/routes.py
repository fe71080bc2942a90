"""HTTP routes of the app, relative to the `api` route prefix in host.json.

Deployment checks compare these with the paths App Service Authentication leaves open, so keep
the anonymous machine-facing routes (webhooks, health) here.
"""

ROUTE_PREFIX = "api"
HEALTH_ROUTE = "health"
WEBHOOK_ROUTE = "webhooks/azure-devops/{integration}"

# Paths that App Service Authentication must leave to the app: Azure DevOps authenticates with
# the webhook secret, and health probes carry no identity.
UNAUTHENTICATED_PATHS = (f"/{ROUTE_PREFIX}/{HEALTH_ROUTE}", f"/{ROUTE_PREFIX}/webhooks/*")
