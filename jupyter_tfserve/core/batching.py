"""Server-side request batching with TF Serving's ``BatchingParameters``, plus live batch statistics.

Many small requests cost a model server far more than a few large ones: a
matmul on 32 rows takes little longer than on one. The scheduler gathers the
rows of concurrent requests for the same (model, version, signature) into one
run of the model and hands each request exactly its own rows back.

Semantics follow TF Serving, because users bring their parameter files and
their intuitions from there:

* one queue per (model, version, signature), served by a shared pool of
  ``num_batch_threads`` workers;
* a batch closes when it is full (``max_batch_size`` rows; requests count
  their rows) or ``batch_timeout_micros`` after its first task. With the
  default timeout of 0 a worker takes the open batch as soon as it is free,
  so a lone client never waits; batches form by themselves while the workers
  are busy. The timeout is an upper bound on waiting, never a fixed delay;
* ``allowed_batch_sizes`` pads a batch to the next allowed size with copies
  of a real row (always a valid input), and the padding is sliced off the
  outputs before anyone sees it;
* with ``pad_variable_length_inputs`` the non-batch dimensions are padded to
  the longest request in the batch (with each tensor's first element);
  without it, requests whose non-batch shapes differ never share a batch;
* with ``enable_large_batch_splitting`` a request larger than the room left
  in the open batch is split across batches of ``max_execution_batch_size``
  and its outputs are put back together in order;
* when ``max_enqueued_batches`` are waiting, a request that needs a new batch
  is refused with UNAVAILABLE, TF Serving's wording (HTTP 503).

Which signatures are batched: those whose every input and output has a known
rank of at least one and an unknown (-1) leading dimension. That is the
signature's own promise that dimension 0 is the batch, so concatenating
requests along it and slicing the outputs back is sound. Anything else runs
unbatched, unchanged: a stateful signature such as a counter's
``incr_counter`` (output shape ``[1]``, one total per call), models with
fixed-size inputs, unknown ranks. The rule reads shapes, not intent: a
stateful signature that declares batch-shaped outputs is batched, as in TF
Serving.

One request never spoils another's batch. Inputs are validated (names,
dtypes) before they are enqueued; a request whose shapes do not fit the
signature's declared shape, or whose inputs disagree on their row count, runs
in a batch of its own, so it gets exactly the answer (or error) it would get
unbatched. If a merged run fails anyway (a malformed example in one request,
say) or returns outputs that do not split along dimension 0, each request of
that batch is re-run alone, and the error lands only on the request that
causes it.

Parameters come from ``--batching_parameters_file``, optionally per model from
``batching_params.pbtxt`` in the SavedModel directory
(``--enable_per_model_batching_parameters``), and can be replaced for a
running model (:meth:`BatchScheduler.set_parameters`): open batches are closed
and run as they are, queued requests are kept, new requests follow the new
parameters. The pool holds the server's ``num_batch_threads`` workers (more if
a model asks for more); a model's own value caps how many batches of each of
its queues run at once.

Queued requests hold their version (ref-counted handles), so an unload waits
until they have run: at most ``batch_timeout_micros`` plus the runs, never
forever; ``stop()`` runs every queued batch at once.

Statistics per model and signature (batch sizes, padding, queue wait vs
execution time, why batches closed, rows per second) are kept for the
management API (:meth:`BatchScheduler.stats`) and exported as TF Serving's
``batching_session`` Prometheus series.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import Future

import numpy as np

from .batching_params import PER_MODEL_FILE, BatchingOptions, load_batching_parameters
from .batching_stats import BatchStats
from .config import BatchingParameters
from .metrics import PREFIX
from .scheduling import mark_as_background_work
from .status import Code, ServingError, from_exception, invalid_argument, not_found

log = logging.getLogger(__name__)

SERIES = PREFIX + "batching_session:"
QUEUE_FULL = "The batch scheduling queue to which this task was submitted is full"
# TF Serving's buckets: batch and padding sizes 1, 2, 4 ... 8192; queuing latency 100 * 1.2^i us.
SIZE_BUCKETS = tuple(2.0**i for i in range(14))
QUEUING_BUCKETS_US = tuple(100 * 1.2**i for i in range(52))


# ---------------------------------------------------------------------- batchability
def is_batchable(signature) -> bool:
    """Every input and output declares a known rank >= 1 with an unknown leading (batch) dimension."""
    specs = [*signature.inputs.values(), *signature.outputs.values()]
    return bool(signature.inputs) and all(
        s.shape is not None and s.shape[:1] == (-1,) for s in specs
    )


def _declared_shapes(signature) -> tuple[tuple[str, int, tuple[int, ...]], ...]:
    """Each input's alias, rank and dimensions after the batch one (``-1``: any), read once per queue."""
    return tuple(
        (alias, len(spec.shape), tuple(spec.shape[1:])) for alias, spec in signature.inputs.items()
    )


