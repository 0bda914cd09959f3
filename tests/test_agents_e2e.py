"""Agents end to end: a real nats-server on loopback, a collector and agents as processes.

Agents probe from 127.0.0.2-4 (their vantages' source addresses), so the target knows which agent
each request came from, and every answered probe can be matched with a stored result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from prober.agents import STREAM
from tests.conftest import ProberProcess, Target, wait_for

NATS_SERVER = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NATS_SERVER is None, reason="needs nats-server (Debian: nats-server)"),
]
nats = pytest.importorskip("nats")

ADDRESSES = {"us": "127.0.0.2", "jp": "127.0.0.3", "uk": "127.0.0.4"}
AGENT_SUBJECTS = [  # what an agent's NATS user may publish, besides its own two subjects (deploy/nats)
    "$JS.API.INFO", "$JS.API.STREAM.INFO.KV_prober-config", "$JS.API.CONSUMER.CREATE.KV_prober-config",
    "$JS.API.CONSUMER.CREATE.KV_prober-config.>", "$JS.API.CONSUMER.DELETE.KV_prober-config.>",
    "$JS.API.CONSUMER.INFO.KV_prober-config.>",
    "$JS.API.DIRECT.GET.KV_prober-config.>", "$JS.FC.KV_prober-config.>",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """A nats-server process with its own port, store directory and configuration file."""

    def __init__(self, root: Path, name: str, body: str) -> None:
        self.dir = root / name
        self.dir.mkdir()
        self.port = free_port()
        self.conf = self.dir / "nats.conf"
        self.conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\nserver_name: {name}\n'
            + body.replace("STORE", str(self.dir / "js"))
        )
        self.process: asyncio.subprocess.Process | None = None
        self.log = self.dir / "nats.log"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                NATS_SERVER or "nats-server",
                "-c",
                str(self.conf),
                stdout=out,
                stderr=out,
                stdin=asyncio.subprocess.DEVNULL,
            )

        async def ready() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return "Server is ready" in self.log.read_text()

        await wait_for(ready, 20, f"nats-server {self.conf}", self.log.read_text)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(sig)
            await asyncio.wait_for(self.process.wait(), 20)


def leaf_permissions(domain: str, vantages: list[str]) -> dict[str, list[str]]:
    """What a region's leaf node may send to the hub and receive from it (deploy/nats/hub.conf):
    its agents' heartbeats and configuration reads (in the hub's domain), and what the hub's
    stream needs to source the leaf's: the consumer it makes there, its messages and flow control."""
    return {
        "publish": [
            *(f"prober.heartbeat.{v}" for v in vantages),
            *(s.replace("$JS.API.", "$JS.hub.API.") for s in AGENT_SUBJECTS),
            "$JS.S.>",  # the sourced messages and heartbeats, to the hub's stream
            "$JSC.R.>",  # the leaf's answers to the hub's JetStream requests
        ],
        "subscribe": [
            "_INBOX.>",  # answers to its agents, and the configuration's updates
            f"$JS.{domain}.API.CONSUMER.CREATE.{STREAM}",  # the hub's stream sourcing the leaf's
            f"$JS.FC.{STREAM}.>",  # the hub's stream's flow control answers
        ],
    }


def hub_body(leafnodes: bool = False) -> str:
    users = ["{user: collector, password: collector-pw}"]
    for v in ADDRESSES:
        allow = json.dumps([f"prober.results.{v}", f"prober.heartbeat.{v}", *AGENT_SUBJECTS])
        users.append(f'{{user: {v}, password: {v}-pw, permissions: {{publish: {{allow: {allow}}}, '
                     f'subscribe: {{allow: ["_INBOX.>"]}}}}}}')  # fmt: skip
    if leafnodes:
        perms = {k: {"allow": v} for k, v in leaf_permissions("leaf-us", ["us"]).items()}
        users.append(f"{{user: leaf-us, password: leaf-us-pw, permissions: {json.dumps(perms)}}}")
    leaf = f'leafnodes {{ listen: "127.0.0.1:{free_port()}" }}\n' if leafnodes else ""
    return (
        'jetstream { store_dir: "STORE", domain: hub }\n' + leaf
        + "accounts { PROBER { jetstream: enabled, users: [\n" + ",\n".join(users) + "\n] } }\n"
    )  # fmt: skip


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Callable[[str, str], Awaitable[NatsServer]]]:
    started: list[NatsServer] = []

    async def start(name: str, body: str) -> NatsServer:
        server = NatsServer(tmp_path, name, body)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(signal.SIGKILL)


