"""`prober demo`: an outage like the one of 2022-12-28, replayed on loopback, and what prober made of it.

A local target serves a web surface (desktop pages), a mobile API (timeline and notifications) and
its own status JSON, which says "All Systems Operational" throughout. A script, timed in ticks of
one probe interval, decides what each request gets from its elapsed time and from the peer address,
which tells the three vantages apart (US 127.0.0.2, JP 127.0.0.3, UK 127.0.0.4). The real daemon
probes the target with a generated configuration; at the end the report compares the script, what
the status page claimed, and what prober measured.

Every window of the script is a whole number of ticks and at least three long, and for each check
its edges are moved (by at most half a tick) to fall half-way between two of the check's probes. So
each vantage sees the same number of failures in every run, at any speed: the incidents and the
availability figures do not depend on timing luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import sqlite3
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web
from tabulate import tabulate

from prober import report as rep
from prober.config import parse_config
from prober.model import STATE_SEVERITY, ProberError, State, Verdict, iso, utcnow
from prober.store import connect, read

TICKS = 60  # the length of the script, in probe intervals
MIN_TICK = 0.1  # the shortest interval a configuration accepts
DEFAULT_DURATION = 60.0

CLAIM = "All Systems Operational"
ERROR_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>X</title></head>
<body><div id="react-root"><main>
<h1>Something went wrong, but don’t fret — it’s not your fault.</h1>
<p>Let’s give it another shot.</p><button>Try again</button>
</main></div></body></html>
"""
_FRET = "Something went wrong, but don't fret — it's not your fault"

# The vantages: name, region, source address. The target tells them apart by the peer address.
VANTAGES = (("us", "US", "127.0.0.2"), ("jp", "JP", "127.0.0.3"), ("uk", "UK", "127.0.0.4"))
REGION_OF_PEER = {address: region for _, region, address in VANTAGES}
_REGION_OF_VANTAGE = {name: region for name, region, _ in VANTAGES}


@dataclass(frozen=True)
class Route:
    """One endpoint of the target and the check that probes it."""

    check: str
    surface: str
    path: str
    label: str  # what it is, for people


ROUTES = (
    Route("web-home", "web", "/home", "web home page"),
    Route("web-login", "web", "/i/flow/login", "web login page"),
    Route("mobile-timeline", "mobile", "/2/timeline/home.json", "mobile timeline API"),
    Route("mobile-notifications", "mobile", "/2/notifications/all.json", "mobile notifications API"),
    Route("status-page", "api", "/api/v2/status.json", "the target's own status JSON"),
)


@dataclass(frozen=True)
class Window:
    """Some checks fail for some regions (None: everyone) over [start, end) ticks of the script."""

    checks: tuple[str, ...]
    regions: tuple[str, ...] | None
    start: int
    end: int
    what: str  # what the failing requests get
    begins: str  # narration when it starts
    ends: str  # narration when it ends

    def covers(self, check: str, region: str | None, tick: float) -> bool:
        """Whether a request for `check` from `region` at `tick` fails."""
        if check not in self.checks or not self.start <= tick < self.end:
            return False
        return self.regions is None or region in self.regions


WEB = ("web-home", "web-login")
_SURFACE_ORDER = {"web": 0, "mobile": 1, "api": 2}
SCRIPT = (
    Window(WEB, ("US", "UK"), 15, 45, f'HTTP 200 "{_FRET}"',
           f'web pages start answering HTTP 200 "{_FRET}" to US and UK', "web pages are back for US and UK"),
    Window(WEB, ("JP",), 27, 39, "the same error page", "JP gets the error page too",
           "JP gets the web pages again"),
    Window(("mobile-notifications",), None, 33, 36, "HTTP 503 with a JSON error",
           "mobile notifications fail with HTTP 503 for everyone", "mobile notifications are back"),
)  # fmt: skip


def failing(check: str, region: str | None, tick: float, script: Sequence[Window] = SCRIPT) -> bool:
    """Whether the script makes a request for `check` from `region` fail at `tick`."""
    return any(w.covers(check, region, tick) for w in script)


# -- the target ----------------------------------------------------------------------------------


