"""Rich output for the notebook layer: HTML tables in front ends that render them, clean text elsewhere.

IPython picks ``_repr_html_`` when the front end shows HTML and ``__repr__``
otherwise (a terminal, ``nbconvert --to script``, a log), so every result the
magic returns is a small object with both. No pandas here: a listing of models
must not depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


class Table:
    """Rows under column headers, with an optional title and footer line."""

    def __init__(
        self, columns: Sequence[str], rows: Sequence[Sequence], *, title: str = "", footer: str = ""
    ):
        self.columns = [str(c) for c in columns]
        self.rows = [["" if v is None else str(v) for v in row] for row in rows]
        self.title = title
        self.footer = footer

    def column(self, name: str) -> list[str]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]

        def line(values) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

        out = [self.title] if self.title else []
        out.append(line(self.columns))
        out.append("  ".join("-" * w for w in widths))
        out.extend(line(row) for row in self.rows)
        if not self.rows:
            out.append("(none)")
        if self.footer:
            out.append(self.footer)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{escape(v)}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        if not self.rows:
            body = f"<tr><td colspan='{len(self.columns)}'><i>(none)</i></td></tr>"
        title = f"<p><b>{escape(self.title)}</b></p>" if self.title else ""
        footer = f"<p>{escape(self.footer)}</p>" if self.footer else ""
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{footer}"


class Text:
    """Preformatted text (snippets, metrics) that stays monospace in HTML front ends."""

    def __init__(self, text: str, *, title: str = ""):
        self.text = text
        self.title = title

    def __repr__(self) -> str:
        return f"{self.title}\n{self.text}" if self.title else self.text

    def _repr_html_(self) -> str:
        title = f"<p><b>{escape(self.title)}</b></p>" if self.title else ""
        return f"{title}<pre>{escape(self.text)}</pre>"


def dtype_name(dtype) -> str:
    """``DT_FLOAT`` for TensorFlow's DataType enum value (names pass through)."""
    if isinstance(dtype, str):
        return dtype
    from ..core import tensors

    return tensors.datatype_name(dtype)


def shape_text(shape) -> str:
    """``(-1, 784)``; ``unknown rank`` for None."""
    if shape is None:
        return "unknown rank"
    dims = [int(d) for d in shape]
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def metrics_table(snapshot: dict, model: str | None = None) -> Table:
    """A metrics snapshot (series -> samples) as a table; latencies in ms with p50/p99 from the buckets.

    Samples are ``{"labels": {...}, "value": v}`` (counters) or ``{"labels", "buckets",
    "counts", "sum", "count"}`` (histograms, TF Serving's microsecond buckets).
    """
    rows = []
    for name, samples in sorted(snapshot.items()):
        if not isinstance(samples, list):
            continue
        short = name.rsplit(":", 1)[-1] if name.startswith(":tensorflow:") else name
        for sample in samples:
            labels = sample.get("labels", {})
            if (
                model
                and labels.get("model_name", model) != model
                and f"/{model}/" not in labels.get("model_path", "")
            ):
                continue
            described = ", ".join(
                f"{k}={v}" for k, v in sorted(labels.items()) if k != "model_name" or not model
            )
            if "counts" in sample:
                scale = 1e-3 if "latency" in name else 1.0  # microseconds -> ms
                count = sample["count"]
                mean = sample["sum"] / count * scale if count else 0.0
                rows.append(
                    [
                        short,
                        described,
                        count,
                        _number(mean),
                        _number(_quantile(sample, 0.5) * scale),
                        _number(_quantile(sample, 0.99) * scale),
                    ]
                )
            else:
                rows.append([short, described, _number(sample.get("value", 0)), "", "", ""])
    title = f"metrics of {model}" if model else "metrics"
    return Table(
        ["metric", "labels", "count/value", "mean", "p50", "p99"],
        rows,
        title=title,
        footer="latencies in ms; p50/p99 are bucket upper bounds",
    )


def _quantile(sample: dict, q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` (the largest bound when it overflows)."""
    total = sample["count"]
    if not total:
        return 0.0
    seen = 0
    for bound, count in zip(sample["buckets"], sample["counts"], strict=True):
        seen += count
        if seen >= q * total:
            return float(bound)
    return float(sample["buckets"][-1])


def _number(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.3g}"
