"""TF Serving's REST API as a transport-free function: (method, path, query, headers, body) -> Response.

Every HTTP front (tornado inside Jupyter, httptools on the standalone port) is a
thin adapter over :meth:`RestApp.handle`, so routing, decoding, error mapping,
CORS, gzip and metrics live here once and the fronts answer with the same
bytes. Nothing in this module knows about tornado or ASGI.

What clients of ``tensorflow_model_server`` depend on, and this module keeps:

* only paths under ``/v1/`` (matched case-insensitively) reach the API; any
  other ``/v1/`` request is ``400 Malformed request: <METHOD> <PATH>`` and
  ``GET /v1/models`` is ``400 Missing model name in request.``;
* ``GET /v1/models/{m}[/versions/{n}|/labels/{l}][/metadata]`` answers the
  status and metadata JSON that TF Serving prints (pretty-printed with one
  space of indent, int64 as strings), so scripts that grep it keep working;
* ``POST /v1/models/{m}[/versions/{n}|/labels/{l}]:(predict|classify|regress)``
  decodes with :mod:`jupyter_tfserve.core.tensors` and runs through the
  inference service; errors are ``{"error": "<message>"}`` with TF Serving's
  status-to-HTTP mapping, never a traceback.

The ``path`` handed to :meth:`RestApp.handle` is the raw, still percent-encoded
request path relative to wherever the fronts mount the app: TF Serving matches
the raw path and only then decodes the model name and label, so
``/v1/models/a%2Fb:predict`` names model ``a/b``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
import zlib
from collections.abc import Mapping
from concurrent.futures import Executor
from urllib.parse import unquote

from ..core import tensors
from ..core.admin import Caller
from ..core.config import MonitoringConfig
from ..core.inference import InferenceService, ModelSpec
from ..core.metrics import CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE
from ..core.metrics import ServingMetrics
from ..core.options import ServerOptions
from ..core.platforms import SignatureNotFound
from ..core.status import Code, ServingError, clip, from_exception, invalid_argument
from . import futures
from .access import MANAGEMENT_PREFIX
from .http import (
    JSON_CONTENT_TYPE,
    Request,
    Response,
    body_too_large,
    error_response,
    json_response,
)

log = logging.getLogger(__name__)

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"

# JSON bodies above this size are decoded (and their answers encoded) on the
# server's executor: a multi-megabyte request must not stall every other
# request on the event loop while it is parsed. Below it, numbers take the
# vectorised path (about 0.6 ms for 32 KiB of floats) on the loop.
OFFLOAD_BYTES = 32 * 1024
# The per-value path (strings, mixed or malformed values, tf.Examples) costs
# about a microsecond a value: bodies above this size that need it move to
# the executor too, so no request holds the loop for more than about 1 ms.
EXACT_INLINE_BYTES = 1024
# Decoding also costs per array (~0.5 us each): 60 KB of one-value rows is 9,000 arrays, ~4 ms.
# Bodies with more arrays than this leave the loop whatever their size.
OFFLOAD_ARRAYS = 1024
# Output tensors with more elements than this are encoded on the executor.
OFFLOAD_ELEMENTS = 16 * 1024

# TF Serving's own patterns (matched against the raw path, case-insensitively).
# ``[0-9]`` rather than ``\d``: only ASCII digits name a version.
_PREDICT_RE = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/([0-9]+)|/labels/([^/:]+))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/([0-9]+)|/labels/([^/:]+))?(?:/(metadata))?",
    re.IGNORECASE,
)
_INT64_MAX = 2**63 - 1
_INT64_DIGITS = len(str(_INT64_MAX))
_ORIGIN_RE = re.compile(r"https?://")

_CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "POST, GET"),
    ("Access-Control-Allow-Headers", "Content-Type"),
)
_API_LABELS = {"predict": "predict", "classify": "classify", "regress": "regress"}


class _Route:
    """A parsed ``/v1/`` path; shared by every request to that path, so never changed."""

    __slots__ = ("action", "model", "version", "label")

    def __init__(self, action: str, model: str, version: int | None, label: str | None):
        self.action = action  # predict | classify | regress | status | metadata
        self.model = model
        self.version = version
        self.label = label


def parse_v1_path(method: str, path: str) -> _Route:
    """TF Serving's routing of a ``/v1/`` path; raises its INVALID_ARGUMENT errors.

    A server sees the same few paths over and over, so short ones are routed
    once and remembered (routes are never changed; errors are not kept).
    """
    if len(path) <= _CACHED_PATH_CHARS:
        return _routed(method, path)
    return _route(method, path)


def _route(method: str, path: str) -> _Route:
    action = None
    match = None
    if method == "POST":
        match = _PREDICT_RE.fullmatch(path)
        if match is not None:
            action = match.group(4)
    elif method == "GET":
        match = _STATUS_RE.fullmatch(path)
        if match is not None:
            action = "metadata" if match.group(4) == "metadata" else "status"
    # The verb matches case-insensitively but dispatches only when spelled in lower case.
    if match is None or action not in ("predict", "classify", "regress", "status", "metadata"):
        raise invalid_argument(f"Malformed request: {method} {clip(path)}")
    name = unquote(match.group(1) or "")
    version_text, label_text = match.group(2), match.group(3)
    version = None if version_text is None else _version_number(version_text)
    label = unquote(label_text) if label_text is not None else None
    if not name:
        raise invalid_argument("Missing model name in request.")
    return _Route(action, name, version, label)


_CACHED_PATH_CHARS = 256
_routed = functools.lru_cache(maxsize=1024)(_route)


def _version_number(text: str) -> int:
    """A URL's version digits as an int64; TF Serving's 400 when they do not fit.

    Leading zeros are allowed, and never reach ``int()``: it refuses (with a
    ValueError, a 500) strings of more than 4300 digits.
    """
    digits = text.lstrip("0") or "0"
    if len(digits) > _INT64_DIGITS or int(digits) > _INT64_MAX:
        raise invalid_argument(f"Failed to convert version: {clip(text)} to numeric.")
    return int(digits)


class RestApp:
    """TF Serving's REST API (plus the management API and the Prometheus page) over one engine.

    It is given the parts it uses: the inference ``service``, the port's
    ``guard``, the ``management`` router for ``/tfserve/api``, the
    ``executor`` big decodes run on, and the server's ``options`` and
    ``monitoring`` config. ``cors``, ``max_body_bytes`` and
    ``max_requests_in_flight`` default to the options; they are parameters so
    that one server can be exposed through differently configured fronts
    (tests, a CORS-enabled port next to a private one).
    """

    def __init__(
        self,
        service: InferenceService,
        metrics: ServingMetrics,
        guard,
        management,
        *,
        executor: Executor,
        options: ServerOptions,
        monitoring: MonitoringConfig,
        cors: bool | None = None,
        max_body_bytes: int | None = None,
        max_requests_in_flight: int | None = None,
    ):
        self.service = service
        self.metrics = metrics
        self.guard = guard
        self.management = management
        self.executor = executor
        self.cors = options.rest_api_enable_cors_support if cors is None else cors
        self.max_body_bytes = (
            options.rest_api_max_body_bytes if max_body_bytes is None else max_body_bytes
        )
        self.max_requests_in_flight = (
            options.max_requests_in_flight
            if max_requests_in_flight is None
            else max_requests_in_flight
        )
        timeout_ms = options.rest_api_timeout_in_ms
        self.timeout = timeout_ms / 1000.0 if timeout_ms and timeout_ms > 0 else None
        self._deadlines = futures.Deadlines(self.timeout) if self.timeout is not None else None
        prometheus = monitoring.prometheus_config
        self.prometheus_path = (
            (prometheus.path or DEFAULT_PROMETHEUS_PATH) if prometheus.enable else None
        )

    # ------------------------------------------------------------------ entry points
    async def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """A request to a port of the server's own: the port's access rules first (see ``access``)."""
        guard = self.guard
        try:
            guard.check_http(method, path, headers)
        except ServingError as exc:
            log.warning("%s %s refused: %s", method, path, exc.message)
            return error_response(exc)
        return await self.dispatch(
            method, path, query, headers, body, Caller("rest", guard.principal)
        )

    async def dispatch(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        caller: Caller,
    ) -> Response:
        """Route a request its front has admitted; ``caller`` is who it says sent it."""
        if path[:4].lower() == "/v1/":
            return await self._v1(method, path, headers, body)
        if path == self.prometheus_path:
            return Response(200, [("Content-Type", PROMETHEUS_CONTENT_TYPE)], self.metrics.render())
        if path == MANAGEMENT_PREFIX or path.startswith(MANAGEMENT_PREFIX + "/"):
            request = Request(method, path[len(MANAGEMENT_PREFIX) :], query, headers, body)
            return await self.management.handle(request, caller)
        return json_response({"error": f"Not found: {method} {path}"}, 404)

    def body_too_large(self, size: int | None, limit: int | None = None) -> Response:
        """The 413 every front sends for a body over the limit (before or after reading it)."""
        return body_too_large(size, self.max_body_bytes if limit is None else limit)

    # ------------------------------------------------------------------ /v1/
    async def _v1(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        if method == "OPTIONS" and self.cors:
            return self._preflight(headers)
        started = time.perf_counter()
        model = api = ""
        try:
            route = parse_v1_path(method, path)
            model = route.model
            action = route.action
            if action == "status":
                api = "GetModelStatus"
                response = Response(200, [("Content-Type", JSON_CONTENT_TYPE)], self._status(route))
            elif action == "metadata":
                api = "GetModelMetadata"
                response = Response(
                    200, [("Content-Type", JSON_CONTENT_TYPE)], self._metadata(route)
                )
            else:
                api = _API_LABELS[action]
                if headers.get("content-encoding", "").strip().lower() in ("gzip", "x-gzip"):
                    body = await self._offload(len(body) > OFFLOAD_BYTES // 16, self._gunzip, body)
                if action == "predict":
                    payload = await self._predict(route, body)
                else:
                    payload = await self._classify_or_regress(route, body)
                response = Response(200, [("Content-Type", JSON_CONTENT_TYPE)], payload)
            status = "OK"
        except _BodyTooLarge as exc:
            response, status = self.body_too_large(exc.size), Code.RESOURCE_EXHAUSTED.name
        except ServingError as exc:
            response, status = error_response(exc), exc.code.name
        except Exception as exc:
            # A bug, not the client's fault: log it, answer without a traceback.
            log.exception("REST %s %s failed", method, path)
            error = from_exception(exc)
            response, status = error_response(error), error.code.name
        except asyncio.CancelledError:
            status = Code.CANCELLED.name  # the client left (or the front stopped)
            self.metrics.observe_request(model, api, "REST", status, time.perf_counter() - started)
            raise
        self.metrics.observe_request(model, api, "REST", status, time.perf_counter() - started)
        if self.cors:
            response.headers.extend(_CORS_HEADERS)
        return response

    def _preflight(self, headers: Mapping[str, str]) -> Response:
        """A CORS preflight: granted to any http(s) Origin, as TF Serving does."""
        if _ORIGIN_RE.search(headers.get("origin", "")):
            return Response(200, list(_CORS_HEADERS), b"")
        response = error_response(
            ServingError(Code.FAILED_PRECONDITION, "Origin header is missing in CORS preflight")
        )
        response.headers.extend(_CORS_HEADERS)
        return response

    # ------------------------------------------------------------------ inference
    async def _predict(self, route: _Route, body: bytes) -> bytes:
        big = (
            len(body) > OFFLOAD_BYTES
            or tensors.count_bytes(body, b"[", OFFLOAD_ARRAYS) > OFFLOAD_ARRAYS
        )
        exact = big or len(body) <= EXACT_INLINE_BYTES
        # The common request stays on the loop: called directly, not through _offload's coroutine.
        if big:
            decoded = await self._offload(True, self._decode_predict, route, body, exact)
        else:
            decoded = self._decode_predict(route, body, exact)
        target, request, inputs, row_format = decoded
        try:
            if inputs is None:  # only the per-value path decodes it: off the loop
                big = True
                inputs, row_format = await self._offload(
                    big, self._decode_inputs, target, request, body, True
                )
            future = self.service.predict(target, inputs)
        finally:
            target.release()
        outputs = await self._result(future)
        if big or sum(getattr(v, "size", 0) for v in outputs.values()) > OFFLOAD_ELEMENTS:
            return await self._offload(True, tensors.encode_predict_response, outputs, row_format)
        return tensors.encode_predict_response(outputs, row_format)

    def _decode_predict(self, route: _Route, body: bytes, exact: bool):
        """Parse, resolve, decode: ``(target, request, inputs, row_format)``.

        Without ``exact``, inputs that need the per-value path come back as
        None, for the caller to decode off its loop with ``_decode_inputs``.
        """
        numeric = tensors.parse_numeric(body)
        request = None if numeric else tensors.parse_json(body)
        name = numeric.signature_name if numeric else _signature_name(request)
        target = self._resolve(route, name)
        try:
            decoded = numeric and numeric.decode(target.signature, self.service.tensor_budget())
            if decoded:
                return target, request, *decoded
            if request is None:  # not a plain numeric body after all
                request = tensors.parse_json(body)
            inputs, row_format = self._decode_inputs(target, request, body, exact)
        except tensors.ExactPathNeeded:
            return target, request, None, None
        except BaseException:
            target.release()
            raise
        return target, request, inputs, row_format

    def _decode_inputs(self, target, request, body: bytes, exact: bool):
        return tensors.decode_predict_request(
            request,
            target.signature,
            bool_free=tensors.bool_free(body),
            budget=self.service.tensor_budget(),
            exact=exact,
        )

    async def _classify_or_regress(self, route: _Route, body: bytes) -> bytes:
        big = len(body) > EXACT_INLINE_BYTES  # tf.Examples are built value by value
        request, examples = await self._offload(big, self._decode_examples, body)
        target = self._resolve(route, _signature_name(request))
        try:
            if route.action == "classify":
                future = self.service.classify(target, examples)
            else:
                future = self.service.regress(target, examples)
        finally:
            target.release()
        self.metrics.observe_examples(route.model, len(examples))
        result = await self._result(future)
        if route.action == "classify":
            return tensors.encode_classify_response(result.classes, result.scores)
        return tensors.encode_regress_response(result)

    @staticmethod
    def _decode_examples(body: bytes):
        request = tensors.parse_json(body)
        _signature_name(request)  # TF Serving checks the signature's type before the examples
        return request, tensors.decode_examples(request)

    def _resolve(self, route: _Route, signature_name: str):
        spec = ModelSpec(route.model, route.version, route.label, signature_name)
        try:
            return self.service.resolve(spec)
        except SignatureNotFound as exc:
            raise invalid_argument(
                f'Serving signature name: "{exc.signature_name}" not found in signature def'
            ) from None

    async def _result(self, future):
        """Await an inference future, bounded by ``rest_api_timeout_in_ms`` like TF Serving's run timeout."""
        waiter = futures.wrap(future)
        if self._deadlines is None:
            return await waiter
        self._deadlines.watch(waiter)
        try:
            return await waiter
        except asyncio.CancelledError as exc:
            if exc.args and exc.args[0] == futures.EXPIRED:
                raise ServingError(
                    Code.DEADLINE_EXCEEDED,
                    f"Deadline exceeded: no answer within rest_api_timeout_in_ms={self.timeout * 1000:.0f}",
                ) from None
            raise

    async def _offload(self, big: bool, fn, *args):
        """Run ``fn`` inline when cheap, on the server's executor when the payload is big."""
        if not big:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _gunzip(self, body: bytes) -> bytes:
        """Inflate a gzip body (several members allowed), never past ``max_body_bytes``."""
        limit = self.max_body_bytes
        out: list[bytes] = []
        total = 0
        data = body
        try:
            while data:
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                chunk = inflater.decompress(data, limit + 1 - total)
                total += len(chunk)
                out.append(chunk)
                if total > limit:
                    raise _BodyTooLarge(None)
                if not inflater.eof:
                    raise invalid_argument("Failed to decompress gzip request body: truncated data")
                data = inflater.unused_data
        except zlib.error as exc:
            raise invalid_argument(f"Failed to decompress gzip request body: {exc}") from None
        return b"".join(out)

    # ------------------------------------------------------------------ status / metadata
    def _status(self, route: _Route) -> bytes:
        """GetModelStatus; a label in the URL is ignored and every version listed, as in TF Serving."""
        statuses = self.service.model_status(route.model, route.version)
        return _pretty(
            {
                "model_version_status": [
                    {
                        "version": str(entry.version),
                        "state": entry.state.value,
                        "status": {
                            "error_code": entry.error.code.name if entry.error else "OK",
                            "error_message": entry.error.message if entry.error else "",
                        },
                    }
                    for entry in statuses
                ]
            }
        )

    def _metadata(self, route: _Route) -> bytes:
        """GetModelMetadata with the ``signature_def`` field, laid out as TF Serving's REST handler does."""
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

        metadata = self.service.model_metadata(ModelSpec(route.model, route.version, route.label))
        spec = model_pb2.ModelSpec(name=route.model)
        spec.version.value = metadata.version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in metadata.signature_defs.items():
            signatures.signature_def[key].CopyFrom(signature_def)
        options = {
            "preserving_proto_field_name": True,
            "always_print_fields_with_no_presence": True,
        }
        document = {
            "model_spec": json_format.MessageToDict(spec, **options),
            "metadata": {"signature_def": json_format.MessageToDict(signatures, **options)},
        }
        return _pretty(document)


class _BodyTooLarge(Exception):
    def __init__(self, size: int | None):
        super().__init__(size)
        self.size = size


def _signature_name(request) -> str:
    if not isinstance(request, dict):
        return ""
    name = request.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument("'signature_name' key must be a string value.")
    return name


def _pretty(document) -> bytes:
    """TF Serving prints status and metadata with one space of indent; keep that text for grep-based probes."""
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()
