"""The one inference path every caller takes: REST, gRPC, warmup and in-process clients.

It also answers the other questions a protocol asks, in protocol-neutral
types: a model's version status (:meth:`InferenceService.model_status`) and
its metadata (:meth:`InferenceService.model_metadata`), so each protocol only
maps them to its wire format.

A request is served in two steps so that protocols can decode against the
signature the request actually resolves to:

1. ``resolve(spec)`` picks model/version/label/signature and holds a handle;
2. ``predict``/``classify``/``regress`` validate the decoded inputs, then run
   them (on the batch scheduler when batching applies, on the inference pool
   otherwise) and return a ``concurrent.futures.Future``.

Event-loop callers await the future through ``protocols.futures.wrap`` (one
loop wake-up per burst of results), so a model never runs on an event loop.
Callers that are worker threads already (the gRPC front's handlers) pass
``inline=True``: an unbatched run then happens on the calling thread, which
saves two thread hand-offs a request, and the future comes back done. Inline
and pooled runs share one bound, ``max_concurrent_runs``, so a burst of calls
never runs more models at once than the inference pool has threads.

The pool's queue has a bound of its own, ``max_queued_runs`` runs waiting
beyond the ones running: each front bounds the requests it takes, but every
front (the standalone port, the routes Jupyter mounts, in-process clients)
feeds this one pool. Past it a run is refused at once with UNAVAILABLE, TF
Serving's answer for a full batch queue, instead of waiting behind the queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np

from . import tensors
from .manager import Handle, ModelManager, VersionStatus
from .request_log import CLASSIFY, PREDICT, REGRESS
from .signatures import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    SignatureInfo,
    shape_mismatches,
)
from .status import Code, ServingError, from_exception, invalid_argument, unavailable


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""

    @property
    def signature(self) -> str:
        return self.signature_name or DEFAULT_SIGNATURE


class Target:
    """A resolved request target: the handle (held until ``release``) and the signature to run."""

    __slots__ = ("handle", "signature", "model_name", "version")

    def __init__(self, handle: Handle, signature: SignatureInfo):
        self.handle = handle
        self.signature = signature
        self.model_name = handle.model_name
        self.version = handle.version

    @property
    def servable(self):
        return self.handle.servable

    def release(self) -> None:
        self.handle.release()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass(frozen=True)
class ModelMetadata:
    """GetModelMetadata's answer: the version served and its SignatureDefs (by key)."""

    model_name: str
    version: int
    signature_defs: Mapping[str, object]


@dataclass
class Classification:
    classes: np.ndarray | None  # [batch, n] bytes
    scores: np.ndarray | None  # [batch, n] float


