"""The desired-state store: SQLite in WAL mode in the state dir.

Where it sits: the daemon is its one writer; the CLI opens it read-only (WAL
lets readers run beside the writer), so ``get``/``describe``/``history`` work
whether or not the daemon runs.

Tables:
  meta         key/value: lastAppliedRevision, lastAttemptedRevision, the
               Ready condition, source and runtime descriptions, allocations
  revisions    one row per synced commit: sha, author, time, subject, result
               (applied / rejected / reverted by ...), error, objects declared,
               changes (the plan)
  desired      the objects of the applied revision, as loaded from git, with
               their source file and line
  cluster      the live objects (Kubernetes-shaped, with metadata and status):
               what git declares plus what controllers made (ReplicaSets of a
               Deployment, Pods, Endpoints, Service views)
  events       Kubernetes-style events, bounded
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from .cluster import key_of
from .errors import StoreError
from .types import Key

DB_FILE = "gitship.db"
MAX_EVENTS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revisions(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  sha TEXT NOT NULL, author TEXT, email TEXT, time REAL, subject TEXT,
  synced_at REAL, result TEXT, error TEXT, objects TEXT, changes TEXT, reverted_by TEXT);
CREATE INDEX IF NOT EXISTS revisions_sha ON revisions(sha);
CREATE TABLE IF NOT EXISTS desired(
  kind TEXT, namespace TEXT, name TEXT, body TEXT NOT NULL, file TEXT, line INTEGER,
  PRIMARY KEY(kind, namespace, name));
CREATE TABLE IF NOT EXISTS cluster(
  kind TEXT, namespace TEXT, name TEXT, body TEXT NOT NULL,
  PRIMARY KEY(kind, namespace, name));
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, type TEXT, reason TEXT,
  kind TEXT, namespace TEXT, name TEXT, message TEXT, reconcile_id TEXT, revision TEXT);
CREATE INDEX IF NOT EXISTS events_obj ON events(kind, namespace, name);
"""


# The store holds Secrets (their base64 data, as the API server's etcd does): readable by its
# owner only. SQLite creates the -wal and -shm files with the mode of the database file.
FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm")


def db_path(state_dir: str) -> str:
    return os.path.join(state_dir, DB_FILE)


def owner_only(path: str) -> None:
    """Create the database file readable by its owner only, and take group and other access
    from it and its WAL/SHM files when they exist (a store made before this rule)."""
    # No open()/close() of a database file a connection may hold: closing any descriptor of it drops this
    # process's POSIX locks, and another process closing its connection would then delete the WAL under ours.
    if not os.path.exists(path):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    elif os.stat(path).st_mode & 0o777 != FILE_MODE:
        os.chmod(path, FILE_MODE)
    for suffix in SIDE_FILES:
        try:
            os.chmod(path + suffix, FILE_MODE)
        except FileNotFoundError:
            pass


