"""What TF Serving lacks, under ``/tfserve/api/`` so that ``/v1/`` stays exactly TF Serving's.

Same transport-free style as :mod:`.rest`: a request in, a :class:`~.rest.Response`
out. Routes live in one small table of ``(method, pattern, handler name)``;
patterns are regular expressions over the path below ``/tfserve/api`` whose
named groups become the handler's keyword arguments, so adding an endpoint
(load/unload, labels, batching statistics) is one row and one method, in a
subclass or through :meth:`ManagementApi.add_route`.

Built so far:

* ``GET /tfserve/api/models``: every model with its versions, states, errors,
  labels, version policy and, for loaded versions, signatures (dtype, shape);
* ``GET /tfserve/api/ready``: 200 only when every configured model has an
  AVAILABLE version (a readiness probe for load balancers and Kubernetes),
  503 with the models still waiting otherwise;
* ``GET|PUT|DELETE /tfserve/api/models/{name}/batching``: live batch statistics
  and effective parameters of one model; PUT replaces its ``BatchingParameters``
  (JSON, e.g. ``{"max_batch_size": 64}``) without losing queued requests,
  DELETE returns it to its file's or the server's parameters;
* ``POST /tfserve/api/models``: load a model (name, base_path, version policy),
  ``GET|DELETE /tfserve/api/models/{name}``: one model, unload it;
* ``PUT|DELETE /tfserve/api/models/{name}/labels/{label}``: version labels;
* ``POST /tfserve/api/models/{name}/rollback``: serve the previous version again;
* ``GET /tfserve/api/config``, ``POST /tfserve/api/config/reload``: the model
  config, and realizing a new one (from the body or the config file);
* ``GET /tfserve/api/metrics``: every metric series as JSON (``?model=`` filters);
* ``GET /tfserve/api/info``: version, host, ports, uptime, startup problems.

The contract is ``openapi.yaml`` next to this module; a test holds the routes
to it. Loads and reloads touch the file system and reconfigure the manager, so
they run off the event loop; the answer (202) comes once the manager has the
new config, while versions load on its threads. Paths given to loads go
through :class:`ModelRoots`, which a host may restrict (the Jupyter extension
does); requests that fail change nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from urllib.parse import parse_qs, unquote

from google.protobuf import text_format

from .. import __version__
from ..core import platforms, source, tensors
from ..core.config import (
    ModelConfig,
    ModelServerConfig,
    load_model_server_config,
    validate_model_server_config,
)
from ..core.manager import State
from ..core.status import (
    Code,
    ServingError,
    failed_precondition,
    from_exception,
    invalid_argument,
    not_found,
)
from ..paths import default_models_root
from .rest import Request, Response, error_response, json_response

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]

CHANGES_NEED_AUTH = (
    "This model server runs inside Jupyter: change its models through Jupyter's authenticated "
    "API ({base_url}tfserve/api/...); its standalone port only answers reads."
)


class ManagementApi:
    ROUTES: tuple[tuple[str, str, str], ...] = (
        ("GET", r"/models", "list_models"),
        ("GET", r"/ready", "ready"),
        ("GET", r"/models/(?P<name>[^/]+)/batching", "batching"),
        ("PUT", r"/models/(?P<name>[^/]+)/batching", "set_batching"),
        ("DELETE", r"/models/(?P<name>[^/]+)/batching", "set_batching"),
        ("POST", r"/models", "load_model"),
        ("GET", r"/models/(?P<name>[^/]+)", "get_model"),
        ("DELETE", r"/models/(?P<name>[^/]+)", "unload_model"),
        ("PUT", r"/models/(?P<name>[^/]+)/labels/(?P<label>[^/]+)", "set_label"),
        ("DELETE", r"/models/(?P<name>[^/]+)/labels/(?P<label>[^/]+)", "remove_label"),
        ("POST", r"/models/(?P<name>[^/]+)/rollback", "rollback"),
        ("GET", r"/config", "get_config"),
        ("POST", r"/config/reload", "reload_config"),
        ("GET", r"/metrics", "metrics"),
        ("GET", r"/info", "info"),
    )

    def __init__(self, server):
        self.server = server
        self.manager = server.manager
        # Set by the host before the server starts; the standalone server keeps
        # these. The Jupyter extension restricts the roots, says "jupyter" and
        # reports its startup problems through ``host_info``.
        self.roots = ModelRoots(default_models_root(), restricted=False)
        self.host = "standalone"
        self.host_info: Callable[[], dict] | None = None
        self.config_error = ""
        # A host with authentication of its own (Jupyter) takes changes only
        # through it; its standalone port, open to anyone on the host, only reads.
        self.changes_need_auth = False
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        for method, pattern, name in self.ROUTES:
            self.add_route(method, pattern, getattr(self, name))

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler(request, **groups)`` for ``method`` on paths matching ``pattern``."""
        self._routes.append((method.upper(), re.compile(pattern), handler))

    async def handle(self, request: Request, *, authenticated: bool = False) -> Response:
        """Route one request; ``authenticated`` says the host has checked who sent it (Jupyter's mount)."""
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            if self.changes_need_auth and not authenticated and method not in ("GET", "HEAD"):
                log.warning("%s /tfserve/api%s refused: not authenticated", request.method, request.path)
                return json_response({"error": CHANGES_NEED_AUTH}, 403)
            try:
                return await handler(request, **match.groupdict())
            except ServingError as exc:
                log.warning("%s /tfserve/api%s refused: %s", request.method, request.path, exc.message)
                return error_response(exc)
            except Exception as exc:  # a bug: logged here, answered without a traceback
                log.exception("management %s %s failed", request.method, request.path)
                return error_response(from_exception(exc))
        if allowed:
            return json_response(
                {"error": f"Method {request.method} not allowed on {request.path}"},
                405,
                [("Allow", ", ".join(sorted(set(allowed))))],
            )
        return json_response(
            {"error": f"Not found: {request.method} /tfserve/api{request.path}"}, 404
        )

    # ------------------------------------------------------------------ routes
    async def list_models(self, request: Request) -> Response:
        models = []
        for name in self.manager.model_names():
            try:
                models.append(self.describe_model(name))
            except ServingError:  # removed between listing and describing
                continue
        return json_response({"models": models})

    async def ready(self, request: Request) -> Response:
        waiting = [name for name in self.manager.model_names() if not self._has_available(name)]
        if self.manager.is_ready():
            return json_response({"ready": True, "models": len(self.manager.model_names())})
        return json_response(
            {
                "error": "Not ready: no AVAILABLE version yet for " + ", ".join(waiting),
                "ready": False,
                "waiting_for": waiting,
            },
            503,
        )

    async def batching(self, request: Request, name: str) -> Response:
        return json_response(self._batcher().stats(name))

    async def set_batching(self, request: Request, name: str) -> Response:
        from ..core.batching_params import parameters_from_json

        batcher = self._batcher()
        parameters = None if request.method == "DELETE" else parameters_from_json(tensors.parse_json(request.body))
        batcher.set_parameters(name, parameters)
        return json_response(batcher.stats(name))

    def _batcher(self):
        batcher = getattr(self.server, "batcher", None)
        if batcher is None:
            raise failed_precondition("Batching is not enabled on this server; start it with --enable_batching.")
        return batcher

    # ------------------------------------------------------------------ models
    async def get_model(self, request: Request, name: str) -> Response:
        return json_response(self.describe_model(unquote(name)))

    async def load_model(self, request: Request) -> Response:
        """Serve ``name`` from ``base_path`` with ``policy``; 202 once the manager has the new config."""
        body = _json_object(request.body, required=True)
        name = body.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise invalid_argument("'name' must be a non-empty string without '/'")
        base_path = body.get("base_path") or ""
        if not isinstance(base_path, str):
            raise invalid_argument("'base_path' must be a string")
        policy = parse_policy_json(body.get("policy"))
        config = await _blocking(self._model_config, name, base_path, policy)
        await _blocking(partial(self.manager.add_model, config, wait_timeout=None))
        log.info("Serving model %s from %s (%s)", name, config.base_path, source.describe_policy(policy))
        return json_response(self.describe_model(name), 202)

    def _model_config(self, name: str, base_path: str, policy) -> ModelConfig:
        """The checked config of a load: inside the roots, a servable repository (blocking)."""
        path = self.roots.resolve(name, base_path)
        check_repository(name, path, policy, self.roots)
        config = ModelConfig(name=name, base_path=path, model_platform="tensorflow")
        if policy is not None:
            config.model_version_policy.CopyFrom(policy)
        return config

    async def unload_model(self, request: Request, name: str) -> Response:
        name = unquote(name)
        await _blocking(self.manager.remove_model, name)
        log.info("Unloading model %s", name)
        return json_response({"name": name, "unloaded": True}, 202)

    async def set_label(self, request: Request, name: str, label: str) -> Response:
        name, label = unquote(name), unquote(label)
        version = _version(_json_object(request.body, required=True).get("version"))
        self.manager.set_label(name, label, version)
        log.info("Label %s of model %s points at version %d", label, name, version)
        return json_response({"name": name, "labels": self.manager.labels(name)})

    async def remove_label(self, request: Request, name: str, label: str) -> Response:
        name, label = unquote(name), unquote(label)
        self.manager.remove_label(name, label)
        log.info("Label %s of model %s removed", label, name)
        return json_response({"name": name, "labels": self.manager.labels(name)})

    async def rollback(self, request: Request, name: str) -> Response:
        """Serve the previous version again by pinning the version policy to it.

        The previous version is the newest one on disk older than the newest
        AVAILABLE version (or the ``version`` asked for). Pinning the policy,
        rather than moving a label, is what changes the answer for every client:
        requests that name no version (TF Serving's default, and what most
        clients send) follow the policy, while a label only reroutes the clients
        that ask for it. The manager loads the previous version before it unloads
        the current one, so no request fails in between. Labels are left as they
        are; going forward again is a load with the old policy.
        """
        name = unquote(name)
        wanted = _json_object(request.body).get("version")
        config = self.manager.model_config(name)
        serving = [s.version for s in self.manager.version_status(name) if s.state == State.AVAILABLE]
        if not serving:
            raise failed_precondition(f"Model {name} has no AVAILABLE version to roll back from")
        current = max(serving)
        try:
            on_disk = await _blocking(source.list_versions, config.base_path)
        except OSError as exc:
            raise failed_precondition(f"Cannot read base path {config.base_path} of model {name}: {exc}") from None
        if wanted is not None:
            target = _version(wanted)
            if target not in on_disk:
                raise not_found(f"Version {target} of model {name} is not under {config.base_path}")
            if target == current:
                raise failed_precondition(f"Model {name} is already serving version {target}")
        else:
            older = [v for v in on_disk if v < current]
            if not older:
                raise failed_precondition(
                    f"Model {name} has no version older than {current} under {config.base_path} to roll back to"
                )
            target = max(older)
        config.model_version_policy.specific.versions[:] = [target]  # also clears latest/all
        await _blocking(partial(self.manager.add_model, config, wait_timeout=None))
        log.info("Rolling back model %s from version %d to %d", name, current, target)
        return json_response(
            {
                "name": name,
                "version": target,
                "from_version": current,
                "policy": {"specific": {"versions": [target]}},
            },
            202,
        )

    # ------------------------------------------------------------------ config
    async def get_config(self, request: Request) -> Response:
        return json_response(
            {
                "config": text_format.MessageToString(self.manager.config),
                "model_config_file": self.server.options.model_config_file,
            }
        )

    async def reload_config(self, request: Request) -> Response:
        """Realize a ModelServerConfig exactly (TF Serving's HandleReloadConfigRequest): the body's, or the file's.

        Like TF Serving, a config with labels waits for its versions to load
        before the labels are applied, so that they point at AVAILABLE versions.
        """
        text = _json_object(request.body).get("config")
        if text is not None and not isinstance(text, str):
            raise invalid_argument("'config' must be a ModelServerConfig in text format")
        config = await _blocking(self._read_config, text)
        labelled = any(m.version_labels for m in config.model_config_list.config)
        await _blocking(partial(self.manager.reload_config, config, wait_timeout=300.0 if labelled else None))
        self.config_error = ""
        names = [m.name for m in config.model_config_list.config]
        log.info("Model config reloaded: %s", ", ".join(names) or "no models")
        return json_response({"models": names})

    def _read_config(self, text: str | None) -> ModelServerConfig:
        """The config to realize, parsed and validated (blocking).

        The server's own config file is trusted as at startup (whoever wrote it
        configured the server); a config sent in a request must keep its models
        inside the roots, like a load.
        """
        if text is None:
            path = self.server.options.model_config_file
            if not path:
                raise failed_precondition(
                    'No model_config_file is configured; send the config in the body: {"config": "..."}'
                )
            return load_model_server_config(path)
        try:
            config = text_format.Parse(text, ModelServerConfig())
        except text_format.ParseError as exc:
            raise invalid_argument(
                f"Error parsing text-format tensorflow.serving.ModelServerConfig: {exc}"
            ) from None
        validate_model_server_config(config)
        for model in config.model_config_list.config:
            self.roots.check(model.base_path)
        return config

    # ------------------------------------------------------------------ server
    async def metrics(self, request: Request) -> Response:
        snapshot = self.server.metrics.snapshot()
        model = parse_qs(request.query).get("model", [None])[0]
        if model is not None:
            snapshot = {
                metric: kept
                for metric, series in snapshot.items()
                if (kept := [s for s in series if s["labels"].get("model_name") == model])
            }
        return json_response(snapshot)

    async def info(self, request: Request) -> Response:
        server = self.server
        options = server.options
        tensorflow = sys.modules.get("tensorflow")
        started = server.started_at
        info = {
            "version": __version__,
            "host": self.host,
            "pid": os.getpid(),
            "started_at": started,
            "uptime_seconds": time.time() - started if started else 0.0,
            "ports": {"grpc": server.grpc_port or 0, "rest": server.rest_port or 0},
            "bind_host": options.rest_api_host,
            "models": len(self.manager.model_names()),
            "ready": self.manager.is_ready(),
            "batching": getattr(server, "batcher", None) is not None,
            "model_config_file": options.model_config_file,
            "models_root": self.roots.models_root,
            "allowed_model_roots": list(self.roots.allowed),
            "tensorflow": {
                "imported": tensorflow is not None,
                "version": getattr(tensorflow, "__version__", ""),
            },
            "port_errors": {},
            "config_error": self.config_error,
        }
        if self.host_info is not None:
            info.update(self.host_info())
        return json_response(info)

    # ------------------------------------------------------------------ views
    def describe_model(self, name: str) -> dict:
        from google.protobuf import json_format

        config = self.manager.model_config(name)
        if config.model_version_policy.WhichOneof("policy_choice") is None:
            policy = {"latest": {"num_versions": 1}}
        else:
            policy = json_format.MessageToDict(
                config.model_version_policy,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
        try:
            statuses = self.manager.version_status(name)
        except ServingError:
            statuses = []
        versions = []
        for status in statuses:
            entry = {
                "version": status.version,
                "state": status.state.value,
                "error_code": status.error.code.name if status.error else "OK",
                "error_message": status.error.message if status.error else "",
                "path": status.path,
            }
            if status.state == State.AVAILABLE:
                entry.update(self._describe_servable(name, status.version))
            versions.append(entry)
        return {
            "name": name,
            "base_path": config.base_path,
            "platform": config.model_platform or "tensorflow",
            "policy": policy,
            "labels": self.manager.labels(name),
            "source_error": self.manager.source_error(name),
            "versions": versions,
        }

    def _describe_servable(self, name: str, version: int) -> dict:
        try:
            handle = self.manager.acquire(name, version)
        except ServingError:  # unloaded since the status was read
            return {}
        with handle:
            servable = handle.servable
            return {
                "platform": servable.platform,
                "loader": servable.loader,
                "signatures": {
                    key: describe_signature(sig) for key, sig in servable.signatures.items()
                },
            }

    def _has_available(self, name: str) -> bool:
        try:
            return any(s.state == State.AVAILABLE for s in self.manager.version_status(name))
        except ServingError:
            return False


def describe_signature(signature) -> dict:
    def tensors_of(specs) -> dict:
        return {
            alias: {
                "dtype": tensors.datatype_name(spec.dtype),
                "shape": list(spec.shape) if spec.shape is not None else None,
            }
            for alias, spec in specs.items()
        }

    return {
        "method_name": signature.method_name,
        "inputs": tensors_of(signature.inputs),
        "outputs": tensors_of(signature.outputs),
    }


class ModelRoots:
    """Where loads may read models from.

    Relative base paths resolve under ``models_root``. When ``restricted`` (the
    Jupyter extension), a path must resolve, after ``..`` and symlinks, inside
    ``models_root`` or one of ``allowed``; anything else is PERMISSION_DENIED,
    with ``hint`` saying how to allow it. The standalone server is not
    restricted, like TF Serving's own config reload.
    """

    def __init__(self, models_root: str, allowed: Sequence[str] = (), *, restricted: bool = True, hint: str = ""):
        self.models_root = os.path.abspath(os.path.expanduser(models_root))
        self.allowed = [os.path.abspath(os.path.expanduser(p)) for p in allowed]
        self.restricted = restricted
        self.hint = hint

    def resolve(self, name: str, base_path: str) -> str:
        """The real path a load reads (``models_root/name`` by default); touches the file system."""
        path = os.path.join(self.models_root, base_path or name)  # an absolute base_path wins
        return self.check(path, shown=base_path or name)

    def check(self, path: str, shown: str | None = None) -> str:
        """``path`` with ``..`` and symlinks resolved, once it is known to lie inside the roots."""
        real = os.path.realpath(path)
        if not self.restricted:
            return real
        roots = [self.models_root, *self.allowed]
        for root in roots:
            root_real = os.path.realpath(root)
            if real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep):
                return real
        shown = shown or path
        where = shown if shown == real else f"{shown} (resolved: {real})"
        hint = f"; {self.hint}" if self.hint else ""
        raise ServingError(
            Code.PERMISSION_DENIED, f"Model path {where} is outside the model roots {', '.join(roots)}{hint}"
        )


