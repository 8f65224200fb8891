"""TF Serving's REST API over both HTTP fronts (tornado and the standalone httptools port), on real SavedModels.

One in-process ModelServer serves every test. Each front runs on a loop
thread of the test's own, on an ephemeral port; the ``front`` fixture runs
every test once per front, and ``test_fronts_answer_byte_identical`` compares
the two directly.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import gzip
import json
import math
import shutil
import socket
import threading
import time

import pytest
import requests
import savedmodels
import tornado.httpserver
import tornado.web
from ports import free_port
from tensorflow_serving.config import model_server_config_pb2
from waiting import wait_until

from jupyter_tfserve.core.metrics import LATENCY_BUCKETS_US as LATENCY_BUCKETS
from jupyter_tfserve.protocols import http_standalone, http_tornado
from jupyter_tfserve.protocols.rest import RestApp
from jupyter_tfserve.server import ModelServer, ServerOptions

FRONT_KINDS = ("tornado", "standalone")
SERVE = {"tornado": http_tornado.serve, "standalone": http_standalone.serve}
SMALL_BODY_LIMIT = 16 * 1024
TENSOR_LIMIT = 4 * 1024 * 1024  # max_request_tensor_bytes
METRICS_PATH = "/monitoring/prometheus/metrics"
TIMEOUT = 30


# ---------------------------------------------------------------------- infrastructure
class LoopThread:
    """An asyncio loop on a thread of its own, like the ModelServer's io loop."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-io", daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = TIMEOUT):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def submit(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error(self) -> str:
        document = self.json()
        assert list(document) == ["error"], document
        return document["error"]


def call(base: str, path: str, body=None, method: str | None = None, headers=None) -> Reply:
    if isinstance(body, dict | list):
        body = json.dumps(body)
    method = method or ("POST" if body is not None else "GET")
    r = requests.request(method, base + path, data=body, headers=headers or {}, timeout=TIMEOUT)
    return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)


def predict(base: str, model: str, body, suffix: str = "") -> Reply:
    return call(base, f"/v1/models/{model}{suffix}:predict", body)


def metric(text: str, name: str, **labels) -> float:
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{label_text}}} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def port_refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def server(model_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("rest_models")
    for name, kind in (
        ("half_plus_two", "half_plus_two"),
        ("tf1", "half_plus_two_tf1"),
        ("multi_io", "multi_io"),
        ("strings", "strings"),
        ("counter", "counter"),
        ("versions", "half_plus_two"),
    ):
        shutil.copytree(model_store[kind], root / name / "1")
    savedmodels.half_plus_two(root / "versions", 2, slope=2.0, offset=1.0)  # y(1) = 3
    config = model_server_config_pb2.ModelServerConfig()
    for name in ("half_plus_two", "tf1", "multi_io", "strings", "counter", "versions"):
        model = config.model_config_list.config.add(name=name, base_path=str(root / name))
        model.model_platform = "tensorflow"
        if name == "versions":
            model.model_version_policy.all.SetInParent()
            model.version_labels.update({"stable": 1, "canary": 2})
    monitoring = root / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true, path: "{METRICS_PATH}" }}\n')
    options = ServerOptions(
        port=0,
        rest_api_port=0,
        file_system_poll_wait_seconds=0,
        max_num_load_retries=0,
        monitoring_config_file=str(monitoring),
        max_request_tensor_bytes=TENSOR_LIMIT,
    )
    model_server = ModelServer(options, config=config).start(timeout=120)
    yield model_server
    model_server.stop()


@pytest.fixture(scope="module")
def io_loop():
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def fronts(server, io_loop):
    """Per front kind: the server's own RestApp, and a variant with CORS on and a 16 KiB body limit."""
    variant = server.rest_app(cors=True, max_body_bytes=SMALL_BODY_LIMIT)
    small = dataclasses.replace(server.options, rest_api_max_body_bytes=SMALL_BODY_LIMIT)
    started, urls = [], {}
    for kind in FRONT_KINDS:
        default_front = io_loop.run(SERVE[kind](server.rest, "127.0.0.1", 0, server.options))
        variant_front = io_loop.run(SERVE[kind](variant, "127.0.0.1", 0, small))
        started += [default_front, variant_front]
        urls[kind] = (
            f"http://127.0.0.1:{default_front.port}",
            f"http://127.0.0.1:{variant_front.port}",
        )
    yield urls
    for front in started:
        io_loop.run(front.stop(5))


@pytest.fixture(params=FRONT_KINDS)
def kind(request):
    return request.param


@pytest.fixture
def url(fronts, kind):
    return fronts[kind][0]


@pytest.fixture
def variant_url(fronts, kind):
    return fronts[kind][1]


# ---------------------------------------------------------------------- predict
def test_quickstart_curl_line(url):
    reply = predict(url, "half_plus_two", '{"instances": [1.0, 2.0, 5.0]}')
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"predictions": [2.5, 3.0, 4.5]}
    assert b"3.0" in reply.body  # whole floats keep their ".0"


def test_row_and_columnar_formats(url):
    assert predict(url, "half_plus_two", {"instances": [[1.0], [2.0]]}).json() == {
        "predictions": [[2.5], [3.0]]
    }
    assert predict(url, "half_plus_two", {"inputs": [[1.0], [2.0]]}).json() == {
        "outputs": [[2.5], [3.0]]
    }
    assert predict(url, "half_plus_two", {"inputs": {"x": [[4.0]]}}).json() == {"outputs": [[4.0]]}
    assert predict(url, "tf1", {"instances": [1.0, 2.0]}).json() == {"predictions": [2.5, 3.0]}


def test_multiple_inputs_and_outputs(url):
    rows = {"instances": [{"a": [1.0, 2.0], "b": 3}, {"a": [3.0, 4.0], "b": 5}]}
    assert predict(url, "multi_io", rows).json() == {
        "predictions": [{"doubled_b": 6, "sum": 6.0}, {"doubled_b": 10, "sum": 12.0}]
    }
    columns = {"inputs": {"a": [[1.0, 2.0], [3.0, 4.0]], "b": [3, 5]}}
    assert predict(url, "multi_io", columns).json() == {
        "outputs": {"doubled_b": [6, 10], "sum": [6.0, 12.0]}
    }


