"""The benchmark engine (``jupyter_tfserve.bench``) against real servers, real models and real processes.

What is checked is the *measurement*: statistics against numpy, latency and
throughput against a model whose run time is known (Little's law holds, no
latency below the sleep), client counts against the server's own batch
counters, and an open loop against a server that stalls once (the stall must
show in latency from the intended send time). Nothing here asserts that our
server is fast.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
import savedmodels
from ports import free_port

from jupyter_tfserve import cli as tfserve_cli
from jupyter_tfserve.bench import (
    BenchError,
    benchmark,
    parse_concurrency,
    parse_duration,
    parse_rate,
)
from jupyter_tfserve.bench import cli as bench_cli
from jupyter_tfserve.bench.options import parse_int_list
from jupyter_tfserve.bench.payload import request_inputs, rows_of
from jupyter_tfserve.bench.progress import TextProgress, WidgetProgress
from jupyter_tfserve.bench.results import PERF_ANALYZER_COLUMNS
from jupyter_tfserve.bench.stats import Records, is_stable, summarize
from jupyter_tfserve.server import ModelServer, ServerOptions

SLEEP_MS = 25.0
FAST = {"warmup": "0.2s", "window": "0.4s", "max_trials": 3, "progress": None}


def worker_pids() -> set[int]:
    """Live load-generator processes started by this test process."""
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if fields[1] == me and b"jupyter_tfserve.bench.worker" in cmdline:
            found.add(int(entry))
    return found


# ---------------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def bench_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_models")
    return {"sleeper": savedmodels.sleeper(root / "sleeper", 1, SLEEP_MS)}


def _start(tmp_path_factory, models: dict[str, str], **options) -> ModelServer:
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    root = tmp_path_factory.mktemp("repo")
    for name, version_dir in models.items():
        shutil.copytree(version_dir, root / name / "1")
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = name, str(root / name), "tensorflow"
    opts = ServerOptions(
        rest_api_port=free_port(),
        port=free_port(),
        file_system_poll_wait_seconds=0,
        enable_management_api=True,  # the benchmark switches batching live, as a user who enabled it would
        **options,
    )
    return ModelServer(opts, config=config).start(timeout=120)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, model_store, bench_store):
    """Batching off: the sleeper runs each request on its own."""
    server = _start(
        tmp_path_factory,
        {
            "sleeper": bench_store["sleeper"],
            "hpt": model_store["half_plus_two"],
            "multi_io": model_store["multi_io"],
        },
    )
    server.url = f"http://127.0.0.1:{server.rest_port}"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def batched(tmp_path_factory, bench_store):
    """--enable_batching with TF Serving's defaults: batches form while the workers are busy."""
    server = _start(tmp_path_factory, {"sleeper": bench_store["sleeper"]}, enable_batching=True)
    server.url = f"http://127.0.0.1:{server.rest_port}"
    yield server
    server.stop()


def live_parameters(server, model: str = "sleeper") -> dict:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/tfserve/api/models/{model}/batching") as response:
        return json.loads(response.read())["parameters"]


class StallingServer:
    """A tiny TF Serving look-alike: answers at once, except that it freezes for ``stall`` s once.

    The freeze blocks its whole event loop, as a GC pause or a stuck model would:
    nothing is read or answered meanwhile.
    """

    METADATA = {
        "model_spec": {"name": "stall", "signature_name": "", "version": "1"},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {
                            "x": {
                                "dtype": "DT_FLOAT",
                                "tensor_shape": {"dim": [{"size": "-1"}, {"size": "1"}]},
                                "name": "x:0",
                            }
                        },
                        "outputs": {
                            "y": {
                                "dtype": "DT_FLOAT",
                                "tensor_shape": {"dim": [{"size": "-1"}, {"size": "1"}]},
                                "name": "y:0",
                            }
                        },
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        },
    }

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.posts = 0
        self.stall_at: int | None = None
        self.stall = 0.0
        self.refuse_every = 0  # answer 503 to every n-th predict (0: never)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port)
        )
        ready.set()
        self.loop.run_forever()
        server.close()

    async def _client(self, reader, writer) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path = head.split(b" ", 2)[:2]
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                status, body = self._answer(method.decode(), path.decode())
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _answer(self, method: str, path: str) -> tuple[int, bytes]:
        if method == "POST" and path == "/v1/models/stall:predict":
            self.posts += 1
            if self.posts == self.stall_at:
                time.sleep(self.stall)  # freeze the loop: the stall every request behind it sees
            if self.refuse_every and self.posts % self.refuse_every == 0:
                return (
                    503,
                    b'{"error": "The batch scheduling queue to which this task was submitted is full"}',
                )
            return 200, b'{"outputs": [[1.0]]}'
        if path == "/v1/models/stall":
            return 200, b'{"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}'
        if path == "/v1/models/stall/metadata":
            return 200, json.dumps(self.METADATA).encode()
        return 404, b'{"error": "Servable not found for request: Latest(%s)"}' % path.encode()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def stalling():
    server = StallingServer()
    yield server
    server.close()


