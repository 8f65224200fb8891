"""tf.Example input for classify and regress: REST ``examples`` and gRPC ``Input`` -> serialized protos, and back."""

from __future__ import annotations

import base64
import math

from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from ..status import clip, invalid_argument
from .dtypes import _to_bytes
from .float_text import _FLT_MAX
from .json_decode import _decode_b64, _format_error, _is_b64, _json_type, _lossy_error

_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}
_INT64_MAX = (1 << 63) - 1


def _feature(name: str, content) -> feature_pb2.Feature:
    """One feature from a JSON value or list: strings/b64 -> bytes, ints/bools -> int64, floats."""
    values = content if type(content) is list else [content]
    kind = None
    items: list = []

    def expect(wanted: str) -> None:
        nonlocal kind
        if kind is None:
            kind = wanted
        elif kind != wanted:
            raise invalid_argument(
                f"Unexpected element type in feature: {clip(name)} expecting type: "
                f"{_KIND_NAMES[kind]}"
            )

    for value in values:
        vtype = type(value)
        if vtype is bool:
            expect("int64_list")
            items.append(1 if value else 0)
        elif vtype is int:
            expect("int64_list")
            if value > _INT64_MAX:
                raise invalid_argument(
                    f"Feature: {clip(name)} has uint64 element. Only int64 is supported."
                )
            items.append(value)
        elif vtype is float:
            expect("float_list")
            if math.isfinite(value) and abs(value) > _FLT_MAX:
                raise _lossy_error(value, "float")
            items.append(value)
        elif vtype is str:
            expect("bytes_list")
            items.append(_to_bytes(value))
        elif vtype is dict and _is_b64(value):
            expect("bytes_list")
            items.append(_decode_b64(value))
        else:
            raise invalid_argument(
                f"Feature: {clip(name)} has element with unexpected JSON type: {_json_type(value)}"
            )
    feature = feature_pb2.Feature()
    if kind is not None:
        getattr(feature, kind).value.extend(items)
    return feature


def _example(value) -> example_pb2.Example:
    if type(value) is not dict:
        raise invalid_argument(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = example_pb2.Example()
    features = example.features.feature
    for name, content in value.items():
        features[name].CopyFrom(_feature(name, content))
    return example


def decode_examples(request: dict) -> list[bytes]:
    """Serialized tf.Examples of a REST classify/regress body.

    ``context`` features apply to every example; an example's own feature of
    the same name wins.  The context is serialized once and prepended to each
    example: parsing concatenated messages merges them, later fields winning.
    """
    if type(request) is not dict:
        raise _format_error(request, "Is not object")
    context = b""
    if "context" in request:
        context = _example(request["context"]).SerializeToString()
    if "examples" not in request:
        raise _format_error(
            request, "When method is classify, key 'examples' is expected and was not found"
        )
    examples = request["examples"]
    if type(examples) is not list:
        raise _format_error(request, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(request, "'examples' value is an empty array")
    return [context + _example(e).SerializeToString() for e in examples]


def input_to_serialized_examples(input_proto: input_pb2.Input) -> list[bytes]:
    """Serialized tf.Examples of a gRPC classify/regress ``Input`` (context merged in)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        result = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        group = input_proto.example_list_with_context
        context = group.context.SerializeToString()
        result = [context + e.SerializeToString() for e in group.examples]
    else:
        result = []
    if not result:
        raise invalid_argument("Input is empty.")
    return result


def encode_examples(input_proto: input_pb2.Input) -> dict:
    """A gRPC ``Input`` as REST ``examples`` (and ``context``), so a logged request can be sent over REST.

    Bytes go as ``{"b64": ...}`` (they need not be text) and floats as the
    float32 values they hold: :func:`decode_examples` reads back the same protos.
    """
    if input_proto.WhichOneof("kind") == "example_list_with_context":
        group = input_proto.example_list_with_context
        return {
            "context": _example_json(group.context),
            "examples": [_example_json(e) for e in group.examples],
        }
    return {"examples": [_example_json(e) for e in input_proto.example_list.examples]}


def _example_json(example: example_pb2.Example) -> dict:
    return {name: _feature_json(f) for name, f in example.features.feature.items()}


def _feature_json(feature: feature_pb2.Feature) -> list:
    kind = feature.WhichOneof("kind")
    if kind is None:
        return []
    if kind == "bytes_list":
        return [{"b64": base64.b64encode(v).decode("ascii")} for v in feature.bytes_list.value]
    return list(getattr(feature, kind).value)


def fill_classifications(result, classification) -> None:
    """A ``ClassificationResult`` from a classify run's ``classes``/``scores`` ([batch, n] each, either may be None)."""
    classes, scores = classification.classes, classification.scores
    rows, columns = (classes if classes is not None else scores).shape
    for i in range(rows):
        classes_out = result.classifications.add().classes
        for j in range(columns):
            entry = classes_out.add()
            if classes is not None:
                entry.label = _text(classes[i, j])
            if scores is not None:
                entry.score = float(scores[i, j])


def fill_regressions(result, values) -> None:
    """A ``RegressionResult`` from a regress run's one value per example."""
    for value in values.tolist():
        result.regressions.add(value=value)


def _text(label) -> str:
    return label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
