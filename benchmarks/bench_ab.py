"""This checkout against another (``--baseline DIR``), interleaved in one run, with the wrk ceiling beside.

For each checkout, a batched and an unbatched ``tfserve`` serving the MLP
784-512-512-10 (``--heavy``: 784-2048-2048-10), every server on core 0 and
the load on core 1, all up at once. Each round measures every variant once,
in turn, so a burst of load from elsewhere spoils one run of each variant
rather than one variant:

* the bare uvicorn app (no model) driven by ``wrk``: the ceiling;
* batched at C=32 with ``wrk`` and with the Python load generator;
* unbatched at C=32 with ``wrk``;
* unbatched at C=1 (the load generator's p50).

It prints each variant's median and spread (min-max) over the rounds, the
server's median CPU microseconds per request under ``wrk`` (what a request
costs the server's core, much steadier than req/s on a shared machine), then
the ratios: this checkout over the baseline for every variant, batched over
the ceiling, batched over unbatched (every round, for ``--heavy``).

Run (baseline = the main branch's code, unpacked beside)::

    git -C /path/to/repo archive main | tar -x -C /tmp/base
    python benchmarks/bench_ab.py --baseline /tmp/base [--rounds 3] [--heavy]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402
from bench_batching import BARE_ASGI, ROUNDS, Variant, bare  # noqa: E402

THIS = os.path.dirname(HERE)


def servers(stack: ExitStack, label: str, code: str, base: str) -> list[Variant]:
    flags = ["--model_name=mlp", f"--model_base_path={base}"]
    batched = stack.enter_context(harness.tfserve(*flags, "--enable_batching", code=code))
    unbatched = stack.enter_context(harness.tfserve(*flags, code=code))
    url = "http://127.0.0.1:{}/v1/models/mlp:predict".format
    variants = [
        Variant(f"{label} batched", url(batched), 32),
        Variant(f"{label} unbatched", url(unbatched), 1),
    ]
    if harness.WRK:
        variants += [
            Variant(f"{label} batched", url(batched), 32).with_wrk(),
            Variant(f"{label} unbatched", url(unbatched), 32).with_wrk(),
        ]
    return variants


def summarize(variant: Variant) -> dict:
    key = "p50_ms" if variant.concurrency == 1 else "req/s"
    values = [r[key] for r in variant.runs]
    cpu = [r["cpu_us/req"] for r in variant.runs if r.get("cpu_us/req") is not None]
    return {
        "variant": variant.name,
        "C": variant.concurrency,
        "measure": key,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
        "errors": sum(r["errors"] for r in variant.runs),
        "cpu_us/req": statistics.median(cpu) if cpu else None,
        "cpu_runs": cpu,
    }


def run(baseline: str | None, rounds: int = ROUNDS, heavy: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = os.path.join(tmp, "mlp")
        models.mlp(base, hidden=2048 if heavy else 512)
        variants = []
        if harness.WRK:
            variants += [v.with_wrk() for v in bare(stack, BARE_ASGI, "bare ASGI (no model)")]
        else:
            print(harness.WRK_MISSING, file=sys.stderr)
        checkouts = [("this", THIS)] + ([("baseline", baseline)] if baseline else [])
        for label, code in checkouts:
            variants += servers(stack, label, code, base)
        for _ in range(rounds):
            for variant in variants:
                variant.measure()
    rows = {v.name: summarize(v) for v in variants}
    columns = ["variant", "C", "measure", "median", "min", "max", "cpu_us/req"]
    print(harness.table(list(rows.values()), columns))
    ratios = {}
    for name, row in rows.items():
        if name.startswith("this ") and "baseline" + name[4:] in rows:
            ratios[f"this/baseline {name[5:]} C={row['C']} {row['measure']}"] = (
                row["median"] / rows["baseline" + name[4:]]["median"]
            )
            if row["cpu_us/req"] and rows["baseline" + name[4:]]["cpu_us/req"]:
                ratios[f"this/baseline {name[5:]} C={row['C']} server CPU per request"] = (
                    row["cpu_us/req"] / rows["baseline" + name[4:]]["cpu_us/req"]
                )
    ceiling = rows.get("bare ASGI (no model) [wrk]")
    for label, _ in checkouts:
        batched, unbatched = (
            rows.get(f"{label} batched [wrk]"),
            rows.get(f"{label} unbatched [wrk]"),
        )
        if ceiling and batched:
            ratios[f"{label} batched [wrk] / ceiling"] = batched["median"] / ceiling["median"]
        if batched and unbatched:
            ratios[f"{label} batched/unbatched [wrk], each round"] = [
                b / u if u else None  # None: a run that got no answers at all
                for b, u in zip(batched["runs"], unbatched["runs"], strict=True)
            ]
    summary = {"rows": rows, "ratios": ratios}
    print(json.dumps(ratios, indent=2))
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a checkout of the project to compare with")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--heavy", action="store_true", help="MLP 784-2048-2048-10")
    args = parser.parse_args()
    run(args.baseline, args.rounds, args.heavy)