@dataclass
class Target:
    """The scripted target: its clock starts with `start()`."""

    tick: float
    script: Sequence[Window] = SCRIPT
    started: float = 0.0  # time.monotonic() at tick 0
    origin: float = 0.0  # time.time() at tick 0
    shifts: dict[str, float] = field(default_factory=dict)  # check -> seconds its ticks come after the origin

    def start(self, origin: float) -> None:
        """Start the script's clock at `origin` (epoch seconds, at most a few seconds from now)."""
        from prober.schedule import phase

        self.origin = origin
        self.started = time.monotonic() + (origin - time.time())
        # The daemon probes each check at fixed phases of the wall clock. Each check's ticks are moved
        # (by at most half of one) to fall half-way between two of its probes: a probe is never a hair
        # before or after a change, so every vantage sees the same number of failures in every run.
        half = self.tick / 2
        for route in ROUTES:
            halfway = phase(route.check, self.tick) + half
            self.shifts[route.check] = (halfway - origin + half) % self.tick - half

    def elapsed(self) -> float:
        """Seconds since the script started."""
        return time.monotonic() - self.started

    def app(self) -> web.Application:
        """The aiohttp application serving every route of the target."""
        app = web.Application()
        for route in ROUTES:
            app.router.add_get(route.path, self._handler(route))
        return app

    def _handler(self, route: Route) -> Any:
        async def handle(request: web.Request) -> web.Response:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            region = REGION_OF_PEER.get(peer[0]) if peer else None
            tick = (time.time() - self.origin - self.shifts.get(route.check, 0.0)) / self.tick
            return _respond(route, failing(route.check, region, tick, self.script))

        return handle


def _respond(route: Route, broken: bool) -> web.Response:
    if route.check == "status-page":
        # The Atlassian Statuspage shape; it never changes, which is the point.
        return web.json_response(
            {
                "page": {"id": "demo", "name": "Demo", "url": "http://127.0.0.1/", "time_zone": "Etc/UTC"},
                "status": {"indicator": "none", "description": CLAIM},
            }
        )
    if route.surface == "web":
        if broken:  # what desktop users got: an error page, with status 200
            return web.Response(text=ERROR_PAGE, content_type="text/html")
        title = "Home" if route.check == "web-home" else "Log in"
        page = f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
        return web.Response(
            text=page + "<p>What is happening today.</p></body></html>", content_type="text/html"
        )
    if broken:
        body = {"errors": [{"code": 131, "message": "Internal error"}]}
        return web.json_response(body, status=503)
    if route.check == "mobile-timeline":
        return web.json_response(
            {"data": {"timeline": [{"id": "1", "text": "gm"}, {"id": "2", "text": "gn"}]}}
        )
    return web.json_response({"data": {"notifications": [], "cursor": "0"}})


def config_yaml(port: int, tick: float) -> str:
    """The demo's checks.yaml: three vantages, every route a check, one tick per interval."""
    vantages = "".join(
        f"  {name}: {{region: {region}, source_address: {address}}}\n" for name, region, address in VANTAGES
    )
    expect = {
        "web-home": "{status: [200]}",
        "web-login": "{status: [200]}",
        "mobile-timeline": '{json: ["data.timeline"]}',
        "mobile-notifications": '{json: ["data"]}',
        "status-page": "{json: [\"status.indicator == 'none'\"]}",
    }
    checks = "".join(
        f"  - {{name: {r.check}, surface: {r.surface}, url: 'http://127.0.0.1:{port}{r.path}',"
        f" expect: {expect[r.check]}}}\n"
        for r in ROUTES
    )
    return (
        "# Generated by `prober demo`.\n"
        f"defaults: {{interval: {tick:.3f}s, timeout: 2s, confirm: 2, recover: 2, quorum: majority,"
        f" vantages: [{', '.join(v[0] for v in VANTAGES)}]}}\n"
        f"vantages:\n{vantages}checks:\n{checks}"
    )


# -- running it ----------------------------------------------------------------------------------


@dataclass
class DemoRun:
    """What happened during a demo run: enough to build its report."""

    db_path: Path
    tick: float
    started_at: datetime  # wall clock at tick 0
    ended_at: datetime  # the end of the script, or when it was interrupted
    interrupted: bool
    script: Sequence[Window] = SCRIPT

    def at(self, tick: float) -> datetime:
        """The wall-clock time of a tick of the script."""
        return self.started_at + timedelta(seconds=tick * self.tick)


def tick_for(duration: float) -> float:
    """The probe interval that plays the whole script in `duration` seconds; ValueError if too short."""
    tick = duration / TICKS
    if tick < MIN_TICK - 1e-9:
        raise ValueError(f"the demo needs at least {TICKS * MIN_TICK:g} seconds (probes every {MIN_TICK}s)")
    return tick


def check_loopback() -> None:
    """Make sure the vantages' source addresses are usable; ProberError saying how to fix it if not."""
    for _, region, address in VANTAGES:
        with socket.socket() as sock:
            try:
                sock.bind((address, 0))
            except OSError as exc:
                hint = ""
                if exc.errno == errno.EADDRNOTAVAIL:
                    hint = (
                        "; on macOS add the aliases first: "
                        "for i in 2 3 4; do sudo ifconfig lo0 alias 127.0.0.$i up; done"
                    )
                raise ProberError(
                    f"the {region} vantage needs the source address {address} ({exc.strerror}){hint}"
                ) from exc


