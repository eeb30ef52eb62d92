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

from authgate.errors import ConfigError

log = logging.getLogger(__name__)


def private_dir(path: Path, setting: str = "data_dir") -> None:
    """Create `path` (and missing parents) with the last folder 0700; warn if it is looser.
    A folder that cannot be made is a ConfigError naming `setting`, the folder's and the fix."""
    if not path.is_dir():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                if not path.is_dir():
                    raise
                # else another process made it first
        except OSError as exc:
            raise _unusable(path, setting, exc) from None
    _warn_if_loose(path, 0o077, f"chmod 700 {path}")


def _unusable(path: Path, setting: str, exc: OSError, what: str = "folder") -> ConfigError:
    where = Path(exc.filename) if exc.filename else path
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        problem, other = f"{where} is a file, not a folder", f"move the file {where} away"
    else:
        problem, other = f"{exc.strerror or exc} ({where})", f"let this user write in {where.parent}"
    return ConfigError(
        setting,
        f"cannot create the {what} {path}: {problem}",
        f"set --{setting.replace('_', '-')} or AUTHGATE_{setting.upper()} to a place this user may write, or {other}",
    )


def private_file(path: Path, setting: str = "data_dir") -> None:
    """Create `path` empty with mode 0600 unless it exists; warn if an existing one is looser."""
    private_dir(path.parent, setting)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        _warn_if_loose(path, 0o077, f"chmod 600 {path}")
    except OSError as exc:  # a folder this user may not write in
        raise _unusable(path, setting, exc, "file") from None


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
