"""What a benchmark is asked to do, parsed from the strings people type in a cell or a shell.

``%tfserve benchmark``, ``tfserve bench`` and ``jupyter_tfserve.benchmark(...)``
all accept the same spellings (``--concurrency 1:64:x2``, ``--window 500ms``,
``--rate 100:400:+100``), so the parsers live here once and every mistake is
refused with the same one-line :class:`BenchError` before any request is sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_LEVELS = 64
MAX_CONCURRENCY = 4096


class BenchError(ValueError):
    """A benchmark that cannot run as asked; the message says why, in one line, before any load."""


_DURATION_RE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|µs|ms|s|m|min)?\s*")
_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}


def parse_duration(value, *, what: str = "duration") -> float:
    """Seconds from ``"20ms"``, ``"1.5s"``, ``"500us"``, ``"2m"`` or a number of seconds."""
    if isinstance(value, bool):
        raise BenchError(f"{what} must be a duration such as 500ms or 2s, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_RE.fullmatch(str(value))
        if match is None:
            raise BenchError(f"{what} must be a duration such as 500ms or 2s, not {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        raise BenchError(f"{what} must be a non-negative duration, not {value!r}")
    return seconds


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BenchError(f"{what}: {text!r} is not a number") from None


def _range(spec: str, what: str) -> list[float]:
    """``start:stop[:step]`` with an additive step (``4`` or ``+4``) or a factor (``x2``), inclusive."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise BenchError(f"{what}: expected START:STOP[:STEP] such as 1:64:x2, not {spec!r}")
    start, stop = _number(parts[0], what), _number(parts[1], what)
    step = parts[2].strip() if len(parts) == 3 else "+1"
    if stop < start:
        raise BenchError(f"{what}: {spec!r} ends below its start")
    values = []
    if step[:1] in ("x", "*"):
        factor = _number(step[1:], what)
        if factor <= 1:
            raise BenchError(f"{what}: the factor in {spec!r} must be greater than 1")
        if start <= 0:
            raise BenchError(f"{what}: a range that multiplies must start above 0, not {spec!r}")
        value = start
        while value <= stop * (1 + 1e-9) and len(values) <= MAX_LEVELS:
            values.append(value)
            value *= factor
    else:
        increment = _number(step.lstrip("+"), what)
        if increment <= 0:
            raise BenchError(f"{what}: the step in {spec!r} must be positive")
        count = int(math.floor((stop - start) / increment + 1e-9)) + 1
        if count > MAX_LEVELS:
            raise BenchError(f"{what}: {spec!r} has {count} levels; at most {MAX_LEVELS} per sweep")
        values = [start + i * increment for i in range(count)]
    if len(values) > MAX_LEVELS:
        raise BenchError(f"{what}: {spec!r} has more than {MAX_LEVELS} levels")
    return values


def _levels(value, what: str) -> list[float]:
    if isinstance(value, bool):
        raise BenchError(
            f"{what} must be a number, a list or a range such as 1:64:x2, not {value!r}"
        )
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        text = value.strip()
        if ":" in text:
            return _range(text, what)
        items = [t for t in re.split(r"[,\s]+", text) if t]
        if not items:
            raise BenchError(f"{what} is empty")
        return [_number(t, what) for t in items]
    if isinstance(value, Iterable):
        items = list(value)
        if not items:
            raise BenchError(f"{what} is empty")
        return [v for item in items for v in _levels(item, what)]
    raise BenchError(f"{what} must be a number, a list or a range such as 1:64:x2, not {value!r}")


def parse_concurrency(value) -> list[int]:
    """Closed-loop levels from ``"1:64:x2"`` (1, 2, 4 ... 64), ``"1:8"``, ``"4:32:+4"``, ``"1,8,32"``, 8 or a list."""
    levels = []
    for level in _levels(value, "concurrency"):
        if level != int(level):
            raise BenchError(f"concurrency must be a whole number of clients, not {level:g}")
        if level < 1:
            raise BenchError(
                f"concurrency must be at least 1 (got {int(level)}): it is how many requests are in flight"
            )
        if level > MAX_CONCURRENCY:
            raise BenchError(f"concurrency {int(level)} is above the limit of {MAX_CONCURRENCY}")
        levels.append(int(level))
    return _unique(levels)


def parse_rate(value) -> list[float]:
    """Open-loop request rates (requests/s) from ``"200"``, ``"100:400:+100"``, ``"50:800:x2"`` or a list."""
    if isinstance(value, str):
        value = value.replace("/s", "")
    levels = _levels(value, "rate")
    for level in levels:
        if not math.isfinite(level) or level <= 0:
            raise BenchError(
                f"rate must be a positive number of requests per second, not {level:g}"
            )
    return _unique(levels)


def _unique(levels: list) -> list:
    seen = []
    for level in levels:
        if level not in seen:
            seen.append(level)
    return seen


def parse_int_list(value, what: str, *, minimum: int = 0) -> list[int]:
    """Whole numbers from ``"1,4,16"``, ``"1:64:x2"``, a number or a list (the tuner's search axes)."""
    values = []
    for level in _levels(value, what):
        if level != int(level) or level < minimum:
            raise BenchError(f"{what}: {level:g} is not a whole number >= {minimum}")
        values.append(int(level))
    return sorted(set(values))


