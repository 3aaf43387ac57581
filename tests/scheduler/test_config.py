"""`megaplane scheduler --config`: KubeSchedulerConfiguration v1 decoding, defaulting, validation and profiles.

Unit tests check upstream's v1 defaults, every validation and framework error message written from
pkg/scheduler/apis/config/validation and the framework's plugin set-up, the multiPoint merge rules, the
NodeResourcesFit scoring strategies' per-node formulas and that an empty file gives exactly today's default
profile. End to end: `megaplane up --nodes 3 --scheduler=false` plus a `megaplane scheduler --config`
process with three profiles, each placing the pods that name it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Dict, Iterator, Optional

import numpy as np
import pytest

from megaplane.scheduler.algorithm import Algorithm
from megaplane.scheduler.config import ConfigError, load, parse_go_duration
from megaplane.scheduler.podspec import parse_pod
from megaplane.scheduler.profile import (
    DEFAULT_PROFILE,
    SCORE_WEIGHTS,
    ScoringStrategy,
    fit_score,
    score_nodes,
)
from megaplane.scheduler.topologyspread import SYSTEM_DEFAULT_CONSTRAINTS
from tests.api.conftest import Cluster
from tests.fleet.conftest import Fleet, eventually, start_server
from tests.scheduler.test_plugins import node, pod, table_of
from tests.scheduler.test_up import FLEET_FLAGS, get_pod, pod_manifest, unschedulable_message

HEAD = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"


def cfg(body: Any = None, **flags: Any) -> Any:
    doc: Dict[str, Any] = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"}
    doc.update(body or {})
    return load(json.dumps(doc), flags or None)


def error(body: Any) -> str:
    with pytest.raises(ConfigError) as info:
        cfg(body)
    return str(info.value)


def one_profile(**profile: Any) -> Dict[str, Any]:
    return {"profiles": [{"schedulerName": "default-scheduler", **profile}]}


# -- defaults ---------------------------------------------------------------------------------------

def test_an_empty_configuration_is_todays_default_profile() -> None:
    c = load(HEAD)
    assert c.scheduler_names == ("default-scheduler",)
    assert c.profiles[0] == DEFAULT_PROFILE
    assert c.profiles[0].filter_names == ("NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity",
                                          "NodePorts", "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity")
    assert dict(c.profiles[0].score_weights) == SCORE_WEIGHTS
    assert c.profiles[0].preemption and c.profiles[0].default_spread_constraints == SYSTEM_DEFAULT_CONSTRAINTS
    # Upstream's full score list (ImageLocality and VolumeBinding score 0 here and are left out of the sum).
    assert c.plugins[0]["score"] == [("TaintToleration", 3), ("NodeAffinity", 2), ("NodeResourcesFit", 1),
                                     ("VolumeBinding", 1), ("PodTopologySpread", 2), ("InterPodAffinity", 2),
                                     ("NodeResourcesBalancedAllocation", 1), ("ImageLocality", 1)]
    assert c.plugins[0]["queueSort"] == [("PrioritySort", 0)] and c.plugins[0]["bind"] == [("DefaultBinder", 0)]
    assert c.plugins[0]["postFilter"] == [("DefaultPreemption", 0)]
    assert (c.percentage_of_nodes_to_score, c.pod_initial_backoff_seconds, c.pod_max_backoff_seconds,
            c.parallelism) == (0, 1, 10, 16)
    le = c.leader_election
    assert (le.leader_elect, le.lease_duration, le.renew_deadline, le.retry_period, le.resource_lock,
            le.resource_name, le.resource_namespace) == (True, 15.0, 10.0, 2.0, "leases", "kube-scheduler",
                                                         "kube-system")
    assert (c.client_connection.qps, c.client_connection.burst) == (50.0, 100)


def test_the_default_profile_schedules_as_before() -> None:
    t = table_of(node("n0"), node("n1", cpu="8"), node("n2", memory="4Gi", taints=[
        {"key": "k", "value": "v", "effect": "PreferNoSchedule"}]))
    t.add_pod(parse_pod(pod("e", cpu="1", memory="1Gi")), "n0")
    p = parse_pod(pod(cpu="500m", memory="512Mi", affinity={"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                                "values": ["n2"]}]}}]}}))
    cand = np.arange(3)
    configured = load(HEAD).profiles[0]
    assert list(score_nodes(t, p, cand, configured)) == list(score_nodes(t, p, cand))
    a, b = Algorithm(t), Algorithm(t, profiles={"default-scheduler": configured})
    assert a.diagnose(p) == b.diagnose(p) and list(a.statuses(p)) == list(b.statuses(p))


def test_a_single_profile_without_a_name_is_default_scheduler_but_not_one_of_several() -> None:
    assert cfg({"profiles": [{}]}).scheduler_names == ("default-scheduler",)
    assert error({"profiles": [{"schedulerName": "a"}, {}]}) == "profiles[1].schedulerName: Required value"


def test_durations_are_go_durations() -> None:
    assert parse_go_duration("1m30s") == 90.0 and parse_go_duration("1500ms") == 1.5
    assert error({"leaderElection": {"leaseDuration": "15"}}) == 'time: invalid duration "15"'


# -- plugins: merge, expansion, weights -------------------------------------------------------------

def test_disabling_a_filter_keeps_the_plugin_at_its_other_extension_points() -> None:
    p = cfg(one_profile(plugins={"filter": {"disabled": [{"name": "TaintToleration"}]}})).profiles[0]
    assert "TaintToleration" not in p.filter_names and p.score_weights["TaintToleration"] == 3


def test_a_points_own_weight_overrides_multipoint_and_zero_means_one() -> None:
    c = cfg(one_profile(plugins={"score": {"enabled": [{"name": "NodeResourcesFit", "weight": 5},
                                                       {"name": "PodTopologySpread"}]}}))
    assert c.profiles[0].score_weights["NodeResourcesFit"] == 5
    assert c.profiles[0].score_weights["PodTopologySpread"] == 1
    # Part 1 of the expansion order: the overriding plugins first, in the point's own order.
    assert [n for n, _ in c.plugins[0]["score"]][:2] == ["NodeResourcesFit", "PodTopologySpread"]


def test_multipoint_weights_reconfigure_a_default_in_place() -> None:
    c = cfg(one_profile(plugins={"multiPoint": {"enabled": [{"name": "TaintToleration", "weight": 7}]}}))
    assert c.profiles[0].score_weights["TaintToleration"] == 7
    assert c.profiles[0].filter_names == DEFAULT_PROFILE.filter_names


def test_star_disables_every_default_of_a_point() -> None:
    c = cfg(one_profile(plugins={"score": {"disabled": [{"name": "*"}],
                                           "enabled": [{"name": "NodeResourcesFit", "weight": 2}]},
                                 "postFilter": {"disabled": [{"name": "*"}]}}))
    assert dict(c.profiles[0].score_weights) == {"NodeResourcesFit": 2}
    assert not c.profiles[0].preemption and c.profiles[0].filter_names == DEFAULT_PROFILE.filter_names


def test_multipoint_star_with_explicit_plugins() -> None:
    c = cfg(one_profile(plugins={"multiPoint": {"disabled": [{"name": "*"}], "enabled": [
        {"name": "SchedulingGates"}, {"name": "PrioritySort"}, {"name": "NodeName"},
        {"name": "NodeResourcesFit", "weight": 3}, {"name": "DefaultBinder"}]}}))
    p = c.profiles[0]
    assert p.filter_names == ("NodeName", "NodeResourcesFit") and dict(p.score_weights) == {"NodeResourcesFit": 3}
    assert not p.preemption


@pytest.mark.parametrize("plugins, message", [
    ({"filter": {"enabled": [{"name": "Nope"}]}}, 'FilterPlugin "Nope" does not exist'),
    ({"multiPoint": {"enabled": [{"name": "Nope"}]}}, 'PreFilterPlugin "Nope" does not exist'),
    ({"score": {"enabled": [{"name": "NodeName"}]}}, 'plugin "NodeName" does not extend ScorePlugin plugin'),
    ({"filter": {"enabled": [{"name": "NodePorts"}, {"name": "NodePorts"}]}},
     'plugin "NodePorts" already registered as "FilterPlugin"'),
    ({"queueSort": {"disabled": [{"name": "*"}]}},
     'only one queue sort plugin required for profile with scheduler name "default-scheduler", but got 0'),
    ({"bind": {"disabled": [{"name": "DefaultBinder"}]}},
     'at least one bind plugin is needed for profile with scheduler name "default-scheduler"'),
])
def test_framework_errors(plugins: Dict[str, Any], message: str) -> None:
    assert error(one_profile(plugins=plugins)) == \
        f"initializing profiles: creating profile for scheduler name default-scheduler: {message}"


# -- validation -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ({"percentageOfNodesToScore": 101}, "percentageOfNodesToScore: Invalid value: 101: not in valid range [0-100]"),
    ({"podInitialBackoffSeconds": 0}, "podInitialBackoffSeconds: Invalid value: 0: must be greater than 0"),
    ({"podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 2},
     "podMaxBackoffSeconds: Invalid value: 2: must be greater than or equal to PodInitialBackoffSeconds"),
    ({"parallelism": 0}, "parallelism: Invalid value: 0: should be an integer value greater than zero"),
    ({"clientConnection": {"burst": -1}}, "clientConnection.burst: Invalid value: -1: must be non-negative"),
    ({"leaderElection": {"leaseDuration": "5s"}},
     'leaderElection.leaseDuration: Invalid value: "10s": LeaseDuration must be greater than RenewDeadline'),
    ({"leaderElection": {"resourceLock": "endpoints"}},
     'leaderElection.resourceLock: Invalid value: "endpoints": resourceLock value must be "leases"'),
    ({"profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]}, "profiles[1].schedulerName: Duplicate value: {}"),
    (one_profile(percentageOfNodesToScore=-1),
     "profiles[0].percentageOfNodesToScore: Invalid value: -1: not in valid range [0-100]"),
    (one_profile(plugins={"filter": {"enabled": [{"name": "EBSLimits"}]}}),
     'profiles[0].plugins.filter.enabled[0]: Invalid value: "EBSLimits": was invalid in version '
     '"kubescheduler.config.k8s.io/v1" (KubeSchedulerConfiguration is version "kubescheduler.config.k8s.io/v1")'),
    (one_profile(pluginConfig=[{"name": "InterPodAffinity", "args": {"hardPodAffinityWeight": 101}}]),
     "profiles[0].pluginConfig[0].args.hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]"),
    (one_profile(pluginConfig=[{"name": "InterPodAffinity"}, {"name": "InterPodAffinity"}]),
     'profiles[0].pluginConfig[1]: Duplicate value: "InterPodAffinity"'),
    (one_profile(pluginConfig=[{"name": "PodTopologySpread", "args": {"defaultingType": "Other"}}]),
     'profiles[0].pluginConfig[0].args.defaultingType: Unsupported value: "Other": supported values: "System", "List"'),
    (one_profile(pluginConfig=[{"name": "PodTopologySpread", "args": {"defaultConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}}]),
     'profiles[0].pluginConfig[0].args.defaultingType: Invalid value: "System": when .defaultConstraints are not empty'),
    (one_profile(pluginConfig=[{"name": "PodTopologySpread", "args": {"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}]}}]),
     "[profiles[0].pluginConfig[0].args.defaultConstraints[0].maxSkew: Invalid value: 0: not in valid range (0, inf), "
     'profiles[0].pluginConfig[0].args.defaultConstraints[0].whenUnsatisfiable: Unsupported value: "Maybe": '
     'supported values: "DoNotSchedule", "ScheduleAnyway"]'),
    (one_profile(pluginConfig=[{"name": "PodTopologySpread", "args": {"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}}]}}]),
     "profiles[0].pluginConfig[0].args.defaultConstraints[0].labelSelector: Forbidden: constraint must not define a "
     "selector, as they deduced for each pod"),
    (one_profile(pluginConfig=[{"name": "DefaultPreemption", "args": {"minCandidateNodesPercentage": 0,
                                                                      "minCandidateNodesAbsolute": 0}}]),
     "[profiles[0].pluginConfig[0].args.minCandidateNodesPercentage: Invalid value: 0: cannot be zero at the same "
     "time as minCandidateNodesAbsolute, profiles[0].pluginConfig[0].args.minCandidateNodesAbsolute: Invalid value: "
     "0: cannot be zero at the same time as minCandidateNodesPercentage]"),
    (one_profile(pluginConfig=[{"name": "NodeResourcesBalancedAllocation", "args": {"resources": [
        {"name": "cpu", "weight": 2}]}}]),
     "profiles[0].pluginConfig[0].args.resources[0].weight: Invalid value: 2: must be 1"),
    (one_profile(pluginConfig=[{"name": "NodeAffinity", "args": {"addedAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}}}]),
     "profiles[0].pluginConfig[0].args.addedAffinity.requiredDuringSchedulingIgnoredDuringExecution."
     "nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or "
     "'NotIn'"),
    ({"percentageOfNodesToScore": 101, "podInitialBackoffSeconds": -1},
     "[percentageOfNodesToScore: Invalid value: 101: not in valid range [0-100], podInitialBackoffSeconds: "
     "Invalid value: -1: must be greater than 0]"),
])
def test_validation_messages(body: Dict[str, Any], message: str) -> None:
    assert error(body) == message


_FIT = "initializing profiles: creating profile for scheduler name default-scheduler: initializing plugin " \
       "\"NodeResourcesFit\": "


@pytest.mark.parametrize("strategy, message", [
    ({"type": "Foo"}, 'scoringStrategy.type: Unsupported value: "Foo": supported values: "LeastAllocated", '
                      '"MostAllocated", "RequestedToCapacityRatio"'),
    ({"type": "MostAllocated", "resources": [{"name": "cpu", "weight": 101}]},
     "scoringStrategy.resources[0].weight: Invalid value: 101: resource weight of cpu not in valid range (0, 100]"),
    ({"type": "RequestedToCapacityRatio"}, "scoringStrategy.requestedToCapacityRatio: Required value: must be "
                                           "specified when type is RequestedToCapacityRatio"),
    ({"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": [
        {"utilization": 50, "score": 1}, {"utilization": 10, "score": 11}]}},
     "[scoringStrategy.requestedToCapacityRatio.shape[1].utilization: Invalid value: 10: values must be sorted in "
     "increasing order, scoringStrategy.requestedToCapacityRatio.shape[1].score: Invalid value: 11: not in valid "
     "range [0, 10]]"),
    # A given scoringStrategy is not defaulted: its type stays empty.
    ({"resources": [{"name": "cpu"}]}, 'scoringStrategy.type: Unsupported value: "": supported values: '
                                       '"LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"'),
    ({"type": "LeastAllocated", "requestedToCapacityRatio": {"shape": []}},
     "scoringStrategy.requestedToCapacityRatio: Forbidden: must be nil when type is not RequestedToCapacityRatio"),
])
def test_node_resources_fit_args_are_validated_by_the_plugin(strategy: Dict[str, Any], message: str) -> None:
    body = one_profile(pluginConfig=[{"name": "NodeResourcesFit", "args": {"scoringStrategy": strategy}}])
    assert error(body) == _FIT + message


@pytest.mark.parametrize("text, message", [
    (HEAD + "percentageOfNodeToScore: 100\n", 'strict decoding error: unknown field "percentageOfNodeToScore"'),
    (HEAD + "profiles:\n- schedulerNme: x\n", 'strict decoding error: unknown field "profiles[0].schedulerNme"'),
    (HEAD + "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n"
            "        resourcess: []\n",
     'strict decoding error: decoding args for plugin NodeResourcesFit: strict decoding error: unknown field '
     '"scoringStrategy.resourcess"'),
    (HEAD + "percentageOfNodesToScore: lots\n", "json: cannot unmarshal string into Go struct field "
                                                "KubeSchedulerConfiguration.percentageOfNodesToScore of type int32"),
    ("apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n",
     'no kind "KubeSchedulerConfiguration" is registered for version "kubescheduler.config.k8s.io/v1beta3" in scheme '
     '"pkg/scheduler/apis/config/scheme/scheme.go:30"'),
    ("apiVersion: kubescheduler.config.k8s.io/v1\n",
     "Object 'Kind' is missing in 'apiVersion: kubescheduler.config.k8s.io/v1'"),
])
def test_decoding_is_strict(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(text)
    assert str(info.value) == message


def test_json_files_are_read_as_json() -> None:
    c = load('{\n\t"apiVersion": "kubescheduler.config.k8s.io/v1",\n\t"kind": "KubeSchedulerConfiguration",\n'
             '\t"profiles": [{"schedulerName": "a"}, {"schedulerName": "b"}]\n}')
    assert c.scheduler_names == ("a", "b")


def test_explicit_leader_election_flags_win_over_the_file_and_are_validated_with_it() -> None:
    body = {"leaderElection": {"leaderElect": True, "resourceName": "from-file", "leaseDuration": "20s"}}
    c = cfg(body, resource_namespace="from-flag")
    assert (c.leader_election.resource_name, c.leader_election.resource_namespace,
            c.leader_election.lease_duration) == ("from-file", "from-flag", 20.0)
    with pytest.raises(ConfigError, match="LeaseDuration must be greater than RenewDeadline"):
        cfg(body, renew_deadline=30.0)


# -- plugin args onto the plugins ---------------------------------------------------------------------

def test_scoring_strategies_follow_upstreams_formulas() -> None:
    t = table_of(node("n0", cpu="4", memory="10000"), node("n1", cpu="4", memory="10000"))
    t.add_pod(parse_pod(pod("e", cpu="3", memory="5000")), "n0")
    p = parse_pod(pod(cpu="1", memory="1000"))
    cand = np.arange(2)
    # (cpu, memory) requested incl. the pod: n0 (4000, 6000), n1 (1000, 1000); allocatable (4000, 10000).
    most = fit_score(t, p, cand, ScoringStrategy("MostAllocated", (("cpu", 1), ("memory", 3))))
    assert list(most) == [(100 * 1 + 60 * 3) // 4, (25 * 1 + 10 * 3) // 4]
    least = fit_score(t, p, cand, ScoringStrategy("LeastAllocated", (("cpu", 2), ("memory", 1))))
    assert list(least) == [(0 * 2 + 40) // 3, (75 * 2 + 90) // 3]
    # Shape (0, 0) (100, 10) scaled by 10: the score is the utilization; math.Round of the weighted mean.
    ratio = fit_score(t, p, cand, ScoringStrategy("RequestedToCapacityRatio", (("cpu", 1), ("memory", 1)),
                                                  ((0, 0), (100, 10))))
    assert list(ratio) == [round((100 + 60) / 2), round((25 + 10) / 2 + 1e-9)]
    # A falling shape: Go's integer division truncates toward zero.
    falling = fit_score(t, p, cand, ScoringStrategy("RequestedToCapacityRatio", (("cpu", 1),), ((0, 10), (30, 0))))
    assert list(falling) == [0, 100 - (100 * 25) // 30]


def test_list_defaulting_and_hard_pod_affinity_weight_reach_the_profile() -> None:
    c = cfg(one_profile(pluginConfig=[
        {"name": "PodTopologySpread", "args": {"defaultingType": "List", "defaultConstraints": [
            {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}]}},
        {"name": "InterPodAffinity", "args": {"hardPodAffinityWeight": 7}}]))
    p = c.profiles[0]
    assert p.hard_pod_affinity_weight == 7
    assert [(x.max_skew, x.topology_key, x.when_unsatisfiable) for x in p.default_spread_constraints] == \
        [(2, "topology.kubernetes.io/zone", "ScheduleAnyway")]
    empty = cfg(one_profile(pluginConfig=[{"name": "PodTopologySpread", "args": {"defaultingType": "List"}}]))
    assert empty.profiles[0].default_spread_constraints == ()


def test_added_affinity_is_anded_with_the_pods_own() -> None:
    t = table_of(node("a", labels={"pool": "x", "disk": "ssd"}), node("b", labels={"pool": "x"}),
                 node("c", labels={"disk": "ssd"}))
    c = cfg({"profiles": [{"schedulerName": "pool-x", "pluginConfig": [{"name": "NodeAffinity", "args": {
        "addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["x"]}]}]}}}}]}]})
    algo = Algorithm(t, profiles={p.name: p for p in c.profiles})
    own = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]}}}
    ssd = parse_pod(pod(cpu="1", schedulerName="pool-x", affinity=own))
    assert [t.names[i] for i in np.flatnonzero(algo.feasible(ssd))] == ["a"]
    anywhere = parse_pod(pod(cpu="1", schedulerName="pool-x"))
    assert sorted(t.names[i] for i in np.flatnonzero(algo.feasible(anywhere))) == ["a", "b"]
    default = parse_pod(pod(cpu="1"))
    assert sorted(t.names[i] for i in np.flatnonzero(algo.feasible(default))) == ["a", "b", "c"]


# -- the command ----------------------------------------------------------------------------------

def _scheduler(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([sys.executable, "-m", "megaplane.cli", "scheduler", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_a_bad_config_file_exits_1_before_starting(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "profiles:\n- schedulerName: a\n  plugins:\n    filter:\n      enabled:\n"
                          "      - name: Nope\n")
    r = _scheduler("--kubeconfig", "/nonexistent", "--config", str(bad))
    assert r.returncode == 1
    assert r.stderr.strip() == 'Error: initializing profiles: creating profile for scheduler name a: FilterPlugin ' \
                               '"Nope" does not exist'
    assert "megaplane scheduler:" not in r.stdout
    r = _scheduler("--kubeconfig", "/nonexistent", "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 1 and "no such file or directory" in r.stderr
    good = tmp_path / "good.yaml"
    good.write_text(HEAD)
    r = _scheduler("--kubeconfig", "/nonexistent", "--config", str(good), "--scheduler-name", "x")
    assert r.returncode == 2 and "cannot be combined with --config" in r.stderr


# -- end to end -------------------------------------------------------------------------------------

CONFIG = {
    "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
    "leaderElection": {"leaderElect": True, "resourceName": "configured-scheduler", "leaseDuration": "15s"},
    "podInitialBackoffSeconds": 1, "podMaxBackoffSeconds": 2,
    "profiles": [
        {"schedulerName": "default-scheduler",
         "plugins": {"score": {"disabled": [{"name": "NodeResourcesBalancedAllocation"}]}},
         "pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {
             "type": "MostAllocated", "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]}}}]},
        {"schedulerName": "spread-scheduler"},
        {"schedulerName": "taint-blind-scheduler", "plugins": {"filter": {"disabled": [{"name": "TaintToleration"}]}}},
    ],
}


@pytest.fixture(scope="module")
def configured() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-scheduler-config-")
    c = start_server(root, "up", ["--nodes", "3", "--scheduler=false", *FLEET_FLAGS])
    sched: Optional[Fleet] = None
    try:
        eventually(lambda: len(c.ok("get", "nodes", "--no-headers").splitlines()) == 3, "3 nodes")
        path = os.path.join(root, "scheduler.yaml")
        with open(path, "w") as f:
            json.dump(CONFIG, f)
        log_path = os.path.join(root, "scheduler.log")
        with open(log_path, "w") as log:
            # --leader-elect-resource-namespace is given: it wins over the file (whose name is kept).
            proc = subprocess.Popen([sys.executable, "-m", "megaplane.cli", "scheduler", "--kubeconfig", c.kubeconfig,
                                     "--config", path, "--leader-elect-resource-namespace", "default"],
                                    stdout=log, stderr=subprocess.STDOUT)
        sched = Fleet(proc, log_path)
        eventually(lambda: "scheduling pods of" in sched.output() or proc.poll() is not None,  # type: ignore[union-attr]
                   "the scheduler to start", timeout=60)
        if proc.poll() is not None:
            raise RuntimeError(f"megaplane scheduler exited with {proc.returncode}:\n{sched.output()}")
        yield c
    finally:
        if sched is not None:
            sched.stop()
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def node_of(c: Cluster, name: str) -> Optional[str]:
    return get_pod(c, name)["spec"].get("nodeName")


def test_each_profile_places_the_pods_that_name_it(configured: Cluster) -> None:
    c = configured
    lease = eventually(lambda: json.loads(c.ok("get", "lease", "-n", "default", "configured-scheduler", "-o", "json")),
                       "the lease of the file's name in the flag's namespace")
    assert lease["spec"]["holderIdentity"]
    # spread-scheduler (LeastAllocated, the defaults): three pods on three nodes.
    for i in range(3):
        c.ok("apply", "-f", "-", input=pod_manifest(f"spread-{i}", cpu="500m", schedulerName="spread-scheduler"))
    spread = [eventually(lambda i=i: node_of(c, f"spread-{i}"), f"spread-{i} bound") for i in range(3)]
    assert len(set(spread)) == 3
    # default-scheduler (MostAllocated): four pods packed onto one node.
    for i in range(4):
        c.ok("apply", "-f", "-", input=pod_manifest(f"pack-{i}", cpu="500m"))
    packed = [eventually(lambda i=i: node_of(c, f"pack-{i}"), f"pack-{i} bound") for i in range(4)]
    assert len(set(packed)) == 1
    events = json.loads(c.ok("get", "events", "-o", "json", "--field-selector",
                             "involvedObject.name=pack-0,reason=Scheduled"))["items"]
    assert events and events[0]["message"] == f"Successfully assigned default/pack-0 to {packed[0]}"
    assert events[0]["reportingComponent"] == "default-scheduler"
    # Each profile's events report as its schedulerName.
    spread_events = eventually(lambda: json.loads(c.ok("get", "events", "-o", "json", "--field-selector",
                                                       "involvedObject.name=spread-0,reason=Scheduled"))["items"],
                               "a Scheduled event for spread-0")
    assert spread_events[0]["reportingComponent"] == "spread-scheduler"


def test_a_profile_without_taint_toleration_schedules_onto_a_tainted_node(configured: Cluster) -> None:
    c = configured
    c.ok("taint", "node", "node-0", "dedicated=gpu:NoSchedule")
    try:
        pin = {"nodeSelector": {"kubernetes.io/hostname": "node-0"}}
        c.ok("apply", "-f", "-", input=pod_manifest("blind", cpu="100m", schedulerName="taint-blind-scheduler", **pin))
        c.ok("apply", "-f", "-", input=pod_manifest("careful", cpu="100m", **pin))
        assert eventually(lambda: node_of(c, "blind"), "blind bound") == "node-0"
        message = eventually(lambda: unschedulable_message(c, "careful"), "careful Unschedulable")
        assert "1 node(s) had untolerated taint {dedicated: gpu}" in message
        assert node_of(c, "careful") is None
    finally:
        c.ok("taint", "node", "node-0", "dedicated-")
        c.ok("delete", "pods", "--all", "--wait=false")