def test_b64_in_and_bytes_out(url):
    encoded = base64.b64encode(b"hi there").decode()
    reply = predict(url, "strings", {"instances": [{"b64": encoded}, "abc"]})
    assert reply.status == 200, reply.body
    assert reply.json() == {
        "predictions": [
            {"raw_bytes": {"b64": encoded}, "upper": "HI THERE"},
            {"raw_bytes": {"b64": base64.b64encode(b"abc").decode()}, "upper": "ABC"},
        ]
    }


def test_nan_and_infinity_round_trip(url):
    reply = predict(url, "half_plus_two", '{"instances": [NaN, Infinity, -Infinity]}')
    assert reply.status == 200, reply.body
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        assert token in reply.body
    values = reply.json()["predictions"]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf


def test_versions_and_labels(url):
    assert predict(url, "versions", {"instances": [1.0]}).json() == {"predictions": [3.0]}
    assert predict(url, "versions", {"instances": [1.0]}, "/versions/1").json() == {
        "predictions": [2.5]
    }
    assert predict(url, "versions", {"instances": [1.0]}, "/labels/stable").json() == {
        "predictions": [2.5]
    }
    assert predict(url, "versions", {"instances": [1.0]}, "/labels/canary").json() == {
        "predictions": [3.0]
    }


def test_classify_and_regress_answer_under_results(url):
    regress = call(
        url,
        "/v1/models/tf1:regress",
        {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]},
    )
    assert regress.status == 200, regress.body
    assert regress.json() == {"results": [42.0]}
    with_context = call(
        url,
        "/v1/models/tf1:regress",
        {
            "signature_name": "regress_x_to_y",
            "context": {"unused": "shared"},
            "examples": [{"x": 2.0}, {"x": 4.0}],
        },
    )
    assert with_context.json() == {"results": [3.0, 4.0]}
    classify = call(
        url,
        "/v1/models/tf1/versions/1:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}, {"x": 10.0}]},
    )
    assert classify.status == 200, classify.body
    assert classify.json() == {"results": [[["", 12.0]], [["", 7.0]]]}


def test_stateful_counter_keeps_state_across_calls(url):
    start = predict(url, "counter", {"instances": [0.0]}).json()["predictions"][0]
    incr = {"signature_name": "incr_counter", "instances": [2.0]}
    assert predict(url, "counter", incr).json() == {"predictions": [start + 2.0]}
    incr["instances"] = [3.0]
    assert predict(url, "counter", incr).json() == {"predictions": [start + 5.0]}
    get = {"signature_name": "get_counter", "instances": [0.0]}
    assert predict(url, "counter", get).json() == {"predictions": [start + 5.0]}


def test_big_bodies_are_decoded_off_the_event_loop(url, monkeypatch):
    from jupyter_tfserve.core import tensors

    threads = []

    def recording(parse):
        def parse_and_record(body):
            threads.append(threading.current_thread().name)
            return parse(body)

        return parse_and_record

    # Numeric bodies are parsed by parse_numeric, others by parse_json: the first parse is the decode.
    monkeypatch.setattr(tensors, "parse_json", recording(tensors.parse_json))
    monkeypatch.setattr(tensors, "parse_numeric", recording(tensors.parse_numeric))
    small = predict(url, "half_plus_two", {"instances": [1.0]})
    big_body = json.dumps({"instances": [1.0] * 20000})
    assert len(big_body) > 64 * 1024
    big = predict(url, "half_plus_two", big_body)
    assert small.status == big.status == 200
    assert big.json()["predictions"] == [2.5] * 20000
    assert not threads[0].startswith("tfserve-infer")
    assert threads[1].startswith("tfserve-infer")


def test_bodies_of_many_small_rows_are_decoded_off_the_event_loop(url, monkeypatch):
    """Under the byte bound, thousands of one-value rows still cost milliseconds to decode."""
    from jupyter_tfserve.core import tensors
    from jupyter_tfserve.protocols.rest import OFFLOAD_ARRAYS, OFFLOAD_BYTES

    threads = []
    real = tensors.parse_numeric

    def parse_and_record(body):
        threads.append(threading.current_thread().name)
        return real(body)

    monkeypatch.setattr(tensors, "parse_numeric", parse_and_record)
    one = predict(url, "half_plus_two", {"instances": [[1.0]]}).json()["predictions"]
    rows = 2 * OFFLOAD_ARRAYS
    body = json.dumps({"instances": [[1.0]] * rows})
    assert len(body) < OFFLOAD_BYTES
    many = predict(url, "half_plus_two", body)
    assert many.status == 200
    assert many.json()["predictions"] == one * rows
    assert not threads[0].startswith("tfserve-infer")
    assert threads[1].startswith("tfserve-infer")


def test_mid_sized_bodies_leave_the_loop_when_only_the_per_value_path_decodes_them(
    url, monkeypatch
):
    """That path costs ~1 us a value: 10 KB of it held the loop ~10 ms (64 KB of it, 70 ms)."""
    from jupyter_tfserve.core import tensors
    from jupyter_tfserve.core.tensors.json_numeric import NumericBody

    calls = []
    real = tensors.decode_predict_request

    def recording(*args, **kwargs):
        on_worker = threading.current_thread().name.startswith("tfserve-infer")
        calls.append(("worker" if on_worker else "loop", kwargs["exact"]))
        return real(*args, **kwargs)

    def recording_numeric(body, *args, **kwargs):
        decoded = real_numeric(body, *args, **kwargs)
        if decoded:
            on_worker = threading.current_thread().name.startswith("tfserve-infer")
            calls.append(("worker" if on_worker else "loop", "numeric"))
        return decoded

    real_numeric = NumericBody.decode
    monkeypatch.setattr(tensors, "decode_predict_request", recording)
    monkeypatch.setattr(NumericBody, "decode", recording_numeric)
    numbers = json.dumps({"instances": [1.0] * 2000})
    assert 1024 < len(numbers) < 32 * 1024
    assert predict(url, "half_plus_two", numbers).json() == {"predictions": [2.5] * 2000}
    assert calls == [("loop", "numeric")]  # numbers only: the compiled path, on the loop
    calls.clear()
    strings = predict(url, "strings", json.dumps({"instances": ["abc"] * 2000}))
    assert strings.json()["predictions"][0]["upper"] == "ABC"
    assert calls == [("loop", False), ("worker", True)]
    calls.clear()
    bad = predict(url, "half_plus_two", json.dumps({"instances": [1.0] * 1999 + ["x"]}))
    assert bad.status == 400 and bad.error.startswith("Failed to process element: 1999 of")
    assert calls == [("loop", False), ("worker", True)]
    calls.clear()
    assert predict(url, "half_plus_two", {"instances": ["x"]}).status == 400  # small: on the loop
    assert calls == [("loop", True)]


