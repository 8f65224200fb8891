"""``%tfserve snippet NAME``: code that calls a served model from outside the notebook, ready to paste.

The snippets use the real addresses and a request body shaped like the
model's serving signature (zeros, or ``"text"`` for strings), so they run as
printed. The token is never printed (notebook outputs are saved and shared):
the snippets ask ``tfserve token`` for it when they run, from a terminal or a
script on this machine alike.
"""

from __future__ import annotations

import json
import shlex
from html import escape

from ..client.endpoints import Endpoint
from ..core import tensors
from ..core.signatures import SignatureInfo


def example_value(spec):
    """A placeholder value for one row of an input (zeros of its shape, "text" for strings)."""
    dtype = tensors.numpy_dtype(spec.dtype)
    value = {"O": "text", "f": 0.0, "c": 0.0, "b": False}.get(dtype.kind, 0)
    for size in reversed([1 if d < 0 else d for d in (spec.shape or (-1,))[1:]]):
        value = [value] * size
    return value


def example_body(signature: SignatureInfo) -> dict:
    """A one-row ``instances`` body for the signature."""
    if len(signature.inputs) == 1:
        return {"instances": [example_value(next(iter(signature.inputs.values())))]}
    return {"instances": [{alias: example_value(spec) for alias, spec in signature.inputs.items()}]}


def curl_line(url: str, body: dict, token: bool) -> str:
    auth = ' -H "Authorization: token $(tfserve token)"' if token else ""
    return f"curl{auth} -d {shlex.quote(json.dumps(body))} -X POST {shlex.quote(url)}"


class Snippets:
    """Titled code blocks; HTML shows them as ``<pre>``, text as indented sections."""

    def __init__(self, blocks: list[tuple[str, str]]):
        self.blocks = blocks

    def __getitem__(self, title: str) -> str:
        return dict(self.blocks)[title]

    def __repr__(self) -> str:
        return "\n\n".join(f"# --- {title}\n{code}" for title, code in self.blocks)

    def _repr_html_(self) -> str:
        return "".join(
            f"<p><b>{escape(title)}</b></p><pre>{escape(code)}</pre>" for title, code in self.blocks
        )


def snippets(endpoint: Endpoint, name: str, signature: SignatureInfo) -> Snippets:
    body = example_body(signature)
    if signature.name != "serving_default":
        body = {"signature_name": signature.name, **body}
    url = f"{endpoint.url}/v1/models/{name}:predict"
    token = bool(endpoint.token)
    # The token is read when the snippet runs (``tfserve token``), never written into it.
    read_token = 'import subprocess\n\ntoken = subprocess.check_output(["tfserve", "token"], text=True).strip()\n'
    headers = '{"Authorization": "token " + token}' if token else "{}"
    blocks = [
        ("curl", curl_line(url, body, token)),
        (
            "requests",
            "import requests\n"
            + (read_token if token else "\n")
            + f"response = requests.post(\n    {url!r},\n    json={body!r},\n    headers={headers},\n)\n"
            "response.raise_for_status()\nprint(response.json())",
        ),
    ]
    if endpoint.grpc_target:
        inputs = "\n".join(
            f"request.inputs[{alias!r}].CopyFrom(tf.make_tensor_proto({_row(spec)!r}, dtype=tf.{_tf_dtype(spec)}))"
            for alias, spec in signature.inputs.items()
        )
        metadata = ', metadata=[("authorization", "token " + token)]' if token else ""
        blocks.append(
            (
                "gRPC",
                "import grpc\nimport tensorflow as tf\n"
                "from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc\n"
                + (read_token if token else "\n")
                + f"channel = grpc.insecure_channel({endpoint.grpc_target!r})\n"
                "stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)\n"
                f"request = predict_pb2.PredictRequest()\nrequest.model_spec.name = {name!r}\n"
                f"request.model_spec.signature_name = {signature.name!r}\n{inputs}\n"
                f"response = stub.Predict(request, timeout=10.0{metadata})\n"
                "print({k: tf.make_ndarray(v) for k, v in response.outputs.items()})",
            )
        )
    return Snippets(blocks)


def _row(spec):
    return [example_value(spec)]


def _tf_dtype(spec) -> str:
    from ..core.platforms.tensorflow import tensorflow

    return tensorflow().dtypes.as_dtype(spec.dtype).name
