"""The single writer: WAL, batching, migrations, locked and read-only databases, nothing dropped."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from prober.model import Incident, ProbeResult, Reason, State, Surface, Verdict
from prober.store import SCHEMA_VERSION, Store, StoreError
from prober.store import read as q

T0 = datetime(2022, 12, 28, 13, 50, tzinfo=UTC)


def result(i: int, check: str = "web", verdict: Verdict = Verdict.UP) -> ProbeResult:
    return ProbeResult(
        ts=T0 + timedelta(seconds=i), check=check, vantage="us", region="US", surface=Surface.WEB,
        url="https://x.test/", verdict=verdict, reason=None if verdict == Verdict.UP else Reason.ERROR_PAGE,
        status=200, latency_ms=12.5, bytes=100,
    )  # fmt: skip


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM results").fetchone()[0])


def test_creates_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with Store(path):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"results", "incidents"} <= tables
    assert "results_check_ts" in indexes


def test_batches_everything_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with Store(path, batch_size=100) as store:
        for i in range(1050):
            store.add(result(i))
    assert count(path) == 1050
    assert store.written == 1050
    with Store(path) as store:
        got = store.submit(lambda db: q.results(db, check="web", limit=3)).result()
    assert got[0] == result(0)


def test_reopening_keeps_data_and_migrates_only_once(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    for n in range(3):
        with Store(path) as store:
            store.add(result(n))
    assert count(path) == 3


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(StoreError, match="newer than this prober"):
        Store(path).open()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store(path).open()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with Store(path):
        pass
    path.chmod(0o444)
    with pytest.raises(StoreError, match="read-only"):
        Store(path).open()


def test_read_only_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Store(tmp_path / "missing" / "p.db").open()


def test_locked_database_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="prober.store")
    path = tmp_path / "p.db"
    store = Store(path, batch_size=10, flush_interval=0.05).open()
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    store.submit(lambda db: db.execute("PRAGMA busy_timeout = 50")).result()  # fail fast, retry
    for i in range(25):
        store.add(result(i))
    deadline = time.monotonic() + 10
    while "cannot write" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "locked" in caplog.text
    assert count(path) == 0
    blocker.execute("COMMIT")
    blocker.close()
    store.close(timeout=10)
    assert count(path) == 25


def test_incidents_insert_update_and_read_back(tmp_path: Path) -> None:
    incident = Incident(
        check="web", state=State.PARTIAL_OUTAGE, reason=Reason.ERROR_PAGE, signature="x-fret",
        started_at=T0, detected_at=T0 + timedelta(minutes=1), vantages=("us",), regions=("US",),
    )  # fmt: skip
    with Store(tmp_path / "p.db") as store:
        first = store.save_incident(incident).result()
        assert store.submit(q.open_incidents).result()[0].id == first
        worse = replace(incident, id=first, state=State.MAJOR_OUTAGE, resolved_at=T0 + timedelta(minutes=40))
        assert store.save_incident(worse).result() == first
        assert store.submit(q.open_incidents).result() == []
        (back,) = store.submit(lambda db: q.incidents(db, check="web")).result()
    assert back == worse


def test_writes_from_many_threads_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with Store(path, batch_size=50) as store:
        threads = [threading.Thread(target=lambda k=k: [store.add(result(k * 1000 + i)) for i in range(200)])
                   for k in range(4)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert count(path) == 800


def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(0.02)


def exclusive_lock(path: Path) -> sqlite3.Connection:
    """Another connection holding the database with BEGIN EXCLUSIVE (as a backup tool or a migration)."""
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    return blocker


def outage(state: State = State.PARTIAL_OUTAGE, resolved: datetime | None = None) -> Incident:
    return Incident(
        check="web", state=state, reason=Reason.ERROR_PAGE, signature=None, started_at=T0,
        detected_at=T0 + timedelta(minutes=1), resolved_at=resolved, vantages=("us",), regions=("US",),
    )  # fmt: skip


def test_an_incident_saved_again_before_its_id_is_known_updates_its_row(tmp_path: Path) -> None:
    """The daemon does not wait for the id of a new incident: its next saves come without one."""
    with Store(tmp_path / "p.db") as store:
        saved = [
            store.save_incident(outage()),
            store.save_incident(outage(State.MAJOR_OUTAGE)),
            store.save_incident(outage(State.MAJOR_OUTAGE, resolved=T0 + timedelta(minutes=9))),
        ]
        later = store.save_incident(replace(outage(), started_at=T0 + timedelta(hours=1)))  # another one
        ids = {f.result(timeout=10) for f in saved}
        assert len(ids) == 1 and later.result(timeout=10) not in ids
        back = store.submit(lambda db: q.incidents(db, check="web")).result()
    assert [(i.state, i.resolved_at) for i in back] == [
        (State.MAJOR_OUTAGE, T0 + timedelta(minutes=9)),
        (State.PARTIAL_OUTAGE, None),
    ]


def test_a_locked_database_keeps_results_and_incidents_in_order_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    store = Store(path, flush_interval=0.05).open()
    blocker = exclusive_lock(path)
    try:
        for i in range(10):
            store.add(result(i, verdict=Verdict.DOWN))
        started = time.monotonic()
        saved = store.save_incident(outage())  # queued, never awaited by whoever saves it
        assert time.monotonic() - started < 0.1
        until(lambda: not store.health().ok, 10, "the writer to notice the lock")
        health = store.health()
        assert health.backlog == 10 and health.write_errors >= 1 and health.failing_since is not None
        assert health.last_error is not None and "locked" in health.last_error
        assert not saved.done()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert saved.result(timeout=10) >= 1
    until(lambda: store.health().ok and store.backlog == 0, 10, "the backlog to be written")
    store.close()
    assert count(path) == 10 and store.health().unsaved == 0


def test_the_backlog_is_bounded_and_what_is_dropped_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="prober.store")  # whatever another test set the root to
    path = tmp_path / "p.db"
    store = Store(path, flush_interval=0.05, max_backlog=50).open()
    blocker = exclusive_lock(path)
    try:
        kept = [store.add(result(i)) for i in range(80)]
        assert kept == [True] * 50 + [False] * 30
        health = store.health()
        assert (health.backlog, health.dropped, health.max_backlog) == (50, 30, 50)
        assert "results dropped" in caplog.text
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.close()
    assert count(path) == 50


def test_close_gives_up_on_a_locked_database_within_its_deadline_and_counts_the_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="prober.store")  # whatever another test set the root to
    path = tmp_path / "p.db"
    store = Store(path, flush_interval=0.05).open()
    blocker = exclusive_lock(path)
    try:
        for i in range(25):
            store.add(result(i))
        started = time.monotonic()
        store.close(timeout=1.0)
        assert time.monotonic() - started < 4.0  # the deadline, one last attempt, the join
        health = store.health()
        assert health.unsaved + health.backlog == 25 and health.written == 0
        assert "25 results could not be saved" in caplog.text
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert count(path) == 0


def test_a_full_disk_is_a_write_failure(tmp_path: Path) -> None:
    """SQLITE_FULL, made honestly: the writer's connection may not grow the file past its size now."""
    path = tmp_path / "p.db"
    store = Store(path, flush_interval=0.05).open()
    pages = store.submit(lambda db: db.execute("PRAGMA page_count").fetchone()[0]).result()
    store.submit(lambda db: db.execute(f"PRAGMA max_page_count = {pages}")).result()
    for i in range(2000):
        store.add(result(i))
    until(lambda: not store.health().ok, 10, "the writes to fail")
    health = store.health()
    assert health.last_error is not None and "full" in health.last_error, health
    assert health.backlog == 2000 and health.written == 0
    store.close(timeout=0.5)
    assert store.health().unsaved + store.health().backlog == 2000


