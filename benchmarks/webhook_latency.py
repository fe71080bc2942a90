"""Measure how fast the webhook endpoint acknowledges a `git.push` delivery through the local host.

Starts the local stack (Azurite, local Key Vault, fake Azure DevOps, the Functions host in its own
process), registers an integration, then sends deliveries one at a time from this process and
prints latency percentiles next to those of an empty HTTP function in the same host.

    .venv/bin/python benchmarks/webhook_latency.py [--requests 500]

Each delivery has a new notification id and event id, so none is a duplicate: every one is
authenticated, validated, recorded in Table Storage and queued.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devhost.stack import LocalStack, StackOptions  # noqa: E402
from tests.fixtures.app_host import ADMIN, basic_auth  # noqa: E402


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1], "mean": statistics.fmean(ordered)}


def measure(client: httpx.Client, url: str, bodies: list[bytes], headers: dict[str, str],
            expected: int, rate: float = 0.0) -> list[float]:
    """Send `bodies` one at a time, `rate` per second (0: back to back), and return latencies in ms."""
    latencies = []
    interval = 1 / rate if rate else 0.0
    next_start = time.perf_counter()
    for body in bodies:
        pause = next_start - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        next_start += interval
        started = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != expected:
            raise SystemExit(f"{url} returned {response.status_code}, expected {expected}: {response.text[:300]}")
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="deliveries measured per endpoint (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="requests sent first and not measured")
    parser.add_argument("--rate", type=float, action="append", help=(
        "deliveries per second, 0 for back to back; repeat for several runs (default: 20 and 0)"))
    options = parser.parse_args()
    (ROOT / ".local").mkdir(exist_ok=True)
    template = json.loads((ROOT / "tests" / "payloads" / "git.push.json").read_text(encoding="utf-8"))

    def delivery(number: int) -> bytes:
        return json.dumps({**template, "notificationId": 100000 + number, "id": str(uuid.uuid4())}).encode()

    with LocalStack(StackOptions(host_port=0, app="benchmarks.bench_app:app",
                                 log_file=ROOT / ".local" / "benchmark-host.log")) as stack:
        assert stack.fake_ado is not None
        with httpx.Client(timeout=30) as client:
            created = client.post(f"{stack.base_url}/api/integrations", headers=ADMIN, json={
                "name": f"benchmark {uuid.uuid4().hex[:6]}", "spaceId": "root",
                "organizationUrl": stack.fake_ado.base_url, "personalAccessToken": stack.sample_pat})
            if created.status_code != 201:
                raise SystemExit(f"Creating the integration failed: {created.status_code} {created.text}")
            details = created.json()
            webhook = details["webhookEndpoint"]
            headers = {"Content-Type": "application/json; charset=utf-8", **basic_auth(details["webhookSecret"])}
            empty = f"{stack.base_url}/api/benchmark/empty"
            rates = options.rate or [20.0, 0.0]
            bodies = [delivery(number) for number in range(options.warmup + len(rates) * options.requests)]
            measure(client, webhook, bodies[:options.warmup], headers, 202)
            measure(client, empty, bodies[:options.warmup], headers, 202)
            results = []
            offset = options.warmup
            for rate in rates:
                batch = bodies[offset:offset + options.requests]
                offset += options.requests
                webhook_ms = measure(client, webhook, batch, headers, 202, rate)
                stack.wait_for_processing(timeout=120)
                empty_ms = measure(client, empty, batch, headers, 202, rate)
                results.append((rate, webhook_ms, empty_ms))
    print(f"git.push acknowledgement through the local host, {options.requests} requests per run, one at a time "
          f"(body {len(bodies[0])} bytes), milliseconds:")
    print(f"{'endpoint':<24}{'rate':>10}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'mean':>8}")
    for rate, webhook_ms, empty_ms in results:
        label_rate = f"{rate:g}/s" if rate else "max"
        for label, samples in (("webhook (git.push)", webhook_ms), ("empty HTTP function", empty_ms)):
            figures = percentiles(samples)
            print(f"{label:<24}{label_rate:>10}" + "".join(f"{figures[key]:>8.1f}"
                                                             for key in ("p50", "p90", "p99", "max", "mean")))
        p99 = percentiles(webhook_ms)["p99"]
        print(f"  target p99 < 50 ms at {label_rate}: {'met' if p99 < 50 else 'NOT met'} ({p99:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