def test_requests_past_the_in_flight_bound_are_refused_at_once(server, io_loop, kind):
    """Nothing bounded work in flight: every request was taken and queued, however many."""
    app = server.rest_app(max_requests_in_flight=2)
    front = io_loop.run(SERVE[kind](app, "127.0.0.1", 0, server.options))
    base = f"http://127.0.0.1:{front.port}"
    held = []
    try:
        for _ in range(2):  # two requests whose bodies never come: in flight until they close
            sock = socket.create_connection(("127.0.0.1", front.port), timeout=TIMEOUT)
            sock.sendall(
                b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Length: 100\r\n\r\n"
            )
            held.append(sock)
        assert wait_until(
            lambda: predict(base, "half_plus_two", {"instances": [1.0]}).status == 503
        )
        refused = predict(base, "half_plus_two", {"instances": [1.0]})
        assert refused.status == 503 and refused.headers["connection"] == "close"
        assert refused.error == (
            "Too many requests in flight on this port (max_requests_in_flight=2); try again later"
        )
        assert call(base, "/v1/models/half_plus_two").status == 503  # every route counts
        held.pop().close()
        assert wait_until(
            lambda: predict(base, "half_plus_two", {"instances": [1.0]}).status == 200
        )
    finally:
        for sock in held:
            sock.close()
        io_loop.run(front.stop(5))


@pytest.fixture(scope="module")
def batched(model_store, tmp_path_factory):
    """half_plus_two behind --enable_batching with a 2 s batch timeout: requests wait in their batch."""
    root = tmp_path_factory.mktemp("batched_models")
    shutil.copytree(model_store["half_plus_two"], root / "half_plus_two" / "1")
    parameters = root / "batching.config"
    parameters.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000000 }\n")
    options = ServerOptions(
        port=0,
        rest_api_port=0,
        model_name="half_plus_two",
        model_base_path=str(root / "half_plus_two"),
        file_system_poll_wait_seconds=0,
        enable_batching=True,
        batching_parameters_file=str(parameters),
    )
    model_server = ModelServer(options).start(timeout=120)
    yield model_server
    model_server.stop()


def test_a_client_that_disconnects_leaves_its_queued_work(batched, io_loop, kind):
    """Its request stayed queued and ran for nobody: here, its rows never reach the model."""
    front = io_loop.run(SERVE[kind](batched.rest, "127.0.0.1", 0, batched.options))

    def batching(key: str) -> int:
        signatures = batched.batcher.stats("half_plus_two")["signatures"]
        return signatures["serving_default"][key] if signatures else 0

    try:
        rows_before = batching("rows")
        body = b'{"instances": [[1.0], [2.0], [3.0]]}'
        with socket.create_connection(("127.0.0.1", front.port), timeout=TIMEOUT) as gone:
            gone.sendall(_post(HPT + ":predict", body))
            assert wait_until(lambda: batching("queued_rows") == 3)
        answered = predict(
            f"http://127.0.0.1:{front.port}", "half_plus_two", {"instances": [[4.0]]}
        )
        assert answered.json() == {"predictions": [[4.0]]}
        assert batching("rows") - rows_before == 1  # the three rows of the closed request never ran
    finally:
        io_loop.run(front.stop(5))


