"""The Jupyter extension in-process, through pytest-jupyter's ``jp_fetch``: routes, auth, lifecycle, bad input.

Every test runs a real Jupyter server application with the extension and a
real ModelServer serving real SavedModels. ``jp_base_url`` is pytest-jupyter's
``/a%40b/``, so every route is also checked below a non-trivial base URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import threading
from pathlib import Path
from urllib.parse import parse_qsl

import grpc
import pytest
import yaml
from jupyter_server.base.handlers import APIHandler
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec
from ports import free_port, port_open
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tornado import routing
from tornado.httpclient import AsyncHTTPClient

from jupyter_tfserve.client.discovery import ENV_TOKEN, ENV_URL
from jupyter_tfserve.core.manager import State
from jupyter_tfserve.core.status import ServingError
from jupyter_tfserve.jupyter.handlers import TFServeRoutes
from jupyter_tfserve.protocols.rest import parse_v1_path
from jupyter_tfserve.server import ModelServer

pytest_plugins = ["pytest_jupyter.jupyter_server"]

OPENAPI = Path(__file__).resolve().parent.parent / "jupyter_tfserve" / "protocols" / "openapi.yaml"
INSTANCES = {"instances": [[1.0], [2.0], [5.0]]}
VERBS = ("predict", "classify", "regress")


# ---------------------------------------------------------------------- fixtures
@pytest.fixture
def models_root(tmp_path):
    root = tmp_path / "models"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def tfserve_config(models_root):
    """TFServe traits of the test server; fixtures and tests edit it before the server starts."""
    return {
        "grpc_port": 0,
        "rest_port": 0,
        "models_root": str(models_root),
        "file_system_poll_wait_seconds": 0.2,
        "server_options": {"max_num_load_retries": 0},
    }


@pytest.fixture
def jp_server_config(tfserve_config, request):
    """The extension on, with pytest-jupyter's checking authorizer when a test asks for it."""
    config = {
        "ServerApp": {"jpserver_extensions": {"jupyter_tfserve": True}},
        "TFServe": tfserve_config,
    }
    if "jp_server_authorizer" in request.fixturenames:
        config["ServerApp"]["authorizer_class"] = request.getfixturevalue("jp_server_authorizer")
    return config


@pytest.fixture
def extension(jp_serverapp):
    return jp_serverapp.extension_manager.extension_points["jupyter_tfserve"].app


@pytest.fixture
def hpt(model_repo, models_root):
    """half_plus_two with versions 1 and 2 under models_root."""
    return model_repo("half_plus_two", "hpt", versions=(1, 2))


@pytest.fixture
def fetch(jp_fetch, http_server_client, jp_auth_header, jp_base_url):
    """Requests under ``{base_url}tfserve/`` through pytest-jupyter's ``jp_fetch``.

    ``jp_fetch`` percent-encodes the path, and TF Serving matches the raw path
    (``:predict`` must arrive as written), so paths with a ':' go to the same
    test server through the same client, unencoded.
    """

    async def fetch(method, path, body=None, token=True, headers=None):
        headers = {**({} if token else {"Authorization": ""}), **(headers or {})}
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        options = {
            "method": method,
            "body": body,
            "raise_error": False,
            "allow_nonstandard_methods": True,
        }
        if ":" not in path:
            path, _, query = path.partition("?")
            return await jp_fetch(
                "tfserve",
                *path.split("/"),
                headers=headers,
                params=dict(parse_qsl(query)),
                request_timeout=60,
                **options,
            )
        headers = {**jp_auth_header, **headers}
        url = f"{jp_base_url}tfserve/{path}"
        return await http_server_client.fetch(url, headers=headers, request_timeout=60, **options)

    return fetch


async def call(fetch, method, path, body=None, token=True):
    """A request under ``{base_url}tfserve/``; returns (status, decoded JSON body)."""
    response = await fetch(method, path, body, token)
    try:
        payload = json.loads(response.body) if response.body else None
    except ValueError:
        payload = response.body.decode()
    return response.code, payload


