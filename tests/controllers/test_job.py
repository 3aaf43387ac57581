"""Jobs in `megaplane up --nodes 3` (fleet pods run --job-pod-run-time, fail by annotation), driven with kubectl
and the Python client: completions within parallelism, Indexed jobs, backoffLimit, podFailurePolicy,
activeDeadlineSeconds, suspend, the finalizers on pods, what a Job's deletion does to its pods, and
ttlSecondsAfterFinished. Every wait polls for a state.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Set

import kubernetes
import pytest

from tests.api.conftest import Cluster
from tests.fleet.conftest import eventually, server_in_tmp

NS = "default"
UP_FLAGS = ["--nodes", "3", "--pod-startup-latency", "100ms", "--node-lease-duration-seconds", "10",
            "--job-pod-run-time", "1s", "--controllers", "*", "--scheduler"]
TRACKING = "batch.kubernetes.io/job-tracking"


@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    with server_in_tmp("megaplane-job-", "up", UP_FLAGS) as c:
        yield c


@pytest.fixture(scope="module")
def core(up: Cluster) -> Iterator[kubernetes.client.CoreV1Api]:
    with up.api_client() as api:  # closed here, not by a finalizer at some later garbage collection
        yield kubernetes.client.CoreV1Api(api)


@pytest.fixture(scope="module")
def batch(up: Cluster) -> Iterator[kubernetes.client.BatchV1Api]:
    with up.api_client() as api:
        yield kubernetes.client.BatchV1Api(api)


def job_body(name: str, *, completions: Optional[int] = 1, parallelism: int = 1, backoff_limit: int = 6,
             annotations: Optional[Dict[str, str]] = None, **spec: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"parallelism": parallelism, "backoffLimit": backoff_limit, "template": {
            "metadata": {"annotations": annotations or {}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}, **spec}}
    if completions is not None:
        body["spec"]["completions"] = completions
    return body


def create(up: Cluster, body: Dict[str, Any]) -> None:
    up.ok("create", "-f", "-", input=json.dumps(body))


def job(up: Cluster, name: str) -> Dict[str, Any]:
    obj: Dict[str, Any] = json.loads(up.ok("get", "job", name, "-o", "json"))
    return obj


def condition(j: Dict[str, Any], kind: str) -> Optional[Dict[str, Any]]:
    for c in (j.get("status") or {}).get("conditions") or ():
        if c["type"] == kind and c["status"] == "True":
            return c  # type: ignore[no-any-return]
    return None


def pods_of(up: Cluster, name: str) -> List[Dict[str, Any]]:
    out = json.loads(up.ok("get", "pods", "-l", f"batch.kubernetes.io/job-name={name}", "-o", "json"))
    return out["items"]  # type: ignore[no-any-return]


def events_of(up: Cluster, name: str, *wanted: Any) -> List[Any]:
    """(type, reason, message) of the Events about Job `name`, once all of `wanted` are among them."""
    def probe() -> Optional[List[Any]]:
        items = json.loads(up.ok("get", "events", "--field-selector", f"involvedObject.name={name}",
                                 "-o", "json"))["items"]
        got = [(e["type"], e["reason"], e["message"]) for e in items]
        return got if all(w in got for w in wanted) else None
    return eventually(probe, f"events {wanted} about {name}")


class ActiveWatch:
    """The most pods of one Job active (not terminal, not deleting) at the same time, from a pod watch."""

    def __init__(self, core: kubernetes.client.CoreV1Api, job_name: str) -> None:
        self.most = 0
        self.active: Set[str] = set()
        self.stopped = False
        self.error: Optional[BaseException] = None
        self._w = kubernetes.watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(core, job_name), daemon=True)
        self._thread.start()

    def _run(self, core: kubernetes.client.CoreV1Api, job_name: str) -> None:
        try:
            self._follow(core, job_name)
        except Exception as exc:  # the connection torn down by stop() is the expected end
            if not self.stopped:
                self.error = exc

    def _follow(self, core: kubernetes.client.CoreV1Api, job_name: str) -> None:
        for event in self._w.stream(core.list_namespaced_pod, NS, label_selector=f"job-name={job_name}",
                                    timeout_seconds=120):
            pod = event["object"]
            live = event["type"] != "DELETED" and pod.status.phase not in ("Succeeded", "Failed") and \
                pod.metadata.deletion_timestamp is None
            (self.active.add if live else self.active.discard)(pod.metadata.name)
            self.most = max(self.most, len(self.active))

    def stop(self) -> None:
        self.stopped = True
        self._w.stop()  # closes the stream's connection, so the thread's read ends now
        self._thread.join(15)
        assert not self._thread.is_alive(), "the pod watch did not end"


def test_five_completions_two_at_a_time_complete_and_go_after_their_ttl(
        up: Cluster, core: kubernetes.client.CoreV1Api) -> None:
    watch = ActiveWatch(core, "five")
    create(up, job_body("five", completions=5, parallelism=2, ttlSecondsAfterFinished=2))
    try:
        done = eventually(lambda: condition(j := job(up, "five"), "Complete") and j, "the Job to complete", 90)
    finally:
        watch.stop()
    status = done["status"]
    assert status["succeeded"] == 5 and not status.get("failed") and not status.get("active")
    assert status["ready"] == 0 and status["terminating"] == 0
    assert status["uncountedTerminatedPods"] == {}
    assert condition(done, "SuccessCriteriaMet")["reason"] == "CompletionsReached"  # type: ignore[index]
    complete = condition(done, "Complete")
    assert complete is not None and complete["message"] == "Reached expected number of succeeded pods"
    assert status["completionTime"] == complete["lastTransitionTime"] and status["startTime"]
    assert watch.error is None, watch.error
    assert 1 <= watch.most <= 2, watch.most
    pods = pods_of(up, "five")
    assert sum(p["status"]["phase"] == "Succeeded" for p in pods) == 5
    assert not any(TRACKING in (p["metadata"].get("finalizers") or ()) for p in pods)
    labels = done["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/controller-uid"] == done["metadata"]["uid"] == labels["controller-uid"]
    assert done["spec"]["selector"]["matchLabels"] == {"batch.kubernetes.io/controller-uid": done["metadata"]["uid"]}
    out = up.ok("get", "job", "five")
    assert "Complete" in out and "5/5" in out
    events = events_of(up, "five", ("Normal", "Completed", "Job completed"))
    assert sum(1 for e in events if e[1] == "SuccessfulCreate" and e[2].startswith("Created pod: five-")) == 5
    # ttlSecondsAfterFinished: the Job goes, and the collector takes its pods with it.
    eventually(lambda: "NotFound" in up.kubectl("get", "job", "five").stderr, "the Job to be deleted after its TTL")
    eventually(lambda: not pods_of(up, "five"), "its pods to be collected")


def test_indexed_job_gives_each_pod_its_index(up: Cluster, batch: kubernetes.client.BatchV1Api) -> None:
    create(up, job_body("idx", completions=3, parallelism=3, completionMode="Indexed"))
    done = eventually(lambda: condition(j := job(up, "idx"), "Complete") and j, "the Indexed Job to complete", 60)
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    typed = batch.read_namespaced_job_status("idx", NS).status  # the Python client's strict model reads it
    assert typed.completed_indexes == "0-2" and typed.ready == 0 and typed.uncounted_terminated_pods.failed is None
    pods = pods_of(up, "idx")
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(by_index) == ["0", "1", "2"]
    for ix, p in by_index.items():
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == ix
        assert p["spec"]["hostname"] == f"idx-{ix}"
        assert p["metadata"]["name"].startswith(f"idx-{ix}-")
        env = p["spec"]["containers"][0]["env"]
        assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}} \
            in env


def test_a_failing_job_stops_at_its_backoff_limit(up: Cluster) -> None:
    create(up, job_body("fails", backoff_limit=1, annotations={"fleet.megaplane.io/exit-code": "1"}))
    failed = eventually(lambda: condition(j := job(up, "fails"), "Failed") and j, "the Job to fail", 90)
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert condition(failed, "Failed")["message"] == "Job has reached the specified backoff limit"  # type: ignore
    assert condition(failed, "FailureTarget") is not None
    assert failed["status"]["failed"] == 2 and not failed["status"].get("succeeded")
    assert "completionTime" not in failed["status"]
    pods = pods_of(up, "fails")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    # The second pod waited the failure backoff (10 s) after the first one failed.
    first, second = sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"])
    finished = first["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    assert second["metadata"]["creationTimestamp"] >= finished
    assert "Failed" in up.ok("get", "job", "fails")
    events_of(up, "fails", ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit"))


def test_pod_failure_policy_fail_job_and_ignore(up: Cluster) -> None:
    rules = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    create(up, job_body("pfp", backoff_limit=6, podFailurePolicy=rules,
                        annotations={"fleet.megaplane.io/exit-code": "42"}))
    failed = eventually(lambda: condition(j := job(up, "pfp"), "Failed") and j, "the FailJob rule to fail it", 60)
    cond = condition(failed, "Failed")
    assert cond is not None and cond["reason"] == "PodFailurePolicy"
    pod = pods_of(up, "pfp")[0]
    assert cond["message"] == (f"Container main for pod {NS}/{pod['metadata']['name']} failed with exit code 42 "
                               "matching FailJob rule at index 0")
    assert failed["status"]["failed"] == 1
    ignore = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}
    create(up, job_body("ignored", backoff_limit=0, podFailurePolicy=ignore,
                        annotations={"fleet.megaplane.io/exit-code": "3"}))
    eventually(lambda: sum(p["status"].get("phase") == "Failed" for p in pods_of(up, "ignored")) >= 2,
               "an ignored failure to be replaced", 60)
    j = job(up, "ignored")
    assert not j["status"].get("failed") and condition(j, "Failed") is None
    up.ok("delete", "job", "ignored")


def test_active_deadline_fails_the_job_and_deletes_its_pods(up: Cluster) -> None:
    create(up, job_body("deadline", activeDeadlineSeconds=2, annotations={"fleet.megaplane.io/run-seconds": "600"}))
    failed = eventually(lambda: condition(j := job(up, "deadline"), "Failed") and j, "the deadline to pass", 60)
    assert condition(failed, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    assert failed["status"]["failed"] == 1 and not failed["status"].get("active")
    eventually(lambda: not pods_of(up, "deadline") or all(p["status"]["phase"] == "Failed" or
                                                           p["metadata"].get("deletionTimestamp")
                                                           for p in pods_of(up, "deadline")), "its pod to go")


def test_suspend_and_resume(up: Cluster) -> None:
    create(up, job_body("susp", suspend=True))
    j = eventually(lambda: condition(j := job(up, "susp"), "Suspended") and j, "the Suspended condition")
    assert condition(j, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]
    assert not pods_of(up, "susp") and "startTime" not in j["status"]
    up.ok("patch", "job", "susp", "-p", '{"spec":{"suspend":false}}')
    done = eventually(lambda: condition(j := job(up, "susp"), "Complete") and j, "the resumed Job to complete", 60)
    resumed = [c for c in done["status"]["conditions"] if c["type"] == "Suspended"][0]
    assert resumed["status"] == "False" and resumed["reason"] == "JobResumed"


def test_deleting_a_job_orphans_by_default_and_kubectl_cascades(
        up: Cluster) -> None:
    body = job_body("orph", annotations={"fleet.megaplane.io/run-seconds": "600"})
    create(up, body)
    eventually(lambda: [p for p in pods_of(up, "orph") if p["status"].get("phase") == "Running"], "a running pod")
    # No propagation policy: batch/v1 orphans the pods, and says so in a warning.
    req = urllib.request.Request(f"{up.url}/apis/batch/v1/namespaces/{NS}/jobs/orph", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Warning"] == (
            '299 - "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background '
            'to remove them or set propagationPolicy=Orphan to suppress this warning"')
        assert json.loads(resp.read())["metadata"]["finalizers"] == ["orphan"]
    eventually(lambda: "NotFound" in up.kubectl("get", "job", "orph").stderr, "the Job to go")
    pod = eventually(lambda: [p for p in pods_of(up, "orph") if not p["metadata"].get("ownerReferences")
                              and TRACKING not in (p["metadata"].get("finalizers") or ())], "an orphaned pod")[0]
    assert not pod["metadata"].get("deletionTimestamp")
    up.ok("delete", "pod", pod["metadata"]["name"], "--wait=false")
    create(up, job_body("casc", annotations={"fleet.megaplane.io/run-seconds": "600"}))
    eventually(lambda: [p for p in pods_of(up, "casc") if p["status"].get("phase") == "Running"], "a running pod")
    up.ok("delete", "job", "casc")  # kubectl: --cascade=background
    eventually(lambda: not pods_of(up, "casc"), "the Job's pods to be deleted with it")
