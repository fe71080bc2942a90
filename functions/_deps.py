"""The service objects the function entry points share, built once per process from settings."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from shared.ado.client import AzureDevOpsClient
from shared.logs import configure_logging
from shared.secrets import SecretStore
from shared.services.commands import CommandService
from shared.services.ingestion import WebhookIngestion
from shared.services.integrations import IntegrationService
from shared.services.processing import EventProcessor
from shared.services.routing import EventRouter
from shared.services.runs import RunService
from shared.services.service_hooks import ServiceHookService
from shared.services.stacks import StackService
from shared.settings import Settings
from shared.storage.clients import StorageClients
from shared.storage.commands import CommandStore
from shared.storage.deliveries import DeliveryRepository
from shared.storage.integrations import IntegrationRepository
from shared.storage.pull_requests import PullRequestRepository
from shared.storage.runs import ModuleVersionRepository, RunRepository
from shared.storage.service_hooks import ServiceHookRepository
from shared.storage.spaces import SpaceRepository
from shared.storage.stacks import StackRepository


@dataclass
class Services:
    """Clients and services, created lazily so that start-up does no network I/O."""

    settings: Settings

    @cached_property
    def storage(self) -> StorageClients:
        return StorageClients.from_settings(self.settings)

    @cached_property
    def secrets(self) -> SecretStore:
        return SecretStore.from_settings(self.settings)

    @cached_property
    def spaces(self) -> SpaceRepository:
        return SpaceRepository(self.storage)

    @cached_property
    def integration_records(self) -> IntegrationRepository:
        return IntegrationRepository(self.storage)

    @cached_property
    def deliveries(self) -> DeliveryRepository:
        return DeliveryRepository(self.storage,
                                  body_retention=timedelta(hours=self.settings.delivery_body_retention_hours))

    def azure_devops_client(self, organization_url: str, personal_access_token: str) -> AzureDevOpsClient:
        verify: str | bool = self.settings.azure_devops_ca_bundle or True
        return AzureDevOpsClient(organization_url, personal_access_token, verify=verify)

    @cached_property
    def integrations(self) -> IntegrationService:
        return IntegrationService(self.settings, self.integration_records, self.secrets, self.storage,
                                  self.azure_devops_client, self.deliveries, self.service_hooks)

    @cached_property
    def service_hooks(self) -> ServiceHookService:
        return ServiceHookService(self.settings, self.integration_records, ServiceHookRepository(self.storage),
                                  self.secrets, self.azure_devops_client)

    @cached_property
    def stacks(self) -> StackService:
        return StackService(StackRepository(self.storage), self.integration_records, self.secrets,
                            self.azure_devops_client)

    @cached_property
    def runs(self) -> RunService:
        return RunService(self.settings, RunRepository(self.storage), ModuleVersionRepository(self.storage),
                          self.integration_records, StackRepository(self.storage), self.secrets, self.storage,
                          self.azure_devops_client)

    @cached_property
    def processor(self) -> EventProcessor:
        return EventProcessor(self.integration_records, self.deliveries, PullRequestRepository(self.storage),
                              self.router, self.commands)

    @cached_property
    def router(self) -> EventRouter:
        return EventRouter(StackRepository(self.storage), self.runs, RunRepository(self.storage), self.secrets,
                           self.azure_devops_client, CommandStore(self.storage))

    @cached_property
    def commands(self) -> CommandService:
        return CommandService(self.settings, self.integration_records, StackRepository(self.storage), self.spaces,
                              self.runs, RunRepository(self.storage), CommandStore(self.storage), self.deliveries,
                              self.secrets, self.storage, self.azure_devops_client)

    @cached_property
    def ingestion(self) -> WebhookIngestion:
        stacks = StackRepository(self.storage)
        return WebhookIngestion(self.settings, self.integration_records, self.deliveries, self.secrets, self.storage,
                                lambda integration_id, repository_id: bool(stacks.routes_for(integration_id,
                                                                                             repository_id)))


_lock = threading.Lock()
_services: Services | None = None


def load_settings() -> Settings:
    """Read the settings once; a missing or invalid one stops start-up with a message naming it."""
    return Settings.from_environ(os.environ)


def services() -> Services:
    global _services
    with _lock:
        if _services is None:
            settings = load_settings()
            configure_logging(settings)
            _services = Services(settings)
        return _services


def reset_services() -> None:
    """Forget the cached services (tests that change settings between hosts call this)."""
    global _services
    with _lock:
        _services = None
