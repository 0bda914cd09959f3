"""The single writer: WAL, batching, migrations, locked and read-only databases, nothing dropped."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
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