# ---------------------------------------------------------------------- parsing and statistics
def test_option_parsers():
    assert parse_concurrency("1:64:x2") == [1, 2, 4, 8, 16, 32, 64]
    assert parse_concurrency("4:16:+4") == [4, 8, 12, 16]
    assert parse_concurrency("1,8, 32") == [1, 8, 32]
    assert parse_concurrency([1, "4:8:x2"]) == [1, 4, 8]
    assert parse_concurrency(3) == [3]
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("500us") == pytest.approx(5e-4)
    assert parse_duration(2) == 2.0
    assert parse_rate("100:400:+100") == [100, 200, 300, 400]
    assert parse_rate("50/s") == [50]
    assert parse_int_list("0,500,1000", "timeouts") == [0, 500, 1000]
    for bad, message in [
        (0, "at least 1"),
        ("0:4:x2", "start above 0"),
        ("8:1", "ends below"),
        (1.5, "whole number"),
        ("a:b", "not a number"),
        ("", "empty"),
        (-2, "at least 1"),
    ]:
        with pytest.raises(BenchError, match=message):
            parse_concurrency(bad)
    for bad in ("fast", "-1s", "10 parsecs"):
        with pytest.raises(BenchError, match="duration"):
            parse_duration(bad)
    with pytest.raises(BenchError, match="positive"):
        parse_rate("0")


def _records(latencies_ms, start=100.0, spacing=0.001):
    done = start + np.arange(len(latencies_ms)) * spacing + np.asarray(latencies_ms) / 1e3
    intended = done - np.asarray(latencies_ms) / 1e3
    return Records(
        {
            "intended": intended,
            "start": intended,
            "sent": intended + 1e-5,
            "first": done - 2e-5,
            "done": done,
        }
    )


def test_summary_statistics_are_numpys():
    rng = np.random.default_rng(1)
    latencies = rng.lognormal(1.0, 0.5, 5000)
    records = _records(latencies)
    records.errors = [(100.0, 100.1, "http 503")] * 3 + [(100.0, 100.2, "timeout")]
    summary = summarize(records, seconds=2.0, rows_per_request=4)
    assert summary["requests"] == 5000 and summary["errors"] == 4
    assert summary["error_kinds"] == {"http 503": 3, "timeout": 1}
    assert summary["throughput"] == pytest.approx(2500.0)
    assert summary["inferences_per_second"] == pytest.approx(10000.0)
    assert summary["latency_mean_ms"] == pytest.approx(latencies.mean())
    assert summary["latency_std_ms"] == pytest.approx(latencies.std())
    for p in (50, 90, 95, 99):
        assert summary[f"p{p}_ms"] == pytest.approx(np.percentile(latencies, p))
    assert summary["client_send_ms"] == pytest.approx(0.01)
    assert summary["client_recv_ms"] == pytest.approx(0.02)
    early, late = records.split("done", float(np.median(records.ok["done"])))
    assert early.successes + late.successes == 5000 and abs(early.successes - late.successes) <= 1


