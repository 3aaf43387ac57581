"""The operations kit: the alert rules and the dashboard name only metrics megaplane exports, and
`megaplane doctor` checks a running cluster (started as separate processes, as `megaplane bench` does).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List, Set

import pytest
import yaml

from megaplane.bench import promtext
from megaplane.bench.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "megaplane.json"

# PromQL words that are not metric names.
_PROMQL = {"sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left", "group_right",
           "bool", "and", "or", "unless", "offset", "rate", "increase", "irate", "changes", "histogram_quantile",
           "delta", "deriv", "abs", "clamp_min", "clamp_max", "topk", "bottomk", "time", "vector", "scalar"}
#: Prometheus's own series (not exported by any target).
_PROMETHEUS = {"up"}


def metric_names(expr: str) -> Set[str]:
    """Metric names an expression selects: identifiers outside label matchers, by-clauses and strings."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        word = m.group(0)
        rest = expr[m.end():].lstrip()
        if word in _PROMQL or rest.startswith("(") or re.fullmatch(r"[0-9e.]+", word):
            continue
        names.add(word)
    return names


def alert_rules() -> List[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> List[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_alert_rules_parse_with_seed_thresholds() -> None:
    rules = alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"] and rule["expr"].count("(") == rule["expr"].count(")")
    exprs = {r["alert"]: " ".join(r["expr"].split()) for r in rules}
    # Seed 003's thresholds and the API SLO.
    assert exprs["MegaplaneLeaderChangesHigh"].endswith("> 5")
    assert exprs["MegaplaneLeaseRenewFailures"].endswith("> 0.001")
    assert exprs["MegaplaneAPIResourceLatencyHigh"].endswith("> 1")
    assert exprs["MegaplaneAPIListLatencyHigh"].endswith("> 30")
    assert "apiserver_storage_objects" in exprs["MegaplaneObjectsAboveUpstreamThreshold"]


def test_metric_name_extraction() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (verb, le) (rate(a_bucket{verb!~"W|C"}[5m]))) > 1') == \
        {"a_bucket"}
    assert metric_names("max by (name) (increase(b_total[1d])) > 5 and up{job=\"x\"} == 0") == {"b_total", "up"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("opskit")
    c = Cluster(str(workdir), cpu_affinity=False)
    try:
        c.start_control_plane()
        c.start_fleets(3, 1, zones=1, lease_duration_seconds=4)
        yield c
    finally:
        c.stop()


def exported(cluster: Cluster) -> Set[str]:
    names: Set[str] = set()
    for p in cluster.processes:
        if p.metrics_url:
            try:
                names |= set(promtext.scrape(p.metrics_url))
            except OSError:
                pass  # a fleet serves /metrics once its nodes are registered
    return names


def test_every_alert_and_panel_metric_is_exported(cluster: Cluster) -> None:
    wanted = set().union(*(metric_names(r["expr"]) for r in alert_rules()),
                         *(metric_names(e) for e in dashboard_exprs())) - _PROMETHEUS
    # Series appear once they have observed something (a request, a renewal): poll until they all have.
    deadline = time.monotonic() + 60
    while True:
        urllib.request.urlopen(cluster.api_metrics_url.replace("/metrics", "/api/v1/nodes"), timeout=5).read()
        missing = wanted - exported(cluster)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"named by deploy/ but exported by no component: {sorted(missing)}"


def doctor(cluster: Cluster, *args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "megaplane.cli", "doctor", "--kubeconfig", cluster.kubeconfig, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_doctor_on_a_healthy_cluster(cluster: Cluster) -> None:
    assert cluster.controller_manager is not None and cluster.scheduler is not None
    cm = cluster.controller_manager.health_url.rsplit("/", 1)[0]
    deadline = time.monotonic() + 60
    while True:
        out = doctor(cluster, "--component-url", f"controller-manager={cm}", "--json")
        findings = json.loads(out.stdout)
        leaders = [f for f in findings if f["check"] == "leader election" and f["status"] == "ok"]
        if len(leaders) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert out.returncode == 0, out.stdout + out.stderr
    by_check = {}
    for f in findings:
        by_check.setdefault(f["check"], []).append(f)
    assert {f["status"] for f in by_check["apiserver health"]} == {"ok"}
    assert by_check["component health"][0]["status"] == "ok"
    assert {f["message"].split(":")[0] for f in leaders} >= {"kube-controller-manager", "kube-scheduler"}
    assert any("3 nodes" in f["message"] for f in by_check["object counts"])
    assert "3/3 nodes Ready" in by_check["node health"][0]["message"]
    assert by_check["management sizing"][0]["status"] == "ok"
    assert by_check["flow control"][0]["status"] == "ok"
    for check in ("events stored apart", "backups", "alert thresholds", "node heartbeats", "leader election settings"):
        assert check in by_check, check
    text = doctor(cluster)
    assert "[ ok ] apiserver health: /readyz ok" in text.stdout and "why:" in text.stdout


def test_doctor_fails_on_a_dead_component(cluster: Cluster) -> None:
    out = doctor(cluster, "--component-url", "scheduler=http://127.0.0.1:1")
    assert out.returncode == 1, out.stdout
    assert "[FAIL] component health: scheduler: /readyz answered nothing" in out.stdout
