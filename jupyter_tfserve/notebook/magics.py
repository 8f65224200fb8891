"""``%tfserve``: export, serve, query and steer models from notebook cells.

One line magic (plus a cell form of ``predict``) with argparse subcommands::

    %tfserve export model --name mnist --sample x_test[:8]
    %tfserve serve mnist
    preds = %tfserve predict mnist x_test[:5]
    %tfserve label mnist stable 1 ; %tfserve label mnist canary 2
    %tfserve compare mnist stable 2 --data x_test[:512]

Configuration is traitlets (``%config TFServeMagics.rest_port = 9501``, or
``c.TFServeMagics.*`` in an IPython profile). The magic talks to the server it
discovers (the Jupyter extension that started this kernel, or ``url``), and
when there is none it starts one in this kernel (embedded mode) and says so
once. Results are rich objects (HTML tables, DataFrames) with clean text
fallbacks; a failure prints one line (``%tfserve --debug ...`` shows the
traceback) and marks the cell as failed, so "Run all" stops there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Enum, Float, Int, Unicode, observe
from traitlets.config import Configurable

from ..client.client import Client
from ..core.status import ServingError
from ..suggest import unknown_command
from . import render
from .optimize import OPTIMIZATIONS


class TFServeError(Exception):
    """A failure shown to the user as one line (IPython renders ``_render_traceback_`` instead of a traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"tfserve: {self}"]


