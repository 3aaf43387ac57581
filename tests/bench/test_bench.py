"""`megaplane bench` as a process at tiny sizes: each scenario exits 0 with every measurement and plot, and
a run whose SLO cannot be met exits 1.

Sizes are small (20-30 nodes, a few seconds held), and the stall and the zone outage use short grace periods
so that they mean something: the stall lasts longer than --node-monitor-grace-period (a controller that held
the API server's outage against the nodes would mark them NotReady), and the zone's nodes are tainted at
5 nodes/s instead of 0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from megaplane.bench.report import PLOTS

ROOT = Path(__file__).resolve().parents[2]
MEASUREMENTS = ("WaitForNodes", "APIResponsivenessPrometheus", "PodStartupLatency", "SchedulingThroughput",
                "LeaseRenewal", "NodeHealth", "ResourceUsageSummary", "ComponentRestarts")
FAST = ["--node-lease-duration-seconds", "4", "--scrape-interval", "1s", "--timeout", "120s"]


def bench(tmp_path: Path, *args: str, timeout: float = 240) -> "tuple[int, str, Dict[str, Any]]":
    """Run `megaplane bench ARGS --report DIR`; (exit code, output, results.json)."""
    report = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "megaplane.cli", "bench", *args, *FAST, "--report", str(report)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the bench and every component it started
        out, _ = proc.communicate()
        pytest.fail(f"megaplane bench {' '.join(args)} did not finish in {timeout}s:\n{out[-4000:]}")
    results = json.loads((report / "results.json").read_text()) if (report / "results.json").exists() else {}
    return proc.returncode, out, results


def check_report(tmp_path: Path, results: Dict[str, Any]) -> None:
    for name in MEASUREMENTS:
        assert name in results["measurements"], name
    html = (tmp_path / "report" / "report.html").read_text()
    for title in PLOTS:
        assert f'alt="{title}"' in html, title
    assert html.count("data:image/png;base64,") == len(PLOTS)
    assert "<table>" in html and all(s["name"] in html for s in results["slos"])
    json.dumps(results, allow_nan=False)


def slo(results: Dict[str, Any], measurement: str, name: str) -> Dict[str, Any]:
    found: List[Dict[str, Any]] = [s for s in results["slos"] if s["measurement"] == measurement and s["name"] == name]
    assert found, (measurement, name, results["slos"])
    return found[0]


def test_leases(tmp_path: Path) -> None:
    code, out, results = bench(tmp_path, "leases", "--nodes", "30", "--processes", "2", "--duration", "3s")
    assert code == 0, out[-4000:]
    check_report(tmp_path, results)
    assert results["passed"] and results["measurements"]["NodeHealth"]["ready"] == 30
    lease = results["measurements"]["LeaseRenewal"]
    assert lease["fleet_processes"] == 2 and lease["renewals"] > 0 and lease["failures"] == 0
    calls = {(c["verb"], c["resource"]) for c in results["measurements"]["APIResponsivenessPrometheus"]["calls"]}
    assert ("PUT", "leases") in calls
    assert "registering" in out and "holding" in out


def test_leases_without_the_scheduler(tmp_path: Path) -> None:
    code, out, results = bench(tmp_path, "leases", "--nodes", "10", "--duration", "2s", "--without", "scheduler")
    assert code == 0, out[-4000:]
    assert results["measurements"]["NodeHealth"]["ready"] == 10
    components = results["measurements"]["ResourceUsageSummary"]["components"]
    assert "scheduler" not in components and "controller-manager" in components and "apiserver" in components


def test_without_the_scheduler_refuses_pods(tmp_path: Path) -> None:
    code, out, _ = bench(tmp_path, "density", "--nodes", "2", "--without", "scheduler")
    assert code == 2 and "--without scheduler" in out


def test_impossible_threshold_fails(tmp_path: Path) -> None:
    code, out, results = bench(tmp_path, "leases", "--nodes", "20", "--duration", "2s",
                               "--api-resource-threshold", "0s")
    assert code == 1, out[-4000:]
    assert not results["passed"]
    failed = slo(results, "APIResponsivenessPrometheus", "worst resource-scoped p99")
    assert not failed["pass"] and failed["value"] > 0
    assert "SLO FAILED" in out


def test_density(tmp_path: Path) -> None:
    code, out, results = bench(tmp_path, "density", "--nodes", "20", "--pods-per-node", "5", "--duration", "3s")
    assert code == 0, out[-4000:]
    check_report(tmp_path, results)
    startup = results["measurements"]["PodStartupLatency"]
    assert startup["pod_startup"]["count"] == 100 and startup["not_started"]["count"] == 0
    for transition in ("create_to_schedule", "schedule_to_run", "run_to_watch", "schedule_to_watch"):
        assert startup[transition]["count"] == 100
    assert slo(results, "PodStartupLatency", "pod_startup p99")["pass"]
    assert results["measurements"]["SchedulingThroughput"]["pods_scheduled"] == 100
    # The pods-by-phase plot's data: all Running by the end.
    assert max(v for v in results["series"]["per_second"]["pods_Running"] if v is not None) == 100


def test_density_paces_deployments_at_the_pod_creation_rate(tmp_path: Path) -> None:
    code, out, results = bench(tmp_path, "density", "--nodes", "10", "--pods-per-node", "4", "--deployment-replicas",
                               "10", "--pod-creation-rate", "10", "--duration", "1s")
    assert code == 0, out[-4000:]
    creation = results["measurements"]["PodCreation"]
    assert creation["deployments"] == 4 and creation["rate"] == 10
    # The 4th Deployment of 10 pods is due 3 s in: 30 pods before it at 10 pods/s.
    assert creation["deployments_created_s"] >= 3.0
    assert results["measurements"]["SchedulingThroughput"]["pods_scheduled"] == 40
    assert "at 10 pods/s" in out


def test_load(tmp_path: Path) -> None:
    code, out, results = bench(tmp_path, "load", "--nodes", "20", "--pods-per-node", "2", "--deployment-replicas",
                               "5", "--rate", "4", "--duration", "4s")
    assert code == 0, out[-4000:]
    check_report(tmp_path, results)
    churn = results["measurements"]["Churn"]["operations"]
    assert churn["create"] + churn["scale"] + churn["delete"] >= 8 and churn["failed"] == 0
    # Pods created by the churn were timed too, beyond the 40 initial ones.
    assert results["measurements"]["PodStartupLatency"]["pod_startup"]["count"] > 40


def test_stall(tmp_path: Path) -> None:
    code, out, results = bench(tmp_path, "stall", "--nodes", "20", "--duration", "6s", "--stall-duration", "5s",
                               "--node-monitor-grace-period", "3s", "--node-monitor-period", "1s")
    assert code == 0, out[-4000:]
    check_report(tmp_path, results)
    stall = results["measurements"]["Stall"]
    assert stall["stall_seconds"] == 5
    assert slo(results, "NodeHealth", "NotReady transitions")["value"] == 0
    assert slo(results, "NodeHealth", "evictions")["value"] == 0
    assert "stall_start" in results["marks"] and "stall_end" in results["marks"]
    if stall["node_lifecycle_controller"]:
        # The stall outlasted the grace period: meaningful only then.
        assert stall["stall_seconds"] > stall["node_monitor_grace_period"]


def test_zone_outage(tmp_path: Path) -> None:
    code, out, results = bench(tmp_path, "zone-outage", "--nodes", "30", "--zones", "3", "--duration", "3s",
                               "--node-monitor-grace-period", "3s", "--node-monitor-period", "1s",
                               "--node-eviction-rate", "5", "--pod-toleration-seconds", "2")
    assert code == 0, out[-4000:]
    check_report(tmp_path, results)
    zone = results["measurements"]["ZoneOutage"]
    assert zone["zone_nodes"] == 10 and zone["not_ready_outside_zone"] == 0
    if zone["node_lifecycle_controller"]:
        assert zone["time_to_not_ready_s"]["count"] == 10 and zone["time_to_taint_s"]["count"] == 10
        assert zone["pods_evicted_in_zone"] >= 1
        assert slo(results, "ZoneOutage", "taint rate nodes/s")["pass"]
    else:
        assert any("absent" in n for n in results["notes"])
    assert slo(results, "ZoneOutage", "evictions outside zone a")["value"] == 0


def test_density_attached_to_a_running_cluster(tmp_path: Path) -> None:
    """--kubeconfig: the bench starts only the fleet, scrapes the API server over TLS, and leaves the cluster
    without its nodes and namespace."""
    from megaplane.client import load_kubeconfig
    from tests.api.conftest import KUBECTL, start_megaplane

    root = tmp_path / "up"
    root.mkdir()
    up = start_megaplane(str(root), "up", ["--nodes", "0"])
    try:
        assert load_kubeconfig(up.kubeconfig).is_https
        code, out, results = bench(tmp_path, "density", "--kubeconfig", up.kubeconfig, "--nodes", "10",
                                   "--pods-per-node", "2", "--duration", "2s")
        assert code == 0, out[-4000:]
        check_report(tmp_path, results)
        assert "attaching" in out
        assert results["measurements"]["PodStartupLatency"]["pod_startup"]["count"] == 20
        assert results["measurements"]["APIResponsivenessPrometheus"]["calls"]
        components = results["measurements"]["ResourceUsageSummary"]["components"]
        assert "fleet" in components and "apiserver" not in components
        nodes = subprocess.run([KUBECTL, "--kubeconfig", up.kubeconfig, "get", "nodes", "-o", "name"],
                               capture_output=True, text=True, timeout=30)
        assert "bench-node-" not in nodes.stdout
    finally:
        up.stop()


def test_sigterm_stops_the_components_and_reports(tmp_path: Path) -> None:
    report = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "megaplane.cli", "bench", "leases", "--nodes", "10",
                             "--duration", "10m", *FAST, "--report", str(report)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # the run's progress lines, until it holds
            seen.append(line)
            if "holding:" in line:
                break
        assert any("holding:" in line for line in seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        out = "".join(seen) + proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 3, out[-3000:]
    results = json.loads((report / "results.json").read_text())
    assert results["error"] == "interrupted" and not results["passed"]
    # No component is left running: theirs are the only command lines naming the run's kubeconfig.
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(report).encode() in cmdline:
            leftovers.append(cmdline.replace(b"\0", b" ").decode())
    assert not leftovers
