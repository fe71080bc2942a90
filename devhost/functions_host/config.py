"""The parts of host.json that the local host reads, as a typed model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devhost.functions_host.errors import HostStartError

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d+):(?P<minutes>\d{1,2}):(?P<seconds>\d{1,2}(?:\.\d+)?)$")


def parse_timespan(value: str) -> float:
    """Convert a .NET TimeSpan string (`hh:mm:ss`, `d.hh:mm:ss`, fractions allowed) to seconds."""
    match = _TIMESPAN.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a TimeSpan; write it as hh:mm:ss, such as 00:00:10")
    days = int(match["days"] or 0)
    return days * 86400 + int(match["hours"]) * 3600 + int(match["minutes"]) * 60 + float(match["seconds"])


class QueueOptions(BaseModel):
    """`extensions.queues`; the defaults are those of the Functions runtime's queue extension."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    batch_size: int = Field(default=16, alias="batchSize", ge=1, le=32)
    max_dequeue_count: int = Field(default=5, alias="maxDequeueCount", ge=1)
    visibility_timeout: float = Field(default=0.0, alias="visibilityTimeout", ge=0)
    max_polling_interval: float = Field(default=60.0, alias="maxPollingInterval", ge=0.1)
    message_encoding: Literal["base64", "none"] = Field(default="base64", alias="messageEncoding")

    @field_validator("visibility_timeout", "max_polling_interval", mode="before")
    @classmethod
    def _timespan(cls, value: Any) -> Any:
        return parse_timespan(value) if isinstance(value, str) else value

    @field_validator("message_encoding", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class HttpOptions(BaseModel):
    """`extensions.http`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    route_prefix: str = Field(default="api", alias="routePrefix")

    @field_validator("route_prefix")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip("/")


class HostConfig(BaseModel):
    """The settings of host.json this host applies."""

    http: HttpOptions = Field(default_factory=HttpOptions)
    queues: QueueOptions = Field(default_factory=QueueOptions)

    @classmethod
    def from_file(cls, path: Path) -> HostConfig:
        """Read host.json; raise `HostStartError` naming the file and the bad value."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise HostStartError(f"host.json not found at {path}; pass --host-json with its path.") from error
        except json.JSONDecodeError as error:
            raise HostStartError(f"{path} is not valid JSON: {error}. Fix the file and start again.") from error
        extensions = document.get("extensions") or {}
        try:
            return cls(http=HttpOptions(**(extensions.get("http") or {})),
                       queues=QueueOptions(**(extensions.get("queues") or {})))
        except ValidationError as error:
            raise HostStartError(f"{path} has invalid settings under extensions: {error}") from error
