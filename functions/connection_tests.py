"""Queue-triggered connection tests, so that saving an integration never waits for Azure DevOps."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from functions._deps import services
from shared.errors import NotFound
from shared.storage.names import CONNECTION_TEST_QUEUE

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="message", queue_name=CONNECTION_TEST_QUEUE, connection="AzureWebJobsStorage")
def run_connection_test(message: func.QueueMessage) -> None:
    request = json.loads(message.get_body().decode("utf-8"))
    integration_id = str(request.get("integrationId", ""))
    try:
        services().integrations.run_connection_test(integration_id)
    except NotFound:
        logger.info("Skipped the connection test of integration %s: it was deleted", integration_id)
