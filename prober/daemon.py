"""Wiring and lifecycle: config -> schedule -> probe -> store -> state, with signals and reload."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from prober.config import Config, ConfigError, load_config
from prober.model import Incident, ProberError, ProbeResult, Reason, Verdict, utcnow
from prober.probe import probe_everywhere
from prober.schedule import Schedule, planned_time
from prober.state import CheckTracker, Event, Policy
from prober.store import Store, StoreError
from prober.store.read import open_incidents, recent_results, results
from prober.store.rollup import prune_store
from prober.vantage import VantagePool
from prober.web import create_app, start_server
from prober.web.live import LiveState

if TYPE_CHECKING:
    from aiohttp import web

    from prober.config import Check
    from prober.signatures import Signature

log = logging.getLogger("prober")

LATE = 1.0  # seconds: a probe that starts later than this is counted (and reported) as late
STOP_DEADLINE = 5.0  # seconds in-flight probes get to finish at shutdown
MAX_IN_FLIGHT = 2000  # probes at once, across all checks


def policy_of(check: Check) -> Policy:
    """The state policy of a check."""
    return Policy(confirm=check.confirm, recover=check.recover, quorum=check.quorum)


def regions_of(config: Config, check: Check) -> dict[str, str]:
    """Vantage name -> region, for the vantages of a check."""
    return {name: config.vantages[name].region for name in check.vantages}


class Monitor:
    """Turns probe results into state: per-check trackers, incidents written through the store."""

    def __init__(self, store: Store, live: LiveState | None = None) -> None:
        self.store = store
        self.live = live
        self.trackers: dict[str, CheckTracker] = {}
        self._last_verdict: dict[tuple[str, str], Verdict] = {}

    def configure(self, config: Config, *, restore: bool = False) -> None:
        """Match the trackers to `config`; with `restore`, rebuild them from the database."""
        wanted = {c.name: c for c in config.checks}
        for name in set(self.trackers) - set(wanted):
            del self.trackers[name]
        for key in [k for k in self._last_verdict if k[0] not in wanted]:
            del self._last_verdict[key]  # a check removed by a reload
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
        for name, check in wanted.items():
            tracker = self.trackers.get(name)
            if tracker is None:
                tracker = self.trackers[name] = CheckTracker(
                    name, regions_of(config, check), policy_of(check)
                )
                if restore:
                    tracker.restore(recent.get(name, []), opened.get(name))
                    self._publish_state(tracker)
            else:
                for event in tracker.reconfigure(regions_of(config, check), policy_of(check)):
                    self._record(event)
                self._publish_state(tracker)
        self._publish_incidents()

    def _publish_state(self, tracker: CheckTracker) -> None:
        if self.live is not None:
            self.live.set_state(tracker.check, tracker.state, tracker.statuses())

    def _publish_incidents(self) -> None:
        if self.live is not None:
            self.live.set_open_incidents(t.open_incident for t in self.trackers.values() if t.open_incident)

    async def observe(self, results: Sequence[ProbeResult]) -> None:
        """Store results and feed them to their check's tracker, logging changes."""
        for result in sorted(results, key=lambda r: r.ts):
            self.store.add(result)
            if self.live is not None:
                self.live.observe(result)
            self._log_verdict(result)
            tracker = self.trackers.get(result.check)
            if tracker is None:
                continue
            for event in tracker.observe(result):
                await self._persist(event)

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

    async def _persist(self, event: Event) -> None:
        self._record(event)
        if event.kind == "state":
            self._publish_state(self.trackers[event.check])
        if event.incident is None or event.kind == "state":
            return
        incident_id = await asyncio.wrap_future(self.store.save_incident(event.incident))
        if event.kind == "opened":
            self.trackers[event.check].assign_id(incident_id)
        self._publish_incidents()

    def _record(self, event: Event) -> None:
        if event.kind == "state":
            level = logging.INFO if event.new_state in ("operational", "unknown") else logging.WARNING
            log.log(level, "%s: state %s -> %s", event.check, event.old_state, event.new_state)
        elif event.incident is not None:
            i = event.incident
            log.warning("%s: incident %s (%s, %s, regions %s)", event.check, event.kind, i.state,
                        i.reason, ", ".join(i.regions) or "-")  # fmt: skip


