"""The status page: Jinja2 on the server, inline SVG charts, no JavaScript needed.

A page of a thousand checks is mostly their 90-day bars, so each bar is as small as it can be
while keeping its tooltip: `<i title="26 Dec: 99.93%"></i>`, coloured by a one-letter class
when the day was not operational. What a check's history says (bars, legend, chart) is made once per
history (`History.fragments`), not once per request.

Everything that came from a probed server (error messages, URLs) reaches the HTML through Jinja's
autoescaping or `markupsafe.escape`; the response also carries a Content-Security-Policy that runs
no script at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from prober.model import STATE_SEVERITY, Counts, Incident, ProbeResult, State, Verdict
from prober.notes.timeline import Event
from prober.report import percent
from prober.store.history import DEGRADED_DAY_SHARE, DayStatus, LatencyPoint
from prober.web.statuspage import INDICATOR, REGION_WORDS, STATE_WORDS
from prober.web.view import SURFACE_TITLES, CheckStatus, Days, History, Overview, blended, empty_days

TEMPLATES = Path(__file__).parent / "templates"
MIN_REFRESH = 10  # seconds: a page reloading faster would mostly be reloading
CHART_W, CHART_H = 240, 56  # 24 hours at 10 units each
INCIDENT_HISTORY_DAYS = 90
INCIDENT_ROWS = 100
NARRATED = 10  # open, and resolved, incidents whose timeline is shown (a query each)
ARIA_BAD_DAYS = 5  # outage days named in a bar's aria-label

# A day's bar: green (operational) unless one of these says otherwise (status.css `.bars .x`).
BAR_CLASS = {
    State.OPERATIONAL: "",
    State.DEGRADED: ' class="d"',
    State.PARTIAL_OUTAGE: ' class="p"',
    State.MAJOR_OUTAGE: ' class="m"',
    State.UNKNOWN: ' class="u"',
}

REASON_WORDS = {
    "slow": "slow responses",
    "cert_expiring": "certificate expiring",
    "rate_limited": "rate limited (429)",
    "error_page": "error page",
    "dns": "DNS failure",
    "connect": "connection failure",
    "tls": "TLS failure",
    "timeout": "timeout",
    "http_status": "bad HTTP status",
    "content": "unexpected content",
    "redirect": "redirect loop",
    "vantage": "vantage failure",
    "internal": "prober failure",
}


def environment() -> Environment:
    """The Jinja2 environment of the templates, HTML autoescaped."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=pct, duration=duration, ms=ms, utc=utc, cause=cause, words=words, region_words=region_words
    )
    env.get_template("status.html")  # compiled now, not by the first request
    return env


# -- formatting --------------------------------------------------------------------------------------


def pct(counts: Counts) -> str:
    """An availability as "99.95%": `prober report`'s figure for the same results (100% only when
    none was down), or "no data"."""
    return "no data" if counts.judged == 0 else percent(counts)


def duration(seconds: float) -> str:
    """A duration in the two largest units: "3 d 4 h", "1 h 12 min", "45 s"."""
    s = int(max(seconds, 0))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{s} s"


def ms(value: float | None) -> str:
    """A latency: "120 ms", "1.4 s"."""
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def utc(ts: datetime | None) -> str:
    """A time as "2022-12-28 13:50 UTC"."""
    return "–" if ts is None else ts.strftime("%Y-%m-%d %H:%M UTC")


def words(state: State | str) -> str:
    """A state in words."""
    return STATE_WORDS.get(State(state), str(state))


def region_words(state: State | str) -> str:
    """A region's state in words: its vantages are all down, some down, degraded or up."""
    return REGION_WORDS.get(State(state), str(state))


def cause(reason: str | None, signature: str | None = None) -> str:
    """An incident's or result's cause: "error page (x-fret)"."""
    text = REASON_WORDS.get(str(reason), str(reason)) if reason else "unknown cause"
    return f"{text} ({signature})" if signature else text


def day_label(day: date) -> str:
    """A day as its bar's tooltip names it: "6 Dec" (the bars span 90 days: no year needed)."""
    return f"{day.day} {day.strftime('%b')}"


