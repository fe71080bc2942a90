"""A local stand-in for the Azure Functions host. Its entry point and its limits are in `devhost.host`."""

from devhost.functions_host.errors import HostStartError
from devhost.functions_host.host import LocalFunctionsHost
from devhost.functions_host.invocation import InvocationResult

__all__ = ["HostStartError", "InvocationResult", "LocalFunctionsHost"]
