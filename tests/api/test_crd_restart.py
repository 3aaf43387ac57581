"""Custom resources survive an API server restart: the CRDs found in storage are served before /readyz is 200,
and a CRD deletion under way when the server stopped is finished by the restarted one.

A client that sees the server ready may use a custom resource at once (an operator
restarting with its server, kubectl right after `megaplane up`), so nothing here polls.
"""

from __future__ import annotations

import shutil
import tempfile
import time

from kubernetes import client

from tests.api.conftest import start_cluster

GROUP = "restart.example.com"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"notes.{GROUP}"},
    "spec": {"group": GROUP, "scope": "Namespaced", "names": {"plural": "notes", "kind": "Note"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "text": {"type": "string"}, "pinned": {"type": "boolean", "default": False}}}}}}}]},
}


def test_custom_resources_are_served_right_after_a_restart() -> None:
    root = tempfile.mkdtemp(prefix="megaplane-crd-restart-")
    c = start_cluster(root)
    try:
        with c.api_client() as api:
            client.ApiextensionsV1Api(api).create_custom_resource_definition(CRD)
            objs = client.CustomObjectsApi(api)
            deadline = time.monotonic() + 60
            while True:
                try:
                    objs.create_namespaced_custom_object(GROUP, "v1", "default", "notes", {
                        "apiVersion": f"{GROUP}/v1", "kind": "Note", "metadata": {"name": "n"},
                        "spec": {"text": "hello", "dropped": 1}})
                    break
                except client.ApiException as exc:  # 404 until the CRD is established and served
                    assert exc.status == 404 and time.monotonic() < deadline
                    time.sleep(0.1)
        c.stop()
        c = start_cluster(root)
        with c.api_client() as api:
            note = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, "v1", "default", "notes", "n")
            assert note["spec"] == {"text": "hello", "pinned": False}
        assert c.ok("get", "notes").splitlines()[1].split()[0] == "n"
        # A CRD whose deletion waits on an object's finalizer across a restart still finishes it.
        c.ok("patch", "note", "n", "--type=merge", "-p", '{"metadata":{"finalizers":["restart.example.com/hold"]}}')
        c.ok("delete", "crd", f"notes.{GROUP}", "--wait=false")
        c.stop()
        c = start_cluster(root)
        c.ok("patch", "note", "n", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
        deadline = time.monotonic() + 60
        while c.kubectl("get", "crd", f"notes.{GROUP}").returncode == 0:
            assert time.monotonic() < deadline, "the CRD was not finalized after the restart"
            time.sleep(0.1)
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
