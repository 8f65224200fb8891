"""TF Serving's gRPC API: PredictionService, ModelService and grpc.health.v1.

The servicers only translate: a request proto becomes a
:class:`~jupyter_tfserve.core.inference.ModelSpec` and numpy inputs (through
``core.tensors``, the one codec), the engine resolves and runs it, and the
result goes back into the response proto. Every failure is a
:class:`ServingError`, mapped once here to the gRPC status with the same
numeric code and TF Serving's 1024-character message limit.

Why gRPC's thread-pool server and not ``grpc.aio`` on the io loop: a
``grpc.aio`` call crosses threads four times (gRPC's poller, the loop, an
inference thread, the loop again), and on one core that made it about 40%
slower than this server, where a handler thread parses, runs an unbatched
model inline (as TF Serving's own handlers do) and answers. Handler threads
never touch the io loop, so REST and gRPC only share the engine. Batched
calls wait for their batch on the handler thread, so the pool is sized for
the concurrency a batch should be able to gather.

TF Serving's defaults apply: INT32_MAX message sizes, ``--grpc_channel_arguments``
on top, TLS from an ``SSLConfig`` file on both the TCP port and the Unix socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from functools import partial

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from ..core import tensors
from ..core.admin import LABEL_WAIT_SECONDS, Admin, Caller
from ..core.config import SSLConfig, parse_text_file
from ..core.inference import InferenceService, ModelMetadata, ModelSpec, Target
from ..core.manager import VersionStatus
from ..core.metrics import ServingMetrics
from ..core.multi_inference import Task, task_targets
from ..core.options import ServerOptions
from ..core.request_log import MULTI_INFERENCE
from ..core.signatures import CLASSIFY_METHOD, DEFAULT_SIGNATURE
from ..core.status import Code, ServingError, from_exception, invalid_argument
from .access import OPEN_METHODS
from .grpc_admission import Admission, AdmissionInterceptor, AdmittingExecutor

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1
MESSAGE_LIMIT = 1024  # TF Serving cuts error messages here and appends "...TRUNCATED"
ENTRYPOINT = "GRPC"
# Handler threads when --grpc_max_threads is 0. Unbatched, a handler runs the model itself
# (runs are bounded by the inference service), so a few handlers beyond that bound suffice. A
# batched call holds its handler until its batch has run, so the pool caps how many calls can
# share a batch.
DEFAULT_THREADS = 16
DEFAULT_THREADS_BATCHING = 64
_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
_SIGNATURE_DEF = "signature_def"


# ---------------------------------------------------------------------- errors
def grpc_status(error: ServingError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code (same number) and the message as TF Serving sends it."""
    message = error.message
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "...TRUNCATED"
    return _STATUS_CODES[int(error.code)], message


# ---------------------------------------------------------------------- ModelSpec
def model_spec(request) -> ModelSpec:
    """The request's ModelSpec in the engine's terms; TF Serving's errors when it is missing or nameless."""
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    return _spec(request.model_spec)


def _spec(proto) -> ModelSpec:
    if not proto.name:
        raise invalid_argument("ModelSpec has no name specified.")
    # version and version_label are a oneof: the wire can carry both, the parser keeps the last.
    choice = proto.WhichOneof("version_choice")
    return ModelSpec(
        name=proto.name,
        version=proto.version.value if choice == "version" else None,
        label=proto.version_label if choice == "version_label" else None,
        signature_name=proto.signature_name,
    )


def _echo(out, name: str, version: int, signature_name: str | None) -> None:
    """Fill a response's model_spec: name, the version actually served, the signature run."""
    out.name = name
    out.version.value = version
    if signature_name is not None:
        out.signature_name = signature_name or DEFAULT_SIGNATURE


