"""The audit configuration the flags give, and the auditor built from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from megaplane.apiserver.audit.backend import LogBackend
from megaplane.apiserver.audit.filter import Auditor, encode_event
from megaplane.apiserver.audit.policy import PolicyError, load_policy

__all__ = ["AuditConfig", "build"]


@dataclass
class AuditConfig:
    #: --audit-policy-file
    policy_file: str = ""
    #: --audit-log-path ("-": stdout)
    log_path: str = ""
    #: --audit-log-maxage (days), --audit-log-maxbackup, --audit-log-maxsize (megabytes; 0: 100)
    log_max_age: int = 0
    log_max_backup: int = 0
    log_max_size: int = 0
    #: --audit-log-format: json only ("legacy" is not written)
    log_format: str = "json"
    #: --audit-log-batch-buffer-size: events queued for the writer before new ones are dropped
    log_buffer_size: int = 10000


def build(config: AuditConfig) -> Optional[Auditor]:
    """The auditor the flags ask for, or None (no policy file, or no log path). Raises PolicyError."""
    if not config.policy_file or not config.log_path:
        return None
    if config.log_format != "json":
        raise PolicyError(f'--audit-log-format: "{config.log_format}" is not supported (json)')
    policy = load_policy(config.policy_file)
    backend = LogBackend(config.log_path, max_size_mb=config.log_max_size, max_backups=config.log_max_backup,
                         max_age_days=config.log_max_age, buffer_size=config.log_buffer_size, encode=encode_event)
    return Auditor(policy, backend)