def test_gzip_request_bodies(url):
    body = gzip.compress(b'{"instances": [1.0, 2.0]}')
    reply = call(
        url, "/v1/models/half_plus_two:predict", body, headers={"Content-Encoding": "gzip"}
    )
    assert reply.json() == {"predictions": [2.5, 3.0]}
    broken = call(
        url, "/v1/models/half_plus_two:predict", b"not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert broken.status == 400
    assert broken.error.startswith("Failed to decompress gzip request body")


# ---------------------------------------------------------------------- hostile input
def test_tensors_over_the_request_limit_are_refused_naming_the_shape(url):
    floats = TENSOR_LIMIT // 4 + 1
    reply = predict(url, "half_plus_two", '{"inputs": [' + "1," * (floats - 1) + "1]}")
    assert reply.status == 429
    assert reply.error.startswith(
        f"tensor of shape [{floats}] and type float needs {floats * 4} bytes"
    )
    assert reply.error.endswith(f"limit of {TENSOR_LIMIT} bytes (max_request_tensor_bytes)")
    strings = TENSOR_LIMIT // 40 + 1
    body = '{"instances": [' + '{"b64": "eA=="},' * (strings - 1) + '{"b64": "eA=="}]}'
    reply = predict(url, "strings", body)
    assert reply.status == 429 and f"shape [{strings}] and type string" in reply.error


def test_a_version_of_thousands_of_digits_is_a_400(url):
    """int() refuses more than 4300 digits: this was a 500 with a traceback in the log."""
    for digits in ("9" * 5000, "1" * 100):
        reply = call(url, "/v1/models/half_plus_two/versions/" + digits)
        assert reply.status == 400
        assert reply.error.startswith("Failed to convert version: " + digits[:100])
        assert len(reply.error) < 1100
    leading_zeros = call(url, "/v1/models/half_plus_two/versions/" + "0" * 5000 + "1")
    assert (
        leading_zeros.status == 200
        and leading_zeros.json()["model_version_status"][0]["version"] == "1"
    )


def test_an_integer_of_thousands_of_digits_in_a_body_is_a_400(url):
    reply = predict(url, "half_plus_two", '{"instances": [' + "7" * 5000 + "]}")
    assert reply.status == 400
    assert reply.error == "JSON Parse error: Number too big to be stored in double. at offset: 15"


def test_an_error_quoting_a_huge_value_is_small(url):
    """The issue's 60 KB body: its error quoted the value pretty-printed in full, 24.8 MB."""
    nested = "[" * 200 + "1" + "]" * 200
    body = '{"inputs": 1, "instances": [' + ",".join([nested] * 150) + "]}"
    assert len(body) > 60_000
    reply = predict(url, "half_plus_two", body)
    assert reply.status == 400
    assert reply.error.startswith('JSON Value: {\n    "inputs": 1,')
    assert reply.error.endswith("keys to exist ") and len(reply.body) < 2048


@pytest.mark.parametrize("depth", [300, 1000, 5000])
def test_deep_nesting_is_a_400(url, depth):
    """Past ~255 levels, quoting the value raised "Recursion limit reached": a 500."""
    value = "[" * depth + '"s"' + "]" * depth
    for body in ('{"inputs": 1, "instances": ' + value + "}", '{"instances": [' + value + ", 1]}"):
        reply = predict(url, "half_plus_two", body)
        assert reply.status == 400, reply.body[:200]
        assert len(reply.body) < len(body) + 2048


# ---------------------------------------------------------------------- status / metadata
def test_status_json(url):
    reply = call(url, "/v1/models/half_plus_two")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert reply.json() == expected
    assert b'"state": "AVAILABLE"' in reply.body  # TF Serving's layout, for grep-based probes
    assert call(url, "/v1/models/half_plus_two/versions/1").json() == expected
    both = call(url, "/v1/models/versions/labels/stable").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in both] == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
    one = call(url, "/v1/models/versions/versions/1").json()["model_version_status"]
    assert [s["version"] for s in one] == ["1"]


