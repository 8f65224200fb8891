"""TF Serving's ``BatchingParameters``: defaults, validation, and the file and JSON forms.

Users bring ``--batching_parameters_file`` (and per-model
``batching_params.pbtxt``) from ``tensorflow_model_server``: the same text
format with wrapper types (``max_batch_size { value: 128 }``), the same
defaults for unset fields, the same rules and wording when a value is wrong.
The management API takes the same message as JSON (``{"max_batch_size": 64}``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from google.protobuf import json_format

from .config import BatchingParameters, parse_text_file
from .status import invalid_argument

PER_MODEL_FILE = "batching_params.pbtxt"
# A guard for the live-change API: a typo must not start ten thousand threads.
MAX_BATCH_THREADS = 1024


def schedulable_cores() -> int:
    """TF Serving's default ``num_batch_threads``: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BatchingOptions:
    """Effective parameters: a ``BatchingParameters`` proto with TF Serving's defaults filled in."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0  # 0: the number of cores, resolved by from_proto
    thread_pool_name: str = "batch_threads"
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0  # 0: max_batch_size

    @classmethod
    def from_proto(cls, proto: BatchingParameters | None) -> BatchingOptions:
        """Defaults for unset fields, then TF Serving's validation (INVALID_ARGUMENT, its wording)."""
        proto = proto if proto is not None else BatchingParameters()

        def wrapped(field: str, default):
            return getattr(proto, field).value if proto.HasField(field) else default

        max_batch_size = wrapped("max_batch_size", cls.max_batch_size)
        options = cls(
            max_batch_size=max_batch_size,
            batch_timeout_micros=wrapped("batch_timeout_micros", cls.batch_timeout_micros),
            max_enqueued_batches=wrapped("max_enqueued_batches", cls.max_enqueued_batches),
            num_batch_threads=wrapped("num_batch_threads", schedulable_cores()),
            thread_pool_name=wrapped("thread_pool_name", cls.thread_pool_name),
            allowed_batch_sizes=tuple(proto.allowed_batch_sizes),
            pad_variable_length_inputs=proto.pad_variable_length_inputs,
            enable_large_batch_splitting=wrapped("enable_large_batch_splitting", False),
            max_execution_batch_size=wrapped("max_execution_batch_size", max_batch_size),
        )
        options.validate()
        return options

    def validate(self) -> None:
        for name in (
            "max_batch_size",
            "max_enqueued_batches",
            "num_batch_threads",
            "max_execution_batch_size",
        ):
            if getattr(self, name) < 1:
                raise invalid_argument(f"{name} must be positive; was {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise invalid_argument(
                f"batch_timeout_micros must be non-negative; was {self.batch_timeout_micros}"
            )
        if self.num_batch_threads > MAX_BATCH_THREADS:
            raise invalid_argument(
                f"num_batch_threads must be at most {MAX_BATCH_THREADS}; was {self.num_batch_threads}"
            )
        if (
            self.enable_large_batch_splitting
            and self.max_execution_batch_size > self.max_batch_size
        ):
            raise invalid_argument(
                "max_execution_batch_size must be less than or equal to max_batch_size; "
                f"was {self.max_execution_batch_size}; max_batch_size is {self.max_batch_size}"
            )
        sizes = self.allowed_batch_sizes
        if not sizes:
            return
        if sizes[0] < 1 or any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
            raise invalid_argument("allowed_batch_sizes entries must be monotonically increasing")
        if self.enable_large_batch_splitting:
            if sizes[-1] != self.max_execution_batch_size:
                raise invalid_argument(
                    "Last entry in allowed_batch_sizes must be equal to max_execution_batch_size; "
                    f"last entry was {sizes[-1]}; expected {self.max_execution_batch_size}"
                )
        elif sizes[-1] != self.max_batch_size:
            raise invalid_argument(
                "Last entry in allowed_batch_sizes must match max_batch_size; "
                f"last entry was {sizes[-1]}; expected {self.max_batch_size}"
            )

    @property
    def batch_capacity(self) -> int:
        """Rows one model run takes."""
        return (
            self.max_execution_batch_size
            if self.enable_large_batch_splitting
            else self.max_batch_size
        )

    def padded_size(self, rows: int) -> int:
        """The smallest allowed batch size that holds ``rows`` (``rows`` itself when none does)."""
        for size in self.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows

    def to_json(self) -> dict:
        data = asdict(self)
        data["allowed_batch_sizes"] = list(self.allowed_batch_sizes)
        return data


def load_batching_parameters(path: str | os.PathLike) -> BatchingParameters:
    """Read and validate a text-format ``BatchingParameters`` file (``--batching_parameters_file``)."""
    proto = parse_text_file(path, BatchingParameters)
    BatchingOptions.from_proto(proto)
    return proto


def parameters_from_json(data) -> BatchingParameters:
    """``BatchingParameters`` from its JSON form, e.g. ``{"max_batch_size": 64}`` (the management API's PUT)."""
    if not isinstance(data, dict):
        raise invalid_argument("Batching parameters must be a JSON object.")
    try:
        return json_format.ParseDict(data, BatchingParameters())
    except json_format.ParseError as exc:
        raise invalid_argument(f"Invalid batching parameters: {exc}") from exc
