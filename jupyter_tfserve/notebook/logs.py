"""``read_logs``: a model's request log (TF Serving's ``PredictionLog`` records) as a pandas DataFrame.

One row per logged request, newest last: when it came, which version
answered, which signature ran, how long the inference service took, its
status, and one-line summaries of its inputs and outputs (name, dtype, shape
and the first values), so a notebook can filter, group and plot traffic
without touching protos. The record itself stays in the ``record`` column
for anything the summaries leave out.
"""

from __future__ import annotations

import time

import numpy as np

from ..bench.options import parse_duration
from ..core import request_log, tensors

COLUMNS = [
    "time",
    "model",
    "version",
    "signature",
    "api",
    "latency_ms",
    "status",
    "message",
    "inputs",
    "outputs",
]
_VALUES_SHOWN = 4


def read_logs(prefix: str, *, since=None, limit: int | None = None):
    """The records under ``prefix`` (``/logs/mnist`` or a glob ``/logs/mnist*``) as a DataFrame.

    ``since``: a duration back from now (``"90s"``, ``"10m"``, seconds) or a
    timestamp; ``limit``: the most recent N records.
    """
    import pandas as pd

    cutoff = _cutoff(since)
    rows = []
    for record in request_log.read_records(prefix):
        if cutoff is not None and record.timestamp < cutoff:
            continue
        rows.append(_row(record))
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "record"])
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    if limit is not None:
        frame = frame.tail(int(limit)).reset_index(drop=True)
    return frame


def _cutoff(since) -> float | None:
    if since is None:
        return None
    if hasattr(since, "timestamp"):  # datetime, pandas Timestamp
        return since.timestamp()
    return time.time() - parse_duration(since, what="since")


def _row(record: request_log.Record) -> list:
    log = record.log
    spec = log.log_metadata.model_spec
    kind = record.kind
    entry = getattr(log, kind) if kind else None
    inputs = outputs = ""
    if kind == "predict_log":
        inputs = _tensors(entry.request.inputs)
        outputs = _tensors(entry.response.outputs)
    elif kind in ("classify_log", "regress_log", "multi_inference_log"):
        inputs = f"{len(tensors.input_to_serialized_examples(entry.request.input))} examples"
        outputs = _results(kind, entry.response) if entry.HasField("response") else ""
    return [
        record.timestamp,
        spec.name,
        spec.version.value,
        spec.signature_name,
        kind.removesuffix("_log"),
        record.latency * 1e3,
        record.code.name,
        record.message,
        inputs,
        outputs,
        log,
    ]


def _tensors(protos) -> str:
    parts = []
    for alias in sorted(protos):
        array = tensors.tensor_proto_to_ndarray(protos[alias])
        parts.append(f"{alias}: {_describe(array)}")
    return "; ".join(parts)


def _describe(array: np.ndarray) -> str:
    flat = array.reshape(-1)[:_VALUES_SHOWN].tolist()
    shown = ", ".join(_value(v) for v in flat) + (", ..." if array.size > _VALUES_SHOWN else "")
    dtype = "string" if array.dtype == object else str(array.dtype)
    return f"{dtype}{list(array.shape)} [{shown}]"


def _value(value) -> str:
    if isinstance(value, bytes):
        return repr(value[:16])
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _results(kind: str, response) -> str:
    if kind == "classify_log":
        first = (
            response.result.classifications[0].classes if response.result.classifications else []
        )
        return f"{len(response.result.classifications)} classifications; first: " + ", ".join(
            f"{c.label or '?'}={c.score:.4g}" for c in list(first)[:_VALUES_SHOWN]
        )
    if kind == "regress_log":
        return _describe(np.array([r.value for r in response.result.regressions]))
    return f"{len(response.results)} task results"
