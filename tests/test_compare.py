"""``compare`` and ``%tfserve compare``: two real versions of a real model, served by a real server.

Version 1 and 2 of ``two_heads`` differ in one output (``scores``, whose
argmax flips where x0 != x1) and agree exactly in the other (``shifted``), so
every number the comparison reports can be worked out from the data.
"""

from __future__ import annotations

import numpy as np
import pytest
import savedmodels
from notebook_servers import start_server, url_of

from jupyter_tfserve import compare
from jupyter_tfserve.client.client import Client
from jupyter_tfserve.core.status import ServingError

ROWS = np.array(
    [[1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [0.5, 0.25], [4.0, 1.0], [1.0, 1.0]], np.float32
)
# Rows whose argmax agrees when W swaps its columns: the ties (x0 == x1), where both argmax to 0.
AGREES = float(np.mean(ROWS[:, 0] == ROWS[:, 1]))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    savedmodels.two_heads(root / "heads", 1)
    savedmodels.two_heads(root / "heads", 2, swap=True)
    model_server = start_server(
        root, {"heads": str(root / "heads")}, {"heads": "model_version_policy { all {} }"}
    )
    client = Client(url_of(model_server))
    client.wait_for("heads", 2, timeout=60)
    client.wait_for("heads", 1, timeout=60)
    client.set_label("heads", "stable", 1)
    yield model_server
    model_server.stop()


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_two_versions_that_differ_in_one_output(server, grpc):
    target = f"127.0.0.1:{server.grpc_port}" if grpc else False
    result = compare(
        "heads", 1, 2, ROWS, url=url_of(server), grpc=target, requests=3, batched_requests=2
    )
    assert result.protocol == ("grpc" if grpc else "rest") and result.rows == len(ROWS)
    assert sorted(result.outputs) == ["scores", "shifted"]
    shifted, scores = result.outputs["shifted"], result.outputs["scores"]
    assert shifted.max_abs_diff == shifted.mean_abs_diff == 0.0
    expected = np.abs(ROWS @ np.eye(2) - ROWS @ np.eye(2)[::-1])
    assert scores.max_abs_diff == pytest.approx(expected.max())
    assert scores.mean_abs_diff == pytest.approx(expected.mean())
    assert scores.argmax_agreement == pytest.approx(AGREES)
    # The rows that differ most, largest first: row 1 (|0 - 3| = 3), then row 4 (|4 - 1| = 3).
    table = result.most_different()
    assert [row[0] for row in table.rows[:2]] == ["1", "4"] and table.column("output")[
        0
    ] == "scores"
    assert table.rows[0][3] == "1 / 0"  # argmax of a / b
    for side in ("a", "b"):
        numbers = result.latency[side]
        assert (
            0 < numbers["p50_ms"] <= numbers["p99_ms"]
            and 0 < numbers["batched_p50_ms"] <= numbers["batched_p99_ms"]
        )
    text = repr(result)
    assert text.startswith(
        "heads version 1 vs version 2: largest difference 3 in 'scores'; argmax agrees on 33.3%"
    )
    assert "<table>" in result._repr_html_()


def test_a_label_against_a_version_and_moving_the_label(server):
    result = compare(
        "heads", "stable", "2", ROWS, url=url_of(server), requests=1, batched_requests=1
    )
    assert str(result.a) == "label 'stable'" and result.outputs[
        "scores"
    ].argmax_agreement == pytest.approx(AGREES)
    board = result.widget()
    assert board.label.value == "stable" and board.move_button.description == "Point label at 2"
    board.move_button.click()
    assert "label 'stable' now points at version 2" in board.message.value
    assert Client(url_of(server)).model("heads")["labels"]["stable"] == 2
    assert repr(board) == result.summary()  # the one line a saved notebook shows
    Client(url_of(server)).set_label("heads", "stable", 1)


def test_unknown_sides_say_what_is_wrong(server):
    with pytest.raises(ServingError, match="Unrecognized servable version label: nope"):
        compare("heads", "nope", 2, ROWS, url=url_of(server), requests=1, batched_requests=1)
    with pytest.raises(ServingError, match=r"Specific\(heads, 7\)"):
        compare("heads", 1, 7, ROWS, url=url_of(server), requests=1, batched_requests=1)
