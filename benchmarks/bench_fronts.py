"""HTTP fronts side by side: tornado vs the standalone port (httptools), each unbatched and batched.

One server process per batching mode serves the MLP 784-512-512-10 through
*both* fronts at once (same manager, same batcher, same model), so the only
difference between a tornado row and a standalone row is the HTTP stack. The bare
no-model ASGI app on uvicorn (httptools, uvloop) is the ceiling; a bare httptools
protocol with no app (the standalone port's own stack, empty) is measured beside it. One-row
requests at C=32, server on core 0, load generator on core 1; the variants
take turns for ``TFSERVE_BENCH_ROUNDS`` rounds and each keeps its best run.

It also measures the same batched server with no HTTP at all, layer by
layer (32 coroutines on core 0, the server's CPU per request): the model alone
(its share of a batch of 32), the batcher round trip, + the JSON decode, + the
JSON encode, and ``RestApp.handle`` whole. With the bare uvicorn app's CPU per
request under ``wrk``, that gives the floor: HTTP at its barest, decode, encode
and model, which no front or plumbing change removes, and the share of the
ceiling a request costing only that would reach.

Where ``wrk`` is installed, the bare apps and the standalone front are also
driven by ``wrk`` (C, one thread, the same core): the Python load generator
saturates near 13k req/s, well under what a bare uvicorn app answers, so only
``wrk`` shows the real ceiling. The ``*_over_bare_asgi_wrk`` ratios quote the
served number against it. Where granian is installed, the same bare app on
granian (ASGI, and its own RSGI interface) is measured beside uvicorn's, and
the served server also answers through granian's RSGI (embedded in the same
loop, over the same REST core), so served granian is compared with the
standalone front.

Targets at C=32, batched: standalone >= 1.6x tornado, >= 60% of the bare ASGI ceiling
(load generator), and >= 25% of the bare ASGI ceiling measured with ``wrk``.

Run: ``python benchmarks/bench_fronts.py`` (or ``pytest --bench benchmarks/bench_fronts.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402
from bench_batching import BARE_ASGI, BARE_TORNADO, FIXED, ROUNDS, Variant, bare  # noqa: E402

TWO_FRONTS = r"""
import asyncio, sys, threading
from jupyter_tfserve.server import ModelServer, ServerOptions
from jupyter_tfserve.protocols import http_tornado
base, rest_port, tornado_port, batching = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
granian_port = int(sys.argv[5])
options = ServerOptions(port=0, rest_api_port=rest_port, model_name="mlp", model_base_path=base,
                        enable_batching=batching, tensorflow_intra_op_parallelism=1,
                        tensorflow_inter_op_parallelism=1)
server = ModelServer(options).start()
server._run(http_tornado.serve(server.rest, "127.0.0.1", tornado_port, options))
if granian_port:  # the same REST core behind granian's RSGI, embedded in the same loop
    from granian.constants import Interfaces
    from granian.server.embed import Server

    async def rsgi(scope, protocol):
        body = await protocol()
        headers = {name.lower(): value for name, value in scope.headers.items()}
        response = await server.rest.handle(scope.method, scope.path, scope.query_string, headers, body)
        protocol.response_bytes(response.status, response.headers, response.body)

    granian = Server(rsgi, address="127.0.0.1", port=granian_port, interface=Interfaces.RSGI,
                     runtime_threads=1, websockets=False, log_enabled=False)
    asyncio.run_coroutine_threadsafe(granian.serve(), server._loop)
threading.Event().wait()
"""


# The batched server with no HTTP, layer by layer: 32 coroutines on the standalone fronts' loop,
# each variant's server CPU per request (interleaved rounds, medians). What the layers cost is
# what bounds any HTTP front over this REST core.
LAYERS = r"""
import asyncio, json, random, statistics, sys, time
import numpy as np
from jupyter_tfserve.core import tensors
from jupyter_tfserve.core.inference import ModelSpec
from jupyter_tfserve.protocols import futures
from jupyter_tfserve.server import ModelServer, ServerOptions, new_event_loop
options = ServerOptions(port=0, rest_api_port=0, model_name="mlp", model_base_path=sys.argv[1],
                        enable_batching=True, tensorflow_intra_op_parallelism=1,
                        tensorflow_inter_op_parallelism=1)
server = ModelServer(options).start()
service, rest = server.service, server.rest
rng = random.Random(0)
bodies = [json.dumps({"instances": [[round(rng.random(), 6) for _ in range(784)]]}).encode()
          for _ in range(64)]
headers = {"content-type": "application/json"}
spec = ModelSpec("mlp")
with service.resolve(spec) as target:
    signature, servable = target.signature, target.handle.servable
    rows = np.random.default_rng(0).random((32, 784), dtype=np.float32)
inputs = tensors.parse_numeric(bodies[0]).decode(signature, None)[0]


async def model_alone(i):  # the model alone: one batch of 32 rows per 32 requests
    if i % 32 == 0:
        servable.run("serving_default", {"x": rows})

