"""megaplane.apiserver.schema.protobuf: Kubernetes protobuf request bodies, checked against kubectl 1.32.

Three kinds of evidence:

* real bodies: kubectl runs against a throwaway HTTP server on loopback
  that serves just enough discovery, records what kubectl sends and echoes
  the object back. Each typed `kubectl create ...` body must decode to
  exactly what `kubectl create ... --dry-run=client -o json` prints (the
  Go JSON of the same object, key order included). `kubectl debug
  --copy-to` turns a Pod we serve as JSON into a Go struct and sends it
  back as protobuf, which checks a Pod with most of its fields;
  `kubectl drain --disable-eviction` sends a DeleteOptions.
* the kinds kubectl never sends typed (Lease, Events, EndpointSlice, ...)
  are marshalled by the `protobuf` package from upstream's own descriptors
  (read from the kubectl binary, with gogo's `nullable` option deciding
  which zero values are written), never from megaplane's table, and must
  decode to the JSON they were made from. That reference encoder is itself
  checked against the real bodies: for every kubectl body above it
  produces the same bytes from the JSON kubectl prints;
* hand-written bytes for the special types, presence rules and errors.
"""

from __future__ import annotations

import base64
import calendar
import copy
import datetime
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.unknown_fields import UnknownFieldSet

from megaplane.apiserver.schema import protobuf
from megaplane.apiserver.schema.protobuf import CONTENT_TYPE, ProtobufError, UnknownKindError, decode

KUBECTL = shutil.which("kubectl")
SCHEMA = protobuf.SCHEMA
Obj = Dict[str, Any]


# --- a minimal protobuf writer -------------------------------------------------


def varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def vfield(num: int, v: int) -> bytes:
    return varint(num << 3) + varint(v)


def lfield(num: int, data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes, **extra: str) -> bytes:
    body = lfield(1, lfield(1, api_version) + lfield(2, kind)) + lfield(2, raw)
    if "content_encoding" in extra:
        body += lfield(3, extra["content_encoding"])
    if "content_type" in extra:
        body += lfield(4, extra["content_type"])
    return b"k8s\x00" + body


# --- an independent reference encoder ---------------------------------------------
#
# Upstream's own message definitions, marshalled by the `protobuf` package: kubectl
# registers every API group's generated.proto as a gzipped FileDescriptorProto, and
# those descriptors still carry gogoproto's `nullable` option, which says whether the
# Go field is a value (gogo always writes it, zero or not) or a pointer (written when
# set). Nothing here reads megaplane's table or decoder, and the kubectl tests below
# check that this encoder reproduces kubectl's own bodies byte for byte.

GOGO_NULLABLE = 65001  # gogoproto.nullable, a FieldOptions extension
META_V1 = "k8s.io.apimachinery.pkg.apis.meta.v1."
TIMES = (META_V1 + "Time", META_V1 + "MicroTime")
QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
RAW_JSON = (META_V1 + "FieldsV1", "k8s.io.apimachinery.pkg.runtime.RawExtension")
# Embedded Go structs that encoding/json prints inline (`json:",inline"` in
# k8s.io/api/core/v1/types.go); the descriptors cannot tell them apart.
INLINE = {
    ("k8s.io.api.core.v1.Volume", "volumeSource"),
    ("k8s.io.api.core.v1.Probe", "handler"),
    ("k8s.io.api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    *((f"k8s.io.api.core.v1.{m}", "localObjectReference") for m in (
        "ConfigMapEnvSource", "ConfigMapKeySelector", "ConfigMapProjection", "ConfigMapVolumeSource",
        "SecretEnvSource", "SecretKeySelector", "SecretProjection")),
}


def _seconds(rfc3339: str) -> Tuple[int, int]:
    base, _, frac = rfc3339.rstrip("Z").partition(".")
    t = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t.timetuple()), int((frac or "0").ljust(9, "0"))


def _descriptor_source() -> str:
    """kubectl 1.32 (the build the table was generated from) when the dispatcher has it."""
    assert KUBECTL
    pinned = os.path.join(os.path.dirname(os.path.realpath(KUBECTL)), "kubectl.1.32")
    return pinned if os.path.exists(pinned) else KUBECTL


# Proto fields whose JSON name differs (the generator's JSON_NAME_EXCEPTIONS).
JSON_NAMES = {("k8s.io.api.authentication.v1.BoundObjectReference", "uID"): "uid"}


