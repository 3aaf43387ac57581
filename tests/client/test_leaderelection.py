"""megaplane.client.leaderelection against a real `megaplane apiserver` over HTTP.

Each candidate has its own `FakeClock` (no autojump: the server answers
over real sockets, so time moves only when a test says so), which is what
the elector decides on; the Lease and its resourceVersions are the real
server's. Where a test needs the network to fail, a `Partition` wrapper
around the real transport makes calls hang until it heals, as a
blackholed API server would. Every wait polls for a state.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from typing import Any, Awaitable, Callable, Iterator, Optional, TypeVar

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from megaplane.client import Client, ConflictError, HTTPTransport, NotFoundError
from megaplane.client.leaderelection import (
    LEASES,
    LeaderElected,
    LeaderElectionConfig,
    LeaderElectionMetrics,
    LeaderElectionRecord,
    LeaderElector,
    LeaseLock,
    NotLeaderError,
    format_micro_time,
    leader_only_client,
)
from megaplane.client.resources import ResourceRef
from megaplane.client.transport import Params, Transport, WatchStream
from megaplane.testing import FakeClock
from tests.api.conftest import Cluster, start_megaplane
from tests.client.conftest import eventually

T = TypeVar("T")
NS = "default"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
_names = iter(range(1_000_000))


@pytest.fixture(scope="module")
def api() -> Iterator[Cluster]:
    root = tempfile.mkdtemp(prefix="megaplane-leaderelection-")
    c = start_megaplane(root, "apiserver", [])
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


class Partition:
    """The real transport, except that while `cut` every call hangs until healed (a blackholed server).

    `hold_updates` parks PUTs (only) until released, to interleave two candidates' writes.
    """

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.healed = asyncio.Event()
        self.healed.set()
        self.updates_go = asyncio.Event()
        self.updates_go.set()
        self.updates_parked = 0

    def cut(self) -> None:
        self.healed.clear()

    def heal(self) -> None:
        self.healed.set()

    async def _through(self, call: Callable[[], Awaitable[T]]) -> T:
        await self.healed.wait()
        return await call()

    async def get(self, ref: ResourceRef, namespace: Optional[str], name: str, subresource: str = "",
                  params: Optional[Params] = None) -> bytes:
        return await self._through(lambda: self.inner.get(ref, namespace, name, subresource, params))

    async def list(self, ref: ResourceRef, namespace: Optional[str], params: Optional[Params] = None) -> bytes:
        return await self._through(lambda: self.inner.list(ref, namespace, params))

    async def create(self, ref: ResourceRef, namespace: Optional[str], body: bytes, subresource: str = "",
                     params: Optional[Params] = None, name: str = "") -> bytes:
        return await self._through(lambda: self.inner.create(ref, namespace, body, subresource, params, name))

    async def update(self, ref: ResourceRef, namespace: Optional[str], name: str, body: bytes,
                     subresource: str = "", params: Optional[Params] = None) -> bytes:
        if not self.updates_go.is_set():
            self.updates_parked += 1
            await self.updates_go.wait()
        return await self._through(lambda: self.inner.update(ref, namespace, name, body, subresource, params))

    async def patch(self, ref: ResourceRef, namespace: Optional[str], name: str, content_type: str, body: bytes,
                    subresource: str = "", params: Optional[Params] = None) -> bytes:
        return await self._through(lambda: self.inner.patch(ref, namespace, name, content_type, body, subresource,
                                                            params))

    async def delete(self, ref: ResourceRef, namespace: Optional[str], name: str, body: Optional[bytes] = None,
                     params: Optional[Params] = None) -> bytes:
        return await self._through(lambda: self.inner.delete(ref, namespace, name, body, params))

    async def delete_collection(self, ref: ResourceRef, namespace: Optional[str], body: Optional[bytes] = None,
                                params: Optional[Params] = None) -> bytes:
        return await self._through(lambda: self.inner.delete_collection(ref, namespace, body, params))

    async def watch(self, ref: ResourceRef, namespace: Optional[str], params: Optional[Params] = None) -> WatchStream:
        return await self._through(lambda: self.inner.watch(ref, namespace, params))

    async def close(self) -> None:
        await self.inner.close()


class Candidate:
    """One elector with its own fake clock and its own connection (optionally partitionable)."""

    def __init__(self, api: Cluster, lease: str, identity: str, *, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0, wall_start: Optional[float] = None) -> None:
        self.clock = FakeClock() if wall_start is None else FakeClock(wall_start=wall_start)
        self.partition = Partition(HTTPTransport(api.url))
        self.client = Client(self.partition)
        self.config = LeaderElectionConfig(lease, NS, identity, lease_duration, renew_deadline, retry_period)
        self.elector = LeaderElector(self.client, self.config, clock=self.clock, jitter=lambda: 0.0)

    async def close(self) -> None:
        self.partition.heal()
        self.partition.updates_go.set()
        await self.client.close()


def lease_name() -> str:
    return f"le-{next(_names)}"


async def read_lease(api: Cluster, name: str) -> Any:
    async with Client(HTTPTransport(api.url)) as c:
        return await c.resource(LEASES).get(name, NS)


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]


# -- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("durations, message", [
    ((10, 10, 2), "leaseDuration must be greater than renewDeadline"),
    ((15, 2.4, 2), "renewDeadline must be greater than retryPeriod*JitterFactor"),
    ((0.5, 0.2, 0.1), "leaseDuration must be greater than zero (at least 1s"),
    ((10.5, 10.2, 2), "whole seconds"),
    ((15, 10, 0), "retryPeriod must be greater than zero"),
])
def test_inconsistent_durations_are_refused_as_client_go_refuses_them(durations: Any, message: str) -> None:
    config = LeaderElectionConfig("x", NS, "me", *durations)
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()


def test_defaults_are_upstreams() -> None:
    config = LeaderElectionConfig("kube-controller-manager")
    assert (config.namespace, config.lease_duration, config.renew_deadline, config.retry_period) == \
        ("kube-system", 15.0, 10.0, 2.0)
    host, _, uid = config.identity.rpartition("_")
    assert host and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", uid)
    assert LeaderElectionConfig("x").identity != config.identity
    assert format_micro_time(1_767_225_600.25) == "2026-01-01T00:00:00.250000Z"


# -- one attempt at a time --------------------------------------------------------------------------------


def test_acquire_creates_the_lease_with_client_gos_record_and_renewals_keep_acquire_time(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a = Candidate(api, name, "host-a_1")
        try:
            assert await a.elector.try_acquire_or_renew()
            lease = await read_lease(api, name)
            spec = lease["spec"]
            assert spec["holderIdentity"] == "host-a_1"
            assert spec["leaseDurationSeconds"] == 15
            assert spec["leaseTransitions"] == 0
            assert spec["acquireTime"] == spec["renewTime"] == "2026-01-01T00:00:00.000000Z"
            assert MICRO_TIME.match(spec["renewTime"])
            first_rv = lease["metadata"]["resourceVersion"]

            a.clock.advance(2.5)
            assert await a.elector.try_acquire_or_renew()
            lease = await read_lease(api, name)
            assert lease["spec"]["renewTime"] == "2026-01-01T00:00:02.500000Z"
            assert lease["spec"]["acquireTime"] == "2026-01-01T00:00:00.000000Z"
            assert lease["spec"]["leaseTransitions"] == 0
            assert lease["metadata"]["resourceVersion"] != first_rv
            assert a.elector.slowpath == 0  # renewed over the lease it wrote, without reading it first
        finally:
            await a.close()

    run(main)


def test_a_second_candidate_waits_a_lease_duration_of_its_own_clock_then_takes_over(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a = Candidate(api, name, "host-a_1")
        # b's wall clock is a year ahead: a's renewTime looks ancient to it, and must not matter.
        b = Candidate(api, name, "host-b_2", wall_start=1_800_000_000.0)
        try:
            assert await a.elector.try_acquire_or_renew()
            assert not await b.elector.try_acquire_or_renew()  # first sight of a's record: fresh for 15 s
            b.clock.advance(14.9)
            assert not await b.elector.try_acquire_or_renew()
            assert b.elector.leader == "host-a_1"

            # a renews: b sees the record change and its wait starts over from now.
            a.clock.advance(10)
            assert await a.elector.try_acquire_or_renew()
            b.clock.advance(0.2)  # 15.1 s since b first saw the lease, 0 since the renewal
            assert not await b.elector.try_acquire_or_renew()
            b.clock.advance(14.9)
            assert not await b.elector.try_acquire_or_renew()

            b.clock.advance(0.2)  # a full lease duration without a change: expired
            assert await b.elector.try_acquire_or_renew()
            spec = (await read_lease(api, name))["spec"]
            assert spec["holderIdentity"] == "host-b_2"
            assert spec["leaseTransitions"] == 1
            assert spec["acquireTime"] == spec["renewTime"] == format_micro_time(b.clock.time())
            assert b.elector.leader_changes == 1  # a, then itself

            # a's optimistic renewal over the resourceVersion it wrote is a 409; it reads, sees b, and backs off.
            a.clock.advance(1)
            assert not await a.elector.try_acquire_or_renew()
            assert a.elector.leader == "host-b_2"
            assert (await read_lease(api, name))["spec"]["holderIdentity"] == "host-b_2"
        finally:
            await a.close()
            await b.close()

    run(main)


def test_the_lease_is_compare_and_swap_on_resource_version(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        async with Client(HTTPTransport(api.url)) as c1, Client(HTTPTransport(api.url)) as c2:
            one, two = LeaseLock(c1, NS, name), LeaseLock(c2, NS, name)
            with pytest.raises(NotFoundError):
                await one.get()
            await one.create(LeaderElectionRecord("one", 15, None, None, 0))
            await two.get()
            # (A PUT that changes nothing keeps the resourceVersion, as upstream: a renewal moves renewTime.)
            await one.update(LeaderElectionRecord("one", 15, None, "2026-01-01T00:00:02.000000Z", 0))
            with pytest.raises(ConflictError):  # two read before one's update
                await two.update(LeaderElectionRecord("two", 15, None, None, 1))
            assert (await one.get()).holder_identity == "one"

    run(main)


def test_two_candidates_racing_for_a_free_lease_one_wins_the_other_gets_a_conflict(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a, b, c = (Candidate(api, name, f"host-{x}_{x}") for x in "abc")
        try:
            assert await c.elector.try_acquire_or_renew()
            assert await c.elector.release()  # free: holder "", 1 s
            transitions = (await read_lease(api, name))["spec"]["leaseTransitions"]

            b.partition.updates_go.clear()  # b reads the free lease, then its PUT waits...
            b_try = asyncio.ensure_future(b.elector.try_acquire_or_renew())
            await eventually(lambda: b.partition.updates_parked == 1, what="b's PUT to be parked")
            assert await a.elector.try_acquire_or_renew()  # ...while a reads and writes it
            b.partition.updates_go.set()  # b's PUT goes out over the resourceVersion a replaced: 409
            assert not await b_try
            spec = (await read_lease(api, name))["spec"]
            assert spec["holderIdentity"] == "host-a_a"
            assert spec["leaseTransitions"] == transitions + 1
            assert not b.elector.is_leader()
        finally:
            for x in (a, b, c):
                await x.close()

    run(main)


def test_release_empties_the_holder_and_a_standby_takes_over_at_once(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a, b = Candidate(api, name, "host-a_1"), Candidate(api, name, "host-b_2")
        try:
            await a.elector.acquire()
            assert a.elector.is_leader()
            assert not await b.elector.try_acquire_or_renew()
            assert await a.elector.release()
            assert not a.elector.is_leader()
            spec = (await read_lease(api, name))["spec"]
            assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
            assert spec["leaseTransitions"] == 0
            # No time passed on b's clock: an empty holder is free now, not after a lease duration.
            assert await b.elector.try_acquire_or_renew()
            spec = (await read_lease(api, name))["spec"]
            assert spec["holderIdentity"] == "host-b_2" and spec["leaseTransitions"] == 1
        finally:
            await a.close()
            await b.close()

    run(main)


# -- the loops --------------------------------------------------------------------------------------------


def test_a_leader_that_cannot_renew_stops_leading_at_the_renew_deadline_before_anyone_can_take_over(
        api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a = Candidate(api, name, "host-a_1", lease_duration=15, renew_deadline=10, retry_period=2)
        b = Candidate(api, name, "host-b_2", lease_duration=15, renew_deadline=10, retry_period=2)
        fenced = leader_only_client(a.client, a.elector).resource("configmaps")
        try:
            await a.elector.acquire()
            last_sent = a.clock.monotonic()
            renewing = asyncio.ensure_future(a.elector.renew())
            assert not await b.elector.try_acquire_or_renew()
            await fenced.create({"metadata": {"name": f"{name}-while-leading"}, "data": {}}, NS)

            a.partition.cut()  # every renewal from now on hangs
            for _ in range(9):
                a.clock.advance(1)
                await asyncio.sleep(0.01)
                assert not renewing.done() and a.elector.is_leader()
            a.clock.advance(0.999)
            await asyncio.sleep(0.01)
            assert a.elector.is_leader()
            a.clock.advance(0.001)  # the renew deadline since the last renewal it sent
            assert not a.elector.is_leader()
            await asyncio.wait_for(renewing, 5)
            assert a.clock.monotonic() - last_sent == pytest.approx(10.0)
            a.partition.heal()
            with pytest.raises(NotLeaderError):
                await fenced.create({"metadata": {"name": f"{name}-after"}, "data": {}}, NS)
            async with Client(HTTPTransport(api.url)) as c:
                with pytest.raises(NotFoundError):
                    await c.resource("configmaps").get(f"{name}-after", NS)

            # b, which saw a's last renewal when it happened, may take over only 15 s after it: 5 s later.
            b.clock.advance(10)
            assert not await b.elector.try_acquire_or_renew()
            b.clock.advance(5.01)
            assert await b.elector.try_acquire_or_renew()
        finally:
            await a.close()
            await b.close()

    run(main)


def test_the_renew_loop_keeps_leading_while_renewals_succeed(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a = Candidate(api, name, "host-a_1", lease_duration=15, renew_deadline=10, retry_period=2)
        try:
            await a.elector.acquire()
            renewing = asyncio.ensure_future(a.elector.renew())
            seen = set()
            for _ in range(20):  # 40 s, four lease durations
                await eventually(lambda: a.clock.next_deadline() == a.clock.now + 2, what="the loop to wait 2 s")
                a.clock.advance(2)
                renewed_at = format_micro_time(a.clock.time())
                await eventually(lambda t=renewed_at: _renew_time_is(api, name, t), what=f"a renewal at {renewed_at}")
                seen.add(renewed_at)
                assert a.elector.is_leader() and not renewing.done()
            assert len(seen) == 20
            spec = (await read_lease(api, name))["spec"]
            assert spec["leaseTransitions"] == 0 and spec["acquireTime"] == "2026-01-01T00:00:00.000000Z"
            renewing.cancel()
        finally:
            await a.close()

    run(main)


async def _renew_time_is(api: Cluster, name: str, stamp: str) -> bool:
    return bool((await read_lease(api, name))["spec"]["renewTime"] == stamp)


# -- LeaderElected and the metrics ------------------------------------------------------------------------


class Probe:
    """A component recording its lifecycle."""

    def __init__(self, log: list) -> None:
        self.log = log

    @property
    def name(self) -> str:
        return "probe"

    async def start(self) -> None:
        self.log.append("start")

    async def stop(self) -> None:
        self.log.append("stop")

    def ready(self) -> bool:
        return True

    def statistics(self) -> dict:
        return {}


def test_leader_elected_runs_what_it_leads_only_while_leading_and_releases_on_stop(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a, b = Candidate(api, name, "host-a_1"), Candidate(api, name, "host-b_2")
        a_log: list = []
        b_log: list = []
        elected_a = LeaderElected(a.elector, lambda: [Probe(a_log)])
        elected_b = LeaderElected(b.elector, lambda: [Probe(b_log)])
        registry = CollectorRegistry()
        registry.register(LeaderElectionMetrics([a.elector, b.elector]))
        try:
            await elected_a.start()
            assert a_log == ["start"] and elected_a.ready()
            await elected_b.start()  # returns after its first attempt: standing by
            assert b_log == [] and elected_b.ready() and not b.elector.is_leader()
            text = generate_latest(registry).decode()
            assert text.count(f'leader_election_master_status{{name="{name}"}} 1.0') == 1
            assert text.count(f'leader_election_master_status{{name="{name}"}} 0.0') == 1

            await elected_a.stop()  # stops what it leads, then releases
            assert a_log == ["start", "stop"]
            assert (await read_lease(api, name))["spec"]["holderIdentity"] == ""
            b.clock.advance(2)  # b's next retry (no jitter in these tests)
            await eventually(lambda: b_log == ["start"], what="b to lead after a released")
            assert b.elector.is_leader() and b.elector.leader_changes == 1
            text = generate_latest(registry).decode()
            assert f'megaplane_leader_election_leader_changes_total{{name="{name}"}} 1.0' in text
        finally:
            await elected_b.stop()
            await a.close()
            await b.close()

    run(main)


def test_leader_elected_stops_what_it_leads_when_the_lease_is_lost_then_calls_on_lost(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a = Candidate(api, name, "host-a_1")
        log: list = []
        lost = asyncio.Event()
        elected = LeaderElected(a.elector, lambda: [Probe(log)], on_lost=lost.set)
        try:
            await elected.start()
            assert log == ["start"]
            a.partition.cut()
            for _ in range(12):
                a.clock.advance(1)
                await asyncio.sleep(0.01)
            a.partition.heal()  # the release after the loss gets through: nobody else took the lease
            await asyncio.wait_for(lost.wait(), 5)
            assert log == ["start", "stop"]
            assert not elected.ready()  # a process exits in on_lost; this one just stopped
            spec = (await read_lease(api, name))["spec"]
            assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
        finally:
            await elected.stop()
            await a.close()

    run(main)


def test_without_on_lost_leader_elected_campaigns_again_and_builds_afresh(api: Cluster) -> None:
    """`megaplane up --leader-elect`: a lost lease stops the controllers, and winning it back builds new ones."""
    name = lease_name()

    async def main() -> None:
        a = Candidate(api, name, "host-a_1")
        log: list = []
        built: list = []

        def build() -> list:
            built.append(Probe(log))
            return built[-1:]

        elected = LeaderElected(a.elector, build)
        try:
            await elected.start()
            a.partition.cut()
            for _ in range(11):  # past the renew deadline: it stops leading
                a.clock.advance(1)
                await asyncio.sleep(0.01)
            await eventually(lambda: log == ["start", "stop"], what="the first term to end")
            assert not a.elector.is_leader()
            a.partition.heal()  # nobody else wrote the lease: the CAS over its own last write succeeds
            a.clock.advance(2)
            await eventually(lambda: log == ["start", "stop", "start"], what="a second term")
            assert len(built) == 2 and built[0] is not built[1] and elected.terms == 2
            spec = (await read_lease(api, name))["spec"]
            assert spec["holderIdentity"] == "host-a_1" and spec["leaseTransitions"] == 0
        finally:
            await elected.stop()
            await a.close()

    run(main)


def test_the_leader_election_health_check_fails_for_a_leader_whose_renewals_stopped(api: Cluster) -> None:
    name = lease_name()

    async def main() -> None:
        a, b = Candidate(api, name, "host-a_1"), Candidate(api, name, "host-b_2")
        try:
            assert a.elector.check() is None and b.elector.check() is None
            await a.elector.acquire()  # and no renew loop: as if it were stuck
            assert not await b.elector.try_acquire_or_renew()
            a.clock.advance(15 + 20)
            b.clock.advance(15 + 20)
            assert a.elector.check() is None  # at the tolerance, not past it
            a.clock.advance(0.1)
            assert a.elector.check() == f"failed election to renew leadership on lease {name}"
            assert b.elector.check() is None  # a standby is healthy
        finally:
            await a.close()
            await b.close()

    run(main)
