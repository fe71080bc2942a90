"""Require Azure RBAC, not access policies, for Key Vault data-plane access.

checkov 3.3 has no built-in check for `enableRbacAuthorization`. With access policies, anyone who
can write the vault resource can grant themselves secret access, and role assignments made in
the template (Key Vault Secrets Officer for the app) have no effect.
"""

from __future__ import annotations

from typing import Any

from checkov.arm.base_resource_value_check import BaseResourceValueCheck
from checkov.common.models.enums import CheckCategories


class KeyVaultRbacAuthorization(BaseResourceValueCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure that Key Vault uses Azure RBAC for data-plane authorization",
            id="CKV_STACKHOOK_1",
            categories=[CheckCategories.IAM],
            supported_resources=["Microsoft.KeyVault/vaults"],
        )

    def get_inspected_key(self) -> str:
        return "properties/enableRbacAuthorization"

    def get_expected_value(self) -> Any:
        return True


check = KeyVaultRbacAuthorization()
