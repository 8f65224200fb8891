"""The batching tuner (``jupyter_tfserve.bench.tune``) on a model whose behaviour is known.

The sleeper model sleeps 25 ms per run whatever the batch size, so with 16
closed-loop clients and one batch thread a maximum batch of 1 queues every
request behind fifteen others (p99 near 16 runs), while a maximum of 16 serves
them in two alternating batches (p99 near 2 runs). With a p99 SLO of 200 ms,
far from both, the right answer is 16, and the tuner must find it, apply it live, and write it in TF Serving's
text format.
"""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest
import savedmodels
from google.protobuf import text_format
from ports import free_port

from jupyter_tfserve.bench import BenchError, tune
from jupyter_tfserve.bench.tuner import TuneResult
from jupyter_tfserve.core.batching_params import load_batching_parameters
from jupyter_tfserve.core.extra_protos import BatchingParameters
from jupyter_tfserve.server import ModelServer, ServerOptions

SLEEP_MS = 25.0
FAST = {"warmup": "0.2s", "window": "0.4s", "max_trials": 3, "progress": None}


def _serve(tmp_path_factory, version_dir: str, **options) -> ModelServer:
    base = tmp_path_factory.mktemp("tuner_repo") / "sleeper"
    shutil.copytree(version_dir, base / "1")
    opts = ServerOptions(
        rest_api_port=free_port(),
        port=0,
        model_name="sleeper",
        model_base_path=str(base),
        file_system_poll_wait_seconds=0,
        enable_management_api=True,  # the tuner applies batching parameters live
        **options,
    )
    server = ModelServer(opts).start(timeout=120)
    server.url = f"http://127.0.0.1:{server.rest_port}"
    return server


@pytest.fixture(scope="module")
def sleeper_dir(tmp_path_factory):
    return savedmodels.sleeper(tmp_path_factory.mktemp("tuner_models") / "sleeper", 1, SLEEP_MS)


@pytest.fixture(scope="module")
def batched(tmp_path_factory, sleeper_dir):
    server = _serve(tmp_path_factory, sleeper_dir, enable_batching=True)
    yield server
    server.stop()


def live_parameters(server) -> dict:
    with urllib.request.urlopen(f"{server.url}/tfserve/api/models/sleeper/batching") as response:
        return json.loads(response.read())["parameters"]


def test_tuner_picks_the_right_point_applies_it_and_writes_tf_servings_file(batched, tmp_path):
    output = tmp_path / "batching_parameters.txt"
    result = tune(
        "sleeper",
        url=batched.url,
        p99="200ms",
        concurrency=16,
        max_batch_size="1,16",
        batch_timeout_micros="0,300000",
        num_batch_threads=1,
        output=output,
        **FAST,
    )
    assert result.best is not None, repr(result)
    assert (
        result.best["max_batch_size"],
        result.best["batch_timeout_micros"],
        result.best["num_batch_threads"],
    ) == (16, 0, 1), repr(result)
    by_size = {t["max_batch_size"]: t for t in result.trials if t["measured"]}
    assert not by_size[1]["meets_slo"] and by_size[1]["p99_ms"] > 200
    assert by_size[16]["throughput"] > by_size[1]["throughput"]
    # A timeout above the SLO is never measured: one lone request could wait that long.
    skipped = [t for t in result.trials if t["batch_timeout_micros"] == 300000]
    assert len(skipped) == 2 and all(
        not t["measured"] and "not below the SLO" in t["pruned"] for t in skipped
    )
    assert result.best in result.pareto_front()

    # Applied live: the server now runs with the chosen parameters.
    live = live_parameters(batched)
    assert live["source"] == "override"
    assert (live["max_batch_size"], live["batch_timeout_micros"], live["num_batch_threads"]) == (
        16,
        0,
        1,
    )
    assert result.applied

    # The file is TF Serving's text format: the proto parses it, and so does the server's own reader.
    text = output.read_text()
    assert "max_batch_size {\n  value: 16\n}" in text
    parsed = text_format.Parse(text, BatchingParameters())
    assert parsed.max_batch_size.value == 16 and parsed.num_batch_threads.value == 1
    assert parsed.HasField("batch_timeout_micros") and parsed.batch_timeout_micros.value == 0
    assert parsed.max_enqueued_batches.value >= 2  # deep enough for 16 requests in flight
    assert load_batching_parameters(output) == parsed
    assert result.path == str(output)

    frame = result.to_dataframe()
    assert frame["chosen"].sum() == 1 and frame.loc[frame["chosen"], "max_batch_size"].item() == 16
    figure = result.plot()
    axes = figure.axes[0]
    assert axes.get_title() == "Batching search: sleeper"
    # The front it names is drawn, through every front point, as a staircase.
    (front_line,) = [line for line in axes.lines if line.get_label() == "Pareto front"]
    front = sorted(result.pareto_front(), key=lambda t: t["throughput"])
    assert list(front_line.get_xdata()) == [t["throughput"] for t in front]
    assert front_line.get_drawstyle() == "steps-pre"  # the edge of what the front dominates
    # The y axis spans the trials; the SLO is to scale only when that does not squash them.
    p99s = [t["p99_ms"] for t in result.trials if t["requests"]]
    bottom, top = axes.get_ylim()
    assert bottom <= min(p99s) and max(p99s) <= top <= 1.12 * max(max(p99s), 200.0) + 1e-6
    slo_drawn = any(line.get_label() == "p99 SLO 200 ms" for line in axes.lines)
    assert slo_drawn == (200.0 <= 1.5 * max(p99s))
    # The chosen setting's note stays inside the axes.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    (note,) = [text for text in axes.texts if "max_batch_size 16" in text.get_text()]
    box, frame = note.get_window_extent(renderer), axes.get_window_extent(renderer)
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    assert "best: max_batch_size 16" in repr(result)

    # apply=False measures and then puts the parameters back as they were.
    again = tune(
        "sleeper",
        url=batched.url,
        p99="200ms",
        concurrency=16,
        max_batch_size=4,
        batch_timeout_micros=0,
        num_batch_threads=1,
        apply=False,
        output=None,
        **FAST,
    )
    assert not again.applied and again.path is None
    assert live_parameters(batched) == live


