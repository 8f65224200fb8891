"""``tfserve bench``: the benchmark and the batching tuner from a shell.

The argument definitions are shared with ``%tfserve benchmark`` and
``%tfserve tune`` (:func:`add_benchmark_arguments`, :func:`add_tune_arguments`
and the ``*_options`` helpers), so a command line pasted between a terminal and
a notebook means the same thing in both.

Exit status: 0 done, 2 bad input (said before any load), 1 no setting met the
tuner's SLO, 130 interrupted (the levels finished so far are still printed).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from .options import BenchError, BenchmarkOptions, TuneOptions, parse_duration

# Where a shell user's server usually is: tensorflow_model_server's (and ``tfserve demo``'s) REST port.
DEFAULT_URL = "http://localhost:8501"


def _stability(text: str) -> float:
    value = float(text.rstrip("%"))
    return value / 100 if text.endswith("%") or value >= 1 else value


def add_target_arguments(parser: argparse.ArgumentParser, text=str) -> None:
    """The model, the server and the request content; ``text`` converts string values (the magic unquotes)."""
    add = parser.add_argument
    add("model", type=text, help="name of the served model")
    add(
        "--url",
        type=text,
        default=None,
        help="REST root of the server (default: the one this process finds; tfserve bench then tries "
        "http://localhost:8501)",
    )
    add("--token", type=text, default=None, help="token of a Jupyter server")
    add(
        "--grpc",
        type=text,
        default=None,
        metavar="HOST:PORT",
        help="gRPC address (with --protocol grpc)",
    )
    add(
        "--protocol",
        choices=("rest", "grpc"),
        default=None,
        help="default: rest, or grpc when only --grpc is given",
    )
    add("--version", type=int, default=None)
    add("--label", type=text, default=None)
    add("--signature", type=text, default="serving_default")
    add("--rows", type=int, default=1, help="rows per request (default 1)")
    add(
        "--data",
        type=text,
        default="random",
        help="zeros, random (matching the signature), or a sample: a .npy or .csv file "
        "(in a notebook: a variable or expression)",
    )
    add("--warmup", type=text, default=None, help="warm-up per level, e.g. 1s")
    add("--warmup-requests", type=int, default=None, help="warm up for this many requests instead")
    add("--window", type=text, default=None, help="measurement window, e.g. 1s")
    add("--window-requests", type=int, default=None, help="windows of this many requests instead")
    add(
        "--max-trials",
        type=int,
        default=None,
        help="most windows per level before it is called unstable",
    )
    add("--timeout", type=text, default="30s", help="per-request timeout")
    add("--workers", type=int, default=1, help="load-generator processes")
    add("--quiet", action="store_true", help="no progress display")


def add_benchmark_arguments(parser: argparse.ArgumentParser, text=str) -> None:
    add_target_arguments(parser, text)
    add = parser.add_argument
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--concurrency",
        "-c",
        type=text,
        default="1:16:x2",
        help="closed-loop levels: 1:64:x2, 4:32:+4, 1,8,32 (default 1:16:x2)",
    )
    load.add_argument(
        "--rate", type=text, default=None, help="open-loop request rates (req/s): 200, 100:400:+100"
    )
    add(
        "--distribution",
        choices=("constant", "poisson"),
        default="constant",
        help="open-loop arrivals",
    )
    add(
        "--stability",
        type=_stability,
        default=0.10,
        help="how close the last 3 windows must be (default 10%%)",
    )
    add("--max-connections", type=int, default=256, help="open loop: most connections in flight")
    add("--compare-batching", action="store_true", help="run the sweep with batching off, then on")
    add(
        "--replay",
        type=text,
        default=None,
        metavar="PREFIX*",
        help="send the predict, classify or regress requests of a request log (its logging_config "
        "prefix or a glob) for --signature and compare the answers with the logged ones "
        "(classify/regress over REST); --rate logged replays at the logged rate",
    )
    add(
        "--tolerance",
        type=float,
        default=1e-5,
        help="replay: largest absolute difference that agrees",
    )
    add("--csv", type=text, default=None, metavar="PATH", help="write perf_analyzer-style CSV")
    add("--plot", type=text, default=None, metavar="PATH", help="save the plots (png, svg, pdf)")


def add_tune_arguments(parser: argparse.ArgumentParser, text=str) -> None:
    add_target_arguments(parser, text)
    add = parser.add_argument
    add("--p99", type=text, required=True, help="the p99 latency SLO, e.g. 20ms")
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--concurrency", "-c", type=text, default="32", help="the load to tune for (default 32)"
    )
    load.add_argument("--rate", type=text, default=None, help="or an open-loop rate (req/s)")
    add(
        "--max-batch-size",
        type=text,
        default=None,
        help="candidates, e.g. 1:128:x2 (default: powers of two)",
    )
    add("--batch-timeout-micros", type=text, default=None, help="candidates, e.g. 0,500,1000,2000")
    add("--num-batch-threads", type=text, default=None, help="candidates, e.g. 1,2")
    add("--no-apply", action="store_true", help="restore the original parameters afterwards")
    add(
        "--output",
        type=text,
        default="batching_parameters.txt",
        help="where to write the choice ('' for nowhere)",
    )
    add("--plot", type=text, default=None, metavar="PATH", help="save the search plot")


def _data(text: str):
    if text in ("zeros", "random"):
        return text
    if not os.path.exists(text):
        raise BenchError(
            f"--data must be zeros, random or a .npy/.csv file; {text!r} does not exist"
        )
    if text.endswith(".npy"):
        import numpy as np

        return np.load(text, allow_pickle=False)
    if text.endswith(".csv"):
        import pandas as pd

        return pd.read_csv(text)
    raise BenchError(f"--data file must be .npy or .csv, not {text!r}")


def _common_kwargs(args: argparse.Namespace, data) -> dict:
    kwargs = {
        "url": args.url,
        "token": args.token,
        "grpc": args.grpc,
        "protocol": args.protocol,
        "version": args.version,
        "label": args.label,
        "signature": args.signature,
        "rows": args.rows,
        "data": _data(args.data) if data is None else data,
        "timeout": parse_duration(args.timeout, what="timeout"),
        "workers": args.workers,
        "warmup_requests": args.warmup_requests,
        "window_requests": args.window_requests,
    }
    for name in ("warmup", "window", "max_trials"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def benchmark_options(args: argparse.Namespace, data=None) -> BenchmarkOptions:
    """The options of :func:`~jupyter_tfserve.bench.benchmark` from parsed arguments.

    ``data`` replaces ``--data`` (the magic evaluates it in the user's namespace)."""
    return BenchmarkOptions(
        **{
            **_common_kwargs(args, data),
            "concurrency": args.concurrency,
            "rate": args.rate,
            "distribution": args.distribution,
            "stability": args.stability,
            "max_connections": args.max_connections,
            "compare_batching": args.compare_batching,
            "replay": args.replay,
            "tolerance": args.tolerance,
        }
    )


def tune_options(args: argparse.Namespace, data=None) -> TuneOptions:
    """The options of :func:`~jupyter_tfserve.bench.tune` from parsed arguments."""
    kwargs = {
        **_common_kwargs(args, data),
        "p99": args.p99,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "apply": not args.no_apply,
        "output": args.output or None,
    }
    for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return TuneOptions(**kwargs)


def build_parser(prog: str = "tfserve bench") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark a model on any TF Serving-compatible server (REST or gRPC) from worker "
        "processes, or search its batching parameters ('tfserve bench tune MODEL --p99 20ms').",
    )
    add_benchmark_arguments(parser)
    parser.add_argument(
        "--wide",
        action="store_true",
        help="print every column of the table (default: the ones that fit 100 columns)",
    )
    return parser


