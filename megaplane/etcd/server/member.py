"""The member: one etcd member's identity, URLs and alarms, and the response header it stamps.

megaplane serves a one-member cluster with no raft: the raft term is
fixed, the member is always its own leader. Member and cluster ids are
kept in the data dir so they survive restarts, as etcd's do. Every
servicer gets the member for its headers; none gets the server.
"""

from __future__ import annotations

import json
import os
import random
from typing import List, Optional, Set, Tuple

from ..pb import etcd_pb2 as pb

__all__ = ["Member", "RAFT_TERM"]

RAFT_TERM = 2


def _identity(data_dir: Optional[str], name: str) -> Tuple[int, int]:
    """(member id, cluster id): kept in the data dir so they survive restarts, like etcd's."""
    if data_dir is not None:
        path = os.path.join(data_dir, "member.json")
        try:
            with open(path) as f:
                d = json.load(f)
            return int(d["member_id"]), int(d["cluster_id"])
        except FileNotFoundError:
            pass
    rng = random.SystemRandom()
    member_id, cluster_id = rng.getrandbits(63) or 1, rng.getrandbits(63) or 1
    if data_dir is not None:
        tmp = os.path.join(data_dir, "member.json.tmp")
        with open(tmp, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # etcd's PrivateFileMode, as every file of the data dir
            json.dump({"member_id": member_id, "cluster_id": cluster_id, "name": name}, f)
        os.replace(tmp, os.path.join(data_dir, "member.json"))
    return member_id, cluster_id


class Member:
    """Who this member is, where clients reach it, and which alarms are raised."""

    def __init__(self, data_dir: Optional[str], name: str, client_urls: List[str]) -> None:
        self.name = name
        self.client_urls = client_urls
        self.peer_urls: List[str] = []
        self.member_id, self.cluster_id = _identity(data_dir, name)
        #: (member id, AlarmType) pairs, as Maintenance.Alarm set them.
        self.alarms: Set[Tuple[int, int]] = set()

    @property
    def nospace(self) -> bool:
        """True while a NOSPACE alarm is raised: writes are refused, as in etcd."""
        return any(a == pb.NOSPACE for _, a in self.alarms)

    def header(self, revision: int) -> pb.ResponseHeader:
        return pb.ResponseHeader(
            cluster_id=self.cluster_id, member_id=self.member_id, revision=revision, raft_term=RAFT_TERM
        )
