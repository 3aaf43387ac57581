"""Pods per second of the sharded scatter/gather (`--shards N`), 1 vs 2 shards on the same workload, same run.

The coordinator side is `megaplane.scheduler.shards.Gatherer`, the code
`ShardedScheduler` runs per batch (scatter to real shard processes over
pipes, raw score parts joined and finished over the union, the gather
check, retries), driven here without an API server: each placement is
assumed in the coordinator's journaling table, as the scheduler's loop
does before its bind. Workloads are upstream scheduler_perf shapes
(`scheduler_perf.WORKLOADS`: node-default nodes, pod-default pods, and
TopologySpreading's maxSkew 5 DoNotSchedule zone constraint). For every
workload the reference in the same run is the single-process path,
`Algorithm.schedule` in this process on the same table, then 1 shard and
2 shards, alternated (A B A B) with medians quoted. The machine's cores
are shared: the shards, the coordinator and anything else running
compete for them, which is the point of the measurement on 2 cores.

    python benchmarks/scheduler_shards.py          # quick: 5,000 nodes (< 1 min)
    python benchmarks/scheduler_shards.py --full   # adds SchedulingBasic on 100,000 nodes

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.scheduler_perf import WORKLOADS, node  # noqa: E402

#: (workload, nodes, init pods, measured pods) per mode.
QUICK: List[Tuple[str, int, int, int]] = [("SchedulingBasic", 5000, 500, 1500),
                                         ("TopologySpreading", 5000, 500, 1000)]
FULL: List[Tuple[str, int, int, int]] = [("SchedulingBasic", 5000, 1000, 3000), ("TopologySpreading", 5000, 1000, 2000),
                                        ("SchedulingBasic", 100_000, 1000, 3000)]
ROUNDS = 2


def build(name: str, nodes: int, init: int) -> Any:
    from megaplane.scheduler.algorithm import Algorithm
    from megaplane.scheduler.podspec import parse_pod
    from megaplane.scheduler.replica import ReplicatedTable

    zones, make_init, _, _ = WORKLOADS[name]
    table = ReplicatedTable(capacity=nodes)
    for i in range(nodes):
        table.upsert_node(node(i, zones[i % len(zones)] if zones else ""))
    algorithm = Algorithm(table, rng=random.Random(1))
    for i in range(init):
        info = parse_pod(make_init(i))
        table.add_pod(info, algorithm.schedule(info).node, assumed=True)
    table.take_journal()
    return table


def measured_pods(name: str, count: int) -> List[Any]:
    from megaplane.scheduler.podspec import parse_pod

    make = WORKLOADS[name][2]
    return [parse_pod(make(i)) for i in range(count)]


def run_single(name: str, nodes: int, init: int, count: int) -> Dict[str, Any]:
    from megaplane.scheduler.algorithm import Algorithm, FitError

    table = build(name, nodes, init)
    algorithm = Algorithm(table, rng=random.Random(2))
    pods = measured_pods(name, count)
    failed = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for info in pods:
        try:
            result = algorithm.schedule(info)
        except FitError:
            failed += 1
            continue
        table.add_pod(info, result.node, assumed=True)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"pods_per_s": count / elapsed, "seconds": elapsed, "coordinator_cpu_us_per_pod": 1e6 * cpu / count,
            "unschedulable": failed}


def cpu_seconds(pids: List[int]) -> float:
    """User + system CPU of the processes `pids` so far (from /proc)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


