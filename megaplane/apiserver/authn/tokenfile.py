"""Static bearer tokens (--token-auth-file): a CSV of token,user,uid,"group1,group2".

As upstream's tokenfile authenticator: at least three columns, an optional
fourth with comma-separated groups, blank lines skipped, read once at
start (a changed file needs a restart). A token is looked up in a dict:
nothing per request but the lookup.
"""

from __future__ import annotations

import csv
from typing import Dict, Optional

from megaplane.apimachinery.user import ALL_AUTHENTICATED, UserInfo

__all__ = ["TokenFile", "load_token_file"]


class TokenFile:
    def __init__(self, tokens: Dict[str, UserInfo]) -> None:
        self.tokens = tokens

    def authenticate_token(self, token: str) -> Optional[UserInfo]:
        return self.tokens.get(token)


def load_token_file(path: str) -> TokenFile:
    """Parse `path`; a malformed line is a ValueError naming it (the server does not start)."""
    tokens: Dict[str, UserInfo] = {}
    with open(path, newline="") as f:
        for n, record in enumerate(csv.reader(f), 1):
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if len(record) < 3:
                raise ValueError(f"token file '{path}' must have at least 3 columns (token, user name, user uid), "
                                 f"found {len(record)}")
            token = record[0].strip()
            if not token:
                raise ValueError(f"token file '{path}', line {n}: empty token")  # upstream warns and skips
            groups = tuple(g.strip() for g in record[3].split(",") if g.strip()) if len(record) >= 4 else ()
            tokens[token] = UserInfo(record[1].strip(), record[2].strip(), groups + (ALL_AUTHENTICATED,))
    return TokenFile(tokens)
