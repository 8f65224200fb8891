"""Every server option, declared once: name, type, default, help, and where each host shows it.

``tensorflow_model_server``'s flags are the vocabulary: a :class:`ServerOptions`
field has the flag's name and default, and its ``metadata`` says the rest
(see :func:`option`). The ``tfserve`` command line, the Jupyter extension's
``c.TFServe.*`` traits and the ``%tfserve`` magic's settings are all derived
from these declarations, so a new option, or a changed default or help text,
is one edit here and every host agrees.

This module imports nothing but the standard library: the Jupyter extension
reads it on Jupyter's start path, where TensorFlow and the protos must not load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Hosts that show a subset of the options under names of their own.
JUPYTER = "jupyter"
MAGIC = "magic"
# A host shows the option's own default.
SAME = object()
# TF Serving's usage error when no model is configured, said by the CLI and by a server started without one.
NO_MODELS = "Both server_options.model_base_path and server_options.model_config_file are empty!"


@dataclass(frozen=True)
class Shown:
    """How one host shows an option: its name there, and a default or help of its own where they differ.

    The Jupyter extension and the kernel's magic open TF Serving's ports by
    default, where the command line leaves REST off; and they name settings
    after what a notebook user knows (``grpc_port``, not ``port``).
    """

    name: str = ""
    default: Any = SAME
    help: str = ""


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    flag: bool = True,
    flag_type: type | None = None,
    default_factory: Any = dataclasses.MISSING,
    **hosts: Shown,
):
    """A :class:`ServerOptions` field: ``help`` and ``flag`` make it a ``tfserve`` flag of the same name.

    ``flag_type`` is the flag's parser type where it differs from the field's
    (TF Serving's int flags that the engine keeps as floats); ``hosts`` maps
    :data:`JUPYTER` / :data:`MAGIC` to how those hosts show the option.
    """
    metadata = {"help": help, "flag": flag and bool(help), "flag_type": flag_type, "hosts": hosts}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ServerOptions:
    """What ``tensorflow_model_server``'s flags configure (same names, same defaults).

    Fields are in the order ``tfserve --help`` lists them.
    """

    port: int = option(
        8500,
        "TCP port for gRPC (0 = off)",
        jupyter=Shown("grpc_port", help="Standalone gRPC port for outside clients (0 = off)."),
        magic=Shown("grpc_port", help="Embedded mode's gRPC port (a free one if taken; 0 = off)"),
    )
    grpc_socket_path: str = option("", "Unix domain socket for gRPC, served alongside --port")
    grpc_channel_arguments: str = option("", "comma-separated gRPC channel arguments key=value")
    grpc_max_threads: int = option(0, "maximum concurrent gRPC handlers (0 = default)")
    enable_grpc_healthcheck_service: bool = option(False, "serve grpc.health.v1")
    ssl_config_file: str = option("", "SSLConfig text proto for gRPC TLS")
    rest_api_port: int = option(
        0,
        "HTTP/REST port (0 = off)",
        jupyter=Shown(
            "rest_port",
            8501,
            "Standalone TF-Serving-compatible REST port for outside clients (0 = off).",
        ),
        magic=Shown("rest_port", 8501, "Embedded mode's REST port (a free one if taken)"),
    )
    rest_api_host: str = option(
        "127.0.0.1", "address the REST port binds to (0.0.0.0 to expose it)"
    )
    grpc_host: str = option("127.0.0.1", "address the gRPC port binds to (0.0.0.0 to expose it)")
    rest_api_num_threads: int = option(0, "REST handler threads (accepted for compatibility)")
    rest_api_timeout_in_ms: int = option(30000, "timeout for REST requests")
    rest_api_enable_cors_support: bool = option(False, "answer CORS preflight and add CORS headers")
    rest_api_ssl_cert_file: str = option(
        "", "PEM certificate (chain) to serve the REST port over HTTPS"
    )
    rest_api_ssl_key_file: str = option("", "PEM private key of --rest_api_ssl_cert_file")
    auth_token_file: str = option(
        "",
        "file holding a bearer token that REST and gRPC then require "
        "(all but health and readiness); also enables /tfserve/api changes for token holders",
    )
    enable_management_api: bool = option(
        False, "accept /tfserve/api changes without a token (loopback only is wise)"
    )
    rest_api_allowed_hosts: str = option(
        "",
        "comma-separated further Host names the REST port answers to "
        "(besides loopback names and the bind address)",
    )
    model_name: str = option("default", "name of the model served with --model_base_path")
    model_base_path: str = option("", "absolute path of a model's version directories")
    model_config_file: str = option(
        "",
        "ModelServerConfig text proto (models.config)",
        jupyter=Shown(
            help="A TF Serving ModelServerConfig text proto (models.config) to serve at startup."
        ),
    )
    model_config_file_poll_wait_seconds: int = option(
        0,
        "re-read --model_config_file this often (0 = never)",
        jupyter=Shown(help="Re-read model_config_file this often, in seconds (0 = never)."),
    )
    monitoring_config_file: str = option("", "MonitoringConfig text proto (Prometheus endpoint)")
    file_system_poll_wait_seconds: float = option(
        1.0,
        "poll model base paths for new versions this often",
        flag_type=int,  # TF Serving's flag is an int32; the engine takes fractions too
        jupyter=Shown(help="Poll model base paths for new versions this often, in seconds."),
        magic=Shown("poll_seconds", help="Embedded mode: how often model directories are re-read"),
    )
    allow_version_labels_for_unavailable_models: bool = option(
        False, "allow new labels on versions not yet loaded"
    )
    max_num_load_retries: int = option(5, "retries of a failed model load")
    load_retry_interval_micros: int = option(60 * 1000 * 1000, "wait between load retries")
    enable_model_warmup: bool = option(
        True, "replay assets.extra/tf_serving_warmup_requests at load"
    )
    num_request_iterations_for_warmup: int = option(1, "replays of each warmup record")
    saved_model_tags: str = option("serve", "comma-separated SavedModel tags to load")
    tensorflow_intra_op_parallelism: int = option(
        0, "TensorFlow intra-op threads (0 = TensorFlow's choice)"
    )
    tensorflow_inter_op_parallelism: int = option(
        0, "TensorFlow inter-op threads (0 = TensorFlow's choice)"
    )
    tensorflow_session_parallelism: int = option(0, "accepted for compatibility")
    enable_batching: bool = option(
        False,
        "batch requests server-side",
        jupyter=Shown(help="Batch requests server-side."),
        magic=Shown(
            help="Embedded mode: batch requests server-side (set before the server starts)"
        ),
    )
    batching_parameters_file: str = option(
        "",
        "BatchingParameters text proto",
        jupyter=Shown(help="A TF Serving BatchingParameters text proto (needs enable_batching)."),
    )
    enable_per_model_batching_parameters: bool = option(
        False,
        "read batching_params.pbtxt from each SavedModel",
        jupyter=Shown(
            help="Read batching_params.pbtxt from each SavedModel (needs enable_batching)."
        ),
    )
    enable_signature_method_name_check: bool = option(
        False,
        "require classify/regress signatures to carry those method names "
        "(off: TF2 exports name every signature predict)",
        jupyter=Shown(
            help="Require classify/regress signatures to carry those method names, as TF Serving's "
            "--enable_signature_method_name_check does (off: TF2 exports name every signature predict)."
        ),
    )
    request_log_max_file_bytes: int = option(
        64 * 1024 * 1024, "request logs (logging_config): rotate at this size"
    )
    request_log_max_file_seconds: int = option(
        3600, "request logs (logging_config): rotate at this age"
    )
    prefer_tflite_model: bool = option(
        False,
        "serve a version folder's model.tflite (platform tflite) instead of its SavedModel where it has one",
        jupyter=Shown(
            help="Serve a version folder's model.tflite (platform tflite) instead of its SavedModel "
            "where it has one, as TF Serving's --prefer_tflite_model does."
        ),
    )
    max_request_tensor_bytes: int = option(
        256 * 1024 * 1024,
        "most bytes of input tensors one request may make the server allocate (not in TF Serving)",
    )
    max_requests_in_flight: int = option(
        256,
        "requests handled at once per port, and model runs queued for the inference threads; "
        "more are refused at once with UNAVAILABLE (not in TF Serving)",
    )
    # Not flags: set by hosts and tests.
    rest_api_max_body_bytes: int = option(256 * 1024 * 1024)
    num_inference_threads: int = option(0)
    extra: dict = option(default_factory=dict)

    def model_server_config(self):
        """The config the flags describe; usage errors worded as TF Serving's."""
        from .config import load_model_server_config, single_model_config
        from .status import invalid_argument

        if self.model_config_file:
            return load_model_server_config(self.model_config_file)
        if not self.model_base_path:
            raise invalid_argument(NO_MODELS)
        return single_model_config(self.model_name, self.model_base_path)

    def monitoring_config(self):
        from .config import MonitoringConfig, parse_text_file

        if self.monitoring_config_file:
            return parse_text_file(self.monitoring_config_file, MonitoringConfig)
        return MonitoringConfig()

    def saved_model_tag_set(self) -> tuple[str, ...]:
        """``--saved_model_tags`` as the tags to load (empty items dropped)."""
        return tuple(t for t in self.saved_model_tags.split(",") if t)


@dataclass(frozen=True)
class OptionSpec:
    """One option as a host shows it: ``name`` there, ``option`` the ServerOptions field it sets."""

    name: str
    option: str
    type: type
    default: Any
    help: str


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "dict": dict}