def test_metadata_json(url):
    reply = call(url, "/v1/models/half_plus_two/metadata")
    assert reply.status == 200, reply.body
    document = reply.json()
    assert document["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    signature = document["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    x = signature["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
        "unknown_rank": False,
    }
    assert signature["outputs"]["y"]["dtype"] == "DT_FLOAT"
    tf1 = call(url, "/v1/models/versions/labels/stable/metadata").json()
    assert tf1["model_spec"]["version"] == "1"
    classify = call(url, "/v1/models/tf1/metadata").json()["metadata"]["signature_def"]
    assert (
        classify["signature_def"]["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
    )


# ---------------------------------------------------------------------- errors
HPT = "/v1/models/half_plus_two"
ERRORS = [
    # (method, path, body, status, exact message or prefix ending in "...")
    ("POST", "/v1/foo", None, 400, "Malformed request: POST /v1/foo"),
    ("GET", "/v1/foo", None, 400, "Malformed request: GET /v1/foo"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("POST", "/v1/models", "{}", 400, "Malformed request: POST /v1/models"),
    ("GET", HPT + ":predict", None, 400, f"Malformed request: GET {HPT}:predict"),
    ("POST", HPT, "{}", 400, f"Malformed request: POST {HPT}"),
    ("POST", HPT + ":PREDICT", "{}", 400, f"Malformed request: POST {HPT}:PREDICT"),
    (
        "POST",
        HPT + "/versions/x:predict",
        "{}",
        400,
        f"Malformed request: POST {HPT}/versions/x:predict",
    ),
    ("PUT", HPT + ":predict", "{}", 400, f"Malformed request: PUT {HPT}:predict"),
    (
        "POST",
        HPT + "/versions/99999999999999999999:predict",
        '{"instances": [1.0]}',
        400,
        "Failed to convert version: 99999999999999999999 to numeric.",
    ),
    (
        "GET",
        HPT + "/versions/9223372036854775808",
        None,
        400,
        "Failed to convert version: 9223372036854775808 to numeric.",
    ),
    (
        "POST",
        "/v1/models/nope:predict",
        '{"instances": [1.0]}',
        404,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "POST",
        HPT + "/versions/7:predict",
        '{"instances": [1.0]}',
        404,
        "Servable not found for request: Specific(half_plus_two, 7)",
    ),
    (
        "POST",
        HPT + "/labels/nope:predict",
        '{"instances": [1.0]}',
        400,
        "Unrecognized servable version label: nope",
    ),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    ("POST", HPT + ":predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", HPT + ":predict", "instances = [1, 2]", 400, "JSON Parse error: ..."),
    (
        "POST",
        HPT + ":predict",
        '{"instances": ["x", "y"]}',
        400,
        "... is not of expected type: float",
    ),
    ("POST", HPT + ":predict", '{"foo": [1.0]}', 400, "Missing 'inputs' or 'instances' key"),
    (
        "POST",
        HPT + ":predict",
        '{"signature_name": 100}',
        400,
        "'signature_name' key must be a string value.",
    ),
    (
        "POST",
        HPT + ":predict",
        '{"signature_name": "nope", "instances": [1.0]}',
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        "POST",
        "/v1/models/tf1:regress",
        '{"signature_name": "nope", "examples": [{"x": 1.0}]}',
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        "POST",
        HPT + ":classify",
        '{"examples": [{"x": 1.0}]}',
        400,
        "Expected classification signature outputs to contain at least one of classes or scores.",
    ),
    ("POST", "/v1/models/multi_io:predict", '{"inputs": {"a": [[1.0, 2.0]]}}', 400, "..."),
    (  # a shape the model cannot run: the error names the input, not the graph node that failed
        "POST",
        "/v1/models/multi_io:predict",
        '{"inputs": {"a": [1.0, 2.0], "b": [1]}}',
        400,
        "Expects arg[0] (a) to have shape [?,2] but [2] is provided",
    ),
]


def test_a_shape_other_than_the_signatures_still_runs_when_the_model_can(url):
    """TF Serving does not check shapes before running: [1, 3] for a [?, 2] input answers (the sum reduces any width)."""
    reply = predict(url, "multi_io", {"inputs": {"a": [[1.0, 2.0, 3.0]], "b": [1]}})
    assert reply.status == 200, reply.body
    assert reply.json()["outputs"]["sum"] == [7.0]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), ERRORS)
def test_error_wording(url, method, path, body, status, message):
    reply = call(url, path, body, method=method)
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    error = reply.error
    assert "Traceback" not in error
    if message == "...":
        assert error
    elif message.startswith("..."):
        assert message[3:].strip() in error
    elif message.endswith("..."):
        assert error.startswith(message[:-3].strip())
    else:
        assert error == message


def test_paths_are_case_insensitive_and_percent_decoded(url):
    upper = call(url, "/V1/MODELS/half_plus_two:predict", {"instances": [1.0]})
    assert upper.json() == {"predictions": [2.5]}
    encoded = call(url, "/v1/models/half%5Fplus%5Ftwo:predict", {"instances": [1.0]})
    assert encoded.json() == {"predictions": [2.5]}
    outside = call(url, "/v2/models/half_plus_two")
    assert outside.status == 404 and outside.error == "Not found: GET /v2/models/half_plus_two"


# ---------------------------------------------------------------------- CORS, limits
def test_cors_is_off_unless_enabled(url):
    reply = predict(url, "half_plus_two", {"instances": [1.0]})
    assert "access-control-allow-origin" not in reply.headers
    preflight = call(
        url, HPT + ":predict", method="OPTIONS", headers={"Origin": "http://a.example"}
    )
    assert preflight.status == 400
    assert preflight.error == f"Malformed request: OPTIONS {HPT}:predict"


def test_cors_when_enabled(variant_url):
    reply = predict(variant_url, "half_plus_two", {"instances": [1.0]})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert reply.headers["access-control-allow-methods"] == "POST, GET"
    assert reply.headers["access-control-allow-headers"] == "Content-Type"
    error = call(variant_url, "/v1/models")
    assert error.status == 400 and error.headers["access-control-allow-origin"] == "*"
    preflight = call(
        variant_url, HPT + ":predict", method="OPTIONS", headers={"Origin": "https://a.example"}
    )
    assert preflight.status == 200 and preflight.body == b""
    assert preflight.headers["access-control-allow-methods"] == "POST, GET"
    refused = call(variant_url, HPT + ":predict", method="OPTIONS")
    assert refused.status == 400
    assert refused.error == "Origin header is missing in CORS preflight"


def test_body_size_limit_gives_a_clear_413(variant_url):
    path = HPT + ":predict"
    ok = json.dumps({"instances": [1.0] * 2000})
    assert len(ok) < SMALL_BODY_LIMIT
    assert call(variant_url, path, ok).status == 200
    too_big = json.dumps({"instances": [1.0] * 8000})
    assert len(too_big) > SMALL_BODY_LIMIT
    reply = call(variant_url, path, too_big)
    assert reply.status == 413
    assert "rest_api_max_body_bytes" in reply.error and str(SMALL_BODY_LIMIT) in reply.error

    def chunks():  # no Content-Length: the limit trips while the body streams in
        for _ in range(8):
            yield b" " * 4096

    chunked = call(variant_url, path, chunks())
    assert chunked.status == 413 and "rest_api_max_body_bytes" in chunked.error
    bomb = gzip.compress(b" " * (SMALL_BODY_LIMIT * 4) + b'{"instances": [1.0]}')
    assert len(bomb) < SMALL_BODY_LIMIT
    inflated = call(variant_url, path, bomb, headers={"Content-Encoding": "gzip"})
    assert inflated.status == 413 and "rest_api_max_body_bytes" in inflated.error


# ---------------------------------------------------------------------- metrics, management
def test_prometheus_metrics_count_rest_requests(url):
    before = call(url, METRICS_PATH)
    assert before.status == 200
    assert before.headers["content-type"].startswith("text/plain")
    ok = dict(model_name="half_plus_two", status="OK")
    latency = dict(API="predict", entrypoint="REST", model_name="half_plus_two")
    missing = dict(model_name="", status="NOT_FOUND")  # every unknown name counts here
    predict(url, "half_plus_two", {"instances": [1.0]})
    predict(url, "nope", {"instances": [1.0]})
    call(url, "/v1/models/half_plus_two")
    after = call(url, METRICS_PATH).body.decode()
    count = ":tensorflow:serving:request_count"
    histogram = ":tensorflow:serving:request_latency_count"
    assert metric(after, count, **ok) == metric(before.body.decode(), count, **ok) + 2
    assert metric(after, count, **missing) == metric(before.body.decode(), count, **missing) + 1
    assert (
        metric(after, histogram, **latency)
        == metric(before.body.decode(), histogram, **latency) + 1
    )
    status_api = dict(API="GetModelStatus", entrypoint="REST", model_name="half_plus_two")
    assert metric(after, histogram, **status_api) >= 1


def test_unknown_model_names_add_no_metric_series(url):
    """Each made-up name was a new request_count and request_latency series, without limit."""
    series_before = call(url, METRICS_PATH).body.decode().count("\n")
    count = ":tensorflow:serving:request_count"
    missing = dict(model_name="", status="NOT_FOUND")
    before = metric(call(url, METRICS_PATH).body.decode(), count, **missing)
    for index in range(40):
        assert predict(url, f"made-up-{index}", {"instances": [1.0]}).status == 404
        assert call(url, f"/v1/models/made-up-{index}/metadata").status == 404
    after = call(url, METRICS_PATH).body.decode()
    assert "made-up" not in after
    assert metric(after, count, **missing) == before + 80
    # At most the unknown-model series themselves are new (one latency histogram per API).
    assert after.count("\n") - series_before <= 2 * (len(LATENCY_BUCKETS) + 4)


def test_management_lists_models(url):
    reply = call(url, "/tfserve/api/models")
    assert reply.status == 200
    models = {m["name"]: m for m in reply.json()["models"]}
    assert sorted(models) == ["counter", "half_plus_two", "multi_io", "strings", "tf1", "versions"]
    versions = models["versions"]
    assert versions["labels"] == {"stable": 1, "canary": 2}
    assert versions["policy"] == {"all": {}}
    assert [(v["version"], v["state"]) for v in versions["versions"]] == [
        (2, "AVAILABLE"),
        (1, "AVAILABLE"),
    ]
    hpt = models["half_plus_two"]
    assert hpt["policy"] == {"latest": {"num_versions": 1}}
    serving = hpt["versions"][0]["signatures"]["serving_default"]
    assert serving["inputs"] == {"x": {"dtype": "DT_FLOAT", "shape": [-1, 1]}}
    assert serving["method_name"] == "tensorflow/serving/predict"
    assert models["tf1"]["versions"][0]["loader"] in ("tf1", "tf2")
    assert hpt["versions"][0]["error_code"] == "OK"
    assert call(url, "/tfserve/api/nope").status == 404
    wrong_method = call(
        url, "/tfserve/api/models", "{}", method="PUT", headers={"Content-Type": "application/json"}
    )
    assert wrong_method.status == 405 and wrong_method.headers["allow"] == "GET, POST"


def test_ready_when_every_model_is_available(url):
    reply = call(url, "/tfserve/api/ready")
    assert reply.status == 200
    assert reply.json()["ready"] is True


def test_not_ready_while_a_model_has_no_version(kind, io_loop, tmp_path):
    (tmp_path / "empty").mkdir()
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="empty", base_path=str(tmp_path / "empty"))
    options = ServerOptions(port=0, rest_api_port=0, file_system_poll_wait_seconds=0)
    empty = ModelServer(options, config=config).start(timeout=10)
    front = io_loop.run(SERVE[kind](empty.rest, "127.0.0.1", 0, options))
    try:
        reply = call(f"http://127.0.0.1:{front.port}", "/tfserve/api/ready")
        assert reply.status == 503
        assert reply.json()["waiting_for"] == ["empty"]
        assert reply.json()["ready"] is False
    finally:
        io_loop.run(front.stop(5))
        empty.stop()


