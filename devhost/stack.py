"""The whole service on one machine: Azurite, the local Key Vault, the fake Azure DevOps server and
the local Functions host running `function_app.py` in its own process.

`make run`, `make demo`, the end-to-end test fixtures and the benchmarks all start it through
`LocalStack`, so they exercise the same code path. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from azure.core.exceptions import ResourceNotFoundError

from devhost.azurite import Azurite, start_azurite
from devhost.fake_ado import SAMPLE_PAT, FakeAzureDevOps
from devhost.keyvault import LocalKeyVault
from devhost.tls import LocalCertificates, ensure_local_ca
from shared.secrets import LOCAL_ACCESS_TOKEN

logger = logging.getLogger("devhost.stack")
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class StackOptions:
    """Options of the local stack: data folder, ports (0 picks a free one), host.json and app."""

    data_folder: Path | None = None  # None keeps everything in memory
    host_port: int = 7071
    key_vault_port: int = 0
    fake_ado_port: int = 0
    host_json: Path = REPOSITORY_ROOT / "host.json"
    app: str = "function_app:app"  # module:attribute of the FunctionApp the host runs
    log_file: Path | None = None
    extra_settings: dict[str, str] = field(default_factory=dict)


class LocalStack:
    """Starts and stops the local dependencies and the Functions host process."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.azurite: Azurite | None = None
        self.key_vault: LocalKeyVault | None = None
        self.fake_ado: FakeAzureDevOps | None = None
        self.host_process: subprocess.Popen[bytes] | None = None
        self.host_port = options.host_port or free_port()
        self.certificates: LocalCertificates | None = None
        self._log_handle: object | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    @property
    def sample_pat(self) -> str:
        return SAMPLE_PAT

    def settings(self) -> dict[str, str]:
        """Return the app settings the host process gets: the same names as in Azure, local values."""
        assert self.azurite is not None, "start_dependencies() first"
        assert self.key_vault is not None, "start_dependencies() first"
        assert self.certificates is not None, "start_dependencies() first"
        settings = {
            "STACKHOOK_ENVIRONMENT": "local",
            "STACKHOOK_PUBLIC_BASE_URL": self.base_url,
            "AzureWebJobsStorage": self.azurite.connection_string,
            "STACKHOOK_KEY_VAULT_URL": self.key_vault.url,
            "STACKHOOK_KEY_VAULT_CA_BUNDLE": str(self.certificates.ca_path),
            "STACKHOOK_AZURE_DEVOPS_CA_BUNDLE": str(self.certificates.ca_path),
            "STACKHOOK_BOOTSTRAP_ADMINS": "local-admin",
        }
        settings.update(self.options.extra_settings)
        return settings

    def start_dependencies(self) -> None:
        data = self.options.data_folder
        tls_folder = (data / "tls") if data else Path(_temporary_folder()) / "tls"
        self.certificates = ensure_local_ca(tls_folder)
        if data:
            data.mkdir(parents=True, exist_ok=True)
            self.azurite = start_azurite(location=data / "azurite")
        else:
            self.azurite = start_azurite(in_memory=True)
        self.key_vault = LocalKeyVault(self.certificates, port=self.options.key_vault_port,
                                       data_file=(data / "keyvault.json") if data else None,
                                       token=LOCAL_ACCESS_TOKEN).start()
        self.fake_ado = FakeAzureDevOps(self.certificates, port=self.options.fake_ado_port).start()
        self.fake_ado.seed_sample()

    def start_host(self, *, wait_seconds: float = 60.0) -> None:
        """Start `python -m devhost.host` on the app and wait until /api/health returns 200."""
        environment = {name: value for name, value in os.environ.items()
                       if not name.startswith(("STACKHOOK_", "AzureWebJobs"))}
        environment.update(self.settings())
        command = [sys.executable, "-m", "devhost.host", "--app", self.options.app,
                   "--host-json", str(self.options.host_json), "--port", str(self.host_port)]
        output = open(self.options.log_file, "ab") if self.options.log_file else None
        self._log_handle = output
        self.host_process = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=environment,  # noqa: S603
                                             stdout=output, stderr=subprocess.STDOUT if output else None)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if self.host_process.poll() is not None:
                raise RuntimeError(f"The Functions host exited with code {self.host_process.returncode} during "
                                   f"start-up; see {self.options.log_file or 'its output above'}.")
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/health", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                if error.code != 503:
                    raise
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"The Functions host did not return 200 on /api/health within {wait_seconds} seconds.")

    def wait_for_processing(self, timeout: float = 60.0) -> None:
        """Wait until the queues the app consumes are empty (messages in flight count)."""
        from azure.storage.queue import QueueServiceClient

        from shared.storage import names

        assert self.azurite is not None
        service = QueueServiceClient.from_connection_string(self.azurite.connection_string)
        queues = [*names.EVENT_QUEUES.values(), names.CONNECTION_TEST_QUEUE, names.RUN_UPDATES_QUEUE,
                  names.STATUS_POSTS_QUEUE]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = 0
            for name in queues:
                try:
                    waiting += service.get_queue_client(name).get_queue_properties().approximate_message_count or 0
                except ResourceNotFoundError:
                    continue
            if waiting == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"Queues still had messages after {timeout} seconds.")

    def stop_host(self) -> None:
        process, self.host_process = self.host_process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if self._log_handle is not None:
            self._log_handle.close()  # type: ignore[attr-defined]
            self._log_handle = None

    def start(self) -> LocalStack:
        try:
            self.start_dependencies()
            self.start_host()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.stop_host()
        for name in ("fake_ado", "key_vault", "azurite"):
            component = getattr(self, name)
            if component is not None:
                component.stop()
                setattr(self, name, None)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def _temporary_folder() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="stackhook-")
