"""Files that hold secrets (the store with every key, `commgrid.json`) are readable by their owner only.

The data dir is 0700 and the files commgrid writes there 0600, whatever the umask; a store URL's password is
never written to disk (PostgreSQL clients read it from `PGPASSWORD` or `~/.pgpass` instead).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (and parents) if needed and make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(PermissionError):  # not ours to change: leave it as its owner set it
        path.chmod(DIR_MODE)


def private_file(path: Path) -> None:
    """Make `path` 0600, creating it empty if it does not exist (so that it is never created wider)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    with contextlib.suppress(PermissionError):
        path.chmod(FILE_MODE)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, as a 0600 file (written aside, then renamed over)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)


def without_password(url: str | None) -> str | None:
    """`url` with any password removed from its user info: `postgresql://u:pw@h/db` → `postgresql://u@h/db`."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
