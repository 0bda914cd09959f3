"""The asyncio sender: delivers the outbox, retries with back-off, never blocks probing.

One worker task per channel at a time, so a slow or dead receiver delays only its own channel; the
database is read and written through the store's writer thread; every attempt has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby
from typing import Any

import aiohttp
import sqlite_utils

from prober.alerts import outbox
from prober.alerts.channels import Delivery, alertmanager_json, deliver, post
from prober.alerts.message import Note, check_json
from prober.config import AlertSettings, Channel, Config
from prober.model import iso, parse_iso, utcnow
from prober.store import Store
from prober.store.read import incident_from_row

log = logging.getLogger("prober.alerts")

MIN_DELAY, MAX_DELAY = 1.0, 600.0  # back-off bounds, seconds
POLL = 1.0  # seconds between looks at the outbox when nothing wakes the sender
EVERY_MINUTE = 60.0  # Alertmanager's firing alerts re-sent; reminders looked for (or every `remind`)
FIGURES_EVERY = 5.0
PRUNE_EVERY = 3600.0  # delivered and failed notifications older than `retention` go


def backoff(attempts: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt: exponential with jitter, 1 s to 10 min, or what the receiver asked."""
    if retry_after is not None:
        return max(MIN_DELAY, retry_after)
    ceiling = min(MAX_DELAY, MIN_DELAY * 2 ** min(attempts - 1, 30))
    return float(max(MIN_DELAY, ceiling / 2 + rand() * ceiling / 2))


def _due(db: sqlite_utils.Database, now: datetime) -> list[outbox.Row]:
    # A notification waits for the earlier ones of its incident on its channel: a resolve never
    # reaches PagerDuty or Alertmanager before the open it ends.
    cursor = db.execute(
        "SELECT n.* FROM notifications n WHERE n.state = ? AND n.next_attempt_at <= ? AND NOT EXISTS ("
        " SELECT 1 FROM notifications p WHERE p.state = ? AND p.channel = n.channel"
        " AND p.incident_id IS n.incident_id AND p.rowid < n.rowid) ORDER BY n.channel, n.rowid LIMIT 500",
        [outbox.PENDING, iso(now), outbox.PENDING],
    )
    return outbox.rows_of(cursor)


