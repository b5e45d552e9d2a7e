"""deploy/kubernetes (and its sharded variant) as kustomize renders them, checked offline.

kustomize renders each directory; every built-in object then validates against Kubernetes' own
schemas (kubernetes-validate, strict: an unknown field fails) for the oldest Kubernetes the
manifests support and the newest the package ships. The Prometheus Operator's objects have no
schema there, so they are checked against the required fields of its CRDs. The rest checks that
the pieces agree: the Service and the ServiceMonitor, the alert rules and alerts.yml, the config
and the exporter's parser, the mounts and the image, the Secret and the config's value_file.
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version, major_minor

from exporter import __version__
from exporter.config.load import parse_config
from exporter.listen import DEFAULT_PORT
from scripts import build_prometheusrule
from tests.helpers.programs import require_tool

Manifest = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
SHARDED = BASE / "sharded"
# The one PrometheusRule, a kustomization of its own that both variants load.
RULES = BASE / "rules" / "prometheusrule.yaml"
VARIANTS = {"base": BASE, "sharded": SHARDED}
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SECRET_EXAMPLE = BASE / "secret.example.yaml"

NAME = "aloudata-can-exporter"
IMAGE = f"ghcr.io/aloudata/{NAME}:{__version__}"
# The image's ENTRYPOINT passes --config.file with this path; the image runs as this UID/GID.
IMAGE_CONFIG_FILE = "/etc/aloudata-can-exporter/exporter.yml"
IMAGE_UID = 65532
# The sharded variant needs the apps.kubernetes.io/pod-index label, new in Kubernetes 1.28.
OLDEST_KUBERNETES = "1.28"
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, major_minor(latest_version()))
OPERATOR_API = "monitoring.coreos.com/v1"
METRICS_PORT = "http-metrics"

# The required fields (and their types) of the Prometheus Operator's CRDs,
# example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LABEL_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": _STRING_MAP, "matchExpressions": {"type": "array"}},
    "minProperties": 1,
}
_RULE = {
    "type": "object",
    "required": ["expr"],
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "minLength": 1},
        "expr": {"type": ["string", "integer"]},
        "for": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    # Exactly one of alert and record.
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
}
CRD_SCHEMAS: dict[str, Manifest] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["endpoints", "selector"],
                "properties": {
                    "selector": _LABEL_SELECTOR,
                    "jobLabel": {"type": "string"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "rules": {"type": "array", "items": _RULE},
                            },
                        },
                    }
                },
            }
        },
    },
}


# -- Rendering ---------------------------------------------------------------------------------


@functools.cache
def _render(directory: Path) -> tuple[Manifest, ...]:
    result = subprocess.run(
        [require_tool("kustomize"), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(document for document in yaml.safe_load_all(result.stdout) if document)


def _rendered(variant: str) -> tuple[Manifest, ...]:
    return copy.deepcopy(_render(VARIANTS[variant]))


def _by_kind(variant: str) -> dict[str, Manifest]:
    objects: dict[str, Manifest] = {}
    for document in _rendered(variant):
        assert document["kind"] not in objects, f"two {document['kind']}s"
        objects[document["kind"]] = document
    return objects


def _workload(variant: str) -> Manifest:
    objects = _by_kind(variant)
    (workload,) = [objects[kind] for kind in ("Deployment", "StatefulSet") if kind in objects]
    return workload


def _pod(variant: str) -> Manifest:
    pod: Manifest = _workload(variant)["spec"]["template"]["spec"]
    return pod


def _container(variant: str) -> Manifest:
    (container,) = _pod(variant)["containers"]
    return container


def _mounts(variant: str) -> dict[str, tuple[Manifest, Manifest]]:
    """Volume name: (its mount in the container, the volume)."""
    volumes = {volume["name"]: volume for volume in _pod(variant)["volumes"]}
    return {m["name"]: (m, volumes[m["name"]]) for m in _container(variant)["volumeMounts"]}


def _mount_of(variant: str, source: str) -> tuple[Manifest, Manifest]:
    """The one mount whose volume is a ``source`` (configMap, secret, emptyDir)."""
    (found,) = [pair for pair in _mounts(variant).values() if source in pair[1]]
    return found


def _kustomization(directory: Path) -> Manifest:
    document: Manifest = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return document


def _secret_example() -> Manifest:
    document: Manifest = yaml.safe_load(SECRET_EXAMPLE.read_text())
    return document


variants = pytest.mark.parametrize("variant", sorted(VARIANTS))


# -- Rendering and schemas ---------------------------------------------------------------------


@variants
def test_kustomize_renders_the_expected_objects(variant: str) -> None:
    workload = "Deployment" if variant == "base" else "StatefulSet"
    expected = {"ConfigMap", "Service", workload, "ServiceMonitor", "PrometheusRule"}
    assert set(_by_kind(variant)) == expected, "a Secret must never be part of the manifests"


def test_every_file_is_a_resource_or_the_secret_example() -> None:
    kustomization = _kustomization(BASE)
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    listed |= {f for generator in kustomization["configMapGenerator"] for f in generator["files"]}
    assert SECRET_EXAMPLE.name not in listed, "applying the base would overwrite the real key"
    assert "secretGenerator" not in kustomization
    files = {path.name for path in BASE.iterdir() if path.is_file()}
    directories = {path.name for path in BASE.iterdir() if path.is_dir()}
    assert files == {"kustomization.yaml", SECRET_EXAMPLE.name, *(listed - directories)}
    assert directories == {"rules", "sharded"}
    assert "rules" in listed


def _builtin(variant: str) -> list[Manifest]:
    objects = [o for o in _rendered(variant) if o["apiVersion"] != OPERATOR_API]
    assert len(objects) == 3
    return objects


@variants
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_objects_validate_strictly(variant: str, version: str) -> None:
    for manifest in _builtin(variant):
        # Raises on any schema violation, a missing schema (an unknown kind) included.
        validated = kubernetes_validate.validate(manifest, version, strict=True)
        # The schema of that very version, not an older one standing in for it.
        assert validated == version


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_secret_example_validates(version: str) -> None:
    kubernetes_validate.validate(_secret_example(), version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_strict_validation_rejects_a_misplaced_field(version: str) -> None:
    # A classic mistake: readOnlyRootFilesystem in the pod's securityContext, where Kubernetes
    # has no such field (it belongs to the container's). Only strict validation catches it.
    broken = _by_kind("base")["Deployment"]
    broken["spec"]["template"]["spec"]["securityContext"]["readOnlyRootFilesystem"] = True
    kubernetes_validate.validate(broken, version, strict=False)
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFilesystem"):
        kubernetes_validate.validate(broken, version, strict=True)

    wrong_type = _by_kind("base")["Deployment"]
    wrong_type["spec"]["replicas"] = "1"
    with pytest.raises(kubernetes_validate.ValidationError, match="not of type 'integer'"):
        kubernetes_validate.validate(wrong_type, version, strict=True)


def test_the_versions_are_the_oldest_supported_and_the_newest_shipped() -> None:
    assert KUBERNETES_VERSIONS[0] == "1.28"
    assert tuple(map(int, KUBERNETES_VERSIONS[1].split("."))) >= (1, 30)


def _crd_problems(manifest: Manifest) -> list[str]:
    if manifest["apiVersion"] != OPERATOR_API or manifest["kind"] not in CRD_SCHEMAS:
        return [f"{manifest['kind']}: not a {OPERATOR_API} kind this test knows"]
    validator = jsonschema.Draft202012Validator(CRD_SCHEMAS[manifest["kind"]])
    problems = []
    for error in validator.iter_errors(manifest):
        # oneOf's own message quotes the whole rule.
        message = "needs one of alert and record" if error.validator == "oneOf" else error.message
        problems.append(f"{manifest['kind']}: {'.'.join(map(str, error.absolute_path))}: {message}")
    return sorted(problems)


@variants
def test_custom_resources_have_the_crds_required_fields(variant: str) -> None:
    custom = [o for o in _rendered(variant) if o["apiVersion"] == OPERATOR_API]
    assert sorted(o["kind"] for o in custom) == ["PrometheusRule", "ServiceMonitor"]
    for manifest in custom:
        assert _crd_problems(manifest) == []


def test_the_crd_check_can_fail() -> None:
    objects = _by_kind("base")
    monitor = objects["ServiceMonitor"]
    del monitor["spec"]["selector"]
    assert _crd_problems(monitor) == ["ServiceMonitor: spec: 'selector' is a required property"]

    rule = objects["PrometheusRule"]
    freshness, health, _slo = rule["spec"]["groups"]
    freshness["name"] = ""
    del freshness["rules"][0]["expr"]
    freshness["rules"][1]["record"] = "aloudata_can:data_lag_seconds"
    del health["rules"][0]["alert"]
    assert _crd_problems(rule) == [
        "PrometheusRule: spec.groups.0.name: '' should be non-empty",
        "PrometheusRule: spec.groups.0.rules.0: 'expr' is a required property",
        "PrometheusRule: spec.groups.0.rules.1: needs one of alert and record",
        "PrometheusRule: spec.groups.1.rules.0: needs one of alert and record",
    ]


# -- Scraping and alerting ---------------------------------------------------------------------


def _alerts_job() -> str:
    """The one job every rule's expression selects."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    exprs = " ".join(rule["expr"] for group in groups for rule in group["rules"])
    (job,) = set(re.findall(r'job="([^"]+)"', exprs))
    return job