def test_stability_rule():
    def windows(*pairs):
        return [{"throughput": t, "latency_mean_ms": m} for t, m in pairs]

    assert is_stable(windows((1000, 2.0), (1040, 2.05), (980, 1.98)), 0.10)
    assert not is_stable(
        windows((1000, 2.0), (1200, 2.0), (1000, 2.0)), 0.10
    )  # throughput spreads 20%
    assert not is_stable(windows((1000, 2.0), (1000, 3.0), (1000, 2.0)), 0.10)  # latency spreads
    assert not is_stable(windows((1000, 2.0), (1000, 2.0)), 0.10)  # fewer than 3 windows
    assert is_stable(
        windows((5, 9.0), (1000, 2.0), (1000, 2.0), (1010, 2.0)), 0.10
    )  # only the last 3 count
    assert not is_stable(windows((0, math.nan), (0, math.nan), (0, math.nan)), 0.10)


def test_request_inputs_follow_the_signature_and_the_sample(plain):
    from jupyter_tfserve.bench.endpoint import Target

    signature = Target.resolve("multi_io", url=plain.url).signature_info()
    zeros = request_inputs(signature, 3, "zeros")
    assert len(zeros) == 1 and zeros[0]["a"].shape == (3, 2) and zeros[0]["a"].dtype == np.float32
    assert zeros[0]["b"].dtype == np.int64 and not zeros[0]["b"].any()
    pool = request_inputs(signature, 2, "random", pool=4)
    assert len(pool) == 4 and rows_of(pool[0]) == 2
    assert not np.array_equal(pool[0]["a"], pool[1]["a"])
    sample = {"a": np.arange(10, dtype=np.float64).reshape(5, 2), "b": np.arange(5)}
    sliced = request_inputs(signature, 2, sample)
    assert [s["b"].tolist() for s in sliced] == [
        [0, 1],
        [2, 3],
        [4, 0],
    ]  # consecutive slices, wrapping
    assert sliced[0]["a"].dtype == np.float32
    frame = pd.DataFrame({"a": list(sample["a"]), "b": sample["b"]})  # a column of arrays per input
    from_frame = request_inputs(signature, 5, frame)
    assert len(from_frame) == 1 and from_frame[0]["a"].shape == (5, 2)
    assert np.array_equal(from_frame[0]["a"], sample["a"].astype(np.float32))
    with pytest.raises(BenchError, match="does not fit"):
        request_inputs(signature, 1, {"a": np.zeros((2, 2))})
    with pytest.raises(BenchError, match="rows per request"):
        request_inputs(signature, 0, "zeros")


# ---------------------------------------------------------------------- measuring a known model
def test_closed_loop_against_a_model_that_sleeps(plain):
    """Latency never below the model's sleep; throughput x latency = concurrency (Little's law)."""
    result = benchmark("sleeper", url=plain.url, concurrency="1,4", **FAST)
    assert not result.interrupted and len(result.levels) == 2
    for level in result.levels:
        assert level["errors"] == 0 and level["requests"] > 0
        assert level["latency_min_ms"] >= SLEEP_MS
        assert level["p50_ms"] < SLEEP_MS + 40
        little = level["throughput"] * level["latency_mean_ms"] / 1e3
        assert little == pytest.approx(level["value"], rel=0.15)
        assert len(level["windows"]) == level["trials"] <= 3
    one, four = result.levels
    assert (
        four["throughput"] > 2.5 * one["throughput"]
    )  # four requests sleep side by side, unbatched
    frame = result.to_dataframe()
    assert list(frame["concurrency"]) == [1, 4]
    assert np.isnan(
        frame["avg_batch_size"]
    ).all()  # our server without --enable_batching: no statistics
    assert "batching is off on this server" in result.summary()


def test_open_loop_measures_from_the_intended_send_time(stalling):
    """A 300 ms freeze of the server shows in the latency of every request scheduled during it."""
    stalling.stall_at, stalling.stall = (
        150,
        0.3,
    )  # ~0.3 s into the run at 300 req/s: inside the windows
    result = benchmark(
        "stall",
        url=stalling.url,
        rate=300,
        warmup="0.1s",
        window="0.5s",
        max_trials=3,
        progress=None,
    )
    level = result.levels[0]
    assert stalling.posts > 300 and level["errors"] == 0
    assert level["latency_max_ms"] >= 250  # the request behind the freeze
    # About 90 requests were due during the freeze and waited up to 300 ms: >5% of ~450.
    assert level["p95_ms"] >= 100
    assert level["achieved_rate"] == pytest.approx(300, rel=0.1)
    assert (
        result.server_stats is False and level["server"] is None
    )  # TF Serving's API only: missing


