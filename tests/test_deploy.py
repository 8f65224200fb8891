"""Deploy and sync: manifests valid for Kubernetes 1.30 and KServe, configs that survive the trip.

This module imports no TensorFlow and needs no cluster: the model repositories here are fake
version directories (the manifests and the copy only look at files), and every
manifest is read back from disk and checked against Kubernetes' own schemas
(kubernetes-validate) or KServe's CRD schema (vendored fixture).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from jupyter_tfserve.core.extra_protos import BatchingParameters, MonitoringConfig
from jupyter_tfserve.deploy import (
    ConfigError,
    OutputDirError,
    ReplicaError,
    StorageError,
    UnknownModelError,
    VersionConflictError,
    deploy,
    sync,
    verify,
)
from jupyter_tfserve.deploy import cli as deploy_cli
from jupyter_tfserve.deploy import syncing as sync_module
from jupyter_tfserve.deploy.errors import DeployError, ResourceError
from jupyter_tfserve.deploy.options import serving_tag

# The Kubernetes version every k8s manifest is validated for (a schema set
# kubernetes-validate ships).
K8S_VERSION = "1.30.0"
KSERVE_SCHEMA = (
    Path(__file__).parent / "fixtures" / "kserve" / "inferenceservice-v1beta1.schema.json"
)


def write_fake_version(version_dir: Path, name: str, version: int) -> None:
    """A SavedModel-shaped directory with distinct bytes per model and version.

    Deploy and sync only read files, so this stands in for a real export, with
    a warmup record file and the empty ``assets/`` directory a real one may have.
    """
    (version_dir / "variables").mkdir(parents=True)
    (version_dir / "assets").mkdir()
    (version_dir / "assets.extra").mkdir()
    (version_dir / "saved_model.pb").write_bytes(f"graph {name} {version}".encode() * 50)
    (version_dir / "variables" / "variables.index").write_bytes(f"index {version}".encode())
    (version_dir / "variables" / "variables.data-00000-of-00001").write_bytes(
        bytes(range(256)) * (version + 1)
    )
    (version_dir / "assets.extra" / "tf_serving_warmup_requests").write_bytes(
        f"warmup {name} {version}".encode()
    )


def write_model_repository(root, models, *, write_version=write_fake_version) -> Path:
    """Writes a model repository and its models.config under ``root``; returns the config path.

    ``models`` maps a model name to a dict with ``versions`` (list of ints), and
    optionally ``policy`` (``None`` for TF Serving's default, ``"all"``, an int N
    for latest N, or a list for specific versions), ``labels`` ({label: version})
    and ``dirnames`` ({version: "0005"} for directory names with leading zeros).
    ``write_version(version_dir, name, version)`` fills one version directory; the
    default writes a fake SavedModel layout. A round-trip test that serves the
    synced repository with ``tfserve`` can pass a writer that exports a real one.
    """
    root = Path(root)
    config = model_server_config_pb2.ModelServerConfig()
    for name, spec in models.items():
        base = root / name
        base.mkdir(parents=True, exist_ok=True)
        dirnames = spec.get("dirnames", {})
        for version in spec["versions"]:
            write_version(base / dirnames.get(version, str(version)), name, version)
        entry = config.model_config_list.config.add(
            name=name, base_path=str(base.absolute()), model_platform="tensorflow"
        )
        policy = spec.get("policy")
        if policy == "all":
            entry.model_version_policy.all.SetInParent()
        elif isinstance(policy, int):
            entry.model_version_policy.latest.num_versions = policy
        elif isinstance(policy, list):
            entry.model_version_policy.specific.versions.extend(policy)
        for label, version in spec.get("labels", {}).items():
            entry.version_labels[label] = version
    path = root / "models.config"
    path.write_text(text_format.MessageToString(config))
    return path


MODELS = {
    "half_plus_two": {"versions": [1, 2, 3], "policy": 2, "labels": {"stable": 2, "canary": 3}},
    "counter": {"versions": [1, 5], "policy": [5], "dirnames": {5: "0005"}},
}


@pytest.fixture
def repo(tmp_path):
    return write_model_repository(tmp_path / "repo", MODELS)


@pytest.fixture
def batching_file(tmp_path):
    params = BatchingParameters()
    params.max_batch_size.value = 64
    params.batch_timeout_micros.value = 2000
    params.num_batch_threads.value = 4
    params.allowed_batch_sizes.extend([8, 32, 64])
    path = tmp_path / "batching_parameters.txt"
    path.write_text(text_format.MessageToString(params))
    return path


def load_dir(out: Path) -> dict[str, dict]:
    """Every YAML file the kustomization lists, read back from disk."""
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    return {f: yaml.safe_load((out / f).read_text()) for f in kustomization["resources"]}


def by_kind(objects: dict[str, dict]) -> dict[str, dict]:
    return {obj["kind"]: obj for obj in objects.values()}


def container(objects) -> dict:
    return by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"][0]


# --- target k8s ---------------------------------------------------------------------------


def test_every_k8s_manifest_validates_for_the_stated_kubernetes_version(
    repo, batching_file, tmp_path
):
    out = tmp_path / "out"
    report = deploy(repo, out_dir=out, pvc="models", batching=batching_file)
    objects = load_dir(out)
    assert set(by_kind(objects)) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for obj in objects.values():
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    # Strict mode is what catches a misspelt field: prove it is on.
    broken = json.loads(json.dumps(by_kind(objects)["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    # The kustomization ties together exactly the manifests written, and nothing else.
    written = {p.name for p in report.files}
    assert set(objects) | {"kustomization.yaml", "models.local.config"} == written
    assert all(p.parent == out and p.is_file() for p in report.files)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for kustomize) not installed")
def test_the_pod_runs_locked_down_and_only_labelled_pods_reach_its_ports(repo, tmp_path):
    """Finding 6: no securityContext, and TF Serving's open gRPC reload reachable from every pod."""
    out = tmp_path / "out"
    deploy(repo, out_dir=out, pvc="models", client_label="team.example/model-client=yes")
    objects = by_kind(load_dir(out))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["automountServiceAccountToken"] is False
    assert (
        pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    )
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert (
        security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    )
    assert security["capabilities"] == {"drop": ["ALL"]} and security["runAsNonRoot"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert writable == {"/tmp"} and empty_dirs == {"tmp"}
    policy = objects["NetworkPolicy"]
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == objects["Deployment"]["spec"]["selector"]["matchLabels"]
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"team.example/model-client": "yes"}}}]
    assert sorted(p["port"] for p in rule["ports"]) == [8500, 8501]
    with pytest.raises(DeployError, match="client_label"):
        deploy(repo, out_dir=tmp_path / "bad", pvc="models", client_label="no value")


