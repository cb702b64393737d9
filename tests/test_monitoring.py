"""The monitoring profile's files: the Grafana dashboard asks only for metrics the product
exports and shows every one of them; Prometheus and Grafana are wired to each other."""

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.utils import floatToGoString

from common import metrics

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "im-assistant.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def exported() -> dict[str, str]:
    """Every sample name /metrics can carry, mapped to its metric's name."""
    return {
        family.name + suffix: family.name
        for family in REGISTRY.collect()
        if family.name.startswith("im_")
        for suffix in SUFFIXES[family.type]
    }


def panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found += [panel, *panel.get("panels", [])]
    return [panel for panel in found if panel["type"] != "row"]


def exprs(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel["targets"]]


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_every_panel_asks_for_metrics_the_product_exports(dashboard):
    names = exported()
    for panel in panels(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            asked = re.findall(r"\bim_[a-z_]+", target["expr"])
            assert asked, target["expr"]
            assert set(asked) <= set(names), (panel["title"], asked)


def test_the_dashboard_shows_every_metric(dashboard):
    shown = {
        exported()[name] for expr in exprs(dashboard) for name in re.findall(r"\bim_[a-z_]+", expr)
    }
    assert shown == set(exported().values())


def test_deadline_buckets_exist(dashboard):
    """A `le` the histogram lacks would match nothing and draw an empty panel."""
    buckets = {floatToGoString(bound) for bound in metrics.ACK_BUCKETS}
    asked = {le for expr in exprs(dashboard) for le in re.findall(r'le="([^"]+)"', expr)}
    assert asked and asked <= buckets


def test_panels_use_the_provisioned_datasource(dashboard):
    datasource = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == datasource["uid"]
    assert datasource["url"] == "http://prometheus:9090"


def test_the_compose_profile_loads_the_dashboard_and_scrapes_with_the_token():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    provider = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "im-assistant.yml").read_text()
    )["providers"][0]
    assert (
        f"./monitoring/grafana/dashboards:{provider['options']['path']}:ro"
        in (services["grafana"]["volumes"])
    )
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == ["web:8000"]
    token_file = scrape["authorization"]["credentials_file"]
    assert f'"$$METRICS_TOKEN" > {token_file}' in services["prometheus"]["command"][0]
