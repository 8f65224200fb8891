"""Export a live model from a notebook as the next version of a served model.

``export(model, "mnist")`` writes ``<models_root>/mnist/<n+1>``: a SavedModel
with a ``serving_default`` signature whose inputs and outputs carry the
model's own names. It takes Keras 3 models (through Keras' ``ExportArchive``),
``tf.Module``s with ``tf.function``s, and concrete functions.

The version appears atomically: everything is written to a hidden staging
directory next to the version directories (a name the file-system source
never takes for a version), checked there, and renamed into place. A poller
never sees half a model, and a failed export leaves nothing behind.

Given a sample, the staging copy is also:

* given warmup records (``assets.extra/tf_serving_warmup_requests``, a
  TFRecord of ``PredictionLog``), so the first real request does not pay for
  tracing; the engine replays them here exactly as it will at load;
* loaded with the engine's own loader and run on the sample, and its outputs
  compared with the in-memory model's: the largest absolute difference is
  reported, and above the tolerance the export fails (a model that drifts on
  export is a bug to see now, not in production).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..client import data as data_lib
from ..core import source
from ..core.native_logs import quiet_python_logs
from ..core.signatures import DEFAULT_SIGNATURE, SignatureInfo
from ..paths import default_models_root
from .render import Table, dtype_name, shape_text

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
WARMUP_MAX_ROWS = 100
# Logged requests written as warmup by ``warmup_from`` (TF Serving reads at most 1000).
DEFAULT_WARMUP_FROM_LOG = 100
SYNTHETIC_ROWS = 2
DEFAULT_TOLERANCE = 1e-4

Progress = Callable[[float, str], None]


class ExportError(ValueError):
    """An export that cannot be done as asked; nothing was written."""


class ParityError(ExportError):
    """The exported SavedModel does not compute what the in-memory model computes."""

    def __init__(self, message: str, differences: dict[str, float]):
        super().__init__(message)
        self.differences = differences


def validate_model_name(name: str) -> str:
    """Model names become directory names: no path characters, no hidden or relative names."""
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        raise ExportError(
            f"Invalid model name {name!r}: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit, no path separators)"
        )
    return name


@dataclass
class ExportResult:
    """What an export wrote, what it serves and how faithfully."""

    name: str
    version: int
    path: str
    signatures: dict[str, SignatureInfo]
    parity: dict[str, float] | None = None
    tolerance: float = DEFAULT_TOLERANCE
    warmup_records: int = 0
    parity_input: str = "the sample"
    notes: list[str] = field(default_factory=list)
    optimize: str | None = None
    comparison: object = None  # with ``optimize``: the DataFrame of notebook.optimize.compare

    @property
    def max_abs_diff(self) -> float | None:
        return max(self.parity.values(), default=0.0) if self.parity is not None else None

    def summary(self) -> str:
        kind = f" as {self.optimize} TensorFlow Lite" if self.optimize else ""
        line = f"Exported {self.name}{kind} version {self.version} to {self.path}"
        if self.parity is not None:
            line += (
                f"; parity check on {self.parity_input} passed: max |exported - in-memory| = "
                f"{self.max_abs_diff:.3g} (tolerance {self.tolerance:g})"
            )
        if self.warmup_records:
            line += f"; {self.warmup_records} warmup record(s) written"
        return line

    def table(self) -> Table:
        return signature_table(self.signatures)

    def __repr__(self) -> str:
        table = (
            repr(self.table()) if self.comparison is None else self.comparison.round(4).to_string()
        )
        return "\n".join([self.summary(), *self.notes, table])

    def _repr_html_(self) -> str:
        from html import escape

        lines = "".join(f"<p>{escape(line)}</p>" for line in [self.summary(), *self.notes])
        if self.comparison is not None:
            return lines + self.comparison.round(4).to_html()
        return lines + self.table()._repr_html_()


def signature_table(signatures: Mapping[str, SignatureInfo]) -> Table:
    """Signatures as rows (one per input/output), the way ``saved_model_cli show --all`` lists them."""
    rows = []
    for key, sig in signatures.items():
        method = sig.method_name.rsplit("/", 1)[-1]
        for kind, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for spec in specs.values():
                rows.append(
                    [
                        key,
                        kind,
                        spec.alias,
                        dtype_name(spec.dtype),
                        shape_text(spec.shape),
                        spec.tensor_name,
                        method,
                    ]
                )
    return Table(["signature", "kind", "name", "dtype", "shape", "tensor", "method"], rows)


# --------------------------------------------------------------------------- export


def export(
    model,
    name: str,
    *,
    version: int | None = None,
    signatures: Sequence[str] | None = None,
    sample=None,
    models_root: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    optimize: str | None = None,
    progress: Progress | None = None,
    warmup_from: str | None = None,
    warmup_records: int = DEFAULT_WARMUP_FROM_LOG,
) -> ExportResult:
    """Write ``model`` as a new version of ``name`` under ``models_root`` (atomically).

    ``signatures`` names the signature keys: for a ``tf.Module``, ``KEY=method``
    or just ``method`` (exported under its own name); for a Keras model or a
    concrete function, the key of its one serving function. The first key is
    also exported as ``serving_default`` when that key is not listed.
    ``sample`` (array, dict, DataFrame) adds warmup records and checks parity on
    it; without one, parity is checked on synthetic rows when the signature's
    shapes allow. ``warmup_from`` (a request log prefix or glob) makes the
    warmup file a sample of ``warmup_records`` logged requests instead: real
    traffic warms the new version. ``optimize`` (``float16``, ``dynamic-int8``,
    ``int8``) publishes the model converted to TensorFlow Lite instead, with
    ``result.comparison`` against the float32 SavedModel (see
    :mod:`jupyter_tfserve.notebook.optimize`).
    """
    report = progress or (lambda fraction, message: None)
    validate_model_name(name)
    if optimize is not None:
        from . import optimize as optimize_lib

        try:
            optimize_lib.check_optimization(optimize, sample is not None)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
    base_path = os.path.join(
        os.path.abspath(os.path.expanduser(models_root or default_models_root())), name
    )
    if version is not None and (
        not isinstance(version, int) or version < 1 or source.parse_version(str(version)) is None
    ):
        raise ExportError(f"Invalid version {version!r}: a positive int64")
    if version is not None and os.path.exists(os.path.join(base_path, str(version))):
        raise ExportError(
            f"{name} version {version} already exists at {os.path.join(base_path, str(version))}"
        )
    report(0.05, "tracing")
    plan = plan_export(model, signatures, sample)
    created = not os.path.isdir(base_path)
    os.makedirs(base_path, exist_ok=True)
    staging = os.path.join(base_path, f".export-{uuid.uuid4().hex[:12]}")
    try:
        report(0.2, "writing SavedModel")
        with quiet_python_logs():
            plan.save(staging)
        from ..core.platforms.tensorflow import read_meta_graph

        written = {
            key: SignatureInfo.from_proto(key, sig)
            for key, sig in read_meta_graph(staging, ["serve"]).signature_def.items()
            if not key.startswith("__")
        }
        result = ExportResult(name, 0, "", written, tolerance=tolerance)
        if warmup_from:
            report(0.4, "writing warmup records from the request log")
            result.warmup_records = warmup_from_log(staging, name, warmup_from, warmup_records)
        if sample is not None:
            inputs = typed_inputs(sample, written[plan.default_key])
            if not warmup_from:
                report(0.5, "writing warmup records")
                result.warmup_records = write_warmup_records(
                    staging, name, plan.default_key, inputs
                )
            report(0.65, "loading the export and checking parity")
            result.parity = check_parity(staging, name, plan, inputs, tolerance)
        else:
            report(0.65, "loading the export and checking parity on synthetic input")
            _synthetic_parity(result, staging, name, plan, written[plan.default_key], tolerance)
        published = staging
        if optimize is not None:
            published = f"{staging}-{optimize}"
            _optimize(
                result, staging, published, optimize, inputs if sample is not None else None, report
            )
        report(0.9, "publishing")
        result.version = _publish(published, base_path, version)
        result.path = os.path.join(base_path, str(result.version))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if optimize is not None:
            shutil.rmtree(f"{staging}-{optimize}", ignore_errors=True)
        if created and not os.listdir(base_path):
            os.rmdir(base_path)  # a failed first export leaves no empty model directory behind
    report(1.0, f"version {result.version}")
    return result


def _optimize(
    result: ExportResult, staging: str, target: str, optimize: str, inputs, report
) -> None:
    """Convert the staged SavedModel into ``target/model.tflite`` (with warmup records) and compare the two.

    Both are run through ``serving_default``: the converter keeps one signature per
    function, so a method exported under its own name too may be left with only that key.
    """
    from ..core.platforms.tflite import MODEL_FILE
    from . import optimize as optimize_lib

    report(0.7, f"converting to TensorFlow Lite ({optimize})")
    try:
        flatbuffer = optimize_lib.convert(staging, list(result.signatures), optimize, inputs)
    except optimize_lib.ConversionRefused as exc:
        raise ExportError(str(exc)) from None
    os.makedirs(target)
    with open(os.path.join(target, MODEL_FILE), "wb") as f:
        f.write(flatbuffer)
    if inputs is None:
        inputs = synthetic_inputs(result.signatures[DEFAULT_SIGNATURE])
    else:
        write_warmup_records(target, result.name, DEFAULT_SIGNATURE, inputs)
    report(0.8, "comparing with the float32 SavedModel")
    result.optimize = optimize
    result.comparison = optimize_lib.compare(staging, target, optimize, DEFAULT_SIGNATURE, inputs)


def _synthetic_parity(
    result: ExportResult, staging: str, name: str, plan, signature, tolerance: float
) -> None:
    """Without a sample, check parity on made-up rows when the signature says what they look like.

    A model may legitimately refuse made-up input (ids out of a vocabulary,
    say): that skips the check, with a note. Only a mismatch fails the export.
    """
    inputs = synthetic_inputs(signature)
    if inputs is None:
        result.notes.append(
            "parity check skipped: the inputs have unknown dimensions or strings; pass a sample"
        )
        return
    try:
        result.parity = check_parity(staging, name, plan, inputs, tolerance)
    except ParityError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own complaint about made-up input
        result.notes.append(
            f"parity check skipped: the model did not run on synthetic input ({exc}); pass a sample"
        )
        return
    result.parity_input = f"{SYNTHETIC_ROWS} synthetic rows"


def synthetic_inputs(signature: SignatureInfo) -> dict[str, np.ndarray] | None:
    """Random floats (zeros for integers, False for bools) shaped like the signature; None when it cannot say."""
    from ..core import tensors

    rng = np.random.default_rng(0)
    inputs = {}
    for alias, spec in signature.inputs.items():
        dtype = tensors.numpy_dtype(spec.dtype)
        if spec.shape is None or any(d < 0 for d in spec.shape[1:]) or dtype.kind not in "biuf":
            return None
        shape = (SYNTHETIC_ROWS, *spec.shape[1:]) if spec.shape else ()
        inputs[alias] = (
            rng.random(shape).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
        )
    return inputs


def _publish(staging: str, base_path: str, version: int | None) -> int:
    """Rename the staging directory to the next free version (or the one asked for)."""
    while True:
        target = (
            version if version is not None else max(source.list_versions(base_path), default=0) + 1
        )
        try:
            os.rename(staging, os.path.join(base_path, str(target)))
            return target
        except OSError:
            # Another export took this number between listing and renaming: take the next.
            if version is not None or not os.path.exists(os.path.join(base_path, str(target))):
                raise


# --------------------------------------------------------------------------- plans


@dataclass
class ExportPlan:
    """How to write one model and how to compute its outputs in memory."""

    save: Callable[[str], None]
    reference: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    default_key: str


def plan_export(model, signatures: Sequence[str] | None, sample) -> ExportPlan:
    """Pick the exporter for this kind of object; refuse anything that is not a model."""
    from ..core.platforms.tensorflow import tensorflow

    tf = tensorflow()
    keras = _keras()
    if keras is not None and isinstance(model, keras.Model):
        return _plan_keras(tf, model, signatures, sample)
    if isinstance(model, tf.types.experimental.ConcreteFunction):
        return _plan_concrete(tf, model, signatures)
    if isinstance(model, tf.types.experimental.PolymorphicFunction):
        raise ExportError(
            "Cannot export a bare tf.function: attach it to a tf.Module, or pass "
            "fn.get_concrete_function(...) for one traced signature"
        )
    if isinstance(model, tf.Module):
        return _plan_module(tf, model, signatures, sample)
    raise ExportError(
        f"Cannot export a {type(model).__module__}.{type(model).__name__}: expected a Keras model, "
        "a tf.Module with tf.functions, or a concrete function"
    )


def _keras():
    try:
        import keras
    except ImportError:  # pragma: no cover - TensorFlow 2.16+ always ships Keras 3
        return None
    return keras


def _signature_keys(signatures: Sequence[str] | None, default: str) -> list[str]:
    keys = list(signatures or [default])
    if not keys or any(not k for k in keys) or len(set(keys)) != len(keys):
        raise ExportError(f"Invalid signature names {keys!r}")
    return keys


def _with_default(functions: dict) -> dict:
    """TF Serving answers requests without ``signature_name`` from ``serving_default``: always have one."""
    if DEFAULT_SIGNATURE not in functions:
        functions = {**functions, DEFAULT_SIGNATURE: next(iter(functions.values()))}
    return functions


def _plan_keras(tf, model, signatures, sample) -> ExportPlan:
    keys = _signature_keys(signatures, DEFAULT_SIGNATURE)
    if any("=" in k for k in keys):
        raise ExportError(
            "A Keras model has one serving function: give --signature NAME, not KEY=method"
        )
    names, specs = _keras_input_specs(tf, model, sample)
    output_names = getattr(model, "output_names", None) or (
        [model.layers[-1].name] if model.layers else []
    )

    def serve(*args):
        x = args[0] if len(args) == 1 else dict(zip(names, args, strict=True))
        return _named_outputs(model(x, training=False), output_names)

    if not model.built:  # a subclassed model creates its weights on its first call
        serve(
            *[tf.zeros([1 if d is None else d for d in spec.shape], spec.dtype) for spec in specs]
        )

    def save(path: str) -> None:
        from keras.export import ExportArchive

        archive = ExportArchive()
        archive.track(model)
        for key in _with_default(dict.fromkeys(keys)):
            archive.add_endpoint(key, serve, input_signature=specs)
        archive.write_out(path, verbose=False)

    def reference(inputs):
        return _numpy(serve(*[inputs[n] for n in names]))

    return ExportPlan(save, reference, keys[0])


def _keras_input_specs(tf, model, sample):
    """Input names and specs: the model's own Input layers, else (subclassed, unbuilt) the sample's."""
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if inputs:
        names = [t.name for t in inputs]
        return names, [
            tf.TensorSpec(t.shape, t.dtype, name=n) for t, n in zip(inputs, names, strict=True)
        ]
    if sample is None:
        raise ExportError(
            f"{type(model).__name__} has no Input layers to take a signature from: pass a sample "
            "(--sample) so the inputs can be traced from it"
        )
    if isinstance(sample, Mapping) or data_lib.is_dataframe(sample):
        keys = sample.columns if data_lib.is_dataframe(sample) else sample
        named = data_lib.named_inputs(sample, [str(k) for k in keys])
    else:  # one input, named like the first argument of call()
        named = {next(iter(inspect.signature(model.call).parameters)): np.asarray(sample)}
    return list(named), [_spec_like(tf, array, name) for name, array in named.items()]


def _spec_like(tf, array: np.ndarray, name: str):
    """A spec for arrays like this one, any batch size."""
    array = np.asarray(array)
    dtype = tf.float32 if array.dtype == np.float64 else tf.as_dtype(array.dtype)
    return tf.TensorSpec([None, *array.shape[1:]], dtype, name=name)


def _named_outputs(outputs, names: Sequence[str]) -> dict:
    if isinstance(outputs, Mapping):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        if len(names) != len(outputs):
            names = [f"output_{i}" for i in range(len(outputs))]
        return dict(zip(names, outputs, strict=True))
    return {names[0] if names else "output_0": outputs}


def _plan_module(tf, module, signatures, sample) -> ExportPlan:
    functions = _module_functions(tf, module)
    if not functions:
        raise ExportError(f"{type(module).__name__} has no tf.function methods to serve")
    chosen: dict[str, object] = {}
    for entry in signatures or [_default_method(functions)]:
        key, _, attr = entry.partition("=")
        attr = attr or key
        if attr not in functions:
            raise ExportError(
                f"{type(module).__name__} has no tf.function {attr!r}; it has {sorted(functions)}"
            )
        chosen[key] = _concrete(tf, functions[attr], attr, sample)
    default_key = next(iter(chosen))

    def save(path: str) -> None:
        tf.saved_model.save(module, path, signatures=_with_default(chosen))

    return ExportPlan(
        save, lambda inputs: _numpy(_call_concrete(chosen[default_key], inputs)), default_key
    )


def _module_functions(tf, module) -> dict:
    found = {}
    for attr in dir(type(module)):
        value = getattr(type(module), attr, None)
        if isinstance(value, tf.types.experimental.PolymorphicFunction):
            found[attr] = getattr(module, attr)
    return found


def _default_method(functions: dict) -> str:
    for preferred in (DEFAULT_SIGNATURE, "serve", "__call__"):
        if preferred in functions:
            return preferred
    if len(functions) == 1:
        return next(iter(functions))
    raise ExportError(
        f"Several tf.functions {sorted(functions)}: choose with --signature KEY=method (or method)"
    )


def _concrete(tf, function, attr: str, sample):
    """The function traced for any batch size: from its input_signature, else from the sample."""
    if function.input_signature is not None:
        return function.get_concrete_function()
    if sample is None:
        raise ExportError(
            f"tf.function {attr!r} has no input_signature: pass a sample (--sample) to trace it"
        )
    params = [p for p in inspect.signature(function.python_function).parameters if p != "self"]
    named = data_lib.named_inputs(sample, params)
    return function.get_concrete_function(**{n: _spec_like(tf, named[n], n) for n in params})


def _plan_concrete(tf, function, signatures) -> ExportPlan:
    keys = _signature_keys(signatures, DEFAULT_SIGNATURE)

    def save(path: str) -> None:
        root = tf.Module()
        root.tracked_variables = list(
            function.variables
        )  # captured variables must be saved with it
        tf.saved_model.save(root, path, signatures=_with_default(dict.fromkeys(keys, function)))

    return ExportPlan(save, lambda inputs: _numpy(_call_concrete(function, inputs)), keys[0])


def _call_concrete(function, inputs: Mapping[str, np.ndarray]):
    args, kwargs = function.structured_input_signature
    outputs = function(
        *[inputs[spec.name] for spec in args],
        **{key: inputs[spec.name or key] for key, spec in kwargs.items()},
    )
    return _named_outputs(outputs, [])


def _numpy(outputs: Mapping) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in outputs.items()}


# --------------------------------------------------------------------------- sample, warmup, parity


def typed_inputs(sample, signature: SignatureInfo) -> dict[str, np.ndarray]:
    """The sample mapped onto the signature's inputs, in the signature's dtypes."""
    from ..core import tensors

    try:
        named = data_lib.named_inputs(sample, list(signature.inputs))
    except data_lib.InputMismatch as exc:
        raise ExportError(f"Sample does not fit signature {signature.name!r}: {exc}") from None
    typed = {}
    for alias, array in named.items():
        dtype = tensors.numpy_dtype(signature.inputs[alias].dtype)
        try:
            typed[alias] = np.asarray(array).astype(dtype)
        except (TypeError, ValueError) as exc:
            raise ExportError(
                f"Sample input {alias!r} cannot be converted to {dtype}: {exc}"
            ) from None
    return typed


def write_warmup_records(
    version_dir: str, name: str, signature_name: str, inputs: dict[str, np.ndarray]
) -> int:
    """One predict record with the first rows of the sample, in TF Serving's warmup file format."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    from ..core import tensors, warmup

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature_name
    for alias, array in inputs.items():
        rows = array[:WARMUP_MAX_ROWS] if array.ndim else array
        request.inputs[alias].CopyFrom(tensors.ndarray_to_tensor_proto(rows))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    return warmup.write_warmup_records(version_dir, [log])