def test_kustomize_renders_the_directory_into_valid_objects(repo, tmp_path):
    out = tmp_path / "out"
    deploy(repo, out_dir=out, storage_uri="s3://bucket/models", namespace="serving")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(out)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert len(docs) == 6  # with the NetworkPolicy
    for doc in docs:
        assert doc["metadata"]["namespace"] == "serving"
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_deployment_runs_the_matching_official_image_with_the_config_files(
    repo, batching_file, tmp_path
):
    out = tmp_path / "out"
    report = deploy(
        repo,
        out_dir=out,
        pvc="models",
        batching=batching_file,
        cpu="1500m",
        cpu_limit="2500m",
        memory="1Gi",
        memory_limit="3Gi",
        min_replicas=2,
        max_replicas=7,
    )
    objects = by_kind(load_dir(out))
    c = container(load_dir(out))
    expected_image = f"tensorflow/serving:{metadata.version('tensorflow')}"
    assert c["image"] == report.image == expected_image
    assert c["args"] == [
        "--port=8500",
        "--rest_api_port=8501",
        "--model_config_file=/etc/tfserve/models.config",
        "--model_config_file_poll_wait_seconds=60",
        "--allow_version_labels_for_unavailable_models=true",
        "--monitoring_config_file=/etc/tfserve/monitoring.config",
        "--enable_batching=true",
        "--batching_parameters_file=/etc/tfserve/batching_parameters.txt",
        f"--tensorflow_intra_op_parallelism={math.ceil(2.5)}",
    ]
    assert c["resources"] == {
        "requests": {"cpu": "1500m", "memory": "1Gi"},
        "limits": {"cpu": "2500m", "memory": "3Gi"},
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/v1/models/half_plus_two", "port": "http"}
    deployment = objects["Deployment"]
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8501"
    assert annotations["prometheus.io/path"] == "/monitoring/prometheus/metrics"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "models",
        "persistentVolumeClaim": {"claimName": "models", "readOnly": True},
    } in volumes
    assert sorted(p["port"] for p in objects["Service"]["spec"]["ports"]) == [8500, 8501]
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 7)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_without_labels_batching_or_thread_matching_the_flags_are_left_out(tmp_path):
    config = write_model_repository(tmp_path / "repo", {"plain": {"versions": [4]}})
    out = tmp_path / "out"
    deploy(config, out_dir=out, storage_uri="gs://bucket/m", intra_op_parallelism=None)
    args = container(load_dir(out))["args"]
    assert not [
        a
        for a in args
        if a.startswith(
            (
                "--allow_version_labels",
                "--enable_batching",
                "--batching_parameters",
                "--tensorflow_intra",
            )
        )
    ]
    assert "batching_parameters.txt" not in by_kind(load_dir(out))["ConfigMap"]["data"]


