"""Deploy options, checked before anything is generated.

Everything the user can get wrong without reading a file (target, storage
location, replica range, resource quantities, names) is checked here, so that
``deploy()`` fails with one clear message before it touches the output directory.
Also the image tag, read from the installed TensorFlow's metadata: importing
TensorFlow would take seconds for a version string.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

from .errors import DeployError, ReplicaError, ResourceError, StorageError

TARGETS = ("k8s", "kserve")
# Schemes the tensorflow/serving image reads natively as a base_path.
STORAGE_SCHEMES = ("s3", "gs", "hdfs")
MODELS_MOUNT = "/models"
CONFIG_MOUNT = "/etc/tfserve"
GRPC_PORT = 8500
REST_PORT = 8501

# A DNS-1035 label: what Service names (and KServe InferenceService names) must be.
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CPU = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m?)$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_FACTOR = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_TF_DISTRIBUTIONS = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tensorflow-intel",
    "tensorflow-macos",
)


def cpu_cores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("500m", "2", "1.5") in cores."""
    match = _CPU.match(str(quantity))
    if not match:
        raise ResourceError(
            f"cpu {quantity!r} is not a Kubernetes CPU quantity such as '500m' or '2'"
        )
    value = float(match.group(1))
    return value / 1000 if match.group(2) else value


def memory_bytes(quantity: str) -> float:
    """A Kubernetes memory quantity ("512Mi", "2Gi", "1G") in bytes."""
    match = _MEMORY.match(str(quantity))
    if not match:
        raise ResourceError(
            f"memory {quantity!r} is not a Kubernetes memory quantity such as '512Mi' or '2Gi'"
        )
    return float(match.group(1)) * _MEMORY_FACTOR[match.group(2)]


def tensorflow_version() -> str:
    """The installed TensorFlow version, from package metadata (no TensorFlow import)."""
    for dist in _TF_DISTRIBUTIONS:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise DeployError("TensorFlow is not installed here; pass image='tensorflow/serving:<tag>'")


def serving_tag(tf_version: str) -> str:
    """The tensorflow/serving tag released with this TensorFlow ("2.21.0", "2.21.0-rc1").

    TF Serving ships one release per TensorFlow release with the same number, so
    the matching image loads every SavedModel the notebook's TensorFlow wrote.
    """
    match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:rc(\d+))?$", tf_version)
    if not match:
        raise DeployError(
            f"no tensorflow/serving release matches TensorFlow {tf_version}; "
            "pass image='tensorflow/serving:<tag>'"
        )
    major, minor, patch, rc = match.groups()
    tag = f"{major}.{minor}.{patch or 0}"
    return f"{tag}-rc{rc}" if rc is not None else tag


def check_storage_uri(uri: str) -> str:
    """A base URI TF Serving can read; returned without a trailing slash."""
    parts = urlsplit(uri)
    if parts.scheme not in STORAGE_SCHEMES or "://" not in uri:
        raise StorageError(
            f"storage URI {uri!r}: TF Serving reads {', '.join(s + '://' for s in STORAGE_SCHEMES)} "
            "base paths; copy the models there, or use a PersistentVolumeClaim (pvc=...)"
        )
    if not parts.netloc:
        raise StorageError(f"storage URI {uri!r} names no bucket or host")
    return uri.rstrip("/")


@dataclass(frozen=True)
class DeployOptions:
    """Validated options of one deploy; build with :func:`make_options`."""

    target: str
    name: str
    namespace: str | None
    image: str
    runtime_version: str
    storage_uri: str | None
    pvc: str | None
    min_replicas: int
    max_replicas: int
    cpu: str
    memory: str
    cpu_limit: str
    memory_limit: str
    intra_op_parallelism: int | None
    target_cpu_utilization: int
    canary_traffic_percent: int
    client_label: tuple[str, str] = ("tfserve-client", "true")

    def model_location(self, model: str, source: str) -> str:
        """Where the cluster reads one model: as is when the config already names a
        URI, else under the storage URI or on the PVC."""
        from .repository import is_remote

        if is_remote(source):
            return source
        if self.storage_uri:
            return f"{self.storage_uri}/{model}"
        if self.pvc:
            return (
                f"pvc://{self.pvc}/{model}"
                if self.target == "kserve"
                else f"{MODELS_MOUNT}/{model}"
            )
        return source