@dataclass(frozen=True)
class Window:
    """How a warm-up or a measurement window ends: after ``seconds``, or after ``requests`` completions."""

    seconds: float = 0.0
    requests: int = 0

    @property
    def by_count(self) -> bool:
        return self.requests > 0

    def describe(self) -> str:
        return f"{self.requests} requests" if self.by_count else f"{self.seconds:g} s"


def parse_window(duration, requests: int | None, *, what: str, allow_zero: bool = False) -> Window:
    """A window from a duration, or from a request count when one is given (which wins)."""
    if requests is not None:
        if (
            isinstance(requests, bool)
            or int(requests) != requests
            or requests < (0 if allow_zero else 1)
        ):
            raise BenchError(
                f"{what} requests must be a whole number >= {0 if allow_zero else 1}, not {requests!r}"
            )
        if requests:
            return Window(requests=int(requests))
    seconds = parse_duration(duration, what=what)
    if seconds == 0 and not allow_zero:
        raise BenchError(f"{what} must be longer than 0 s")
    return Window(seconds=seconds)


@dataclass(frozen=True)
class LoadSpec:
    """Everything the load generator needs for a sweep; the worker processes receive it as a dict."""

    mode: str  # "concurrency" (closed loop) | "rate" (open loop)
    levels: tuple = ()
    distribution: str = "constant"  # open loop: "constant" | "poisson"
    warmup: Window = field(default_factory=lambda: Window(seconds=1.0))
    window: Window = field(default_factory=lambda: Window(seconds=1.0))
    stability: float = 0.10
    stable_windows: int = 3
    max_trials: int = 10
    timeout: float = 30.0
    max_connections: int = 256
    workers: int = 1
    seed: int = 0

    def validate(self) -> LoadSpec:
        if self.mode not in ("concurrency", "rate"):
            raise BenchError(f"mode must be 'concurrency' or 'rate', not {self.mode!r}")
        if self.distribution not in ("constant", "poisson"):
            raise BenchError(
                f"distribution must be 'constant' or 'poisson', not {self.distribution!r}"
            )
        if not 0 < self.stability < 1:
            raise BenchError(
                f"stability must be a fraction between 0 and 1 (0.1 = 10%), not {self.stability!r}"
            )
        if self.max_trials < 1:
            raise BenchError(f"max_trials must be at least 1, not {self.max_trials!r}")
        if not 1 <= self.workers <= 64:
            raise BenchError(f"workers must be between 1 and 64, not {self.workers!r}")
        if self.timeout <= 0:
            raise BenchError("the request timeout must be longer than 0 s")
        if self.max_connections < 1:
            raise BenchError(f"max_connections must be at least 1, not {self.max_connections!r}")
        return self


# A replayed request's answer "agrees" with the logged one within this (max abs difference).
DEFAULT_TOLERANCE = 1e-5
# The tuner's batch_timeout_micros axis when none is given.
DEFAULT_TIMEOUTS = "0,500,1000,2000,5000,10000"


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What every measurement is told: the server and model, what a request carries, the load.

    Values are kept as given (``"1:64:x2"``, ``"500ms"``); :func:`~.api.load_spec`
    and the target's resolution parse and check them when the run starts.
    """

    url: str | None = None
    token: str | None = None
    grpc: str | None = None
    protocol: str | None = None
    version: int | None = None
    label: str | None = None
    signature: str = "serving_default"
    rows: int = 1
    data: object = "random"
    concurrency: object = "1:16:x2"
    rate: object = None
    warmup: object = "1s"
    warmup_requests: int | None = None
    window: object = "1s"
    window_requests: int | None = None
    max_trials: int = 10
    timeout: object = "30s"
    workers: int = 1
    progress: object = "auto"
    seed: int = 0

    @classmethod
    def of(cls, options: RunOptions | None, keywords: dict):
        """``options``, or the options the keyword arguments of an entry point spell; not both."""
        if options is None:
            return cls(**keywords)
        if keywords:
            raise TypeError(f"give options or keywords, not both ({', '.join(sorted(keywords))})")
        return options


@dataclass(frozen=True, kw_only=True)
class BenchmarkOptions(RunOptions):
    """A sweep's options: :func:`~jupyter_tfserve.bench.benchmark` documents each."""

    distribution: str = "constant"
    stability: float = 0.10
    max_connections: int = 256
    compare_batching: bool = False
    batching: dict | None = None
    replay: str | None = None
    tolerance: float = DEFAULT_TOLERANCE


@dataclass(frozen=True, kw_only=True)
class TuneOptions(RunOptions):
    """A batching search's options: :func:`~jupyter_tfserve.bench.tune` documents each."""

    p99: object
    concurrency: object = 32
    warmup: object = "0.5s"
    window: object = "0.5s"
    max_trials: int = 6
    max_batch_size: object = None
    batch_timeout_micros: object = DEFAULT_TIMEOUTS
    num_batch_threads: object = None
    apply: bool = True
    output: object = "batching_parameters.txt"
