"""Start and stop Azurite, the storage emulator, from the repository's npm install.

`start_azurite()` runs `node_modules/.bin/azurite` bound to 127.0.0.1 with telemetry off, waits
until the queue and table ports accept connections and returns an `Azurite` handle with the
connection string of the emulator's well-known account.
"""

from __future__ import annotations

import collections
import logging
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from shared.errors import StackhookError

logger = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPOSITORY_ROOT / "node_modules" / ".bin" / "azurite"
DEFAULT_LOCATION = REPOSITORY_ROOT / ".local" / "azurite"

# The emulator's fixed development account. Microsoft publishes this key in the Azurite
# documentation. It opens nothing outside the local emulator.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"
_OUTPUT_LINES_KEPT = 40


class AzuriteError(StackhookError):
    """Azurite is missing, did not start in time, or exited."""


def build_connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    """Build the storage connection string of the emulator account on 127.0.0.1."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{HOST}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint=http://{HOST}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint=http://{HOST}:{table_port}/{ACCOUNT_NAME};"
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class Azurite:
    """A running Azurite process. Stop it with `stop()` or by leaving the `with` block."""

    def __init__(self, process: subprocess.Popen[bytes], ports: tuple[int, int, int],
                 output: collections.deque[str]) -> None:
        self._process = process
        self.blob_port, self.queue_port, self.table_port = ports
        self._output = output
        self.connection_string = build_connection_string(*ports)

    @property
    def pid(self) -> int:
        return self._process.pid

    def output_tail(self) -> str:
        """Return the last lines Azurite wrote to stdout and stderr."""
        return "\n".join(self._output)

    def wait(self) -> int:
        """Block until Azurite exits and return its exit code."""
        return self._process.wait()

    def is_running(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate Azurite by its PID, and kill it if it has not exited after `timeout` seconds."""
        if self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("Azurite (pid %s) did not exit %s s after SIGTERM; killing it", self.pid, timeout)
            self._process.kill()
            self._process.wait(timeout=timeout)
        logger.info("Azurite (pid %s) stopped", self.pid)

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def _collect_output(stream: object, output: collections.deque[str]) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        output.append(raw.decode("utf-8", "replace").rstrip())


def start_azurite(*, location: Path | None = None, in_memory: bool = False,
                  ports: tuple[int, int, int] | None = None, timeout: float = 20.0) -> Azurite:
    """Start Azurite on 127.0.0.1 and wait until its queue and table services accept connections.

    `ports` is (blob, queue, table); free ports are picked when it is None. Data is kept in memory
    with `in_memory=True`, otherwise in `location` (default `.local/azurite` in the repository).
    """
    if in_memory and location is not None:
        raise AzuriteError("start_azurite() got both in_memory=True and a location. Pass one of them.")
    if not AZURITE_BIN.exists():
        raise AzuriteError(f"Azurite is not installed: {AZURITE_BIN} is missing. "
                           "Run `make install` or `npm install` in the repository root.")
    blob_port, queue_port, table_port = ports or (free_port(), free_port(), free_port())
    command = [
        str(AZURITE_BIN),
        # Azurite 3.35 and later send telemetry to an outside host unless this flag is given.
        "--disableTelemetry",
        "--blobHost", HOST, "--blobPort", str(blob_port),
        "--queueHost", HOST, "--queuePort", str(queue_port),
        "--tableHost", HOST, "--tablePort", str(table_port),
        # azure-storage-queue 12.18 sends x-ms-version 2026-10-06, which Azurite 3.35 rejects.
        "--skipApiVersionCheck",
    ]
    if in_memory:
        command.append("--inMemoryPersistence")
    else:
        data_dir = location or DEFAULT_LOCATION
        data_dir.mkdir(parents=True, exist_ok=True)
        command += ["--location", str(data_dir)]

    process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        cwd=REPOSITORY_ROOT, start_new_session=True)
    output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES_KEPT)
    threading.Thread(target=_collect_output, args=(process.stdout, output),
                     name=f"azurite-output-{process.pid}", daemon=True).start()
    azurite = Azurite(process, (blob_port, queue_port, table_port), output)

    deadline = time.monotonic() + timeout
    while not (_port_open(queue_port) and _port_open(table_port)):
        if process.poll() is not None:
            raise AzuriteError(f"Azurite exited with code {process.returncode} before it was ready. "
                               f"Its last output:\n{azurite.output_tail()}")
        if time.monotonic() > deadline:
            azurite.stop()
            raise AzuriteError(f"Azurite did not accept connections on 127.0.0.1:{queue_port} (queue) and "
                               f"127.0.0.1:{table_port} (table) within {timeout} s. Its last output:\n"
                               f"{azurite.output_tail()}")
        time.sleep(0.05)
    logger.info("Azurite (pid %s) is ready: blob %s, queue %s, table %s",
                azurite.pid, blob_port, queue_port, table_port)
    return azurite


def main() -> None:
    """Run Azurite in the foreground and print its connection string until Ctrl+C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with start_azurite() as azurite:
        print(f"AzureWebJobsStorage={azurite.connection_string}", flush=True)
        try:
            azurite.wait()
        except KeyboardInterrupt:
            logger.info("Interrupted, stopping Azurite")


if __name__ == "__main__":
    main()
