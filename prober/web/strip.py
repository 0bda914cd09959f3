"""Finer uptime strips for young checks, so that a new install looks alive (as Gatus and Uptime Kuma do).

A check whose first result is recent has almost no days of history: its 90 daily bars would be
grey but one, and its 24-hour chart a dot. So, by the age of its first result:

- under PROBE_AGE: one bar per probe (its newest PROBE_BARS results, from any vantage), and a
  chart of those probes' response times;
- under HOUR_AGE: one bar per hour since its first hour, and the usual 24-hour chart;
- older: one bar per day since its first day (`prober.web.page`, at most 90).

Every strip says what each bar covers. Reading probes costs a query per check (about 1 ms with
its rendering, measured 1.0-1.7 ms on a loaded 2-core machine): with more than MAX_PROBE_CHECKS
checks under PROBE_AGE, all of them get hourly bars instead (one query for all).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlite_utils
from markupsafe import Markup, escape

from prober.model import Counts, ProbeResult, State, Verdict
from prober.store import history, read
from prober.web.page import BAR_CLASS, CHART_H, CHART_W, _nice, chart, duration, ms, pct
from prober.web.view import CheckStatus, History, Overview

PROBE_AGE = timedelta(hours=6)
HOUR_AGE = timedelta(days=3)
PROBE_BARS = 60
MAX_PROBE_CHECKS = 200
JUST_BEGUN = timedelta(minutes=10)  # an hour this young and without results yet gets no bar
DEGRADED_SHARE = 0.02  # as a day: degraded above this share of degraded results

VERDICT_CLASS = {Verdict.UP: "", Verdict.DEGRADED: ' class="d"', Verdict.DOWN: ' class="m"'}


def age(status: CheckStatus, now: datetime) -> timedelta | None:
    """How long ago the check's first result was taken (None: never)."""
    return None if status.first_seen is None else now - status.first_seen


def fragments(
    db: sqlite_utils.Database, overview: Overview, history_: History, now: datetime
) -> dict[str, Markup]:
    """Check name -> its strip and chart, for the checks young enough for finer bars (blocking)."""
    by_probe: list[CheckStatus] = []
    by_hour: list[CheckStatus] = []
    for status in overview.checks:
        old = age(status, now)
        if old is None or old >= HOUR_AGE:
            continue
        (by_probe if old < PROBE_AGE else by_hour).append(status)
    if len(by_probe) > MAX_PROBE_CHECKS:  # one kind of bar for all: a page of mixed strips misleads
        by_probe, by_hour = [], [*by_probe, *by_hour]
    young = [*by_probe, *by_hour]
    hours = history.hourly_counts(db, now - HOUR_AGE, [s.name for s in young]) if young else {}
    out = {}
    for s in by_probe:
        # The legend's figure is the whole history's, as `prober report` and /api/checks count it.
        total = sum(hours.get(s.name, {}).values(), Counts())
        out[s.name] = probe_fragment(read.last_results(db, s.name, PROBE_BARS), total, now)
    for s in by_hour:
        assert s.first_seen is not None
        out[s.name] = hour_fragment(s.first_seen, hours.get(s.name, {}), history_, s.name, now)
    return out


def _legend(first: str, uptime: str, unit: str) -> str:
    return (
        f'<p class="legend"><span class="since">{first}</span><span class="up">{uptime} uptime</span>'
        f'<span>Now</span></p><p class="unit muted">{unit}</p>'
    )


def _strip(label: str, bars: Sequence[str]) -> str:
    return f'<div class="bars short" role="img" aria-label="{label}">{"".join(bars)}</div>'


