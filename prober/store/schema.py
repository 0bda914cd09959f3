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


def _v4_maintenance(db: sqlite_utils.Database) -> None:
    # Maintenance windows (prober.maintenance): incidents opened in one are marked; each span of a
    # window is a row, so `serve` and `report` know them without the configuration; the results inside
    # a span are counted per hour and vantage, so availability leaves them out after raw results expire.
    if "maintenance" not in db.table("incidents").columns_dict:
        db.execute("ALTER TABLE incidents ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """CREATE TABLE IF NOT EXISTS maintenance_windows (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  starts_at TEXT NOT NULL,
  ends_at TEXT NOT NULL,
  checks TEXT,
  every TEXT,
  timezone TEXT,
  UNIQUE (name, starts_at)
)"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS maintenance_windows_ends ON maintenance_windows (ends_at)")
    db.execute(
        """CREATE TABLE IF NOT EXISTS maintenance_counts (
  check_name TEXT NOT NULL,
  bucket TEXT NOT NULL,
  vantage TEXT NOT NULL,
  region TEXT,
  surface TEXT,
  up INTEGER NOT NULL DEFAULT 0,
  degraded INTEGER NOT NULL DEFAULT 0,
  down INTEGER NOT NULL DEFAULT 0,
  unknown INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (check_name, bucket, vantage)
) WITHOUT ROWID"""
    )
    # The recount replaces whole hours and pruning drops old ones: both by bucket, across checks.
    db.execute("CREATE INDEX IF NOT EXISTS maintenance_counts_bucket ON maintenance_counts (bucket)")


def _v5_result_ids(db: sqlite_utils.Database) -> None:
    # The id an agent gave a result (prober.agents): a result delivered twice by NATS is stored once.
    # Local results have none; the partial index only holds the agents'.
    if "result_id" not in db.table("results").columns_dict:
        db.table("results").add_column("result_id", str)
    db.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS results_result_id ON results (result_id)"
        " WHERE result_id IS NOT NULL"
    )


def _v6_notifications(db: sqlite_utils.Database) -> None:
    # The alert outbox (prober.alerts): one row per notification, written with the incident change
    # that caused it, delivered and retried from here. `incident` is the incident's JSON at the event.
    db.table("notifications").create(
        {
            "id": str,
            "created_at": str,
            "channel": str,
            "event": str,
            "incident_id": int,
            "check_name": str,
            "state": str,
            "attempts": int,
            "next_attempt_at": str,
            "sent_at": str,
            "last_error": str,
            "incident": str,
        },
        pk="id",
        not_null={"created_at", "channel", "event", "state", "attempts", "next_attempt_at"},
        defaults={"attempts": 0, "state": "pending"},
        if_not_exists=True,
    )
    db.table("notifications").create_index(
        ["state", "next_attempt_at"], index_name="notifications_due", if_not_exists=True
    )
    db.table("notifications").create_index(
        ["incident_id", "channel"], index_name="notifications_incident", if_not_exists=True
    )


def _v7_screenshots(db: sqlite_utils.Database) -> None:
    # Browser checks' screenshots (PNG), referenced by the result they were taken for; pruned with it.
    db.execute(
        """CREATE TABLE IF NOT EXISTS screenshots (
  id INTEGER PRIMARY KEY,
  ts TEXT NOT NULL,
  check_name TEXT NOT NULL,
  vantage TEXT NOT NULL,
  verdict TEXT NOT NULL,
  png BLOB NOT NULL
)"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS screenshots_ts ON screenshots (ts)")
    db.execute("CREATE INDEX IF NOT EXISTS screenshots_check_ts ON screenshots (check_name, ts)")
    for table in ("results", "latest_results"):
        if "screenshot_id" not in db.table(table).columns_dict:
            db.table(table).add_column("screenshot_id", int)


def _v8_claims(db: sqlite_utils.Database) -> None:
    # What the target's own status page said (prober.claims): a row per source and component on each
    # change and at least hourly; component "" is the page's overall status.
    db.table("claims").create(
        {
            "id": int,
            "ts": str,
            "source": str,
            "component": str,
            "status": str,
            "description": str,
            "incident": str,
            "incident_created_at": str,
            "reason": str,
        },
        pk="id",
        not_null={"ts", "source", "component", "status"},
        if_not_exists=True,
    )
    db.table("claims").create_index(
        ["source", "component", "ts"], index_name="claims_series", if_not_exists=True
    )
    db.table("claims").create_index(["ts"], index_name="claims_ts", if_not_exists=True)
    # Which claim each check is compared with, as last configured: `serve` and `report` need no config.
    db.table("claim_links").create(
        {"check_name": str, "source": str, "component": str, "updated_at": str},
        pk="check_name",
        not_null={"source", "component"},
        if_not_exists=True,
    )


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


def _v10_summaries(db: sqlite_utils.Database) -> None:
    # Each check's finished days and hours in one row (prober.store.summaries), so the status page
    # reads a row per check instead of 90 days of rollups; empty until the daemon's first refresh.
    from prober.store import summaries  # imported here: summaries imports the store package

    summaries.create_tables(db)


# Append only: migration i takes a database from version i to i + 1.
MIGRATIONS: list[Migration] = [
    _v1_results_and_incidents,
    _v2_rollups,
    _v3_browser_evidence,
    _v4_maintenance,
    _v5_result_ids,
    _v6_notifications,
    _v7_screenshots,
    _v8_claims,
    _v9_incident_notes,
    _v10_summaries,
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
