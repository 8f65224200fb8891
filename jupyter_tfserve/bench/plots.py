"""Matplotlib figures for benchmark and tuner results.

Static images on purpose: they render inline in a notebook, survive an
export to HTML or PDF, and draw with the Agg backend where there is no
display. Figures are made with pyplot (so a notebook's inline backend knows
how to show them) and closed at once, so a figure shows once, where the
caller displays it, and pyplot keeps no reference to it.
"""

from __future__ import annotations

import math
import textwrap

# A percentile is a line style and a marker: the secondary encoding.
PERCENTILE_STYLES = (
    ("p50_ms", "p50", "-", "o"),
    ("p90_ms", "p90", "--", "s"),
    ("p95_ms", "p95", "-.", "^"),
    ("p99_ms", "p99", ":", "D"),
)
# A run (batching off, on, or the only one) is a colour: the first thing a reader sees.
RUN_COLORS = {"": "C0", "off": "tab:gray", "on": "tab:blue"}


def _new_figure(columns: int, width: float = 5.2, height: float = 4.0):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(width * columns, height), squeeze=False)
    plt.close(figure)
    return figure, list(axes[0])


def _runs(result) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for level in result.levels:
        runs.setdefault(level.get("batching") or "", []).append(level)
    return runs


def _run_name(run: str) -> str:
    return f"batching {run}" if run else "measured"


def _finite(values) -> bool:
    return all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values)


def benchmark_figure(result):
    """Latency percentiles vs throughput, throughput vs the sweep's level, and the server's batch sizes.

    Each run has one colour (batching off grey, on blue), so "off vs on" reads
    first; a percentile is a line style and marker within its run's colour.
    The batch-size panel is drawn only when the server reported batches; when it
    did not, a one-line note under the figure says why instead of an empty panel.
    """
    histograms = result.batch_size_histogram()
    figure, panels = _new_figure(3 if histograms else 2)
    latency, throughput = panels[0], panels[1]
    level_name = "concurrency" if result.mode == "concurrency" else "request rate (req/s)"
    runs = _runs(result)
    for run, levels in runs.items():
        color = RUN_COLORS.get(run, "C2")
        x = [lv["throughput"] for lv in levels]
        for key, _name, style, marker in PERCENTILE_STYLES:
            y = [lv[key] for lv in levels]
            if _finite(x + y):
                latency.plot(x, y, style, marker=marker, color=color)
        values = [lv["value"] for lv in levels]
        throughput.plot(values, x, "-", marker="o", color=color, label=_run_name(run))
    values = sorted({lv["value"] for lv in result.levels})
    if result.mode == "rate":
        throughput.plot(values, values, ":", color="black", alpha=0.5, label="offered rate")
    latency.set(xlabel="throughput (req/s)", ylabel="latency (ms)", title="Latency vs throughput")
    throughput.set(
        xlabel=level_name,
        ylabel="throughput (req/s)",
        title=f"Throughput vs {level_name.split(' (')[0]}",
    )
    if result.mode == "concurrency" and len(values) > 1:
        throughput.set_xscale("log", base=2)
        throughput.set_xticks(values, [f"{v:g}" for v in values])
    for axes in (latency, throughput):
        axes.grid(True, alpha=0.3)
    if latency.has_data():
        latency.legend(
            handles=_latency_legend(runs), fontsize="small", ncol=2 if len(runs) > 1 else 1
        )
    if throughput.has_data():
        throughput.legend(fontsize="small")
    title = (
        f"{result.model}: {result.protocol.upper()}, {result.rows_per_request} row(s) per request"
    )
    if result.compared:
        title = f"Batching off vs on. {title}"
    figure.suptitle(title)
    if histograms:
        _histogram(panels[2], histograms)
        figure.tight_layout()
    else:
        figure.tight_layout(rect=(0, 0.06, 1, 1))
        note = (
            f"No server batch statistics: {result.server_stats_note}"
            if result.server_stats_note
            else ""
        )
        figure.text(
            0.01,
            0.01,
            textwrap.shorten(note, 150) or "No server batch statistics.",
            fontsize="small",
            color="dimgray",
        )
    return figure


def _latency_legend(runs: dict) -> list:
    """One entry per run (its colour) and one per percentile (its style): six entries, not eight lines' worth."""
    from matplotlib.lines import Line2D

    compared = len(runs) > 1
    handles = (
        [
            Line2D([], [], color=RUN_COLORS.get(run, "C2"), linewidth=3, label=_run_name(run))
            for run in runs
        ]
        if compared
        else []
    )
    colour = "black" if compared else RUN_COLORS.get(next(iter(runs), ""), "C0")
    handles += [
        Line2D([], [], color=colour, linestyle=style, marker=marker, label=name)
        for _key, name, style, marker in PERCENTILE_STYLES
    ]
    return handles