def write_checks(path: Path, target: Target, checks: dict[str, list[str]], interval: str = "500ms") -> Path:
    vantages = "\n".join(
        f"  {v}: {{region: {v.upper()}, agent: true, source_address: {a}}}" for v, a in ADDRESSES.items()
    )
    body = "\n".join(
        f"  - {{name: {n}, url: '{target.url}/ok', vantages: {json.dumps(vs)}}}" for n, vs in checks.items()
    )
    defaults = f"{{interval: {interval}, timeout: 3s, confirm: 1, recover: 1}}"
    path.write_text(
        f"vantages:\n{vantages}\n  local: {{region: EU}}\ndefaults: {defaults}\nchecks:\n{body}\n"
    )
    return path


def stored(
    db: Path, sql: str = "SELECT vantage, count(*), count(DISTINCT result_id) FROM results GROUP BY vantage"
) -> list[tuple]:  # type: ignore[type-arg]
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return []
    finally:
        conn.close()


def counts(db: Path) -> dict[str, int]:
    return {v: n for v, n, _ in stored(db)}


def hits(target: Target) -> dict[str, int]:
    out = dict.fromkeys(ADDRESSES, 0)
    by_address = {a: v for v, a in ADDRESSES.items()}
    for peer in target.peers:
        if peer in by_address:
            out[by_address[peer]] += 1
    return out


async def get_json(url: str) -> object:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.json()


Start = Callable[..., Awaitable[ProberProcess]]


@pytest.mark.timeout(300)  # what the killed collector took unacked comes back after the 30 s ack wait
async def test_collector_killed_for_seconds_stores_every_answered_probe_exactly_once(
    tmp_path: Path,
    target: Target,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
) -> None:
    hub = await servers("hub", hub_body())
    config = write_checks(tmp_path / "checks.yaml", target, {"web": list(ADDRESSES)})
    db = tmp_path / "prober.db"
    url = f"nats://collector:collector-pw@127.0.0.1:{hub.port}"
    collector = await prober_process("run", "-c", str(config), "--db", str(db), "--nats", url)
    agents = [
        await prober_process(
            "agent",
            "--nats",
            f"nats://{v}:{v}-pw@127.0.0.1:{hub.port}",
            "--vantage",
            v,
            "--heartbeat",
            "500ms",
        )
        for v in ADDRESSES
    ]

    def logs() -> str:
        return "\n".join(p.log[-3000:] for p in (collector, *agents))

    await wait_for(
        lambda: all(counts(db).get(v, 0) >= 2 for v in ADDRESSES), 60, "results from every agent", logs
    )
    await collector.stop(signal.SIGKILL)
    before = hits(target)
    # Agents go on probing while no collector runs: their results wait in the stream.
    await wait_for(
        lambda: all(hits(target)[v] >= before[v] + 12 for v in ADDRESSES), 60, "probes meanwhile", logs
    )
    collector = await prober_process("run", "-c", str(config), "--db", str(db), "--nats", url)
    await wait_for(
        lambda: all(counts(db).get(v, 0) >= before[v] + 12 for v in ADDRESSES), 60, "catching up", logs
    )
    for agent in agents:
        assert await agent.stop() == 0, agent.log
    answered = hits(target)
    # What the killed collector took without acking comes back after the ack wait (30 s).
    await wait_for(lambda: counts(db) == answered, 90, f"every answered probe stored: {answered}", logs)
    rows = stored(db)
    assert all(n == distinct for _, n, distinct in rows), rows  # each result once, by its id
    assert stored(db, "SELECT count(*) FROM incidents") == [(0,)]
    assert await collector.stop() == 0