def prepare_db(path: Path) -> None:
    """Remove a previous demo database at `path`; refuse to touch a file that is anything else."""
    if path.exists() and path.stat().st_size > 0:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                foreign = (
                    conn.execute(
                        "SELECT count(*) FROM results WHERE url NOT LIKE 'http://127.0.0.1:%'"
                    ).fetchone()[0]
                    if "results" in tables
                    else 0
                )
        except sqlite3.Error as exc:
            raise ProberError(f"{path}: not a demo database ({exc}); refusing to overwrite it") from exc
        if (tables and "results" not in tables) or foreign:
            raise ProberError(
                f"{path}: holds results of real targets, not of a demo; refusing to overwrite it "
                "(pass --db with another file)"
            )
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def quiet_origin(now: float, tick: float) -> float:
    """A time at least a tick after `now` that is as far as can be from every check's probes.

    The run counts the results of [origin, origin + duration): with both ends away from any probe,
    each check has exactly one result per tick and vantage in it.
    """
    from prober.schedule import phase

    phases = sorted(phase(r.check, tick) for r in ROUTES)
    gap, after = max((b - a, a) for a, b in zip(phases, [*phases[1:], phases[0] + tick], strict=True))
    offset = (after + gap / 2) % tick
    base = now + tick
    return base + (offset - base) % tick


