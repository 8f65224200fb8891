"""A benchmark's results: a pandas DataFrame, perf_analyzer's CSV, plots, and a side-by-side comparison.

The CSV uses perf_analyzer's column names and units (microseconds, integers;
``Inferences/Second`` counts rows, not requests; rows sorted by increasing
``Inferences/Second``), with its verbose columns, so existing spreadsheets and
scripts read it unchanged. What perf_analyzer does not have follows in extra
columns after its own. Server-side columns come from our batch statistics;
where the server has none (TF Serving itself) they are left empty: missing,
not zero.

* ``Server Queue`` is the mean time a request waited in the batch queue;
* ``Server Compute Infer`` is the mean model run time per batch;
* ``Server Compute Input``/``Output`` are not measured separately (empty);
* ``Network+Server Send/Recv`` is what remains of the client's wait once
  queue and compute are taken off (floored at 0), as perf_analyzer derives it.
"""

from __future__ import annotations

import csv
import io
import math

from .serverstats import SERVER_COLUMNS

PERF_ANALYZER_COLUMNS = (
    "Inferences/Second",
    "Client Send",
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Client Recv",
    "p50 latency",
    "p90 latency",
    "p95 latency",
    "p99 latency",
    "Avg latency",
    "request/response",
    "response wait",
)
EXTRA_COLUMNS = (
    "Batching",
    "Requests/Second",
    "Achieved Rate",
    "Std latency",
    "Max latency",
    "Errors",
    "Avg Batch Size",
    "Padding Ratio",
    "Full Batches",
    "Timeout Batches",
    "Stable",
)

# DataFrame columns, in order (the level column is "concurrency" or "rate").
COLUMNS = (
    "batching",
    "rows_per_request",
    "throughput",
    "inferences_per_second",
    "achieved_rate",
    "requests",
    "errors",
    "latency_mean_ms",
    "latency_std_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "latency_max_ms",
    "service_p99_ms",
    "client_send_ms",
    "client_recv_ms",
    *SERVER_COLUMNS,
    "stable",
    "trials",
    "error_kinds",
    "notes",
)


# What a result shows by default, in this order (the level column goes second; absent ones are skipped).
BRIEF_COLUMNS = (
    "batching",
    "throughput",
    "p50_ms",
    "p99_ms",
    "errors",
    "avg_batch_size",
    "queue_ms",
)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _us(ms) -> str:
    return "" if _missing(ms) else str(int(round(ms * 1000)))


def _number(value) -> str:
    return "" if _missing(value) else f"{value:.6g}"


