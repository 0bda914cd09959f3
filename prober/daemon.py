"""Wiring and lifecycle: config -> schedule -> probe -> store -> state, with signals and reload."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from prober.config import Config, ConfigError, load_config
from prober.heap import freeze_heap, thaw_heap
from prober.maintenance import Calendar
from prober.maintenance.task import keep_windows
from prober.model import Incident, ProberError, ProbeResult, Verdict, utcnow
from prober.pace import Lateness, LoopWatch, report_store
from prober.probe import Renderer, probe_everywhere
from prober.schedule import Plan, Schedule, planned_time
from prober.state import CheckTracker, Event, Policy
from prober.store import DEFAULT_MAX_BACKLOG, Store, StoreError
from prober.store.read import open_incidents, recent_results, results
from prober.store.rollup import prune_store
from prober.store.summaries import refresh_store
from prober.vantage import VantagePool
from prober.web import create_app, start_server
from prober.web.live import Health, LiveState

if TYPE_CHECKING:
    from aiohttp import web

    from prober.alerts import Alerts
    from prober.config import Check
    from prober.signatures import Signature

log = logging.getLogger("prober")

STOP_DEADLINE = 5.0  # seconds in-flight probes get to finish at shutdown
# Seconds from SIGTERM until the store gives up on writes that keep failing: with the last attempt
# and the exit, well within systemd's default TimeoutStopSec of 20 s (after which it sends SIGKILL).
STOP_BUDGET = 15.0
WEB_STOP_DEADLINE = 3.0
MAX_IN_FLIGHT = 2000  # probes at once, across all checks
SUMMARY_EVERY = 300.0  # seconds between refreshes of the page's summaries of finished days and hours


def renderer_for(config: Config) -> Renderer | None:
    """Chromium for `config`'s browser checks (imported only then: Playwright is optional), or None."""
    if not any(c.browser is not None for c in config.checks):
        return None
    from prober.browser import Browsers

    return Browsers()


def policy_of(check: Check) -> Policy:
    """The state policy of a check."""
    return Policy(confirm=check.confirm, recover=check.recover, quorum=check.quorum)


def regions_of(config: Config, check: Check) -> dict[str, str]:
    """Vantage name -> region, for the vantages of a check."""
    return {name: config.vantages[name].region for name in check.vantages}


