"""Registering, reading, changing and testing Azure DevOps integrations.

Access rules come from `shared.core.access`, validation from `shared.core.naming` and
`shared.core.urls`. Personal access tokens and webhook secrets go to Key Vault; the table keeps
only their version ids. Nothing here logs or returns a token.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.ado.client import AzureDevOpsClient
from shared.api_models import (
    ConnectionTestOut,
    IntegrationCreate,
    IntegrationDetails,
    IntegrationSummary,
    IntegrationUpdate,
    RotateSecretRequest,
)
from shared.core.access import can_list_integration, can_manage, can_view_details, not_found, refusal
from shared.core.naming import (
    integration_id,
    normalise_labels,
    normalise_name,
    validate_description,
    webhook_endpoint,
)
from shared.core.urls import normalise_organization_url, normalise_user_facing_host_url
from shared.errors import DependencyUnavailable, ValidationFailed
from shared.secrets import SecretStore
from shared.services.access import AccessContext
from shared.settings import Settings
from shared.storage.clients import StorageClients, storage_errors
from shared.storage.deliveries import DeliveryRepository
from shared.storage.integrations import IntegrationRecord, IntegrationRepository
from shared.storage.names import CONNECTION_TEST_QUEUE, pat_secret_name, webhook_secret_name
from shared.storage.spaces import ROOT_SPACE_ID

logger = logging.getLogger(__name__)

WEBHOOK_SECRET_BYTES = 48  # 64 URL-safe characters: printable, no whitespace, within the 256 Azure DevOps allows.

ClientFactory = Callable[[str, str], AzureDevOpsClient]


class ServiceHookLifecycle(Protocol):
    """Hooks that keep an integration's installed Azure DevOps subscriptions in step with it."""

    def after_secret_rotation(self, record: IntegrationRecord) -> list[str]: ...

    def remove_all(self, record: IntegrationRecord) -> object: ...