async def batcher(i):  # resolve, validate, queue, batch, run, answer back on the loop
    target = service.resolve(spec)
    try:
        future = service.predict(target, inputs)
    finally:
        target.release()
    return await futures.wrap(future)

async def decode_batcher(i):  # + the JSON body decoded (simdjson)
    target = service.resolve(spec)
    try:
        decoded = tensors.parse_numeric(bodies[i % 64]).decode(target.signature, None)[0]
        future = service.predict(target, decoded)
    finally:
        target.release()
    return await futures.wrap(future)

async def decode_batcher_encode(i):  # + the answer written as TF Serving's JSON
    return tensors.encode_predict_response(await decode_batcher(i), True)

async def rest_core(i):  # + routing, access check, metrics, deadline: RestApp.handle
    response = await rest.handle("POST", "/v1/models/mlp:predict", "", headers, bodies[i % 64])
    assert response.status == 200, response.body

LAYERS = [model_alone, batcher, decode_batcher, decode_batcher_encode, rest_core]

async def measure(layer, count):  # (server CPU us per request, requests per second), 32 clients
    async def client(first):
        for i in range(first, first + count):
            await layer(i)
    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(c * count) for c in range(32)))
    n = 32 * count
    return (time.process_time() - cpu) / n * 1e6, n / (time.perf_counter() - start)

async def main():
    for layer in LAYERS:
        await measure(layer, 50)  # warm up
    runs = {layer.__name__: [] for layer in LAYERS}
    for _ in range(5):
        for layer in LAYERS:
            runs[layer.__name__].append(await measure(layer, 200))
    return {
        "cpu_us": {name: statistics.median(cpu for cpu, _ in v) for name, v in runs.items()},
        "req/s": max(rate for _, rate in runs["rest_core"]),
    }

