"""Embedded store put throughput per WAL mode, fsync group commit, and memory per key.

    python benchmarks/store_put.py           # quick: 200K keys, < 1 minute
    python benchmarks/store_put.py --full    # 1M keys

Figures (medians of --repeat runs, pinned to one core, in process):
- puts/s on new keys and on existing keys, WAL none / buffered / fsync
  (fsync here is one synchronous writer: every put waits for its fsync);
- fsync group commit: 1000 concurrent asyncio writers, each awaiting
  durability before its next put;
- memory per key for N keys with 500-byte values (RSS growth minus the raw
  key and value bytes, in a fresh interpreter), after compaction and with
  the history window full.

References measured in the same run: a bare Python dict assignment loop
(the ceiling for any store written in Python), and the disk's fdatasync
rate (the ceiling for fsync without group commit). Upstream's published
mem_etcd figures (1.05M/s buffered, ~100K/s fsync on 192-core VMs) are
quoted for context. Targets from issue #2: >= 300K/s existing keys WAL none,
>= 200K/s buffered, memory <= raw + 250 B per key.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from megaplane.store import Store, StoreConfig  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def keys_for(n: int, tag: bytes = b"") -> list[bytes]:
    return [b"/registry/leases/kube-node-lease/node-%s%07d" % (tag, i) for i in range(n)]


def bare_dict_rate(keys: list[bytes], value: bytes) -> float:
    d: dict = {}
    t = time.perf_counter()
    for k in keys:
        d[k] = value
    return len(keys) / (time.perf_counter() - t)


def put_rates(mode: str, keys: list[bytes], value: bytes, root: str) -> tuple[float, float]:
    """(new keys/s, existing keys/s) for one WAL mode."""
    data_dir = tempfile.mkdtemp(dir=root)
    store = Store(data_dir, StoreConfig(wal_default=mode))
    put = store.put
    try:
        if mode == "fsync":
            wait = store.wait_durable
            t = time.perf_counter()
            for k in keys:
                wait(put(k, value).revision)
            t1 = time.perf_counter()
            for k in keys:
                wait(put(k, value).revision)
            t2 = time.perf_counter()
        else:
            t = time.perf_counter()
            for k in keys:
                put(k, value)
            t1 = time.perf_counter()
            for k in keys:
                put(k, value)
            t2 = time.perf_counter()
            store.sync()
    finally:
        store.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return len(keys) / (t1 - t), len(keys) / (t2 - t1)


def fsync_rate(root: str, seconds: float = 1.0) -> float:
    """How many 4 KiB append + fdatasync rounds the disk does per second."""
    path = os.path.join(root, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    n = 0
    t = time.perf_counter()
    try:
        while time.perf_counter() - t < seconds:
            os.write(fd, b"x" * 4096)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        os.unlink(path)
    return n / (time.perf_counter() - t)


def group_commit(root: str, writers: int, seconds: float, value: bytes) -> dict:
    data_dir = tempfile.mkdtemp(dir=root)
    store = Store(data_dir, StoreConfig(wal_default="fsync"))
    latencies: list[float] = []
    done = 0
    elapsed = 0.0

    async def run() -> None:
        nonlocal done, elapsed
        store.attach_loop(asyncio.get_running_loop())
        stop = time.perf_counter() + seconds

        async def writer(w: int) -> None:
            nonlocal done
            key = b"/registry/leases/kube-node-lease/w%05d" % w
            while time.perf_counter() < stop:
                t = time.perf_counter()
                rev = store.put(key, value).revision
                await store.durable(rev)
                latencies.append(time.perf_counter() - t)
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - t0

    asyncio.run(run())
    cycles = store.wal.cycles_total if store.wal else 0
    store.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    latencies.sort()
    return {
        "writes_per_s": done / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "writes_per_fsync": done / max(cycles, 1),
    }


def memory_per_key(n: int, value_size: int) -> dict:
    """Bytes per key beyond the raw key and value bytes, measured in fresh interpreters.

    Steady state (history window of 1,000 events): RSS growth (what the
    machine pays, allocator slack included) and tracemalloc's count of live
    Python allocations (exact). Both count every object the store keeps,
    the bytes headers of keys and values included; "raw" is len(key) +
    len(value). Separately: what one event in the history window costs
    (the window is bounded per partition by --history-max-events).
    """
    out: dict = {}
    for how, window in (("rss", 1000), ("traced", 1000), ("traced", n)):
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", str(n), str(value_size), how, str(window)],
            capture_output=True,
            text=True,
            check=True,
        )
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        if window == n:
            out["history_bytes_per_event"] = child["overhead_per_key_B"] - out["traced_overhead_per_key_B"]
        else:
            out[f"{how}_overhead_per_key_B"] = child["overhead_per_key_B"]
        out["keys"] = n
    return out


def memory_child(n: int, value_size: int, how: str, window: int) -> None:
    import tracemalloc

    template = b"v" * (value_size - 8)
    gc.collect()
    if how == "traced":
        tracemalloc.start()
    measure = (lambda: tracemalloc.get_traced_memory()[0]) if how == "traced" else rss_bytes
    base = measure()
    store = Store(None, StoreConfig(history_max_events=window))
    put = store.put
    raw = 0
    for i in range(n):
        # Fresh objects per put, as bytes arrive from the network.
        key = b"/registry/leases/kube-node-lease/node-m%07d" % i
        value = template + b"%08d" % i
        raw += len(key) + len(value)
        put(key, value)
    for p in store.partitions():
        p.index.settle()
        p.trim()
    gc.collect()
    print(json.dumps({"keys": n, "overhead_per_key_B": (measure() - base - raw) / n}))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true", help="1M keys (default: 200K)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--writers", type=int, default=1000)
    ap.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        a = args.memory_child
        memory_child(int(a[0]), int(a[1]), a[2], int(a[3]))
        return
    n = 1_000_000 if args.full else 200_000
    fsync_n = 20_000 if args.full else 3_000
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        pinned = True
    except (AttributeError, OSError):
        pinned = False
    root = tempfile.mkdtemp(prefix="megaplane-bench-", dir=os.environ.get("MEGAPLANE_BENCH_DIR"))
    value = b"x" * 300
    keys = keys_for(n)
    results: dict = {"keys": n, "value_bytes": len(value), "pinned_one_core": pinned}
    print(f"store_put: {n} keys, {len(value)} B values, median of {args.repeat}, one core: {pinned}", flush=True)

    bare = statistics.median(bare_dict_rate(keys, value) for _ in range(args.repeat))
    results["reference_bare_dict_puts_per_s"] = bare
    rows = []
    for mode in ("none", "buffered", "fsync"):
        ks = keys if mode != "fsync" else keys[:fsync_n]
        runs = [put_rates(mode, ks, value, root) for _ in range(args.repeat)]
        new = statistics.median(r[0] for r in runs)
        existing = statistics.median(r[1] for r in runs)
        results[f"{mode}_new_puts_per_s"] = new
        results[f"{mode}_existing_puts_per_s"] = existing
        rows.append((mode, new, existing))
        print(f"  {mode:9s} new {new:>10,.0f}/s  existing {existing:>10,.0f}/s", flush=True)
    disk = fsync_rate(root)
    results["reference_disk_fdatasync_per_s"] = disk
    gc_res = group_commit(root, args.writers, 10.0 if args.full else 3.0, value)
    results["fsync_group_commit"] = {"writers": args.writers, **gc_res}
    print(f"  fsync group commit: {gc_res['writes_per_s']:,.0f}/s", flush=True)
    mem = memory_per_key(n, 500)
    results["memory"] = mem
    shutil.rmtree(root, ignore_errors=True)

    print()
    print("| figure | megaplane | reference (same run) | target |")
    print("|---|---:|---:|---:|")
    for mode, new, existing in rows:
        target = {"none": ">= 300,000", "buffered": ">= 200,000"}.get(mode, "-")
        print(f"| puts/s existing keys, WAL {mode} | {existing:,.0f} | bare dict {bare:,.0f} | {target} |")
        print(f"| puts/s new keys, WAL {mode} | {new:,.0f} | bare dict {bare:,.0f} | - |")
    print(
        f"| fsync group commit, {args.writers} writers | {gc_res['writes_per_s']:,.0f}/s "
        f"(p50 {gc_res['p50_ms']:.1f} ms, p99 {gc_res['p99_ms']:.1f} ms, "
        f"{gc_res['writes_per_fsync']:.0f} writes/fsync) | disk {disk:,.0f} fdatasync/s | - |"
    )
    print(
        f"| memory per key, {mem['keys']:,} keys x 500 B | raw + {mem['rss_overhead_per_key_B']:.0f} B RSS, "
        f"raw + {mem['traced_overhead_per_key_B']:.0f} B allocated | - | raw + 250 B |"
    )
    print(f"| memory per history event (window) | {mem['history_bytes_per_event']:.0f} B allocated | - | - |")
    print("| upstream mem_etcd (published, 192-core VM) | 1,050,000/s buffered, ~100,000/s fsync | | |")
    results["reference_upstream_mem_etcd"] = {"buffered_puts_per_s": 1_050_000, "fsync_puts_per_s": 100_000}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