async def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    """Poll ``predicate`` (sync or async) on the loop until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def available(server, name: str, version: int) -> None:
    def ready():
        try:
            return any(
                s.version == version and s.state == State.AVAILABLE
                for s in server.manager.version_status(name)
            )
        except Exception:
            return False

    await wait_until(ready, 120, f"{name} version {version} AVAILABLE")


def spec_operations(v1: bool = False):
    """(method, path template, operation) for every management operation in openapi.yaml (``v1``: TF Serving's)."""
    spec = yaml.safe_load(OPENAPI.read_text())
    for template, item in spec["paths"].items():
        if template.startswith("/v1/") != v1:
            continue
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head"):
                yield method.upper(), template, operation


def concrete(template: str) -> str:
    """A spec path with sample values for its parameters, relative to ``{base_url}tfserve``."""
    samples = {"{name}": "hpt", "{model_name}": "hpt", "{label}": "stable", "{version}": "1"}
    for parameter, value in samples.items():
        template = template.replace(parameter, value)
    return template[1:] if template.startswith("/v1/") else "api" + template


# ---------------------------------------------------------------------- auth
async def test_every_route_answers_403_without_a_token(fetch, extension):
    operations = [*spec_operations(), *spec_operations(v1=True)]
    routes = [(method, concrete(template)) for method, template, _ in operations]
    routes += [("GET", "no/such/route")]
    assert len(routes) > 30
    for method, path in routes:
        status, body = await call(
            fetch, method, path, body=INSTANCES if method != "GET" else None, token=False
        )
        assert status == 403, (method, path, status, body)


async def test_every_tfserve_route_is_an_authenticated_jupyter_api_handler(jp_serverapp, extension):
    await extension.host.server()
    """Like the extension template's check: nothing under {base_url}tfserve is reachable without auth."""
    mounted = []
    for rule in jp_serverapp.web_app.default_router.rules:
        for inner in getattr(rule.target, "rules", []):
            pattern = getattr(inner.matcher, "regex", None)
            if pattern is not None and "tfserve" in pattern.pattern:
                mounted.append(inner.target)
    assert mounted and all(isinstance(target, TFServeRoutes) for target in mounted)
    for router in mounted:
        assert isinstance(router, routing.Router)
        handler = router.handler_class()
        assert issubclass(handler, APIHandler) and handler.auth_resource == "tfserve"
        # Jupyter's own audit of handlers: every HTTP method under @web.authenticated.
        assert jp_serverapp.web_app._check_handler_auth(router.pattern, handler) == []


@pytest.fixture
def jp_server_auth_resources(jp_server_auth_core_resources):
    return {**jp_server_auth_core_resources, r"/tfserve/.*": "tfserve"}


@pytest.mark.parametrize("allowed", [(), ("read",), ("read", "write")])
async def test_the_authorizer_decides_per_action_on_the_tfserve_resource(
    jp_server_authorizer, jp_serverapp, fetch, hpt, allowed
):
    jp_serverapp.authorizer.permissions = {"actions": list(allowed), "resources": ["tfserve"]}
    read, _ = await call(fetch, "GET", "api/models")
    write, _ = await call(fetch, "POST", "api/models", {"name": "hpt", "base_path": hpt})
    assert read == (200 if "read" in allowed else 403)
    assert write == (202 if "write" in allowed else 403)


# ---------------------------------------------------------------------- TF Serving's API through Jupyter
async def test_tf_serving_rest_api_under_the_base_url(fetch, extension, hpt):
    server = await extension.host.server()
    status, _ = await call(fetch, "POST", "api/models", {"name": "hpt", "base_path": hpt})
    assert status == 202
    await available(server, "hpt", 2)
    status, body = await call(fetch, "POST", "v1/models/hpt:predict", INSTANCES)
    assert (status, body) == (200, {"predictions": [[2.5], [3.0], [4.5]]})
    status, body = await call(fetch, "GET", "v1/models/hpt")
    assert status == 200 and body["model_version_status"][0]["version"] == "2"
    status, body = await call(fetch, "GET", "v1/models/hpt/versions/2/metadata")
    assert status == 200 and "serving_default" in body["metadata"]["signature_def"]["signature_def"]
    status, body = await call(fetch, "POST", "v1/models/nope:predict", INSTANCES)
    assert (status, body) == (404, {"error": "Servable not found for request: Latest(nope)"})


# ---------------------------------------------------------------------- the pluggable server class
class RecordingModelServer(ModelServer):
    """A ModelServer of the test's own, configured by dotted name like any user's class."""

    built: list[RecordingModelServer] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingModelServer.built.append(self)


@pytest.fixture(
    params=[f"{__name__}.RecordingModelServer", "collections.OrderedDict", "no.such.module.Server"]
)
def server_class(request, tfserve_config):
    tfserve_config["model_server_class"] = request.param  # c.TFServe.model_server_class = "..."
    return request.param


async def test_model_server_class_is_pluggable_and_a_wrong_one_is_reported(
    server_class, fetch, jp_fetch, extension
):
    assert extension.model_server_class == server_class  # still a name: nothing imported at startup
    status, body = await call(fetch, "GET", "api/models")
    if server_class.endswith("RecordingModelServer"):
        assert status == 200 and RecordingModelServer.built[-1] is extension.host.current()
        return
    assert status == 503 and body["error"].startswith("The model server could not start:"), body
    assert (await jp_fetch("api", "status")).code == 200  # Jupyter itself is fine


async def test_requests_that_arrive_while_the_engine_is_imported_are_held_not_lost(
    fetch, extension, hpt
):
    assert extension.host.state == "idle"  # nothing imported or built yet
    load, listing = await asyncio.gather(
        call(fetch, "POST", "api/models", {"name": "hpt", "base_path": hpt}),
        call(fetch, "GET", "api/models"),
    )
    assert load[0] == 202 and load[1]["name"] == "hpt"
    assert listing[0] == 200
    assert extension.host.state == "running"


# ---------------------------------------------------------------------- lifecycle
@pytest.fixture
def standalone_ports(tfserve_config):
    ports = {"grpc": free_port(), "rest": free_port()}
    tfserve_config.update(grpc_port=ports["grpc"], rest_port=ports["rest"])
    return ports


def tfserve_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("tfserve") and t.is_alive()]