class InferenceService:
    def __init__(
        self,
        manager: ModelManager,
        executor: Executor,
        *,
        batcher=None,
        metrics=None,
        max_concurrent_runs: int = 4,
        max_queued_runs: int = 256,
        check_signature_method_name: bool = False,
        request_log=None,
        max_request_tensor_bytes: int = tensors.DEFAULT_MAX_REQUEST_TENSOR_BYTES,
    ):
        self.manager = manager
        # core.request_log.RequestLogger: models with a logging_config log a sample of their requests.
        self.request_log = request_log
        # TF Serving's --enable_signature_method_name_check (off by default: TF2 exports
        # label every signature tensorflow/serving/predict, classify and regress ones too).
        self.check_signature_method_name = check_signature_method_name
        self.max_request_tensor_bytes = max_request_tensor_bytes
        self.executor = executor
        self.batcher = batcher
        self.metrics = metrics
        # Held for every unbatched model run, pooled or inline.
        self.run_slots = threading.BoundedSemaphore(max_concurrent_runs)
        # Pooled runs submitted and not finished (running, or queued for a thread or a slot).
        self.max_queued_runs = max_queued_runs
        self.max_pooled_runs = max_concurrent_runs + max_queued_runs
        self.pooled_runs = 0
        self._pooled_lock = threading.Lock()

    def tensor_budget(self) -> tensors.TensorBudget:
        """A fresh budget for decoding one request's tensors (``max_request_tensor_bytes``)."""
        return tensors.TensorBudget(self.max_request_tensor_bytes)

    # ------------------------------------------------------------------ resolution
    def acquire(self, spec: ModelSpec) -> Handle:
        """The version ``spec`` names (by number, label or latest), held until released."""
        if spec.version is not None and spec.label:
            raise invalid_argument(
                "ModelSpec has both version and version_label set; set at most one."
            )
        return self.manager.acquire(spec.name, spec.version, spec.label)

    def resolve(self, spec: ModelSpec) -> Target:
        """The version and signature ``spec`` names, held until the target is released."""
        handle = self.acquire(spec)
        try:
            signature = handle.servable.signature(spec.signature)
        except ServingError:
            handle.release()
            raise
        return Target(handle, signature)

    # ------------------------------------------------------------------ status / metadata
    def model_status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """GetModelStatus: every version of ``name`` (or just ``version``) with its state and error."""
        return self.manager.version_status(name, version)

    def model_metadata(self, spec: ModelSpec) -> ModelMetadata:
        """GetModelMetadata's ``signature_def`` field for the version ``spec`` names."""
        with self.acquire(spec) as handle:
            return ModelMetadata(
                handle.model_name, handle.version, dict(handle.servable.signature_defs)
            )

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        target: Target,
        inputs: dict[str, np.ndarray],
        output_filter: Sequence[str] = (),
        *,
        inline: bool = False,
        log: bool = True,
    ) -> Future:
        """Run a predict signature; the future resolves to ``{alias: ndarray}``.

        ``log=False`` leaves the request out of the model's request log (its caller logs it whole).
        """
        model_log = self.sampled_log(target.model_name) if log else None
        if model_log is None:
            return self._predict(target, inputs, output_filter, inline)
        return model_log.watch(
            PREDICT,
            target,
            (inputs, list(output_filter)),
            lambda: self._predict(target, inputs, output_filter, inline),
        )

    def _predict(self, target: Target, inputs, output_filter, inline: bool) -> Future:
        signature = target.signature
        validate_inputs(signature, inputs)
        aliases = validate_output_filter(signature, output_filter)
        return self._submit(target, inputs, aliases, inline)

    def sampled_log(self, model_name: str):
        """The model's request log when this request is in its sample: the only logging cost up front."""
        return self.request_log.sample(model_name) if self.request_log is not None else None

    # ------------------------------------------------------------------ classify / regress
    def classify(
        self, target: Target, examples: list[bytes], *, inline: bool = False, log: bool = True
    ) -> Future:
        """Future of a :class:`Classification` for serialized tf.Examples."""
        model_log = self.sampled_log(target.model_name) if log else None
        if model_log is None:
            return self._classify(target, examples, inline)
        return model_log.watch(
            CLASSIFY, target, examples, lambda: self._classify(target, examples, inline)
        )

    def _classify(self, target: Target, examples: list[bytes], inline: bool) -> Future:
        signature = target.signature
        input_alias = example_input_alias(
            signature, CLASSIFY_METHOD, check_method_name=self.check_signature_method_name
        )
        if not any(k in signature.outputs for k in ("classes", "scores")):
            raise invalid_argument(
                "Expected classification signature outputs to contain at least one of classes or scores."
            )
        future = self._submit(target, {input_alias: example_array(examples)}, None, inline)
        return _then(future, lambda out: _classification(out, len(examples)))

    def regress(
        self, target: Target, examples: list[bytes], *, inline: bool = False, log: bool = True
    ) -> Future:
        """Future of a 1-D float array, one value per example."""
        model_log = self.sampled_log(target.model_name) if log else None
        if model_log is None:
            return self._regress(target, examples, inline)
        return model_log.watch(
            REGRESS, target, examples, lambda: self._regress(target, examples, inline)
        )

    def _regress(self, target: Target, examples: list[bytes], inline: bool) -> Future:
        signature = target.signature
        input_alias = example_input_alias(
            signature, REGRESS_METHOD, check_method_name=self.check_signature_method_name
        )
        if "outputs" not in signature.outputs:
            raise invalid_argument("No regression outputs found in signature.")
        future = self._submit(target, {input_alias: example_array(examples)}, ["outputs"], inline)
        return _then(future, lambda out: _regression(out["outputs"], len(examples)))

    # ------------------------------------------------------------------ execution
    def _submit(self, target: Target, inputs, aliases, inline: bool = False) -> Future:
        handle = target.handle.retain()
        signature_name = target.signature.name
        try:
            if self.batcher is not None and self.batcher.applies(handle, signature_name):
                future = self.batcher.submit(handle, signature_name, inputs, aliases)
            elif inline:
                future = _run_here(self._run, handle, signature_name, inputs, aliases)
            else:
                future = self._pooled(handle, signature_name, inputs, aliases)
        except BaseException:
            handle.release()
            raise
        future.add_done_callback(lambda _f: handle.release())
        return future

    def _pooled(self, handle: Handle, signature_name: str, inputs, aliases) -> Future:
        """Queue a run on the inference pool, unless its queue is full."""
        with self._pooled_lock:
            if self.pooled_runs >= self.max_pooled_runs:
                raise unavailable(
                    "The inference queue to which this request was submitted is full "
                    f"({self.max_queued_runs} runs waiting); try again later"
                )
            self.pooled_runs += 1
        try:
            future = self.executor.submit(self._run, handle, signature_name, inputs, aliases)
        except BaseException:
            self._pooled_done(None)
            raise
        future.add_done_callback(self._pooled_done)  # a cancelled run leaves the queue too
        return future

    def _pooled_done(self, _future) -> None:
        with self._pooled_lock:
            self.pooled_runs -= 1

    def _run(self, handle: Handle, signature_name: str, inputs, aliases):
        with self.run_slots:
            started = time.perf_counter()
            try:
                return handle.servable.run(signature_name, inputs, aliases)
            except Exception as exc:
                explained = _shape_error(handle, signature_name, inputs, exc)
                if explained is None:
                    raise
                raise explained from exc
            finally:
                if self.metrics is not None:
                    self.metrics.observe_runtime(handle.model_name, time.perf_counter() - started)