def build_tune_parser(prog: str = "tfserve bench tune") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Find the batching parameters with the most throughput under a p99 SLO, apply them "
        "live and write batching_parameters.txt.",
    )
    add_tune_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tuning = bool(argv) and argv[0] == "tune"
    parser = build_tune_parser() if tuning else build_parser()
    args = parser.parse_args(argv[1:] if tuning else argv)
    defaulted = args.url is None and args.grpc is None and _nothing_discovered()
    if defaulted:
        args.url = DEFAULT_URL
    progress = None if args.quiet else _stderr_progress()
    from . import api, tuner

    try:
        if tuning:
            result = tuner.tune(args.model, replace(tune_options(args), progress=progress))
        else:
            options = replace(benchmark_options(args), progress=progress)
            result = api.benchmark(args.model, options)
    except BenchError as exc:
        message = str(exc)
        if defaulted and message.startswith("cannot reach"):
            message = (
                f"no model server found: none was discovered and nothing answers at {DEFAULT_URL} "
                "(TF Serving's REST port); start one, or pass --url http://HOST:PORT"
            )
        print(f"tfserve bench: {message}", file=sys.stderr)
        return 2
    print(result if tuning else result.to_text(wide=args.wide))
    if not tuning and args.csv:
        result.to_csv(args.csv)
    if args.plot:
        result.plot(args.plot)
    if result.interrupted:
        return 130
    return 1 if tuning and result.best is None else 0


def _nothing_discovered() -> bool:
    """True when no Jupyter server or ``TFSERVE_URL`` names a server: then TF Serving's own port is tried."""
    from ..client.discovery import discover

    return discover() is None


def _stderr_progress():
    from .progress import TextProgress

    return TextProgress(sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