async def test_startup_publishes_discovery_and_stop_cleans_everything_up(
    standalone_ports, jp_serverapp, extension, monkeypatch
):
    for name in (ENV_URL, ENV_TOKEN):
        monkeypatch.delenv(name, raising=False)
    assert extension.host.state == "idle"
    await extension._start_jupyter_server_extension(
        jp_serverapp
    )  # what Jupyter calls once it listens
    assert extension.host.state in (
        "starting",
        "running",
    )  # built in the background, no request needed
    runtime_file = Path(extension.runtime_file)
    expected_url = f"http://127.0.0.1:{jp_serverapp.port}{jp_serverapp.base_url}tfserve"
    assert json.loads(runtime_file.read_text())["url"] == expected_url
    assert os.environ[ENV_URL] == expected_url
    assert os.environ[ENV_TOKEN] == jp_serverapp.identity_provider.token

    info = await wait_until(
        lambda: (
            json.loads(runtime_file.read_text())["state"] == "running"
            and json.loads(runtime_file.read_text())
        ),
        60,
        "the runtime file to show the running server",
    )
    assert (info["grpc_port"], info["rest_port"]) == (
        standalone_ports["grpc"],
        standalone_ports["rest"],
    )
    assert port_open(standalone_ports["grpc"]) and port_open(standalone_ports["rest"])
    assert tfserve_threads()

    await extension.stop_extension()
    assert not runtime_file.exists()
    assert ENV_URL not in os.environ and ENV_TOKEN not in os.environ
    assert not port_open(standalone_ports["grpc"]) and not port_open(standalone_ports["rest"])
    assert tfserve_threads() == []


@pytest.fixture
def config_file(tfserve_config, tmp_path, hpt):
    path = tmp_path / "models.config"
    path.write_text(
        f'model_config_list {{ config {{ name: "hpt" base_path: "{hpt}" model_platform: "tensorflow" }} }}'
    )
    tfserve_config["model_config_file"] = str(path)
    return path


async def test_models_of_the_config_file_load_with_jupyter(config_file, jp_serverapp, extension):
    await extension._start_jupyter_server_extension(jp_serverapp)
    await available(await extension.host.server(), "hpt", 2)  # no request needed


def reload_request(**models) -> model_management_pb2.ReloadConfigRequest:
    """A gRPC ReloadConfigRequest serving ``name=base_path`` for each model."""
    request = model_management_pb2.ReloadConfigRequest()
    for name, base_path in models.items():
        request.config.model_config_list.config.add(
            name=name, base_path=str(base_path), model_platform="tensorflow"
        )
    return request


async def grpc_reload(port: int, request, token: str | None):
    """HandleReloadConfigRequest on the standalone gRPC port, off the loop; (code, details)."""

    def call():
        metadata = (("authorization", f"token {token}"),) if token is not None else None
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                    request, metadata=metadata, timeout=120
                )
            except grpc.RpcError as error:
                return error.code(), error.details()
            return grpc.StatusCode.OK, ""

    return await asyncio.get_running_loop().run_in_executor(None, call)


async def outside_rest(port: int, method: str, path: str, body=None, token: str | None = None):
    """A request to the standalone REST port; (status, decoded JSON body)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    response = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        body=body,
        headers=headers,
        raise_error=False,
        allow_nonstandard_methods=True,
    )
    return response.code, json.loads(response.body)


async def test_the_standalone_ports_need_jupyters_token_but_for_readiness(
    standalone_ports, fetch, jp_serverapp, extension, hpt
):
    server = await extension.host.server()
    token = jp_serverapp.identity_provider.token
    assert (await call(fetch, "POST", "api/models", {"name": "hpt", "base_path": hpt}))[0] == 202
    await available(server, "hpt", 2)
    rest = standalone_ports["rest"]
    predict = ("POST", "/v1/models/hpt:predict", json.dumps(INSTANCES))
    for method, path, body in [
        predict,
        ("GET", "/v1/models/hpt", None),
        ("GET", "/tfserve/api/models", None),
        ("DELETE", "/tfserve/api/models/hpt", None),
    ]:
        status, answer = await outside_rest(rest, method, path, body)
        assert status == 401 and "send its token" in answer["error"], (method, path, answer)
        assert (await outside_rest(rest, method, path, body, token="wrong"))[0] == 401
    assert (await outside_rest(rest, "GET", "/tfserve/api/ready"))[0] == 200  # probes need no token
    assert await outside_rest(rest, *predict, token=token) == (
        200,
        {"predictions": [[2.5], [3.0], [4.5]]},
    )
    status, body = await outside_rest(rest, "GET", "/tfserve/api/models", token=token)
    assert status == 200 and [m["name"] for m in body["models"]] == ["hpt"]
    assert server.manager.model_names() == ["hpt"]


async def test_grpc_reload_in_jupyter_needs_the_token_and_stays_in_the_roots(
    standalone_ports, fetch, jp_serverapp, extension, hpt, outside, model_repo
):
    """Finding 1: an unauthenticated HandleReloadConfigRequest replaced the user's models with one from anywhere."""
    server = await extension.host.server()
    token = jp_serverapp.identity_provider.token
    assert (await call(fetch, "POST", "api/models", {"name": "hpt", "base_path": hpt}))[0] == 202
    await available(server, "hpt", 2)
    port = standalone_ports["grpc"]

    code, details = await grpc_reload(port, reload_request(evil=outside), token=None)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "send its token" in details
    code, details = await grpc_reload(port, reload_request(evil=outside), token=token)
    assert code == grpc.StatusCode.NOT_FOUND and "outside the model roots" in details
    assert server.manager.model_names() == ["hpt"]  # refused: nothing changed

    other = model_repo("half_plus_two", "other")
    assert await grpc_reload(port, reload_request(other=other), token=token) == (
        grpc.StatusCode.OK,
        "",
    )
    assert server.manager.model_names() == ["other"]