def probe_fragment(results: Sequence[ProbeResult], total: Counts, now: datetime) -> Markup:
    """One bar per probe, the uptime since the first result (`total`), and the probes' response times."""
    bars = []
    for r in results:
        what = r.verdict.value if r.latency_ms is None else f"{r.verdict.value}, {ms(r.latency_ms)}"
        if r.verdict is not Verdict.UP and r.reason is not None:
            what += f" ({r.reason.value})"
        tip = escape(f"{r.ts:%H:%M:%S} UTC, {r.vantage}: {what}")
        bars.append(f'<i{VERDICT_CLASS.get(r.verdict, BAR_CLASS[State.UNKNOWN])} title="{tip}"></i>')
    uptime, n = pct(total), len(results)
    down = sum(r.verdict is Verdict.DOWN for r in results)
    first = f"{duration((now - results[0].ts).total_seconds())} ago" if results else "–"
    label = f"Uptime since the first result: {uptime}; the last {n} probes, {down} of them down"
    unit = f"Each bar is one probe, from any vantage, of the last {n}; the first bar is from {first}."
    svg, caption = probe_chart(results, now)
    return Markup(
        f'<div class="uptime">{_strip(label, bars)}{_legend(first, uptime, unit)}</div>'
        f'<figure class="latency"><figcaption><span>Response time, last {n} probes</span></figcaption>'
        f'{svg}<p class="last">{caption}</p></figure>'
    )


def probe_chart(results: Sequence[ProbeResult], now: datetime) -> tuple[Markup, str]:
    """The response time of each probe (up or degraded), as a line over the probes' span."""
    points = [
        (r.ts, r.latency_ms) for r in results if r.latency_ms is not None and r.verdict is not Verdict.DOWN
    ]
    if not points:
        empty = f'<svg viewBox="0 0 {CHART_W} {CHART_H}" class="chart" aria-hidden="true"></svg>'
        return Markup(empty), "No response times yet"
    start = points[0][0]
    span = max((now - start).total_seconds(), 1.0)
    top = _nice(max(v for _, v in points))

    def xy(ts: datetime, v: float) -> str:
        x = round((ts - start).total_seconds() / span * CHART_W, 1)
        return f"{x},{round(CHART_H - v / top * (CHART_H - 2))}"

    line = " ".join(xy(ts, v) for ts, v in points)
    svg = (
        f'<svg viewBox="0 0 {CHART_W} {CHART_H}" preserveAspectRatio="none" class="chart" aria-hidden="true">'
        f'<polyline points="{line}"/></svg>'
    )
    values = sorted(v for _, v in points)
    caption = f"Median {ms(values[len(values) // 2])}, slowest {ms(values[-1])}; scale {ms(top)}"
    return Markup(svg), caption


def hour_state_class(counts: Counts) -> str:
    """An hour's bar colour: outage if anything was down, degraded above a share, grey without data."""
    judged = counts.up + counts.degraded + counts.down
    if judged == 0:
        return ' class="u"'
    if counts.down:
        return ' class="m"' if counts.down == judged else ' class="p"'
    return ' class="d"' if counts.degraded / judged > DEGRADED_SHARE else ""


def hour_fragment(
    first_seen: datetime, hours: dict[datetime, Counts], history_: History, name: str, now: datetime
) -> Markup:
    """One bar per hour since the check's first hour, and its 24-hour chart."""
    first = first_seen.replace(minute=0, second=0, microsecond=0)
    last = now.replace(minute=0, second=0, microsecond=0)
    bars, total, hour = [], Counts(), first
    if last not in hours and now - last < JUST_BEGUN:
        last -= timedelta(hours=1)  # the hour has just begun: no grey bar before its first probe
    while hour <= last:
        counts = hours.get(hour, Counts())
        total += counts
        tip = f"{hour:%d %b %H:00} UTC: {pct(counts)}"
        bars.append(f'<i{hour_state_class(counts)} title="{tip}"></i>')
        hour += timedelta(hours=1)
    uptime = pct(total)
    since = f"{duration((now - first_seen).total_seconds())} ago"
    label = f"Uptime over the last {len(bars)} hours: {uptime}"
    unit = f"Each bar is one hour: the check started {since}."
    svg, top = chart(history_.latency.get(name, []), now)
    scale = f"<span>{ms(top)}</span>" if top else ""
    return Markup(
        f'<div class="uptime">{_strip(label, bars)}{_legend(since, uptime, unit)}</div>'
        f'<figure class="latency"><figcaption><span>Response time, 24 h</span>{scale}</figcaption>'
        f"{svg}</figure>"
    )
