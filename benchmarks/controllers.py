"""Pods per second the ReplicaSet controller brings to Running end to end, and a Deployment's roll time.

Every part is its own process over HTTP, as in a real cluster: `megaplane
apiserver` pinned to core 0; `megaplane fleet` (simulated kubelets),
`megaplane scheduler` and `megaplane controller-manager --controllers
replicaset,deployment` on core 1 (no client-side rate limit:
--kube-api-qps 0; upstream's defaults, 20 QPS for the controller manager,
would cap creates at 20 pods/s). This process only creates the workloads
and polls their status (GETs of the ReplicaSet and the scheduler's
/metrics four times a second), so it adds no watch load.

Per size R:

- end to end: POST a ReplicaSet of R replicas; timed until
  status.readyReplicas == R (the fleet reports a pod Ready once it runs),
  with the times at which all R pods existed (status.replicas) and were
  bound (scheduler_schedule_attempts_total{result="scheduled"}); CPU of
  each process over that window, per pod;
- the same run's references: the controller alone (scheduler stopped:
  R pods created, none bound) and then the scheduler alone (started on
  those R pending pods, timed until it has scheduled them all);
- a Deployment of D replicas rolled to a new image (RollingUpdate, 25 %
  surge / unavailable): from the PATCH until updatedReplicas ==
  availableReplicas == replicas == D for the new generation.

Quoted reference: clusterloader2's load test creates pods at 10 pods/s
(its default --throughput for the load config).

    python benchmarks/controllers.py          # quick: 3,000 replicas on 80 nodes, a 600-pod roll (< 1 min)
    python benchmarks/controllers.py --full   # 10,000 and 100,000 replicas on 1,300 nodes, a 10,000-pod roll

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402
from benchmarks.fleet_capacity import kubeconfig_for  # noqa: E402

CLUSTERLOADER2_LOAD_PODS_PER_S = 10.0
NS = "default"
POLL = 0.25
_SCHEDULED = re.compile(r'^scheduler_schedule_attempts_total\{[^}]*result="scheduled"[^}]*\} ([0-9.e+]+)$', re.M)


# -- HTTP --------------------------------------------------------------------------------------------


def call(base: str, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def scheduled_total(metrics_url: str) -> float:
    try:
        with urllib.request.urlopen(metrics_url, timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(m) for m in _SCHEDULED.findall(text))


def template(app: str, image: str = "registry.k8s.io/pause:3.10") -> Dict[str, Any]:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": image,
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


def replica_set(name: str, replicas: int) -> Dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template(name)}}


# -- processes ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def component(name: str, args: List[str], directory: str, ready_url: Optional[str] = None) -> Iterator[subprocess.Popen]:
    log = open(os.path.join(directory, f"{name}.log"), "w")
    proc = subprocess.Popen(harness.pinned([sys.executable, "-m", "megaplane.cli", *args], harness.CLIENT_CORE),
                            stdout=log, stderr=subprocess.STDOUT, cwd=harness.ROOT)
    try:
        if ready_url:
            harness.wait_http(ready_url, timeout=120, proc=proc)
        yield proc
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scheduler_args(kubeconfig: str, port: int) -> List[str]:
    return ["scheduler", "--kubeconfig", kubeconfig, "--kube-api-qps", "0", "--kube-api-burst", "0",
            "--port", str(port), "--bind-address", "127.0.0.1", "--leader-elect", "false"]


def wait_for(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL)


# -- measurements ------------------------------------------------------------------------------------


def cpu_of(procs: Dict[str, subprocess.Popen]) -> Dict[str, float]:
    out = {}
    for name, proc in procs.items():
        try:
            out[name] = harness.cpu_seconds(proc.pid)
        except OSError:
            out[name] = 0.0
    return out


def end_to_end(base: str, metrics_url: str, replicas: int, procs: Dict[str, subprocess.Popen],
               timeout: float) -> Dict[str, Any]:
    """POST a ReplicaSet of `replicas`; the times until all exist, are bound and are Ready; CPU per pod."""
    name = f"e2e-{replicas}"
    sched0 = scheduled_total(metrics_url)
    cpu0 = cpu_of(procs)
    t0 = time.perf_counter()
    call(base, "POST", f"/apis/apps/v1/namespaces/{NS}/replicasets", replica_set(name, replicas))
    created_at = scheduled_at = ready_at = None
    deadline = t0 + timeout
    while ready_at is None:
        now = time.perf_counter()
        if now > deadline:
            raise RuntimeError(f"{name}: not all Ready within {timeout:.0f} s")
        status = call(base, "GET", f"/apis/apps/v1/namespaces/{NS}/replicasets/{name}").get("status") or {}
        if created_at is None and status.get("replicas", 0) >= replicas:
            created_at = now
        if scheduled_at is None and scheduled_total(metrics_url) - sched0 >= replicas:
            scheduled_at = now
        if status.get("readyReplicas", 0) >= replicas:
            ready_at = now
            created_at = created_at or now
            scheduled_at = scheduled_at or now
            break
        time.sleep(POLL)
    cpu1 = cpu_of(procs)
    seconds = ready_at - t0
    return {"replicas": replicas, "seconds": seconds, "pods_per_s": replicas / seconds,
            "all_created_s": created_at - t0, "all_scheduled_s": scheduled_at - t0,
            "cpu_us_per_pod": {k: 1e6 * (cpu1[k] - cpu0[k]) / replicas for k in procs}}


def controller_then_scheduler(base: str, kubeconfig: str, directory: str, replicas: int,
                              procs: Dict[str, subprocess.Popen], timeout: float) -> Dict[str, Any]:
    """The references of the same run: the controller creating with no scheduler, then the scheduler alone."""
    stop(procs["scheduler"])
    name = f"alone-{replicas}"
    cpu0 = cpu_of({"controller-manager": procs["controller-manager"]})
    t0 = time.perf_counter()
    call(base, "POST", f"/apis/apps/v1/namespaces/{NS}/replicasets", replica_set(name, replicas))
    wait_for("the pods to be created", lambda: (call(base, "GET", f"/apis/apps/v1/namespaces/{NS}/replicasets/{name}")
                                                .get("status") or {}).get("replicas", 0) >= replicas, timeout)
    created = time.perf_counter() - t0
    cm_cpu = harness.cpu_seconds(procs["controller-manager"].pid) - cpu0["controller-manager"]
    port = harness.free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    with open(os.path.join(directory, "scheduler-alone.log"), "w") as log:
        proc = subprocess.Popen(harness.pinned([sys.executable, "-m", "megaplane.cli",
                                                *scheduler_args(kubeconfig, port)], harness.CLIENT_CORE),
                                stdout=log, stderr=subprocess.STDOUT, cwd=harness.ROOT)
    procs["scheduler"] = proc
    harness.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120, proc=proc)
    t1 = time.perf_counter()
    cpu1 = harness.cpu_seconds(proc.pid)
    wait_for("the scheduler to bind them", lambda: scheduled_total(metrics_url) >= replicas, timeout)
    scheduled = time.perf_counter() - t1
    sched_cpu = harness.cpu_seconds(proc.pid) - cpu1
    return {"replicas": replicas, "controller_create_s": created, "controller_pods_per_s": replicas / created,
            "controller_cpu_us_per_pod": 1e6 * cm_cpu / replicas, "scheduler_s": scheduled,
            "scheduler_pods_per_s": replicas / scheduled, "scheduler_cpu_us_per_pod": 1e6 * sched_cpu / replicas,
            "metrics_url": metrics_url}


def rollout(base: str, replicas: int, procs: Dict[str, subprocess.Popen], timeout: float) -> Dict[str, Any]:
    """A Deployment of `replicas` Ready, then rolled to a new image: seconds from the PATCH to rolled out."""
    name = f"roll-{replicas}"
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/{name}"
    call(base, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments",
         {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
          "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template(name)}})

    def rolled(generation: int) -> bool:
        d = call(base, "GET", path)
        st = d.get("status") or {}
        return (st.get("observedGeneration", 0) >= generation and st.get("updatedReplicas") == replicas
                and st.get("availableReplicas") == replicas and st.get("replicas") == replicas)

    wait_for("the Deployment to come up", lambda: rolled(1), timeout)
    cpu0 = cpu_of(procs)
    t0 = time.perf_counter()
    patched = call(base, "PATCH", path, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.k8s.io/pause:3.10-new"}]}}}}, "application/strategic-merge-patch+json")
    wait_for("the roll", lambda: rolled(int(patched["metadata"]["generation"])), timeout)
    seconds = time.perf_counter() - t0
    cpu1 = cpu_of(procs)
    return {"replicas": replicas, "seconds": seconds,
            "cpu_us_per_pod": {k: 1e6 * (cpu1[k] - cpu0[k]) / replicas for k in procs}}


def run(sizes: List[int], nodes: int, roll: int, timeout: float) -> Dict[str, Any]:
    directory = tempfile.mkdtemp(prefix="megaplane-controllers-bench-")
    flags = ["--max-requests-inflight", "0", "--max-mutating-requests-inflight", "0"]
    with harness.apiserver(flags) as (api, base):
        kubeconfig = kubeconfig_for(base, directory)
        sched_port, cm_port = harness.free_port(), harness.free_port()
        with contextlib.ExitStack() as stack:
            fleet = stack.enter_context(component("fleet", [
                "fleet", "--kubeconfig", kubeconfig, "--nodes", str(nodes), "--pod-startup-latency", "0s"], directory))
            wait_for(f"{nodes} nodes", lambda: len(call(base, "GET", "/api/v1/nodes").get("items") or ()) >= nodes, 300)
            cm = stack.enter_context(component("controller-manager", [
                "controller-manager", "--kubeconfig", kubeconfig, "--controllers", "replicaset,deployment",
                "--kube-api-qps", "0", "--kube-api-burst", "0", "--port", str(cm_port), "--bind-address", "127.0.0.1",
                "--leader-elect", "false"], directory, f"http://127.0.0.1:{cm_port}/readyz"))
            procs: Dict[str, subprocess.Popen] = {"apiserver": api, "fleet": fleet, "controller-manager": cm}
            with open(os.path.join(directory, "scheduler.log"), "w") as log:
                sched = subprocess.Popen(
                    harness.pinned([sys.executable, "-m", "megaplane.cli", *scheduler_args(kubeconfig, sched_port)],
                                   harness.CLIENT_CORE), stdout=log, stderr=subprocess.STDOUT, cwd=harness.ROOT)
            procs["scheduler"] = sched
            try:
                harness.wait_http(f"http://127.0.0.1:{sched_port}/readyz", timeout=120, proc=sched)
                metrics_url = f"http://127.0.0.1:{sched_port}/metrics"
                e2e = []
                for r in sizes:
                    e2e.append(end_to_end(base, metrics_url, r, procs, timeout))
                    print(f"end to end {r:,}: {e2e[-1]['pods_per_s']:.0f} pods/s", file=sys.stderr, flush=True)
                alone = controller_then_scheduler(base, kubeconfig, directory, sizes[0], procs, timeout)
                print(f"alone {sizes[0]:,}: controller {alone['controller_pods_per_s']:.0f} pods/s, scheduler "
                      f"{alone['scheduler_pods_per_s']:.0f} pods/s", file=sys.stderr, flush=True)
                rolled = rollout(base, roll, procs, timeout)
                print(f"roll {roll:,}: {rolled['seconds']:.1f} s", file=sys.stderr, flush=True)
            finally:
                stop(procs["scheduler"])
    shutil.rmtree(directory, ignore_errors=True)  # kept (with every process's log) when a run fails
    return {"nodes": nodes, "end_to_end": e2e, "alone": alone, "rollout": rolled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    if args.full:
        sizes, nodes, roll, timeout = [10_000, 100_000], 1300, 10_000, 3600.0
    else:
        sizes, nodes, roll, timeout = [3000], 80, 600, 300.0
    res = run(sizes, nodes, roll, timeout)
    rows: List[List[str]] = []
    for r in res["end_to_end"]:
        cpu = r["cpu_us_per_pod"]
        rows.append([f"ReplicaSet {r['replicas']:,} -> Running (end to end)", f"{r['pods_per_s']:,.0f}",
                     f"{r['seconds']:.1f}", f"{r['all_created_s']:.1f} / {r['all_scheduled_s']:.1f}",
                     f"{cpu['controller-manager']:.0f}", f"{cpu['scheduler']:.0f}", f"{cpu['apiserver']:.0f}",
                     f"{cpu['fleet']:.0f}"])
    a = res["alone"]
    rows.append([f"controller alone, {a['replicas']:,} pods (no scheduler)", f"{a['controller_pods_per_s']:,.0f}",
                 f"{a['controller_create_s']:.1f}", "-", f"{a['controller_cpu_us_per_pod']:.0f}", "-", "-", "-"])
    rows.append([f"scheduler alone, {a['replicas']:,} pending pods", f"{a['scheduler_pods_per_s']:,.0f}",
                 f"{a['scheduler_s']:.1f}", "-", "-", f"{a['scheduler_cpu_us_per_pod']:.0f}", "-", "-"])
    ro = res["rollout"]
    rows.append([f"Deployment {ro['replicas']:,} rolled to a new image", f"{ro['replicas'] / ro['seconds']:,.0f}",
                 f"{ro['seconds']:.1f}", "-", f"{ro['cpu_us_per_pod']['controller-manager']:.0f}",
                 f"{ro['cpu_us_per_pod']['scheduler']:.0f}", f"{ro['cpu_us_per_pod']['apiserver']:.0f}",
                 f"{ro['cpu_us_per_pod']['fleet']:.0f}"])
    rows.append(["clusterloader2 load test (quoted)", f"{CLUSTERLOADER2_LOAD_PODS_PER_S:.0f}", "-", "-", "-", "-",
                 "-", "-"])
    print(harness.markdown_table(["run", "pods/s", "seconds", "all created / bound s", "controller-manager CPU us/pod",
                                  "scheduler CPU us/pod", "apiserver CPU us/pod", "fleet CPU us/pod"], rows))
    res["alone"].pop("metrics_url", None)
    print(json.dumps({**res, "reference": {"clusterloader2_load_pods_per_s": CLUSTERLOADER2_LOAD_PODS_PER_S}}))


if __name__ == "__main__":
    main()
