"""docker-compose.yml is valid (the Compose Specification's JSON schema) and complete: the
default profile runs redis, the simulated upstream, the gateway, workers with their metrics
reachable, Prometheus with the shipped config and rules (promtool checks them as mounted) and
Grafana with the shipped dashboard and Prometheus provisioned as code."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from service.contract.settings import Settings
from tests.deploy.manifests import (
    DEPLOY,
    ROOT,
    SCHEMAS,
    duration_seconds,
    interpolate,
    load_json,
    load_yaml,
    parse_command,
    promtool,
    schema_errors,
    settings_from,
)

COMPOSE = ROOT / "docker-compose.yml"
Service = dict[str, Any]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    schema = load_json(SCHEMAS / "compose-spec.json")
    assert isinstance(schema, dict)
    return schema


def services(compose: dict[str, Any], profile: str | None = None) -> dict[str, Service]:
    """The services that ``docker compose [--profile P] up`` starts."""
    return {
        name: service
        for name, service in compose["services"].items()
        if not service.get("profiles") or profile in service["profiles"]
    }


def is_tokenrelay(service: Service) -> bool:
    """Built from this repository's Dockerfile (whose ENTRYPOINT is ``tokenrelay``)."""
    return service.get("build") in (".", {"context": "."})


def environment(service: Service) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {name: interpolate(str(value)) for name, value in env.items()}


def binds(service: Service) -> dict[str, Path]:
    """A service's bind mounts: container path -> host path."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def published(service: Service) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def test_the_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    assert schema_errors(compose_schema, compose) == []


def test_the_schema_catches_a_misspelt_key(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["enviroment"] = broken["services"]["gateway"].pop("environment")
    assert any("enviroment" in error for error in schema_errors(compose_schema, broken))


def test_the_default_profile_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == {
        "redis",
        "upstream",
        "gateway",
        "worker",
        "prometheus",
        "grafana",
    }
    cluster = set(services(compose, "cluster")) - set(services(compose))
    assert {"gateway-1", "gateway-2", "cluster-worker", "cluster-init", "loadbalancer"} <= cluster


def test_only_the_documented_ports_are_published_and_only_on_loopback(
    compose: dict[str, Any],
) -> None:
    ports = {name: published(s) for name, s in services(compose, "cluster").items() if "ports" in s}
    assert ports == {
        "gateway": ["127.0.0.1:8000:8000"],
        "prometheus": ["127.0.0.1:9090:9090"],
        "grafana": ["127.0.0.1:3000:3000"],
        "loadbalancer": ["127.0.0.1:8080:8000"],
    }


def test_every_tokenrelay_command_parses_with_the_real_command_line(
    compose: dict[str, Any],
) -> None:
    ours = {name: s for name, s in services(compose, "cluster").items() if is_tokenrelay(s)}
    assert {"upstream", "gateway", "worker", "gateway-1", "gateway-2", "cluster-worker"} <= set(
        ours
    )
    for service in ours.values():
        parse_command([str(arg) for arg in service["command"]])


def test_every_tokenrelay_environment_is_valid_settings(compose: dict[str, Any]) -> None:
    for name, service in services(compose, "cluster").items():
        if is_tokenrelay(service) and service["command"][0] in ("gateway", "worker"):
            settings = settings_from(environment(service))
            assert settings.redis_url is not None, name


def test_workers_serve_metrics_on_every_interface_of_the_network(compose: dict[str, Any]) -> None:
    worker = services(compose)["worker"]
    settings = settings_from(environment(worker))
    assert settings.worker_metrics_host == "0.0.0.0"
    assert settings.worker_metrics_port == 9101
    assert worker["deploy"]["replicas"] >= 2


def test_processes_get_their_shutdown_grace_before_compose_kills_them(
    compose: dict[str, Any],
) -> None:
    default = Settings.model_fields["shutdown_grace_seconds"].default
    for name, service in services(compose, "cluster").items():
        if is_tokenrelay(service) and service["command"][0] in ("gateway", "worker"):
            grace = float(environment(service).get("TOKENRELAY_SHUTDOWN_GRACE_SECONDS", default))
            assert duration_seconds(service["stop_grace_period"]) > grace, name


def test_the_prometheus_config_as_mounted_passes_promtool(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    prometheus = services(compose)["prometheus"]
    # The container's view of its files: each bind mount under tmp_path.
    for target, source in binds(prometheus).items():
        view = tmp_path / target.lstrip("/")
        view.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, view)
    flags = dict(str(arg).removeprefix("--").split("=", 1) for arg in prometheus["command"])
    config = tmp_path / flags["config.file"].lstrip("/")
    assert config.read_text() == (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    output = promtool("check", "config", str(config))
    assert "SUCCESS: 1 rule files found" in output
    rules = load_yaml(config)["rule_files"]
    assert [(config.parent / r).read_text() for r in rules] == [
        (DEPLOY / "prometheus" / "rules.yml").read_text()
    ]


def test_prometheus_scrapes_the_gateway_and_every_worker_where_they_listen(
    compose: dict[str, Any],
) -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    default = services(compose)

    (gateway_target,) = jobs["tokenrelay-gateway"]["static_configs"][0]["targets"]
    host, port = gateway_target.split(":")
    args = parse_command([str(a) for a in default[host]["command"]])
    assert args.command == "gateway"
    assert (args.host, args.port) == ("0.0.0.0", int(port))

    (worker_sd,) = jobs["tokenrelay-worker"]["dns_sd_configs"]
    (name,) = worker_sd["names"]
    assert default[name]["command"] == ["worker"]
    settings = settings_from(environment(default[name]))
    assert (settings.worker_metrics_host, settings.worker_metrics_port) == (
        "0.0.0.0",
        worker_sd["port"],
    )


def test_grafana_gets_prometheus_as_its_provisioned_data_source(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    mounts = binds(grafana)
    folder = mounts["/etc/grafana/provisioning/datasources"]
    (provisioning,) = sorted(folder.glob("*.yml"))
    config = load_yaml(provisioning)
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    host, port = source["url"].removeprefix("http://").split(":")
    assert host in services(compose)
    assert f":{port}:{port}" in published(services(compose)[host])[0]


def test_grafana_provisions_the_shipped_dashboard(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    mounts = binds(grafana)
    folder = mounts["/etc/grafana/provisioning/dashboards"]
    (provisioning,) = sorted(folder.glob("*.yml"))
    config = load_yaml(provisioning)
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    dashboards = {
        target: source
        for target, source in mounts.items()
        if PurePosixPath(target).parent == PurePosixPath(provider["options"]["path"])
    }
    assert list(dashboards.values()) == [DEPLOY / "grafana" / "tokenrelay.json"]
    dashboard = json.loads((DEPLOY / "grafana" / "tokenrelay.json").read_text())
    assert dashboard["uid"] == "tokenrelay"
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home in dashboards


def test_only_gateways_behind_the_load_balancer_trust_x_forwarded_for(
    compose: dict[str, Any],
) -> None:
    haproxy = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    servers = [line.split() for line in haproxy.splitlines() if line.split()[:1] == ["server"]]
    behind = {words[2].split(":")[0] for words in servers}
    trusting = {
        name
        for name, service in services(compose, "cluster").items()
        if is_tokenrelay(service)
        and service["command"][0] == "gateway"
        and (
            environment(service).get("TOKENRELAY_TRUST_FORWARDED_FOR") == "true"
            or environment(service).get("TOKENRELAY_TRUSTED_PROXIES", "") != ""
        )
    }
    assert trusting == behind == {"gateway-1", "gateway-2"}
    assert not any(published(services(compose, "cluster")[name]) for name in trusting)
