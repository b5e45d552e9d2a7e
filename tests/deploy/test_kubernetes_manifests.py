"""deploy/kubernetes/sharded: the manifests parse and agree with each other and the exporter.

No cluster here, so these read the YAML: one pod per shard, the index from the pod ordinal, the
port, probes and hardening every deployment of the exporter needs, and names that match.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import __version__
from exporter.config.load import parse_config
from exporter.daemon.settings import DEFAULT_PORT

SHARDED = Path(__file__).parents[2] / "deploy" / "kubernetes" / "sharded"
NAME = "aloudata-can-exporter"
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"
Manifest = dict[str, Any]


def _kustomization() -> Manifest:
    document: Manifest = yaml.safe_load((SHARDED / "kustomization.yaml").read_text())
    return document


def _resources() -> dict[str, Manifest]:
    """Every document of every resource file (a directory: its kustomization's), by kind."""
    documents: dict[str, Manifest] = {}
    paths = [SHARDED / name for name in _kustomization()["resources"]]
    while paths:
        path = paths.pop()
        if path.is_dir():
            listed = yaml.safe_load((path / "kustomization.yaml").read_text())["resources"]
            paths += [path / name for name in listed]
            continue
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in documents, f"two {document['kind']}s"
            documents[document["kind"]] = document
    return documents


RESOURCES = _resources()
STATEFULSET = RESOURCES["StatefulSet"]
POD = STATEFULSET["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]


def _flag(name: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in CONTAINER["args"] if arg.startswith(f"{name}=")]
    assert len(values) <= 1
    return values[0] if values else None


def test_every_listed_file_exists() -> None:
    kustomization = _kustomization()
    assert kustomization["kind"] == "Kustomization"
    listed = [*kustomization["resources"]]
    listed += [f for g in kustomization["configMapGenerator"] for f in g["files"]]
    local = [name for name in listed if not name.startswith("../")]
    assert {path.name for path in SHARDED.iterdir()} == {"kustomization.yaml", *local}
    # The PrometheusRule comes from ../rules (tests/deploy/test_kubernetes_base.py checks it).
    assert set(RESOURCES) == {"StatefulSet", "Service", "ServiceMonitor", "PrometheusRule"}


def test_one_pod_per_shard() -> None:
    spec = STATEFULSET["spec"]
    total = _flag("--shard.total")
    assert total is not None
    assert spec["replicas"] == int(total) > 1
    assert spec["podManagementPolicy"] == "Parallel"
    assert _flag("--shard.index") is None, "the index comes from the pod, not a fixed flag"
    env = {variable["name"]: variable for variable in CONTAINER["env"]}
    index = env["ALOUDATA_CAN_EXPORTER_SHARD_INDEX"]
    assert index["valueFrom"] == {"fieldRef": {"fieldPath": POD_INDEX}}


def test_labels_select_the_pods() -> None:
    selector = STATEFULSET["spec"]["selector"]["matchLabels"]
    labels = STATEFULSET["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert selector["app.kubernetes.io/name"] == NAME
    assert RESOURCES["Service"]["spec"]["selector"] == selector


def test_port_and_probes() -> None:
    assert CONTAINER["ports"] == [
        {"name": "http-metrics", "containerPort": DEFAULT_PORT, "protocol": "TCP"}
    ]
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert CONTAINER["image"] == f"ghcr.io/aloudata/{NAME}:{__version__}"
    assert CONTAINER["resources"]["requests"]
    assert CONTAINER["resources"]["limits"]["memory"]


def test_hardening() -> None:
    pod = POD["securityContext"]
    container = CONTAINER["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert container["runAsNonRoot"] is True
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert pod["seccompProfile"] == container["seccompProfile"] == {"type": "RuntimeDefault"}
    assert POD["automountServiceAccountToken"] is False


def _mounts() -> dict[str, tuple[str, Manifest]]:
    """Volume name: (mount path, volume)."""
    volumes = {volume["name"]: volume for volume in POD["volumes"]}
    return {m["name"]: (m["mountPath"], volumes[m["name"]]) for m in CONTAINER["volumeMounts"]}


def test_config_from_the_configmap_and_credential_from_the_secret(tmp_path: Path) -> None:
    mounts = _mounts()
    config_file = _flag("--config.file")
    assert config_file == "/etc/aloudata-can-exporter/exporter.yml"
    path, volume = mounts["config"]
    assert path == str(Path(config_file).parent)
    (generator,) = _kustomization()["configMapGenerator"]
    assert volume["configMap"]["name"] == generator["name"]
    assert generator["files"] == [Path(config_file).name]

    text = (SHARDED / "exporter.yml").read_text()
    value_files = re.findall(r"value_file: ([^\s}]+)", text)
    assert value_files, "the credential comes from a file"
    path, volume = mounts["can-credentials"]
    assert volume["secret"]["secretName"] == NAME
    assert volume["secret"]["defaultMode"] == 0o440
    for value_file in value_files:
        assert Path(value_file).parent == Path(path)
    # The shipped config is valid, given the mounted secret.
    secret = tmp_path / "can-apikey"
    secret.write_text("not-a-real-key\n")
    for value_file in value_files:
        text = text.replace(value_file, str(secret))
    config = parse_config(text, environ={})
    assert len(config.groups) >= 3
    assert config.warnings == ()


def test_headless_service_and_servicemonitor_reach_every_shard() -> None:
    service = RESOURCES["Service"]
    # Prometheus Operator names the job after the Service: the rules select job="...".
    assert service["metadata"]["name"] == NAME
    assert STATEFULSET["spec"]["serviceName"] == NAME
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [
        {
            "name": "http-metrics",
            "port": DEFAULT_PORT,
            "targetPort": "http-metrics",
            "protocol": "TCP",
        }
    ]
    monitor = RESOURCES["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert "jobLabel" not in monitor["spec"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["http-metrics"]


@pytest.mark.parametrize("kind", sorted(RESOURCES))
def test_recommended_labels(kind: str) -> None:
    labels = RESOURCES[kind]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == NAME
    assert labels["app.kubernetes.io/component"] == "exporter"
