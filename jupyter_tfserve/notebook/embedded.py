"""Embedded mode: the model server inside the kernel, for front ends with no Jupyter extension to reach.

Plain IPython, nbclient without a server, VS Code and other front ends have no
jupyter-tfserve extension to talk to. There the magic starts the same
:class:`~jupyter_tfserve.server.ModelServer` in this process. Its network fronts
run on the server's own io thread, so the kernel's event loop is untouched, and
the notebook layer talks to it over its REST port exactly as it talks to the
extension: one code path for both modes.

Ports come from the magic's traits (TF Serving's 8500/8501 by default). One
that is taken (often by another kernel's embedded server) is replaced by a
free ephemeral port, so a second kernel still starts.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass

from ..client.endpoints import Endpoint, serve_in_process
from ..paths import default_models_root
from ..ports import LOOPBACK as HOST
from ..ports import free_port, port_taken

# Why a kernel serves by itself, for its banner.
NOT_FOUND = "no Jupyter server with the extension found"
ASKED = "embedded mode is 'always'"


@dataclass(frozen=True)
class EmbeddedInfo:
    rest_port: int
    grpc_port: int
    models_root: str
    moved: tuple[str, ...] = ()  # endpoints that fell back to an ephemeral port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.rest_port}"

    @property
    def grpc_target(self) -> str | None:
        return f"{HOST}:{self.grpc_port}" if self.grpc_port else None

    def endpoint(self) -> Endpoint:
        return Endpoint.from_url(
            self.url, grpc_target=self.grpc_target, models_root=self.models_root, source="embedded"
        )

    def banner(self, reason: str = NOT_FOUND) -> str:
        """What the user is told once, when the kernel starts serving: why, where, and where models live."""
        grpc = f", gRPC {self.grpc_target}" if self.grpc_target else ""
        moved = f" ({' and '.join(self.moved)} port taken: using a free one)" if self.moved else ""
        return (
            f"tfserve: {reason}; serving in this kernel "
            f"at {self.url}{grpc}{moved}. Models live in {self.models_root}."
        )


_lock = threading.Lock()
_server = None
_info: EmbeddedInfo | None = None


def current() -> EmbeddedInfo | None:
    """The running embedded server's info, if one was started in this process."""
    return _info


def start(
    rest_port: int = 8501,
    grpc_port: int = 8500,
    models_root: str = "",
    poll_seconds: float = 1.0,
    enable_batching: bool = False,
) -> tuple[EmbeddedInfo, bool]:
    """Start the embedded server once per process; returns (info, started_now).

    ``grpc_port=0`` leaves gRPC off. The REST port is always open: it is how the
    notebook layer talks to the server. ``enable_batching`` is TF Serving's
    flag (default parameters; the management API changes them per model).
    """
    global _server, _info
    with _lock:
        if _server is not None:
            return _info, False
        from ..server import HostSettings, ModelServer, ServerOptions

        moved = []
        rest, grpc = rest_port, grpc_port
        if rest and port_taken(HOST, rest):
            moved.append("REST")
        if grpc and port_taken(HOST, grpc):
            moved.append("gRPC")
        rest = free_port() if not rest or "REST" in moved else rest
        grpc = free_port() if "gRPC" in moved else grpc
        options = ServerOptions(
            port=grpc,
            grpc_host=HOST,
            rest_api_port=rest,
            rest_api_host=HOST,
            file_system_poll_wait_seconds=poll_seconds,
            max_num_load_retries=0,
            enable_batching=enable_batching,
            # The notebook manages this server through its REST port. It listens on loopback,
            # where the port's browser rules (Host, JSON only, same Origin) keep web pages out.
            enable_management_api=True,
        )
        # Its /info says "kernel", so advice names the magic's settings. It does not freeze
        # the heap: the notebook's own objects live in this process and must stay collectable.
        _server = ModelServer(options, host=HostSettings(name="kernel", freeze_loaded_models=False))
        _server.start(wait_for_models=False)
        _info = EmbeddedInfo(
            rest_port=_server.rest_port,
            grpc_port=_server.grpc_port or 0,
            models_root=models_root or default_models_root(),
            moved=tuple(moved),
        )
        serve_in_process(_info.endpoint())
        return _info, True


def stop() -> None:
    """Stop the embedded server (ports closed, models unloaded, threads joined)."""
    global _server, _info
    with _lock:
        server, _server, _info = _server, None, None
        serve_in_process(None)
    if server is not None:
        server.stop()


atexit.register(stop)
