"""The shared body of the five event processors: read the message, process it, record failures."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._deps import services
from shared.errors import ValidationFailed
from shared.services.processing import QueuedDelivery

logger = logging.getLogger(__name__)


def process_queued_delivery(message: func.QueueMessage) -> None:
    try:
        queued = QueuedDelivery.from_message(message.get_body())
    except ValidationFailed as error:
        logger.error("Dropped queue message %s: %s", message.id, error)
        return
    attempt = message.dequeue_count or 1
    processor = services().processor
    try:
        processor.process(queued, attempt)
    except Exception as error:
        # Record the attempt on the delivery, then re-raise so that the queue retries the message
        # and, after host.json's maxDequeueCount attempts, moves it to the poison queue.
        processor.record_failure(queued, attempt, error)
        raise
