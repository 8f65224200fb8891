"""Access control and the one door for changes, against real servers: the ``tfserve`` command and gRPC stubs.

Each test is one finding of the security review (issue 18) that held on the
code before it: a web page or another user on the host could change what a
standalone server serves, concurrent changes undid each other, and a ``..``
model name reached the file system.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests
from pki import make_pki
from ports import free_port
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from test_standalone import TIMEOUT, Tfserve, copy_model

from jupyter_tfserve.core.status import ServingError
from jupyter_tfserve.server import ModelServer, ServerOptions

TOKEN = "s3cret-token-for-tests"
JSON = {"Content-Type": "application/json"}
AUTH = {**JSON, "Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def repo(tmp_path, model_store):
    """A model repository with half_plus_two under several names; ``repo(name)`` -> base path."""

    def make(name: str) -> str:
        base = tmp_path / "models" / name
        return str(base) if base.exists() else copy_model(model_store["half_plus_two"], base)

    return make


@pytest.fixture
def tfserve(tmp_path, repo):
    """``tfserve(*flags)``: a started ``tfserve`` serving "hpt", stopped after the test."""
    started: list[Tfserve] = []

    def start(*flags: str) -> Tfserve:
        server = Tfserve(
            ["--model_name=hpt", f"--model_base_path={repo('hpt')}", *flags],
            tmp_path / f"tfserve-{len(started)}.log",
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


def model_names(server: Tfserve, headers=None) -> list[str]:
    reply = requests.get(server.url + "/tfserve/api/models", headers=headers, timeout=TIMEOUT)
    return sorted(m["name"] for m in reply.json()["models"])


def load(server: Tfserve, name: str, base_path: str, headers) -> requests.Response:
    body = json.dumps({"name": name, "base_path": base_path})
    return requests.post(
        server.url + "/tfserve/api/models", data=body, headers=headers, timeout=TIMEOUT
    )


# ---------------------------------------------------------------------- finding 2: standalone
def test_standalone_changes_are_off_by_default_and_a_web_page_cannot_make_any(tfserve, repo):
    server = tfserve("--enable_management_api")  # even with changes on, a web page gets nowhere
    other = repo("other")
    page = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    reply = load(server, "other", other, page)  # a "simple" cross-site request: no CORS preflight
    assert reply.status_code == 400 and "Content-Type: application/json" in reply.json()["error"]
    reply = load(server, "other", other, {**JSON, "Origin": "http://evil.example"})
    assert reply.status_code == 403 and "Origin 'http://evil.example'" in reply.json()["error"]
    rebound = requests.get(
        server.url + "/v1/models/hpt", headers={"Host": "attacker.example"}, timeout=TIMEOUT
    )
    assert rebound.status_code == 403 and "attacker.example" in rebound.json()["error"]
    assert model_names(server) == ["hpt"]
    assert load(server, "other", other, {**JSON, "Origin": server.url}).status_code == 202


def test_standalone_management_api_needs_a_flag_or_the_token(tfserve, repo, token_file):
    off = tfserve()
    reply = load(off, "other", repo("other"), JSON)
    assert reply.status_code == 403 and "--auth_token_file" in reply.json()["error"]
    assert "--enable_management_api" in reply.json()["error"]
    assert off.predict("hpt", [1.0]).status_code == 200  # TF Serving's own API stays open
    assert model_names(off) == ["hpt"]

    locked = tfserve(f"--auth_token_file={token_file}")
    assert locked.predict("hpt", [1.0]).status_code == 401
    assert requests.get(locked.url + "/tfserve/api/ready", timeout=TIMEOUT).status_code == 200
    assert load(locked, "other", repo("other2"), JSON).status_code == 401
    assert load(locked, "other", repo("other3"), AUTH).status_code == 202
    assert model_names(locked, AUTH) == ["hpt", "other"]


def test_standalone_grpc_needs_the_token_when_one_is_configured(tfserve, repo, token_file):
    grpc_port = free_port()
    server = tfserve(f"--auth_token_file={token_file}", f"--port={grpc_port}")
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(
        name="other", base_path=repo("other"), model_platform="tensorflow"
    )
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.HandleReloadConfigRequest(request, timeout=TIMEOUT)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert model_names(server, AUTH) == ["hpt"]
        stub.HandleReloadConfigRequest(
            request, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=TIMEOUT
        )
    assert model_names(server, AUTH) == ["other"]


# ---------------------------------------------------------------------- finding 4: one step per change
def test_concurrent_loads_are_all_kept(tfserve, repo, token_file):
    server = tfserve(f"--auth_token_file={token_file}")
    bases = {f"m{i}": repo(f"m{i}") for i in range(4)}
    with ThreadPoolExecutor(4) as pool:
        for round_ in range(6):
            names = [f"r{round_}_{name}" for name in bases]
            replies = list(pool.map(lambda n: load(server, n, bases[n.split("_")[1]], AUTH), names))
            assert [r.status_code for r in replies] == [202] * 4
            assert set(names) <= set(model_names(server, AUTH)), f"round {round_}"


# ---------------------------------------------------------------------- finding 5: names
BAD_NAMES = ["..", ".hidden", "a/b", "-rf", "x" * 200, "a b", "$(id)"]


def test_a_bad_model_name_is_refused_on_every_door(tfserve, repo, token_file):
    grpc_port = free_port()
    server = tfserve(f"--auth_token_file={token_file}", f"--port={grpc_port}")
    base = repo("good")
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    for name in BAD_NAMES:
        reply = load(server, name, base, AUTH)
        assert (
            reply.status_code == 400
            and "is not allowed: use letters, digits" in reply.json()["error"]
        ), name
        text = f'model_config_list {{ config {{ name: {json.dumps(name)} base_path: "{base}" }} }}'
        reply = requests.post(
            server.url + "/tfserve/api/config/reload",
            data=json.dumps({"config": text}),
            headers=AUTH,
            timeout=TIMEOUT,
        )
        assert reply.status_code == 400 and "is not allowed" in reply.json()["error"], name
        request = model_management_pb2.ReloadConfigRequest()
        request.config.model_config_list.config.add(
            name=name, base_path=base, model_platform="tensorflow"
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.HandleReloadConfigRequest(
                request, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=TIMEOUT
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "is not allowed" in refused.value.details()
    channel.close()
    assert model_names(server, AUTH) == ["hpt"]
    assert server.predict("hpt", [1.0]).status_code == 401  # still serving, still locked


def test_tfserve_sync_refuses_anything_that_leaves_its_target(tmp_path, model_store):
    from jupyter_tfserve.deploy import sync
    from jupyter_tfserve.deploy.errors import DeployError

    base = copy_model(model_store["half_plus_two"], tmp_path / "models" / "hpt")
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(DeployError, match="Model name '..' is not allowed"):
        sync({"..": base}, target, force=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (target / "hpt").symlink_to(elsewhere)  # a model directory leading out of the target
    with pytest.raises(DeployError, match="resolves outside the sync target"):
        sync({"hpt": base}, target, force=True)
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "1").exists()


# ---------------------------------------------------------------------- REST over TLS
@pytest.fixture
def tls_files(tmp_path):
    pki = make_pki()
    key, cert = pki["server"]
    paths = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    paths["ca"].write_bytes(pki["ca"])
    paths["cert"].write_bytes(cert)
    paths["key"].write_bytes(key)
    return {k: str(v) for k, v in paths.items()}


def test_the_rest_port_serves_https_with_the_token(tls_files, token_file, repo):
    """Token and data can leave the host: the port speaks TLS only, with the given certificate."""
    port = free_port()
    options = ServerOptions(
        port=0,
        rest_api_port=port,
        model_name="hpt",
        model_base_path=repo("hpt"),
        auth_token_file=token_file,
        rest_api_ssl_cert_file=tls_files["cert"],
        rest_api_ssl_key_file=tls_files["key"],
    )
    server = ModelServer(options).start(timeout=120)
    try:
        url = f"https://localhost:{port}/v1/models/hpt:predict"
        body = {"instances": [1.0, 2.0, 5.0]}
        reply = requests.post(url, json=body, headers=AUTH, verify=tls_files["ca"], timeout=TIMEOUT)
        assert reply.json() == {"predictions": [2.5, 3.0, 4.5]}
        assert (
            requests.post(url, json=body, verify=tls_files["ca"], timeout=TIMEOUT).status_code
            == 401
        )
        with pytest.raises(requests.ConnectionError):  # plain HTTP gets no answer on a TLS port
            requests.post(url.replace("https:", "http:"), json=body, headers=AUTH, timeout=TIMEOUT)
    finally:
        server.stop()


def test_an_unreadable_certificate_is_one_line_naming_the_flag_before_any_load(tmp_path, tls_files):
    missing = str(tmp_path / "nope.pem")
    never_loaded = str(tmp_path / "no-models-here")  # refused before the model path is looked at
    options = ServerOptions(port=0, rest_api_port=free_port(), model_base_path=never_loaded)
    with pytest.raises(ServingError) as refused:
        ModelServer(dataclasses.replace(options, rest_api_ssl_cert_file=missing)).start(timeout=30)
    assert refused.value.message == (
        f"Could not load the REST port's certificate --rest_api_ssl_cert_file={missing}: No such file or directory"
    )
    with pytest.raises(
        ServingError, match="--rest_api_ssl_key_file is set without --rest_api_ssl_cert_file"
    ):
        ModelServer(dataclasses.replace(options, rest_api_ssl_key_file=tls_files["key"])).start(
            timeout=30
        )
