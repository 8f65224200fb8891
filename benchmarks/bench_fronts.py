"""HTTP fronts side by side: tornado vs the bare ASGI app on uvicorn, each unbatched and batched.

One server process per batching mode serves the MLP 784-512-512-10 through
*both* fronts at once (same manager, same batcher, same model), so the only
difference between a tornado row and an ASGI row is the HTTP stack. The bare
no-model ASGI app on uvicorn (httptools, uvloop) is the ceiling. One-row
requests at C=32, server on core 0, load generator on core 1; the variants
take turns for ``TFSERVE_BENCH_ROUNDS`` rounds and each keeps its best run.

It also measures the same batched server with no HTTP at all: 32 coroutines
await ``RestApp.handle`` in-process on core 0, the bound that no HTTP front
over this REST core can pass.

Where ``wrk`` is installed, the bare ASGI app and the ASGI front are also
driven by ``wrk`` (C, one thread, the same core): the Python load generator
saturates near 13k req/s, well under what a bare uvicorn app answers, so only
``wrk`` shows the real ceiling. The ``*_over_bare_asgi_wrk`` ratios quote the
served number against it. Where granian is installed, the same bare app on
granian (ASGI, and its own RSGI interface) is measured beside uvicorn's.

Targets at C=32, batched: ASGI >= 1.6x tornado, ASGI >= 60% of the bare ASGI ceiling
(load generator), and ASGI >= 25% of the bare ASGI ceiling measured with ``wrk``.

Run: ``python benchmarks/bench_fronts.py`` (or ``pytest --bench benchmarks/bench_fronts.py``).
"""

from __future__ import annotations

import argparse
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
import sys, threading
from jupyter_tfserve.server import ModelServer, ServerOptions
from jupyter_tfserve.protocols import http_tornado
base, asgi_port, tornado_port, batching = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
options = ServerOptions(port=0, rest_api_port=asgi_port, model_name="mlp", model_base_path=base,
                        enable_batching=batching, tensorflow_intra_op_parallelism=1,
                        tensorflow_inter_op_parallelism=1)
server = ModelServer(options).start()
server._run(http_tornado.serve(server.rest, "127.0.0.1", tornado_port, options))
threading.Event().wait()
"""


NO_HTTP = r"""
import asyncio, json, random, sys, time
from jupyter_tfserve.server import ModelServer, ServerOptions, new_event_loop
options = ServerOptions(port=0, rest_api_port=0, model_name="mlp", model_base_path=sys.argv[1],
                        enable_batching=True, tensorflow_intra_op_parallelism=1,
                        tensorflow_inter_op_parallelism=1)
server = ModelServer(options).start()
rng = random.Random(0)
bodies = [json.dumps({"instances": [[round(rng.random(), 6) for _ in range(784)]]}).encode()
          for _ in range(64)]
headers = {"content-type": "application/json"}

async def client(first, count):
    for i in range(first, first + count):
        response = await server.rest.handle("POST", "/v1/models/mlp:predict", "", headers,
                                            bodies[i % 64])
        assert response.status == 200, response.body

async def main(count):
    start = time.perf_counter()
    await asyncio.gather(*(client(c, count) for c in range(32)))
    return 32 * count / (time.perf_counter() - start)

loop = new_event_loop()  # the loop the standalone fronts run on
loop.run_until_complete(main(200))  # warm up
print(json.dumps({"req/s": max(loop.run_until_complete(main(600)) for _ in range(3))}))
server.stop()
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
WRK_VARIANTS = ("bare ASGI (no model)", "ASGI front unbatched", "ASGI front batched")


def no_http(base: str) -> dict:
    """Batched REST core called in-process by 32 coroutines: the most any HTTP front could add up to."""
    out = subprocess.run(
        [*harness.pinned(0), sys.executable, "-c", NO_HTTP, base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        "variant": "REST core batched, no HTTP (in-process)",
        "C": 32,
        **json.loads(out.strip().splitlines()[-1]),
    }


def two_fronts(stack: ExitStack, base: str, batching: bool) -> list[Variant]:
    asgi, tornado = harness.free_port(), harness.free_port()
    cmd = [
        sys.executable,
        "-c",
        TWO_FRONTS,
        base,
        str(asgi),
        str(tornado),
        "1" if batching else "0",
    ]
    stack.enter_context(harness.process_on_core(cmd, f"http://127.0.0.1:{asgi}/tfserve/api/ready"))
    mode = "batched" if batching else "unbatched"
    return [
        Variant(f"tornado front {mode}", f"http://127.0.0.1:{tornado}/v1/models/mlp:predict", 32),
        Variant(f"ASGI front {mode}", f"http://127.0.0.1:{asgi}/v1/models/mlp:predict", 32),
    ]


def run(rounds: int = ROUNDS) -> dict:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = os.path.join(tmp, "mlp")
        models.mlp(base)
        bound = no_http(base)
        variants = [
            *bare(stack, BARE_TORNADO, "bare tornado (no model)"),
            *bare(stack, BARE_ASGI, "bare ASGI (no model)"),
            *two_fronts(stack, base, batching=False),
            *two_fronts(stack, base, batching=True),
        ]
        if harness.WRK:
            variants += [v.with_wrk() for v in variants if v.name in WRK_VARIANTS]
            variants += bare_granian(stack, tmp)
        else:
            print(harness.WRK_MISSING, file=sys.stderr)
        for _ in range(rounds):
            for variant in variants:
                variant.measure()
    rows = {v.name: v.best() for v in variants}
    rows[bound["variant"]] = bound
    print(
        harness.table(list(rows.values()), ["variant", "C", "req/s", "p50_ms", "p99_ms", "errors"])
    )
    rate = {name: row["req/s"] for name, row in rows.items()}
    summary = {
        "asgi_over_tornado_batched": rate["ASGI front batched"] / rate["tornado front batched"],
        "asgi_over_tornado_unbatched": rate["ASGI front unbatched"]
        / rate["tornado front unbatched"],
        "asgi_batched_over_bare_asgi": rate["ASGI front batched"] / rate["bare ASGI (no model)"],
        "no_http_batched_over_bare_asgi": bound["req/s"] / rate["bare ASGI (no model)"],
    }
    if harness.WRK:
        ceiling = rate["bare ASGI (no model) [wrk]"]
        summary["bare_asgi_wrk_rps"] = ceiling
        for mode in ("batched", "unbatched"):
            served = rate[f"ASGI front {mode} [wrk]"]
            summary[f"asgi_{mode}_wrk_rps"] = served
            summary[f"asgi_{mode}_over_bare_asgi_wrk"] = served / ceiling
        for name, rps in rate.items():
            if "granian" in name:
                summary[f"{name} over bare uvicorn [wrk]"] = rps / ceiling
    print(summary)
    return summary


@pytest.mark.bench
def test_bench_fronts():
    assert run()["asgi_over_tornado_batched"] > 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds")
    run(parser.parse_args().rounds)
