"""Progress for long steps (export, load): an ipywidgets bar where widgets render, text lines elsewhere.

A kernel behind a Jupyter front end renders widgets; a terminal IPython or a
plain script does not, and gets one text line per step instead of a widget's
``repr``. The magic's ``progress`` trait overrides the guess.
"""

from __future__ import annotations

import sys


def widgets_available() -> bool:
    """True inside an IPython kernel (a front end that can render widgets) with ipywidgets installed."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None or getattr(shell, "kernel", None) is None:
            return False
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class ShownWidget:
    """A widget displayed with a one-line ``text/plain`` fallback that says how the step ended.

    A saved notebook keeps each output's text beside the widget's view; without
    the widget's state (GitHub, a notebook reopened after its kernel is gone) that
    text is what readers see. ipywidgets' own is the widget's ``repr``
    (``HBox(children=(FloatProgress(value=0.0, ...``); this one is the step's last message.
    """

    def __init__(self, widget, text: str):
        from IPython.display import display

        self.widget = widget
        self.handle = display(self._bundle(text), raw=True, display_id=True)

    def _bundle(self, text: str) -> dict:
        return {**self.widget._repr_mimebundle_(), "text/plain": text}

    def set_text(self, text: str) -> None:
        """Replace the fallback text (the widget's view stays the same model); outside IPython there is none."""
        if self.handle is not None:
            self.handle.update(self._bundle(text), raw=True)


class Progress:
    """``update(fraction, message)`` while working, then ``done(message)`` or ``fail(message)``."""

    def __init__(self, title: str, mode: str = "auto"):
        self.title = title
        self.mode = ("widget" if widgets_available() else "text") if mode == "auto" else mode
        self.last_message = ""
        self.bar = self.label = None
        if self.mode == "widget":
            import ipywidgets as widgets

            self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description=title)
            self.label = widgets.Label("")
            self.box = widgets.HBox([self.bar, self.label])
            self.shown = ShownWidget(self.box, f"{title}: started")

    def __call__(self, fraction: float, message: str) -> None:
        self.update(fraction, message)

    def update(self, fraction: float, message: str) -> None:
        if self.mode == "widget":
            self.bar.value = max(0.0, min(1.0, fraction))
            self.label.value = message
        elif self.mode == "text" and message != self.last_message:
            print(f"{self.title}: {message}", file=sys.stdout, flush=True)
        self.last_message = message

    def done(self, message: str = "done") -> None:
        self.update(1.0, message)
        if self.bar is not None:
            self.bar.bar_style = "success"
            self.shown.set_text(f"{self.title}: {message}")

    def fail(self, message: str) -> None:
        if self.bar is not None:
            self.bar.bar_style = "danger"
            self.label.value = message
            self.shown.set_text(f"{self.title}: failed: {message}")
        self.last_message = message