class ReferenceEncoder:
    """JSON-form API objects marshalled from upstream's descriptors the way gogo-protobuf marshals the Go struct."""

    def __init__(self, binary: str) -> None:
        with open(binary, "rb") as f:
            data = f.read()
        files: Dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", data):
            try:
                raw = zlib.decompressobj(16 + 15).decompress(data[m.start() : m.start() + (1 << 22)])
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            except Exception:  # gzip magic inside unrelated data
                continue
            if fd.name.startswith(("k8s.io/api/", "k8s.io/apimachinery/")):
                files[fd.name] = fd
        assert files, f"{binary} holds no Kubernetes descriptors"
        self.pool = descriptor_pool.DescriptorPool()
        added: set = set()

        def add(name: str) -> None:
            if name in added:
                return
            fd = files[name]
            # gogo.proto itself is not in the binary; its options stay behind as unknown fields
            deps = [d for d in fd.dependency if d in files]
            for dep in deps:
                add(dep)
            del fd.dependency[:]
            fd.dependency.extend(deps)
            self.pool.Add(fd)
            added.add(name)

        for name in sorted(files):
            add(name)

    def new(self, message: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(message))()

    def encode(self, api_version: str, kind: str, obj: Obj) -> bytes:
        """The whole request body: `k8s\\0` and a runtime.Unknown around the object."""
        group, _, version = api_version.rpartition("/")
        if kind == "DeleteOptions":
            message = META_V1 + kind
        else:
            message = f"k8s.io.api.{(group or 'core').split('.')[0]}.{version}.{kind}"
        msg = self.new(message)
        self._fill_message(msg, {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")})
        unknown = self.new("k8s.io.apimachinery.pkg.runtime.Unknown")
        unknown.typeMeta.apiVersion = api_version
        unknown.typeMeta.kind = kind
        unknown.raw = msg.SerializeToString(deterministic=True)  # deterministic: map keys sorted, as gogo does
        unknown.contentEncoding = ""
        unknown.contentType = ""
        return b"k8s\x00" + unknown.SerializeToString(deterministic=True)

    @staticmethod
    def _nullable(field: FieldDescriptor) -> bool:
        for option in UnknownFieldSet(field.GetOptions()):
            if option.field_number == GOGO_NULLABLE:
                return bool(option.data)
        return True

    def _fill_message(self, msg: Any, value: Any) -> None:
        msg.SetInParent()
        name = msg.DESCRIPTOR.full_name
        if name in TIMES:
            if value is not None:  # Go's zero time marshals to nothing
                msg.seconds, msg.nanos = _seconds(value)
        elif name == QUANTITY:
            msg.string = value
        elif name == INT_OR_STRING:
            is_int = isinstance(value, int)
            msg.type, msg.intVal, msg.strVal = (0, value, "") if is_int else (1, 0, value)
        elif name in RAW_JSON:
            if value is not None:
                setattr(msg, msg.DESCRIPTOR.fields[0].name, json.dumps(value, separators=(",", ":")).encode())
        elif name.endswith(".ExtraValue"):  # a Go []string with a message of its own
            msg.items.extend(value)
        else:
            assert isinstance(value, dict), f"{name}: {value!r} is not an object"
            unused = set(value) - self._fill_fields(msg, value)
            assert not unused, f"{name} has no field for {sorted(unused)}"

    @staticmethod
    def _scalar(field: FieldDescriptor, value: Any) -> Any:
        return base64.b64decode(value) if field.type == FieldDescriptor.TYPE_BYTES else value

    def _fill_fields(self, msg: Any, obj: Obj) -> set:
        """Set msg's fields from obj; the keys of obj it used."""
        desc = msg.DESCRIPTOR
        used = set()
        for field in desc.fields:
            if (desc.full_name, field.name) in INLINE:
                inner = getattr(msg, field.name)
                inner.SetInParent()
                used |= self._fill_fields(inner, obj)
                continue
            key = JSON_NAMES.get((desc.full_name, field.name), field.name)
            if key in obj:
                used.add(key)
            value = obj.get(key)
            is_message = field.type == FieldDescriptor.TYPE_MESSAGE
            if field.is_repeated:
                target = getattr(msg, field.name)
                if is_message and field.message_type.GetOptions().map_entry:
                    value_field = field.message_type.fields_by_name["value"]
                    for k, v in (value or {}).items():
                        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                            self._fill_message(target[k], v)
                        else:
                            target[k] = self._scalar(value_field, v)
                else:
                    for item in value or []:
                        if is_message:
                            self._fill_message(target.add(), item)
                        else:
                            target.append(self._scalar(field, item))
            elif value is not None:
                if is_message:
                    self._fill_message(getattr(msg, field.name), value)
                else:
                    setattr(msg, field.name, self._scalar(field, value))
            elif not self._nullable(field):  # a Go value field: written even when zero
                if is_message:
                    zero = {QUANTITY: "0", INT_OR_STRING: 0}.get(field.message_type.full_name, {})
                    self._fill_message(getattr(msg, field.name), None if field.message_type.full_name in TIMES + RAW_JSON else zero)
                else:
                    setattr(msg, field.name, field.default_value)
        return used


@pytest.fixture(scope="module")
def reference() -> ReferenceEncoder:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    return ReferenceEncoder(_descriptor_source())


# --- a throwaway API server for kubectl -------------------------------------------

VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
CORE = [
    ("namespaces", "namespace", "Namespace", False),
    ("nodes", "node", "Node", False),
    ("configmaps", "configmap", "ConfigMap", True),
    ("secrets", "secret", "Secret", True),
    ("pods", "pod", "Pod", True),
    ("services", "service", "Service", True),
    ("serviceaccounts", "serviceaccount", "ServiceAccount", True),
]
GROUPS = {
    "apps/v1": [("deployments", "deployment", "Deployment", True)],
    "batch/v1": [("jobs", "job", "Job", True)],
}
NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}

# A Pod with most of what a PodSpec can hold, in the form Go prints it (no zero
# omitempty values), served for `kubectl debug --copy-to`.
RICH_POD: Obj = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {
        "name": "rich", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
        "creationTimestamp": "2026-11-22T10:00:00Z", "labels": {"app": "web", "tier": "x"},
        "annotations": {"note": "hello \u00e9"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-2",
                             "controller": False, "blockOwnerDeletion": True}],
        "finalizers": ["f/one"],
    },
    "spec": {
        "volumes": [
            {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "a", "path": "a.txt", "mode": 0}],
                                          "defaultMode": 420, "optional": False}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            {"name": "sec", "secret": {"secretName": "s", "defaultMode": 256}},
            {"name": "proj", "projected": {"sources": [
                {"serviceAccountToken": {"audience": "api", "expirationSeconds": 3600, "path": "token"}},
                {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"apiVersion": "v1",
                                                                         "fieldPath": "metadata.labels"}}]}},
            ], "defaultMode": 420}},
            {"name": "pvc", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
        ],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"], "resources": {}}],
        "containers": [{
            "name": "main", "image": "nginx:1.25", "args": ["-g", "daemon off;"], "workingDir": "/w",
            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}, {"containerPort": 0}],
            "envFrom": [{"prefix": "P_", "configMapRef": {"name": "cm", "optional": False}}],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "EMPTY"},
                {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}}},
                {"name": "R", "valueFrom": {"resourceFieldRef": {"containerName": "main", "resource": "limits.cpu",
                                                                 "divisor": "1m"}}},
            ],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
            "volumeMounts": [{"name": "cfg", "readOnly": True, "mountPath": "/etc/cfg", "subPath": "a"}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP",
                                          "httpHeaders": [{"name": "X", "value": ""}]},
                              "initialDelaySeconds": 3, "timeoutSeconds": 1, "periodSeconds": 10,
                              "successThreshold": 1, "failureThreshold": 3, "terminationGracePeriodSeconds": 0},
            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
            "startupProbe": {"exec": {"command": ["cat", "/tmp/ok"]}, "failureThreshold": 30},
            "lifecycle": {"postStart": {"exec": {"command": ["true"]}}, "preStop": {"sleep": {"seconds": 0}}},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "runAsUser": 0,
                                "runAsNonRoot": False, "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}},
            "stdin": True,
        }],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 0, "activeDeadlineSeconds": 600,
        "dnsPolicy": "ClusterFirst", "nodeSelector": {"disk": "ssd"}, "serviceAccountName": "sa",
        "serviceAccount": "sa", "automountServiceAccountToken": False, "nodeName": "n1",
        "shareProcessNamespace": False,
        "securityContext": {"runAsUser": 1000, "supplementalGroups": [1, 2], "fsGroup": 2000,
                            "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
        "imagePullSecrets": [{"name": "reg"}], "hostname": "h", "subdomain": "sub",
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {}}],
            },
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                                                    "topologyKey": "kubernetes.io/hostname"}}]},
        },
        "schedulerName": "default-scheduler",
        "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 0},
                        {"operator": "Exists"}],
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a.local"]}],
        "priorityClassName": "high", "priority": 0,
        "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
        "readinessGates": [{"conditionType": "x/ready"}], "runtimeClassName": "rc", "enableServiceLinks": False,
        "preemptionPolicy": "Never", "overhead": {"cpu": "100m"},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                                       "labelSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                                       "minDomains": 1}],
        "setHostnameAsFQDN": False, "os": {"name": "linux"}, "hostUsers": True, "schedulingGates": [{"name": "g"}],
    },
    "status": {"phase": "Running"},
}

