"""Errors of the local Functions host."""

from __future__ import annotations

from shared.errors import StackhookError


class HostStartError(StackhookError):
    """The function app or its configuration cannot be loaded, so the host does not start."""


class InvocationFailed(StackhookError):
    """A function invocation raised; `__cause__` is the function's exception."""
