"""`megaplane controller-manager` processes against a real `megaplane apiserver` (and `megaplane up`).

Leader election between real processes: exactly one leads (the Lease's
holder, `leader_election_master_status` on every /metrics), kill -9 of the
leader hands over within a lease duration and a retry period, SIGTERM
releases the Lease so the standby takes over at once, a SIGSTOPped leader
is replaced and exits on SIGCONT instead of acting as leader, bad flags
exit 2. Short lease flags keep it fast; every wait polls for a state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar

import pytest

from tests.api.conftest import Cluster
from tests.etcd.conftest import free_port
from tests.fleet.conftest import eventually, server_in_tmp, start_server

LEASE = 3.0
RENEW = 2.0
RETRY = 0.5
SHORT = ["--leader-elect-lease-duration", f"{LEASE:g}s", "--leader-elect-renew-deadline", f"{RENEW:g}s",
         "--leader-elect-retry-period", f"{RETRY:g}s"]
#: wait.Jitter's most: a retry period plus 1.2 of it.
MOST_RETRY = RETRY * 2.2
#: Process scheduling on a shared 2-core machine, on top of the protocol's own bound.
SLACK = 3.0
#: The Lease of the current test: the API server is shared by the module, so each test elects on its own
#: (the first keeps upstream's default name).
LEASE_NAME = ["kube-controller-manager"]
_tests = iter(range(1_000_000))


F = TypeVar("F", bound=Callable[..., Any])


def default_lease(test: F) -> F:
    """This test elects on upstream's default Lease, kube-system/kube-controller-manager."""
    test.default_lease = True  # type: ignore[attr-defined]
    return test


@pytest.fixture(autouse=True)
def own_lease(request: pytest.FixtureRequest) -> None:
    default = getattr(request.function, "default_lease", False)
    LEASE_NAME[0] = "kube-controller-manager" if default else f"kcm-{next(_tests)}"


