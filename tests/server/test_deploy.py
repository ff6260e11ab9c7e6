"""The GPU deployment files parse and say what they must (real TGI, vLLM, Docker and Kubernetes cannot run here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core import fim

DEPLOY = Path(__file__).resolve().parents[2] / "server" / "deploy"


def _load(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    assert docs, path
    return docs


def _flags(args: list[str]) -> dict[str, list[str]]:
    """`--flag value`, `--flag=value` and bare `--flag` forms -> {flag: [values]} (values may repeat)."""
    out: dict[str, list[str]] = {}
    key = None
    for a in map(str, args):
        if a.startswith("--"):
            key, _, value = a.partition("=")
            out.setdefault(key, [])
            if value:
                out[key].append(value)
                key = None
        elif key is not None:
            out[key].append(a)
    return out


def _container(docs: list[dict]) -> dict:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def _adapters_from(flags: dict, env: dict, server: str) -> dict[str, str]:
    if server == "tgi":
        pairs = env["LORA_ADAPTERS"].split(",")
    else:
        pairs = flags["--lora-modules"]
    return dict(p.split("=", 1) for p in pairs)


def _check_common(server: str, flags: dict, env: dict, mounts: dict[str, str]) -> None:
    models, adapters = mounts["/models"], mounts["/adapters"]
    assert models and adapters
    model_flag = "--model-id" if server == "tgi" else "--model"
    assert flags[model_flag] == ["/models/base"]
    assert env["HF_HUB_OFFLINE"] == "1"  # on-prem: never reach a model hub
    named = _adapters_from(flags, env, server)
    assert named and all(path == f"/adapters/{name}" for name, path in named.items())
    if server == "tgi":
        longest = max(len(fim.get_format(n).stop) for n in fim.format_names())
        assert int(flags["--max-stop-sequences"][0]) >= longest
    else:
        assert "--enable-lora" in flags


@pytest.mark.parametrize("server,image,port", [("tgi", "ghcr.io/huggingface/text-generation-inference:", 80),
                                               ("vllm", "vllm/vllm-openai:", 8000)])
def test_kubernetes_manifest(server, image, port):
    docs = _load(DEPLOY / server / "kubernetes.yaml")
    deployment, c = _container(docs)
    assert c["image"].startswith(image) and not c["image"].endswith(":latest")
    named_ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert named_ports["http"] == port
    flags = _flags(c["args"])
    assert flags["--port"] == [str(port)]
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
        assert c[probe]["httpGet"]["port"] in ("http", port)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e["value"] for e in c["env"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    for path in ("/models", "/adapters"):
        assert volumes[mounts[path]]["persistentVolumeClaim"]["readOnly"] is True
    _check_common(server, flags, env, mounts)
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v}
    assert claims == {"inhouse-models", "inhouse-adapters"}
    if server == "tgi":  # the vLLM manifest reuses the claims the TGI manifest declares
        assert {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"} == claims


@pytest.mark.parametrize("server,image,port", [("tgi", "ghcr.io/huggingface/text-generation-inference:", 80),
                                               ("vllm", "vllm/vllm-openai:", 8000)])
def test_docker_compose(server, image, port):
    (compose,) = _load(DEPLOY / server / "docker-compose.yml")
    (svc,) = compose["services"].values()
    assert svc["image"].startswith(image) and not svc["image"].endswith(":latest")
    assert svc["ports"] == [f"{8080 if server == 'tgi' else 8000}:{port}"]
    flags = _flags(svc["command"])
    assert flags["--port"] == [str(port)]
    env = dict(svc["environment"])
    if server == "tgi":  # ${LORA_ADAPTERS:-default}: check the default
        env["LORA_ADAPTERS"] = env["LORA_ADAPTERS"].split(":-", 1)[1].rstrip("}")
    mounts = {}
    for v in svc["volumes"]:
        host, container, mode = v.rsplit(":", 2)  # the host part may hold ${VAR:-default}
        mounts[container] = host
        assert mode == "ro"
    _check_common(server, flags, env, mounts)
    assert f":{port}/health" in " ".join(svc["healthcheck"]["test"])
    (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]


def test_export_prints_the_tgi_release_the_deployment_pins():
    """`inhouse export`'s TGI command line runs the image server/deploy/tgi pins, never `:latest`."""
    from finetune.export import TGI_IMAGE, serve_commands

    images = {_container(_load(DEPLOY / "tgi" / "kubernetes.yaml"))[1]["image"]}
    images |= {svc["image"] for svc in _load(DEPLOY / "tgi" / "docker-compose.yml")[0]["services"].values()}
    assert images == {TGI_IMAGE}
    commands = serve_commands(Path("/m/base"), Path("/m/adapters/team-a"), "team-a", 16)
    assert f" {TGI_IMAGE} --model-id /base" in commands and ":latest" not in commands