async def run_sharded(name: str, nodes: int, init: int, count: int, shards: int, batch: int) -> Dict[str, Any]:
    from megaplane.scheduler.algorithm import Algorithm, FitError
    from megaplane.scheduler.shards import RETRY, Gatherer, ShardProcesses

    table = build(name, nodes, init)
    algorithm = Algorithm(table, rng=random.Random(2))
    processes = ShardProcesses(shards, announce=lambda line: None)
    await processes.start()
    gatherer = Gatherer(table, algorithm, processes)
    pods = measured_pods(name, count)
    try:
        await gatherer.sync()  # the snapshots, not timed
        queue = list(pods)
        failed = 0
        pids = processes.pids()
        t0, c0, s0 = time.perf_counter(), time.process_time(), cpu_seconds(pids)
        while queue:
            chunk, queue = queue[:batch], queue[batch:]

            async def place(j: int, slot: int, chunk: List[Any] = chunk) -> None:
                table.add_pod(chunk[j], table.names[slot], assumed=True)

            outcomes = await gatherer.batch(chunk, place)
            retry = [info for info, outcome in zip(chunk, outcomes) if outcome == RETRY]
            failed += sum(1 for outcome in outcomes if isinstance(outcome, FitError))
            queue = retry + queue
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        shard_cpu = cpu_seconds(pids) - s0
    finally:
        await processes.stop()
    return {"pods_per_s": count / elapsed, "seconds": elapsed, "coordinator_cpu_us_per_pod": 1e6 * cpu / count,
            "shards_cpu_us_per_pod": 1e6 * shard_cpu / count, "unschedulable": failed, "gather_conflicts": gatherer.conflicts, "retried": gatherer.retried,
            "batches": gatherer.batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="add SchedulingBasic on 100,000 nodes")
    parser.add_argument("--batch", type=int, default=16, help="pods per scatter (the scheduler's default: 16)")
    args = parser.parse_args()
    from megaplane.scheduler.shards import DEFAULT_BATCH

    batch = args.batch or DEFAULT_BATCH
    results = []
    for name, nodes, init, count in (FULL if args.full else QUICK):
        runs: Dict[str, List[Dict[str, Any]]] = {"in_process": [], "shards_1": [], "shards_2": []}
        for _ in range(ROUNDS):
            runs["in_process"].append(run_single(name, nodes, init, count))
            for shards in (1, 2):
                runs[f"shards_{shards}"].append(asyncio.run(run_sharded(name, nodes, init, count, shards, batch)))
        row: Dict[str, Any] = {"workload": name, "nodes": nodes, "init_pods": init, "measured_pods": count,
                               "batch": batch}
        for key, values in runs.items():
            row[key] = {"pods_per_s_median": statistics.median(v["pods_per_s"] for v in values),
                        "pods_per_s_runs": [round(v["pods_per_s"]) for v in values],
                        "coordinator_cpu_us_per_pod": statistics.median(v["coordinator_cpu_us_per_pod"] for v in values),
                        "unschedulable": values[-1]["unschedulable"],
                        **{k: values[-1][k] for k in ("gather_conflicts", "retried") if k in values[-1]}}
            if "shards_cpu_us_per_pod" in values[0]:
                row[key]["shards_cpu_us_per_pod"] = statistics.median(v["shards_cpu_us_per_pod"] for v in values)
        row["two_vs_one_shard"] = row["shards_2"]["pods_per_s_median"] / row["shards_1"]["pods_per_s_median"]
        row["two_shards_vs_in_process"] = row["shards_2"]["pods_per_s_median"] / row["in_process"]["pods_per_s_median"]
        results.append(row)
        print(f"{name}/{nodes}Nodes_{count}Pods: in process {row['in_process']['pods_per_s_median']:,.0f} pods/s, "
              f"1 shard {row['shards_1']['pods_per_s_median']:,.0f}, 2 shards {row['shards_2']['pods_per_s_median']:,.0f} "
              f"(2 vs 1 shard {row['two_vs_one_shard']:.2f}x, vs in process {row['two_shards_vs_in_process']:.2f}x; "
              f"conflicts {row['shards_2'].get('gather_conflicts', 0)}, retried {row['shards_2'].get('retried', 0)})",
              flush=True)
    print("| workload | nodes | pods | in process (reference) | 1 shard | 2 shards | 2 vs 1 | CPU us/pod in process "
          "| coordinator + shards CPU us/pod, 1 shard | same, 2 shards |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['workload']} | {r['nodes']:,} | {r['measured_pods']:,} | {r['in_process']['pods_per_s_median']:,.0f} | "
              f"{r['shards_1']['pods_per_s_median']:,.0f} | {r['shards_2']['pods_per_s_median']:,.0f} | "
              f"{r['two_vs_one_shard']:.2f}x | {r['in_process']['coordinator_cpu_us_per_pod']:.0f} | "
              f"{r['shards_1']['coordinator_cpu_us_per_pod']:.0f} + {r['shards_1']['shards_cpu_us_per_pod']:.0f} | "
              f"{r['shards_2']['coordinator_cpu_us_per_pod']:.0f} + {r['shards_2']['shards_cpu_us_per_pod']:.0f} |")
    print(json.dumps({"results": results, "cores": os.cpu_count(),
                      "reference": "in_process: Algorithm.schedule in this process on the same table, same run"}))


if __name__ == "__main__":
    main()
