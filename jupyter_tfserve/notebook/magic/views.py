"""The magic's answers as tables and text: what the server said, laid out for a notebook.

Pure functions of the server's answers (no requests here), so every layout is
one function and the subcommands only fetch.
"""

from __future__ import annotations

from .. import render


def labels_text(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def policy_text(policy) -> str:
    """A ``ServableVersionPolicy`` (JSON form) as the magic's ``--policy`` spells it."""
    if not policy:
        return "latest:1"
    if "latest" in policy:
        return f"latest:{policy['latest'].get('num_versions', 1)}"
    if "specific" in policy:
        return "specific:" + ",".join(str(v) for v in policy["specific"].get("versions", []))
    return "all" if "all" in policy else str(policy)


def serving_text(endpoint, name: str, version: int, body: dict) -> render.Text:
    """Where NAME answers (REST, the standalone port, gRPC) and a curl line sending ``body``."""
    from ..snippets import curl_line

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
    lines.append("curl:  " + curl_line(curl_url, body, token))
    return render.Text("\n".join(lines), title=f"Serving {name} version {version}")


def models_table(models: list[dict], url: str) -> render.Table:
    """``%tfserve list``: one row per served model."""
    rows = []
    for model in models:
        versions = model.get("versions", [])
        serving = [str(v["version"]) for v in versions if v["state"] == "AVAILABLE"]
        others = [f"{v['version']} {v['state']}" for v in versions if v["state"] != "AVAILABLE"]
        rows.append(
            [
                model["name"],
                ", ".join(serving) or "-",
                ", ".join(others),
                labels_text(model.get("labels", {})),
                policy_text(model.get("policy")),
                model.get("base_path", ""),
            ]
        )
    return render.Table(
        ["model", "serving", "other versions", "labels", "policy", "base_path"],
        rows,
        title=f"Models at {url}",
    )


def versions_status_table(name: str, statuses: list[dict], url: str) -> render.Table:
    """``%tfserve status NAME``: TF Serving's model status, one row per version."""
    rows = []
    for entry in statuses:
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
        ["version", "state", "error_code", "error_message"], rows, title=f"{name} at {url}"
    )


def server_table(endpoint, models_root: str, models: list[dict], info: dict) -> render.Table:
    """``%tfserve status``: how this kernel reaches its server, and what the server says of itself."""
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
        ["models_root", models_root],
        ["models", ", ".join(m["name"] for m in models) or "none"],
    ]
    if "uptime_seconds" in info:
        rows.append(["uptime", f"{float(info['uptime_seconds']):.0f} s"])
    if info.get("version"):
        rows.append(["version", str(info["version"])])
    return render.Table(["setting", "value"], rows, title="tfserve")


def versions_table(name: str, model: dict) -> render.Table:
    """``%tfserve versions NAME``: every version with its state, labels and error."""
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
        title=f"{name} ({policy_text(model.get('policy'))})",
    )