def _firing(db: sqlite_utils.Database, channel: str) -> list[dict[str, Any]]:
    """Open incidents already announced on `channel`: Alertmanager hears of them every minute."""
    cursor = db.execute(
        "SELECT * FROM incidents WHERE resolved_at IS NULL AND id IN ("
        " SELECT incident_id FROM notifications WHERE channel = ? AND state = ?)",
        [channel, outbox.SENT],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def _log_failure(task: asyncio.Task[None]) -> None:
    """A channel's worker that failed (the database, a bug) is logged; the next pass starts another."""
    if not task.cancelled() and task.exception() is not None:
        log.error("alerts: a delivery task failed", exc_info=task.exception())


class Alerts:
    """The outbox's hook into the store and its sender task."""

    def __init__(self, store: Store, config: Callable[[], Config], status_page: str | None = None) -> None:
        self.store = store
        self.config = config
        self.status_page = status_page
        self.figures: dict[str, Any] | None = None  # for /metrics and /healthz, refreshed every few seconds
        self.delivered = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._last_sent: dict[str, float] = {}  # channel -> monotonic time of its last attempt
        self._paused: dict[str, float] = {}  # channel -> monotonic time its Retry-After ends

    def attach(self) -> None:
        """Write notifications with incident changes from now on (call before any incident is saved)."""
        self.store.add_incident_hook(outbox.make_hook(self.config, self.wake))

    def wake(self) -> None:
        """Look at the outbox now (callable from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def link(self) -> str | None:
        """The status page URL shown in messages."""
        settings = self.config().alerts
        return (settings.status_page if settings else None) or self.status_page

    async def run(self) -> None:
        """Deliver until cancelled."""
        self._loop = asyncio.get_running_loop()
        session = aiohttp.ClientSession()
        minute = reminded = figures = pruned = 0.0
        try:
            while True:
                try:
                    settings = self.config().alerts
                    if time.monotonic() - figures >= FIGURES_EVERY:
                        figures = time.monotonic()
                        self.figures = await self.store.call(partial(outbox.figures, now=utcnow()))
                    if time.monotonic() - pruned >= PRUNE_EVERY:
                        pruned = time.monotonic()
                        before = utcnow() - timedelta(seconds=self.config().retention)
                        await self.store.call(partial(outbox.prune, before=before))
                    if settings is not None:
                        await self._dispatch(session, settings)
                        if time.monotonic() - minute >= EVERY_MINUTE:
                            minute = time.monotonic()
                            self._refresh_alertmanagers(session, settings)
                        if settings.remind and time.monotonic() - reminded >= min(
                            EVERY_MINUTE, settings.remind
                        ):
                            reminded = time.monotonic()
                            await self._remind(settings)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database or a bug: logged, and the sender goes on
                    log.exception("alerts: the sender failed; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL)
                self._wake.clear()
        finally:
            workers = list(self._workers.values())
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await session.close()

    async def deliver_due(self, within: float) -> None:
        """One pass, for `prober once`: each notification due now tried once, all within `within` seconds.

        What is refused (or still running at the deadline) stays pending for the next run.
        """
        settings = self.config().alerts
        if settings is None:
            return
        async with aiohttp.ClientSession() as session:
            await self._dispatch(session, settings)
            workers = [t for t in self._workers.values() if not t.done()]
            if not workers:
                return
            _, late = await asyncio.wait(workers, timeout=within)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)

    async def _dispatch(self, session: aiohttp.ClientSession, settings: AlertSettings) -> None:
        rows = await self.store.call(lambda db: _due(db, utcnow()))  # now: after what is queued before
        for name, group in groupby(rows, key=lambda r: r.channel):
            busy = self._workers.get(name)
            if (busy is not None and not busy.done()) or self._paused.get(name, 0.0) > time.monotonic():
                continue
            self._workers[name] = task = asyncio.create_task(self._work(session, name, list(group)))
            task.add_done_callback(_log_failure)

    async def _work(self, session: aiohttp.ClientSession, name: str, rows: list[outbox.Row]) -> None:
        for row in rows:
            config = self.config()
            settings = config.alerts
            channel = None if settings is None else settings.channels.get(name)
            if settings is None or channel is None:
                await self._record(
                    row, Delivery(False, f"channel {name} is no longer configured"), final=True
                )
                continue
            wait = self._last_sent.get(name, -1e9) + channel.min_interval - time.monotonic()
            if wait > 0:  # the channel's rate limit (Slack: about one message a second)
                await asyncio.sleep(wait)
            delivery = await self._attempt(session, channel, self._note(config, row), settings.timeout)
            self._last_sent[name] = time.monotonic()
            final = parse_iso(row.created_at) + timedelta(seconds=settings.give_up_after) <= utcnow()
            await self._record(row, delivery, final=final and not delivery.ok, redact=config.redact)
            if not delivery.ok and delivery.retry_after is not None:
                self._paused[name] = time.monotonic() + backoff(row.attempts + 1, delivery.retry_after)
                return  # the receiver asked this channel to wait: the rest waits too

    def _note(self, config: Config, row: outbox.Row) -> Note:
        try:
            check = config.check(row.check_name or "")
        except KeyError:
            check = None
        return Note(id=row.id, event=row.event, check=check_json(check, row.check_name or ""),
                    incident=row.incident_json(), status_page=self.link(), sent_at=utcnow())  # fmt: skip

    async def _attempt(
        self, session: aiohttp.ClientSession, channel: Channel, note: Note, deadline: float
    ) -> Delivery:
        try:  # each channel bounds its own attempt; this bound holds even if one of them does not
            return await asyncio.wait_for(deliver(session, channel, note, deadline), deadline + 5.0)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return Delivery(False, f"no answer within {deadline:g}s")
        except Exception as exc:  # a bug in a channel: recorded like a refusal, retried
            log.exception("alerts: sending to %s failed", channel.name)
            return Delivery(False, f"internal: {type(exc).__name__}: {exc}")

    async def _record(
        self, row: outbox.Row, delivery: Delivery, *, final: bool, redact: Callable[[str], str] = str
    ) -> None:
        now = utcnow()
        error = None if delivery.error is None else redact(delivery.error)
        if delivery.ok:
            state, retry_at = outbox.SENT, now
            self.delivered += 1
            log.info("alerts: %s %s of %s delivered to %s (id %s)", row.event, "notification", row.check_name,
                     row.channel, row.id)  # fmt: skip
        elif final:
            state, retry_at = outbox.FAILED, now
            log.error("alerts: gave up on the %s notification of %s to %s after %d attempts: %s", row.event,
                      row.check_name, row.channel, row.attempts + 1, error)  # fmt: skip
        else:
            state = outbox.PENDING
            delay = backoff(row.attempts + 1, delivery.retry_after)
            retry_at = now + timedelta(seconds=delay)
            log.warning("alerts: %s refused the %s notification of %s (%s); retrying in %.0fs", row.channel,
                        row.event, row.check_name, error, delay)  # fmt: skip
        await self.store.call(partial(outbox.record, row_id=row.id, state=state, at=now, error=error,
                                      retry_at=retry_at))  # fmt: skip

    async def _remind(self, settings: AlertSettings) -> None:
        if "reminder" not in settings.send_on or settings.remind is None:
            return
        config, every = self.config(), settings.remind
        if await self.store.call(partial(outbox.remind, config=config, every=every, now=utcnow())):
            self._wake.set()

    def _refresh_alertmanagers(self, session: aiohttp.ClientSession, settings: AlertSettings) -> None:
        for channel in settings.channels.values():
            busy = self._workers.get(channel.name)
            if channel.type == "alertmanager" and (busy is None or busy.done()):
                task = asyncio.create_task(self._refresh(session, channel, settings))
                self._workers[channel.name] = task
                task.add_done_callback(_log_failure)

    async def _refresh(
        self, session: aiohttp.ClientSession, channel: Channel, settings: AlertSettings
    ) -> None:
        """Alertmanager forgets an alert no one re-sends: the open ones again, every minute."""
        config = self.config()
        for row in await self.store.call(partial(_firing, channel=channel.name)):
            if outbox.in_maintenance(row):
                continue
            incident = incident_from_row(row)
            try:
                check = config.check(incident.check)
            except KeyError:
                continue
            note = Note(id=f"refresh-{incident.id}", event="reminder", check=check_json(check, check.name),
                        incident=incident.to_json(utcnow()), status_page=self.link())  # fmt: skip
            url = str(channel.settings["url"]).rstrip("/") + "/api/v2/alerts"
            delivery = await post(
                session, url, alertmanager_json(note, ended=False, now=utcnow()), settings.timeout
            )
            if not delivery.ok:
                log.warning("alerts: re-sending a firing alert to %s failed: %s", channel.name,
                            config.redact(delivery.error or ""))  # fmt: skip
