"""ModelServer: the engine plus its network fronts, started and stopped as one; every host uses it.

The standalone ``tfserve`` command, the Jupyter extension and the in-kernel
embedded server all build a :class:`ModelServer` and only differ in what they
wire around it. The server owns:

* the model manager (versions, labels, polling, loads),
* the admin core, the one door for changes to what is served, with the
  host's :class:`~.core.admin.ChangePolicy`,
* the guard of its own ports (token, Host names, browser rules),
* the inference service (the one path to a model run; batching plugs in here),
* the metrics,
* the REST application (transport-free) and its standalone HTTP front,
* the gRPC front (when a gRPC port is configured).

The standalone HTTP front runs on the server's own event loop, in a thread of
its own ("tfserve-io"). That keeps it independent of whichever loop the host
runs (Jupyter's tornado loop, an IPython kernel's loop, or none at all), and
lets ``start()``/``stop()`` be plain blocking calls for every host. The gRPC
front serves from its own handler threads (see ``protocols/grpc.py``); the
loop only starts and stops it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ._version import __version__
from .core import platforms
from .core.admin import SERVER, Admin, ChangePolicy, ModelRoots
from .core.config import ModelServerConfig, load_model_server_config
from .core.heap import FrozenHeap
from .core.inference import InferenceService
from .core.manager import ModelManager
from .core.metrics import ServingMetrics
from .core.options import ServerOptions
from .core.request_log import RequestLogger
from .core.scheduling import mark_as_background_work
from .core.status import invalid_argument
from .paths import default_models_root

__all__ = ["HostSettings", "ModelServer", "ServerOptions", "new_event_loop"]

log = logging.getLogger(__name__)


MANAGEMENT_OFF = (
    "Changes through /tfserve/api are off on this server: start tfserve with --auth_token_file=<file> "
    "(callers then send 'Authorization: Bearer <token>') or with --enable_management_api."
)


@dataclass(frozen=True)
class HostSettings:
    """What the host that builds a ModelServer decides, given once at construction.

    ``policy``: who may change what is served, and from where (default: the
    standalone server's, from its options). ``port_token``: the token the
    server's own ports require (None: none, unless ``--auth_token_file`` names
    one; "" refuses everything but health and readiness). ``name``, ``info``
    and ``config_error`` describe the host in the management API's info.
    ``freeze_loaded_models``: keep the garbage collector's full passes off
    loaded models (see ``core.heap``); a host that shares its process with
    the user's own objects turns it off.
    """

    name: str = "standalone"
    policy: ChangePolicy | None = None
    port_token: str | None = None
    port_token_missing: str = ""
    info: Callable[[], dict] | None = None
    config_error: str = ""
    freeze_loaded_models: bool = True


def standalone_policy(options: ServerOptions) -> ChangePolicy:
    """TF Serving's rules for its own API (gRPC reload open), /tfserve/api changes only when enabled."""
    open_doors = {"grpc"}
    if options.enable_management_api:
        open_doors.add("rest")
    return ChangePolicy(
        roots=ModelRoots(default_models_root(), restricted=False),
        open_doors=frozenset(open_doors),
        refusal=MANAGEMENT_OFF,
    )


