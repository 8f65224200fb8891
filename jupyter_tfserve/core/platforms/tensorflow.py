"""The built-in ``tensorflow`` platform: a SavedModel version whose signatures run on numpy inputs.

TF2 SavedModels load with ``tf.saved_model.load`` and run through the
signature's concrete function, called flat with tensors: the structured call
costs about twice as much per request and ``model.predict`` two orders of
magnitude more. SavedModels that ``tf.saved_model.load`` rejects (TF 1.x
exports with reference variables or legacy ops) load with the TF1 loader into
their own graph and session, one session per version so stateful signatures
keep their variables, and run through a cached ``Session`` callable.

TensorFlow is imported here, lazily, on the first load: the Jupyter server and
the CLI's ``--help`` start without paying for it.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterable

import numpy as np

from ..native_logs import filtered_stderr
from ..status import Code, ServingError, from_exception
from .base import LoadOptions, Platform, Servable, is_runnable, normalize

log = logging.getLogger(__name__)

_tf = None
_tf_lock = threading.Lock()
_threading_config: tuple[int, int] = (0, 0)


def configure_tensorflow(intra_op_parallelism: int = 0, inter_op_parallelism: int = 0) -> None:
    """Remember TensorFlow's thread-pool sizes; applied when TensorFlow is first imported."""
    global _threading_config
    _threading_config = (intra_op_parallelism, inter_op_parallelism)
    if _tf is not None:
        _apply_threading(_tf)


def _apply_threading(tf) -> None:
    intra, inter = _threading_config
    try:
        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        log.warning(
            "TensorFlow was already initialized; thread settings %s not applied", _threading_config
        )


def tensorflow():
    """Import TensorFlow once, on first use, and create its devices (their native log lines filtered)."""
    global _tf
    if _tf is None:
        with _tf_lock:
            if _tf is None:
                with filtered_stderr():
                    import tensorflow as tf

                    _apply_threading(tf)
                    tf.config.list_logical_devices()
                _tf = tf
    return _tf


