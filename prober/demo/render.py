"""The demo's findings: what the run's database shows, as the closing text or as JSON."""

from __future__ import annotations

import json
import shlex
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tabulate import tabulate

from prober import report as rep
from prober import terminal as term
from prober.demo.run import DemoRun
from prober.demo.script import APP, APP_RENDERED, APP_WINDOW, CLAIM, ROUTES, SURFACE_ORDER, WEB
from prober.model import iso
from prober.store import connect, read


@dataclass(frozen=True)
class Findings:
    """The demo's report: the generic report of the run, plus the contrast the demo is about."""

    run: DemoRun
    report: rep.Report
    claims: rep.Counts  # status-page probes: up = it said all systems operational
    claims_during: rep.Counts  # the same, while a web incident was open
    web_window: tuple[datetime, datetime] | None  # from the first web incident's start to the last's end
    error_pages: int  # web results down with an error-page signature
    error_pages_200: int  # ... of which served with HTTP 200
    # The web app during its outage: check -> counts (its shell over HTTP, and rendered); None if skipped.
    rendered: dict[str, rep.Counts] | None = None
    official: dict[tuple[str, datetime], Any] = field(default_factory=dict)  # incident -> ClaimFinding


def findings(run: DemoRun) -> Findings:
    """Read the run's database and gather what the demo shows."""
    db = connect(run.db_path, readonly=True)
    try:
        since, until = run.since, run.until
        report = rep.collect(db, since, until, run.ended_at)
        web = [i for i in report.incidents if i.check in WEB]
        window = None
        if web:
            window = (
                min(i.started_at for i in web),
                max(i.resolved_at or run.ended_at for i in web),
            )
        claims = _counts(read.verdict_counts(db, since, until, "status-page"))
        during = _counts(read.verdict_counts(db, *window, "status-page")) if window else rep.Counts()
        rendered = None
        if run.rendered_skipped is None:
            start, end = run.at(APP_WINDOW.start), run.at(APP_WINDOW.end)
            rendered = {
                c: _counts(read.verdict_counts(db, start, end, c)) for c in (APP.check, APP_RENDERED.check)
            }
        from prober.claims import findings_for  # what prober.claims polled from the official page

        official = findings_for(db, report.incidents, run.ended_at)
        down = [
            r
            for check in WEB
            for r in read.results(db, check=check, since=since, until=until)
            if r.verdict == "down" and r.signature
        ]
    finally:
        db.conn.close()
    return Findings(
        run=run,
        report=report,
        claims=claims,
        claims_during=during,
        web_window=window,
        error_pages=len(down),
        error_pages_200=sum(1 for r in down if r.status == 200),
        rendered=rendered,
        official=official,
    )


def _counts(rows: Sequence[dict[str, Any]]) -> rep.Counts:
    return sum((rep.Group.from_row(r).counts for r in rows), rep.Counts())


def _rel(run: DemoRun, ts: datetime | None) -> str:
    return "-" if ts is None else f"+{(ts - run.started_at).total_seconds():.1f}s"


def _secs(run: DemoRun, tick: int) -> str:
    return f"{_num(tick * run.tick)}s"


