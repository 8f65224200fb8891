"""Soak: minutes of steady load with version reloads and hostile clients. Does anything leak or fail?

A standalone ``tfserve`` (core 0) serves the MLP 784-512-512-10 with batching
on. From core 1, for ``--minutes`` (10):

* **good load**: 32 closed-loop users (the project's load generator,
  ``jupyter_tfserve.bench.loadgen``) send one-row REST predicts;
* **version reloads**: every ``--reload_seconds`` (30) a new version directory
  appears (copied aside, then renamed into place) and, one reload later, the
  one before the served version is removed; the default policy serves the
  latest, so each reload is a load, a swap and an unload under load;
* **hostile clients**, a few a second, in turn: gRPC TensorProtos declaring
  shapes of 1e8, 2^40 (float) and 1e9 (string) elements with one value,
  200-level and 100,000-level nesting, a 5,000-digit integer in a body and in
  a version path, malformed JSON, made-up model names, a declared 300 MB body,
  and clients that disconnect mid-body or before their answer.

Every minute it prints the good requests sent and failed, their p50 and p99,
the hostile requests sent and how many got a 5xx (or gRPC INTERNAL/UNKNOWN),
and the server's RSS, threads and open file descriptors (from ``/proc``).
At the end: good requests failed (target 0), RSS after warm-up vs at the end
(target: growth <= 5%), and whether threads and fds stayed flat. A good
request may only fail with a 503 from admission control; it counts as failed
all the same.

Opt-in, not CI: ``python benchmarks/soak.py [--minutes=10] [--reload_seconds=30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import sys
import tempfile
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402

USERS = 32
WARMUP_SECONDS = 20.0
HOSTILE_INTERVAL = 0.25
BATCHING = """
max_batch_size { value: 32 }
batch_timeout_micros { value: 1000 }
max_enqueued_batches { value: 64 }
num_batch_threads { value: 1 }
"""


# ---------------------------------------------------------------------- the server process
def proc_sample(pid: int) -> dict:
    """RSS (MiB), threads and open fds of ``pid``, read from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return {
        "rss_mib": int(fields["VmRSS"][0]) / 1024,
        "threads": int(fields["Threads"][0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


class Versions:
    """The model's version directories: a new one appears atomically; the one before the last goes."""

    def __init__(self, base: str):
        self.base = base
        self.template = os.path.join(os.path.dirname(base), "template")
        models.mlp(self.template, version=1)
        self.served = 0
        self.add()

    def add(self) -> int:
        self.served += 1
        staging = os.path.join(os.path.dirname(self.base), f"staging-{self.served}")
        shutil.copytree(os.path.join(self.template, "1"), staging)
        os.rename(staging, os.path.join(self.base, str(self.served)))
        stale = os.path.join(self.base, str(self.served - 2))
        if os.path.isdir(stale):
            shutil.rmtree(stale)
        return self.served


# ---------------------------------------------------------------------- hostile clients
def _hostile_kinds(rest: int, grpc_port: int):
    """(name, coroutine function) pairs; each returns True when the server answered a 5xx / INTERNAL."""
    import grpc
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def bomb(dtype: str, elements: int):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mlp"
        tensor = request.inputs["x"]
        tensor.dtype = dtype
        tensor.tensor_shape.dim.add().size = elements
        if dtype == types_pb2.DT_STRING:
            tensor.string_val.append(b"x")
        else:
            tensor.float_val.append(1.0)

        async def send() -> bool:
            try:
                await stub.Predict(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                return exc.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
            return False

        return send

    def post(path: str, body: bytes):
        async def send() -> bool:
            return (await http(rest, "POST", path, body)) >= 500

        return send

    def get(path: str):
        async def send() -> bool:
            return (await http(rest, "GET", path, b"")) >= 500

        return send

    counter = iter(range(10**9))

    async def unknown_model() -> bool:
        path = f"/v1/models/nope-{next(counter)}:predict"
        return (await http(rest, "POST", path, b'{"instances": [[1.0]]}')) >= 500

    deep = b'{"inputs": 1, "instances": ' + b"[" * 200 + b"1" + b"]" * 200 + b"}"
    deeper = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = b'{"instances": [[' + b"9" * 5000 + b"]]}"
    kinds = [
        ("grpc float shape 1e8", bomb(types_pb2.DT_FLOAT, 10**8)),
        ("grpc float shape 2^40", bomb(types_pb2.DT_FLOAT, 2**40)),
        ("grpc string shape 1e9", bomb(types_pb2.DT_STRING, 10**9)),
        ("200-level nesting", post("/v1/models/mlp:predict", deep)),
        ("100000-level nesting", post("/v1/models/mlp:predict", deeper)),
        ("5000-digit int body", post("/v1/models/mlp:predict", huge)),
        ("5000-digit version", get("/v1/models/mlp/versions/" + "7" * 5000)),
        ("malformed JSON", post("/v1/models/mlp:predict", b'{"instances": [[1.0, ')),
        ("unknown model", unknown_model),  # a fresh name each time
        ("declared 300 MB body", lambda: declared_oversize(rest)),
        ("disconnect mid-body", lambda: disconnect_mid_body(rest)),
        ("disconnect before answer", lambda: disconnect_before_answer(rest)),
    ]
    return kinds, channel


async def http(port: int, method: str, path: str, body: bytes) -> int:
    """One request on its own connection; its status code (0 when the server closed without one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 60)
        await reader.read()
        return int(head.split()[1]) if head else 0
    finally:
        writer.close()


async def declared_oversize(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /v1/models/mlp:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n{"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 60)
        return int(head.split()[1]) >= 500 if head else False
    finally:
        writer.close()


async def disconnect_mid_body(port: int) -> bool:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/models/mlp:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"instances": [[0.5'
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()
    return False


async def disconnect_before_answer(port: int) -> bool:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0"
    )
    body = json.dumps({"instances": [[0.5] * 784] * 64}).encode()
    writer.write(
        b"POST /v1/models/mlp:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    await writer.drain()
    writer.transport.abort()
    return False


# ---------------------------------------------------------------------- the run
async def soak(pid: int, rest: int, grpc_port: int, versions: Versions, args) -> list[dict]:
    from jupyter_tfserve.bench.loadgen import Load, Recorder
    from jupyter_tfserve.bench.transports import RestTransport

    row = json.dumps([round(random.random(), 3) for _ in range(784)])
    bodies = [f'{{"instances": [{row}]}}'.encode()]
    recorder = Recorder()
    load = Load(
        RestTransport(f"http://127.0.0.1:{rest}/v1/models/mlp:predict", bodies, {}, 30.0),
        recorder,
    )
    load.start_closed(USERS, 0)
    kinds, channel = _hostile_kinds(rest, grpc_port)
    hostile = {"sent": 0, "5xx": 0, "errors": 0}
    stop = asyncio.Event()

    async def hostile_clients() -> None:
        turn = 0
        while not stop.is_set():
            _name, send = kinds[turn % len(kinds)]
            turn += 1
            hostile["sent"] += 1
            try:
                hostile["5xx"] += bool(await send())
            except (OSError, asyncio.TimeoutError, ValueError, IndexError):
                hostile["errors"] += 1
            await asyncio.sleep(HOSTILE_INTERVAL)

    async def reloads() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), args.reload_seconds)
            except asyncio.TimeoutError:
                await asyncio.get_running_loop().run_in_executor(None, versions.add)

    await asyncio.sleep(WARMUP_SECONDS)
    recorder.take()
    minutes = [{"minute": 0, **proc_sample(pid)}]
    print(harness.table(minutes, list(minutes[0])), flush=True)
    background = [asyncio.ensure_future(hostile_clients()), asyncio.ensure_future(reloads())]
    for minute in range(1, args.minutes + 1):
        before = dict(hostile)
        await asyncio.sleep(60)
        records = recorder.take()
        latencies = sorted(
            done - start
            for start, done in zip(
                array("d", records["ok"]["start"]),
                array("d", records["ok"]["done"]),
                strict=True,
            )
        )
        failures: dict[str, int] = {}
        for _intended, _done, kind in records["errors"]:
            failures[kind] = failures.get(kind, 0) + 1
        row = {
            "minute": minute,
            "good_ok": len(latencies),
            "good_failed": len(records["errors"]),
            "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
            "hostile": hostile["sent"] - before["sent"],
            "hostile_5xx": hostile["5xx"] - before["5xx"],
            "hostile_no_answer": hostile["errors"] - before["errors"],
            "version": versions.served,
            **proc_sample(pid),
            "failure_kinds": ",".join(f"{k}:{n}" for k, n in failures.items()),
        }
        minutes.append(row)
        print(harness.table([row], list(row)), flush=True)
    stop.set()
    await asyncio.gather(*background)
    await load.stop(5.0)
    await channel.close()
    return minutes


def report(minutes: list[dict]) -> dict:
    start, end = minutes[0], minutes[-1]
    runs = minutes[1:]
    return {
        "good_requests": sum(m["good_ok"] + m["good_failed"] for m in runs),
        "good_failed": sum(m["good_failed"] for m in runs),
        "hostile_sent": sum(m["hostile"] for m in runs),
        "hostile_5xx": sum(m["hostile_5xx"] for m in runs),
        "rss_start_mib": round(start["rss_mib"], 1),
        "rss_end_mib": round(end["rss_mib"], 1),
        "rss_growth_pct": round(100 * (end["rss_mib"] / start["rss_mib"] - 1), 2),
        "threads_start_end_max": (
            start["threads"],
            end["threads"],
            max(m["threads"] for m in minutes),
        ),
        "fds_start_end_max": (start["fds"], end["fds"], max(m["fds"] for m in minutes)),
        "p99_ms_per_minute": [round(m["p99_ms"] or 0, 1) for m in runs],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--reload_seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "mlp")
        os.makedirs(base)
        versions = Versions(base)
        batching = os.path.join(tmp, "batching.txt")
        with open(batching, "w") as out:
            out.write(BATCHING)
        grpc_port = harness.free_port()
        flags = [
            "--model_name=mlp",
            f"--model_base_path={base}",
            f"--port={grpc_port}",
            "--enable_batching",
            f"--batching_parameters_file={batching}",
            "--file_system_poll_wait_seconds=1",
        ]
        with harness.tfserve_process(*flags) as (rest, process):
            if harness.pinned(1):
                os.sched_setaffinity(0, {1})
            minutes = asyncio.run(soak(process.pid, rest, grpc_port, versions, args))
    print(json.dumps(report(minutes)))


if __name__ == "__main__":
    main()
