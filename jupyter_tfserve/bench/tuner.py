"""``tune(...)``: which batching parameters give the most throughput while p99 stays under an SLO?

The search runs on the live server, at one load (a concurrency, or an
open-loop rate) standing for production traffic. For every combination of
``num_batch_threads`` x ``batch_timeout_micros`` x ``max_batch_size`` it sets
the parameters through the management API and measures one level. It prunes
on the way, because most of that grid is not worth a measurement:

* a timeout at or above the SLO is never tried: one lone request could wait
  that long before it even runs;
* within a (threads, timeout) row, batch sizes grow until throughput stops
  rising (by less than 3%): once batches are as large as the load can fill,
  a larger maximum changes nothing;
* for a thread count, longer timeouts are dropped once a longer one brought
  no throughput over the shorter one;
* a trial stops after its first window when its p99 is over three times the
  SLO and its throughput is no better than the best point meeting the SLO.

The choice is the highest throughput whose p99 meets the SLO without errors
(ties: lower p99). The result shows every trial and the Pareto front
(throughput up, p99 down), applies the choice live (``apply=True``, else the
original parameters are restored), and writes it as ``batching_parameters.txt``
in TF Serving's text format, readable by ``--batching_parameters_file``.
``max_enqueued_batches`` is set deep enough that the tuned load is never
refused with "queue is full".
"""

from __future__ import annotations

import math
import os

from ..core.batching_params import schedulable_cores
from .api import Prepared, check_rate, load_spec, prepare
from .options import BenchError, TuneOptions, parse_duration, parse_int_list
from .progress import make_progress
from .sweep import Sweep
from .workers import WorkerPool

GAIN = 0.03  # throughput gains below this are "no better"
FAR_OVER_SLO = 3.0
PROBES = 5
SEARCHED = ("max_batch_size", "batch_timeout_micros", "num_batch_threads")
# The trial table's columns, shown the same way as text and as HTML.
TRIAL_COLUMNS = (
    *SEARCHED,
    "throughput",
    "p99_ms",
    "avg_batch_size",
    "errors",
    "meets_slo",
    "pareto",
    "chosen",
    "pruned",
)


def _default_batch_sizes(in_flight_rows: int) -> list[int]:
    top = 1 << max(0, math.ceil(math.log2(max(1, in_flight_rows))))
    return [1 << i for i in range(int(math.log2(min(top, 1024))) + 1)]


