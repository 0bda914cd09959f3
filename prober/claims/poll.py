"""Polling the claims sources: on their own schedule, through a vantage, with bounded reads.

A poll is one HTTP request made by `prober.probe.observe`, the probes' own code: the source's
timeout bounds it, its `max_body` bounds what is read, and every failure is a value. Whatever goes
wrong (unreachable, slow, an error status, too large, not what its format says) gives `unknown`
claims with the reason logged and stored; nothing a source sends can stop the poller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from prober.claims.parse import (
    Claim,
    ClaimStatus,
    Reading,
    SourceError,
    claims_of,
    read_feed,
    read_statuspage,
    unknown_claims,
)
from prober.claims.record import HEARTBEAT, Link, prune_claims, save_links, write_claims
from prober.config import Check, ClaimSource, Config, Vantage
from prober.model import Surface, utcnow
from prober.schedule import Schedule
from prober.vantage import VantageClient, VantagePool

if TYPE_CHECKING:
    from prober.store import Store

log = logging.getLogger("prober.claims")

_ACCEPT = {
    "statuspage": "application/json",
    "rss": "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1",
    "atom": "application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1",
}
DIRECT = Vantage("direct")


def links_of(config: Config) -> dict[str, Link]:
    """Check name -> the claim it is compared with."""
    return {
        c.name: Link(c.claim.source, c.claim.component or "") for c in config.checks if c.claim is not None
    }


def request_of(source: ClaimSource) -> Check:
    """The request a poll makes, as the probes' own Check: same client code, same bounds."""
    return Check(
        name=f"claims.{source.name}", url=source.url, display_url=source.display_url, surface=Surface.API,
        headers={"Accept": _ACCEPT[source.format]}, timeout=source.timeout, max_body=source.max_body,
        vantages=(source.vantage or DIRECT.name,),
    )  # fmt: skip


async def fetch(client: VantageClient, source: ClaimSource, now: datetime) -> Reading:
    """Poll `source` once through `client`; SourceError says why its answer gives no claims."""
    from prober.probe import observe

    seen = await observe(client, request_of(source))
    if seen.failure is not None:
        raise SourceError(f"{seen.failure}: {seen.error}")
    if seen.status is None or not 200 <= seen.status < 300:
        raise SourceError(f"HTTP {seen.status}")
    if seen.truncated:
        raise SourceError(f"the answer is larger than max_body ({source.max_body} bytes); not read")
    body = bytes(seen.body)
    # Parsing up to max_body of JSON or XML is CPU work: off the loop, so probes stay on time.
    loop = asyncio.get_running_loop()
    if source.format == "statuspage":
        return await loop.run_in_executor(None, read_statuspage, body)
    return await loop.run_in_executor(None, read_feed, body, now, source.open_for)


@dataclass
class SourceState:
    """What the poller knows of one source: its current claims and the last poll."""

    current: dict[str, tuple[Claim, datetime]] = field(default_factory=dict)  # component -> claim, row time
    listed: tuple[str, ...] = ()  # components its last good answer listed
    last_poll: datetime | None = None
    last_error: str | None = None
    failures: int = 0  # polls that gave unknown claims, since start
    polls: int = 0
    warned: set[str] = field(default_factory=set)  # unlisted components already logged


