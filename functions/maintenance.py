"""Timer-triggered housekeeping: delivery bodies are kept only for the configured time."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._deps import services

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule="0 17 * * * *", run_on_startup=False)
def purge_delivery_bodies(timer: func.TimerRequest) -> None:
    purged = services().deliveries.purge_expired_bodies()
    logger.info("Purged %s expired delivery bodies", purged)
