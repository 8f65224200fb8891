"""Prometheus metrics under TF Serving's own names, so existing dashboards and alerts keep working.

TF Serving exports ``:tensorflow:serving:request_count`` (no ``_total``
suffix), histograms with buckets of 10·1.8^i microseconds, and so on. The
``prometheus_client`` metric classes and its text exposition rename counters
to ``*_total``, so we keep the values ourselves (one lock, plain dicts: cheap
on the request path) and write the text format with TF Serving's exact names,
using ``prometheus_client``'s number formatting. The object is also a
``prometheus_client`` collector, for hosts that merge it into a registry of
their own. Each server owns its own instance, so several servers in one
process (tests, notebooks) never collide.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

PREFIX = ":tensorflow:serving:"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# 10 * 1.8^i microseconds, 33 buckets: TF Serving's request/runtime latency histograms.
LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(33))
# Batch sizes: powers of two and their midpoints, up to well past TF Serving's default max of 1000.
BATCH_SIZE_BUCKETS = (
    1,
    2,
    3,
    4,
    6,
    8,
    12,
    16,
    24,
    32,
    48,
    64,
    96,
    128,
    192,
    256,
    384,
    512,
    768,
    1024,
    2048,
    4096,
)


class _Histogram:
    __slots__ = ("buckets", "counts", "sum", "count")

    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> dict:
        return {
            "buckets": list(self.buckets),
            "counts": list(self.counts),
            "sum": self.sum,
            "count": self.count,
        }


# The model_name of requests that name no served model: one series however many names
# clients make up, shared with requests that name none at all.
UNKNOWN_MODEL = ""


_REQUEST_COUNT = PREFIX + "request_count"
_REQUEST_LATENCY = PREFIX + "request_latency"
_REQUEST_FAMILIES = (
    (_REQUEST_COUNT, ("model_name", "status"), "The total number of requests."),
    (
        _REQUEST_LATENCY,
        ("model_name", "API", "entrypoint"),
        "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
    ),
)


class ServingMetrics:
    """All series of one model server. ``observe_*`` are called on the request path.

    ``is_served(name)`` bounds the request series: names it refuses count
    under :data:`UNKNOWN_MODEL`, so a client cannot add series by inventing names.
    """

    def __init__(self, is_served: Callable[[str], bool] | None = None):
        self.is_served = is_served
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: dict[str, dict[tuple, _Histogram]] = defaultdict(dict)
        self._label_names: dict[str, tuple[str, ...]] = {}
        self._docs: dict[str, str] = {}

    # ------------------------------------------------------------------ recording
    def inc(self, name: str, labels: dict[str, str], value: float = 1.0, doc: str = "") -> None:
        key = tuple(labels.values())
        with self._lock:
            self._label_names.setdefault(name, tuple(labels))
            if doc:
                self._docs.setdefault(name, doc)
            self._counters[name][key] += value

    def observe(
        self,
        name: str,
        labels: dict[str, str],
        value: float,
        buckets=LATENCY_BUCKETS_US,
        doc: str = "",
    ) -> None:
        self.observe_all(name, labels, (value,), buckets, doc)

    def observe_all(
        self, name: str, labels: dict[str, str], values, buckets=LATENCY_BUCKETS_US, doc: str = ""
    ) -> None:
        """Several observations of one series under one lock (a batch's per-request values)."""
        key = tuple(labels.values())
        with self._lock:
            self._label_names.setdefault(name, tuple(labels))
            if doc:
                self._docs.setdefault(name, doc)
            series = self._histograms[name]
            histogram = series.get(key)
            if histogram is None:
                histogram = series[key] = _Histogram(buckets)
            for value in values:
                histogram.observe(value)

    def observe_request(
        self, model_name: str, api: str, entrypoint: str, status: str, seconds: float
    ) -> None:
        """One finished request: TF Serving's request_count and request_latency (microseconds).

        Every request passes here, so both series are written under one lock
        with their label keys built directly; the families' label names and
        help are registered with the first request.
        """
        if self.is_served is not None and not self.is_served(model_name):
            model_name = UNKNOWN_MODEL
        latency_key = (model_name, api, entrypoint)
        with self._lock:
            self._counters[_REQUEST_COUNT][(model_name, status)] += 1.0
            series = self._histograms[_REQUEST_LATENCY]
            histogram = series.get(latency_key)
            if histogram is None:
                histogram = series[latency_key] = _Histogram(LATENCY_BUCKETS_US)
                for name, labels, doc in _REQUEST_FAMILIES:
                    self._label_names.setdefault(name, labels)
                    self._docs.setdefault(name, doc)
            histogram.observe(seconds * 1e6)

    def observe_runtime(self, model_name: str, seconds: float, runtime: str = "TF1") -> None:
        self.observe(
            PREFIX + "runtime_latency",
            {"model_name": model_name, "API": "Predict", "runtime": runtime},
            seconds * 1e6,
            doc="Distribution of wall time (in microseconds) for Tensorflow runtime.",
        )

    def observe_load(self, model_path: str, seconds: float, ok: bool) -> None:
        self.inc(
            ":tensorflow:cc:saved_model:load_attempt_count",
            {"model_path": model_path, "status": "success" if ok else "fail"},
            doc="The number of times a SavedModel was successfully loaded.",
        )
        if ok:
            self.observe(
                ":tensorflow:cc:saved_model:load_latency",
                {"model_path": model_path},
                seconds * 1e6,
                doc="Latency in microseconds for SavedModels that were successfully loaded.",
            )

    def observe_examples(self, model_name: str, count: int) -> None:
        self.observe(
            PREFIX + "request_example_counts",
            {"model_name": model_name},
            count,
            buckets=BATCH_SIZE_BUCKETS,
            doc="The number of tensorflow.Examples per request.",
        )

    # ------------------------------------------------------------------ reading
    def counter_value(self, name: str, labels: dict[str, str]) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(labels.values()), 0.0)

    def histogram(self, name: str, labels: dict[str, str]) -> dict | None:
        with self._lock:
            histogram = self._histograms.get(name, {}).get(tuple(labels.values()))
            return histogram.snapshot() if histogram else None

    def snapshot(self) -> dict:
        """Every series as JSON-friendly data, for the management API and widgets."""
        with self._lock:
            out: dict = {}
            for name, series in self._counters.items():
                names = self._label_names[name]
                out[name] = [
                    {"labels": dict(zip(names, k, strict=True)), "value": v}
                    for k, v in series.items()
                ]
            for name, series in self._histograms.items():
                names = self._label_names[name]
                out[name] = [
                    {"labels": dict(zip(names, k, strict=True)), **h.snapshot()}
                    for k, h in series.items()
                ]
            return out

    def render(self) -> bytes:
        """Prometheus text exposition (Content-Type :data:`CONTENT_TYPE`) with TF Serving's exact names."""
        lines: list[str] = []
        for metric in self.collect():
            lines.append(f"# HELP {metric.name} {metric.documentation}")
            lines.append(f"# TYPE {metric.name} {metric.type}")
            for sample in metric.samples:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
                lines.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}")
        return ("\n".join(lines) + "\n").encode() if lines else b""

    # prometheus_client Collector protocol
    def collect(self):
        with self._lock:
            counters = {n: dict(s) for n, s in self._counters.items()}
            histograms = {
                n: {k: h.snapshot() for k, h in s.items()} for n, s in self._histograms.items()
            }
            label_names = dict(self._label_names)
            docs = dict(self._docs)
        for name, series in counters.items():
            metric = Metric(name, docs.get(name, name), "counter")
            for key, value in series.items():
                metric.add_sample(name, dict(zip(label_names[name], key, strict=True)), value)
            yield metric
        for name, series in histograms.items():
            metric = Metric(name, docs.get(name, name), "histogram")
            for key, snap in series.items():
                labels = dict(zip(label_names[name], key, strict=True))
                cumulative = 0
                for bound, count in zip(snap["buckets"], snap["counts"], strict=True):
                    cumulative += count
                    metric.add_sample(name + "_bucket", {**labels, "le": _le(bound)}, cumulative)
                metric.add_sample(name + "_bucket", {**labels, "le": "+Inf"}, snap["count"])
                metric.add_sample(name + "_sum", labels, snap["sum"])
                metric.add_sample(name + "_count", labels, snap["count"])
            yield metric


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _le(bound: float) -> str:
    return repr(float(bound)) if bound != int(bound) else f"{int(bound)}"
