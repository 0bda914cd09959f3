"""The collector: `prober run --nats URL` publishes its configuration and takes the agents' results.

Results come from the JetStream stream PROBER_RESULTS through a durable pull consumer, a batch at a
time; each batch is written in one transaction, idempotently on the result's id, and acked only
after that commit. A collector killed between the two gets the batch again after the ack wait,
and the duplicates are ignored. Accepted results feed the same trackers as local ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from hashlib import sha256
from typing import TYPE_CHECKING

import sqlite_utils
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, ExternalStream, StorageType, StreamConfig, StreamSource
from nats.js.errors import NotFoundError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as MetricsCollector

from prober.agents import BUCKET, CONFIG_KEY, CONSUMER, HEARTBEATS, RESULTS, STREAM
from prober.agents.link import Link, LinkError, connect
from prober.agents.roster import Roster
from prober.agents.wire import Received, Refused, parse_heartbeat, parse_result
from prober.model import ProbeResult, utcnow
from prober.store import RESULT_COLUMNS

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext

    from prober.daemon import Daemon

log = logging.getLogger("prober.agents")

BATCH = 1000  # results taken from the stream at once
ACK_WAIT = 30.0  # seconds before a result taken and not acked (the collector died) comes back
MAX_AGE = 7 * 86400.0  # how long results wait in the stream for a collector
MAX_BYTES = 1 << 30
DUPLICATE_WINDOW = 120.0  # seconds JetStream drops a result published again with the same id
REFUSED_LOG_EVERY = 60.0

_INSERT = (
    f"INSERT OR IGNORE INTO results ({', '.join(RESULT_COLUMNS)}, result_id) "
    f"VALUES ({', '.join('?' * (len(RESULT_COLUMNS) + 1))})"
)
_KNOWN = "SELECT result_id FROM results WHERE result_id IN ({})"
Hook = Callable[[sqlite_utils.Database, list[ProbeResult]], None]


def store_unique(
    db: sqlite_utils.Database, received: Sequence[Received], hooks: Sequence[Hook]
) -> list[ProbeResult]:
    """Write `received` in one transaction, skipping ids already stored; the results that were new."""
    ids = [item.id for item in received]
    with db.conn:
        known = {row[0] for row in db.conn.execute(_KNOWN.format(",".join("?" * len(ids))), ids)}
        new: list[ProbeResult] = []
        rows = []
        for item in received:
            if item.id in known:
                continue
            known.add(item.id)  # twice in one batch: once
            row = item.result.to_row()
            rows.append((*(row[c] for c in RESULT_COLUMNS), item.id))
            new.append(item.result)
        db.conn.executemany(_INSERT, rows)
        if new:
            for hook in hooks:  # rollups count each result once, like the store's own batches
                hook(db, new)
    return new


def config_digest(text: bytes) -> str:
    """A short name of a configuration's text: agents report the one they run."""
    return sha256(text).hexdigest()[:16]


