"""The Jupyter server extension: one ModelServer inside the Jupyter server process.

Models served here outlive kernel restarts and sit behind Jupyter's own auth:
TF Serving's REST API under ``{base_url}tfserve/v1/...`` and the management API
under ``{base_url}tfserve/api/...``. Optional standalone ports (gRPC 8500,
REST 8501) serve outside clients exactly as ``tensorflow_model_server`` would.

Configuration is ``c.TFServe.*`` (or ``--TFServe.<trait>=...`` on the command
line). Startup stays fast: nothing of the engine, and so nothing of TensorFlow,
is imported on Jupyter's startup path; the engine is imported and built in a
background thread once Jupyter listens (see :mod:`.host`), and the standalone
ports open with it.
"""

from __future__ import annotations

import asyncio
import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, List, Type, Unicode, default, validate

from .._version import __version__
from ..core.options import ServerOptions, batching_problem, option_names
from ..paths import default_models_root
from . import handlers, runtime
from .host import ServerHost
from .option_traits import ServerOptionTraits

CHANGES_NEED_AUTH = (
    "This model server runs inside Jupyter: change its models through Jupyter's authenticated "
    "API ({base_url}tfserve/api/...), or send Jupyter's token to its standalone port."
)
PORTS_NEED_TOKEN = (
    "This port belongs to a Jupyter server: send its token ('Authorization: token <token>', "
    "which kernels get as $TFSERVE_TOKEN), or set c.TFServe.ports_require_token = False."
)


class DeferredType(Type):
    """A ``Type`` trait whose class is imported when the model server is built, not when Jupyter starts.

    The default ModelServer's module imports TensorFlow (seconds), and a plain
    ``Type`` imports its class as soon as the extension is instantiated. Dotted
    names stay strings until :meth:`resolve` (called in the host's background
    thread); a class given directly is checked at once, since its module, and
    so the base class's, is already imported.
    """

    def instance_init(self, obj) -> None:
        """Do not import anything yet."""

    def validate(self, obj, value):
        if isinstance(value, str):
            return value
        self._resolve_classes()
        return super().validate(obj, value)

    def resolve(self, obj) -> type:
        """Import and check the configured class."""
        self._resolve_classes()
        return super().validate(obj, getattr(obj, self.name))


