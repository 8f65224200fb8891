"""Deploy round trip: the ConfigMap's files, served by our own server over the synced repository.

The official server reads exactly these files in the cluster; our server stands
in for it here. Same config + same synced versions must give the same answers,
labels and batching as the notebook machine served.
"""

from __future__ import annotations

import json
import urllib.request

import savedmodels
import yaml
from google.protobuf import text_format
from ports import free_port

from jupyter_tfserve.core.config import ModelServerConfig
from jupyter_tfserve.core.extra_protos import BatchingParameters
from jupyter_tfserve.deploy import deploy, sync
from jupyter_tfserve.deploy.options import MODELS_MOUNT
from jupyter_tfserve.server import ModelServer, ServerOptions


def predict(port: int, model: str, suffix: str = "") -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/{model}{suffix}:predict",
        data=json.dumps({"instances": [[1.0], [4.0]]}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_synced_repository_serves_the_same_predictions_labels_and_batching(model_repo, tmp_path):
    base = model_repo("half_plus_two", name="hpt", versions=(1,))
    savedmodels.half_plus_two(base, 2, slope=1.0)  # canary answers differently from stable
    config = ModelServerConfig()
    model = config.model_config_list.config.add(name="hpt", base_path=base)
    model.model_version_policy.all.SetInParent()
    model.version_labels["stable"] = 1
    model.version_labels["canary"] = 2
    batching = BatchingParameters()
    batching.max_batch_size.value = 8
    batching.batch_timeout_micros.value = 500
    batching.allowed_batch_sizes.extend([2, 4, 8])

    manifests = tmp_path / "manifests"
    deploy(config, out_dir=manifests, pvc="models", batching=batching)
    config_map = yaml.safe_load((manifests / "configmap.yaml").read_text())
    files = config_map["data"]
    cluster_config = text_format.Parse(files["models.config"], ModelServerConfig())
    cluster_batching = text_format.Parse(files["batching_parameters.txt"], BatchingParameters())
    assert cluster_batching == batching
    (served,) = cluster_config.model_config_list.config
    assert dict(served.version_labels) == {"stable": 1, "canary": 2}
    assert served.model_version_policy.WhichOneof("policy_choice") == "all"

    # The PVC mounted at MODELS_MOUNT is a local directory here.
    volume = tmp_path / "volume"
    sync(config, volume)
    served.base_path = served.base_path.replace(MODELS_MOUNT, str(volume), 1)
    batching_file = tmp_path / "batching_parameters.txt"
    batching_file.write_text(files["batching_parameters.txt"])

    original = ModelServer(ServerOptions(port=0, rest_api_port=free_port()), config=config)
    cluster = ModelServer(
        ServerOptions(
            port=0,
            rest_api_port=free_port(),
            enable_batching=True,
            batching_parameters_file=str(batching_file),
        ),
        config=cluster_config,
    )
    with original, cluster:
        for suffix in ("", "/labels/stable", "/labels/canary", "/versions/1"):
            assert predict(cluster.rest_port, "hpt", suffix) == predict(
                original.rest_port, "hpt", suffix
            )
        assert predict(cluster.rest_port, "hpt", "/labels/stable") == {
            "predictions": [[2.5], [4.0]]
        }
        assert predict(cluster.rest_port, "hpt", "/labels/canary") == {
            "predictions": [[3.0], [6.0]]
        }
        assert cluster.batcher is not None
        assert cluster.batcher.parameters("hpt")["max_batch_size"] == 8