class _HelpShown(Exception):
    """``--help`` printed the usage; nothing else to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise TFServeError(f"{message} (see '{self.prog} --help')")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            print(message, file=sys.stderr)
        raise _HelpShown()


def _unquote(text: str) -> str:
    """Arguments are split keeping quotes (so expressions stay intact); plain string args lose them."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="%tfserve",
        description="Export, serve and query TensorFlow models from a notebook. "
        "Separate several commands with ' ; '.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)

    p = sub.add_parser("export", help="write a live model as the next version of NAME")
    p.add_argument(
        "model", metavar="VAR", help="the model: a Keras model, tf.Module or concrete function"
    )
    p.add_argument(
        "--name", required=True, type=_unquote, help="model name (a directory under models_root)"
    )
    p.add_argument("--version", type=int, help="version number (default: the next one)")
    p.add_argument(
        "--signature",
        action="append",
        type=_unquote,
        metavar="KEY[=METHOD]",
        help="signature key; for a tf.Module, KEY=method or method (repeatable)",
    )
    p.add_argument(
        "--sample", metavar="DATA_VAR", help="sample input: writes warmup records and checks parity"
    )
    p.add_argument("--tolerance", type=float, help="parity tolerance (max abs difference)")
    p.add_argument(
        "--warmup-from",
        type=_unquote,
        metavar="PREFIX*",
        help="warm the new version up with a sample of a request log's requests",
    )
    p.add_argument(
        "--warmup-records",
        type=int,
        default=100,
        help="logged requests to warm up with (default 100)",
    )
    p.add_argument(
        "--optimize",
        choices=OPTIMIZATIONS,
        help="publish a TensorFlow Lite conversion instead, compared with the float32 SavedModel "
        "(int8 calibrates on --sample)",
    )

    p = sub.add_parser("serve", help="serve NAME (from models_root/NAME or PATH)")
    p.add_argument("name", type=_unquote)
    p.add_argument("path", nargs="?", type=_unquote, help="base path of the version directories")
    p.add_argument(
        "--policy", type=_unquote, help="latest:N | all | specific:1,2 (default latest:1)"
    )
    p.add_argument(
        "--no-wait", action="store_true", help="return without waiting for a version to load"
    )

    sub.add_parser("list", help="served models with versions, states and labels")

    p = sub.add_parser("status", help="the server (or one model's versions)")
    p.add_argument("name", nargs="?", type=_unquote)

    p = sub.add_parser(
        "predict",
        help="predict on DATA (an expression); %%%%tfserve predict NAME takes a JSON body",
    )
    p.add_argument("name", type=_unquote)
    p.add_argument(
        "data", nargs="*", metavar="DATA", help="a Python expression (array, DataFrame, dict, list)"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label", type=_unquote)
    p.add_argument("--signature", type=_unquote, help="signature name (default serving_default)")
    p.add_argument("--grpc", action="store_true", help="send over gRPC instead of REST")

    p = sub.add_parser("versions", help="every version of NAME with state, labels and errors")
    p.add_argument("name", type=_unquote)

    p = sub.add_parser("label", help="point LABEL of NAME at VERSION (or --remove it)")
    p.add_argument("name", type=_unquote)
    p.add_argument("label", type=_unquote)
    p.add_argument("version", type=int, nargs="?")
    p.add_argument("--remove", action="store_true")

    p = sub.add_parser("rollback", help="serve the previous version of NAME again")
    p.add_argument("name", type=_unquote)

    p = sub.add_parser("unload", help="stop serving NAME")
    p.add_argument("name", type=_unquote)

    p = sub.add_parser("inspect", help="signatures of a SavedModel path or a model name")
    p.add_argument("target", metavar="PATH_OR_NAME", type=_unquote)

    p = sub.add_parser("metrics", help="request counts and latencies (of NAME)")
    p.add_argument("name", nargs="?", type=_unquote)

    p = sub.add_parser(
        "logs", help="NAME's logged requests (its logging_config) as a table, newest last"
    )
    p.add_argument(
        "name", type=_unquote, help="model name, or a log prefix or glob such as /logs/mnist*"
    )
    p.add_argument("--since", type=_unquote, help="only records newer than this, e.g. 90s or 10m")
    p.add_argument("--limit", type=int, default=20, help="the most recent N records (default 20)")

    p = sub.add_parser("snippet", help="curl, requests and gRPC code for NAME, ready to paste")
    p.add_argument("name", type=_unquote)

    sub.add_parser(
        "dashboard", help="a live table of models with unload/label/rollback/reload buttons"
    )

    p = sub.add_parser(
        "compare", help="send the same DATA to two versions or labels of NAME: agreement, latency"
    )
    p.add_argument("name", type=_unquote)
    p.add_argument(
        "a", metavar="A", type=_unquote, help="a version number or a label (the reference)"
    )
    p.add_argument(
        "b", metavar="B", type=_unquote, help="a version number or a label (the candidate)"
    )
    p.add_argument(
        "--data", required=True, metavar="EXPR", help="rows to send: a Python expression"
    )
    p.add_argument("--signature", type=_unquote, help="signature name (default serving_default)")
    p.add_argument("--grpc", action="store_true", help="send over gRPC instead of REST")
    p.add_argument(
        "--requests",
        type=int,
        default=20,
        help="one-row requests per side for latency (default 20)",
    )

    p = sub.add_parser(
        "deploy", help="Kubernetes or KServe manifests for the served models (nothing applied)"
    )
    p.add_argument("names", nargs="*", metavar="NAME", type=_unquote)
    p.add_argument("--target", choices=("k8s", "kserve"), default="k8s")
    p.add_argument("--out", required=True, type=_unquote, help="output directory")
    p.add_argument(
        "--storage-uri", type=_unquote, help="s3://, gs:// or hdfs:// prefix for base paths"
    )
    p.add_argument("--pvc", type=_unquote, help="PersistentVolumeClaim holding the synced models")
    p.add_argument("--min-replicas", type=int, default=1)
    p.add_argument("--max-replicas", type=int, default=3)
    p.add_argument("--batching-parameters-file", type=_unquote)
    p.add_argument("--force", action="store_true", help="write into a directory that holds files")

    from ..bench.cli import add_benchmark_arguments, add_tune_arguments

    p = sub.add_parser(
        "benchmark", help="load-test NAME from worker processes: throughput, latency, batch sizes"
    )
    add_benchmark_arguments(p, text=_unquote)
    p = sub.add_parser(
        "tune", help="find NAME's batching parameters with the most throughput under --p99"
    )
    add_tune_arguments(p, text=_unquote)
    return parser


def split_commands(line: str) -> list[list[str]]:
    """Tokens of each ``;``-separated command.

    Whitespace splits tokens only outside quotes and brackets, so Python
    expressions (``x[:5, :]``, ``df[['a', 'b']]``) stay one token each.
    """
    commands: list[list[str]] = [[]]
    token: list[str] = []
    depth, quote, escaped = 0, "", False

    def flush() -> None:
        if token:
            commands[-1].append("".join(token))
            token.clear()

    for char in line:
        if quote:
            token.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            token.append(char)
        elif char in "([{":
            depth += 1
            token.append(char)
        elif char in ")]}":
            depth -= 1
            token.append(char)
        elif depth <= 0 and char.isspace():
            flush()
        elif depth <= 0 and char == ";":
            flush()
            commands.append([])
        else:
            token.append(char)
    if quote or depth:
        raise TFServeError(
            f"cannot parse the command line: unclosed {'quote' if quote else 'bracket'}"
        )
    flush()
    cleaned = []
    for command in commands:
        if command and command[0] in ("%tfserve", "tfserve"):
            command = command[1:]
        if command:
            cleaned.append(command)
    return cleaned


@magics_class
class TFServeMagics(Magics, Configurable):
    """The ``%tfserve`` magic. Configure with ``%config TFServeMagics.<trait> = value``."""

    url = Unicode(
        "", help="Server URL (default: discover the Jupyter extension, else embedded)"
    ).tag(config=True)
    token = Unicode("", help="Token for url (default: discovered or $TFSERVE_TOKEN)").tag(
        config=True
    )
    models_root = Unicode("", help="Where exports go (default: what the server reports)").tag(
        config=True
    )
    embedded = Enum(
        ["auto", "always", "never"],
        "auto",
        help="Start a server in this kernel: when none is found (auto), always, or never",
    ).tag(config=True)
    rest_port = Int(8501, help="Embedded mode's REST port (a free one if taken)").tag(config=True)
    grpc_port = Int(8500, help="Embedded mode's gRPC port (a free one if taken; 0 = off)").tag(
        config=True
    )
    poll_seconds = Float(1.0, help="Embedded mode: how often model directories are re-read").tag(
        config=True
    )
    enable_batching = Bool(
        False, help="Embedded mode: batch requests server-side (set before the server starts)"
    ).tag(config=True)
    tolerance = Float(1e-4, help="Export parity check: largest allowed abs difference").tag(
        config=True
    )
    load_timeout = Float(300.0, help="Seconds to wait for a model version to load").tag(config=True)
    request_timeout = Float(60.0, help="Seconds to wait for one answer from the server").tag(
        config=True
    )
    progress = Enum(["auto", "widget", "text", "none"], "auto", help="Progress display").tag(
        config=True
    )
    debug = Bool(False, help="Show full tracebacks instead of one-line errors").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, config=shell.config if shell is not None else None, **kwargs)
        self._client: Client | None = None
        self._parser = build_parser()

    @observe("url", "token", "embedded", "rest_port", "grpc_port", "request_timeout")
    def _forget_client(self, change) -> None:
        self._client = None

    # ------------------------------------------------------------------ entry point
    @line_cell_magic
    def tfserve(self, line: str = "", cell: str | None = None):
        """Export, serve and query TensorFlow models. ``%tfserve --help`` lists the subcommands."""
        commands = split_commands(line)
        if not commands:
            self._parser.print_help()
            return None
        if cell is not None and len(commands) > 1:
            raise TFServeError("the cell form takes one command")
        result = None
        for index, tokens in enumerate(commands):
            if index and result is not None:
                self._display(result)
            result = self._run(tokens, cell)
        return result

    def _run(self, tokens: list[str], cell: str | None):
        commands = _subcommands(self._parser)
        if tokens and not tokens[0].startswith("-") and tokens[0] not in commands:
            raise TFServeError(unknown_command(tokens[0], commands))
        try:
            args = self._parser.parse_args(tokens)
        except _HelpShown:
            return None
        if args.command is None:
            self._parser.print_help()
            return None
        try:
            return getattr(self, f"_cmd_{args.command}")(args, cell)
        except TFServeError:
            raise
        except Exception as exc:
            if self.debug or args.debug:
                raise
            raise TFServeError(_one_line(exc)) from None

    @staticmethod
    def _display(result) -> None:
        from IPython.display import display

        display(result)

    # ------------------------------------------------------------------ connection
    def client(self) -> Client:
        """The client for the server this kernel uses; starts the embedded server when there is none."""
        if self._client is None:
            from .api import connect

            endpoint = connect(
                self.url or None,
                self.token or None,
                embedded=self.embedded,
                rest_port=self.rest_port,
                grpc_port=self.grpc_port,
                models_root=self.models_root,
                poll_seconds=self.poll_seconds,
                enable_batching=self.enable_batching,
            )
            self._client = Client(endpoint=endpoint, timeout=self.request_timeout)
        return self._client

    def resolved_models_root(self) -> str:
        """Where exports go: the trait, else the server's models_root, else the default (nothing started)."""
        from ..client.endpoints import models_root_for

        endpoint = self._client.endpoint if self._client is not None else None
        if endpoint is None and self.url:
            endpoint = self.client().endpoint
        return models_root_for(self.models_root or None, endpoint)

    def _eval(self, expression: str, what: str):
        try:
            return self.shell.ev(expression)
        except Exception as exc:
            raise TFServeError(
                f"cannot evaluate {what} {expression!r}: {type(exc).__name__}: {exc}"
            ) from None

    def _progress(self, title: str):
        from ..client.progress import Progress

        return Progress(title, self.progress)

    # ------------------------------------------------------------------ subcommands
    def _cmd_export(self, args, cell):
        from .export import export

        model = self._eval(args.model, "VAR")
        sample = self._eval(args.sample, "--sample") if args.sample else None
        progress = self._progress(f"export {args.name}")
        try:
            result = export(
                model,
                args.name,
                version=args.version,
                signatures=args.signature,
                sample=sample,
                models_root=self.resolved_models_root(),
                tolerance=self.tolerance if args.tolerance is None else args.tolerance,
                optimize=args.optimize,
                progress=progress,
                warmup_from=args.warmup_from,
                warmup_records=args.warmup_records,
            )
        except Exception as exc:
            progress.fail(_one_line(exc))
            raise
        progress.done(f"version {result.version}")
        self._follow_swap(result)
        return result

    def _follow_swap(self, result) -> None:
        """When NAME is already served from this directory, wait for the server to pick up the new version."""
        if self._client is None:
            return
        # The listing, not GET models/{name}: an unserved name is the common case here, not an error.
        entry = next((m for m in self._client.models() if m["name"] == result.name), None)
        if entry is None:
            return
        if os.path.realpath(entry.get("base_path", "")) != os.path.realpath(
            os.path.dirname(result.path)
        ):
            return
        if "latest" not in entry.get("policy", {}):
            result.notes.append(
                f"{result.name} is served with policy {entry.get('policy')}: version "
                f"{result.version} is served once the policy includes it"
            )
            return
        try:
            self._client.wait_for(result.name, result.version, timeout=self.load_timeout)
        except ServingError as exc:  # the export stands; the server keeps serving what it served
            result.notes.append(
                f"the server did not take version {result.version}: {_one_line(exc)}"
            )
            return
        result.notes.append(f"the server now serves {result.name} version {result.version}")

    def _cmd_serve(self, args, cell):
        from .api import serve

        client = self.client()
        path = args.path or os.path.join(self.resolved_models_root(), args.name)
        if args.no_wait:
            serve(args.name, path, policy=args.policy, client=client, wait=False)
            return render.Text(f"Loading {args.name} from {os.path.abspath(path)}")
        progress = self._progress(f"serve {args.name}")
        fractions = {"START": 0.1, "LOADING": 0.4, "AVAILABLE": 1.0}

        def on_status(statuses):
            if statuses:
                top = statuses[0]
                progress.update(
                    fractions.get(top["state"], 0.5), f"version {top['version']} {top['state']}"
                )

        try:
            version = serve(
                args.name,
                path,
                policy=args.policy,
                client=client,
                timeout=self.load_timeout,
                on_status=on_status,
            )
        except Exception as exc:
            progress.fail(_one_line(exc))
            raise
        progress.done(f"version {version} AVAILABLE")
        return self._serving_text(args.name, version)

    def _serving_text(self, name: str, version: int) -> render.Text:
        from .snippets import curl_line, example_body

        endpoint = self.client().endpoint
        url = f"{endpoint.url}/v1/models/{name}:predict"
        lines = [f"REST:  {url}"]
        # Outside clients (and curl) are better served by the standalone port: TF Serving's URLs.
        # In Jupyter it takes Jupyter's token too (c.TFServe.ports_require_token).
        curl_url, token = url, bool(endpoint.token)
        if endpoint.standalone_url:
            curl_url = f"{endpoint.standalone_url}/v1/models/{name}:predict"
            lines.append(f"REST:  {curl_url}  (standalone port)")
        if endpoint.grpc_target:
            lines.append(f"gRPC:  {endpoint.grpc_target}  (model_spec.name = {name!r})")
        try:
            body = example_body(self.client().signature(name))
        except ServingError:  # unloaded meanwhile: the addresses are still right
            body = {"instances": []}
        lines.append("curl:  " + curl_line(curl_url, body, token))
        return render.Text("\n".join(lines), title=f"Serving {name} version {version}")

    def _cmd_list(self, args, cell):
        rows = []
        for model in self.client().models():
            versions = model.get("versions", [])
            serving = [str(v["version"]) for v in versions if v["state"] == "AVAILABLE"]
            others = [f"{v['version']} {v['state']}" for v in versions if v["state"] != "AVAILABLE"]
            rows.append(
                [
                    model["name"],
                    ", ".join(serving) or "-",
                    ", ".join(others),
                    _labels_text(model.get("labels", {})),
                    _policy_text(model.get("policy")),
                    model.get("base_path", ""),
                ]
            )
        return render.Table(
            ["model", "serving", "other versions", "labels", "policy", "base_path"],
            rows,
            title=f"Models at {self.client().url}",
        )

    def _cmd_status(self, args, cell):
        client = self.client()
        if args.name:
            rows = []
            for entry in client.status(args.name):
                status = entry.get("status", {})
                rows.append(
                    [
                        entry["version"],
                        entry["state"],
                        status.get("error_code", "OK"),
                        status.get("error_message", ""),
                    ]
                )
            return render.Table(
                ["version", "state", "error_code", "error_message"],
                rows,
                title=f"{args.name} at {client.url}",
            )
        endpoint = client.endpoint
        models = client.models()
        rows = [
            [
                "mode",
                "embedded in this kernel"
                if endpoint.source == "embedded"
                else f"server ({endpoint.source})",
            ],
            ["REST", endpoint.url],
            *([["REST (standalone)", endpoint.standalone_url]] if endpoint.standalone_url else []),
            ["gRPC", endpoint.grpc_target or "off"],
            ["models_root", self.resolved_models_root()],
            ["models", ", ".join(m["name"] for m in models) or "none"],
        ]
        try:
            info = client.info()
        except ServingError:  # a server without the info route still has a status
            info = {}
        if "uptime_seconds" in info:
            rows.append(["uptime", f"{float(info['uptime_seconds']):.0f} s"])
        if info.get("version"):
            rows.append(["version", str(info["version"])])
        return render.Table(["setting", "value"], rows, title="tfserve")

    def _cmd_predict(self, args, cell):
        client = self.client()
        if cell is not None:
            if args.data:
                raise TFServeError("the cell form takes the request body from the cell, not DATA")
            if args.grpc:
                raise TFServeError("the cell form sends its JSON body over REST; drop --grpc")
            return client.predict_json(
                args.name,
                _json_body(cell),
                version=args.version,
                label=args.label,
                signature=args.signature,
            )
        if not args.data:
            raise TFServeError(
                "predict needs DATA (a Python expression), or use %%tfserve predict with a JSON body"
            )
        data = self._eval(" ".join(args.data), "DATA")
        return client.predict(
            args.name,
            data,
            version=args.version,
            label=args.label,
            signature=args.signature,
            grpc=args.grpc,
        )

    def _cmd_versions(self, args, cell):
        model = self.client().model(args.name)
        labels_of: dict[int, list[str]] = {}
        for label, version in model.get("labels", {}).items():
            labels_of.setdefault(int(version), []).append(label)
        rows = [
            [
                v["version"],
                v["state"],
                ", ".join(sorted(labels_of.get(int(v["version"]), []))),
                v.get("error_message", ""),
                v.get("path", ""),
            ]
            for v in model.get("versions", [])
        ]
        return render.Table(
            ["version", "state", "labels", "error", "path"],
            rows,
            title=f"{args.name} ({_policy_text(model.get('policy'))})",
        )

    def _cmd_label(self, args, cell):
        client = self.client()
        if args.remove:
            client.remove_label(args.name, args.label)
            return render.Text(f"{args.name}: label {args.label!r} removed")
        if args.version is None:
            raise TFServeError("label needs a VERSION (or --remove)")
        client.set_label(args.name, args.label, args.version)
        return render.Text(f"{args.name}: label {args.label!r} -> version {args.version}")

    def _cmd_rollback(self, args, cell):
        client = self.client()
        answer = client.rollback(args.name)
        version = int(answer["version"])
        client.wait_for(args.name, version, latest=True, timeout=self.load_timeout)
        return render.Text(
            f"{args.name}: rolled back from version {answer.get('from_version')} to {version} "
            f"(pinned with policy specific:{version}; '%tfserve serve {args.name}' goes forward again)"
        )

    def _cmd_unload(self, args, cell):
        self.client().unload(args.name)
        return render.Text(f"{args.name}: unloaded")

    def _cmd_deploy(self, args, cell):
        """Deploy exactly what is served: its config (labels, policies) and its AVAILABLE versions."""
        from google.protobuf import text_format

        from ..core.config import ModelServerConfig
        from ..deploy import DeployError, deploy

        client = self.client()
        config = text_format.Parse(client.config(), ModelServerConfig())
        served = {
            m["name"]: [
                int(v["version"]) for v in m.get("versions", []) if v["state"] == "AVAILABLE"
            ]
            for m in client.models()
        }
        try:
            return deploy(
                config,
                out_dir=args.out,
                target=args.target,
                models=args.names or None,
                storage_uri=args.storage_uri,
                pvc=args.pvc,
                min_replicas=args.min_replicas,
                max_replicas=args.max_replicas,
                batching=args.batching_parameters_file,
                served_versions={name: versions for name, versions in served.items() if versions},
                force=args.force,
            )
        except DeployError as exc:  # said with the magic's flags, not deploy()'s keyword arguments
            raise TFServeError(exc.cli_message()) from None

    def _cmd_inspect(self, args, cell):
        from .export import signature_table

        path = os.path.abspath(os.path.expanduser(args.target))
        if not os.path.isdir(path):
            try:
                version, signatures = self.client().metadata(args.target)
            except ServingError as exc:
                path = os.path.join(self.resolved_models_root(), args.target)
                if not os.path.isdir(path):
                    raise TFServeError(
                        f"{args.target!r} is neither a SavedModel path nor a served model ({exc.message})"
                    ) from None
            else:
                table = signature_table(signatures)
                table.title = f"{args.target} version {version} (served)"
                return table
        directory = _saved_model_dir(path)
        table = signature_table(_local_signatures(directory))
        table.title = directory
        return table

    def _cmd_metrics(self, args, cell):
        snapshot = self.client().metrics(args.name)
        return render.metrics_table(snapshot.get("metrics", snapshot), args.name)

    def _cmd_logs(self, args, cell):
        from .logs import read_logs

        prefix = args.name
        if not (prefix.startswith("/") or "*" in prefix):
            prefix = self.client().logging(args.name)["filename_prefix"]
            if not prefix:
                raise TFServeError(
                    f"model {args.name} does not log its requests: give it a logging_config "
                    f"(or PUT /tfserve/api/models/{args.name}/logging)"
                )
        return read_logs(prefix, since=args.since, limit=args.limit).drop(columns="record")

    def _cmd_snippet(self, args, cell):
        from .snippets import snippets

        client = self.client()
        signature = client.signature(args.name)
        return snippets(client.endpoint, args.name, signature)

    def _bench_kwargs(self, args, to_kwargs) -> dict:
        """The bench CLI's keyword arguments, with this kernel's server and ``--data`` evaluated here."""
        data = None
        if args.data not in ("zeros", "random") and not os.path.exists(args.data):
            data = self._eval(args.data, "--data")
        kwargs = to_kwargs(args, data)
        if not args.url:
            endpoint = self.client().endpoint
            kwargs.update(
                url=endpoint.url,
                token=args.token or endpoint.token or None,
                grpc=args.grpc or endpoint.grpc_target,
            )
        kwargs["progress"] = None if args.quiet or self.progress == "none" else self.progress
        return kwargs

    def _cmd_benchmark(self, args, cell):
        from ..bench.api import benchmark
        from ..bench.cli import benchmark_kwargs

        result = benchmark(args.model, **self._bench_kwargs(args, benchmark_kwargs))
        if args.csv:
            result.to_csv(args.csv)
        if result.levels:
            self._display(result.plot(args.plot))
        if result.compared:
            self._display(result.compare())
        return result

    def _cmd_tune(self, args, cell):
        from ..bench.cli import tune_kwargs
        from ..bench.tuner import tune

        result = tune(args.model, **self._bench_kwargs(args, tune_kwargs))
        if result.trials:
            self._display(result.plot(args.plot))
        return result

    def _cmd_compare(self, args, cell):
        from ..client.progress import widgets_available
        from .compare import compare

        data = self._eval(args.data, "--data")
        result = compare(
            args.name,
            args.a,
            args.b,
            data,
            client=self.client(),
            grpc=args.grpc,
            signature=args.signature,
            requests=args.requests,
        )
        return result.widget() if widgets_available() else result

    def _cmd_dashboard(self, args, cell):
        from .widgets import Dashboard

        return Dashboard(self.client())