@pytest.fixture
def open_ports(standalone_ports, tfserve_config):
    tfserve_config["ports_require_token"] = False
    return standalone_ports


async def test_ports_require_token_off_gives_tf_servings_open_ports_within_the_roots(
    open_ports, fetch, extension, hpt, outside, model_repo
):
    server = await extension.host.server()
    assert (await call(fetch, "POST", "api/models", {"name": "hpt", "base_path": hpt}))[0] == 202
    await available(server, "hpt", 2)
    rest = open_ports["rest"]
    assert (await outside_rest(rest, "POST", "/v1/models/hpt:predict", json.dumps(INSTANCES)))[
        0
    ] == 200
    status, body = await outside_rest(rest, "DELETE", "/tfserve/api/models/hpt")
    assert status == 403 and "through Jupyter's authenticated API" in body["error"]
    code, details = await grpc_reload(open_ports["grpc"], reload_request(evil=outside), token=None)
    assert code == grpc.StatusCode.NOT_FOUND and "outside the model roots" in details
    assert server.manager.model_names() == ["hpt"]
    other = model_repo("half_plus_two", "other")
    assert await grpc_reload(open_ports["grpc"], reload_request(other=other), token=None) == (
        grpc.StatusCode.OK,
        "",
    )
    assert server.manager.model_names() == ["other"]


@pytest.mark.parametrize("endpoint", ["rest", "grpc"])
async def test_a_port_in_use_is_logged_and_stays_off_while_jupyter_serves(
    standalone_ports, endpoint, fetch, extension, hpt, caplog
):
    other = "grpc" if endpoint == "rest" else "rest"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", standalone_ports[endpoint]))
        taken.listen()
        with caplog.at_level(logging.ERROR, logger="jupyter_tfserve"):
            server = await extension.host.server()
        assert any(
            f"{endpoint} port 127.0.0.1:{standalone_ports[endpoint]} is already in use"
            in r.getMessage()
            and "stays off" in r.getMessage()
            for r in caplog.records
        ), caplog.text
        ports = {"rest": server.rest_port, "grpc": server.grpc_port}
        assert (
            not ports[endpoint]
            and ports[other] == standalone_ports[other]
            and port_open(ports[other])
        )
        status, info = await call(fetch, "GET", "api/info")
        assert status == 200 and "already in use" in info["port_errors"][endpoint]
        assert info["ports"] == {endpoint: 0, other: standalone_ports[other]}
        assert (await call(fetch, "POST", "api/models", {"name": "hpt", "base_path": hpt}))[
            0
        ] == 202
        await available(server, "hpt", 2)
        assert (await call(fetch, "POST", "v1/models/hpt:predict", INSTANCES))[0] == 200


async def test_a_loading_model_does_not_delay_jupyter(fetch, jp_fetch, extension, model_repo):
    """Thirty versions load one after another; Jupyter keeps answering /api/status meanwhile."""
    server = await extension.host.server()
    base = model_repo("half_plus_two", "many", versions=range(1, 31))
    status, _ = await call(
        fetch, "POST", "api/models", {"name": "many", "base_path": base, "policy": "all"}
    )
    assert status == 202

    def loading() -> bool:
        return any(
            s.state in (State.START, State.LOADING) for s in server.manager.version_status("many")
        )

    answered_while_loading = 0
    while loading():
        response = await jp_fetch("api", "status")
        assert response.code == 200
        if loading():  # the status came back while versions were still loading
            answered_while_loading += 1
    assert answered_while_loading >= 3
    assert all(s.state == State.AVAILABLE for s in server.manager.version_status("many"))