def read_token_file(path: str) -> str:
    """The bearer token in ``path`` (surrounding whitespace removed); an empty or unreadable file is an error."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as exc:
        raise invalid_argument(
            f"Could not read --auth_token_file {path}: {exc.strerror or exc}"
        ) from None
    if not token:
        raise invalid_argument(f"--auth_token_file {path} is empty")
    return token


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it exists (about 1.5x the request rate of asyncio's loop here), asyncio elsewhere.

    The standalone REST port and tornado run on it (gRPC has its own handler threads); ``TFSERVE_NO_UVLOOP=1`` opts out.
    """
    if not os.environ.get("TFSERVE_NO_UVLOOP"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


class ModelServer:
    def __init__(
        self,
        options: ServerOptions | None = None,
        *,
        config: ModelServerConfig | None = None,
        host: HostSettings | None = None,
    ):
        self.options = options or ServerOptions()
        self.host = host or HostSettings()
        self._initial_config = config
        self.heap = FrozenHeap() if self.host.freeze_loaded_models else None
        from .core.platforms.tensorflow import configure_tensorflow

        configure_tensorflow(
            self.options.tensorflow_intra_op_parallelism,
            self.options.tensorflow_inter_op_parallelism,
        )
        self.manager = ModelManager(
            self._load,
            file_system_poll_wait_seconds=self.options.file_system_poll_wait_seconds,
            max_num_load_retries=self.options.max_num_load_retries,
            load_retry_interval_seconds=self.options.load_retry_interval_micros / 1e6,
            allow_version_labels_for_unavailable_models=self.options.allow_version_labels_for_unavailable_models,
            on_load=self._on_load,
            version_source=lambda name, base_path: self.admin.versions_of(name, base_path),
            on_config=lambda config: self.request_log.configure(config),
            heap=self.heap,
        )
        # Metric series are bounded: names the manager does not serve count under one label value.
        self.metrics = ServingMetrics(is_served=self.manager.serves)
        self.request_log = RequestLogger(
            self.metrics,
            saved_model_tags=self.options.saved_model_tag_set(),
            max_file_bytes=self.options.request_log_max_file_bytes,
            max_file_seconds=self.options.request_log_max_file_seconds,
        )
        threads = self.options.num_inference_threads or max(4, (os.cpu_count() or 1) * 2)
        self.executor = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="tfserve-infer",
            initializer=mark_as_background_work,
        )
        self.batcher = self._batcher() if self.options.enable_batching else None
        self.admin = Admin(
            self.manager,
            self.host.policy or standalone_policy(self.options),
            batcher=self.batcher,
            config_file=self.options.model_config_file,
        )
        self.guard = self._guard()
        self.service = InferenceService(
            self.manager,
            self.executor,
            batcher=self.batcher,
            metrics=self.metrics,
            max_concurrent_runs=threads,
            # A port's worth of waiting runs: every front feeds this one pool.
            max_queued_runs=self.options.max_requests_in_flight,
            check_signature_method_name=self.options.enable_signature_method_name_check,
            request_log=self.request_log,
            max_request_tensor_bytes=self.options.max_request_tensor_bytes,
        )
        self.monitoring = self.options.monitoring_config()
        self.started_at: float | None = None
        self.rest_port: int | None = None
        self.grpc_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._fronts: list = []
        self._config_poller: threading.Thread | None = None
        self._stopping = threading.Event()
        from .protocols.management import ManagementApi

        self.management = ManagementApi(
            self.admin,
            self.manager,
            self.request_log,
            self.metrics,
            info=self.info,
            config_file=self.options.model_config_file,
            config_error=self.host.config_error,
        )
        self.rest = self.rest_app()

    def rest_app(self, **overrides):
        """A REST application over this server's engine; ``overrides``: ``cors``, ``max_body_bytes``,
        ``max_requests_in_flight`` for a front configured unlike the server's options."""
        from .protocols.rest import RestApp

        return RestApp(
            self.service,
            self.metrics,
            self.guard,
            self.management,
            executor=self.executor,
            options=self.options,
            monitoring=self.monitoring,
            **overrides,
        )

    def info(self) -> dict:
        """The running server as the management API's ``/info`` shows it (the host adds its own)."""
        tensorflow = sys.modules.get("tensorflow")
        started = self.started_at
        info = {
            "version": __version__,
            "host": self.host.name,
            "pid": os.getpid(),
            "started_at": started,
            "uptime_seconds": time.time() - started if started else 0.0,
            "ports": {"grpc": self.grpc_port or 0, "rest": self.rest_port or 0},
            "bind_host": self.options.rest_api_host,
            "models": len(self.manager.model_names()),
            "ready": self.manager.is_ready(),
            "batching": self.batcher is not None,
            "model_config_file": self.options.model_config_file,
            "models_root": self.admin.policy.roots.models_root,
            "allowed_model_roots": list(self.admin.policy.roots.allowed),
            "tensorflow": {
                "imported": tensorflow is not None,
                "version": getattr(tensorflow, "__version__", ""),
            },
            "port_errors": {},
        }
        if self.host.info is not None:
            info.update(self.host.info())
        return info

    def _guard(self):
        from .protocols.access import PortGuard

        token = self.host.port_token
        if token is None and self.options.auth_token_file:
            token = read_token_file(self.options.auth_token_file)
        return PortGuard(
            token,
            bind_host=self.options.rest_api_host,
            allowed_hosts=self.options.rest_api_allowed_hosts.split(","),
            **({"missing": self.host.port_token_missing} if self.host.port_token_missing else {}),
        )

    def _batcher(self):
        """The shared batch scheduler of ``--enable_batching`` (TF Serving's parameters file, or defaults)."""
        from .core.batching import BatchScheduler
        from .core.batching_params import load_batching_parameters

        path = self.options.batching_parameters_file
        return BatchScheduler(
            load_batching_parameters(path) if path else None,
            metrics=self.metrics,
            manager=self.manager,
            per_model_parameters=self.options.enable_per_model_batching_parameters,
        )

    # ------------------------------------------------------------------ loading
    def _load(self, name: str, version: int, path: str):
        """Load one version with the platform its model selects (``model_platform``, ``--prefer_tflite_model``)."""
        from .core.warmup import warmup

        if self.batcher is not None:
            self.batcher.prepare(name, version, path)  # a bad batching_params.pbtxt fails the load
        platform = platforms.select(
            self.manager.model_config(name).model_platform,
            path,
            prefer_tflite=self.options.prefer_tflite_model,
        )
        options = platforms.LoadOptions(
            saved_model_tags=self.options.saved_model_tag_set(),
            num_threads=self.options.tensorflow_intra_op_parallelism,
        )
        loaded = platforms.load_version(platform, name, version, path, options)
        if self.options.enable_model_warmup:
            try:
                warmup(
                    loaded,
                    self.options.num_request_iterations_for_warmup,
                    self.metrics,
                    check_signature_method_name=self.options.enable_signature_method_name_check,
                )
            except Exception:
                loaded.close()
                raise
        return loaded

    def _on_load(self, name, version, path, seconds, error) -> None:
        self.metrics.observe_load(path, seconds, error is None)

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, wait_for_models: bool = True, timeout: float = 600.0) -> ModelServer:
        """Load the configured models and open the ports; returns once they listen."""
        self.started_at = time.time()
        if self.heap is not None:
            self.heap.start()
        if self.options.rest_api_port:  # a bad certificate is said before models load, not after
            from .protocols.http_standalone import tls_context

            tls_context(self.options)
        config = self._initial_config
        if config is None and (self.options.model_config_file or self.options.model_base_path):
            config = self.options.model_server_config()
        if config is not None:
            self.admin.reload(SERVER, config, wait_timeout=timeout if wait_for_models else None)
        self.manager.start()
        self._loop = new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tfserve-io", daemon=True
        )
        self._thread.start()
        try:
            self._run(self._start_fronts())
        except BaseException:
            self.stop()
            raise
        if self.options.model_config_file and self.options.model_config_file_poll_wait_seconds > 0:
            self._config_poller = threading.Thread(
                target=self._poll_config, name="tfserve-config", daemon=True
            )
            self._config_poller.start()
        return self

    def _run(self, coroutine, timeout: float | None = 60.0):
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _start_fronts(self) -> None:
        if self.options.rest_api_port:
            from .protocols.http_standalone import serve as serve_rest

            front = await serve_rest(
                self.rest, self.options.rest_api_host, self.options.rest_api_port, self.options
            )
            self._fronts.append(front)
            self.rest_port = front.port
        if self.options.port or self.options.grpc_socket_path:
            from .protocols.grpc import serve as serve_grpc

            front = await serve_grpc(
                self.service, self.admin, self.guard, self.metrics, self.options
            )
            self._fronts.append(front)
            self.grpc_port = front.port

    def _poll_config(self) -> None:
        interval = self.options.model_config_file_poll_wait_seconds
        last = None
        while not self._stopping.wait(interval):
            try:
                mtime = os.stat(self.options.model_config_file).st_mtime_ns
                if mtime == last:
                    continue
                config = load_model_server_config(self.options.model_config_file)
                if config != self.manager.config:
                    log.info("Reloading model config from %s", self.options.model_config_file)
                    self.admin.reload(SERVER, config)
                last = mtime
            except Exception as exc:
                # An unreadable or bad config leaves the current models serving.
                log.error("Not reloading %s: %s", self.options.model_config_file, exc)

    def stop(self, grace: float = 10.0) -> None:
        """Stop accepting requests, let in-flight ones finish, unload models, join threads."""
        self._stopping.set()
        if self._loop is not None:
            for front in reversed(self._fronts):
                try:
                    self._run(front.stop(grace), timeout=grace + 5)
                except Exception:
                    log.exception("stopping %s failed", front)
            self._fronts.clear()
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop.close()
            self._loop = None
        if self.batcher is not None:
            self.batcher.stop()  # queued batches run first: they hold their versions
        if self.heap is not None:
            self.heap.stop()  # the unloads below need no collection of their own
        self.manager.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.request_log.close()  # after the last request: its record is queued by now
        if self._config_poller is not None:
            self._config_poller.join(5)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
