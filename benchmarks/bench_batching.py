"""Batched vs unbatched vs the bare HTTP handler: does server-side batching pay, and what should the knobs be?

One-row REST requests, ``tfserve`` on core 0, the load generator on core 1, the
same TensorFlow thread settings everywhere. In one run it measures:

* the bare HTTP ceiling: a tornado handler and a bare ASGI app on uvicorn
  (httptools, uvloop: the standalone front's stack), both answering a fixed
  body with no model;
* the MLP 784-512-512-10 unbatched at C=1 and C=32;
* the same model batched at C=32 with ``max_batch_size`` 32/64/128 and
  ``batch_timeout_micros`` 0/500/2000, switched live through
  ``PUT /tfserve/api/models/mlp/batching`` on one running server; and batched
  with timeout 0 at C=1 (a lone client must not pay for batching);
* a small CNN (2 conv layers + dense) unbatched and batched at C=32;
* each model's own gain from batching, with no server: the engine's run at
  batch 1 and at batch 32 (per row), in-process on core 0. Served
  batched/unbatched can only approach it: every request also pays its HTTP,
  JSON and scheduling cost, which batching does not share out.

All servers stay up and the variants take turns for ``TFSERVE_BENCH_ROUNDS``
rounds (3); each variant reports its least disturbed run (the fastest at C=32,
the lowest p50 at C=1), since this machine is shared and noisy. The average
batch size of each batched variant comes from the batching statistics JSON (``GET /tfserve/api/models/{name}/batching``), the same numbers
the tuner and the sidebar read.

Targets at C=32: batched >= 1.8x unbatched on the MLP, >= 2.5x on the CNN,
>= 75% of the bare-handler ceiling, p99 no worse than unbatched; at C=1, batched
p50 within 0.2 ms of unbatched.

Run: ``python benchmarks/bench_batching.py`` (or ``pytest --bench benchmarks/``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import ExitStack

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402

BODY = '{"instances": [{{ROW}}]}'
TIMEOUTS_US = (0, 500, 2000)
MAX_BATCH_SIZES = (32, 64, 128)
CNN_VARIANTS = ((32, 0), (64, 500), (128, 2000))
ROUNDS = int(os.environ.get("TFSERVE_BENCH_ROUNDS", "3"))
DURATION = 5.0

# A fixed answer the size of the MLP's (one row of 10 probabilities).
FIXED = json.dumps({"predictions": [[0.1] * 10]})

BARE_TORNADO = f"""
import sys
import tornado.ioloop, tornado.web
BODY = {FIXED!r}.encode()
class Handler(tornado.web.RequestHandler):
    def post(self, *args):
        self.set_header("Content-Type", "application/json")
        self.write(BODY)
    def get(self, *args):
        self.write(b"{{}}")
tornado.web.Application([(r"/.*", Handler)]).listen(int(sys.argv[1]), "127.0.0.1")
tornado.ioloop.IOLoop.current().start()
"""

BARE_ASGI = f"""
import sys
import uvicorn
BODY = {FIXED!r}.encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
async def app(scope, receive, send):
    more = True
    while more:  # read the whole body, as a real handler must
        more = (await receive()).get("more_body", False)
    await send({{"type": "http.response.start", "status": 200, "headers": HEADERS}})
    await send({{"type": "http.response.body", "body": BODY}})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
            lifespan="off", access_log=False, log_level="warning", server_header=False)
"""

RAW_BY_BATCH = r"""
import json, sys, time
import numpy as np
from jupyter_tfserve.core.platforms import tensorflow as servable
servable.configure_tensorflow(1, 1)
model = servable.load_servable("model", 1, sys.argv[1])
us_per_call = {}
for size in (1, 32):
    x = np.random.default_rng(0).random((size, 784), dtype=np.float32)
    for _ in range(100):
        model.run("serving_default", {"x": x})
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2:
        model.run("serving_default", {"x": x})
        calls += 1
    us_per_call[size] = (time.perf_counter() - start) / calls * 1e6