class TFServe(ExtensionApp, ServerOptionTraits):
    """TensorFlow Serving inside Jupyter.

    The traits that set a server option (``grpc_port``, ``rest_port``,
    ``enable_batching``, ...) come from :class:`.ServerOptionTraits`, derived
    from the options' one declaration; the ones below are the extension's own.
    """

    name = "jupyter_tfserve"
    description = "TensorFlow Serving, native to Jupyter"
    version = __version__
    load_other_extensions = True

    models_root = Unicode(
        config=True,
        help="Where exported models live; relative base paths given to the management API "
        "resolve here. Default: $TFSERVE_MODELS_ROOT, else <jupyter data dir>/tfserve/models.",
    )
    allowed_model_roots = List(
        Unicode(),
        config=True,
        help="Further directories the management API may load models from (besides models_root). "
        "Paths are compared after resolving '..' and symlinks.",
    )
    bind_host = Unicode("127.0.0.1", config=True, help="Address the standalone ports bind to.")
    ports_require_token = Bool(
        True,
        config=True,
        help="The standalone ports (gRPC and REST) need Jupyter's token, like every Jupyter API "
        "('Authorization: token <token>' on REST, 'authorization' metadata on gRPC); health and "
        "readiness stay open. False gives TF Serving's open loopback ports (inference, status and the "
        "gRPC config reload for anyone on the host, still within the model roots).",
    )
    server_options = Dict(
        config=True,
        help="Further ModelServer options by TF Serving flag name, "
        "e.g. {'max_num_load_retries': 0, 'enable_model_warmup': False}.",
    )
    model_server_class = DeferredType(
        default_value="jupyter_tfserve.server.ModelServer",
        klass="jupyter_tfserve.server.ModelServer",
        config=True,
        help="The ModelServer class to run (pluggable, e.g. for tests or custom engines).",
    )

    @default("models_root")
    def _default_models_root(self) -> str:
        return default_models_root()

    @validate("models_root")
    def _absolute_models_root(self, proposal) -> str:
        return os.path.abspath(os.path.expanduser(proposal["value"]))

    # ------------------------------------------------------------------ setup
    def make_server_options(self):
        """The ServerOptions the traits describe (standalone ports, polls, batching, extras)."""
        fields = option_names()
        unknown = sorted(set(self.server_options) - fields)
        if unknown:
            self.log.error(
                "tfserve: ignoring unknown TFServe.server_options %s", ", ".join(unknown)
            )
        extra = {k: v for k, v in self.server_options.items() if k in fields}
        options = ServerOptions(
            **{
                **extra,
                **self.option_values(),
                "grpc_host": self.bind_host,
                "rest_api_host": self.bind_host,
            }
        )
        problem = batching_problem(options)
        if problem:
            self.log.error(
                "tfserve: %s; batching stays off (set c.TFServe.enable_batching)",
                problem.rstrip("."),
            )
        if not options.enable_batching:
            options.batching_parameters_file = ""
            options.enable_per_model_batching_parameters = False
        return options

    def initialize_settings(self) -> None:
        self.host = ServerHost(
            lambda: self.traits()["model_server_class"].resolve(self),
            self.make_server_options,
            base_url=self.serverapp.base_url,
            preload=("jupyter_tfserve.protocols.http_tornado",),
            settings=self.host_settings,
            on_done=self._republish,
        )
        self.kernel_env = runtime.KernelEnvironment()
        self.runtime_file = runtime.default_runtime_file(self.serverapp)
        self._started = self._stopping = False

    def host_settings(self):
        """What every ModelServer of this extension is built with: its change policy and port token."""
        from ..core.admin import ChangePolicy, ModelRoots
        from ..server import HostSettings

        roots = ModelRoots(
            self.models_root,
            self.allowed_model_roots,
            hint="list the directory in c.TFServe.allowed_model_roots to serve models from there",
        )
        policy = ChangePolicy(
            roots=roots,
            open_doors=frozenset() if self.ports_require_token else frozenset({"grpc"}),
            refusal=CHANGES_NEED_AUTH.format(base_url=self.serverapp.base_url),
        )
        token = None
        if self.ports_require_token:
            token = self.serverapp.identity_provider.token or ""
        return HostSettings(
            name="jupyter",
            policy=policy,
            port_token=token,
            port_token_missing=PORTS_NEED_TOKEN,
            config_error=self.host.config_error,
            info=lambda: {
                "port_errors": dict(self.host.port_errors),
                "url": runtime.api_url(self.serverapp),
                "bind_host": self.bind_host,
            },
        )

    def initialize_handlers(self) -> None:
        # Mounted directly: the REST adapter's patterns already carry the base URL.
        web_app = self.serverapp.web_app
        web_app.add_handlers(".*$", handlers.routes(web_app, self.serverapp.base_url, self.host))

    # ------------------------------------------------------------------ lifecycle
    async def _start_jupyter_server_extension(self, serverapp) -> None:
        """Once Jupyter listens: build the model server off the loop, and tell kernels where it is."""
        self._started = True
        self.host.start()
        self.publish()

    def _republish(self) -> None:
        """The model server runs (or failed): publish its ports, on Jupyter's loop."""
        if not self._started:
            return
        try:
            self.serverapp.io_loop.add_callback(self.publish)
        except RuntimeError:  # the loop is already closed: Jupyter has stopped
            pass

    def publish(self) -> None:
        """(Re)write the runtime file and the kernel environment with what is known now."""
        if self._stopping:
            return
        info = runtime.runtime_info(self.serverapp, self.host, self.bind_host, self.models_root)
        try:
            runtime.write_runtime_file(self.runtime_file, info)
        except OSError as exc:
            self.log.error("tfserve: could not write %s: %s", self.runtime_file, exc)
        self.kernel_env.inject(info["url"], self.serverapp.identity_provider.token or "")

    async def stop_extension(self) -> None:
        """Jupyter is stopping: withdraw what kernels were told, close the ports, join the threads."""
        self._stopping = True
        self.kernel_env.withdraw()
        runtime.remove_runtime_file(self.runtime_file)
        await asyncio.get_running_loop().run_in_executor(None, self.host.stop)
