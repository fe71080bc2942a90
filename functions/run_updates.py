"""Queue-triggered state changes of runs, as the workers that execute them report them."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._deps import services
from shared.errors import ValidationFailed
from shared.services.runs import RunUpdateMessage, parse_message
from shared.storage.names import RUN_UPDATES_QUEUE

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="message", queue_name=RUN_UPDATES_QUEUE, connection="AzureWebJobsStorage")
def apply_run_update(message: func.QueueMessage) -> None:
    try:
        update = parse_message(RunUpdateMessage, message.get_body())
    except ValidationFailed as error:
        logger.error("Dropped run update %s: %s", message.id, error)
        return
    # Failures other than a dropped update propagate, so the queue retries the message and moves
    # it to the poison queue after host.json's maxDequeueCount attempts.
    result = services().runs.apply_update(update)
    if result.outcome == "run_missing":
        logger.warning("Dropped run update %s: %s", message.id, result.reason)