def test_no_setting_meeting_the_slo_changes_nothing(batched, tmp_path):
    requests = urllib.request.Request(
        f"{batched.url}/tfserve/api/models/sleeper/batching", method="DELETE"
    )
    urllib.request.urlopen(requests).read()
    before = live_parameters(batched)
    output = tmp_path / "never.txt"
    result = tune(
        "sleeper",
        url=batched.url,
        p99="60ms",
        concurrency=8,
        max_batch_size=1,
        batch_timeout_micros=0,
        num_batch_threads=1,
        output=output,
        **FAST,
    )
    assert result.best is None and not result.applied
    assert not output.exists()
    assert live_parameters(batched) == before
    assert (
        "no setting met the SLO" in result.summary()
        and "closest: max_batch_size 1" in result.summary()
    )
    with pytest.raises(BenchError, match="no setting met the p99 SLO of 60 ms"):
        result.text()


def test_an_interrupted_search_restores_the_parameters(batched, tmp_path):
    urllib.request.urlopen(
        urllib.request.Request(
            f"{batched.url}/tfserve/api/models/sleeper/batching", method="DELETE"
        )
    ).read()
    before = live_parameters(batched)

    def interrupt(event):
        if event["phase"] == "window":
            raise KeyboardInterrupt  # as Ctrl-C lands between two windows

    result = tune(
        "sleeper",
        url=batched.url,
        p99="200ms",
        concurrency=4,
        max_batch_size="1,4",
        batch_timeout_micros=0,
        num_batch_threads=1,
        output=tmp_path / "no.txt",
        warmup="0.1s",
        window="0.3s",
        progress=interrupt,
    )
    assert result.interrupted and not result.applied and result.path is None
    assert live_parameters(batched) == before
    assert not (tmp_path / "no.txt").exists()
    assert "interrupted" in result.summary()


def test_bad_input_is_refused_before_any_load(batched, tmp_path_factory, sleeper_dir):
    with pytest.raises(BenchError, match="longer than 0"):
        tune("sleeper", url=batched.url, p99="0ms", progress=None)
    with pytest.raises(BenchError, match="duration"):
        tune("sleeper", url=batched.url, p99="fast", progress=None)
    with pytest.raises(BenchError, match="one load"):
        tune("sleeper", url=batched.url, p99="50ms", concurrency="1,2", progress=None)
    with pytest.raises(
        BenchError, match=r"a p99 of 0\.001 ms is impossible here: one request alone takes"
    ):
        tune("sleeper", url=batched.url, p99="1us", progress=None)
    with pytest.raises(BenchError, match="concurrency must be at least 1"):
        tune("sleeper", url=batched.url, p99="50ms", concurrency=0, progress=None)
    with pytest.raises(
        BenchError, match="num_batch_threads 5000: num_batch_threads must be at most"
    ):
        tune("sleeper", url=batched.url, p99="50ms", num_batch_threads="1,5000", progress=None)
    unbatched = _serve(tmp_path_factory, sleeper_dir)
    try:
        with pytest.raises(BenchError, match="cannot change batching live .*--enable_batching"):
            tune("sleeper", url=unbatched.url, p99="50ms", progress=None)
    finally:
        unbatched.stop()
    stats = json.loads(
        urllib.request.urlopen(f"{batched.url}/tfserve/api/models/sleeper/batching").read()
    )
    before = stats["signatures"]["serving_default"]["requests"]
    with pytest.raises(BenchError, match="impossible"):
        tune(
            "sleeper", url=batched.url, p99="2ms", progress=None
        )  # below the 25 ms the model sleeps
    stats = json.loads(
        urllib.request.urlopen(f"{batched.url}/tfserve/api/models/sleeper/batching").read()
    )
    assert (
        stats["signatures"]["serving_default"]["requests"] - before <= 6
    )  # a few lone probes, no load


def _trial(size, throughput, p99, errors=0, slo=50.0):
    return {
        "max_batch_size": size,
        "batch_timeout_micros": 0,
        "num_batch_threads": 1,
        "max_enqueued_batches": 10,
        "throughput": throughput,
        "p99_ms": p99,
        "requests": 100,
        "errors": errors,
        "measured": True,
        "meets_slo": p99 <= slo and not errors,
        "pruned": "",
    }


def test_choice_and_pareto_front():
    trials = [
        _trial(1, 100, 10),
        _trial(2, 180, 20),
        _trial(4, 300, 45),
        _trial(8, 300, 40),
        _trial(16, 320, 80),
        _trial(32, 250, 90),
        _trial(64, 500, 30, errors=3),
    ]
    result = TuneResult(
        trials, slo_ms=50.0, model="m", load="concurrency 8", original={}, applied=False, path=None
    )
    assert result.best["max_batch_size"] == 8  # ties on throughput go to the lower p99
    assert sorted(t["max_batch_size"] for t in result.pareto_front()) == [
        1,
        2,
        8,
        16,
    ]  # errors never count
    proto = text_format.Parse(result.text(), BatchingParameters())
    assert proto.max_batch_size.value == 8 and proto.max_enqueued_batches.value == 10
