"""What every platform implements, and the one servable type the rest of the engine sees.

A platform turns a version folder into a :class:`Servable`: it says whether it
recognizes the folder, loads it, and hands back the version's signatures as
TF Serving's ``SignatureDef`` protos together with a *runner* that runs one
signature on named numpy inputs. Because every platform speaks ``SignatureDef``,
the codecs, batching, metadata, status, REST and gRPC work unchanged whatever
the platform: they only ever see a :class:`Servable`.

A runner is any object with ``run(signature, inputs, aliases) -> {alias: array}``
(inputs keyed by alias, already in the signature's dtypes; a batch is just more
rows) and ``close()``; its optional ``kind`` names the loader for the
management API (``tf2``, ``tf1``, ``tflite``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..signatures import PREDICT_METHOD, SignatureInfo
from ..status import Code, ServingError, from_exception


@dataclass(frozen=True)
class LoadOptions:
    """The server options a platform may need while loading (one place, so plug-ins see the same)."""

    saved_model_tags: tuple[str, ...] = ("serve",)
    num_threads: int = 0  # intra-op threads for the runtime; 0 = the runtime's choice


class Platform:
    """Base class of a platform plug-in, registered under the ``jupyter_tfserve.platforms`` entry-point group.

    The registry instantiates the class once, without arguments. ``load`` runs on
    a load thread (never the event loop) and may take as long as it needs;
    warmup, batching, versions and labels are the engine's business, not the platform's.
    """

    def recognizes(self, path: str) -> bool:
        """Whether this version folder holds a model of this platform (``--prefer_tflite_model`` asks)."""
        return True

    def load(self, name: str, version: int, path: str, options: LoadOptions) -> Servable:
        raise NotImplementedError


class Servable:
    """A loaded model version of any platform. Thread-safe: many requests run concurrently."""

    def __init__(self, name: str, version: int, path: str, signature_defs: Mapping, runner):
        self.name = name
        self.version = version
        self.path = path
        self.platform = ""  # the registry sets the name the model selected it by
        self.signature_defs = signature_defs
        self.signatures: dict[str, SignatureInfo] = {
            key: SignatureInfo.from_proto(key, sig)
            for key, sig in signature_defs.items()
            if is_runnable(key)
        }
        self._runner = runner

    @property
    def loader(self) -> str:
        return getattr(self._runner, "kind", self.platform)

    def signature(self, name: str) -> SignatureInfo:
        try:
            return self.signatures[name]
        except KeyError:
            raise SignatureNotFound(name) from None

    def run(
        self,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_aliases: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run a signature. Inputs are keyed by alias and already in the signature's dtypes."""
        signature = self.signature(signature_name)
        aliases = list(output_aliases) if output_aliases else list(signature.outputs)
        try:
            return self._runner.run(signature, inputs, aliases)
        except ServingError:
            raise
        except (ValueError, TypeError) as exc:
            raise ServingError(Code.INVALID_ARGUMENT, str(exc)) from exc
        except Exception as exc:
            raise from_exception(exc) from exc

    def close(self) -> None:
        self._runner.close()


class SignatureNotFound(ServingError):
    """A signature name the model lacks; REST and gRPC word this differently, so they read ``.signature_name``."""

    def __init__(self, signature_name: str):
        super().__init__(
            Code.FAILED_PRECONDITION, f'Serving signature key "{signature_name}" not found.'
        )
        self.signature_name = signature_name


def signature_def(
    inputs: Mapping[str, tuple[str, Sequence[int] | None]],
    outputs: Mapping[str, tuple[str, Sequence[int] | None]],
    method_name: str = PREDICT_METHOD,
):
    """A ``SignatureDef`` from ``{alias: (numpy dtype name, shape with -1 for unknown, or None)}``.

    Platforms whose models carry no TensorFlow protos describe their signatures with it.
    """
    from tensorflow.core.protobuf import meta_graph_pb2

    from ..tensors.dtypes import datatype_of

    proto = meta_graph_pb2.SignatureDef(method_name=method_name)
    for target, specs in ((proto.inputs, inputs), (proto.outputs, outputs)):
        for alias, (dtype, shape) in specs.items():
            info = target[alias]
            info.name = alias
            info.dtype = datatype_of(np.empty(0, np.dtype(dtype)))
            if shape is None:
                info.tensor_shape.unknown_rank = True
            else:
                for size in shape:
                    info.tensor_shape.dim.add(size=int(size))
    return proto


def normalize(value) -> np.ndarray:
    """An output as the codecs expect it: an ndarray, with bytes and strings as object arrays."""
    array = np.asarray(value)
    if array.dtype.kind in ("S", "U"):
        array = array.astype(object)
    return array


def is_runnable(signature_key: str) -> bool:
    """Signatures named ``__...`` (``__saved_model_init_op``) are internal, never served."""
    return not signature_key.startswith("__")
