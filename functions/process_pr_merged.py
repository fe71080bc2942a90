"""Queue-triggered processor of `git.pullrequest.merged` deliveries."""

import azure.functions as func

from functions._events import process_queued_delivery
from shared.storage.names import EVENT_QUEUES

bp = func.Blueprint()


@bp.queue_trigger(arg_name="message", queue_name=EVENT_QUEUES["git.pullrequest.merged"],
                  connection="AzureWebJobsStorage")
def process_pr_merged(message: func.QueueMessage) -> None:
    process_queued_delivery(message)
