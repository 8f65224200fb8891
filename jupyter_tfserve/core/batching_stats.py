"""Live batch statistics of one (model, signature): what the management API, tuner and sidebar show.

They answer "is batching happening, and are the knobs right?": the sizes of
the batches that ran, how much of them was padding, how long requests waited
in the queue against how long the model ran, why each batch closed (full,
timeout, a parameter change, ...), and the recent rows per second.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable

# Rates over the last RATE_WINDOW seconds, percentiles over the last RECENT_SAMPLES samples.
RATE_WINDOW = 10.0
RECENT_SAMPLES = 2048


class BatchStats:
    """Live statistics of one (model, signature), across versions."""

    def __init__(self):
        self.lock = threading.Lock()
        self.batches = 0
        self.requests = 0
        self.rows = 0
        self.padding_rows = 0
        self.reruns = 0
        self.batch_sizes: Counter[int] = Counter()
        self.close_reasons: Counter[str] = Counter()
        self.queue_wait: deque[float] = deque(maxlen=RECENT_SAMPLES)
        self.execution: deque[float] = deque(maxlen=RECENT_SAMPLES)
        self.queue_wait_total = [0, 0.0, 0.0]  # count, sum, max (seconds)
        self.execution_total = [0, 0.0, 0.0]
        self.recent: deque[tuple[float, int, int]] = deque()  # (finished, rows, requests)
        self.queued_rows = 0

    def record(
        self, reason: str, rows: int, padding: int, waits: list[float], seconds: float, now: float
    ):
        """One batch that ran: why it closed, its rows, each request's queue wait, the run's duration."""
        with self.lock:
            self.batches += 1
            self.requests += len(waits)
            self.rows += rows
            self.padding_rows += padding
            self.batch_sizes[rows] += 1
            self.close_reasons[reason] += 1
            for wait in waits:
                _accumulate(self.queue_wait_total, wait)
            self.queue_wait.extend(waits)
            _accumulate(self.execution_total, seconds)
            self.execution.append(seconds)
            self.recent.append((now, rows, len(waits)))
            while self.recent and self.recent[0][0] < now - RATE_WINDOW:
                self.recent.popleft()

    def snapshot(self, now: float) -> dict:
        with self.lock:
            while self.recent and self.recent[0][0] < now - RATE_WINDOW:
                self.recent.popleft()
            recent_rows = sum(r for _, r, _ in self.recent)
            recent_requests = sum(n for _, _, n in self.recent)
            processed = self.rows + self.padding_rows
            return {
                "batches": self.batches,
                "requests": self.requests,
                "rows": self.rows,
                "padding_rows": self.padding_rows,
                "padding_ratio": self.padding_rows / processed if processed else 0.0,
                "average_batch_size": self.rows / self.batches if self.batches else 0.0,
                "average_requests_per_batch": self.requests / self.batches if self.batches else 0.0,
                "batch_size_histogram": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "close_reasons": dict(self.close_reasons),
                "queue_wait_ms": _summary(self.queue_wait_total, self.queue_wait),
                "execution_ms": _summary(self.execution_total, self.execution),
                "rows_per_second": recent_rows / RATE_WINDOW,
                "requests_per_second": recent_requests / RATE_WINDOW,
                "rate_window_seconds": RATE_WINDOW,
                "reruns_alone": self.reruns,
                "queued_rows": self.queued_rows,
            }


def _accumulate(total: list, value: float) -> None:
    total[0] += 1
    total[1] += value
    total[2] = max(total[2], value)


def _summary(total: list, recent: Iterable[float]) -> dict:
    """Mean and max over all time; percentiles over the most recent samples."""
    count, seconds, maximum = total
    ordered = sorted(recent)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1e3 if ordered else 0.0

    return {
        "count": count,
        "mean": seconds / count * 1e3 if count else 0.0,
        "p50": pct(0.50),
        "p90": pct(0.90),
        "p99": pct(0.99),
        "max": maximum * 1e3,
    }
