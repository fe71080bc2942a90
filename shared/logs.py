"""Logging set-up: levels for the service's loggers and a filter that masks credentials.

The code never logs a secret on purpose; the filter is a second line of defence for text that
comes from elsewhere (an exception message of a library, say).
"""

from __future__ import annotations

import logging
import re

from shared.settings import Settings

_CREDENTIAL = re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]{8,}")
_SERVICE_LOGGERS = ("shared", "functions", "stackhook")
# The Azure SDK logs every request and response at INFO; that is noise at our volume.
_QUIET_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy", "httpx", "httpcore", "urllib3")


class CredentialFilter(logging.Filter):
    """Masks `Basic …` and `Bearer …` credentials in log messages and their arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _CREDENTIAL.search(message):
            record.msg = _CREDENTIAL.sub(lambda match: f"{match.group(1)} [redacted]", message)
            record.args = None
        return True


def configure_logging(settings: Settings) -> None:
    """Set levels once at start-up and attach the credential filter to the root handlers."""
    for name in _SERVICE_LOGGERS:
        logging.getLogger(name).setLevel(settings.log_level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(existing, CredentialFilter) for existing in handler.filters):
            handler.addFilter(CredentialFilter())
