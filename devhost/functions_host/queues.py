"""Queue triggers and queue outputs over Azure Queue Storage (Azurite locally)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.storage.queue import QueueClient, QueueMessage

from devhost.functions_host.config import QueueOptions
from devhost.functions_host.errors import HostStartError
from devhost.functions_host.indexing import DEFAULT_CONNECTION, IndexedFunction
from devhost.functions_host.invocation import Invoker

logger = logging.getLogger(__name__)

# How long a received message stays invisible while the function runs. The runtime renews it
# while a function is still running.
# NOTE: this host does not renew it, so an invocation longer than this can run twice.
_PROCESSING_VISIBILITY_SECONDS = 600
_MIN_POLLING_INTERVAL = 0.1


def encode_message(value: Any, encoding: str) -> str:
    """Encode one output value (str, bytes or QueueMessage) as queue message text."""
    if isinstance(value, func.QueueMessage):
        value = value.get_body()
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes | bytearray):
        data = bytes(value)
    else:
        raise TypeError(f"A queue output got a {type(value).__name__}. Set a str, bytes, QueueMessage or a "
                        "list of them.")
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8")


def decode_message(content: str, encoding: str) -> bytes:
    """Decode queue message text to the body bytes, raising ValueError when base64 is expected but invalid."""
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error as error:
            raise ValueError("the message is not valid base64") from error
    return content.encode("utf-8")


def connection_string(name: str, storage_connection_string: str, environ: Mapping[str, str],
                      function_name: str) -> str:
    """Return the connection string of a binding's `connection` setting."""
    if name == DEFAULT_CONNECTION:
        return storage_connection_string
    for candidate in (name, f"AzureWebJobs{name}"):
        value = environ.get(candidate)
        if value:
            return value
    raise HostStartError(f"Function {function_name!r} uses the connection {name!r}, but neither {name} nor "
                         f"AzureWebJobs{name} is set. Set one of them to a storage connection string.")


class ClientFactory:
    """Creates one `QueueClient` per queue and creates each queue once."""

    def __init__(self, api_version: str | None) -> None:
        self._api_version = api_version
        self._clients: dict[tuple[str, str], QueueClient] = {}
        self._lock = threading.Lock()

    def get(self, connection: str, queue_name: str) -> QueueClient:
        key = (connection, queue_name)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                options = {"api_version": self._api_version} if self._api_version else {}
                client = QueueClient.from_connection_string(connection, queue_name, **options)
                with contextlib.suppress(ResourceExistsError):
                    client.create_queue()
                self._clients[key] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


class Activity:
    """Counts the listeners that are receiving or processing messages."""

    def __init__(self) -> None:
        self._busy = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1

    @property
    def count(self) -> int:
        with self._lock:
            return self._busy


class QueueListener:
    """Polls one queue for one queue-triggered function, in its own thread."""

    def __init__(self, function: IndexedFunction, client: QueueClient, poison: QueueClient,
                 options: QueueOptions, invoker: Invoker, activity: Activity, stopping: threading.Event) -> None:
        self.function = function
        self.client = client
        self._poison = poison
        self._options = options
        self._invoker = invoker
        self._activity = activity
        self._stopping = stopping
        self._workers = ThreadPoolExecutor(max_workers=options.batch_size,
                                           thread_name_prefix=f"queue-{function.name}")
        self._thread = threading.Thread(target=self._poll, name=f"queue-listener-{function.name}", daemon=True)

    @property
    def queue_name(self) -> str:
        return self.client.queue_name

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._workers.shutdown(wait=True, cancel_futures=True)

    def _poll(self) -> None:
        interval = _MIN_POLLING_INTERVAL
        while not self._stopping.is_set():
            with self._activity.busy():
                try:
                    messages = list(self.client.receive_messages(
                        messages_per_page=self._options.batch_size, max_messages=self._options.batch_size,
                        visibility_timeout=_PROCESSING_VISIBILITY_SECONDS))
                except AzureError as error:
                    logger.warning("Receiving from queue %s failed, retrying in %s s: %s", self.queue_name,
                                   interval, error)
                    messages = []
                if messages:
                    list(self._workers.map(self._process, messages))
            if messages:
                interval = _MIN_POLLING_INTERVAL
                continue
            self._stopping.wait(interval)
            interval = min(interval * 2, self._options.max_polling_interval)

    def _process(self, message: QueueMessage) -> None:
        try:
            self._handle(message)
        except AzureError as error:
            # The message becomes visible again when its processing visibility timeout ends.
            logger.error("Queue %s: settling message %s failed: %s", self.queue_name, message.id, error)

    def _handle(self, message: QueueMessage) -> None:
        dequeue_count = message.dequeue_count or 1
        if dequeue_count > self._options.max_dequeue_count:
            self._move_to_poison(message, "it was dequeued more often than maxDequeueCount")
            return
        try:
            body = decode_message(message.content, self._options.message_encoding)
        except ValueError:
            logger.error("Queue %s: message %s is not valid base64, but host.json sets messageEncoding "
                         "to base64; moving it to the poison queue", self.queue_name, message.id)
            self._move_to_poison(message, "it could not be decoded")
            return
        trigger = TriggerMessage(
            id=message.id, body=body, dequeue_count=dequeue_count, expiration_time=message.expires_on,
            insertion_time=message.inserted_on, time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt)
        result = self._invoker.invoke(self.function, f"New queue message detected on '{self.queue_name}'.", trigger)
        if result.succeeded:
            self.client.delete_message(message)
        elif dequeue_count >= self._options.max_dequeue_count:
            self._move_to_poison(message, f"the function failed {dequeue_count} times")
        else:
            self.client.update_message(message, visibility_timeout=math.ceil(self._options.visibility_timeout))

    def _move_to_poison(self, message: QueueMessage, reason: str) -> None:
        self._poison.send_message(message.content)
        self.client.delete_message(message)
        logger.warning("Moved message %s from queue %s to %s because %s", message.id, self.queue_name,
                       self._poison.queue_name, reason)
