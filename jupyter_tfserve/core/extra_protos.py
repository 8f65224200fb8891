"""Message classes for the three TF Serving config files that tensorflow-serving-api does not ship.

The pip package carries ``ModelServerConfig`` and the API protos, but not
``BatchingParameters`` (``--batching_parameters_file``), ``MonitoringConfig``
(``--monitoring_config_file``) or ``SSLConfig`` (``--ssl_config_file``).
Users already have those files in TF Serving's text format, so we describe the
same messages (same field names and wrapper types, which is all text format
sees) and build the classes at import time with protobuf's own descriptor
machinery: no protoc step, no generated file to keep in sync, and
``google.protobuf.text_format`` parses the user's file exactly as TF Serving
would, wrapper syntax (``max_batch_size { value: 128 }``) included.
"""

from __future__ import annotations

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    wrappers_pb2,  # noqa: F401  (registers wrappers.proto in the pool)
)

_F = descriptor_pb2.FieldDescriptorProto
# TF Serving's own package, so messages and parse errors name the types users know.
_PACKAGE = "tensorflow.serving"

# (message, [(field, number, type, label, type_name)])
_MESSAGES = {
    "BatchingParameters": [
        ("max_batch_size", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
        (
            "batch_timeout_micros",
            2,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".google.protobuf.Int64Value",
        ),
        (
            "max_enqueued_batches",
            3,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".google.protobuf.Int64Value",
        ),
        ("num_batch_threads", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.StringValue"),
        ("allowed_batch_sizes", 6, _F.TYPE_INT64, _F.LABEL_REPEATED, None),
        ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
        (
            "enable_large_batch_splitting",
            8,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".google.protobuf.BoolValue",
        ),
        (
            "max_execution_batch_size",
            9,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".google.protobuf.Int64Value",
        ),
    ],
    "PrometheusConfig": [
        ("enable", 1, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
        ("path", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "MonitoringConfig": [
        (
            "prometheus_config",
            1,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            f".{_PACKAGE}.PrometheusConfig",
        ),
    ],
    "SSLConfig": [
        ("server_key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("server_cert", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("custom_ca", 3, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("client_verify", 4, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
    ],
}


def build_messages(
    file_name: str, package: str, messages: dict, dependencies=()
) -> dict[str, type]:
    """Message classes for ``messages`` (as :data:`_MESSAGES`), added once to protobuf's default pool."""
    file = descriptor_pb2.FileDescriptorProto(
        name=file_name, package=package, syntax="proto3", dependency=list(dependencies)
    )
    for message_name, fields in messages.items():
        message = file.message_type.add(name=message_name)
        for name, number, type_, label, type_name in fields:
            field = message.field.add(name=name, number=number, type=type_, label=label)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.Default()
    try:
        pool.Add(file)
    except TypeError:  # already added by an earlier import of this module
        pass
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in messages
    }


_CLASSES = build_messages(
    "jupyter_tfserve/tfserving_config.proto",
    _PACKAGE,
    _MESSAGES,
    ["google/protobuf/wrappers.proto"],
)
BatchingParameters = _CLASSES["BatchingParameters"]
PrometheusConfig = _CLASSES["PrometheusConfig"]
MonitoringConfig = _CLASSES["MonitoringConfig"]
SSLConfig = _CLASSES["SSLConfig"]