# ---------------------------------------------------------------------- helpers


# Lines of TensorFlow runtime errors that locate the failure in the graph rather than explain it.
_TF_NOISE = (
    "Graph execution error",
    "Detected at node",
    "<stack traces unavailable>",
    "[[",
    "File ",
)


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line, without TensorFlow's graph-location boilerplate."""
    message = exc.message if isinstance(exc, ServingError) else str(exc) or type(exc).__name__
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TF_NOISE)]
    text = " ".join(useful or lines)
    return text if len(text) <= 600 else text[:600] + " ..."


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    """The subcommand names of ``parser``, in the order they were added."""
    return next(
        list(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )


def _labels_text(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _policy_text(policy) -> str:
    if not policy:
        return "latest:1"
    if "latest" in policy:
        return f"latest:{policy['latest'].get('num_versions', 1)}"
    if "specific" in policy:
        return "specific:" + ",".join(str(v) for v in policy["specific"].get("versions", []))
    return "all" if "all" in policy else str(policy)


def _json_body(cell: str):
    text = cell.strip()
    if not text:
        raise TFServeError(
            'the cell is empty: put a JSON request body in it, e.g. {"instances": [[1.0]]}'
        )
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TFServeError(f"the cell is not JSON: {exc}") from None
    return {"instances": body} if isinstance(body, list) else body


def _saved_model_dir(path: str) -> str:
    """The SavedModel at ``path``, or the newest version directory under it."""
    from ..core import source

    if os.path.exists(os.path.join(path, "saved_model.pb")) or os.path.exists(
        os.path.join(path, "saved_model.pbtxt")
    ):
        return path
    versions = source.list_versions(path)
    if not versions:
        raise TFServeError(f"{path} holds no SavedModel and no version directories")
    return versions[max(versions)]


def _local_signatures(directory: str):
    from ..core.platforms.tensorflow import read_meta_graph
    from ..core.signatures import SignatureInfo

    meta_graph = read_meta_graph(directory, ["serve"])
    return {
        k: SignatureInfo.from_proto(k, s)
        for k, s in sorted(meta_graph.signature_def.items())
        if not k.startswith("__")
    }


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(TFServeMagics(ipython))
    magics = ipython.magics_manager.registry["TFServeMagics"]
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


def unload_ipython_extension(ipython) -> None:
    from . import embedded

    magics = ipython.magics_manager.registry.pop("TFServeMagics", None)
    if magics is not None and magics in ipython.configurables:
        ipython.configurables.remove(magics)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("tfserve", None)
    embedded.stop()
