"""Compare two versions of a served model on the same data: do they agree, and which is faster?

``compare("mnist", 1, 2, x_test[:512])`` (or ``%tfserve compare mnist 1 2
--data x_test[:512]``) sends the same rows to both sides (a version number or
a label each), over REST or gRPC, to any TF Serving-compatible server, and
reports:

* agreement per output: the largest and the mean absolute difference, the
  share of rows whose argmax agrees when the output scores classes (two or
  more columns), and the rows that differ most;
* latency of each side: p50/p99 of one-row requests, and of requests that
  carry all the rows (batched), measured alternately so both see the same
  server load.

The result prints as text, shows as HTML tables, and ``widget()`` adds a
button that points a label at the second side, which is how a canary becomes
the stable version once it agrees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..client import data as data_lib
from ..core.status import Code, ServingError
from . import render

MOST_DIFFERENT_ROWS = 5


@dataclass(frozen=True)
class Side:
    """One side of the comparison: a version number or a label."""

    version: int | None = None
    label: str | None = None

    @classmethod
    def parse(cls, value) -> Side:
        """``2`` or ``"2"`` is a version; any other text a label."""
        if isinstance(value, Side):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return cls(version=int(value))
        text = str(value).strip()
        if text.isdigit():
            return cls(version=int(text))
        if not text:
            raise ServingError(
                Code.INVALID_ARGUMENT, "compare needs two versions or labels, got an empty one"
            )
        return cls(label=text)

    def __str__(self) -> str:
        return f"version {self.version}" if self.version is not None else f"label {self.label!r}"


@dataclass
class OutputAgreement:
    """How one output of the two sides agrees, row by row."""

    name: str
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float | None  # None: not a class-score output
    row_diffs: np.ndarray = field(repr=False)  # per row: the largest abs difference
    argmax_a: np.ndarray | None = field(default=None, repr=False)
    argmax_b: np.ndarray | None = field(default=None, repr=False)


def agreement(name: str, a: np.ndarray, b: np.ndarray) -> OutputAgreement:
    """Differences of one output; outputs that are not numbers count as equal or not, row by row."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ServingError(
            Code.FAILED_PRECONDITION,
            f"output {name!r} has shape {a.shape} on one side and {b.shape} on the other",
        )
    rows = a.shape[0] if a.ndim else 1
    if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).reshape(rows, -1)
    else:
        diff = (a != b).reshape(rows, -1).astype(np.float64)
    row_diffs = diff.max(axis=1) if diff.size else np.zeros(rows)
    classes = a.ndim == 2 and a.shape[1] >= 2 and a.dtype.kind == "f"
    argmax_a = a.argmax(axis=1) if classes else None
    argmax_b = b.argmax(axis=1) if classes else None
    return OutputAgreement(
        name=name,
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        argmax_agreement=float(np.mean(argmax_a == argmax_b)) if classes else None,
        row_diffs=row_diffs,
        argmax_a=argmax_a,
        argmax_b=argmax_b,
    )


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


