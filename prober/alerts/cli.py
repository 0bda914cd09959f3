"""`prober alerts test CHANNEL` and `prober alerts list`: try a channel, read the outbox."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import aiohttp
import click
from tabulate import tabulate

from prober.alerts import outbox
from prober.alerts.channels import Delivery, deliver
from prober.alerts.message import sample_note
from prober.command import (
    EXIT_STORE,
    EXIT_USAGE,
    config_option,
    db_option,
    echo,
    fail,
    read_config,
    run_async,
)
from prober.model import ProberError, utcnow


@click.group()
def alerts() -> None:
    """Alert channels and the outbox of notifications."""


@alerts.command("test")
@config_option
@click.argument("channel")
@click.option(
    "--check", "check_name", default=None, metavar="NAME", help="Describe this check (default: the first)."
)
def test(config_path: Path, channel: str, check_name: str | None) -> None:
    """Send a test notification to CHANNEL: exit 0 if the receiver accepted it, 1 with its answer if not."""
    config = read_config(config_path)
    settings = config.alerts
    if settings is None or channel not in settings.channels:
        known = ", ".join(sorted(settings.channels)) if settings else "none: the file has no alerts.channels"
        fail(f"{config_path}: no alert channel named {channel!r} (channels: {known})", EXIT_USAGE)
    check = None
    try:
        check = config.check(check_name) if check_name else (config.checks[0] if config.checks else None)
    except KeyError:
        fail(f"{config_path}: no check named {check_name!r}", EXIT_USAGE)
    note = sample_note(check, check.name if check else "example", settings.status_page, utcnow())

    async def send() -> Delivery:
        async with aiohttp.ClientSession() as session:
            delivery = await deliver(session, settings.channels[channel], note, settings.timeout)
            if delivery.ok and settings.channels[channel].type == "pagerduty":
                # Close the test alert it opened: a test must not leave someone paged.
                await deliver(
                    session, settings.channels[channel], replace(note, event="resolve"), settings.timeout
                )
            return delivery

    delivery = run_async(send())
    if delivery.ok:
        echo(f"{channel}: accepted (id {note.id})")
        return
    fail(f"{channel}: refused: {config.redact(delivery.error or 'no reason given')}", 1)


@alerts.command("list")
@db_option
@click.option("--pending", "state", flag_value=outbox.PENDING, help="Only notifications not yet delivered.")
@click.option("--failed", "state", flag_value=outbox.FAILED, help="Only notifications given up on.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000), help="Newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines.")
def list_(db_path: Path, state: str | None, limit: int, as_json: bool) -> None:
    """Show the outbox: each notification, its state, attempts and last error."""
    from prober.store import Store

    if not db_path.exists():
        fail(f"{db_path}: no such database", EXIT_STORE)
    try:
        with Store(db_path) as store:
            rows = store.submit(lambda db: outbox.listing(db, state, limit)).result()
    except ProberError as exc:
        fail(str(exc), EXIT_STORE)
    if as_json:
        for row in rows:
            echo(json.dumps({k: v for k, v in asdict(row).items() if k != "incident"}))
        return
    if not rows:
        echo("no notifications" + (f" {state}" if state else ""))
        return
    table = [
        (r.id, r.created_at, r.channel, r.event, r.check_name, r.incident_id, r.state, r.attempts,
         r.sent_at or (r.next_attempt_at if r.state == outbox.PENDING else ""), (r.last_error or "")[:60])
        for r in rows
    ]  # fmt: skip
    headers = (
        "id",
        "created",
        "channel",
        "event",
        "check",
        "incident",
        "state",
        "tries",
        "sent/next",
        "error",
    )
    echo(tabulate(table, headers=headers))
