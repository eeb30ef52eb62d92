"""Files that hold secrets (the SQLite databases, secret.key) and the folder they live in.

A new data directory is created 0700 and a new database file 0600 before SQLite opens it
(SQLite gives its -wal and -shm files the database file's mode), so other local users read
nothing. Existing ones are left as they are — an operator may have reasons — but a looser mode
is named in a warning at start, with the fix.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) with the last folder 0700; warn if it is looser."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass  # another process made it first
    _warn_if_loose(path, 0o077, f"chmod 700 {path}")


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists; warn if an existing one is looser."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        _warn_if_loose(path, 0o077, f"chmod 600 {path}")


_warned: set[Path] = set()


def _warn_if_loose(path: Path, forbidden: int, fix: str) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & forbidden and path not in _warned:
        _warned.add(path)
        log.warning(
            "%s is readable by other users of this machine (mode %o); it holds authgate's secrets: %s", path, mode, fix
        )
