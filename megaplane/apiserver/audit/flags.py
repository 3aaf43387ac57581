"""The audit flags of `megaplane up` / `megaplane apiserver`, with kube-apiserver's names and defaults."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_audit_flags", "audit_config"]


def add_audit_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("audit")
    g.add_argument("--audit-policy-file", default="", help="audit.k8s.io/v1 Policy (YAML or JSON): what is audited")
    g.add_argument("--audit-log-path", default="", help="write audit events here, one JSON object a line ('-': stdout)")
    g.add_argument("--audit-log-maxage", type=int, default=0, help="days to keep rotated audit logs (0: any age)")
    g.add_argument("--audit-log-maxbackup", type=int, default=0, help="rotated audit logs kept (0: all)")
    g.add_argument("--audit-log-maxsize", type=int, default=0,
                   help="megabytes an audit log grows to before it is rotated (0: 100)")
    g.add_argument("--audit-log-format", default="json", choices=("json", "legacy"), help="audit log format (json)")
    g.add_argument("--audit-log-batch-buffer-size", type=int, default=10000,
                   help="audit events queued for the writer; more are dropped and counted (10000)")


def audit_config(args: argparse.Namespace) -> Any:
    """The AuditConfig of parsed arguments (imported here: building the parser imports no audit code)."""
    from megaplane.apiserver.audit.config import AuditConfig

    return AuditConfig(
        policy_file=getattr(args, "audit_policy_file", "") or "",
        log_path=getattr(args, "audit_log_path", "") or "",
        log_max_age=getattr(args, "audit_log_maxage", 0),
        log_max_backup=getattr(args, "audit_log_maxbackup", 0),
        log_max_size=getattr(args, "audit_log_maxsize", 0),
        log_format=getattr(args, "audit_log_format", "json"),
        log_buffer_size=getattr(args, "audit_log_batch_buffer_size", 10000),
    )