DRAIN_VICTIM: Obj = {
    "metadata": {"name": "victim", "namespace": "default", "uid": "u-9",
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-2",
                                      "controller": True}]},
    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
}


def _resource_list(gv: str, resources: List[Tuple[str, str, str, bool]]) -> Obj:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
        {"name": n, "singularName": s, "namespaced": ns, "kind": k, "verbs": VERBS} for n, s, k, ns in resources]}


class FakeAPIServer:
    """Discovery, a few canned objects, and a record of every body kubectl sends."""

    def __init__(self) -> None:
        self.requests: List[Tuple[str, str, str, bytes]] = []  # (method, path, content type, body)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, code: int, obj: Obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self) -> bytes:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server.lock:
                    server.requests.append((self.command, self.path, self.headers.get("Content-Type", ""), data))
                return data

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                get: Dict[str, Obj] = {
                    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
                    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
                    "/api/v1": _resource_list("v1", CORE),
                    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                        {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": "v1"}],
                         "preferredVersion": {"groupVersion": gv, "version": "v1"}} for gv in GROUPS]},
                    "/api/v1/nodes/n1": {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"}},
                    "/api/v1/namespaces/default/pods/rich": RICH_POD,
                    "/api/v1/pods": {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [DRAIN_VICTIM]},
                }
                get.update({f"/apis/{gv}": _resource_list(gv, res) for gv, res in GROUPS.items()})
                self.reply(200, get[path]) if path in get else self.reply(404, NOT_FOUND)

            def do_POST(self) -> None:
                data = self.body()
                try:  # echo the object: kubectl prints "<kind>/<name> created" from it
                    obj = decode(data) if data.startswith(b"k8s\x00") else json.loads(data)
                except Exception:
                    obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
                self.reply(201, obj)

            def do_PATCH(self) -> None:
                self.body()
                self.reply(200, {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"},
                                 "spec": {"unschedulable": True}})

            def do_DELETE(self) -> None:
                self.body()
                self.reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.root = tempfile.mkdtemp(prefix="megaplane-pb-")
        self.kubeconfig = os.path.join(self.root, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            f.write(
                "apiVersion: v1\nkind: Config\n"
                f"clusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{self.httpd.server_address[1]}'}}}}]\n"
                "users: [{name: nobody, user: {}}]\n"
                "contexts: [{name: fake, context: {cluster: fake, user: nobody, namespace: default}}]\n"
                "current-context: fake\n"
            )

    def kubectl(self, *args: str) -> subprocess.CompletedProcess:
        assert KUBECTL
        return subprocess.run(
            [KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", os.path.join(self.root, "cache"), *args],
            capture_output=True, text=True, timeout=60,
        )

    def sent(self, *args: str) -> List[Tuple[str, str, str, bytes]]:
        """Run kubectl; the requests with a body it sent."""
        with self.lock:
            before = len(self.requests)
        out = self.kubectl(*args)
        assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        with self.lock:
            return [r for r in self.requests[before:] if r[3]]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAPIServer]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    server = FakeAPIServer()
    yield server
    server.close()


def _only_protobuf_post(requests: List[Tuple[str, str, str, bytes]]) -> bytes:
    posts = [r for r in requests if r[0] == "POST"]
    assert len(posts) == 1, posts
    assert posts[0][2] == CONTENT_TYPE, f"kubectl sent {posts[0][2]}, not protobuf"
    return posts[0][3]


# --- real bodies from kubectl ----------------------------------------------------------

CREATE_COMMANDS = [
    ["create", "namespace", "demo"],
    ["create", "configmap", "cm", "--from-literal=a=b", "--from-literal=empty=", "--from-file=FILE"],
    ["create", "configmap", "bin", "--from-file=BINARY"],
    ["create", "secret", "generic", "s", "--from-literal=k=v", "--type=Opaque"],
    ["create", "secret", "docker-registry", "reg", "--docker-username=u", "--docker-password=p",
     "--docker-server=r.example"],
    ["create", "deployment", "web", "--image=nginx:1.25", "--replicas=0", "--port=80"],
    ["create", "deployment", "multi", "--image=nginx", "--image=redis"],
    ["create", "service", "clusterip", "svc", "--tcp=80:8080", "--tcp=443:https"],
    ["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
    ["create", "service", "clusterip", "headless", "--clusterip=None"],
    ["create", "job", "j", "--image=busybox", "--", "echo", "hi"],
    ["create", "serviceaccount", "sa"],
]


@pytest.mark.parametrize("command", CREATE_COMMANDS, ids=lambda c: "-".join(c[1:3]))
def test_kubectl_create_bodies_decode_to_the_dry_run_json(
    fake: FakeAPIServer, reference: ReferenceEncoder, command: List[str]
) -> None:
    files = {"FILE": os.path.join(fake.root, "motd.txt"), "BINARY": os.path.join(fake.root, "blob.bin")}
    with open(files["FILE"], "w") as f:
        f.write("multi\nline ✓\n")
    with open(files["BINARY"], "wb") as f:
        f.write(bytes(range(256)))  # not UTF-8: kubectl puts it under binaryData
    for placeholder, path in files.items():
        command = [a.replace("=" + placeholder, "=" + path) if a.endswith("=" + placeholder) else a for a in command]
    split = command.index("--") if "--" in command else len(command)
    dry = fake.kubectl(*command[:split], "--dry-run=client", "-o", "json", *command[split:])
    assert dry.returncode == 0, dry.stderr
    expected = json.loads(dry.stdout)

    body = _only_protobuf_post(fake.sent(*command))
    got = decode(body)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected), "same content, different key order"
    assert reference.encode(expected["apiVersion"], expected["kind"], expected) == body, \
        "the reference encoder does not marshal as kubectl does"


def test_kubectl_run_sends_json(fake: FakeAPIServer) -> None:
    # `kubectl run` builds an unstructured object, so its body is JSON; if a
    # later kubectl sends protobuf, it must still decode to the dry-run form.
    args = ["run", "p", "--image=nginx", "--labels=a=b", "--restart=Never", "--env=X=Y"]
    expected = json.loads(fake.kubectl(*args, "--dry-run=client", "-o", "json").stdout)
    (method, _, ctype, body), = [r for r in fake.sent(*args) if r[0] == "POST"]
    got = decode(body) if ctype == CONTENT_TYPE else json.loads(body)
    assert got == expected


def test_kubectl_debug_node_pod(fake: FakeAPIServer) -> None:
    got = decode(_only_protobuf_post(fake.sent("debug", "node/n1", "--image=busybox", "--profile=legacy")))
    name = got["metadata"]["name"]
    assert name.startswith("node-debugger-n1-")
    assert got == {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": None},
        "spec": {
            "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "debugger", "image": "busybox", "resources": {},
                            "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
                            "terminationMessagePolicy": "File"}],
            "restartPolicy": "Never", "nodeName": "n1", "hostNetwork": True, "hostPID": True, "hostIPC": True,
            "tolerations": [{"operator": "Exists"}],
        },
        "status": {},
    }


