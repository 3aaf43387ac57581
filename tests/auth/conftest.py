"""Shared servers for the tenancy tests (quota, limit ranges, ServiceAccount admission).

One `megaplane up` for the session with the controllers quota needs (namespace,
serviceaccount, resourcequota): each test works in a namespace of its own, so
the files share it without seeing each other's objects.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import pytest

from tests.api.conftest import Cluster, start_megaplane

_names = itertools.count()


class Tenancy:
    """The server, kubectl through its admin kubeconfig, and raw JSON over its plain port."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def kubectl(self, *args: str, input: Optional[str] = None) -> Any:
        return self.cluster.kubectl(*args, input=input)

    def ok(self, *args: str, input: Optional[str] = None) -> str:
        return self.cluster.ok(*args, input=input)

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{next(_names)}"
        self.ok("create", "namespace", name)
        return name

    def request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Tuple[int, Dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.cluster.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def get(self, path: str) -> Dict[str, Any]:
        code, obj = self.request("GET", path)
        assert code == 200, obj
        return obj

    def wait(self, what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Poll `probe` until it returns something truthy (generous: the machine is shared)."""
        deadline = time.monotonic() + timeout
        while True:
            got = probe()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)


def pod(name: str, *, requests: Optional[Dict[str, str]] = None, limits: Optional[Dict[str, str]] = None,
        **spec: Any) -> Dict[str, Any]:
    resources: Dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    container: Dict[str, Any] = {"name": "app", "image": "nginx"}
    if resources:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container], **spec}}


@pytest.fixture(scope="session")
def tenancy() -> Iterator[Tenancy]:
    root = tempfile.mkdtemp(prefix="megaplane-tenancy-")
    cluster = start_megaplane(root, "up", [
        "--data-dir", f"{root}/data", "--nodes", "0", "--scheduler=false",
        "--controllers", "namespace,serviceaccount,resourcequota"])
    try:
        yield Tenancy(cluster)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
