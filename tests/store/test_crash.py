"""kill -9 a writer under load, restart from its data dir, and check what survived.

fsync mode: every acknowledged write is present. buffered mode: the state
is exactly the state of the write history at some revision (a consistent
prefix) and includes everything synced before the kill. Every mode: no
revision is handed out twice, and reads and watches from the lost range
fail as compacted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from megaplane.store import Store
from megaplane.store.errors import CompactedError
from megaplane.store.requests import DeleteRangeRequest, PutRequest
from tests.store.crash_writer import apply, config, operations

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_and_kill(data_dir: str, mode: str, seed: int, until) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_writer", data_dir, mode, str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if until(lines) or time.monotonic() > deadline:
                break
        time.sleep(random.Random(seed).uniform(0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        # Lines already written before the kill are acknowledgements too.
        lines.extend(line.strip() for line in proc.stdout)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return lines


@pytest.mark.parametrize("seed", [1, 2])
def test_fsync_mode_keeps_every_acknowledged_write(tmp_path, seed):
    data_dir = str(tmp_path / "data")
    acks_needed = 2000
    lines = run_and_kill(data_dir, "fsync", seed, lambda ls: len(ls) > acks_needed)
    acks = [line.split() for line in lines if line.startswith("ACK")]
    assert len(acks) >= acks_needed
    store = Store(data_dir, config("fsync"))
    try:
        missing = []
        for _, w, n, rev in acks:
            for kind in (b"pods", b"nodes"):
                kv = store.get(b"/registry/%s/w%s/k%s" % (kind, w.encode(), n.encode()))
                if kv is None or kv[4] != n.encode() or kv[2] != int(rev):
                    missing.append((kind, w, n, rev))
        assert missing == []
        assert store.revision >= max(int(a[3]) for a in acks)
    finally:
        store.close()


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_buffered_mode_recovers_a_consistent_prefix(tmp_path, seed):
    data_dir = str(tmp_path / "data")
    lines = run_and_kill(data_dir, "buffered", seed, lambda ls: sum(x.startswith("SYNCED") for x in ls) >= 3)
    synced = max(int(line.split()[1]) for line in lines if line.startswith("SYNCED"))
    store = Store(data_dir, config("buffered"))
    try:
        recovered = store.recovered_revision
        assert recovered >= synced, "everything synced before the kill survives"
        logged = [kv for kv in store.range(b"\x00", b"\x00").kvs if not kv[0].startswith(b"/registry/leases/")]
    finally:
        store.close()
    # Replay the same history in memory up to the recovered revision.
    model = Store()
    for op in operations(seed):
        if model.revision >= recovered:
            break
        apply(model, op)
    assert model.revision == recovered, "the recovered revision is a revision of the history"
    expected = [kv for kv in model.range(b"\x00", b"\x00").kvs if not kv[0].startswith(b"/registry/leases/")]
    assert logged == expected


@pytest.mark.parametrize("mode,seed", [("buffered", 6), ("buffered", 7), ("fsync", 8), ("none", 9)])
def test_no_revision_is_handed_out_twice_after_a_kill(tmp_path, mode, seed):
    data_dir = str(tmp_path / "data")
    cfg = config(f"acks-{mode}")
    # Long enough for several WAL flushes and background reservations before the kill.
    started: list[float] = []

    def a_second_of_acks(ls: list[str]) -> bool:
        started.append(time.monotonic())
        return len(ls) > 1000 and time.monotonic() > started[0] + 1.0

    lines = run_and_kill(data_dir, f"acks-{mode}", seed, a_second_of_acks)
    acked = [int(line.split()[1]) for line in lines if line.startswith("ACK")]
    highest = max(acked)
    store = Store(data_dir, cfg)
    try:
        recovered = store.recovered_revision
        if mode == "buffered":
            assert recovered < highest, "buffered writes of the last 0.2 s were lost"
        if mode == "fsync":
            assert recovered >= highest, "nothing acknowledged is lost in fsync mode"
        # The store goes on above every revision a client may hold, with everything below compacted.
        assert store.revision > highest + 1
        assert store.compact_revision == store.revision
        lost = sorted({r for r in acked if r > recovered}) or [highest]
        for rev in (lost[0], lost[len(lost) // 2], lost[-1]):
            with pytest.raises(CompactedError):
                store.range(b"/registry/pods/", b"/registry/pods0", revision=rev)
            # A client holding `rev` resumes its watch at rev + 1 (kube-apiserver's etcd watch).
            w = store.watch(b"/registry/", b"/registry0", start_revision=rev + 1)
            assert w.take() == [] and w.canceled and w.compact_revision == store.revision
        # Every revision handed out from now on is above every acknowledged one.
        lease = store.lease_grant(60)
        handed = [
            store.put(b"/registry/pods/ns/new", b"1").revision,
            store.put(b"/registry/leases/ns/new", b"1", lease.id).revision,
            store.txn([], [PutRequest(b"/other/new", b"1"), DeleteRangeRequest(b"/registry/pods/ns/new")]).revision,
            store.lease_revoke(lease.id),
        ]
        assert min(handed) > highest and handed == sorted(set(handed))
        last = store.revision
        store.wait_durable(last)
    finally:
        store.close()
    # A clean restart after that keeps the floor: the lost range stays compacted.
    again = Store(data_dir, cfg)
    try:
        assert again.revision > last
        with pytest.raises(CompactedError):
            again.range(b"/registry/pods/", b"/registry/pods0", revision=lost[-1])
    finally:
        again.close()
