"""The Python API behind ``%tfserve``, for scripts and front ends without magics.

``jupyter_tfserve.export``, ``jupyter_tfserve.serve`` and ``jupyter_tfserve.Client``
do what the magic does, with the same server resolution: an explicit URL, else
the server :func:`~jupyter_tfserve.discover` finds, else (``embedded="auto"``)
a server started in this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..client.client import Client
from ..client.endpoints import Endpoint, discovered, models_root_for
from ..core.status import Code, ServingError


def connect(
    url: str | None = None,
    token: str | None = None,
    *,
    embedded: str = "auto",
    rest_port: int = 8501,
    grpc_port: int = 8500,
    models_root: str = "",
    poll_seconds: float = 1.0,
    enable_batching: bool = False,
    announce: Callable[[str], None] | None = print,
) -> Endpoint:
    """The server to use: ``url``, else the discovered one, else the embedded one (``embedded``: auto|always|never)."""
    if url or embedded != "always":
        found = discovered(url or None, token or None, source="explicit" if url else None)
        if found is not None:
            return found
        if embedded == "never":
            raise ServingError(
                Code.UNAVAILABLE,
                "No tfserve server found (start Jupyter with the jupyter_tfserve extension or set "
                "TFSERVE_URL), and embedded mode is off",
            )
    from . import embedded as embedded_server

    info, started = embedded_server.start(
        rest_port, grpc_port, models_root, poll_seconds, enable_batching
    )
    if started and announce is not None:
        announce(
            info.banner(
                embedded_server.ASKED if embedded == "always" else embedded_server.NOT_FOUND
            )
        )
    return info.endpoint()


def export(model, name: str, *, models_root: str | None = None, **options):
    """Write ``model`` as the next version of ``name`` (see :func:`jupyter_tfserve.notebook.export.export`).

    Without ``models_root``, the export goes where the discovered server looks.
    """
    from .export import export as export_model

    return export_model(model, name, models_root=models_root_for(models_root), **options)


def serve(
    name: str,
    path: str | None = None,
    *,
    policy: str | None = None,
    client: Client | None = None,
    wait: bool = True,
    timeout: float = 300.0,
    on_status: Callable[[list[dict]], None] | None = None,
) -> int | None:
    """Serve ``name`` from ``path`` (default ``<models_root>/<name>``) and wait for a version to load.

    Returns the version now serving (None with ``wait=False``). ``Client()``
    afterwards talks to the same server, embedded or not.
    """
    client = client or Client(endpoint=connect())
    path = os.path.abspath(
        os.path.expanduser(path or os.path.join(models_root_for(None, client.endpoint), name))
    )
    if not os.path.isdir(path):
        raise ServingError(
            Code.NOT_FOUND,
            f"No model {name!r} at {path}: export one first "
            f"(%tfserve export MODEL --name {name}, or jupyter_tfserve.export) or give its path",
        )
    client.load(name, path, policy)
    if not wait:
        return None
    return client.wait_for(name, timeout=timeout, on_status=on_status)
