"""The garbage collector's full passes under load: the server's frozen heap against a heap left as it is.

A loaded TensorFlow model is some 350,000 tracked Python objects, and every
full (oldest generation) collection walks them all while holding the GIL
(see ``jupyter_tfserve/core/heap.py``). Two batched MLP 784-512-512-10
servers, the same code, take turns on core 0 under ``wrk`` (core 1, C=32):
one as every host but the kernel builds it (models frozen after each load),
one with ``freeze_loaded_models=False``. Each reports, from ``gc.callbacks``
inside the server, how many full passes ran during the run and how long they
held the GIL, beside the run's requests per second, p99 and CPU per request.

Run: ``python benchmarks/bench_gc.py [--rounds 3]`` (needs ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402

# One server; its full passes so far (count, seconds) are written to a file ten times a second.
SERVER = r"""
import gc, json, sys, threading, time
from jupyter_tfserve.server import HostSettings, ModelServer, ServerOptions
base, port, freeze, stats_file = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
options = ServerOptions(port=0, rest_api_port=port, model_name="mlp", model_base_path=base,
                        enable_batching=True, tensorflow_intra_op_parallelism=1,
                        tensorflow_inter_op_parallelism=1)
ModelServer(options, host=HostSettings(freeze_loaded_models=freeze)).start()
passes, started = [0, 0.0], {}
def watch(phase, info):
    if info["generation"] != 2:
        return
    if phase == "start":
        started[2] = time.perf_counter()
    else:
        passes[0] += 1
        passes[1] += time.perf_counter() - started[2]
gc.callbacks.append(watch)
while True:
    with open(stats_file, "w") as f:
        json.dump(passes, f)
    time.sleep(0.1)
"""

BODY = '{"instances": [{{ROW}}]}'
SECONDS = 10


def _passes(path: str) -> list[float]:
    with open(path) as f:
        return json.load(f)


def run(rounds: int) -> dict:
    if harness.WRK is None:
        print(harness.WRK_MISSING, file=sys.stderr)
        return {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = os.path.join(tmp, "mlp")
        models.mlp(base)
        servers = {}
        for label, freeze in (("frozen", "1"), ("not frozen", "0")):
            port, stats = harness.free_port(), os.path.join(tmp, f"gc-{freeze}.json")
            cmd = [sys.executable, "-c", SERVER, base, str(port), freeze, stats]
            stack.enter_context(
                harness.process_on_core(cmd, f"http://127.0.0.1:{port}/tfserve/api/ready")
            )
            servers[label] = (f"http://127.0.0.1:{port}/v1/models/mlp:predict", stats)
        rows = []
        for round_ in range(rounds):
            for label, (url, stats) in servers.items():
                harness.wrk(url, BODY, concurrency=32, duration=2, warmup=0)
                count, seconds = _passes(stats)
                result = harness.wrk(url, BODY, concurrency=32, duration=SECONDS, warmup=0)
                after_count, after_seconds = _passes(stats)
                row = {
                    "round": round_,
                    "heap": label,
                    "req/s": result["throughput_rps"],
                    "p99_ms": result["p99_ms"],
                    "cpu_us/req": result["server_cpu_us"],
                    "full_passes": after_count - count,
                    "full_pass_ms": round((after_seconds - seconds) * 1e3, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for label in servers:
        mine = [r for r in rows if r["heap"] == label]
        summary[label] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("req/s", "p99_ms", "cpu_us/req", "full_passes", "full_pass_ms")
        }
    summary["frozen/not frozen req/s (medians)"] = (
        summary["frozen"]["req/s"] / summary["not frozen"]["req/s"]
    )
    print(json.dumps(summary, indent=2))
    return summary


@pytest.mark.bench
def test_bench_gc():
    if harness.WRK is None:
        pytest.skip(harness.WRK_MISSING)
    assert run(3)["frozen"]["req/s"] > 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    run(parser.parse_args().rounds)
