"""The extension's ModelServer: built off Jupyter's event loop after startup, and stopped with Jupyter.

Building the server imports the engine (and, through the tensor codec's
TensorFlow protos, TensorFlow itself: seconds of work and about 600 MB), so it
happens in a thread of its own, started once Jupyter listens, or by the first
request that needs it if that comes first. The thread first imports the heavy
modules (``imported`` resolves, so routes can be built), then imports the
configured server class, builds and starts the server (``start()``'s future
resolves, or holds the error). Handlers await :meth:`ServerHost.server`, which
never blocks the loop.

The server must never take Jupyter down with it:

* a standalone port that is taken is logged and left off; the models are still
  served under ``{base_url}tfserve/``;
* a model config that cannot be read or realized is logged and reported in the
  server info; the server starts with no models and the config can be fixed and
  reloaded through the management API (or is picked up by the config poller).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import importlib
import logging
import threading
from collections.abc import Callable

from ..ports import port_taken

log = logging.getLogger(__name__)


class ServerHost:
    """Owns one ModelServer for the lifetime of the Jupyter server."""

    def __init__(
        self,
        resolve_class: Callable[[], type],
        make_options: Callable[[], object],
        *,
        base_url: str = "/",
        preload: tuple[str, ...] = (),
        settings: Callable[[], object] | None = None,
        on_done: Callable[[], None] | None = None,
    ):
        """``resolve_class`` returns the ModelServer class and ``make_options`` its ServerOptions
        (both import the engine, so both run in the background); ``preload`` names further modules
        to import there; ``settings()`` gives the HostSettings each new server is built with (its
        policy, port token, info); ``on_done()`` runs (in the background thread) once the server
        runs or has failed."""
        self.resolve_class = resolve_class
        self.make_options = make_options
        self.server_class: type | None = None
        self.options = None
        self.base_url = base_url
        self.preload = preload
        self.settings = settings
        self.on_done = on_done
        self.imported: concurrent.futures.Future = concurrent.futures.Future()
        self.port_errors: dict[str, str] = {}
        self.config_error = ""
        self._future: concurrent.futures.Future | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    # ------------------------------------------------------------------ startup
    def start(self) -> concurrent.futures.Future:
        """Begin building the server in a background thread (once); the future yields it."""
        with self._lock:
            if self._future is None:
                self._future = concurrent.futures.Future()
                self._thread = threading.Thread(
                    target=self._build, name="tfserve-start", daemon=True
                )
                self._thread.start()
            return self._future

    async def server(self):
        """The running ModelServer, started on first use; awaiting it never blocks the loop."""
        return await asyncio.wrap_future(self.start())

    @property
    def state(self) -> str:
        """``idle`` (not started yet), ``starting``, ``running`` or ``failed``."""
        future = self._future
        if future is None:
            return "idle"
        if not future.done():
            return "starting"
        return "failed" if future.exception() is not None else "running"

    def current(self):
        """The ModelServer if it is already up, else None (for callers that must not wait)."""
        future = self._future
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

    def _build(self) -> None:
        try:
            self._future.set_result(self._build_server())
        except BaseException as exc:  # reported to every awaiting handler, logged where it happened
            self._future.set_exception(exc)
        if self.on_done is not None:
            self.on_done()

    def _build_server(self):
        try:
            for module in self.preload:
                importlib.import_module(module)
            self.options = self.make_options()
        except BaseException as exc:
            log.exception("tfserve: could not import the model server")
            self.imported.set_exception(exc)
            raise
        self.imported.set_result(None)
        try:
            self.server_class = self.resolve_class()
            server = self._start_server()
        except BaseException:
            log.exception("tfserve: the model server could not start")
            raise
        with self._lock:
            stopped = self._stopped
        if stopped:  # Jupyter stopped while we were starting
            server.stop()
            raise RuntimeError("the model server was stopped")
        return server

    def _start_server(self):
        from ..core.config import ModelServerConfig
        from ..core.status import ServingError

        options = self._free_ports(self.options)
        config = None
        if options.model_config_file:
            try:
                config = options.model_server_config()
            except ServingError as exc:
                self._config_failed(exc.message)
                config = ModelServerConfig()
        try:
            return self._launch(options, config)
        except ServingError as exc:  # e.g. a label on a version that is not loaded yet
            self._config_failed(exc.message)
            return self._launch(options, ModelServerConfig())

    def _launch(self, options, config):
        from ..core.status import ServingError

        server = self._new_server(options, config)
        try:
            return server.start(wait_for_models=False)
        except ServingError:
            server.stop()  # failed before its ports opened: release its threads
            raise
        except OSError as exc:
            # Lost a race for a port after probing it (start() has cleaned up): serve under Jupyter only.
            log.error(
                "tfserve: could not open the standalone ports (%s); they stay off, "
                "models are served under %stfserve/ only",
                exc,
                self.base_url,
            )
            self.port_errors.setdefault("standalone", str(exc))
            closed = dataclasses.replace(options, port=0, rest_api_port=0)
            return self._new_server(closed, config).start(wait_for_models=False)

    def _new_server(self, options, config):
        if self.settings is None:
            return self.server_class(options, config=config)
        return self.server_class(options, config=config, host=self.settings())

    def _free_ports(self, options):
        """The options with every port that is already taken switched off (and logged)."""
        changes = {}
        endpoints = (
            ("grpc", "port", options.grpc_host),
            ("rest", "rest_api_port", options.rest_api_host),
        )
        for endpoint, field, host in endpoints:
            port = getattr(options, field)
            if port and port_taken(host, port):
                message = f"{host}:{port} is already in use"
                log.error(
                    "tfserve: %s port %s; the standalone %s endpoint stays off "
                    "(models are still served under %stfserve/)",
                    endpoint,
                    message,
                    endpoint,
                    self.base_url,
                )
                self.port_errors[endpoint] = message
                changes[field] = 0
        return dataclasses.replace(options, **changes) if changes else options

    def _config_failed(self, message: str) -> None:
        log.error(
            "tfserve: model config not applied, serving no models until it is fixed: %s", message
        )
        self.config_error = message

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Close the ports and join the server's threads (blocking; call it off the loop)."""
        with self._lock:
            self._stopped = True
            future = self._future
        if future is None:
            return
        if self._thread is not None:
            self._thread.join()
        if future.done() and future.exception() is None:
            future.result().stop()
