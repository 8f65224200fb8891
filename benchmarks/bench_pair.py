"""This checkout against a baseline, two servers only, in short alternating ``wrk`` runs.

``bench_ab`` keeps four model servers and the bare app up at once and measures
each variant for 8 s per round; on a host whose speed drifts within minutes,
its batched rows could not resolve a 20% difference in server CPU. Here only
the two batched MLP 784-512-512-10 servers run (core 0), and they take turns
for ``--rounds`` short runs (``wrk`` on core 1, C=32), so every round is a
pair measured seconds apart. Each run prints the server's CPU microseconds
per request, split by thread (named by ``py-spy dump`` where py-spy is
installed), and its p99 latency; the summary gives each checkout's median and
best, and the ratio of medians.

Run::

    git -C /path/to/repo archive main | tar -x -C /tmp/base
    python benchmarks/bench_pair.py --baseline /tmp/base [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402

THIS = os.path.dirname(HERE)
BODY = '{"instances": [{{ROW}}]}'
SECONDS = 5  # one measured run


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, read by ``py-spy dump`` (empty without py-spy)."""
    if shutil.which("py-spy") is None:
        return {}
    dump = subprocess.run(["py-spy", "dump", "-p", str(pid)], capture_output=True, text=True)
    return {
        int(tid): name for tid, name in re.findall(r'Thread (\d+) \(\w+\): "([^"]+)"', dump.stdout)
    }


def thread_ticks(pid: int, names: dict[int, str]) -> dict[str, int]:
    """CPU clock ticks (user + system) of each named thread of ``pid``, the rest as "other"."""
    ticks: dict[str, int] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        name = names.get(int(task), "other")
        ticks[name] = ticks.get(name, 0) + int(fields[11]) + int(fields[12])
    return ticks


def run(baseline: str, rounds: int) -> dict:
    if harness.WRK is None:
        print(harness.WRK_MISSING, file=sys.stderr)
        return {}
    per_tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = os.path.join(tmp, "mlp")
        models.mlp(base)
        flags = ["--model_name=mlp", f"--model_base_path={base}", "--enable_batching"]
        servers = {}
        for label, code in (("this", THIS), ("baseline", baseline)):
            port, process = stack.enter_context(harness.tfserve_process(*flags, code=code))
            servers[label] = (port, process.pid, thread_names(process.pid))
        for port, _pid, _names in servers.values():  # a first batch of requests, not measured
            harness.wrk(
                f"http://127.0.0.1:{port}/v1/models/mlp:predict",
                BODY,
                concurrency=32,
                duration=2,
                warmup=0,
            )
        runs: dict[str, list[dict]] = {label: [] for label in servers}
        for round_ in range(rounds):
            for label, (port, pid, names) in servers.items():
                before = thread_ticks(pid, names)
                result = harness.wrk(
                    f"http://127.0.0.1:{port}/v1/models/mlp:predict",
                    BODY,
                    concurrency=32,
                    duration=SECONDS,
                    warmup=0,
                )
                after = thread_ticks(pid, names)
                answers = result["throughput_rps"] * SECONDS
                row = {
                    "round": round_,
                    "checkout": label,
                    "req/s": result["throughput_rps"],
                    "p99_ms": result["p99_ms"],
                    "cpu_us/req": result["server_cpu_us"],
                    "errors": result["errors"],
                    "threads_us/req": {
                        name: round((ticks - before.get(name, 0)) * per_tick_us / answers, 1)
                        for name, ticks in after.items()
                        if ticks > before.get(name, 0)
                    },
                }
                runs[label].append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for label, rows in runs.items():
        cpu = [r["cpu_us/req"] for r in rows]
        rate = [r["req/s"] for r in rows]
        summary[label] = {
            "cpu_us/req median": statistics.median(cpu),
            "cpu_us/req best": min(cpu),
            "req/s median": statistics.median(rate),
            "p99_ms median": statistics.median(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
        }
    summary["this/baseline cpu per request (medians)"] = (
        summary["this"]["cpu_us/req median"] / summary["baseline"]["cpu_us/req median"]
    )
    summary["this/baseline req/s (medians)"] = (
        summary["this"]["req/s median"] / summary["baseline"]["req/s median"]
    )
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a checkout of the project")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    run(args.baseline, args.rounds)
