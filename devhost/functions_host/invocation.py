"""Call a user function with its bindings and log the invocation like the Functions runtime does."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import azure.functions as func

from devhost.functions_host.indexing import IndexedFunction, QueueOutputSpec

# Invocation lines go to the `devhost.host` logger, the host's entry point, so one logger name
# shows every invocation.
logger = logging.getLogger("devhost.host")

T = TypeVar("T")


class OutValue(func.Out[T], Generic[T]):
    """The host's `func.Out`, which stores the value a function sets on an output binding."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


class InvocationContext(func.Context):
    """The `context` argument a function may declare."""

    def __init__(self, invocation_id: str, function_name: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._thread_local = threading.local

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local

    # NOTE: no distributed tracing or retry policy locally, so these two are None.
    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


@dataclass(frozen=True)
class InvocationResult:
    """Outcome of one invocation; `error` is the exception the function (or an output) raised."""

    invocation_id: str
    succeeded: bool
    duration_ms: int
    return_value: Any = None
    error: BaseException | None = None


OutputSender = Callable[[QueueOutputSpec, list[str]], None]


class AsyncLoop:
    """One event loop in a background thread; async functions run on it, as in the Python worker."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="functions-async-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


def output_messages(value: Any) -> list[Any]:
    """Flatten what a function set on a queue output into single messages (str, bytes or QueueMessage)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [item for item in value if item is not None]
    return [value]


class Invoker:
    """Runs functions: builds the arguments, awaits async functions, sends queue outputs on success."""

    def __init__(self, loop: AsyncLoop, send_output: OutputSender, encode: Callable[[Any], str]) -> None:
        self._loop = loop
        self._send_output = send_output
        self._encode = encode

    def invoke(self, function: IndexedFunction, reason: str, trigger_value: Any,
               invocation_id: str | None = None) -> InvocationResult:
        """Invoke `function` with `trigger_value` as its trigger argument.

        An exception of the function or of sending its queue outputs is logged and returned in the
        result, not raised.
        """
        invocation_id = invocation_id or str(uuid.uuid4())
        logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, reason, invocation_id)
        started = time.perf_counter()
        outputs = {spec.argument: OutValue[Any]() for spec in function.queue_outputs
                   if spec.argument != "$return"}
        arguments: dict[str, Any] = {function.trigger_argument: trigger_value, **outputs}
        if function.context_argument:
            arguments[function.context_argument] = InvocationContext(invocation_id, function.name)
        try:
            if function.is_async:
                value = self._loop.run(function.user_function(**arguments))
            else:
                value = function.user_function(**arguments)
            self._flush_outputs(function, outputs, value)
        except Exception as error:  # the function's own failure: logged here and returned to the caller
            duration = round((time.perf_counter() - started) * 1000)
            logger.error("Executed 'Functions.%s' (Failed, Id=%s, Duration=%sms)", function.name, invocation_id,
                         duration, exc_info=error)
            return InvocationResult(invocation_id, False, duration, error=error)
        duration = round((time.perf_counter() - started) * 1000)
        logger.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%sms)", function.name, invocation_id,
                    duration)
        return InvocationResult(invocation_id, True, duration, return_value=value)

    def _flush_outputs(self, function: IndexedFunction, outputs: Mapping[str, OutValue[Any]], value: Any) -> None:
        for spec in function.queue_outputs:
            produced = value if spec.argument == "$return" else outputs[spec.argument].get()
            messages = [self._encode(item) for item in output_messages(produced)]
            if messages:
                self._send_output(spec, messages)