async def run_demo(db_path: Path, duration: float = DEFAULT_DURATION, log: TextIO | None = None) -> DemoRun:
    """Serve the target, run the daemon against it for `duration` seconds, and stop; progress on `log`."""
    from prober.daemon import Daemon  # the daemon pulls in APScheduler; `report` does not need it

    tick = tick_for(duration)
    check_loopback()
    prepare_db(db_path)
    target = Target(tick)
    runner = web.AppRunner(target.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    try:
        with tempfile.TemporaryDirectory(prefix="prober-demo-") as folder:
            config_path = Path(folder) / "checks.yaml"
            text = config_yaml(port, tick)
            parse_config(text, str(config_path))  # a bug here should say so, not surface in the daemon
            config_path.write_text(text, encoding="utf-8")
            daemon = Daemon(config_path, db_path)
            running = asyncio.ensure_future(daemon.run())
            watcher: asyncio.Future[None] | None = None
            try:
                # Until the daemon is set up, the target is healthy: its clock starts once probes run.
                deadline = time.monotonic() + 30
                while len(daemon.monitor.trackers) < len(ROUTES) and not running.done():
                    if time.monotonic() > deadline:
                        raise ProberError("the daemon did not start within 30s")
                    await asyncio.sleep(0.01)
                if running.done():
                    running.result()  # raises what stopped it (the database, most likely)
                origin = quiet_origin(time.time(), tick)
                target.start(origin)
                watcher = asyncio.ensure_future(_watch(daemon, target, duration, log))
                await asyncio.wait({running}, timeout=origin + duration - time.time())
                interrupted = running.done()  # the daemon stopped before the end: SIGINT or SIGTERM
            finally:
                daemon.stop()
                await running
                if watcher is not None:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
    finally:
        await runner.cleanup()
    started_at = datetime.fromtimestamp(origin, UTC)
    ended_at = utcnow() if interrupted else started_at + timedelta(seconds=duration)
    return DemoRun(db_path=db_path, tick=tick, started_at=started_at, ended_at=min(ended_at, utcnow()),
                   interrupted=interrupted)  # fmt: skip


async def _watch(daemon: Any, target: Target, duration: float, log: TextIO | None) -> None:
    """Narrate the script, the state changes prober sees, and a status line every few seconds."""
    if log is None:
        return
    every = max(2.0, duration / 12)
    edges = sorted(
        [(0.0, 'the target is healthy for everyone; its status page says "All Systems Operational"')]
        + [(w.start * target.tick, w.begins) for w in SCRIPT]
        + [(w.end * target.tick, w.ends) for w in SCRIPT]
    )
    told = 0
    states: dict[str, State] = {}
    down: dict[str, list[str]] = {}
    next_status = every
    while True:
        now = target.elapsed()
        while told < len(edges) and edges[told][0] <= now:
            _say(log, edges[told][0], "script", edges[told][1])
            told += 1
        for name, tracker in daemon.monitor.trackers.items():
            old, new = states.get(name, State.UNKNOWN), tracker.state
            regions = sorted(
                _REGION_OF_VANTAGE[v] for v, s in tracker.statuses().items() if s == Verdict.DOWN
            )
            where = f"down from {', '.join(regions)}" if regions else ""
            if new is not old and (old is not State.UNKNOWN or new is not State.OPERATIONAL):
                incident = tracker.open_incident
                cause = f": {rep.cause(incident)}" if incident is not None and regions else ""
                _say(log, now, "prober", f"{name}: {old} -> {new}" + (f", {where}{cause}" if where else ""))
            elif new is old and regions and regions != down.get(name):
                _say(log, now, "prober", f"{name}: now {where}")
            states[name], down[name] = new, regions
        if now >= next_status:
            _say(log, now, "status", _status_line(daemon.probes, states))
            next_status += every
        await asyncio.sleep(min(0.1, target.tick / 4))


def _say(log: TextIO, at: float, who: str, text: str) -> None:
    log.write(f"[{at:5.1f}s] {who:<6}  {text}\n")
    log.flush()


def _status_line(probes: int, states: dict[str, State]) -> str:
    order = [r.check for r in ROUTES]
    by_state: dict[State, list[str]] = {}
    for name in sorted(states, key=lambda n: order.index(n) if n in order else len(order)):
        by_state.setdefault(states[name], []).append(name)
    worst_first = sorted(by_state, key=lambda state: -STATE_SEVERITY[state])
    return f"{probes} probes | " + " | ".join(
        f"{state}: {', '.join(by_state[state])}" for state in worst_first
    )


# -- what it shows ---------------------------------------------------------------------------------


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


def findings(run: DemoRun) -> Findings:
    """Read the run's database and gather what the demo shows."""
    db = connect(run.db_path, readonly=True)
    try:
        until = run.ended_at
        report = rep.collect(db, run.started_at, until, run.ended_at)
        web = [i for i in report.incidents if i.check in WEB]
        window = None
        if web:
            window = (
                min(i.started_at for i in web),
                max(i.resolved_at or run.ended_at for i in web),
            )
        claims = _counts(read.verdict_counts(db, run.started_at, until, "status-page"))
        during = _counts(read.verdict_counts(db, *window, "status-page")) if window else rep.Counts()
        down = [
            r
            for check in WEB
            for r in read.results(db, check=check, since=run.started_at, until=until)
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
            _rel(run, i.detected_at), end, rep.span(rep.duration(i, run.ended_at)), rep.cause(i),
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
    lines = sorted(report.by_check(), key=lambda line: _SURFACE_ORDER.get(line.key[1], 9))
    out += [rep.availability_table(lines, ["check", "surface"], regions), ""]

    out.append("Claimed vs measured")
    claims, during = f.claims, f.claims_during
    said = f'The status page said "{CLAIM}" in {claims.up} of {claims.probes} probes'
    if f.web_window:
        start, end = (_rel(run, t) for t in f.web_window)
        said += f", including {during.up} of {during.probes} made while the web was down ({start} to {end})"
    notes = [said + "."]
    if f.error_pages:
        notes.append(
            f"{f.error_pages} web probes got an error page, {f.error_pages_200} of them with HTTP 200:"
            " a check of the status code alone would have passed."
        )
    measured = []
    for line in sorted(report.by_surface(), key=lambda line: _SURFACE_ORDER.get(line.key[0], 9)):
        split = ", ".join(f"{r} {rep.percent(c)}" for r, c in line.regions.items())
        label = "the status page itself" if line.key[0] == "api" else line.key[0]
        measured.append(f"{label} {rep.percent(line.counts)} ({split})")
    notes.append("prober measured availability: " + "; ".join(measured) + ".")
    resolved = [i for i in report.incidents if i.resolved_at is not None]
    if resolved:
        notes.append(
            f"Mean time to recovery: {rep.span(rep.mean_time_to_recovery(resolved))} over {len(resolved)}"
            f" incidents; detected {rep.span(rep.mean_time_to_detect(report.incidents))} after the first"
            " failure on average."
        )
    for note in notes:
        out += textwrap.wrap(note, width=100, initial_indent="  ", subsequent_indent="    ")
    since = run.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    out += [
        "",
        f"Explore: prober serve --db {run.db_path}  (the status page on http://127.0.0.1:8080/),",
        f"prober report --db {run.db_path} --since {since}  (--json for scripts),",
        f"or open {run.db_path} with sqlite3 or Datasette: tables results and incidents.",
    ]
    return "\n".join(out) + "\n"


def span(run: DemoRun) -> str:
    """How long the run lasted, for people."""
    return rep.span(run.ended_at - run.started_at)


def findings_json(f: Findings) -> dict[str, Any]:
    """The demo's findings for scripts and tests: the script in wall-clock times, the report, the contrast."""
    run = f.run
    return {
        "db": str(run.db_path),
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "interval_s": run.tick,
        "probes": f.report.total().probes,
        "interrupted": run.interrupted,
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
        },
        "error_pages": {"down": f.error_pages, "status_200": f.error_pages_200},
        "report": rep.to_json(f.report),
    }


def dumps(f: Findings) -> str:
    """`findings_json` as indented JSON text."""
    return json.dumps(findings_json(f), indent=2, ensure_ascii=False)