class Poller:
    """Polls every `claims:` source of the configuration on its interval and stores what it says."""

    def __init__(self, store: Store, pool: VantagePool) -> None:
        self.store = store
        self.pool = pool
        self.config: Config | None = None
        self.states: dict[str, SourceState] = {}
        self.schedule = Schedule(self.poll)
        self._direct: VantageClient | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._pruner: asyncio.Task[None] | None = None
        self._started = False

    async def apply(self, config: Config) -> None:
        """Match the sources and check links to `config` (at start and on each reload)."""
        self.config = config
        removed = set(self.states) - set(config.claims)
        await self._unknown_from_now("not polled: the source was removed from the configuration", removed)
        for name in removed:
            del self.states[name]
        for name in config.claims:
            self.states.setdefault(name, SourceState())
        self.schedule.sync({name: s.interval for name, s in config.claims.items()})
        await self.store.call(lambda db: save_links(db, links_of(config), utcnow()))

    def start(self) -> None:
        """Start polling (inside the running loop)."""
        self.schedule.start()
        self._started = True
        self._pruner = asyncio.create_task(self._prune_hourly())

    def components(self, source: str) -> list[str]:
        """The components checks link to in `source`."""
        config = self.config
        if config is None:
            return []
        return [
            c.claim.component
            for c in config.checks
            if c.claim and c.claim.source == source and c.claim.component
        ]

    async def poll(self, name: str) -> None:
        """Poll one source now and store what changed."""
        config = self.config
        source = None if config is None else config.claims.get(name)
        state = self.states.get(name)
        if source is None or state is None:
            return  # removed by a reload while due
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._poll(source, state)
        except asyncio.CancelledError:
            raise
        except Exception:  # a fault in one poll is logged; polling goes on
            log.exception("claims %s: poll failed", name)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _poll(self, source: ClaimSource, state: SourceState) -> None:
        now, started = utcnow(), time.monotonic()
        wanted = self.components(source.name)
        try:
            try:
                reading = await fetch(self._client(source), source, now)
            except (SourceError, asyncio.CancelledError):
                raise
            except Exception as exc:  # a bug of ours, on what the source sent: logged, and unknown claims
                log.exception("claims %s: reading the answer failed", source.name)
                raise SourceError(f"internal: {type(exc).__name__}: {exc}") from exc
        except SourceError as exc:
            redact = (
                self.config.redact if self.config is not None else str
            )  # a ${TOKEN} in the URL stays secret
            reason = redact(" ".join(str(exc).split()))[:300]
            claims = unknown_claims([*state.current, *wanted], reason)
            state.failures += 1
            if state.last_error != reason:
                log.warning("claims %s: unknown claims: %s", source.name, reason)
            state.last_error = reason
        else:
            if state.last_error is not None:
                log.info("claims %s: read again after %s", source.name, state.last_error)
            state.last_error = None
            claims = claims_of(reading, [*wanted, *(c for c in state.current if c)])
            state.listed = tuple(reading.components)
            self._warn_unlisted(source, state, reading, wanted)
        state.polls += 1
        state.last_poll = now
        changed = [c for c in claims if self._changed(state, c, now)]
        if changed:
            await self.store.call(lambda db: write_claims(db, source.name, now, changed))
            overall, before = next((c for c in changed if c.component == ""), None), state.current.get("")
            news = overall is not None and (before is None or before[0] != overall)  # not an hourly row
            if news and overall is not None and overall.status is not ClaimStatus.UNKNOWN:
                log.info("claims %s: the official page says %s%s", source.name, overall.status,
                         f' (incident "{overall.incident}")' if overall.incident else "")  # fmt: skip
        for claim in claims:
            previous = state.current.get(claim.component)
            if previous is None or claim in changed:
                state.current[claim.component] = (claim, now)
        log.debug("claims %s: polled in %.3fs", source.name, time.monotonic() - started)

    @staticmethod
    def _changed(state: SourceState, claim: Claim, now: datetime) -> bool:
        previous = state.current.get(claim.component)
        return previous is None or previous[0] != claim or now - previous[1] >= timedelta(seconds=HEARTBEAT)

    def _warn_unlisted(
        self, source: ClaimSource, state: SourceState, reading: Reading, wanted: list[str]
    ) -> None:
        if not reading.lists_components:
            return
        listed = {n.casefold() for n in reading.components}
        for component in wanted:
            if component.casefold() not in listed and component not in state.warned:
                state.warned.add(component)
                names = ", ".join(sorted(reading.components)) or "none"
                log.warning('claims %s: no component "%s" on the official page; it lists: %s',
                            source.name, component, names)  # fmt: skip

    def _client(self, source: ClaimSource) -> VantageClient:
        if source.vantage is not None:
            return self.pool.get(source.vantage)
        if self._direct is None:
            self._direct = VantageClient(DIRECT)
        return self._direct

    async def _prune_hourly(self) -> None:
        await asyncio.sleep(60)
        while True:
            config = self.config
            try:
                if config is not None:
                    cutoff = utcnow() - timedelta(seconds=config.retention)
                    for _ in range(1000):  # 5,000 rows at a time, results written in between
                        if await self.store.call(partial(prune_claims, cutoff=cutoff)) < 5000:
                            break
                        await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pruning claims failed; will try again in an hour")
            await asyncio.sleep(3600)

    async def stop(self, deadline: float = 5.0) -> None:
        """Stop polling: the schedule, then polls under way (up to `deadline` seconds), then the client."""
        if self._started:
            self.schedule.pause()
        if self._pruner is not None:
            self._pruner.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=deadline)
        for task in set(self._tasks):
            task.cancel()
        self.schedule.shutdown()
        await self._unknown_from_now("not polled: prober stopped")
        if self._direct is not None:
            await self._direct.close()
            self._direct = None

    async def _unknown_from_now(self, reason: str, names: set[str] | None = None) -> None:
        """End the series of `names` (None: all) with an unknown row: what a page says while nobody
        polls it is not known."""
        now = utcnow()
        for name, state in self.states.items():
            if (
                (names is not None and name not in names)
                or not state.current
                or all(c.status is ClaimStatus.UNKNOWN for c, _ in state.current.values())
            ):
                continue
            claims = unknown_claims(state.current, reason)
            state.current = {c.component: (c, now) for c in claims}
            try:
                await asyncio.wait_for(
                    self.store.call(partial(write_claims, source=name, ts=now, claims=claims)), 2.0
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store says why, and is closing anyway
                log.warning("claims %s: could not record the end of polling: %s", name, exc)

    def current(self) -> Mapping[str, SourceState]:
        """Each source's state, for the API and metrics."""
        return self.states