@pytest.mark.parametrize("distribution", ["constant", "poisson"])
def test_open_loop_schedules(stalling, distribution):
    """Intended send times: evenly spaced, or exponential gaps (coefficient of variation 1), at the rate."""
    from jupyter_tfserve.bench.workers import WorkerPool

    setup = {
        "protocol": "rest",
        "target": f"{stalling.url}/v1/models/stall:predict",
        "headers": {},
        "bodies": [b'{"inputs": [[1.0]]}'],
        "timeout": 5.0,
    }
    with WorkerPool(1, setup) as pool:
        start = {
            "cmd": "start",
            "rate": 500.0,
            "distribution": distribution,
            "seed": 7,
            "first_at": time.monotonic() + 0.05,
            "max_connections": 64,
            "first_body": 0,
        }
        pool.command([start])
        time.sleep(0.8)
        records = Records.from_worker(pool.broadcast({"cmd": "stop", "drain": 2.0})[0]["records"])
    gaps = np.diff(np.sort(records.ok["intended"]))
    assert len(gaps) > 200 and not records.errors
    assert 1 / gaps.mean() == pytest.approx(500, rel=0.01 if distribution == "constant" else 0.15)
    variation = gaps.std() / gaps.mean()
    if distribution == "constant":
        assert variation < 1e-6
    else:
        assert 0.8 < variation < 1.2


def test_closed_loop_sees_the_stall_only_once(stalling):
    """The contrast: one closed-loop client waits through the freeze as a single slow request."""
    stalling.stall_at, stalling.stall = 300, 0.3
    result = benchmark(
        "stall",
        url=stalling.url,
        concurrency=1,
        warmup="0.1s",
        window="0.5s",
        max_trials=3,
        progress=None,
    )
    level = result.levels[0]
    assert level["latency_max_ms"] >= 250
    assert level["p95_ms"] < 100  # coordinated omission: the freeze is one sample among many


def test_count_windows_and_errors_by_kind(stalling):
    stalling.refuse_every = 10
    result = benchmark(
        "stall",
        url=stalling.url,
        concurrency=2,
        warmup_requests=10,
        window_requests=40,
        max_trials=3,
        progress=None,
    )
    level = result.levels[0]
    # A count window closes at its 40th answer: exactly 40 per window, failures counted apart.
    assert [w["requests"] + w["errors"] for w in level["windows"]] == [40] * len(level["windows"])
    assert level["error_kinds"] == {"http 503": level["errors"]}
    assert level["errors"] == pytest.approx((level["requests"] + level["errors"]) / 10, abs=3)
    assert "http 503" in result.to_dataframe()["error_kinds"][0]


def test_request_timeouts_are_counted_and_the_run_goes_on(stalling):
    stalling.stall_at, stalling.stall = 40, 0.6
    result = benchmark(
        "stall",
        url=stalling.url,
        concurrency=1,
        timeout="0.2s",
        warmup="0.1s",
        window="0.4s",
        max_trials=3,
        progress=None,
    )
    level = result.levels[0]
    assert set(level["error_kinds"]) == {"timeout"} and level["errors"] >= 1
    assert level["requests"] > 50  # answers again once the server is back
    assert level["latency_max_ms"] < 200  # a timed-out request is an error, not a latency sample


def test_csv_uses_perf_analyzers_columns(stalling, tmp_path):
    result = benchmark(
        "stall",
        url=stalling.url,
        concurrency="1,2",
        warmup="0.1s",
        window="0.3s",
        max_trials=3,
        progress=None,
    )
    path = tmp_path / "perf.csv"
    text = result.to_csv(path)
    assert path.read_text() == text
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert header[: 1 + len(PERF_ANALYZER_COLUMNS)] == ["Concurrency", *PERF_ANALYZER_COLUMNS]
    assert header[1:13] == [
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
    ]
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == 2
    throughputs = [float(r["Inferences/Second"]) for r in records]
    assert throughputs == sorted(throughputs)  # perf_analyzer's order
    for record, level in zip(
        records, sorted(result.levels, key=lambda lv: lv["inferences_per_second"]), strict=True
    ):
        assert int(record["p99 latency"]) == round(level["p99_ms"] * 1000)  # microseconds
        assert int(record["Avg latency"]) == round(level["latency_mean_ms"] * 1000)
        assert record["Server Queue"] == "" and record["Avg Batch Size"] == ""  # missing, not zero
        assert (
            int(record["p50 latency"]) <= int(record["p90 latency"]) <= int(record["p99 latency"])
        )


