"""CronJobs: the schedule grammar, the controller on a fake clock against a real API server, validation and
printing through kubectl, and one real-time run on `megaplane up --nodes 3`.

The fake-clock tests run the controller in the test's process over HTTP
(megaplane.client) against `megaplane up` without workload controllers, so
Jobs stay as the test leaves them and time moves only when the test says.
Every wait polls for a state with a deadline.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
import tempfile
import time
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional

import kubernetes
import pytest

from megaplane.apimachinery.cron import CronError, parse_standard
from megaplane.client import Client
from megaplane.controllers.cronjob import CronJobController, job_name, most_recent_schedule_time
from megaplane.testing import FakeClock
from tests.api.conftest import Cluster, start_cluster
from tests.fleet.conftest import eventually, start_server

NS = "default"
UTC = datetime.timezone.utc


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() if "+" not in text else \
        datetime.datetime.fromisoformat(text).timestamp()


def iso(t: Optional[float]) -> str:
    assert t is not None
    return datetime.datetime.fromtimestamp(t, UTC).isoformat()


# -- the schedule grammar ------------------------------------------------------------------------------

def test_next_times_as_robfig_cron() -> None:
    start = at("2026-01-01T00:00:30")  # a Thursday
    assert iso(parse_standard("* * * * *").next_after(start)) == "2026-01-01T00:01:00+00:00"
    assert iso(parse_standard("*/15 * * * *").next_after(start)) == "2026-01-01T00:15:00+00:00"
    assert iso(parse_standard("0 9 * * mon").next_after(start)) == "2026-01-05T09:00:00+00:00"
    assert iso(parse_standard("@hourly").next_after(start)) == "2026-01-01T01:00:00+00:00"
    assert iso(parse_standard("@monthly").next_after(start)) == "2026-02-01T00:00:00+00:00"
    assert iso(parse_standard("5/20 * * * *").next_after(start)) == "2026-01-01T00:05:00+00:00"
    assert iso(parse_standard("0 0 * FEB *").next_after(start)) == "2026-02-01T00:00:00+00:00"
    # Day of month and day of week both restricted: either matches (the 13th, or a Friday).
    assert iso(parse_standard("0 0 13 * 5").next_after(start)) == "2026-01-02T00:00:00+00:00"
    # One of them a star: both must match (Fridays only).
    assert iso(parse_standard("0 0 * * 5").next_after(start)) == "2026-01-02T00:00:00+00:00"
    # A stepped star is a restriction (robfig drops the star bit for a step > 1): odd days or Mondays.
    assert iso(parse_standard("0 0 */2 * 1").next_after(start)) == "2026-01-03T00:00:00+00:00"
    assert iso(parse_standard("0 0 * * 1").next_after(start)) == "2026-01-05T00:00:00+00:00"
    # Time zones, and a wall time a DST change skips never happens (Berlin, 2026-03-29 02:30).
    assert iso(parse_standard("TZ=Europe/Berlin 0 9 * * *").next_after(start)) == "2026-01-01T08:00:00+00:00"
    assert iso(parse_standard("TZ=Europe/Berlin 30 2 * * *").next_after(at("2026-03-28T12:00:00"))) == \
        "2026-03-30T00:30:00+00:00"
    assert parse_standard("0 0 31 2 *").next_after(start) is None
    assert parse_standard("@every 90s").next_after(start) == start + 90


@pytest.mark.parametrize("spec,message", [
    ("", "empty spec string"),
    ("x", "expected exactly 5 fields, found 1: [x]"),
    ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("1/2/3 * * * *", "too many slashes: 1/2/3"),
    ("a * * * *", 'failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax'),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("TZ=Mars/Olympus * * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
])
def test_bad_schedules_say_what_robfig_says(spec: str, message: str) -> None:
    with pytest.raises(CronError) as exc:
        parse_standard(spec)
    assert str(exc.value) == message


def test_most_recent_schedule_time_counts_missed_runs_and_honours_the_deadline() -> None:
    sched = parse_standard("*/10 * * * *")
    cj: Dict[str, Any] = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}, "status": {}}
    now = at("2026-01-01T01:05:00")
    earliest, recent, missed = most_recent_schedule_time(cj, now, sched, True)
    assert iso(recent) == "2026-01-01T01:00:00+00:00" and missed == 6
    cj["spec"]["startingDeadlineSeconds"] = 200
    _, recent, missed = most_recent_schedule_time(cj, now, sched, True)
    assert recent is None and missed == 0  # nothing since now - 200 s
    cj["status"]["lastScheduleTime"] = "2026-01-01T01:00:00Z"
    cj["spec"] = {}
    assert most_recent_schedule_time(cj, now, sched, True)[1] is None
    assert job_name({"metadata": {"name": "nightly"}}, at("2026-01-01T01:00:00")) == "nightly-29453820"  # 1767229200 s / 60


# -- the controller on a fake clock -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bare() -> Iterator[Cluster]:
    """The API server with no workload controllers: the test's own CronJob controller is the only actor."""
    root = tempfile.mkdtemp(prefix="megaplane-cronjob-")
    c = start_cluster(root)
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def cronjob(name: str, schedule: str = "* * * * *", **spec: Any) -> Dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, "jobTemplate": {
                "metadata": {"labels": {"cron": name}, "annotations": {"from": "template"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                                               "containers": [{"name": "c", "image": "busybox"}]}}}}, **spec}}


