"""Overload: open-loop load at twice the measured capacity. Are the extra requests refused fast, or queued?

MLP 784-512-512-10, REST requests of ``--rows`` rows (16: few enough requests a second
for one Python sender to keep its schedule), ``tfserve`` on core 0 and the load on core 1.
In one run it measures:

* capacity: the closed-loop throughput at C=32 (the shared load generator);
* overload: requests *sent on a schedule* at 2x that rate for 30 s (open loop: a slow
  server does not slow the sender), each on its own connection slot, up to 1024 at once,
  latency counted from the scheduled send time.

It reports the accepted throughput, the p50/p99 of accepted requests, the share
refused (503 from ``--max_requests_in_flight``) and the time to the first
refusal, and the sender's own lag behind its schedule (when that is large, the
sender, not the server, set the pace and the run says little). What should hold: accepted throughput near capacity, a p99 bounded by
the in-flight bound times the service time (not growing with the run), and
refusals answered in about a millisecond. Numbers, not assertions: it is not run in CI.

Run: ``python benchmarks/bench_overload.py [--max_requests_in_flight=N] [--seconds=S]``
(or ``pytest --bench benchmarks/bench_overload.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402

MAX_OPEN = 1024  # sender-side connection slots: more than the server admits


def rows_body(rows: int, dim: int = 784) -> bytes:
    return json.dumps({"instances": [[0.5] * dim] * rows}).encode()


async def open_loop(url: str, body: bytes, rate: float, seconds: float) -> dict:
    """Send at ``rate`` req/s on a fixed schedule for ``seconds``; every outcome with its latency."""
    import aiohttp

    outcomes: list[tuple[float, int, float, float]] = []  # (intended offset, status, latency, lag)
    connector = aiohttp.TCPConnector(limit=MAX_OPEN, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(intended: float) -> None:
            lag = loop.time() - intended
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = 0  # connection refused or reset
            outcomes.append((intended - start, status, loop.time() - intended, lag))

        tasks = []
        total = int(rate * seconds)
        for index in range(total):
            intended = start + index / rate
            delay = intended - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(intended)))
        await asyncio.gather(*tasks)
    return summarize(outcomes, seconds)


def summarize(outcomes: list[tuple[float, int, float, float]], seconds: float) -> dict:
    accepted = sorted(latency for _, status, latency, _ in outcomes if status == 200)
    refused = [(offset, latency) for offset, status, latency, _ in outcomes if status == 503]
    failed = [status for _, status, _, _ in outcomes if status not in (200, 503)]
    lags = sorted(lag for *_, lag in outcomes)

    def percentile(values: list[float], p: float) -> float | None:
        return values[min(len(values) - 1, int(len(values) * p))] * 1e3 if values else None

    refused_latency = sorted(latency for _, latency in refused)
    return {
        "sent": len(outcomes),
        "accepted_rps": len(accepted) / seconds,
        "accepted_p50_ms": percentile(accepted, 0.50),
        "accepted_p99_ms": percentile(accepted, 0.99),
        "refused_share": len(refused) / len(outcomes) if outcomes else 0.0,
        "refused_p99_ms": percentile(refused_latency, 0.99),
        "first_refusal_s": min((offset for offset, _ in refused), default=None),
        "other_failures": len(failed),
        "sender_lag_p99_ms": percentile(lags, 0.99),
    }


def run(max_in_flight: int, seconds: float, rows: int = 16) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "mlp")
        models.mlp(base)
        flags = [
            "--model_name=mlp",
            f"--model_base_path={base}",
            f"--max_requests_in_flight={max_in_flight}",
        ]
        with harness.tfserve(*flags) as port:
            url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
            body = rows_body(rows)
            capacity = harness.loadgen(
                url,
                '{"instances": [' + ", ".join(["{{ROW}}"] * rows) + "]}",  # loadgen's template
                concurrency=32,
                expect="predictions",
            )
            rate = 2 * capacity["throughput_rps"]
            if harness.pinned(1):  # the sender on the load generator's core
                os.sched_setaffinity(0, {1})
            overload = asyncio.run(open_loop(url, body, rate, seconds))
    result = {
        "max_requests_in_flight": max_in_flight,
        "rows": rows,
        "capacity_rps": capacity["throughput_rps"],
        "capacity_p99_ms": capacity["p99_ms"],
        "offered_rps": rate,
        **overload,
    }
    print(harness.table([result], list(result)))
    return result


@pytest.mark.bench
def test_bench_overload():
    result = run(256, 30.0)
    assert result["sent"] > 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_requests_in_flight", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rows", type=int, default=16)
    args = parser.parse_args(argv)
    started = time.monotonic()
    print(json.dumps(run(args.max_requests_in_flight, args.seconds, args.rows)))
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
