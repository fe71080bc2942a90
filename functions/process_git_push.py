"""Queue-triggered processor of `git.push` deliveries."""

import azure.functions as func

from functions._events import process_queued_delivery
from shared.storage.names import EVENT_QUEUES

bp = func.Blueprint()


@bp.queue_trigger(arg_name="message", queue_name=EVENT_QUEUES["git.push"],
                  connection="AzureWebJobsStorage")
def process_git_push(message: func.QueueMessage) -> None:
    process_queued_delivery(message)