# ---------------------------------------------------------------------- calling convention
@dataclass(frozen=True)
class Method:
    """One unary RPC: its messages, its handler, and whether it counts in the request metrics.

    Requests about a model count in ``request_count``/``request_latency`` under
    ``API=<method>`` and ``entrypoint="GRPC"``, as REST's count with "REST".
    """

    name: str
    request: type
    response: type
    handler: Callable[[object, grpc.ServicerContext], object]  # (request, context) -> response
    observed: bool = True


def method_handler(method: Method, metrics: ServingMetrics) -> grpc.RpcMethodHandler:
    """Parse, run, answer; a ServingError (anything else as INTERNAL) becomes the call's status.

    The request arrives as bytes and is parsed here, so a corrupt message gets
    TF Serving's INTERNAL status with a clear message instead of gRPC's
    generic UNKNOWN and a logged traceback.
    """
    parse, handler, api = method.request.FromString, method.handler, method.name

    def call(raw: bytes, context):
        started = time.perf_counter()
        request = None
        try:
            request = _parse(parse, raw)
            response = handler(request, context)
            status = "OK"
            return response
        except CancelledError:  # the client gave up and its batched run was dropped
            status = "CANCELLED"
            error = ServingError(Code.CANCELLED, "Cancelled by the client")
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the client, once
            error = from_exception(exc)
            status = error.code.name
            if not isinstance(exc, ServingError):
                log.exception("gRPC %s failed", api)
        finally:
            if method.observed and request is not None:
                metrics.observe_request(
                    _model_name(request), api, ENTRYPOINT, status, time.perf_counter() - started
                )
        context.abort(*grpc_status(error))

    return grpc.unary_unary_rpc_method_handler(
        call, response_serializer=method.response.SerializeToString
    )


def generic_handler(service, metrics: ServingMetrics) -> grpc.GenericRpcHandler:
    handlers = {m.name: method_handler(m, metrics) for m in service.methods()}
    return grpc.method_handlers_generic_handler(service.NAME, handlers)


def _parse(parse, raw: bytes):
    try:
        return parse(raw)
    except DecodeError as exc:
        raise ServingError(Code.INTERNAL, f"Failed to parse request: {exc}") from exc


def _wait(future, context):
    """The result of an inference future; a client that gives up cancels the run it waits for."""
    if not future.done():
        context.add_callback(future.cancel)
    return future.result()


def _model_name(request) -> str:
    if isinstance(request, inference_pb2.MultiInferenceRequest):
        return request.tasks[0].model_spec.name if request.tasks else ""
    return request.model_spec.name


