"""schemathesis over openapi.yaml against both HTTP fronts: no 5xx, answers as documented.

Two real servers serve a real SavedModel (half_plus_two with TF Serving's
``classify_x_to_y`` and ``regress_x_to_y`` signatures, under the name the
spec's examples use):

* the standalone port: a ``ModelServer`` with a token, so the management API
  is reachable (``Authorization: Bearer <token>``);
* the routes Jupyter mounts: a ``jupyter server`` subprocess with the
  extension, reached with Jupyter's token under ``{base_url}tfserve``.

Every operation of the spec is generated from its schemas (explicit examples
first, then hypothesis' cases, valid and invalid) and sent to each front;
schemathesis' checks then hold the answer to the spec: never a 5xx, a
documented status code, a body matching its schema, the documented content
type.

CI runs a few examples per operation (the whole module stays well under
90 s). A larger run is opt-in: ``TFSERVE_FUZZ_EXAMPLES=500 python -m pytest
tests/test_openapi_fuzz.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import savedmodels
import schemathesis
from hypothesis import HealthCheck, settings
from notebook_servers import model_config_text
from ports import free_port
from schemathesis.specs.openapi.checks import positive_data_acceptance, unsupported_method
from test_jupyter_kernel import TOKEN, JupyterServer, wait_for

from jupyter_tfserve.server import ModelServer, ServerOptions

OPENAPI = Path(__file__).resolve().parent.parent / "jupyter_tfserve" / "protocols" / "openapi.yaml"
EXAMPLES = int(os.environ.get("TFSERVE_FUZZ_EXAMPLES", "4"))
MODEL = "half_plus_two"  # the model the spec's examples name
STANDALONE_TOKEN = "fuzz-token"

# reloadConfig realizes the config it is sent exactly, as TF Serving's
# HandleReloadConfigRequest does: the first config hypothesis tries (the empty
# one) unloads the served model, and every later case would fuzz a server with
# nothing to serve. Its refusals are checked in test_jupyter_extension. The other
# changes (load, unload, labels, rollback, batching, logging) run: the names they
# are generated with are not the served model's, so they answer 404 or 400 and
# change nothing, which is what the checks hold them to.
SCHEMA = schemathesis.openapi.from_path(str(OPENAPI)).exclude(operation_id="reloadConfig")


@SCHEMA.hook
def filter_path_parameters(context, path_parameters) -> bool:
    """The management API's changes never touch the model every case needs served."""
    return not path_parameters or path_parameters.get("name") != MODEL


# Checks that do not hold, each for a reason outside the spec:
# * positive_data_acceptance expects a 2xx (or 404) for every request its schema
#   allows. Whether a request is good depends on the model served (its input
#   names, dtypes and shapes, the labels it has) and the server's state (a label
#   may only point at an AVAILABLE version, batching may be off): TF Serving
#   answers those INVALID_ARGUMENT / FAILED_PRECONDITION, both 400, which no
#   schema of the request can foresee. The 400 is documented and checked.
# * unsupported_method expects 405 with an Allow header for a method a path does
#   not document. TF Serving answers any other request under /v1/ with 400
#   "Malformed request: <METHOD> <PATH>", and so do we; on the standalone port a
#   POST under /tfserve/api that is not application/json is refused (400) before
#   routing, as a page could send it cross-origin (protocols/access.py); inside
#   Jupyter, tornado answers methods it does not know (TRACE) with its own 405
#   before any handler runs. The management router's own 405s carry Allow.
EXCLUDED_CHECKS = [positive_data_acceptance, unsupported_method]


class Front:
    """Where one front serves the spec's two groups of paths, and the header that lets a client in."""

    def __init__(self, v1_url: str, api_url: str, authorization: str):
        self.v1_url = v1_url
        self.api_url = api_url
        self.headers = {"Authorization": authorization}

    def base_url(self, path: str) -> str:
        return self.v1_url if path.startswith("/v1/") else self.api_url


def write_model(root: Path) -> Path:
    base = root / MODEL
    savedmodels.half_plus_two_tf2_examples(base, 1)
    return base


@pytest.fixture(scope="module")
def model_base(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("fuzz_models"))


@pytest.fixture(scope="module")
def standalone(tmp_path_factory, model_base):
    tmp = tmp_path_factory.mktemp("fuzz_standalone")
    token_file = tmp / "token"
    token_file.write_text(STANDALONE_TOKEN)
    server = ModelServer(
        ServerOptions(
            port=free_port(),
            rest_api_port=free_port(),
            model_name=MODEL,
            model_base_path=str(model_base),
            auth_token_file=str(token_file),
            file_system_poll_wait_seconds=0.5,
            max_num_load_retries=0,
        )
    ).start(timeout=120)
    try:
        url = f"http://127.0.0.1:{server.rest_port}"
        yield Front(url, f"{url}/tfserve/api", f"Bearer {STANDALONE_TOKEN}")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory, model_base):
    tmp = tmp_path_factory.mktemp("fuzz_jupyter")
    config = tmp / "models.config"
    config.write_text(model_config_text({MODEL: str(model_base)}))
    server = JupyterServer(
        tmp,
        f"--TFServe.model_config_file={config}",
        f"--TFServe.models_root={model_base.parent}",
    )
    try:
        wait_for(
            lambda: server.request("GET", f"tfserve/v1/models/{MODEL}")[0] == 200,
            120,
            f"{MODEL} to load",
        )
        yield Front(f"{server.url}tfserve", f"{server.url}tfserve/api", f"token {TOKEN}")
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["standalone", "jupyter"])
def front(request) -> Front:
    return request.getfixturevalue(request.param)


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, front):
    case.call_and_validate(
        base_url=front.base_url(case.path),
        headers=front.headers,
        excluded_checks=EXCLUDED_CHECKS,
        timeout=60,
    )
