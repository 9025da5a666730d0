"""The Kubernetes manifests (deploy/kubernetes/) are checked, not deployed: every object
validates against the Kubernetes v1.33.0 JSON schema of its kind (standalone-strict, committed
under deploy/schemas/kubernetes/, so a misspelt field fails), and the pieces fit: probes,
resources, grace periods, disruption budgets, Services and the viewers' hashed Ingress."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.manifests import (
    DEPLOY,
    SCHEMAS,
    load_json,
    load_yaml,
    load_yaml_documents,
    parse_command,
    schema_errors,
    settings_from,
)

MANIFESTS = DEPLOY / "kubernetes"
K8S_SCHEMAS = SCHEMAS / "kubernetes" / "v1.33.0-standalone-strict"
Object = dict[str, Any]


def schema_file(obj: Object) -> str:
    """yannh/kubernetes-json-schema's file name for an object's kind and API version."""
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    parts = [obj["kind"].lower(), *([group.split(".")[0]] if group else []), version]
    return "-".join(parts) + ".json"


@pytest.fixture(scope="module")
def objects() -> list[Object]:
    found = [
        obj
        for path in sorted(MANIFESTS.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for obj in load_yaml_documents(path)
    ]
    assert found
    return found


def of_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def containers(deployment: Object) -> list[Object]:
    containers: list[Object] = deployment["spec"]["template"]["spec"]["containers"]
    return containers


def container_environment(container: Object, config_maps: dict[str, Object]) -> dict[str, str]:
    """The variables a container gets: its ConfigMaps, then its literal ``env``; values from
    Secrets are stand-ins (their names are still checked)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif variable["name"] == "TOKENRELAY_REDIS_URL":
            env[variable["name"]] = "redis://redis.example:6379/0"
        else:
            env[variable["name"]] = "from-a-secret"
    return env


def named_port(container: Object, name: str) -> int:
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return int(port)


def test_every_object_validates_against_its_kubernetes_schema(objects: list[Object]) -> None:
    kinds = set()
    for obj in objects:
        path = K8S_SCHEMAS / schema_file(obj)
        assert path.exists(), f"no schema committed for {obj['apiVersion']} {obj['kind']}"
        assert schema_errors(load_json(path), obj) == [], obj["metadata"]["name"]
        kinds.add(obj["kind"])
    assert kinds == {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "Ingress"}


def test_the_strict_schema_rejects_a_misspelt_field(objects: list[Object]) -> None:
    deployment = copy.deepcopy(of_kind(objects, "Deployment")["tokenrelay-gateway"])
    container = containers(deployment)[0]
    container["readinesProbe"] = container.pop("readinessProbe")
    errors = schema_errors(load_json(K8S_SCHEMAS / "deployment-apps-v1.json"), deployment)
    assert any("readinesProbe" in error for error in errors), errors


def test_kustomize_applies_every_manifest_with_the_image_it_names(objects: list[Object]) -> None:
    kustomization = load_yaml(MANIFESTS / "kustomization.yaml")
    manifests = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    images = {
        c["image"].split(":")[0]
        for d in of_kind(objects, "Deployment").values()
        for c in containers(d)
    }
    assert images == {image["name"] for image in kustomization["images"]} == {"tokenrelay"}


def test_the_commands_and_settings_are_tokenrelay_s(objects: list[Object]) -> None:
    config_maps = of_kind(objects, "ConfigMap")
    for name, deployment in of_kind(objects, "Deployment").items():
        (container,) = containers(deployment)
        args = parse_command(container["args"])
        settings = settings_from(container_environment(container, config_maps))
        assert settings.redis_url is not None, f"{name}: TOKENRELAY_REDIS_URL from the Secret"
        assert args.command in ("gateway", "worker"), name


def test_the_gateway_is_probed_on_readyz_and_healthz(objects: list[Object]) -> None:
    (container,) = containers(of_kind(objects, "Deployment")["tokenrelay-gateway"])
    args = parse_command(container["args"])
    assert (args.command, args.host, args.port) == (
        "gateway",
        "0.0.0.0",
        named_port(container, "http"),
    )
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}


