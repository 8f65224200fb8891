"""What TF Serving lacks, under ``/tfserve/api/`` so that ``/v1/`` stays exactly TF Serving's.

Same transport-free style as :mod:`.rest`: a :class:`~.http.Request` in, a
:class:`~.http.Response` out. Routes live in one small table of ``(method, pattern, handler name)``;
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
to it. Every change is a call to the admin core (:mod:`..core.admin`) with the
caller the front established: the admin applies the host's policy (who may
change, model roots, names) and makes the change in one step; this module
only translates. Changes touch the file system and reconfigure the manager,
so they run off the event loop; the answer (202) comes once the manager has
the new config, while versions load on its threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, unquote

from google.protobuf import text_format

from ..core import tensors
from ..core.admin import Admin, Caller, parse_policy_json
from ..core.manager import ModelManager
from ..core.metrics import ServingMetrics
from ..core.model_report import describe_model, describe_models, waiting_models
from ..core.status import ServingError, from_exception, invalid_argument
from .http import Request, Response, error_response, json_response

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]


class ManagementApi:
    """The ``/tfserve/api`` router over the admin core (changes) and the engine's reports (reads).

    ``info`` describes the running server (ports, host, uptime) for
    ``GET /info``; ``config_error`` is a startup problem the host reported
    (a config file it could not apply), cleared by a reload.
    """

    ROUTES: tuple[tuple[str, str, str], ...] = (
        ("GET", r"/models", "list_models"),
        ("GET", r"/ready", "ready"),
        ("GET", r"/models/(?P<name>[^/]+)/batching", "batching"),
        ("PUT", r"/models/(?P<name>[^/]+)/batching", "set_batching"),
        ("DELETE", r"/models/(?P<name>[^/]+)/batching", "set_batching"),
        ("GET", r"/models/(?P<name>[^/]+)/logging", "logging"),
        ("PUT", r"/models/(?P<name>[^/]+)/logging", "set_logging"),
        ("DELETE", r"/models/(?P<name>[^/]+)/logging", "set_logging"),
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

    def __init__(
        self,
        admin: Admin,
        manager: ModelManager,
        request_log,
        metrics: ServingMetrics,
        *,
        info: Callable[[], dict],
        config_file: str = "",
        config_error: str = "",
    ):
        self.admin = admin
        self.manager = manager
        self.request_log = request_log
        self.serving_metrics = metrics
        self.server_info = info
        self.config_file = config_file
        self.config_error = config_error
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        for method, pattern, name in self.ROUTES:
            self.add_route(method, pattern, getattr(self, name))

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler(request, **groups)`` for ``method`` on paths matching ``pattern``."""
        self._routes.append((method.upper(), re.compile(pattern), handler))

    async def handle(self, request: Request, caller: Caller) -> Response:
        """Route one request; ``caller`` is who the front that received it says sent it."""
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            try:
                if method == "GET":
                    return await handler(request, **match.groupdict())
                return await handler(request, caller, **match.groupdict())
            except ServingError as exc:
                log.warning(
                    "%s /tfserve/api%s refused: %s", request.method, request.path, exc.message
                )
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
        return json_response({"models": describe_models(self.manager, self.request_log)})

    async def ready(self, request: Request) -> Response:
        waiting = waiting_models(self.manager)
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
        return json_response(self.admin.batcher_or_refusal().stats(name))

    async def set_batching(self, request: Request, caller: Caller, name: str) -> Response:
        from ..core.batching_params import parameters_from_json

        parameters = (
            None
            if request.method == "DELETE"
            else parameters_from_json(tensors.parse_json(request.body))
        )
        await _blocking(self.admin.set_batching, caller, name, parameters)
        return json_response(self.admin.batcher_or_refusal().stats(name))

    # ------------------------------------------------------------------ request logging
    async def logging(self, request: Request, name: str) -> Response:
        name = unquote(name)
        self.manager.model_config(name)  # NOT_FOUND for a model not served
        return json_response({"name": name, **self.request_log.status(name)})

    async def set_logging(self, request: Request, caller: Caller, name: str) -> Response:
        """PUT sets ``sampling_rate``, ``filename_prefix`` or ``type`` (``{"sampling_rate": 0}`` pauses);
        DELETE removes the model's ``logging_config``."""
        name = unquote(name)
        changes = None if request.method == "DELETE" else _json_object(request.body, required=True)
        await _blocking(self.admin.set_logging, caller, name, changes)
        return json_response({"name": name, **self.request_log.status(name)})

    # ------------------------------------------------------------------ models
    async def get_model(self, request: Request, name: str) -> Response:
        return json_response(self._describe(unquote(name)))

    async def load_model(self, request: Request, caller: Caller) -> Response:
        """Serve ``name`` from ``base_path`` with ``policy``; 202 once the manager has the new config."""
        body = _json_object(request.body, required=True)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise invalid_argument("'name' must be a non-empty string")
        base_path = body.get("base_path") or ""
        if not isinstance(base_path, str):
            raise invalid_argument("'base_path' must be a string")
        policy = parse_policy_json(body.get("policy"))
        await _blocking(self.admin.load, caller, name, base_path, policy)
        return json_response(self._describe(name), 202)

    async def unload_model(self, request: Request, caller: Caller, name: str) -> Response:
        name = unquote(name)
        await _blocking(self.admin.unload, caller, name)
        return json_response({"name": name, "unloaded": True}, 202)

    async def set_label(self, request: Request, caller: Caller, name: str, label: str) -> Response:
        name, label = unquote(name), unquote(label)
        version = _version(_json_object(request.body, required=True).get("version"))
        labels = await _blocking(self.admin.set_label, caller, name, label, version)
        return json_response({"name": name, "labels": labels})

    async def remove_label(
        self, request: Request, caller: Caller, name: str, label: str
    ) -> Response:
        name, label = unquote(name), unquote(label)
        labels = await _blocking(self.admin.remove_label, caller, name, label)
        return json_response({"name": name, "labels": labels})

    async def rollback(self, request: Request, caller: Caller, name: str) -> Response:
        """Serve the previous version again (see :meth:`..core.admin.Admin.rollback`)."""
        name = unquote(name)
        wanted = _json_object(request.body).get("version")
        version = None if wanted is None else _version(wanted)
        target, current = await _blocking(self.admin.rollback, caller, name, version)
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
                "model_config_file": self.config_file,
            }
        )

    async def reload_config(self, request: Request, caller: Caller) -> Response:
        """Realize a ModelServerConfig exactly (TF Serving's HandleReloadConfigRequest): the body's, or the file's.

        The server's own config file is trusted as at startup; a config sent in
        the body must keep its models inside the roots, like a load.
        """
        text = _json_object(request.body).get("config")
        if text is not None and not isinstance(text, str):
            raise invalid_argument("'config' must be a ModelServerConfig in text format")
        if text is None:
            names = await _blocking(self.admin.reload_file, caller)
        else:
            names = await _blocking(self.admin.reload_text, caller, text)
        self.config_error = ""
        return json_response({"models": names})

    # ------------------------------------------------------------------ server
    async def metrics(self, request: Request) -> Response:
        snapshot = self.serving_metrics.snapshot()
        model = parse_qs(request.query).get("model", [None])[0]
        if model is not None:
            snapshot = {
                metric: kept
                for metric, series in snapshot.items()
                if (kept := [s for s in series if s["labels"].get("model_name") == model])
            }
        return json_response(snapshot)

    async def info(self, request: Request) -> Response:
        return json_response({**self.server_info(), "config_error": self.config_error})

    def _describe(self, name: str) -> dict:
        return describe_model(self.manager, self.request_log, name)


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
