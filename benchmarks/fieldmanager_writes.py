"""What managedFields cost a write: the field manager's work per Lease renewal and per node heartbeat, in process.

    python benchmarks/fieldmanager_writes.py          # quick: < 30 s
    python benchmarks/fieldmanager_writes.py --full   # more repeats, plus a 50-container Deployment update

Each case is the registry's call on a write (`FieldManager.updated(old, new, manager)`) for the write the
fleet makes most: a Lease renewal by its holder (spec.renewTime moves) and a node heartbeat (the status
patch's five conditions get a new lastHeartbeatTime), after the first write made the writer the owner;
a pod's create (everything it sets is its creator's); and (--full) a Deployment of 50 containers whose image changes in one of them. Figures are the best of
many runs in microseconds (the machine is shared: the minimum is the cost, the rest is other load).

Reference measured in the same run: the write path's own JSON round trip of the same object
(orjson.loads of the stored bytes + orjson.dumps of the new object), which every write already pays.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import timeit
from typing import Any, Callable, Dict, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402

from megaplane.apiserver.fieldmanager import FieldManager  # noqa: E402

Obj = Dict[str, Any]


def lease_case() -> Tuple[FieldManager, Obj, Obj, str, str]:
    fm = FieldManager("coordination.k8s.io", "v1", "Lease", False)
    meta = {"name": "node-1", "namespace": "kube-node-lease", "uid": "6b1d", "resourceVersion": "5",
            "creationTimestamp": "2026-11-22T10:00:00Z"}
    lease: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": dict(meta),
                  "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                           "renewTime": "2026-11-22T10:00:00.000001Z"}}
    fm.updated(None, lease, "kubelet")
    new = copy.deepcopy(lease)
    new["metadata"].pop("managedFields")
    new["spec"]["renewTime"] = "2026-11-22T10:00:10.000001Z"
    return fm, lease, new, "kubelet", ""


def _conditions(stamp: str) -> Any:
    return [{"type": t, "status": "False", "reason": "KubeletHasSufficient" + t, "message": "kubelet has sufficient",
             "lastHeartbeatTime": stamp, "lastTransitionTime": "2026-11-22T10:00:00Z"}
            for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable", "Ready")]


def node_case() -> Tuple[FieldManager, Obj, Obj, str, str]:
    fm = FieldManager("", "v1", "Node", True)
    node: Obj = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "uid": "9f2c", "resourceVersion": "7", "creationTimestamp": "2026-11-22T10:00:00Z",
                     "labels": {f"label-{i}": "value" for i in range(8)}, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": "10.0.1.0/24", "podCIDRs": ["10.0.1.0/24"], "providerID": "megaplane-fleet://node-1"},
        "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                   "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                   "conditions": _conditions("2026-11-22T10:00:00Z"),
                   "addresses": [{"type": "InternalIP", "address": "10.0.1.1"}, {"type": "Hostname", "address": "node-1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                   "nodeInfo": {"machineID": "x" * 32, "kubeletVersion": "v1.32.0", "architecture": "amd64"}},
    }
    fm.updated(None, node, "kubelet")
    beat = copy.deepcopy(node)
    beat["status"]["conditions"] = _conditions("2026-11-22T10:00:10Z")
    fm.updated(node, beat, "kubelet", "status")
    new = copy.deepcopy(beat)
    new["status"]["conditions"] = _conditions("2026-11-22T10:00:20Z")
    return fm, beat, new, "kubelet", "status"


def pod_create_case() -> Tuple[FieldManager, Obj, Obj, str, str]:
    """A ReplicaSet's pod as the registry creates it (defaulted, with its token volume): old is None."""
    fm = FieldManager("", "v1", "Pod", True)
    pod: Obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-7d4b9-x2x9z", "namespace": "default", "uid": "2a", "generateName": "web-7d4b9-",
                     "labels": {"app": "web", "pod-template-hash": "7d4b9"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9", "uid": "u",
                                          "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent", "resources": {},
                                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                                 "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                                   "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
                 "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "securityContext": {}, "terminationGracePeriodSeconds": 30, "serviceAccountName": "default",
                 "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
                 "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                                  "tolerationSeconds": 300}],
                 "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                     {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                     {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}]},
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    return fm, {}, pod, "kube-controller-manager", ""


def deployment_case() -> Tuple[FieldManager, Obj, Obj, str, str]:
    fm = FieldManager("apps", "v1", "Deployment", True)
    containers = [{"name": f"c{i}", "image": "nginx:1.25", "ports": [{"containerPort": 8000 + i, "protocol": "TCP"}],
                   "env": [{"name": "A", "value": str(i)}], "resources": {}} for i in range(50)]
    dep: Obj = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "big", "namespace": "default", "uid": "1", "resourceVersion": "3"},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "big"}},
                         "template": {"metadata": {"labels": {"app": "big"}}, "spec": {"containers": containers}}}}
    fm.updated(None, dep, "kubectl-create")
    new = copy.deepcopy(dep)
    new["spec"]["template"]["spec"]["containers"][25]["image"] = "nginx:1.26"
    return fm, dep, new, "kubectl-edit", ""


def measure(case: Callable[[], Tuple[FieldManager, Obj, Obj, str, str]], repeat: int) -> Dict[str, float]:
    fm, old, new, manager, sub = case()
    meta = new["metadata"]
    stored = orjson.dumps(old or new)  # a create's reference: its own body decoded and encoded

    def write() -> None:
        meta.pop("managedFields", None)
        fm.updated(old or None, new, manager, sub)

    def round_trip() -> None:
        orjson.loads(stored)
        orjson.dumps(new)

    n = 1000
    cost = min(timeit.repeat(write, number=n, repeat=repeat)) / n * 1e6
    ref = min(timeit.repeat(round_trip, number=n, repeat=repeat)) / n * 1e6
    return {"field_manager_us": round(cost, 2), "json_round_trip_us": round(ref, 2),
            "managed_fields_bytes": len(orjson.dumps(meta.get("managedFields"))), "object_bytes": len(stored)}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    repeat = 100 if args.full else 30
    cases = {"lease_renewal": lease_case, "node_heartbeat": node_case, "pod_create": pod_create_case}
    if args.full:
        cases["deployment_50_containers"] = deployment_case
    out = {name: measure(case, repeat) for name, case in cases.items()}
    print("| write | field manager (us) | JSON round trip, reference (us) | managedFields bytes | object bytes |")
    print("|---|---:|---:|---:|---:|")
    for name, r in out.items():
        print(f"| {name} | {r['field_manager_us']} | {r['json_round_trip_us']} | {r['managed_fields_bytes']} | "
              f"{r['object_bytes']} |")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