def test_grpc_transport(plain):
    result = benchmark(
        "hpt",
        url=plain.url,
        grpc=f"127.0.0.1:{plain.grpc_port}",
        protocol="grpc",
        concurrency=2,
        rows=3,
        **FAST,
    )
    level = result.levels[0]
    assert level["errors"] == 0 and level["requests"] > 10
    assert result.rows_per_request == 3 and level["inferences_per_second"] == pytest.approx(
        3 * level["throughput"]
    )
    assert math.isnan(level["client_send_ms"])  # a gRPC stub has no send/receive split: missing


def test_batch_statistics_cover_the_same_interval_as_the_client(batched):
    """The server's counters between two window boundaries agree with what the client sent."""
    result = benchmark("sleeper", url=batched.url, concurrency=8, rows=2, **FAST)
    level = result.levels[0]
    server = level["server"]
    assert result.server_stats and level["errors"] == 0
    assert server["server_rows"] == 2 * server["server_requests"]  # every request carried 2 rows
    # Boundaries are read a moment apart on each side: at most the requests in flight differ.
    assert abs(server["server_requests"] - level["requests"]) <= 2 * 8
    histogram = server["batch_size_histogram"]
    assert sum(histogram.values()) == server["batches"]
    assert sum(size * count for size, count in histogram.items()) == server["server_rows"]
    assert server["avg_batch_size"] == pytest.approx(server["server_rows"] / server["batches"])
    assert server["avg_requests_per_batch"] > 1  # eight clients and a 25 ms model: batches form
    assert set(server["close_reasons"]) <= {"full", "timeout"}
    assert server["full_share"] + server["timeout_share"] == pytest.approx(1.0)
    assert server["execution_ms"] >= SLEEP_MS
    record = next(csv.DictReader(io.StringIO(result.to_csv())))
    assert float(record["Avg Batch Size"]) == pytest.approx(server["avg_batch_size"], rel=1e-5)
    assert int(record["Server Compute Infer"]) == round(server["execution_ms"] * 1000)
    assert record["Server Queue"] != "" and record["Network+Server Send/Recv"] != ""
    assert result.batch_size_histogram()[""] == histogram


def test_compare_batching_switches_live_and_restores(batched):
    before = live_parameters(batched)
    result = benchmark("sleeper", url=batched.url, concurrency=8, compare_batching=True, **FAST)
    assert [lv["batching"] for lv in result.levels] == ["off", "on"]
    off, on = result.levels
    assert off["server"]["avg_requests_per_batch"] == 1.0  # off: one request per batch, exactly
    assert on["server"]["avg_requests_per_batch"] > 1.0
    assert off["errors"] == on["errors"] == 0
    wide = result.compare()
    assert list(wide.index) == [8]
    assert wide[("speedup", "on/off")].iloc[0] == pytest.approx(
        on["throughput"] / off["throughput"]
    )
    assert live_parameters(batched) == before  # the server's own parameters again
    figure = result.plot()
    assert figure._suptitle.get_text().startswith("Batching off vs on.")
    latency_axes, throughput_axes, histogram_axes = figure.axes
    # One colour per run: four percentile lines in grey (off) and four in blue (on).
    colours = [line.get_color() for line in latency_axes.lines]
    assert sorted(colours) == ["tab:blue"] * 4 + ["tab:gray"] * 4
    assert [line.get_color() for line in throughput_axes.lines] == ["tab:gray", "tab:blue"]
    from matplotlib.colors import to_rgba

    assert {
        bar.get_facecolor() for bar in histogram_axes.patches
    } == {  # batch-size bars of both runs
        to_rgba("tab:gray"),
        to_rgba("tab:blue"),
    }

    def interrupt(event):
        if event["phase"] == "window":
            raise KeyboardInterrupt  # as Ctrl-C lands between two windows

    stopped = benchmark(
        "sleeper",
        url=batched.url,
        concurrency=4,
        compare_batching=True,
        batching={"max_batch_size": 4},
        progress=interrupt,
        warmup="0.1s",
        window="0.3s",
    )
    assert stopped.interrupted and stopped.levels == []
    assert live_parameters(batched) == before and worker_pids() == set()


