"""``benchmark(...)``: the one entry point behind ``%tfserve benchmark``, ``tfserve bench`` and scripts.

Order of work, so that every mistake is reported before any load is sent:

1. parse the options (levels, windows, rate, rows);
2. find the server and check that it answers and serves the model;
3. read the signature and build the request bodies;
4. send one request and check the server accepts it (a wrong dtype or shape
   shows here, with the server's own message);
5. start the worker processes (open loop: check the rate is within what they
   can dispatch);
6. sweep the levels (twice with ``compare_batching``: batching off, then on),
   reading the server's batch counters at every window boundary.

The workers are always ended, also on Ctrl-C; an interrupted run returns the
levels it finished, marked ``interrupted``, and restores any batching
parameters it changed.
"""

from __future__ import annotations

import json
import time

from .endpoint import Target
from .options import (
    BenchError,
    BenchmarkOptions,
    LoadSpec,
    RunOptions,
    parse_concurrency,
    parse_duration,
    parse_rate,
    parse_window,
)
from .payload import grpc_bodies, request_inputs, rest_bodies, rows_of
from .progress import make_progress
from .replay import Replay, answer_of, compare, load_replay
from .results import BenchmarkResult
from .serverstats import BatchingApi
from .sweep import Sweep
from .workers import WorkerPool

PROTOCOLS = ("rest", "grpc")


def load_spec(
    *,
    concurrency="1:16:x2",
    rate=None,
    distribution="constant",
    warmup="1s",
    warmup_requests=None,
    window="1s",
    window_requests=None,
    stability=0.10,
    max_trials=10,
    timeout="30s",
    workers=1,
    max_connections=256,
    seed=0,
) -> LoadSpec:
    """The load half of a benchmark's options, parsed and checked."""
    if rate is not None:
        mode, levels = "rate", parse_rate(rate)
    else:
        mode, levels = "concurrency", parse_concurrency(concurrency)
    return LoadSpec(
        mode=mode,
        levels=tuple(levels),
        distribution=str(distribution).lower(),
        warmup=parse_window(warmup, warmup_requests, what="warm-up", allow_zero=True),
        window=parse_window(window, window_requests, what="measurement window"),
        stability=float(stability),
        max_trials=int(max_trials),
        timeout=parse_duration(timeout, what="timeout"),
        workers=int(workers),
        max_connections=int(max_connections),
        seed=int(seed),
    ).validate()