def _shape_error(
    handle: Handle, signature_name: str, inputs, exc: Exception
) -> ServingError | None:
    """A failed run's error restated when an input's shape conflicts with the signature's static shape.

    TensorFlow's own message locates the failure in the graph (``Matrix
    size-incompatible: In[0]: [1,3], In[1]: [2,1]``); this one names the input.
    The status code stays the run's: only the wording changes, and only after
    the model refused, never before (TF Serving runs any shape it is sent).
    """
    try:
        signature = handle.servable.signature(signature_name)
    except ServingError:
        return None
    shapes = {alias: np.shape(value) for alias, value in inputs.items()}
    conflicts = shape_mismatches(signature, shapes)
    if not conflicts:
        return None
    index = list(signature.inputs)
    detail = "; ".join(
        f"Expects arg[{index.index(alias)}] ({alias}) to have shape {expected.replace(' ', '')} "
        f"but [{','.join(str(d) for d in got)}] is provided"
        for alias, expected, got in conflicts
    )
    return ServingError(from_exception(exc).code, detail)


def _run_here(fn, *args) -> Future:
    """Call ``fn`` on this thread; its result or error as a settled future."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:  # noqa: BLE001 - delivered through the future, like a pooled run
        future.set_exception(exc)
    return future


# ---------------------------------------------------------------------- validation
def validate_inputs(signature: SignatureInfo, inputs: dict[str, np.ndarray]) -> None:
    """Names and dtypes must match the signature exactly (TF Serving's wording); shapes are the model's call."""
    expected = signature.inputs
    if inputs.keys() != expected.keys():
        sent, want = set(inputs), set(expected)
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(want)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(want))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - want))}}}. "
            f"Missing but required: {{{','.join(sorted(want - sent))}}}."
        )
    for index, (alias, spec) in enumerate(expected.items()):
        got = tensors.datatype_of(inputs[alias])
        if got != spec.dtype:
            raise invalid_argument(
                f"Expects arg[{index}] ({alias}) to be {_dtype_label(spec.dtype)} "
                f"but {_dtype_label(got)} is provided"
            )


def validate_output_filter(
    signature: SignatureInfo, output_filter: Sequence[str]
) -> list[str] | None:
    if not output_filter:
        return None
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{','.join(signature.outputs)}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def _dtype_label(datatype: int) -> str:
    return tensors.datatype_name(datatype).removeprefix("DT_").lower()


def example_input_alias(signature: SignatureInfo, method: str, *, check_method_name: bool) -> str:
    """The single serialized-tf.Example input of a classify/regress signature.

    As in TF Serving, the signature's ``method_name`` must match the call only with
    ``--enable_signature_method_name_check``; otherwise its inputs and outputs decide.
    """
    kind = "classification" if method == CLASSIFY_METHOD else "regression"
    if check_method_name and signature.method_name != method:
        raise invalid_argument(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise invalid_argument(f"Expected one input Tensor in the {kind} signature.")
    return next(iter(signature.inputs))


def example_array(examples: list[bytes]) -> np.ndarray:
    if not examples:
        raise invalid_argument("Input is empty.")
    array = np.empty(len(examples), dtype=object)
    array[:] = examples
    return array


def _classification(outputs: dict[str, np.ndarray], batch: int) -> Classification:
    classes = outputs.get("classes")
    scores = outputs.get("scores")
    for name, value in (("classes", classes), ("scores", scores)):
        if value is not None and (value.ndim != 2 or value.shape[0] != batch):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Expected Tensor shape: [{batch} N] but got {list(value.shape)} for {name}",
            )
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise invalid_argument(
            f"Tensors class and score should match in shape: {list(classes.shape)} vs {list(scores.shape)}"
        )
    return Classification(classes, scores)


def _regression(values: np.ndarray, batch: int) -> np.ndarray:
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != batch:
        raise invalid_argument(
            f"Expected output Tensor shape to be either [{batch}] or [{batch}, 1] but got {list(values.shape)}"
        )
    return values


def _then(future: Future, fn) -> Future:
    """Chain a cheap post-processing step onto a future without taking a thread."""
    result: Future = Future()

    def done(source: Future) -> None:
        try:
            result.set_result(fn(source.result()))
        except BaseException as exc:  # noqa: BLE001 - forwarded to the awaiting protocol
            result.set_exception(from_exception(exc) if not isinstance(exc, ServingError) else exc)

    future.add_done_callback(done)
    return result