def _fits_signature(declared, inputs: dict[str, np.ndarray]) -> int | None:
    """The request's row count when its shapes fit the ``declared`` ones and its inputs agree on rows, else None."""
    rows = None
    for alias, rank, inner in declared:
        shape = inputs[alias].shape
        if len(shape) != rank:
            return None
        if shape[1:] != inner and any(
            want not in (-1, got) for want, got in zip(inner, shape[1:], strict=True)
        ):
            return None
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            return None
    return rows or None


# ---------------------------------------------------------------------- tasks and batches
class BatchAnswer(dict):
    """One request's outputs (``{alias: its rows}``), and the batch's outputs they were cut from.

    The requests of a batch hold rows ``start:start + n`` of ``batch`` and share
    one ``memo``: an answer writer can write the whole batch once and cut each
    request's text from it, instead of paying its fixed cost per request for a
    few rows (32 one-row answers: one writer call instead of 32).
    """

    __slots__ = ("batch", "start", "memo")

    def __init__(self, rows: dict, batch: dict, start: int, memo: dict):
        super().__init__(rows)
        self.batch, self.start, self.memo = batch, start, memo


class _Split:
    """Puts a split request back together: its pieces' outputs, concatenated in order, or the first error."""

    __slots__ = ("future", "parts", "remaining", "lock", "started")

    def __init__(self, future: Future, pieces: int):
        self.future = future
        self.parts: list[dict | None] = [None] * pieces
        self.remaining = pieces
        self.lock = threading.Lock()
        self.started = False

    def claim(self) -> bool:
        with self.lock:
            if not self.started:
                self.started = True
                return self.future.set_running_or_notify_cancel()
            return not self.future.done()

    def deliver(self, index: int, outputs: dict | None, error: ServingError | None) -> None:
        with self.lock:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
                return
            self.parts[index] = outputs
            self.remaining -= 1
            if self.remaining:
                return
            parts = self.parts
        self.future.set_result({a: np.concatenate([p[a] for p in parts]) for a in parts[0]})


class _Task:
    """One request, or one piece of a split request, waiting in a batch."""

    __slots__ = ("inputs", "rows", "aliases", "future", "enqueued", "split", "index")

    def __init__(self, inputs, rows, aliases, future, enqueued, split=None, index=0):
        self.inputs = inputs
        self.rows = rows
        self.aliases = aliases
        self.future: Future = future
        self.enqueued = enqueued
        self.split: _Split | None = split
        self.index = index

    def claim(self) -> bool:
        """False when the caller gave up (cancelled) before the batch ran: its rows are dropped."""
        if self.split is not None:
            return self.split.claim()
        return self.future.set_running_or_notify_cancel()

    def deliver(self, outputs: dict | None, error: ServingError | None = None) -> None:
        if self.split is not None:
            self.split.deliver(self.index, outputs, error)
        elif error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(outputs)


class _Batch:
    __slots__ = ("tasks", "rows", "deadline", "shape_key", "reason")

    def __init__(self, shape_key, deadline: float):
        self.tasks: list[_Task] = []
        self.rows = 0
        self.deadline = deadline
        self.shape_key = shape_key
        self.reason = ""

    def add(self, task: _Task) -> None:
        self.tasks.append(task)
        self.rows += task.rows


class _Queue:
    """The batches of one (model, version, signature): open ones by input shape, closed ones in order."""

    def __init__(self, model_name, version, signature_name, servable, options, stats):
        self.model_name = model_name
        self.version = version
        self.signature_name = signature_name
        self.servable = servable
        self.signature = servable.signatures[signature_name]
        self.declared_shapes = _declared_shapes(self.signature)
        self.labels = {"model_name": model_name, "signature_name": signature_name}
        self.options: BatchingOptions = options
        self.stats: BatchStats = stats
        self.open: dict[tuple, _Batch] = {}
        self.ready: deque[_Batch] = deque()
        self.running = 0

    @property
    def idle(self) -> bool:
        return not (self.open or self.ready or self.running)

    def close(self, batch: _Batch, reason: str) -> None:
        del self.open[batch.shape_key]
        batch.reason = reason
        self.ready.append(batch)

    def close_all(self, reason: str) -> None:
        for batch in list(self.open.values()):
            self.close(batch, reason)


