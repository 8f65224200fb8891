"""The tutorials in ``notebooks/``, executed top to bottom in real kernels and checked on what they print.

Each notebook runs with nbclient in a fresh kernel whose environment points at
one real ``jupyter server`` with the extension (``TFSERVE_URL``/``TFSERVE_TOKEN``,
as the extension injects them). Each run has its own models_root (an IPython
profile sets ``c.TFServeMagics.models_root``, a directory the server allows),
working directory and ``TMPDIR``, so notebooks never see each other's models or
files; the servers they start themselves take free ports. The quickstart runs a
second time with no Jupyter server to find: embedded mode.

The checks read the cells' real outputs (cells are found by their tags):
prediction values against the rule the data follow, the hot swap's error
count, the benchmark table's columns and its batched/unbatched ratio, the
tuner's ``batching_parameters.txt`` parsed with the proto, the manifests.
The notebooks themselves are stored without outputs; a test holds them to it.
"""

from __future__ import annotations

import ast
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from notebook_servers import DISCOVERY_ENV
from test_jupyter_kernel import TOKEN, JupyterServer, free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
TUTORIALS = [
    "01_quickstart.ipynb",
    "02_versions_and_labels.ipynb",
    "03_batching.ipynb",
    "04_clients_and_protocols.ipynb",
    "05_from_notebook_to_production.ipynb",
]
CELL_TIMEOUT = 240


# ---------------------------------------------------------------------- stored notebooks
@pytest.mark.parametrize("name", TUTORIALS)
def test_notebooks_are_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {index} has outputs committed: clear them"
            assert cell.execution_count is None, (
                f"{name} cell {index} has an execution count committed"
            )
    assert "widgets" not in notebook.metadata, f"{name} has widget state committed"


def test_every_notebook_is_a_tutorial_linked_from_the_readme():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == TUTORIALS
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Tutorials", 1)[1].split("\n## ", 1)[0]
    for name in TUTORIALS:
        assert f"(notebooks/{name})" in section, f"README's Tutorials section does not link {name}"


# ---------------------------------------------------------------------- running them
@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    """Every notebook run's directory lives here; the Jupyter server may load models from it."""
    return tmp_path_factory.mktemp("notebook-runs")


@pytest.fixture(scope="session")
def notebook_jupyter(tmp_path_factory, runs_root):
    """One ``jupyter server`` with the extension for every notebook; yields it with its API URL."""
    server = JupyterServer(
        tmp_path_factory.mktemp("notebook-jupyter"),
        f"--TFServe.models_root={runs_root / 'server-models'}",
        f"--TFServe.allowed_model_roots={runs_root}",
        "--TFServe.file_system_poll_wait_seconds=0.2",
    )
    try:
        info = wait_for(
            lambda: (
                server.runtime_file.exists()
                and json.loads(server.runtime_file.read_text()).get("state") == "running"
                and json.loads(server.runtime_file.read_text())
            ),
            120,
            "the extension's model server to run",
        )
        server.api_url = info["url"]
        yield server
    finally:
        server.stop()


class Run:
    """One executed notebook: its directory and the text each tagged cell showed."""

    def __init__(self, directory: Path, notebook):
        self.directory = directory
        self.notebook = notebook

    def cell(self, tag: str):
        found = [c for c in self.notebook.cells if tag in c.metadata.get("tags", [])]
        assert len(found) == 1, f"expected one cell tagged {tag!r}"
        return found[0]

    def text(self, tag: str) -> str:
        """What the cell tagged ``tag`` printed and showed as plain text (stderr, where libraries log, left out)."""
        parts = []
        for output in self.cell(tag).outputs:
            if output.output_type == "stream" and output.name == "stdout":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.data.get("text/plain", ""))
        return "".join(parts)

    def table(self, tag: str) -> list[dict[str, str]]:
        """The rows of the HTML table (a DataFrame's) the cell tagged ``tag`` showed."""
        html = "".join(
            o.data.get("text/html", "")
            for o in self.cell(tag).outputs
            if o.output_type in ("execute_result", "display_data")
        )
        return html_table(html)


def execute(name: str, directory: Path, jupyter: JupyterServer | None) -> Run:
    """Run ``notebooks/name`` in a fresh kernel: against ``jupyter``, or embedded when it is None."""
    directory.mkdir()
    profile = directory / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        f"c.TFServeMagics.models_root = {str(directory / 'models')!r}\n"
        f"c.TFServeMagics.rest_port = {free_port()}\n"
        f"c.TFServeMagics.grpc_port = {free_port()}\n"
        "c.TFServeMagics.poll_seconds = 0.2\n"
    )
    (directory / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in DISCOVERY_ENV}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        IPYTHONDIR=str(directory / "ipython"),
        TMPDIR=str(directory / "tmp"),
        TFSERVE_MODELS_ROOT=str(directory / "models"),
        JUPYTER_RUNTIME_DIR=str(jupyter.runtime if jupyter else directory / "runtime"),
    )
    if jupyter is not None:
        env.update(
            TFSERVE_URL=jupyter.api_url, TFSERVE_TOKEN=TOKEN, TFSERVE_INJECTED_URL=jupyter.api_url
        )
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(directory)}},
    )
    try:
        client.execute(env=env)
    finally:  # kept for a look when a check fails: open it in Jupyter
        nbformat.write(notebook, directory / name)
    return Run(directory, notebook)


