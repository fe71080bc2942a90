"""Accepting service-hook deliveries: authenticate, check, record, queue.

`WebhookIngestion.accept` is everything the HTTP function does between reading the request and
writing the response. It responds fast: one table read, two single-row table writes, one queue message, and a cached
look-up of whether any stack uses the repository.
What each event means is decided later by the processors, from the stored body.

Responses, in the order they are checked:
  404  unknown or deleted integration
  401  missing or wrong Basic credentials (with `WWW-Authenticate: Basic`), or no stored secret
  413  body larger than the configured limit
  415  content type is not JSON
  400  malformed JSON (with the position) or an invalid envelope or resource (with the JSON path)
  200  ignored on purpose (unhandled event type, misconfigured subscription) or a duplicate
  202  recorded and queued
  503  Table Storage, Queue Storage or Key Vault failed; nothing was recorded as accepted
Never 410: Azure DevOps disables a subscription at once on a 410.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.ado.events import HANDLED_EVENT_TYPES, parse_envelope, parse_resource
from shared.core.events import misconfiguration
from shared.errors import AuthenticationRequired, DependencyUnavailable, RequestError, ValidationFailed
from shared.secrets import SecretStore
from shared.settings import Settings
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.deliveries import DeliveryRepository, DuplicateDelivery, NewDelivery
from shared.storage.integrations import IntegrationRecord, IntegrationRepository
from shared.storage.names import EVENT_QUEUES, webhook_secret_name

logger = logging.getLogger(__name__)

# The Table Storage SDK stores a Python int as Edm.Int32 and raises TypeError for a larger one, so a
# notification id outside that range is rejected as invalid instead of failing the write.
_NOTIFICATION_ID_RANGE = range(-(2**31), 2**31)

_IN_USE_CACHE_SECONDS = 30.0
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="stackhook", charset="UTF-8"'}


@dataclass(frozen=True)
class WebhookAnswer:
    """The response to one delivery."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def basic_password(headers: Mapping[str, str]) -> bytes:
    """Return the password of a Basic Authorization header as bytes; any username is accepted."""
    value = next((value for name, value in headers.items() if name.lower() == "authorization"), "")
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise AuthenticationRequired(
            "Missing Basic credentials. In the service hook, leave the username blank and set the password "
            "to the integration's webhook secret.", code="missing_credentials", headers=BASIC_CHALLENGE)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise AuthenticationRequired("The Basic credentials are not valid base64.", code="invalid_credentials",
                                     headers=BASIC_CHALLENGE) from error
    _, separator, password = decoded.partition(b":")
    if not separator:
        raise AuthenticationRequired("The Basic credentials have no password part.", code="invalid_credentials",
                                     headers=BASIC_CHALLENGE)
    return password


def _is_json_content_type(value: str | None) -> bool:
    if not value:
        return False
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class _VersionedSecretCache:
    """Secrets cached by (name, version).

    A version never changes its value, so the time limit only bounds how long a deleted secret keeps
    working. The integration row, read on every delivery, names the versions, so a rotation takes
    effect at once.
    """

    def __init__(self, store: SecretStore, ttl_seconds: int) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], tuple[float, str | None]] = {}

    def get(self, name: str, version: str, *, refresh: bool = False) -> str | None:
        key = (name, version)
        now = time.monotonic()
        with self._lock:
            cached = self._values.get(key)
        if cached and not refresh and cached[0] > now:
            return cached[1]
        value = self._store.get(name, version)
        with self._lock:
            self._values[key] = (now + self._ttl, value)
        return value


