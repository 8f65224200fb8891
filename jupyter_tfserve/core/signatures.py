"""What a signature looks like to a client: input/output aliases, dtypes, shapes, method.

Built from the ``SignatureDef`` protos of a loaded SavedModel, so the codecs and
the protocols can validate and decode a request without touching TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature.

    ``dtype`` is TensorFlow's ``DataType`` enum value (``types_pb2.DT_FLOAT`` = 1, ...).
    ``shape`` is ``None`` for unknown rank, otherwise a tuple with ``-1`` for unknown dims.
    """

    alias: str
    tensor_name: str
    dtype: int
    shape: tuple[int, ...] | None


@dataclass(frozen=True)
class SignatureInfo:
    name: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    @classmethod
    def from_proto(cls, name: str, signature_def) -> SignatureInfo:
        return cls(
            name=name,
            method_name=signature_def.method_name,
            inputs={k: _spec(k, v) for k, v in sorted(signature_def.inputs.items())},
            outputs={k: _spec(k, v) for k, v in sorted(signature_def.outputs.items())},
        )

    @property
    def output_dtypes(self) -> dict[str, int]:
        """Output alias -> ``DataType``: what the codec needs to decode a JSON answer."""
        return {alias: spec.dtype for alias, spec in self.outputs.items()}


def _spec(alias: str, tensor_info) -> TensorSpec:
    shape_proto = tensor_info.tensor_shape
    shape = None if shape_proto.unknown_rank else tuple(int(d.size) for d in shape_proto.dim)
    return TensorSpec(
        alias=alias, tensor_name=tensor_info.name, dtype=int(tensor_info.dtype), shape=shape
    )


def shape_text(shape: tuple[int, ...] | None) -> str:
    """A signature shape as users read it: ``[?, 2]`` (unknown dims as ``?``; unknown rank as ``[...]``)."""
    if shape is None:
        return "[...]"
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def shape_conflicts(expected: tuple[int, ...] | None, got: tuple[int, ...]) -> bool:
    """True when ``got`` cannot have the static ``expected`` shape: another rank, or a fixed dim that differs.

    Used only to explain a run that failed: TF Serving runs requests whatever their
    shape (a ``[1]`` input to a ``[-1, 1]`` signature answers), so this never refuses one.
    """
    if expected is None:
        return False
    if len(expected) != len(got):
        return True
    return any(want >= 0 and want != have for want, have in zip(expected, got, strict=True))


def shape_mismatches(
    signature: SignatureInfo, shapes: dict[str, tuple[int, ...]]
) -> list[tuple[str, str, tuple]]:
    """``(alias, expected shape text, sent shape)`` for every input whose sent shape conflicts with the signature."""
    return [
        (alias, shape_text(spec.shape), tuple(shapes[alias]))
        for alias, spec in signature.inputs.items()
        if alias in shapes and shape_conflicts(spec.shape, tuple(shapes[alias]))
    ]
