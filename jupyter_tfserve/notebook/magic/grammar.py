"""The grammar of ``%tfserve``: its subcommands, their arguments and help, as one argparse parser."""

from __future__ import annotations

import argparse
import sys

from ..optimize import OPTIMIZATIONS
from .errors import HelpShown, TFServeError
from .quoting import unquote


class Parser(argparse.ArgumentParser):
    """argparse that reports a mistake as a one-line :class:`TFServeError` instead of exiting the kernel."""

    def error(self, message: str):
        raise TFServeError(f"{message} (see '{self.prog} --help')")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            print(message, file=sys.stderr)
        raise HelpShown()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="%tfserve",
        description="Export, serve and query TensorFlow models from a notebook. "
        "Separate several commands with ' ; '.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)

    p = sub.add_parser("export", help="write a live model as the next version of NAME")
    p.add_argument(
        "model", metavar="VAR", help="the model: a Keras model, tf.Module or concrete function"
    )
    p.add_argument(
        "--name", required=True, type=unquote, help="model name (a directory under models_root)"
    )
    p.add_argument("--version", type=int, help="version number (default: the next one)")
    p.add_argument(
        "--signature",
        action="append",
        type=unquote,
        metavar="KEY[=METHOD]",
        help="signature key; for a tf.Module, KEY=method or method (repeatable)",
    )
    p.add_argument(
        "--sample", metavar="DATA_VAR", help="sample input: writes warmup records and checks parity"
    )
    p.add_argument("--tolerance", type=float, help="parity tolerance (max abs difference)")
    p.add_argument(
        "--warmup-from",
        type=unquote,
        metavar="PREFIX*",
        help="warm the new version up with a sample of a request log's requests",
    )
    p.add_argument(
        "--warmup-records",
        type=int,
        default=100,
        help="logged requests to warm up with (default 100)",
    )
    p.add_argument(
        "--optimize",
        choices=OPTIMIZATIONS,
        help="publish a TensorFlow Lite conversion instead, compared with the float32 SavedModel "
        "(int8 calibrates on --sample)",
    )

    p = sub.add_parser("serve", help="serve NAME (from models_root/NAME or PATH)")
    p.add_argument("name", type=unquote)
    p.add_argument("path", nargs="?", type=unquote, help="base path of the version directories")
    p.add_argument(
        "--policy", type=unquote, help="latest:N | all | specific:1,2 (default latest:1)"
    )
    p.add_argument(
        "--no-wait", action="store_true", help="return without waiting for a version to load"
    )

    sub.add_parser("list", help="served models with versions, states and labels")

    p = sub.add_parser("status", help="the server (or one model's versions)")
    p.add_argument("name", nargs="?", type=unquote)

    p = sub.add_parser(
        "predict",
        help="predict on DATA (an expression); %%%%tfserve predict NAME takes a JSON body",
    )
    p.add_argument("name", type=unquote)
    p.add_argument(
        "data", nargs="*", metavar="DATA", help="a Python expression (array, DataFrame, dict, list)"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label", type=unquote)
    p.add_argument("--signature", type=unquote, help="signature name (default serving_default)")
    p.add_argument("--grpc", action="store_true", help="send over gRPC instead of REST")

    p = sub.add_parser("versions", help="every version of NAME with state, labels and errors")
    p.add_argument("name", type=unquote)

    p = sub.add_parser("label", help="point LABEL of NAME at VERSION (or --remove it)")
    p.add_argument("name", type=unquote)
    p.add_argument("label", type=unquote)
    p.add_argument("version", type=int, nargs="?")
    p.add_argument("--remove", action="store_true")

    p = sub.add_parser("rollback", help="serve the previous version of NAME again")
    p.add_argument("name", type=unquote)

    p = sub.add_parser("unload", help="stop serving NAME")
    p.add_argument("name", type=unquote)

    p = sub.add_parser("inspect", help="signatures of a SavedModel path or a model name")
    p.add_argument("target", metavar="PATH_OR_NAME", type=unquote)

    p = sub.add_parser("metrics", help="request counts and latencies (of NAME)")
    p.add_argument("name", nargs="?", type=unquote)

    p = sub.add_parser(
        "logs", help="NAME's logged requests (its logging_config) as a table, newest last"
    )
    p.add_argument(
        "name", type=unquote, help="model name, or a log prefix or glob such as /logs/mnist*"
    )
    p.add_argument("--since", type=unquote, help="only records newer than this, e.g. 90s or 10m")
    p.add_argument("--limit", type=int, default=20, help="the most recent N records (default 20)")

    p = sub.add_parser("snippet", help="curl, requests and gRPC code for NAME, ready to paste")
    p.add_argument("name", type=unquote)

    sub.add_parser(
        "dashboard", help="a live table of models with unload/label/rollback/reload buttons"
    )

    p = sub.add_parser(
        "compare", help="send the same DATA to two versions or labels of NAME: agreement, latency"
    )
    p.add_argument("name", type=unquote)
    p.add_argument(
        "a", metavar="A", type=unquote, help="a version number or a label (the reference)"
    )
    p.add_argument(
        "b", metavar="B", type=unquote, help="a version number or a label (the candidate)"
    )
    p.add_argument(
        "--data", required=True, metavar="EXPR", help="rows to send: a Python expression"
    )
    p.add_argument("--signature", type=unquote, help="signature name (default serving_default)")
    p.add_argument("--grpc", action="store_true", help="send over gRPC instead of REST")
    p.add_argument(
        "--requests",
        type=int,
        default=20,
        help="one-row requests per side for latency (default 20)",
    )

    p = sub.add_parser(
        "deploy", help="Kubernetes or KServe manifests for the served models (nothing applied)"
    )
    from ...deploy.flags import add_deploy_arguments

    add_deploy_arguments(p, text=unquote)

    from ...bench.cli import add_benchmark_arguments, add_tune_arguments

    p = sub.add_parser(
        "benchmark", help="load-test NAME from worker processes: throughput, latency, batch sizes"
    )
    add_benchmark_arguments(p, text=unquote)
    p = sub.add_parser(
        "tune", help="find NAME's batching parameters with the most throughput under --p99"
    )
    add_tune_arguments(p, text=unquote)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommand names of ``parser``, in the order they were added."""
    return next(
        list(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