def _fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(ServerOptions))


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def flag_options() -> list[OptionSpec]:
    """The ``tfserve`` flags, in ``--help`` order: TF Serving's spelling is the field's name."""
    specs = []
    for f in _fields():
        if f.metadata["flag"]:
            kind = f.metadata["flag_type"] or _TYPES[f.type]
            specs.append(OptionSpec(f.name, f.name, kind, kind(_default(f)), f.metadata["help"]))
    return specs


def host_options(host: str) -> list[OptionSpec]:
    """The options ``host`` (:data:`JUPYTER` or :data:`MAGIC`) shows, under its names and defaults."""
    specs = []
    for f in _fields():
        shown = f.metadata["hosts"].get(host)
        if shown is None:
            continue
        default = _default(f) if shown.default is SAME else shown.default
        specs.append(
            OptionSpec(
                shown.name or f.name,
                f.name,
                _TYPES[f.type],
                default,
                shown.help or f.metadata["help"],
            )
        )
    return specs


def jupyter_options() -> list[OptionSpec]:
    """The Jupyter extension's ``c.TFServe.*`` traits that set a server option."""
    return host_options(JUPYTER)


def magic_options() -> list[OptionSpec]:
    """The ``%tfserve`` magic's settings for the server it embeds in a kernel (``%config TFServeMagics.*``)."""
    return host_options(MAGIC)