class Monitor:
    """Turns probe results into state: per-check trackers, incidents written through the store.

    Nothing here waits for the database: results and incident changes are queued to the writer in
    order, and the id of a new incident reaches its tracker when the writer has it.
    """

    def __init__(self, store: Store, live: LiveState | None = None) -> None:
        self.store = store
        self.live = live
        self.trackers: dict[str, CheckTracker] = {}
        self._last_verdict: dict[tuple[str, str], Verdict] = {}
        self._published: dict[str, int] = {}  # check -> tracker revision the live view last got

    def configure(self, config: Config, *, restore: bool = False) -> None:
        """Match the trackers to `config`; with `restore`, rebuild them from the database."""
        wanted = {c.name: c for c in config.checks}
        for name in set(self.trackers) - set(wanted):
            del self.trackers[name]
        for key in [k for k in self._last_verdict if k[0] not in wanted]:
            del self._last_verdict[key]  # a check removed by a reload
        for name in set(self._published) - set(wanted):
            del self._published[name]
        recent: dict[str, list[ProbeResult]] = {}
        opened: dict[str, Incident] = {}
        if restore:
            depth = max((max(c.confirm, c.recover) for c in config.checks), default=1) + 1
            since = utcnow() - timedelta(days=1)
            opened = {i.check: i for i in self.store.submit(open_incidents).result()}
            for result in self.store.submit(lambda db: recent_results(db, since, depth)).result():
                if result.check not in opened:
                    recent.setdefault(result.check, []).append(result)
            # An open incident's cause counts every down result since it started: replay them all.
            for name, incident in opened.items():
                recent[name] = self.store.submit(
                    partial(results, check=name, since=incident.started_at)
                ).result()
        if self.live is not None:
            self.live.configure(config)
        calendar = Calendar(config)  # an incident that opens in a maintenance window is marked
        for name, check in wanted.items():
            tracker = self.trackers.get(name)
            if tracker is None:
                tracker = self.trackers[name] = CheckTracker(
                    name, regions_of(config, check), policy_of(check), calendar.predicate(name)
                )
                if restore:
                    tracker.restore(recent.get(name, []), opened.get(name))
                    self._publish_state(tracker)
            else:
                tracker.maintenance = calendar.predicate(name)
                # A reload can open or resolve an incident (a lower `confirm`, a down vantage removed):
                # saved like any other change.
                for event in tracker.reconfigure(regions_of(config, check), policy_of(check)):
                    self._persist(event)
                self._publish_state(tracker)
        self._publish_incidents()

    def _publish_state(self, tracker: CheckTracker) -> None:
        self._published[tracker.check] = tracker.revision
        if self.live is not None:
            self.live.set_state(tracker.check, tracker.state, tracker.statuses())

    def _publish_incidents(self) -> None:
        if self.live is not None:
            self.live.set_open_incidents(t.open_incident for t in self.trackers.values() if t.open_incident)

    def observe(self, results: Sequence[ProbeResult], *, stored: bool = False) -> None:
        """Queue results for the store (unless `stored` already) and feed them to their check's tracker."""
        for result in sorted(results, key=lambda r: r.ts):
            if not stored:
                self.store.add(result)
            if result.screenshot is not None:  # its PNG is the store's alone: nothing else keeps it
                result = replace(result, screenshot=None)
            if self.live is not None:
                self.live.observe(result)
            self._log_verdict(result)
            tracker = self.trackers.get(result.check)
            if tracker is None:
                continue
            events = tracker.observe(result)
            for event in events:
                self._persist(event)
            # Any vantage's confirmed status that changed reaches the live view, whether or not the
            # check's state did (a second vantage confirming an outage, one of three recovering).
            if tracker.revision != self._published.get(tracker.check):
                self._publish_state(tracker)
            if any(e.kind != "state" and e.incident is not None for e in events):
                self._publish_incidents()

    def set_silent(self, vantage: str, silent: bool) -> None:
        """An agent's vantage fell silent (or spoke again): until it speaks, it counts for nothing."""
        for tracker in self.trackers.values():
            for event in tracker.set_silent(vantage, silent):
                self._persist(event)
            if tracker.revision != self._published.get(tracker.check):
                self._publish_state(tracker)
        self._publish_incidents()

    def _log_verdict(self, result: ProbeResult) -> None:
        key = (result.check, result.vantage)
        previous = self._last_verdict.get(key)
        if previous == result.verdict:
            return
        self._last_verdict[key] = result.verdict
        if previous is None and result.verdict == Verdict.UP:
            return  # a check that starts healthy is not news: 60,000 lines at start-up at scale
        level = logging.INFO if result.verdict in (Verdict.UP, Verdict.UNKNOWN) else logging.WARNING
        detail = " ".join(x for x in (result.reason, result.signature, result.error) if x)
        log.log(level, "%s from %s (%s): %s -> %s %s", result.check, result.vantage, result.region,
                previous or "new", result.verdict, detail)  # fmt: skip

    def _persist(self, event: Event) -> None:
        self._record(event)
        if event.kind == "state":
            self._publish_state(self.trackers[event.check])
        if event.incident is None or event.kind == "state":
            return
        saved = self.store.save_incident(event.incident)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # configured in a thread: later saves still find the row by check and start
            return
        if event.kind == "opened":
            key = (event.check, event.incident.started_at)
            saved.add_done_callback(lambda f: _call_soon(loop, self._assign_id, key, f))

    def _assign_id(self, key: tuple[str, datetime], saved: concurrent.futures.Future[int]) -> None:
        """The writer saved a new incident: its tracker learns the id, if that incident is still open."""
        if saved.cancelled() or saved.exception() is not None:
            return  # the store logged why
        tracker = self.trackers.get(key[0])
        incident = None if tracker is None else tracker.open_incident
        if tracker is None or incident is None or incident.started_at != key[1] or incident.id is not None:
            return  # resolved (or removed) meanwhile: the writer matched its later saves by check and start
        tracker.assign_id(saved.result())
        self._publish_incidents()

    def _record(self, event: Event) -> None:
        if event.kind == "state":
            level = logging.INFO if event.new_state in ("operational", "unknown") else logging.WARNING
            log.log(level, "%s: state %s -> %s", event.check, event.old_state, event.new_state)
        elif event.incident is not None:
            i = event.incident
            log.warning("%s: incident %s (%s, %s, regions %s)", event.check, event.kind, i.state,
                        i.reason, ", ".join(i.regions) or "-")  # fmt: skip


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: object) -> None:
    """Run `fn(*args)` on `loop` from another thread, unless the loop is gone (the daemon stopped)."""
    with contextlib.suppress(RuntimeError):  # closed
        loop.call_soon_threadsafe(fn, *args)


