"""The deploy files: the alerting rules pass promtool (check and unit tests), the Prometheus
config is valid, and every metric the rules and the dashboard query is exported."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient

from service.cli.embedded_redis import free_port
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from tests.ops.scrape import scrape
from worker.metrics import WorkerMetrics, serve_metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "tokenrelay.json"
_OUR_METRIC = re.compile(r"\btokenrelay_[a-z0-9_]+\b")
_RECORDED = re.compile(r"\btokenrelay:[a-z0-9_:]+\b")


def promtool(*args: str) -> str:
    """Run promtool; a clear failure when it is not installed."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is not installed: `apt-get install prometheus` (Debian; `make test` "
            "installs it when run as root) puts it on PATH"
        )
    result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_alerting_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in promtool("check", "rules", str(RULES))


def test_the_alerts_fire_on_the_series_that_should_raise_them() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(DEPLOY / "prometheus" / "rules.test.yml"))


def test_the_prometheus_config_is_valid() -> None:
    promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))


def test_the_rules_cover_queue_lag_ttft_upstream_errors_and_idle_workers() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert {
        "TokenRelayQueueLagGrowing",
        "TokenRelayTimeToFirstTokenHigh",
        "TokenRelayUpstreamErrorRatioHigh",
        "TokenRelayNoWorkersConsuming",
    } <= alerts


def _rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _dashboard_expressions() -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield from (target["expr"] for target in panel.get("targets", []))
            yield from walk(panel.get("panels", []))

    return list(walk(json.loads(DASHBOARD.read_text())["panels"]))


@pytest.fixture
async def worker_metrics_url(settings: Settings, redis: AnyRedis) -> AsyncIterator[str]:
    port = free_port()
    runner = await serve_metrics(WorkerMetrics(settings, "w"), redis, "127.0.0.1", port)
    assert runner is not None
    yield f"http://127.0.0.1:{port}/metrics"
    await runner.cleanup()


async def test_every_metric_the_rules_and_dashboard_use_is_exported(
    gateway: TestClient[Any, Any], worker_metrics_url: str, http: aiohttp.ClientSession
) -> None:
    """Exported by a fresh gateway or worker, before any traffic: a query never waits for a
    series that no process declares."""
    exported = (await scrape(http, str(gateway.make_url("/metrics")))).series_names()
    exported |= (await scrape(http, worker_metrics_url)).series_names()
    recorded = {
        rule["record"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    rule_exprs, dashboard_exprs = _rule_expressions(), _dashboard_expressions()
    assert len(dashboard_exprs) >= 30
    used = {name for expr in rule_exprs + dashboard_exprs for name in _OUR_METRIC.findall(expr)}
    assert used, "no tokenrelay_ metric found in the rules and dashboard"
    assert sorted(used - exported) == []
    recorded_used = {name for expr in rule_exprs for name in _RECORDED.findall(expr)}
    assert recorded_used <= recorded