# ---------------------------------------------------------------------- PredictionService
class PredictionService:
    """Predict, Classify, Regress, MultiInference and GetModelMetadata over the engine."""

    NAME = "tensorflow.serving.PredictionService"

    def __init__(self, service: InferenceService, metrics: ServingMetrics):
        self.service = service
        self.metrics = metrics

    def methods(self) -> list[Method]:
        return [
            Method(
                "Predict", predict_pb2.PredictRequest, predict_pb2.PredictResponse, self._predict
            ),
            Method(
                "Classify",
                classification_pb2.ClassificationRequest,
                classification_pb2.ClassificationResponse,
                self._classify,
            ),
            Method(
                "Regress",
                regression_pb2.RegressionRequest,
                regression_pb2.RegressionResponse,
                self._regress,
            ),
            Method(
                "MultiInference",
                inference_pb2.MultiInferenceRequest,
                inference_pb2.MultiInferenceResponse,
                self._multi_inference,
            ),
            Method(
                "GetModelMetadata",
                get_model_metadata_pb2.GetModelMetadataRequest,
                get_model_metadata_pb2.GetModelMetadataResponse,
                self._metadata,
            ),
        ]

    # ------------------------------------------------------------------ handlers
    def _predict(self, request, context) -> predict_pb2.PredictResponse:
        service = self.service
        with service.resolve(model_spec(request)) as target:
            inputs = decode_inputs(request.inputs, service.tensor_budget())
            outputs = _wait(
                service.predict(target, inputs, request.output_filter, inline=True), context
            )
        return predict_response(target, outputs)

    def _classify(self, request, context) -> classification_pb2.ClassificationResponse:
        response = classification_pb2.ClassificationResponse()
        with self.service.resolve(model_spec(request)) as target:
            examples = self._examples(target.model_name, request.input)
            result = _wait(self.service.classify(target, examples, inline=True), context)
        _echo(response.model_spec, target.model_name, target.version, target.signature.name)
        tensors.fill_classifications(response.result, result)
        return response

    def _regress(self, request, context) -> regression_pb2.RegressionResponse:
        response = regression_pb2.RegressionResponse()
        with self.service.resolve(model_spec(request)) as target:
            examples = self._examples(target.model_name, request.input)
            values = _wait(self.service.regress(target, examples, inline=True), context)
        _echo(response.model_spec, target.model_name, target.version, target.signature.name)
        tensors.fill_regressions(response.result, values)
        return response

    def _multi_inference(self, request, context) -> inference_pb2.MultiInferenceResponse:
        """Several classify/regress signatures of one model version over the same examples.

        Logged as one MultiInferenceLog (its tasks are not logged one by one).
        """
        tasks = list(request.tasks)
        spec = _spec(tasks[0].model_spec if tasks else model_pb2.ModelSpec())
        with self.service.acquire(spec) as handle:
            run = partial(self._run_tasks, handle, tasks, request, context)
            model_log = self.service.sampled_log(handle.model_name)
            if model_log is None:
                return run()
            return model_log.call(MULTI_INFERENCE, handle.model_name, handle.version, request, run)

    def _run_tasks(self, handle, tasks, request, context) -> inference_pb2.MultiInferenceResponse:
        targets = task_targets(
            handle,
            [Task(t.model_spec.name, t.model_spec.signature_name, t.method_name) for t in tasks],
            check_method_name=self.service.check_signature_method_name,
        )
        examples = self._examples(handle.model_name, request.input)
        # Submitted together, so batched signatures can run side by side.
        pending = [
            self.service.classify(target, examples, log=False)
            if task.method_name == CLASSIFY_METHOD
            else self.service.regress(target, examples, log=False)
            for task, target in zip(tasks, targets, strict=True)
        ]
        results = [_wait(future, context) for future in pending]
        response = inference_pb2.MultiInferenceResponse()
        for task, result in zip(tasks, results, strict=True):
            out = response.results.add()
            _echo(
                out.model_spec, task.model_spec.name, handle.version, task.model_spec.signature_name
            )
            if task.method_name == CLASSIFY_METHOD:
                tensors.fill_classifications(out.classification_result, result)
            else:
                tensors.fill_regressions(out.regression_result, result)
        return response

    def _examples(self, model_name: str, input_proto) -> list[bytes]:
        """The request's serialized tf.Examples, counted in TF Serving's request_example_counts."""
        examples = tensors.input_to_serialized_examples(input_proto)
        self.metrics.observe_examples(model_name, len(examples))
        return examples

    def _metadata(self, request, context) -> get_model_metadata_pb2.GetModelMetadataResponse:
        spec = model_spec(request)
        if not request.metadata_field:
            raise invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != _SIGNATURE_DEF:
                raise invalid_argument(f"Metadata field {field} is not supported")
        return metadata_response(self.service.model_metadata(spec))


def decode_inputs(input_protos, budget: tensors.TensorBudget | None = None) -> dict:
    """A Predict request's ``inputs`` map as numpy arrays (the codec, per tensor, one budget)."""
    return {alias: tensors.tensor_proto_to_ndarray(t, budget) for alias, t in input_protos.items()}


def predict_response(target: Target, outputs: dict) -> predict_pb2.PredictResponse:
    """The PredictResponse: resolved spec echoed, outputs in typed value fields like TF Serving's."""
    response = predict_pb2.PredictResponse()
    _echo(response.model_spec, target.model_name, target.version, target.signature.name)
    response_outputs = response.outputs
    for alias, array in outputs.items():
        response_outputs[alias].CopyFrom(tensors.ndarray_to_tensor_proto(array))
    return response


