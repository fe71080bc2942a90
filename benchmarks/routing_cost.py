"""Measure how the cost of routing one event grows with the number of registered stacks.

Starts a fresh in-memory Azurite, then registers 10, 100, 1,000 and 10,000 stacks in turn through
`StackRepository.create_many` (transactions of 100 rows). Three stacks use the routed integration
and repository. The others are spread over other repositories of the same integration and over a
second integration that has the routed repository too, so their index partitions sort right next
to the routed one. At each size it times `StackRepository.routes_for` (the median of several calls)
and, for comparison, a scan of the `Stacks` table filtered on the same integration and repository.

    .venv/bin/python benchmarks/routing_cost.py [--calls 21] [--sizes 10,100,1000,10000]

It prints figures and checks only that each call returns the three routed stacks. Azurite keeps
its tables in memory and filters them there, so the scan figures understate what a scan costs in
Azure Table Storage, where a query without a partition key reads every partition.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devhost.azurite import start_azurite  # noqa: E402
from shared.storage.clients import StorageClients  # noqa: E402
from shared.storage.names import STACKS_TABLE  # noqa: E402
from shared.storage.stacks import StackRecord, StackRepository  # noqa: E402

ROUTED_INTEGRATION = "routed"
OTHER_INTEGRATION = "neighbour"
ROUTED_REPOSITORY = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
ROUTED_STACKS = 3
STACKS_PER_OTHER_REPOSITORY = 100


def make_record(number: int, integration_id: str, repository_id: str) -> StackRecord:
    now = datetime.now(UTC)
    return StackRecord(
        kind="stack", id=f"stack-{number:05d}", name=f"Stack {number}", space_id="root",
        integration_id=integration_id, project_id="11111111-2222-4333-8444-555555555555", project_name="Widgets",
        repository_id=repository_id, repository_name=f"repository-{repository_id[:8]}", tracked_branch="main",
        project_root=f"stacks/{number}", additional_project_globs=("modules/**/*.tf",), labels=(), description="",
        created_at=now, updated_at=now, created_by="benchmark", updated_by="benchmark")


def records_between(start: int, end: int) -> list[StackRecord]:
    """Build stacks number `start` to `end - 1`; numbers below ROUTED_STACKS are the routed ones."""
    records = []
    other_repository = str(uuid.uuid4())
    for number in range(start, end):
        if number < ROUTED_STACKS:
            records.append(make_record(number, ROUTED_INTEGRATION, ROUTED_REPOSITORY))
            continue
        if number % STACKS_PER_OTHER_REPOSITORY == 0:
            other_repository = str(uuid.uuid4())
        if number % 2:
            # The same repository under another integration: a neighbouring partition key.
            records.append(make_record(number, OTHER_INTEGRATION, ROUTED_REPOSITORY))
        else:
            records.append(make_record(number, ROUTED_INTEGRATION, other_repository))
    return records


def median_ms(operation: Callable[[], Any], calls: int) -> float:
    operation()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=21, help="timed calls per size and query (default 21)")
    parser.add_argument("--sizes", default="10,100,1000,10000", help="stack counts, ascending, comma-separated")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    if sizes != sorted(sizes) or sizes[0] < ROUTED_STACKS:
        raise SystemExit(f"--sizes must ascend and start at {ROUTED_STACKS} or more, got {options.sizes}")

    results: list[tuple[int, float, float, float]] = []
    with start_azurite(in_memory=True) as azurite:
        clients = StorageClients(TableServiceClient.from_connection_string(azurite.connection_string),
                                 QueueServiceClient.from_connection_string(azurite.connection_string))
        repository = StackRepository(clients)
        stacks_table = clients.table(STACKS_TABLE)
        scan_filter = "integrationId eq @integration and repositoryId eq @repository"
        scan_parameters = {"integration": ROUTED_INTEGRATION, "repository": ROUTED_REPOSITORY}
        registered = 0
        for size in sizes:
            started = time.perf_counter()
            repository.create_many(records_between(registered, size))
            load_seconds = time.perf_counter() - started
            registered = size

            routes = repository.routes_for(ROUTED_INTEGRATION, ROUTED_REPOSITORY)
            if len(routes) != ROUTED_STACKS:
                raise SystemExit(f"routes_for returned {len(routes)} routes at {size} stacks, "
                                 f"expected {ROUTED_STACKS}")
            index_ms = median_ms(lambda: repository.routes_for(ROUTED_INTEGRATION, ROUTED_REPOSITORY),
                                 options.calls)
            scan_ms = median_ms(lambda: list(stacks_table.query_entities(scan_filter, parameters=scan_parameters)),
                                options.calls)
            results.append((size, load_seconds, index_ms, scan_ms))
            print(f"registered {size} stacks ({load_seconds:.1f} s to load)", flush=True)

    print(f"\nRouting one event: the stacks of one integration and repository ({ROUTED_STACKS} of them), "
          f"median of {options.calls} calls, Azurite in memory on 127.0.0.1, milliseconds:")
    print(f"{'stacks':>8}{'routes_for':>12}{'table scan':>12}")
    for size, _, index_ms, scan_ms in results:
        print(f"{size:>8}{index_ms:>12.2f}{scan_ms:>12.2f}")
    first, last = results[0], results[-1]
    print(f"routes_for at {last[0]} vs {first[0]} stacks: x{last[2] / first[2]:.2f} (table scan: "
          f"x{last[3] / first[3]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