def test_benchmark_through_jupyter_style_routes_with_a_token(batched):
    """Mounted like the Jupyter extension (``{base_url}tfserve``, a token required): REST and stats both work."""
    import tornado.httpserver
    import tornado.web

    from jupyter_tfserve.jupyter.handlers import JupyterMount
    from jupyter_tfserve.protocols.http_tornado import rest_handlers

    class TokenRequired(tornado.web.RequestHandler):
        def prepare(self):
            if self.request.headers.get("Authorization") != "token s3cret":
                self.send_error(403)

    class Host:  # what JupyterMount needs of the extension's host: the options and the running server
        options = batched.options

        async def server(self):
            return batched

    loop = asyncio.new_event_loop()
    port = free_port()

    def serve():
        asyncio.set_event_loop(loop)
        app = tornado.web.Application(
            rest_handlers(JupyterMount(Host()), "/user/me/tfserve", TokenRequired)
        )
        tornado.httpserver.HTTPServer(app).listen(port, "127.0.0.1")
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/user/me/tfserve"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        result = benchmark("sleeper", url=url, token="s3cret", concurrency=2, **FAST)
        level = result.levels[0]
        assert level["errors"] == 0 and level["requests"] > 0
        assert (
            result.server_stats and level["server"]["batches"] > 0
        )  # {url}/api/models/sleeper/batching
        with pytest.raises(BenchError, match=r"refused the request \(403\): check the token"):
            benchmark("sleeper", url=url, concurrency=1, progress=None)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_batching_needs_a_server_that_batches(plain, caplog):
    with pytest.raises(
        BenchError, match="batching is off on this server: start it with --enable_batching"
    ):
        benchmark("hpt", url=plain.url, concurrency=1, compare_batching=True, progress=None)
    caplog.clear()
    result = benchmark("hpt", url=plain.url, concurrency="1,2", **FAST)
    assert "batching is off on this server: start it with --enable_batching" in result.summary()
    # The probe asked /info: the server logged no refusal per probe or per level.
    assert not [r for r in caplog.records if "refused" in r.getMessage()], caplog.text


def test_grpc_address_alone(plain):
    """A server known only by its gRPC port (TF Serving with --port alone): metadata and load over gRPC."""
    target = f"127.0.0.1:{plain.grpc_port}"
    result = benchmark("multi_io", grpc=target, concurrency=1, rows=2, **FAST)
    level = result.levels[0]
    assert result.protocol == "grpc" and level["errors"] == 0 and level["requests"] > 0
    assert not result.server_stats and "gRPC address" in result.server_stats_note
    with pytest.raises(BenchError, match=f"'nope' is not served at {target}"):
        benchmark("nope", grpc=target, concurrency=1, progress=None)
    with pytest.raises(BenchError, match="no signature 'other'"):
        benchmark("hpt", grpc=target, signature="other", concurrency=1, progress=None)
    with pytest.raises(BenchError, match="cannot reach the gRPC port"):
        benchmark("hpt", grpc=f"127.0.0.1:{free_port()}", concurrency=1, progress=None)
    with pytest.raises(BenchError, match="has no REST address"):
        benchmark("hpt", grpc=target, protocol="rest", concurrency=1, progress=None)