class Manager:
    """A `megaplane controller-manager` process: its identity (from its first line), /metrics, exit."""

    def __init__(self, proc: subprocess.Popen, log_path: str, port: int) -> None:
        self.proc = proc
        self.log_path = log_path
        self.port = port
        self.identity = ""

    def output(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def metric(self, name: str) -> Optional[float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(rf'^{name}{{name="{LEASE_NAME[0]}"}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else None

    def leading(self) -> bool:
        return self.metric("leader_election_master_status") == 1.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_manager(cluster: Cluster, name: str, args: List[str]) -> Manager:
    port = free_port()
    log_path = os.path.join(cluster.root, f"controller-manager-{name}.log")
    proc = subprocess.Popen(
        [sys.executable, "-m", "megaplane.cli", "controller-manager", "--kubeconfig", cluster.kubeconfig,
         "--bind-address", "127.0.0.1", "--port", str(port), "--leader-elect-resource-name", LEASE_NAME[0], *args],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    m = Manager(proc, log_path, port)
    try:
        eventually(lambda: "megaplane controller-manager: controllers" in m.output() or proc.poll() is not None,
                   f"controller-manager {name} to start", timeout=60)
    except AssertionError:
        m.stop()
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"controller-manager {name} exited with {proc.returncode}:\n{m.output()}")
    found = re.search(r"leader election on lease \S+ as (\S+?);", m.output())
    m.identity = found.group(1) if found else ""
    return m


def lease(cluster: Cluster) -> Dict[str, Any]:
    out = cluster.kubectl("get", "lease", "-n", "kube-system", LEASE_NAME[0], "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def holder(cluster: Cluster) -> str:
    return str((lease(cluster).get("spec") or {}).get("holderIdentity") or "")


@pytest.fixture(scope="module")
def api() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-cm-", "apiserver") as c:
        yield c


@pytest.fixture
def managers(api: Cluster) -> Iterator[List[Manager]]:
    started: List[Manager] = []
    try:
        yield started
    finally:
        for m in started:
            m.stop()


def two_managers(api: Cluster, managers: List[Manager], extra: List[str]) -> List[Manager]:
    for name in ("a", "b"):
        managers.append(start_manager(api, name, ["--controllers", "namespace", *extra]))
    ids = {m.identity for m in managers}
    assert len(ids) == 2 and all(re.fullmatch(r".+_[0-9a-f-]{36}", i) for i in ids)
    eventually(lambda: holder(api) in ids, "one of them to hold the lease")
    return managers


def leader_and_standby(api: Cluster, managers: List[Manager]) -> tuple:
    current = holder(api)
    leader = next(m for m in managers if m.identity == current)
    standby = next(m for m in managers if m.identity != current)
    return leader, standby


def leader_events(cluster: Cluster, lease_name: str = "") -> List[Dict[str, Any]]:
    out = json.loads(cluster.ok("get", "events", "-n", "kube-system", "-o", "json"))["items"]
    return [e for e in out if e.get("reason") == "LeaderElection"
            and e["involvedObject"]["name"] == (lease_name or LEASE_NAME[0])]


def became_leader(cluster: Cluster, identity: str, lease_name: str = "") -> Optional[Dict[str, Any]]:
    return next((e for e in leader_events(cluster, lease_name) if e["message"] == f"{identity} became leader"),
                None)


def namespace_gone(api: Cluster, name: str) -> bool:
    return api.kubectl("get", "ns", name).returncode != 0


@default_lease
def test_two_controller_managers_exactly_one_leads_and_its_controllers_run(api: Cluster,
                                                                          managers: List[Manager]) -> None:
    two_managers(api, managers, SHORT)
    leader, standby = leader_and_standby(api, managers)
    eventually(lambda: leader.leading() and standby.metric("leader_election_master_status") == 0.0,
               "the holder's gauge at 1 and the standby's at 0")
    # Several renewals later, still the same one, and the standby never led.
    first = lease(api)["spec"]
    eventually(lambda: lease(api)["spec"]["renewTime"] != first["renewTime"], "a renewal")
    assert holder(api) == leader.identity and lease(api)["spec"]["leaseTransitions"] == first["leaseTransitions"]
    assert "became leader" not in standby.output()
    assert "became leader" in leader.output()
    # Upstream's LeaderElection Event on the Lease, from the component's recorder.
    event = eventually(lambda: became_leader(api, leader.identity), "the leader's LeaderElection event")
    assert event["type"] == "Normal" and event["source"]["component"] == "kube-controller-manager"
    assert (event["involvedObject"]["kind"], event["involvedObject"]["name"]) == ("Lease", "kube-controller-manager")
    assert not any(standby.identity in e["message"] for e in leader_events(api))
    # The leader's namespace controller works: a deleted namespace goes away.
    api.ok("create", "ns", "cm-one")
    api.ok("delete", "ns", "cm-one", "--wait=false")
    eventually(lambda: namespace_gone(api, "cm-one"), "the namespace controller to finish cm-one")
    with urllib.request.urlopen(f"http://127.0.0.1:{leader.port}/healthz?verbose", timeout=5) as r:
        assert "[+]leaderElection ok" in r.read().decode()
    with urllib.request.urlopen(f"http://127.0.0.1:{standby.port}/readyz", timeout=5) as r:
        assert r.status == 200  # a standby is a healthy, ready process


def test_kill_9_of_the_leader_hands_over_within_a_lease_duration_and_a_retry_period(
        api: Cluster, managers: List[Manager]) -> None:
    two_managers(api, managers, SHORT)
    leader, standby = leader_and_standby(api, managers)
    transitions = lease(api)["spec"]["leaseTransitions"]
    leader.proc.kill()
    leader.proc.wait()
    eventually(lambda: holder(api) == standby.identity, "the standby to take the lease",
               timeout=LEASE + MOST_RETRY + SLACK)
    assert lease(api)["spec"]["leaseTransitions"] == transitions + 1
    eventually(standby.leading, "the new leader's gauge at 1")
    assert standby.metric("megaplane_leader_election_leader_changes_total") == 1.0
    eventually(lambda: became_leader(api, standby.identity), "the new leader's LeaderElection event")
    api.ok("create", "ns", "cm-two")
    api.ok("delete", "ns", "cm-two", "--wait=false")
    eventually(lambda: namespace_gone(api, "cm-two"), "the new leader's namespace controller to finish cm-two")


def test_sigterm_releases_the_lease_and_the_standby_takes_over_at_once(api: Cluster,
                                                                      managers: List[Manager]) -> None:
    # A long lease: without the release the standby would wait 30 s; it gets it on its next retry instead.
    two_managers(api, managers, ["--leader-elect-lease-duration", "30s", "--leader-elect-renew-deadline", "10s",
                                 "--leader-elect-retry-period", "0.5s"])
    leader, standby = leader_and_standby(api, managers)
    began = time.monotonic()
    leader.proc.terminate()
    assert leader.proc.wait(20) == 0
    eventually(lambda: holder(api) == standby.identity, "the standby to take the released lease",
               timeout=MOST_RETRY + SLACK)
    assert time.monotonic() - began < 30  # well inside the lease duration it would have waited otherwise
    eventually(standby.leading, "the new leader's gauge at 1")


def test_a_sigstopped_leader_is_replaced_and_exits_on_sigcont_without_leading(api: Cluster,
                                                                              managers: List[Manager]) -> None:
    two_managers(api, managers, SHORT)
    leader, standby = leader_and_standby(api, managers)
    os.kill(leader.proc.pid, signal.SIGSTOP)
    try:
        eventually(lambda: holder(api) == standby.identity, "the standby to take the expired lease",
                   timeout=LEASE + MOST_RETRY + SLACK)
        taken = lease(api)["spec"]
    finally:
        os.kill(leader.proc.pid, signal.SIGCONT)
    # Resumed past its renew deadline: it knows it no longer leads, stops its controllers and exits 1.
    assert leader.proc.wait(30) == 1
    assert "leaderelection lost" in leader.output()
    assert holder(api) == standby.identity
    spec = lease(api)["spec"]
    assert spec["leaseTransitions"] == taken["leaseTransitions"] and spec["acquireTime"] == taken["acquireTime"]
    eventually(standby.leading, "the new leader's gauge at 1")


def test_without_leader_election_the_controllers_start_at_once(api: Cluster, managers: List[Manager]) -> None:
    managers.append(start_manager(api, "solo", ["--controllers", "namespace", "--leader-elect=false"]))
    assert "no leader election" in managers[0].output()
    api.ok("create", "ns", "cm-three")
    api.ok("delete", "ns", "cm-three", "--wait=false")
    eventually(lambda: namespace_gone(api, "cm-three"), "the namespace controller to finish cm-three")
    assert holder(api) == ""


@pytest.mark.parametrize("flags, message", [
    (["--leader-elect-lease-duration", "10s"], "leaseDuration must be greater than renewDeadline"),
    (["--leader-elect-renew-deadline", "2s"], "renewDeadline must be greater than retryPeriod*JitterFactor"),
    (["--leader-elect-retry-period", "0s"], "retryPeriod must be greater than zero"),
])
def test_inconsistent_leader_election_flags_exit_2_with_a_clear_error(flags: List[str], message: str) -> None:
    for command in ("controller-manager", "scheduler"):
        r = subprocess.run([sys.executable, "-m", "megaplane.cli", command, "--kubeconfig", "/nonexistent", *flags],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert "invalid leader election flags" in r.stderr and message in r.stderr


def test_megaplane_up_elects_only_when_asked() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-cm-up-")
    up = start_server(root, "up", ["--nodes", "0", "--scheduler=false", "--controllers", "namespace"])
    try:
        assert holder(up) == "" and "while leading" not in open(os.path.join(root, "up.log")).read()
        up.ok("create", "ns", "cm-five")
        up.ok("delete", "ns", "cm-five", "--wait=false")
        eventually(lambda: namespace_gone(up, "cm-five"), "up's namespace controller to finish cm-five")
    finally:
        up.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_controller_manager_stands_by_against_megaplane_up_leader_elect() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-cm-up-")
    managers: List[Manager] = []
    up = start_server(root, "up", ["--nodes", "0", "--scheduler=false", "--controllers", "namespace",
                                   "--leader-elect", "--leader-elect-resource-name", LEASE_NAME[0], *SHORT])
    try:
        up_holder = holder(up)
        assert up_holder and LEASE_NAME[0] in up.ok("get", "lease", "-n", "kube-system")
        with urllib.request.urlopen(f"{up.url}/metrics", timeout=5) as r:
            assert f'leader_election_master_status{{name="{LEASE_NAME[0]}"}} 1.0' in r.read().decode()
        managers.append(start_manager(up, "standby", ["--controllers", "namespace", *SHORT]))
        standby = managers[0]
        first = lease(up)["spec"]["renewTime"]
        eventually(lambda: lease(up)["spec"]["renewTime"] != first, "up to renew")
        assert holder(up) == up_holder
        assert standby.metric("leader_election_master_status") == 0.0
        # up's own controllers lead: a deleted namespace goes away.
        up.ok("create", "ns", "cm-four")
        up.ok("delete", "ns", "cm-four", "--wait=false")
        eventually(lambda: namespace_gone(up, "cm-four"), "up's namespace controller to finish cm-four")
    finally:
        for m in managers:
            m.stop()
        up.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_megaplane_scheduler_elects_the_same_way_on_kube_scheduler(api: Cluster) -> None:
    """The same election in `megaplane scheduler` (issue 10 item 1): its own Lease and Event source."""
    procs: List[Manager] = []
    try:
        for name in ("a", "b"):
            log_path = os.path.join(api.root, f"scheduler-{name}.log")
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "megaplane.cli", "scheduler", "--kubeconfig", api.kubeconfig,
                 "--bind-address", "127.0.0.1", "--port", str(port), *SHORT],
                stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
            m = Manager(proc, log_path, port)
            procs.append(m)
            eventually(lambda m=m: "megaplane scheduler: scheduling" in m.output() or m.proc.poll() is not None,
                       f"scheduler {name} to start", timeout=60)
            assert proc.poll() is None, m.output()
            m.identity = re.search(r"leader election on lease kube-system/kube-scheduler as (\S+)$", m.output(),
                                   re.M).group(1)  # type: ignore[union-attr]

        def sched_holder() -> str:
            out = api.kubectl("get", "lease", "-n", "kube-system", "kube-scheduler", "-o", "json")
            return json.loads(out.stdout)["spec"].get("holderIdentity", "") if out.returncode == 0 else ""

        eventually(lambda: sched_holder() in {m.identity for m in procs}, "one scheduler to hold kube-scheduler")
        leader = next(m for m in procs if m.identity == sched_holder())
        standby = next(m for m in procs if m is not leader)
        assert holder(api) == ""  # the controller-manager's lease is another election
        leader.proc.kill()
        leader.proc.wait()
        eventually(lambda: sched_holder() == standby.identity, "the standby scheduler to take over",
                   timeout=LEASE + MOST_RETRY + SLACK)
        with urllib.request.urlopen(f"http://127.0.0.1:{standby.port}/metrics", timeout=5) as r:
            assert 'leader_election_master_status{name="kube-scheduler"} 1.0' in r.read().decode()
        event = eventually(lambda: became_leader(api, standby.identity, "kube-scheduler"),
                           "the scheduler's LeaderElection event")
        assert event["source"]["component"] == "default-scheduler"
        assert event["involvedObject"]["name"] == "kube-scheduler"
    finally:
        for m in procs:
            m.stop()


def test_a_leader_that_cannot_reach_the_api_server_stops_and_exits_and_a_restart_takes_over(
        api: Cluster, managers: List[Manager]) -> None:
    """Seed 002's stalled API server, from the election's side: the leader cannot renew, so it stops leading
    at its renew deadline and exits 1 while the server is still stopped; a restarted process takes over."""
    managers.append(start_manager(api, "a", ["--controllers", "namespace", *SHORT]))
    first = managers[0]
    eventually(lambda: holder(api) == first.identity, "a to hold the lease")
    os.kill(api.proc.pid, signal.SIGSTOP)
    try:
        code = eventually(lambda: first.proc.poll(), "the leader to exit while the API server is stopped",
                          timeout=LEASE + RENEW + SLACK)
        assert code == 1 and "leaderelection lost" in first.output()
    finally:
        os.kill(api.proc.pid, signal.SIGCONT)
    managers.append(start_manager(api, "b", ["--controllers", "namespace", *SHORT]))
    second = managers[1]
    eventually(lambda: holder(api) == second.identity, "the restarted process to take the lease",
               timeout=LEASE + MOST_RETRY + SLACK)
    eventually(second.leading, "its gauge at 1")
