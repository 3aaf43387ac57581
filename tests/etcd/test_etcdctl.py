"""Debian's etcdctl 3.4 against megaplane's store and against a real etcd 3.4: same commands, same output.

The tests of this module run their commands against both servers in
lockstep, so revisions line up; outputs are compared after dropping cluster
and member ids (which differ between any two clusters) and client retry
logs. Commands whose output is not deterministic (lease ids, endpoint
status) are compared on their shape.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.etcd.conftest import ETCDCTL, etcdctl, normalize, start_megaplane


def both(servers, *args, input=None):
    """Run one etcdctl command against both servers; return (megaplane, etcd) CompletedProcess."""
    return tuple(etcdctl(servers[name].endpoint, *args, input=input) for name in ("megaplane", "etcd"))


def same(servers, *args, input=None):
    """Run against both and assert the same exit code, stdout and stderr. Returns stdout."""
    ours, theirs = both(servers, *args, input=input)
    assert ours.returncode == theirs.returncode, (args, ours, theirs)
    assert normalize(ours.stdout) == normalize(theirs.stdout), args
    assert normalize(ours.stderr) == normalize(theirs.stderr), args
    return ours.stdout


def test_put_and_get_forms(servers):
    for i in range(5):
        assert same(servers, "put", f"/k/{i}", f"value-{i}") == "OK\n"
    same(servers, "put", "/k/1", "value-1b")
    same(servers, "put", "/other", "x")
    assert same(servers, "get", "/k/1") == "/k/1\nvalue-1b\n"
    same(servers, "get", "/k/", "--prefix")
    same(servers, "get", "/k/", "--prefix", "--keys-only")
    same(servers, "get", "/k/", "--prefix", "--limit", "2")
    same(servers, "get", "/k/", "--prefix", "--limit", "2", "-w", "json")
    same(servers, "get", "/k/1", "--rev", "3")
    same(servers, "get", "/k/1", "--rev", "3", "-w", "json")
    same(servers, "get", "/k/2", "--from-key")
    same(servers, "get", "/k/", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND")
    same(servers, "get", "/k/", "--prefix", "--sort-by", "VALUE", "--order", "ASCEND", "--limit", "3")
    same(servers, "get", "/k/0", "/k/3", "-w", "json")
    same(servers, "get", "/nothing", "-w", "json")
    same(servers, "get", "/k/1", "--print-value-only")
    same(servers, "get", "/k/", "--prefix", "-w", "fields")


def test_get_errors(servers):
    ours = same(servers, "get", "/k/1", "--rev", "100000")  # future revision
    assert ours == ""
    ours, _ = both(servers, "get", "/k/1", "--rev", "100000")
    assert "required revision is a future revision" in ours.stderr


def test_del_forms(servers):
    for i in range(4):
        same(servers, "put", f"/d/{i}", f"v{i}")
    assert same(servers, "del", "/d/0") == "1\n"
    same(servers, "del", "/d/0")
    same(servers, "del", "/d/", "--prefix", "--prev-kv")
    same(servers, "del", "/d/", "--prefix", "-w", "json")


def test_txn(servers):
    same(servers, "put", "/t/a", "1")
    script = 'value("/t/a") = "1"\n\nput /t/a 2\nget /t/a\n\nput /t/b x\n\n'
    assert same(servers, "txn", input=script).startswith("SUCCESS")
    script = 'mod("/t/a") < "3"\n\nput /t/a 3\n\nget /t/a\n\n'
    assert same(servers, "txn", input=script).startswith("FAILURE")
    same(servers, "txn", "-w", "json", input='version("/t/a") > "0"\n\ndel /t/a\n\n\n')
    same(servers, "get", "/t/", "--prefix")


def test_watch_from_a_revision_with_prev_kv(servers):
    for i in range(3):
        same(servers, "put", f"/w/{i}", f"v{i}")
    same(servers, "put", "/w/1", "changed")
    same(servers, "del", "/w/2")
    start = json.loads(etcdctl(servers["etcd"].endpoint, "get", "/w/0", "-w", "json").stdout)["kvs"][0]["mod_revision"]
    outputs = []
    for name in ("megaplane", "etcd"):
        proc = subprocess.Popen(
            [ETCDCTL, "--endpoints", servers[name].endpoint, "watch", "--prefix", "/w/", "--rev", str(start), "--prev-kv"],
            env={**os.environ, "ETCDCTL_API": "3"},
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = []
        deadline = time.monotonic() + 10
        # 3 puts (2 lines each), 1 put with prev (4 lines), 1 delete with prev (4 lines)
        while len(lines) < 6 + 4 + 4 and time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
        proc.kill()
        proc.wait()
        outputs.append(lines)
    assert outputs[0] == outputs[1]
    assert outputs[0][:2] == ["PUT\n", "/w/0\n"]


def test_watch_sees_new_writes(servers):
    outputs = []
    for name in ("megaplane", "etcd"):
        ep = servers[name].endpoint
        proc = subprocess.Popen(
            [ETCDCTL, "--endpoints", ep, "watch", "/live"],
            env={**os.environ, "ETCDCTL_API": "3"},
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        etcdctl(ep, "put", "/live", "1")
        etcdctl(ep, "del", "/live")
        lines = [proc.stdout.readline() for _ in range(5)]
        proc.kill()
        proc.wait()
        outputs.append(lines)
    assert outputs[0] == outputs[1] == ["PUT\n", "/live\n", "1\n", "DELETE\n", "/live\n"]


def test_leases(servers):
    ids = {}
    for name in ("megaplane", "etcd"):
        out = etcdctl(servers[name].endpoint, "lease", "grant", "100")
        m = re.match(r"lease ([0-9a-f]+) granted with TTL\(100s\)\n$", out.stdout)
        assert m, out.stdout
        ids[name] = m.group(1)
    for name, lease in ids.items():
        ep = servers[name].endpoint
        assert etcdctl(ep, "put", "/l/a", "1", "--lease", lease).stdout == "OK\n"
        assert etcdctl(ep, "put", "/l/b", "1", "--lease", lease).stdout == "OK\n"
        ka = etcdctl(ep, "lease", "keep-alive", "--once", lease)
        assert ka.stdout == f"lease {lease} keepalived with TTL(100)\n"
        ttl = etcdctl(ep, "lease", "timetolive", "--keys", lease).stdout
        # etcd lists attached keys in map order; megaplane sorts them.
        m = re.match(rf"lease {lease} granted with TTL\(100s\), remaining\((99|100)s\), attached keys\(\[(.*)\]\)\n$", ttl)
        assert m and sorted(m.group(2).split()) == ["/l/a", "/l/b"], ttl
        assert lease in etcdctl(ep, "lease", "list").stdout
        assert etcdctl(ep, "lease", "revoke", lease).stdout == f"lease {lease} revoked\n"
        assert etcdctl(ep, "get", "/l/", "--prefix").stdout == ""
        assert etcdctl(ep, "lease", "timetolive", lease).stdout == f"lease {lease} already expired\n"
    # Errors: same text from both, modulo the id.
    same(servers, "lease", "revoke", "1234")
    same(servers, "lease", "keep-alive", "--once", "1234")
    same(servers, "put", "/l/x", "1", "--lease", "1234")


def test_compaction(servers):
    same(servers, "put", "/c", "1")
    same(servers, "put", "/c", "2")
    rev = json.loads(etcdctl(servers["etcd"].endpoint, "get", "/c", "-w", "json").stdout)["header"]["revision"]
    assert same(servers, "compaction", str(rev - 1)) == f"compacted revision {rev - 1}\n"
    same(servers, "get", "/c", "--rev", str(rev - 2))  # compacted: same error text
    ours, _ = both(servers, "get", "/c", "--rev", str(rev - 2))
    assert "required revision has been compacted" in ours.stderr
    same(servers, "compaction", str(rev - 1))
    same(servers, "get", "/c", "--rev", str(rev - 1))


def test_endpoint_status_and_member_list_have_etcds_shape(servers):
    ours, theirs = both(servers, "endpoint", "status", "-w", "json")
    a, b = json.loads(ours.stdout)[0], json.loads(theirs.stdout)[0]
    assert set(a) == set(b) and set(a["Status"]) <= set(b["Status"]) | {"errors", "isLearner"}
    assert a["Status"]["version"] >= "3.5.13", "kube-apiserver trusts watch progress from 3.5.13 on"
    assert a["Status"]["header"]["revision"] == b["Status"]["header"]["revision"]
    ours, theirs = both(servers, "member", "list", "-w", "json")
    m = json.loads(ours.stdout)
    assert len(m["members"]) == 1 and m["members"][0]["clientURLs"] == [f"http://{servers['megaplane'].endpoint}"]
    assert both(servers, "endpoint", "health")[0].returncode == 0
    assert "is healthy" in both(servers, "endpoint", "health")[0].stderr


def test_snapshot_save_restore_and_status(servers, tmp_path):
    ep = servers["megaplane"].endpoint
    for i in range(20):
        etcdctl(ep, "put", f"/snap/{i}", f"v{i}")
    path = str(tmp_path / "backup.db")
    out = etcdctl(ep, "snapshot", "save", path)
    assert out.returncode == 0 and "Snapshot saved at" in out.stdout, out
    cli = [sys.executable, "-m", "megaplane.cli"]
    st = json.loads(subprocess.run(cli + ["snapshot", "status", path, "-w", "json"], capture_output=True, text=True, check=True).stdout)
    expected = etcdctl(ep, "get", "", "--prefix", "--limit", "1", "-w", "json")
    assert st["totalKey"] == json.loads(expected.stdout)["count"]
    # etcdctl cannot read it: a megaplane snapshot is not a bbolt database.
    assert etcdctl(ep, "snapshot", "status", path).returncode != 0
    restored = str(tmp_path / "restored")
    subprocess.run(cli + ["snapshot", "restore", path, "--data-dir", restored], check=True, capture_output=True)
    server = start_megaplane(restored)
    try:
        got = etcdctl(server.endpoint, "get", "/snap/", "--prefix", "--keys-only").stdout.split()
        assert got == sorted(f"/snap/{i}" for i in range(20))
    finally:
        server.stop()
    # megaplane snapshot save --endpoints does the same from our CLI.
    path2 = str(tmp_path / "b2.snap")
    subprocess.run(cli + ["snapshot", "save", path2, "--endpoints", ep], check=True, capture_output=True)
    st2 = json.loads(subprocess.run(cli + ["snapshot", "status", path2, "-w", "json"], capture_output=True, text=True, check=True).stdout)
    assert st2["totalKey"] == st["totalKey"]


def test_defrag_alarm_and_hashkv(servers):
    for name in ("megaplane", "etcd"):
        ep = servers[name].endpoint
        assert etcdctl(ep, "defrag").returncode == 0
        assert etcdctl(ep, "alarm", "list").stdout == ""
        out = etcdctl(ep, "endpoint", "hashkv", "-w", "json")
        assert out.returncode == 0 and json.loads(out.stdout)[0]["HashKV"]["hash"] > 0


@pytest.mark.slow
def test_check_perf_runs_to_completion(megaplane):
    out = etcdctl(megaplane.endpoint, "check", "perf", "--load=s", timeout=120)
    assert "Throughput" in out.stdout and "Slowest request" in out.stdout, out
    # check perf deletes its keys at the end (a prefix delete).
    left = etcdctl(megaplane.endpoint, "get", "/etcdctl-check-perf/", "--prefix", "--keys-only")
    assert left.returncode == 0 and left.stdout == ""
