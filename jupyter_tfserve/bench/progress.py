"""Live progress of a sweep: an ipywidgets panel where widgets render, one text line per window elsewhere.

The sweep reports events (``level``, ``running`` every quarter second,
``window``, ``level_done``); a view turns them into the current level, the
running requests per second, p99 and the server's batch size. The parent
process updates the view while it waits on the workers, so the panel moves
during the run, not only at the end.
"""

from __future__ import annotations

import math
import sys

from .options import BenchError


def _fmt(value, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{unit}"


def _level(event: dict) -> str:
    name = "concurrency" if event.get("mode") == "concurrency" else "rate"
    value = event.get("value")
    text = f"{name} {value:g}" + ("" if name == "concurrency" else " req/s")
    return f"[{event['label']}] {text}" if event.get("label") else text


class TextProgress:
    """One line per measurement window and per finished level."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.lines: list[str] = []

    def __call__(self, event: dict) -> None:
        phase = event["phase"]
        if phase == "window":
            line = (
                f"{_level(event)}: window {event['trial']}/{event['max_trials']} "
                f"{_fmt(event['throughput'], '.1f', ' req/s')} p99 {_fmt(event['p99_ms'], '.2f', ' ms')} "
                f"batch {_fmt(event['avg_batch_size'], '.1f')}"
                + (" (stable)" if event.get("stable") else "")
            )
        elif phase == "level_done":
            line = (
                f"{_level(event)}: {_fmt(event['throughput'], '.1f', ' req/s')}, "
                f"p99 {_fmt(event['p99_ms'], '.2f', ' ms')}, errors {event.get('errors') or 0}"
            )
        elif phase == "message":
            line = event["text"]
        else:
            return
        self.lines.append(line)
        print(line, file=self.stream, flush=True)

    def close(self, message: str = "done", failed: bool = False) -> None:
        """Nothing to release: the lines are printed already."""


class WidgetProgress:
    """A small panel: a bar over the levels, the current level and its running numbers."""

    def __init__(self, title: str = "benchmark", display: bool = True):
        import ipywidgets as widgets

        self.title = widgets.HTML(f"<b>{title}</b>")
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="levels")
        self.level = widgets.Label("starting")
        self.rate = widgets.Label("- req/s")
        self.p99 = widgets.Label("p99 -")
        self.batch = widgets.Label("batch -")
        self.status = widgets.Label("")
        row = widgets.HBox(
            [self.level, self.rate, self.p99, self.batch],
            layout=widgets.Layout(justify_content="space-between", width="640px"),
        )
        self.box = widgets.VBox([self.title, self.bar, row, self.status])
        self.name = title
        self.shown = None
        if display:
            from ..client.progress import ShownWidget

            self.shown = ShownWidget(self.box, f"{title}: started")

    def __call__(self, event: dict) -> None:
        phase = event["phase"]
        if "levels" in event:
            self.bar.max = max(1, event["levels"])
        if phase == "level":
            self.bar.value = event["index"]
            self.level.value = _level(event)
            self.status.value = "warming up"
        elif phase == "running":
            self.rate.value = _fmt(event["throughput"], ".1f", " req/s")
            self.p99.value = "p99 " + _fmt(event["p99_ms"], ".2f", " ms")
        elif phase == "window":
            self.rate.value = _fmt(event["throughput"], ".1f", " req/s")
            self.p99.value = "p99 " + _fmt(event["p99_ms"], ".2f", " ms")
            self.batch.value = "batch " + _fmt(event["avg_batch_size"], ".1f")
            self.status.value = f"window {event['trial']}/{event['max_trials']}" + (
                ", stable" if event.get("stable") else ""
            )
        elif phase == "level_done":
            self.bar.value = event["index"] + 1
        elif phase == "message":
            self.status.value = event["text"]

    def close(self, message: str = "done", failed: bool = False) -> None:
        self.status.value = message
        self.bar.bar_style = "danger" if failed else "success"
        if self.shown is not None:
            self.shown.set_text(f"{self.name}: {'failed: ' if failed else ''}{message}")


def make_progress(kind="auto", title: str = "benchmark"):
    """A progress view: ``"auto"`` (widgets in a kernel, else text), ``"widget"``, ``"text"``,
    ``None``/``False`` (silent) or any callable taking the event dicts."""
    from ..client.progress import widgets_available

    if kind is None or kind is False:
        return None
    if callable(kind):
        return kind
    if kind == "auto":
        kind = "widget" if widgets_available() else "text"
    if kind == "widget":
        return WidgetProgress(title)
    if kind == "text":
        return TextProgress()
    raise BenchError(f"progress must be 'auto', 'widget', 'text', None or a callable, not {kind!r}")
