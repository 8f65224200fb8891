"""Request logging as TF Serving specifies it: ``ModelConfig.logging_config``, ``PredictionLog`` TFRecords.

A model's ``logging_config`` (``log_collector_config { type filename_prefix }
sampling_config { sampling_rate }``) is read from ``models.config`` exactly as
TF Serving spells it. TF Serving's open-source build registers no collector;
here the type ``"tfrecord"`` writes TFRecord files of ``PredictionLog``, the
record type of its warmup file, so a log can be read with
``tf.data.TFRecordDataset``, replayed, or turned into a warmup file.

What a request pays: a dict lookup and a random draw (the sample decision)
and, when sampled, one append to a bounded deque from the future's
done-callback: no lock, and no wake-up unless the writer sleeps. The request
and response arrays are kept by reference; encoding (``log_records``), framing
(``tfrecord``) and writing happen on one background thread per log, which
wakes once per burst of records, writes the burst with one flush and counts
it with one metric update. When that thread falls behind (a slow disk) the
queue fills and records are *dropped and counted*, never waited for; a write
that fails (full disk, removed folder) is logged once per run of failures and
counted, and the request it describes has long been answered.

Errors are logged too. A failed request's record has its request and no
response; its status goes in field 1000 of the record, a
``jupyter_tfserve.LoggedOutcome`` (status code and message, latency, a
microsecond timestamp) that TF Serving's ``PredictionLog`` does not declare.
Protobuf parsers skip undeclared fields, so TF Serving's readers (its warmup
reader included) parse every record; :func:`read_records` gets the outcome by
parsing the same bytes as a :class:`LoggedRecord`.

Files are ``{filename_prefix}-{UTC time}-{pid}-{sequence}.tfrecord``, so
``{filename_prefix}*`` finds a model's logs; they rotate by size and age.
"""

from __future__ import annotations

import glob
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from tensorflow_serving.apis import prediction_log_pb2

from .extra_protos import build_messages
from .log_records import (
    CLASSIFY,
    MULTI_INFERENCE,
    OUTCOME_FIELD,
    PREDICT,
    REGRESS,
    Logged,
    metadata_fields,
    serialize,
)
from .status import Code, ServingError, from_exception, invalid_argument
from .tfrecord import FRAMING_BYTES, TFRecordSink

log = logging.getLogger(__name__)

LOG_COUNT = ":tensorflow:serving:request_log_count"
DEFAULT_QUEUE_SIZE = 1024
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FILE_SECONDS = 3600.0
FILE_SUFFIX = ".tfrecord"
GATHER_SECONDS = 0.005  # the writer wakes once per burst: what arrives meanwhile costs no wake-up