class Store:
    """A thin typed layer over the SQLite file. Not thread-safe: one per thread."""

    def __init__(self, state_dir: str, readonly: bool = False):
        self.path = db_path(state_dir)
        self.readonly = readonly
        try:
            if readonly:
                if not os.path.exists(self.path):
                    raise StoreError(f"no gitship state in {state_dir} (has `gitship up` run with this --state-dir?)")
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            else:
                os.makedirs(state_dir, exist_ok=True)
                owner_only(self.path)
                self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(_SCHEMA)
                owner_only(self.path)  # the WAL and SHM files the connection just made
        except OSError as e:
            raise StoreError(f"cannot open the store {self.path}: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the store {self.path}: {e}") from e

    def close(self) -> None:
        self.db.close()

    def integrity_ok(self) -> bool:
        row = self.db.execute("PRAGMA integrity_check").fetchone()
        return bool(row and row[0] == "ok")

    # -- meta -------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, **values: Any) -> None:
        with self._tx():
            for k, v in values.items():
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (k, json.dumps(v)))

    # -- revisions ----------------------------------------------------------
    def add_revision(
        self, rev: dict[str, Any], result: str, error: Any = None, objects: Iterable[Key] = (), changes: Any = None
    ) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO revisions(sha, author, email, time, subject, synced_at, result, error, objects, changes)"
                " VALUES(?,?,?,?,?,?,?,?,?,?)",
                (
                    rev["sha"],
                    rev.get("author"),
                    rev.get("email"),
                    rev.get("time"),
                    rev.get("subject"),
                    time.time(),
                    result,
                    json.dumps(error) if error is not None else None,
                    json.dumps([list(k) for k in objects]),
                    json.dumps(changes) if changes is not None else None,
                ),
            )

    def mark_reverted(self, sha: str, by: str) -> None:
        with self._tx():
            self.db.execute("UPDATE revisions SET reverted_by=? WHERE sha=?", (by, sha))

    def revisions(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT sha, author, email, time, subject, synced_at, result, error, objects, changes, reverted_by"
            " FROM revisions ORDER BY seq DESC LIMIT ?",
            (limit,),
        ).fetchall()
        out = []
        for r in rows:
            out.append(
                {
                    "sha": r[0],
                    "author": r[1],
                    "email": r[2],
                    "time": r[3],
                    "subject": r[4],
                    "syncedAt": r[5],
                    "result": r[6],
                    "error": json.loads(r[7]) if r[7] else None,
                    "objects": json.loads(r[8] or "[]"),
                    "changes": json.loads(r[9]) if r[9] else None,
                    "revertedBy": r[10],
                }
            )
        return out

    def revision_seen(self, sha: str) -> bool:
        return self.db.execute("SELECT 1 FROM revisions WHERE sha=?", (sha,)).fetchone() is not None

    # -- desired ------------------------------------------------------------
    def update_desired(self, upserts: Iterable[tuple[dict[str, Any], str, int]], deletes: Iterable[Key]) -> None:
        """Change only what a plan changed: a one-object commit writes one row."""
        with self._tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO desired(kind, namespace, name, body, file, line) VALUES(?,?,?,?,?,?)",
                ((*key_of(o), json.dumps(o), f, ln) for o, f, ln in upserts),
            )
            self.db.executemany("DELETE FROM desired WHERE kind=? AND namespace=? AND name=?", list(deletes))

    def desired(self) -> dict[Key, dict[str, Any]]:
        return {
            (r[0], r[1], r[2]): json.loads(r[3])
            for r in self.db.execute("SELECT kind, namespace, name, body FROM desired")
        }

    def desired_sources(self) -> dict[Key, tuple[str, int]]:
        return {
            (r[0], r[1], r[2]): (r[3], r[4])
            for r in self.db.execute("SELECT kind, namespace, name, file, line FROM desired")
        }

    # -- cluster (live objects) ------------------------------------------------
    def write_cluster(self, upserts: Iterable[dict[str, Any]], deletes: Iterable[Key]) -> None:
        with self._tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO cluster(kind, namespace, name, body) VALUES(?,?,?,?)",
                ((*key_of(o), json.dumps(o)) for o in upserts),
            )
            self.db.executemany("DELETE FROM cluster WHERE kind=? AND namespace=? AND name=?", list(deletes))

    def cluster(self, kind: str | None = None, namespace: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT body FROM cluster WHERE 1=1", []
        if kind:
            q += " AND kind=?"
            args.append(kind)
        if namespace:
            q += " AND namespace=?"
            args.append(namespace)
        q += " ORDER BY namespace, name"
        return [json.loads(r[0]) for r in self.db.execute(q, args)]

    def kind_counts(self) -> dict[str, int]:
        """How many live objects of each kind the store holds."""
        return {str(k): int(n) for k, n in self.db.execute("SELECT kind, COUNT(*) FROM cluster GROUP BY kind")}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT body FROM cluster WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
        ).fetchone()
        return json.loads(row[0]) if row else None

    # -- events -----------------------------------------------------------------
    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        rows = [
            (
                e.get("time", time.time()),
                e["type"],
                e["reason"],
                e["kind"],
                e["namespace"],
                e["name"],
                e["message"],
                e.get("reconcile_id"),
                e.get("revision"),
            )
            for e in events
        ]
        if not rows:
            return
        with self._tx():
            self.db.executemany(
                "INSERT INTO events(time, type, reason, kind, namespace, name, message, reconcile_id, revision)"
                " VALUES(?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self.db.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (MAX_EVENTS,))

    def events(
        self, kind: str | None = None, namespace: str | None = None, name: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        q = "SELECT time, type, reason, kind, namespace, name, message, reconcile_id, revision FROM events WHERE 1=1"
        args: list[object] = []
        for col, val in (("kind", kind), ("namespace", namespace), ("name", name)):
            if val is not None:
                q += f" AND {col}=?"
                args.append(val)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        rows = self.db.execute(q, args).fetchall()
        return [
            {
                "time": r[0],
                "type": r[1],
                "reason": r[2],
                "kind": r[3],
                "namespace": r[4],
                "name": r[5],
                "message": r[6],
                "reconcile_id": r[7],
                "revision": r[8],
            }
            for r in reversed(rows)
        ]

    # -- transactions -------------------------------------------------------------
    def _tx(self) -> "_Tx":
        return _Tx(self.db)


class _Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