def test_kubectl_debug_copy_of_a_rich_pod(fake: FakeAPIServer, reference: ReferenceEncoder) -> None:
    # kubectl reads RICH_POD as JSON into a Go struct, copies it and sends
    # the copy as protobuf: decoding must give the JSON back, less what
    # `debug --copy-to` changes (new metadata, image, no status).
    body = _only_protobuf_post(fake.sent(
        "debug", "rich", "--copy-to=rich2", "--set-image=*=busybox:2", "--keep-labels", "--keep-annotations",
        "--keep-liveness", "--keep-readiness", "--keep-startup", "--keep-init-containers", "--same-node",
        "--share-processes=false", "--profile=legacy",
    ))
    expected = copy.deepcopy(RICH_POD)
    meta = expected["metadata"]
    expected["metadata"] = {"name": "rich2", "namespace": "default", "creationTimestamp": None,
                            "labels": meta["labels"], "annotations": meta["annotations"]}
    expected["spec"]["containers"][0]["image"] = "busybox:2"  # --set-image leaves init containers alone
    expected["status"] = {}
    assert decode(body) == expected
    assert reference.encode("v1", "Pod", expected) == body, "the reference encoder does not marshal as kubectl does"


def test_kubectl_delete_options(fake: FakeAPIServer, reference: ReferenceEncoder) -> None:
    deletes = [r for r in fake.sent("drain", "n1", "--disable-eviction", "--grace-period=0", "--timeout=20s")
               if r[0] == "DELETE"]
    assert deletes and deletes[0][2] == CONTENT_TYPE
    # gracePeriodSeconds is a pointer: its 0 (delete now) is kept
    assert decode(deletes[0][3]) == {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
    assert reference.encode("v1", "DeleteOptions", {"gracePeriodSeconds": 0}) == deletes[0][3]


# --- every other kind, marshalled by the reference encoder ------------------------------

META = {"name": "x", "namespace": "default", "uid": "3f1c", "resourceVersion": "12", "generation": 3,
        "creationTimestamp": "2026-11-22T10:00:00Z", "labels": {"app": "web"}, "annotations": {"a": ""},
        "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                           "time": "2026-11-22T10:00:00Z", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]}
TEMPLATE = {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "100m"}}}]}}
SELECTOR = {"matchLabels": {"app": "web"}}

