"""What the workers of one deployment share: job state and per-client limits, kept beside the index.

``uvicorn app.main:app --workers N`` runs N processes over the same index folder. Whatever must look the
same from every worker lives in one SQLite file, ``<index_dir>/.shared/state.sqlite`` (SQLite's locking
makes each read-modify-write one transaction across processes):

- the rebuild job (state, progress, report, a request queued behind it), see ``serve.service.RebuildJobs``;
- the last feed run (``ArticleService.last_feed``);
- the answer rate limit's hits per client (``SharedRateLimiter``): N workers allow the limit, not N times it.

This is a small store for one machine. Workers on several machines need a store they all reach instead —
Redis (``limits``' Redis storage for the rate limit; a key per job) is the usual choice — and the index
folder on shared storage (or Milvus for the index itself).

Example::

    shared = SharedState(Path("index"))
    shared.update("rebuild", lambda job: ({**(job or {}), "state": "running"}, None))
    SharedRateLimiter(shared, per_minute=120).allow("203.0.113.7")   # True
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

SHARED_DIR = ".shared"


class SharedState:
    """JSON values by key, and rate-limit hits, in ``<index_dir>/.shared/state.sqlite``."""

    def __init__(self, index_dir: str | Path):
        self.path = Path(index_dir) / SHARED_DIR / "state.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one connection per process, used by one thread at a time
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS hits (client TEXT NOT NULL, at REAL NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS hits_client ON hits (client, at)")

    def get(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    @contextmanager
    def _transaction(self):
        """One write transaction, exclusive across processes (``BEGIN IMMEDIATE``), rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def update(self, key: str, change: Callable[[Any], tuple[Any, Any]]) -> Any:
        """Apply ``change(current) -> (new value, result)`` as one transaction across processes; returns result."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            value, result = change(json.loads(row[0]) if row else None)
            db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))
        return result

    def hit(self, client: str, limit: int, window: float = 60.0) -> bool:
        """Count a hit of ``client`` unless it already has ``limit`` in the last ``window`` seconds."""
        now = time.time()
        with self._transaction() as db:
            db.execute("DELETE FROM hits WHERE at < ?", (now - window,))
            (count,) = db.execute("SELECT COUNT(*) FROM hits WHERE client = ?", (client,)).fetchone()
            allowed = count < limit
            if allowed:
                db.execute("INSERT INTO hits (client, at) VALUES (?, ?)", (client, now))
        return allowed


class SharedRateLimiter:
    """A sliding one-minute window per client address, counted across every worker of the index;
    ``per_minute <= 0`` disables it."""

    def __init__(self, shared: SharedState, per_minute: int):
        self.shared = shared
        self.per_minute = per_minute

    def allow(self, client: str) -> bool:
        return self.per_minute <= 0 or self.shared.hit(client, self.per_minute)
