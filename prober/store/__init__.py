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
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from prober.model import Incident, ProberError, ProbeResult, iso, utcnow
from prober.store.incidents import (
    INCIDENT_COLUMNS,
    incident_row,
    put_incident,
    replace_incidents,
    stored_incident,
    write_incident,
)
from prober.store.rollup import update_rollups
from prober.store.schema import SCHEMA_VERSION, migrate
from prober.store.screenshots import save_screenshot

log = logging.getLogger("prober.store")
T = TypeVar("T")
# hook(db, row stored before or None for a new incident, the incident as saved, with its id)
IncidentHook = Callable[[sqlite_utils.Database, "dict[str, Any] | None", Incident], None]

RESULT_COLUMNS = (
    "ts", "check_name", "vantage", "region", "surface", "url", "verdict", "reason", "signature", "status",
    "latency_ms", "dns_ms", "connect_ms", "tls_ms", "ttfb_ms", "bytes", "cert_days", "error",
    "browser", "screenshot_id",
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


@dataclass(slots=True)
class _SaveIncident:
    incident: Incident
    future: concurrent.futures.Future[int]


_STOP = object()
DEFAULT_MAX_BACKLOG = 200_000  # results held while writes fail: over 3 minutes at 1,000/s, about 130 MiB
WRITER_BUSY_TIMEOUT = 1.0  # seconds one write waits for a lock before the writer's own retry takes over
CLOSE_TIMEOUT = 30.0  # seconds `close` keeps trying to write what is queued, by default
DROP_LOG_EVERY = 60.0  # seconds between two log lines about dropped results


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What the writer says about itself, for /healthz, /metrics and the log."""

    backlog: int  # results queued, not yet committed
    max_backlog: int
    written: int  # results committed since the store opened
    dropped: int  # results refused because the backlog was full
    unsaved: int  # results given up on (a write that cannot succeed, or the close deadline)
    write_errors: int  # failed write attempts
    last_error: str | None
    failing_since: datetime | None  # the first failed attempt of the current run of failures
    file_problem: str | None  # the database file was deleted or replaced under the open connection

    @property
    def ok(self) -> bool:
        """Whether writes succeed."""
        return self.failing_since is None and self.file_problem is None


class Store:
    """The single writer thread and its queue.

    The queue of results is bounded (`max_backlog`): while the database refuses writes (locked, disk
    full, file deleted) results wait in memory, and once the bound is reached new ones are dropped
    and counted rather than held until the process runs out of memory. Incidents are never dropped.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 1000,
        flush_interval: float = 0.25,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backlog = max_backlog
        self.written = 0  # rows committed, for metrics and tests
        self.dropped = 0
        self.unsaved = 0
        self.unsaved_incidents = 0  # incident changes given up on
        self.write_errors = 0
        self.last_error: str | None = None
        self.failing_since: datetime | None = None
        self._backlog = 0  # results added and not yet written or given up on
        self._count_lock = threading.Lock()  # `add` may be called from several threads
        self._drops_logged = (0, 0.0)  # (dropped, monotonic time) at the last log line about drops
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._incident_ids: dict[tuple[str, datetime], int] = {}  # open incidents saved without an id
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake = threading.Event()  # a call or the stop marker is waiting: write now
        self._deadline: float | None = None  # monotonic time after which failing writes are given up
        self._abandoned = False  # past the deadline with writes failing: the rest is counted, not tried
        self._thread: threading.Thread | None = None
        self._opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        # Rollups are kept in the same transaction as the results they count.
        self._batch_hooks: list[Callable[[sqlite_utils.Database, list[ProbeResult]], None]] = [update_rollups]
        self._incident_hooks: list[IncidentHook] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> Store:
        """Start the writer thread; raises StoreError if the database cannot be opened and migrated."""
        self._thread = threading.Thread(target=self._run, name="prober-store", daemon=True)
        self._thread.start()
        self._opened.result()
        return self

    def close(self, timeout: float | None = CLOSE_TIMEOUT) -> None:
        """Write everything queued, then stop the thread (blocking).

        While writes keep failing, the writer gives up `timeout` seconds from now (None: never) and
        counts what it could not save in `unsaved`; `backlog` is what is still queued if it had to
        be left behind.
        """
        if self._thread is None:
            return
        if timeout is not None:
            self._deadline = time.monotonic() + timeout
        self._queue.put(_STOP)
        self._wake.set()
        # One more attempt may be under way when the deadline passes: it takes a busy timeout at most.
        self._thread.join(None if timeout is None else timeout + WRITER_BUSY_TIMEOUT + 1.0)
        self._thread = None

    async def aclose(self, within: float | None = CLOSE_TIMEOUT) -> None:
        """`close` without blocking the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.close, within)

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def add(self, result: ProbeResult) -> bool:
        """Queue one result for writing; never blocks, and does not wake the writer (see `_loop`).

        Returns False, and counts the result as dropped, when the backlog is full.
        """
        with self._count_lock:
            if self._backlog >= self.max_backlog:
                self.dropped += 1
                dropped = self.dropped
            else:
                self._backlog += 1
                dropped = 0
        if not dropped:
            self._queue.put(result)
            return True
        last, at = self._drops_logged
        if dropped == 1 or time.monotonic() - at >= DROP_LOG_EVERY:
            self._drops_logged = (dropped, time.monotonic())
            log.error("results dropped: %d queued already (%s); %d more dropped, %d in all", self.max_backlog,
                      self.last_error or "the writer is behind", dropped - last, dropped)  # fmt: skip
        return False

    @property
    def backlog(self) -> int:
        """Results queued and not yet written (or given up on)."""
        return self._backlog

    def health(self) -> StoreHealth:
        """The writer's figures now, and whether the path still names the open file (a stat: cheap)."""
        return StoreHealth(
            backlog=self._backlog, max_backlog=self.max_backlog, written=self.written, dropped=self.dropped,
            unsaved=self.unsaved, write_errors=self.write_errors, last_error=self.last_error,
            failing_since=self.failing_since, file_problem=self.file_problem(),
        )  # fmt: skip

    def file_problem(self) -> str | None:
        """Why the path no longer names the database file opened (deleted, replaced), or None."""
        if self._identity is None:
            return None
        if self._thread is not None and not self._thread.is_alive():  # not closed, yet gone
            return f"{self.path}: the writer thread stopped; nothing is written any more"
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"{self.path}: the database file was deleted while prober had it open"
        except OSError as exc:
            return f"{self.path}: cannot check the database file ({exc.strerror or exc})"
        if (st.st_dev, st.st_ino) != self._identity:
            return f"{self.path}: the database file was replaced by another file while prober had it open"
        return None

    @property
    def batch_hooks(self) -> tuple[Callable[[sqlite_utils.Database, list[ProbeResult]], None], ...]:
        """What runs inside each batch's transaction: a writer of its own (prober.agents) runs them too."""
        return tuple(self._batch_hooks)

    def add_batch_hook(self, hook: Callable[[sqlite_utils.Database, list[ProbeResult]], None]) -> None:
        """Run `hook(db, results)` in the writer thread inside each batch's transaction."""
        self._batch_hooks.append(hook)

    def add_incident_hook(self, hook: IncidentHook) -> None:
        """Run `hook(db, before, incident)` in the writer thread inside each incident change's transaction.

        What the hook writes commits or fails with the incident (the alert outbox, say). A database
        error in a hook fails the whole change, which is retried like any write; any other error is
        logged and undoes only that hook's writes. Rebuilt incidents (`replace_incidents`) run no hooks.
        """
        self._incident_hooks.append(hook)

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
        """Insert or update an incident after the results queued before it; the future gives its id.

        Nobody needs to wait for it: an incident saved again without its id (it was not known yet)
        updates the row saved first for the same check and start. A failing write is retried like
        results are.
        """
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._queue.put(_SaveIncident(incident, future))
        self._wake.set()
        return future

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            db = connect(self.path, timeout=WRITER_BUSY_TIMEOUT)
            migrate(db)
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino)
        except (ProberError, sqlite3.Error, OSError) as exc:
            message = describe(self.path, exc) if isinstance(exc, sqlite3.Error) else str(exc)
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
            stopping = self._drain(db)
        self._drain(db)  # whatever was queued after the stop marker is written too
        if self.unsaved:
            log.error("%d results could not be saved (%s)", self.unsaved, self.last_error)

    def _drain(self, db: sqlite_utils.Database) -> bool:
        """Write what is queued now, in order; whether the stop marker was among it."""
        batch: list[ProbeResult] = []
        stopping = False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stopping = True
            elif isinstance(item, ProbeResult):
                batch.append(item)
                if len(batch) >= self.batch_size:
                    self._write(db, batch)
                    batch = []
            else:  # the results queued before a call or an incident are written before it
                if batch:
                    self._write(db, batch)
                    batch = []
                if isinstance(item, _Call):
                    self._run_call(db, item)
                else:
                    self._save_incident(db, item)
        if batch:
            self._write(db, batch)
        return stopping

    def _write(self, db: sqlite_utils.Database, batch: list[ProbeResult]) -> None:
        rows = [_ROW(r.to_row()) for r in batch]

        def insert() -> None:
            with db.conn:
                # Screenshots first, in the same transaction: each result row then names its own.
                saved = batch
                if any(r.screenshot is not None for r in batch):
                    saved = [save_screenshot(db, r) if r.screenshot is not None else r for r in batch]
                db.conn.executemany(_INSERT, rows if saved is batch else [_ROW(r.to_row()) for r in saved])
                for hook in self._batch_hooks:
                    hook(db, saved)

        written = self._commit(insert, f"{len(rows)} results")
        with self._count_lock:
            self._backlog -= len(rows)
        if written:
            self.written += len(rows)
            return
        self.unsaved += len(rows)
        if not self._abandoned:  # past the close deadline, `_loop` sums them up in one line
            first, last = min(r.ts for r in batch), max(r.ts for r in batch)
            log.error("gave up on %d results from %s to %s", len(rows), iso(first), iso(last))

    def _save_incident(self, db: sqlite_utils.Database, item: _SaveIncident) -> None:
        if not item.future.set_running_or_notify_cancel():
            return
        incident = item.incident
        key = (incident.check, incident.started_at)
        if incident.id is None and key in self._incident_ids:
            incident = replace(incident, id=self._incident_ids[key])
        saved: list[int] = []
        what = f"the incident of {incident.check}"

        def work() -> None:
            saved.clear()  # a retried attempt: the rolled-back one's id is void
            with db.conn:  # one transaction: the incident and whatever its hooks write
                before = stored_incident(db, incident.id) if self._incident_hooks else None
                saved.append(put_incident(db, incident))
                for hook in self._incident_hooks:
                    self._run_incident_hook(db, hook, before, replace(incident, id=saved[-1]))

        if not self._commit(work, what):
            self.unsaved_incidents += 1
            log.error("gave up on saving an incident: %s", json.dumps(incident_row(incident)))
            item.future.set_exception(StoreError(f"{what} was not saved: {self.last_error}"))
            return
        if incident.resolved_at is None:
            self._incident_ids[key] = saved[-1]
        else:
            self._incident_ids.pop(key, None)  # final: nothing will update it without its id
        item.future.set_result(saved[-1])

    @staticmethod
    def _run_incident_hook(
        db: sqlite_utils.Database, hook: IncidentHook, before: dict[str, Any] | None, incident: Incident
    ) -> None:
        # A savepoint: a hook's bug undoes its own writes and is logged, and the incident is saved
        # anyway; a database error (locked, disk full) fails the whole change, which is retried.
        db.conn.execute("SAVEPOINT incident_hook")
        try:
            hook(db, before, incident)
        except sqlite3.Error:
            raise
        except Exception:
            db.conn.execute("ROLLBACK TO incident_hook")
            log.exception("an incident hook failed; the incident of %s is saved without it", incident.check)
        db.conn.execute("RELEASE incident_hook")

    def _commit(self, work: Callable[[], None], what: str) -> bool:
        """Run `work` (one transaction) until it succeeds; False if it had to be given up.

        Transient failures (locked, busy, disk full, I/O) are retried with a growing pause; the
        database file deleted or replaced under the connection counts as a failure (what would be
        written into the unlinked file is lost). Past the close deadline, or for an error that no
        retry can fix (a corrupt file), the work is given up.
        """
        delay = 0.05
        while not self._abandoned:
            problem = self.file_problem()
            try:
                if problem is None:
                    work()
                    self._recovered()
                    return True
                error = problem
                transient = True
            except sqlite3.OperationalError as exc:
                error, transient = describe(self.path, exc), True
            except sqlite3.Error as exc:
                error, transient = describe(self.path, exc), False
            except MemoryError:  # another thread's doing, most likely (a huge file being loaded): it passes
                error, transient = "out of memory", True
            except Exception as exc:  # a bug (in a batch hook, say) must not end the writer thread
                log.exception("writing %s failed", what)
                error, transient = f"{type(exc).__name__}: {exc}", False
            self.write_errors += 1
            self.last_error = error
            if self.failing_since is None:
                self.failing_since = utcnow()
                log.warning("cannot write %s: %s; keeping them queued and retrying", what, error)
            if not transient:
                return False
            # Closing: wait for a lock or for space up to the deadline, but not for a deleted file.
            if self._deadline is not None and (time.monotonic() >= self._deadline or problem is not None):
                self._abandoned = True
                log.error("stopping: the database still refuses writes (%s)", error)
                break
            if self._deadline is not None:
                delay = min(delay, max(0.0, self._deadline - time.monotonic()))
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        return False

    def _recovered(self) -> None:
        if self.failing_since is not None:
            log.warning("the database takes writes again, after failing for %.0fs (%d results queued)",
                        (utcnow() - self.failing_since).total_seconds(), self._backlog)  # fmt: skip
            self.failing_since = None

    def _run_call(self, db: sqlite_utils.Database, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        if self._abandoned:
            call.future.set_exception(StoreError(f"{self.path}: closed while writes were failing"))
            return
        try:
            call.future.set_result(call.fn(db))
        except BaseException as exc:  # handed to the awaiting coroutine, which decides
            call.future.set_exception(exc)


__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "INCIDENT_COLUMNS",
    "SCHEMA_VERSION",
    "IncidentHook",
    "Store",
    "StoreError",
    "StoreHealth",
    "connect",
    "describe",
    "incident_row",
    "replace_incidents",
    "write_incident",
]