print(json.dumps({"batch1_us": us_per_call[1], "batch32_us_per_row": us_per_call[32] / 32}))
"""


def raw_by_batch(base_path: str) -> dict:
    """The model alone at batch 1 and 32: how much batching can save it, before any serving cost."""
    out = subprocess.run(
        [*harness.pinned(0), sys.executable, "-c", RAW_BY_BATCH, os.path.join(base_path, "1")],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["gain"] = result["batch1_us"] / result["batch32_us_per_row"]
    return result


CNN_FROM_IMAGES = r"""
import sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
class FlatCNN(tf.Module):
    def __init__(self):
        super().__init__()
        self.cnn = loaded
    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="x")])
    def serve(self, x):
        return self.cnn.signatures["serving_default"](x=tf.reshape(x, [-1, 28, 28, 1]))
module = FlatCNN()
tf.saved_model.save(module, sys.argv[2], signatures={"serving_default": module.serve})
"""


def flat_cnn(base_path: str, scratch: str) -> None:
    """The small CNN behind a flat [-1, 784] input, so one-row JSON bodies reach it unchanged."""
    images = models.small_cnn(os.path.join(scratch, "cnn_images"))
    subprocess.run(
        [sys.executable, "-c", CNN_FROM_IMAGES, images, os.path.join(base_path, "1")],
        check=True,
        capture_output=True,
    )


def http_json(url: str, body=None, method: str = "GET") -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class Variant:
    """One measured configuration: a URL, a concurrency, the load generator and, when batched, the parameters to PUT first.

    ``tool`` is ``"loadgen"`` (the shared Python load generator, a pool of
    random rows) or ``"wrk"`` (one body, from C; see :func:`harness.wrk`).
    """

    def __init__(
        self,
        name: str,
        url: str,
        concurrency: int,
        api: str = "",
        parameters=None,
        tool: str = "loadgen",
    ):
        self.name, self.url, self.concurrency = name, url, concurrency
        self.api, self.parameters, self.tool = api, parameters, tool
        self.runs: list[dict] = []

    def with_wrk(self) -> Variant:
        """The same configuration driven by ``wrk``, named ``"<name> [wrk]"``."""
        return Variant(
            f"{self.name} [wrk]", self.url, self.concurrency, self.api, self.parameters, "wrk"
        )

    def measure(self) -> None:
        before = http_json(self.api, self.parameters, "PUT") if self.api else None
        load = harness.wrk if self.tool == "wrk" else harness.loadgen
        result = load(self.url, BODY, concurrency=self.concurrency, duration=DURATION)
        row = {
            "variant": self.name,
            "C": self.concurrency,
            "req/s": result["throughput_rps"],
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "errors": result["errors"],
        }
        if result.get("server_cpu_us") is not None:
            row["cpu_us/req"] = result["server_cpu_us"]
        if before is not None:
            row["avg_batch"] = _average_batch(before, http_json(self.api))
        self.runs.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    def best(self) -> dict:
        """The least disturbed run: the fastest at C>1, the lowest p50 at C=1."""
        if self.concurrency == 1:
            return min(
                self.runs, key=lambda r: r["p50_ms"] if r["p50_ms"] is not None else float("inf")
            )
        return max(self.runs, key=lambda r: r["req/s"])


def _average_batch(before: dict, after: dict) -> float:
    def totals(stats):
        signature = stats["signatures"].get("serving_default", {})
        return signature.get("rows", 0), signature.get("batches", 0)

    (rows0, batches0), (rows1, batches1) = totals(before), totals(after)
    return (rows1 - rows0) / max(1, batches1 - batches0)


def bare(stack: ExitStack, script: str, name: str) -> list[Variant]:
    port = harness.free_port()
    stack.enter_context(
        harness.process_on_core(
            [sys.executable, "-c", script, str(port)], f"http://127.0.0.1:{port}/ready"
        )
    )
    return [Variant(name, f"http://127.0.0.1:{port}/v1/models/mlp:predict", 32)]


def unbatched(stack: ExitStack, model: str, base: str, concurrencies) -> list[Variant]:
    port = stack.enter_context(
        harness.tfserve(f"--model_name={model}", f"--model_base_path={base}")
    )
    url = f"http://127.0.0.1:{port}/v1/models/{model}:predict"
    return [Variant(f"{model} unbatched", url, c) for c in concurrencies]


def batched(stack: ExitStack, model: str, base: str, runs) -> list[Variant]:
    """One batching server; each variant's parameters are applied live before it is measured."""
    port = stack.enter_context(
        harness.tfserve(
            f"--model_name={model}",
            f"--model_base_path={base}",
            "--enable_batching",
            "--enable_management_api",
        )
    )
    url = f"http://127.0.0.1:{port}/v1/models/{model}:predict"
    api = f"http://127.0.0.1:{port}/tfserve/api/models/{model}/batching"
    return [
        Variant(
            f"{model} batched {size}/{timeout}us",
            url,
            c,
            api,
            {"max_batch_size": size, "batch_timeout_micros": timeout},
        )
        for size, timeout, c in runs
    ]