@variants
def test_the_servicemonitor_scrapes_the_service_as_the_job_the_rules_select(variant: str) -> None:
    objects = _by_kind(variant)
    service, monitor = objects["Service"], objects["ServiceMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert ports[METRICS_PORT]["port"] == DEFAULT_PORT
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
        (METRICS_PORT, "/metrics")
    ]
    # Without jobLabel the operator names the job after the Service.
    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == _alerts_job() == NAME
    # The Service reaches the pods, on a port the container declares.
    labels = _workload(variant)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {port["name"]: port for port in _container(variant)["ports"]}
    assert container_ports[ports[METRICS_PORT]["targetPort"]]["containerPort"] == DEFAULT_PORT


@variants
def test_the_prometheusrule_holds_exactly_the_groups_of_alerts_yml(variant: str) -> None:
    rule = _by_kind(variant)["PrometheusRule"]
    assert rule["metadata"]["name"] == NAME
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]
    # kustomize passes it through unchanged (a namespace, when set, aside).
    rule["metadata"].pop("namespace", None)
    assert rule == yaml.safe_load(build_prometheusrule.render(ALERTS.read_text()))


def test_the_committed_prometheusrule_is_the_generator_output() -> None:
    problems = build_prometheusrule.stale_files()
    assert not problems, "\n".join(problems)
    assert build_prometheusrule.OUTPUTS == (RULES,)
    text = RULES.read_text()
    assert text.splitlines()[0] == (
        "# generated by scripts/build_prometheusrule.py from deploy/prometheus/alerts.yml;"
        " do not edit"
    )