def check_repository(name: str, path: str, policy, roots: ModelRoots) -> None:
    """Refuse what cannot be served before anything changes (blocking).

    A missing path, a SavedModel given without its version directory, no
    version directories, a policy that selects none of them, or a selected
    version that is neither a SavedModel nor a TensorFlow Lite model (or lies outside the roots).
    """
    if not os.path.exists(path):
        raise not_found(f"base_path {path} of model {name} does not exist")
    if not os.path.isdir(path):
        raise invalid_argument(f"base_path {path} of model {name} is not a directory")
    if _is_saved_model(path):
        raise invalid_argument(
            f"base_path {path} is a SavedModel itself; models are served from numbered version "
            f"directories under base_path: move it to {os.path.join(path, '1')}"
        )
    versions = source.list_versions(path)
    if not versions:
        raise invalid_argument(
            f"No versions of servable {name} found under base path {path}: "
            "expected numbered version directories (1, 2, ...) each holding a SavedModel"
        )
    aspired = source.aspired_versions(versions, policy)
    if not aspired:
        raise invalid_argument(
            f"Version policy {source.describe_policy(policy)} of model {name} selects none of the "
            f"versions under {path} ({', '.join(str(v) for v in sorted(versions))})"
        )
    for version_path in aspired.values():
        roots.check(version_path)  # a version directory may be a symlink too
        if not platforms.get(platforms.select("", version_path)).recognizes(version_path):
            raise invalid_argument(
                f"{version_path} is not a SavedModel: it has no saved_model.pb (nor a model.tflite)"
            )


