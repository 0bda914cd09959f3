"""`prober once` against a database that opens but refuses writes (locked, full): bounded, exit 3.

Cron starts the next run whether or not the previous one ended: `once` gives the database
--db-timeout seconds, prints the results anyway, says what was not saved and why, and exits 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Target
from test_daemon_database import count, exclusive_lock, tiny_disk

pytestmark = pytest.mark.slow
__all__ = ["tiny_disk"]  # a fixture, used by name

DB_TIMEOUT = 2.0
# Start-up and probing, then the deadline, then one more write attempt (the busy timeout): generous,
# for a loaded machine, and far below the 89 s and the "forever" this bound replaces.
BOUND = DB_TIMEOUT + 15.0


async def once(config: Path, db: Path, *more: str) -> tuple[int, str, str, float]:
    """Run `python -m prober once` in a subprocess: exit code, stdout, stderr, seconds taken."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "prober", "once", "-c", str(config), "--db", str(db), *more,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode(), time.monotonic() - started


@pytest.fixture
def checks(tmp_path: Path, target: Target, closed_port: int) -> Path:
    """One check up, one down (refused): the down one opens an incident to save too."""
    path = tmp_path / "checks.yaml"
    path.write_text(
        "defaults: {timeout: 2s, confirm: 1}\n"
        f"checks:\n  - {{name: up, url: '{target.url}/ok'}}\n"
        f"  - {{name: down, url: 'http://127.0.0.1:{closed_port}/'}}\n"
    )
    return path


def assert_printed_and_unsaved(code: int, out: str, err: str, took: float, why: str) -> None:
    assert code == 3, (out, err)
    assert "up " in out and "down " in out and "connect" in out, out  # the table, anyway
    assert f"2 of 2 results and 1 incident change could not be saved within {DB_TIMEOUT:g}s" in err, err
    assert why in err, err
    assert took < BOUND, (took, err)


async def test_a_locked_database_is_given_db_timeout_then_exit_3(checks: Path, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    code, _, err, _ = await once(checks, db, "--check", "up")
    assert code == 0, err  # the database works
    assert count(db, "results") == 1
    with exclusive_lock(db):
        code, out, err, took = await once(checks, db, "--db-timeout", f"{DB_TIMEOUT:g}")
    assert_printed_and_unsaved(code, out, err, took, "database is locked")
    assert (count(db, "results"), count(db, "incidents")) == (1, 0)  # nothing of the second run was written


@contextlib.contextmanager
def full(db: Path) -> Iterator[None]:
    """The disk of `db` filled by another connection, which keeps the file (and its WAL) open."""
    filler = sqlite3.connect(db, isolation_level=None, timeout=5)
    filler.execute("CREATE TABLE IF NOT EXISTS ballast (b BLOB)")
    try:
        with contextlib.suppress(sqlite3.OperationalError):
            for _ in range(10_000):  # bounded: 40 MB at most, ten times the disk
                filler.execute("INSERT INTO ballast VALUES (?)", (os.urandom(4000),))
        yield
    finally:
        filler.close()


async def test_a_full_disk_is_given_db_timeout_then_exit_3(checks: Path, tiny_disk: Path) -> None:
    db = tiny_disk / "p.db"
    code, _, err, _ = await once(checks, db, "--check", "up")
    assert code == 0, err
    with full(db):
        code, out, err, took = await once(checks, db, "--db-timeout", f"{DB_TIMEOUT:g}")
    assert_printed_and_unsaved(code, out, err, took, "disk is full")
