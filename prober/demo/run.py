"""Running the demo: the target served on loopback, the real daemon against it, progress as it goes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from prober import report as rep
from prober.config import parse_config
from prober.demo.script import (
    APP_WINDOW,
    BROWSER_VANTAGE,
    DEFAULT_DURATION,
    MIN_TICK,
    REGION_OF_VANTAGE,
    ROUTES,
    SCRIPT,
    TICKS,
    VANTAGES,
    Target,
    Window,
    config_yaml,
)
from prober.model import STATE_SEVERITY, ProberError, State, Verdict, iso, parse_iso, utcnow
from prober.store import connect


@dataclass
class DemoRun:
    """What happened during a demo run: enough to build its report.

    The script runs over [started_at, ended_at). The daemon measures a little longer: it probes from
    the moment it is set up, a moment before the script's clock starts, and may finish a probe as it
    is told to stop. [since, until) holds every result of the run, to the millisecond (the precision
    of the times stored), so that its ISO text (`window`) names exactly the results that the demo's
    figures, the report it suggests and the status page all count.
    """

    db_path: Path
    tick: float
    started_at: datetime  # wall clock at tick 0
    ended_at: datetime  # the end of the script, or when it was interrupted
    interrupted: bool
    since: datetime  # the first result of the run, or started_at
    until: datetime  # just after the last result of the run, or ended_at
    script: Sequence[Window] = SCRIPT
    rendered_skipped: str | None = None  # why the rendered check was left out, if it was

    def at(self, tick: float) -> datetime:
        """The wall-clock time of a tick of the script."""
        return self.started_at + timedelta(seconds=tick * self.tick)

    def window(self) -> tuple[str, str]:
        """The run's window as the ISO text `prober report --since/--until` and the API take."""
        return iso(self.since), iso(self.until)

    def report_args(self) -> list[str]:
        """The arguments of the `prober report` that counts exactly the results of this run."""
        since, until = self.window()
        return ["report", "--db", str(self.db_path), "--since", since, "--until", until]


def tick_for(duration: float) -> float:
    """The probe interval that plays the whole script in `duration` seconds; ValueError if too short."""
    tick = duration / TICKS
    if tick < MIN_TICK - 1e-9:
        raise ValueError(f"the demo needs at least {TICKS * MIN_TICK:g} seconds (probes every {MIN_TICK}s)")
    return tick


def browser_missing() -> str | None:
    """Why the demo cannot add its rendered check here (no Playwright, no Chromium), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install 'prober[browser]')"
    if not (os.environ.get("PROBER_CHROMIUM") or shutil.which("chromium")):
        return "Chromium is not installed (apt-get install --no-install-recommends chromium)"
    return None


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


def measured_window(path: Path, started_at: datetime, ended_at: datetime) -> tuple[datetime, datetime]:
    """[since, until) holding the script's span and every result in the run's database."""
    db = connect(path, readonly=True)
    try:
        first, last = db.execute("SELECT min(ts), max(ts) FROM results").fetchone()
    finally:
        db.conn.close()
    since = min(started_at, parse_iso(first)) if first else started_at
    until = max(ended_at, parse_iso(last) + timedelta(milliseconds=1)) if last else ended_at
    return _to_ms(since), _to_ms(until)


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
    skipped = browser_missing()
    if log is not None:
        with_it = "with a rendered check: the web app's shell over HTTP, and rendered in Chromium"
        log.write(f"prober demo: {f'skipping the rendered check: {skipped}' if skipped else with_it}\n")
    script = SCRIPT if skipped else (*SCRIPT, APP_WINDOW)
    target = Target(tick, script)
    runner = web.AppRunner(target.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    try:
        with tempfile.TemporaryDirectory(prefix="prober-demo-") as folder:
            config_path = Path(folder) / "checks.yaml"
            text = config_yaml(port, tick, rendered=skipped is None)
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
    started_at = _to_ms(datetime.fromtimestamp(origin, UTC))
    ended_at = _to_ms(min(utcnow() if interrupted else started_at + timedelta(seconds=duration), utcnow()))
    since, until = measured_window(db_path, started_at, ended_at)
    return DemoRun(db_path=db_path, tick=tick, started_at=started_at, ended_at=ended_at,
                   interrupted=interrupted, since=since, until=until, script=script,
                   rendered_skipped=skipped)  # fmt: skip


def _to_ms(ts: datetime) -> datetime:
    """`ts` to the millisecond below: the precision of stored times, and of the window's ISO text."""
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


async def _watch(daemon: Any, target: Target, duration: float, log: TextIO | None) -> None:
    """Narrate the script, the state changes prober sees, and a status line every few seconds."""
    if log is None:
        return
    every = max(2.0, duration / 12)
    edges = sorted(
        [(0.0, 'the target is healthy for everyone; its status page says "All Systems Operational"')]
        + [(w.start * target.tick, w.begins) for w in target.script]
        + [(w.end * target.tick, w.ends) for w in target.script]
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
                REGION_OF_VANTAGE.get(v, BROWSER_VANTAGE[1])
                for v, s in tracker.statuses().items()
                if s == Verdict.DOWN
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