print(json.dumps(new_event_loop().run_until_complete(main())))
server.stop()
"""


# The same fixed answer from a bare httptools protocol on uvloop: the standalone port's stack, no app.
BARE_HTTPTOOLS = f"""
import asyncio, sys, httptools, uvloop
BODY = {FIXED!r}.encode()
ANSWER = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(BODY)
class Bare(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.parser = transport, httptools.HttpRequestParser(self)
    def data_received(self, data):
        self.parser.feed_data(data)
    def on_message_complete(self):  # the whole request, body included, has been read
        self.transport.write(ANSWER + BODY)
loop = uvloop.new_event_loop()
loop.run_until_complete(loop.create_server(Bare, "127.0.0.1", int(sys.argv[1]), backlog=2048))
loop.run_forever()
"""


# The same fixed answer from granian (Rust HTTP server): its ASGI and its own RSGI interface.
GRANIAN_APP = f"""
BODY = {FIXED!r}.encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole body, as a real handler must
        more = (await receive()).get("more_body", False)
    await send({{"type": "http.response.start", "status": 200, "headers": HEADERS}})
    await send({{"type": "http.response.body", "body": BODY}})
RSGI_HEADERS = [("content-type", "application/json")]
async def rsgi(scope, protocol):
    await protocol()  # the whole body
    protocol.response_bytes(200, RSGI_HEADERS, BODY)
"""


def bare_granian(stack: ExitStack, tmp: str) -> list[Variant]:
    """The bare app on granian (one worker, one runtime thread, uvloop), ASGI and RSGI; none without granian."""
    if shutil.which("granian") is None:
        print("granian not installed: its bare ceiling is skipped", file=sys.stderr)
        return []
    with open(os.path.join(tmp, "granian_app.py"), "w") as f:
        f.write(GRANIAN_APP)
    variants = []
    for interface, target in (("asgi", "granian_app:app"), ("rsgi", "granian_app:rsgi")):
        port = harness.free_port()
        cmd = ["granian", "--interface", interface, "--workers", "1", "--runtime-threads", "1"]
        cmd += ["--loop", "uvloop", "--host", "127.0.0.1", "--port", str(port), "--no-ws"]
        cmd += ["--working-dir", tmp, target]
        stack.enter_context(harness.process_on_core(cmd, port))
        url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
        variants.append(
            Variant(f"bare {interface.upper()} on granian (no model)", url, 32, tool="wrk")
        )
    return variants


# Measured by wrk as well: the ceiling, and the served numbers quoted against it.
WRK_VARIANTS = (
    "bare ASGI (no model)",
    "bare httptools (no model)",
    "standalone front unbatched",
    "standalone front batched",
)


def layers(base: str) -> dict:
    """The batched REST core in-process, layer by layer: CPU per request, and its rate with no HTTP."""
    out = subprocess.run(
        [*harness.pinned(0), sys.executable, "-c", LAYERS, base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def two_fronts(stack: ExitStack, base: str, batching: bool) -> list[Variant]:
    """One server, three fronts: its own standalone port, tornado and, where installed, granian (RSGI)."""
    standalone, tornado = harness.free_port(), harness.free_port()
    granian = harness.free_port() if importlib.util.find_spec("granian") else 0
    cmd = [sys.executable, "-c", TWO_FRONTS, base, str(standalone), str(tornado)]
    cmd += ["1" if batching else "0", str(granian)]
    stack.enter_context(
        harness.process_on_core(cmd, f"http://127.0.0.1:{standalone}/tfserve/api/ready")
    )
    mode = "batched" if batching else "unbatched"
    url = "http://127.0.0.1:{}/v1/models/mlp:predict".format
    variants = [
        Variant(f"tornado front {mode}", url(tornado), 32),
        Variant(f"standalone front {mode}", url(standalone), 32),
    ]
    if granian and harness.WRK:
        harness.wait_port(granian)
        harness.PIDS[granian] = harness.PIDS[standalone]  # the same process: its CPU per request
        variants.append(Variant(f"RSGI front on granian {mode}", url(granian), 32, tool="wrk"))
    return variants


def run(rounds: int = ROUNDS) -> dict:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = os.path.join(tmp, "mlp")
        models.mlp(base)
        split = layers(base)
        variants = [
            *bare(stack, BARE_TORNADO, "bare tornado (no model)"),
            *bare(stack, BARE_ASGI, "bare ASGI (no model)"),
            *bare(stack, BARE_HTTPTOOLS, "bare httptools (no model)"),
            *two_fronts(stack, base, batching=False),
            *two_fronts(stack, base, batching=True),
        ]
        if harness.WRK:
            variants += [v.with_wrk() for v in variants if v.name in WRK_VARIANTS]
            variants += bare_granian(stack, tmp)
        else:
            print(harness.WRK_MISSING, file=sys.stderr)
            variants = [v for v in variants if v.tool != "wrk"]
        for _ in range(rounds):
            for variant in variants:
                variant.measure()
    rows = {v.name: v.best() for v in variants}
    bound = "REST core batched, no HTTP (in-process)"
    rows[bound] = {"variant": bound, "C": 32, "req/s": split["req/s"]}
    columns = ["variant", "C", "req/s", "p50_ms", "p99_ms", "errors", "cpu_us/req"]
    print(harness.table(list(rows.values()), columns))
    rate = {name: row["req/s"] for name, row in rows.items()}
    summary = {
        "standalone_over_tornado_batched": rate["standalone front batched"]
        / rate["tornado front batched"],
        "standalone_over_tornado_unbatched": rate["standalone front unbatched"]
        / rate["tornado front unbatched"],
        "standalone_batched_over_bare_asgi": rate["standalone front batched"]
        / rate["bare ASGI (no model)"],
        "no_http_batched_over_bare_asgi": split["req/s"] / rate["bare ASGI (no model)"],
        "layer_cpu_us": split["cpu_us"],
    }
    if harness.WRK:
        ceiling = rate["bare ASGI (no model) [wrk]"]
        summary["bare_asgi_wrk_rps"] = ceiling
        summary["bare_httptools_over_bare_asgi_wrk"] = (
            rate["bare httptools (no model) [wrk]"] / ceiling
        )
        for mode in ("batched", "unbatched"):
            served = rate[f"standalone front {mode} [wrk]"]
            summary[f"standalone_{mode}_wrk_rps"] = served
            summary[f"standalone_{mode}_over_bare_asgi_wrk"] = served / ceiling
        for name, rps in rate.items():
            if "granian" in name:
                summary[f"{name} over bare uvicorn [wrk]"] = rps / ceiling
            if name.startswith("RSGI front on granian"):
                mode = name.rsplit(" ", 1)[1]
                summary[f"granian_rsgi_over_standalone_{mode}_wrk"] = (
                    rps / rate[f"standalone front {mode} [wrk]"]
                )
        summary.update(floor(split["cpu_us"], rows, ceiling))
    print(json.dumps(summary, indent=2))
    return summary


def floor(layer_cpu: dict, rows: dict, ceiling: float) -> dict:
    """The parts of a batched request no front or plumbing change removes, and the share of the ceiling they leave.

    HTTP at its barest (the no-model httptools protocol's CPU per request under
    ``wrk``: the standalone port's own stack), the JSON decode and encode, and
    the model's share of a batch of 32: their sum is the least a batched REST
    request can cost this server's core, whatever else is trimmed.
    """
    http = rows["bare httptools (no model) [wrk]"].get("cpu_us/req")
    served = rows["standalone front batched [wrk]"].get("cpu_us/req")
    if http is None or served is None:
        return {}
    parts = {
        "bare_http": http,
        "json_decode": layer_cpu["decode_batcher"] - layer_cpu["batcher"],
        "json_encode": layer_cpu["decode_batcher_encode"] - layer_cpu["decode_batcher"],
        "model_per_row_at_32": layer_cpu["model_alone"],
    }
    least = sum(parts.values())
    return {
        "floor_cpu_us": parts,
        "floor_cpu_us_total": least,
        "served_batched_cpu_us": served,
        "rest_of_served_cpu_us": served - least,
        "floor_share_of_ceiling": 1e6 / least / ceiling,
    }


@pytest.mark.bench
def test_bench_fronts():
    assert run()["standalone_over_tornado_batched"] > 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds")
    run(parser.parse_args().rounds)
