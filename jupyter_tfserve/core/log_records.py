"""A finished request as the bytes of one ``PredictionLog`` record, written without building its proto.

The request log must cost a served request a few microseconds, all threads
included (the server may own a single core). Building a ``PredictionLog``
message and serializing it costs about 45 µs for a one-row MLP request, most
of it copying tensors into proto objects. The bytes are simple, so they are
written directly: what is the same for every request of a model version (model
specs, tensor dtypes and shapes, sampling config, tags) is serialized once by
the protobuf library and cached, and a numeric tensor is its header plus
``array.tobytes()`` as ``tensor_content``, which is how ``tf.make_tensor_proto``
writes it. Strings, classify, regress and multi-inference records go through
the proto classes (they are rare and small); a test checks that both paths
parse to the same message.

The record's outcome goes in field 1000, a ``jupyter_tfserve.LoggedOutcome``
that ``PredictionLog`` does not declare, so TF Serving's parsers skip it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import model_pb2, prediction_log_pb2

from . import tensors
from .status import ServingError

PREDICT, CLASSIFY, REGRESS, MULTI_INFERENCE = "predict", "classify", "regress", "multi_inference"
OUTCOME_FIELD = 1000
_LITTLE_ENDIAN = {"<", "|"} | ({"="} if sys.byteorder == "little" else set())
_CACHE_SIZE = 4096  # distinct specs, tensor shapes or names: bounded, however many clients invent


@dataclass(slots=True)
class Logged:
    """A finished request, as raw as it came: the writer thread turns it into record bytes."""

    kind: str
    model_name: str
    version: int
    signature_name: str
    request: (
        object  # predict: (inputs, output_filter); classify/regress: examples; multi: the proto
    )
    result: object  # the run's result (None on error)
    error: ServingError | None
    timestamp: float  # wall clock, seconds
    latency: float  # seconds


# ---------------------------------------------------------------------- wire format
def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # int64 fields: negatives as ten-byte two's complement
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    # Timestamps in microseconds: their bits above the 14th change every 16 ms, so cache those.
    return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80)) + _high_varint(value >> 14)


@lru_cache(maxsize=256)
def _high_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]


@lru_cache(maxsize=64)
def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return b"".join((_tag(number, 2), _varint(len(payload)), payload))


def _int_field(number: int, value: int) -> bytes:
    """A proto3 integer field: absent when zero."""
    return _tag(number, 0) + _varint(value) if value else b""


# ---------------------------------------------------------------------- cached parts
@lru_cache(maxsize=_CACHE_SIZE)
def _spec_field(number: int, name: str, version: int | None, signature: str) -> bytes:
    spec = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        spec.version.value = version
    return _bytes_field(number, spec.SerializeToString())


@lru_cache(maxsize=_CACHE_SIZE)
def _key_field(alias: str) -> bytes:
    return _bytes_field(1, alias.encode())


@lru_cache(maxsize=_CACHE_SIZE)
def _tensor_head(datatype: int, shape: tuple[int, ...]) -> bytes:
    """A TensorProto's dtype and shape, and the tag of the ``tensor_content`` that follows."""
    proto = tensor_pb2.TensorProto(dtype=datatype)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto.SerializeToString() + _tag(4, 2)


def metadata_fields(sampling_config=None, saved_model_tags=("serve",)) -> bytes:
    """``LogMetadata``'s sampling config and tags: the same for every record until the config changes."""
    out = b""
    if sampling_config is not None:
        out += _bytes_field(2, sampling_config.SerializeToString())
    return out + b"".join(_bytes_field(3, tag.encode()) for tag in saved_model_tags)


# ---------------------------------------------------------------------- records
def serialize(item: Logged, metadata: bytes = b"") -> bytes:
    """The bytes of one ``PredictionLog`` record (plus its outcome field).

    ``metadata`` is :func:`metadata_fields` of the model's current config.
    """
    head = _metadata_field(
        item.model_name, item.version, item.signature_name, metadata, int(item.timestamp)
    )
    body = _predict_log(item) if item.kind == PREDICT else _other_log(item)
    error = item.error
    outcome = b"".join(
        (
            _int_field(1, int(error.code)) if error is not None else b"",
            _bytes_field(2, error.message.encode()) if error is not None and error.message else b"",
            _int_field(3, int(item.latency * 1e6)),
            _int_field(4, int(item.timestamp * 1e6)),
        )
    )
    return b"".join((head, body, _bytes_field(OUTCOME_FIELD, outcome)))


@lru_cache(maxsize=64)
def _metadata_field(
    name: str, version: int, signature: str, metadata: bytes, timestamp_secs: int
) -> bytes:
    """``PredictionLog.log_metadata``: changes once a second."""
    return _bytes_field(
        1, _spec_field(1, name, version, signature) + metadata + _int_field(4, timestamp_secs)
    )


def _predict_log(item: Logged) -> bytes:
    """``PredictionLog.predict_log``; numeric tensors fill the slots of a cached layout."""
    inputs, output_filter = item.request
    failed = item.error is not None
    outputs = {} if failed else item.result
    layout = _predict_layout(
        item.model_name,
        item.version,
        item.signature_name,
        tuple(output_filter),
        tuple([(alias, array.dtype, array.shape) for alias, array in inputs.items()]),
        None if failed else tuple([(alias, a.dtype, a.shape) for alias, a in outputs.items()]),
    )
    if layout is None:
        return _predict_log_of_any_tensors(item)
    parts = [layout[0]]
    for array, piece in zip([*inputs.values(), *outputs.values()], layout[1:], strict=True):
        parts += (array.tobytes(), piece)
    return b"".join(parts)


