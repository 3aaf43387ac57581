"""kube-apiserver's authentication flags on `megaplane apiserver` and `megaplane up`, with upstream's names.

Left empty, --client-ca-file and --service-account-signing-key-file mean
the cluster's own PKI (the CA and sa.key `megaplane up` keeps in
<data-dir>/pki: controlplane.ControlPlane fills them in), so the
kubeconfigs it writes authenticate; given, they are used as they are.
"""

from __future__ import annotations

import argparse
from typing import List

from megaplane.apiserver.authn.config import AuthenticationConfig
from megaplane.units import parse_bool, parse_duration

__all__ = ["add_authentication_flags", "authentication_config", "DEFAULT_ISSUER"]

#: kubeadm's --service-account-issuer (and so the default API audience).
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def _list(value: str) -> List[str]:
    return [v for v in (s.strip() for s in value.split(",")) if v]


def add_authentication_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("authentication", description="The secure port only: requests on --port are not "
                             "authenticated (system:unsecured in system:masters, as upstream's removed insecure port)")
    g.add_argument("--anonymous-auth", type=parse_bool, nargs="?", const=True, default=True,
                   help="requests without credentials are system:anonymous in system:unauthenticated (true); "
                        "false: 401")
    g.add_argument("--client-ca-file", default="",
                   help="client certificates signed by this CA authenticate as their CN, in their O groups "
                        "(default: the cluster CA in <data-dir>/pki)")
    g.add_argument("--token-auth-file", default="",
                   help='static bearer tokens: a CSV of token,user,uid,"group1,group2"')
    g.add_argument("--service-account-key-file", action="append", default=[],
                   help="PEM file of public keys verifying ServiceAccount tokens (repeatable; default: the "
                        "signing key's)")
    g.add_argument("--service-account-signing-key-file", default="",
                   help="private key ServiceAccount tokens are signed with (default: <data-dir>/pki/sa.key, "
                        "generated)")
    g.add_argument("--service-account-issuer", action="append", default=[],
                   help=f"issuer of ServiceAccount tokens (repeatable: the first issues, all are accepted; "
                        f"default {DEFAULT_ISSUER})")
    g.add_argument("--api-audiences", default="",
                   help="audiences tokens must be for (comma separated; default: the issuers)")
    g.add_argument("--service-account-lookup", type=parse_bool, nargs="?", const=True, default=True,
                   help="a ServiceAccount token is valid only while its ServiceAccount exists (true)")
    g.add_argument("--service-account-max-token-expiration", type=parse_duration, default=0.0,
                   help="longest validity a TokenRequest gets (0: as asked)")


def authentication_config(args: argparse.Namespace) -> AuthenticationConfig:
    """The flags as a config, its files read once to check them (ValueError: the command exits 2 with it)."""
    config = AuthenticationConfig(
        anonymous_auth=args.anonymous_auth,
        client_ca_file=args.client_ca_file,
        token_auth_file=args.token_auth_file,
        service_account_key_files=list(args.service_account_key_file),
        service_account_signing_key_file=args.service_account_signing_key_file,
        service_account_issuers=list(args.service_account_issuer) or [DEFAULT_ISSUER],
        api_audiences=_list(args.api_audiences),
        service_account_lookup=args.service_account_lookup,
        service_account_max_token_expiration=args.service_account_max_token_expiration,
    )
    config.check_files()
    return config