# ---------------------------------------------------------------------- the management API and its spec
def resolve_refs(node, spec):
    """A schema with every ``$ref`` of the spec inlined (the spec has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve_refs(target, spec)
        return {key: resolve_refs(value, spec) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_refs(value, spec) for value in node]
    return node


class Spec:
    """openapi.yaml: which operation a request is, and whether an answer is one it documents."""

    def __init__(self):
        self.document = yaml.safe_load(OPENAPI.read_text())
        self.checked: set[tuple[str, str]] = set()

    def check(self, method: str, template: str, status: int, body) -> None:
        operation = self.document["paths"][template][method.lower()]
        assert str(status) in operation["responses"], (
            f"{method} {template} answered {status}, undocumented"
        )
        response = resolve_refs(operation["responses"][str(status)], self.document)
        schema = response["content"]["application/json"]["schema"]
        OAS30Validator(schema).validate(body)
        self.checked.add((method, template))


async def test_the_openapi_spec_is_valid_and_lists_exactly_the_routes(extension):
    validate_spec(yaml.safe_load(OPENAPI.read_text()))
    server = await extension.host.server()
    routes = [(method, pattern) for method, pattern, _ in server.rest.management._routes]
    operations = [(method, template) for method, template, _ in spec_operations()]
    for method, pattern in routes:
        assert any(
            m == method and pattern.fullmatch(concrete(t)[len("api") :]) for m, t in operations
        ), f"{method} {pattern.pattern} is served but not in openapi.yaml"
    for method, template in operations:
        assert any(
            m == method and p.fullmatch(concrete(template)[len("api") :]) for m, p in routes
        ), f"{method} {template} is in openapi.yaml but not served"

    # TF Serving's /v1 routes: every path shape the REST router takes is in the spec, as the
    # action the spec says, and every /v1 operation of the spec is one the router takes.
    v1 = {(method, concrete(template)): template for method, template, _ in spec_operations(True)}
    selectors = ("", "/versions/1", "/labels/stable")
    served = [("GET", f"v1/models/hpt{s}{m}") for s in selectors for m in ("", "/metadata")]
    served += [("POST", f"v1/models/hpt{s}:{verb}") for s in selectors for verb in VERBS]
    assert sorted(served) == sorted(v1), (
        "the /v1 operations in openapi.yaml differ from the router's"
    )
    for (method, path), template in v1.items():
        route = parse_v1_path(method, "/" + path)
        action = template.rpartition(":")[2] if method == "POST" else "status"
        if template.endswith("/metadata"):
            action = "metadata"
        assert (route.model, route.action) == ("hpt", action), template
        assert (route.version, route.label) == (
            1 if "{version}" in template else None,
            "stable" if "{label}" in template else None,
        ), template
    for method, path in [
        ("GET", "/v1/models/hpt/versions/1/labels/stable"),
        ("PUT", "/v1/models/hpt"),
    ]:
        with pytest.raises(ServingError, match="Malformed request"):
            parse_v1_path(method, path)


@pytest.fixture
def batching(tfserve_config):
    tfserve_config["enable_batching"] = True


async def test_every_management_route_answers_as_documented(
    batching, fetch, extension, hpt, tmp_path, models_root
):
    server = await extension.host.server()
    spec = Spec()

    async def api(method, template, body=None, query="", expect=200, **params):
        path = "api" + template.format(**params) + query
        status, answer = await call(fetch, method, path, body)
        assert status == expect, (method, path, answer)
        spec.check(method, template, status, answer)
        return answer

    model = await api("POST", "/models", {"name": "hpt"}, expect=202)  # base_path: models_root/hpt
    assert model["name"] == "hpt" and model["base_path"] == os.path.realpath(hpt)
    await available(server, "hpt", 2)
    assert [m["name"] for m in (await api("GET", "/models"))["models"]] == ["hpt"]
    model = await api("GET", "/models/{name}", name="hpt")
    assert model["versions"][0]["state"] == "AVAILABLE"
    assert (
        model["versions"][0]["signatures"]["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"
    )

    assert (
        await api(
            "PUT", "/models/{name}/labels/{label}", {"version": 2}, name="hpt", label="stable"
        )
    )["labels"] == {"stable": 2}
    assert (await api("DELETE", "/models/{name}/labels/{label}", name="hpt", label="stable"))[
        "labels"
    ] == {}

    assert (await call(fetch, "POST", "v1/models/hpt:predict", INSTANCES))[0] == 200
    metrics = await api("GET", "/metrics", query="?model=hpt")
    counts = metrics[":tensorflow:serving:request_count"]
    assert counts and all(series["labels"]["model_name"] == "hpt" for series in counts)

    stats = await api("GET", "/models/{name}/batching", name="hpt")
    assert stats["model_name"] == "hpt" and "serving_default" in stats["signatures"]
    stats = await api("PUT", "/models/{name}/batching", {"max_batch_size": 8}, name="hpt")
    assert stats["parameters"]["max_batch_size"] == 8
    stats = await api("DELETE", "/models/{name}/batching", name="hpt")
    assert stats["parameters"]["max_batch_size"] == 1000  # TF Serving's default
    assert (await api("GET", "/models/{name}/logging", name="hpt"))["enabled"] is False
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    status, body = await call(
        fetch, "PUT", "api/models/hpt/logging", {"filename_prefix": str(outside / "hpt")}
    )
    assert (
        status == 404 and "is outside the model roots" in body["error"]
    )  # the server writes no file there
    model = f'name: "hpt" base_path: "{hpt}" model_platform: "tensorflow"'
    logged = f'logging_config {{ log_collector_config {{ type: "tfrecord" filename_prefix: "{outside}/hpt" }} }}'
    reload = {"config": f"model_config_list {{ config {{ {model} {logged} }} }}"}
    status, body = await call(fetch, "POST", "api/config/reload", reload)  # nor by a config reload
    assert status == 404 and "Log folder" in body["error"]
    assert (await api("GET", "/models/{name}/logging", name="hpt"))["enabled"] is False
    (models_root / "logs").mkdir()
    logging_on = {"filename_prefix": str(models_root / "logs" / "hpt"), "sampling_rate": 0.5}
    logging = await api("PUT", "/models/{name}/logging", logging_on, name="hpt")
    assert (logging["enabled"], logging["sampling_rate"], logging["type"]) == (
        True,
        0.5,
        "tfrecord",
    )
    assert (await api("DELETE", "/models/{name}/logging", name="hpt"))["enabled"] is False
    await api("GET", "/ready")

    config = await api("GET", "/config")
    assert 'name: "hpt"' in config["config"] and config["model_config_file"] == ""
    info = await api("GET", "/info")
    assert (info["host"], info["ports"], info["models"], info["batching"]) == (
        "jupyter",
        {"grpc": 0, "rest": 0},
        1,
        True,
    )
    assert info["models_root"] == extension.models_root and info["tensorflow"]["imported"] is True
    assert (
        info["url"].endswith("/tfserve")
        and info["port_errors"] == {}
        and info["config_error"] == ""
    )

    second = Path(hpt).parent / "hpt_copy"
    shutil.copytree(hpt, second)
    text = (
        "model_config_list { "
        f'config {{ name: "hpt" base_path: "{hpt}" model_platform: "tensorflow" }} '
        f'config {{ name: "copy" base_path: "{second}" model_platform: "tensorflow" }} }}'
    )
    assert (await api("POST", "/config/reload", {"config": text}))["models"] == ["hpt", "copy"]
    await available(server, "copy", 2)

    rollback = await api("POST", "/models/{name}/rollback", {}, name="hpt", expect=202)
    assert (rollback["version"], rollback["from_version"]) == (1, 2)
    await wait_until(
        lambda: (
            [(s.version, s.state) for s in server.manager.version_status("hpt")]
            == [(2, State.END), (1, State.AVAILABLE)]
        ),
        60,
        "the rollback to version 1",
    )
    status, body = await call(fetch, "GET", "v1/models/hpt")
    assert [(v["version"], v["state"]) for v in body["model_version_status"]] == [
        ("2", "END"),
        ("1", "AVAILABLE"),
    ]

    assert (await api("DELETE", "/models/{name}", name="copy", expect=202)) == {
        "name": "copy",
        "unloaded": True,
    }
    await api("GET", "/models/{name}", name="copy", expect=404)
    missing = {(m, t) for m, t, _ in spec_operations()} - spec.checked
    assert missing == set(), f"not exercised: {sorted(missing)}"


async def test_rollback_to_a_given_version_and_its_refusals(fetch, extension, model_repo):
    server = await extension.host.server()
    base = model_repo("half_plus_two", "three", versions=(1, 2, 3))
    assert (await call(fetch, "POST", "api/models", {"name": "three", "base_path": base}))[0] == 202
    await available(server, "three", 3)
    status, body = await call(fetch, "POST", "api/models/three/rollback", {"version": 7})
    assert status == 404 and "Version 7 of model three is not under" in body["error"]
    status, body = await call(fetch, "POST", "api/models/three/rollback", {"version": 3})
    assert status == 400 and "already serving version 3" in body["error"]
    status, body = await call(fetch, "POST", "api/models/three/rollback", {"version": 1})
    assert (status, body["version"], body["from_version"]) == (202, 1, 3)
    await available(server, "three", 1)
    await wait_until(
        lambda: server.manager.version_status("three", 3)[0].state == State.END, 60, "3 unloaded"
    )
    status, body = await call(fetch, "POST", "api/models/three/rollback")
    assert status == 400 and "no version older than 1" in body["error"]


async def test_serving_a_model_again_keeps_its_log_and_the_labels_it_still_serves(
    fetch, extension, model_repo, models_root
):
    """Serve latest after a rollback (or any new policy) is not a fresh start: labels and logging stay."""
    server = await extension.host.server()
    base = model_repo("half_plus_two", "two", versions=(1, 2))
    assert (
        await call(fetch, "POST", "api/models", {"name": "two", "base_path": base, "policy": "all"})
    )[0] == 202
    await available(server, "two", 1)
    await available(server, "two", 2)
    for label, version in (("stable", 1), ("canary", 2)):
        assert (await call(fetch, "PUT", f"api/models/two/labels/{label}", {"version": version}))[
            0
        ] == 200
    (models_root / "logs").mkdir()
    logging_on = {"filename_prefix": str(models_root / "logs" / "two"), "sampling_rate": 0.25}
    assert (await call(fetch, "PUT", "api/models/two/logging", logging_on))[0] == 200

    status, _ = await call(
        fetch, "POST", "api/models", {"name": "two", "base_path": base, "policy": "specific:2"}
    )
    assert status == 202
    await wait_until(
        lambda: server.manager.version_status("two", 1)[0].state == State.END, 60, "1 unloaded"
    )
    assert server.manager.labels("two") == {
        "canary": 2
    }  # stable pointed at version 1, no longer served
    logging = (await call(fetch, "GET", "api/models/two/logging"))[1]
    assert (logging["enabled"], logging["sampling_rate"]) == (True, 0.25)


# ---------------------------------------------------------------------- model roots
@pytest.fixture
def outside(tmp_path, model_store):
    """A model repository outside models_root."""
    base = tmp_path / "outside" / "hpt"
    shutil.copytree(model_store["half_plus_two"], base / "1")
    return base


async def test_paths_outside_the_model_roots_are_forbidden(
    fetch, extension, models_root, outside, model_store
):
    server = await extension.host.server()
    (models_root / "link").symlink_to(outside)  # a symlinked base path
    sneaky = models_root / "sneaky"
    sneaky.mkdir()
    (sneaky / "1").symlink_to(outside / "1")  # a symlinked version directory
    attempts = {
        "dotdot": "../outside/hpt",
        "dotdot_absolute": f"{models_root}/../outside/hpt",
        "absolute": str(outside),
        "link": "link",
        "sneaky": "sneaky",
    }
    missing = await call(
        fetch, "POST", "api/models", {"name": "missing", "base_path": "../outside/missing"}
    )
    for name, base_path in attempts.items():
        status, body = await call(
            fetch, "POST", "api/models", {"name": name, "base_path": base_path}
        )
        assert status == 404, (name, body)
        assert "outside the model roots" in body["error"] and "allowed_model_roots" in body["error"]
        # The same answer as for a path that does not exist: the API cannot probe the disk.
        assert (
            body["error"].partition(" does not exist")[1:]
            == missing[1]["error"].partition(" does not exist")[1:]
        )
    assert missing[0] == 404
    text = f'model_config_list {{ config {{ name: "x" base_path: "{outside}" model_platform: "tensorflow" }} }}'
    status, body = await call(fetch, "POST", "api/config/reload", {"config": text})
    assert status == 404 and "outside the model roots" in body["error"]
    assert server.manager.model_names() == []


async def test_a_version_symlinked_outside_the_roots_later_is_never_served(
    fetch, extension, models_root, outside, model_store
):
    """Finding 3: a version folder added after the load was served without a roots check."""
    server = await extension.host.server()
    base = models_root / "hpt"
    shutil.copytree(model_store["half_plus_two"], base / "1")
    status, _ = await call(fetch, "POST", "api/models", {"name": "hpt", "policy": "all"})
    assert status == 202
    await available(server, "hpt", 1)
    (base / "2").symlink_to(outside / "1")  # outside the roots
    shutil.copytree(model_store["half_plus_two"], base / "3")  # an honest new version, same poll
    await available(server, "hpt", 3)  # the poll has seen both
    assert [s.version for s in server.manager.version_status("hpt")] == [3, 1]
    status, body = await call(fetch, "POST", "v1/models/hpt/versions/2:predict", INSTANCES)
    assert status == 404


@pytest.fixture
def allow_outside(tfserve_config, tmp_path):
    tfserve_config["allowed_model_roots"] = [str(tmp_path / "outside")]


async def test_allowed_model_roots_open_further_directories(
    allow_outside, fetch, extension, outside
):
    server = await extension.host.server()
    status, body = await call(
        fetch, "POST", "api/models", {"name": "hpt", "base_path": str(outside)}
    )
    assert status == 202, body
    await available(server, "hpt", 1)
    assert (await call(fetch, "GET", "api/info"))[1]["allowed_model_roots"] == [str(outside.parent)]


# ---------------------------------------------------------------------- bad input
async def test_bad_input_gets_a_4xx_json_error_is_logged_and_changes_nothing(
    fetch, extension, hpt, models_root, caplog
):
    server = await extension.host.server()
    assert (await call(fetch, "POST", "api/models", {"name": "hpt", "base_path": hpt}))[0] == 202
    await available(server, "hpt", 2)
    config_before = (await call(fetch, "GET", "api/config"))[1]

    (models_root / "empty").mkdir()
    (models_root / "no_saved_model" / "1").mkdir(parents=True)
    (models_root / "a_file").write_text("not a model")
    cases = [
        ("GET", "api/models/nope", None, 404, "Model nope is not being served"),
        ("DELETE", "api/models/nope", None, 404, "Model nope is not being served"),
        ("POST", "api/models/nope/rollback", None, 404, "Model nope is not being served"),
        ("PUT", "api/models/nope/labels/x", {"version": 1}, 404, "Model nope is not being served"),
        ("DELETE", "api/models/hpt/labels/nope", None, 404, "Model hpt has no label nope"),
        (
            "POST",
            "v1/models/nope:predict",
            INSTANCES,
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "POST",
            "api/models",
            {"name": "hpt", "policy": "latest:0"},
            400,
            "Invalid version policy 'latest:0'",
        ),
        (
            "POST",
            "api/models",
            {"name": "hpt", "policy": "sometimes"},
            400,
            "Invalid version policy",
        ),
        (
            "POST",
            "api/models",
            {"name": "hpt", "policy": {"latest": {"num_versions": 0}}},
            400,
            "num_versions >= 1",
        ),
        (
            "POST",
            "api/models",
            {"name": "hpt", "policy": {"newest": {}}},
            400,
            "Invalid version policy",
        ),
        (
            "POST",
            "api/models",
            {"name": "hpt", "policy": "specific:9"},
            400,
            "selects none of the versions",
        ),
        ("POST", "api/models", {"name": "gone", "base_path": "missing"}, 404, "does not exist"),
        ("POST", "api/models", {"name": "f", "base_path": "a_file"}, 400, "is not a directory"),
        (
            "POST",
            "api/models",
            {"name": "bare", "base_path": "hpt/1"},
            400,
            "is a SavedModel itself",
        ),
        (
            "POST",
            "api/models",
            {"name": "e", "base_path": "empty"},
            400,
            "No versions of servable e found",
        ),
        (
            "POST",
            "api/models",
            {"name": "n", "base_path": "no_saved_model"},
            400,
            "is not a SavedModel",
        ),
        ("POST", "api/models", {"base_path": "hpt"}, 400, "'name' must be a non-empty string"),
        (
            "POST",
            "api/models",
            {"name": "..", "base_path": "hpt"},
            400,
            "Model name '..' is not allowed",
        ),
        ("PUT", "api/models/hpt/labels/.x", {"version": 2}, 400, "Label '.x' is not allowed"),
        ("POST", "api/models", "[1, 2]", 400, "must be a JSON object"),
        ("POST", "api/models", "{not json", 400, "JSON Parse error"),
        (
            "PUT",
            "api/models/hpt/labels/canary",
            {"version": 7},
            400,
            "not currently available for inference",
        ),
        (
            "PUT",
            "api/models/hpt/labels/canary",
            {"version": "2"},
            400,
            "'version' must be a non-negative integer",
        ),
        (
            "POST",
            "api/config/reload",
            {"config": "model_config_list { bogus }"},
            400,
            "Error parsing text-format tensorflow.serving.ModelServerConfig",
        ),
        (
            "POST",
            "api/config/reload",
            {"config": 'model_config_list { config { name: "r" base_path: "rel" } }'},
            400,
            "to have an absolute path or URI",
        ),
        ("POST", "api/config/reload", None, 400, "No model_config_file is configured"),
        ("PATCH", "api/models", None, 405, "Method PATCH not allowed"),
        ("GET", "api/nothing/here", None, 404, "Not found"),
    ]
    with caplog.at_level(logging.WARNING, logger="jupyter_tfserve"):
        for method, path, body, expected, message in cases:
            status, answer = await call(fetch, method, path, body)
            assert status == expected, (method, path, answer)
            assert isinstance(answer, dict) and message in answer["error"], (method, path, answer)
    assert "refused: Invalid version policy 'latest:0'" in caplog.text
    assert "refused: Error parsing text-format tensorflow.serving.ModelServerConfig" in caplog.text

    assert (await call(fetch, "GET", "api/config"))[1] == config_before
    assert server.manager.model_names() == ["hpt"]
    assert (await call(fetch, "POST", "v1/models/hpt:predict", INSTANCES)) == (
        200,
        {"predictions": [[2.5], [3.0], [4.5]]},
    )


@pytest.fixture
def malformed_config_file(tfserve_config, tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: 'hpt' oops } }")
    tfserve_config["model_config_file"] = str(path)
    return path


async def test_a_malformed_config_file_leaves_jupyter_up_and_can_be_fixed(
    malformed_config_file, fetch, extension, outside, caplog
):
    with caplog.at_level(logging.ERROR, logger="jupyter_tfserve"):
        server = await extension.host.server()
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in caplog.text
    status, info = await call(fetch, "GET", "api/info")
    assert status == 200 and "Error parsing text-format" in info["config_error"]
    assert (await call(fetch, "GET", "api/models"))[1] == {"models": []}
    status, body = await call(fetch, "POST", "api/config/reload", {})
    assert status == 400 and "Error parsing text-format" in body["error"]

    # The server's own config file is trusted like at startup, even outside the model roots.
    malformed_config_file.write_text(
        f'model_config_list {{ config {{ name: "hpt" base_path: "{outside}" model_platform: "tensorflow" }} }}'
    )
    assert (await call(fetch, "POST", "api/config/reload", {})) == (200, {"models": ["hpt"]})
    await available(server, "hpt", 1)
    assert (await call(fetch, "GET", "api/info"))[1]["config_error"] == ""


@pytest.fixture
def method_name_check(tfserve_config):
    tfserve_config["enable_signature_method_name_check"] = True


async def test_the_signature_method_name_check_is_a_trait_off_by_default(jp_serverapp, extension):
    assert extension.make_server_options().enable_signature_method_name_check is False


async def test_the_signature_method_name_check_trait_reaches_the_server(
    method_name_check, extension
):
    server = await extension.host.server()
    assert server.service.check_signature_method_name is True


@pytest.fixture
def one_in_flight(tfserve_config):
    tfserve_config["server_options"]["max_requests_in_flight"] = 1


async def test_requests_past_the_in_flight_bound_get_503_on_the_mounted_routes(
    one_in_flight, fetch, extension, hpt, jp_http_port, jp_auth_header, jp_base_url
):
    """The routes Jupyter mounts answer their bound as the standalone port does: 503 at once."""
    server = await extension.host.server()
    assert (await call(fetch, "POST", "api/models", {"name": "hpt"}))[0] == 202
    await available(server, "hpt", 2)
    # A request whose body never comes stays in flight until its connection closes.
    _reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    headers = "".join(f"{name}: {value}\r\n" for name, value in jp_auth_header.items())
    writer.write(
        f"POST {jp_base_url}tfserve/v1/models/hpt:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"{headers}Content-Length: 100\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        _status, body = await wait_until(lambda: _answered(fetch, 503), what="a refusal")
        assert body == {
            "error": "Too many requests in flight on this port (max_requests_in_flight=1); "
            "try again later"
        }
    finally:
        writer.close()
    status, body = await wait_until(
        lambda: _answered(fetch, 200), what="a prediction once the held request is gone"
    )
    assert body == {"predictions": [[2.5], [3.0], [4.5]]}


async def _answered(fetch, status: int):
    """A predict's (status, body) when it answers ``status``, else None."""
    answer = await call(fetch, "POST", "v1/models/hpt:predict", INSTANCES)
    return answer if answer[0] == status else None
