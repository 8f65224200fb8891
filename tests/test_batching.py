"""Server-side batching on real SavedModels, through the one inference path every protocol takes.

Some tests need a model whose run time is known. ``tf.py_function`` does not
survive SavedModel export, so the ``sleepy`` model sleeps in a graph op that
does: a one-element ``tf.data`` pipeline through ``SleepDataset``, reduced with
``DatasetToSingleElement``. Both are ordinary kernels serialized into the
SavedModel graph, so the loaded model sleeps without any Python code.
Tests never assert that something is fast; where a test relies on the sleep,
it is that a run lasts long enough (half a second) for a few in-process
submits (microseconds) to happen meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from jupyter_tfserve import cli
from jupyter_tfserve.core.batching import QUEUE_FULL, BatchScheduler, is_batchable
from jupyter_tfserve.core.batching_params import (
    PER_MODEL_FILE,
    BatchingOptions,
    load_batching_parameters,
    parameters_from_json,
    schedulable_cores,
)
from jupyter_tfserve.core.config import single_model_config
from jupyter_tfserve.core.inference import InferenceService, ModelSpec
from jupyter_tfserve.core.manager import ModelManager, State
from jupyter_tfserve.core.metrics import ServingMetrics
from jupyter_tfserve.core.platforms.tensorflow import load_servable
from jupyter_tfserve.core.status import Code, ServingError
from jupyter_tfserve.server import ModelServer, ServerOptions

SLEEP_SECONDS = 0.5
NEVER = 600 * 1_000_000  # a batch timeout no test waits for: batches close when full or flushed


# ---------------------------------------------------------------------- models
def sleepy(base_path, version: int = 1) -> str:
    """y = 2x after sleeping SLEEP_SECONDS per run (not per row); x float32 [-1, 1]."""

    class Sleepy(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            dataset = tf.data.Dataset.from_tensors(x)
            # DatasetToSingleElement reads twice (the element, then the end): sleep half each time.
            slept = tf.raw_ops.SleepDataset(
                input_dataset=dataset._variant_tensor,
                sleep_microseconds=tf.constant(int(SLEEP_SECONDS * 1e6 / 2), tf.int64),
                output_types=[tf.float32],
                output_shapes=[tf.TensorShape([None, 1])],
            )
            (y,) = tf.raw_ops.DatasetToSingleElement(
                dataset=slept, output_types=[tf.float32], output_shapes=[tf.TensorShape([None, 1])]
            )
            return {"y": 2.0 * y}

    module = Sleepy()
    path = os.path.join(str(base_path), str(version))
    tf.saved_model.save(module, path, signatures={"serving_default": module.predict})
    return path


def row_max(base_path, version: int = 1) -> str:
    """Variable-length rows: x float32 [-1, -1] -> the max of each row, [-1].

    Padding a row with its tensor's first element never changes its max when
    that element is the smallest, which the test makes sure of.
    """

    class RowMax(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
        def predict(self, x):
            return {"max": tf.reduce_max(x, axis=1)}

    module = RowMax()
    path = os.path.join(str(base_path), str(version))
    tf.saved_model.save(module, path, signatures={"serving_default": module.predict})
    return path


@pytest.fixture(scope="module")
def extra_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("batching_models")
    return {"sleepy": sleepy(root / "sleepy"), "row_max": row_max(root / "row_max")}


# ---------------------------------------------------------------------- harness
class Serving:
    """Manager + batch scheduler + InferenceService: the engine a ModelServer wires, minus the fronts."""

    def __init__(self, parameters=None, **batcher_options):
        self.unloaded: list[tuple[str, int]] = []
        self.manager = ModelManager(
            lambda name, version, path: load_servable(name, version, path),
            file_system_poll_wait_seconds=0,
            max_num_load_retries=0,
            on_unload=lambda name, version: self.unloaded.append((name, version)),
        )
        self.metrics = ServingMetrics()
        if isinstance(parameters, dict):
            parameters = parameters_from_json(parameters)
        self.batcher = BatchScheduler(
            parameters, metrics=self.metrics, manager=self.manager, **batcher_options
        )
        self.executor = ThreadPoolExecutor(4)
        self.service = InferenceService(
            self.manager, self.executor, batcher=self.batcher, metrics=self.metrics
        )

    def serve(self, name: str, base_path: str) -> None:
        config = self.manager.config
        model = config.model_config_list.config.add()
        model.CopyFrom(single_model_config(name, base_path).model_config_list.config[0])
        self.manager.reload_config(config)
        assert self.manager.version_status(name)[0].state == State.AVAILABLE

    def predict(self, name: str, inputs: dict, signature: str = "serving_default", outputs=()):
        with self.service.resolve(ModelSpec(name, signature_name=signature)) as target:
            return self.service.predict(target, inputs, outputs)

    def regress(self, name: str, examples: list[bytes], signature: str):
        with self.service.resolve(ModelSpec(name, signature_name=signature)) as target:
            return self.service.regress(target, examples)

    def stats(self, name: str, signature: str = "serving_default") -> dict:
        return self.batcher.stats(name)["signatures"].get(signature, {})

    def wait(self, predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.002)

    def flush(self, name: str) -> None:
        """Close the open batches of a model now: a parameter change does exactly that."""
        current = self.batcher.parameters(name)
        if current["source"] == "override":
            current.pop("source")
            self.batcher.set_parameters(name, parameters_from_json(current))
        else:
            self.batcher.set_parameters(name, None)

    def close(self) -> None:
        self.batcher.stop()
        self.manager.stop()
        self.executor.shutdown()


@pytest.fixture
def serving():
    made: list[Serving] = []

    def make(parameters=None, **options) -> Serving:
        made.append(Serving(parameters, **options))
        return made[-1]

    yield make
    for s in made:
        s.close()


def x_rows(start: int, rows: int) -> np.ndarray:
    return (np.arange(rows, dtype=np.float32) + start).reshape(rows, 1)


def example(x: float) -> bytes:
    feature = tf.train.Feature(float_list=tf.train.FloatList(value=[x]))
    return tf.train.Example(features=tf.train.Features(feature={"x": feature})).SerializeToString()


# ---------------------------------------------------------------------- parameters
def test_defaults_are_tf_servings():
    options = BatchingOptions.from_proto(None)
    assert options.max_batch_size == 1000
    assert options.batch_timeout_micros == 0
    assert options.max_enqueued_batches == 10
    assert options.num_batch_threads == schedulable_cores()
    assert options.allowed_batch_sizes == ()
    assert options.pad_variable_length_inputs is False
    assert options.enable_large_batch_splitting is False
    assert options.max_execution_batch_size == 1000
    assert (
        BatchingOptions.from_proto(
            parameters_from_json({"max_batch_size": 64})
        ).max_execution_batch_size
        == 64
    )


def test_parameters_file_in_tf_serving_text_format(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text(
        "max_batch_size { value: 128 }\n"
        "batch_timeout_micros { value: 500 }\n"
        "num_batch_threads { value: 3 }\n"
        "allowed_batch_sizes: 32\nallowed_batch_sizes: 128\n"
        "pad_variable_length_inputs: true\n"
    )
    options = BatchingOptions.from_proto(load_batching_parameters(path))
    assert (options.max_batch_size, options.batch_timeout_micros, options.num_batch_threads) == (
        128,
        500,
        3,
    )
    assert options.allowed_batch_sizes == (32, 128)
    assert options.pad_variable_length_inputs is True
    assert options.max_enqueued_batches == 10

    path.write_text("max_batch_size: 128\n")  # not the wrapper syntax
    with pytest.raises(
        ServingError, match="Error parsing text-format .*BatchingParameters"
    ) as error:
        load_batching_parameters(path)
    assert error.value.code == Code.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"max_batch_size": 4, "allowed_batch_sizes": [4, 2]}, "must be monotonically increasing"),
        (
            {"max_batch_size": 4, "allowed_batch_sizes": [2, 2, 4]},
            "must be monotonically increasing",
        ),
        (
            {"max_batch_size": 4, "allowed_batch_sizes": [1, 3]},
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 3; expected 4",
        ),
        (
            {
                "max_batch_size": 8,
                "enable_large_batch_splitting": True,
                "max_execution_batch_size": 4,
                "allowed_batch_sizes": [2, 8],
            },
            "must be equal to max_execution_batch_size; last entry was 8; expected 4",
        ),
        (
            {
                "max_batch_size": 4,
                "enable_large_batch_splitting": True,
                "max_execution_batch_size": 8,
            },
            "max_execution_batch_size must be less than or equal to max_batch_size",
        ),
        ({"max_batch_size": 0}, "max_batch_size must be positive"),
        ({"batch_timeout_micros": -1}, "batch_timeout_micros must be non-negative"),
        ({"num_batch_threads": 100000}, "num_batch_threads must be at most"),
    ],
)
def test_invalid_parameters_are_rejected(parameters, message):
    with pytest.raises(ServingError, match=message) as error:
        BatchingOptions.from_proto(parameters_from_json(parameters))
    assert error.value.code == Code.INVALID_ARGUMENT


def test_json_parameters_reject_unknown_fields():
    with pytest.raises(ServingError, match="Invalid batching parameters") as error:
        parameters_from_json({"max_batch_sise": 8})
    assert error.value.code == Code.INVALID_ARGUMENT


def test_parameters_file_without_enable_batching_is_a_startup_error(tmp_path, capsys):
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 8 }\n")
    code = cli.main([f"--model_base_path={tmp_path}", f"--batching_parameters_file={path}"])
    assert code != 0
    assert (
        "server_options.batching_parameters_file is set without setting "
        "server_options.enable_batching to true." in capsys.readouterr().err
    )


# ---------------------------------------------------------------------- what is batched
def test_batchable_signatures(serving, model_repo):
    s = serving()
    s.serve("counter", model_repo("counter"))
    s.serve("hpt", model_repo("half_plus_two"))
    s.serve("tf1", model_repo("half_plus_two_tf1"))
    with s.manager.acquire("counter") as handle:
        assert not is_batchable(
            handle.servable.signatures["incr_counter"]
        )  # output [1]: one total per call
        assert not s.batcher.applies(handle, "get_counter")
    with s.manager.acquire("hpt") as handle:
        assert s.batcher.applies(handle, "serving_default")
    with s.manager.acquire("tf1") as handle:
        assert s.batcher.applies(handle, "regress_x_to_y")


def test_stateful_counter_bypasses_batching(serving, model_repo):
    s = serving({"batch_timeout_micros": NEVER})
    s.serve("counter", model_repo("counter"))
    # With a timeout no test waits for, these would hang if they were batched.
    totals = [
        float(
            s.predict("counter", {"delta": np.array([1.0], np.float32)}, "incr_counter").result(30)[
                "output"
            ][0]
        )
        for _ in range(3)
    ]
    assert totals == [1.0, 2.0, 3.0]
    assert s.batcher.stats("counter")["signatures"] == {}


# ---------------------------------------------------------------------- correctness
def test_concurrent_requests_get_exactly_their_rows(serving, model_repo):
    """Mixed row counts from many threads; odd total rows and even allowed sizes force padding."""
    s = serving(
        {
            "max_batch_size": 8,
            "batch_timeout_micros": NEVER,
            "allowed_batch_sizes": [2, 4, 8],
            "max_enqueued_batches": 100,
        }
    )
    s.serve("hpt", model_repo("half_plus_two"))
    requests = [x_rows(1000 * i, 1 + i % 3) for i in range(41)]  # 81 rows
    with ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(lambda x: s.predict("hpt", {"x": x}), requests))
    s.flush("hpt")
    for x, future in zip(requests, futures, strict=True):
        y = future.result(30)["y"]
        assert y.shape == x.shape
        np.testing.assert_allclose(y, 0.5 * x + 2.0)
    stats = s.stats("hpt")
    assert stats["requests"] == 41 and stats["rows"] == 81
    assert stats["padding_rows"] > 0
    assert stats["batches"] < 41
    assert all(int(size) <= 8 for size in stats["batch_size_histogram"])
    assert stats["queued_rows"] == 0


def test_several_outputs_output_filters_and_strings(serving, model_repo):
    s = serving({"max_batch_size": 6, "batch_timeout_micros": NEVER, "allowed_batch_sizes": [3, 6]})
    s.serve("multi", model_repo("multi_io"))
    s.serve("strings", model_repo("strings"))
    futures = []
    for i in range(7):
        a = np.full((i % 2 + 1, 2), i, np.float32)
        b = np.full(i % 2 + 1, 10 * i, np.int64)
        outputs = ("doubled_b",) if i % 3 == 0 else ()
        futures.append((a, b, outputs, s.predict("multi", {"a": a, "b": b}, outputs=outputs)))
    texts = [np.array([f"row {i}".encode()] * (i % 2 + 1), dtype=object) for i in range(5)]
    string_futures = [s.predict("strings", {"text": t}) for t in texts]
    s.flush("multi")
    s.flush("strings")
    for a, b, outputs, future in futures:
        result = future.result(30)
        assert set(result) == (set(outputs) or {"sum", "doubled_b"})
        np.testing.assert_array_equal(result["doubled_b"], 2 * b)
        if "sum" in result:
            np.testing.assert_allclose(result["sum"], a.sum(axis=1) + b)
    for text, future in zip(texts, string_futures, strict=True):
        result = future.result(30)
        assert list(result["upper"]) == [t.upper() for t in text]
        assert list(result["raw_bytes"]) == list(text)
    assert s.stats("multi")["padding_rows"] > 0


def test_large_requests_are_split_and_reassembled(serving, model_repo):
    s = serving(
        {
            "max_batch_size": 16,
            "enable_large_batch_splitting": True,
            "max_execution_batch_size": 4,
            "allowed_batch_sizes": [2, 4],
            "batch_timeout_micros": NEVER,
            "max_enqueued_batches": 100,
        }
    )
    s.serve("hpt", model_repo("half_plus_two"))
    requests = [x_rows(100 * i, rows) for i, rows in enumerate([3, 10, 1, 16, 5, 7])]
    with ThreadPoolExecutor(6) as pool:
        futures = list(pool.map(lambda x: s.predict("hpt", {"x": x}), requests))
    s.flush("hpt")
    for x, future in zip(requests, futures, strict=True):
        np.testing.assert_allclose(future.result(30)["y"], 0.5 * x + 2.0)
    stats = s.stats("hpt")
    assert stats["rows"] == 42
    assert max(int(size) for size in stats["batch_size_histogram"]) <= 4

    with pytest.raises(
        ServingError, match="Task size 17 is larger than maximum input batch size 16"
    ) as error:
        s.predict("hpt", {"x": x_rows(0, 17)})
    assert error.value.code == Code.INVALID_ARGUMENT


def test_variable_length_inputs(serving, extra_store, tmp_path):
    rows = [
        np.array([[0.0, 5.0, 3.0]], np.float32),
        np.array([[0.0, 7.0]], np.float32),
        np.array([[0.0, 1.0, 9.0, 2.0], [0.0, 4.0, 1.0, 1.0]], np.float32),
    ]
    expected = [[5.0], [7.0], [9.0, 4.0]]
    for pad, batches in ((False, 3), (True, 1)):
        base = tmp_path / f"pad_{pad}"
        shutil.copytree(extra_store["row_max"], base / "1")
        s = serving({"batch_timeout_micros": NEVER, "pad_variable_length_inputs": pad})
        s.serve("m", str(base))
        futures = [s.predict("m", {"x": x}) for x in rows]
        s.flush("m")
        for future, want in zip(futures, expected, strict=True):
            np.testing.assert_allclose(future.result(30)["max"], want)
        # Without padding, different lengths never share a batch; with it, one batch holds them all.
        assert s.stats("m")["batches"] == batches


# ---------------------------------------------------------------------- failures
def test_bad_requests_fail_alone(serving, model_repo):
    s = serving({"max_batch_size": 8, "batch_timeout_micros": NEVER})
    s.serve("tf1", model_repo("half_plus_two_tf1"))
    s.serve("hpt", model_repo("half_plus_two"))
    s.serve("multi", model_repo("multi_io"))

    # Shapes the signature does not declare run in a batch of their own, next to good ones,
    # and get what they would get unbatched: an answer, or the model's error.
    good = [s.predict("hpt", {"x": x_rows(i, 1)}) for i in range(3)]
    odd = s.predict("hpt", {"x": np.ones((2, 3), np.float32)})
    np.testing.assert_allclose(odd.result(30)["y"], np.full((2, 3), 2.5))
    good_multi = s.predict(
        "multi", {"a": np.ones((2, 2), np.float32), "b": np.array([1, 2], np.int64)}
    )
    bad = s.predict("multi", {"a": np.ones((2, 2), np.float32), "b": np.array([1, 2, 3], np.int64)})
    with pytest.raises(ServingError) as error:
        bad.result(30)
    assert error.value.code == Code.INVALID_ARGUMENT
    s.flush("hpt")
    s.flush("multi")
    for i, future in enumerate(good):
        np.testing.assert_allclose(future.result(30)["y"], [[0.5 * i + 2.0]])
    np.testing.assert_allclose(good_multi.result(30)["sum"], [3.0, 4.0])

    # A malformed tf.Example fails the merged run: each request is re-run alone, only it fails.
    examples = [[example(1.0)], [b"not a tf.Example"], [example(2.0), example(4.0)]]
    futures = [s.regress("tf1", e, "regress_x_to_y") for e in examples]
    s.flush("tf1")
    np.testing.assert_allclose(futures[0].result(30), [2.5])
    with pytest.raises(ServingError) as error:
        futures[1].result(30)
    assert error.value.code == Code.INVALID_ARGUMENT
    np.testing.assert_allclose(futures[2].result(30), [3.0, 4.0])
    stats = s.stats("tf1", "regress_x_to_y")
    assert stats["reruns_alone"] == 1 and stats["requests"] == 3


def test_wrong_dtype_is_refused_before_it_is_enqueued(serving, model_repo):
    s = serving({"batch_timeout_micros": NEVER})
    s.serve("hpt", model_repo("half_plus_two"))
    with pytest.raises(ServingError, match="Expects arg\\[0\\] \\(x\\) to be float") as error:
        s.predict("hpt", {"x": np.ones((1, 1), np.int32)})
    assert error.value.code == Code.INVALID_ARGUMENT
    assert s.stats("hpt") == {}


def test_full_queue_is_unavailable(serving, extra_store, tmp_path):
    shutil.copytree(extra_store["sleepy"], tmp_path / "sleepy" / "1")
    s = serving({"max_batch_size": 1, "max_enqueued_batches": 2, "num_batch_threads": 1})
    s.serve("sleepy", str(tmp_path / "sleepy"))
    running = s.predict("sleepy", {"x": x_rows(0, 1)})
    s.wait(lambda: s.stats("sleepy").get("queued_rows") == 0)  # taken by the only worker
    queued = [s.predict("sleepy", {"x": x_rows(i, 1)}) for i in (1, 2)]
    with pytest.raises(ServingError) as error:
        s.predict("sleepy", {"x": x_rows(3, 1)})
    assert error.value.code == Code.UNAVAILABLE and error.value.http_status == 503
    assert error.value.message == QUEUE_FULL
    for i, future in enumerate([running, *queued]):
        np.testing.assert_allclose(future.result(30)["y"], [[2.0 * i]])


def test_cancelled_requests_are_dropped_from_their_batch(serving, model_repo):
    s = serving({"batch_timeout_micros": NEVER})
    s.serve("hpt", model_repo("half_plus_two"))
    cancelled = s.predict("hpt", {"x": x_rows(0, 2)})
    kept = s.predict("hpt", {"x": x_rows(5, 1)})
    assert cancelled.cancel()
    s.flush("hpt")
    np.testing.assert_allclose(kept.result(30)["y"], [[4.5]])
    assert s.stats("hpt")["rows"] == 1


def test_unload_while_batches_are_queued(serving, extra_store, tmp_path):
    shutil.copytree(extra_store["sleepy"], tmp_path / "sleepy" / "1")
    s = serving({"max_batch_size": 2, "num_batch_threads": 1})
    s.serve("sleepy", str(tmp_path / "sleepy"))
    futures = [s.predict("sleepy", {"x": x_rows(i, 1)}) for i in range(5)]
    s.manager.remove_model("sleepy")
    # Queued requests hold the version: they finish on it, then it unloads.
    for i, future in enumerate(futures):
        np.testing.assert_allclose(future.result(30)["y"], [[2.0 * i]])
    s.wait(lambda: ("sleepy", 1) in s.unloaded)
    with pytest.raises(ServingError) as error:
        s.predict("sleepy", {"x": x_rows(0, 1)})
    assert error.value.code == Code.NOT_FOUND


# ---------------------------------------------------------------------- timeouts
def test_batch_closes_when_full_not_before(serving, model_repo):
    s = serving({"max_batch_size": 4, "batch_timeout_micros": NEVER})
    s.serve("hpt", model_repo("half_plus_two"))
    futures = [s.predict("hpt", {"x": x_rows(i, 1)}) for i in range(3)]
    # A batch closes when full or at its deadline: three rows of four wait.
    stats = s.stats("hpt")
    assert stats["batches"] == 0 and stats["queued_rows"] == 3
    futures.append(s.predict("hpt", {"x": x_rows(3, 2)}))  # does not fit: closes the three
    futures.append(s.predict("hpt", {"x": x_rows(5, 2)}))  # fills the next batch
    for future in futures:
        future.result(30)
    stats = s.stats("hpt")
    assert stats["batch_size_histogram"] == {"3": 1, "4": 1}
    assert stats["close_reasons"] == {"full": 2}


def test_partial_batch_closes_at_its_deadline_not_before(serving, model_repo):
    s = serving({"max_batch_size": 100, "batch_timeout_micros": 50_000})
    s.serve("hpt", model_repo("half_plus_two"))
    np.testing.assert_allclose(s.predict("hpt", {"x": x_rows(0, 1)}).result(30)["y"], [[2.0]])
    stats = s.stats("hpt")
    assert stats["close_reasons"] == {"timeout": 1}
    assert stats["queue_wait_ms"]["max"] >= 50.0  # it never closes before its deadline


def test_zero_timeout_runs_at_once_and_batches_while_busy(serving, extra_store, tmp_path):
    """Timeout 0: a free worker takes the first request alone; the next ones gather while it runs."""
    shutil.copytree(extra_store["sleepy"], tmp_path / "sleepy" / "1")
    s = serving({"num_batch_threads": 1})
    s.serve("sleepy", str(tmp_path / "sleepy"))
    first = s.predict("sleepy", {"x": x_rows(0, 1)})
    s.wait(lambda: s.stats("sleepy").get("queued_rows") == 0)
    rest = [s.predict("sleepy", {"x": x_rows(i, 1)}) for i in range(1, 6)]
    for i, future in enumerate([first, *rest]):
        np.testing.assert_allclose(future.result(30)["y"], [[2.0 * i]])
    stats = s.stats("sleepy")
    assert stats["batch_size_histogram"] == {"1": 1, "5": 1}
    assert stats["execution_ms"]["mean"] >= SLEEP_SECONDS * 1e3


# ---------------------------------------------------------------------- live parameters, stats, metrics
def test_live_parameter_change_keeps_queued_requests(serving, model_repo):
    s = serving({"max_batch_size": 8, "batch_timeout_micros": NEVER})
    s.serve("hpt", model_repo("half_plus_two"))
    assert s.batcher.parameters("hpt")["source"] == "server"
    waiting = [s.predict("hpt", {"x": x_rows(i, 1)}) for i in range(3)]

    with pytest.raises(ServingError, match="monotonically increasing"):
        s.batcher.set_parameters(
            "hpt", parameters_from_json({"max_batch_size": 2, "allowed_batch_sizes": [2, 1]})
        )
    assert s.stats("hpt")["queued_rows"] == 3  # a refused change changes nothing

    changed = s.batcher.set_parameters("hpt", parameters_from_json({"max_batch_size": 2}))
    assert changed["source"] == "override" and changed["max_batch_size"] == 2
    for i, future in enumerate(waiting):
        np.testing.assert_allclose(future.result(30)["y"], [[0.5 * i + 2.0]])
    assert s.stats("hpt")["close_reasons"] == {"reconfigured": 1}
    with pytest.raises(ServingError, match="Task size 3 is larger than maximum input batch size 2"):
        s.predict("hpt", {"x": x_rows(0, 3)})

    assert s.batcher.set_parameters("hpt", None)["source"] == "server"
    back = s.predict("hpt", {"x": x_rows(0, 3)})
    s.flush("hpt")
    np.testing.assert_allclose(back.result(30)["y"], 0.5 * x_rows(0, 3) + 2)


def test_stats_and_prometheus_series(serving, model_repo):
    s = serving({"max_batch_size": 4, "allowed_batch_sizes": [4], "batch_timeout_micros": NEVER})
    s.serve("hpt", model_repo("half_plus_two"))
    futures = [s.predict("hpt", {"x": x_rows(i, 1)}) for i in range(6)]
    s.flush("hpt")
    for future in futures:
        future.result(30)
    report = s.batcher.stats("hpt")
    assert report["model_name"] == "hpt" and report["parameters"]["max_batch_size"] == 4
    stats = report["signatures"]["serving_default"]
    assert stats["batch_size_histogram"] == {"2": 1, "4": 1}
    assert stats["padding_rows"] == 2 and stats["padding_ratio"] == pytest.approx(2 / 8)
    assert stats["close_reasons"] == {"full": 1, "reconfigured": 1}
    assert stats["queue_wait_ms"]["count"] == 6 and stats["execution_ms"]["count"] == 2
    assert stats["rows_per_second"] > 0
    text = s.metrics.render().decode()
    for series in (
        "queuing_latency_bucket",
        "processed_batch_size_count",
        "padding_size_sum",
        "input_batch_size_count",
        "wrapped_run_count",
    ):
        assert f":tensorflow:serving:batching_session:{series}" in text
    processed = s.metrics.histogram(
        ":tensorflow:serving:batching_session:processed_batch_size",
        {"model_name": "hpt", "signature_name": "serving_default"},
    )
    assert processed["count"] == 2 and processed["sum"] == 8

    with pytest.raises(ServingError) as error:
        s.batcher.stats("nope")
    assert error.value.code == Code.NOT_FOUND


def test_per_model_parameters_file(serving, model_repo):
    base = model_repo("half_plus_two")
    with open(os.path.join(base, "1", PER_MODEL_FILE), "w") as f:
        f.write("max_batch_size { value: 2 }\nbatch_timeout_micros { value: 0 }\n")
    s = serving({"max_batch_size": 50}, per_model_parameters=True)
    s.serve("hpt", base)
    s.batcher.prepare("hpt", 1, os.path.join(base, "1"))  # what ModelServer does on load
    assert s.batcher.parameters("hpt")["source"] == PER_MODEL_FILE
    with pytest.raises(ServingError, match="Task size 3 is larger than maximum input batch size 2"):
        s.predict("hpt", {"x": x_rows(0, 3)})

    with open(os.path.join(base, "1", PER_MODEL_FILE), "w") as f:
        f.write("max_batch_size { value: 4 }\nallowed_batch_sizes: 3\n")
    with pytest.raises(ServingError, match="must match max_batch_size"):
        s.batcher.prepare("hpt", 1, os.path.join(base, "1"))


# ---------------------------------------------------------------------- the server and its REST API
def start_server(
    tmp_path, base_path: str, name: str, parameters: str | None, **options
) -> ModelServer:
    if parameters is not None:
        (tmp_path / "batching.txt").write_text(parameters)
        options["batching_parameters_file"] = str(tmp_path / "batching.txt")
    return ModelServer(
        ServerOptions(
            port=0,
            rest_api_port=0,
            model_name=name,
            model_base_path=base_path,
            max_num_load_retries=0,
            file_system_poll_wait_seconds=0,
            enable_management_api=True,
            **options,
        )
    ).start()


async def rest(server: ModelServer, method: str, path: str, body=None) -> tuple[int, dict]:
    payload = json.dumps(body).encode() if body is not None else b""
    response = await server.rest.handle(
        method, path, "", {"content-type": "application/json"}, payload
    )
    return response.status, json.loads(response.body)


def test_rest_answers_503_when_the_queue_is_full(extra_store, tmp_path):
    shutil.copytree(extra_store["sleepy"], tmp_path / "sleepy" / "1")
    server = start_server(
        tmp_path,
        str(tmp_path / "sleepy"),
        "sleepy",
        "max_batch_size { value: 1 }\nmax_enqueued_batches { value: 1 }\nnum_batch_threads { value: 1 }\n",
        enable_batching=True,
    )
    path = "/v1/models/sleepy:predict"

    async def scenario():
        def queued_rows():
            return (
                server.batcher.stats("sleepy")["signatures"]
                .get("serving_default", {})
                .get("queued_rows")
            )

        async def until(predicate):
            for _ in range(3000):
                if predicate():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("condition not reached in time")

        running = asyncio.ensure_future(rest(server, "POST", path, {"instances": [[1.0]]}))
        await until(lambda: queued_rows() == 0)
        queued = asyncio.ensure_future(rest(server, "POST", path, {"instances": [[2.0]]}))
        await until(lambda: queued_rows() == 1)
        refused = await rest(server, "POST", path, {"instances": [[3.0]]})
        return refused, await running, await queued

    try:
        refused, running, queued = asyncio.run(scenario())
    finally:
        server.stop()
    assert refused == (503, {"error": QUEUE_FULL})
    assert running == (200, {"predictions": [[2.0]]})
    assert queued == (200, {"predictions": [[4.0]]})


def test_batching_management_api(model_repo, tmp_path):
    base = model_repo("half_plus_two")
    with open(os.path.join(base, "1", PER_MODEL_FILE), "w") as f:
        f.write("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 100 }\n")
    server = start_server(
        tmp_path,
        base,
        "hpt",
        "max_batch_size { value: 64 }\n",
        enable_batching=True,
        enable_per_model_batching_parameters=True,
    )
    api = "/tfserve/api/models/hpt/batching"

    async def scenario():
        replies = {
            "predict": await rest(
                server, "POST", "/v1/models/hpt:predict", {"instances": [[2.0], [4.0]]}
            )
        }
        replies["get"] = await rest(server, "GET", api)
        replies["put"] = await rest(
            server, "PUT", api, {"max_batch_size": 8, "allowed_batch_sizes": [4, 8]}
        )
        replies["bad"] = await rest(
            server, "PUT", api, {"max_batch_size": 8, "allowed_batch_sizes": [4]}
        )
        replies["typo"] = await rest(server, "PUT", api, {"max_batch_sise": 8})
        replies["after"] = await rest(
            server, "POST", "/v1/models/hpt:predict", {"instances": [[1.0]] * 9}
        )
        replies["delete"] = await rest(server, "DELETE", api)
        replies["unknown"] = await rest(server, "GET", "/tfserve/api/models/nope/batching")
        return replies

    try:
        replies = asyncio.run(scenario())
    finally:
        server.stop()
    assert replies["predict"] == (200, {"predictions": [[3.0], [4.0]]})
    status, stats = replies["get"]
    assert status == 200 and stats["model_name"] == "hpt"
    assert (
        stats["parameters"]["source"] == PER_MODEL_FILE
        and stats["parameters"]["max_batch_size"] == 16
    )
    assert stats["signatures"]["serving_default"]["rows"] == 2
    status, stats = replies["put"]
    assert status == 200
    assert stats["parameters"]["source"] == "override" and stats["parameters"][
        "allowed_batch_sizes"
    ] == [4, 8]
    assert replies["bad"][0] == 400 and "must match max_batch_size" in replies["bad"][1]["error"]
    assert replies["typo"][0] == 400
    assert replies["after"] == (
        400,
        {"error": "Task size 9 is larger than maximum input batch size 8"},
    )
    assert replies["delete"][1]["parameters"]["source"] == PER_MODEL_FILE
    assert replies["unknown"][0] == 404


def test_batching_api_without_batching_and_bad_model_file(model_repo, tmp_path):
    base = model_repo("half_plus_two")
    server = start_server(tmp_path, base, "hpt", None)
    try:
        status, body = asyncio.run(rest(server, "GET", "/tfserve/api/models/hpt/batching"))
    finally:
        server.stop()
    assert status == 400 and "--enable_batching" in body["error"]

    with open(os.path.join(base, "1", PER_MODEL_FILE), "w") as f:
        f.write("max_batch_size { value: 4 }\nallowed_batch_sizes: 3\n")
    server = start_server(
        tmp_path, base, "hpt", None, enable_batching=True, enable_per_model_batching_parameters=True
    )
    try:
        (status,) = server.manager.version_status("hpt")
    finally:
        server.stop()
    assert status.state == State.END
    assert "must match max_batch_size" in status.error.message
