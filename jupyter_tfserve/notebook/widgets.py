"""``%tfserve dashboard``: served models in a live table, with buttons to steer them.

The dashboard is an ipywidgets ``VBox``: an HTML table of models (versions,
states, labels, errors), a model/version/label selection, and buttons to
unload (after a confirmation), set a label, roll back, reload and refresh. Every action goes through
the same :class:`~jupyter_tfserve.client.client.Client` as the magic, so the
dashboard works against the Jupyter extension and the embedded server alike.

It refreshes itself every ``refresh_seconds`` on a daemon thread (and after
each action) until closed; widget updates from that thread reach the front
end through the kernel's comm channel like any other.
"""

from __future__ import annotations

import threading
from html import escape

import ipywidgets as widgets

from ..core.status import ServingError

_STATE_COLORS = {
    "AVAILABLE": "#1a7f37",
    "LOADING": "#9a6700",
    "START": "#9a6700",
    "UNLOADING": "#9a6700",
    "END": "#6e7781",
}


def models_html(models: list[dict]) -> str:
    """The table the dashboard shows: one row per version."""
    rows = []
    for model in models:
        labels_of: dict[int, list[str]] = {}
        for label, version in model.get("labels", {}).items():
            labels_of.setdefault(int(version), []).append(label)
        versions = model.get("versions") or [
            {"version": "-", "state": "no versions", "error_message": model.get("source_error", "")}
        ]
        for index, version in enumerate(versions):
            state = version["state"]
            color = _STATE_COLORS.get(state, "#cf222e")
            labels = (
                ", ".join(sorted(labels_of.get(int(version["version"]), [])))
                if version["version"] != "-"
                else ""
            )
            rows.append(
                "<tr>"
                f"<td>{escape(model['name']) if index == 0 else ''}</td>"
                f"<td>{escape(str(version['version']))}</td>"
                f"<td style='color:{color}'>{escape(state)}</td>"
                f"<td>{escape(labels)}</td>"
                f"<td>{escape(version.get('error_message', ''))}</td>"
                "</tr>"
            )
    if not rows:
        rows.append("<tr><td colspan='5'><i>no models served</i></td></tr>")
    head = "".join(
        f"<th style='text-align:left'>{h}</th>"
        for h in ("model", "version", "state", "labels", "error")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


class Dashboard(widgets.VBox):
    """A live view of the server's models. ``close()`` stops the refresh thread."""

    def __init__(self, client, *, refresh_seconds: float = 5.0, **kwargs):
        self.client = client
        self.models: list[dict] = []
        self.table = widgets.HTML()
        self.model = widgets.Dropdown(description="model", options=[])
        self.version = widgets.Dropdown(description="version", options=[])
        self.label = widgets.Text(description="label", placeholder="stable")
        self.unload_button = widgets.Button(
            description="Unload", button_style="danger", icon="trash"
        )
        self.label_button = widgets.Button(description="Set label", icon="tag")
        self.rollback_button = widgets.Button(description="Roll back", icon="undo")
        self.reload_button = widgets.Button(description="Reload", icon="refresh")
        self.refresh_button = widgets.Button(description="Refresh", icon="sync")
        self.message = widgets.HTML()
        # Unloading stops a model from answering: asked first, as the JupyterLab panel does.
        self.confirm_text = widgets.HTML()
        self.confirm_button = widgets.Button(description="Unload", button_style="danger")
        self.cancel_button = widgets.Button(description="Cancel")
        self.confirm = widgets.HBox(
            [self.confirm_text, self.confirm_button, self.cancel_button],
            layout=widgets.Layout(display="none"),
        )
        self.unload_button.on_click(lambda _: self._ask_unload())
        self.confirm_button.on_click(lambda _: self._confirmed(self._unload))
        self.cancel_button.on_click(lambda _: self._confirmed(None))
        self.label_button.on_click(lambda _: self._act(self._set_label))
        self.rollback_button.on_click(lambda _: self._act(self._rollback))
        self.reload_button.on_click(lambda _: self._act(self._reload))
        self.refresh_button.on_click(lambda _: self._act(lambda: ""))
        self.model.observe(self._model_changed, names="value")
        super().__init__(
            [
                widgets.HTML(f"<b>tfserve</b> at <code>{escape(client.url)}</code>"),
                self.table,
                widgets.HBox([self.model, self.version, self.label]),
                widgets.HBox(
                    [
                        self.unload_button,
                        self.label_button,
                        self.rollback_button,
                        self.reload_button,
                        self.refresh_button,
                    ]
                ),
                self.confirm,
                self.message,
            ],
            **kwargs,
        )
        self._pending_unload = ""
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.refresh_seconds = refresh_seconds
        self.refresh()
        self._thread = None
        if refresh_seconds > 0:
            self._thread = threading.Thread(
                target=self._refresh_loop, name="tfserve-dashboard", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------------ refreshing
    def refresh(self) -> None:
        """Re-read the models and redraw (selection kept when it still exists)."""
        with self._lock:
            try:
                self.models = self.client.models()
            except ServingError as exc:
                self._say(exc.message, error=True)
                return
            self.table.value = models_html(self.models)
            names = [m["name"] for m in self.models]
            current = self.model.value
            if list(self.model.options) != names:
                self.model.options = names
            self.model.value = current if current in names else (names[0] if names else None)
            self._fill_versions()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            self.refresh()

    def _model_changed(self, change) -> None:
        with self._lock:
            self._fill_versions()

    def _fill_versions(self) -> None:
        entry = self._selected()
        versions = [int(v["version"]) for v in entry.get("versions", [])] if entry else []
        current = self.version.value
        if list(self.version.options) != versions:
            self.version.options = versions
        self.version.value = current if current in versions else (versions[0] if versions else None)

    def _selected(self) -> dict | None:
        return next((m for m in self.models if m["name"] == self.model.value), None)

    def __repr__(self) -> str:  # the text a saved notebook keeps beside the widget
        names = ", ".join(m["name"] for m in self.models) or "no models"
        return f"tfserve dashboard at {self.client.url}: {names}"

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        super().close()

    # ------------------------------------------------------------------ actions
    def _act(self, action) -> None:
        try:
            message = action()
        except ServingError as exc:
            self._say(exc.message, error=True)
        except ValueError as exc:
            self._say(str(exc), error=True)
        else:
            self.refresh()
            if message:
                self._say(message)

    def _ask_unload(self) -> None:
        """Show the confirmation row for the selected model; nothing is unloaded yet."""
        name = self.model.value
        if not name:
            self._say("No model selected", error=True)
            return
        self._pending_unload = name
        self.confirm_text.value = f'Unload <b>{escape(name)}</b>? Clients calling it get "not found" until it is loaded again.'
        self.confirm_button.description = f"Unload {name}"
        self.confirm.layout.display = "flex"

    def _confirmed(self, action) -> None:
        """Hide the confirmation row, then run ``action`` (None: the user cancelled)."""
        self.confirm.layout.display = "none"
        if action is not None:
            self._act(action)

    def _say(self, text: str, *, error: bool = False) -> None:
        color = "#cf222e" if error else "#1a7f37"
        self.message.value = f"<span style='color:{color}'>{escape(text)}</span>"

    def _name(self) -> str:
        if not self.model.value:
            raise ValueError("No model selected")
        return self.model.value

    def _unload(self) -> str:
        name = (
            self._pending_unload
        )  # the model the user confirmed, even if the selection moved since
        self.client.unload(name)
        return f"{name} unloaded"

    def _set_label(self) -> str:
        name, label = self._name(), self.label.value.strip()
        if not label:
            raise ValueError("Type a label first")
        if self.version.value is None:
            raise ValueError("No version selected")
        self.client.set_label(name, label, self.version.value)
        return f"{name}: {label} -> version {self.version.value}"

    def _rollback(self) -> str:
        name = self._name()
        answer = self.client.rollback(name)
        return f"{name} rolled back to version {answer.get('version', '?')}"

    def _reload(self) -> str:
        name = self._name()
        self.client.reload(name)
        return f"{name} reloaded"


class ComparisonWidget(widgets.VBox):
    """A :class:`~jupyter_tfserve.notebook.compare.Comparison` with a button that points a label at side b.

    The label defaults to side a's when a was named by label (``compare(m, "stable", 2)``
    then offers to move ``stable`` to version 2), else to ``stable``.
    """

    def __init__(self, comparison, **kwargs):
        self.comparison = comparison
        target = comparison.b.version if comparison.b.version is not None else comparison.b.label
        self.label = widgets.Text(value=comparison.a.label or "stable", description="label")
        self.move_button = widgets.Button(description=f"Point label at {target}", icon="tag")
        self.message = widgets.HTML()
        self.move_button.on_click(lambda _: self._move())
        super().__init__(
            [
                widgets.HTML(comparison._repr_html_()),
                widgets.HBox([self.label, self.move_button]),
                self.message,
            ],
            **kwargs,
        )

    def _move(self) -> None:
        label = self.label.value.strip()
        if not label:
            self.message.value = "<span style='color:#cf222e'>Type a label first</span>"
            return
        try:
            version = self.comparison.move_label(label)
        except ServingError as exc:
            self.message.value = f"<span style='color:#cf222e'>{escape(exc.message)}</span>"
            return
        self.message.value = (
            f"<span style='color:#1a7f37'>{escape(self.comparison.model)}: label {escape(label)!r} "
            f"now points at version {version}</span>"
        )

    def __repr__(self) -> str:  # the text a saved notebook keeps beside the widget
        return self.comparison.summary()