class Addon(Protocol):
    """A part the daemon runs beside its own (the NATS collector): started, told of reloads, stopped."""

    async def start(self, daemon: Daemon) -> None: ...
    async def reloaded(self, daemon: Daemon) -> None: ...
    async def stop(self) -> None: ...


class ApplyError(ProberError):
    """A configuration that loaded but cannot be run (a number the runtime cannot hold, say)."""


@dataclass(frozen=True)
class Prepared:
    """A configuration with everything made that running it needs, before anything is changed."""

    config: Config
    checks: dict[str, Check]
    signatures: dict[str, tuple[Signature, ...]]
    schedule: Plan


MAX_LOGGED_ISSUES = 50  # configuration errors logged for one refused reload; validate lists them all


def _why(exc: BaseException) -> str:
    """An exception in one line, its type included (a MemoryError says nothing else)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class Daemon:
    """`prober run`: probes on schedule until told to stop; reloads on SIGHUP."""

    def __init__(
        self,
        config_path: Path,
        db_path: Path,
        http: str | None = None,
        config: Config | None = None,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        addons: Sequence[Addon] = (),
    ) -> None:
        self.addons = tuple(addons)  # e.g. the NATS collector of prober.agents
        self.config_path = config_path
        self.http = http
        self.db_path = db_path
        self.config: Config = config if config is not None else load_config(config_path)
        self.store = Store(db_path, max_backlog=max_backlog)
        self.pool = VantagePool()
        self.render: Renderer | None = None  # made when a configuration first has browser checks
        self.live = LiveState(self.config)
        self.live.set_health(self.health)
        self.monitor = Monitor(self.store, self.live)
        self._web: web.AppRunner | None = None
        self.schedule = Schedule(self._run_check)
        self.limit = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.probes = 0
        self._signatures: dict[str, tuple[Signature, ...]] = {}
        self._checks: dict[str, Check] = {}
        self._in_flight: set[asyncio.Task[object]] = set()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self.watch = LoopWatch()
        self.lateness = Lateness()
        self._background: list[asyncio.Task[object]] = []
        self.alerts: Alerts | None = None
        from prober.claims.poll import Poller  # claims are an add-on: loaded with the daemon, not the core
        from prober.claims.web import register_metrics

        self.claims = Poller(self.store, self.pool)
        self.live.claims = self.claims.current
        register_metrics(self.live, self.claims.current, str(db_path))

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.open)
        from prober.alerts import Alerts  # here: the core does not load alerts at import time

        self.alerts = Alerts(
            self.store, lambda: self.config, None if self.http is None else f"http://{self.http}/"
        )
        self.alerts.attach()  # before any incident is saved: each change writes its notifications
        try:
            await self._apply(self._prepare(self.config), restore=True)
            if self.http is not None:
                app = create_app(self.db_path, config=self.config, live=self.live)
                self._web = await start_server(app, self.http)
                log.info("status page on http://%s/", self.http)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, self._reload.set)
            freeze_heap()  # before the first run: the full collection it makes blocks the loop
            self.schedule.start()
            for addon in self.addons:
                await addon.start(self)
            self.claims.start()
            self._background = [
                asyncio.create_task(self.watch.run()),
                asyncio.create_task(self._every_minute()),
                asyncio.create_task(self._prune_hourly()),
                asyncio.create_task(self._summarize()),
                asyncio.create_task(
                    keep_windows(self.store, lambda: self.config, self.live.metrics.set_maintenance)
                ),
                asyncio.create_task(self.alerts.run()),
            ]
            log.info("prober running: %d checks, %d vantages, database %s", len(self.config.checks),
                     len(self.config.vantages), self.db_path)  # fmt: skip
            while not self._stop.is_set():
                waiters = [
                    asyncio.ensure_future(self._stop.wait()),
                    asyncio.ensure_future(self._reload.wait()),
                ]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    try:
                        if await self.reload():
                            for addon in self.addons:
                                await addon.reloaded(self)
                    except Exception:  # whatever a reload does wrong, the daemon goes on
                        log.exception("reload failed")
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    async def reload(self) -> bool:
        """Re-read the configuration and apply it, all or nothing: if it cannot be read or applied, it
        is refused with a logged reason and the running configuration goes on untouched."""
        refused: list[str] = []
        try:
            config = await asyncio.get_running_loop().run_in_executor(None, load_config, self.config_path)
            prepared = self._prepare(config)
        except ConfigError as exc:
            refused = [str(issue) for issue in exc.issues] or [str(exc)]
        except Exception as exc:  # RecursionError, MemoryError, OverflowError...: the file's fault
            refused = [_why(exc)]
            # Its traceback holds the frames that held what exhausted the memory: let them go before
            # anything else (logging included) needs memory again.
            exc.__traceback__ = None
        if refused:
            # One record per error: the formatter escapes a newline inside an argument (it could
            # forge a line), so errors joined into one argument would read as one `\u000a` line.
            for issue in refused[:MAX_LOGGED_ISSUES]:
                log.error("reload refused, keeping the running configuration: %s", issue)
            if len(refused) > MAX_LOGGED_ISSUES:
                log.error("reload refused: %d more configuration errors (`prober validate` lists them all)",
                          len(refused) - MAX_LOGGED_ISSUES)  # fmt: skip
            return False
        old = {c.name: c for c in self.config.checks}
        new = {c.name: c for c in config.checks}
        changed = sorted(n for n in set(old) & set(new) if old[n] != new[n])
        running = self.config
        thaw_heap()  # the old configuration may now be garbage in reference cycles
        try:
            await self._apply(prepared)
        except Exception as exc:
            log.exception("reload refused: applying it failed (%s); going back to the running configuration",
                          _why(exc))  # fmt: skip
            await self._apply(self._prepare(running))
            return False
        finally:
            freeze_heap()
        log.info("configuration reloaded: %d checks (added %s, removed %s, changed %s)", len(new),
                 sorted(set(new) - set(old)) or "none", sorted(set(old) - set(new)) or "none",
                 changed or "none")  # fmt: skip
        return True

    def _prepare(self, config: Config) -> Prepared:
        """Everything `config` needs to run, made and tried without touching what runs now.

        Whatever can fail (signatures, state policies, vantages of each check, triggers) fails here.
        """
        try:
            for check in config.checks:
                policy_of(check)
                regions_of(config, check)
            here = config.probed_here()  # an agent's vantages are probed on its own machine
            return Prepared(
                config=config,
                checks={c.name: c for c in here},
                signatures={c.name: config.signatures_for(c) for c in here},
                schedule=self.schedule.plan({c.name: c.interval for c in here}),
            )
        except ProberError:
            raise
        except Exception as exc:
            raise ApplyError(f"{self.config_path}: cannot be run: {_why(exc)}") from exc

    async def _apply(self, prepared: Prepared, *, restore: bool = False) -> None:
        config = prepared.config
        await self.pool.sync(config.vantages)
        if self.render is None and (render := renderer_for(config)) is not None:
            self.render = render
            self.live.metrics.browsers = render.figures
        await self.claims.apply(config)
        self._checks = prepared.checks
        self._signatures = prepared.signatures
        if restore:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.monitor.configure(config, restore=True)
            )
        else:
            self.monitor.configure(config)
        self.config = config
        self.schedule.apply(prepared.schedule)

    def health(self) -> Health:
        """The daemon's own health: the store's figures and the probes it could not make."""
        skipped = self.lateness.skipped + self.schedule.missed + self.schedule.overlapped
        outbox = None if self.alerts is None else self.alerts.figures
        return Health(store=self.store.health(), probes=self.probes, probes_skipped=skipped, outbox=outbox)

    async def _run_check(self, name: str) -> None:
        check = self._checks.get(name)
        if check is None:  # removed by a reload while this run was due
            return
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            # Lateness is measured where probes start, after waiting for a slot among the
            # MAX_IN_FLIGHT: an overloaded prober starts its runs on time and its probes late.
            planned = planned_time(name, check.interval, time.time())
            start_by = planned + check.interval / 2  # the grace a run gets from the schedule too

            def may_start() -> bool:
                return not self._stop.is_set() and time.time() <= start_by

            results = await probe_everywhere(
                self.pool,
                check,
                self._signatures[name],
                self.config.redact,
                self.limit,
                may_start,
                self.render,
            )
            late = max((r.ts.timestamp() for r in results), default=time.time()) - planned
            self.lateness.record(late, check.interval, skipped=len(check.vantages) - len(results))
            self.probes += len(results)
            self.monitor.observe(results)
        except asyncio.CancelledError:
            raise
        except Exception:  # a fault in one run is logged; scheduling goes on
            log.exception("check %s: run failed", name)
        finally:
            self._in_flight.discard(task)

    async def _every_minute(self) -> None:
        dropped = 0
        while True:
            await asyncio.sleep(60)
            self.lateness.report(self.schedule)
            dropped = report_store(self.store.health(), dropped)

    async def _prune_hourly(self) -> None:
        # Raw results older than `retention` go, a chunk at a time through the writer, so probes
        # and their writes never wait long; rollups keep the history.
        await asyncio.sleep(60)
        while True:
            try:
                deleted = await prune_store(self.store, utcnow(), self.config.retention)
                if deleted:
                    log.info(
                        "pruned %d results older than %s", deleted, timedelta(seconds=self.config.retention)
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pruning failed; will try again in an hour")
            await asyncio.sleep(3600)

    async def _summarize(self) -> None:
        # The page's summaries of finished days and hours (prober.store.summaries): made at start for
        # the checks without one, then brought up to date every few minutes, in short writer calls.
        while True:
            try:
                await refresh_store(self.store, utcnow())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("summarizing the history failed; will try again")
            await asyncio.sleep(SUMMARY_EVERY)

    def stop(self) -> None:
        """Ask the daemon to stop (as SIGTERM does)."""
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop the schedule, let running probes finish up to a deadline, cancel the rest, flush the store."""
        self.schedule.pause()
        for task in self._background:
            task.cancel()
        if self._background:  # the alert sender closes its connections as it stops
            await asyncio.wait(self._background, timeout=2.0)
        started = time.monotonic()
        if self._in_flight:
            log.info("stopping: waiting for %d running checks", len(self._in_flight))
            await asyncio.wait(set(self._in_flight), timeout=STOP_DEADLINE)
        leftover = set(self._in_flight)
        self.schedule.shutdown()
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=1.0)
            log.warning(
                "stopping: cancelled %d checks still running after %.0fs", len(leftover), STOP_DEADLINE
            )
        for addon in self.addons:  # before the store closes: what they took is written or given back
            await addon.stop()
        await self.claims.stop()
        await self.pool.close()
        if self.render is not None:
            await self.render.close()
        if self._web is not None:
            try:
                await asyncio.wait_for(self._web.cleanup(), WEB_STOP_DEADLINE)
            except TimeoutError:
                log.warning("stopping: the web server did not stop within %.0fs", WEB_STOP_DEADLINE)
        # The store gets what is left of the budget to write its backlog; if the database still
        # refuses writes then, what could not be saved is counted and said, and the process exits.
        with contextlib.suppress(StoreError):
            await self.store.aclose(max(2.0, STOP_BUDGET - (time.monotonic() - started)))
        health = self.store.health()  # the store said how many it gave up on; not what it left behind
        if health.backlog:
            log.error("stopping: %d results could not be saved: the writer did not finish (%s)",
                      health.backlog, health.last_error)  # fmt: skip
        if health.dropped:
            log.error("%d results were dropped while %d were waiting for the database", health.dropped,
                      health.max_backlog)  # fmt: skip
        log.info("stopped in %.1fs: %d probes, %d results written", time.monotonic() - started,
                 self.probes, health.written)  # fmt: skip
