"""What the five event processors share: read the message, process, record failures."""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

import azure.functions as func

from functions._deps import services
from shared.errors import ValidationFailed
from shared.services.processing import QueuedDelivery

logger = logging.getLogger(__name__)
_HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"


@cache
def max_dequeue_count() -> int:
    """Return host.json's `extensions.queues.maxDequeueCount` (the runtime's default is 5)."""
    settings = json.loads(_HOST_JSON.read_text(encoding="utf-8"))
    return int(settings.get("extensions", {}).get("queues", {}).get("maxDequeueCount", 5))


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
        # Record the attempt on the delivery, then re-raise so that the queue retries the message.
        processor.record_failure(queued, attempt, error, final=attempt >= max_dequeue_count())
        raise
