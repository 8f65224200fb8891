"""Finding the model server to talk to, from a kernel or any process on this machine.

Jupyter does not tell kernels where the server that started them listens. The
Jupyter extension therefore leaves two trails, and this module follows them:

* ``tfserve-<pid>.json`` in the Jupyter runtime directory (one per running
  Jupyter server with the extension), holding the URLs and ports and a
  *reference* to the token: the path of Jupyter's own ``jpserver-<pid>.json``,
  which already holds it. The token is kept in one file, the one Jupyter
  writes and removes, rather than copied into a second.
* ``TFSERVE_URL``/``TFSERVE_TOKEN`` in the environment of kernels the server
  starts (plus ``TFSERVE_INJECTED_URL``, so an address a user sets by hand can
  be told apart from the injected one).

Kernels import this module, so it depends on the standard library alone
(``jupyter_core`` only to locate the runtime directory).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace

log = logging.getLogger(__name__)

RUNTIME_FILE_PREFIX = "tfserve-"
ENV_URL = "TFSERVE_URL"
ENV_TOKEN = "TFSERVE_TOKEN"
ENV_INJECTED_URL = "TFSERVE_INJECTED_URL"


@dataclass(frozen=True)
class ServerInfo:
    """Where a model server answers and how to authenticate.

    ``url`` is the root of its REST API: TF Serving's routes are
    ``{url}/v1/models/...`` and the management API ``{url}/api/...``.
    ``source`` says how it was found: ``explicit``, ``injected``, ``parent``
    (the Jupyter server that started this kernel) or ``only`` (the one running).
    """

    url: str
    token: str = ""
    source: str = "explicit"
    pid: int | None = None
    jupyter_url: str = ""
    host: str = "127.0.0.1"
    rest_port: int = 0
    grpc_port: int = 0
    models_root: str = ""
    runtime_file: str = ""
    models: list | None = field(default=None, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header Jupyter accepts (empty when the server has no token)."""
        return {"Authorization": f"token {self.token}"} if self.token else {}

    @property
    def grpc_target(self) -> str | None:
        """``host:port`` of the standalone gRPC port, when it is open."""
        return f"{self.host}:{self.grpc_port}" if self.grpc_port else None

    def get_json(self, path: str, timeout: float = 5.0):
        """GET ``{url}/{path}`` with the token and decode the JSON answer (blocking)."""
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}/{path.lstrip('/')}", headers=self.headers
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())


def runtime_dir() -> str:
    """Jupyter's runtime directory (honours ``$JUPYTER_RUNTIME_DIR``)."""
    from jupyter_core.paths import jupyter_runtime_dir

    return jupyter_runtime_dir()


def runtime_file_path(pid: int, directory: str | None = None) -> str:
    return os.path.join(directory or runtime_dir(), f"{RUNTIME_FILE_PREFIX}{pid}.json")


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discover(
    url: str | None = None, token: str | None = None, *, directory: str | None = None
) -> ServerInfo | None:
    """The server this process should talk to, or None.

    Resolution order:

    1. an explicit address: the ``url``/``token`` arguments, or a ``TFSERVE_URL``
       (and ``TFSERVE_TOKEN``) the user set;
    2. the address the Jupyter extension injected into this kernel's environment;
    3. the runtime file of the Jupyter server that started this kernel
       (its pid is ``JPY_PARENT_PID``);
    4. the only running server with the extension;
    5. none (several servers and no hint, or none at all).

    Details the environment cannot carry (ports, models_root) are filled in from
    the runtime file of the same server when there is one.
    """
    if url:
        return _with_details(ServerInfo(url=url.rstrip("/"), token=token or ""), directory)
    env_url = os.environ.get(ENV_URL, "").rstrip("/")
    if env_url:
        injected = os.environ.get(ENV_INJECTED_URL, "").rstrip("/") == env_url
        info = ServerInfo(
            url=env_url,
            token=token if token is not None else os.environ.get(ENV_TOKEN, ""),
            source="injected" if injected else "explicit",
        )
        return _with_details(info, directory)
    servers = _live_servers(directory)
    parent = os.environ.get("JPY_PARENT_PID", "")
    if parent.isdigit():
        for info in servers:
            if info.pid == int(parent):
                return replace(
                    info, source="parent", token=token if token is not None else info.token
                )
    if len(servers) == 1:
        return replace(
            servers[0], source="only", token=token if token is not None else servers[0].token
        )
    return None


def list_servers(
    *, with_models: bool = True, timeout: float = 2.0, directory: str | None = None
) -> list[ServerInfo]:
    """Every live server with the extension on this machine, each with its models.

    Runtime files of processes that are gone are removed on the way. ``models``
    is None for a server that did not answer within ``timeout``.
    """
    servers = _live_servers(directory)
    if not with_models:
        return servers
    found = []
    for info in servers:
        try:
            models = info.get_json("api/models", timeout=timeout).get("models", [])
        except (OSError, ValueError) as exc:
            log.info("tfserve server %s did not answer: %s", info.url, exc)
            models = None
        found.append(replace(info, models=models))
    return found


def read_runtime_file(path: str) -> ServerInfo | None:
    """A runtime file as ServerInfo, with the token resolved from its reference; None if unreadable."""
    try:
        with open(path) as f:
            data = json.load(f)
        return ServerInfo(
            url=data["url"].rstrip("/"),
            token=_read_token(data.get("token_file", "")),
            source="runtime",
            pid=int(data["pid"]),
            jupyter_url=data.get("jupyter_url", ""),
            host=data.get("host") or "127.0.0.1",
            rest_port=int(data.get("rest_port") or 0),
            grpc_port=int(data.get("grpc_port") or 0),
            models_root=data.get("models_root", ""),
            runtime_file=path,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("ignoring unreadable runtime file %s: %s", path, exc)
        return None


def _read_token(token_file: str) -> str:
    """The token from Jupyter's own server-info file (``jpserver-<pid>.json``), if it names one."""
    if not token_file:
        return ""
    try:
        with open(token_file) as f:
            return json.load(f).get("token", "") or ""
    except (OSError, ValueError):
        return ""


def _live_servers(directory: str | None) -> list[ServerInfo]:
    """Servers whose process is alive, oldest pid first; stale files are deleted."""
    pattern = os.path.join(directory or runtime_dir(), f"{RUNTIME_FILE_PREFIX}*.json")
    servers = []
    for path in sorted(glob.glob(pattern)):
        info = read_runtime_file(path)
        if info is None:
            continue
        if not pid_alive(info.pid):
            _remove_stale(path)
            continue
        servers.append(info)
    return sorted(servers, key=lambda s: s.pid)


def _remove_stale(path: str) -> None:
    try:
        os.remove(path)
        log.info("removed stale tfserve runtime file %s", path)
    except OSError:
        pass


def _with_details(info: ServerInfo, directory: str | None) -> ServerInfo:
    for server in _live_servers(directory):
        if server.url == info.url:
            return replace(server, token=info.token or server.token, source=info.source)
    return info