def read_meta_graph(export_dir: str, tags: Iterable[str]):
    """The MetaGraphDef whose tags match, straight from ``saved_model.pb``: the signature protos TF Serving reports."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    pb_path = os.path.join(export_dir, "saved_model.pb")
    pbtxt_path = os.path.join(export_dir, "saved_model.pbtxt")
    try:
        if os.path.exists(pb_path):
            with open(pb_path, "rb") as f:
                saved_model.ParseFromString(f.read())
        elif os.path.exists(pbtxt_path):
            with open(pbtxt_path) as f:
                text_format.Parse(f.read(), saved_model)
        else:
            raise ServingError(
                Code.NOT_FOUND,
                f"SavedModel not found in export directory {export_dir}: no saved_model.pb or saved_model.pbtxt",
            )
    except ServingError:
        raise
    except Exception as exc:
        raise ServingError(
            Code.DATA_LOSS, f"Could not parse SavedModel in {export_dir}: {exc}"
        ) from exc
    wanted = set(tags)
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    available = [sorted(mg.meta_info_def.tags) for mg in saved_model.meta_graphs]
    raise ServingError(
        Code.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {', '.join(sorted(wanted))} }} "
        f"in {export_dir}. Available tags: {available}",
    )


class _EagerRunner:
    """Runs TF2 signatures through their concrete functions."""

    kind = "tf2"

    def __init__(self, loaded):
        self._loaded = loaded  # keeps variables alive
        self._functions = {}
        for key, fn in loaded.signatures.items():
            # Signature functions take keyword tensors; flat order is the sorted keys.
            kwargs = fn.structured_input_signature[1]
            self._functions[key] = (_flat_call(fn), sorted(kwargs))

    def run(self, signature, inputs, aliases):
        call, order = self._functions[signature.name]
        outputs = call([inputs[k] for k in order])
        return {alias: _to_numpy(outputs[alias]) for alias in aliases}

    def close(self):
        self._functions.clear()
        self._loaded = None


def _flat_call(fn):
    """The cheapest correct way to call a loaded signature with a flat list of numpy inputs.

    A signature's function is one function op. Executing that op directly costs
    about 65 us a call here for the MLP of the benchmarks, against 87 us through
    ``ConcreteFunction._call_flat``: the layers in between (gradient-tape checks,
    control dependencies, error-message rewriting, distribution-strategy handle
    lookups) do nothing for serving and run on every request. When this
    TensorFlow's internals do not look as expected, or a capture is not a plain
    eager tensor (variables of a distribution strategy), the public layers are used.
    Inputs become tensors through ``convert_to_eager_tensor``, which skips
    ``tf.convert_to_tensor``'s dispatch (half its cost per input).
    """
    from tensorflow.python.eager import context, execute
    from tensorflow.python.framework import constant_op, ops

    convert = constant_op.convert_to_eager_tensor

    def layered(arrays):
        ctx = context.context()
        return fn._call_flat([convert(a, ctx) for a in arrays], fn.captured_inputs)

    try:
        atomic = fn._inference_function
        ctx = context.context()
        op_name = atomic.name.decode()
        attrs = tuple(itertools.chain(*ctx.function_call_options.as_attrs().items()))
        num_outputs = len(atomic.function_type.flat_outputs)
        pack = atomic.function_type.pack_output
        captures = list(fn.captured_inputs)
    except Exception as exc:  # noqa: BLE001 - any surprise means "use the public layers"
        log.debug("direct signature calls unavailable (%s); using _call_flat", exc)
        return layered
    if not all(isinstance(c, ops.EagerTensor) for c in captures):
        return layered

    def direct(arrays):
        tensors = [convert(a, ctx) for a in arrays]
        return pack(execute.quick_execute(op_name, num_outputs, tensors + captures, attrs, ctx))

    return direct


class _SessionRunner:
    """Runs TF1 signatures through session callables built once per (signature, inputs, outputs).

    The callables come from ``CallableOptions`` (``Session._make_callable_from_options``),
    which run with C++ ``Session::Run`` semantics as TF Serving does: a fed tensor's shape
    is not checked against its placeholder's static shape (``x`` of shape ``[1]`` runs on a
    ``[?, 1]`` placeholder). ``Session.make_callable`` and ``session.run`` add Python's
    check, which refuses requests TF Serving answers. Inputs arrive in the signature's
    dtypes already (validated by the inference path), so no conversion is needed here.
    """

    kind = "tf1"

    def __init__(self, graph, session):
        self._graph = graph
        self._session = session
        self._callables: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def _callable(self, signature, input_aliases, aliases):
        key = (signature.name, tuple(input_aliases), tuple(aliases))
        entry = self._callables.get(key)
        if entry is None:
            from tensorflow.core.protobuf import config_pb2

            options = config_pb2.CallableOptions()
            options.feed.extend(signature.inputs[a].tensor_name for a in input_aliases)
            options.fetch.extend(signature.outputs[a].tensor_name for a in aliases)
            with self._lock:
                entry = self._session._make_callable_from_options(options)
                self._callables[key] = entry
        return entry

    def run(self, signature, inputs, aliases):
        input_aliases = sorted(inputs)
        fn = self._callable(signature, input_aliases, aliases)
        values = fn(*[inputs[a] for a in input_aliases])
        return {alias: normalize(value) for alias, value in zip(aliases, values, strict=True)}

    def close(self):
        self._callables.clear()
        self._session.close()


def _to_numpy(tensor) -> np.ndarray:
    return normalize(tensor.numpy())


def load_servable(
    name: str, version: int, path: str, tags: Iterable[str] = ("serve",), *, tf1: bool = False
) -> Servable:
    """Load one version; TF2 loader first, the TF1 session loader when that fails (or when ``tf1``)."""
    tags = list(tags)
    meta_graph = read_meta_graph(path, tags)
    tf = tensorflow()
    try:
        if tf1:
            raise ValueError("TF1 loader requested")
        loaded = tf.saved_model.load(path, tags=tags)
        if set(loaded.signatures.keys()) != {k for k in meta_graph.signature_def if is_runnable(k)}:
            raise ValueError("signatures differ between the SavedModel and its TF2 view")
        runner = _EagerRunner(loaded)
    except Exception as tf2_error:
        log.info("Loading %s version %s with the TF1 loader (%s)", name, version, tf2_error)
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph)
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(session, tags, path)
        except Exception as tf1_error:
            session.close()
            raise from_exception(tf1_error) from tf2_error
        runner = _SessionRunner(graph, session)
    return Servable(name, version, path, meta_graph.signature_def, runner)


class TensorFlowPlatform(Platform):
    """TF Serving's default platform: a version folder holding ``saved_model.pb`` (or ``.pbtxt``)."""

    def recognizes(self, path: str) -> bool:
        return any(
            os.path.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")
        )

    def load(self, name: str, version: int, path: str, options: LoadOptions) -> Servable:
        return load_servable(name, version, path, options.saved_model_tags)