# ---------------------------------------------------------------------- the fronts themselves
SAME_BYTES_REQUESTS = [
    ("POST", HPT + ":predict", '{"instances": [1.0, 2.0, 5.0]}', {}),
    ("POST", HPT + ":predict", '{"instances": ["x"]}', {}),
    ("POST", "/v1/models/multi_io:predict", '{"inputs": {"a": [[1, 2]], "b": [3]}}', {}),
    (
        "POST",
        "/v1/models/tf1:classify",
        '{"signature_name": "classify_x_to_y", "examples": [{"x": 1}]}',
        {},
    ),
    ("GET", HPT, None, {}),
    ("GET", HPT + "/metadata", None, {}),
    ("GET", "/v1/models", None, {}),
    (
        "POST",
        HPT + ":predict",
        gzip.compress(b'{"instances": [1.0]}'),
        {"Content-Encoding": "gzip"},
    ),
    ("OPTIONS", HPT + ":predict", None, {"Origin": "http://a.example"}),
    ("POST", HPT + ":predict", b" " * (SMALL_BODY_LIMIT + 1), {}),
    ("GET", "/tfserve/api/ready", None, {}),
    ("GET", "/nowhere", None, {}),
]


def test_fronts_answer_byte_identical(fronts):
    for index in (0, 1):  # the server's own RestApp, then the CORS + small-limit variant
        for method, path, body, headers in SAME_BYTES_REQUESTS:
            replies = [call(fronts[k][index], path, body, method, headers) for k in FRONT_KINDS]
            for reply in replies:
                reply.headers.pop("date", None)
            tornado_reply, standalone_reply = replies
            assert tornado_reply == standalone_reply, (method, path)


def test_mounts_under_a_prefix_with_the_hosts_base_class(server, io_loop):
    class TokenHandler(tornado.web.RequestHandler):
        """Stands in for Jupyter's authenticated handler: auth is decided in prepare()."""

        async def prepare(self):
            if self.request.headers.get("Authorization") != "token secret":
                raise tornado.web.HTTPError(403)

    prefix = "/user/me/tfserve"
    handlers = http_tornado.rest_handlers(server.rest, prefix, handler_base=TokenHandler)

    async def start():
        http = tornado.httpserver.HTTPServer(tornado.web.Application(handlers))
        sockets = http_standalone.bind_sockets("127.0.0.1", 0)
        http.add_sockets(sockets)
        return http, sockets[0].getsockname()[1]

    http, port = io_loop.run(start())
    base = f"http://127.0.0.1:{port}{prefix}"
    auth = {"Authorization": "token secret"}
    try:
        assert call(base, HPT + ":predict", '{"instances": [1.0]}').status == 403
        reply = call(base, HPT + ":predict", '{"instances": [1.0]}', headers=auth)
        assert reply.json() == {"predictions": [2.5]}
        assert call(base, "/tfserve/api/models", headers=auth).status == 200
        assert call(base, "/v1/models", headers=auth).error == "Missing model name in request."
        assert call(f"http://127.0.0.1:{port}", HPT, headers=auth).status == 404
    finally:
        io_loop.run(_stop_tornado(http))


async def _stop_tornado(http):
    http.stop()
    await http.close_all_connections()


class GatedApp:
    """A RestApp whose requests wait at a gate: lets a test stop a front with a request in flight."""

    def __init__(self, app: RestApp):
        self.app = app
        self.max_body_bytes = app.max_body_bytes
        self.max_requests_in_flight = app.max_requests_in_flight
        self.body_too_large = app.body_too_large
        self.entered = threading.Event()
        self.gate = asyncio.Event()

    async def handle(self, *args):
        self.entered.set()
        await self.gate.wait()
        return await self.app.handle(*args)


