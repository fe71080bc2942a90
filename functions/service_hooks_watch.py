"""Timer-triggered check of the installed service-hook subscriptions of every integration.

The schedule comes from the settings object (STACKHOOK_SERVICE_HOOK_WATCH_SCHEDULE, default every
15 minutes), read when the app is indexed. A `%STACKHOOK_SERVICE_HOOK_WATCH_SCHEDULE%` binding
expression would instead need the variable set in every environment, because the Functions host
resolves it without the settings default.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions._deps import services

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule=services().settings.service_hook_watch_schedule, run_on_startup=False)
def watch_service_hooks(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logger.info("The service-hook check starts late")
    services().service_hooks.watch_all()
