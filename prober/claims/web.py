"""Where users see claims: /api/claims, the sentence on the status page, and the /metrics families."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlite_utils
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from prober.claims.findings import ClaimFinding, findings_for
from prober.claims.parse import ClaimStatus
from prober.claims.record import STALE_AFTER, links, sources
from prober.model import Incident, iso, parse_iso, utcnow

if TYPE_CHECKING:
    from aiohttp import web

    from prober.claims.poll import SourceState
    from prober.config import Config
    from prober.web import WebState

MAX_HISTORY = 5000  # past claims rows in one /api/claims answer
_COLUMNS = "ts, component, status, description, incident, incident_created_at, reason"


def _row_json(row: Sequence[Any]) -> dict[str, Any]:
    ts, component, status, description, incident, created, reason = row
    return {
        "ts": ts, "component": component or None, "status": status, "description": description,
        "incident": incident, "incident_created_at": created, "reason": reason,
    }  # fmt: skip


def claims_json(
    db: sqlite_utils.Database,
    config: Config | None,
    states: Mapping[str, SourceState] | None,
    since: datetime,
    until: datetime,
    source: str | None,
    now: datetime,
) -> dict[str, Any]:
    """/api/claims: each source, what it says now (newest row per component), its rows in the window."""
    names = sorted(set(sources(db)) | set(config.claims if config is not None else ()))
    if source is not None and source not in names:
        from prober.web.params import RequestError

        raise RequestError(404, f'no claims source named "{source}"')
    linked = links(db)
    out = []
    for name in names if source is None else [source]:
        conf = None if config is None else config.claims.get(name)
        state = None if states is None else states.get(name)
        current = []
        if "claims" in db.table_names():
            newest = db.execute(
                f"SELECT {_COLUMNS} FROM claims WHERE id IN "
                "(SELECT max(id) FROM claims WHERE source = ? GROUP BY component) ORDER BY component",
                [name],
            ).fetchall()
            for row in newest:
                item = _row_json(row)
                stale = now - parse_iso(row[0]) > timedelta(seconds=STALE_AFTER)
                current.append(
                    {**item, "stale": stale, **({"status": str(ClaimStatus.UNKNOWN)} if stale else {})}
                )
            history = db.execute(
                f"SELECT {_COLUMNS} FROM claims WHERE source = ? AND ts >= ? AND ts < ? "
                "ORDER BY ts, id LIMIT ?",
                [name, iso(since), iso(until), MAX_HISTORY],
            ).fetchall()
        else:
            history = []
        out.append(
            {
                "name": name,
                "url": None if conf is None else conf.display_url,
                "format": None if conf is None else conf.format,
                "interval_s": None if conf is None else conf.interval,
                "vantage": None if conf is None else conf.vantage,
                "last_poll": None if state is None or state.last_poll is None else iso(state.last_poll),
                "last_error": None if state is None else state.last_error,
                "polls": None if state is None else state.polls,
                "failed_polls": None if state is None else state.failures,
                "components_listed": None if state is None else list(state.listed),
                "checks": sorted(c for c, link in linked.items() if link.source == name),
                "current": current,
                "history": [_row_json(r) for r in history],
            }
        )
    return {"since": iso(since), "until": iso(until), "sources": out}


async def claims_body(request: web.Request, state: WebState) -> dict[str, Any]:
    """/api/claims?since=&until=&source=: the sources, their current claims and past ones."""
    from functools import partial

    from prober.web.params import query, window

    params = query(request, ("since", "until", "source"))
    now = utcnow()
    since, until = window(params, now, timedelta(days=1))
    live = state.live
    states = None if live is None or live.claims is None else live.claims()
    work = partial(claims_json, config=state.current_config(), states=states, since=since,
                   until=until or now, source=params.get("source") or None, now=now)  # fmt: skip
    body: dict[str, Any] = await state.reader.run(work)
    return body


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    return f"{seconds / 60:.0f} minutes"


def sentence(found: ClaimFinding, incident: Incident) -> str:
    """What the official page said during a measured incident, in one sentence for people."""
    what = "The official status page" + (f" ({found.component})" if found.component else "")
    status = str(found.status_at_start).replace("_", " ")
    said = found.said_at_start or status
    if found.acknowledgement_lag_s == 0:
        return f"{what} already admitted a problem when the outage began ('{said}')."
    if found.status_at_start is ClaimStatus.UNKNOWN:
        head = f"prober could not read {what[0].lower()}{what[1:]} when the outage began"
    elif found.acknowledged_at is not None:
        head = f"{what} said '{said}' for the first {_minutes(found.acknowledgement_lag_s or 0)}"
    else:
        head = f"{what} said '{said}' for {_minutes(found.silent_s)} of the outage"
    if found.acknowledged_at is None:
        ongoing = incident.resolved_at is None
        return head + ("; it has not acknowledged it yet." if ongoing else "; it never acknowledged it.")
    at = found.acknowledged_at.strftime("%H:%M UTC")
    named = f' ("{found.official_incident}")' if found.official_incident else ""
    return f"{head}; it acknowledged at {at}{named}."


def page_sentences(
    db: sqlite_utils.Database, incidents: Sequence[Incident], now: datetime
) -> dict[tuple[str, datetime], str]:
    """(check, started_at) -> the sentence, for the incidents on the page whose check has a claim."""
    by_key = {(i.check, i.started_at): i for i in incidents}
    return {key: sentence(f, by_key[key]) for key, f in findings_for(db, incidents, now).items()}


# -- /metrics --------------------------------------------------------------------------------------


def status_family(current: Iterable[tuple[str, str, ClaimStatus]]) -> GaugeMetricFamily:
    """prober_claim_status from (source, component, status) triples."""
    family = GaugeMetricFamily(
        "prober_claim_status",
        "1 for what the official status page says now of the component ('' overall), 0 for the others",
        labels=("source", "component", "status"),
    )
    for source, component, status in current:
        for s in ClaimStatus:
            family.add_metric([source, component, str(s)], 1 if s is status else 0)
    return family


class StoredClaims(Collector):
    """`prober serve`'s claims family: the newest row of each series, unknown once stale."""

    def __init__(self, db: sqlite_utils.Database, now: datetime) -> None:
        current = []
        if "claims" in db.table_names():
            rows = db.execute(
                "SELECT source, component, status, ts FROM claims WHERE id IN "
                "(SELECT max(id) FROM claims GROUP BY source, component)"
            ).fetchall()
            for source, component, status, ts in rows:
                stale = now - parse_iso(ts) > timedelta(seconds=STALE_AFTER)
                current.append((source, component, ClaimStatus.UNKNOWN if stale else ClaimStatus(status)))
        self.family = status_family(current)

    def collect(self) -> Iterator[Metric]:
        """The family read when it was made."""
        yield self.family