class TuneResult:
    """Every trial of a batching search, the choice, and how to use it."""

    def __init__(
        self,
        trials: list[dict],
        *,
        slo_ms: float,
        model: str,
        load: str,
        original: dict,
        applied: bool,
        path: str | None,
        interrupted: bool = False,
    ):
        self.trials = trials
        self.slo_ms = slo_ms
        self.model = model
        self.load = load
        self.original = original
        self.applied = applied
        self.path = path
        self.interrupted = interrupted
        measured = [t for t in trials if t["meets_slo"]]
        self.best = (
            max(measured, key=lambda t: (t["throughput"], -t["p99_ms"])) if measured else None
        )

    def describe(self, trial: dict) -> str:
        return (
            f"max_batch_size {trial['max_batch_size']}, timeout {trial['batch_timeout_micros']} us, "
            f"{trial['num_batch_threads']} thread(s)"
        )

    def parameters(self, trial: dict | None = None) -> dict:
        trial = trial or self.best
        if trial is None:
            raise BenchError(f"no setting met the p99 SLO of {self.slo_ms:g} ms")
        return {
            **{k: trial[k] for k in SEARCHED},
            "max_enqueued_batches": trial["max_enqueued_batches"],
        }

    def to_proto(self, trial: dict | None = None):
        """The choice as TF Serving's ``BatchingParameters`` message."""
        from ..core.extra_protos import BatchingParameters

        proto = BatchingParameters()
        for name, value in self.parameters(trial).items():
            getattr(proto, name).value = int(value)
        return proto

    def text(self, trial: dict | None = None) -> str:
        """``batching_parameters.txt`` content (text format, wrapper syntax, as TF Serving reads it)."""
        from google.protobuf import text_format

        return text_format.MessageToString(self.to_proto(trial))

    def pareto_front(self) -> list[dict]:
        """Measured trials no other trial beats on both throughput (higher) and p99 (lower)."""
        points = [t for t in self.trials if t["measured"] and t["requests"] > 0 and not t["errors"]]

        def dominated(t):
            return any(
                o["throughput"] >= t["throughput"]
                and o["p99_ms"] <= t["p99_ms"]
                and (o["throughput"] > t["throughput"] or o["p99_ms"] < t["p99_ms"])
                for o in points
            )

        return [t for t in points if not dominated(t)]

    def to_dataframe(self):
        import pandas as pd

        front = {id(t) for t in self.pareto_front()}
        rows = [
            {
                **{k: v for k, v in t.items() if k != "measured"},
                "pareto": id(t) in front,
                "chosen": t is self.best,
            }
            for t in self.trials
        ]
        return pd.DataFrame(rows)

    @property
    def df(self):
        return self.to_dataframe()

    def plot(self, path=None):
        from .plots import tuner_figure

        figure = tuner_figure(self)
        if path is not None:
            figure.savefig(path, bbox_inches="tight")
        return figure

    def summary(self) -> str:
        measured = sum(t["measured"] for t in self.trials)
        lines = [
            f"batching search for {self.model} at {self.load}, p99 SLO {self.slo_ms:g} ms: "
            f"{measured} of {len(self.trials)} settings measured"
        ]
        if self.interrupted:
            lines.append("interrupted: the original parameters were restored")
        if self.best is None:
            lines.append("no setting met the SLO; nothing applied, original parameters kept")
            measured = [t for t in self.trials if t["measured"] and t["requests"]]
            if measured:
                closest = min(measured, key=lambda t: t["p99_ms"])
                lines.append(
                    f"closest: {self.describe(closest)} -> {closest['throughput']:.1f} req/s, "
                    f"p99 {closest['p99_ms']:.2f} ms"
                )
            return "\n".join(lines)
        best = self.best
        lines.append(
            f"best: {self.describe(best)} -> {best['throughput']:.1f} req/s, p99 {best['p99_ms']:.2f} ms"
        )
        if self.applied:
            lines.append("applied live to the server")
        if self.path:
            lines.append(f"written to {self.path}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        from .display import to_text

        return f"{self.summary()}\n{to_text(self.to_dataframe()[list(TRIAL_COLUMNS)])}"

    def _repr_html_(self) -> str:
        import html

        from .display import to_html

        table = to_html(self.to_dataframe()[list(TRIAL_COLUMNS)])
        return f"<p>{html.escape(self.summary()).replace(chr(10), '<br>')}</p>{table}"


def _check_axes(sizes: list[int], timeouts: list[int], threads: list[int]) -> None:
    """Every setting of the grid must be valid ``BatchingParameters`` (TF Serving's rules), before any load."""
    from ..core.batching_params import BatchingOptions, parameters_from_json
    from ..core.status import ServingError

    for size in sizes:
        for timeout in timeouts:
            for count in threads:
                try:
                    BatchingOptions.from_proto(
                        parameters_from_json(
                            {
                                "max_batch_size": size,
                                "batch_timeout_micros": timeout,
                                "num_batch_threads": count,
                            }
                        )
                    )
                except ServingError as exc:
                    raise BenchError(
                        f"cannot search max_batch_size {size}, batch_timeout_micros {timeout}, "
                        f"num_batch_threads {count}: {exc.message}"
                    ) from None


def _floor_ms(prepared: Prepared) -> float:
    """The fastest of a few lone requests: no p99 under load can beat it."""
    return min(prepared.check_request(PROBES)) * 1e3


def tune(model: str, options: TuneOptions | None = None, **keywords) -> TuneResult:
    """Search batching parameters on the live server for the most throughput with p99 <= ``p99``.

    The options are the fields of :class:`~.options.TuneOptions`, given as keywords
    or as one ``options`` object (what the command line and the magic build).

    ``p99``: the SLO (``"20ms"``, or seconds). The load is one ``concurrency``
    (default 32) or an open-loop ``rate``. The axes take lists or ranges
    (``max_batch_size="1:128:x2"``); by default batch sizes are powers of two up
    to the rows in flight, timeouts 0-10 ms, threads 1 and the core count.
    """
    o = TuneOptions.of(options, keywords)
    slo = parse_duration(o.p99, what="p99 SLO")
    if slo <= 0:
        raise BenchError("the p99 SLO must be longer than 0 ms")
    slo_ms = slo * 1e3
    spec = load_spec(
        concurrency=o.concurrency if o.rate is None else 1,
        rate=o.rate,
        warmup=o.warmup,
        warmup_requests=o.warmup_requests,
        window=o.window,
        window_requests=o.window_requests,
        max_trials=o.max_trials,
        timeout=o.timeout,
        workers=o.workers,
        seed=o.seed,
    )
    if len(spec.levels) != 1:
        raise BenchError("the tuner measures at one load: give one concurrency or one rate")
    load = spec.levels[0]
    prepared = prepare(model, o, spec)
    target = prepared.target
    original = prepared.batching.parameters()  # says clearly when the server cannot change batching
    in_flight = load if spec.mode == "concurrency" else spec.max_connections
    in_flight_rows = int(in_flight * prepared.rows_per_request)
    sizes = (
        parse_int_list(o.max_batch_size, "max_batch_size", minimum=1)
        if o.max_batch_size is not None
        else _default_batch_sizes(in_flight_rows)
    )
    sizes = [s for s in sizes if s >= prepared.rows_per_request] or [prepared.rows_per_request]
    timeouts = parse_int_list(o.batch_timeout_micros, "batch_timeout_micros")
    threads = (
        parse_int_list(o.num_batch_threads, "num_batch_threads", minimum=1)
        if o.num_batch_threads is not None
        else sorted({1, schedulable_cores()})
    )
    _check_axes(sizes, timeouts, threads)
    floor = _floor_ms(prepared)
    if floor > slo_ms:
        raise BenchError(
            f"a p99 of {slo_ms:g} ms is impossible here: one request alone takes {floor:.2f} ms "
            f"({target.describe()})"
        )
    load_text = f"concurrency {load:g}" if spec.mode == "concurrency" else f"{load:g} req/s"
    view = make_progress(
        o.progress, f"tune: {target.describe()}, {load_text}, p99 <= {slo_ms:g} ms"
    )
    search = _Search(spec, prepared, slo_ms, in_flight_rows, view)
    interrupted = False
    try:
        with WorkerPool(spec.workers, prepared.setup()) as pool:
            check_rate(pool, spec)
            search.run(pool, threads, timeouts, sizes)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        prepared.batching.restore(original)
        raise
    result = TuneResult(
        search.trials,
        slo_ms=slo_ms,
        model=target.model,
        load=load_text,
        original=original,
        applied=False,
        path=None,
        interrupted=interrupted,
    )
    if result.best is not None and o.apply and not interrupted:
        prepared.batching.set_parameters({**original, **result.parameters()})
        result.applied = True
    else:
        prepared.batching.restore(original)
    if result.best is not None and o.output is not None and not interrupted:
        with open(o.output, "w") as out:
            out.write(result.text())
        result.path = os.fspath(o.output)
    if view is not None and hasattr(view, "close"):
        view.close("interrupted" if interrupted else "done", failed=result.best is None)
    return result


class _Search:
    def __init__(self, spec, prepared: Prepared, slo_ms: float, in_flight_rows: int, view):
        self.spec = spec
        self.prepared = prepared
        self.slo_ms = slo_ms
        self.in_flight_rows = in_flight_rows
        self.view = view
        self.trials: list[dict] = []

    def best_throughput(self) -> float:
        return max((t["throughput"] for t in self.trials if t["meets_slo"]), default=0.0)

    def skip(self, size: int, timeout: int, threads: int, reason: str) -> None:
        self.trials.append(self._row(size, timeout, threads, None, reason))

    def _row(self, size, timeout, threads, level: dict | None, pruned: str) -> dict:
        nan = float("nan")
        level = level or {}
        server = level.get("server") or {}
        p99 = level.get("p99_ms", nan)
        errors = level.get("errors", 0)
        requests = level.get("requests", 0)
        return {
            "max_batch_size": size,
            "batch_timeout_micros": timeout,
            "num_batch_threads": threads,
            "max_enqueued_batches": self._queue_depth(size),
            "throughput": level.get("throughput", nan),
            "p50_ms": level.get("p50_ms", nan),
            "p99_ms": p99,
            "avg_batch_size": server.get("avg_batch_size", nan),
            "requests": requests,
            "errors": errors,
            "stable": level.get("stable", False),
            "meets_slo": bool(level) and requests > 0 and not errors and p99 <= self.slo_ms,
            "measured": bool(level),
            "pruned": pruned,
        }

    def _queue_depth(self, size: int) -> int:
        return max(10, math.ceil(self.in_flight_rows / size) + 1)

    def run(self, pool, threads_axis, timeouts, sizes) -> None:
        for threads in threads_axis:
            row_best_before = 0.0
            for timeout in timeouts:
                if timeout * 1e-3 >= self.slo_ms:
                    for size in sizes:
                        self.skip(size, timeout, threads, "timeout is not below the SLO")
                    continue
                row_best = self._row_of_sizes(pool, threads, timeout, sizes)
                if timeout and row_best < row_best_before * (1 + GAIN):
                    for later in (t for t in timeouts if t > timeout):
                        for size in sizes:
                            self.skip(
                                size, later, threads, "a longer timeout brought no throughput"
                            )
                    break
                row_best_before = max(row_best_before, row_best)

    def _row_of_sizes(self, pool, threads: int, timeout: int, sizes: list[int]) -> float:
        best = 0.0
        for position, size in enumerate(sizes):
            trial = self.measure(pool, size, timeout, threads)
            if trial["throughput"] < best * (1 + GAIN):
                for larger in sizes[position + 1 :]:
                    self.skip(larger, timeout, threads, "throughput stopped rising with batch size")
                return best
            best = max(best, trial["throughput"])
        return best

    def measure(self, pool, size: int, timeout: int, threads: int) -> dict:
        parameters = {
            "max_batch_size": size,
            "batch_timeout_micros": timeout,
            "num_batch_threads": threads,
            "max_enqueued_batches": self._queue_depth(size),
        }
        self.prepared.batching.set_parameters(parameters)
        label = f"mbs {size}, {timeout} us, {threads} thr"
        floor = self.best_throughput()

        def prune(window: dict) -> str | None:
            if window["p99_ms"] > FAR_OVER_SLO * self.slo_ms and window["throughput"] <= floor:
                return f"p99 {window['p99_ms']:.1f} ms is over {FAR_OVER_SLO:g}x the SLO"
            return None

        sweep = Sweep(
            self.spec,
            pool,
            rows_per_request=self.prepared.rows_per_request,
            batching=self.prepared.batching,
            signature=self.prepared.signature.name,
            progress=self.view,
            label=label,
            prune=prune,
        )
        level = next(sweep.levels_iter())
        trial = self._row(size, timeout, threads, level, level.get("pruned", ""))
        self.trials.append(trial)
        return trial
