"""The project as an SQLite file: the engine (WAL, ``synchronous=FULL``, writers take the lock up front), reading
a project where it cannot be written, and why a write was refused.

SQLite reads a WAL-mode file only where it can open or create the ``-shm`` index beside it. On a read-only
disk (an archive, a mount gone read-only) with no ``-shm`` left there, a normal connection cannot even read
(``unable to open database file``); the file then holds every committed edit (no ``-wal`` with content), so
it is opened ``immutable``: a read-only snapshot as of opening, and any write is refused as read-only. A
``-wal`` with edits not yet folded into the file and no ``-shm`` cannot be read safely there: that is a
:class:`ProjectError` saying so, never a silently older view.

A refused write is explained by SQLite's message, else by the file system's state (no write access to the
file or its folder: read-only; almost no free space: full), as a mount that turned read-only or a full disk
may reach SQLite as a plain I/O error.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dermviewer.state.annotate.errors import ProjectError

__all__ = ["FULL_BELOW", "refusal_reason", "sqlite_engine", "writable"]

FULL_BELOW = 64 * 1024  # free bytes under which a refused write is put down to a full disk
_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL", "busy_timeout=30000")


def writable(path: Path) -> bool:
    """Whether the file (if it exists) and its folder can be written (``access`` says no on a read-only mount,
    also to root)."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _snapshot(path: Path, cparams: dict[str, Any]) -> sqlite3.Connection:
    wal, shm = path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
    if wal.is_file() and wal.stat().st_size > 0 and not shm.exists():
        raise ProjectError(f"its last edits are in {wal.name}, which cannot be read on a read-only disk; open it "
                           "once where it can be written (they are then folded into the file)", path)
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    params = {k: v for k, v in cparams.items() if k != "uri"}
    return sqlite3.connect(uri, uri=True, **params)


def sqlite_engine(path: Path) -> Engine:
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30.0})

    @sa.event.listens_for(engine, "do_connect")
    def _do_connect(dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
        conn = dialect.loaded_dbapi.connect(*cargs, **cparams)
        try:
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header: needs the -shm of a WAL file
        except sqlite3.OperationalError:
            conn.close()
            if writable(path):
                raise
            return _snapshot(path, cparams)
        return conn

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        for pragma in _PRAGMAS:  # an immutable snapshot answers journal_mode=WAL with "delete": harmless
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # a writer takes the lock up front, so two processes queue instead of failing on the lock upgrade
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


def refusal_reason(message: str, file: Path | None, operational: bool = True) -> str:
    """What the user is told when a write transaction failed with the database's ``message``; the file
    system's state is asked only for an operational failure (not, say, a constraint the edit broke)."""
    low = message.lower()
    ask_disk = operational and file is not None and file.parent.is_dir()
    if "readonly" in low or "read-only" in low or "read only" in low or (
            ask_disk and file is not None and not writable(file)):
        return "the project is read-only (file or folder): nothing was saved; saved edits are intact"
    if "full" in low or (ask_disk and file is not None and shutil.disk_usage(file.parent).free < FULL_BELOW):
        return "the disk is full: the edit was not saved; saved edits are intact"
    return f"the edit was not saved ({message}); saved edits are intact"
