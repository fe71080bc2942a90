"""Require App Service Authentication (authsettingsV2) to be on and to reject anonymous callers.

The built-in CKV_AZURE_13 reads the classic `authsettings` shape (`properties.enabled`), so it
fails every `authsettingsV2` resource. This check reads the V2 shape: `platform.enabled` must be
true and `globalValidation.unauthenticatedClientAction` must be Return401 or Return403. Other
`Microsoft.Web/sites/config` resources (appsettings, web) are out of its scope.
"""

from __future__ import annotations

from typing import Any

from checkov.arm.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

_REJECTING_ACTIONS = {"Return401", "Return403"}


class AppServiceAuthV2Enabled(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure App Service Authentication V2 is enabled and rejects unauthenticated requests",
            id="CKV_STACKHOOK_2",
            categories=[CheckCategories.IAM],
            supported_resources=["Microsoft.Web/sites/config"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        if str(conf.get("name", "")).lower() != "authsettingsv2":
            return CheckResult.UNKNOWN
        self.evaluated_keys = [
            "properties/platform/enabled",
            "properties/globalValidation/unauthenticatedClientAction",
        ]
        properties = conf.get("properties") or {}
        platform = properties.get("platform") or {}
        validation = properties.get("globalValidation") or {}
        if platform.get("enabled") is not True:
            return CheckResult.FAILED
        if validation.get("unauthenticatedClientAction") not in _REJECTING_ACTIONS:
            return CheckResult.FAILED
        return CheckResult.PASSED


check = AppServiceAuthV2Enabled()