# -- fragments made once per history ---------------------------------------------------------------


def day_tip(label: str, day: DayStatus) -> str:
    """A bar's tooltip: "26 Dec: 99.93%", "26 Dec: 98.72%, 55 min of incident (major outage)"."""
    if day.state is State.UNKNOWN and day.counts.judged == 0:
        return f"{label}: no data"
    tip = f"{label}: {pct(day.counts)}"
    if day.incident_minutes:
        tip += f", {duration(day.incident_minutes * 60)} of incident"
    if day.state is not State.OPERATIONAL:
        tip += f" ({STATE_WORDS[day.state]})"
    return tip


def bars(days: Days, name: str, start: int, labels: Sequence[str], plain: Sequence[str]) -> Markup:
    """The uptime strip of a check from day `start` of the span on: one bar per day, coloured by its
    worst state, its tooltip in `title` (`plain`: each day's bar when operational with nothing down)."""
    # Dates, numbers and fixed words only: nothing in the tooltips needs escaping.
    values = days.counts.get(name) or [0] * (4 * len(days.span))
    special = days.touched(name)  # days with an incident: their state is the incident's
    out = []
    share = DEGRADED_DAY_SHARE
    days_from = zip(range(start, len(days.span)), values[4 * start :: 4], values[4 * start + 1 :: 4],
                    values[4 * start + 2 :: 4], strict=True)  # fmt: skip
    for i, up, degraded, down in days_from:
        judged = up + degraded + down
        if not down and judged and degraded <= share * judged and i not in special:  # most days: quickest
            out.append(plain[i])
            continue
        if judged and degraded <= share * judged and i not in special:  # operational, a stray failure
            text = f"{(up + degraded) / judged * 100:.2f}"  # `pct`, made here: thousands of such days
            out.append(f'<i title="{labels[i]}: {">99.99" if text == "100.00" else text}%"></i>')
            continue
        d = days.status(name, i)
        if d.state is State.OPERATIONAL and judged and not d.incident_minutes:
            out.append(f'<i title="{labels[i]}: {"100%" if not down else pct(d.counts)}"></i>')
        else:
            out.append(f'<i{BAR_CLASS[d.state]} title="{day_tip(labels[i], d)}"></i>')
    return Markup("".join(out))


def bars_label(days: Sequence[DayStatus], shown: int, labels: Mapping[date, str], uptime: str) -> str:
    """The strip's aria-label over `shown` days: the uptime, then the days of outage among `days`
    (those with an incident will do), worst first."""
    bad = [d for d in days if d.state in (State.PARTIAL_OUTAGE, State.MAJOR_OUTAGE)]
    bad.sort(key=lambda d: (-STATE_SEVERITY[d.state], -d.incident_minutes))
    named = [f"{STATE_WORDS[d.state]} on {labels[d.day]}" for d in bad[:ARIA_BAD_DAYS]]
    if len(bad) > ARIA_BAD_DAYS:
        named.append(f"{len(bad) - ARIA_BAD_DAYS} more days of outage")
    text = f"Uptime over the last {shown} days: {uptime}"
    return f"{text}; {', '.join(named)}" if named else text