def _histogram(axes, histograms: dict) -> None:
    """Share of the rows the server ran in batches of each size (all levels' measured windows)."""
    axes.set(title="Server batch sizes", xlabel="batch size (rows)", ylabel="rows served (%)")
    width = 0.8 / len(histograms)
    for i, (run, histogram) in enumerate(sorted(histograms.items())):
        sizes = sorted(histogram)
        rows = sum(size * histogram[size] for size in sizes)
        offset = (i - (len(histograms) - 1) / 2) * width
        axes.bar(
            [size + offset for size in sizes],
            [100.0 * size * histogram[size] / rows for size in sizes],
            width,
            color=RUN_COLORS.get(run, "C2"),
            label=_run_name(run) if run else None,
        )
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(True, axis="y", alpha=0.3)
    if len(histograms) > 1:
        axes.legend(fontsize="small")


def tuner_figure(result):
    """p99 vs throughput of every trial, the Pareto front as a staircase, the SLO and the chosen setting.

    The y axis spans the trials; an SLO far above them would squash them into
    a sliver, so it is then marked at the top edge with its value instead of
    drawn to scale. The chosen setting's note stays inside the axes.
    """
    figure, (axes,) = _new_figure(1, width=7.0, height=4.5)
    trials = [t for t in result.trials if _finite([t.get("throughput"), t.get("p99_ms")])]
    ok = [t for t in trials if t["meets_slo"]]
    bad = [t for t in trials if not t["meets_slo"]]
    if ok:
        axes.scatter(
            [t["throughput"] for t in ok],
            [t["p99_ms"] for t in ok],
            marker="o",
            color="tab:blue",
            label="meets SLO",
        )
    if bad:
        axes.scatter(
            [t["throughput"] for t in bad],
            [t["p99_ms"] for t in bad],
            marker="x",
            color="tab:orange",
            label="misses SLO",
        )
    front = sorted((t for t in result.pareto_front() if t in trials), key=lambda t: t["throughput"])
    if front:
        axes.plot(
            [t["throughput"] for t in front],
            [t["p99_ms"] for t in front],
            "-o",
            drawstyle="steps-pre",
            color="dimgray",
            markersize=3,
            label="Pareto front",
        )
    p99s = [t["p99_ms"] for t in trials]
    top = max(p99s, default=result.slo_ms)
    slo = f"p99 SLO {result.slo_ms:g} ms"
    slo_to_scale = result.slo_ms <= 1.5 * top
    if slo_to_scale:
        axes.axhline(result.slo_ms, color="red", linestyle="--", label=slo)
    else:  # far above the data: said at the top edge, not drawn to scale
        axes.annotate(
            f"{slo} (above)",
            xy=(0.99, 0.98),
            xycoords="axes fraction",
            ha="right",
            va="top",
            color="red",
            fontsize="small",
        )
    if result.best is not None:
        best = result.best
        axes.scatter(
            [best["throughput"]],
            [best["p99_ms"]],
            s=160,
            facecolors="none",
            edgecolors="green",
            linewidths=2,
            label="chosen",
        )
    axes.set(
        xlabel="throughput (req/s)",
        ylabel="p99 latency (ms)",
        title=f"Batching search: {result.model}",
    )
    axes.margins(0.08)
    if p99s:
        low = min(p99s)
        upper = max(top, result.slo_ms) if slo_to_scale else top
        axes.set_ylim(max(0.0, low - 0.15 * (upper - low + 1e-9)), upper * 1.12)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="upper left")
    if result.best is not None:
        _annotate_inside(axes, result.describe(result.best), best["throughput"], best["p99_ms"])
    figure.tight_layout()
    return figure


def _annotate_inside(axes, text: str, x: float, y: float) -> None:
    """A note beside the point (x, y), on the side of it that has room, so it stays inside the axes."""
    left, right = axes.get_xlim()
    bottom, top = axes.get_ylim()
    on_right = (x - left) > (right - left) / 2
    high = (y - bottom) > (top - bottom) / 2
    axes.annotate(
        text.replace(", ", "\n"),
        (x, y),
        textcoords="offset points",
        xytext=(-10 if on_right else 10, -10 if high else 10),
        ha="right" if on_right else "left",
        va="top" if high else "bottom",
        fontsize="small",
        annotation_clip=True,
    )
