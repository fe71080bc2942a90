"""Queue-triggered posts of commit and pull request statuses back to Azure DevOps."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._deps import services
from shared.errors import ValidationFailed
from shared.services.runs import StatusPostMessage, parse_message
from shared.storage.names import STATUS_POSTS_QUEUE

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="message", queue_name=STATUS_POSTS_QUEUE, connection="AzureWebJobsStorage")
def post_run_statuses(message: func.QueueMessage) -> None:
    try:
        post = parse_message(StatusPostMessage, message.get_body())
    except ValidationFailed as error:
        logger.error("Dropped status post %s: %s", message.id, error)
        return
    # The service records Azure DevOps failures on the run and queues a retry with a delay itself.
    # Storage failures propagate, so the queue retries the message.
    result = services().runs.post_statuses(post)
    if result.outcome == "run_missing":
        logger.warning("Dropped status post %s: run %s of %s %s does not exist", message.id, post.run_id,
                       post.stack_kind, post.stack_id)