class Collector:
    """The daemon addon that talks to NATS (prober.daemon.Addon)."""

    def __init__(
        self, link: Link, *, leaves: Sequence[str] = (), batch: int = BATCH, ack_wait: float = ACK_WAIT
    ) -> None:
        self.link = link
        self.leaves = tuple(leaves)  # JetStream domains of leaf nodes whose streams this one sources
        self.batch = batch
        self.ack_wait = min(ack_wait, ACK_WAIT)
        self.roster = Roster()
        self.stored = 0  # results written
        self.duplicates = 0  # results delivered again and already stored
        self.refused = 0
        self.digest: str | None = None
        self._refused_logged = (0, 0.0)
        self._nc: Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._daemon: Daemon | None = None

    async def start(self, daemon: Daemon) -> None:
        """Connect, make the stream and the bucket, publish the configuration, start consuming."""
        self._daemon = daemon
        self._nc = nc = await connect(self.link, "prober-collector")
        js = nc.jetstream()
        try:
            await self._stream(js)
            await self.publish_config(daemon)
            sub = await js.pull_subscribe(
                f"{RESULTS}.*",
                durable=CONSUMER,
                stream=STREAM,
                config=ConsumerConfig(
                    ack_wait=self.ack_wait, max_ack_pending=20 * self.batch, max_deliver=-1
                ),
            )
        except LinkError:
            raise
        except Exception as exc:
            await nc.close()
            raise LinkError(f"NATS at {self.link.shown}: {type(exc).__name__}: {exc}") from exc
        await nc.subscribe(f"{HEARTBEATS}.*", cb=self._on_heartbeat)
        daemon.live.agents = self.agents_json  # /api/agents
        daemon.live.metrics.registry.register(_AgentMetrics(self))
        self._tasks = [asyncio.create_task(self._consume(sub)), asyncio.create_task(self._watch())]
        log.info(
            "collecting results from %s (stream %s, %d agent vantages)",
            self.link.shown,
            STREAM,
            len(self.roster.agents),
        )

    async def _stream(self, js: JetStreamContext) -> None:
        # A region's leaf node keeps its agents' results in a stream of its own while the hub is away;
        # this stream sources from it, and catches up when the hub is back.
        sources = [
            StreamSource(name=STREAM, external=ExternalStream(api=f"$JS.{d}.API")) for d in self.leaves
        ]
        config = StreamConfig(
            name=STREAM,
            sources=sources or None,
            subjects=[f"{RESULTS}.*"],
            storage=StorageType.FILE,
            max_age=MAX_AGE,
            max_bytes=MAX_BYTES,
            duplicate_window=DUPLICATE_WINDOW,
        )
        try:
            await js.stream_info(STREAM)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)

    async def publish_config(self, daemon: Daemon) -> None:
        """Put the configuration's text in the bucket, where agents watch it; follow its agents."""
        assert self._nc is not None
        text = await asyncio.get_running_loop().run_in_executor(None, daemon.config_path.read_bytes)
        js = self._nc.jetstream()
        try:
            kv = await js.key_value(BUCKET)
        except Exception:  # the bucket does not exist yet (nats-py raises several kinds)
            kv = await js.create_key_value(bucket=BUCKET, history=5)
        await kv.put(CONFIG_KEY, text)
        self.digest = config_digest(text)
        config = daemon.config
        self.roster.configure(((n, v.region) for n, v in config.vantages.items() if v.agent), utcnow())
        log.info("configuration %s published to the %s bucket", self.digest, BUCKET)

    async def reloaded(self, daemon: Daemon) -> None:
        """The daemon took a new configuration: agents get it too."""
        try:
            await self.publish_config(daemon)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "publishing the reloaded configuration to NATS failed; agents keep the previous one"
            )

    async def _consume(self, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                msgs = await sub.fetch(self.batch, timeout=1.0)
            except (NatsTimeout, TimeoutError):  # nothing to take within the second
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected: the client reconnects, the consumer is durable
                log.warning("taking results from %s failed: %s", STREAM, str(exc) or type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            try:
                await self._take(msgs)
            except asyncio.CancelledError:
                raise
            except Exception:  # not acked: they come back after the ack wait
                log.exception(
                    "storing %d results from agents failed; they will be delivered again", len(msgs)
                )
                await asyncio.sleep(1.0)

    async def _take(self, msgs: list[Msg]) -> None:
        assert self._daemon is not None
        daemon = self._daemon
        accepted: list[Received] = []
        for msg in msgs:
            try:
                accepted.append(parse_result(msg.data, msg.subject, daemon.config))
            except Refused as exc:
                self._refuse(msg.subject, str(exc))
        hooks = daemon.store.batch_hooks
        new = (
            await daemon.store.call(partial(store_unique, received=accepted, hooks=hooks)) if accepted else []
        )
        self.stored += len(new)
        self.duplicates += len(accepted) - len(new)
        daemon.monitor.observe(new, stored=True)
        for msg in msgs:  # after the commit: refused ones too, they would only come back refused
            await msg.ack()

    def _refuse(self, subject: str, why: str) -> None:
        self.refused += 1
        logged, at = self._refused_logged
        if logged == 0 or time.monotonic() - at >= REFUSED_LOG_EVERY:
            log.warning("refused a message on %s: %s (%d refused in all)", subject, why, self.refused)
            self._refused_logged = (self.refused, time.monotonic())

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            beat = parse_heartbeat(msg.data, msg.subject)
        except Refused as exc:
            self._refuse(msg.subject, str(exc))
            return
        now = utcnow()
        spoke_again, skewed = self.roster.heard(beat, now)
        if spoke_again and self._daemon is not None:
            log.info("agent %s speaks again", beat.vantage)
            self._daemon.monitor.set_silent(beat.vantage, False)
            self._daemon.live.set_silent(beat.vantage, None)
        if skewed:
            agent = self.roster.agents[beat.vantage]
            log.warning(
                "agent %s: its clock is %+.1fs from the collector's", beat.vantage, agent.skew_s or 0.0
            )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for agent in self.roster.fell_silent(utcnow()):
                since = agent.silent_since or utcnow()
                log.warning(
                    "agent %s silent since %s (%d heartbeats of %gs missed): its vantage is unknown",
                    agent.vantage,
                    since.isoformat(timespec="seconds"),
                    3,
                    agent.interval,
                )
                if self._daemon is not None:
                    self._daemon.monitor.set_silent(agent.vantage, True)
                    self._daemon.live.set_silent(agent.vantage, since)

    def agents_json(self) -> list[dict[str, object]]:
        """Every agent vantage as /api/agents shows it."""
        return [a.to_json(self.digest) for a in self.roster.agents.values()]

    async def stop(self) -> None:
        """Stop taking results (what was taken and not stored is not acked: it comes back), disconnect."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 3.0)


class _AgentMetrics(MetricsCollector):
    """The agents in /metrics: silent or not, clock skew, last heartbeat; results stored and refused."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        """The families as of now."""
        c = self.collector
        silent = GaugeMetricFamily(
            "prober_agent_silent", "1 while the agent has missed 3 heartbeats", labels=["vantage", "region"]
        )
        skew = GaugeMetricFamily(
            "prober_agent_clock_skew_seconds",
            "The agent's clock minus the collector's",
            labels=["vantage", "region"],
        )
        heard = GaugeMetricFamily(
            "prober_agent_last_heartbeat_timestamp_seconds",
            "When the agent's latest heartbeat arrived",
            labels=["vantage", "region"],
        )
        for a in c.roster.agents.values():
            labels = [a.vantage, a.region]
            silent.add_metric(labels, 0.0 if a.silent_since is None else 1.0)
            if a.skew_s is not None:
                skew.add_metric(labels, a.skew_s)
            if a.heard_at is not None:
                heard.add_metric(labels, a.heard_at.timestamp())
        yield from (silent, skew, heard)
        yield CounterMetricFamily("prober_agent_results_stored", "Agents' results stored", value=c.stored)
        yield CounterMetricFamily(
            "prober_agent_results_duplicate",
            "Agents' results delivered again, already stored",
            value=c.duplicates,
        )
        yield CounterMetricFamily(
            "prober_agent_messages_refused",
            "Messages from agents refused (forged, malformed, not theirs)",
            value=c.refused,
        )