class LoopWatch:
    """How late the event loop wakes up: the prober's own overload, told apart from the target's."""

    PERIOD = 0.05

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=4000)  # (epoch, lag): 200 s

    async def run(self) -> None:
        """Sample the loop's lag until cancelled."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.PERIOD)
            self._samples.append((time.time(), time.monotonic() - started - self.PERIOD))

    def worst_since(self, since: float) -> float:
        """The longest stall (seconds) seen since the epoch time `since`."""
        worst = 0.0
        for at, lag in reversed(self._samples):
            if at < since:
                break
            worst = max(worst, lag)
        return worst

    def excuse(self, result: ProbeResult, timeout: float) -> ProbeResult:
        """A timeout during which the prober itself stalled is its own fault: unknown, not down."""
        if result.verdict != Verdict.DOWN or result.reason != Reason.TIMEOUT:
            return result
        stall = self.worst_since(result.ts.timestamp())
        if stall < timeout / 4:
            return result
        error = f"prober overloaded: its event loop stalled {stall * 1000:.0f} ms during the probe"
        return replace(
            result, verdict=Verdict.UNKNOWN, reason=Reason.INTERNAL, error=f"{error}: {result.error}"
        )


class Lateness:
    """How far behind schedule check runs start; summarised in the log once a minute."""

    def __init__(self) -> None:
        self.late = 0  # runs that started more than a quarter of their interval late
        self.skipped = 0  # probes not made: they could not start within half their interval
        self.worst = 0.0
        self._reported = (0, 0, 0)

    def record(self, late: float, interval: float, skipped: int = 0) -> None:
        """Count one run whose probes started `late` seconds after its planned time; `skipped` of
        them could not start within half the interval and were not made."""
        self.worst = max(self.worst, late)
        if late > min(LATE, interval / 4):
            self.late += 1
        self.skipped += skipped

    def report(self, schedule: Schedule) -> None:
        """Log a warning if runs were late or skipped since the last report."""
        now = (self.late, schedule.missed + self.skipped, schedule.overlapped)
        late, missed, overlapped = (a - b for a, b in zip(now, self._reported, strict=True))
        self._reported = now
        if late or missed or overlapped:
            log.warning("behind schedule: %d runs started late (worst %.2fs), %d skipped as too late, "
                        "%d skipped because the previous run was still going", late, self.worst,
                        missed, overlapped)  # fmt: skip
        self.worst = 0.0


def freeze_heap() -> None:
    """Put every object alive now (configuration, trackers, jobs) out of the cyclic collector's sight.

    A full collection walks every tracked object: with 20,000 checks that took 0.5 s, and at 1,000
    probes a second one ran every second or two, which made the prober fall behind. Frozen objects
    are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()


class Daemon:
    """`prober run`: probes on schedule until told to stop; reloads on SIGHUP."""

    def __init__(
        self, config_path: Path, db_path: Path, http: str | None = None, config: Config | None = None
    ) -> None:
        self.config_path = config_path
        self.http = http
        self.db_path = db_path
        self.config: Config = config if config is not None else load_config(config_path)
        self.store = Store(db_path)
        self.pool = VantagePool()
        self.live = LiveState(self.config)
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

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.open)
        try:
            await self._apply(self.config, restore=True)
            if self.http is not None:
                app = create_app(self.db_path, config=self.config, live=self.live)
                self._web = await start_server(app, self.http)
                log.info("status page on http://%s/", self.http)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, self._reload.set)
            freeze_heap()  # before the first run: the full collection it makes blocks the loop
            self.schedule.start()
            self._background = [
                asyncio.create_task(self.watch.run()),
                asyncio.create_task(self._every_minute()),
                asyncio.create_task(self._prune_hourly()),
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
                    await self.reload()
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    async def reload(self) -> bool:
        """Re-read the configuration; an invalid file is refused and the running one kept."""
        try:
            config = await asyncio.get_running_loop().run_in_executor(None, load_config, self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return False
        except ProberError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return False
        old = {c.name: c for c in self.config.checks}
        new = {c.name: c for c in config.checks}
        changed = sorted(n for n in set(old) & set(new) if old[n] != new[n])
        gc.unfreeze()  # the old configuration may now be garbage in reference cycles
        await self._apply(config)
        freeze_heap()
        log.info("configuration reloaded: %d checks (added %s, removed %s, changed %s)", len(new),
                 sorted(set(new) - set(old)) or "none", sorted(set(old) - set(new)) or "none",
                 changed or "none")  # fmt: skip
        return True

    async def _apply(self, config: Config, *, restore: bool = False) -> None:
        await self.pool.sync(config.vantages)
        self._checks = {c.name: c for c in config.checks}
        self._signatures = {c.name: config.signatures_for(c) for c in config.checks}
        if restore:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.monitor.configure(config, restore=True)
            )
        else:
            self.monitor.configure(config)
        self.config = config
        self.schedule.sync({c.name: c.interval for c in config.checks})

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
                self.pool, check, self._signatures[name], self.config.redact, self.limit, may_start
            )
            late = max((r.ts.timestamp() for r in results), default=time.time()) - planned
            self.lateness.record(late, check.interval, skipped=len(check.vantages) - len(results))
            self.probes += len(results)
            await self.monitor.observe(results)
        except asyncio.CancelledError:
            raise
        except Exception:  # a fault in one run is logged; scheduling goes on
            log.exception("check %s: run failed", name)
        finally:
            self._in_flight.discard(task)

    async def _every_minute(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.lateness.report(self.schedule)

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

    def stop(self) -> None:
        """Ask the daemon to stop (as SIGTERM does)."""
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop the schedule, let running probes finish up to a deadline, cancel the rest, flush the store."""
        self.schedule.pause()
        for task in self._background:
            task.cancel()
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
        await self.pool.close()
        if self._web is not None:
            await self._web.cleanup()
        with contextlib.suppress(StoreError):
            await self.store.aclose()
        log.info("stopped after %.1fs: %d probes, %d results written", time.monotonic() - started,
                 self.probes, self.store.written)  # fmt: skip
