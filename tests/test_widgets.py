"""The dashboard and progress widgets, driven without a front end: trait changes and ``click()``."""

from __future__ import annotations

import time

import numpy as np
import pytest
import savedmodels
from notebook_servers import start_server, url_of

from jupyter_tfserve.client.client import Client
from jupyter_tfserve.client.progress import Progress
from jupyter_tfserve.notebook.widgets import Dashboard, models_html


@pytest.fixture
def server(tmp_path, model_store):
    savedmodels.half_plus_two(tmp_path / "half", 1)
    savedmodels.half_plus_two(tmp_path / "half", 2, slope=1.0)
    savedmodels.multi_io(tmp_path / "multi", 1)
    server = start_server(
        tmp_path,
        {"half": str(tmp_path / "half"), "multi": str(tmp_path / "multi")},
        {"half": "model_version_policy { all {} }"},
        file_system_poll_wait_seconds=0,  # no polling: new versions appear only when reloaded
    )
    yield server
    server.stop()


@pytest.fixture
def board(server):
    dashboard = Dashboard(Client(url_of(server)), refresh_seconds=0)
    yield dashboard
    dashboard.close()


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_table_lists_models_versions_states(board):
    assert list(board.model.options) == ["half", "multi"]
    assert board.model.value == "half" and list(board.version.options) == [2, 1]
    html = board.table.value
    assert html.count("AVAILABLE") == 3 and "<td>half</td>" in html and "<td>multi</td>" in html
    # Saved with the notebook, the widget reads as one line, not its children's repr.
    assert (
        board._repr_mimebundle_()["text/plain"]
        == f"tfserve dashboard at {board.client.url}: half, multi"
    )


def test_choosing_a_model_fills_its_versions(board):
    board.model.value = "multi"
    assert list(board.version.options) == [1] and board.version.value == 1
    board.model.value = "half"
    assert list(board.version.options) == [2, 1]


def test_label_button_sets_the_label_for_the_selected_version(board, server):
    board.version.value = 1
    board.label.value = "stable"
    board.label_button.click()
    assert "half: stable -&gt; version 1" in board.message.value
    assert server.manager.labels("half") == {"stable": 1}
    assert "<td>stable</td>" in board.table.value
    client = Client(url_of(server))
    np.testing.assert_allclose(client.predict("half", [[2.0]], label="stable"), [[3.0]])


def test_label_without_text_is_an_error_message_and_changes_nothing(board, server):
    board.label.value = "  "
    board.label_button.click()
    assert "Type a label first" in board.message.value and "#cf222e" in board.message.value
    assert server.manager.labels("half") == {}


def test_rollback_and_unload_buttons(board, server):
    board.rollback_button.click()
    assert "rolled back" in board.message.value
    board.model.value = "multi"
    board.unload_button.click()  # asks first: nothing is unloaded until confirmed
    assert (
        board.confirm.layout.display == "flex"
        and "Unload <b>multi</b>?" in board.confirm_text.value
    )
    board.cancel_button.click()
    assert board.confirm.layout.display == "none"
    assert "multi" in server.manager.model_names()
    board.unload_button.click()
    assert board.confirm_button.description == "Unload multi"
    board.confirm_button.click()
    assert board.confirm.layout.display == "none"
    assert "multi unloaded" in board.message.value
    wait_until(lambda: "multi" not in server.manager.model_names(), what="multi to unload")
    board.refresh_button.click()
    assert list(board.model.options) == ["half"]


def test_reload_button_loads_versions_written_since(board, server, tmp_path):
    board.model.value = "half"
    savedmodels.half_plus_two(tmp_path / "half", 3, slope=2.0)
    board.reload_button.click()
    assert "half reloaded" in board.message.value
    client = Client(url_of(server))
    client.wait_for("half", 3, timeout=30)
    board.refresh()
    assert 3 in board.version.options


def test_refreshes_itself(server):
    board = Dashboard(Client(url_of(server)), refresh_seconds=0.1)
    try:
        server.manager.remove_model("multi")  # changed behind the dashboard's back
        wait_until(lambda: list(board.model.options) == ["half"], what="the dashboard to notice")
        assert "multi" not in board.table.value
    finally:
        board.close()
    assert not board._thread.is_alive()


def test_a_dead_server_shows_an_error_line(server):
    board = Dashboard(Client(url_of(server), timeout=5), refresh_seconds=0)
    try:
        server.stop()
        board.refresh()
        assert "Cannot reach the tfserve server" in board.message.value
        assert list(board.model.options) == ["half", "multi"]  # the last view stays
    finally:
        board.close()


def test_models_html_shows_errors_and_empty_servers():
    html = models_html(
        [
            {
                "name": "m",
                "labels": {},
                "versions": [
                    {"version": 3, "state": "END", "error_message": "Could not parse SavedModel"}
                ],
            }
        ]
    )
    assert "Could not parse SavedModel" in html and "END" in html
    assert "no models served" in models_html([])


def test_progress_widget_and_text_modes(capsys):
    bar = Progress("export m", mode="widget")
    bar.update(0.5, "writing")
    assert (bar.bar.value, bar.label.value) == (0.5, "writing")
    bar.done("version 1")
    assert bar.bar.value == 1.0 and bar.bar.bar_style == "success"
    failing = Progress("serve m", mode="widget")
    failing.fail("no such model")
    assert failing.bar.bar_style == "danger" and failing.label.value == "no such model"

    text = Progress("export m", mode="text")
    text.update(0.1, "tracing")
    text.update(0.2, "tracing")
    text.done("version 1")
    assert capsys.readouterr().out.splitlines()[-2:] == ["export m: tracing", "export m: version 1"]
    # Outside a kernel, "auto" means text.
    assert Progress("x").mode == "text"
