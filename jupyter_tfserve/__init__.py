"""jupyter-tfserve: TensorFlow Serving, native to Jupyter, pip-installable."""

import os

# TensorFlow's C++ logging stays out of users' terminals unless they ask for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# gRPC's C core logs only errors.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
# A kernel serving gRPC still runs `!` commands, which fork and close fds before exec. gRPC's
# fork handlers restart its poller in the child, which then dies on the closed epoll fd
# ("epoll_wait error: Bad file descriptor", grpc/grpc#43055): about 1 `!curl` in 250 printed
# that line instead of its output. Without the handlers a child gRPC is never used in is safe.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from ._version import __version__ as __version__  # noqa: E402

# Whoever imports TensorFlow after this package (a notebook cell's `import keras`, `tfserve bench`),
# its native start-up lines (oneDNN, cudart) are filtered at TF_CPP_MIN_LOG_LEVEL. Standard library only.
from .core.native_logs import quiet_tensorflow_imports  # noqa: E402

quiet_tensorflow_imports()

# Discovery is standard library only: cheap for kernels and the Jupyter server alike.
from .client.discovery import discover as discover  # noqa: E402
from .client.discovery import list_servers as list_servers  # noqa: E402


def _jupyter_server_extension_points():
    """Jupyter finds the extension here; its module is imported only by a Jupyter server."""
    from .jupyter.app import TFServe

    return [{"module": "jupyter_tfserve.jupyter", "app": TFServe}]


# The notebook layer, imported on first use so that importing the package (as a
# Jupyter server does) stays cheap: ``jupyter_tfserve.export``/``serve``/``Client``/``read_logs``/``compare``.
_LAZY = {
    "export": ("jupyter_tfserve.notebook.api", "export"),
    "serve": ("jupyter_tfserve.notebook.api", "serve"),
    "Client": ("jupyter_tfserve.client.client", "Client"),
    "compare": ("jupyter_tfserve.notebook.compare", "compare"),
    "benchmark": ("jupyter_tfserve.bench.api", "benchmark"),
    "tune": ("jupyter_tfserve.bench.tuner", "tune"),
    "read_logs": ("jupyter_tfserve.notebook.logs", "read_logs"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'jupyter_tfserve' has no attribute {name!r}")


def load_ipython_extension(ipython):
    """``%load_ext jupyter_tfserve`` (or ``c.InteractiveShellApp.extensions``): registers ``%tfserve``."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython):
    from .notebook.magics import unload_ipython_extension as unload

    unload(ipython)