def test_configmap_files_parse_back_with_labels_policies_and_batching_intact(
    repo, batching_file, tmp_path
):
    out = tmp_path / "out"
    deploy(repo, out_dir=out, pvc="models", batching=batching_file)
    data = by_kind(load_dir(out))["ConfigMap"]["data"]

    served = text_format.Parse(data["models.config"], model_server_config_pb2.ModelServerConfig())
    source = text_format.Parse(repo.read_text(), model_server_config_pb2.ModelServerConfig())
    assert [m.name for m in served.model_config_list.config] == ["half_plus_two", "counter"]
    for got, want in zip(
        served.model_config_list.config, source.model_config_list.config, strict=True
    ):
        assert got.base_path == f"/models/{want.name}"
        assert got.model_version_policy == want.model_version_policy
        assert dict(got.version_labels) == dict(want.version_labels)
        assert got.model_platform == "tensorflow"
    assert dict(served.model_config_list.config[0].version_labels) == {"stable": 2, "canary": 3}

    batching = text_format.Parse(data["batching_parameters.txt"], BatchingParameters())
    assert batching == text_format.Parse(batching_file.read_text(), BatchingParameters())
    assert batching.max_batch_size.value == 64 and list(batching.allowed_batch_sizes) == [8, 32, 64]
    monitoring = text_format.Parse(data["monitoring.config"], MonitoringConfig())
    assert monitoring.prometheus_config.enable


