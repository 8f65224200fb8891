"""Manifests for target ``k8s``: the official tensorflow/serving image behind a Service.

The objects are plain dicts in the shape of the Kubernetes API; the caller
writes them as YAML. They encode what running TF Serving on a cluster needs
and a default Deployment gets wrong: the config files mounted from a ConfigMap
(as a directory, so the 60 s config poll sees label changes without a restart),
thread pools sized to the CPU limit, probes that wait for model loading, no
replica taken down before its replacement is ready, and an HPA that owns the
replica count.
"""

from __future__ import annotations

import hashlib

from ..core.extra_protos import BatchingParameters, MonitoringConfig
from .options import CONFIG_MOUNT, GRPC_PORT, MODELS_MOUNT, REST_PORT, DeployOptions
from .repository import DEFAULT_METRICS_PATH, ModelServerConfig

MODELS_CONFIG = "models.config"
BATCHING_FILE = "batching_parameters.txt"
MONITORING_FILE = "monitoring.config"
CONTAINER = "tensorflow-serving"


def selector(options: DeployOptions) -> dict[str, str]:
    """Labels that pick this deployment's pods; stable across upgrades (a selector is immutable)."""
    return {
        "app.kubernetes.io/name": "tensorflow-serving",
        "app.kubernetes.io/instance": options.name,
    }


def labels(options: DeployOptions) -> dict[str, str]:
    return {**selector(options), "app.kubernetes.io/version": options.runtime_version}


def metadata(options: DeployOptions, name: str) -> dict:
    return {"name": name, "labels": labels(options)}


