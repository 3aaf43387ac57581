"""The modes of what the store writes: etcd's fileutil.PrivateDirMode / PrivateFileMode.

The data dir holds every object's bytes (Secrets included), so, as etcd's,
its directories are 0700 and its files 0600 whatever the umask; a data dir
left by an older run with wider modes is tightened when opened.
"""

from __future__ import annotations

import os
import stat

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "private_dir", "private_file"]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str) -> None:
    """Create `path` (and missing parents) 0700, or tighten it to 0700 if it exists."""
    os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
    if stat.S_IMODE(os.stat(path).st_mode) != PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)


def private_file(path: str) -> None:
    """Tighten a file created by a copy (shutil) to 0600."""
    os.chmod(path, PRIVATE_FILE_MODE)
