"""`prober incident`: list incidents, and add an operator's note to one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import click
import sqlite_utils
from tabulate import tabulate

from prober.command import EXIT_STORE, EXIT_USAGE, db_option, echo, fail
from prober.model import ProberError, iso, utcnow
from prober.notes import STATUSES, Note, NoteError, add_note, incident_status, notes_of


@click.group()
def incident() -> None:
    """Incidents: list them, and tell users what is being done about one."""


LIST_LIMIT = 20


@incident.command("list")
@db_option
@click.option("--check", "check", default=None, metavar="NAME", help="Only this check.")
@click.option("--open", "only_open", is_flag=True, help="Only incidents not resolved yet.")
@click.option("-n", "--limit", type=click.IntRange(1, 10_000), default=LIST_LIMIT, show_default=True,
              help="How many, newest first.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines instead of a table.")
def list_(db_path: Path, check: str | None, only_open: bool, limit: int, as_json: bool) -> None:
    """The newest incidents, with their status and notes."""
    from prober.store import StoreError, connect, read

    if not db_path.exists():
        fail(f"{db_path}: no such database", EXIT_STORE)
    try:
        db = connect(db_path, readonly=True)
        try:
            found = read.incidents(db, check=check)
            if only_open:
                found = [i for i in found if i.resolved_at is None]
            found = sorted(found, key=lambda i: (i.started_at, i.id or 0), reverse=True)[:limit]
            notes = notes_of(db, (i.id for i in found))
        finally:
            db.conn.close()
    except (StoreError, sqlite3.Error) as exc:
        fail(f"{db_path}: cannot read incidents ({exc})", EXIT_STORE)
    now = utcnow()
    if as_json:
        for i in found:
            mine = notes.get(i.id or 0, [])
            item = {
                **i.to_json(now),
                "status": incident_status(i, mine),
                "notes": [n.to_json() for n in mine],
            }
            echo(json.dumps(item, ensure_ascii=False))
        return
    if not found:
        echo("no incidents" + (" open" if only_open else "") + (f" of {check}" if check else ""))
        return
    rows = []
    for i in found:
        mine = notes.get(i.id or 0, [])
        rows.append(
            [
                i.id,
                i.check,
                str(i.state),
                incident_status(i, mine),
                iso(i.started_at),
                "ongoing" if i.resolved_at is None else iso(i.resolved_at),
                len(mine),
            ]
        )
    echo(tabulate(rows, ["id", "check", "worst state", "status", "started", "resolved", "notes"]))


@incident.command("note")
@db_option
@click.argument("incident_id", metavar="ID", type=int)
@click.argument("text")
@click.option("--status", "status", type=click.Choice(STATUSES), default=None,
              help="Statuspage status of this update (default: the last note's, else investigating; "
                   "resolved once the incident is).")  # fmt: skip
def note(db_path: Path, incident_id: int, text: str, status: str | None) -> None:
    """Add TEXT to incident ID: shown on the status page and as a Statuspage incident update."""
    from prober.store import Store, StoreError

    if not db_path.exists():
        fail(f"{db_path}: no such database", EXIT_STORE)

    def work(db: sqlite_utils.Database) -> Note:
        chosen = status
        if chosen is None:
            row = db.execute("SELECT resolved_at FROM incidents WHERE id = ?", [incident_id]).fetchone()
            earlier = notes_of(db, [incident_id]).get(incident_id, [])
            resolved = row is not None and row[0] is not None
            chosen = "resolved" if resolved else earlier[-1].status if earlier else "investigating"
        return add_note(db, incident_id, chosen, text, utcnow())

    try:
        with Store(db_path) as store:  # migrates an older database first
            added = store.submit(work).result()
    except NoteError as exc:
        fail(f"prober incident note: {exc}", EXIT_USAGE)
    except (StoreError, sqlite3.Error) as exc:
        fail(f"{db_path}: cannot add the note ({exc})", EXIT_STORE)
    except ProberError as exc:
        fail(str(exc), EXIT_STORE)
    echo(f"incident {incident_id}: note {added.id} added ({added.status}) at {iso(added.created_at)}")
