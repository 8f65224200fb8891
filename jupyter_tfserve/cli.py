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
    """The server's flags (``only``: just these, for a subcommand that takes a few of them)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [SUBCOMMAND ...] | {prog} [--flag=value ...]" if only is None else None,
        description=OVERVIEW if only is None else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument

    def flag(name, default, help, type=None):
        if only is not None and name not in only:
            return
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
    flag("rest_api_ssl_cert_file", "", "PEM certificate (chain) to serve the REST port over HTTPS")
    flag("rest_api_ssl_key_file", "", "PEM private key of --rest_api_ssl_cert_file")
    flag(
        "auth_token_file",
        "",
        "file holding a bearer token that REST and gRPC then require "
        "(all but health and readiness); also enables /tfserve/api changes for token holders",
    )
    flag(
        "enable_management_api",
        False,
        "accept /tfserve/api changes without a token (loopback only is wise)",
    )
    flag(
        "rest_api_allowed_hosts",
        "",
        "comma-separated further Host names the REST port answers to "
        "(besides loopback names and the bind address)",
    )
    flag("model_name", "default", "name of the model served with --model_base_path")
    flag("model_base_path", "", "absolute path of a model's version directories")
    flag("model_config_file", "", "ModelServerConfig text proto (models.config)")
    flag(
        "model_config_file_poll_wait_seconds",
        0,
        "re-read --model_config_file this often (0 = never)",
    )
    flag("monitoring_config_file", "", "MonitoringConfig text proto (Prometheus endpoint)")
    flag("file_system_poll_wait_seconds", 1, "poll model base paths for new versions this often")
    flag(
        "allow_version_labels_for_unavailable_models",
        False,
        "allow new labels on versions not yet loaded",
    )
    flag("max_num_load_retries", 5, "retries of a failed model load")
    flag("load_retry_interval_micros", 60 * 1000 * 1000, "wait between load retries")
    flag("enable_model_warmup", True, "replay assets.extra/tf_serving_warmup_requests at load")
    flag("num_request_iterations_for_warmup", 1, "replays of each warmup record")
    flag("saved_model_tags", "serve", "comma-separated SavedModel tags to load")
    flag(
        "tensorflow_intra_op_parallelism",
        0,
        "TensorFlow intra-op threads (0 = TensorFlow's choice)",
    )
    flag(
        "tensorflow_inter_op_parallelism",
        0,
        "TensorFlow inter-op threads (0 = TensorFlow's choice)",
    )
    flag("tensorflow_session_parallelism", 0, "accepted for compatibility")
    flag("enable_batching", False, "batch requests server-side")
    flag("batching_parameters_file", "", "BatchingParameters text proto")
    flag(
        "enable_per_model_batching_parameters",
        False,
        "read batching_params.pbtxt from each SavedModel",
    )
    flag(
        "enable_signature_method_name_check",
        False,
        "require classify/regress signatures to carry those method names "
        "(off: TF2 exports name every signature predict)",
    )
    flag(
        "request_log_max_file_bytes",
        64 * 1024 * 1024,
        "request logs (logging_config): rotate at this size",
    )
    flag("request_log_max_file_seconds", 3600, "request logs (logging_config): rotate at this age")
    flag(
        "prefer_tflite_model",
        False,
        "serve a version folder's model.tflite (platform tflite) instead of its SavedModel where it has one",
    )
    flag(
        "max_request_tensor_bytes",
        256 * 1024 * 1024,
        "most bytes of input tensors one request may make the server allocate (not in TF Serving)",
    )
    flag(
        "max_requests_in_flight",
        256,
        "requests handled at once per port, and model runs queued for the inference threads; "
        "more are refused at once with UNAVAILABLE (not in TF Serving)",
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
    problem = check_usage(options)
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
