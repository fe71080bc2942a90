"""`LocalFunctionsHost`: runs an indexed function app's HTTP, queue and timer triggers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from devhost.functions_host.config import HostConfig
from devhost.functions_host.errors import HostStartError
from devhost.functions_host.http import ALL_METHODS, FunctionsHttpServer, RouteTable
from devhost.functions_host.indexing import IndexedFunction, QueueOutputSpec, index_app
from devhost.functions_host.invocation import AsyncLoop, InvocationResult, Invoker
from devhost.functions_host.keys import HostKeys
from devhost.functions_host.queues import (
    Activity,
    ClientFactory,
    QueueListener,
    connection_string,
    encode_message,
)
from devhost.functions_host.timers import TimerRunner

logger = logging.getLogger("devhost.host")


class LocalFunctionsHost:
    """Run a v2 `func.FunctionApp` locally, with HTTP on `bind:port` and queues on Azure Queue Storage.

    The app is indexed in the constructor, which raises `HostStartError` when it would not load.
    `port=0` picks a free port, and `base_url` returns the one in use after `start()`.
    """

    def __init__(self, app: func.FunctionApp, *, host_json: Path, storage_connection_string: str,
                 port: int = 7071, bind: str = "127.0.0.1", function_keys: Mapping[str, Any] | None = None,
                 keys_file: Path | None = None, queue_api_version: str | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self.config = HostConfig.from_file(host_json)
        self.keys = HostKeys.load(function_keys, keys_file)
        self.functions = index_app(app, self._environ)
        self._storage_connection_string = storage_connection_string
        self._address = (bind, port)
        self._clients = ClientFactory(queue_api_version)
        self._activity = Activity()
        self._stopping = threading.Event()
        self._server: FunctionsHttpServer | None = None
        self._server_thread: threading.Thread | None = None
        self._loop: AsyncLoop | None = None
        self._listeners: list[QueueListener] = []
        self._timers: dict[str, TimerRunner] = {}
        # Resolved here so a missing connection setting stops the host before it starts.
        self._output_connections = {spec: self._connection(spec.connection, function.name)
                                    for function in self.functions for spec in function.queue_outputs}

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running server (without the route prefix)."""
        host, port = self._server.server_address[:2] if self._server else self._address
        return f"http://{host}:{port}"

    def _connection(self, name: str, function_name: str) -> str:
        return connection_string(name, self._storage_connection_string, self._environ, function_name)

    def _send_output(self, spec: QueueOutputSpec, messages: list[str]) -> None:
        client = self._clients.get(self._output_connections[spec], spec.queue_name)
        for message in messages:
            client.send_message(message)

    def _encode(self, value: Any) -> str:
        return encode_message(value, self.config.queues.message_encoding)

    def start(self) -> None:
        """Create the queues, start the HTTP server, the queue listeners and the timers."""
        if self._server is not None:
            raise HostStartError("The host is already running. Call stop() before starting it again.")
        self._stopping.clear()
        self._loop = AsyncLoop()
        invoker = Invoker(self._loop, self._send_output, self._encode)
        try:
            for function in self.functions:
                for spec in function.queue_outputs:
                    self._clients.get(self._output_connections[spec], spec.queue_name)
                if function.queue is not None:
                    connection = self._connection(function.queue.connection, function.name)
                    client = self._clients.get(connection, function.queue.queue_name)
                    poison = self._clients.get(connection, f"{function.queue.queue_name}-poison")
                    self._listeners.append(QueueListener(function, client, poison, self.config.queues, invoker,
                                                         self._activity, self._stopping))
                if function.timer is not None:
                    self._timers[function.name.lower()] = TimerRunner(function, invoker, self._stopping)
        except AzureError as error:
            self._loop.close()
            self._loop, self._listeners, self._timers = None, [], {}
            raise HostStartError(f"Cannot create the queues in storage: {error.__class__.__name__}: {error}. "
                                 "Check that Azurite (or the storage account) is running.") from error

        try:
            self._server = FunctionsHttpServer(self._address, RouteTable(self.functions,
                                               self.config.http.route_prefix), self.keys, invoker)
        except OSError as error:
            self._loop.close()
            self._loop, self._listeners, self._timers = None, [], {}
            raise HostStartError(f"Cannot listen on {self._address[0]}:{self._address[1]}: {error}. "
                                 "Stop the process using the port or pass another --port.") from error

        self._server_thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                               name="functions-http", daemon=True)
        self._server_thread.start()
        for listener in self._listeners:
            listener.start()
        for runner in self._timers.values():
            runner.start()
        self._log_functions()

    def _log_functions(self) -> None:
        prefix = f"/{self.config.http.route_prefix}" if self.config.http.route_prefix else ""
        logger.info("Host started on %s with %s functions", self.base_url, len(self.functions))
        if self.keys.is_empty() and any(f.http and f.http.auth_level != "anonymous" for f in self.functions):
            logger.warning("No function keys or master key are configured, so every function with auth level "
                           "FUNCTION or ADMIN answers 401. Pass --keys-file or function_keys.")
        for function in self.functions:
            if function.http is not None:
                methods = ",".join(sorted(function.http.methods or ALL_METHODS))
                logger.info("  %s: [%s] %s%s/%s", function.name, methods, self.base_url, prefix,
                            function.http.route.template.strip("/"))
            elif function.queue is not None:
                logger.info("  %s: queueTrigger on %s", function.name, function.queue.queue_name)
            elif function.timer is not None:
                logger.info("  %s: timerTrigger '%s'", function.name, function.timer.schedule.expression)

    def stop(self) -> None:
        """Stop accepting requests, let running invocations finish, and release the clients."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
        for listener in self._listeners:
            listener.join(timeout=30)
        for runner in self._timers.values():
            runner.join(timeout=30)
        if self._loop is not None:
            self._loop.close()
        self._clients.close()
        self._server = self._server_thread = self._loop = None
        self._listeners, self._timers = [], {}
        logger.info("Host stopped")

    def function(self, name: str) -> IndexedFunction:
        """Return the indexed function called `name` (case-insensitive)."""
        for function in self.functions:
            if function.name.lower() == name.lower():
                return function
        raise KeyError(f"No function named {name!r}; the app has {[f.name for f in self.functions]}.")

    def run_timer(self, function_name: str) -> InvocationResult:
        """Invoke a timer-triggered function now and return the outcome; the host must be running."""
        runner = self._timers.get(function_name.lower())
        if runner is None:
            raise KeyError(f"No running timer function named {function_name!r}; timer functions: "
                           f"{[f.name for f in self.functions if f.timer]}. Call start() first.")
        return runner.run()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every queue the host polls is empty and no queue invocation runs.

        Messages waiting for a retry count as not empty. Raise TimeoutError naming the queues
        that still hold messages.
        """
        deadline = time.monotonic() + timeout
        idle_checks = 0
        while True:
            active_before = self._activity.count
            pending = {listener.queue_name: listener.client.get_queue_properties().approximate_message_count
                       for listener in self._listeners}
            busy = {name: count for name, count in pending.items() if count}
            # An invocation can send an output message to a queue that was already read as empty,
            # so the host counts as idle only after two quiet checks in a row.
            idle_checks = idle_checks + 1 if not busy and active_before == 0 and self._activity.count == 0 else 0
            if idle_checks >= 2:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"The host was not idle after {timeout} s: queues with messages {busy}, "
                                   f"{self._activity.count} listeners receiving or processing.")
            time.sleep(0.05)

    def __enter__(self) -> LocalFunctionsHost:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