_Tensors = tuple[tuple[str, np.dtype, tuple[int, ...]], ...]


@lru_cache(maxsize=_CACHE_SIZE)
def _predict_layout(
    name: str,
    version: int,
    signature: str,
    output_filter: tuple[str, ...],
    inputs: _Tensors,
    outputs: _Tensors | None,
) -> tuple[bytes, ...] | None:
    """Every byte of a ``predict_log`` but its tensors' contents: the pieces that go between them.

    Only for tensors of fixed-width little-endian dtypes (None otherwise): then
    every length, nested ones included, follows from the dtypes and shapes.
    ``outputs`` is None for a failed request (no response).
    """
    if any(
        dtype.kind in "OSU" or dtype.byteorder not in _LITTLE_ENDIAN
        for _, dtype, _ in (*inputs, *(outputs or ()))
    ):
        return None
    slot = None  # where a tensor's content goes
    request_entries = [_entry_head(2, tensor) for tensor in inputs]
    request_spec = _spec_field(1, name, None, signature)
    filters = b"".join(_bytes_field(3, alias.encode()) for alias in output_filter)
    request_size = len(request_spec) + len(filters) + sum(len(h) + n for h, n in request_entries)
    sequence = [_tag(1, 2), _varint(request_size), request_spec]
    for head, _ in request_entries:
        sequence += (head, slot)
    sequence.append(filters)
    log_size = 1 + len(_varint(request_size)) + request_size
    if outputs is not None:
        response_entries = [_entry_head(1, tensor) for tensor in outputs]
        response_spec = _spec_field(2, name, version, signature)
        response_size = len(response_spec) + sum(len(h) + n for h, n in response_entries)
        sequence += (_tag(2, 2), _varint(response_size))
        for head, _ in response_entries:
            sequence += (head, slot)
        sequence.append(response_spec)
        log_size += 1 + len(_varint(response_size)) + response_size
    pieces, current = [], _tag(6, 2) + _varint(log_size)
    for part in sequence:
        if part is slot:
            pieces.append(current)
            current = b""
        else:
            current += part
    pieces.append(current)
    return tuple(pieces)


def _entry_head(number: int, tensor: tuple[str, np.dtype, tuple[int, ...]]) -> tuple[bytes, int]:
    """A map entry's bytes up to its tensor's content (entry, key, TensorProto head); the content's size."""
    alias, dtype, shape = tensor
    content_size = dtype.itemsize * math.prod(shape)
    head = _tensor_head(tensors.datatype_of(np.empty(0, dtype)), shape) + _varint(content_size)
    tensor_size = len(head) + content_size
    key = _key_field(alias)
    entry_size = len(key) + 1 + len(_varint(tensor_size)) + tensor_size
    entry = (_tag(number, 2), _varint(entry_size), key, _tag(2, 2), _varint(tensor_size), head)
    return b"".join(entry), content_size


def _predict_log_of_any_tensors(item: Logged) -> bytes:
    """``PredictionLog.predict_log``: the request (its spec without a version, so a replay goes
    wherever the model now points) and, unless it failed, the response with the answering version."""
    name, signature = item.model_name, item.signature_name
    inputs, output_filter = item.request
    request = b"".join(
        (
            _spec_field(1, name, None, signature),
            *(
                _bytes_field(2, _key_field(a) + _bytes_field(2, _tensor(v)))
                for a, v in inputs.items()
            ),
            *(_bytes_field(3, alias.encode()) for alias in output_filter),
        )
    )
    log = _bytes_field(1, request)
    if item.error is None:
        response = b"".join(
            (
                *(
                    _bytes_field(1, _key_field(a) + _bytes_field(2, _tensor(v)))
                    for a, v in item.result.items()
                ),
                _spec_field(2, name, item.version, signature),
            )
        )
        log += _bytes_field(2, response)
    return _bytes_field(6, log)


def _tensor(array: np.ndarray) -> bytes:
    """A logged tensor: numeric values as ``tensor_content`` bytes, as ``tf.make_tensor_proto`` writes
    them; strings as ``string_val``."""
    dtype = array.dtype
    if dtype.kind in "OSU":
        return tensors.ndarray_to_tensor_proto(array).SerializeToString()
    if dtype.byteorder not in _LITTLE_ENDIAN:
        array = array.astype(dtype.newbyteorder("<"))
    content = array.tobytes()
    return b"".join(
        (_tensor_head(tensors.datatype_of(array), array.shape), _varint(len(content)), content)
    )


def _other_log(item: Logged) -> bytes:
    """Classify, regress and multi-inference logs, through their proto classes."""
    record = prediction_log_pb2.PredictionLog()
    ok = item.error is None
    if item.kind in (CLASSIFY, REGRESS):
        entry = record.classify_log if item.kind == CLASSIFY else record.regress_log
        request_spec = entry.request.model_spec
        request_spec.name, request_spec.signature_name = item.model_name, item.signature_name
        examples = entry.request.input.example_list.examples
        for serialized in item.request:
            examples.add().ParseFromString(serialized)
        if ok:
            response_spec = entry.response.model_spec
            response_spec.name = item.model_name
            response_spec.version.value = item.version
            response_spec.signature_name = item.signature_name
            if item.kind == CLASSIFY:
                tensors.fill_classifications(entry.response.result, item.result)
            else:
                tensors.fill_regressions(entry.response.result, item.result)
    elif item.kind == MULTI_INFERENCE:
        record.multi_inference_log.request.CopyFrom(item.request)
        if ok:
            record.multi_inference_log.response.CopyFrom(item.result)
    else:
        raise ValueError(f"unknown log kind {item.kind!r}")
    return record.SerializeToString()
