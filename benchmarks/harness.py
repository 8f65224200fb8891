"""Shared benchmark plumbing: pinned server processes, the load generator, readiness, tables.

Measurement rules of this project: the server runs on core 0 and the load
generator on core 1 (``taskset``), TensorFlow gets the same thread settings in
every variant, variants are compared within one run, and we quote ratios.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
LOADGEN = os.environ.get(
    "TFSERVE_LOADGEN", os.path.join(HERE, "..", "..", "shared", "bench", "loadgen.py")
)
TF_THREADS = ["--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1"]


# The server process listening on each port this harness started: whose CPU time to read.
PIDS: dict[int, int] = {}
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children alive now (a server's workers).

    On a shared machine a server's throughput moves with everything else on
    its core; the CPU it spends per request does much less.
    """
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    pending += [int(child) for child in f.read().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def pinned(core: int | str) -> list[str]:
    """``taskset -c CORE`` (a core, or a list like "0,1") when available and the machine has more than one core."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core)]
    return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, expect_status: int = 200) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == expect_status:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@contextmanager
def tfserve(*flags: str, core: int = 0, code: str | None = None):
    """A ``tfserve`` process on one core; yields its REST port once every model is AVAILABLE.

    ``code`` is a checkout of the project to run instead of this one (first on PYTHONPATH).
    """
    with tfserve_process(*flags, core=core, code=code) as (port, _process):
        yield port


@contextmanager
def tfserve_process(*flags: str, core: int | str = 0, code: str | None = None):
    """:func:`tfserve`, yielding ``(port, process)`` for benchmarks that read the process's CPU time."""
    port = free_port()
    cmd = [
        *pinned(core),
        sys.executable,
        "-m",
        "jupyter_tfserve.cli",
        "--port=0",
        f"--rest_api_port={port}",
        *TF_THREADS,
        *flags,
    ]
    env = None
    if code is not None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([code, os.environ.get("PYTHONPATH", "")]),
        }
    # ``python -m`` puts the working directory first on sys.path, before PYTHONPATH: run in
    # ``code`` so that a benchmark started from another checkout serves ``code``, not itself.
    process = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=code
    )
    PIDS[port] = process.pid
    try:
        wait_http(f"http://127.0.0.1:{port}/tfserve/api/ready")
        yield port, process
    finally:
        PIDS.pop(port, None)
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_port(port: int, timeout: float = 60.0) -> None:
    """Until something accepts connections on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not open after {timeout}s")


@contextmanager
def process_on_core(cmd: list[str], ready: str | int, core: int = 0):
    """A process pinned to ``core``, yielded once ``ready`` (a URL answering 200, or a port) is."""
    process = subprocess.Popen(
        [*pinned(core), *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    port = ready if isinstance(ready, int) else urllib.parse.urlsplit(ready).port
    PIDS[port] = process.pid
    try:
        if isinstance(ready, int):
            wait_port(ready)
        else:
            wait_http(ready, expect_status=200)
        yield
    finally:
        PIDS.pop(port, None)
        process.terminate()
        process.wait(30)


def loadgen(
    url: str,
    body: str,
    *,
    concurrency: int,
    row_dim: int = 784,
    duration: float = 8.0,
    warmup: float = 2.0,
    core: int = 1,
    expect: str | None = None,
) -> dict:
    """Run the closed-loop load generator pinned to ``core``; returns its JSON result."""
    cmd = [
        *pinned(core),
        sys.executable,
        LOADGEN,
        "--url",
        url,
        "--body",
        body,
        "--row-dim",
        str(row_dim),
        "-c",
        str(concurrency),
        "-d",
        str(duration),
        "-w",
        str(warmup),
    ]
    if expect:
        cmd += ["--expect", expect]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


WRK = shutil.which("wrk")
WRK_SCRIPT = os.path.join(HERE, "post.lua")
WRK_MISSING = "wrk not installed (apt-get install wrk): the wrk-measured ceiling is skipped"
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def one_row_body(template: str, row_dim: int = 784, seed: int = 0) -> str:
    """``template`` with ``{{ROW}}`` replaced by one row of random values, as the load generator makes."""
    rng = random.Random(seed)
    return template.replace("{{ROW}}", json.dumps([round(rng.random(), 6) for _ in range(row_dim)]))


def wrk(
    url: str,
    body: str,
    *,
    concurrency: int,
    duration: float = 8.0,
    warmup: float = 2.0,
    core: int = 1,
) -> dict | None:
    """POST ``body`` (``{{ROW}}`` filled once) with ``wrk`` pinned to ``core``: one thread, C connections.

    ``wrk`` is C: it is the client that can drive a bare uvicorn app to its
    limit, where the Python load generator saturates its own core first.
    Returns the load generator's keys (throughput, p50/p99, errors) and, for a
    server this harness started, its CPU microseconds per request; None when
    ``wrk`` is not installed.
    """
    if WRK is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json") as body_file:
        body_file.write(one_row_body(body))
        body_file.flush()
        env = {**os.environ, "WRK_BODY_FILE": body_file.name}

        def run(seconds: float) -> str:
            cmd = [*pinned(core), WRK, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
            cmd += ["--latency", "-s", WRK_SCRIPT, url]
            return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout

        if warmup:
            run(warmup)
        pid = PIDS.get(urllib.parse.urlsplit(url).port)
        cpu_before = cpu_seconds(pid) if pid else None
        out = run(duration)
        cpu = cpu_seconds(pid) - cpu_before if pid else None
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "throughput_rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        # Server CPU per answer: steadier than req/s on a shared core (None: not our server).
        "server_cpu_us": cpu / requests * 1e6 if cpu is not None and requests else None,
        "p50_ms": _ms(latency.get("50")),
        "p99_ms": _ms(latency.get("99")),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


H2LOAD = shutil.which("h2load")
H2LOAD_MISSING = (
    "h2load not installed (apt-get install nghttp2-client): the C-client gRPC rows are skipped"
)


def h2load(
    port: int,
    method: str,
    message: bytes,
    *,
    concurrency: int,
    streams: int = 1,
    duration: float = 8.0,
    warmup: float = 2.0,
    core: int = 1,
) -> dict | None:
    """Unary gRPC calls of one serialized ``message`` to ``method`` from ``h2load`` (nghttp2's C client).

    gRPC is HTTP/2: a call is a POST of the message in gRPC's 5-byte framing.
    ``concurrency`` connections carry ``streams`` calls at once each (one
    channel multiplexing 32 calls: ``concurrency=1, streams=32``). It is the
    gRPC counterpart of :func:`wrk`: the Python gRPC client saturates its core
    before grpcio's server does. h2load reads HTTP statuses, not gRPC ones, so
    ``answer_bytes`` (DATA bytes per call) is reported: a call that failed has
    none. Returns the keys of :func:`wrk`; None when ``h2load`` is not installed.
    """
    if H2LOAD is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".grpc") as body_file:
        body_file.write(b"\0" + len(message).to_bytes(4, "big") + message)
        body_file.flush()

        def run(seconds: float) -> str:
            cmd = [*pinned(core), H2LOAD, "-c", str(concurrency), "-m", str(streams)]
            cmd += ["-D", str(max(1, round(seconds))), "-d", body_file.name]
            cmd += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
            cmd += [f"http://127.0.0.1:{port}{method}"]
            return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

        if warmup:
            run(warmup)
        pid = PIDS.get(port)
        cpu_before = cpu_seconds(pid) if pid else None
        out = run(duration)
        cpu = cpu_seconds(pid) - cpu_before if pid else None
    done = re.search(r"requests: .*?(\d+) succeeded, (\d+) failed", out)
    succeeded = int(done.group(1)) if done else 0
    data = re.search(r"traffic: .*?\(\d+\) headers.*?\((\d+)\) data", out)
    latency = re.search(r"time for request:\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)", out)
    return {
        "throughput_rps": float(re.search(r"finished in .*?, ([\d.]+) req/s", out).group(1)),
        "server_cpu_us": cpu / succeeded * 1e6 if cpu is not None and succeeded else None,
        "p50_ms": None,  # h2load reports min, max and mean latency, no percentiles
        "p99_ms": None,
        "mean_ms": _ms(latency.group(3)) if latency else None,
        "errors": int(done.group(2)) if done else 0,
        "answer_bytes": int(data.group(1)) / succeeded if data and succeeded else 0.0,
    }


def _ms(text: str | None) -> float | None:
    if text is None:
        return None
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(number) * _UNITS_MS[unit]


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)