def metadata_response(metadata: ModelMetadata) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadataResponse: the version served, its SignatureDefs packed under ``signature_def``."""
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in metadata.signature_defs.items():
        signature_defs.signature_def[key].CopyFrom(signature_def)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _echo(response.model_spec, metadata.model_name, metadata.version, None)
    response.metadata[_SIGNATURE_DEF].Pack(signature_defs)
    return response


def status_response(statuses: list[VersionStatus]) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatusResponse: one ModelVersionStatus per version, its error where it has one."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in statuses:
        out = response.model_version_status.add()
        out.version = status.version
        out.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state.value)
        if status.error is not None:
            out.status.error_code = int(status.error.code)
            out.status.error_message = status.error.message
    return response


# ---------------------------------------------------------------------- ModelService
class ModelService:
    """GetModelStatus and HandleReloadConfigRequest over the engine and the admin core."""

    NAME = "tensorflow.serving.ModelService"

    def __init__(self, service: InferenceService, admin: Admin, guard):
        self.service = service
        self.admin = admin
        self.guard = guard

    def methods(self) -> list[Method]:
        return [
            Method(
                "GetModelStatus",
                get_model_status_pb2.GetModelStatusRequest,
                get_model_status_pb2.GetModelStatusResponse,
                self._status,
            ),
            Method(
                "HandleReloadConfigRequest",
                model_management_pb2.ReloadConfigRequest,
                model_management_pb2.ReloadConfigResponse,
                self._reload,
                observed=False,
            ),
        ]

    def _status(self, request, context) -> get_model_status_pb2.GetModelStatusResponse:
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        return status_response(self.service.model_status(spec.name, version))

    def _reload(self, request, context) -> model_management_pb2.ReloadConfigResponse:
        if request.config.WhichOneof("config") != "model_config_list":
            raise invalid_argument(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                "Only ModelConfigList is currently supported"
            )
        # Answers once the new set is realized (loads and unloads done), as TF Serving does.
        caller = Caller("grpc", self.guard.principal)
        self.admin.reload(caller, request.config, wait_timeout=LABEL_WAIT_SECONDS)
        return model_management_pb2.ReloadConfigResponse()


# ---------------------------------------------------------------------- access
class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without the port's token (``authorization`` metadata), but health checks.

    It runs before the request message is read, so a caller without the
    token costs the server nothing beyond the headers.
    """

    def __init__(self, guard):
        self._guard = guard
        status, message = grpc_status(guard.unauthenticated())

        def refuse(request, context):
            context.abort(status, message)

        self._refusal = grpc.unary_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method in OPEN_METHODS:
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if self._guard.token_ok(metadata.get("authorization", "")):
            return continuation(handler_call_details)
        return self._refusal


# ---------------------------------------------------------------------- server
class Front:
    """The running gRPC server, as ModelServer sees it: the bound TCP port and a graceful stop."""

    def __init__(
        self, server: grpc.Server, port: int | None, health_servicer, pool: AdmittingExecutor
    ):
        self.server = server
        self.port = port
        self._health = health_servicer
        self._pool = pool

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls and let in-flight ones finish (up to ``grace`` seconds), off the loop."""
        await asyncio.get_running_loop().run_in_executor(None, self._stop, grace)

    def _stop(self, grace: float | None) -> None:
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self._pool.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"<gRPC front port={self.port}>"


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``--grpc_channel_arguments``: ``key=value,...``; values that fit an int32 are ints, as in TF Serving."""
    arguments: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise invalid_argument(f"Malformed gRPC channel argument {item!r}: expected key=value")
        try:
            number = int(value)
        except ValueError:
            arguments.append((key, value))
        else:
            arguments.append((key, number) if -(2**31) <= number <= INT32_MAX else (key, value))
    return arguments