class ClaimsCollector(Collector):
    """The claims families of a running daemon: current claim per source and component, polls, silence."""

    def __init__(
        self,
        states: Callable[[], Mapping[str, SourceState]],
        open_incidents: Callable[[], Mapping[str, Incident]],
        read: Callable[[Callable[[sqlite_utils.Database], Any]], Any],
    ) -> None:
        self.states = states
        self.open_incidents = open_incidents
        self.read = read  # runs a function with a read-only database (this thread's)

    def collect(self) -> Iterator[Metric]:
        """The families now."""
        states = list(self.states().items())
        status = status_family(
            (name, c, claim.status) for name, s in states for c, (claim, _) in list(s.current.items())
        )
        polls = CounterMetricFamily("prober_claim_polls", "Polls of the source", labels=("source",))
        failed = CounterMetricFamily(
            "prober_claim_poll_failures", "Polls that gave unknown claims", labels=("source",)
        )
        for name, state in states:
            polls.add_metric([name], state.polls)
            failed.add_metric([name], state.failures)
        silent = GaugeMetricFamily(
            "prober_claim_silent_seconds",
            "Seconds of a check's ongoing incident during which its official status page claimed operational",
            labels=("check", "source", "component"),
        )
        incidents = list(self.open_incidents().values())
        if incidents:
            now = utcnow()
            for f_key, found in self.read(lambda db: findings_for(db, incidents, now)).items():
                silent.add_metric([f_key[0], found.source, found.component or ""], found.silent_s)
        yield from (status, polls, failed, silent)


def _reading(path: str) -> Callable[[Callable[[sqlite_utils.Database], Any]], Any]:
    def read(fn: Callable[[sqlite_utils.Database], Any]) -> Any:
        from prober.store import StoreError, connect

        try:
            db = connect(path, readonly=True)
        except StoreError:
            return {}
        try:
            return fn(db)
        finally:
            db.conn.close()

    return read


def register_metrics(live: Any, states: Callable[[], Mapping[str, SourceState]], db_path: str) -> None:
    """Add the claims families to a daemon's live metrics."""
    live.metrics.registry.register(ClaimsCollector(states, live.open_incidents, _reading(db_path)))