def test_the_generator_keeps_expressions_and_descriptions_readable() -> None:
    text = RULES.read_text()
    assert "expr: |\n" in text, "multi-line expressions as literal blocks"
    assert "description: >-\n" in text, "long descriptions folded, as in alerts.yml"
    assert build_prometheusrule.render(ALERTS.read_text()) == text


def test_the_check_mode_reports_stale_and_missing_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = tmp_path / "alerts.yml"
    alerts.write_text(ALERTS.read_text())
    current, missing = tmp_path / "current.yaml", tmp_path / "missing.yaml"
    assert build_prometheusrule.main(["--alerts", str(alerts), "--output", str(current)]) == 0
    check = ["--check", "--alerts", str(alerts), "--output", str(current)]
    assert build_prometheusrule.main(check) == 0

    alerts.write_text(ALERTS.read_text().replace("for: 10m", "for: 11m"))
    capsys.readouterr()
    assert build_prometheusrule.main([*check, "--output", str(missing)]) == 1
    hint = "run python scripts/build_prometheusrule.py"
    assert capsys.readouterr().err.splitlines() == [
        f"{current}: stale; {hint}",
        f"{missing}: missing; {hint}",
    ]


@variants
def test_promtool_accepts_the_rendered_rules(variant: str, tmp_path: Path) -> None:
    groups = _by_kind(variant)["PrometheusRule"]["spec"]["groups"]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in groups)
    assert f"SUCCESS: {count} rules found" in result.stdout


# -- The pod -----------------------------------------------------------------------------------


