"""Shared benchmark plumbing: pinned server processes, the load generator, readiness, tables.

Measurement rules of this project: the server runs on core 0 and the load
generator on core 1 (``taskset``), TensorFlow gets the same thread settings in
every variant, variants are compared within one run, and we quote ratios.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
LOADGEN = os.environ.get(
    "TFSERVE_LOADGEN", os.path.join(HERE, "..", "..", "shared", "bench", "loadgen.py")
)
TF_THREADS = ["--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1"]


def pinned(core: int) -> list[str]:
    """``taskset -c CORE`` when available and the machine has more than one core."""
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
def tfserve(*flags: str, core: int = 0):
    """A ``tfserve`` process on one core; yields its REST port once every model is AVAILABLE."""
    with tfserve_process(*flags, core=core) as (_process, port):
        yield port


@contextmanager
def tfserve_process(*flags: str, core: int = 0):
    """Like :func:`tfserve`, yielding ``(process, rest_port)``: for benchmarks that watch the process."""
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
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/tfserve/api/ready")
        yield process, port
    finally:
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
    try:
        if isinstance(ready, int):
            wait_port(ready)
        else:
            wait_http(ready, expect_status=200)
        yield
    finally:
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


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)