class Comparison:
    """Two sides' outputs on the same rows: agreement per output, latency per side."""

    def __init__(
        self,
        model: str,
        a: Side,
        b: Side,
        rows: int,
        outputs: dict[str, OutputAgreement],
        latency: dict[str, dict[str, float]],
        client,
        protocol: str,
    ):
        self.model = model
        self.a, self.b = a, b
        self.rows = rows
        self.outputs = outputs
        self.latency = (
            latency  # {"a"|"b": {"p50_ms", "p99_ms", "batched_p50_ms", "batched_p99_ms"}}
        )
        self.client = client
        self.protocol = protocol

    # ------------------------------------------------------------------ reading it
    def agreement_table(self) -> render.Table:
        rows = [
            [
                o.name,
                f"{o.max_abs_diff:.3g}",
                f"{o.mean_abs_diff:.3g}",
                "-" if o.argmax_agreement is None else f"{o.argmax_agreement:.1%}",
            ]
            for o in self.outputs.values()
        ]
        return render.Table(
            ["output", "max |a - b|", "mean |a - b|", "argmax agreement"],
            rows,
            title=f"{self.model}: {self.a} (a) vs {self.b} (b) on {self.rows} rows over "
            f"{self.protocol.upper()}",
        )

    def latency_table(self) -> render.Table:
        rows = [
            [
                f"{name} ({side})",
                *(
                    f"{self.latency[name][k]:.2f}"
                    for k in ("p50_ms", "p99_ms", "batched_p50_ms", "batched_p99_ms")
                ),
            ]
            for name, side in (("a", self.a), ("b", self.b))
        ]
        return render.Table(
            [
                "side",
                "p50 ms (1 row)",
                "p99 ms (1 row)",
                f"p50 ms ({self.rows} rows)",
                f"p99 ms ({self.rows} rows)",
            ],
            rows,
            title="latency",
        )

    def most_different(self, count: int = MOST_DIFFERENT_ROWS) -> render.Table:
        """The rows with the largest difference in any output (row index, output, difference, argmaxes)."""
        entries = []
        for o in self.outputs.values():
            for row in np.argsort(-o.row_diffs, kind="stable")[:count]:
                if o.row_diffs[row] > 0:
                    entries.append((float(o.row_diffs[row]), int(row), o))
        entries.sort(key=lambda e: (-e[0], e[1]))
        rows = [
            [
                row,
                o.name,
                f"{diff:.3g}",
                "" if o.argmax_a is None else f"{o.argmax_a[row]} / {o.argmax_b[row]}",
            ]
            for diff, row, o in entries[:count]
        ]
        return render.Table(
            ["row", "output", "max |a - b|", "argmax a / b"],
            rows,
            title="rows that differ most",
            footer="" if rows else "every row agrees exactly",
        )

    def summary(self) -> str:
        worst = max(self.outputs.values(), key=lambda o: o.max_abs_diff, default=None)
        if worst is None or worst.max_abs_diff == 0:
            verdict = "identical outputs"
        else:
            verdict = f"largest difference {worst.max_abs_diff:.3g} in {worst.name!r}"
        # Argmax is worth a word where scores differ; where they are identical it agrees trivially.
        classes = [
            o
            for o in self.outputs.values()
            if o.argmax_agreement is not None and o.max_abs_diff > 0
        ]
        if classes:
            verdict += "; argmax agrees on " + ", ".join(
                f"{o.argmax_agreement:.1%} ({o.name})" for o in classes
            )
        return f"{self.model} {self.a} vs {self.b}: {verdict}"

    def __repr__(self) -> str:
        parts = [
            self.summary(),
            self.agreement_table(),
            self.latency_table(),
            self.most_different(),
        ]
        return "\n\n".join(str(p) if isinstance(p, str) else repr(p) for p in parts)

    def _repr_html_(self) -> str:
        from html import escape

        tables = (self.agreement_table(), self.latency_table(), self.most_different())
        return f"<p>{escape(self.summary())}</p>" + "".join(t._repr_html_() for t in tables)

    # ------------------------------------------------------------------ acting on it
    def version_of(self, side: Side) -> int:
        """The version a side resolves to now (a label's current version)."""
        if side.version is not None:
            return side.version
        labels = self.client.model(self.model).get("labels", {})
        if side.label not in labels:
            raise ServingError(Code.NOT_FOUND, f"{self.model} has no label {side.label!r}")
        return int(labels[side.label])

    def move_label(self, label: str) -> int:
        """Point ``label`` at side b's version (the candidate that was compared); returns that version."""
        version = self.version_of(self.b)
        self.client.set_label(self.model, label, version)
        return version

    def widget(self):
        """The comparison with a "move label" button (ipywidgets)."""
        from .widgets import ComparisonWidget

        return ComparisonWidget(self)


