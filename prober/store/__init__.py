"""The only package that touches SQLite. `Store` is the single writer: one thread, fed by a queue.

Probes hand results to `Store.add` without blocking the event loop; the writer thread owns the
one write connection (sqlite3 connections belong to the thread that made them), batches rows
into one transaction, and retries a locked database instead of dropping what it holds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import operator
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from prober.model import Incident, ProberError, ProbeResult, iso
from prober.store.rollup import update_rollups
from prober.store.schema import SCHEMA_VERSION, migrate

log = logging.getLogger("prober.store")
T = TypeVar("T")

RESULT_COLUMNS = (
    "ts", "check_name", "vantage", "region", "surface", "url", "verdict", "reason", "signature", "status",
    "latency_ms", "dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "bytes", "cert_days", "error",
)  # fmt: skip
_ROW = operator.itemgetter(*RESULT_COLUMNS)  # a row dict -> the tuple in column order, in C
_INSERT = f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) VALUES ({', '.join('?' * len(RESULT_COLUMNS))})"


class StoreError(ProberError):
    """The database cannot be opened or written."""


def connect(path: str | Path, *, readonly: bool = False, timeout: float = 5.0) -> sqlite_utils.Database:
    """Open the database in the calling thread (WAL, a busy timeout), translating errors into StoreError."""
    target = Path(path)
    try:
        if readonly:
            if not target.exists():
                raise StoreError(f"{target}: no such database")
            conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=timeout)
        else:
            conn = sqlite3.connect(target, timeout=timeout)
        db = sqlite_utils.Database(conn)
        if not readonly:
            db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            db.enable_wal()
            db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses no committed row
        return db
    except sqlite3.Error as exc:
        raise StoreError(describe(target, exc)) from exc


def describe(path: Path, exc: sqlite3.Error) -> str:
    """A one-line explanation of a SQLite error for this database file."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"{path}: database is locked by another process ({text})"
    if "readonly" in text or "read-only" in text:
        return f"{path}: database is read-only ({text}); check the file's and its folder's permissions"
    if "unable to open" in text:
        return f"{path}: cannot open database ({text}); does the folder exist and is it writable?"
    if "not a database" in text:
        return f"{path}: not a SQLite database ({text})"
    return f"{path}: {text}"


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite_utils.Database], Any]
    future: concurrent.futures.Future[Any]


_STOP = object()