# ---------------------------------------------------------------------- results, plots, progress
def test_plots_and_progress_views_render_without_a_front_end(stalling):
    import matplotlib

    matplotlib.use("Agg")
    events = []
    result = benchmark(
        "stall",
        url=stalling.url,
        concurrency="1,2",
        warmup="0.1s",
        window="0.3s",
        max_trials=3,
        progress=events.append,
    )
    phases = {e["phase"] for e in events}
    assert {"level", "window", "level_done"} <= phases
    figure = result.plot()
    # No batch statistics: no empty third panel, a one-line note under the figure instead.
    assert len(figure.axes) == 2
    latency_axes, throughput_axes = figure.axes
    assert (
        len(latency_axes.lines) == 4
    )  # p50, p90, p95, p99: one style each, in the run's one colour
    assert len({line.get_color() for line in latency_axes.lines}) == 1
    assert len({(line.get_linestyle(), line.get_marker()) for line in latency_axes.lines}) == 4
    (note,) = [text for text in figure.texts if text is not figure._suptitle]
    assert note.get_text().startswith("No server batch statistics: no batch statistics from http")
    assert "\n" not in note.get_text()
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"

    view = WidgetProgress("bench", display=False)
    for event in events:
        view(event)
    assert view.bar.value == view.bar.max == 2
    last_window = [e for e in events if e["phase"] == "window"][-1]
    assert view.rate.value == f"{last_window['throughput']:.1f} req/s"
    assert view.level.value == "concurrency 2"
    view.close()
    assert view.bar.bar_style == "success"

    text = TextProgress(io.StringIO())
    for event in events:
        text(event)
    assert any(line.startswith("concurrency 2: window") for line in text.lines)
    assert "<table" in result._repr_html_() and "p99_ms" in repr(result)


# ---------------------------------------------------------------------- processes
def test_interrupt_leaves_no_stray_processes(stalling):
    seen = {}

    def interrupt(event):
        if event["phase"] == "running" and not seen:
            seen["workers"] = worker_pids()
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C or Jupyter's interrupt sends

    result = benchmark(
        "stall",
        url=stalling.url,
        concurrency="2,4",
        workers=2,
        warmup="5s",
        window="5s",
        progress=interrupt,
    )
    assert result.interrupted and result.levels == []
    assert len(seen["workers"]) == 2
    assert worker_pids() == set()
    for pid in seen["workers"]:
        assert not os.path.exists(f"/proc/{pid}")  # ended and reaped: not even a zombie


# ---------------------------------------------------------------------- bad input
def test_bad_input_is_refused_before_any_load(stalling):
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BenchError, match="cannot reach the model server"):
        benchmark("stall", url=dead, concurrency=1, progress=None)
    with pytest.raises(BenchError, match="'nope' is not served"):
        benchmark("nope", url=stalling.url, concurrency=1, progress=None)
    with pytest.raises(BenchError, match="concurrency must be at least 1"):
        benchmark("stall", url=stalling.url, concurrency=0, progress=None)
    with pytest.raises(BenchError, match="no signature 'other'|not found"):
        benchmark("stall", url=stalling.url, signature="other", concurrency=1, progress=None)
    with pytest.raises(BenchError, match="URL must look like"):
        benchmark("stall", url="localhost:8501", concurrency=1, progress=None)
    assert stalling.posts == 0
    with pytest.raises(
        BenchError, match=r"beyond this machine's load generator: .* dispatch at most about"
    ):
        benchmark("stall", url=stalling.url, rate=1e9, progress=None)
    assert stalling.posts <= 1  # the one request that checks the body, never load
    assert worker_pids() == set()


def test_a_rate_the_generator_cannot_keep_is_reported_with_what_it_achieved(plain):
    """Two connections to a 25 ms model cannot carry 200 req/s: say so, with the rate really sent."""
    result = benchmark(
        "sleeper",
        url=plain.url,
        rate=200,
        max_connections=2,
        warmup="0s",
        window="0.3s",
        max_trials=2,
        progress=None,
    )
    level = result.levels[0]
    assert level["achieved_rate"] < 0.95 * 200
    assert level["achieved_rate"] <= 2 * 1000 / SLEEP_MS * 1.05  # at most two requests per sleep
    assert any(
        note.startswith("rate not achieved: asked for 200 req/s, the load generator sent")
        for note in level["notes"]
    )
    assert "rate not achieved" in result.summary()
    # Latency still counts from the schedule: requests sent late carry their lateness.
    assert level["latency_mean_ms"] > 2 * level["service_mean_ms"]


