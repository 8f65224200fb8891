"""Talking to a model server from anywhere: a kernel, a script, the benchmark's workers.

:class:`~.client.Client` (REST and gRPC), :class:`~.endpoints.Endpoint` and
finding a server (:mod:`.endpoints`, :mod:`.discovery`), mapping user data onto
a signature (:mod:`.data`), progress views (:mod:`.progress`). This layer sits
below the notebook tools and the benchmark, and above the server: it never
imports either of them.

Discovery is standard library only and the Jupyter server imports it on start,
so ``Client`` and ``Endpoint`` (numpy and the codec) load on first use.
"""

from .discovery import discover as discover
from .discovery import list_servers as list_servers

_LAZY = {"Client": ".client", "Endpoint": ".endpoints", "resolve_endpoint": ".endpoints"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