def config_map(options: DeployOptions, files: dict[str, str]) -> dict:
    """The ConfigMap holding models.config, monitoring.config and batching_parameters.txt."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(options, f"{options.name}-config"),
        "data": dict(files),
    }


def server_args(
    options: DeployOptions,
    *,
    models_config: ModelServerConfig | None,
    batching: BatchingParameters | None,
    monitoring: MonitoringConfig | None,
) -> list[str]:
    """tensorflow_model_server flags for the files in the ConfigMap.

    Labels in a config read at startup are refused by the official server until
    their versions are loaded, so a config with labels also sets
    ``--allow_version_labels_for_unavailable_models`` (it only affects labels
    being newly assigned, which at startup is all of them).
    """
    args = [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}"]
    if models_config is not None:
        args += [
            f"--model_config_file={CONFIG_MOUNT}/{MODELS_CONFIG}",
            "--model_config_file_poll_wait_seconds=60",
        ]
        if any(m.version_labels for m in models_config.model_config_list.config):
            args.append("--allow_version_labels_for_unavailable_models=true")
    if monitoring is not None:
        args.append(f"--monitoring_config_file={CONFIG_MOUNT}/{MONITORING_FILE}")
    if batching is not None:
        args += [
            "--enable_batching=true",
            f"--batching_parameters_file={CONFIG_MOUNT}/{BATCHING_FILE}",
        ]
    if options.intra_op_parallelism:
        args.append(f"--tensorflow_intra_op_parallelism={options.intra_op_parallelism}")
    return args


def resources(options: DeployOptions) -> dict:
    return {
        "requests": {"cpu": options.cpu, "memory": options.memory},
        "limits": {"cpu": options.cpu_limit, "memory": options.memory_limit},
    }


def probes(model_name: str) -> dict:
    """Startup, readiness and liveness on ``GET /v1/models/<name>``.

    The official server opens its REST port only after the initial models have
    loaded, so the status URL answering 200 means the pod can serve. The startup
    probe allows ten minutes for large models before liveness takes over.
    """
    get = {"path": f"/v1/models/{model_name}", "port": "http"}
    return {
        "startupProbe": {"httpGet": get, "periodSeconds": 10, "failureThreshold": 60},
        "readinessProbe": {"httpGet": get, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {
            "httpGet": get,
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
    }


def deployment(
    options: DeployOptions,
    *,
    models_config: ModelServerConfig,
    batching: BatchingParameters | None,
    monitoring: MonitoringConfig,
    config_files: dict[str, str],
) -> dict:
    """The Deployment of tensorflow/serving.

    ``replicas`` is left out on purpose: the HPA owns it, and a value here would
    reset the scaled count on every ``kubectl apply``. A hash of the batching and
    monitoring files in the pod annotations rolls the pods when those change (the
    server reads them only at startup), while models.config changes are picked
    up by the config poll without a restart.
    """
    annotations = {}
    prometheus = monitoring.prometheus_config
    if prometheus.enable:
        annotations.update(
            {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(REST_PORT),
                "prometheus.io/path": prometheus.path or DEFAULT_METRICS_PATH,
            }
        )
    startup_files = "".join(
        f"{name}\0{text}\0" for name, text in sorted(config_files.items()) if name != MODELS_CONFIG
    )
    annotations["jupyter-tfserve/startup-config-sha256"] = hashlib.sha256(
        startup_files.encode()
    ).hexdigest()

    volumes = [
        {"name": "config", "configMap": {"name": f"{options.name}-config"}},
        {
            "name": "tmp",
            "emptyDir": {},
        },  # the root file system is read-only; TensorFlow writes here
    ]
    mounts = [
        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if options.pvc:
        volumes.append(
            {
                "name": "models",
                "persistentVolumeClaim": {"claimName": options.pvc, "readOnly": True},
            }
        )
        mounts.append({"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True})

    container = {
        "name": CONTAINER,
        "image": options.image,
        "args": server_args(
            options, models_config=models_config, batching=batching, monitoring=monitoring
        ),
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "http", "containerPort": REST_PORT, "protocol": "TCP"},
        ],
        "resources": resources(options),
        **probes(models_config.model_config_list.config[0].name),
        "volumeMounts": mounts,
        "securityContext": CONTAINER_SECURITY,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(options, options.name),
        "spec": {
            "selector": {"matchLabels": selector(options)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels(options), "annotations": annotations},
                "spec": {
                    "automountServiceAccountToken": False,  # the server never talks to the API server
                    "securityContext": POD_SECURITY,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


# The official image runs as root by default; nothing in it needs to. Run it as nobody.
NON_ROOT_USER = 65534
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": NON_ROOT_USER,
    "runAsGroup": NON_ROOT_USER,
    "fsGroup": NON_ROOT_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def network_policy(options: DeployOptions) -> dict:
    """Only pods labelled ``options.client_label`` reach 8500/8501.

    TF Serving's gRPC port takes HandleReloadConfigRequest from anyone who can
    connect, so "anyone in the cluster" must not be able to.
    """
    key, value = options.client_label
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(options, options.name),
        "spec": {
            "podSelector": {"matchLabels": selector(options)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {key: value}}}],
                    "ports": [
                        {"protocol": "TCP", "port": GRPC_PORT},
                        {"protocol": "TCP", "port": REST_PORT},
                    ],
                }
            ],
        },
    }


def service(options: DeployOptions) -> dict:
    """A ClusterIP Service on 8500 (gRPC) and 8501 (REST), the ports clients already use."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(options, options.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(options),
            "ports": [
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                },
                {
                    "name": "http",
                    "port": REST_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
            ],
        },
    }


def autoscaler(options: DeployOptions) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(options, options.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.name},
            "minReplicas": options.min_replicas,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": options.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(options: DeployOptions) -> dict:
    """At most one pod evicted at a time; ``maxUnavailable`` rather than ``minAvailable``
    so that a single-replica deployment does not block node drains forever."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(options, options.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(options)}},
    }


def kustomization(options: DeployOptions, resources: list[str]) -> dict:
    result = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if options.namespace:
        result["namespace"] = options.namespace
    result["resources"] = list(resources)
    return result


def manifests(
    options: DeployOptions,
    *,
    models_config: ModelServerConfig,
    config_files: dict[str, str],
    batching: BatchingParameters | None,
    monitoring: MonitoringConfig,
) -> dict[str, dict]:
    """File name -> object, kustomization.yaml last."""
    objects = {
        "configmap.yaml": config_map(options, config_files),
        "deployment.yaml": deployment(
            options,
            models_config=models_config,
            batching=batching,
            monitoring=monitoring,
            config_files=config_files,
        ),
        "service.yaml": service(options),
        "hpa.yaml": autoscaler(options),
        "pdb.yaml": disruption_budget(options),
        "networkpolicy.yaml": network_policy(options),
    }
    objects["kustomization.yaml"] = kustomization(options, list(objects))
    return objects