async def until(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Harness:
    """A CronJobController on a FakeClock that starts at the real wall clock, and the client it uses."""

    def __init__(self, cluster: Cluster) -> None:
        self.client = Client.from_kubeconfig(cluster.kubeconfig, qps=200, burst=400)
        self.clock = FakeClock(wall_start=time.time())
        self.controller = CronJobController(self.client, clock=self.clock)
        self.cronjobs = self.client.resource("batch/v1", "cronjobs")
        self.jobs = self.client.resource("batch/v1", "jobs")

    async def jobs_of(self, name: str) -> List[Dict[str, Any]]:
        items = (await self.jobs.list(NS, label_selector=f"cron={name}"))["items"]
        return sorted(items, key=lambda j: j["metadata"]["name"])

    async def settle(self) -> None:
        """Wait until the controller has handled everything due now (its queue empty, nothing in flight)."""
        def idle() -> bool:
            q = self.controller.queue.statistics()
            return q.depth == 0 and q.processing == 0
        await until(lambda: _ready(idle()), "the controller to be idle")

    async def advance_to_next_minute(self) -> float:
        """Move fake time to 5 s past the next whole minute; return that minute (epoch seconds)."""
        now = self.clock.time()
        minute = (int(now) // 60 + 1) * 60
        self.clock.advance(minute + 5 - now)
        await self.settle()
        return float(minute)

    async def complete(self, job: Dict[str, Any]) -> None:
        stamp = datetime.datetime.fromtimestamp(self.clock.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        job["status"] = {"startTime": stamp, "completionTime": stamp, "succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": stamp},
            {"type": "Complete", "status": "True", "lastTransitionTime": stamp}]}
        await self.jobs.update_status(job)


async def _ready(value: Any) -> Any:
    return value


def run(cluster: Cluster, body: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        h = Harness(cluster)
        await h.controller.start()
        try:
            await body(h)
            await h.settle()  # no request in flight when the client closes: every connection is closed
        finally:
            await h.controller.stop()
            await h.client.close()
            await asyncio.sleep(0.1)  # the transports' close callbacks run before the loop goes
    asyncio.run(main())


def test_a_job_per_minute_with_history_limits(bare: Cluster) -> None:
    async def body(h: Harness) -> None:
        await h.cronjobs.create(cronjob("every", successfulJobsHistoryLimit=1), NS)
        await h.settle()
        assert await h.jobs_of("every") == []  # the first minute has not come yet
        minute = await h.advance_to_next_minute()
        jobs = await until(lambda: h.jobs_of("every"), "the first Job")
        first = jobs[0]
        assert first["metadata"]["name"] == f"every-{int(minute) // 60}"
        assert first["metadata"]["annotations"] == {
            "from": "template", "batch.kubernetes.io/cronjob-scheduled-timestamp": iso(minute).replace("+00:00", "Z")}
        ref = first["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == \
            ("CronJob", "every", True, True)
        cj = await h.cronjobs.get("every", NS)
        assert [a["name"] for a in cj["status"]["active"]] == [first["metadata"]["name"]]
        assert cj["status"]["lastScheduleTime"] == iso(minute).replace("+00:00", "Z")
        await h.complete(first)
        await h.settle()
        second_minute = await h.advance_to_next_minute()
        jobs = await until(lambda: _has(h.jobs_of("every"), 2), "the second Job")

        async def status_caught_up() -> Optional[Dict[str, Any]]:
            cj = await h.cronjobs.get("every", NS)
            return cj if cj["status"].get("lastSuccessfulTime") else None

        cj = await until(status_caught_up, "lastSuccessfulTime")
        assert [a["name"] for a in cj["status"]["active"]] == [f"every-{int(second_minute) // 60}"]
        assert cj["status"]["lastSuccessfulTime"] == first_completion(jobs[0])
        await h.complete(jobs[1])
        await h.settle()
        await h.advance_to_next_minute()
        # A third Job, and only one completed Job kept (successfulJobsHistoryLimit 1): the oldest went.
        jobs = await until(lambda: _names_are(h.jobs_of("every"), 2, not_first=first["metadata"]["name"]),
                           "the oldest completed Job to be deleted")
        assert first["metadata"]["name"] not in [j["metadata"]["name"] for j in jobs]
    run(bare, body)


async def _has(jobs: Awaitable[List[Dict[str, Any]]], n: int) -> Optional[List[Dict[str, Any]]]:
    got = await jobs
    return got if len(got) >= n else None


async def _names_are(jobs: Awaitable[List[Dict[str, Any]]], n: int, not_first: str) -> Optional[List[Any]]:
    got = await jobs
    names = [j["metadata"]["name"] for j in got]
    return got if len(got) == n and not_first not in names else None


def first_completion(job: Dict[str, Any]) -> str:
    return str(job["status"]["completionTime"])


def test_forbid_replace_suspend_deadline_and_time_zone(bare: Cluster) -> None:
    async def body(h: Harness) -> None:
        await h.cronjobs.create(cronjob("forbid", concurrencyPolicy="Forbid"), NS)
        await h.cronjobs.create(cronjob("replace", concurrencyPolicy="Replace"), NS)
        await h.cronjobs.create(cronjob("paused", suspend=True), NS)
        await h.cronjobs.create(cronjob("late", startingDeadlineSeconds=10), NS)
        await h.cronjobs.create(cronjob("kolkata", timeZone="Asia/Kolkata"), NS)
        await h.settle()
        minute = await h.advance_to_next_minute()
        for name in ("forbid", "replace", "kolkata", "late"):
            await until(lambda n=name: _has(h.jobs_of(n), 1), f"{name}'s first Job")  # type: ignore[misc]
        kolkata = (await h.jobs_of("kolkata"))[0]
        local = datetime.datetime.fromtimestamp(minute, datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
        assert kolkata["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
            local.isoformat()
        first_replace = (await h.jobs_of("replace"))[0]["metadata"]["name"]
        # The next minute: Forbid waits for its active Job, Replace swaps it, a suspended one never runs.
        second = await h.advance_to_next_minute()
        replaced = await until(lambda: _names_are(h.jobs_of("replace"), 1, not_first=first_replace),
                               "Replace to delete the running Job and start the next")
        assert replaced[0]["metadata"]["name"] == f"replace-{int(second) // 60}"
        assert len(await h.jobs_of("forbid")) == 1
        assert (await h.cronjobs.get("forbid", NS))["status"]["lastScheduleTime"] == \
            iso(minute).replace("+00:00", "Z")
        assert await h.jobs_of("paused") == []
        # startingDeadlineSeconds 10: a minute found 30 s late is missed, not run.
        now = h.clock.time()
        h.clock.advance((int(now) // 60 + 1) * 60 + 30 - now)
        await h.settle()
        late = await h.jobs_of("late")
        assert len(late) == 2, [j["metadata"]["name"] for j in late]  # the first two minutes, not the third
        assert len(await h.jobs_of("kolkata")) == 3  # no deadline: it runs late
    run(bare, body)


# -- through kubectl, and one real minute on a fleet ------------------------------------------------------------

@pytest.fixture(scope="module")
def up() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-cronjob-up-")
    c = start_server(root, "up", ["--nodes", "3", "--pod-startup-latency", "100ms", "--job-pod-run-time", "1s",
                                  "--controllers", "*", "--scheduler"])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_validation_and_printing(up: Cluster) -> None:
    bad = up.kubectl("create", "cronjob", "bad", "--image=busybox", "--schedule=61 * * * *")
    assert bad.returncode != 0
    assert 'CronJob.batch "bad" is invalid: spec.schedule: Invalid value: "61 * * * *": ' \
           "end of range (61) above maximum (59): 61" in bad.stderr
    body = cronjob("tz")
    body["spec"]["schedule"] = "TZ=UTC * * * * *"
    r = up.kubectl("create", "-f", "-", input=json.dumps(body))
    assert "cannot use TZ or CRON_TZ in schedule, use timeZone field instead" in r.stderr
    body = cronjob("zone", timeZone="Mars/Olympus")
    r = up.kubectl("create", "-f", "-", input=json.dumps(body))
    assert 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus' in r.stderr
    body = cronjob("policy", concurrencyPolicy="Sometimes")
    r = up.kubectl("create", "-f", "-", input=json.dumps(body))
    assert 'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", ' \
           '"Replace"' in r.stderr
    assert "NotFound" in up.kubectl("get", "cronjob", "bad").stderr
    up.ok("create", "cronjob", "shown", "--image=busybox", "--schedule=0 0 1 1 *")
    cj = json.loads(up.ok("get", "cj", "shown", "-o", "json"))
    assert cj["spec"]["concurrencyPolicy"] == "Allow" and cj["spec"]["suspend"] is False
    assert cj["spec"]["successfulJobsHistoryLimit"] == 3 and cj["spec"]["failedJobsHistoryLimit"] == 1
    out = up.ok("get", "cronjobs", "-o", "wide").splitlines()
    assert out[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE",
                              "CONTAINERS", "IMAGES", "SELECTOR"]
    row = [line for line in out if line.startswith("shown ")][0].split()
    assert row[1:6] == ["0", "0", "1", "1", "*"] and row[6:10] == ["<none>", "False", "0", "<none>"]
    with up.api_client() as api:
        assert kubernetes.client.BatchV1Api(api).read_namespaced_cron_job("shown", NS).spec.schedule == "0 0 1 1 *"


def test_a_cron_job_runs_a_job_on_schedule(up: Cluster) -> None:
    """In real time: the next whole minute creates a Job, which the Job controller runs to completion."""
    up.ok("create", "cronjob", "minutely", "--image=busybox", "--schedule=* * * * *")

    def succeeded() -> Optional[Dict[str, Any]]:
        cj: Dict[str, Any] = json.loads(up.ok("get", "cronjob", "minutely", "-o", "json"))
        return cj if cj.get("status", {}).get("lastSuccessfulTime") else None

    cj = eventually(succeeded, "a scheduled Job to complete", timeout=120, every=1.0)
    jobs = json.loads(up.ok("get", "jobs", "-o", "json"))["items"]
    mine = [j for j in jobs if (j["metadata"].get("ownerReferences") or [{}])[0].get("uid") == cj["metadata"]["uid"]]
    assert mine and all(j["metadata"]["name"].startswith("minutely-") for j in mine)
    scheduled = cj["status"]["lastScheduleTime"]
    assert scheduled.endswith(":00Z")
    reasons = eventually(lambda: (r := {e["reason"]: e["message"] for e in json.loads(up.ok(
        "get", "events", "--field-selector", "involvedObject.name=minutely", "-o", "json"))["items"]})
        .get("SawCompletedJob") and r, "its events")
    assert reasons["SuccessfulCreate"].startswith("Created job minutely-")
    assert reasons["SawCompletedJob"].startswith("Saw completed job: minutely-")
    assert reasons["SawCompletedJob"].endswith(", condition: Complete")
    up.ok("delete", "cronjob", "minutely")
    eventually(lambda: not [j for j in json.loads(up.ok("get", "jobs", "-o", "json"))["items"]
                            if j["metadata"]["name"].startswith("minutely-")], "its Jobs to be collected")