class WebhookIngestion:
    """Accepts deliveries for one deployment."""

    def __init__(self, settings: Settings, integrations: IntegrationRepository, deliveries: DeliveryRepository,
                 secret_store: SecretStore, clients: StorageClients,
                 repository_in_use: Callable[[str, str], bool] | None = None) -> None:
        self._repository_in_use = repository_in_use
        self._in_use_cache: dict[tuple[str, str], tuple[float, bool]] = {}
        self._settings = settings
        self._integrations = integrations
        self._deliveries = deliveries
        self._secrets = _VersionedSecretCache(secret_store, settings.secret_cache_seconds)
        self._clients = clients

    def accept(self, integration_id: str, headers: Mapping[str, str], body: bytes) -> WebhookAnswer:
        record = self._integrations.get(integration_id)  # NotFound → 404
        self._authenticate(record, headers)
        if len(body) > self._settings.max_webhook_body_bytes:
            limit = self._settings.max_webhook_body_bytes
            raise RequestError(f"The body has {len(body)} bytes; the limit is {limit}. Choose less resource detail "
                               "in the subscription.", status=413, code="body_too_large")
        content_type = next((value for name, value in headers.items() if name.lower() == "content-type"), None)
        if not _is_json_content_type(content_type):
            raise RequestError(f"Content type {content_type!r} is not JSON. Send application/json.",
                               status=415, code="unsupported_media_type", field="Content-Type")
        document = self._parse_json(body)
        envelope = parse_envelope(document)
        if envelope.notification_id is not None and envelope.notification_id not in _NOTIFICATION_ID_RANGE:
            raise ValidationFailed(f"notificationId {envelope.notification_id} is not a 32-bit integer. Send the "
                                   "body exactly as Azure DevOps delivered it.", field="notificationId",
                                   status=400, code="invalid_payload")
        delivery = NewDelivery(
            integration_id=record.id, event_type=envelope.event_type, subscription_id=envelope.subscription_id,
            notification_id=envelope.notification_id, event_id=envelope.id, publisher_id=envelope.publisher_id,
            resource_version=envelope.resource_version, body=body, outcome="queued", reason="Waiting for processing.")
        ids = (record.id, envelope.subscription_id, envelope.notification_id, envelope.id)
        if envelope.event_type not in HANDLED_EVENT_TYPES:
            reason = (f"Event type {envelope.event_type!r} is not one stackhook handles; nothing will happen. "
                      f"Handled: {', '.join(sorted(HANDLED_EVENT_TYPES))}.")
            return self._record_ignored(delivery, reason, ids)
        problem = misconfiguration(envelope)
        if problem:
            return self._record_ignored(delivery, problem, ids, outcome="misconfigured")
        resource = parse_resource(envelope)  # ValidationFailed → 400 naming the JSON path
        answer = self._record_and_queue(delivery, ids)
        unused = self._unused_repository(record.id, resource)
        if answer.status == 202 and unused:
            # The "Test" button's sample names a repository no stack uses; the response explains why nothing runs.
            answer.body["message"] += f" No stack or module uses repository {unused}, so nothing will run."
        return answer

    def _unused_repository(self, integration_id: str, resource: object) -> str | None:
        """Return the repository's name and id when no stack or module of this integration uses it."""
        if self._repository_in_use is None:
            return None
        pull_request = getattr(resource, "pull_request", None)
        repository = getattr(pull_request if pull_request is not None else resource, "repository", None)
        if repository is None or not getattr(repository, "id", None):
            return None
        key = (integration_id, str(repository.id).lower())
        now = time.monotonic()
        cached = self._in_use_cache.get(key)
        if cached is not None and cached[0] > now:
            in_use = cached[1]
        else:
            try:
                in_use = self._repository_in_use(integration_id, repository.id)
            except DependencyUnavailable:
                return None  # the delivery is already queued; the hint is not worth a 503
            # The result is only a hint in the response, so it may be up to this many seconds old.
            self._in_use_cache[key] = (now + _IN_USE_CACHE_SECONDS, in_use)
        return None if in_use else f"{repository.name} ({repository.id})"

    def _authenticate(self, record: IntegrationRecord, headers: Mapping[str, str]) -> None:
        password = basic_password(headers)
        if not record.webhook_secret_version:
            logger.warning("Rejected a delivery for integration %s: no webhook secret is stored", record.id)
            raise AuthenticationRequired("This integration has no webhook secret yet. Rotate its secret and update "
                                         "the service hook.", code="no_secret", headers=BASIC_CHALLENGE)
        name = webhook_secret_name(record.id)
        candidates = [record.webhook_secret_version]
        until = record.previous_secret_valid_until
        if record.previous_secret_version and until and until > datetime.now(UTC):
            candidates.append(record.previous_secret_version)
        for refresh in (False, True):
            matched = False
            for version in candidates:
                secret = self._secrets.get(name, version, refresh=refresh)
                # compare_digest on bytes takes the same time wherever the first difference is.
                if secret is not None and hmac.compare_digest(password, secret.encode("utf-8")):
                    matched = True
            if matched:
                return
        logger.info("Rejected a delivery for integration %s: wrong webhook secret", record.id)
        raise AuthenticationRequired("The webhook secret is wrong. Copy the current secret from the integration's "
                                     "details into the service hook's password.", code="invalid_credentials",
                                     headers=BASIC_CHALLENGE)

    @staticmethod
    def _parse_json(body: bytes) -> object:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValidationFailed(f"The body is not UTF-8 (invalid byte at position {error.start}).",
                                   status=400, code="invalid_json") from error
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationFailed(f"The body is not valid JSON: {error.msg} at line {error.lineno} column "
                                   f"{error.colno} (character {error.pos}).", status=400,
                                   code="invalid_json") from error
        except RecursionError as error:
            raise ValidationFailed("The body nests JSON too deeply.", status=400, code="invalid_json") from error

    def _record_ignored(self, delivery: NewDelivery, reason: str, ids: tuple[Any, ...],
                        outcome: str = "ignored") -> WebhookAnswer:
        ignored = NewDelivery(**{**delivery.__dict__, "outcome": outcome, "reason": reason})
        try:
            stored = self._deliveries.record(ignored, self._deliveries.compress_body(delivery.body))
        except DuplicateDelivery as duplicate:
            return self._duplicate(delivery, duplicate.original_id, ids)
        logger.info("Delivery %s %s for integration %s (subscription %s, notification %s, event %s): %s",
                    stored.delivery_id, outcome, *ids, reason)
        # The response uses the outcome the delivery log shows, so both name it the same way.
        return WebhookAnswer(200, {"status": outcome, "message": reason, "deliveryId": stored.delivery_id,
                                   "eventType": delivery.event_type})

    def _record_and_queue(self, delivery: NewDelivery, ids: tuple[Any, ...]) -> WebhookAnswer:
        chunks = self._deliveries.compress_body(delivery.body)
        try:
            stored = self._deliveries.record(delivery, chunks)
        except DuplicateDelivery as duplicate:
            return self._duplicate(delivery, duplicate.original_id, ids)
        queue_name = EVENT_QUEUES[delivery.event_type]
        message = json.dumps({"integrationId": delivery.integration_id, "deliveryId": stored.delivery_id})
        try:
            with storage_errors("Queue Storage"):
                self._clients.queue(queue_name).send_message(message)
        except DependencyUnavailable:
            logger.warning("Queue %s failed for delivery %s of integration %s; removing the record so the "
                           "redelivery is accepted", queue_name, stored.delivery_id, delivery.integration_id)
            try:
                self._deliveries.forget(stored)
            except DependencyUnavailable:
                # NOTE: with tables down as well, the record stays; its keys would make the
                # redelivery a duplicate, so this case is logged for an operator.
                logger.error("Could not remove delivery %s of integration %s after the queue failed",
                             stored.delivery_id, delivery.integration_id)
            raise
        logger.info("Delivery %s queued on %s for integration %s (subscription %s, notification %s, event %s)",
                    stored.delivery_id, queue_name, *ids)
        return WebhookAnswer(202, {"status": "queued", "message": f"Accepted; queued for the {delivery.event_type} "
                                   "processor.", "deliveryId": stored.delivery_id, "eventType": delivery.event_type})

    def _duplicate(self, delivery: NewDelivery, original_id: str, ids: tuple[Any, ...]) -> WebhookAnswer:
        try:
            self._deliveries.record_duplicate(delivery, original_id)
        except DependencyUnavailable:
            logger.warning("Could not log duplicate of delivery %s for integration %s", original_id, ids[0])
        logger.info("Duplicate of delivery %s for integration %s (subscription %s, notification %s, event %s)",
                    original_id, *ids)
        return WebhookAnswer(200, {"status": "duplicate", "message": f"Already received as delivery {original_id}; "
                                   "not queued again.", "deliveryId": original_id, "eventType": delivery.event_type})
