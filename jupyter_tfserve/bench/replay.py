"""Replay a request log: its requests as the benchmark's load, its responses as the answers to expect.

``benchmark(..., replay="/logs/mnist*")`` sends the logged predict requests
(successful ones, of the benchmarked signature) instead of generated inputs,
through the same load generator, at a chosen level or ``rate="logged"`` (the
rate the log was recorded at). Afterwards each logged request is sent once
more and its answer compared with the logged response: answers that differ
by more than ``tolerance`` (absolute, per value; exact for strings and
integers) are reported. This is how a new version is checked against real
traffic before a label moves to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import request_log, tensors
from .options import DEFAULT_TOLERANCE, BenchError

MAX_REPLAYED = 1000  # requests held in memory and compared; the first ones of the log


@dataclass
class Replay:
    """The logged requests to send: inputs, the logged outputs, and when they came."""

    pattern: str
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
    """Successful predict records of ``signature`` under ``pattern``; others are counted as skipped."""
    replay = Replay(pattern)
    if not request_log.log_files(pattern):
        raise BenchError(f"no request log files match {pattern!r}")
    for record in request_log.read_records(pattern):
        entry = record.log.predict_log
        if (
            not record.ok
            or record.kind != "predict_log"
            or entry.request.model_spec.signature_name not in (signature, "")
            or len(replay.inputs) >= limit
        ):
            replay.skipped += 1
            continue
        replay.inputs.append(
            {k: tensors.tensor_proto_to_ndarray(v) for k, v in entry.request.inputs.items()}
        )
        replay.outputs.append(
            {k: tensors.tensor_proto_to_ndarray(v) for k, v in entry.response.outputs.items()}
        )
        replay.versions.append(record.log.log_metadata.model_spec.version.value)
        replay.timestamps.append(record.timestamp)
    if not replay.inputs:
        raise BenchError(
            f"no successful predict requests of signature {signature!r} in {pattern!r} "
            f"({replay.skipped} other records)"
        )
    return replay


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
    """Send each logged request once through ``predict(inputs) -> {alias: ndarray}`` and compare."""
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
