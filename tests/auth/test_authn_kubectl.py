"""Authentication end to end: a real `megaplane apiserver`, kubectl and raw HTTPS clients.

One server for the module: its own PKI (the admin's client certificate in the
kubeconfig it writes), a --token-auth-file, ServiceAccount tokens from
`kubectl create token`. Every identity is checked with `kubectl auth whoami`
(SelfSubjectReview); bad credentials get upstream's 401 Status.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
import yaml

from megaplane.cli import build_parser
from tests.api.conftest import KUBECTL, Cluster, start_megaplane

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}
TOKEN = "static-token-4f1c9d"
TOKENS_CSV = f'{TOKEN},jane,uid-jane,"developers,qa"\nother-token,joe,uid-joe\n'


def _authorization_flags() -> list:
    """AlwaysAllow where the server has authorization modes: these tests are about who, not what may."""
    flags = ["--authorization-mode", "AlwaysAllow"]
    try:
        build_parser().parse_args(["apiserver", *flags])
    except SystemExit:
        return []
    return flags


class Server:
    def __init__(self, cluster: Cluster, root: str) -> None:
        self.cluster = cluster
        self.root = root
        self.data = os.path.join(root, "data")
        with open(cluster.kubeconfig) as f:
            self.https = yaml.safe_load(f)["clusters"][0]["cluster"]["server"]
        self.ca = os.path.join(self.data, "pki", "ca.crt")
        # A kubeconfig with the cluster but no user: credentials come from --token, or none (anonymous).
        self.bare = os.path.join(root, "bare.kubeconfig")
        with open(self.bare, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                            "clusters": [{"name": "c", "cluster": {"server": self.https,
                                                                   "certificate-authority": self.ca}}],
                            "users": [{"name": "u", "user": {}}],
                            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}, f)

    def kubectl(self, *args: str, token: Optional[str] = None, kubeconfig: Optional[str] = None) -> Any:
        import subprocess

        cmd = [KUBECTL, "--kubeconfig", kubeconfig or (self.bare if token else self.cluster.kubeconfig),
               "--cache-dir", os.path.join(self.root, "kubectl-cache")]
        if token:
            cmd.append("--token=" + token)
        return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def ok(self, *args: str, **kw: Any) -> str:
        out = self.kubectl(*args, **kw)
        assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return str(out.stdout)

    def whoami(self, **kw: Any) -> Dict[str, Any]:
        info: Dict[str, Any] = json.loads(self.ok("auth", "whoami", "-o", "json", **kw))["status"]["userInfo"]
        return info

    def request(self, method: str, path: str, body: Optional[dict] = None, token: Optional[str] = None,
                cert: Optional[Tuple[str, str]] = None, authorization: Optional[str] = None) -> Tuple[int, Any]:
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(*cert)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        if authorization is not None:
            headers["Authorization"] = authorization
        req = urllib.request.Request(self.https + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    root = tempfile.mkdtemp(prefix="megaplane-authn-")
    tokens = os.path.join(root, "tokens.csv")
    with open(tokens, "w") as f:
        f.write(TOKENS_CSV)
    cluster = start_megaplane(root, "apiserver", ["--data-dir", os.path.join(root, "data"),
                                                  "--token-auth-file", tokens, *_authorization_flags()])
    try:
        yield Server(cluster, root)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _poll(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_admin_kubeconfig_is_a_client_certificate_of_system_masters(server: Server) -> None:
    with open(server.cluster.kubeconfig) as f:
        user = yaml.safe_load(f)["users"][0]["user"]
    assert set(user) == {"client-certificate-data", "client-key-data"}
    assert server.whoami() == {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
    assert "default" in server.ok("get", "ns")


def test_component_kubeconfigs_name_each_component(server: Server) -> None:
    expected = {
        "scheduler": ("system:kube-scheduler", ["system:authenticated"]),
        "controller-manager": ("system:kube-controller-manager", ["system:authenticated"]),
        "fleet": ("system:megaplane:fleet", ["system:megaplane:fleets", "system:nodes", "system:authenticated"]),
    }
    for name, (user, groups) in expected.items():
        path = os.path.join(server.data, f"{name}.kubeconfig")
        assert server.whoami(kubeconfig=path) == {"username": user, "groups": groups}


def test_megaplane_client_authenticates_with_a_component_kubeconfig(server: Server) -> None:
    from megaplane.client.http import HTTPTransport
    from megaplane.client.kubeconfig import load_kubeconfig
    from megaplane.client.resources import ResourceRef

    async def whoami() -> Any:
        transport = HTTPTransport.from_config(load_kubeconfig(os.path.join(server.data, "fleet.kubeconfig")))
        try:
            ref = ResourceRef("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False)
            return json.loads(await transport.create(ref, None, b'{"kind":"SelfSubjectReview",'
                                                               b'"apiVersion":"authentication.k8s.io/v1"}'))
        finally:
            await transport.close()

    assert asyncio.run(whoami())["status"]["userInfo"]["username"] == "system:megaplane:fleet"


def test_static_token(server: Server) -> None:
    assert server.whoami(token=TOKEN) == {"username": "jane", "uid": "uid-jane",
                                          "groups": ["developers", "qa", "system:authenticated"]}
    assert server.whoami(token="other-token") == {"username": "joe", "uid": "uid-joe",
                                                  "groups": ["system:authenticated"]}


def test_invalid_token_is_401_even_with_anonymous_on(server: Server) -> None:
    assert server.request("GET", "/api/v1/namespaces", token="not-a-real-token") == (401, UNAUTHORIZED)
    out = server.kubectl("get", "ns", token="not-a-real-token")
    assert out.returncode != 0 and "Unauthorized" in out.stderr
    # A scheme other than Bearer is no credential at all: anonymous.
    status, review = server.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                                    authorization="Basic amFuZTpzZWNyZXQ=")
    assert (status, review["status"]["userInfo"]["username"]) == (201, "system:anonymous")


def test_anonymous_is_system_anonymous(server: Server) -> None:
    status, review = server.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert (status, review["status"]["userInfo"]) == (
        201, {"username": "system:anonymous", "groups": ["system:unauthenticated"]})
    assert server.request("GET", "/version")[0] == 200


def test_serviceaccount_token_from_kubectl_create_token(server: Server) -> None:
    server.ok("create", "serviceaccount", "robot")
    uid = json.loads(server.ok("get", "sa", "robot", "-o", "json"))["metadata"]["uid"]
    token = server.ok("create", "token", "robot", "--duration", "15m").strip()
    info = server.whoami(token=token)
    jti = info.pop("extra")["authentication.kubernetes.io/credential-id"]
    assert jti[0].startswith("JTI=")
    assert info == {"username": "system:serviceaccount:default:robot", "uid": uid,
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]}
    assert "robot" in server.ok("get", "sa", token=token)
    # TokenReview says the same, for the API audience.
    status, review = server.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                     "spec": {"token": token}})
    assert status == 201 and review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == "system:serviceaccount:default:robot"
    assert review["status"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    # A token for another audience does not authenticate API requests; a review for that audience says yes.
    other = server.ok("create", "token", "robot", "--audience", "vault").strip()
    assert server.request("GET", "/api/v1/namespaces", token=other) == (401, UNAUTHORIZED)
    assert _review(server, other) == (False, [])
    assert _review(server, other, ["vault", "x"]) == (True, ["vault"])


def _review(server: Server, token: str, audiences: Optional[list] = None) -> Tuple[bool, list]:
    spec: Dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    status, review = server.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                                    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
    assert status == 201, review
    return review["status"]["authenticated"], review["status"].get("audiences", [])


def test_token_review_of_a_static_token_is_for_the_api_audiences_only(server: Server) -> None:
    assert _review(server, TOKEN) == (True, ["https://kubernetes.default.svc.cluster.local"])
    assert _review(server, TOKEN, ["vault"]) == (False, [])
    assert _review(server, "not-a-real-token") == (False, [])


def test_token_request_refusals(server: Server) -> None:
    server.ok("create", "serviceaccount", "refusals")
    out = server.kubectl("create", "token", "refusals", "--duration", "5m")
    assert "may not specify a duration less than 10 minutes" in out.stderr
    out = server.kubectl("create", "token", "missing")
    assert 'serviceaccounts "missing" not found' in out.stderr
    out = server.kubectl("create", "token", "refusals", "--bound-object-kind", "Pod", "--bound-object-name", "nope")
    assert 'pods "nope" not found' in out.stderr


def test_deleted_serviceaccount_ends_its_tokens(server: Server) -> None:
    server.ok("create", "serviceaccount", "short-lived")
    token = server.ok("create", "token", "short-lived").strip()
    assert server.whoami(token=token)["username"] == "system:serviceaccount:default:short-lived"
    server.ok("delete", "serviceaccount", "short-lived")
    _poll(lambda: server.request("GET", "/api/v1/namespaces", token=token)[0] == 401, "token still accepted")
    # A new account of the same name (another uid) does not revive it.
    server.ok("create", "serviceaccount", "short-lived")
    assert server.request("GET", "/api/v1/namespaces", token=token) == (401, UNAUTHORIZED)


def test_pod_bound_token_ends_with_its_pod(server: Server) -> None:
    server.ok("create", "serviceaccount", "worker")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker-pod"},
           "spec": {"serviceAccountName": "worker", "containers": [{"name": "c", "image": "busybox"}]}}
    assert server.request("POST", "/api/v1/namespaces/default/pods", pod, cert=_admin_cert(server))[0] == 201
    token = server.ok("create", "token", "worker", "--bound-object-kind", "Pod",
                      "--bound-object-name", "worker-pod").strip()
    extra = server.whoami(token=token)["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["worker-pod"]
    server.ok("delete", "pod", "worker-pod", "--grace-period=0", "--force")
    _poll(lambda: server.request("GET", "/version", token=token)[0] == 401, "pod-bound token outlived its pod")
    # A pod awaiting removal (a finalizer holds it) keeps its tokens for a minute past its deletionTimestamp.
    pod["metadata"] = {"name": "held-pod", "finalizers": ["example.com/hold"]}
    assert server.request("POST", "/api/v1/namespaces/default/pods", pod, cert=_admin_cert(server))[0] == 201
    held = server.ok("create", "token", "worker", "--bound-object-kind", "Pod", "--bound-object-name",
                     "held-pod").strip()
    server.ok("delete", "pod", "held-pod", "--grace-period=0", "--force", "--wait=false")
    assert json.loads(server.ok("get", "pod", "held-pod", "-o", "json"))["metadata"]["deletionTimestamp"]
    assert server.request("GET", "/version", token=held)[0] == 200
    server.ok("patch", "pod", "held-pod", "--type", "json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    _poll(lambda: server.request("GET", "/version", token=held)[0] == 401, "token outlived its removed pod")


def test_expired_and_forged_tokens_are_401(server: Server) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from megaplane.apiserver.authn.serviceaccount import TokenSigner, load_private_key

    server.ok("create", "serviceaccount", "forged")
    uid = json.loads(server.ok("get", "sa", "forged", "-o", "json"))["metadata"]["uid"]
    now = int(time.time())
    claims = {"aud": ["https://kubernetes.default.svc.cluster.local"], "iss": "https://kubernetes.default.svc.cluster.local",
              "sub": "system:serviceaccount:default:forged", "iat": now, "nbf": now, "exp": now + 3600,
              "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "forged", "uid": uid}}}
    real = TokenSigner(load_private_key(os.path.join(server.data, "pki", "sa.key")))
    assert server.whoami(token=real.sign(claims))["username"] == "system:serviceaccount:default:forged"
    expired = real.sign(dict(claims, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    assert server.request("GET", "/version", token=expired) == (401, UNAUTHORIZED)
    stranger = TokenSigner(ec.generate_private_key(ec.SECP256R1()))
    assert server.request("GET", "/version", token=stranger.sign(claims)) == (401, UNAUTHORIZED)
    # The signature of one token over another's claims.
    header, _, sig = real.sign(claims).split(".")
    other_claims = real.sign(dict(claims, sub="system:serviceaccount:kube-system:default")).split(".")[1]
    assert server.request("GET", "/version", token=f"{header}.{other_claims}.{sig}") == (401, UNAUTHORIZED)


def _admin_cert(server: Server) -> Tuple[str, str]:
    pki = os.path.join(server.data, "pki")
    return os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key")


def test_plain_http_port_is_not_authenticated(server: Server) -> None:
    req = urllib.request.Request(server.cluster.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                 method="POST", headers={"Content-Type": "application/json",
                                                         "Authorization": "Bearer not-a-real-token"},
                                 data=b'{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}')
    with urllib.request.urlopen(req, timeout=30) as r:
        user = json.loads(r.read())["status"]["userInfo"]
    assert user == {"username": "system:unsecured", "groups": ["system:masters", "system:authenticated"]}


def test_certificate_of_another_ca_fails_the_handshake(server: Server) -> None:
    from megaplane.apiserver.http.tls import ensure_certs, issue_client_cert

    foreign = os.path.join(server.root, "foreign-pki")
    ensure_certs(foreign)
    cert = issue_client_cert(foreign, "mallory", "kubernetes-admin", ["system:masters"])
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        server.request("GET", "/api/v1/namespaces", cert=cert)
    # The same name from the cluster's own CA is accepted (names carry no weight without the CA).
    own = issue_client_cert(os.path.join(server.data, "pki"), "tester", "tester", ["testers"])
    status, review = server.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                    {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}, cert=own)
    assert review["status"]["userInfo"] == {"username": "tester", "groups": ["testers", "system:authenticated"]}


def test_secret_bound_token_ends_with_its_secret_and_a_wrong_uid_is_a_conflict(server: Server) -> None:
    server.ok("create", "serviceaccount", "keeper")
    server.ok("create", "secret", "generic", "kept", "--from-literal", "k=v")
    token = server.ok("create", "token", "keeper", "--bound-object-kind", "Secret", "--bound-object-name",
                      "kept").strip()
    assert server.whoami(token=token)["username"] == "system:serviceaccount:default:keeper"
    out = server.kubectl("create", "token", "keeper", "--bound-object-kind", "Secret", "--bound-object-name", "kept",
                         "--bound-object-uid", "not-its-uid")
    assert "the UID in the bound object reference (not-its-uid) does not match the UID in record" in out.stderr
    server.ok("delete", "secret", "kept")
    _poll(lambda: server.request("GET", "/version", token=token)[0] == 401, "secret-bound token outlived its secret")


def test_node_bound_token_ends_with_its_node(server: Server) -> None:
    server.ok("create", "serviceaccount", "agent")
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "authn-node"}}
    assert server.request("POST", "/api/v1/nodes", node, cert=_admin_cert(server))[0] == 201
    token = server.ok("create", "token", "agent", "--bound-object-kind", "Node", "--bound-object-name",
                      "authn-node").strip()
    extra = server.whoami(token=token)["extra"]
    assert extra["authentication.kubernetes.io/node-name"] == ["authn-node"]
    server.ok("delete", "node", "authn-node")
    _poll(lambda: server.request("GET", "/version", token=token)[0] == 401, "node-bound token outlived its node")
