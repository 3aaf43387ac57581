"""What an authorizer answers (authorizer.Decision and its reason) and the authorizer protocol.

A decision is a (kind, reason) pair; the common answers are module
constants, so an allowed request allocates nothing. A union of authorizers
(modes.py) asks each in turn: the first Allow or Deny decides, NoOpinion
passes to the next, and no decision at all is a refusal.
"""

from __future__ import annotations

from typing import Protocol, Tuple

from megaplane.apimachinery.user import UserInfo

__all__ = ["Decision", "ALLOW", "NO_OPINION", "DENY", "Authorizer", "no_opinion", "deny"]

#: (0 NoOpinion | 1 Allow | 2 Deny, reason)
Decision = Tuple[int, str]
NO_OPINION_KIND, ALLOW_KIND, DENY_KIND = 0, 1, 2
ALLOW: Decision = (ALLOW_KIND, "")
NO_OPINION: Decision = (NO_OPINION_KIND, "")
DENY: Decision = (DENY_KIND, "")


def no_opinion(reason: str) -> Decision:
    return NO_OPINION_KIND, reason


def deny(reason: str) -> Decision:
    return DENY_KIND, reason


class Authorizer(Protocol):
    def authorize(self, user: UserInfo, verb: str, group: str, resource: str, subresource: str, namespace: str,
                  name: str) -> Decision:
        """A resource request's decision."""

    def authorize_path(self, user: UserInfo, verb: str, path: str) -> Decision:
        """A non-resource request's decision (verb: get, post, ...)."""
