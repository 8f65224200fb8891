"""Served vs raw: what does the REST server cost on top of calling the model in-process?

MLP 784-512-512-10, one-row requests. In one run it measures:

* raw, two ways, in-process at batch 1 (one core, same TF threads):
  - *signature*: ``loaded.signatures["serving_default"](x=tf.constant(row))``
    and ``.numpy()`` on the output, the documented way to call a SavedModel
    from Python (what the targets compare against);
  - *engine*: ``Servable.run``, the server's own path to the model, which
    executes the signature's function op directly and skips TensorFlow's
    Python call layers (shown for the cost of serving over our own engine);
* the empty round trip: the shared no-model HTTP server at C=1 (the loopback + client floor);
* served: ``tfserve`` on core 0, the load generator on core 1, at C=1, 8 and 32.

Targets (unbatched path): served C=32 throughput >= 45% of raw signature calls/s, and
served C=1 p50 <= raw signature p50 + empty round trip p50 + 0.4 ms.

Request logging (opt-in, ``python benchmarks/bench_serving.py --logging``): the same
server at C=32 with logging off, at sampling rate 1.0 and at 0.01 (switched live
through the management API), interleaved in rounds (``--rounds=N``, default 3) so
that noise from the shared machine hits every variant alike; the records written
and dropped in each run, and the server's CPU time per request (all its threads:
the request log's writer included). Targets: rate 1.0 within 10% of off; 0.01
within noise.

Run: ``python benchmarks/bench_serving.py`` (or ``pytest --bench benchmarks/``);
``--tflite`` compares the MLP converted to TensorFlow Lite with its SavedModel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402

BODY = '{"instances": [{{ROW}}]}'

RAW = r"""
import json, sys, time
import numpy as np
from jupyter_tfserve.core.platforms import tensorflow as servable
servable.configure_tensorflow(1, 1)
tf = servable.tensorflow()
s = servable.load_servable("mlp", 1, sys.argv[1])
row = np.random.default_rng(0).random((1, 784), dtype=np.float32)
signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
calls = {
    "signature": lambda: signature(x=tf.constant(row))["probabilities"].numpy(),
    "engine": lambda: s.run("serving_default", {"x": row}),
}

