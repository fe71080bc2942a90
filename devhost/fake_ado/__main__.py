"""Run the fake Azure DevOps server: `python -m devhost.fake_ado --port 8081 --tls-folder .local/tls --seed`."""

from __future__ import annotations

import argparse
import logging
import threading

from devhost.fake_ado.server import FakeAzureDevOps
from devhost.tls import ensure_local_ca


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devhost.fake_ado",
                                     description="Serve a fake Azure DevOps Server collection over HTTPS on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8081, help="TCP port to listen on (0 picks a free one)")
    parser.add_argument("--tls-folder", default=".local/tls",
                        help="folder of the local CA and server certificate (created when missing)")
    parser.add_argument("--collection", default="DefaultCollection", help="collection name in the base URL")
    parser.add_argument("--max-api-version", default="7.1",
                        help="highest REST API version accepted, e.g. 6.0 for Azure DevOps Server 2020")
    parser.add_argument("--seed", action="store_true", help="load the sample organization and the sample PAT")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    certificates = ensure_local_ca(arguments.tls_folder)
    fake = FakeAzureDevOps(certificates, port=arguments.port, collection=arguments.collection,
                           max_api_version=arguments.max_api_version)
    if arguments.seed:
        fake.seed_sample()
    fake.start()
    print(f"base URL: {fake.base_url}", flush=True)
    print(f"CA certificate: {certificates.ca_path}", flush=True)
    if arguments.seed:
        print(f"sample PAT: {fake.sample_pat}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