KINDS: List[Tuple[str, str, Obj]] = [
    ("v1", "Namespace", {"metadata": {"name": "ns", "creationTimestamp": None,
                                      "deletionTimestamp": "2026-11-22T11:00:00Z", "deletionGracePeriodSeconds": 0},
                         "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active", "conditions": [
                             {"type": "NamespaceDeletionContentFailure", "status": "False",
                              "lastTransitionTime": None}]}}),
    ("v1", "Node", {"metadata": {"name": "n1", "creationTimestamp": None},
                    "spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"], "unschedulable": True,
                             "taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "t", "effect": "NoExecute", "timeAdded": "2026-11-22T10:00:00Z"}]},
                    "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                               "allocatable": {"cpu": "3900m", "memory": "15Gi"},
                               "conditions": [{"type": "Ready", "status": "True",
                                               "lastHeartbeatTime": "2026-11-22T10:00:00Z",
                                               "lastTransitionTime": "2026-11-22T09:00:00Z", "reason": "KubeletReady"}],
                               "addresses": [{"type": "InternalIP", "address": "10.1.2.3"}],
                               "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                               "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "6.1",
                                            "osImage": "", "containerRuntimeVersion": "containerd://1.7",
                                            "kubeletVersion": "v1.32.0", "kubeProxyVersion": "",
                                            "operatingSystem": "linux", "architecture": "amd64"},
                               "images": [{"names": ["nginx"]}, {"names": ["redis"], "sizeBytes": 1024}]}}),
    ("v1", "Service", {"metadata": {"name": "svc", "creationTimestamp": None},
                       "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"},
                                          {"port": 0, "targetPort": 0, "nodePort": 30000}],
                                "selector": {"app": "web"}, "clusterIP": "None", "type": "ClusterIP",
                                "sessionAffinity": "ClientIP",
                                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}},
                                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                                "allocateLoadBalancerNodePorts": False, "internalTrafficPolicy": "Local"},
                       "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ports": [
                           {"port": 80, "protocol": "TCP", "error": ""}]}]}}}),
    ("v1", "Endpoints", {"metadata": {"name": "svc", "creationTimestamp": None},
                         "subsets": [{"addresses": [{"ip": "10.0.0.1", "nodeName": "n1",
                                                     "targetRef": {"kind": "Pod", "name": "p"}}],
                                      "notReadyAddresses": [{"ip": "10.0.0.2"}],
                                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}),
    ("v1", "ConfigMap", {"metadata": META, "immutable": False, "data": {"a": "1", "empty": ""},
                         "binaryData": {"b": "AAEC/w==", "none": ""}}),
    ("v1", "Secret", {"metadata": {"name": "s", "creationTimestamp": None}, "immutable": True,
                      "data": {"k": "dg=="}, "stringData": {"plain": "text"}, "type": "Opaque"}),
    ("v1", "Event", {"metadata": {"name": "e.1", "namespace": "default", "creationTimestamp": None},
                     "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u",
                                        "apiVersion": "v1", "fieldPath": "spec.containers{c}"},
                     "reason": "Pulled", "message": "ok", "source": {"component": "kubelet", "host": "n1"},
                     "firstTimestamp": "2026-11-22T10:00:00Z", "lastTimestamp": None,
                     "type": "Normal", "eventTime": "2026-11-22T10:00:00.000001Z",
                     "series": {"count": 2, "lastObservedTime": "2026-11-22T10:00:05.500000Z"},
                     "reportingComponent": "", "reportingInstance": ""}),
    ("v1", "ServiceAccount", {"metadata": {"name": "sa", "creationTimestamp": None},
                              "secrets": [{"name": "tok"}], "imagePullSecrets": [{"name": "reg"}],
                              "automountServiceAccountToken": False}),
    ("v1", "Binding", {"metadata": {"name": "p", "namespace": "default", "creationTimestamp": None},
                       "target": {"kind": "Node", "name": "n1"}}),
    ("coordination.k8s.io/v1", "Lease", {
        "metadata": {"name": "n1", "namespace": "kube-node-lease", "creationTimestamp": None,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u"}]},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "acquireTime": "2026-11-22T10:00:00.000000Z",
                 "renewTime": "2026-11-22T10:00:01.123456Z", "leaseTransitions": 0}}),
    ("apps/v1", "Deployment", {
        "metadata": META,
        "spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": {"observedGeneration": 3, "replicas": 1, "conditions": [
            {"type": "Available", "status": "True", "lastUpdateTime": "2026-11-22T10:00:00Z",
             "lastTransitionTime": "2026-11-22T10:00:00Z"}]}}),
    ("apps/v1", "ReplicaSet", {"metadata": {"name": "rs", "creationTimestamp": None},
                               "spec": {"replicas": 2, "selector": SELECTOR, "template": TEMPLATE},
                               "status": {"replicas": 0, "availableReplicas": 2}}),
    ("apps/v1", "DaemonSet", {"metadata": {"name": "ds", "creationTimestamp": None},
                              "spec": {"selector": SELECTOR, "template": TEMPLATE, "updateStrategy": {
                                  "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}},
                              "status": {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                         "desiredNumberScheduled": 3, "numberReady": 0}}),
    ("apps/v1", "StatefulSet", {
        "metadata": {"name": "db", "creationTimestamp": None},
        "spec": {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE, "serviceName": "db",
                 "volumeClaimTemplates": [{"metadata": {"name": "data", "creationTimestamp": None},
                                           "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "10Gi"}}},
                                           "status": {}}],
                 "podManagementPolicy": "Parallel",
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                 "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"},
                 "ordinals": {"start": 0}},
        "status": {"replicas": 0, "availableReplicas": 0}}),
    ("batch/v1", "Job", {"metadata": {"name": "j", "creationTimestamp": None},
                         "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 0, "template": TEMPLATE,
                                  "ttlSecondsAfterFinished": 0, "suspend": False,
                                  "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [
                                      {"type": "DisruptionTarget", "status": "True"}]}]}},
                         "status": {"startTime": "2026-11-22T10:00:00Z", "succeeded": 1, "uncountedTerminatedPods": {}}}),
    ("batch/v1", "CronJob", {"metadata": {"name": "cj", "creationTimestamp": None},
                             "spec": {"schedule": "*/5 * * * *", "timeZone": "Europe/Berlin",
                                      "startingDeadlineSeconds": 30, "concurrencyPolicy": "Forbid", "suspend": False,
                                      "jobTemplate": {"metadata": {"creationTimestamp": None, "labels": {"a": "b"}},
                                                      "spec": {"template": TEMPLATE}},
                                      "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1},
                             "status": {"active": [{"kind": "Job", "namespace": "default", "name": "cj-1",
                                                    "uid": "u", "apiVersion": "batch/v1"}],
                                        "lastScheduleTime": "2026-11-22T10:00:00Z"}}),
    ("events.k8s.io/v1", "Event", {
        "metadata": {"name": "e.2", "namespace": "default", "creationTimestamp": None},
        "eventTime": "2026-11-22T10:00:00.250000Z", "reportingController": "kubelet", "reportingInstance": "n1",
        "action": "Pulling", "reason": "Pulling", "regarding": {"kind": "Pod", "name": "p"}, "note": "pulling",
        "type": "Normal", "deprecatedSource": {"component": "kubelet"},
        "deprecatedFirstTimestamp": "2026-11-22T10:00:00Z", "deprecatedLastTimestamp": None, "deprecatedCount": 1}),
    # Go prints the zero structs: EventSource {} and metav1.Time null
    ("events.k8s.io/v1", "Event", {"metadata": {"creationTimestamp": None}, "eventTime": None, "regarding": {},
                                   "deprecatedSource": {}, "deprecatedFirstTimestamp": None,
                                   "deprecatedLastTimestamp": None}),
    ("discovery.k8s.io/v1", "EndpointSlice", {
        "metadata": {"name": "svc-abc", "creationTimestamp": None, "labels": {"kubernetes.io/service-name": "svc"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": False, "serving": True, "terminating": False},
                       "hostname": "h", "targetRef": {"kind": "Pod", "name": "p"}, "nodeName": "n1", "zone": "a",
                       "hints": {"forZones": [{"name": "a"}]}}],
        "ports": [{"name": "", "protocol": "TCP", "port": 0, "appProtocol": "http"}]}),
    ("discovery.k8s.io/v1", "EndpointSlice", {"metadata": {"creationTimestamp": None}, "addressType": "",
                                              "endpoints": None, "ports": None}),  # no omitempty: null
    ("autoscaling/v1", "Scale", {"metadata": {"name": "web", "namespace": "default", "creationTimestamp": None},
                                 "spec": {"replicas": 3}, "status": {"replicas": 0, "selector": "app=web"}}),
    ("autoscaling/v1", "Scale", {"metadata": {"creationTimestamp": None}, "spec": {}, "status": {"replicas": 0}}),
    ("meta.k8s.io/v1", "DeleteOptions", {"gracePeriodSeconds": 30, "preconditions": {"uid": "u", "resourceVersion": "5"},
                                         "orphanDependents": False, "propagationPolicy": "Foreground",
                                         "dryRun": ["All"], "ignoreStoreReadErrorWithClusterBreakingPotential": True}),
    ("apps/v1", "DeleteOptions", {"propagationPolicy": "Orphan"}),
    ("policy/v1", "PodDisruptionBudget", {
        "metadata": {"name": "pdb", "creationTimestamp": None},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
        "status": {"observedGeneration": 2, "disruptedPods": {"web-1": "2026-11-22T10:00:00Z"},
                   "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
                   "conditions": [{"type": "DisruptionAllowed", "status": "True", "observedGeneration": 2,
                                   "lastTransitionTime": "2026-11-22T10:00:00Z", "reason": "SufficientPods",
                                   "message": ""}]}}),
    ("policy/v1", "PodDisruptionBudget", {"metadata": {"name": "pdb", "creationTimestamp": None},
                                          "spec": {"maxUnavailable": 1},
                                          "status": {"disruptionsAllowed": 0, "currentHealthy": 0,
                                                     "desiredHealthy": 0, "expectedPods": 0}}),
    ("policy/v1", "Eviction", {"metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": None},
                               "deleteOptions": {"gracePeriodSeconds": 0, "dryRun": ["All"],
                                                 "preconditions": {"uid": "u"}}}),
    ("policy/v1beta1", "Eviction", {"metadata": {"name": "web-1", "creationTimestamp": None}}),
    ("scheduling.k8s.io/v1", "PriorityClass", {"metadata": {"name": "high", "creationTimestamp": None},
                                               "value": 1000, "globalDefault": True, "description": "d",
                                               "preemptionPolicy": "Never"}),
    ("scheduling.k8s.io/v1", "PriorityClass", {"metadata": {"name": "zero", "creationTimestamp": None}, "value": 0}),
    ("authentication.k8s.io/v1", "TokenRequest", {
        "metadata": {"name": "default", "namespace": "ns", "creationTimestamp": None},
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u-1"}},
        "status": {"token": "", "expirationTimestamp": None}}),
    ("authentication.k8s.io/v1", "SelfSubjectReview", {"metadata": {"creationTimestamp": None},
                                                       "status": {"userInfo": {}}}),
    ("authentication.k8s.io/v1", "TokenReview", {
        "metadata": {"creationTimestamp": None}, "spec": {"token": "t"},
        "status": {"user": {"username": "u", "groups": ["g"], "extra": {"k": ["v1", "v2"]}}}}),
]


