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

from . import __version__

SUBCOMMANDS = ("demo", "deploy", "sync", "bench")


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser(prog: str = "tfserve") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="TensorFlow Serving-compatible model server (REST + gRPC). "
        f"Subcommands: {', '.join(SUBCOMMANDS)} (see '{prog} SUBCOMMAND --help').",
    )
    add = parser.add_argument

    def flag(name, default, help, type=None):
        if isinstance(default, bool):
            add(f"--{name}", type=_bool, nargs="?", const=True, default=default, help=help)
        else:
            add(f"--{name}", type=type or type_of(default), default=default, help=help)

    def type_of(default):
        return int if isinstance(default, int) else float if isinstance(default, float) else str

    flag("port", 8500, "TCP port for gRPC (0 = off)")
    flag("grpc_socket_path", "", "Unix domain socket for gRPC, served alongside --port")
    flag("grpc_channel_arguments", "", "comma-separated gRPC channel arguments key=value")
    flag("grpc_max_threads", 0, "maximum concurrent gRPC handlers (0 = default)")
    flag("enable_grpc_healthcheck_service", False, "serve grpc.health.v1")
    flag("ssl_config_file", "", "SSLConfig text proto for gRPC TLS")
    flag("rest_api_port", 0, "HTTP/REST port (0 = off)")
    flag("rest_api_host", "127.0.0.1", "address the REST port binds to (0.0.0.0 to expose it)")
    flag("grpc_host", "127.0.0.1", "address the gRPC port binds to (0.0.0.0 to expose it)")
    flag("rest_api_num_threads", 0, "REST handler threads (accepted for compatibility)")
    flag("rest_api_timeout_in_ms", 30000, "timeout for REST requests")
    flag("rest_api_enable_cors_support", False, "answer CORS preflight and add CORS headers")
    flag("model_name", "default", "name of the model served with --model_base_path")
    flag("model_base_path", "", "absolute path of a model's version directories")
    flag("model_config_file", "", "ModelServerConfig text proto (models.config)")
    flag("model_config_file_poll_wait_seconds", 0, "re-read --model_config_file this often (0 = never)")
    flag("monitoring_config_file", "", "MonitoringConfig text proto (Prometheus endpoint)")
    flag("file_system_poll_wait_seconds", 1, "poll model base paths for new versions this often")
    flag("allow_version_labels_for_unavailable_models", False, "allow new labels on versions not yet loaded")
    flag("max_num_load_retries", 5, "retries of a failed model load")
    flag("load_retry_interval_micros", 60 * 1000 * 1000, "wait between load retries")
    flag("enable_model_warmup", True, "replay assets.extra/tf_serving_warmup_requests at load")
    flag("num_request_iterations_for_warmup", 1, "replays of each warmup record")
    flag("saved_model_tags", "serve", "comma-separated SavedModel tags to load")
    flag("tensorflow_intra_op_parallelism", 0, "TensorFlow intra-op threads (0 = TensorFlow's choice)")
    flag("tensorflow_inter_op_parallelism", 0, "TensorFlow inter-op threads (0 = TensorFlow's choice)")
    flag("tensorflow_session_parallelism", 0, "accepted for compatibility")
    flag("enable_batching", False, "batch requests server-side")
    flag("batching_parameters_file", "", "BatchingParameters text proto")
    flag("enable_per_model_batching_parameters", False, "read batching_params.pbtxt from each SavedModel")
    flag(
        "max_request_tensor_bytes",
        256 * 1024 * 1024,
        "most bytes of input tensors one request may make the server allocate (not in TF Serving)",
    )
    flag(
        "max_requests_in_flight",
        256,
        "requests handled at once per port; more are refused at once (not in TF Serving)",
    )
    add("--version", action="version", version=f"tfserve {__version__}")
    return parser


def options_from_args(args: argparse.Namespace):
    from .server import ServerOptions

    fields = ServerOptions.__dataclass_fields__
    return ServerOptions(**{k: v for k, v in vars(args).items() if k in fields})


def check_usage(options) -> str | None:
    """TF Serving's usage errors, with its wording."""
    if not options.model_base_path and not options.model_config_file:
        return "Both server_options.model_base_path and server_options.model_config_file are empty!"
    if options.model_base_path and options.model_config_file:
        return "Only one of server_options.model_base_path and server_options.model_config_file may be set."
    if options.batching_parameters_file and not options.enable_batching:
        return (
            "server_options.batching_parameters_file is set without setting "
            "server_options.enable_batching to true."
        )
    if not options.port and not options.rest_api_port and not options.grpc_socket_path:
        return "At least one of server_options.port, server_options.rest_api_port must be non-zero."
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
        print(f"Exporting HTTP/REST API at:{options.rest_api_host}:{server.rest_port} ...", flush=True)
    if banner:
        print(banner(server), flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv and argv[0] in SUBCOMMANDS:
        command, rest = argv[0], argv[1:]
        if command == "demo":
            from .demo import main as demo_main

            return demo_main(rest)
        if command == "bench":
            from .bench.cli import main as bench_main

            return bench_main(rest)
        from .deploy.cli import main as deploy_main

        return deploy_main([command, *rest])
    parser = build_parser()
    args = parser.parse_args(argv)
    options = options_from_args(args)
    problem = check_usage(options)
    if problem:
        print(f"tfserve: {problem}\n\n{parser.format_usage()}", file=sys.stderr)
        return 2
    return serve_forever(options)


if __name__ == "__main__":
    sys.exit(main())
