"""``tfserve``: a drop-in for ``tensorflow_model_server``, plus a few subcommands of our own.

The flags, their spellings (``--flag=value``, ``--flag=true``) and defaults are
TF Serving's, so existing launch scripts, Dockerfiles' CMD lines and
Kubernetes args work unchanged. Subcommands (``demo``, ``deploy``, ``sync``)
never collide with them because TF Serving takes no positional arguments.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading

from ._version import __version__
from .core.options import ServerOptions, flag_options, option_names, usage_problem

SUBCOMMANDS = ("demo", "deploy", "sync", "bench", "token")


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# What `tfserve --help` says first: the subcommands, one line each, and examples.
OVERVIEW = """\
TensorFlow Serving-compatible model server (REST + gRPC): tensorflow_model_server's flags, plus:

subcommands (see 'tfserve SUBCOMMAND --help'):
  demo     export TF Serving's half_plus_two demo model and serve it on 8500 (gRPC) and 8501 (REST)
  bench    benchmark a served model; 'tfserve bench tune MODEL --p99 20ms' searches batching parameters
  deploy   write Kubernetes or KServe manifests for the models (applies nothing)
  sync     copy the served version directories to a volume, with checksums
  token    print the Jupyter token the model server in Jupyter requires (for $(tfserve token) in shell lines)

examples:
  tfserve demo
  tfserve --model_name=mnist --model_base_path=/models/mnist --rest_api_port=8501
  tfserve --model_config_file=models.config --enable_batching --rest_api_port=8501
  tfserve bench mnist --concurrency 1:32:x2
  tfserve deploy --model_config_file models.config --out k8s --pvc models
"""


def build_parser(
    prog: str = "tfserve", only: tuple[str, ...] | None = None
) -> argparse.ArgumentParser:
    """The server's flags, derived from ServerOptions (``only``: just these, for a subcommand that takes a few)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [SUBCOMMAND ...] | {prog} [--flag=value ...]" if only is None else None,
        description=OVERVIEW if only is None else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    for spec in flag_options():
        if only is not None and spec.name not in only:
            continue
        if spec.type is bool:
            add(
                f"--{spec.name}",
                type=_bool,
                nargs="?",
                const=True,
                default=spec.default,
                help=spec.help,
            )
        else:
            add(f"--{spec.name}", type=spec.type, default=spec.default, help=spec.help)
    add("--version", action="version", version=f"tfserve {__version__}")
    return parser


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    fields = option_names()
    return ServerOptions(**{k: v for k, v in vars(args).items() if k in fields})


def taken_port(options) -> str | None:
    """The first port these options would open that something else already listens on, said with its flag.

    Checked before any model is exported or loaded, so a busy port is reported
    at once, not after minutes of loading (and not as a bare ``[Errno 98]``).
    """
    from .ports import port_owner, port_taken

    for flag, host, port in (
        ("--rest_api_port", options.rest_api_host, options.rest_api_port),
        ("--port", options.grpc_host, options.port),
    ):
        if port and port_taken(host, port):
            owner = port_owner(port)
            return (
                f"port {port} ({flag}) is already in use"
                + (f" by {owner}" if owner else "")
                + f": stop that, or pick another port with {flag}=PORT"
            )
    return None


def serve_forever(options, banner=None) -> int:
    """Start a ModelServer with these options and block until SIGINT/SIGTERM."""
    from .core.status import ServingError
    from .server import ModelServer

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = ModelServer(options)
        server.start()
    except ServingError as exc:
        print(f"tfserve: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tfserve: could not open a port: {exc}", file=sys.stderr)
        return 1
    # TensorFlow and the models just loaded are millions of objects that live as long as
    # the process: frozen, the collector stops walking them on every full collection.
    gc.freeze()
    if server.rest_port:
        print(
            f"Exporting HTTP/REST API at:{options.rest_api_host}:{server.rest_port} ...", flush=True
        )
    if banner:
        print(banner(server), flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if argv and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS:
        # TF Serving takes no positional arguments: a bare word is a mistyped subcommand.
        from .suggest import unknown_command

        print(f"tfserve: {unknown_command(argv[0], SUBCOMMANDS)}", file=sys.stderr)
        return 2
    if argv and argv[0] in SUBCOMMANDS:
        command, rest = argv[0], argv[1:]
        if command == "demo":
            from .demo import main as demo_main

            return demo_main(rest)
        if command == "bench":
            from .bench.cli import main as bench_main

            return bench_main(rest)
        if command == "token":
            from .token_cli import main as token_main

            return token_main(rest)
        from .deploy.cli import main as deploy_main

        return deploy_main([command, *rest])
    parser = build_parser()
    args = parser.parse_args(argv)
    options = options_from_args(args)
    problem = usage_problem(options)
    if problem:
        print(f"tfserve: {problem}\n\n{parser.format_usage()}", file=sys.stderr)
        return 2
    busy = taken_port(options)
    if busy:
        print(f"tfserve: {busy}", file=sys.stderr)
        return 1
    return serve_forever(options)


if __name__ == "__main__":
    sys.exit(main())