@pytest.mark.parametrize("api_version,kind,obj", KINDS, ids=[f"{gv}/{k}" for gv, k, _ in KINDS])
def test_kinds_decode_from_the_reference_encoding(
    reference: ReferenceEncoder, api_version: str, kind: str, obj: Obj
) -> None:
    expected = {"kind": kind, "apiVersion": api_version, **obj}
    assert decode(reference.encode(api_version, kind, obj)) == expected


LISTED = [
    ("v1", k) for k in ("Namespace", "Node", "Pod", "Service", "Endpoints", "ConfigMap", "Secret", "Event",
                        "ServiceAccount", "ResourceQuota", "LimitRange")
] + [
    ("coordination.k8s.io/v1", "Lease"), ("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"),
    ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"), ("apps/v1", "ControllerRevision"), ("batch/v1", "Job"),
    ("batch/v1", "CronJob"), ("events.k8s.io/v1", "Event"), ("discovery.k8s.io/v1", "EndpointSlice"),
    ("policy/v1", "PodDisruptionBudget"), ("scheduling.k8s.io/v1", "PriorityClass"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"), ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration"),
]


def test_every_kind_the_server_needs_has_a_table() -> None:
    assert set(protobuf.supported_kinds()) == {
        ("v1", "Namespace"), ("v1", "Node"), ("v1", "Pod"), ("v1", "Service"), ("v1", "Endpoints"),
        ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Event"), ("v1", "ServiceAccount"), ("v1", "Binding"),
        ("coordination.k8s.io/v1", "Lease"), ("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"),
        ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"), ("batch/v1", "CronJob"),
        ("events.k8s.io/v1", "Event"), ("discovery.k8s.io/v1", "EndpointSlice"), ("autoscaling/v1", "Scale"),
        ("*", "DeleteOptions"),
        ("policy/v1", "PodDisruptionBudget"), ("policy/v1", "Eviction"), ("policy/v1beta1", "Eviction"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("authentication.k8s.io/v1", "TokenRequest"), ("authentication.k8s.io/v1", "TokenReview"),
        ("authentication.k8s.io/v1", "SelfSubjectReview"), ("authorization.k8s.io/v1", "SubjectAccessReview"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"), ("authorization.k8s.io/v1", "LocalSubjectAccessReview"),
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview"), ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        # what responses need besides (megaplane.apiserver.schema.protobuf_encode)
        ("v1", "ResourceQuota"), ("v1", "LimitRange"), ("apps/v1", "ControllerRevision"),
        ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"), ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration"),
        ("*", "Status"), ("*", "WatchEvent"),
        *((gv, kind + "List") for gv, kind in LISTED),
    }
    for kind in ("Pod", "Deployment", "Node"):  # and whatever they hold resolves
        message = SCHEMA["kinds"][("apps/v1/" if kind == "Deployment" else "v1/") + kind]
        assert protobuf._MESSAGES[message].zero()


def test_rich_pod_with_status_and_server_set_metadata(reference: ReferenceEncoder) -> None:
    # what `debug --copy-to` drops (uid, resourceVersion, creationTimestamp,
    # owner references, finalizers, status), from the reference encoder
    assert decode(reference.encode("v1", "Pod", RICH_POD)) == RICH_POD


# --- presence rules, on hand-written bytes ----------------------------------------------------

DEPLOYMENT_SPEC = "k8s.io.api.apps.v1.DeploymentSpec"


def deployment(spec: bytes) -> Obj:
    return decode(envelope("apps/v1", "Deployment", lfield(2, spec)))


def test_pointer_zero_kept_plain_zero_dropped() -> None:
    # replicas (*int32) = 0 is kept; minReadySeconds (int32, omitempty) = 0 and
    # paused (bool, omitempty) = false are what Go leaves out of the JSON
    spec = deployment(vfield(1, 0) + vfield(5, 0) + vfield(7, 0))["spec"]
    assert spec == {"replicas": 0, "selector": None, "template": {"metadata": {"creationTimestamp": None},
                                                                  "spec": {"containers": None}}, "strategy": {}}
    spec = deployment(vfield(5, 7) + vfield(7, 1))["spec"]
    assert spec["minReadySeconds"] == 7 and spec["paused"] is True and "replicas" not in spec


def test_absent_fields_print_as_go_prints_them() -> None:
    assert decode(envelope("apps/v1", "Deployment", b"")) == {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"selector": None, "template": {"metadata": {"creationTimestamp": None}, "spec": {"containers": None}},
                 "strategy": {}},
        "status": {},
    }