def server_options(options: ServerOptions) -> list[tuple[str, int | str]]:
    """TF Serving's message-size limits, then the user's channel arguments (which win)."""
    merged: dict[str, int | str] = {
        "grpc.max_send_message_length": INT32_MAX,
        "grpc.max_receive_message_length": INT32_MAX,
        # A second server on a taken port must fail, not silently share its traffic.
        "grpc.so_reuseport": 0,
    }
    merged.update(parse_channel_arguments(options.grpc_channel_arguments))
    return list(merged.items())


def server_credentials(ssl_config) -> grpc.ServerCredentials:
    """TLS from TF Serving's SSLConfig (PEM text in the proto); mutual TLS when ``client_verify``."""
    if not ssl_config.server_key or not ssl_config.server_cert:
        raise invalid_argument("SSLConfig needs both server_key and server_cert (PEM text)")
    if ssl_config.client_verify and not ssl_config.custom_ca:
        raise invalid_argument(
            "SSLConfig.client_verify needs custom_ca, the CA that signs client certificates"
        )
    return grpc.ssl_server_credentials(
        [(ssl_config.server_key.encode(), ssl_config.server_cert.encode())],
        root_certificates=ssl_config.custom_ca.encode() or None,
        require_client_auth=ssl_config.client_verify,
    )


async def serve(
    service: InferenceService,
    admin: Admin,
    guard,
    metrics: ServingMetrics,
    options: ServerOptions,
) -> Front:
    """Start gRPC on ``options.port`` (TCP, 0 = none) and/or ``options.grpc_socket_path``.

    ``service`` answers PredictionService and ModelService's status, ``admin``
    its config reloads, ``guard`` (the port's access rules) says who calls.
    """
    credentials = None
    if options.ssl_config_file:
        loop = asyncio.get_running_loop()
        ssl_config = await loop.run_in_executor(
            None, parse_text_file, options.ssl_config_file, SSLConfig
        )
        credentials = server_credentials(ssl_config)
    # --grpc_max_threads is the handler pool and the bound on calls admitted: calls past it
    # are refused rather than queued behind a busy pool. Without it, --max_requests_in_flight
    # bounds the calls admitted (running or queued for a handler). Either way a refusal is
    # UNAVAILABLE, answered at once (see grpc_admission).
    threads = options.grpc_max_threads or (
        DEFAULT_THREADS_BATCHING if options.enable_batching else DEFAULT_THREADS
    )
    admission = Admission(options.grpc_max_threads or options.max_requests_in_flight)
    pool = AdmittingExecutor(admission, threads)
    interceptors = [AdmissionInterceptor(admission, OPEN_METHODS)]
    if guard.token is not None:
        interceptors.append(TokenInterceptor(guard))
    server = grpc.server(pool, options=server_options(options), interceptors=interceptors)
    server.add_generic_rpc_handlers(
        [
            generic_handler(servicer, metrics)
            for servicer in (
                PredictionService(service, metrics),
                ModelService(service, admin, guard),
            )
        ]
    )
    health_servicer = None
    if options.enable_grpc_healthcheck_service:
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for service in ("", PredictionService.NAME, ModelService.NAME):
            health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)

    port = None
    addresses = []
    if options.port:
        host = f"[{options.grpc_host}]" if ":" in options.grpc_host else options.grpc_host
        addresses.append(f"{host}:{options.port}")
    if options.grpc_socket_path:
        addresses.append(f"unix:{options.grpc_socket_path}")
    for address in addresses:
        try:
            bound = (
                server.add_secure_port(address, credentials)
                if credentials
                else server.add_insecure_port(address)
            )
        except RuntimeError as exc:
            raise OSError(f"Failed to bind the gRPC server to {address}: {exc}") from exc
        if not address.startswith("unix:"):
            port = bound
    server.start()
    log.info("Running gRPC ModelServer at %s ...", ", ".join(addresses))
    return Front(server, port, health_servicer, pool)
