"""The `claims` and `claim_links` tables: what each source said over time, and which check it speaks for.

Functions take a sqlite-utils Database and run in the thread that owns it: the store's writer for
writes, a reader thread (the web app's, the report's connection) for reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from prober.claims.parse import Claim, ClaimStatus
from prober.model import iso, parse_iso

HEARTBEAT = 3600.0  # a row at least this often while a claim does not change (DESIGN: hourly)
# A row holds until the next one of its series; a series that stopped (prober was not running, the
# source was removed) is not trusted further than this past its last row: the claim becomes unknown.
STALE_AFTER = 2 * HEARTBEAT


@dataclass(frozen=True, slots=True)
class Link:
    """A check's `claim:`: its source and component ("" for the overall status)."""

    source: str
    component: str


@dataclass(frozen=True, slots=True)
class Span:
    """A claim that held over [start, end): one row, or several equal rows in a row."""

    start: datetime
    end: datetime
    claim: Claim
    seen_at: datetime  # the poll that first saw it (the first row of the run)


def write_claims(db: sqlite_utils.Database, source: str, ts: datetime, claims: Sequence[Claim]) -> None:
    """Insert one row per claim, all polled at `ts`, in one transaction."""
    rows = [
        (iso(ts), source, c.component, str(c.status), c.description, c.incident,
         None if c.incident_created_at is None else iso(c.incident_created_at), c.reason)
        for c in claims
    ]  # fmt: skip
    with db.conn:
        db.conn.executemany(
            "INSERT INTO claims (ts, source, component, status, description, incident, incident_created_at,"
            " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def save_links(db: sqlite_utils.Database, links: Mapping[str, Link], now: datetime) -> None:
    """Make `claim_links` say exactly `links` (check name -> link)."""
    with db.conn:
        db.conn.execute("DELETE FROM claim_links")
        db.conn.executemany(
            "INSERT INTO claim_links (check_name, source, component, updated_at) VALUES (?, ?, ?, ?)",
            [(check, link.source, link.component, iso(now)) for check, link in links.items()],
        )


def links(db: sqlite_utils.Database) -> dict[str, Link]:
    """Check name -> its link, as last configured; {} for a database from before claims."""
    if "claim_links" not in db.table_names():
        return {}
    rows = db.execute("SELECT check_name, source, component FROM claim_links").fetchall()
    return {check: Link(source, component or "") for check, source, component in rows}


def sources(db: sqlite_utils.Database) -> list[str]:
    """Every source with a row."""
    if "claims" not in db.table_names():
        return []
    return [r[0] for r in db.execute("SELECT DISTINCT source FROM claims ORDER BY source")]


def _claim(row: Sequence[Any]) -> Claim:
    _, _, component, status, description, incident, created, reason = row[:8]
    return Claim(
        component or "", ClaimStatus(status), description, incident,
        parse_iso(created) if created else None, reason,
    )  # fmt: skip


_COLUMNS = "ts, source, component, status, description, incident, incident_created_at, reason"


def rows(
    db: sqlite_utils.Database, source: str, component: str | None, since: datetime, until: datetime
) -> list[tuple[datetime, Claim]]:
    """A series' rows over [since, until) and the one holding at `since` (every component when None)."""
    if "claims" not in db.table_names():
        return []
    where, args = "source = ?", [source]
    if component is not None:
        where, args = "source = ? AND component = ?", [source, component]
    before = db.execute(
        f"SELECT {_COLUMNS} FROM claims WHERE {where} AND ts <= ? AND ts >= ? "
        "ORDER BY ts DESC, id DESC LIMIT 1",
        [*args, iso(since), iso(since - timedelta(seconds=STALE_AFTER))],
    ).fetchall() if component is not None else []  # fmt: skip
    during = db.execute(
        f"SELECT {_COLUMNS} FROM claims WHERE {where} AND ts > ? AND ts < ? ORDER BY ts, id",
        [*args, iso(since) if before else iso(since - timedelta(microseconds=1000)), iso(until)],
    ).fetchall()
    return [(parse_iso(str(r[0])), _claim(r)) for r in [*before, *during]]


def spans(series: Iterable[tuple[datetime, Claim]], until: datetime) -> list[Span]:
    """One series' rows as spans: each holds until the next row (at most STALE_AFTER); equal rows merge."""
    out: list[Span] = []
    items = list(series)
    for i, (ts, claim) in enumerate(items):
        nxt = items[i + 1][0] if i + 1 < len(items) else until
        end = min(nxt, ts + timedelta(seconds=STALE_AFTER))
        if out and out[-1].claim == claim and out[-1].end >= ts:
            last = out[-1]
            out[-1] = Span(last.start, max(last.end, end), claim, last.seen_at)
        else:
            out.append(Span(ts, end, claim, ts))
    return out


def prune_claims(db: sqlite_utils.Database, cutoff: datetime, chunk: int = 5000) -> int:
    """Delete at most `chunk` claims rows older than `cutoff`, oldest first; how many."""
    with db.conn:
        return db.conn.execute(
            "DELETE FROM claims WHERE id IN (SELECT id FROM claims WHERE ts < ? ORDER BY ts LIMIT ?)",
            (iso(cutoff), chunk),
        ).rowcount