def test_storage_uri_becomes_each_models_base_path(repo, tmp_path):
    out = tmp_path / "out"
    report = deploy(repo, out_dir=out, storage_uri="gs://bucket/serving/")
    data = by_kind(load_dir(out))["ConfigMap"]["data"]
    served = text_format.Parse(data["models.config"], model_server_config_pb2.ModelServerConfig())
    assert [m.base_path for m in served.model_config_list.config] == [
        "gs://bucket/serving/half_plus_two",
        "gs://bucket/serving/counter",
    ]
    volumes = by_kind(load_dir(out))["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["config", "tmp"]
    assert "STAGING_DIR" in report.sync_command


def test_served_versions_pin_what_sync_copies(repo, tmp_path):
    out = tmp_path / "out"
    report = deploy(repo, out_dir=out, pvc="models", served_versions={"half_plus_two": [1, 2, 3]})
    assert report.models[0].versions == (1, 2, 3)
    local = text_format.Parse(
        (out / "models.local.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    assert list(local.model_config_list.config[0].model_version_policy.specific.versions) == [
        1,
        2,
        3,
    ]
    # The cluster keeps the policy as configured; only the sync input is pinned.
    cluster = by_kind(load_dir(out))["ConfigMap"]["data"]["models.config"]
    assert "num_versions: 2" in cluster


def test_models_already_in_a_bucket_keep_their_uri(repo, tmp_path):
    config = text_format.Parse(repo.read_text(), model_server_config_pb2.ModelServerConfig())
    config.model_config_list.config[1].base_path = "gs://team-bucket/counter"
    report = deploy(config, out_dir=tmp_path / "mixed", pvc="models")
    assert [(m.location, m.versions) for m in report.models] == [
        ("/models/half_plus_two", (2, 3)),
        ("gs://team-bucket/counter", None),
    ]
    assert "as found at the base path" in str(report)

    remote_only = model_server_config_pb2.ModelServerConfig()
    remote_only.model_config_list.config.add().CopyFrom(config.model_config_list.config[1])
    report = deploy(remote_only, out_dir=tmp_path / "remote")
    assert report.sync_command is None
    assert not (tmp_path / "remote" / "models.local.config").exists()

    remote_only.model_config_list.config[0].base_path = "file:///srv/counter"
    with pytest.raises(StorageError, match="file:///srv/counter"):
        deploy(remote_only, out_dir=tmp_path / "unreadable")
    assert not (tmp_path / "unreadable").exists()


# --- target kserve ------------------------------------------------------------------------


def test_inference_services_validate_against_the_kserve_crd_schema(repo, batching_file, tmp_path):
    schema = json.loads(KSERVE_SCHEMA.read_text())
    out = tmp_path / "out"
    report = deploy(
        repo,
        out_dir=out,
        target="kserve",
        storage_uri="s3://bucket/m",
        min_replicas=0,
        max_replicas=4,
        canary_traffic_percent=25,
        batching=batching_file,
    )
    objects = load_dir(out)
    services = {
        o["metadata"]["name"]: o for o in objects.values() if o["kind"] == "InferenceService"
    }
    assert set(services) == {"half-plus-two", "counter"}
    for obj in services.values():
        jsonschema.validate(obj, schema)
    kubernetes_validate.validate(by_kind(objects)["ConfigMap"], K8S_VERSION, strict=True)

    half = services["half-plus-two"]["spec"]["predictor"]
    assert half["canaryTrafficPercent"] == 25
    assert (half["minReplicas"], half["maxReplicas"]) == (0, 4)
    assert half["tensorflow"]["storageUri"] == "s3://bucket/m/half_plus_two"
    assert half["tensorflow"]["runtimeVersion"] == metadata.version("tensorflow")
    assert "--enable_batching=true" in half["tensorflow"]["args"]
    assert "canaryTrafficPercent" not in services["counter"]["spec"]["predictor"]
    assert any("clients call /v1/models/half-plus-two" in n for n in report.notes)
    # The vendored schema rejects what KServe would: a misspelt field, an out-of-range canary.
    for mutate in (
        lambda p: p.update(canaryTrafficPercent=150),
        lambda p: p["tensorflow"].update(storageURI="s3://x"),
    ):
        broken = json.loads(json.dumps(services["counter"]))
        mutate(broken["spec"]["predictor"])
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_kserve_reads_a_pvc_through_a_pvc_uri(repo, tmp_path):
    out = tmp_path / "out"
    deploy(repo, out_dir=out, target="kserve", pvc="models", models=["counter"])
    objects = load_dir(out)
    assert list(objects) == ["inferenceservice-counter.yaml"]
    tensorflow = objects["inferenceservice-counter.yaml"]["spec"]["predictor"]["tensorflow"]
    assert tensorflow["storageUri"] == "pvc://models/counter"
    assert "volumeMounts" not in tensorflow


# --- report and CLI -----------------------------------------------------------------------


def test_report_lists_files_versions_image_replicas_and_commands(repo, tmp_path):
    out = tmp_path / "out dir"
    report = deploy(repo, out_dir=out, pvc="models", max_replicas=5, sync_target="/mnt/models")
    text = str(report)
    assert [m.versions for m in report.models] == [(2, 3), (5,)]
    assert report.apply_command == f"kubectl apply -k '{out}'"
    assert report.sync_command == (
        f"tfserve sync --model_config_file '{out}/models.local.config' /mnt/models"
    )
    for needle in (
        "deployment.yaml",
        "half_plus_two: versions 2, 3",
        "canary=3",
        report.image,
        "replicas: 1..5",
        report.apply_command,
        report.sync_command,
    ):
        assert needle in text
    html = report._repr_html_()
    assert "<td>half_plus_two</td>" in html
    assert f"kubectl apply -k &#x27;{out}&#x27;" in html  # escaped, not raw markup


def test_cli_deploy_and_sync(repo, tmp_path, capsys):
    out = tmp_path / "out"
    code = deploy_cli.main(
        [
            "deploy",
            "counter",
            "--model_config_file",
            str(repo),
            "--out",
            str(out),
            "--pvc",
            "models",
            "--max-replicas",
            "4",
        ]
    )
    assert code == 0
    assert "kubectl apply -k" in capsys.readouterr().out
    hpa = by_kind(load_dir(out))["HorizontalPodAutoscaler"]
    assert hpa["spec"]["maxReplicas"] == 4
    code = deploy_cli.main(
        ["sync", str(tmp_path / "vol"), "--model_config_file", str(out / "models.local.config")]
    )
    assert code == 0
    assert (tmp_path / "vol" / "counter" / "0005" / "saved_model.pb").is_file()
    assert not (tmp_path / "vol" / "half_plus_two").exists()


def test_cli_bad_input_exits_2_with_a_message_and_writes_nothing(repo, tmp_path, capsys):
    out = tmp_path / "out"
    code = deploy_cli.main(
        [
            "deploy",
            "--model_config_file",
            str(repo),
            "--out",
            str(out),
            "--pvc",
            "models",
            "--min-replicas",
            "5",
            "--max-replicas",
            "2",
        ]
    )
    assert code == 2
    # said with the flags the user typed, not deploy()'s keyword arguments
    assert "--min-replicas (5) is greater than --max-replicas (2)" in capsys.readouterr().err
    assert not out.exists()
    assert deploy_cli.main(["deploy"]) == 2  # no --out: argparse usage error, not an exception


def test_cli_without_storage_names_the_flags_that_fix_it(repo, tmp_path, capsys):
    code = deploy_cli.main(
        ["deploy", "--model_config_file", str(repo), "--out", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "pass --storage-uri s3://...|gs://...|hdfs://... or --pvc <claim name>" in err, err
    assert "storage_uri=" not in err and "pvc=" not in err


# --- bad input ----------------------------------------------------------------------------


BAD_INPUT = {
    "unknown model": (
        {"models": ["half_plus_two", "nope"], "pvc": "models"},
        UnknownModelError,
        "unknown model name(s) 'nope'",
    ),
    "ftp storage": ({"storage_uri": "ftp://host/models"}, StorageError, "TF Serving reads"),
    "gcs misspelt": ({"storage_uri": "gcs://bucket/models"}, StorageError, "TF Serving reads"),
    "no bucket": ({"storage_uri": "s3:///models"}, StorageError, "names no bucket"),
    "local path only": ({}, StorageError, "cannot read the local path"),
    "min > max": (
        {"pvc": "models", "min_replicas": 4, "max_replicas": 3},
        ReplicaError,
        "greater than max_replicas",
    ),
    "hpa floor": ({"pvc": "models", "min_replicas": 0}, ReplicaError, "at least 1"),
    "limit below request": (
        {"pvc": "models", "memory": "2Gi", "memory_limit": "1Gi"},
        ResourceError,
        "below the request",
    ),
    "bad quantity": ({"pvc": "models", "cpu": "two"}, ResourceError, "CPU quantity"),
    "bad target": ({"pvc": "models", "target": "helm"}, DeployError, "choose one of"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_before_anything_is_written(repo, tmp_path, case):
    kwargs, error, message = BAD_INPUT[case]
    out = tmp_path / "out"
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        deploy(repo, out_dir=out, **kwargs)
    assert isinstance(info.value, ValueError)
    assert not out.exists()


def test_non_empty_out_dir_is_refused_unless_forced(repo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="already holds files"):
        deploy(repo, out_dir=out, pvc="models")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    deploy(repo, out_dir=out, pvc="models", force=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "deployment.yaml").is_file()


def test_config_problems_are_named(repo, tmp_path):
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(
        ConfigError, match="Error parsing text-format tensorflow.serving.ModelServerConfig"
    ):
        deploy(bad, out_dir=tmp_path / "o1", pvc="models")
    config = text_format.Parse(repo.read_text(), model_server_config_pb2.ModelServerConfig())
    config.model_config_list.config[0].version_labels["old"] = 1  # version 1 is not served
    with pytest.raises(ConfigError, match="label 'old' points at version 1"):
        deploy(config, out_dir=tmp_path / "o2", pvc="models")
    config.model_config_list.config.add().CopyFrom(config.model_config_list.config[1])
    with pytest.raises(ConfigError, match="Illegal to list model counter multiple times"):
        deploy(config, out_dir=tmp_path / "o3", pvc="models")
    assert not any((tmp_path / d).exists() for d in ("o1", "o2", "o3"))


def test_serving_tag_follows_tensorflow_releases():
    assert serving_tag("2.21.0") == "2.21.0"
    assert serving_tag("2.21.0rc1") == "2.21.0-rc1"
    with pytest.raises(DeployError, match="pass image="):
        serving_tag("2.22.0.dev20250101")


# --- sync ---------------------------------------------------------------------------------


def test_sync_copies_exactly_the_served_versions_with_warmup_records(repo, tmp_path):
    target = tmp_path / "volume"
    report = sync(repo, target)
    assert [(v.model, v.path.name, v.action) for v in report.versions] == [
        ("half_plus_two", "2", "copied"),
        ("half_plus_two", "3", "copied"),
        ("counter", "0005", "copied"),
    ]
    assert sorted(p.name for p in (target / "half_plus_two").iterdir()) == [
        "2",
        "2.sha256",
        "3",
        "3.sha256",
    ]
    for model, version in (("half_plus_two", "2"), ("half_plus_two", "3"), ("counter", "0005")):
        src, dst = repo.parent / model / version, target / model / version
        warmup = dst / "assets.extra" / "tf_serving_warmup_requests"
        assert (
            warmup.read_bytes()
            == (src / "assets.extra" / "tf_serving_warmup_requests").read_bytes()
        )
        assert (dst / "assets").is_dir()  # empty directories survive
        verify(dst)
    again = sync(repo, target)
    assert {v.action for v in again.versions} == {"unchanged"}
    assert sum(v.bytes_copied for v in again.versions) == 0


def test_sync_refuses_to_overwrite_a_differing_version_unless_forced(repo, tmp_path):
    target = tmp_path / "volume"
    sync(repo, target)
    tampered = target / "half_plus_two" / "3" / "variables" / "variables.index"
    tampered.write_bytes(b"another export reusing version 3")
    untouched = target / "half_plus_two" / "2" / "saved_model.pb"
    before = untouched.stat().st_mtime_ns
    with pytest.raises(
        VersionConflictError, match=r"half_plus_two/3: 1 differ \(variables/variables.index\)"
    ):
        sync(repo, target)
    assert tampered.read_bytes() == b"another export reusing version 3"
    assert untouched.stat().st_mtime_ns == before
    assert not list(target.glob("*/.*partial"))
    with pytest.raises(VersionConflictError):
        verify(target / "half_plus_two" / "3")

    report = sync(repo, target, force=True)
    assert {v.path.name: v.action for v in report.versions}["3"] == "replaced"
    verify(target / "half_plus_two" / "3")
    assert (
        tampered.read_bytes()
        == (repo.parent / "half_plus_two/3/variables/variables.index").read_bytes()
    )


def test_sync_resumes_after_an_interruption(repo, tmp_path, monkeypatch):
    target = tmp_path / "volume"
    real_copy = shutil.copyfile
    calls = []

    def copy_then_die(src, dst):
        if len(calls) == 2:
            raise OSError("connection to the volume lost")
        calls.append(src)
        return real_copy(src, dst)

    monkeypatch.setattr(sync_module.shutil, "copyfile", copy_then_die)
    with pytest.raises(OSError, match="volume lost"):
        sync(repo, target, models=["half_plus_two"])
    partial = target / "half_plus_two" / ".2.partial"
    assert partial.is_dir() and not (target / "half_plus_two" / "2").exists()
    assert len([p for p in partial.rglob("*") if p.is_file()]) == 2

    monkeypatch.setattr(sync_module.shutil, "copyfile", real_copy)
    report = sync(repo, target, models=["half_plus_two"])
    assert [(v.path.name, v.action, v.files_reused) for v in report.versions] == [
        ("2", "resumed", 2),
        ("3", "copied", 0),
    ]
    assert not partial.exists()
    verify(target / "half_plus_two" / "2")


def test_sync_resume_recopies_corrupt_files_and_drops_stale_ones(repo, tmp_path):
    target = tmp_path / "volume"
    src = repo.parent / "counter" / "0005"
    partial = target / "counter" / ".0005.partial"
    shutil.copytree(src, partial)
    (partial / "saved_model.pb").write_bytes(b"truncated")
    (partial / "leftover.tmp").write_bytes(b"from an older attempt")
    report = sync(repo, target, models=["counter"])
    (entry,) = report.versions
    assert (entry.action, entry.files_reused) == ("resumed", 3)
    assert entry.bytes_copied == (src / "saved_model.pb").stat().st_size
    assert not (target / "counter" / "0005" / "leftover.tmp").exists()
    verify(target / "counter" / "0005")


def test_sync_accepts_a_name_to_base_path_mapping(tmp_path):
    write_model_repository(tmp_path / "repo", {"m": {"versions": [1, 2]}})
    report = sync({"m": tmp_path / "repo" / "m"}, tmp_path / "volume")
    assert [v.version for v in report.versions] == [2]  # TF Serving's default: latest 1
    with pytest.raises(UnknownModelError):
        sync({"m": tmp_path / "repo" / "m"}, tmp_path / "volume", models=["x"])


def test_sync_recovers_from_a_replace_interrupted_between_its_renames(repo, tmp_path, monkeypatch):
    target = tmp_path / "volume"
    sync(repo, target, models=["counter"])
    version = target / "counter" / "0005"
    (version / "saved_model.pb").write_bytes(b"differs")
    real_rename = sync_module.os.rename
    renames = []

    def rename_once_then_die(src, dst):
        if renames:
            raise OSError("killed")
        renames.append(dst)
        return real_rename(src, dst)

    monkeypatch.setattr(sync_module.os, "rename", rename_once_then_die)
    with pytest.raises(OSError, match="killed"):
        sync(repo, target, models=["counter"], force=True)
    monkeypatch.setattr(sync_module.os, "rename", real_rename)
    assert not version.exists() and (target / "counter" / ".0005.replaced").is_dir()

    (entry,) = sync(repo, target, models=["counter"]).versions
    assert entry.action == "resumed"
    assert sorted(p.name for p in (target / "counter").iterdir()) == ["0005", "0005.sha256"]
    verify(version)
