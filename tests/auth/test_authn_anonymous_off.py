"""--anonymous-auth=false: a request without credentials is a 401 on the secure port, health endpoints too.

So the scheduler and the fleet, run as processes of their own with the
kubeconfigs the server wrote, can only be working as their own users.
Also: flags naming unreadable files stop the command before it starts (exit
2 with the reason).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Iterator, Optional, Tuple

import pytest
import yaml

from tests.api.conftest import Cluster, start_megaplane
from tests.auth.test_authn_kubectl import UNAUTHORIZED, _authorization_flags


@pytest.fixture(scope="module")
def closed() -> Iterator[Tuple[Cluster, str]]:
    root = tempfile.mkdtemp(prefix="megaplane-authn-closed-")
    cluster = start_megaplane(root, "apiserver", ["--data-dir", os.path.join(root, "data"),
                                                  "--anonymous-auth=false", *_authorization_flags()])
    try:
        yield cluster, root
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _get(server: str, ca: str, path: str, cert: Optional[Tuple[str, str]] = None) -> Tuple[int, object]:
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(*cert)
    try:
        with urllib.request.urlopen(server + path, context=ctx, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_no_credentials_is_401_everywhere(closed: Tuple[Cluster, str]) -> None:
    cluster, root = closed
    with open(cluster.kubeconfig) as f:
        server = yaml.safe_load(f)["clusters"][0]["cluster"]["server"]
    pki = os.path.join(root, "data", "pki")
    ca = os.path.join(pki, "ca.crt")
    for path in ("/api/v1/namespaces", "/version", "/healthz"):
        assert _get(server, ca, path) == (401, UNAUTHORIZED), path
    status, _ = _get(server, ca, "/api/v1/namespaces", (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key")))
    assert status == 200


def test_scheduler_and_fleet_processes_run_as_their_own_users(closed: Tuple[Cluster, str]) -> None:
    cluster, root = closed
    data = os.path.join(root, "data")
    procs = []
    try:
        for name, args in (("fleet", ["--nodes", "1", "--node-name-prefix", "authn-", "--pod-startup-latency", "0s"]),
                           ("scheduler", ["--leader-elect=false"])):
            with open(os.path.join(root, f"{name}.log"), "w") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "megaplane.cli", name, "--kubeconfig",
                                               os.path.join(data, f"{name}.kubeconfig"), *args],
                                              stdout=log, stderr=subprocess.STDOUT))
        cluster.ok("run", "authn-pod", "--image", "busybox", "--restart", "Never")
        deadline = time.monotonic() + 60
        while True:
            pod = json.loads(cluster.ok("get", "pod", "authn-pod", "-o", "json"))
            if pod["status"].get("phase") in ("Running", "Succeeded"):
                break
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), pod["status"]
            time.sleep(0.2)
        assert pod["spec"]["nodeName"] == "authn-0"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_unreadable_credential_files_stop_the_command() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-authn-flags-")
    try:
        bad = os.path.join(root, "tokens.csv")
        with open(bad, "w") as f:
            f.write("token-only,user\n")
        for flags, message in (
            (["--token-auth-file", bad], "must have at least 3 columns (token, user name, user uid), found 2"),
            (["--service-account-key-file", os.path.join(root, "missing.pub")], "No such file or directory"),
        ):
            out = subprocess.run([sys.executable, "-m", "megaplane.cli", "apiserver", "--secure-port", "0", *flags],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 2 and message in out.stderr, out.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