class Store:
    """The single writer thread and its queue."""

    def __init__(self, path: str | Path, *, batch_size: int = 1000, flush_interval: float = 0.25) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.written = 0  # rows committed, for metrics and tests
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake = threading.Event()  # a call or the stop marker is waiting: write now
        self._thread: threading.Thread | None = None
        self._opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        # Rollups are kept in the same transaction as the results they count.
        self._batch_hooks: list[Callable[[sqlite_utils.Database, list[ProbeResult]], None]] = [update_rollups]

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> Store:
        """Start the writer thread; raises StoreError if the database cannot be opened and migrated."""
        self._thread = threading.Thread(target=self._run, name="prober-store", daemon=True)
        self._thread.start()
        self._opened.result()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, then stop the thread (blocking)."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    async def aclose(self) -> None:
        """`close` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def add(self, result: ProbeResult) -> None:
        """Queue one result for writing; never blocks, and does not wake the writer (see `_loop`)."""
        self._queue.put(result)

    def add_batch_hook(self, hook: Callable[[sqlite_utils.Database, list[ProbeResult]], None]) -> None:
        """Run `hook(db, results)` in the writer thread inside each batch's transaction."""
        self._batch_hooks.append(hook)

    def submit(self, fn: Callable[[sqlite_utils.Database], T]) -> concurrent.futures.Future[T]:
        """Run `fn(db)` in the writer thread after the results queued before it are written."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Call(fn, future))
        self._wake.set()
        return future

    async def call(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Await `fn(db)` run in the writer thread."""
        return await asyncio.wrap_future(self.submit(fn))

    async def flush(self) -> None:
        """Wait until every result queued so far is committed."""
        await self.call(lambda db: None)

    def save_incident(self, incident: Incident) -> concurrent.futures.Future[int]:
        """Insert or update an incident; the future gives its id."""
        return self.submit(lambda db: write_incident(db, incident))

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            db = connect(self.path)
            migrate(db)
        except (ProberError, sqlite3.Error) as exc:
            message = str(exc) if isinstance(exc, ProberError) else describe(self.path, exc)
            self._opened.set_exception(StoreError(message))
            return
        self._opened.set_result(None)
        try:
            self._loop(db)
        finally:
            db.conn.close()

    def _loop(self, db: sqlite_utils.Database) -> None:
        # Results do not wake the writer: it takes what has arrived once per flush interval, one
        # transaction per `batch_size` rows. Waking it for each result (a thread switch and a
        # hand-over of the GIL, a thousand times a second) cost about as much CPU as the writing.
        # A call (`submit`, `flush`, an incident to save) or the stop marker wakes it at once.
        stopping = False
        while not stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            batch: list[ProbeResult] = []
            while not stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                elif isinstance(item, _Call):
                    if batch:  # the results queued before a call are written before it runs
                        self._write(db, batch, give_up=False)
                        batch = []
                    self._run_call(db, item)
                else:
                    batch.append(item)
                    if len(batch) >= self.batch_size:
                        self._write(db, batch, give_up=False)
                        batch = []
            if batch:
                self._write(db, batch, give_up=stopping)
        # Whatever was queued after the stop marker is written too: nothing queued is lost.
        leftovers: list[ProbeResult] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Call):
                self._run_call(db, item)
            elif item is not _STOP:
                leftovers.append(item)
        if leftovers:
            self._write(db, leftovers, give_up=True)

    def _write(self, db: sqlite_utils.Database, batch: list[ProbeResult], *, give_up: bool) -> None:
        rows = [_ROW(r.to_row()) for r in batch]
        delay = 0.05
        attempts = 0
        while True:
            try:
                with db.conn:
                    db.conn.executemany(_INSERT, rows)
                    for hook in self._batch_hooks:
                        hook(db, batch)
                self.written += len(rows)
                return
            except sqlite3.OperationalError as exc:
                attempts += 1
                # Locked or busy: keep the batch and try again rather than lose results.
                log.warning(
                    "cannot write %d results (attempt %d): %s", len(rows), attempts, describe(self.path, exc)
                )
                if give_up and attempts >= 20:
                    log.error("giving up on %d results after %d attempts", len(rows), attempts)
                    dump_results(batch)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _run_call(self, db: sqlite_utils.Database, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            call.future.set_result(call.fn(db))
        except BaseException as exc:  # handed to the awaiting coroutine, which decides
            call.future.set_exception(exc)


def dump_results(results: Iterable[ProbeResult]) -> None:
    """Last resort when the database refuses writes at shutdown: log every result as JSON."""
    for result in results:
        log.error("unsaved result: %s", json.dumps(result.to_json()))


INCIDENT_COLUMNS = ("check_name", "state", "reason", "signature", "started_at", "detected_at",
                    "resolved_at", "vantages", "regions")  # fmt: skip


def incident_row(incident: Incident) -> dict[str, Any]:
    """The `incidents` row of an incident, without its id."""
    return {
        "check_name": incident.check,
        "state": str(incident.state),
        "reason": None if incident.reason is None else str(incident.reason),
        "signature": incident.signature,
        "started_at": iso(incident.started_at),
        "detected_at": iso(incident.detected_at),
        "resolved_at": None if incident.resolved_at is None else iso(incident.resolved_at),
        "vantages": json.dumps(list(incident.vantages)),
        "regions": json.dumps(list(incident.regions)),
    }


def write_incident(db: sqlite_utils.Database, incident: Incident) -> int:
    """Insert an incident (id None) or update it in place; returns its id."""
    row = incident_row(incident)
    with db.conn:
        if incident.id is None:
            cursor = db.conn.execute(
                f"INSERT INTO incidents ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            return int(cursor.lastrowid or 0)
        db.conn.execute(
            f"UPDATE incidents SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
            (*row.values(), incident.id),
        )
        return incident.id


def replace_incidents(
    db: sqlite_utils.Database, checks: Iterable[str], rebuilt: Iterable[Incident]
) -> dict[str, int]:
    """Replace the incidents of `checks` by `rebuilt`, in one transaction; counts of what changed.

    An incident rebuilt with the same check and start as a stored one keeps the stored id, so links to
    it stay valid. Incidents of other checks are left alone. Returns {"kept_ids", "new", "removed"}.
    """
    names = sorted(set(checks))
    marks = ", ".join("?" * len(names))
    columns = ("id", *INCIDENT_COLUMNS)
    insert = f"INSERT INTO incidents ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    with db.conn:  # one transaction: readers see the old incidents or the new ones, never a mix
        old = db.execute(
            f"SELECT check_name, started_at, id FROM incidents WHERE check_name IN ({marks})", names
        )
        ids = {(check, started): incident_id for check, started, incident_id in old.fetchall()}
        db.conn.execute(f"DELETE FROM incidents WHERE check_name IN ({marks})", names)
        kept: list[tuple[Any, ...]] = []
        new: list[tuple[Any, ...]] = []
        for incident in rebuilt:
            row = incident_row(incident)
            incident_id = ids.pop((row["check_name"], row["started_at"]), None)
            (new if incident_id is None else kept).append((incident_id, *row.values()))
        # Kept ids first: a fresh id never takes one that is still in use.
        db.conn.executemany(insert, kept)
        db.conn.executemany(insert, new)
    return {"kept_ids": len(kept), "new": len(new), "removed": len(ids)}


__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "connect",
    "incident_row",
    "replace_incidents",
    "write_incident",
]