def test_non_omitempty_zero_values_are_kept() -> None:
    # ContainerPort.containerPort and Container.name have no omitempty
    pod = decode(envelope("v1", "Pod", lfield(2, lfield(2, lfield(1, "") + lfield(6, vfield(3, 0))))))
    assert pod["spec"]["containers"] == [{"name": "", "ports": [{"containerPort": 0}], "resources": {}}]


def test_negative_and_large_integers() -> None:
    spec = deployment(vfield(1, -1) + vfield(6, 2**31 - 1))["spec"]
    assert spec["replicas"] == -1 and spec["revisionHistoryLimit"] == 2**31 - 1
    meta = decode(envelope("v1", "ConfigMap", lfield(1, vfield(7, 2**63 - 1))))["metadata"]
    assert meta["generation"] == 2**63 - 1


def test_unknown_fields_are_skipped() -> None:
    # a newer client's field number 99 (every wire type), then a known field
    extra = vfield(99, 5) + lfield(98, b"xx") + varint(97 << 3 | 1) + b"\0" * 8 + varint(96 << 3 | 5) + b"\0" * 4
    extra += varint(95 << 3 | 3) + vfield(1, 1) + varint(95 << 3 | 4)
    cm = decode(envelope("v1", "ConfigMap", extra + lfield(1, lfield(1, "cm"))))
    assert cm["metadata"] == {"name": "cm", "creationTimestamp": None}


def test_packed_repeated_scalars() -> None:
    # supplementalGroups is []int64: gogo sends it unpacked; packed is accepted too
    packed = lfield(4, varint(1) + varint(2) + varint(300))
    pod = decode(envelope("v1", "Pod", lfield(2, lfield(14, packed + vfield(4, 7)))))
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [1, 2, 300, 7]


def test_repeated_singular_message_merges() -> None:
    # two occurrences of DeploymentSpec merge (Go's Unmarshal does not reset)
    body = envelope("apps/v1", "Deployment", lfield(2, vfield(1, 2)) + lfield(2, vfield(6, 5)))
    spec = decode(body)["spec"]
    assert spec["replicas"] == 2 and spec["revisionHistoryLimit"] == 5


