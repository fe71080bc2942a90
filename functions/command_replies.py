"""Queue-triggered retries of replies to pull request comment commands whose first post failed."""

from __future__ import annotations

import logging

import azure.functions as func
from pydantic import ValidationError

from functions._deps import services
from shared.services.commands import ReplyRetryMessage
from shared.storage.names import COMMAND_REPLIES_QUEUE

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="message", queue_name=COMMAND_REPLIES_QUEUE, connection="AzureWebJobsStorage")
def retry_command_reply(message: func.QueueMessage) -> None:
    try:
        retry = ReplyRetryMessage.model_validate_json(message.get_body())
    except ValidationError as error:
        logger.error("Dropped reply retry %s: the message is invalid: %s", message.id, error.errors()[0].get("msg"))
        return
    # The service records Azure DevOps failures on the comment row and the delivery, and queues the
    # next attempt with a delay itself. Storage failures propagate, so the queue retries the message.
    outcome = services().commands.retry_reply(retry)
    logger.info("Reply retry %s for comment %s of pull request %s (attempt %s): %s", message.id,
                retry.parent_comment_id, retry.pull_request_id, retry.attempt, outcome)