def run(rounds: int = ROUNDS) -> dict:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        mlp, cnn = os.path.join(tmp, "mlp"), os.path.join(tmp, "cnn")
        models.mlp(mlp)
        flat_cnn(cnn, tmp)
        raw = {"mlp": raw_by_batch(mlp), "cnn": raw_by_batch(cnn)}
        mlp_runs = [(MAX_BATCH_SIZES[0], 0, 1)]
        mlp_runs += [(size, timeout, 32) for size in MAX_BATCH_SIZES for timeout in TIMEOUTS_US]
        variants = [
            *bare(stack, BARE_TORNADO, "bare tornado"),
            *bare(stack, BARE_ASGI, "bare ASGI (uvicorn)"),
            *unbatched(stack, "mlp", mlp, (1, 32)),
            *batched(stack, "mlp", mlp, mlp_runs),
            *unbatched(stack, "cnn", cnn, (32,)),
            *batched(stack, "cnn", cnn, [(size, timeout, 32) for size, timeout in CNN_VARIANTS]),
        ]
        # Every server stays up and the variants take turns, so a burst of load from elsewhere
        # on the machine spoils one run of a variant, not the variant.
        for _ in range(rounds):
            for variant in variants:
                variant.measure()
    rows = [v.best() for v in variants]
    print(harness.table(rows, ["variant", "C", "req/s", "p50_ms", "p99_ms", "avg_batch", "errors"]))
    summary = summarize(rows, raw)
    print(json.dumps(summary, indent=2))
    return {"rows": rows, "runs": [r for v in variants for r in v.runs], "summary": summary}


def summarize(rows: list[dict], raw: dict) -> dict:
    def one(variant: str, c: int) -> dict:
        return next(r for r in rows if r["variant"] == variant and r["C"] == c)

    def best(prefix: str) -> dict:
        return max(
            (r for r in rows if r["variant"].startswith(prefix) and r["C"] == 32),
            key=lambda r: r["req/s"],
        )

    mlp_unbatched, cnn_unbatched = one("mlp unbatched", 32), one("cnn unbatched", 32)
    mlp_best, cnn_best = best("mlp batched"), best("cnn batched")
    lone = next(r for r in rows if r["variant"].startswith("mlp batched") and r["C"] == 1)
    return {
        "mlp_best_variant": mlp_best["variant"],
        "mlp_batched_over_unbatched": mlp_best["req/s"] / mlp_unbatched["req/s"],
        "cnn_best_variant": cnn_best["variant"],
        "cnn_batched_over_unbatched": cnn_best["req/s"] / cnn_unbatched["req/s"],
        **{
            f"{name}_raw_{key}": value
            for name, costs in raw.items()
            for key, value in costs.items()
        },
        "mlp_batched_over_bare_tornado": mlp_best["req/s"] / one("bare tornado", 32)["req/s"],
        "mlp_batched_over_bare_asgi": mlp_best["req/s"] / one("bare ASGI (uvicorn)", 32)["req/s"],
        "mlp_p99_batched_minus_unbatched_ms": mlp_best["p99_ms"] - mlp_unbatched["p99_ms"],
        "c1_p50_batched_minus_unbatched_ms": lone["p50_ms"] - one("mlp unbatched", 1)["p50_ms"],
    }


@pytest.mark.bench
def test_bench_batching():
    result = run()
    assert all(r["errors"] == 0 for r in result["runs"])
    # At C=32 batches really form: every batched variant averages more than one row per run.
    assert all(r["avg_batch"] > 1 for r in result["runs"] if "avg_batch" in r and r["C"] == 32)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds")
    run(parser.parse_args().rounds)