_F = descriptor_pb2.FieldDescriptorProto
_CLASSES = build_messages(
    "jupyter_tfserve/request_log.proto",
    "jupyter_tfserve",
    {
        "LoggedOutcome": [
            ("error_code", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
            ("error_message", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
            ("latency_micros", 3, _F.TYPE_INT64, _F.LABEL_OPTIONAL, None),
            ("timestamp_micros", 4, _F.TYPE_INT64, _F.LABEL_OPTIONAL, None),
        ],
        # The same bytes as a PredictionLog, seen through the one field it adds.
        "LoggedRecord": [
            (
                "outcome",
                OUTCOME_FIELD,
                _F.TYPE_MESSAGE,
                _F.LABEL_OPTIONAL,
                ".jupyter_tfserve.LoggedOutcome",
            ),
        ],
    },
)
LoggedOutcome = _CLASSES["LoggedOutcome"]
LoggedRecord = _CLASSES["LoggedRecord"]


# ---------------------------------------------------------------------- collectors
SinkFactory = Callable[[str], object]  # path -> object with write(bytes), flush(), close()
_COLLECTORS: dict[str, SinkFactory] = {"tfrecord": TFRecordSink}


def register_collector(type_name: str, factory: SinkFactory) -> None:
    """Make ``log_collector_config { type: "<type_name>" }`` write through ``factory(path)``.

    TF Serving's ``LogCollector::RegisterFactory`` in Python: a deployment can
    send records elsewhere (or, in tests, to a sink that blocks like a slow disk).
    """
    _COLLECTORS[type_name] = factory


def collector_types() -> list[str]:
    return sorted(_COLLECTORS)


def validate_logging_config(model_name: str, config) -> None:
    """A model's ``logging_config`` is refused when the server could not honour it."""
    rate = config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
        raise invalid_argument(
            f"Model {model_name}: sampling_rate must be between 0 and 1; got {rate}"
        )
    if not config.HasField("log_collector_config"):
        if config.sampling_config.sampling_rate:
            raise invalid_argument(
                f"Model {model_name}: logging_config has no log_collector_config"
            )
        return
    collector = config.log_collector_config
    if collector.type not in _COLLECTORS:
        raise invalid_argument(
            f"Model {model_name}: unknown log collector type {collector.type!r} in logging_config; "
            f"known types: {', '.join(collector_types())}"
        )
    if not collector.filename_prefix:
        raise invalid_argument(f"Model {model_name}: log_collector_config needs a filename_prefix")
    if not os.path.isabs(collector.filename_prefix):
        raise invalid_argument(
            f"Model {model_name}: filename_prefix must be an absolute path; got {collector.filename_prefix}"
        )


class ModelLog:
    """One model's logging: its sampling rate and its writer. Callers on the request path use ``watch``."""

    def __init__(self, model_name: str, config, writer: _Writer):
        self.model_name = model_name
        self.config = config
        self.rate = config.sampling_config.sampling_rate
        self.writer = writer

    def sampled(self) -> bool:
        rate = self.rate
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)

    def watch(self, kind: str, target, request, run: Callable[[], object]):
        """Call ``run()`` (which returns a future) and log the request when its answer (or error) is known."""
        name, version, signature = target.model_name, target.version, target.signature.name
        timestamp, started = time.time(), time.perf_counter()
        try:
            future = run()
        except Exception as exc:
            self.record(kind, name, version, signature, request, None, exc, timestamp, started)
            raise

        def done(f) -> None:
            try:
                error = f.exception()
            except CancelledError:
                error = ServingError(Code.CANCELLED, "Cancelled by the client")
            result = None if error is not None else f.result()
            self.record(kind, name, version, signature, request, result, error, timestamp, started)

        future.add_done_callback(done)
        return future

    def call(self, kind: str, name: str, version: int, request, fn: Callable[[], object]):
        """Run ``fn()`` here and log ``request`` with its result (a request that is one proto in, one out)."""
        timestamp, started = time.time(), time.perf_counter()
        try:
            result = fn()
        except Exception as exc:
            self.record(kind, name, version, "", request, None, exc, timestamp, started)
            raise
        self.record(kind, name, version, "", request, result, None, timestamp, started)
        return result

    def record(
        self, kind, name, version, signature, request, result, error, timestamp, started
    ) -> None:
        if error is not None and not isinstance(error, ServingError):
            error = from_exception(error)
        self.writer.offer(
            Logged(
                kind,
                name,
                version,
                signature,
                request,
                result,
                error,
                timestamp,
                time.perf_counter() - started,
            )
        )


class RequestLogger:
    """Every model's ``logging_config``, applied on each config the manager realizes."""

    def __init__(
        self,
        metrics=None,
        *,
        saved_model_tags: tuple[str, ...] = ("serve",),
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_file_seconds: float = DEFAULT_MAX_FILE_SECONDS,
    ):
        self.metrics = metrics
        self.saved_model_tags = tuple(saved_model_tags)
        self.queue_size = queue_size
        self.max_file_bytes = max_file_bytes
        self.max_file_seconds = max_file_seconds
        self._logs: dict[str, ModelLog] = {}
        self._lock = threading.Lock()

    def sample(self, model_name: str) -> ModelLog | None:
        """The request path's whole cost when not sampled: a lookup and a random draw."""
        model_log = self._logs.get(model_name)
        if model_log is None or not model_log.sampled():
            return None
        return model_log

    def configure(self, config) -> None:
        """Apply the ``logging_config`` of every model in a ModelServerConfig (a live change keeps the files)."""
        with self._lock:
            current = self._logs
            logs: dict[str, ModelLog] = {}
            for model in config.model_config_list.config:
                if not model.logging_config.HasField("log_collector_config"):
                    continue
                collector = model.logging_config.log_collector_config
                previous = current.get(model.name)
                if previous is not None and previous.writer.collector == (
                    collector.type,
                    collector.filename_prefix,
                ):
                    writer = previous.writer
                else:
                    writer = _Writer(model.name, collector.type, collector.filename_prefix, self)
                logs[model.name] = ModelLog(model.name, _copy(model.logging_config), writer)
            self._logs = logs
        kept = {id(m.writer) for m in logs.values()}
        for model_log in current.values():
            if id(model_log.writer) not in kept:
                model_log.writer.close()

    def status(self, model_name: str) -> dict:
        """Whether and how a model logs, and its records so far (management API, panel)."""
        model_log = self._logs.get(model_name)
        if model_log is None:
            return {"enabled": False, "sampling_rate": 0.0, "type": "", "filename_prefix": ""}
        collector = model_log.config.log_collector_config
        counts = {s: int(self._count(model_name, s)) for s in ("written", "dropped", "failed")}
        return {
            "enabled": model_log.rate > 0,
            "sampling_rate": model_log.rate,
            "type": collector.type,
            "filename_prefix": collector.filename_prefix,
            "records": counts,
        }

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued so far is written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        return all(
            m.writer.drain(max(0.0, deadline - time.monotonic())) for m in list(self._logs.values())
        )

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            logs, self._logs = self._logs, {}
        for model_log in logs.values():
            model_log.writer.close(timeout)

    def _count(self, model_name: str, status: str) -> float:
        if self.metrics is None:
            return 0.0
        return self.metrics.counter_value(LOG_COUNT, {"model_name": model_name, "status": status})

    def _inc(self, model_name: str, status: str, count: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.inc(
                LOG_COUNT,
                {"model_name": model_name, "status": status},
                count,
                doc="Sampled requests written to the request log, dropped (queue full) or failed (write error).",
            )


_STOP = object()


class _Writer:
    """A bounded queue and the thread that drains it, a burst at a time, into rotating files of one collector.

    The queue is a ``deque``: appends from request threads and pops here are
    atomic without a lock. The thread sleeps on an event only when the queue
    is empty, and a request sets it only then; once awake it waits
    ``GATHER_SECONDS`` for more records, so a busy server pays one wake-up
    and one flush per burst, not per record.
    """

    def __init__(self, model_name: str, type_name: str, prefix: str, logger: RequestLogger):
        self.model_name = model_name
        self.collector = (type_name, prefix)
        self._factory = _COLLECTORS[type_name]
        self._prefix = prefix
        self._logger = logger
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._sleeping = False
        self._sink = None
        self._opened_at = 0.0
        self._bytes = 0
        self._sequence = 0
        self._failing = False
        directory = os.path.dirname(prefix)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            log.error("Request log of model %s: cannot create %s: %s", model_name, directory, exc)
        self._thread = threading.Thread(
            target=self._run, name=f"tfserve-log-{model_name}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ request path
    def offer(self, item: Logged) -> None:
        # Several threads may pass the check at once: the bound is exceeded by at most their number.
        if len(self._queue) >= self._logger.queue_size:
            self._logger._inc(self.model_name, "dropped")
            return
        self._enqueue(item)

    def _enqueue(self, item) -> None:
        self._queue.append(item)
        if self._sleeping:  # read after the append: the writer sets it before its last look
            self._wake.set()

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._sleeping = True
                if not queue:
                    self._wake.wait()
                self._sleeping = False
                self._wake.clear()
            time.sleep(GATHER_SECONDS)
            burst = [queue.popleft() for _ in range(len(queue))]
            if not self._write_burst(burst):
                break
        self._close_sink()

    def _write_burst(self, burst: list) -> bool:
        """Write, flush and count a burst; release the ``drain`` calls in it. False once told to stop."""
        metadata = self._metadata()
        written = failed = 0
        waiters, running = [], True
        for item in burst:
            if item is _STOP:
                running = False
            elif isinstance(item, threading.Event):
                waiters.append(item)
            elif self._write(item, metadata):
                written += 1
            else:
                failed += 1
        self._flush()
        # Counted once flushed: a record counted "written" is readable from the file.
        if written:
            self._logger._inc(self.model_name, "written", written)
        if failed:
            self._logger._inc(self.model_name, "failed", failed)
        for waiter in waiters:
            waiter.set()
        return running

    def _metadata(self) -> bytes:
        model_log = self._logger._logs.get(self.model_name)
        sampling_config = model_log.config.sampling_config if model_log is not None else None
        return metadata_fields(sampling_config, self._logger.saved_model_tags)

    def _write(self, item: Logged, metadata: bytes) -> bool:
        """Encode and write one record; whether it was written."""
        try:
            record = serialize(item, metadata)
        except Exception:  # a bug, not the disk: say so, keep serving
            log.exception("Request log of model %s: cannot encode a record", self.model_name)
            return False
        try:
            self._rotate(len(record))
            self._sink.write(record)
        except Exception as exc:  # noqa: BLE001 - full disk, removed folder, closed pipe: count, go on
            if not self._failing:
                self._failing = True
                log.error(
                    "Request log of model %s: cannot write under %s: %s",
                    self.model_name,
                    self._prefix,
                    exc,
                )
            self._close_sink()
            return False
        self._bytes += len(record) + FRAMING_BYTES
        if self._failing:
            self._failing = False
            log.info("Request log of model %s writes to %s again", self.model_name, self._prefix)
        return True

    def _rotate(self, size: int) -> None:
        now = time.time()
        if self._sink is not None and (
            self._bytes + size > self._logger.max_file_bytes
            or now - self._opened_at >= self._logger.max_file_seconds
        ):
            self._close_sink()
        if self._sink is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            path = f"{self._prefix}-{stamp}-{os.getpid()}-{self._sequence:05d}{FILE_SUFFIX}"
            self._sequence += 1
            self._sink = self._factory(path)
            self._opened_at, self._bytes = now, 0

    def _flush(self) -> None:
        if self._sink is None:
            return
        try:
            self._sink.flush()
        except Exception as exc:  # noqa: BLE001
            log.error(
                "Request log of model %s: cannot flush under %s: %s",
                self.model_name,
                self._prefix,
                exc,
            )
            self._close_sink()

    def _close_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "Request log of model %s: cannot close a file under %s: %s",
                    self.model_name,
                    self._prefix,
                    exc,
                )

    # ------------------------------------------------------------------ control
    def drain(self, timeout: float) -> bool:
        """Wait until every record queued before this call is written (or failed)."""
        if not self._thread.is_alive():
            return not self._queue
        written = threading.Event()
        self._enqueue(written)  # past the bound: a marker, not a record
        return written.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, close the file; a writer stuck on a dead disk is left behind (daemon)."""
        self._enqueue(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error(
                "Request log of model %s: writer stuck; %d records not written",
                self.model_name,
                len(self._queue),
            )


# ---------------------------------------------------------------------- reading
@dataclass
class Record:
    """One logged request: the PredictionLog and what TF Serving's record has no field for."""

    log: prediction_log_pb2.PredictionLog
    code: Code
    message: str
    latency: float  # seconds
    timestamp: float  # seconds since the epoch (microsecond precision)
    path: str

    @property
    def kind(self) -> str:
        return self.log.WhichOneof("log_type") or ""

    @property
    def ok(self) -> bool:
        return self.code == Code.OK


def log_files(pattern: str) -> list[str]:
    """The files a prefix or glob names (``/logs/mnist`` or ``/logs/mnist*``), oldest first."""
    matches = glob.glob(pattern if glob.has_magic(pattern) else pattern + "*")
    return sorted((p for p in matches if os.path.isfile(p)), key=lambda p: (os.path.getmtime(p), p))


def read_records(pattern: str) -> Iterator[Record]:
    """Every record in the files ``pattern`` names, in file order.

    A file still being written may end in a partial record; reading stops at
    it and goes on with the next file.
    """
    import tensorflow as tf

    for path in log_files(pattern):
        try:
            for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
                yield parse_record(raw, path)
        except tf.errors.DataLossError:
            log.debug("%s ends in a partial record", path)


def warmup_sample(pattern: str, count: int, seed: int = 0) -> list:
    """Up to ``count`` successful logged requests, spread over the log, as warmup records.

    Each keeps its request only: no response, metadata or outcome field, as
    TF Serving's warmup files are written.
    """
    requests = []
    for record in read_records(pattern):
        if record.ok and record.kind:
            entry = getattr(record.log, record.kind)
            warm = prediction_log_pb2.PredictionLog()
            getattr(warm, record.kind).request.CopyFrom(entry.request)
            requests.append(warm)
    if len(requests) > count:
        picked = sorted(random.Random(seed).sample(range(len(requests)), count))
        requests = [requests[i] for i in picked]
    return requests


def parse_record(raw: bytes, path: str = "") -> Record:
    record = prediction_log_pb2.PredictionLog.FromString(raw)
    outcome = LoggedRecord.FromString(raw).outcome
    timestamp = (
        outcome.timestamp_micros / 1e6
        if outcome.timestamp_micros
        else float(record.log_metadata.timestamp_secs)
    )
    return Record(
        log=record,
        code=Code(outcome.error_code),
        message=outcome.error_message,
        latency=outcome.latency_micros / 1e6,
        timestamp=timestamp,
        path=path,
    )


def _copy(message):
    out = type(message)()
    out.CopyFrom(message)
    return out


__all__ = [
    "CLASSIFY",
    "MULTI_INFERENCE",
    "PREDICT",
    "REGRESS",
    "LoggedOutcome",
    "LoggedRecord",
    "ModelLog",
    "Record",
    "RequestLogger",
    "TFRecordSink",
    "collector_types",
    "log_files",
    "parse_record",
    "read_records",
    "warmup_sample",
    "register_collector",
    "validate_logging_config",
]
