"""Server-side batch statistics for exactly the interval measured, and live batching parameters.

Our management API answers ``GET {api}/models/{name}/batching`` with counters
that only grow (batches, rows, padding rows, a batch-size histogram, close
reasons, total queue wait and run time), so the statistics of an interval are
the difference of two snapshots taken at its ends. ``PUT`` on the same path
replaces the model's parameters live, which ``--compare-batching`` and the
tuner use.

A server without that API (TF Serving itself, or ours without batching)
gives no statistics: :meth:`BatchingApi.snapshot` returns None and every
server column is reported missing, not as an error.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

from .options import BenchError

SERVER_COLUMNS = (
    "batches",
    "avg_batch_size",
    "avg_requests_per_batch",
    "padding_ratio",
    "queue_ms",
    "execution_ms",
    "full_share",
    "timeout_share",
)


class BatchingApi:
    """The model's batching endpoint, when the server has one."""

    def __init__(self, target):
        self.endpoint = target
        self.url = f"{target.management_url}/models/{quote(target.model, safe='')}/batching"
        self.available: bool | None = None
        self.reason = ""

    def probe(self) -> bool:
        """Whether batch statistics can be read; ``reason`` says why not."""
        if not self.endpoint.management_url:
            self.available, self.reason = (
                False,
                "no management API: the server was given by its gRPC address",
            )
            return False
        info = self._server_info()
        if info.get("batching") is False:
            # Said once, here; asking the batching route would be refused (and logged) on every probe.
            self.available, self.reason = (
                False,
                f"batching is off on this server: {enable_batching_advice(info)}",
            )
            return False
        try:
            status, body = self.endpoint.request("GET", self.url)
        except OSError as exc:
            status, body = 0, str(exc)
        self.available = status == 200 and isinstance(body, dict) and "signatures" in body
        if not self.available:
            detail = body.get("error") if isinstance(body, dict) else f"HTTP {status}"
            self.reason = f"no batch statistics from {self.url} ({detail})"
        return self.available

    def _server_info(self) -> dict:
        """The management API's ``/info`` (host kind, whether batching is on); empty when there is none."""
        try:
            status, body = self.endpoint.request("GET", f"{self.endpoint.management_url}/info")
        except OSError:
            return {}
        return body if status == 200 and isinstance(body, dict) else {}

    def snapshot(self) -> dict | None:
        """The model's counters now, or None when the server has no batching endpoint."""
        if self.available is None:
            self.probe()
        if not self.available:
            return None
        try:
            status, body = self.endpoint.request("GET", self.url)
        except OSError:
            return None
        return body if status == 200 and isinstance(body, dict) else None

    def parameters(self) -> dict:
        snapshot = self.snapshot()
        if snapshot is None:
            raise BenchError(
                f"the server cannot change batching live ({self.reason or 'no management API'})"
                + ("" if "enable_batching" in self.reason else "; start it with --enable_batching")
            )
        return dict(snapshot.get("parameters", {}))

    def restore(self, original: dict) -> None:
        """Put back what :meth:`parameters` returned: the override it was, or none (the file's or the server's)."""
        self.set_parameters(original if original.get("source") == "override" else None)

    def set_parameters(self, parameters: dict | None) -> dict:
        """Replace the live parameters (None: back to the model's file or the server's)."""
        body = {k: v for k, v in (parameters or {}).items() if k in _SETTABLE}
        method = "PUT" if parameters is not None else "DELETE"
        try:
            status, answer = self.endpoint.request(
                method, self.url, body if parameters is not None else None
            )
        except OSError as exc:
            raise BenchError(
                f"cannot change the batching parameters at {self.url}: {exc}"
            ) from None
        if status != 200:
            message = answer.get("error") if isinstance(answer, dict) else str(answer)[:200]
            raise BenchError(f"the server refused batching parameters {body}: {message}")
        return answer if isinstance(answer, dict) else {}


# How each host turns batching on, by the ``host`` its ``/info`` reports.
_ENABLE_BATCHING = {
    "jupyter": "set c.TFServe.enable_batching = True in the Jupyter server's config and restart it",
    "kernel": "run %config TFServeMagics.enable_batching = True before this kernel's first %tfserve command",
}


def enable_batching_advice(info: dict) -> str:
    """The setting that turns batching on for the server that answered ``info``: its host's, not always the flag."""
    return _ENABLE_BATCHING.get(info.get("host", ""), "start it with --enable_batching")


# The BatchingParameters fields a PUT takes (the rest of a GET's answer is derived).
_SETTABLE = (
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "allowed_batch_sizes",
    "pad_variable_length_inputs",
    "enable_large_batch_splitting",
    "max_execution_batch_size",
)


def _signature(snapshot: dict | None, signature: str) -> dict | None:
    if snapshot is None:
        return None
    return snapshot.get("signatures", {}).get(signature, {})


def _total(summary: dict) -> tuple[int, float]:
    """(count, total milliseconds) of a mean-and-count summary."""
    count = int(summary.get("count", 0))
    return count, float(summary.get("mean", 0.0)) * count


def delta(before: dict | None, after: dict | None, signature: str) -> dict | None:
    """Batch statistics of the interval between two snapshots (None when either is missing)."""
    a, b = _signature(before, signature), _signature(after, signature)
    if a is None or b is None:
        return None
    batches = int(b.get("batches", 0)) - int(a.get("batches", 0))
    rows = int(b.get("rows", 0)) - int(a.get("rows", 0))
    requests = int(b.get("requests", 0)) - int(a.get("requests", 0))
    padding = int(b.get("padding_rows", 0)) - int(a.get("padding_rows", 0))
    histogram = Counter({int(k): v for k, v in b.get("batch_size_histogram", {}).items()})
    histogram.subtract({int(k): v for k, v in a.get("batch_size_histogram", {}).items()})
    reasons = Counter(b.get("close_reasons", {}))
    reasons.subtract(a.get("close_reasons", {}))
    queue_count, queue_total = (
        x - y
        for x, y in zip(
            _total(b.get("queue_wait_ms", {})), _total(a.get("queue_wait_ms", {})), strict=True
        )
    )
    run_count, run_total = (
        x - y
        for x, y in zip(
            _total(b.get("execution_ms", {})), _total(a.get("execution_ms", {})), strict=True
        )
    )
    nan = float("nan")
    return {
        "batches": batches,
        "server_requests": requests,
        "server_rows": rows,
        "avg_batch_size": rows / batches if batches else nan,
        "avg_requests_per_batch": requests / batches if batches else nan,
        "padding_ratio": padding / (rows + padding) if rows + padding else nan,
        "queue_ms": queue_total / queue_count if queue_count else nan,
        "execution_ms": run_total / run_count if run_count else nan,
        "full_share": reasons.get("full", 0) / batches if batches else nan,
        "timeout_share": reasons.get("timeout", 0) / batches if batches else nan,
        "close_reasons": {k: v for k, v in reasons.items() if v > 0},
        "batch_size_histogram": {k: v for k, v in sorted(histogram.items()) if v > 0},
    }