def generate_webhook_secret() -> str:
    return secrets.token_urlsafe(WEBHOOK_SECRET_BYTES)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class IntegrationService:
    """The integration use cases, each checked against the caller's roles."""

    def __init__(self, settings: Settings, repository: IntegrationRepository, secret_store: SecretStore,
                 clients: StorageClients, client_factory: ClientFactory, deliveries: DeliveryRepository,
                 service_hooks: ServiceHookLifecycle | None = None) -> None:
        self._settings = settings
        self._repository = repository
        self._deliveries = deliveries
        self._service_hooks = service_hooks
        self._secrets = secret_store
        self._clients = clients
        self._client_factory = client_factory

    # Reading

    def summary(self, record: IntegrationRecord) -> IntegrationSummary:
        test = record.connection_test or {}
        return IntegrationSummary(
            id=record.id, name=record.name, is_default=record.is_default, space_id=record.space_id,
            labels=list(record.labels), description=record.description,
            created_at=record.created_at.isoformat(), updated_at=record.updated_at.isoformat(),
            connection_status=test.get("kind"))

    def details(self, record: IntegrationRecord) -> IntegrationDetails:
        secret = self._current_webhook_secret(record)
        test = ConnectionTestOut(**record.connection_test) if record.connection_test else None
        return IntegrationDetails(
            **self.summary(record).model_dump(),
            organization_url=record.organization_url, user_facing_host_url=record.user_facing_host_url,
            webhook_endpoint=webhook_endpoint(self._settings.public_base_url, record.id),
            webhook_secret=secret, previous_secret_valid_until=_iso(self._grace_end(record)),
            connection_test=test, warnings=list(record.warnings), etag=record.etag)

    def list_visible(self, context: AccessContext) -> list[IntegrationSummary]:
        visible = []
        for record in self._repository.list():
            if can_list_integration(record.is_default, context.role_on(record.space_id)):
                visible.append(self.summary(record))
        return visible

    def get_for_admin(self, context: AccessContext, integration_id_: str, action: str) -> IntegrationRecord:
        """Load an integration the caller may manage; 404 if they cannot see it, 403 if they only can."""
        record = self._repository.find(integration_id_)
        target = f"integration {integration_id_!r}"
        if record is None:
            # The same error as a refusal below, so a missing integration and a hidden one look alike.
            raise not_found(target)
        role = context.role_on(record.space_id)
        allowed = can_view_details(record.is_default, role) if action == "view" else can_manage(record.is_default, role)
        if not allowed:
            raise refusal(can_list_integration(record.is_default, role), action, target)
        return record

    # Writing

    def create(self, context: AccessContext, body: IntegrationCreate) -> IntegrationRecord:
        name = body.name.strip() if isinstance(body.name, str) else body.name
        normalized = normalise_name(name)
        new_id = integration_id(name)
        space_id = self._space_for(body.is_default, body.space_id)
        kind = "the default integration" if body.is_default else f"an integration in space {space_id!r}"
        if not context.tree.contains(space_id):
            # Only callers who can read every space learn that a space does not exist. To anyone
            # else, a missing space looks like one they cannot see.
            if not context.has(ROOT_SPACE_ID, "read"):
                raise refusal(False, "create", kind)
            raise ValidationFailed(f"Space {space_id!r} does not exist. Create it first, or pick an existing "
                                   "space id from GET /api/spaces.", field="spaceId")
        if not can_manage(body.is_default, context.role_on(space_id)):
            raise refusal(context.has(space_id, "read") or body.is_default, "create", kind)
        organization = normalise_organization_url(body.organization_url)
        host_url = normalise_user_facing_host_url(body.user_facing_host_url, organization)
        pat = body.personal_access_token.get_secret_value().strip()
        if not pat or any(character.isspace() for character in pat):
            raise ValidationFailed("The personal access token is empty or contains whitespace. Paste the token "
                                   "exactly as Azure DevOps showed it.", field="personalAccessToken")
        now = datetime.now(UTC)
        record = IntegrationRecord(
            id=new_id, name=name, normalized_name=normalized, is_default=body.is_default, space_id=space_id,
            organization_url=organization.url, organization_kind=organization.kind, user_facing_host_url=host_url,
            labels=tuple(normalise_labels(body.labels)), description=validate_description(body.description),
            created_at=now, updated_at=now, created_by=context.actor, updated_by=context.actor)
        created = self._repository.create(record)
        try:
            pat_version = self._secrets.set(pat_secret_name(new_id), pat, content_type="azure-devops-pat")
            secret_version = self._secrets.set(webhook_secret_name(new_id), generate_webhook_secret(),
                                               content_type="webhook-secret")
        except DependencyUnavailable:
            # Nothing half-made may stay behind: without its secrets the integration cannot work.
            self._repository.delete(created)
            raise
        created = self._repository.update_fields(created, pat_version=pat_version,
                                                 webhook_secret_version=secret_version)
        logger.info("Created integration %s (default=%s, space=%s) by %s", new_id, body.is_default, space_id,
                    context.actor)
        self._queue_connection_test(new_id, "created")
        return created

    def update(self, context: AccessContext, integration_id_: str, body: IntegrationUpdate,
               if_match: str | None) -> IntegrationRecord:
        record = self.get_for_admin(context, integration_id_, "update")
        if body.name is not None and normalise_name(body.name) != record.normalized_name:
            raise ValidationFailed("The name of an integration cannot change, because its webhook endpoint is "
                                   "derived from it. Create a new integration instead.", field="name")
        if body.is_default is not None and body.is_default != record.is_default:
            raise ValidationFailed("An integration cannot switch between default and space-specific. Create a new "
                                   "integration instead.", field="isDefault")
        if body.space_id is not None and body.space_id != record.space_id:
            raise ValidationFailed("The space of an integration cannot change. Create a new integration in the "
                                   "other space instead.", field="spaceId")
        changes: dict[str, Any] = {"updated_at": datetime.now(UTC), "updated_by": context.actor}
        organization = normalise_organization_url(body.organization_url or record.organization_url)
        if body.organization_url is not None:
            changes.update(organization_url=organization.url, organization_kind=organization.kind)
        if body.user_facing_host_url is not None or body.organization_url is not None:
            host = body.user_facing_host_url
            if host is None and record.user_facing_host_url != record.organization_url:
                host = record.user_facing_host_url
            changes["user_facing_host_url"] = normalise_user_facing_host_url(host, organization)
        if body.labels is not None:
            changes["labels"] = tuple(normalise_labels(body.labels))
        if body.description is not None:
            changes["description"] = validate_description(body.description)
        pat_changed = body.personal_access_token is not None
        if pat_changed:
            assert body.personal_access_token is not None
            pat = body.personal_access_token.get_secret_value().strip()
            if not pat or any(character.isspace() for character in pat):
                raise ValidationFailed("The personal access token is empty or contains whitespace.",
                                       field="personalAccessToken")
            # The record is written first, so a stale If-Match fails before a new token version exists.
            updated = self._repository.replace(replace(record, **changes), if_match=if_match)
            version = self._secrets.set(pat_secret_name(record.id), pat, content_type="azure-devops-pat")
            updated = self._repository.update_fields(updated, pat_version=version, connection_test=None)
            self._queue_connection_test(record.id, "token updated")
        else:
            updated = self._repository.replace(replace(record, **changes), if_match=if_match)
        logger.info("Updated integration %s by %s (token replaced: %s)", record.id, context.actor, pat_changed)
        return updated

    def delete(self, context: AccessContext, integration_id_: str) -> IntegrationRecord:
        record = self.get_for_admin(context, integration_id_, "delete")
        if self._service_hooks is not None:
            # Subscriptions go first, while the integration's token can still reach Azure DevOps;
            # failures are reported by remove_all and do not stop the delete.
            self._service_hooks.remove_all(record)
        self._repository.delete(record)
        # The delivery log and its deduplication keys go too: a recreated integration with the
        # same name starts with a clean log.
        self._deliveries.delete_all(record.id)
        for name in (pat_secret_name(record.id), webhook_secret_name(record.id)):
            try:
                self._secrets.delete(name)
            except DependencyUnavailable:
                # The integration is gone and its endpoint returns 404 either way. Recreating it
                # recovers the secret names, which finishes the clean-up.
                logger.warning("Could not soft-delete secret %s of deleted integration %s", name, record.id)
        logger.info("Deleted integration %s by %s", record.id, context.actor)
        return record

    def rotate_secret(self, context: AccessContext, integration_id_: str,
                      body: RotateSecretRequest) -> IntegrationRecord:
        record = self.get_for_admin(context, integration_id_, "rotate the webhook secret of")
        version = self._secrets.set(webhook_secret_name(record.id), generate_webhook_secret(),
                                    content_type="webhook-secret")
        now = datetime.now(UTC)
        grace_until = now + timedelta(minutes=body.grace_period_minutes) if body.grace_period_minutes else None
        updated = self._repository.update_fields(
            record, webhook_secret_version=version,
            previous_secret_version=record.webhook_secret_version if grace_until else None,
            previous_secret_valid_until=grace_until, updated_at=now, updated_by=context.actor)
        logger.info("Rotated the webhook secret of integration %s by %s (grace %s minutes)", record.id,
                    context.actor, body.grace_period_minutes)
        if self._service_hooks is not None:
            # The new secret is valid at once, so installed subscriptions switch to it now. The grace
            # period covers subscriptions created by hand and deliveries already under way.
            self._service_hooks.after_secret_rotation(updated)
        return updated

    def test(self, context: AccessContext, integration_id_: str) -> IntegrationRecord:
        record = self.get_for_admin(context, integration_id_, "test")
        return self.run_connection_test(record.id)

    def run_connection_test(self, integration_id_: str) -> IntegrationRecord:
        """Call Azure DevOps with the stored token and store the result on the integration."""
        record = self._repository.get(integration_id_)
        pat = self._secrets.get(pat_secret_name(record.id), record.pat_version)
        tested_at = datetime.now(UTC).isoformat()
        if pat is None:
            result: dict[str, Any] = {"ok": False, "kind": "missing_token", "tested_at": tested_at,
                                      "message": "No personal access token is stored for this integration. "
                                                 "Set one with PATCH /api/integrations/{id}."}
        else:
            with self._client_factory(record.organization_url, pat) as client:
                outcome = client.test_connection()
            result = {**outcome.to_dict(), "tested_at": tested_at}
        changes: dict[str, Any] = {"connection_test": result}
        if result.get("ok") and result.get("identity_id"):
            changes["identity_id"] = result["identity_id"]
        logger.info("Connection test of integration %s: %s", record.id, result.get("kind"))
        return self._repository.update_fields(record, **changes)

    # Secrets

    def _current_webhook_secret(self, record: IntegrationRecord) -> str:
        secret = self._secrets.get(webhook_secret_name(record.id), record.webhook_secret_version)
        if secret is None:
            raise DependencyUnavailable("Key Vault", f"the webhook secret of integration {record.id!r} is missing")
        return secret

    @staticmethod
    def _grace_end(record: IntegrationRecord) -> datetime | None:
        until = record.previous_secret_valid_until
        if record.previous_secret_version and until and until > datetime.now(UTC):
            return until
        return None

    # Helpers

    @staticmethod
    def _space_for(is_default: bool, space_id: str | None) -> str:
        if is_default:
            if space_id not in (None, "", ROOT_SPACE_ID):
                raise ValidationFailed("A default integration belongs to the root space; leave spaceId out or set "
                                       "it to 'root'.", field="spaceId")
            return ROOT_SPACE_ID
        if not space_id:
            raise ValidationFailed("A space-specific integration needs spaceId. Set spaceId, or set isDefault to "
                                   "true for the account's default integration.", field="spaceId")
        return space_id

    def _queue_connection_test(self, integration_id_: str, reason: str) -> None:
        """Queue a connection test, so that saving an integration does not wait for Azure DevOps."""
        try:
            with storage_errors("Queue Storage"):
                self._clients.queue(CONNECTION_TEST_QUEUE).send_message(
                    json.dumps({"integrationId": integration_id_, "reason": reason}))
        except DependencyUnavailable as error:
            logger.warning("Could not queue the connection test of integration %s: %s", integration_id_, error)
