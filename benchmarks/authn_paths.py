"""What authenticating a request costs, per credential: anonymous, client certificate, static token, ServiceAccount JWT.

    python benchmarks/authn_paths.py           # quick: 100,000 requests per path, 200 fresh tokens, 5 rounds
    python benchmarks/authn_paths.py --full    # 1,000,000 requests per path, 2000 fresh tokens, 7 rounds

Claim under test: after a credential's first use no request pays for
cryptography. A client certificate is parsed once per DER (the TLS handshake
verified it); a static token is a dict lookup; a ServiceAccount token's
signature and claims are checked once and the token cached with its expiry
and the (cache, key, uid) of its ServiceAccount, so a later request is a dict
lookup, a clock read and one watch cache lookup. The reference, measured in
the same run, is `sa_first_use`: a ServiceAccount token's first request
(base64 and JSON decoding, the ES256 signature check, the claims and the
ServiceAccount lookup), what every request would cost without the cache.

The server is a ControlPlane in this process (embedded store, no ports):
its own authenticator (megaplane/apiserver/authn, as `megaplane apiserver`
builds it from the PKI it made and a --token-auth-file), tokens issued by
its TokenRequest handler for a ServiceAccount created through the registry.
Requests are `Request` objects as the HTTP transport makes them (headers
lower-cased, the connection's certificate DER on each). CPU is this
process's (`time.process_time`); medians of the rounds; the last line is one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import markdown_table  # noqa: E402

PATHS = ("anonymous", "certificate", "static_token", "sa_token", "sa_first_use")


def _per_request(authenticate: Any, req: Any, n: int) -> float:
    gc.collect()
    t0 = time.process_time()
    for _ in range(n):
        req.user = None
        authenticate(req)
    return (time.process_time() - t0) / n * 1e6


async def measure(requests: int, fresh: int) -> Dict[str, float]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from megaplane.apimachinery.resources import lookup
    from megaplane.apiserver.http.messages import Request
    from megaplane.apiserver.registry.options import WriteOptions
    from megaplane.controlplane import ControlPlane, ControlPlaneConfig

    data = tempfile.mkdtemp(prefix="megaplane-authn-bench-")
    tokens = os.path.join(data, "tokens.csv")
    with open(tokens, "w") as f:
        f.write('static-token,jane,uid-jane,"developers"\n')
    config = ControlPlaneConfig(data_dir=data, port=0, secure_port=0, controllers=[])
    config.api.authentication.token_auth_file = tokens
    plane = ControlPlane(config)
    await plane.start()
    try:
        registry = plane.api.registry
        accounts = lookup("", "serviceaccounts")
        assert accounts is not None
        await registry.store(accounts).create("default", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                          "metadata": {"name": "bench"}}, WriteOptions())
        issue = registry.creators[(accounts, "token")]

        async def token() -> str:
            result = await issue.create(None, "default", "bench", {"spec": {}}, WriteOptions())
            return str(json.loads(result.data)["status"]["token"])

        with open(os.path.join(data, "pki", "admin.crt"), "rb") as f:
            der = x509.load_pem_x509_certificate(f.read()).public_bytes(Encoding.DER)
        authenticate = plane.api.authenticator.authenticate

        def request(headers: Dict[str, str], cert: Any = None) -> Any:
            req = Request("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-0", "",
                          headers, b"", None)
            req.peer_certificate = cert
            return req

        sa = await token()
        reqs = {"anonymous": request({}), "certificate": request({}, der),
                "static_token": request({"authorization": "Bearer static-token"}),
                "sa_token": request({"authorization": "Bearer " + sa})}
        users = {k: authenticate(r).name for k, r in reqs.items()}
        assert users == {"anonymous": "system:anonymous", "certificate": "kubernetes-admin", "static_token": "jane",
                         "sa_token": "system:serviceaccount:default:bench"}, users
        out = {k: _per_request(authenticate, r, requests) for k, r in reqs.items()}
        firsts = [request({"authorization": "Bearer " + await token()}) for _ in range(fresh)]
        gc.collect()
        t0 = time.process_time()
        for req in firsts:
            authenticate(req)
        out["sa_first_use"] = (time.process_time() - t0) / fresh * 1e6
        return out
    finally:
        await plane.stop()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="1,000,000 requests per path, 2000 fresh tokens, 7 rounds")
    args = p.parse_args()
    requests, fresh, rounds = (1_000_000, 2000, 7) if args.full else (100_000, 200, 5)
    results: List[Dict[str, float]] = [asyncio.run(measure(requests, fresh)) for _ in range(rounds)]
    figures = {k: statistics.median(r[k] for r in results) for k in PATHS}
    ref = figures["sa_first_use"]
    rows = [[k, f"{figures[k]:.2f}", f"{figures[k] / ref:.4f}"] for k in PATHS]
    print(markdown_table(["credential", "CPU µs / request", "vs sa_first_use"], rows))
    print(json.dumps({"benchmark": "authn_paths", "requests": requests, "fresh_tokens": fresh, "rounds": rounds,
                      "cpu_us_per_request": figures, "reference": "sa_first_use",
                      "sa_token_vs_first_use": figures["sa_token"] / ref}))


if __name__ == "__main__":
    main()