def test_the_worker_is_probed_on_its_metrics_port_served_on_the_pod_address(
    objects: list[Object],
) -> None:
    (container,) = containers(of_kind(objects, "Deployment")["tokenrelay-worker"])
    settings = settings_from(container_environment(container, of_kind(objects, "ConfigMap")))
    assert settings.worker_metrics_host == "0.0.0.0"
    assert settings.worker_metrics_port == named_port(container, "metrics")
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "metrics"}


def test_every_container_requests_resources_and_runs_as_the_image_s_user(
    objects: list[Object],
) -> None:
    dockerfile_user = re.search(
        r"^USER (\d+):(\d+)$", (DEPLOY.parent / "Dockerfile").read_text(), re.M
    )
    assert dockerfile_user is not None
    for deployment in of_kind(objects, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert str(pod["securityContext"]["runAsUser"]) == dockerfile_user.group(1)
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]


def test_pods_get_their_drain_grace_before_they_are_killed(objects: list[Object]) -> None:
    config_maps = of_kind(objects, "ConfigMap")
    for name, deployment in of_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        grace = settings_from(container_environment(container, config_maps)).shutdown_grace_seconds
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
        waits = float(pre_stop["command"][1]) if pre_stop.get("command", [""])[0] == "sleep" else 0
        assert pod["terminationGracePeriodSeconds"] > waits + grace, name


def test_each_deployment_has_a_disruption_budget_that_selects_its_pods(
    objects: list[Object],
) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    for name, deployment in of_kind(objects, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        matching = [
            b
            for b in budgets.values()
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, name
        assert deployment["spec"]["replicas"] > matching[0]["spec"]["maxUnavailable"]


def test_services_reach_the_gateway_pods_on_their_named_port(objects: list[Object]) -> None:
    gateway = of_kind(objects, "Deployment")["tokenrelay-gateway"]
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"] for p in containers(gateway)[0]["ports"]}
    for service in of_kind(objects, "Service").values():
        assert service["spec"]["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def ingress_paths(ingress: Object) -> Iterator[tuple[str, str, str]]:
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            yield path["path"], path["pathType"], path["backend"]["service"]["name"]


def test_viewers_are_hashed_by_job_on_a_service_of_their_own(objects: list[Object]) -> None:
    ingresses = of_kind(objects, "Ingress")
    services = of_kind(objects, "Service")
    viewers = ingresses["tokenrelay-viewers"]
    annotations = viewers["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$uri"
    assert annotations["nginx.ingress.kubernetes.io/use-regex"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"

    hashed = {backend for _, _, backend in ingress_paths(viewers)}
    assert hashed == {"tokenrelay-gateway-viewers"}
    others = {b for i in ingresses.values() if i is not viewers for _, _, b in ingress_paths(i)}
    assert others == {"tokenrelay-gateway"}, "hash settings are kept per Service port"
    assert hashed | others <= set(services)

    # The regex locations (nginx: `~* ^PATH`) take the viewers' routes and nothing else.
    patterns = [re.compile("^" + path, re.I) for path, kind, _ in ingress_paths(viewers)]
    assert all(kind == "ImplementationSpecific" for _, kind, _ in ingress_paths(viewers))

    def hashed_route(uri: str) -> bool:
        return any(p.match(uri) for p in patterns)

    assert hashed_route("/v1/jobs/01JB2C3D4E5F6G7H8J9K/events")
    assert hashed_route("/v1/responses/resp_01JB2C3D4E5F6G7H8J9K")
    for uri in (
        "/",
        "/v1/jobs",
        "/v1/jobs/01JB2C3D4E5F6G7H8J9K",
        "/v1/responses",
        "/v1/responses/resp_01JB2C3D4E5F6G7H8J9K/cancel",
        "/v1/chat/completions",
    ):
        assert not hashed_route(uri), uri