class Prepared:
    """A model ready to be measured: target, bodies, workers' setup, batching API."""

    def __init__(
        self,
        target: Target,
        protocol: str | None,
        rows: int,
        data,
        seed: int,
        timeout: float,
        replay: Replay | None = None,
    ):
        # Default: REST, or gRPC when the server was given by its gRPC address alone.
        protocol = str(protocol).lower() if protocol else ("rest" if target.url else "grpc")
        if protocol not in PROTOCOLS:
            raise BenchError(f"protocol must be 'rest' or 'grpc', not {protocol!r}")
        if protocol == "rest" and not target.url:
            raise BenchError(
                f"{target.describe()} has no REST address: pass protocol='grpc' or a url"
            )
        if protocol == "grpc" and not target.server.grpc_target:
            raise BenchError(
                f"no gRPC address for {target.url}: pass grpc='host:port' (the server's --port)"
            )
        self.method = replay.method if replay is not None else "predict"
        if protocol == "grpc" and self.method != "predict":
            raise BenchError(
                f"logged {self.method} requests are replayed over REST: pass protocol='rest'"
            )
        target.check_model()
        self.target = target
        self.protocol = protocol
        self.signature = target.signature_info()
        # A replay sends the logged requests as they were; otherwise inputs are made to the signature.
        pool = (
            replay.inputs
            if replay is not None
            else request_inputs(self.signature, rows, data, seed=seed)
        )
        self.rows_per_request = rows_of(pool[0])
        if protocol == "grpc":
            self.bodies = grpc_bodies(target, self.signature, pool)
        else:
            self.bodies = rest_bodies(self.signature, pool, self.method)
        self.timeout = timeout
        self.check_request()
        self.batching = BatchingApi(target)
        self.batching.probe()

    def check_request(self, count: int = 1) -> list[float]:
        """``count`` lone requests in a row, before any load, on one connection: the server must accept
        what we are about to send. Returns their latencies in seconds (the tuner's floor)."""
        if self.protocol == "grpc":
            return self._check_grpc(count)
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(self.target.method_url(self.method))
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = kind(parts.hostname, parts.port, timeout=self.timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {**self.target.headers, "Content-Type": "application/json"}
        latencies = []
        try:
            for _ in range(count):
                started = time.perf_counter()
                connection.request("POST", path, self.bodies[0], headers)
                response = connection.getresponse()
                body = response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    raise BenchError(
                        f"the server refused the benchmark's request ({response.status}): "
                        f"{_error_text(body)}"
                    )
        except (OSError, http.client.HTTPException) as exc:
            raise BenchError(f"cannot reach the model server at {self.target.url}: {exc}") from None
        finally:
            connection.close()
        return latencies

    def _check_grpc(self, count: int) -> list[float]:
        import grpc

        from .transports import GRPC_PREDICT

        target = self.target.server.grpc_target
        latencies = []
        with grpc.insecure_channel(target) as channel:
            predict = channel.unary_unary(GRPC_PREDICT)
            for _ in range(count):
                started = time.perf_counter()
                try:
                    predict(
                        self.bodies[0],
                        timeout=self.timeout,
                        metadata=_grpc_metadata(self.target.headers),
                    )
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        raise BenchError(
                            f"cannot reach the gRPC port at {target}: {exc.details()}"
                        ) from None
                    raise BenchError(
                        f"the server refused the benchmark's gRPC request ({exc.code().name}): "
                        f"{exc.details()}"
                    ) from None
                latencies.append(time.perf_counter() - started)
        return latencies

    def setup(self) -> dict:
        """What every worker process gets once: how to send, and the encoded bodies."""
        grpc = self.protocol == "grpc"
        return {
            "protocol": self.protocol,
            "target": self.target.server.grpc_target
            if grpc
            else self.target.method_url(self.method),
            "headers": self.target.headers,
            "bodies": self.bodies,
            "timeout": self.timeout,
        }


def prepare(model: str, o: RunOptions, spec: LoadSpec, logged: Replay | None = None) -> Prepared:
    """The target resolved and its requests built, as the options say (``logged``: replay those)."""
    target = Target.resolve(
        model,
        url=o.url,
        token=o.token,
        grpc=o.grpc,
        version=o.version,
        label=o.label,
        signature=o.signature,
    )
    return Prepared(target, o.protocol, o.rows, o.data, o.seed, spec.timeout, logged)


def _predictor(prepared: Prepared, timeout: float):
    """``inputs -> {name: ndarray}`` against the benchmarked target, over the benchmarked protocol."""
    from ..client.client import Client

    target, protocol = prepared.target, prepared.protocol
    client = Client(endpoint=target.server, timeout=timeout)
    if prepared.method != "predict":
        from ..core import tensors

        url = target.method_url(prepared.method)

        def examples(body: dict) -> dict:
            sent = rest_bodies(prepared.signature, [body], prepared.method)[0]
            return answer_of(prepared.method, tensors.parse_json(client.request("POST", url, sent)))

        return examples
    spec = {"version": target.version, "label": target.label, "signature": target.signature}
    outputs = list(
        client.signature(
            target.model, target.signature, version=target.version, label=target.label
        ).outputs
    )

    def predict(inputs: dict) -> dict:
        answer = client.predict(target.model, inputs, grpc=protocol == "grpc", **spec)
        return answer if isinstance(answer, dict) else {outputs[0]: answer}

    return predict


def _grpc_metadata(headers: dict) -> tuple | None:
    return tuple((k.lower(), v) for k, v in headers.items()) or None


def _error_text(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace").strip()[:300]


def check_rate(pool: WorkerPool, spec: LoadSpec) -> None:
    """Refuse an open-loop rate the workers cannot even dispatch, before sending any request."""
    if spec.mode != "rate":
        return
    capacity = sum(a["per_second"] for a in pool.broadcast({"cmd": "capacity", "seconds": 0.05}))
    highest = max(spec.levels)
    if highest > capacity:
        raise BenchError(
            f"a rate of {highest:g} req/s is beyond this machine's load generator: {len(pool)} worker(s) "
            f"dispatch at most about {capacity:,.0f} req/s before any network work; lower the rate or add workers"
        )


def off_parameters(current: dict, rows_per_request: int, spec: LoadSpec) -> dict:
    """Batching "off" on a live server: one request per batch, no waiting, same worker threads.

    The queue is made deep enough for every request in flight, so "off" does not
    fail requests that "on" would have merged.
    """
    in_flight = max(spec.levels) if spec.mode == "concurrency" else spec.max_connections
    return {
        "max_batch_size": rows_per_request,
        "batch_timeout_micros": 0,
        "num_batch_threads": current.get("num_batch_threads", 1),
        "max_enqueued_batches": max(
            int(current.get("max_enqueued_batches", 10)), int(in_flight) + 1
        ),
    }


def benchmark(model: str, options: BenchmarkOptions | None = None, **keywords) -> BenchmarkResult:
    """Measure a served model under load, from worker processes; returns a :class:`BenchmarkResult`.

    The options below are the fields of :class:`~.options.BenchmarkOptions`, given
    as keywords or as one ``options`` object (what the command line and the magic build).

    Closed loop by default (``concurrency``: ``"1:64:x2"``, ``"1,8,32"``, 8 or a
    list); open loop when ``rate`` is given (requests/s, same spellings), with
    ``distribution`` ``"constant"`` or ``"poisson"`` and latency measured from
    each request's intended send time. ``protocol`` is ``"rest"`` (default) or
    ``"grpc"`` (to ``grpc="host:port"``, or the server's own gRPC port; with a
    gRPC address and no URL, gRPC alone, as with TF Serving started with
    ``--port`` only). ``rows`` per request; ``data`` is
    ``"zeros"``, ``"random"`` or a sample (array, dict of arrays, DataFrame).
    Each level warms up (``warmup`` or ``warmup_requests``), then measures
    windows (``window`` or ``window_requests``) until the last three agree
    within ``stability`` or ``max_trials`` windows have run.

    ``compare_batching`` runs the sweep with batching off, then on (the
    server's parameters, or ``batching``), switching live through the
    management API, and restores the parameters afterwards.

    ``replay`` (a request log prefix or glob, ``"/logs/mnist*"``) sends the
    logged requests instead (``rate="logged"``: at the rate they were logged),
    then sends each once more and counts the answers that differ from the
    logged ones by more than ``tolerance`` (``result.replay``).
    """
    o = BenchmarkOptions.of(options, keywords)
    logged = load_replay(o.replay, o.signature or "serving_default") if o.replay else None
    rate = o.rate
    if logged is not None and isinstance(rate, str) and rate.strip().lower() == "logged":
        rate = logged.logged_rate
    spec = load_spec(
        concurrency=o.concurrency,
        rate=rate,
        distribution=o.distribution,
        warmup=o.warmup,
        warmup_requests=o.warmup_requests,
        window=o.window,
        window_requests=o.window_requests,
        stability=o.stability,
        max_trials=o.max_trials,
        timeout=o.timeout,
        workers=o.workers,
        max_connections=o.max_connections,
        seed=o.seed,
    )
    prepared = prepare(model, o, spec, logged)
    target, protocol = prepared.target, prepared.protocol
    runs = [(None, None)]
    original = None
    if o.compare_batching or o.batching is not None:
        # Says clearly when the server cannot change batching live.
        original = prepared.batching.parameters()
        on = {**original, **(o.batching or {})}
        if o.compare_batching:
            off = off_parameters(original, prepared.rows_per_request, spec)
            runs = [("off", off), ("on", on)]
        else:
            runs = [(None, on)]
    view = make_progress(o.progress, f"benchmark: {target.describe()}")
    levels: list[dict] = []
    interrupted = False
    try:
        with WorkerPool(spec.workers, prepared.setup()) as pool:
            check_rate(pool, spec)
            for run, parameters in runs:
                if parameters is not None:
                    prepared.batching.set_parameters(parameters)
                sweep = Sweep(
                    spec,
                    pool,
                    rows_per_request=prepared.rows_per_request,
                    batching=prepared.batching if prepared.batching.available else None,
                    signature=prepared.signature.name,
                    progress=view,
                    label=f"batching {run}" if run else None,
                )
                for level in sweep.levels_iter():
                    level["batching"] = run
                    levels.append(level)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if original is not None:
            prepared.batching.restore(original)
        if view is not None and hasattr(view, "close"):
            view.close("interrupted" if interrupted else "done")
    report = None
    if logged is not None and not interrupted:
        report = compare(logged, _predictor(prepared, spec.timeout), o.tolerance)
    return BenchmarkResult(
        levels,
        replay=report,
        mode=spec.mode,
        rows_per_request=prepared.rows_per_request,
        model=target.model,
        url=target.url,
        protocol=protocol,
        server_stats=bool(prepared.batching.available),
        server_stats_note=prepared.batching.reason,
        interrupted=interrupted,
    )