def _num(x: float) -> str:
    """A number of seconds for people: at most two decimals, no trailing zeros."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def format_findings(f: Findings) -> str:
    """The text the demo ends with: script, incidents by surface and region, claimed vs measured."""
    run, report = f.run, f.report
    header = (
        f"prober demo: an outage like the one of 2022-12-28, replayed in {span(run)}"
        + (" (interrupted)" if run.interrupted else "")
        + f" against a local target. Vantages us (US, 127.0.0.2), jp (JP, 127.0.0.3), uk (UK, 127.0.0.4);"
        f" each check probed from each every {_num(run.tick)}s: {report.total().probes} probes."
        f" Database: {run.db_path}"
    )
    out = [
        *textwrap.wrap(header, width=100),
        "",
        "What the target did (the script)",
    ]
    rows = [
        [f"{_secs(run, w.start)}-{_secs(run, w.end)}", ", ".join(w.checks),
         ", ".join(w.regions) if w.regions else "everyone", w.what]
        for w in run.script
    ]  # fmt: skip
    rows.append(["throughout", "mobile-timeline", "everyone", "healthy"])
    rows.append(["throughout", "status-page", "everyone", f'"{CLAIM}"'])
    if run.rendered_skipped is None:
        rows.append(["throughout", APP.check, "everyone", "its HTML shell answers 200"])
    out += [
        tabulate(rows, headers=["when", "checks", "for", "what"], disable_numparse=True),
        f"(for each check, a change falls half-way between two of its probes: within {_num(run.tick / 2)}s"
        " of these times)",
        "",
    ]

    out.append("What prober recorded: incidents by surface and region")
    rows = []
    with_incident = set()
    for i in sorted(
        report.incidents, key=lambda i: (report.surfaces.get(i.check, ""), i.check, i.started_at)
    ):
        with_incident.add(i.check)
        end = _rel(run, i.resolved_at) if i.resolved_at is not None else "still open"
        rows.append([
            report.surfaces.get(i.check, ""), i.check, ", ".join(i.regions), i.state, _rel(run, i.started_at),
            _rel(run, i.detected_at), end, term.span(rep.duration(i, run.ended_at)), rep.cause(i),
        ])  # fmt: skip
    for r in ROUTES:
        if r.check not in with_incident:
            rows.append([r.surface, r.check, "-", "no incident", "", "", "", "", ""])
    rows.sort(
        key=lambda row: ["web", "mobile", "api"].index(row[0]) if row[0] in ("web", "mobile", "api") else 9
    )
    head = [
        "surface",
        "check",
        "regions",
        "worst state",
        "started",
        "detected",
        "resolved",
        "duration",
        "cause",
    ]
    out += [tabulate(rows, headers=head, disable_numparse=True), ""]

    regions = report.regions
    out.append("Availability over the run, by check and region (up and degraded among up, degraded and down)")
    lines = sorted(report.by_check(), key=lambda line: SURFACE_ORDER.get(line.key[1], 9))
    out += [rep.availability_table(lines, ["check", "surface"], regions), ""]

    out.append("Claimed vs measured")
    claims, during = f.claims, f.claims_during
    said = f'The status page said "{CLAIM}" in {claims.up} of {claims.probes} probes'
    if f.web_window:
        start, end = (_rel(run, t) for t in f.web_window)
        said += f", including {during.up} of {during.probes} made while the web was down ({start} to {end})"
    notes = [said + "."]
    for i in sorted(report.incidents, key=lambda i: i.started_at):
        found = f.official.get((i.check, i.started_at))
        if found is None or i.check not in WEB:
            continue
        outage, silent = (
            term.span(rep.duration(i, run.ended_at)),
            term.span(timedelta(seconds=found.silent_s)),
        )
        ack = (
            "never acknowledged it"
            if found.acknowledged_at is None
            else f"acknowledged it {_rel(run, found.acknowledged_at)}"
        )
        notes.append(
            f"{i.check}: the official page (polled every {_num(max(1.0, run.tick))}s) said"
            f' "{found.said_at_start or found.status_at_start}" for {silent} of its {outage}'
            f" outage and {ack}."
        )
    if f.error_pages:
        notes.append(
            f"{f.error_pages} web probes got an error page, {f.error_pages_200} of them with HTTP 200:"
            " a check of the status code alone would have passed."
        )
    measured = []
    for line in sorted(report.by_surface(), key=lambda line: SURFACE_ORDER.get(line.key[0], 9)):
        split = ", ".join(f"{r} {rep.percent(c)}" for r, c in line.regions.items())
        label = "the status page itself" if line.key[0] == "api" else line.key[0]
        measured.append(f"{label} {rep.percent(line.counts)} ({split})")
    notes.append("prober measured availability: " + "; ".join(measured) + ".")
    notes.append(_rendered_note(f))
    resolved = [i for i in report.incidents if i.resolved_at is not None]
    if resolved:
        notes.append(
            f"Mean time to recovery: {term.span(rep.mean_time_to_recovery(resolved))} over {len(resolved)}"
            f" incidents; detected {term.span(rep.mean_time_to_detect(report.incidents))} after the first"
            " failure on average."
        )
    for note in notes:
        out += textwrap.wrap(note, width=100, initial_indent="  ", subsequent_indent="    ")
    since, until = run.window()
    out += [
        "",
        f"Explore: prober serve --db {run.db_path}  (the status page on http://127.0.0.1:8080/,",
        f"its JSON for this run on /api/checks/web-home?since={since}&until={until}),",
        f"{shlex.join(['prober', *run.report_args()])}  (the same figures; --json for scripts),",
        f"or open {run.db_path} with sqlite3 or Datasette: tables results, incidents and claims.",
    ]
    return "\n".join(out) + "\n"


def _rendered_note(f: Findings) -> str:
    """The web app seen over HTTP and rendered in Chromium, during its outage; or why it was skipped."""
    if f.rendered is None:
        return f"The rendered check was skipped: {f.run.rendered_skipped}."
    shell, page = f.rendered[APP.check], f.rendered[APP_RENDERED.check]
    start, end = _secs(f.run, APP_WINDOW.start), _secs(f.run, APP_WINDOW.end)
    return (
        f"While the web app's data API failed ({start} to {end}), its HTML shell checked over HTTP was up in"
        f" {shell.up} of {shell.probes} probes; rendered in Chromium, the same page was down in {page.down}"
        f" of {page.probes}: its script drew the error page."
    )


def span(run: DemoRun) -> str:
    """How long the run lasted, for people."""
    return term.span(run.ended_at - run.started_at)


def findings_json(f: Findings) -> dict[str, Any]:
    """The demo's findings for scripts and tests: the script in wall-clock times, the report, the contrast."""
    run = f.run
    return {
        "db": str(run.db_path),
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "measured": dict(zip(("since", "until"), run.window(), strict=True)),
        "interval_s": run.tick,
        "probes": f.report.total().probes,
        "interrupted": run.interrupted,
        "report_command": ["prober", *run.report_args()],
        "script": [
            {
                "checks": list(w.checks),
                "regions": list(w.regions) if w.regions else None,
                "start": iso(run.at(w.start)),
                "end": iso(run.at(w.end)),
                "what": w.what,
            }
            for w in run.script
        ],
        "status_page": {
            "claim": CLAIM,
            "probes": f.claims.probes,
            "claimed": f.claims.up,
            "during_web_incidents": {"probes": f.claims_during.probes, "claimed": f.claims_during.up},
            "findings": [
                {"check": check, "started_at": iso(started), "claim": found.to_json()}
                for (check, started), found in sorted(f.official.items())
            ],
        },
        "error_pages": {"down": f.error_pages, "status_200": f.error_pages_200},
        "rendered": {
            "skipped": run.rendered_skipped,
            "during_outage": None
            if f.rendered is None
            else {c: {"probes": n.probes, "up": n.up, "down": n.down} for c, n in f.rendered.items()},
        },
        "report": rep.to_json(f.report),
    }


def dumps(f: Findings) -> str:
    """`findings_json` as indented JSON text."""
    return json.dumps(findings_json(f), indent=2, ensure_ascii=False)