# ---------------------------------------------------------------------- the command line and the magic
def test_tfserve_bench_command(plain, tmp_path, capsys):
    path = tmp_path / "out.csv"
    code = tfserve_cli.main(
        [
            "bench",
            "hpt",
            "--url",
            plain.url,
            "-c",
            "1,2",
            "--warmup",
            "0.1s",
            "--window",
            "0.3s",
            "--max-trials",
            "3",
            "--csv",
            str(path),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "benchmark of hpt" in out and "p99_ms" in out
    assert path.read_text().startswith("Concurrency,Inferences/Second,")
    # The table fits 100 columns: the brief columns, rounded (req/s whole, ms to 2 decimals).
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, out
    header = next(line for line in lines if "p50_ms" in line.split())
    assert header.split() == ["concurrency", "throughput", "p50_ms", "p99_ms", "errors"]
    rows = [
        line.split()
        for line in lines[lines.index(header) + 1 :]
        if line.split()[:1] in (["1"], ["2"])
    ]
    assert len(rows) == 2
    for _, throughput, p50, _p99, _errors in rows:
        assert re.fullmatch(r"\d+", throughput) and re.fullmatch(r"\d+\.\d\d", p50), rows
    assert lines[-1].startswith("(") and "more columns: --wide" in lines[-1]
    # --wide: every column, without the one that repeats throughput at one row per request.
    assert (
        bench_cli.main(
            [
                "hpt",
                "--url",
                plain.url,
                "-c",
                "1",
                "--warmup",
                "0.1s",
                "--window",
                "0.3s",
                "--max-trials",
                "3",
                "--quiet",
                "--wide",
            ]
        )
        == 0
    )
    wide = capsys.readouterr().out
    wide_header = next(line for line in wide.splitlines() if "p50_ms" in line.split()).split()
    assert {"p90_ms", "p95_ms", "latency_max_ms", "client_send_ms"} <= set(wide_header)
    assert "inferences_per_second" not in wide_header and "more columns" not in wide
    assert bench_cli.main(["nope", "--url", plain.url, "--quiet"]) == 2
    assert "tfserve bench: model 'nope' is not served" in capsys.readouterr().err
    assert (
        tfserve_cli.main(["bench", "tune", "hpt", "--url", plain.url, "--p99", "0ms", "--quiet"])
        == 2
    )
    assert "the p99 SLO must be longer than 0 ms" in capsys.readouterr().err


def test_tfserve_benchmark_and_tune_magics(plain, batched, capsys):
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    from jupyter_tfserve.bench.results import BenchmarkResult
    from jupyter_tfserve.bench.tuner import TuneResult
    from jupyter_tfserve.notebook.magic.errors import TFServeError

    ip = start_ipython() or get_ipython()  # one global testing shell per process
    ip.run_line_magic("load_ext", "jupyter_tfserve")
    ip.run_line_magic("config", f"TFServeMagics.url = {plain.url!r}")
    ip.run_line_magic("config", "TFServeMagics.progress = 'none'")
    try:
        ip.run_cell("import numpy as np\nsample = np.arange(6, dtype='float32').reshape(6, 1)")
        result = ip.run_line_magic(
            "tfserve",
            "benchmark hpt -c '1,2' --rows 2 --data sample[:4] --warmup 0.1s --window 0.3s --max-trials 3",
        )
        assert isinstance(result, BenchmarkResult) and [lv["value"] for lv in result.levels] == [
            1,
            2,
        ]
        assert result.rows_per_request == 2 and all(lv["errors"] == 0 for lv in result.levels)
        tuned = ip.run_line_magic(
            "tfserve",
            f"tune sleeper --url {batched.url} --p99 200ms -c 16 --max-batch-size 16 "
            "--batch-timeout-micros 0 --num-batch-threads 1 --no-apply --output '' --warmup 0.1s --window 0.3s",
        )
        assert isinstance(tuned, TuneResult) and tuned.path is None
        assert [t["max_batch_size"] for t in tuned.trials] == [16] and tuned.trials[0][
            "requests"
        ] > 0
        outcome = ip.run_cell("%tfserve benchmark nope -c 1")
        assert isinstance(outcome.error_in_exec, TFServeError)
        assert str(outcome.error_in_exec).startswith("model 'nope' is not served")
        outcome = ip.run_cell("%tfserve benchmark hpt -c 0")
        assert "concurrency must be at least 1" in str(outcome.error_in_exec)
    finally:
        ip.run_line_magic("config", "TFServeMagics.url = ''")
        ip.run_line_magic("config", "TFServeMagics.progress = 'auto'")
        ip.run_line_magic("unload_ext", "jupyter_tfserve")