def warmup_from_log(version_dir: str, name: str, pattern: str, count: int) -> int:
    """A sample of the requests logged under ``pattern`` as the warmup file, checked by replaying it here.

    The server replays the file at load and refuses a version whose warmup
    fails; replaying it on the staging copy says so now, naming the record.
    """
    from ..core import request_log, warmup
    from ..core.platforms.tensorflow import load_servable

    logs = request_log.warmup_sample(pattern, count)
    if not logs:
        raise ExportError(f"no successful logged requests under {pattern!r} to warm up with")
    written = warmup.write_warmup_records(version_dir, logs)
    servable = load_servable(name, 0, version_dir)
    try:
        warmup.warmup(servable)
    except Exception as exc:
        raise ExportError(
            f"the logged requests under {pattern!r} do not run on this export: {exc}"
        ) from None
    finally:
        servable.close()
    return written


def check_parity(
    version_dir: str, name: str, plan: ExportPlan, inputs: dict[str, np.ndarray], tolerance: float
) -> dict[str, float]:
    """Load the export as the server will (warmup included), run it, compare with the live model."""
    from ..core.platforms.tensorflow import load_servable
    from ..core.tensors import max_abs_diff
    from ..core.warmup import warmup

    servable = load_servable(name, 0, version_dir)
    try:
        warmup(servable)
        exported = servable.run(plan.default_key, inputs)
    finally:
        servable.close()
    expected = plan.reference(inputs)
    differences = {}
    for output, value in exported.items():
        if output not in expected:
            raise ParityError(
                f"Exported output {output!r} is missing from the in-memory model's outputs", {}
            )
        differences[output] = max_abs_diff(value, expected[output])
    worst = max(differences, key=differences.get, default=None)
    if worst is not None and not differences[worst] <= tolerance:
        raise ParityError(
            f"Parity check failed: output {worst!r} of the exported model differs from the in-memory "
            f"model by up to {differences[worst]:.3g} (tolerance {tolerance:g}); nothing was written",
            differences,
        )
    return differences
