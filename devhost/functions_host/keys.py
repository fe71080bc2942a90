"""Function keys and the master key, and the auth-level check of HTTP triggers."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devhost.functions_host.errors import HostStartError


class HostKeys(BaseModel):
    """Keys the host accepts.

    `function_keys` are host-level function keys, valid for every function. `functions` maps a
    function name to the keys of that function only. `master_key` is the admin key, valid everywhere.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    master_key: str | None = Field(default=None, alias="masterKey")
    function_keys: dict[str, str] = Field(default_factory=dict, alias="functionKeys")
    functions: dict[str, dict[str, str]] = Field(default_factory=dict)

    @classmethod
    def load(cls, mapping: Mapping[str, Any] | None, keys_file: Path | None) -> HostKeys:
        """Merge keys from a JSON file and from a mapping of the same shape (the mapping wins)."""
        merged: dict[str, Any] = {}
        if keys_file is not None:
            try:
                merged.update(json.loads(keys_file.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError) as error:
                raise HostStartError(f"Cannot read the keys file {keys_file}: {error.__class__.__name__}. "
                                     "It must be JSON like {\"masterKey\": \"...\", \"functionKeys\": "
                                     "{\"default\": \"...\"}}.") from error
        merged.update(mapping or {})
        try:
            return cls(**merged)
        except ValidationError as error:
            # Only field names and error types: the values are keys.
            fields = ", ".join(".".join(str(part) for part in item["loc"]) for item in error.errors())
            raise HostStartError(f"Invalid host keys ({fields}): expected masterKey as a string, functionKeys "
                                 "as {name: key} and functions as {function: {name: key}}.") from None

    def is_empty(self) -> bool:
        return not (self.master_key or self.function_keys or self.functions)


def _matches_any(presented_key: str, keys: Mapping[str, str] | None) -> bool:
    if not keys:
        return False
    # Compare every key so the time taken does not depend on which one matched.
    found = False
    for key in keys.values():
        found |= hmac.compare_digest(presented_key.encode(), key.encode())
    return found


def is_authorized(keys: HostKeys, auth_level: str, function_name: str, presented_key: str | None) -> bool:
    """Return whether `presented_key` satisfies the auth level ("anonymous", "function" or "admin")."""
    if auth_level == "anonymous":
        return True
    if not presented_key:
        return False
    if keys.master_key and hmac.compare_digest(presented_key.encode(), keys.master_key.encode()):
        return True
    if auth_level == "admin":
        return False
    return (_matches_any(presented_key, keys.function_keys)
            or _matches_any(presented_key, keys.functions.get(function_name)))
