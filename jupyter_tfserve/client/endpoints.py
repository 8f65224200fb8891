"""Where a server answers, and finding it: the one place that turns "which server?" into an :class:`Endpoint`.

A server is found, in order: an explicit URL; what :func:`~.discovery.discover`
finds (``TFSERVE_URL``, the Jupyter server that started this kernel, the only
one running); a server this process serves itself (a kernel's embedded server,
which registers here with :func:`serve_in_process` so that this layer needs
nothing from the layers that start servers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..core.status import Code, ServingError
from ..paths import default_models_root
from .discovery import discover


@dataclass(frozen=True)
class Endpoint:
    """Where a server answers: TF Serving's REST root, the management root, the gRPC target."""

    url: str
    api_url: str
    token: str = ""
    grpc_target: str | None = None
    models_root: str = ""
    source: str = "explicit"
    standalone_url: str = ""  # the extension's TF-Serving-compatible port, when it has one open

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header the server wants on every port (empty when it has no token)."""
        return {"Authorization": f"token {self.token}"} if self.token else {}

    @property
    def grpc_metadata(self) -> tuple[tuple[str, str], ...]:
        """The same header as gRPC call metadata (keys lower-case, as gRPC requires)."""
        return tuple((key.lower(), value) for key, value in self.headers.items())

    @classmethod
    def from_url(cls, url: str, token: str = "", **extra) -> Endpoint:
        url = url.rstrip("/")
        # Inside Jupyter both APIs hang off ``.../tfserve``; a standalone port has
        # TF Serving's routes at its root and ours under ``/tfserve``.
        api = url if url.endswith("/tfserve") else f"{url}/tfserve"
        return cls(url=url, api_url=f"{api}/api", token=token, **extra)

    @classmethod
    def from_server_info(
        cls, info, *, source: str | None = None, grpc_target: str | None = None
    ) -> Endpoint:
        """The endpoint of a server :func:`~jupyter_tfserve.discover` found."""
        standalone = f"http://{info.host}:{info.rest_port}" if info.rest_port else ""
        return cls.from_url(
            info.url,
            info.token,
            grpc_target=grpc_target or info.grpc_target,
            models_root=info.models_root,
            source=source or info.source,
            standalone_url=standalone if standalone != info.url.rstrip("/") else "",
        )


_in_process: Endpoint | None = None


def serve_in_process(endpoint: Endpoint | None) -> None:
    """Record (or, with None, forget) the server this process runs, as the last resort of resolution."""
    global _in_process
    _in_process = endpoint


def in_process() -> Endpoint | None:
    """The endpoint of the server this process runs, if it runs one."""
    return _in_process


def discovered(
    url: str | None = None,
    token: str | None = None,
    *,
    grpc_target: str | None = None,
    source: str | None = None,
) -> Endpoint | None:
    """The endpoint of ``url``, else of the server :func:`discover` finds; None when it finds none."""
    info = discover(url, token)
    if info is None:
        return None
    return Endpoint.from_server_info(info, source=source, grpc_target=grpc_target)


def resolve_endpoint(
    url: str | None = None, token: str | None = None, grpc_target: str | None = None
) -> Endpoint:
    """An explicit URL, else what :func:`discover` finds, else the server this process runs."""
    endpoint = discovered(url, token, grpc_target=grpc_target) or in_process()
    if endpoint is None:
        raise ServingError(
            Code.UNAVAILABLE,
            "No tfserve server found: start Jupyter with the jupyter_tfserve extension, "
            "set TFSERVE_URL, or pass Client(url=...)",
        )
    return endpoint


def models_root_for(explicit: str | None = None, endpoint: Endpoint | None = None) -> str:
    """Where exports go: ``explicit``, else the server's models_root, else the default; never starts a server."""
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    if endpoint is None:
        endpoint = discovered() or in_process()
    # A server that does not say where its models live (an explicit URL) shares the default.
    return (endpoint.models_root if endpoint is not None else "") or default_models_root()