def compare(
    model: str,
    a,
    b,
    data,
    *,
    client=None,
    url: str | None = None,
    token: str | None = None,
    grpc: bool | str = False,
    signature: str | None = None,
    requests: int = 20,
    batched_requests: int = 5,
) -> Comparison:
    """Send ``data`` to two versions (or labels) ``a`` and ``b`` of ``model``; compare outputs and latency.

    ``client`` is a :class:`~jupyter_tfserve.client.client.Client` (default: one
    for ``url``, or the server this process finds). ``grpc`` sends over gRPC: True
    for the client's gRPC address, or a ``host:port``. ``requests`` one-row requests
    and ``batched_requests`` all-row requests go to each side, alternately.
    """
    from ..client.client import Client

    client = client or Client(url, token, grpc_target=grpc if isinstance(grpc, str) else None)
    side_a, side_b = Side.parse(a), Side.parse(b)
    if requests < 1 or batched_requests < 1:
        raise ServingError(
            Code.INVALID_ARGUMENT, "requests and batched_requests must be at least 1"
        )

    def run(side: Side, rows):
        return client.predict(
            model,
            rows,
            version=side.version,
            label=side.label,
            signature=signature,
            grpc=bool(grpc),
        )

    first_a, first_b = run(side_a, data), run(side_b, data)
    # One output comes back as an array, without its name: the signature has it.
    only = next(
        iter(
            client.signature(model, signature, version=side_a.version, label=side_a.label).outputs
        ),
        "output",
    )
    named_a, named_b = _as_outputs(first_a, only), _as_outputs(first_b, only)
    if named_a.keys() != named_b.keys():
        raise ServingError(
            Code.FAILED_PRECONDITION,
            f"{side_a} has outputs {sorted(named_a)} and {side_b} has {sorted(named_b)}",
        )
    outputs = {name: agreement(name, named_a[name], named_b[name]) for name in sorted(named_a)}
    rows = _row_count(data)
    latency = _latency(run, (side_a, side_b), data, rows, requests, batched_requests)
    return Comparison(
        model, side_a, side_b, rows, outputs, latency, client, "grpc" if grpc else "rest"
    )


def _as_outputs(answer, only: str) -> dict[str, np.ndarray]:
    """A predict answer (array, dict of arrays, DataFrame) as ``{output name: array}``."""
    if data_lib.is_dataframe(answer):
        return {
            str(c): np.stack(answer[c].to_numpy())
            if answer[c].dtype == object
            else answer[c].to_numpy()
            for c in answer.columns
        }
    if isinstance(answer, dict):
        return {str(k): np.asarray(v) for k, v in answer.items()}
    return {only: np.asarray(answer)}


def _row_count(data) -> int:
    if data_lib.is_dataframe(data):
        return len(data)
    if isinstance(data, dict):
        return data_lib.batch_size({k: np.asarray(v) for k, v in data.items()}) or 1
    array = np.asarray(data)
    return array.shape[0] if array.ndim else 1


def _row(data, index: int):
    """Row ``index`` of the data as a one-row batch, in the data's own kind."""
    if data_lib.is_dataframe(data):
        return data.iloc[index : index + 1]
    if isinstance(data, dict):
        return {k: np.asarray(v)[index : index + 1] for k, v in data.items()}
    return np.asarray(data)[index : index + 1]


def _latency(
    run, sides, data, rows: int, requests: int, batched_requests: int
) -> dict[str, dict[str, float]]:
    """p50/p99 of one-row and all-row requests per side, sent alternately (a, b, a, b, ...)."""
    single: dict[str, list[float]] = {"a": [], "b": []}
    batched: dict[str, list[float]] = {"a": [], "b": []}
    for i in range(requests):
        row = _row(data, i % rows)
        for name, side in zip("ab", sides, strict=True):
            started = time.perf_counter()
            run(side, row)
            single[name].append(time.perf_counter() - started)
    for _ in range(batched_requests):
        for name, side in zip("ab", sides, strict=True):
            started = time.perf_counter()
            run(side, data)
            batched[name].append(time.perf_counter() - started)
    result = {}
    for name in "ab":
        p50, p99 = _percentiles(single[name])
        b50, b99 = _percentiles(batched[name])
        result[name] = {"p50_ms": p50, "p99_ms": p99, "batched_p50_ms": b50, "batched_p99_ms": b99}
    return result