def measure(call):
    for _ in range(300):
        call()
    lat = []
    end = time.perf_counter() + 4
    while time.perf_counter() < end:
        t = time.perf_counter(); call(); lat.append(time.perf_counter() - t)
    lat.sort()
    return {"calls_per_s": len(lat) / 4, "p50_ms": lat[len(lat) // 2] * 1e3}

print(json.dumps({name: measure(call) for name, call in calls.items()}))
"""


def raw_call(version_dir: str) -> dict:
    out = subprocess.run(
        [*harness.pinned(0), sys.executable, "-c", RAW, version_dir],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def empty_round_trip() -> dict:
    null_server = os.path.join(os.path.dirname(harness.LOADGEN), "null_server.py")
    port = harness.free_port()
    with harness.process_on_core([sys.executable, null_server, "--port", str(port)], port):
        return harness.loadgen(f"http://127.0.0.1:{port}/", BODY, concurrency=1, duration=4)


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "mlp")
        version_dir = models.mlp(base)
        raw = raw_call(version_dir)
        empty = empty_round_trip()
        rows = []
        with harness.tfserve("--model_name=mlp", f"--model_base_path={base}") as port:
            url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
            for c in (1, 8, 32):
                result = harness.loadgen(url, BODY, concurrency=c, expect="predictions")
                rows.append(
                    {
                        "variant": "served",
                        "C": c,
                        "req/s": result["throughput_rps"],
                        "p50_ms": result["p50_ms"],
                        "p99_ms": result["p99_ms"],
                        "errors": result["errors"],
                    }
                )
    served_c1 = rows[0]
    served_c32 = rows[-1]
    signature, engine = raw["signature"], raw["engine"]
    summary = {
        "raw_signature_calls_per_s": signature["calls_per_s"],
        "raw_signature_p50_ms": signature["p50_ms"],
        "raw_engine_calls_per_s": engine["calls_per_s"],
        "raw_engine_p50_ms": engine["p50_ms"],
        "empty_round_trip_p50_ms": empty["p50_ms"],
        "served_c32_over_raw_signature": served_c32["req/s"] / signature["calls_per_s"],
        "served_c32_over_raw_engine": served_c32["req/s"] / engine["calls_per_s"],
        "served_c1_p50_overhead_ms": served_c1["p50_ms"] - signature["p50_ms"] - empty["p50_ms"],
        "served_c1_p50_overhead_over_engine_ms": (
            served_c1["p50_ms"] - engine["p50_ms"] - empty["p50_ms"]
        ),
    }
    print(harness.table(rows, ["variant", "C", "req/s", "p50_ms", "p99_ms", "errors"]))
    print(json.dumps(summary, indent=2))
    return summary


def _api(url: str, body: dict | None = None, method: str | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    method = method or ("GET" if body is None else "PUT")
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


LOGGING_VARIANTS = (None, 1.0, 0.01)  # sampling rates; None: no logging_config at all


def run_logging(rounds: int = 3) -> dict:
    """Throughput at C=32 with request logging off, at 1.0 and at 0.01; records written and dropped.

    The variants run interleaved, ``rounds`` times, each round in a rotated
    order, so that load from other processes on the machine hits every
    variant alike; ratios are of medians over the rounds, with each round's
    own ratio listed for the spread.
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "mlp")
        models.mlp(base)
        with harness.tfserve_process(
            "--model_name=mlp", f"--model_base_path={base}", "--enable_management_api"
        ) as (port, process):
            server = _LoggingServer(port, process.pid, os.path.join(tmp, "logs", "mlp"))
            for round_ in range(rounds):
                shift = round_ % len(LOGGING_VARIANTS)
                for rate in LOGGING_VARIANTS[shift:] + LOGGING_VARIANTS[:shift]:
                    rows.append({"round": round_, **server.measure(rate)})
    by_variant = {
        label: sorted(r["req/s"] for r in rows if r["logging"] == label)
        for label in dict.fromkeys(r["logging"] for r in rows)
    }
    per_round = {
        label: [_rps(rows, round_, label) / _rps(rows, round_, "off") for round_ in range(rounds)]
        for label in ("rate 1", "rate 0.01")
    }
    cpu = {
        label: statistics.median(r["cpu_us/req"] for r in rows if r["logging"] == label)
        for label in by_variant
    }
    summary = {
        "logging_1.0_over_off": statistics.median(by_variant["rate 1"])
        / statistics.median(by_variant["off"]),
        "logging_0.01_over_off": statistics.median(by_variant["rate 0.01"])
        / statistics.median(by_variant["off"]),
        # What a dedicated server core would give: the inverse ratio of CPU time per request
        # (all the server's threads), which other processes on a shared machine do not inflate.
        "cpu_per_request_off_over_1.0": cpu["off"] / cpu["rate 1"],
        "cpu_per_request_off_over_0.01": cpu["off"] / cpu["rate 0.01"],
        "cpu_us_per_request_median": cpu,
        "per_round_1.0_over_off": [round(x, 3) for x in per_round["rate 1"]],
        "per_round_0.01_over_off": [round(x, 3) for x in per_round["rate 0.01"]],
        "req/s_median_min_max": {
            label: [statistics.median(v), v[0], v[-1]] for label, v in by_variant.items()
        },
        "records": {
            label: {
                k: sum(r[k] for r in rows if r["logging"] == label)
                for k in ("written", "dropped", "failed")
            }
            for label in by_variant
        },
    }
    print(
        harness.table(
            rows,
            [
                "round",
                "logging",
                "req/s",
                "cpu_us/req",
                "p50_ms",
                "p99_ms",
                "errors",
                "written",
                "dropped",
                "failed",
            ],
        )
    )
    print(json.dumps(summary, indent=2))
    return summary


class _LoggingServer:
    """The benchmarked server: its logging switched live, its CPU time and requests counted."""

    def __init__(self, port: int, pid: int, prefix: str):
        self.url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
        self.api = f"http://127.0.0.1:{port}/tfserve/api/models/mlp/logging"
        self.metrics = f"http://127.0.0.1:{port}/tfserve/api/metrics?model=mlp"
        self.pid, self.prefix = pid, prefix

    def measure(self, rate: float | None) -> dict:
        """One load run with logging at ``rate`` (None: the model's logging_config removed)."""
        if rate is None:
            _api(self.api, method="DELETE")
        else:
            _api(self.api, {"filename_prefix": self.prefix, "sampling_rate": rate})
        before = _api(self.api).get("records", {})
        served, cpu = self.requests_served(), harness.cpu_seconds(self.pid)
        result = harness.loadgen(self.url, BODY, concurrency=32, expect="predictions")
        cpu, served = harness.cpu_seconds(self.pid) - cpu, self.requests_served() - served
        after = _api(self.api).get("records", {})
        return {
            "logging": "off" if rate is None else f"rate {rate:g}",
            "req/s": result["throughput_rps"],
            "cpu_us/req": cpu / served * 1e6,
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "errors": result["errors"],
            **{k: after.get(k, 0) - before.get(k, 0) for k in ("written", "dropped", "failed")},
        }

    def requests_served(self) -> float:
        series = _api(self.metrics).get(":tensorflow:serving:request_count", [])
        return sum(s["value"] for s in series)


def _rps(rows: list[dict], round_: int, label: str) -> float:
    return next(r["req/s"] for r in rows if r["round"] == round_ and r["logging"] == label)


RAW_PLATFORMS = r"""
import json, sys, time
import numpy as np
from jupyter_tfserve.core import platforms
from jupyter_tfserve.core.platforms import tensorflow
tensorflow.configure_tensorflow(1, 1)
options = platforms.LoadOptions(num_threads=1)
rng = np.random.default_rng(0)

def measure(servable, rows):
    x = {"x": rng.random((rows, 784), dtype=np.float32)}
    for _ in range(200):
        servable.run("serving_default", x)
    lat = []
    end = time.perf_counter() + 3
    while time.perf_counter() < end:
        t = time.perf_counter(); servable.run("serving_default", x); lat.append(time.perf_counter() - t)
    lat.sort()
    return lat[len(lat) // 2] * 1e3

out = {}
for platform, path in (("tensorflow", sys.argv[1]), ("tflite", sys.argv[2])):
    servable = platforms.load_version(platform, "mlp", 1, path, options)
    out[platform] = {f"raw_b{rows}_p50_ms": measure(servable, rows) for rows in (1, 32)}
print(json.dumps(out))
"""


def run_tflite() -> dict:
    """The MLP as SavedModel and as TFLite (float32, same weights): raw and served, batch 1 and batched at C=32.

    Run: ``python benchmarks/bench_serving.py --tflite``. Both run one interpreter/TF thread per call.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved_model = models.mlp(os.path.join(tmp, "mlp"))
        tflite_dir = os.path.join(tmp, "mlp_tflite", "1")
        os.makedirs(tflite_dir)
        with open(os.path.join(tflite_dir, "model.tflite"), "wb") as f:
            f.write(tf.lite.TFLiteConverter.from_saved_model(saved_model).convert())
        sizes = {
            "tensorflow": sum(
                os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(saved_model) for n in ns
            ),
            "tflite": os.path.getsize(os.path.join(tflite_dir, "model.tflite")),
        }
        out = subprocess.run(
            [*harness.pinned(0), sys.executable, "-c", RAW_PLATFORMS, saved_model, tflite_dir],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        raw = json.loads(out.strip().splitlines()[-1])
        rows = []
        for platform, base in (
            ("tensorflow", os.path.dirname(saved_model)),
            ("tflite", os.path.dirname(tflite_dir)),
        ):
            for batching in (False, True):
                flags = ["--model_name=mlp", f"--model_base_path={base}"]
                flags += ["--enable_batching"] if batching else []
                with harness.tfserve(*flags) as port:
                    url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
                    for c in (32,) if batching else (1, 32):
                        result = harness.loadgen(url, BODY, concurrency=c, expect="predictions")
                        rows.append(
                            {
                                "platform": platform,
                                "batching": batching,
                                "C": c,
                                "req/s": result["throughput_rps"],
                                "p50_ms": result["p50_ms"],
                            }
                        )
    served = {(r["platform"], r["batching"], r["C"]): r for r in rows}
    summary = {
        "size_bytes": sizes,
        "raw": raw,
        "tflite_over_savedmodel": {
            "size": sizes["tflite"] / sizes["tensorflow"],
            **{
                f"raw_b{n}_p50": raw["tflite"][f"raw_b{n}_p50_ms"]
                / raw["tensorflow"][f"raw_b{n}_p50_ms"]
                for n in (1, 32)
            },
            **{
                f"served_{'batched' if b else 'unbatched'}_c{c}_rps": served["tflite", b, c][
                    "req/s"
                ]
                / served["tensorflow", b, c]["req/s"]
                for b, c in ((False, 1), (False, 32), (True, 32))
            },
        },
    }
    print(harness.table(rows, ["platform", "batching", "C", "req/s", "p50_ms"]))
    print(json.dumps(summary, indent=2))
    return summary


@pytest.mark.bench
def test_bench_serving_logging():
    summary = run_logging()
    assert summary["logging_1.0_over_off"] > 0


@pytest.mark.bench
def test_bench_tflite_next_to_savedmodel():
    summary = run_tflite()
    assert summary["size_bytes"]["tflite"] > 0


@pytest.mark.bench
def test_bench_serving():
    summary = run()
    assert summary["raw_signature_calls_per_s"] > 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--logging", action="store_true", help="request logging at 1.0 and 0.01 vs off"
    )
    mode.add_argument("--tflite", action="store_true", help="the MLP as TensorFlow Lite beside it")
    parser.add_argument("--rounds", type=int, default=3, help="--logging: interleaved rounds")
    args = parser.parse_args()
    if args.logging:
        run_logging(args.rounds)
    elif args.tflite:
        run_tflite()
    else:
        run()
