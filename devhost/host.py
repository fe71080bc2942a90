"""Run a v2 Python function app locally without Azure Functions Core Tools.

    AzureWebJobsStorage="$(connection string)" python -m devhost.host --app function_app:app \\
        --host-json host.json --port 7071 [--keys-file keys.json]

`LocalFunctionsHost` indexes the app once with `FunctionApp.get_functions()`, as the Python
worker does. It raises `HostStartError` instead of starting when function names repeat, a
function has no trigger or several, a trigger or binding type is unsupported, or the parameters
do not match the binding names. Then it runs:

- HTTP triggers on a threaded HTTP server under host.json `extensions.http.routePrefix`, with
  route templates and constraints, method checks (404, 405 with `Allow`), and the auth levels
  ANONYMOUS, FUNCTION and ADMIN (key in `x-functions-key` or the `code` query parameter, 401
  otherwise). A function that raises gets a 500 with an empty body.
- Queue triggers, polling Azure Queue Storage with `QueueClient` and honouring host.json
  `extensions.queues` (batchSize, maxDequeueCount with a `<queue>-poison` queue,
  visibilityTimeout, maxPollingInterval, messageEncoding).
- Queue output bindings (`func.Out[...]` arguments and `$return`), sent after the function
  returns, with the same message encoding.
- Timer triggers on their six-field NCRONTAB schedule in UTC, and on demand with `run_timer`.

Each invocation is logged on the `devhost.host` logger as `Executing 'Functions.<name>' ...` and
`Executed 'Functions.<name>' (Succeeded|Failed, Id=..., Duration=...ms)`. Request headers and
bodies are never logged.

Not emulated:
- scale-out, several instances, and the singleton lock of timer triggers across instances;
- binding types other than HTTP trigger/output, queue trigger/output and timer trigger
  (blob, table, Service Bus, Event Grid, Durable Functions and the rest are rejected at start);
- host.json retry policies, `functionTimeout`, `newBatchThreshold`, HTTP `maxConcurrentRequests`,
  `maxOutstandingRequests` and `dynamicThrottlesEnabled`, logging settings and sampling;
- renewing the visibility of a queue message while a long invocation runs (a message is hidden
  for 10 minutes), and the runtime's queue poll jitter;
- identity-based connections (`<connection>__queueServiceUri`): connection strings only;
- the admin API (`/admin/...`), the host's key management API, the default landing page,
  proxies, warm-up and `WEBSITE_TIME_ZONE` (timers run in UTC);
- timer schedule monitoring (`useMonitor`): a past-due run after a restart is not detected;
- type checks of function parameter annotations, and a thread pool for sync functions (a sync
  HTTP function runs on its connection's thread, a queue function on the listener's pool);
- Application Insights, distributed tracing (`context.trace_context` is None) and retry
  context (`context.retry_context` is None).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import azure.functions as func

from devhost.functions_host import HostStartError, InvocationResult, LocalFunctionsHost
from shared.errors import StackhookError

__all__ = ["HostStartError", "InvocationResult", "LocalFunctionsHost", "load_app", "main"]

logger = logging.getLogger("devhost.host")


def load_app(reference: str) -> func.FunctionApp:
    """Import `module:attribute` and return the FunctionApp it names."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise HostStartError(f"--app {reference!r} is not of the form module:attribute, such as function_app:app.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise HostStartError(f"Cannot import the module {module_name!r} named by --app: {error}. Run from the "
                             "directory that contains it.") from error
    except StackhookError as error:
        # The app reads its settings while it is imported; a missing one is a start-up error, as
        # the Functions runtime reports it when indexing fails.
        raise HostStartError(f"{module_name} did not load: {error}") from error
    app = getattr(module, attribute, None)
    if not isinstance(app, func.FunctionApp):
        raise HostStartError(f"{reference} is {type(app).__name__}, not an azure.functions.FunctionApp.")
    return app


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost.host",
                                     description="Run a v2 Python function app locally (HTTP, queue, timer).")
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--host-json", type=Path, default=Path("host.json"), help="path of host.json")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port on the bind address (0 picks one)")
    parser.add_argument("--bind", default="127.0.0.1", help="address the HTTP server listens on")
    parser.add_argument("--keys-file", type=Path, help="JSON file with masterKey, functionKeys and functions")
    parser.add_argument("--queue-api-version", help="storage API version the queue clients send")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the host until SIGINT or SIGTERM and return the process exit code."""
    options = _arguments(argv)
    # HTTP requests share the interpreter with queue listeners and processors. With the default
    # 5 ms switch interval a request waiting on I/O can wait 5 ms for each hand-over of the GIL.
    sys.setswitchinterval(0.0005)
    logging.basicConfig(level=options.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The Azure SDK logs every storage request at INFO, so the queue polls would drown the invocations.
    logging.getLogger("azure").setLevel(max(logging.WARNING, logging.getLevelName(options.log_level)))
    connection = os.environ.get("AzureWebJobsStorage")
    if not connection:
        logger.error("AzureWebJobsStorage is not set. Set it to the storage connection string (for Azurite, "
                     "the one `python -m devhost.azurite` prints).")
        return 2
    sys.path.insert(0, os.getcwd())
    stopping = threading.Event()

    def request_stop(signal_number: int, frame: FrameType | None) -> None:
        logger.info("Received signal %s, stopping", signal_number)
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        host = LocalFunctionsHost(load_app(options.app), host_json=options.host_json,
                                  storage_connection_string=connection, port=options.port, bind=options.bind,
                                  keys_file=options.keys_file, queue_api_version=options.queue_api_version)
        host.start()
    except HostStartError as error:
        logger.error("The host did not start: %s", error)
        return 1
    try:
        stopping.wait()
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