async def test_reload_reaches_agents_and_a_killed_agent_is_unknown_without_incident(
    tmp_path: Path,
    target: Target,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
) -> None:
    hub = await servers("hub", hub_body())
    config = write_checks(tmp_path / "checks.yaml", target, {"web": ["us", "jp", "local"]})
    db = tmp_path / "prober.db"
    http = f"127.0.0.1:{free_port()}"
    collector = await prober_process(
        "run", "-c", str(config), "--db", str(db), "--http", http,
        "--nats", f"nats://collector:collector-pw@127.0.0.1:{hub.port}",
    )  # fmt: skip
    agents = {
        v: await prober_process(
            "agent",
            "--nats",
            f"nats://{v}:{v}-pw@127.0.0.1:{hub.port}",
            "--vantage",
            v,
            "--heartbeat",
            "500ms",
        )
        for v in ("us", "jp")
    }

    def logs() -> str:
        return "\n".join(p.log[-3000:] for p in (collector, *agents.values()))

    await wait_for(lambda: all(counts(db).get(v, 0) >= 2 for v in ("us", "jp", "local")), 60, "results", logs)
    # A reload on the collector reaches the agents: a check added for them is probed from there.
    write_checks(config, target, {"web": ["us", "jp", "local"], "added": ["us"]})
    collector.process.send_signal(signal.SIGHUP)
    sql = "SELECT vantage, count(*), 0 FROM results WHERE check_name = 'added' GROUP BY vantage"
    await wait_for(
        lambda: dict((v, n) for v, n, _ in stored(db, sql)).get("us", 0) >= 2, 30, "the added check", logs
    )
    agents_json = await get_json(f"http://{http}/api/agents")
    assert {a["vantage"]: a["config_current"] for a in agents_json["agents"]} == {
        "us": True,
        "jp": True,
        "uk": False,
    }  # type: ignore[index]

    await agents["jp"].stop(signal.SIGKILL)

    async def jp_silent() -> bool:
        data = await get_json(f"http://{http}/api/agents")
        return any(a["vantage"] == "jp" and a["state"] == "silent" for a in data["agents"])  # type: ignore[index]

    await wait_for(jp_silent, 20, "jp silent", logs)

    async def jp_unknown() -> bool:
        data = await get_json(f"http://{http}/api/checks")
        web = next(c for c in data["checks"] if c["name"] == "web")  # type: ignore[index]
        return web["regions"].get("JP") == "unknown" and web["state"] == "operational"  # type: ignore[no-any-return]

    await wait_for(jp_unknown, 20, "JP unknown, the check operational", logs)
    async with aiohttp.ClientSession() as session, session.get(f"http://{http}/metrics") as resp:
        assert 'prober_agent_silent{region="JP",vantage="jp"} 1.0' in await resp.text()
    async with aiohttp.ClientSession() as session, session.get(f"http://{http}/") as resp:
        assert "Agent jp silent since" in await resp.text()
    assert stored(db, "SELECT count(*) FROM incidents") == [(0,)]
    assert "agent jp silent since" in collector.log
    assert await collector.stop() == 0
    assert await agents["us"].stop() == 0


async def test_an_agent_cannot_publish_as_another_and_forged_payloads_are_refused(
    tmp_path: Path,
    target: Target,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
) -> None:
    from prober.agents.wire import result_message
    from prober.model import ProbeResult, Surface, Verdict, utcnow

    hub = await servers("hub", hub_body())
    config = write_checks(
        tmp_path / "checks.yaml", target, {"web": ["us", "jp"], "us-only": ["us"]}, interval="1h"
    )
    db = tmp_path / "prober.db"
    http = f"127.0.0.1:{free_port()}"
    collector = await prober_process(
        "run", "-c", str(config), "--db", str(db), "--http", http,
        "--nats", f"nats://collector:collector-pw@127.0.0.1:{hub.port}",
    )  # fmt: skip
    await wait_for(lambda: "collecting results" in collector.log, 30, "the collector", lambda: collector.log)
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(f"nats://us:us-pw@127.0.0.1:{hub.port}", error_cb=on_error)
    try:

        def message(check: str, vantage: str, n: int) -> tuple[str, bytes]:
            r = ProbeResult(utcnow(), check, vantage, "X", Surface.WEB, "u", Verdict.UP, status=200)
            return f"{n:032d}", result_message(r, f"{n:032d}")

        rid, data = message("web", "jp", 1)
        await nc.publish("prober.results.jp", data, headers={"Nats-Msg-Id": rid})  # not its subject
        await nc.flush()
        await wait_for(
            lambda: any("permissions violation" in e.lower() for e in errors), 10, f"refusal: {errors}"
        )
        for n, (check, vantage) in enumerate([("web", "jp"), ("us-only", "jp"), ("nope", "us")], start=2):
            rid, data = message(check, vantage, n)  # forged on its own subject
            await nc.publish("prober.results.us", data, headers={"Nats-Msg-Id": rid})
        # A heartbeat from a clock 5 s ahead: shown, and warned about.
        beat = {"vantage": "us", "ts": (utcnow() + timedelta(seconds=5)).isoformat(), "interval": 5.0}
        await nc.publish("prober.heartbeat.us", json.dumps(beat).encode())
        rid, data = message("us-only", "us", 9)  # a genuine one, last
        await nc.publish("prober.results.us", data, headers={"Nats-Msg-Id": rid})
        await nc.flush()
    finally:
        await nc.close()
    await wait_for(lambda: counts(db) == {"us": 1}, 30, "the genuine result, alone", lambda: collector.log)
    async with aiohttp.ClientSession() as session, session.get(f"http://{http}/metrics") as resp:
        assert "prober_agent_messages_refused_total 3.0" in await resp.text()
    assert collector.log.count("refused a message on prober.results.us") >= 1
    agents = {a["vantage"]: a for a in (await get_json(f"http://{http}/api/agents"))["agents"]}  # type: ignore[index]
    assert agents["us"]["clock_skewed"] and 4.0 < agents["us"]["clock_skew_s"] < 5.5
    assert "agent us: its clock is +5" in collector.log
    assert await collector.stop() == 0