def test_one_replica_rolled_without_a_gap() -> None:
    deployment = _by_kind("base")["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


@variants
def test_the_image_and_version_labels_are_the_exporters_version(variant: str) -> None:
    workload = _workload(variant)
    assert _container(variant)["image"] == IMAGE
    assert workload["metadata"]["labels"]["app.kubernetes.io/version"] == __version__
    assert workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == (
        __version__
    )


@variants
def test_probes_resources_and_shutdown(variant: str) -> None:
    container = _container(variant)
    port_names = {port["name"] for port in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http = container[probe]["httpGet"]
        assert http["path"] == path
        assert http["port"] in port_names
    resources = container["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    if variant == "base":
        assert resources["limits"]["cpu"]
        assert _mebibytes(resources["limits"]["memory"]) > _mebibytes(
            resources["requests"]["memory"]
        )
    grace = _pod(variant)["terminationGracePeriodSeconds"]
    assert 5 <= grace <= 30


def _mebibytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, quantity
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


@variants
def test_hardening(variant: str) -> None:
    pod = _pod(variant)
    pod_context = pod["securityContext"]
    container = _container(variant)["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == pod_context["runAsGroup"] == IMAGE_UID
    assert pod_context["fsGroup"] == IMAGE_UID
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["runAsNonRoot"] is True
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container.get("privileged", False) is False
    # The one writable path besides the mounts: /tmp, an emptyDir.
    mount, _ = _mount_of(variant, "emptyDir")
    assert mount["mountPath"] == "/tmp"
    assert not mount.get("readOnly", False)


SECRET_NAME_PATTERN = re.compile(r"KEY|TOKEN|SECRET|PASSW|AUTH|CRED", re.IGNORECASE)
SECRET_VALUE_PATTERN = re.compile(r"[A-Za-z0-9+/=_.-]{20,}")


def _env_problems(container: Manifest) -> list[str]:
    problems = []
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            problems.append(f"envFrom secret {source['secretRef'].get('name')}")
    for variable in container.get("env", []):
        name = variable["name"]
        if "secretKeyRef" in variable.get("valueFrom", {}):
            problems.append(f"{name}: a Secret through the environment")
        value = variable.get("value")
        if value is not None and (
            SECRET_NAME_PATTERN.search(name) or SECRET_VALUE_PATTERN.search(value)
        ):
            problems.append(f"{name}: a literal value that looks like a secret")
    return problems


@variants
def test_no_secret_in_the_environment(variant: str) -> None:
    pod = _pod(variant)
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        assert _env_problems(container) == []


def test_the_environment_check_can_fail() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": NAME}}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "CAN_APIKEY", "value": "x"},
            {"name": "OPAQUE", "value": "6665de58846daee543d5db415375d936"},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": NAME, "key": "k"}}},
        ],
    }
    assert _env_problems(container) == [
        f"envFrom secret {NAME}",
        "CAN_APIKEY: a literal value that looks like a secret",
        "OPAQUE: a literal value that looks like a secret",
        "FROM_SECRET: a Secret through the environment",
    ]


# -- Config and credential ---------------------------------------------------------------------


@variants
def test_the_configmap_is_mounted_where_the_image_reads_its_config(variant: str) -> None:
    configmap = _by_kind(variant)["ConfigMap"]
    mount, volume = _mount_of(variant, "configMap")
    # kustomize rewrote the reference to the generated, hash-suffixed name.
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert re.fullmatch(r"aloudata-can-exporter-config-[a-z0-9]{10}", configmap["metadata"]["name"])
    assert mount["readOnly"] is True
    assert "subPath" not in mount
    (key,) = configmap["data"]
    assert f"{mount['mountPath']}/{key}" == IMAGE_CONFIG_FILE
    # A --config.file in the manifest, if any, must say the same.
    for arg in _container(variant).get("args", []):
        if arg.startswith("--config.file"):
            assert arg == f"--config.file={IMAGE_CONFIG_FILE}"


@variants
def test_the_secret_is_mounted_as_files_readable_by_the_exporter_only(variant: str) -> None:
    mount, volume = _mount_of(variant, "secret")
    assert volume["secret"]["secretName"] == _secret_example()["metadata"]["name"] == NAME
    assert volume["secret"]["defaultMode"] == 0o440
    assert mount["readOnly"] is True
    # A subPath mount would never see a rotated key.
    assert "subPath" not in mount
    assert "items" not in volume["secret"]


def _value_files(config_text: str) -> list[str | None]:
    config = yaml.safe_load(config_text)
    return [target["auth"].get("value_file") for target in config["targets"]]


@variants
def test_the_shipped_config_parses_and_reads_the_key_from_the_secret(
    variant: str, tmp_path: Path
) -> None:
    text = _by_kind(variant)["ConfigMap"]["data"][Path(IMAGE_CONFIG_FILE).name]
    mount, _ = _mount_of(variant, "secret")
    secret_dir = mount["mountPath"]
    keys = set(_secret_example()["stringData"])
    value_files = _value_files(text)
    assert value_files, "no target"
    for value_file in value_files:
        assert value_file is not None, "every credential comes from the Secret, never inline"
        assert Path(value_file).parent == Path(secret_dir)
        assert Path(value_file).name in keys

    # Parse it as the exporter would, with the Secret's files under tmp_path.
    for key in keys:
        (tmp_path / key).write_text("not-a-real-key\n")
    config = parse_config(text.replace(secret_dir, str(tmp_path)), environ={})
    assert config.groups
    assert config.warnings == ()
    assert {target.auth_value_file for target in config.targets.values()} == {
        tmp_path / Path(value_file).name for value_file in value_files if value_file
    }


def test_the_secret_example_and_the_instructions_agree() -> None:
    secret = _secret_example()
    assert secret["kind"] == "Secret"
    assert "data" not in secret, "stringData: the placeholder is readable"
    (key,) = secret["stringData"]
    command = f"create secret generic {NAME} \\\n#     --from-file={key}=./{key}"
    assert command in (BASE / "kustomization.yaml").read_text()
    assert command in SECRET_EXAMPLE.read_text()