def option_names() -> frozenset[str]:
    return frozenset(f.name for f in _fields())


def configurable_base(class_name: str, specs: list[OptionSpec], module: str, **members) -> type:
    """A traitlets ``Configurable`` with one configurable trait per option, for a host's class to inherit.

    Built with ``type()`` so that traitlets' metaclass sees the traits as class
    attributes; ``members`` (methods, ``__doc__``) join them. traitlets is
    imported here, not at the top: the engine never needs it.
    """
    from traitlets import Bool, Float, Int, Unicode
    from traitlets.config import Configurable

    kinds = {bool: Bool, int: Int, float: Float, str: Unicode}
    traits = {
        spec.name: kinds[spec.type](spec.default, config=True, help=spec.help) for spec in specs
    }
    return type(class_name, (Configurable,), {"__module__": module, **members, **traits})


def usage_problem(options: ServerOptions) -> str | None:
    """TF Serving's usage errors for a standalone server's options, with its wording."""
    if not options.model_base_path and not options.model_config_file:
        return NO_MODELS
    if options.model_base_path and options.model_config_file:
        return "Only one of server_options.model_base_path and server_options.model_config_file may be set."
    batching = batching_problem(options)
    if batching:
        return batching
    if not options.port and not options.rest_api_port and not options.grpc_socket_path:
        return "At least one of server_options.port, server_options.rest_api_port must be non-zero."
    return None


def batching_problem(options: ServerOptions) -> str | None:
    """TF Serving's usage error for batching parameters given while batching is off."""
    if options.batching_parameters_file and not options.enable_batching:
        return (
            "server_options.batching_parameters_file is set without setting "
            "server_options.enable_batching to true."
        )
    return None
