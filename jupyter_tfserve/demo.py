"""``tfserve demo``: TF Serving's quickstart model, exported locally and served, ready for curl.

The model is ``half_plus_two`` (y = 0.5 x + 2), the one TF Serving's own
quickstart uses, so the printed curl line and its answer match that guide.
"""

from __future__ import annotations

import os
import sys

from .paths import default_models_root

DEMO_MODEL = "half_plus_two"


def export_half_plus_two(base_path: str, version: int = 1) -> str:
    """Write the demo SavedModel (idempotent: an existing version is kept)."""
    path = os.path.join(base_path, str(version))
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    from .core.native_logs import quiet_python_logs
    from .core.platforms.tensorflow import tensorflow

    tf = tensorflow()

    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.a * x + self.b}

    module = HalfPlusTwo()
    staging = f"{path}.tmp-{os.getpid()}"
    with quiet_python_logs():
        tf.saved_model.save(module, staging, signatures={"serving_default": module.serve})
    os.replace(staging, path)  # atomic: the file-system poller never sees half a model
    return path


# The server flags that make sense for the demo; the rest keep TF Serving's defaults.
DEMO_FLAGS = (
    "port",
    "rest_api_port",
    "rest_api_host",
    "grpc_host",
    "model_name",
    "model_base_path",
    "enable_batching",
)


def main(argv: list[str]) -> int:
    from .cli import build_parser, options_from_args, serve_forever, taken_port
    from .core.options import usage_problem

    parser = build_parser("tfserve demo", only=DEMO_FLAGS)
    parser.description = (
        "Export the half_plus_two demo model and serve it on 8500 (gRPC) and 8501 (REST)."
    )
    parser.set_defaults(rest_api_port=8501, model_name=DEMO_MODEL)
    args = parser.parse_args(argv)
    if not args.model_base_path:
        args.model_base_path = os.path.join(default_models_root(), DEMO_MODEL)
    options = options_from_args(args)
    problem = usage_problem(options) or taken_port(options)
    if problem:
        print(f"tfserve demo: {problem}", file=sys.stderr)
        return 2
    print(f"Exporting the demo model to {args.model_base_path} ...", flush=True)
    export_half_plus_two(args.model_base_path)

    def banner(server) -> str:
        url = f"http://localhost:{server.rest_port}/v1/models/{options.model_name}:predict"
        return (
            f"\nServing {options.model_name}. Try:\n"
            f"  curl -d '{{\"instances\": [1.0, 2.0, 5.0]}}' -X POST {url}\n"
            '  # {"predictions": [2.5, 3.0, 4.5]}\n'
            "Press Ctrl+C to stop."
        )

    return serve_forever(options, banner)
