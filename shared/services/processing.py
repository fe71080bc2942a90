"""Turning a queued delivery into a typed domain event and recording what it means.

Each event type has its own queue and function; all of them call `EventProcessor.process`.
The classification is stored on the delivery, so the delivery log shows what each event was.
What the events then cause (runs, statuses, comment commands) builds on this.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.ado.events import parse_envelope
from shared.core.events import (
    CommentEvent,
    DomainEvent,
    MergeOutcome,
    PullRequestChange,
    PullRequestEvent,
    PushEvent,
    classify_merge_attempt,
    classify_pull_request_update,
    to_domain_event,
)
from shared.errors import AzureDevOpsError, NotFound, StackhookError, ValidationFailed
from shared.storage.deliveries import DeliveryRepository
from shared.storage.integrations import IntegrationRecord, IntegrationRepository
from shared.storage.pull_requests import PullRequestRepository, StateChanged

if TYPE_CHECKING:
    from shared.services.commands import CommandService
    from shared.services.routing import EventRouter

logger = logging.getLogger(__name__)

# Each round of concurrent writers of one pull request's state lets one of them win, so the
# attempts must cover the queues' concurrency (batchSize 4 on each of three pull request queues).
# The random pause spreads the next round out.
_CLOSED = frozenset({"completed", "abandoned"})
_STATE_ATTEMPTS = 12
_STATE_MAX_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class QueuedDelivery:
    """The message an event queue carries: which stored delivery to process."""

    integration_id: str
    delivery_id: str

    @classmethod
    def from_message(cls, body: bytes) -> QueuedDelivery:
        try:
            document = json.loads(body.decode("utf-8"))
            return cls(str(document["integrationId"]), str(document["deliveryId"]))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            raise ValidationFailed("The queue message is not a delivery reference "
                                   '({"integrationId": ..., "deliveryId": ...}).', status=400) from error


@dataclass(frozen=True)
class Outcome:
    """The result of processing a delivery: `processed`, `ignored` or `failed`, the reason, and the classification."""

    outcome: str
    reason: str
    classification: dict[str, Any] | None


@dataclass(frozen=True)
class _Classified:
    """A classification plus what routing needs to know about a pull request event."""

    outcome: Outcome
    change: PullRequestChange | None = None
    merge: MergeOutcome | None = None
    previous_merge: str | None = None


class EventProcessor:
    """Processes deliveries of every handled event type."""

    def __init__(self, integrations: IntegrationRepository, deliveries: DeliveryRepository,
                 pull_requests: PullRequestRepository, router: EventRouter | None = None,
                 commands: CommandService | None = None) -> None:
        self._integrations = integrations
        self._deliveries = deliveries
        self._pull_requests = pull_requests
        self._router = router
        self._commands = commands

    def process(self, message: QueuedDelivery, attempt: int) -> Outcome | None:
        """Process one delivery; return None when there is nothing left to process.

        Failures of storage propagate, so the queue retries the message and, after the last
        attempt, moves it to the poison queue. `record_failure` marks the delivery failed.
        """
        ids = (message.integration_id, message.delivery_id)
        try:
            delivery, body = self._deliveries.load(*ids)
        except NotFound:
            # Deleting an integration deletes its deliveries, so this also covers deleted integrations.
            logger.info("Dropped delivery %s of integration %s: it is no longer stored", *reversed(ids))
            return None
        if body is None:
            outcome = Outcome("failed", "The delivery body expired before it was processed.", None)
        else:
            try:
                envelope = parse_envelope(json.loads(body.decode("utf-8-sig")))
                event = to_domain_event(envelope)
            except (ValidationFailed, ValueError) as error:
                # Ingestion validated the body already, so this is permanent: retrying cannot help.
                outcome = Outcome("failed", f"The stored body is invalid: {error}", None)
            else:
                outcome = self._classify(message.integration_id, event, envelope.created_date,
                                         message.delivery_id)
        self._deliveries.update_outcome(*ids, outcome=outcome.outcome, reason=outcome.reason,
                                        classification=outcome.classification, attempts=attempt)
        logger.info("Delivery %s of integration %s (%s): %s, %s", delivery.delivery_id, message.integration_id,
                    delivery.event_type, outcome.outcome, outcome.reason)
        return outcome

    def record_failure(self, message: QueuedDelivery, attempt: int, error: Exception) -> None:
        """Show a failed attempt on the delivery, with the error, before the queue retries it."""
        reason = (f"Attempt {attempt} failed: {type(error).__name__}: {error}. The queue retries the message "
                  "up to maxDequeueCount times (host.json), then keeps it in the poison queue.")
        try:
            self._deliveries.update_outcome(message.integration_id, message.delivery_id, outcome="failed",
                                            reason=reason, attempts=attempt)
        except StackhookError as record_error:
            logger.warning("Could not record the failure of delivery %s: %s", message.delivery_id, record_error)

    def _classify(self, integration_id: str, event: DomainEvent, created: datetime | None,
                  delivery_id: str) -> Outcome:
        if isinstance(event, CommentEvent):
            return self._comment(self._integrations.find(integration_id), event, delivery_id)
        classified = _Classified(self._push(event)) if isinstance(event, PushEvent) \
            else self._pull_request(integration_id, event, created)
        if self._router is None or classified.outcome.outcome != "processed":
            return classified.outcome
        return self._route(integration_id, event, classified)

    def _route(self, integration_id: str, event: PushEvent | PullRequestEvent, classified: _Classified) -> Outcome:
        """Start or cancel the runs the event causes, and add what happened to the outcome."""
        assert self._router is not None
        outcome = classified.outcome
        integration = self._integrations.find(integration_id)
        if integration is None:
            return outcome
        try:
            if isinstance(event, PushEvent):
                result = self._router.push(integration, event)
            elif event.kind == "merge_attempted":
                assert classified.merge is not None
                result = self._router.merge_attempt(integration, event, classified.merge, classified.previous_merge)
            else:
                result = self._router.pull_request(integration, event, classified.change)
        except AzureDevOpsError as error:
            # Transient failures were raised as DependencyUnavailable and are retried by the queue;
            # what is left (a rejected token, a missing repository) needs a person.
            return Outcome("failed", f"{outcome.reason} Starting runs failed: {error}", outcome.classification)
        classification = {**(outcome.classification or {}), "routing": result.summary()}
        return Outcome(outcome.outcome, f"{outcome.reason} {result.note}", classification)

    @staticmethod
    def _push(event: PushEvent) -> Outcome:
        branches = [change.short_name for change in event.ref_changes if change.kind == "branch" and not change.deleted]
        others = len(event.ref_changes) - len(branches)
        if not branches:
            reason = "No branch was updated (tag pushes and branch deletions start nothing)."
            return Outcome("ignored", reason, event.summary())
        reason = f"Branch updates: {', '.join(branches)}."
        if others:
            reason += f" {others} tag or deleted ref(s) start nothing."
        return Outcome("processed", reason, event.summary())

    def _pull_request(self, integration_id: str, event: PullRequestEvent, created: datetime | None) -> _Classified:
        repository_id = event.repository.repository_id
        pull_request = event.pull_request
        for _ in range(_STATE_ATTEMPTS):
            stored = self._pull_requests.get(integration_id, repository_id, pull_request.pull_request_id)
            if created is not None and stored.event_created is not None and created < stored.event_created \
                    and event.kind != "merge_attempted":
                # Each event type has its own queue, so a later event can be processed first. An older
                # state must not overwrite the newer one or be mistaken for a change.
                return _Classified(Outcome(
                    "ignored", f"Pull request {event.kind} event from {created.isoformat()} is older than the state "
                    f"already seen ({stored.event_created.isoformat()}); it changes nothing.", event.summary()))
            try:
                if event.kind == "merge_attempted":
                    merge = classify_merge_attempt(pull_request)
                    # Merge attempts change only the merge fields: the source commit must stay what
                    # the last "updated" saw, or a new commit could look like no change.
                    if stored.snapshot is not None:
                        snapshot = replace(stored.snapshot, merge_status=pull_request.merge_status,
                                           merge_commit=pull_request.merge_commit)
                        self._pull_requests.save(integration_id, repository_id, snapshot,
                                                 merge_outcome=merge.value, etag=stored.etag,
                                                 event_created=stored.event_created)
                    else:
                        self._pull_requests.record_merge_outcome(integration_id, repository_id,
                                                                 pull_request.pull_request_id, merge.value)
                    reason = f"Merge attempted: {merge.value} (not a completion)."
                    return _Classified(Outcome("processed", reason, event.summary()), merge=merge,
                                       previous_merge=stored.merge_outcome)
                previous = None if event.kind == "created" else stored.snapshot
                change = classify_pull_request_update(previous, pull_request)
                self._pull_requests.save(integration_id, repository_id, pull_request,
                                         merge_outcome=stored.merge_outcome, etag=stored.etag,
                                         event_created=created)
            except StateChanged:
                time.sleep(random.uniform(0, _STATE_MAX_PAUSE_SECONDS))  # noqa: S311 - jitter, not a secret
                continue
            kinds = ", ".join(sorted(change.kinds))
            if change.starts_runs:
                outcome = Outcome("processed", f"Pull request {event.kind} ({kinds}): starts proposed runs.",
                                  event.summary(change))
            elif change.cancels_runs or pull_request.status in _CLOSED:
                # A repeated closing event cancels again: runs or locks may have appeared since.
                outcome = Outcome("processed", f"Pull request {event.kind} ({kinds}): cancels queued runs.",
                                  event.summary(change))
            else:
                outcome = Outcome("ignored", f"Pull request {event.kind} ({kinds}): starts no run.",
                                  event.summary(change))
            return _Classified(outcome, change=change)
        raise StateChanged(pull_request.pull_request_id)

    def _comment(self, integration: IntegrationRecord | None, event: CommentEvent, delivery_id: str) -> Outcome:
        if self._commands is not None and integration is not None:
            handled = self._commands.handle(integration, event, delivery_id)
            return Outcome(handled.outcome, handled.reason, {**event.summary(), **handled.details})
        own_identity_id = integration.identity_id if integration else None
        if event.pull_request is None:
            return Outcome("ignored", "The comment event carries no pull request (resource version 1.0); choose "
                                      "resource version 2.0 in the subscription.", event.summary())
        if event.state != "new":
            return Outcome("ignored", f"The comment is {event.state}; commands run only when a comment is first "
                                      "published.", event.summary())
        if not event.may_carry_command(own_identity_id):
            return Outcome("ignored", "The comment was written by this integration or is not a text comment.",
                           event.summary())
        return Outcome("processed", "New pull request comment.", event.summary())
