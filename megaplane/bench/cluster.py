"""The processes under test: megaplane's components started as separate OS processes, or a running cluster.

`Cluster` starts `megaplane apiserver` (memory-only store, plain HTTP on a
free port), then `megaplane controller-manager` and `megaplane scheduler`
when this checkout has them, each its own process so a SIGSTOP reaches the
API server alone; `start_fleets` adds `megaplane fleet` shards
(`--node-index-start`). With a kubeconfig it attaches to a running control
plane instead and starts only the fleets. It supervises them (a
controller-manager or scheduler that exits is restarted and counted, as a
kubelet restarts a static pod), reads each one's CPU and RSS from /proc,
and stops them all.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from megaplane.client import KubeConfig, load_kubeconfig

from . import procfs

__all__ = ["Cluster", "LEADER_ELECTION", "Process", "RENEW_DEADLINE", "component_help"]

# Seed 003's leader election settings for large clusters (client-go's defaults are 15 s / 10 s / 2 s).
RENEW_DEADLINE = 40.0
LEADER_ELECTION = ["--leader-elect-lease-duration", "45s", "--leader-elect-renew-deadline", f"{RENEW_DEADLINE:g}s",
                   "--leader-elect-retry-period", "10s"]


def component_help(command: str) -> Optional[str]:
    """`megaplane <command> --help`, or None when this checkout has no such command."""
    try:
        out = subprocess.run([sys.executable, "-m", "megaplane.cli", command, "--help"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


@dataclass
class Process:
    """One component process: its command (to restart it), log, /metrics and health URLs."""

    name: str
    cmd: List[str]
    log_path: str
    metrics_url: str = ""
    health_url: str = ""
    restartable: bool = False
    popen: "Optional[subprocess.Popen[bytes]]" = None
    restarts: int = 0
    exits: List[int] = field(default_factory=list)
    started_at: float = 0.0

    def start(self) -> None:
        log = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def cpu_seconds(self) -> float:
        try:
            return procfs.cpu_seconds(self.pid)
        except OSError:
            return 0.0

    def rss_bytes(self) -> int:
        try:
            return procfs.rss_bytes(self.pid)
        except OSError:
            return 0

    def tail(self, chars: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - chars))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        with _suppress():
            os.kill(p.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


class Cluster:
    """The component processes of one bench run (see the module docstring)."""

    def __init__(self, workdir: str, *, kubeconfig: str = "", cpu_affinity: bool = True,
                 apiserver_args: Sequence[str] = (), controller_manager_args: Sequence[str] = (),
                 scheduler_args: Sequence[str] = (), fleet_args: Sequence[str] = (),
                 kube_api_qps: float = 500.0, kube_api_burst: int = 1000, without: Sequence[str] = (),
                 say: "Optional[object]" = None) -> None:
        self.workdir = workdir
        self.attached = bool(kubeconfig)
        self.kubeconfig = kubeconfig or os.path.join(workdir, "kubeconfig")
        self.two_cores = cpu_affinity and (os.cpu_count() or 1) >= 2
        self.apiserver_args = list(apiserver_args)
        self.controller_manager_args = list(controller_manager_args)
        self.scheduler_args = list(scheduler_args)
        self.fleet_args = list(fleet_args)
        #: Components not started (`--without`): a leases run past what their informers' memory holds.
        self.without = set(without)
        self.qps = kube_api_qps
        self.burst = kube_api_burst
        self.processes: List[Process] = []
        self.apiserver: Optional[Process] = None
        self.controller_manager: Optional[Process] = None
        self.scheduler: Optional[Process] = None
        self.fleets: List[Process] = []
        self.has_controller_manager = False
        self.has_node_lifecycle = False
        self.api_metrics_url = ""
        self.api_ssl: Optional[ssl.SSLContext] = None
        self.config: Optional[KubeConfig] = None
        self._stopping = False

    # -- start ------------------------------------------------------------------------------------

    def _core(self, role: str) -> Optional[int]:
        """The API server on core 0, everything else on core 1 (as benchmarks/harness.py pins)."""
        if not self.two_cores:
            return None
        return 0 if role == "apiserver" else 1

    def _megaplane(self, role: str, *args: str) -> List[str]:
        return procfs.pinned([sys.executable, "-m", "megaplane.cli", *args], self._core(role))

    def _add(self, process: Process) -> Process:
        self.processes.append(process)
        process.start()
        return process

    def start_control_plane(self, *, node_lifecycle_args: Sequence[str] = ()) -> None:
        if self.attached:
            self.config = load_kubeconfig(self.kubeconfig)
            self.api_metrics_url = self.config.server.rstrip("/") + "/metrics"
            self.api_ssl = self.config.ssl_context()
            cm_help = component_help("controller-manager") or ""
            self.has_controller_manager = True
            self.has_node_lifecycle = "node-lifecycle-controller" in "".join(cm_help.split())
            return
        port = procfs.free_port()
        base = f"http://127.0.0.1:{port}"
        with open(self.kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: bench, cluster: {{server: "{base}"}}}}]
users: [{{name: bench, user: {{}}}}]
contexts: [{{name: bench, context: {{cluster: bench, user: bench}}}}]
current-context: bench
""")
        self.config = load_kubeconfig(self.kubeconfig)
        self.api_metrics_url = base + "/metrics"
        self.apiserver = self._add(Process(
            "apiserver", self._megaplane("apiserver", "apiserver", "--port", str(port), "--secure-port", "0",
                                         "--wal-default", "none", *self.apiserver_args),
            os.path.join(self.workdir, "apiserver.log"), base + "/metrics", base + "/readyz"))
        procfs.wait_http(base + "/readyz", timeout=120, proc=self.apiserver.popen)
        cm_help_text = None if "controller-manager" in self.without else component_help("controller-manager")
        self.has_controller_manager = cm_help_text is not None
        self.has_node_lifecycle = cm_help_text is not None and \
            "node-lifecycle-controller" in "".join(cm_help_text.split())
        limits = ["--kube-api-qps", f"{self.qps:g}", "--kube-api-burst", str(self.burst)]
        if cm_help_text is not None:
            cm_port = procfs.free_port()
            self.controller_manager = self._add(Process(
                "controller-manager", self._megaplane(
                    "controller-manager", "controller-manager", "--kubeconfig", self.kubeconfig, "--port",
                    str(cm_port), "--bind-address", "127.0.0.1", *limits, *LEADER_ELECTION,
                    *(node_lifecycle_args if self.has_node_lifecycle else ()), *self.controller_manager_args),
                os.path.join(self.workdir, "controller-manager.log"), f"http://127.0.0.1:{cm_port}/metrics",
                f"http://127.0.0.1:{cm_port}/healthz", restartable=True))
        if "scheduler" not in self.without and component_help("scheduler") is not None:
            s_port = procfs.free_port()
            self.scheduler = self._add(Process(
                "scheduler", self._megaplane(
                    "scheduler", "scheduler", "--kubeconfig", self.kubeconfig, "--port", str(s_port),
                    "--bind-address", "127.0.0.1", *limits, *LEADER_ELECTION, *self.scheduler_args),
                os.path.join(self.workdir, "scheduler.log"), f"http://127.0.0.1:{s_port}/metrics",
                f"http://127.0.0.1:{s_port}/healthz", restartable=True))
        for p in (self.controller_manager, self.scheduler):
            if p is not None:
                procfs.wait_http(p.health_url, timeout=120, proc=p.popen)

    def start_fleets(self, nodes: int, processes: int, *, zones: int, lease_duration_seconds: int,
                     prefix: str = "node-") -> None:
        """`processes` fleet shards of about nodes/processes nodes each (consecutive index ranges)."""
        processes = max(1, min(processes, nodes)) if nodes else 0
        start = 0
        for k in range(processes):
            count = nodes // processes + (1 if k < nodes % processes else 0)
            port = procfs.free_port()
            self.fleets.append(self._add(Process(
                f"fleet-{k}", self._megaplane(
                    "fleet", "fleet", "--kubeconfig", self.kubeconfig, "--nodes", str(count),
                    "--node-name-prefix", prefix, "--node-index-start", str(start), "--zones", str(zones),
                    "--node-lease-duration-seconds", str(lease_duration_seconds),
                    "--metrics-bind-address", f"127.0.0.1:{port}", *self.fleet_args),
                os.path.join(self.workdir, f"fleet-{k}.log"), f"http://127.0.0.1:{port}/metrics")))
            start += count

    # -- while running ----------------------------------------------------------------------------

    def supervise(self) -> List[str]:
        """Restart a controller-manager or scheduler that exited; the problems found (an exited process)."""
        problems: List[str] = []
        if self._stopping:
            return problems
        for p in self.processes:
            if p.popen is None or p.popen.poll() is None:
                continue
            code = p.popen.returncode
            p.exits.append(code)
            if p.restartable:
                p.restarts += 1
                p.start()
                problems.append(f"{p.name} exited with {code}; restarted ({p.restarts})")
            else:
                p.popen = None
                problems.append(f"{p.name} exited with {code}: {p.tail(600).strip()}")
        return problems

    def stall_apiserver(self) -> None:
        assert self.apiserver is not None and self.apiserver.popen is not None
        os.kill(self.apiserver.pid, signal.SIGSTOP)

    def resume_apiserver(self) -> None:
        assert self.apiserver is not None and self.apiserver.popen is not None
        os.kill(self.apiserver.pid, signal.SIGCONT)

    def stop(self) -> None:
        self._stopping = True
        for p in reversed(self.processes):
            p.stop()

    def logs(self) -> Dict[str, str]:
        return {p.name: p.log_path for p in self.processes}