class _TableParser(HTMLParser):
    """Cell texts of an HTML table, row by row, split into header (thead) and body rows."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {"thead": [], "tbody": []}
        self.section = "tbody"
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in self.rows:
            self.section = tag
        elif tag == "tr":
            self.rows[self.section].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[self.section][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def html_table(html: str) -> list[dict[str, str]]:
    """The rows of a DataFrame's HTML table as {column: text}; the index under its name ('' if unnamed)."""
    parser = _TableParser()
    parser.feed(html.split("</table>", 1)[0])
    head, body = parser.rows["thead"], parser.rows["tbody"]
    assert head and body, "no table in the output"
    columns = head[0]
    if len(head) > 1 and head[1][0]:  # a named index gets a header row of its own
        columns = [head[1][0], *columns[1:]]
    return [dict(zip(columns, row, strict=True)) for row in body]


def floats(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", text)]


def first_json(text: str):
    """The JSON document at the start of ``text`` (curl prints no newline after it)."""
    return json.JSONDecoder().raw_decode(text.lstrip())[0]


# ---------------------------------------------------------------------- what every run shows
TF_START_UP = ("absl::InitializeLog()", "oneDNN custom operations", "cuda drivers", "cuInit")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widget_fallbacks(run: Run) -> list[str]:
    """The text/plain saved beside each widget view: what GitHub and a stateless reopen show."""
    return [
        o.data["text/plain"]
        for c in run.notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type in ("display_data", "execute_result") and WIDGET_VIEW in o.data
    ]


def check_quiet_and_readable(run: Run) -> None:
    """No TensorFlow start-up lines in any cell; every widget saved with a one-line text fallback."""
    for index, cell in enumerate(run.notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                noise = [m for m in TF_START_UP if m in output.text]
                assert not noise, (
                    f"cell {index} printed TensorFlow start-up lines: {output.text[:300]}"
                )
    for text in widget_fallbacks(run):
        assert "\n" not in text and not text.startswith(("HBox(", "VBox(")), text


# ---------------------------------------------------------------------- 01 quickstart
EXPECTED_QUICKSTART = [
    [-3.0],
    [3.5],
    [1.0],
]  # y = 2*x0 - 3*x1 + 1 at the three rows the notebook sends


def check_quickstart(run: Run) -> None:
    check_quiet_and_readable(run)
    assert {"export quickstart: version 1", "serve quickstart: version 1 AVAILABLE"} <= set(
        widget_fallbacks(run)
    )
    assert "Exported quickstart version 1" in run.text("export")
    assert "parity check on the sample passed" in run.text("export")
    assert "Serving quickstart version 1" in run.text("serve")
    assert float(run.text("predict").split("max |served - in memory| =")[1]) <= 1e-5
    curl = first_json(run.text("curl"))
    assert list(curl) == ["predictions"]
    for got, want in zip(curl["predictions"], EXPECTED_QUICKSTART, strict=True):
        assert got[0] == pytest.approx(want[0], abs=0.05)
    assert ast.literal_eval(run.text("requests").strip()) == curl
    grpc_text = run.text("grpc")
    assert grpc_text.startswith("version 1\n")
    assert floats(grpc_text) == pytest.approx([p[0] for p in curl["predictions"]], abs=1e-6)
    status = first_json(run.text("status"))
    assert status["model_version_status"][0]["version"] == "1"
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_01_quickstart_against_jupyter_with_the_extension(notebook_jupyter, runs_root):
    run = execute("01_quickstart.ipynb", runs_root / "01-jupyter", notebook_jupyter)
    check_quickstart(run)
    serve = run.text("serve")
    assert "serving in this kernel" not in serve
    assert f"REST:  {notebook_jupyter.api_url}/v1/models/quickstart:predict" in serve
    assert (
        f"REST:  http://127.0.0.1:{notebook_jupyter.rest_port}/v1/models/quickstart:predict  (standalone port)"
        in serve
    )
    assert f"gRPC:  127.0.0.1:{notebook_jupyter.grpc_port}" in serve
    assert (run.directory / "models" / "quickstart" / "1" / "saved_model.pb").exists()
    # The notebook's last cell unloaded the model from the Jupyter server.
    status, body = notebook_jupyter.request("GET", "tfserve/api/models")
    assert status == 200 and "quickstart" not in [m["name"] for m in body["models"]]


def test_01_quickstart_embedded(runs_root):
    run = execute("01_quickstart.ipynb", runs_root / "01-embedded", None)
    check_quickstart(run)
    assert "serving in this kernel at http://127.0.0.1:" in run.text("serve")


# ---------------------------------------------------------------------- 02 versions and labels
def test_02_versions_and_labels(notebook_jupyter, runs_root):
    run = execute("02_versions_and_labels.ipynb", runs_root / "02", notebook_jupyter)
    swap = run.text("swap")
    requests, errors = map(int, re.search(r"requests: (\d+), errors: (\d+)", swap).groups())
    assert errors == 0 and requests > 0
    by_v1, by_v2 = map(int, re.search(r"by version 1: (\d+), by version 2: (\d+)", swap).groups())
    assert by_v1 > 0 and by_v2 >= 50  # the client ran before and after the swap

    ab = {row["label"]: row for row in run.table("ab")}
    assert set(ab) == {"stable", "canary"}
    assert float(ab["canary"]["mse vs truth"]) < float(ab["stable"]["mse vs truth"])
    drift_mean = float(re.search(r"drift canary vs stable: mean ([\d.]+)", run.text("ab")).group(1))
    assert drift_mean > 0.01

    served, v1, v2 = floats(run.text("rollback"))
    assert served == pytest.approx(v1, abs=1e-4) and abs(served - v2) > 0.01


# ---------------------------------------------------------------------- 03 batching
def test_03_batching(notebook_jupyter, runs_root):
    from google.protobuf import text_format

    from jupyter_tfserve.core.extra_protos import BatchingParameters

    run = execute("03_batching.ipynb", runs_root / "03", notebook_jupyter)
    check_quiet_and_readable(run)
    rows = run.table("benchmark")
    assert set(rows[0]) >= {
        "batching",
        "concurrency",
        "throughput",
        "p50_ms",
        "p99_ms",
        "errors",
        "avg_batch_size",
        "queue_ms",
        "execution_ms",
    }
    assert sorted((row["concurrency"], row["batching"]) for row in rows) == [
        ("2", "off"),
        ("2", "on"),
        ("8", "off"),
        ("8", "on"),
    ]
    assert all(row["errors"] == "0" for row in rows)
    assert all(float(row["avg_batch_size"]) == 1.0 for row in rows if row["batching"] == "off")
    at_8 = {row["batching"]: row for row in rows if row["concurrency"] == "8"}
    assert float(at_8["on"]["avg_batch_size"]) > 1.0
    on, off = float(at_8["on"]["throughput"]), float(at_8["off"]["throughput"])
    assert at_8["on"]["throughput"].isdigit() and re.fullmatch(
        r"\d+\.\d\d", at_8["on"]["p99_ms"]
    )  # rounded to read
    ratio = (
        on / off
    )  # how much batching gains is for benchmarks/ to say; here, that it is reported right
    printed = float(
        re.search(
            r"concurrency 8: batched / unbatched throughput ([\d.]+)x", run.text("speedup")
        ).group(1)
    )
    # The table shows whole requests per second; the printed ratio comes from the unrounded data.
    assert printed == pytest.approx(ratio, abs=0.01 + ratio * (0.5 / on + 0.5 / off))

    histogram = run.table("histogram")
    assert {"batch size", "off", "on"} <= set(histogram[0])
    assert all(int(row["off"]) == 0 for row in histogram if row["batch size"] != "1")
    assert any(int(row["on"]) > 0 for row in histogram if row["batch size"] != "1")

    written = Path(
        re.search(r"written to (\S+batching_parameters\.txt)", run.text("tune")).group(1)
    )
    assert written.is_relative_to(
        run.directory / "tmp"
    )  # a temporary directory: nothing left beside the notebook
    assert not (run.directory / "batching_parameters.txt").exists()
    parameters = text_format.Parse(written.read_text(), BatchingParameters())
    assert parameters.max_batch_size.value in (1, 4, 8)
    assert parameters.batch_timeout_micros.value in (0, 2000)
    assert parameters.num_batch_threads.value == 1
    assert f"max_batch_size: {parameters.max_batch_size.value}" in run.text("parameters")


# ---------------------------------------------------------------------- 04 clients and protocols
def test_04_clients_and_protocols(notebook_jupyter, runs_root):
    run = execute("04_clients_and_protocols.ipynb", runs_root / "04", notebook_jupyter)
    row = first_json(run.text("row"))["predictions"]
    assert [r["price"] for r in row] == [95000.0, 140000.0]
    assert [r["area_per_room"] for r in row] == pytest.approx([80 / 3, 30.0])
    columnar = first_json(run.text("columnar"))["outputs"]
    assert columnar["price"] == [95000.0, 140000.0]
    assert columnar["area_per_room"] == pytest.approx([80 / 3, 30.0])

    b64 = run.text("b64")
    served, local = floats(b64)
    assert served == pytest.approx(local, abs=1e-4)
    assert "flipped image is the input mirrored: True" in b64

    classified, regressed = (json.loads(line) for line in run.text("classify").splitlines())
    assert [[label for label, _ in r] for r in classified["results"]] == [
        ["cheap", "expensive"]
    ] * 2
    cheap_first, expensive_second = classified["results"][0][0][1], classified["results"][1][1][1]
    assert cheap_first > 0.5 and expensive_second > 0.5
    assert regressed == {"results": [95000.0, 140000.0]}

    grpc_text = run.text("grpc")
    assert "predict price: [ 95000. 140000.]" in grpc_text
    assert "regress: [95000.0, 140000.0]" in grpc_text
    assert "classify: [[('cheap'," in grpc_text
    assert run.text("plaintext").strip() == "plaintext refused: UNAVAILABLE"
    metadata = run.text("metadata")
    assert "state: AVAILABLE" in metadata
    assert "'regress': 'tensorflow/serving/regress'" in metadata
    assert "'serving_default': 'tensorflow/serving/classify'" in metadata
    metrics = run.text("metrics")
    assert ':tensorflow:serving:request_count{model_name="houses",status="OK"}' in metrics
    assert 'API="Predict",entrypoint="GRPC",model_name="houses"' in metrics
    assert 'API="classify",entrypoint="REST",model_name="houses_examples"' in metrics
    assert not list(
        (run.directory / "tmp").glob("tfserve-clients-*")
    )  # removed by the notebook, key included


# ---------------------------------------------------------------------- 05 to production
def test_05_from_notebook_to_production(notebook_jupyter, runs_root):
    run = execute("05_from_notebook_to_production.ipynb", runs_root / "05", notebook_jupyter)
    assert (
        "predict_log: model 'circle', signature 'serving_default', inputs {'point': (16, 2)}"
        in run.text("warmup")
    )

    labels = run.text("labels")
    status = ast.literal_eval(labels.splitlines()[0])
    assert sorted((s["version"], s["state"]) for s in status["model_version_status"]) == [
        ("1", "AVAILABLE"),
        ("2", "AVAILABLE"),
    ]
    differences = [float(x) for x in re.findall(r"max \|served - in memory\| = (\S+)", labels)]
    assert len(differences) == 2 and max(differences) <= 1e-5
    assert labels.count("stable:") == labels.count("canary:") == 1

    models = run.directory / "models" / "circle"
    warmups = run.text("warmup-metric")
    for version in (1, 2):
        assert f'model_warmup_latency_count{{model_path="{models / str(version)}"}} 1.0' in warmups

    logged = run.text("request-log")
    assert "'enabled': True" in logged and "'sampling_rate': 1.0" in logged
    assert logged.count(" OK ") == 5 and "point: float32[1, 2]" in logged  # the last 5 records
    replayed = re.search(
        r"replay: (\d+) logged requests \(answered by version (\d+)\).*?(\d+) answers differ",
        run.text("replay"),
    )
    assert replayed and replayed.group(1) == "40" and replayed.group(2) == "1"

    optimized = run.text("optimize")
    assert "Exported circle as float16 TensorFlow Lite version 3" in optimized
    assert "Exported circle as int8 TensorFlow Lite version 4" in optimized
    sizes = [
        float(x) for x in re.findall(r"^(?:float32 SavedModel|\S+ TFLite)\s+(\S+)", optimized, re.M)
    ]
    assert (
        len(sizes) == 4 and sizes[1] < sizes[0] and sizes[3] < sizes[2]
    )  # each TFLite version is smaller
    served = run.text("tflite")
    for version, platform in ((1, "tensorflow"), (2, "tensorflow"), (3, "tflite"), (4, "tflite")):
        assert f"version {version}: AVAILABLE, platform {platform}" in served
    assert float(served.split("max |canary (float16) - model_v2 in memory| =")[1]) < 1e-2

    out_dir = Path(re.search(r"wrote \d+ files to (\S+):", run.text("deploy")).group(1))
    assert out_dir.is_relative_to(run.directory / "tmp")
    kinds = {}
    for manifest in out_dir.glob("*.yaml"):
        for document in yaml.safe_load_all(manifest.read_text()):
            kinds[document["kind"]] = document
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    } <= set(kinds)
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("tensorflow/serving:")
    assert "--allow_version_labels_for_unavailable_models=true" in container["args"]
    models_config = next(
        v
        for k, v in kinds["ConfigMap"]["data"].items()
        if k.endswith(".config") and "model_config_list" in v
    )
    assert 'key: "stable"' in models_config and 'key: "canary"' in models_config
    assert kinds["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 4