def test_a_deleted_database_file_is_a_failure_not_a_silent_loss(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    store = Store(path, flush_interval=0.05).open()
    store.add(result(0))
    store.submit(lambda db: None).result()
    assert store.health().ok and store.written == 1
    path.unlink()  # the connection still writes into the unlinked file: everything would be lost
    assert store.health().file_problem is not None and "deleted" in store.health().file_problem
    assert not store.health().ok
    for i in range(1, 6):
        store.add(result(i))
    until(lambda: store.health().write_errors > 0, 10, "the writer to refuse the deleted file")
    assert store.health().backlog == 5 and store.written == 1
    path.write_bytes(b"")  # another file at the same path is not the database either
    assert "replaced" in (store.health().file_problem or "")
    store.close(timeout=0.5)
    assert store.health().unsaved + store.health().backlog == 5


def test_browser_evidence_round_trips_after_migrating_an_older_database(tmp_path: Path) -> None:
    import sqlite_utils

    from prober.store import schema

    path = tmp_path / "p.db"
    with sqlite3.connect(path) as conn:  # a database written before browser checks existed
        for migration in schema.MIGRATIONS[:2]:
            migration(sqlite_utils.Database(conn))
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    evidence = {
        "load_ms": 812.5,
        "requests": 7,
        "failed_requests": [{"url": "u", "status": 503, "error": None}],
    }
    rendered = replace(result(1), browser=evidence)
    with Store(path) as store:
        store.add(result(0))
        store.add(rendered)
    with Store(path) as store:
        got = store.submit(lambda db: q.results(db, check="web", limit=2)).result()
    assert {r.ts: r.browser for r in got} == {rendered.ts: evidence, result(0).ts: None}
