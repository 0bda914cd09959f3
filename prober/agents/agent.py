"""The agent: `prober agent --vantage NAME` probes on a regional machine and publishes what it saw.

It takes the configuration from the `prober-config` bucket and follows it, probes every check that
lists its vantage with the daemon's own probe and classifier, and publishes each result (its id as
`Nats-Msg-Id`) and a heartbeat. It has no database. Publishing never waits for the network: while
disconnected, results wait in the client's bounded buffer; what does not fit is counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nats.errors import Error as NatsError
from nats.errors import OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from prober.agents import BUCKET, CONFIG_KEY, STREAM, heartbeat_subject, results_subject
from prober.agents.collector import DUPLICATE_WINDOW, MAX_AGE, MAX_BYTES, config_digest
from prober.agents.link import RECONNECT_BUFFER, Link, LinkError, connect
from prober.agents.wire import Heartbeat, heartbeat_message, result_message
from prober.config import Config, ConfigError, parse_config
from prober.daemon import renderer_for
from prober.model import ProbeResult, utcnow
from prober.probe import Renderer, probe_everywhere
from prober.schedule import Schedule
from prober.vantage import VantagePool

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.kv import KeyValue

    from prober.config import Check
    from prober.signatures import Signature

log = logging.getLogger("prober.agents")

HEARTBEAT = 5.0
MAX_IN_FLIGHT = 2000
STOP_DEADLINE = 5.0
DROP_LOG_EVERY = 60.0


class Agent:
    """One vantage's prober on its own machine."""

    def __init__(
        self,
        link: Link,
        vantage: str,
        heartbeat: float = HEARTBEAT,
        hub: str | None = None,
        buffer: int = RECONNECT_BUFFER,
    ) -> None:
        self.link = link
        self.buffer = buffer  # bytes of results kept while disconnected
        # Behind a leaf node: the JetStream domain of the hub, where the configuration is. The leaf's
        # own stream keeps this agent's results while the hub is away (store and forward).
        self.hub = hub
        self.vantage = vantage
        self.heartbeat = heartbeat
        self.config: Config | None = None
        self.digest: str | None = None
        self.checks: dict[str, Check] = {}
        self.signatures: dict[str, tuple[Signature, ...]] = {}
        self.render: Renderer | None = None  # made when a configuration first has browser checks
        self.pool = VantagePool()
        self.schedule = Schedule(self._run_check)
        self.limit = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.probes = 0
        self.dropped = 0  # results that did not fit in the reconnect buffer
        self._drops_logged = (0, 0.0)
        self._nc: Client | None = None
        self._stop = asyncio.Event()
        self._in_flight: set[asyncio.Task[object]] = set()
        self._started = False

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
        self._nc = await _until(
            stopping, connect(self.link, f"prober-agent-{self.vantage}", retry_for=1e9, buffer=self.buffer)
        )
        if self._nc is None:
            return 0
        if self.hub is not None:
            await self._leaf_stream()
        tasks = [asyncio.create_task(self._follow_config()), asyncio.create_task(self._beat())]
        log.info("agent %s: connected to %s", self.vantage, self.link.shown)
        try:
            await stopping
        finally:
            await self._shutdown(tasks)
        return 0

    async def _leaf_stream(self) -> None:
        """The leaf node's stream of this vantage's results, which the hub's stream sources."""
        assert self._nc is not None
        js = self._nc.jetstream()
        config = StreamConfig(
            name=STREAM, subjects=[results_subject(self.vantage)], storage=StorageType.FILE,
            max_age=MAX_AGE, max_bytes=MAX_BYTES, duplicate_window=DUPLICATE_WINDOW,
        )  # fmt: skip
        try:
            try:
                await js.stream_info(STREAM)
            except NotFoundError:
                await js.add_stream(config)
        except NatsError as exc:
            raise LinkError(f"the leaf node at {self.link.shown} refused the stream {STREAM}: {exc}") from exc

    # -- configuration ---------------------------------------------------------------------------

    async def _follow_config(self) -> None:
        assert self._nc is not None
        js = self._nc.jetstream(domain=self.hub)
        while True:  # the watch ends when the server restarts: watch again
            try:
                kv: KeyValue = await js.key_value(BUCKET)
                watcher = await kv.watch(CONFIG_KEY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("agent %s: no configuration in the %s bucket yet (%s); is the collector running?",
                            self.vantage, BUCKET, str(exc) or type(exc).__name__)  # fmt: skip
                await asyncio.sleep(2.0)
                continue
            try:
                while True:
                    try:
                        entry = await watcher.updates(timeout=30.0)  # type: ignore[no-untyped-call]
                    except NatsTimeout:
                        continue
                    if entry is not None and entry.value:
                        await self.apply(entry.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "agent %s: watching the configuration failed (%s); watching again", self.vantage, exc
                )
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]
                await asyncio.sleep(1.0)

    async def apply(self, text: bytes) -> bool:
        """Run the configuration `text` (from the bucket); a bad one is refused and the running one kept."""
        digest = config_digest(text)
        if digest == self.digest:
            return True
        try:
            # ${NAME} comes from this machine's environment: secrets never travel through NATS.
            config = parse_config(text.decode("utf-8", "replace"), f"{BUCKET}/{CONFIG_KEY}")
        except ConfigError as exc:
            for issue in [str(i) for i in exc.issues[:50]] or [str(exc)]:
                log.error("agent %s: configuration %s refused, keeping the running one: %s", self.vantage,
                          digest, issue)  # fmt: skip
            return False
        vantage = config.vantages.get(self.vantage)
        if vantage is None or not vantage.agent:
            log.error("agent %s: the configuration %s has no agent vantage %r (vantages: {NAME: {agent: "
                      "true}}); probing nothing", self.vantage, digest, self.vantage)  # fmt: skip
        mine = () if vantage is None or not vantage.agent else config.checks
        checks = {c.name: replace(c, vantages=(self.vantage,)) for c in mine if self.vantage in c.vantages}
        plan = self.schedule.plan({c.name: c.interval for c in checks.values()})
        await self.pool.sync({} if vantage is None else {self.vantage: vantage})
        self.checks = checks
        self.signatures = {name: config.signatures_for(c) for name, c in checks.items()}
        if self.render is None:
            self.render = renderer_for(replace(config, checks=tuple(checks.values())))
        self.config, self.digest = config, digest
        self.schedule.apply(plan)
        if not self._started:
            self.schedule.start()
            self._started = True
        log.info("agent %s: configuration %s: %d checks", self.vantage, digest, len(checks))
        return True

    # -- probing and publishing ------------------------------------------------------------------

    async def _run_check(self, name: str) -> None:
        check, config = self.checks.get(name), self.config
        if check is None or config is None or self._stop.is_set():
            return
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            for result in await probe_everywhere(
                self.pool, check, self.signatures[name], config.redact, self.limit, render=self.render
            ):
                self.probes += 1
                await self.publish(result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agent %s: check %s: run failed", self.vantage, name)
        finally:
            self._in_flight.discard(task)

    async def publish(self, result: ProbeResult) -> None:
        """Publish one result with a new id; while disconnected it waits in the buffer, or is counted lost."""
        assert self._nc is not None
        result_id = uuid.uuid4().hex
        try:
            await self._nc.publish(
                results_subject(self.vantage),
                result_message(result, result_id),
                headers={"Nats-Msg-Id": result_id},
            )
        except (OutboundBufferLimitError, NatsError) as exc:
            self.dropped += 1
            logged, at = self._drops_logged
            if logged == 0 or time.monotonic() - at >= DROP_LOG_EVERY:
                self._drops_logged = (self.dropped, time.monotonic())
                log.error("agent %s: a result could not be kept for sending (%s): %d lost in all",
                          self.vantage, type(exc).__name__, self.dropped)  # fmt: skip

    async def _beat(self) -> None:
        assert self._nc is not None
        while True:
            # Only when connected: a heartbeat held in the buffer would arrive late and lie about now.
            if self._nc.is_connected:
                beat = Heartbeat(
                    self.vantage, utcnow(), self.heartbeat, self.probes, self.dropped, self.digest
                )
                with contextlib.suppress(NatsError):
                    await self._nc.publish(heartbeat_subject(self.vantage), heartbeat_message(beat))
            await asyncio.sleep(self.heartbeat)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        self.schedule.pause()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=STOP_DEADLINE)
        self.schedule.shutdown()
        for task in [*tasks, *self._in_flight]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pool.close()
        if self.render is not None:
            await self.render.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):  # the results still buffered get a last chance
                await asyncio.wait_for(self._nc.flush(timeout=2), 3.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 3.0)
        log.info("agent %s stopped: %d probes, %d results lost", self.vantage, self.probes, self.dropped)


async def _until(stop: asyncio.Future[Any], work: Coroutine[Any, Any, Client]) -> Client | None:
    """The connection `work` makes, or None if `stop` comes first."""
    task = asyncio.ensure_future(work)
    await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