# ---------------------------------------------------------------------- the scheduler
class BatchScheduler:
    """Shared batch scheduler: the ``batcher`` of :class:`~jupyter_tfserve.core.inference.InferenceService`.

    ``parameters`` are the server-wide ``BatchingParameters``; ``per_model_parameters``
    reads ``batching_params.pbtxt`` next to each SavedModel instead, when present;
    ``manager`` (optional) lets the statistics API answer NOT_FOUND for unknown models
    and report the per-model file of the served version.
    """

    def __init__(
        self,
        parameters: BatchingParameters | None = None,
        *,
        metrics=None,
        manager=None,
        per_model_parameters: bool = False,
    ):
        self.default_options = BatchingOptions.from_proto(parameters)
        self.metrics = metrics
        self.manager = manager
        self.per_model_parameters = per_model_parameters
        self._cond = threading.Condition(threading.Lock())
        self._queues: dict[tuple[str, int, str], _Queue] = {}
        self._batchable: dict[tuple[str, int, str], bool] = {}
        self._model_files: dict[tuple[str, int], BatchingOptions | None] = {}
        self._overrides: dict[str, BatchingOptions] = {}
        self._stats: dict[tuple[str, str], BatchStats] = {}
        self._workers: list[threading.Thread] = []
        self._sleepers: dict[int, float] = {}  # idle workers: when each wakes up by itself
        self._woken = 0  # sleepers notified that have not run yet
        self._turn = 0
        self._stopping = False

    # ------------------------------------------------------------------ InferenceService interface
    def applies(self, handle, signature_name: str) -> bool:
        key = (handle.model_name, handle.version, signature_name)
        batchable = self._batchable.get(key)
        if batchable is None:
            batchable = is_batchable(handle.servable.signatures[signature_name])
            self._batchable[key] = batchable
        return batchable

    def submit(self, handle, signature_name: str, inputs: dict[str, np.ndarray], aliases) -> Future:
        """Enqueue one validated request; the future resolves to ``{alias: ndarray}`` for its rows only."""
        future: Future = Future()
        now = time.perf_counter()
        with self._cond:
            if self._stopping:
                raise ServingError(Code.UNAVAILABLE, "The batch scheduler is shutting down")
            queue = self._queue(handle, signature_name)
            rows = _fits_signature(queue.declared_shapes, inputs)
            if rows is None:
                rows = _leading(inputs)
                wake = self._enqueue_alone(queue, _Task(inputs, rows, aliases, future, now))
            else:
                wake = self._enqueue(queue, inputs, rows, aliases, future, now)
            queue.stats.queued_rows += rows
            self._start_workers(queue.options.num_batch_threads)
            # Wake a sleeping worker only when it has something to do sooner than it planned:
            # a wake-up per request would hand the core to a worker with nothing to run. A
            # worker woken stays listed until it runs, so it is not woken again per request.
            sleepers = self._sleepers
            if wake is not None and len(sleepers) > self._woken and wake < min(sleepers.values()):
                self._woken += 1
                self._cond.notify()
        return future

    # ------------------------------------------------------------------ enqueueing (lock held)
    def _queue(self, handle, signature_name: str) -> _Queue:
        key = (handle.model_name, handle.version, signature_name)
        queue = self._queues.get(key)
        if queue is None:
            # Versions come and go; forget the idle queues of versions no longer asked for.
            for other_key, other in list(self._queues.items()):
                if other_key[0] == key[0] and other_key[1] != key[1] and other.idle:
                    del self._queues[other_key]
                    self._batchable.pop(other_key, None)
            stats = self._stats.setdefault((key[0], signature_name), BatchStats())
            options = self._options_for(handle.model_name, handle.version)
            queue = self._queues[key] = _Queue(*key, handle.servable, options, stats)
        return queue

    def _enqueue_alone(self, queue: _Queue, task: _Task) -> float:
        """A request that cannot share a batch runs in one of its own, behind those already waiting."""
        self._check_room(queue, 1)
        batch = _Batch(None, 0.0)
        batch.add(task)
        batch.reason = "alone"
        queue.ready.append(batch)
        return task.enqueued

    def _enqueue(self, queue: _Queue, inputs, rows, aliases, future, now) -> float | None:
        """Add a request to its open batch(es); returns when a worker should next look, if that changed."""
        options = queue.options
        if rows > options.max_batch_size:
            raise invalid_argument(
                f"Task size {rows} is larger than maximum input batch size {options.max_batch_size}"
            )
        if options.pad_variable_length_inputs:
            shape_key = tuple(a.ndim for a in inputs.values())
        else:
            shape_key = tuple(a.shape[1:] for a in inputs.values())
        capacity = options.batch_capacity
        current = queue.open.get(shape_key)
        room = capacity - current.rows if current is not None else 0
        if rows <= room:
            pieces = [(0, rows)]
        elif options.enable_large_batch_splitting and room:
            pieces = [(0, room), *_chunks(room, rows, capacity)]
            self._check_room(queue, len(pieces) - 1)
        else:
            # No room left in the open batch: it closes, the request starts the next one(s).
            pieces = _chunks(0, rows, capacity)
            self._check_room(queue, len(pieces))
            if current is not None:
                queue.close(current, "full")
        if len(pieces) == 1:
            tasks = [_Task(inputs, rows, aliases, future, now)]
        else:
            split = _Split(future, len(pieces))
            tasks = [
                _Task({k: v[a:b] for k, v in inputs.items()}, b - a, aliases, future, now, split, i)
                for i, (a, b) in enumerate(pieces)
            ]
        deadline = now + options.batch_timeout_micros / 1e6
        ready, wake = len(queue.ready), None
        for task in tasks:
            batch = queue.open.get(shape_key)
            if batch is None:
                batch = queue.open[shape_key] = _Batch(shape_key, deadline)
                wake = deadline
            batch.add(task)
            if batch.rows >= capacity:
                queue.close(batch, "full")
        return now if len(queue.ready) > ready else wake

    def _check_room(self, queue: _Queue, new_batches: int) -> None:
        if len(queue.ready) + len(queue.open) + new_batches > queue.options.max_enqueued_batches:
            raise ServingError(Code.UNAVAILABLE, QUEUE_FULL)

    # ------------------------------------------------------------------ workers
    def _start_workers(self, wanted: int) -> None:
        wanted = max(wanted, self.default_options.num_batch_threads)
        while len(self._workers) < wanted:
            worker = threading.Thread(
                target=self._work, name=f"tfserve-batch-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()

    def _work(self) -> None:
        mark_as_background_work()
        while True:
            with self._cond:
                while True:
                    queue, batch, wait = self._take(time.perf_counter())
                    if batch is not None:
                        queue.running += 1
                        queue.stats.queued_rows -= batch.rows
                        break
                    if self._stopping and wait is None:
                        return
                    me = threading.get_ident()
                    self._sleepers[me] = math.inf if wait is None else time.perf_counter() + wait
                    self._cond.wait(wait)
                    del self._sleepers[me]
                    self._woken = max(0, self._woken - 1)
            try:
                self._execute(queue, batch)
            except BaseException as exc:  # noqa: BLE001 - never strand a request
                log.exception("batch of %s failed unexpectedly", queue.model_name)
                error = from_exception(exc)
                for task in batch.tasks:
                    if not task.future.done():
                        task.deliver(None, error)
            finally:
                with self._cond:
                    capped = queue.running >= queue.options.num_batch_threads
                    queue.running -= 1
                    if capped and (queue.ready or queue.open):
                        self._cond.notify()  # this queue's work waits for a free slot, not a worker

    def _take(self, now: float):
        """The next batch to run, round-robin over queues; else how long to wait for a deadline."""
        queues = list(self._queues.values())
        wait = None
        for i in range(len(queues)):
            queue = queues[(self._turn + i) % len(queues)]
            if queue.running >= queue.options.num_batch_threads:
                continue
            if not queue.ready:
                for batch in list(queue.open.values()):
                    if self._stopping:
                        queue.close(batch, "shutdown")
                    elif batch.deadline <= now:
                        queue.close(batch, "timeout")
                    else:
                        wait = (
                            batch.deadline - now
                            if wait is None
                            else min(wait, batch.deadline - now)
                        )
            if queue.ready:
                self._turn = (self._turn + i + 1) % len(queues)
                return queue, queue.ready.popleft(), None
        return None, None, wait

    # ------------------------------------------------------------------ running a batch
    def _execute(self, queue: _Queue, batch: _Batch) -> None:
        started = time.perf_counter()
        tasks = [t for t in batch.tasks if t.claim()]
        if not tasks:
            return
        options = queue.options
        rows = sum(t.rows for t in tasks)
        size = options.padded_size(rows) if batch.shape_key is not None else rows
        padding = size - rows
        aliases = _union_aliases(tasks)
        if len(tasks) == 1 and padding == 0:
            inputs = tasks[0].inputs
        else:
            inputs = _merge(queue.signature, tasks, padding, options.pad_variable_length_inputs)
        outputs, error = self._run(queue, inputs, aliases)
        finished = time.perf_counter()
        waits = [started - t.enqueued for t in tasks]
        # Statistics first: a client that reads them after its answer finds its request counted,
        # and the worker goes back to sleep as soon as the answers are out.
        queue.stats.record(batch.reason, rows, padding, waits, finished - started, finished)
        if self.metrics is not None:
            self._export(queue, tasks, waits, size, padding)
        if len(tasks) == 1 and padding == 0 and tasks[0].split is None:
            tasks[0].deliver(outputs, error)
        elif error is None and all(v.ndim >= 1 and v.shape[0] == size for v in outputs.values()):
            start, memo = 0, {}
            for task in tasks:
                stop = start + task.rows
                wanted = task.aliases or outputs.keys()
                task.deliver(
                    BatchAnswer({a: outputs[a][start:stop] for a in wanted}, outputs, start, memo)
                )
                start = stop
        else:
            self._rerun_alone(queue, tasks, error)

    def _run(self, queue: _Queue, inputs, aliases):
        started = time.perf_counter()
        try:
            return queue.servable.run(queue.signature_name, inputs, aliases), None
        except Exception as exc:  # noqa: BLE001 - delivered to the requests
            return None, from_exception(exc)
        finally:
            if self.metrics is not None:
                self.metrics.observe_runtime(queue.model_name, time.perf_counter() - started)
                self.metrics.inc(
                    SERIES + "wrapped_run_count",
                    queue.labels,
                    doc="Total count of run calls on the wrapped session",
                )

    def _rerun_alone(self, queue: _Queue, tasks: list[_Task], error: ServingError | None) -> None:
        """The merged run failed or did not split: each request runs by itself, so errors stay its own."""
        if error is not None:
            log.info(
                "batch of %d requests to %s failed (%s); running them one by one",
                len(tasks),
                queue.model_name,
                error.message,
            )
        with queue.stats.lock:
            queue.stats.reruns += 1
        for task in tasks:
            outputs, task_error = self._run(queue, task.inputs, task.aliases)
            if task_error is None and task.split is not None:
                if not all(v.ndim >= 1 and v.shape[0] == task.rows for v in outputs.values()):
                    task_error = ServingError(
                        Code.FAILED_PRECONDITION,
                        "Batched output tensor's 0th dimension does not equal the sum of the "
                        "0th dimension sizes of the input tensors",
                    )
            task.deliver(outputs, task_error)

    def _export(self, queue, tasks, waits, size, padding) -> None:
        """TF Serving's ``batching_session`` series, labelled with the model and signature."""
        metrics, labels = self.metrics, queue.labels
        queuing = {**labels, "thread_pool_name": queue.options.thread_pool_name}
        metrics.observe_all(
            SERIES + "queuing_latency",
            queuing,
            [w * 1e6 for w in waits],
            buckets=QUEUING_BUCKETS_US,
            doc="Distribution of wall time spent (in microseconds) in queuing",
        )
        metrics.observe_all(
            SERIES + "input_batch_size",
            labels,
            [t.rows for t in tasks],
            buckets=SIZE_BUCKETS,
            doc="Tracks the batch size distribution on the inputs.",
        )
        metrics.observe(
            SERIES + "processed_batch_size",
            labels,
            size,
            buckets=SIZE_BUCKETS,
            doc="Tracks the batch size distribution on processing.",
        )
        metrics.observe(
            SERIES + "padding_size",
            {**labels, "execution_batch_size": str(size)},
            padding,
            buckets=SIZE_BUCKETS,
            doc="Tracks the padding size distribution on batches.",
        )

    # ------------------------------------------------------------------ parameters
    def prepare(self, model_name: str, version: int, path: str) -> None:
        """Read and validate a version's ``batching_params.pbtxt`` when it loads (a bad file fails the load).

        Called from the loader thread, so requests never wait on file I/O.
        """
        options = None
        file = os.path.join(path, PER_MODEL_FILE)
        if self.per_model_parameters and os.path.exists(file):
            options = BatchingOptions.from_proto(load_batching_parameters(file))
        with self._cond:
            self._model_files[(model_name, version)] = options

    def _options_for(self, model_name: str, version: int) -> BatchingOptions:
        override = self._overrides.get(model_name)
        if override is not None:
            return override
        return self._model_files.get((model_name, version)) or self.default_options

    def _source(self, model_name: str) -> tuple[str, BatchingOptions]:
        if model_name in self._overrides:
            return "override", self._overrides[model_name]
        versions = [v for name, v in self._model_files if name == model_name]
        options = self._model_files[(model_name, max(versions))] if versions else None
        if options is not None:
            return PER_MODEL_FILE, options
        return "server", self.default_options

    def parameters(self, model_name: str) -> dict:
        """The model's effective parameters (defaults filled in) and where they come from."""
        self._check_model(model_name)
        with self._cond:
            source, options = self._source(model_name)
        return {"source": source, **options.to_json()}

    def set_parameters(self, model_name: str, parameters: BatchingParameters | None) -> dict:
        """Replace a running model's parameters (``None``: back to its file or the server's).

        Invalid parameters raise INVALID_ARGUMENT and change nothing. Open batches close
        and run as they are; every queued request is kept.
        """
        self._check_model(model_name)
        options = BatchingOptions.from_proto(parameters) if parameters is not None else None
        with self._cond:
            if options is None:
                self._overrides.pop(model_name, None)
            else:
                self._overrides[model_name] = options
            for (name, version, _), queue in self._queues.items():
                if name == model_name:
                    queue.options = self._options_for(name, version)
                    queue.close_all("reconfigured")
                    self._start_workers(queue.options.num_batch_threads)
            self._cond.notify_all()
        return self.parameters(model_name)

    # ------------------------------------------------------------------ statistics
    def stats(self, model_name: str) -> dict:
        """JSON-ready live statistics of one model, per signature, with its effective parameters."""
        parameters = self.parameters(model_name)
        now = time.perf_counter()
        with self._cond:
            stats = {sig: s for (name, sig), s in self._stats.items() if name == model_name}
        return {
            "model_name": model_name,
            "parameters": parameters,
            "signatures": {sig: s.snapshot(now) for sig, s in sorted(stats.items())},
        }

    def _check_model(self, model_name: str) -> None:
        if self.manager is not None and model_name not in self.manager.model_names():
            raise not_found(f"Model {model_name} is not being served")

    # ------------------------------------------------------------------ lifecycle
    def stop(self, timeout: float = 30.0) -> None:
        """Run every queued batch now (timeouts no longer wait), then join the workers."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            workers = list(self._workers)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


def _leading(inputs: dict[str, np.ndarray]) -> int:
    first = next(iter(inputs.values()))
    return first.shape[0] if first.ndim else 1


def _chunks(start: int, stop: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, stop)) for a in range(start, stop, size)]


def _union_aliases(tasks: list[_Task]) -> list[str] | None:
    """The outputs the batch must compute: every alias some request asked for (None: all)."""
    if any(t.aliases is None for t in tasks):
        return None
    return list(dict.fromkeys(a for t in tasks for a in t.aliases))


def _merge(signature, tasks: list[_Task], padding: int, pad_lengths: bool) -> dict[str, np.ndarray]:
    """Concatenate the requests' rows; pad variable lengths and the batch size with valid values."""
    merged = {}
    for alias in signature.inputs:
        arrays = [t.inputs[alias] for t in tasks]
        if pad_lengths:
            dims = tuple(max(dim) for dim in zip(*(a.shape[1:] for a in arrays), strict=True))
            arrays = [_pad_lengths(a, dims) for a in arrays]
        if padding:
            # Copies of a real row: always a valid input, whatever the model parses.
            arrays.append(np.repeat(arrays[-1][:1], padding, axis=0))
        merged[alias] = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    return merged


def _pad_lengths(array: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    if array.shape[1:] == dims:
        return array
    fill = array.flat[0] if array.size else np.zeros((), array.dtype)[()]
    padded = np.full((array.shape[0], *dims), fill, dtype=array.dtype)
    padded[tuple(slice(0, n) for n in array.shape)] = array
    return padded