class BenchmarkResult:
    """Levels measured by :func:`jupyter_tfserve.bench.benchmark`, with their context."""

    def __init__(
        self,
        levels: list[dict],
        *,
        mode: str,
        rows_per_request: int,
        model: str,
        url: str,
        protocol: str,
        server_stats: bool,
        server_stats_note: str = "",
        interrupted: bool = False,
        notes: list[str] | None = None,
        replay=None,
    ):
        self.levels = levels
        # bench.replay.ReplayReport: how a replay's answers compare with the logged ones.
        self.replay = replay
        self.mode = mode
        self.rows_per_request = rows_per_request
        self.model = model
        self.url = url
        self.protocol = protocol
        self.server_stats = server_stats
        self.server_stats_note = server_stats_note
        self.interrupted = interrupted
        self.notes = list(notes or [])

    @property
    def level_column(self) -> str:
        return "concurrency" if self.mode == "concurrency" else "rate"

    @property
    def compared(self) -> bool:
        """Whether the result holds both runs of ``compare_batching`` (batching off and on)."""
        return {level.get("batching") for level in self.levels} >= {"off", "on"}

    # ------------------------------------------------------------------ tables
    def rows(self) -> list[dict]:
        rows = []
        for level in self.levels:
            server = level.get("server") or {}
            row = {self.level_column: level["value"], "rows_per_request": self.rows_per_request}
            for column in COLUMNS:
                if column in SERVER_COLUMNS:
                    row[column] = server.get(column, float("nan"))
                elif column == "notes":
                    row[column] = "; ".join(level.get("notes", []))
                elif column != "rows_per_request":
                    row[column] = level.get(column, float("nan") if column != "batching" else None)
            if self.mode == "concurrency":
                del row["achieved_rate"]
            if not any(lv.get("batching") for lv in self.levels):
                del row["batching"]
            rows.append(row)
        return rows

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.rows())

    @property
    def df(self):
        return self.to_dataframe()

    def compare(self):
        """Batching off and on side by side: one row per level, (metric, off|on) columns, and the speedup."""
        import pandas as pd

        if not self.compared:
            raise ValueError("this result has one run; benchmark with compare_batching=True")
        frame = self.to_dataframe()
        metrics = ["throughput", "p50_ms", "p99_ms", "avg_batch_size", "errors"]
        wide = frame.pivot_table(
            index=self.level_column, columns="batching", values=metrics, aggfunc="first"
        )
        wide = wide.reindex(columns=pd.MultiIndex.from_product([metrics, ["off", "on"]]))
        wide[("speedup", "on/off")] = wide[("throughput", "on")] / wide[("throughput", "off")]
        return wide

    def batch_size_histogram(self) -> dict:
        """{run label or "": {batch size: count}} summed over the levels' measured windows."""
        totals: dict = {}
        for level in self.levels:
            histogram = (level.get("server") or {}).get("batch_size_histogram") or {}
            label = level.get("batching") or ""
            bucket = totals.setdefault(label, {})
            for size, count in histogram.items():
                bucket[int(size)] = bucket.get(int(size), 0) + count
        return {label: dict(sorted(h.items())) for label, h in totals.items() if h}

    # ------------------------------------------------------------------ CSV
    def to_csv(self, path=None) -> str:
        """perf_analyzer's CSV (and our extra columns); written to ``path`` when given."""
        first = "Concurrency" if self.mode == "concurrency" else "Request Rate"
        header = [first, *PERF_ANALYZER_COLUMNS, *EXTRA_COLUMNS]
        ordered = sorted(
            self.levels,
            key=lambda lv: (lv.get("batching") or "", lv.get("inferences_per_second", 0)),
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        for level in ordered:
            writer.writerow(
                [
                    _number(level["value"]),
                    *self._perf_analyzer_cells(level),
                    *self._extra_cells(level),
                ]
            )
        text = buffer.getvalue()
        if path is not None:
            with open(path, "w", newline="") as out:
                out.write(text)
        return text

    def _perf_analyzer_cells(self, level: dict) -> list[str]:
        server = level.get("server") or {}
        send, recv, mean = (
            level.get("client_send_ms"),
            level.get("client_recv_ms"),
            level.get("latency_mean_ms"),
        )
        queue, compute = server.get("queue_ms"), server.get("execution_ms")
        if any(_missing(v) for v in (send, recv, mean)):
            wait = other = float("nan")
        else:
            wait = mean - send - recv
            other = (
                float("nan")
                if _missing(queue) or _missing(compute)
                else max(0.0, wait - queue - compute)
            )
        return [
            _number(level.get("inferences_per_second")),
            _us(send),
            _us(other),
            _us(queue),
            "",
            _us(compute),
            "",
            _us(recv),
            *(_us(level.get(f"p{p}_ms")) for p in (50, 90, 95, 99)),
            _us(mean),
            "" if _missing(send) or _missing(recv) else _us(send + recv),
            _us(wait),
        ]

    def _extra_cells(self, level: dict) -> list[str]:
        server = level.get("server") or {}
        return [
            level.get("batching") or "",
            _number(level.get("throughput")),
            _number(level.get("achieved_rate")),
            _us(level.get("latency_std_ms")),
            _us(level.get("latency_max_ms")),
            str(level.get("errors", 0)),
            _number(server.get("avg_batch_size")),
            _number(server.get("padding_ratio")),
            _number(server.get("full_share")),
            _number(server.get("timeout_share")),
            "yes" if level.get("stable") else "no",
        ]

    # ------------------------------------------------------------------ display
    def plot(self, path=None):
        """Latency percentiles vs throughput, throughput vs level, batch sizes: one matplotlib Figure."""
        from .plots import benchmark_figure

        figure = benchmark_figure(self)
        if path is not None:
            figure.savefig(path, bbox_inches="tight")
        return figure

    def summary(self) -> str:
        what = f"{self.model} at {self.url} over {self.protocol.upper()}, {self.rows_per_request} row(s)/request"
        lines = [f"benchmark of {what}"]
        if not self.server_stats:
            lines.append(f"server batch statistics missing: {self.server_stats_note}")
        if self.interrupted:
            lines.append(f"interrupted: {len(self.levels)} level(s) measured")
        lines.extend(self.notes)
        if self.replay is not None:
            lines.append(self.replay.summary())
        lines.extend(
            f"{self.level_column} {lv['value']:g}: {note}"
            for lv in self.levels
            for note in lv.get("notes", [])
        )
        return "\n".join(lines)

    def table(self, columns=None, *, wide: bool = False):
        """The columns a reader needs (a level's load, throughput, p50/p99, errors, batch size), or ``wide``: all.

        Full precision; :meth:`show` and the result's own display round it.
        Columns that repeat another (rows/s when a request is one row) and
        server columns of a server without statistics are left out.
        """
        frame = self.to_dataframe()
        if columns is not None:
            return frame[list(columns)]
        drop = {"error_kinds", "notes", "rows_per_request"}
        if self.rows_per_request == 1:
            drop.add("inferences_per_second")  # the same number as throughput
        if not self.server_stats:
            drop.update(SERVER_COLUMNS)
        if wide:
            return frame.drop(columns=[c for c in frame if c in drop])
        keep = [
            c
            for c in (*BRIEF_COLUMNS[:1], self.level_column, *BRIEF_COLUMNS[1:])
            if c in frame and c not in drop
        ]
        return frame[keep]

    def show(self, columns=None, *, wide: bool = False):
        """:meth:`table` rounded for display (req/s whole, ms to 2 decimals); ``.data`` keeps full precision."""
        from .display import styled

        return styled(self.table(columns, wide=wide))

    def to_text(self, *, wide: bool = False) -> str:
        """The summary and the table as a terminal shows them (``tfserve bench``; ``--wide``: every column)."""
        from .display import to_text

        table = self.table(wide=wide)
        hidden = len(self.table(wide=True).columns) - len(table.columns)
        more = (
            [f"({hidden} more columns: --wide, or result.table(wide=True))"]
            if hidden and not wide
            else []
        )
        return "\n".join([self.summary(), to_text(table), *more])

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        import html

        from .display import to_html

        summary = html.escape(self.summary()).replace("\n", "<br>")
        return f"<p>{summary}</p>" + to_html(self.table())
