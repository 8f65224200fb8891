"""Replay a request log: its requests as the benchmark's load, its responses as the answers to expect.

``benchmark(..., replay="/logs/mnist*")`` sends the logged requests of the
benchmarked signature (successful ones) instead of generated inputs, through
the same load generator, at a chosen level or ``rate="logged"`` (the rate the
log was recorded at). Predict records are sent as tensors; classify and
regress records as their logged tf.Examples to ``:classify`` / ``:regress``
(REST). Afterwards each logged request is sent once more and its answer
compared with the logged response: answers that differ by more than
``tolerance`` (absolute, per value; exact for strings, integers and class
labels) are reported. This is how a new version is checked against real
traffic before a label moves to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core import request_log, tensors
from .options import DEFAULT_TOLERANCE, BenchError

MAX_REPLAYED = 1000  # requests held in memory and compared; the first ones of the log
METHODS = {"predict_log": "predict", "classify_log": "classify", "regress_log": "regress"}


@dataclass
class Replay:
    """The logged requests to send: inputs, the logged outputs, and when they came.

    ``inputs`` are ``{alias: ndarray}`` for predict and the REST ``examples``
    body for classify and regress; ``outputs`` are ``{name: ndarray}`` either
    way (classify: ``classes`` and ``scores``; regress: ``values``), so one
    comparison serves all three.
    """

    pattern: str
    method: str = "predict"
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    skipped: int = 0

    @property
    def logged_rate(self) -> float:
        """Requests per second as logged (sampled requests: the sampling rate scales it down)."""
        span = max(self.timestamps) - min(self.timestamps) if len(self.timestamps) > 1 else 0.0
        if span <= 0:
            raise BenchError(
                f"the log at {self.pattern} spans no time: give a rate or a concurrency instead"
            )
        return (len(self.timestamps) - 1) / span


def load_replay(pattern: str, signature: str, *, limit: int = MAX_REPLAYED) -> Replay:
    """Successful records of ``signature`` under ``pattern``; others are counted as skipped.

    The method replayed is that of the signature's first record: in a log
    that mixes kinds for one signature, records of the other kinds are skipped.
    """
    replay = Replay(pattern)
    if not request_log.log_files(pattern):
        raise BenchError(f"no request log files match {pattern!r}")
    for record in request_log.read_records(pattern):
        method = METHODS.get(record.kind)
        entry = getattr(record.log, record.kind) if method else None
        if (
            not record.ok
            or method is None
            or entry.request.model_spec.signature_name not in (signature, "")
            or (replay.inputs and method != replay.method)
            or len(replay.inputs) >= limit
        ):
            replay.skipped += 1
            continue
        replay.method = method
        if method == "predict":
            replay.inputs.append(
                {k: tensors.tensor_proto_to_ndarray(v) for k, v in entry.request.inputs.items()}
            )
            replay.outputs.append(
                {k: tensors.tensor_proto_to_ndarray(v) for k, v in entry.response.outputs.items()}
            )
        else:
            replay.inputs.append(tensors.encode_examples(entry.request.input))
            replay.outputs.append(_logged_result(method, entry.response.result))
        replay.versions.append(record.log.log_metadata.model_spec.version.value)
        replay.timestamps.append(record.timestamp)
    if not replay.inputs:
        raise BenchError(
            f"no successful predict, classify or regress requests of signature {signature!r} "
            f"in {pattern!r} ({replay.skipped} other records)"
        )
    return replay


def _logged_result(method: str, result) -> dict:
    if method == "classify":
        return _classes(
            [[(c.label, c.score) for c in row.classes] for row in result.classifications]
        )
    return {"values": np.array([r.value for r in result.regressions], dtype=np.float32)}


def answer_of(method: str, document: dict) -> dict:
    """A REST classify or regress answer (``{"results": ...}``) in the shape of the logged result."""
    if method == "classify":
        return _classes(document["results"])
    return {"values": np.array(document["results"], dtype=np.float32).reshape(-1)}


def _classes(rows: list) -> dict:
    """``[[(label, score), ...], ...]`` -> ``classes`` [n, k] strings and ``scores`` [n, k] float32."""
    width = len(rows[0]) if rows else 0
    return {
        "classes": np.array(
            [[str(label) for label, _ in row] for row in rows], dtype=object
        ).reshape(len(rows), width),
        "scores": np.array([[score for _, score in row] for row in rows], dtype=np.float32).reshape(
            len(rows), width
        ),
    }


@dataclass
class ReplayReport:
    """How the answers of a replay compare with the logged ones."""

    compared: int
    differing: int
    failed: int
    tolerance: float
    max_abs_diff: float
    logged_versions: list[int]
    examples: list[dict]  # the first differing answers: index, output, max difference

    def summary(self) -> str:
        versions = ", ".join(str(v) for v in self.logged_versions)
        return (
            f"replay: {self.compared} logged requests (answered by version {versions}) sent again; "
            f"{self.differing} answers differ by more than {self.tolerance:g}, {self.failed} failed; "
            f"largest difference {self.max_abs_diff:.4g}"
        )


def compare(
    replay: Replay, predict, tolerance: float = DEFAULT_TOLERANCE, *, shown: int = 10
) -> ReplayReport:
    """Send each logged request once through ``predict(inputs) -> {name: ndarray}`` and compare."""
    differing = failed = 0
    largest = 0.0
    examples: list[dict] = []
    for index, (inputs, logged) in enumerate(zip(replay.inputs, replay.outputs, strict=True)):
        try:
            answer = predict(inputs)
        except Exception as exc:  # noqa: BLE001 - a refused request is a finding, not a crash
            failed += 1
            if len(examples) < shown:
                examples.append(
                    {"index": index, "output": "", "difference": float("nan"), "error": str(exc)}
                )
            continue
        output, worst = max(
            (
                (alias, tensors.max_abs_diff(answer.get(alias), expected))
                for alias, expected in logged.items()
            ),
            key=lambda pair: pair[1],
            default=("", 0.0),
        )
        largest = max(largest, worst)
        if not worst <= tolerance:
            differing += 1
            if len(examples) < shown:
                examples.append(
                    {"index": index, "output": output, "difference": worst, "error": ""}
                )
    return ReplayReport(
        compared=len(replay.inputs),
        differing=differing,
        failed=failed,
        tolerance=tolerance,
        max_abs_diff=largest,
        logged_versions=sorted(set(replay.versions)),
        examples=examples,
    )