def _is_saved_model(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt"))


def parse_policy_json(value):
    """A version policy from a request: ``latest:2``, ``all``, ``specific:1,2``, or TF Serving's JSON form."""
    if value is None:
        return None
    if isinstance(value, str):
        return source.parse_policy(value)
    shown = json.dumps(value)
    if not isinstance(value, dict):
        raise invalid_argument(f"Invalid version policy {shown}: expected latest:N, all, specific:V1,V2 or an object")
    from google.protobuf import json_format
    from tensorflow_serving.config import file_system_storage_path_source_pb2 as fs

    try:
        policy = json_format.ParseDict(value, fs.FileSystemStoragePathSourceConfig.ServableVersionPolicy())
    except json_format.ParseError as exc:
        raise invalid_argument(f"Invalid version policy {shown}: {exc}") from None
    choice = policy.WhichOneof("policy_choice")
    if (
        choice is None
        or (choice == "latest" and policy.latest.num_versions < 1)
        or (choice == "specific" and not policy.specific.versions)
    ):
        raise invalid_argument(
            f"Invalid version policy {shown}: expected latest with num_versions >= 1, all, "
            "or specific with at least one version"
        )
    return policy


def _json_object(body: bytes, *, required: bool = False) -> dict:
    """A request body that must be a JSON object (or may be empty when not ``required``)."""
    if not required and not body.strip():
        return {}
    value = tensors.parse_json(body)
    if not isinstance(value, dict):
        raise invalid_argument("Request body must be a JSON object")
    return value


def _version(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_argument(f"'version' must be a non-negative integer, got {json.dumps(value)}")
    return value


async def _blocking(fn, *args):
    """File-system work and manager reconfiguration, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
