"""Files only their owner may read: the reply cache and the job store keep prompts and replies.

On a shared hub the default umask (022) would leave them readable by every user. Whatever the umask:
a folder we create is 0700, and the database file and SQLite's side files (``-wal``, ``-shm``,
``-journal``) are 0600, also when they already exist with wider permissions. SQLite gives the side
files it creates later the mode of the database file.

A folder that already exists is tightened only when it is our own (``nbtools`` in the user's cache
folder); a folder the user chose through ``$NBTOOLS_CACHE`` keeps the permissions they gave it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from nbtools._engine.transport.base import IN_BROWSER

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")


def nbtools_folder() -> Path:
    """nbtools' folder in the user's cache folder; in JupyterLite, under /drive, the one folder a reload keeps."""
    if IN_BROWSER:
        return Path("/drive/.nbtools")
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("nbtools"))


def connect(path: Path, **options: Any) -> sqlite3.Connection:
    """SQLite on ``path``. JupyterLite's /drive cannot share locks (every query fails with "disk I/O error"):
    there one kernel holds the database alone."""
    db: sqlite3.Connection = sqlite3.connect(path, **options)
    if IN_BROWSER:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
    return db


def private_database(path: Path, *, own_folder: bool) -> None:
    """Make ``path``'s folder (if new, or ``own_folder``) and the database file private, before SQLite opens it."""
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode passes through the umask
    elif own_folder and folder.stat().st_mode & 0o777 != FOLDER_MODE:
        os.chmod(folder, FOLDER_MODE)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))  # created private, never readable for a moment
    os.chmod(path, FILE_MODE)  # an existing file, or a umask that took bits away
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, FILE_MODE)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a file only its owner may read (0600), also when it existed already."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.chmod(path, FILE_MODE)  # an existing file keeps its mode through os.open
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write(text)
