"""What audit costs a request: Lease renewals against servers without audit, at Metadata and at RequestResponse.

    python benchmarks/api_audit.py           # quick: 200 leases, 4 s per server, < 1 minute
    python benchmarks/api_audit.py --full    # 2000 leases, 20 s

Three `megaplane apiserver` processes, one after the other in the same run,
each on the embedded store pinned to one core, renewed by the same load
generators (benchmarks/loadgen.py on the other core, PUTs with the Lease's
last resourceVersion, as kubelets renew): no audit flags (the reference, measured first and last),
--audit-policy-file with one rule `level: Metadata`, and one with
`level: RequestResponse` (both bodies in every event), the log in the data
dir. The figure is the server's CPU per renewal (its process CPU, every
thread: the writer thread's encoding and writes included) and the share
audit adds. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_lease_updates import LEASE, create_leases, per_update, renew  # noqa: E402
from harness import apiserver, create_namespace, markdown_table, measure, without_resource_version  # noqa: E402

LEVELS = ("off", "Metadata", "RequestResponse")


def run(level: str, leases: int, seconds: float, root: str) -> dict:
    extra = []
    log = os.path.join(root, f"audit-{level}.log")
    if level != "off":
        policy = os.path.join(root, f"policy-{level}.yaml")
        with open(policy, "w") as f:
            f.write(f"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: {level}\n")
        extra = ["--audit-policy-file", policy, "--audit-log-path", log, "--audit-log-maxsize", "50",
                 "--audit-log-maxbackup", "1"]
    with apiserver(["--secure-port", "0", *extra]) as (server, base):
        port = int(base.rsplit(":", 1)[1])
        create_namespace(base, "bench")
        rvs = create_leases(port, "lease-", leases, root)
        res, cpu, wall = measure(server.pid, lambda: renew(port, rvs, seconds, 2, root))
    lines = 0
    if level != "off":
        for name in os.listdir(root):
            if name.startswith(f"audit-{level}"):
                with open(os.path.join(root, name), "rb") as f:
                    lines += sum(1 for _ in f)
    return {"cpu_us_per_update": per_update(cpu, wall, seconds, res), "updates_per_s": res["updates_per_s"],
            "errors": res["errors"], "audit_lines": lines}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="2000 leases, 20 s per server")
    args = p.parse_args()
    leases, seconds = (2000, 20.0) if args.full else (200, 4.0)
    root = tempfile.mkdtemp(prefix="megaplane-bench-audit-")
    with open(os.path.join(root, "lease-create.json"), "wb") as f:
        f.write(without_resource_version(LEASE))
    with open(os.path.join(root, "lease.json"), "wb") as f:
        f.write(LEASE)
    # The reference twice, first and last: the shared machine's load drifts over the run; their mean is the base.
    before = run("off", leases, seconds, root)
    figures = {level: run(level, leases, seconds, root) for level in LEVELS[1:]}
    after = run("off", leases, seconds, root)
    figures = {"off": {k: (before[k] + after[k]) / 2 for k in before}, **figures}
    figures["off"]["cpu_us_per_update_first_last"] = [before["cpu_us_per_update"], after["cpu_us_per_update"]]
    base = figures["off"]["cpu_us_per_update"]
    rows = [[level, f"{f['cpu_us_per_update']:.1f}", f"{f['updates_per_s']:.0f}", str(f["audit_lines"]),
             f"{(f['cpu_us_per_update'] / base - 1) * 100:+.1f} %"] for level, f in figures.items()]
    print(markdown_table(["audit", "server CPU µs / update", "updates / s", "log lines", "vs off"], rows))
    print(json.dumps({"benchmark": "api_audit", "leases": leases, "seconds": seconds, "figures": figures,
                      "reference": "off",
                      "metadata_share": figures["Metadata"]["cpu_us_per_update"] / base - 1,
                      "request_response_share": figures["RequestResponse"]["cpu_us_per_update"] / base - 1}))


if __name__ == "__main__":
    main()
