"""Where the benchmark sends its load, and what it learns from the server before sending any.

The server is found the way the notebook client finds it (an explicit URL,
the Jupyter server that started this kernel, ``TFSERVE_URL``, or the
embedded server), and the signature is read with the client's metadata call
(``GET /v1/models/{name}/metadata``, TF Serving's own API, so the official
server works too). What this module adds are the benchmark's preflight
questions, each answered with one clear :class:`BenchError` before the
workers start: is the server reachable, is the model served (and which are),
does the signature exist.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from ..core.status import ServingError
from .options import BenchError

PROBE_TIMEOUT = 10.0


@dataclass
class Target:
    """A model (version or label, signature) on a TF Serving-compatible server."""

    server: object  # jupyter_tfserve.client.endpoints.Endpoint: url, api_url, token, grpc_target
    model: str
    version: int | None = None
    label: str | None = None
    signature: str = "serving_default"

    @classmethod
    def resolve(
        cls,
        model: str,
        *,
        url=None,
        token=None,
        grpc=None,
        version=None,
        label=None,
        signature="serving_default",
    ) -> Target:
        from ..client.endpoints import Endpoint, resolve_endpoint

        if not model or not isinstance(model, str):
            raise BenchError(f"name the model to benchmark, not {model!r}")
        if version is not None and label is not None:
            raise BenchError("give a version or a label, not both")
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise BenchError(f"the server URL must look like http://host:port, not {url!r}")
        if url is None and grpc:
            # Only a gRPC address: TF Serving started with --port alone. No REST, no management API.
            return cls(
                Endpoint(url="", api_url="", grpc_target=grpc),
                model,
                version,
                label,
                signature or "serving_default",
            )
        try:
            server = resolve_endpoint(url, token, grpc)
        except ServingError as exc:
            raise BenchError(exc.message) from None
        return cls(server, model, version, label, signature or "serving_default")

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        return self.server.url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.server.token}"} if self.server.token else {}

    @property
    def model_path(self) -> str:
        path = f"/v1/models/{quote(self.model, safe='')}"
        if self.version is not None:
            path += f"/versions/{int(self.version)}"
        elif self.label is not None:
            path += f"/labels/{quote(self.label, safe='')}"
        return path

    def method_url(self, method: str = "predict") -> str:
        """Where this target answers ``method`` (predict, classify or regress) over REST."""
        return f"{self.url}{self.model_path}:{method}"

    @property
    def management_url(self) -> str:
        return self.server.api_url

    def describe(self) -> str:
        spec = self.model + (f" v{self.version}" if self.version is not None else "")
        return (
            spec
            + (f" @{self.label}" if self.label else "")
            + f" at {self.url or self.server.grpc_target}"
        )

    def model_spec(self, spec) -> None:
        """Fill a ``ModelSpec`` proto with this target's model, version or label and signature."""
        spec.name = self.model
        spec.signature_name = self.signature
        if self.version is not None:
            spec.version.value = int(self.version)
        elif self.label:
            spec.version_label = self.label

    # ------------------------------------------------------------------ HTTP
    def request(
        self, method: str, url: str, body=None, timeout: float = PROBE_TIMEOUT
    ) -> tuple[int, object]:
        """(status, decoded JSON or text). An unreachable server raises OSError."""
        data = None if body is None else json.dumps(body).encode()
        headers = {
            **self.headers,
            **({"Content-Type": "application/json"} if data is not None else {}),
        }
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    # ------------------------------------------------------------------ preflight
    def check_model(self) -> None:
        """The server answers and serves this model (version, label); else say which and why."""
        if not self.url:
            self._grpc_metadata()
            return
        try:
            status, body = self.request("GET", f"{self.url}{self.model_path}")
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            raise BenchError(f"cannot reach the model server at {self.url}: {reason}") from None
        if status == 200:
            return
        message = body.get("error") if isinstance(body, dict) else str(body)[:200]
        if status == 404:
            known = self.known_models()
            hint = f" (served: {', '.join(known)})" if known else ""
            raise BenchError(f"model {self.model!r} is not served at {self.url}: {message}{hint}")
        if status in (401, 403):
            raise BenchError(
                f"the server at {self.url} refused the request ({status}): check the token"
            )
        raise BenchError(
            f"the server at {self.url} answered {status} for model {self.model!r}: {message}"
        )

    def known_models(self) -> list[str]:
        """Model names from the management API; empty where there is none (TF Serving itself)."""
        if not self.management_url:
            return []
        try:
            status, body = self.request("GET", f"{self.management_url}/models")
        except OSError:
            return []
        if status != 200 or not isinstance(body, dict):
            return []
        return sorted(m.get("name", "") for m in body.get("models", []))

    def signature_info(self):
        """The benchmarked signature's :class:`~jupyter_tfserve.core.signatures.SignatureInfo`."""
        from ..client.client import Client

        if not self.url:
            return self._grpc_signature()

        try:
            return Client(endpoint=self.server, timeout=PROBE_TIMEOUT).signature(
                self.model, self.signature, version=self.version, label=self.label
            )
        except ServingError as exc:
            raise BenchError(f"model {self.model!r}: {exc.message}") from None
        except (KeyError, TypeError, ValueError) as exc:  # not TF Serving's metadata document
            raise BenchError(
                f"cannot read the signature of model {self.model!r} from {self.url}: "
                f"unexpected metadata ({type(exc).__name__}: {exc})"
            ) from None

    # ------------------------------------------------------------------ gRPC only
    def _grpc_metadata(self):
        """``GetModelMetadata`` over the gRPC port: the model check and the signatures in one call."""
        import grpc
        from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self.model_spec(request.model_spec)
        request.model_spec.signature_name = ""
        target = self.server.grpc_target
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                return stub.GetModelMetadata(request, timeout=PROBE_TIMEOUT)
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise BenchError(
                        f"cannot reach the gRPC port at {target}: {exc.details()}"
                    ) from None
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise BenchError(
                        f"model {self.model!r} is not served at {target}: {exc.details()}"
                    ) from None
                raise BenchError(
                    f"the server at {target} answered {exc.code().name} for model "
                    f"{self.model!r}: {exc.details()}"
                ) from None

    def _grpc_signature(self):
        from tensorflow_serving.apis import get_model_metadata_pb2

        from ..core.signatures import SignatureInfo

        signatures = get_model_metadata_pb2.SignatureDefMap()
        self._grpc_metadata().metadata["signature_def"].Unpack(signatures)
        if self.signature not in signatures.signature_def:
            known = ", ".join(sorted(k for k in signatures.signature_def if not k.startswith("__")))
            raise BenchError(
                f"model {self.model!r} has no signature {self.signature!r} (it has: {known or 'none'})"
            )
        return SignatureInfo.from_proto(self.signature, signatures.signature_def[self.signature])
