"""Queue-triggered processor of `git.pullrequest.created` deliveries."""

import azure.functions as func

from functions._events import process_queued_delivery
from shared.storage.names import EVENT_QUEUES

bp = func.Blueprint()


@bp.queue_trigger(arg_name="message", queue_name=EVENT_QUEUES["git.pullrequest.created"],
                  connection="AzureWebJobsStorage")
def process_pr_created(message: func.QueueMessage) -> None:
    process_queued_delivery(message)
