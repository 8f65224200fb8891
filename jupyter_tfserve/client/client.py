"""A Python client for jupyter-tfserve (and any TF Serving): numpy and pandas in, numpy and pandas out.

``Client()`` finds its server through :func:`jupyter_tfserve.discover` (the
Jupyter server that started this kernel, ``TFSERVE_URL``, ...) or takes a URL:

* ``http://host:8888/base/tfserve``: the routes inside Jupyter
  (``.../v1/models/...`` and ``.../api/...``);
* ``http://host:8501``: a standalone or embedded port, and the official
  ``tensorflow_model_server`` (``/v1/models/...``; management under ``/tfserve/api``).

Predictions go over REST (TF Serving's columnar JSON) or gRPC (the official
``PredictionService`` stubs); both decode to the signature's numpy dtypes, so
the transport never changes the answer. Tensor conversion is the engine's
codec (:mod:`jupyter_tfserve.core.tensors`), the one the server itself uses.

Every failure is a :class:`~jupyter_tfserve.core.status.ServingError` with the
server's status code and message; a server that cannot be reached is
``UNAVAILABLE`` with the address it tried.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

import numpy as np

from ..core.signatures import DEFAULT_SIGNATURE, SignatureInfo, shape_mismatches
from ..core.status import HTTP_STATUS, Code, ServingError
from . import data as data_lib
from .endpoints import Endpoint, resolve_endpoint

# An HTTP status maps back to the first (canonical) code that TF Serving sends it for.
_CODES_BY_HTTP: dict[int, Code] = {}
for _code, _http in HTTP_STATUS.items():
    _CODES_BY_HTTP.setdefault(_http, _code)
_CODES_BY_HTTP[413] = Code.RESOURCE_EXHAUSTED  # body too large


class Client:
    """Talk to one model server: predictions, status, and (on jupyter-tfserve) model management."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        grpc_target: str | None = None,
        timeout: float = 60.0,
        endpoint: Endpoint | None = None,
    ):
        self.endpoint = endpoint or resolve_endpoint(url, token, grpc_target)
        self.timeout = timeout
        self._signatures: dict[tuple, dict[str, SignatureInfo]] = {}
        self._channel = None
        self._stub = None

    def __repr__(self) -> str:
        return f"Client({self.endpoint.url!r})"

    @property
    def url(self) -> str:
        return self.endpoint.url

    # ------------------------------------------------------------------ HTTP
    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.endpoint.headers}

    def request(
        self, method: str, url: str, body: bytes | None = None, *, timeout: float | None = None
    ) -> bytes:
        """One HTTP exchange; error bodies (``{"error": ...}``) become ServingError with the server's words."""
        request = urllib.request.Request(url, data=body, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, url) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServingError(
                Code.UNAVAILABLE, f"Cannot reach the tfserve server at {url}: {reason}"
            ) from None

    def _v1(self, method: str, path: str, payload=None):
        body = (
            payload
            if isinstance(payload, bytes) or payload is None
            else json.dumps(payload).encode()
        )
        return _loads(self.request(method, f"{self.endpoint.url}/v1/{path}", body))

    def _api(self, method: str, path: str, payload=None, *, timeout: float | None = None):
        body = None if payload is None else json.dumps(payload).encode()
        return _loads(
            self.request(method, f"{self.endpoint.api_url}/{path}", body, timeout=timeout)
        )

    # ------------------------------------------------------------------ TF Serving's API
    def status(self, name: str, version: int | None = None) -> list[dict]:
        """TF Serving's model status: ``[{"version": "2", "state": "AVAILABLE", "status": {...}}, ...]``."""
        path = f"models/{_quote(name)}" + (
            f"/versions/{int(version)}" if version is not None else ""
        )
        try:
            return self._v1("GET", path).get("model_version_status", [])
        except ServingError as exc:
            raise self._name_served_models(exc, name) from None

    def metadata(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> tuple[int, dict[str, SignatureInfo]]:
        """The served version and its signatures (``__saved_model_init_op`` and friends left out)."""
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        try:
            document = self._v1("GET", _model_path(name, version, label) + "/metadata")
        except ServingError as exc:
            raise self._name_served_models(exc, name) from None
        signatures = get_model_metadata_pb2.SignatureDefMap()
        json_format.ParseDict(
            document["metadata"]["signature_def"], signatures, ignore_unknown_fields=True
        )
        served = int(document["model_spec"].get("version") or 0)
        infos = {
            key: SignatureInfo.from_proto(key, sig)
            for key, sig in sorted(signatures.signature_def.items())
            if not key.startswith("__")
        }
        return served, infos

    def signature(
        self, name: str, signature: str | None = None, *, version=None, label=None, refresh=False
    ) -> SignatureInfo:
        """One signature of the version a request would reach (cached per model/version/label)."""
        key = (name, version, label)
        if refresh or key not in self._signatures:
            self._signatures[key] = self.metadata(name, version, label)[1]
        signatures = self._signatures[key]
        wanted = signature or DEFAULT_SIGNATURE
        if wanted not in signatures:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f'Serving signature name: "{wanted}" not found in signature def '
                f"(model {name} has {sorted(signatures)})",
            )
        return signatures[wanted]

    def predict(
        self,
        name: str,
        data,
        *,
        version: int | None = None,
        label: str | None = None,
        signature: str | None = None,
        grpc: bool = False,
    ):
        """Run a model on ``data`` (ndarray, list, dict of arrays, or DataFrame with one column per input).

        Returns a DataFrame (one column per output, the input's index) when given a
        DataFrame; otherwise the one output as an ndarray, or a dict of them.
        """
        if version is not None and label:
            raise ServingError(Code.INVALID_ARGUMENT, "Give a version or a label, not both")
        sig = self.signature(name, signature, version=version, label=label)
        try:
            inputs = data_lib.named_inputs(data, list(sig.inputs))
        except data_lib.InputMismatch:
            # The cached signature may predate a new version: look again before refusing.
            sig = self.signature(name, signature, version=version, label=label, refresh=True)
            try:
                inputs = data_lib.named_inputs(data, list(sig.inputs))
            except data_lib.InputMismatch as exc:
                raise ServingError(Code.INVALID_ARGUMENT, f"{name}: {exc}") from None
        send = self._predict_grpc if grpc else self._predict_rest
        try:
            outputs = send(name, sig, inputs, version, label)
        except ServingError as exc:
            raise _explain_shapes(exc, sig, inputs) from None
        if data_lib.is_dataframe(data):
            try:
                return data_lib.outputs_frame(outputs, data.index)
            except data_lib.InputMismatch as exc:
                raise ServingError(Code.INVALID_ARGUMENT, f"{name}: {exc}") from None
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return outputs

    def predict_json(
        self, name: str, body: dict, *, version=None, label=None, signature: str | None = None
    ):
        """Send a TF Serving JSON body as written (``instances`` or ``inputs``); decode the answer to numpy.

        The answer is shaped like :meth:`predict`'s: one output as an ndarray,
        several as a dict of ndarrays (row-format answers are turned into columns).
        """
        if not isinstance(body, dict):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                "A predict body is a JSON object with 'instances' or 'inputs'",
            )
        if signature:
            body = {**body, "signature_name": signature}
        sig = self.signature(name, body.get("signature_name") or None, version=version, label=label)
        from ..core import tensors

        url = f"{self.endpoint.url}/v1/{_model_path(name, version, label)}:predict"
        answer = tensors.parse_json(
            self.request("POST", url, json.dumps(body, allow_nan=True).encode())
        )
        decoded = tensors.decode_predict_answer(answer, sig.output_dtypes)
        return next(iter(decoded.values())) if len(decoded) == 1 else decoded

    def _predict_rest(
        self, name, sig: SignatureInfo, inputs, version, label
    ) -> dict[str, np.ndarray]:
        from ..core import tensors

        url = f"{self.endpoint.url}/v1/{_model_path(name, version, label)}:predict"
        body = tensors.encode_predict_request(inputs, sig.name)
        answer = tensors.parse_json(self.request("POST", url, body))
        return tensors.decode_predict_answer(answer, sig.output_dtypes)

    def _predict_grpc(
        self, name, sig: SignatureInfo, inputs, version, label
    ) -> dict[str, np.ndarray]:
        import grpc
        from tensorflow_serving.apis import predict_pb2

        from ..core import tensors

        request = predict_pb2.PredictRequest()
        request.model_spec.name = name
        request.model_spec.signature_name = sig.name
        if version is not None:
            request.model_spec.version.value = int(version)
        elif label:
            request.model_spec.version_label = label
        for alias, array in inputs.items():
            spec = sig.inputs.get(alias)
            try:
                request.inputs[alias].CopyFrom(
                    tensors.ndarray_to_tensor_proto(array, spec.dtype if spec else None)
                )
            except (TypeError, ValueError) as exc:
                raise ServingError(Code.INVALID_ARGUMENT, f"Input {alias!r}: {exc}") from None
        try:
            response = self._grpc_stub().Predict(
                request, timeout=self.timeout, metadata=self.endpoint.grpc_metadata
            )
        except grpc.RpcError as exc:
            raise _grpc_error(exc, self.endpoint.grpc_target) from None
        return {
            alias: np.array(tensors.tensor_proto_to_ndarray(t))
            for alias, t in sorted(response.outputs.items())
        }

    def _grpc_stub(self):
        if self._stub is None:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            target = self.endpoint.grpc_target
            if not target:
                raise ServingError(
                    Code.UNAVAILABLE,
                    f"The server at {self.endpoint.url} has no gRPC port open; predict over REST or open one",
                )
            limit = 2**31 - 1
            options = [
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
            ]
            self._channel = grpc.insecure_channel(target, options=options)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        return self._stub

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None

    def _name_served_models(self, exc: ServingError, name: str) -> ServingError:
        """A NOT_FOUND error for a ``name`` that is not served, with the names that are served appended.

        The server's words stay first (clients grep for them); a server without
        the management API (the official one) gets its error back unchanged.
        """
        if exc.code != Code.NOT_FOUND:
            return exc
        try:
            served = sorted(m["name"] for m in self.models())
        except ServingError:
            return exc
        if name in served:  # the model is served; the version or label is what is missing
            return exc
        return ServingError(exc.code, f"{exc.message} (served: {', '.join(served) or 'none'})")

    # ------------------------------------------------------------------ management (jupyter-tfserve)
    def models(self) -> list[dict]:
        """Every served model: versions with states and errors, labels, policy, signatures."""
        return self._api("GET", "models").get("models", [])

    def model(self, name: str) -> dict:
        """One served model, as :meth:`models` lists it."""
        return self._api("GET", f"models/{_quote(name)}")

    def info(self) -> dict:
        """Server info: ports, versions, uptime, models_root."""
        return self._api("GET", "info")

    def load(self, name: str, base_path: str, policy: str | dict | None = None) -> dict:
        """Serve (or re-point) ``name`` from ``base_path``; returns once the server accepted it.

        ``policy`` is ``latest:N``, ``all`` or ``specific:1,2`` (or the JSON form of
        TF Serving's ``ServableVersionPolicy``, as the management API takes it).
        """
        payload = {"name": name, "base_path": base_path}
        if policy:
            payload["policy"] = policy_json(policy) if isinstance(policy, str) else policy
        return self._api("POST", "models", payload)

    def unload(self, name: str) -> dict:
        return self._api("DELETE", f"models/{_quote(name)}")

    def set_label(self, name: str, label: str, version: int) -> dict:
        return self._api(
            "PUT", f"models/{_quote(name)}/labels/{_quote(label)}", {"version": int(version)}
        )

    def remove_label(self, name: str, label: str) -> dict:
        return self._api("DELETE", f"models/{_quote(name)}/labels/{_quote(label)}")

    def rollback(self, name: str) -> dict:
        return self._api("POST", f"models/{_quote(name)}/rollback", {})

    def reload(self, name: str) -> dict:
        """Load ``name`` again from its base path with its policy (picks up versions written meanwhile)."""
        entry = self.model(name)
        return self.load(name, entry["base_path"], entry.get("policy") or None)

    def logging(self, name: str) -> dict:
        """Whether NAME logs a sample of its requests, at what rate, where, and its record counts."""
        return self._api("GET", f"models/{_quote(name)}/logging")

    def set_logging(self, name: str, **fields) -> dict:
        """Change NAME's ``logging_config`` live (``sampling_rate``, ``filename_prefix``, ``type``)."""
        return self._api("PUT", f"models/{_quote(name)}/logging", fields)

    def config(self) -> str:
        """The ModelServerConfig being served right now, in TF Serving's text format."""
        return self._api("GET", "config")["config"]

    def reload_config(self) -> dict:
        """Re-read the server's model config file."""
        return self._api("POST", "config/reload", {})

    def metrics(self, name: str | None = None) -> dict:
        query = f"?model={urllib.parse.quote(name)}" if name else ""
        return self._api("GET", f"metrics{query}")

    # ------------------------------------------------------------------ waiting
    def wait_for(
        self,
        name: str,
        version: int | None = None,
        *,
        latest: bool = False,
        timeout: float = 120.0,
        on_status: Callable[[list[dict]], None] | None = None,
    ) -> int:
        """Wait until ``name`` settles; returns the version that requests without a version reach.

        Settled means: ``version`` is AVAILABLE (and, with ``latest``, the newest
        AVAILABLE one, as after a rollback); without ``version``, some version is
        AVAILABLE and none is still loading. A version that fails to load raises
        its error at once when it is the one waited for, or when nothing serves.
        """
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            statuses = self.status(name)
            if on_status is not None:
                on_status(statuses)
            states = {int(s["version"]): s for s in statuses}
            available = [v for v, s in states.items() if s["state"] == "AVAILABLE"]
            loading = [v for v, s in states.items() if s["state"] in ("START", "LOADING")]
            failed = {
                v: s["status"] for v, s in states.items() if s["state"] == "END" and _failed(s)
            }
            if version is not None:
                if version in failed:
                    raise _load_error(name, version, failed[version])
                if version in available and (not latest or max(available) == version):
                    return version
            elif available and not loading:
                return max(available)
            elif failed and not available and not loading:
                newest = max(failed)
                raise _load_error(name, newest, failed[newest])
            if time.monotonic() > deadline:
                detail = (
                    ", ".join(f"v{v} {s['state']}" for v, s in sorted(states.items()))
                    or "no versions"
                )
                raise ServingError(
                    Code.DEADLINE_EXCEEDED, f"{name} did not settle within {timeout:g}s ({detail})"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


# ---------------------------------------------------------------------- helpers


def policy_json(text: str) -> dict:
    """``latest:2`` / ``all`` / ``specific:1,2`` as the JSON form of a ``ServableVersionPolicy``."""
    from google.protobuf import json_format

    from ..core.source import parse_policy

    return json_format.MessageToDict(parse_policy(text), preserving_proto_field_name=True)


def _explain_shapes(
    exc: ServingError, sig: SignatureInfo, inputs: dict[str, np.ndarray]
) -> ServingError:
    """The server's refusal restated from the signature when an input's shape cannot fit: ``x expects [?, 2], got (1, 3)``.

    The request was sent as given (TF Serving answers some shapes that differ from
    the signature's, e.g. ``[1]`` for ``[-1, 1]``); only a failure is explained.
    """
    conflicts = shape_mismatches(sig, {alias: np.shape(value) for alias, value in inputs.items()})
    if not conflicts or exc.code not in (
        Code.INVALID_ARGUMENT,
        Code.FAILED_PRECONDITION,
        Code.UNKNOWN,
        Code.INTERNAL,
    ):
        return exc
    return ServingError(
        exc.code, "; ".join(f"{alias} expects {want}, got {got}" for alias, want, got in conflicts)
    )


def _failed(status: dict) -> bool:
    return status.get("status", {}).get("error_code", "OK") not in ("OK", 0)


def _load_error(name: str, version: int, status: dict) -> ServingError:
    code = status.get("error_code", "UNKNOWN")
    return ServingError(
        Code[code] if code in Code.__members__ else Code.UNKNOWN,
        f"{name} version {version} failed to load: {status.get('error_message', '')}",
    )


def _quote(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


def _model_path(name: str, version: int | None, label: str | None) -> str:
    path = f"models/{_quote(name)}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label:
        path += f"/labels/{_quote(label)}"
    return path


def _loads(body: bytes):
    return json.loads(body) if body.strip() else {}


def _http_error(exc: urllib.error.HTTPError, url: str) -> ServingError:
    raw = exc.read()
    try:
        message = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        message = raw.decode("utf-8", "replace").strip()[:300] or exc.reason
    if exc.code == 401 or (exc.code == 403 and not message):
        message = f"{message or 'Unauthorized'} (check the token for {url})"
    return ServingError(_CODES_BY_HTTP.get(exc.code, Code.UNKNOWN), str(message))


def _grpc_error(exc, target: str | None) -> ServingError:
    code = exc.code()
    details = exc.details() or ""
    if code.name == "UNAVAILABLE" and (not details or "connect" in details.lower()):
        details = f"Cannot reach the gRPC server at {target}: {details}"
    return ServingError(Code(code.value[0]), details)
