"""Queue-triggered processor of `ms.vss-code.git-pullrequest-comment-event` deliveries."""

import azure.functions as func

from functions._events import process_queued_delivery
from shared.storage.names import EVENT_QUEUES

bp = func.Blueprint()


@bp.queue_trigger(arg_name="message", queue_name=EVENT_QUEUES["ms.vss-code.git-pullrequest-comment-event"],
                  connection="AzureWebJobsStorage")
def process_pr_commented(message: func.QueueMessage) -> None:
    process_queued_delivery(message)
