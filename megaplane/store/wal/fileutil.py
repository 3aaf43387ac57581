"""The modes of what the store writes: etcd's fileutil.PrivateDirMode / PrivateFileMode.

The data dir holds every object's bytes (Secrets included), so, as etcd's,
its directories are 0700 and its files 0600 whatever the umask; what an
older run left with wider modes in the store's part of a data dir (its top
level, wal/, snap/) is tightened when the store opens it.
"""

from __future__ import annotations

import os
import stat

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "private_dir", "private_file", "tighten_data_dir"]

#: What the store keeps in its data dir (the rest, e.g. the API server's pki/, is not its to change).
_STORE_DIRS = ("wal", "snap")

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


def tighten_data_dir(data_dir: str) -> None:
    """Bring what an older run left in the store's part of `data_dir` to 0700 / 0600."""
    for entry in os.scandir(data_dir):
        if entry.is_file(follow_symlinks=False):
            _tighten(entry.path, PRIVATE_FILE_MODE)
    for sub in _STORE_DIRS:
        top = os.path.join(data_dir, sub)
        for d, dirs, files in os.walk(top):
            _tighten(d, PRIVATE_DIR_MODE)
            for name in files:
                _tighten(os.path.join(d, name), PRIVATE_FILE_MODE)


def _tighten(path: str, mode: int) -> None:
    try:
        if stat.S_IMODE(os.lstat(path).st_mode) & ~mode:
            os.chmod(path, mode)
    except OSError:  # gone meanwhile, or not ours: opening it later reports what matters
        pass
