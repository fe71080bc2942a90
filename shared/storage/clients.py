"""Table and queue clients built from settings, the same code path locally and in Azure.

Locally the connection string points at Azurite; in Azure the service URIs are used with the
app's managed identity. Azure SDK failures that mean storage was unreachable become
`DependencyUnavailable`, so the HTTP layer returns 503 and callers can retry.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from shared.errors import DependencyUnavailable, ValidationFailed
from shared.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Short timeouts and few retries: a request that waits on storage is a webhook delivery that
# Azure DevOps is waiting on, and an outage should become a 503 quickly.
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 3, "read_timeout": 5, "retry_total": 1}


@contextmanager
def storage_errors(dependency: str) -> Iterator[None]:
    """Turn transport and server failures of `dependency` into `DependencyUnavailable`.

    Client errors such as 404, 409 and 412 pass through: callers handle them as domain outcomes.
    """
    try:
        yield
    except (ServiceRequestError, ServiceResponseError, ClientAuthenticationError) as error:
        raise DependencyUnavailable(dependency, type(error).__name__) from error
    except HttpResponseError as error:
        if error.status_code is None or error.status_code >= 500 or error.status_code in (401, 403):
            raise DependencyUnavailable(dependency, f"HTTP {error.status_code}") from error
        raise
    except AzureError as error:
        raise DependencyUnavailable(dependency, type(error).__name__) from error


class StorageClients:
    """Creates table and queue clients once and makes sure their tables and queues exist."""

    def __init__(self, table_service: TableServiceClient, queue_service: QueueServiceClient) -> None:
        self._table_service = table_service
        self._queue_service = queue_service
        self._lock = threading.Lock()
        self._tables: dict[str, TableClient] = {}
        self._queues: dict[str, QueueClient] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageClients:
        queue_options = dict(_CLIENT_OPTIONS)
        if settings.storage_api_version:
            queue_options["api_version"] = settings.storage_api_version
        if settings.storage_connection_string:
            table_service = TableServiceClient.from_connection_string(
                settings.storage_connection_string, **_CLIENT_OPTIONS)
            queue_service = QueueServiceClient.from_connection_string(
                settings.storage_connection_string, **queue_options)
            return cls(table_service, queue_service)
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(managed_identity_client_id=settings.storage_client_id)
        assert settings.table_service_uri and settings.queue_service_uri  # checked by Settings
        return cls(TableServiceClient(settings.table_service_uri, credential=credential, **_CLIENT_OPTIONS),
                   QueueServiceClient(settings.queue_service_uri, credential=credential, **queue_options))

    def table(self, name: str) -> TableClient:
        """Return the client of table `name`, creating the table on first use."""
        with self._lock:
            client = self._tables.get(name)
            if client is None:
                with storage_errors("Table Storage"):
                    self._table_service.create_table_if_not_exists(name)
                client = self._table_service.get_table_client(name)
                self._tables[name] = client
            return client

    def queue(self, name: str) -> QueueClient:
        """Return the client of queue `name` (base64 messages, as the Functions runtime reads them)."""
        with self._lock:
            client = self._queues.get(name)
            if client is None:
                client = self._queue_service.get_queue_client(
                    name, message_encode_policy=TextBase64EncodePolicy())
                with storage_errors("Queue Storage"):
                    try:
                        client.create_queue()
                    except ResourceExistsError:
                        pass
                self._queues[name] = client
            return client

    def ping_tables(self) -> None:
        with storage_errors("Table Storage"):
            next(iter(self._table_service.list_tables(results_per_page=1).by_page()), None)

    def ping_queues(self) -> None:
        with storage_errors("Queue Storage"):
            next(iter(self._queue_service.list_queues(results_per_page=1).by_page()), None)


def call_storage(dependency: str, operation: Callable[[], T]) -> T:
    """Run one storage call, mapping outages to `DependencyUnavailable`."""
    with storage_errors(dependency):
        return operation()


def decode_page_token(continuation: str | None) -> dict[str, Any] | None:
    """Turn an API continuation token back into the table SDK's token; raise 400 when it is invalid."""
    if not continuation:
        return None
    try:
        token = json.loads(base64.urlsafe_b64decode(continuation.encode()))
        if not isinstance(token, dict):
            raise ValueError("not an object")
    except ValueError as error:
        raise ValidationFailed("The continuation token is invalid; use the nextContinuationToken of the previous "
                               "page.", field="continuationToken", status=400) from error
    return token


def encode_page_token(token: object) -> str | None:
    """Turn the table SDK's continuation token into an opaque string for the API (None at the end)."""
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode() if token else None