@dataclass
class Region:
    """A hub; the leaf node of region us, logged in to it as its own limited user; a collector
    sourcing the leaf's stream; and the agent of vantage us behind the leaf."""

    hub: NatsServer
    leaf: NatsServer
    db: Path
    collector: ProberProcess
    agent: ProberProcess

    def logs(self) -> str:
        return (
            "\n".join(p.log[-3000:] for p in (self.collector, self.agent)) + self.leaf.log.read_text()[-2000:]
        )


async def start_region(
    tmp_path: Path,
    target: Target,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
    *collector_args: str,
) -> Region:
    hub = await servers("hub", hub_body(leafnodes=True))
    leaf_port = int(hub.conf.read_text().split('leafnodes { listen: "127.0.0.1:')[1].split('"')[0])
    leaf = await servers("leaf-us", (
        'jetstream { store_dir: "STORE", domain: leaf-us }\n'
        f'leafnodes {{ remotes: [ {{ url: "nats-leaf://leaf-us:leaf-us-pw@127.0.0.1:{leaf_port}", '
        'deny_exports: ["prober.results.>"] } ] }\n'
    ))  # fmt: skip
    config = write_checks(tmp_path / "checks.yaml", target, {"web": ["us"]})
    db = tmp_path / "prober.db"
    url = f"nats://collector:collector-pw@127.0.0.1:{hub.port}"
    collector = await prober_process(
        "run", "-c", str(config), "--db", str(db), "--nats", url, "--nats-leaf", "leaf-us", *collector_args
    )  # fmt: skip
    agent = await prober_process(
        "agent", "--nats", f"nats://127.0.0.1:{leaf.port}", "--vantage", "us", "--hub-domain", "hub",
        "--heartbeat", "500ms",
    )  # fmt: skip
    return Region(hub, leaf, db, collector, agent)


async def test_a_hub_restart_behind_a_leaf_node_loses_nothing(
    tmp_path: Path,
    target: Target,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
) -> None:
    region = await start_region(tmp_path, target, servers, prober_process)
    hub, db, collector, agent, logs = region.hub, region.db, region.collector, region.agent, region.logs

    await wait_for(lambda: counts(db).get("us", 0) >= 3, 60, "results through the leaf", logs)
    await hub.stop(signal.SIGKILL)
    before = hits(target)["us"]
    await wait_for(lambda: hits(target)["us"] >= before + 8, 30, "probes while the hub is away", logs)
    await hub.start()
    await wait_for(lambda: counts(db).get("us", 0) >= before + 8, 60, "catching up", logs)
    assert await agent.stop() == 0
    answered = hits(target)["us"]
    await wait_for(lambda: counts(db).get("us", 0) == answered, 90, f"all {answered} stored", logs)
    assert stored(db)[0][1] == stored(db)[0][2]
    assert await collector.stop() == 0


