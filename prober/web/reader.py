"""The reader threads of the web app: read-only SQLite connections, one per thread, off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from prober.store import connect

T = TypeVar("T")
log = logging.getLogger("prober.web")


class ReadPool:
    """A few threads running read-only queries, each on its own connection (sqlite3 connections
    belong to the thread that made them); started on first use, closed with their connections."""

    def __init__(self, path: Path, workers: int = 4) -> None:
        self.path = path
        self.workers = workers
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[sqlite_utils.Database], Any], concurrent.futures.Future[Any]] | None
        ]
        self._jobs = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Await `fn(db)` run in a reader thread."""
        with self._lock:
            if not self._threads:
                for n in range(self.workers):
                    thread = threading.Thread(target=self._work, name=f"prober-web-{n}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return await asyncio.wrap_future(future)

    def spawn(self, fn: Callable[[sqlite_utils.Database], Any]) -> None:
        """Run `fn(db)` in a reader thread without waiting for it (errors are logged)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.add_done_callback(_log_failure)
        self._jobs.put((fn, future))

    def _work(self) -> None:
        db: sqlite_utils.Database | None = None
        try:
            while (job := self._jobs.get()) is not None:
                fn, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    if db is None:
                        db = connect(self.path, readonly=True)
                    future.set_result(fn(db))
                except BaseException as exc:  # handed to the awaiting handler
                    future.set_exception(exc)
                    if isinstance(exc, sqlite3.Error) and db is not None:
                        db.conn.close()  # a fresh connection next time (the file may have been replaced)
                        db = None
        finally:
            if db is not None:
                db.conn.close()

    def close(self) -> None:
        """Stop the threads and close their connections (blocking)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join()


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("background read failed: %s", exc)
