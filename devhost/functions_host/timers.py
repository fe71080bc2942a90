"""Timer triggers: one thread per timer function fires it on its NCRONTAB schedule (UTC)."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from azure.functions.timer import TimerRequest

from devhost.functions_host.indexing import IndexedFunction
from devhost.functions_host.invocation import InvocationResult, Invoker

logger = logging.getLogger(__name__)

# A run that starts this much later than its scheduled time is reported as past due.
_PAST_DUE_AFTER = dt.timedelta(seconds=1)
ON_DEMAND_REASON = "This function was programmatically called via the host APIs."


def _timestamp(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class TimerRunner:
    """Runs one timer-triggered function on schedule and on demand, never two runs at once."""

    def __init__(self, function: IndexedFunction, invoker: Invoker, stopping: threading.Event) -> None:
        assert function.timer is not None
        self.function = function
        self._schedule = function.timer.schedule
        self._invoker = invoker
        self._stopping = stopping
        self._running = threading.Lock()
        self._last: dt.datetime | None = None
        self._thread = threading.Thread(target=self._loop, name=f"timer-{function.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def run(self, reason: str = ON_DEMAND_REASON, past_due: bool = False) -> InvocationResult:
        """Invoke the function now, after any run in progress has finished."""
        now = dt.datetime.now(dt.UTC)
        request = TimerRequest(
            past_due=past_due,
            schedule_status={"Last": _timestamp(self._last), "Next": _timestamp(self._schedule.next_after(now)),
                             "LastUpdated": _timestamp(now)},
            schedule={"AdjustForDST": True})
        with self._running:
            self._last = now
            return self._invoker.invoke(self.function, reason, request)

    def _loop(self) -> None:
        assert self.function.timer is not None
        if self.function.timer.run_on_startup:
            self.run()
        due = self._schedule.next_after(dt.datetime.now(dt.UTC))
        logger.info("Timer function %s: next run at %s", self.function.name, due.isoformat())
        while not self._stopping.wait(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds())):
            now = dt.datetime.now(dt.UTC)
            if now < due:
                continue
            self.run(reason=f"Timer fired at {due.isoformat()}", past_due=now - due > _PAST_DUE_AFTER)
            due = self._schedule.next_after(max(due, dt.datetime.now(dt.UTC)))
