"""One lock per connection: whoever holds it runs that connection's cycle, nobody else does.

PostgreSQL store (several ``kpisync run`` processes, on one or many machines):
``pg_try_advisory_lock`` on a session of its own, held for the whole cycle. The lock belongs to
the database session, so a process that dies — SIGKILL, OOM, a lost machine — loses its session
and the lock with it; the next process that tries takes the connection over. TCP keepalives on
that session bound how long a vanished machine keeps it (about a minute). Advisory locks were
chosen over APScheduler's shared SQLAlchemy job store because a job store only shares *when* a
job is due: it neither stops two schedulers from running the same job at once nor notices a dead
owner, and it would keep pickled jobs in the store.

SQLite store (one machine by nature): ``fcntl.flock`` on a file next to the database,
``<db>.<connection>.lock``; the kernel drops it when the process dies.

A :class:`ConnectionLock` is not re-entrant and not shared between threads: one per attempt.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Protocol

import sqlalchemy as sa

from connectors.store import Store

__all__ = ["ConnectionLock", "FileLock", "PgAdvisoryLock", "connection_lock", "migrate"]

#: Server-side keepalives of the lock session: a silent peer is dropped after ~60 s.
_KEEPALIVE = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}


class ConnectionLock(Protocol):
    name: str

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        ...

    def alive(self) -> bool:
        """Whether the lock is still ours (a PostgreSQL session can be lost mid-cycle)."""
        ...

    def release(self) -> None: ...


def lock_key(store: Store, name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` within the store's schema."""
    digest = hashlib.sha256(f"kpisync/{store.schema or ''}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PgAdvisoryLock:
    """``pg_try_advisory_lock`` on a dedicated session, held until :meth:`release`."""

    def __init__(self, store: Store, name: str) -> None:
        self.name = name
        self.key = lock_key(store, name)
        self._store = store
        self._conn: sa.Connection | None = None

    def acquire(self) -> bool:
        conn = self._store.engine.connect()
        try:
            for setting, value in _KEEPALIVE.items():
                conn.execute(sa.text(f"SET {setting} = {int(value)}"))
            got = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(self.key))).scalar())
            conn.commit()  # the lock is session-level: it outlives the transaction
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def alive(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1"))
            self._conn.commit()
        except sa.exc.SQLAlchemyError:
            conn, self._conn = self._conn, None
            conn.invalidate()  # the session, and the lock with it, are gone
            conn.close()
            return False
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(self.key)))
            conn.commit()
        except sa.exc.SQLAlchemyError:
            conn.invalidate()  # a lost session holds nothing any more
        finally:
            conn.close()


class FileLock:
    """``flock`` on ``<db>.<name>.lock``; an in-memory SQLite store locks within the process."""

    _memory: ClassVar[dict[str, threading.Lock]] = {}
    _memory_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, store: Store, name: str) -> None:
        self.name = name
        database = store.engine.url.database
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        self.path = Path(f"{database}.{safe}.lock") if database else None
        self._fd: int | None = None
        self._held: threading.Lock | None = None

    def acquire(self) -> bool:
        if self.path is None:
            with self._memory_guard:
                lock = self._memory.setdefault(self.name, threading.Lock())
            if not lock.acquire(blocking=False):
                return False
            self._held = lock
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def alive(self) -> bool:
        return self._fd is not None or self._held is not None

    def release(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def connection_lock(store: Store, name: str) -> ConnectionLock:
    """The right lock for the store's database."""
    if store.dialect == "postgresql":
        return PgAdvisoryLock(store, name)
    return FileLock(store, name)


@contextlib.contextmanager
def _exclusive(store: Store, name: str) -> Iterator[None]:
    """Wait for ``name``'s lock (the blocking form, for short start-up work)."""
    if store.dialect != "postgresql":
        lock = FileLock(store, name)
        if lock.path is None:
            yield
            return
        fd = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
        return
    key = lock_key(store, name)
    with store.engine.connect() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_lock(key)))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
            conn.commit()


def migrate(store: Store) -> None:
    """Migrate the store once even when several processes start together."""
    with _exclusive(store, "(migrate)"):
        store.migrate()