def test_map_entries() -> None:
    # a missing value is the map value's zero; a later duplicate key wins
    data = lfield(2, lfield(1, "a") + lfield(2, "1")) + lfield(2, lfield(1, "b")) + lfield(2, lfield(1, "a") + lfield(2, "2"))
    assert decode(envelope("v1", "ConfigMap", data))["data"] == {"a": "2", "b": ""}
    binary = lfield(3, lfield(1, "bin") + lfield(2, b"\x00\xff")) + lfield(3, lfield(1, "nil"))
    assert decode(envelope("v1", "ConfigMap", binary))["binaryData"] == {"bin": "AP8=", "nil": None}
    requests = lfield(2, lfield(1, "cpu"))  # ResourceList value missing: the zero Quantity
    pod = decode(envelope("v1", "Pod", lfield(2, lfield(2, lfield(8, requests)))))
    assert pod["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "0"}}


def test_inlined_structs() -> None:
    # Volume inlines VolumeSource; Probe inlines ProbeHandler (encoding/json's embedded structs)
    volume = lfield(1, "v") + lfield(2, lfield(2, lfield(1, "")))  # emptyDir: {}
    port = vfield(1, 1) + vfield(2, 0) + lfield(3, "http")  # IntOrString "http"
    probe = lfield(1, lfield(3, lfield(1, port))) + vfield(2, 5)  # handler.tcpSocket.port, initialDelaySeconds
    container = lfield(1, "c") + lfield(10, probe)
    pod = decode(envelope("v1", "Pod", lfield(2, lfield(1, volume) + lfield(2, container))))
    assert pod["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert pod["spec"]["containers"][0]["livenessProbe"] == {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 5}


def test_key_order_is_go_struct_order() -> None:
    # Secret's Go order is metadata, immutable, data, stringData, type (numbers 1, 5, 2, 4, 3)
    secret = decode(envelope("v1", "Secret", lfield(3, "Opaque") + vfield(5, 1) + lfield(1, lfield(1, "s"))))
    assert list(secret) == ["kind", "apiVersion", "metadata", "immutable", "type"]


# --- special types ------------------------------------------------------------------


def meta_time(field: int, ts: bytes) -> Obj:
    return decode(envelope("v1", "ConfigMap", lfield(1, lfield(field, ts))))["metadata"]


def test_time() -> None:
    assert meta_time(8, vfield(1, 1795341600))["creationTimestamp"] == "2026-11-22T10:00:00Z"
    # nanoseconds are dropped, as upstream's Time.Unmarshal drops them
    assert meta_time(8, vfield(1, 1795341600) + vfield(2, 999_999_999))["creationTimestamp"] == "2026-11-22T10:00:00Z"
    assert meta_time(8, b"")["creationTimestamp"] is None  # the zero time prints as null
    assert meta_time(8, vfield(1, 0))["creationTimestamp"] == "1970-01-01T00:00:00Z"
    assert meta_time(8, vfield(1, -1))["creationTimestamp"] == "1969-12-31T23:59:59Z"
    assert meta_time(9, b"")["deletionTimestamp"] is None  # *Time present but zero: null too
    with pytest.raises(ProtobufError):
        meta_time(8, vfield(1, 300_000_000_000))  # year > 9999


def test_micro_time() -> None:
    def renew(ts: bytes) -> Any:
        lease = decode(envelope("coordination.k8s.io/v1", "Lease", lfield(2, lfield(4, ts))))
        return lease["spec"].get("renewTime")

    assert renew(vfield(1, 1795341600) + vfield(2, 123_456_789)) == "2026-11-22T10:00:00.123456Z"
    assert renew(vfield(1, 1795341600)) == "2026-11-22T10:00:00.000000Z"
    assert renew(b"") is None


def test_quantity_int_or_string_fields_v1() -> None:
    q = protobuf._SPECIALS["quantity"][0]
    assert q(lfield(1, "1500m"), 0, 7) == "1500m"
    assert q(b"", 0, 0) == "0"
    ios = protobuf._SPECIALS["intorstring"][0]
    for data, value in [(vfield(2, 8080), 8080), (vfield(1, 1) + lfield(3, "25%"), "25%"), (b"", 0),
                        (vfield(1, 0) + vfield(2, -1) + lfield(3, ""), -1)]:
        assert ios(data, 0, len(data)) == value
    bad = vfield(1, 2)
    with pytest.raises(ProtobufError):
        ios(bad, 0, len(bad))
    fields = lfield(1, '{"f:data":{}}')
    managed = lfield(1, "kubectl") + lfield(7, fields)
    cm = decode(envelope("v1", "ConfigMap", lfield(1, lfield(17, managed))))
    assert cm["metadata"]["managedFields"] == [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]


def test_raw_extension_and_duration() -> None:
    raw = protobuf._SPECIALS["rawextension"][0]
    data = lfield(1, '{"a":[1,2]}')
    assert raw(data, 0, len(data)) == {"a": [1, 2]}
    assert raw(b"", 0, 0) is None
    nested = lfield(1, envelope("v1", "Namespace", lfield(1, lfield(1, "ns"))))
    assert raw(nested, 0, len(nested)) == {"kind": "Namespace", "apiVersion": "v1",
                                           "metadata": {"name": "ns", "creationTimestamp": None},
                                           "spec": {}, "status": {}}
    with pytest.raises(ProtobufError):
        bad = lfield(1, "{not json")
        raw(bad, 0, len(bad))
    dur = protobuf._SPECIALS["duration"][0]
    for ns, text in [(0, "0s"), (1, "1ns"), (1500, "1.5µs"), (2_000_000, "2ms"), (1_500_000_000, "1.5s"),
                     (60 * 10**9, "1m0s"), (3600 * 10**9, "1h0m0s"), (3723 * 10**9 + 5 * 10**8, "1h2m3.5s"),
                     (-90 * 10**9, "-1m30s")]:
        data = vfield(1, ns)
        assert dur(data, 0, len(data)) == text, ns


# --- errors --------------------------------------------------------------------------------

NAMESPACE = envelope("v1", "Namespace", lfield(1, lfield(1, "demo") + lfield(8, b"")) + lfield(2, b"") + lfield(3, b""))


def test_bad_envelopes() -> None:
    for body, message in [
        (b"", "empty"),
        (b'{"kind":"Namespace"}', "expected prefix"),
        (b"k8s", "expected prefix"),
        (envelope("v1", "Frobnicator", b""), 'no kind "Frobnicator"'),
        (envelope("apps/v1", "Namespace", b""), 'no kind "Namespace" is registered for version "apps/v1"'),
        (envelope("v1", "", b""), "Kind"),
        (envelope("v1", "Namespace", b"", content_encoding="gzip"), "encoding"),
        (envelope("v1", "Namespace", b"", content_type="application/json"), "content type"),
    ]:
        with pytest.raises(ProtobufError, match=message):
            decode(body)
    with pytest.raises(UnknownKindError):
        decode(envelope("v1", "Frobnicator", b""))
    assert decode(envelope("v1", "Namespace", b"", content_type=CONTENT_TYPE))["kind"] == "Namespace"


def test_wrong_wire_type() -> None:
    with pytest.raises(ProtobufError, match="wrong wireType"):
        decode(envelope("v1", "Namespace", vfield(1, 3)))  # metadata as a varint
    with pytest.raises(ProtobufError, match="illegal"):
        decode(envelope("v1", "Namespace", b"\x00\x00"))


def test_truncated_bodies() -> None:
    # the envelope up to its raw field is a whole (empty) object
    complete = len(b"k8s\x00" + lfield(1, lfield(1, "v1") + lfield(2, "Namespace")))
    for cut in range(4, len(NAMESPACE)):
        if cut != complete:
            with pytest.raises(ProtobufError):
                decode(NAMESPACE[:cut])
    # a length that runs past its parent message (the envelope's raw is intact)
    with pytest.raises(ProtobufError, match="EOF"):
        decode(envelope("v1", "Namespace", varint(1 << 3 | 2) + varint(50) + lfield(1, "x")))
    with pytest.raises(ProtobufError, match="overflow"):
        decode(envelope("v1", "Namespace", varint(7 << 3) + b"\xff" * 11))


def test_corrupt_bodies_raise_only_protobuf_errors() -> None:
    pod = lfield(1, lfield(1, "p") + lfield(11, lfield(1, "a") + lfield(2, "b")))
    pod += lfield(2, lfield(2, lfield(1, "c") + lfield(2, "img") + lfield(8, lfield(1, lfield(1, "cpu") + lfield(2, lfield(1, "1"))))))
    body = envelope("v1", "Pod", pod)
    assert decode(body)["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    rng = random.Random(7)
    for _ in range(3000):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(4, len(mutated))] = rng.randrange(256)
        try:
            assert isinstance(decode(bytes(mutated)), dict)
        except ProtobufError:
            pass