_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def make_options(
    *,
    target: str = "k8s",
    name: str = "tfserve",
    namespace: str | None = None,
    image: str | None = None,
    storage_uri: str | None = None,
    pvc: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 3,
    cpu: str = "1",
    memory: str = "2Gi",
    cpu_limit: str | None = None,
    memory_limit: str | None = None,
    intra_op_parallelism: int | str | None = "auto",
    target_cpu_utilization: int = 70,
    canary_traffic_percent: int = 10,
    client_label: str = "tfserve-client=true",
) -> DeployOptions:
    """Checks every option and fills the derived ones (image, limits, thread count)."""
    if target not in TARGETS:
        raise DeployError(f"target {target!r}: choose one of {', '.join(TARGETS)}")
    for what, value in (("name", name), ("namespace", namespace), ("pvc", pvc)):
        if value is not None and (not _DNS_LABEL.match(value) or len(value) > 63):
            raise DeployError(
                f"{what} {value!r} must be a DNS label: lower-case letters, digits and '-', "
                "starting with a letter, at most 63 characters"
            )
    if storage_uri and pvc:
        raise StorageError("give either storage_uri or pvc, not both")
    if storage_uri:
        storage_uri = check_storage_uri(storage_uri)

    for what, value in (("min_replicas", min_replicas), ("max_replicas", max_replicas)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReplicaError(f"{what} must be an integer, not {value!r}")
    floor = 0 if target == "kserve" else 1  # KServe scales to zero; an HPA cannot.
    if min_replicas < floor:
        raise ReplicaError(f"min_replicas must be at least {floor} for target {target}")
    if min_replicas > max_replicas:
        raise ReplicaError(
            f"min_replicas ({min_replicas}) is greater than max_replicas ({max_replicas})"
        )
    if max_replicas < 1:
        raise ReplicaError("max_replicas must be at least 1")

    cpu, memory = str(cpu), str(memory)
    cpu_limit = str(cpu_limit) if cpu_limit is not None else cpu
    memory_limit = str(memory_limit) if memory_limit is not None else memory
    if cpu_cores(cpu_limit) < cpu_cores(cpu):
        raise ResourceError(f"cpu limit {cpu_limit} is below the request {cpu}")
    if memory_bytes(memory_limit) < memory_bytes(memory):
        raise ResourceError(f"memory limit {memory_limit} is below the request {memory}")
    if cpu_cores(cpu) <= 0 or memory_bytes(memory) <= 0:
        raise ResourceError("cpu and memory requests must be above zero")

    if intra_op_parallelism == "auto":
        # TF sizes its pools by the node's cores, not the container's quota: on a
        # 64-core node a 2-CPU pod would run 64 threads and thrash its CFS quota.
        threads = max(1, math.ceil(cpu_cores(cpu_limit)))
    elif intra_op_parallelism is None or intra_op_parallelism is False:
        threads = None
    elif (
        isinstance(intra_op_parallelism, int)
        and not isinstance(intra_op_parallelism, bool)
        and intra_op_parallelism > 0
    ):
        threads = intra_op_parallelism
    else:
        raise DeployError(
            f"intra_op_parallelism {intra_op_parallelism!r}: use 'auto', None or a positive integer"
        )

    if not 0 < canary_traffic_percent < 100:
        raise DeployError("canary_traffic_percent must be between 1 and 99")
    if not 0 < target_cpu_utilization <= 100:
        raise DeployError("target_cpu_utilization must be between 1 and 100")

    key, sep, value = client_label.partition("=")
    if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
        raise DeployError(
            f"client_label {client_label!r} must be key=value, a Kubernetes label that marks the pods "
            "allowed to reach the server's ports"
        )

    if image is None:
        tag = serving_tag(tensorflow_version())
        image = f"tensorflow/serving:{tag}"
    else:
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    return DeployOptions(
        target=target,
        name=name,
        namespace=namespace,
        image=image,
        runtime_version=tag,
        storage_uri=storage_uri,
        pvc=pvc,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpu=cpu,
        memory=memory,
        cpu_limit=cpu_limit,
        memory_limit=memory_limit,
        intra_op_parallelism=threads,
        target_cpu_utilization=target_cpu_utilization,
        canary_traffic_percent=canary_traffic_percent,
        client_label=(key, value),
    )


# The settings a deploy is made from: make_options' keywords, the flags' dests.
SETTINGS = tuple(inspect.signature(make_options).parameters)