async def test_tls_with_a_ca_file(
    tmp_path: Path,
    target: Target,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    tls = f'tls {{ cert_file: "{tmp_path}/cert.pem", key_file: "{tmp_path}/key.pem" }}\n'
    hub = await servers("hub", tls + hub_body())
    config = write_checks(tmp_path / "checks.yaml", target, {"web": ["us"]})
    db = tmp_path / "prober.db"
    collector = await prober_process(
        "run", "-c", str(config), "--db", str(db), "--nats-ca", str(tmp_path / "ca.pem"),
        "--nats", f"tls://collector:collector-pw@localhost:{hub.port}",
    )  # fmt: skip
    agent = await prober_process(
        "agent", "--nats", f"tls://us:us-pw@localhost:{hub.port}", "--vantage", "us",
        "--nats-ca", str(tmp_path / "ca.pem"),
    )  # fmt: skip
    await wait_for(
        lambda: counts(db).get("us", 0) >= 2, 60, "results over TLS", lambda: collector.log + agent.log
    )
    assert "collector-pw" not in collector.log + agent.log  # passwords never logged
    assert await agent.stop() == 0 and await collector.stop() == 0


async def test_results_that_do_not_fit_the_reconnect_buffer_are_counted_and_logged(
    servers: Callable[[str, str], Awaitable[NatsServer]], caplog: pytest.LogCaptureFixture
) -> None:
    from prober.agents.agent import Agent
    from prober.agents.link import Link, connect
    from prober.model import ProbeResult, Surface, Verdict, utcnow

    server = await servers("solo", "")
    agent = Agent(Link(f"nats://127.0.0.1:{server.port}"), "us", buffer=4096)
    nc = agent._nc = await connect(agent.link, "test", buffer=4096)
    try:
        await server.stop(signal.SIGKILL)
        await wait_for(lambda: not nc.is_connected, 10, "the client to see the server gone")
        result = ProbeResult(utcnow(), "web", "us", "US", Surface.WEB, "u", Verdict.UP, status=200)
        for _ in range(40):  # about 300 bytes each: the first dozen fit
            await agent.publish(result)
        assert 0 < agent.dropped < 40
        assert f"{agent.dropped} lost in all" in caplog.text or "could not be kept" in caplog.text
    finally:
        with contextlib.suppress(ConnectionResetError):  # nats-py's close, with the server gone
            await nc.close()
        await agent.pool.close()


async def test_a_leaf_nodes_user_forwards_its_regions_results_and_nothing_else(
    tmp_path: Path,
    target: Target,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
) -> None:
    http = f"127.0.0.1:{free_port()}"
    region = await start_region(tmp_path, target, servers, prober_process, "--http", http)
    hub, leaf, db, logs = region.hub, region.leaf, region.db, region.logs

    async def heard() -> dict[str, object]:
        data = await get_json(f"http://{http}/api/agents")
        return {a["vantage"]: a["heard_at"] for a in data["agents"]}  # type: ignore[index]

    await wait_for(lambda: counts(db).get("us", 0) >= 2, 30, "results through the leaf", logs)
    assert (await heard())["us"] is not None  # heartbeats pass too
    # Anyone on the region's machine can talk to its leaf node; what reaches the hub is what the
    # leaf's user may send: not a new configuration, not JetStream's API, not another region's voice.
    nc = await nats.connect(f"nats://127.0.0.1:{leaf.port}")
    try:
        await nc.publish("$KV.prober-config.checks", b"checks: []\n")
        await nc.publish("$JS.hub.API.STREAM.DELETE.PROBER_RESULTS", b"")
        beat = {"vantage": "jp", "ts": "2026-12-01T12:00:00+00:00", "interval": 5.0}
        await nc.publish("prober.heartbeat.jp", json.dumps(beat).encode())
        await nc.flush()
    finally:
        await nc.close()
    stored_before = counts(db)["us"]
    await wait_for(
        lambda: counts(db).get("us", 0) >= stored_before + 2, 20, "results after the attempts", logs
    )
    assert (await heard())["jp"] is None
    hc = await nats.connect(f"nats://collector:collector-pw@127.0.0.1:{hub.port}")
    try:
        js = hc.jetstream()
        entry = await (await js.key_value("prober-config")).get("checks")
        assert entry.value == (tmp_path / "checks.yaml").read_bytes()
        assert (await js.stream_info(STREAM)).config.name == STREAM
    finally:
        await hc.close()
    # The leaf drops what its user may not send (the hub told it the permissions): nothing is
    # refused at the hub, and nothing the leaf and its agent need was refused either.
    assert "Permissions Violation" not in hub.log.read_text() + leaf.log.read_text(), logs()
    assert await region.agent.stop() == 0 and await region.collector.stop() == 0


def test_the_example_leaf_user_has_exactly_what_the_tests_grant() -> None:
    import re

    text = (Path(__file__).resolve().parent.parent / "deploy" / "nats" / "permissions.conf").read_text()
    block = text.split("LEAF_LONDON: {", 1)[1].split("\n}", 1)[0]
    publish, subscribe = block.split("subscribe:", 1)
    granted = {"publish": re.findall(r'"([^"]+)"', publish), "subscribe": re.findall(r'"([^"]+)"', subscribe)}
    assert granted == leaf_permissions("leaf-london", ["london"])