def _nice(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 100.0
    step = 10.0 ** math.floor(math.log10(value))
    return next(m * step for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * step >= value)


def chart(points: Sequence[LatencyPoint], now: datetime) -> tuple[Markup, float | None]:
    """The 24-hour response-time chart: p95 as an area, the median as a line; returns (svg, y maximum)."""
    start = (now - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)
    slots = 25  # the hour 24 hours ago to the current one
    by_slot = {int((p.hour - start).total_seconds() // 3600): p for p in points}
    top_value = max((p.p95_ms or 0 for p in points), default=0.0)
    if not top_value:
        return Markup(f'<svg viewBox="0 0 {CHART_W} {CHART_H}" class="chart" aria-hidden="true"></svg>'), None
    top = _nice(top_value)
    step = CHART_W // (slots - 1)

    def y(v: float | None) -> int:
        return round(CHART_H - (v or 0) / top * (CHART_H - 2))

    runs: list[list[int]] = []  # consecutive hours with data
    for i in range(slots):
        p = by_slot.get(i)
        if p is None or p.p50_ms is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    # Hidden from screen readers: the figure's caption and its last-hour figures say it in words.
    svg = (
        f'<svg viewBox="0 0 {CHART_W} {CHART_H}" preserveAspectRatio="none" class="chart" aria-hidden="true">'
    )
    parts = [svg]
    for run in runs:
        if len(run) == 1:
            parts.append(f'<circle cx="{run[0] * step}" cy="{y(by_slot[run[0]].p50_ms)}" r="1.5"/>')
            continue
        p95 = " ".join(f"{i * step},{y(by_slot[i].p95_ms)}" for i in run)
        p50 = " ".join(f"{i * step},{y(by_slot[i].p50_ms)}" for i in run)
        base = f"{run[-1] * step},{CHART_H} {run[0] * step},{CHART_H}"
        parts.append(f'<polygon points="{p95} {base}"/><polyline points="{p50}"/>')
    parts.append("</svg>")
    return Markup("".join(parts)), top


def _labels(history: History, span: Sequence[date]) -> tuple[list[str], list[str]]:
    """Each day's label and its bar when operational with nothing down, made once per history."""
    memo: tuple[list[str], list[str]] | None = history.fragments.get(("", "labels"))
    if memo is None or len(memo[0]) != len(span):
        labels = [day_label(d) for d in span]
        memo = history.fragments[("", "labels")] = (labels, [f'<i title="{x}: 100%"></i>' for x in labels])
    return memo


def history_fragment(name: str, history: History, first_seen: datetime | None = None) -> Markup:
    """A check's uptime strip, its legend and its response-time chart (memoized in the history):
    a bar per day of the last 90, or of the days since its first result if fewer."""
    memo: Markup | None = history.fragments.get((name, "history"))
    if memo is not None:
        return memo
    days = history.days
    if not days.span:
        days = replace(days, span=[d.day for d in empty_days(history.now)])
    labels, plain = _labels(history, days.span)
    n = len(days.span)
    start = 0
    if first_seen is not None:  # no grey bars for the days before the check existed
        start = n - max(1, min(n, (history.now.date() - first_seen.date()).days + 1))
    shown = n - start
    ago, unit = '<span class="ago">90 days ago</span>', ""
    if shown < 90:  # a young check: say what a bar is, as its finer strips do (prober.web.strip)
        ago = f'<span class="since">{shown} days ago</span>'
        unit = f'<p class="unit muted">Each bar is one UTC day since the first result, {labels[start]}.</p>'
    values = days.counts.get(name)
    total = Counts(*(sum(values[4 * start + k :: 4]) for k in range(4))) if values else Counts()
    uptime = pct(total)
    outages = [days.status(name, i) for i in sorted(days.touched(name)) if i >= start]
    by_day = dict(zip(days.span, labels, strict=True))
    latency = history.latency.get(name, [])
    svg, top = chart(latency, history.now)
    points = [p for p in latency if p.count]
    last = points[-1] if points else None
    if last is None:
        caption = "No response times in the last 24 h"
    else:
        caption = (
            f'Last hour: <i class="k50"></i>median {ms(last.p50_ms)} <i class="k95"></i>p95 {ms(last.p95_ms)}'
        )
    scale = f"<span>{ms(top)}</span>" if top else ""
    memo = history.fragments[(name, "history")] = Markup(
        f'<div class="uptime"><div class="bars{"" if shown >= 90 else " short"}" role="img" '
        f'aria-label="{bars_label(outages, shown, by_day, uptime)}">'
        f"{bars(days, name, start, labels, plain)}</div>"
        f'<p class="legend">{ago}<span class="up">{uptime} uptime</span>'
        f"<span>Today</span></p>{unit}</div>"
        f'<figure class="latency"><figcaption><span>Response time, 24 h</span>{scale}</figcaption>'
        f'{svg}<p class="last">{caption}</p></figure>'
    )
    return memo


@dataclass(frozen=True, slots=True)
class ComponentView:
    """What the template shows of one check."""

    status: CheckStatus
    history: Markup
    results: list[ProbeResult]


def component_view(status: CheckStatus, history: History, fine: Mapping[str, Markup]) -> ComponentView:
    """One check's row of the page: its finer strip if it is young (`prober.web.strip`), else its days."""
    results = [status.latest[v] for v in status.info.vantages if v in status.latest]
    strip = fine.get(status.name) or history_fragment(status.name, history, status.first_seen)
    return ComponentView(status, strip, results)


_PROBES_HEAD = (
    "<table><thead><tr><th>Vantage</th><th>Region</th><th>Verdict</th><th>Status</th><th>Time</th>"
    "<th>At</th><th>Detail</th></tr></thead><tbody>\n"
)


def component_html(view: ComponentView, in_maintenance: bool, now: datetime) -> Markup:
    """A check's `<article>` on the page (made here rather than in the template: a thousand of them
    took the template about half of the page's rendering). Everything not ours is escaped."""
    c, info = view.status, view.status.info
    e = escape
    last = c.last_probed
    out = [
        f'<article class="component" id="check-{e(c.name)}">\n<div class="head"><div class="name">'
        f"<h3>{e(info.title)}</h3>"
    ]
    if info.description:
        out.append(f'<p class="description">{e(info.description)}</p>')
    if info.url:
        out.append(f'<p class="url muted">{e(info.url)}</p>')
    out.append(f'</div><span class="state s-{e(c.state)}">{e(words(c.state))}</span></div>\n')
    if in_maintenance:
        out.append('<p class="under-maintenance">Under maintenance</p>')
    regions = "".join(
        f'<li class="s-{e(state)}">{e(region)} <small>{e(region_words(state))}</small></li>'
        for region, state in c.regions.items()
    )
    out.append(f'<ul class="regions" aria-label="State per region">{regions}</ul>\n')
    out.append(f'<div class="body">{view.history}</div>\n')
    out.append(f'<details class="probes"><summary>Last probed {e(_ago(last, now))}')
    if last:
        out.append(f" ({e(utc(last))})")
    out.append(
        f'</summary>\n<div class="scroll" tabindex="0" role="region" aria-label="Latest probes of '
        f'{e(info.title)}">{_PROBES_HEAD}'
    )
    for r in view.results:
        detail = ""
        if r.verdict != Verdict.UP:
            detail = str(e(cause(r.reason, r.signature)))
            if r.error:
                detail += f': <span class="error">{e(r.error)}</span>'
        if r.screenshot_id:
            detail += f' <a href="api/screenshots/{e(r.screenshot_id)}.png">screenshot</a>'
        out.append(
            f'<tr class="v-{e(r.verdict)}"><td>{e(r.vantage)}</td><td>{e(r.region)}</td>'
            f"<td>{e(r.verdict)}</td><td>{e(r.status or '–')}</td><td>{e(ms(r.latency_ms))}</td>"
            f"<td>{e(_ago(r.ts, now))}</td><td>{detail}</td></tr>\n"
        )
    if not view.results:
        out.append('<tr><td colspan="7" class="muted">No results yet.</td></tr>\n')
    out.append("</tbody></table></div></details>\n</article>")
    return Markup("".join(out))


def _ago(ts: datetime | None, now: datetime) -> str:
    return "never" if ts is None else duration((now - ts).total_seconds()) + " ago"


def incident_rows(
    incidents: Sequence[Incident],
    now: datetime,
    overview: Overview,
    timelines: Mapping[int, Sequence[Event]] | None = None,
    screenshots: Mapping[int, int] | None = None,
    claims: Mapping[tuple[str, datetime], str] | None = None,
) -> list[dict[str, Any]]:
    """The incident history, newest first, each with its check's shown name, its timeline if read,
    the id of its screenshot (browser checks) if any, and what the official status page said
    (`claims`, by check and start)."""
    rows = []
    for i in sorted(incidents, key=lambda i: i.started_at, reverse=True)[:INCIDENT_ROWS]:
        end = i.resolved_at or now
        check = overview.find(i.check)
        rows.append(
            {
                "incident": i,
                "name": check.info.title if check is not None else i.check,
                "ongoing": i.resolved_at is None,
                "duration": duration((end - i.started_at).total_seconds()),
                "cause": cause(i.reason, i.signature),
                "timeline": (timelines or {}).get(i.id or 0, ()),
                "screenshot": None if i.id is None else (screenshots or {}).get(i.id),
                "claim": (claims or {}).get((i.check, i.started_at)),
            }
        )
    return rows


def narrated(overview: Overview, incidents: Sequence[Incident]) -> list[Incident]:
    """The incidents whose timeline the page shows: the NARRATED newest open ones and as many others
    (a query each: an outage of every check at once must not make the page slow)."""
    newest = sorted(overview.open_incidents, key=lambda i: i.started_at, reverse=True)[:NARRATED]
    others = sorted((i for i in incidents if i.resolved_at is not None), key=lambda i: i.started_at)
    return [*newest, *others[-NARRATED:]]


T = TypeVar("T")
YIELD_EVERY = 64  # components, or pieces of the template's output, between two pauses


def _yielding(i: int, value: T) -> T:
    """`value`, after letting other threads run every YIELD_EVERY calls.

    Rendering is pure Python in a reader thread: without a pause, the event loop waits for the GIL
    at every switch interval (5 ms) and a request answered from memory meanwhile takes tens of ms.
    `time.sleep(0)` gives the GIL up, so the loop answers what is ready and goes back to waiting.
    """
    if i % YIELD_EVERY == YIELD_EVERY - 1:
        time.sleep(0)
    return value


def render(
    env: Environment,
    overview: Overview,
    history: History,
    incidents: Sequence[Incident],
    title: str,
    description: str | None = None,
    timelines: Mapping[int, Sequence[Event]] | None = None,
    fine: Mapping[str, Markup] | None = None,
    refresh: float | None = None,
    maintenance: Mapping[str, Any] | None = None,
    silent: Mapping[str, datetime] | None = None,
    screenshots: Mapping[int, int] | None = None,
    claims: Mapping[tuple[str, datetime], str] | None = None,
) -> str:
    """The status page's HTML (blocking: CPU-bound for thousands of checks; run off the loop)."""
    now, under = overview.now, (maintenance or {}).get("checks", set())
    groups = [
        {
            "surface": str(surface),
            "title": SURFACE_TITLES[surface],
            "state": blended([c.state for c in checks]),
            "components": [
                _yielding(i, component_html(component_view(c, history, fine or {}), c.name in under, now))
                for i, c in enumerate(checks)
            ],
        }
        for surface, checks in overview.by_surface()
    ]
    affected = [c for c in overview.checks if c.state not in (State.OPERATIONAL, State.UNKNOWN)]
    affected.sort(key=lambda c: -STATE_SEVERITY[c.state])  # the worst first
    parts = env.get_template("status.html").generate(
        title=title,
        silent=sorted((silent or {}).items()),  # agents not heard for three heartbeats
        description=description,
        now=overview.now,
        overview=overview,
        banner=INDICATOR[overview.state][1],
        affected=affected,
        groups=groups,
        open_incidents=incident_rows(
            overview.open_incidents, overview.now, overview, timelines, screenshots, claims
        ),
        history=incident_rows(incidents, overview.now, overview, timelines, screenshots, claims),
        history_days=INCIDENT_HISTORY_DAYS,
        refresh=None if refresh is None else max(MIN_REFRESH, round(refresh)),
        Verdict=Verdict,
        maintenance=maintenance or {"windows": [], "checks": set(), "note": ""},
        ago=lambda ts: "never" if ts is None else duration((overview.now - ts).total_seconds()) + " ago",
    )
    return "".join(_yielding(i, part) for i, part in enumerate(parts))
