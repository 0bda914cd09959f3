"""Canaries: when a vantage's canaries fail too, its failures are its own (unknown/vantage), not the target's.

A canary here is a real aiohttp server on loopback that the test stops, as a vantage losing its
network would stop reaching it; the target is a closed port (down/connect) or a server answering 500.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from conftest import ProberProcess, start_app, wait_for

from prober.canary import FRESH, needs_canaries
from prober.config import Config, parse_config
from prober.model import ProbeResult, Reason, Verdict
from prober.probe import probe_everywhere
from prober.vantage import VantagePool


class CanaryDns(asyncio.DatagramProtocol):
    """The vantage's resolver: canary.test is 127.0.0.1."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        from dnslib import QTYPE, RR, A, DNSRecord

        request = DNSRecord.parse(data)
        reply = request.reply()
        if request.q.qtype == QTYPE.A and str(request.q.qname) == "canary.test.":
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=0))
        self.transport.sendto(reply.pack(), addr)  # type: ignore[attr-defined]


class Canary:
    """An always-up page, canary.test, on 127.0.0.1, with the vantage's resolver: both can be
    stopped and started again on the same ports. Stopped, the vantage "loses its network": its
    resolver is unreachable. (A closed port would not do: a refusal shows the network works.)"""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.hits = 0
        self.port = 0
        self.dns_port = 0
        self._runner: web.AppRunner | None = None
        self._dns: asyncio.BaseTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._dns, _ = await loop.create_datagram_endpoint(CanaryDns, local_addr=("127.0.0.1", self.dns_port))
        self.dns_port = self._dns.get_extra_info("sockname")[1]

        async def page(request: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(status=self.status)

        app = web.Application()
        app.router.add_get("/", page)
        if self.port == 0:
            self._runner, self.port = await start_app(app)
        else:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._dns is not None:
            self._dns.close()
            self._dns = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://canary.test:{self.port}/"

    @property
    def vantage(self) -> str:
        """The vantage's YAML mapping: its canary and its resolver."""
        return f'{{region: LAB, resolver: ["127.0.0.1:{self.dns_port}"], canaries: ["{self.url}"]}}'


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    canary = Canary()
    await canary.start()
    yield canary
    await canary.stop()


def config_with(canary: Canary, checks: str) -> Config:
    text = f"""
    vantages:
      lab: {canary.vantage}
    checks:
    """
    return parse_config(textwrap.dedent(text) + textwrap.indent(textwrap.dedent(checks), "  "), env={})


async def probe_all(pool: VantagePool, cfg: Config) -> list[ProbeResult]:
    batches = await asyncio.gather(*(probe_everywhere(pool, c, ()) for c in cfg.checks))
    return [r for batch in batches for r in batch]


async def probe_one(cfg: Config) -> ProbeResult:
    """The only result of a configuration with one check, probed with a fresh pool."""
    pool = VantagePool()
    await pool.sync(cfg.vantages)
    try:
        (result,) = await probe_all(pool, cfg)
    finally:
        await pool.close()
    return result


def outcome(result: ProbeResult) -> tuple[Verdict, Reason | None]:
    return result.verdict, result.reason


async def test_failures_are_the_vantages_when_its_canaries_fail_too(canary: Canary, closed_port: int) -> None:
    cfg = config_with(canary, f"- {{name: app, url: 'http://127.0.0.1:{closed_port}/'}}")
    pool = VantagePool()
    await pool.sync(cfg.vantages)
    try:
        (down,) = await probe_all(pool, cfg)  # the canary answers: the target is down
        assert outcome(down) == (Verdict.DOWN, Reason.CONNECT), down
        assert canary.hits == 1
        await canary.stop()  # the vantage "loses its network"
        (offline,) = await probe_all(pool, cfg)
        assert outcome(offline) == (Verdict.UNKNOWN, Reason.VANTAGE), offline
        assert "canaries failed too" in (offline.error or "") and canary.url in (offline.error or "")
        assert "refused" in (offline.error or "")  # the probe's own error is kept
        assert "could not be contacted" in (offline.error or "")  # what the canary got
        await canary.start()  # back online: the target's failure is its own again, once the
        # failed round is older than its window (FRESH, 2 s): rounds are a second apart, so a few tries
        deadline = time.monotonic() + 3 * FRESH.total_seconds()
        while outcome(again := (await probe_all(pool, cfg))[0]) != (Verdict.DOWN, Reason.CONNECT):
            assert outcome(again) == (Verdict.UNKNOWN, Reason.VANTAGE), again
            assert time.monotonic() < deadline, "the failed round outlived its window"
    finally:
        await pool.close()


async def test_one_round_of_canaries_judges_every_check_failing_at_once(
    canary: Canary, closed_port: int
) -> None:
    checks = "".join(f"- {{name: c{i}, url: 'http://127.0.0.1:{closed_port}/'}}\n" for i in range(40))
    cfg = config_with(canary, checks)
    pool = VantagePool()
    await pool.sync(cfg.vantages)
    try:
        results = await probe_all(pool, cfg)
        assert {outcome(r) for r in results} == {(Verdict.DOWN, Reason.CONNECT)}
        assert 1 <= canary.hits <= 2  # not 40: results share a round (a late one may need a second)
        await canary.stop()
        results = await probe_all(pool, cfg)
        assert {outcome(r) for r in results} == {(Verdict.UNKNOWN, Reason.VANTAGE)}
    finally:
        await pool.close()


async def test_a_canary_answering_with_an_error_still_shows_the_network_works(closed_port: int) -> None:
    canary = Canary(status=503)  # the canary's own site is broken, but it answered
    await canary.start()
    try:
        result = await probe_one(
            config_with(canary, f"- {{name: app, url: 'http://127.0.0.1:{closed_port}/'}}")
        )
    finally:
        await canary.stop()
    assert outcome(result) == (Verdict.DOWN, Reason.CONNECT)


@pytest.mark.parametrize(
    ("verdict", "reason", "asks"),
    [
        (Verdict.DOWN, Reason.CONNECT, True),
        (Verdict.DOWN, Reason.DNS, True),
        (Verdict.DOWN, Reason.TIMEOUT, True),
        (Verdict.DOWN, Reason.TLS, True),
        (Verdict.DOWN, Reason.HTTP_STATUS, False),  # the target answered: the network works
        (Verdict.DOWN, Reason.ERROR_PAGE, False),
        (Verdict.UNKNOWN, Reason.VANTAGE, False),
        (Verdict.UP, None, False),
    ],
)
def test_which_results_ask_the_canaries(verdict: Verdict, reason: Reason | None, asks: bool) -> None:
    from datetime import UTC, datetime

    from prober.model import Surface

    result = ProbeResult(datetime.now(UTC), "c", "v", "r", Surface.WEB, "http://x/", verdict, reason)
    assert needs_canaries(result) is asks


async def test_an_answered_failure_is_never_excused(canary: Canary) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_get("/", broken)
    runner, port = await start_app(app)
    await canary.stop()
    try:
        result = await probe_one(config_with(canary, f"- {{name: app, url: 'http://127.0.0.1:{port}/'}}"))
    finally:
        await runner.cleanup()
    assert outcome(result) == (Verdict.DOWN, Reason.HTTP_STATUS)


def test_prober_once_with_its_network_gone_opens_no_incident(closed_port: int, tmp_path: Path) -> None:
    # The canary's resolver is unreachable too: `once` records unknown/vantage and exits 0 (before: 1).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead_resolver = sock.getsockname()[1]
    config = tmp_path / "checks.yaml"
    config.write_text(
        textwrap.dedent(f"""
        defaults: {{confirm: 1}}
        vantages:
          lab: {{resolver: ["127.0.0.1:{dead_resolver}"], canaries: ["http://canary.test:{closed_port}/"]}}
        checks:
          - {{name: app, url: "http://127.0.0.1:{closed_port}/"}}
        """)
    )
    db = tmp_path / "p.db"
    cmd = [sys.executable, "-m", "prober", "once", "-c", str(config), "--db", str(db), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"reason": "vantage"' in done.stdout and "canaries failed too" in done.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from incidents").fetchone() == (0,)


@pytest.mark.slow
async def test_the_daemon_asks_the_canaries_too(
    canary: Canary,
    closed_port: int,
    tmp_path: Path,
    prober_process: Callable[..., Awaitable[ProberProcess]],
) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(
        textwrap.dedent(f"""
        defaults: {{interval: 300ms, timeout: 2s, confirm: 1}}
        vantages:
          lab: {canary.vantage}
        checks:
          - {{name: app, url: "http://127.0.0.1:{closed_port}/"}}
        """)
    )
    db = tmp_path / "p.db"

    def count(verdict: str) -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(db) as conn:
            query = "select count(*) from results where verdict = ?"
            try:
                return int(conn.execute(query, (verdict,)).fetchone()[0])
            except sqlite3.OperationalError:  # the table is not there yet
                return 0

    proc = await prober_process("run", "-c", str(config), "--db", str(db))
    try:
        await wait_for(lambda: count("down") >= 2, 20, "down results while the canary answers")
        await canary.stop()
        await wait_for(lambda: count("unknown") >= 2, 20, "unknown results once the canary is gone")
    finally:
        assert await proc.stop(signal.SIGTERM) == 0, proc.log
    with sqlite3.connect(db) as conn:
        errors = [e for (e,) in conn.execute("select error from results where verdict = 'unknown'")]
    assert all("canaries failed too" in e for e in errors), errors


def test_canaries_are_validated_like_check_urls() -> None:
    from prober.config import ConfigError

    text = 'vantages:\n  lab: {canaries: ["https://ok.example/", "ftp://x/"]}\nchecks: [{name: a, url: "http://a/"}]\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    (issue,) = info.value.issues
    assert (issue.line, issue.col, issue.path) == (2, 43, "vantages.lab.canaries[1]")
    assert "is not an http:// or https:// URL" in issue.message
    cfg = parse_config(text.replace("ftp://x/", "http://127.0.0.1/"), env={})
    assert cfg.vantages["lab"].canaries == ("https://ok.example/", "http://127.0.0.1/")


@pytest.mark.parametrize("behaviour", ["refused", "nxdomain", "silent", "tls-to-plain"])
async def test_a_canary_that_reached_a_peer_shows_the_network_works(behaviour: str, closed_port: int) -> None:
    # Before: any canary without an HTTP response counted as "offline", and turned the target's real
    # outage (here: refused) into unknown/vantage.
    canary = Canary()
    await canary.start()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):  # never answers; closes when the client gives up
            pass
        writer.close()

    never_answers = await asyncio.start_server(hold, "127.0.0.1", 0)
    silent_port = never_answers.sockets[0].getsockname()[1]
    url = {
        "refused": f"http://127.0.0.1:{closed_port}/",
        "nxdomain": f"http://nowhere.test:{canary.port}/",
        "silent": f"http://127.0.0.1:{silent_port}/",
        "tls-to-plain": f"https://127.0.0.1:{canary.port}/",
    }[behaviour]
    text = f"""
    vantages:
      lab: {{region: LAB, resolver: ["127.0.0.1:{canary.dns_port}"], canaries: ["{url}"]}}
    checks:
      - {{name: app, url: 'http://127.0.0.1:{closed_port}/'}}
    """
    try:
        result = await probe_one(parse_config(textwrap.dedent(text), env={}))
    finally:
        never_answers.close()
        await never_answers.wait_closed()
        await canary.stop()
    assert outcome(result) == (Verdict.DOWN, Reason.CONNECT), result
