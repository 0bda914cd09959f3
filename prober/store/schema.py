"""The database schema and its migrations: `PRAGMA user_version` says which have run."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]


def _v1_results_and_incidents(db: sqlite_utils.Database) -> None:
    db.table("results").create(
        {
            "id": int,
            "ts": str,
            "check_name": str,
            "vantage": str,
            "region": str,
            "surface": str,
            "url": str,
            "verdict": str,
            "reason": str,
            "signature": str,
            "status": int,
            "latency_ms": float,
            "dns_ms": float,
            "connect_ms": float,
            "tls_ms": float,
            "ttfb_ms": float,
            "bytes": int,
            "cert_days": float,
            "error": str,
        },
        pk="id",
        not_null={"ts", "check_name", "vantage", "verdict"},
        if_not_exists=True,
    )
    # Covering index: availability per check over a window reads no table rows (see NOTES).
    db.table("results").create_index(
        ["check_name", "ts", "verdict"], index_name="results_check_ts", if_not_exists=True
    )
    db.table("results").create_index(["ts"], index_name="results_ts", if_not_exists=True)
    db.table("incidents").create(
        {
            "id": int,
            "check_name": str,
            "state": str,
            "reason": str,
            "signature": str,
            "started_at": str,
            "detected_at": str,
            "resolved_at": str,
            "vantages": str,
            "regions": str,
        },
        pk="id",
        not_null={"check_name", "state", "started_at", "detected_at"},
        if_not_exists=True,
    )
    db.table("incidents").create_index(
        ["check_name", "started_at"], index_name="incidents_check", if_not_exists=True
    )
    db.table("incidents").create_index(["resolved_at"], index_name="incidents_open", if_not_exists=True)


def _v2_rollups(db: sqlite_utils.Database) -> None:
    # Hourly and daily rollups and the latest result per check and vantage (prober.store.rollup),
    # filled from the results already stored; the Store batch hook keeps them current from here on.
    from prober.store import rollup  # imported here: rollup imports the store package

    rollup.create_tables(db)
    rollup.backfill(db)


def _v3_browser_evidence(db: sqlite_utils.Database) -> None:
    # A browser check's evidence (timings, failed requests, console and page errors) as JSON text.
    if "browser" not in db.table("results").columns_dict:
        db.table("results").add_column("browser", str)


def _v9_incident_notes(db: sqlite_utils.Database) -> None:
    # What operators say of an incident (`prober incident note`): the page's narrative and the
    # Statuspage API's incident_updates, beside the measured timeline.
    db.table("incident_notes").create(
        {"id": int, "incident_id": int, "created_at": str, "status": str, "body": str},
        pk="id",
        not_null={"incident_id", "created_at", "status", "body"},
        foreign_keys=[("incident_id", "incidents", "id")],
        if_not_exists=True,
    )
    db.table("incident_notes").create_index(
        ["incident_id", "created_at"], index_name="incident_notes_incident", if_not_exists=True
    )


# Append only: migration i takes a database from version i to i + 1.
MIGRATIONS: list[Migration] = [
    _v1_results_and_incidents,
    _v2_rollups,
    _v3_browser_evidence,
    _v9_incident_notes,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the database up to SCHEMA_VERSION in place; returns the version it was at."""
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        from prober.model import ProberError

        raise ProberError(
            f"database schema version {found} is newer than this prober's ({SCHEMA_VERSION}): upgrade prober"
        )
    for version in range(found, SCHEMA_VERSION):
        with db.conn:
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
    return found
