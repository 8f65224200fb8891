"""What each ``%tfserve`` subcommand does: one method per subcommand, over the magic's client.

The magic (:mod:`jupyter_tfserve.notebook.magics`) parses a command and calls
the method named after it with the parsed arguments and the cell (None for the
line form). Methods return rich objects; the magic displays them.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

from IPython.display import display

from ...core.status import ServingError
from .. import render
from . import views
from .errors import TFServeError, one_line
from .saved_models import local_signatures, saved_model_dir


class Commands:
    """The subcommands of one magic: ``%tfserve serve mnist`` runs ``Commands(magic).serve(args, cell)``."""

    def __init__(self, magic):
        self.magic = magic

    def export(self, args, cell):
        from ..export import export

        model = self.magic.evaluate(args.model, "VAR")
        sample = self.magic.evaluate(args.sample, "--sample") if args.sample else None
        progress = self.magic.progress_view(f"export {args.name}")
        try:
            result = export(
                model,
                args.name,
                version=args.version,
                signatures=args.signature,
                sample=sample,
                models_root=self.magic.resolved_models_root(),
                tolerance=self.magic.tolerance if args.tolerance is None else args.tolerance,
                optimize=args.optimize,
                progress=progress,
                warmup_from=args.warmup_from,
                warmup_records=args.warmup_records,
            )
        except Exception as exc:
            progress.fail(one_line(exc))
            raise
        progress.done(f"version {result.version}")
        self._follow_swap(result)
        return result

    def _follow_swap(self, result) -> None:
        """When NAME is already served from this directory, wait for the server to pick up the new version."""
        if self.magic.connected_client is None:
            return
        # The listing, not GET models/{name}: an unserved name is the common case here, not an error.
        entry = next(
            (m for m in self.magic.connected_client.models() if m["name"] == result.name), None
        )
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
            self.magic.connected_client.wait_for(
                result.name, result.version, timeout=self.magic.load_timeout
            )
        except ServingError as exc:  # the export stands; the server keeps serving what it served
            result.notes.append(
                f"the server did not take version {result.version}: {one_line(exc)}"
            )
            return
        result.notes.append(f"the server now serves {result.name} version {result.version}")

    def serve(self, args, cell):
        from ..api import serve

        client = self.magic.client()
        path = args.path or os.path.join(self.magic.resolved_models_root(), args.name)
        if args.no_wait:
            serve(args.name, path, policy=args.policy, client=client, wait=False)
            return render.Text(f"Loading {args.name} from {os.path.abspath(path)}")
        progress = self.magic.progress_view(f"serve {args.name}")
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
                timeout=self.magic.load_timeout,
                on_status=on_status,
            )
        except Exception as exc:
            progress.fail(one_line(exc))
            raise
        progress.done(f"version {version} AVAILABLE")
        return self._serving_text(args.name, version)

    def _serving_text(self, name: str, version: int) -> render.Text:
        """Where NAME now answers, and a curl line to try it."""
        from ..snippets import example_body

        client = self.magic.client()
        try:
            body = example_body(client.signature(name))
        except ServingError:  # unloaded meanwhile: the addresses are still right
            body = {"instances": []}
        return views.serving_text(client.endpoint, name, version, body)

    def list(self, args, cell):
        client = self.magic.client()
        return views.models_table(client.models(), client.url)

    def status(self, args, cell):
        client = self.magic.client()
        if args.name:
            return views.versions_status_table(args.name, client.status(args.name), client.url)
        try:
            info = client.info()
        except ServingError:  # a server without the info route still has a status
            info = {}
        return views.server_table(
            client.endpoint, self.magic.resolved_models_root(), client.models(), info
        )

    def predict(self, args, cell):
        client = self.magic.client()
        if cell is not None:
            if args.data:
                raise TFServeError("the cell form takes the request body from the cell, not DATA")
            if args.grpc:
                raise TFServeError("the cell form sends its JSON body over REST; drop --grpc")
            return client.predict_json(
                args.name,
                json_body(cell),
                version=args.version,
                label=args.label,
                signature=args.signature,
            )
        if not args.data:
            raise TFServeError(
                "predict needs DATA (a Python expression), or use %%tfserve predict with a JSON body"
            )
        data = self.magic.evaluate(" ".join(args.data), "DATA")
        return client.predict(
            args.name,
            data,
            version=args.version,
            label=args.label,
            signature=args.signature,
            grpc=args.grpc,
        )

    def versions(self, args, cell):
        return views.versions_table(args.name, self.magic.client().model(args.name))

    def label(self, args, cell):
        client = self.magic.client()
        if args.remove:
            client.remove_label(args.name, args.label)
            return render.Text(f"{args.name}: label {args.label!r} removed")
        if args.version is None:
            raise TFServeError("label needs a VERSION (or --remove)")
        client.set_label(args.name, args.label, args.version)
        return render.Text(f"{args.name}: label {args.label!r} -> version {args.version}")

    def rollback(self, args, cell):
        client = self.magic.client()
        answer = client.rollback(args.name)
        version = int(answer["version"])
        client.wait_for(args.name, version, latest=True, timeout=self.magic.load_timeout)
        return render.Text(
            f"{args.name}: rolled back from version {answer.get('from_version')} to {version} "
            f"(pinned with policy specific:{version}; '%tfserve serve {args.name}' goes forward again)"
        )

    def unload(self, args, cell):
        self.magic.client().unload(args.name)
        return render.Text(f"{args.name}: unloaded")

    def deploy(self, args, cell):
        """Deploy exactly what is served: its config (labels, policies) and its AVAILABLE versions."""
        from google.protobuf import text_format

        from ...core.config import ModelServerConfig
        from ...deploy import DeployError
        from ...deploy.flags import deploy_from_args

        client = self.magic.client()
        config = text_format.Parse(client.config(), ModelServerConfig())
        served = {
            m["name"]: [
                int(v["version"]) for v in m.get("versions", []) if v["state"] == "AVAILABLE"
            ]
            for m in client.models()
        }
        try:
            return deploy_from_args(
                config,
                args,
                served_versions={name: versions for name, versions in served.items() if versions},
            )
        except DeployError as exc:  # said with the magic's flags, not deploy()'s keyword arguments
            raise TFServeError(exc.cli_message()) from None

    def inspect(self, args, cell):
        from ..export import signature_table

        path = os.path.abspath(os.path.expanduser(args.target))
        if not os.path.isdir(path):
            try:
                version, signatures = self.magic.client().metadata(args.target)
            except ServingError as exc:
                path = os.path.join(self.magic.resolved_models_root(), args.target)
                if not os.path.isdir(path):
                    raise TFServeError(
                        f"{args.target!r} is neither a SavedModel path nor a served model ({exc.message})"
                    ) from None
            else:
                table = signature_table(signatures)
                table.title = f"{args.target} version {version} (served)"
                return table
        directory = saved_model_dir(path)
        table = signature_table(local_signatures(directory))
        table.title = directory
        return table

    def metrics(self, args, cell):
        snapshot = self.magic.client().metrics(args.name)
        return render.metrics_table(snapshot.get("metrics", snapshot), args.name)

    def logs(self, args, cell):
        from ..logs import read_logs

        prefix = args.name
        if not (prefix.startswith("/") or "*" in prefix):
            prefix = self.magic.client().logging(args.name)["filename_prefix"]
            if not prefix:
                raise TFServeError(
                    f"model {args.name} does not log its requests: give it a logging_config "
                    f"(or PUT /tfserve/api/models/{args.name}/logging)"
                )
        return read_logs(prefix, since=args.since, limit=args.limit).drop(columns="record")

    def snippet(self, args, cell):
        from ..snippets import snippets

        client = self.magic.client()
        signature = client.signature(args.name)
        return snippets(client.endpoint, args.name, signature)

    def _bench_options(self, args, to_options):
        """The bench CLI's options, with this kernel's server and ``--data`` evaluated here."""
        data = None
        if args.data not in ("zeros", "random") and not os.path.exists(args.data):
            data = self.magic.evaluate(args.data, "--data")
        options = to_options(args, data)
        changes = {
            "progress": None if args.quiet or self.magic.progress == "none" else self.magic.progress
        }
        if not args.url:
            endpoint = self.magic.client().endpoint
            changes.update(
                url=endpoint.url,
                token=args.token or endpoint.token or None,
                grpc=args.grpc or endpoint.grpc_target,
            )
        return replace(options, **changes)

    def benchmark(self, args, cell):
        from ...bench.api import benchmark
        from ...bench.cli import benchmark_options

        result = benchmark(args.model, self._bench_options(args, benchmark_options))
        if args.csv:
            result.to_csv(args.csv)
        if result.levels:
            display(result.plot(args.plot))
        if result.compared:
            display(result.compare())
        return result

    def tune(self, args, cell):
        from ...bench.cli import tune_options
        from ...bench.tuner import tune

        result = tune(args.model, self._bench_options(args, tune_options))
        if result.trials:
            display(result.plot(args.plot))
        return result

    def compare(self, args, cell):
        from ...client.progress import widgets_available
        from ..compare import compare

        data = self.magic.evaluate(args.data, "--data")
        result = compare(
            args.name,
            args.a,
            args.b,
            data,
            client=self.magic.client(),
            grpc=args.grpc,
            signature=args.signature,
            requests=args.requests,
        )
        return result.widget() if widgets_available() else result

    def dashboard(self, args, cell):
        from ..widgets import Dashboard

        return Dashboard(self.magic.client())


def json_body(cell: str):
    """The JSON request body of ``%%tfserve predict``; a bare list is TF Serving's row format."""
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
