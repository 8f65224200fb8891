"""What the extension tells kernels: a runtime file and kernel environment variables.

The format is the one :mod:`jupyter_tfserve.client.discovery` reads. The runtime file
is written with Jupyter's ``secure_write`` (mode 0600) and replaced atomically,
so a reader never sees half of it. It carries a reference to the token (the
path of Jupyter's own ``jpserver-<pid>.json``, which already holds it), not a
second copy.

The environment variables reach kernels through the server process's own
environment: every kernel launch path in Jupyter (the sessions API's
``get_kernel_env``, the kernels API, restarts, which reuse the launch
environment) starts from ``os.environ``. A ``TFSERVE_URL`` the user already
set is left alone, so an explicit address always wins.
"""

from __future__ import annotations

import json
import logging
import os

from jupyter_core.paths import secure_write

from .._version import __version__
from ..client.discovery import ENV_INJECTED_URL, ENV_TOKEN, ENV_URL, runtime_file_path

log = logging.getLogger(__name__)


def api_url(serverapp) -> str:
    """The URL kernels on this machine use for the extension's routes: ``.../{base_url}tfserve``."""
    if serverapp.sock:
        return serverapp.connection_url.rstrip("/") + "/tfserve"
    scheme = "https" if serverapp.certfile else "http"
    host = "[::1]" if ":" in (serverapp.ip or "") else "127.0.0.1"
    return f"{scheme}://{host}:{serverapp.port}{serverapp.base_url}tfserve"


def runtime_info(serverapp, host, bind_host: str, models_root: str) -> dict:
    """The runtime file's content; ports are 0 until the model server has opened them."""
    server = host.current()
    return {
        "pid": os.getpid(),
        "url": api_url(serverapp),
        "jupyter_url": api_url(serverapp)[: -len("tfserve")],
        "base_url": serverapp.base_url,
        "token_file": serverapp.info_file,
        "host": bind_host,
        "rest_port": (server.rest_port or 0) if server else 0,
        "grpc_port": (server.grpc_port or 0) if server else 0,
        "models_root": models_root,
        "state": host.state,
        "version": __version__,
    }


def write_runtime_file(path: str, info: dict) -> None:
    """Write atomically: a temporary file in the same directory, then a rename."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp"
    with secure_write(tmp) as f:
        json.dump(info, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def remove_runtime_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def default_runtime_file(serverapp) -> str:
    return runtime_file_path(os.getpid(), serverapp.runtime_dir)


class KernelEnvironment:
    """Adds TFSERVE_URL/TFSERVE_TOKEN to the environment kernels inherit, and takes them back."""

    def __init__(self):
        self._injected: dict[str, str] = {}

    def inject(self, url: str, token: str) -> bool:
        """Publish ``url``/``token`` to kernels started from now on; False if the user set TFSERVE_URL."""
        if os.environ.get(ENV_URL) and os.environ.get(ENV_URL) != os.environ.get(ENV_INJECTED_URL):
            log.info("tfserve: TFSERVE_URL=%s is set; kernels keep it", os.environ[ENV_URL])
            return False
        self._injected = {ENV_URL: url, ENV_TOKEN: token, ENV_INJECTED_URL: url}
        os.environ.update(self._injected)
        return True

    def withdraw(self) -> None:
        for name, value in self._injected.items():
            if os.environ.get(name) == value:
                del os.environ[name]
        self._injected = {}