def test_stop_lets_in_flight_requests_finish(server, io_loop, kind):
    gated = GatedApp(server.rest)
    front = io_loop.run(SERVE[kind](gated, "127.0.0.1", 0, server.options))
    replies = []
    client = threading.Thread(
        target=lambda: replies.append(
            predict(f"http://127.0.0.1:{front.port}", "half_plus_two", {"instances": [1.0]})
        )
    )
    client.start()
    assert gated.entered.wait(TIMEOUT)
    stopping = io_loop.submit(front.stop(10))
    assert wait_until(lambda: port_refuses(front.port), 10), "still accepting after stop()"
    assert not stopping.done()
    io_loop.loop.call_soon_threadsafe(gated.gate.set)
    client.join(TIMEOUT)
    stopping.result(TIMEOUT)
    assert [r.json() for r in replies] == [{"predictions": [2.5]}]


def test_idle_and_slow_header_connections_are_dropped(server, io_loop, kind, monkeypatch):
    monkeypatch.setattr(http_standalone, "HEADER_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(http_standalone, "KEEP_ALIVE_SECONDS", 1)
    monkeypatch.setattr(http_tornado, "KEEP_ALIVE_SECONDS", 0.5)
    front = io_loop.run(SERVE[kind](server.rest, "127.0.0.1", 0, server.options))
    try:
        with socket.create_connection(("127.0.0.1", front.port), timeout=10) as slow:
            slow.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: localhost\r\n")
            started = time.monotonic()
            assert slow.recv(1024) == b""  # closed without an answer
            assert time.monotonic() - started < 8
        with socket.create_connection(("127.0.0.1", front.port), timeout=10) as idle:
            idle.sendall(b"GET /v1/models/half_plus_two HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while b"AVAILABLE" not in answer:
                answer += idle.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            while idle.recv(65536):  # the rest of the answer, then the close
                pass
            assert time.monotonic() - started < 8
    finally:
        io_loop.run(front.stop(5))


def test_a_body_that_stops_arriving_gets_a_408_and_the_port_keeps_serving(
    server, io_loop, monkeypatch
):
    """The standalone front's body deadline; the next request on a new connection is answered."""
    monkeypatch.setattr(http_standalone, "BODY_TIMEOUT_SECONDS", 0.5)
    front = io_loop.run(SERVE["standalone"](server.rest, "127.0.0.1", 0, server.options))
    try:
        with socket.create_connection(("127.0.0.1", front.port), timeout=10) as slow:
            slow.sendall(
                b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: localhost\r\n"
                b'Content-Length: 100\r\n\r\n{"instances"'
            )
            answer = b""
            while chunk := slow.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"Request body not received within 0.5 seconds" in answer
        reply = predict(f"http://127.0.0.1:{front.port}", "half_plus_two", {"instances": [1.0]})
        assert reply.json() == {"predictions": [2.5]}
    finally:
        io_loop.run(front.stop(5))


@pytest.fixture
def standalone_port(server, io_loop):
    front = io_loop.run(SERVE["standalone"](server.rest, "127.0.0.1", 0, server.options))
    yield front.port
    io_loop.run(front.stop(5))


def _read_answers(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` HTTP answers off one connection: (head, body) each, framed by Content-Length."""
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(answers)} answers"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(data) < length:
            chunk = sock.recv(65536)
            assert chunk, "closed mid-answer"
            data += chunk
        answers.append((head, data[:length]))
        data = data[length:]
    return answers


def _closes(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def _post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


def test_pipelined_requests_are_answered_in_order_on_one_connection(standalone_port):
    """Far more requests than the port lets wait at once, in one write: reading pauses, none is lost."""
    requests_ = [
        _post(HPT + ":predict", json.dumps({"instances": [float(i)]}).encode()) for i in range(40)
    ]
    requests_.insert(7, b"GET /v1/models/nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n")
    with socket.create_connection(("127.0.0.1", standalone_port), timeout=TIMEOUT) as sock:
        sock.sendall(b"".join(requests_))
        answers = _read_answers(sock, len(requests_))
    bodies = [json.loads(body) for _, body in answers]
    assert answers[7][0].startswith(b"HTTP/1.1 404")
    assert bodies.pop(7) == {"error": "Could not find any versions of model nowhere"}
    assert bodies == [{"predictions": [i / 2 + 2]} for i in range(40)]


def test_pipelined_requests_count_against_the_in_flight_bound_one_at_a_time(server, io_loop):
    """Requests waiting behind others on their connection are not in flight yet: none is refused."""
    app = server.rest_app(max_requests_in_flight=2)
    front = io_loop.run(SERVE["standalone"](app, "127.0.0.1", 0, server.options))
    body = json.dumps({"instances": [1.0]}).encode()
    try:
        with socket.create_connection(("127.0.0.1", front.port), timeout=TIMEOUT) as sock:
            sock.sendall(_post(HPT + ":predict", body) * 10)
            answers = _read_answers(sock, 10)
    finally:
        io_loop.run(front.stop(5))
    assert [json.loads(answer) for _, answer in answers] == [{"predictions": [2.5]}] * 10


def test_a_refused_upload_is_read_and_dropped_so_that_its_client_gets_the_413(fronts):
    """The client is still sending when the 413 goes out: closing at once would reset the connection."""
    port = int(fronts["standalone"][1].rsplit(":", 1)[1])  # the 16 KiB-limit variant
    body = b"[" + b"1.0," * (1024 * 1024)  # 4 MiB
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(_post(HPT + ":predict", body))
        ((head, answer),) = _read_answers(sock, 1)
        assert _closes(sock)
    assert head.startswith(b"HTTP/1.1 413")
    assert "rest_api_max_body_bytes" in json.loads(answer)["error"]


def test_expect_100_continue_is_answered_before_the_body_is_sent(standalone_port):
    body = json.dumps({"instances": [1.0] * 300}).encode()  # curl expects 100 for over 1 KiB
    with socket.create_connection(("127.0.0.1", standalone_port), timeout=TIMEOUT) as sock:
        sock.sendall(_post(HPT + ":predict", body, b"Expect: 100-continue\r\n")[: -len(body)])
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        ((head, answer),) = _read_answers(sock, 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(answer) == {
        "predictions": [2.5] * 300
    }


def test_http_1_0_and_connection_close_get_one_answer_then_the_close(standalone_port):
    for request in (
        b"GET " + HPT.encode() + b" HTTP/1.0\r\nHost: localhost\r\n\r\n",
        b"GET " + HPT.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", standalone_port), timeout=TIMEOUT) as sock:
            sock.sendall(request)
            ((head, body),) = _read_answers(sock, 1)
            assert head.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in head
            assert b"AVAILABLE" in body
            assert _closes(sock)


def test_an_upgrade_request_is_answered_over_http_1_1_and_the_connection_goes_on(
    standalone_port,
):
    upgrade = b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
    status = f"GET {HPT} HTTP/1.1\r\nHost: localhost\r\n".encode()
    with socket.create_connection(("127.0.0.1", standalone_port), timeout=TIMEOUT) as sock:
        sock.sendall(status + upgrade + b"\r\n" + status + b"\r\n")
        answers = _read_answers(sock, 2)
    assert [head.split(b"\r\n")[0] for head, _ in answers] == [b"HTTP/1.1 200 OK"] * 2
    assert all(b'"state": "AVAILABLE"' in body for _, body in answers)


@pytest.mark.parametrize(
    "request_bytes, status, message",
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "Malformed HTTP request: "),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n",
            431,
            "Request headers exceed 65536 bytes",
        ),
    ],
    ids=["malformed", "huge-headers"],
)
def test_bad_http_is_refused_with_a_reason_and_the_port_keeps_serving(
    standalone_port, request_bytes, status, message
):
    with socket.create_connection(("127.0.0.1", standalone_port), timeout=TIMEOUT) as sock:
        sock.sendall(request_bytes)
        ((head, body),) = _read_answers(sock, 1)
        assert head.startswith(f"HTTP/1.1 {status} ".encode())
        assert message in json.loads(body)["error"]
        assert _closes(sock)
    reply = predict(f"http://127.0.0.1:{standalone_port}", "half_plus_two", {"instances": [1.0]})
    assert reply.json() == {"predictions": [2.5]}


@pytest.fixture(scope="module")
def slow_server(model_store, tmp_path_factory):
    """A server whose ``sleeper`` runs for 1.5 s, with a REST timeout of 0.3 s."""
    root = tmp_path_factory.mktemp("slow_models")
    savedmodels.sleeper(root / "sleeper", 1, milliseconds=1500)
    shutil.copytree(model_store["half_plus_two"], root / "half_plus_two" / "1")
    config = model_server_config_pb2.ModelServerConfig()
    for name in ("sleeper", "half_plus_two"):
        config.model_config_list.config.add(name=name, base_path=str(root / name))
    options = ServerOptions(
        port=0,
        rest_api_port=0,
        file_system_poll_wait_seconds=0,
        rest_api_timeout_in_ms=300,
        enable_model_warmup=False,
    )
    model_server = ModelServer(options, config=config).start(timeout=120)
    yield model_server
    model_server.stop()


def test_a_run_past_rest_api_timeout_in_ms_is_a_504_and_others_are_answered(
    slow_server, io_loop, kind
):
    front = io_loop.run(SERVE[kind](slow_server.rest_app(), "127.0.0.1", 0, slow_server.options))
    base = f"http://127.0.0.1:{front.port}"
    try:
        for _ in range(2):  # the second deadline is armed after the first one fired
            slow = predict(base, "sleeper", {"instances": [[1.0]]})
            assert slow.status == 504
            assert slow.error == "Deadline exceeded: no answer within rest_api_timeout_in_ms=300"
            fast = [predict(base, "half_plus_two", {"instances": [1.0]}) for _ in range(20)]
            assert [r.json() for r in fast] == [{"predictions": [2.5]}] * 20
    finally:
        io_loop.run(front.stop(5))


def test_front_port_zero_binds_an_ephemeral_port(fronts):
    ports = {int(u.rsplit(":", 1)[1]) for pair in fronts.values() for u in pair}
    assert len(ports) == 4 and all(p > 0 for p in ports)


def test_a_full_inference_queue_is_refused_at_once_and_other_requests_keep_working(
    model_store, tmp_path, io_loop
):
    """Every front fed the one inference pool, whose queue had no bound of its own."""
    shutil.copytree(model_store["half_plus_two"], tmp_path / "hpt" / "1")
    server = ModelServer(
        ServerOptions(
            port=0,
            rest_api_port=free_port(),
            model_name="hpt",
            model_base_path=str(tmp_path / "hpt"),
            num_inference_threads=1,
            max_requests_in_flight=2,  # per port; and the pool's queue: 2 runs waiting
        )
    ).start(timeout=120)
    service = server.service
    # A second front with a larger bound of its own, feeding the same pool.
    other = io_loop.run(
        http_standalone.serve(
            server.rest_app(max_requests_in_flight=16), "127.0.0.1", 0, server.options
        )
    )
    own, wide = f"http://127.0.0.1:{server.rest_port}", f"http://127.0.0.1:{other.port}"
    body = {"instances": [[1.0]]}
    service.run_slots.acquire()  # the only run slot is ours: pooled runs wait for it
    held = True
    pending = []
    sender = concurrent.futures.ThreadPoolExecutor(4)
    try:
        pending += [sender.submit(predict, own, "hpt", body) for _ in range(2)]
        pending.append(sender.submit(predict, wide, "hpt", body))
        # 1 running (waiting for the slot), 2 queued
        assert wait_until(lambda: service.pooled_runs == 3)
        refused = predict(wide, "hpt", body)
        assert refused.status == 503
        assert refused.error == (
            "The inference queue to which this request was submitted is full (2 runs waiting); "
            "try again later"
        )
        assert not any(reply.done() for reply in pending)  # refused while the queue stood still
        assert call(wide, "/v1/models/hpt").status == 200  # what needs no model run still works
        service.run_slots.release()
        held = False
        assert [reply.result(TIMEOUT).json() for reply in pending] == [{"predictions": [[2.5]]}] * 3
        assert service.pooled_runs == 0
        assert predict(wide, "hpt", body).json() == {"predictions": [[2.5]]}
    finally:
        if held:
            service.run_slots.release()
        sender.shutdown(wait=True)
        io_loop.run(other.stop(0))
        server.stop()
