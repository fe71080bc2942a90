"""Errors of the local Functions host."""

from __future__ import annotations

from shared.errors import StackhookError


class HostStartError(StackhookError):
    """The function app or its configuration cannot be loaded, so the host does not start."""
