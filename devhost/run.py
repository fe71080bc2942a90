"""`make run`: the whole service on 127.0.0.1:7071 with its local dependencies, until Ctrl-C.

Data (tables, queues, Key Vault secrets, certificates) is kept in `.local/` so a restart keeps
registered integrations. The fake Azure DevOps server starts with sample data; its organization
URL and personal access token are printed so integrations can point at it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devhost.stack import REPOSITORY_ROOT, LocalStack, StackOptions

logger = logging.getLogger("devhost.run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.run", description="Run stackhook locally.")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port of the Functions host (default 7071)")
    parser.add_argument("--fake-ado-port", type=int, default=8443, help="port of the fake Azure DevOps server")
    parser.add_argument("--key-vault-port", type=int, default=8200, help="port of the local Key Vault")
    parser.add_argument("--data", type=Path, default=REPOSITORY_ROOT / ".local",
                        help="folder for Azurite data, Key Vault secrets and certificates (default .local)")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)

    stack = LocalStack(StackOptions(data_folder=options.data, host_port=options.port,
                                    fake_ado_port=options.fake_ado_port,
                                    key_vault_port=options.key_vault_port, log_file=None))
    stopping = threading.Event()

    def request_stop(signal_number: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
    except (RuntimeError, OSError) as error:
        logger.error("The local stack did not start: %s", error)
        stack.stop()
        return 1
    assert stack.fake_ado is not None
    print(f"""
stackhook is running at {stack.base_url}/api  (health: {stack.base_url}/api/health)
  Local identity header:        X-MS-CLIENT-PRINCIPAL-NAME: local-admin  (a root-space admin)
  Fake Azure DevOps collection: {stack.fake_ado.base_url}
  Its personal access token:    {stack.sample_pat}
  Storage connection string:    {stack.azurite.connection_string if stack.azurite else ""}
                                (Azurite's well-known development account; queues such as run-updates)
  Data folder:                  {options.data}
Press Ctrl-C to stop.
""", flush=True)
    try:
        stopping.wait()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
