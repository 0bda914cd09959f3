"""Vantages for real: source addresses, proxies and resolvers, against servers on loopback.

Every 127.x.y.z address is local, so a vantage bound to 127.0.0.2 really sends from 127.0.0.2 and
the server really sees it. The proxies below are minimal and test-only: they connect out from
their own address (127.0.0.9) so a target can tell a proxied probe from a direct one, and they
fail the way real proxies do (HTTP 502, SOCKS5 reply 5), which off-the-shelf Python proxies
such as pproxy do not (they confirm a tunnel before connecting, or close without a reply).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import gc
import json
import shutil
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme
from aiohttp import web
from conftest import ERROR_PAGE, HEALTHY_PAGE, ZoneResolver, start_app

from prober.config import Config, parse_config
from prober.model import ProbeResult, Reason, Verdict
from prober.probe import probe_check, probe_everywhere
from prober.resolver import LIVENESS_TIMEOUT
from prober.vantage import VantageClient, VantagePool

PROXY_EGRESS = "127.0.0.9"  # where the test proxies connect out from
UNASSIGNABLE = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never configured on this machine


# -- helpers -----------------------------------------------------------------------------------------


def config(text: str) -> Config:
    """Parse a dedented checks.yaml."""
    return parse_config(textwrap.dedent(text), env={})


async def probe_all(cfg: Config, check: str | None = None) -> dict[str, ProbeResult]:
    """Probe one check of `cfg` once from each of its vantages, with a fresh pool; results by vantage."""
    chk = cfg.checks[0] if check is None else cfg.check(check)
    pool = VantagePool()
    await pool.sync(cfg.vantages)
    try:
        results = await probe_everywhere(pool, chk, cfg.signatures_for(chk))
    finally:
        await pool.close()
    return {r.vantage: r for r in results}


async def probe_one(cfg: Config, check: str | None = None) -> ProbeResult:
    """The result of the check's only vantage."""
    (result,) = (await probe_all(cfg, check)).values()
    return result


def outcome(result: ProbeResult) -> tuple[Verdict, Reason | None]:
    return result.verdict, result.reason


UP = (Verdict.UP, None)
VANTAGE = (Verdict.UNKNOWN, Reason.VANTAGE)


# -- a target that answers according to who is asking --------------------------------------------------


@dataclass
class PeerServer:
    """An HTTP(S) server recording each request's peer address; peers in `broken` get an error page."""

    url: str = ""
    port: int = 0
    peers: list[str] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)
    name: str = "target"  # written into healthy pages, to tell two servers apart

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            assert request.transport is not None
            peer = request.transport.get_extra_info("peername")[0]
            self.peers.append(peer)
            text = ERROR_PAGE if peer in self.broken else HEALTHY_PAGE.replace("Welcome", self.name)
            return web.Response(text=text, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", page)
        return app


async def start_peer_server(
    host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None, **kwargs: object
) -> tuple[PeerServer, web.AppRunner]:
    server = PeerServer(**kwargs)  # type: ignore[arg-type]
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"{'https' if ssl_context else 'http'}://{host}:{server.port}/"
    return server, runner


@pytest.fixture
async def peer_server() -> AsyncIterator[PeerServer]:
    server, runner = await start_peer_server()
    yield server
    await runner.cleanup()


@pytest.fixture
async def tls_server(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PeerServer]:
    """An HTTPS PeerServer on 127.0.0.1 with a certificate from `ca`, which $SSL_CERT_FILE trusts."""
    cert = ca.issue_cert("127.0.0.1", not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # read when a vantage's SSL context is made
    server, runner = await start_peer_server(ssl_context=context)
    yield server
    await runner.cleanup()


# -- test-only proxies ---------------------------------------------------------------------------------


class TestProxy:
    """A minimal HTTP proxy (CONNECT, and absolute-form forwarding for http://) or SOCKS5 proxy.

    Connects out from `egress`; answers `deny` (e.g. 407) to every HTTP request when set; resolves
    names from `hosts` (remote DNS for SOCKS5). Records who connected and what they asked for.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self,
        kind: str,
        egress: str = PROXY_EGRESS,
        deny: int | None = None,
        hosts: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.egress = egress
        self.deny = deny
        self.hosts = hosts or {}
        self.connections = 0
        self.clients: list[str] = []  # the address each connection came from
        self.requests: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"{self.kind}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, close every connection, and wait (bounded) for the handlers to finish."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*self._handlers)
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.clients.append(writer.get_extra_info("peername")[0])
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            upstream = await (
                self._http(reader, writer) if self.kind == "http" else self._socks5(reader, writer)
            )
            if upstream is not None:
                self._writers.add(upstream[1])
                await asyncio.gather(_relay(reader, upstream[1]), _relay(upstream[0], writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away or spoke nonsense: this connection is over
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _connect(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.hosts.get(host, host), port, local_addr=(self.egress, 0))

    async def _http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *headers = head.split("\r\n")[:-2]
        method, target, version = request_line.split(" ")
        self.requests.append(f"{method} {target}")
        if self.deny is not None:
            writer.write(
                f"{version} {self.deny} Denied\r\nProxy-Authenticate: Basic realm=test\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            return None
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            path = ""
        else:
            parts = urlsplit(target)
            host, port, path = (
                parts.hostname or "",
                str(parts.port or 80),
                target[len(f"http://{parts.netloc}") :],
            )
        try:
            upstream = await self._connect(host, int(port))
        except OSError:
            writer.write(
                f"{version} 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            return None
        if method == "CONNECT":
            writer.write(f"{version} 200 Connection established\r\n\r\n".encode())
        else:
            kept = [h for h in headers if not h.lower().startswith("proxy-")]
            upstream[1].write(
                "\r\n".join([f"{method} {path or '/'} {version}", *kept, "", ""]).encode("latin-1")
            )
        return upstream

    async def _socks5(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        version, n_methods = await reader.readexactly(2)
        methods = await reader.readexactly(n_methods)
        if version != 5 or 0 not in methods:
            raise ValueError("not a SOCKS5 client without authentication")
        writer.write(b"\x05\x00")
        _, _connect, _, address_type = await reader.readexactly(4)  # CONNECT is all probes ask
        if address_type == 1:
            host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
        elif address_type == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        port = int.from_bytes(await reader.readexactly(2), "big")
        self.requests.append(f"SOCKS5 {host}:{port}")

        def reply(code: int) -> None:  # bound address 0.0.0.0:0: clients ignore it
            writer.write(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))

        try:
            upstream = await self._connect(host, port)
        except ConnectionRefusedError:
            reply(5)  # connection refused
            return None
        except OSError:
            reply(4)  # host unreachable
            return None
        reply(0)
        return upstream


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then close the other side too: one request per connection is all probes do."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def start_proxy() -> AsyncIterator[Callable[..., Awaitable[TestProxy]]]:
    """Start TestProxy(kind, ...) servers; every one is stopped at the end of the test."""
    proxies: list[TestProxy] = []

    async def start(kind: str, **kwargs: object) -> TestProxy:
        proxy = TestProxy(kind, **kwargs)  # type: ignore[arg-type]
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.stop()


# -- DNS servers -------------------------------------------------------------------------------------


class PeerZone(ZoneResolver):
    """A ZoneResolver that also records the address each query came from."""

    def __init__(self, records: dict[str, str]) -> None:
        super().__init__(records)
        self.clients: list[str] = []

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        self.clients.append(handler.client_address[0])
        return super().resolve(request, handler)


@pytest.fixture
def start_zone() -> Iterator[Callable[[dict[str, str]], tuple[str, PeerZone]]]:
    """Start dnslib servers (UDP, 127.0.0.1) answering from a dict; returns ("IP:PORT", zone)."""
    from dnslib.server import DNSLogger, DNSServer

    servers: list[DNSServer] = []

    def start(records: dict[str, str]) -> tuple[str, PeerZone]:
        zone = PeerZone(records)
        server = DNSServer(
            zone,
            port=0,
            address="127.0.0.1",
            logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"),
        )
        server.start_thread()
        servers.append(server)
        return f"127.0.0.1:{server.server.server_address[1]}", zone

    yield start
    for server in servers:
        server.stop()
        server.server.server_close()


@pytest.fixture
def silent_resolver() -> Iterator[str]:
    """A UDP port where a socket is bound but never answers: a DNS server that is down, not refusing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


# -- source address ------------------------------------------------------------------------------------


async def test_each_source_address_gets_its_own_answer(peer_server: PeerServer) -> None:
    peer_server.broken = {"127.0.0.2"}  # the server fails for one network only
    cfg = config(f"""
        vantages:
          us-east: {{region: US, source_address: 127.0.0.2}}
          tokyo: {{region: JP, source_address: 127.0.0.3}}
          london: {{region: UK, source_address: 127.0.0.4}}
        checks:
          - {{name: home, url: "{peer_server.url}"}}
        """)
    results = await probe_all(cfg)
    assert {name: outcome(r) for name, r in results.items()} == {
        "us-east": (Verdict.DOWN, Reason.ERROR_PAGE),
        "tokyo": UP,
        "london": UP,
    }
    assert results["us-east"].region == "US" and results["us-east"].signature
    assert sorted(peer_server.peers) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


async def test_unassignable_source_address_is_the_vantages_fault(peer_server: PeerServer) -> None:
    # The bind itself fails, before connect(): no packet can leave with that source.
    with socket.socket() as sock, pytest.raises(OSError) as bind_error:
        sock.bind((UNASSIGNABLE, 0))
    assert bind_error.value.errno == errno.EADDRNOTAVAIL
    cfg = config(f"""
        vantages:
          nowhere: {{source_address: {UNASSIGNABLE}}}
        checks:
          - {{name: home, url: "{peer_server.url}"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == VANTAGE, result
    assert UNASSIGNABLE in (result.error or "")
    assert peer_server.peers == []


async def test_source_address_of_another_family_is_the_vantages_fault(peer_server: PeerServer) -> None:
    # An IPv6 source cannot reach an IPv4-only target: the vantage cannot probe it, the target is fine.
    cfg = config(f"""
        vantages:
          v6: {{source_address: "::1"}}
        checks:
          - {{name: home, url: "{peer_server.url}"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == VANTAGE, result
    assert peer_server.peers == []


# -- proxies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_proxy_carries_plain_http_probes(
    kind: str, peer_server: PeerServer, start_proxy: Callable[..., Awaitable[TestProxy]]
) -> None:
    proxy = await start_proxy(kind)
    cfg = config(f"""
        vantages:
          direct: {{}}
          proxied: {{proxy: "{proxy.url}"}}
        checks:
          - {{name: home, url: "{peer_server.url}"}}
        """)
    results = await probe_all(cfg)
    assert outcome(results["direct"]) == UP and outcome(results["proxied"]) == UP
    assert sorted(peer_server.peers) == ["127.0.0.1", PROXY_EGRESS]  # direct, and through the proxy
    assert proxy.connections == 1
    expected = f"GET {peer_server.url}" if kind == "http" else f"SOCKS5 127.0.0.1:{peer_server.port}"
    assert proxy.requests == [expected]


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_proxy_carries_https_probes_with_tls_timing(
    kind: str, tls_server: PeerServer, start_proxy: Callable[..., Awaitable[TestProxy]]
) -> None:
    proxy = await start_proxy(kind)
    cfg = config(f"""
        vantages:
          proxied: {{proxy: "{proxy.url}"}}
        checks:
          - {{name: secure, url: "{tls_server.url}"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == UP, result
    assert tls_server.peers == [PROXY_EGRESS]
    assert proxy.connections == 1
    tunnel = "CONNECT" if kind == "http" else "SOCKS5"
    assert proxy.requests == [f"{tunnel} 127.0.0.1:{tls_server.port}"]
    assert result.phases.tls_ms is not None and result.phases.tls_ms > 0
    assert result.cert_days is not None and 29 < result.cert_days <= 30


async def test_socks5_resolves_names_at_the_proxy(
    peer_server: PeerServer, start_proxy: Callable[..., Awaitable[TestProxy]]
) -> None:
    # Without a vantage resolver the name travels to the proxy: DNS is answered where the vantage is.
    proxy = await start_proxy("socks5", hosts={"far.test": "127.0.0.1"})
    cfg = config(f"""
        vantages:
          far: {{proxy: "{proxy.url}"}}
        checks:
          - {{name: home, url: "http://far.test:{peer_server.port}/"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == UP, result
    assert proxy.requests == [f"SOCKS5 far.test:{peer_server.port}"]
    assert peer_server.peers == [PROXY_EGRESS]


async def test_socks5_with_a_resolver_resolves_at_the_vantage(
    peer_server: PeerServer,
    start_proxy: Callable[..., Awaitable[TestProxy]],
    start_zone: Callable[[dict[str, str]], tuple[str, PeerZone]],
) -> None:
    # With a resolver the vantage's DNS server answers, and the proxy is handed an address.
    address, zone = start_zone({"app.test": "127.0.0.1"})
    proxy = await start_proxy("socks5")
    cfg = config(f"""
        vantages:
          near: {{proxy: "{proxy.url}", resolver: ["{address}"]}}
        checks:
          - {{name: app, url: "http://app.test:{peer_server.port}/"}}
          - {{name: missing, url: "http://missing.test:{peer_server.port}/"}}
        """)
    result = await probe_one(cfg, "app")
    assert outcome(result) == UP, result
    assert result.phases.dns_ms is not None
    assert proxy.requests == [f"SOCKS5 127.0.0.1:{peer_server.port}"]
    assert peer_server.peers == [PROXY_EGRESS]
    assert outcome(await probe_one(cfg, "missing")) == (Verdict.DOWN, Reason.DNS)
    assert zone.queries.count("missing.test") >= 1 and len(proxy.requests) == 1


async def test_http_proxy_with_a_source_address_binds_the_connection_to_the_proxy(
    peer_server: PeerServer, start_proxy: Callable[..., Awaitable[TestProxy]]
) -> None:
    proxy = await start_proxy("http")
    cfg = config(f"""
        vantages:
          bound: {{proxy: "{proxy.url}", source_address: 127.0.0.6}}
        checks:
          - {{name: home, url: "{peer_server.url}"}}
        """)
    assert outcome(await probe_one(cfg)) == UP
    assert proxy.clients == ["127.0.0.6"] and peer_server.peers == [PROXY_EGRESS]


async def test_socks5_with_a_source_address_binds_the_connection_to_the_proxy(
    peer_server: PeerServer, start_proxy: Callable[..., Awaitable[TestProxy]]
) -> None:
    proxy = await start_proxy("socks5")
    cfg = config(f"""
        vantages:
          bound: {{proxy: "{proxy.url}", source_address: 127.0.0.6}}
        checks:
          - {{name: home, url: "{peer_server.url}"}}
        """)
    assert outcome(await probe_one(cfg)) == UP
    assert proxy.clients == ["127.0.0.6"]


@pytest.mark.parametrize("scheme", ["http", "socks5", "socks4"])
async def test_dead_proxy_is_the_vantages_fault(
    scheme: str, closed_port: int, peer_server: PeerServer
) -> None:
    cfg = config(f"""
        vantages:
          dead: {{proxy: "{scheme}://127.0.0.1:{closed_port}"}}
        checks:
          - {{name: home, url: "{peer_server.url}"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == VANTAGE, result
    assert "proxy" in (result.error or "")
    assert peer_server.peers == []


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_proxy_reporting_the_target_refused_is_the_targets_fault(
    kind: str, closed_port: int, start_proxy: Callable[..., Awaitable[TestProxy]]
) -> None:
    # The proxy works; the target does not: HTTP CONNECT gets 502, SOCKS5 gets reply 5 (refused).
    proxy = await start_proxy(kind)
    cfg = config(f"""
        vantages:
          proxied: {{proxy: "{proxy.url}"}}
        checks:
          - {{name: down, url: "https://127.0.0.1:{closed_port}/"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == (Verdict.DOWN, Reason.CONNECT), result
    assert proxy.connections == 1


@pytest.mark.parametrize("scheme", ["https", "http"], ids=["connect", "forward"])
async def test_proxy_demanding_authentication_is_the_vantages_fault(
    scheme: str, peer_server: PeerServer, start_proxy: Callable[..., Awaitable[TestProxy]]
) -> None:
    proxy = await start_proxy("http", deny=407)
    cfg = config(f"""
        vantages:
          guarded: {{proxy: "{proxy.url}"}}
        checks:
          - {{name: home, url: "{scheme}://127.0.0.1:{peer_server.port}/"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == VANTAGE, result
    assert "407" in (result.error or "")
    assert proxy.connections == 1 and peer_server.peers == []


# -- resolvers -----------------------------------------------------------------------------------------


async def test_each_resolver_gets_its_own_answer(
    peer_server: PeerServer, start_zone: Callable[[dict[str, str]], tuple[str, PeerZone]]
) -> None:
    # A second server on 127.0.0.5, same port: only DNS decides which one a vantage reaches.
    other, other_runner = await start_peer_server("127.0.0.5", peer_server.port, name="other")
    try:
        here, _ = start_zone({"app.test": "127.0.0.1"})
        there, _ = start_zone({"app.test": "127.0.0.5"})
        nowhere, nowhere_zone = start_zone({})
        cfg = config(f"""
            vantages:
              here: {{resolver: ["{here}"]}}
              there: {{resolver: ["{there}"]}}
              nowhere: {{resolver: ["{nowhere}"]}}
            checks:
              - name: app
                url: "http://app.test:{peer_server.port}/"
                expect: {{body_contains: [target]}}
              - name: app-other
                url: "http://app.test:{peer_server.port}/"
                expect: {{body_contains: [other]}}
            """)
        first = await probe_all(cfg, "app")
        second = await probe_all(cfg, "app-other")
    finally:
        await other_runner.cleanup()
    assert outcome(first["here"]) == UP and outcome(second["there"]) == UP
    assert outcome(first["there"]) == (Verdict.DOWN, Reason.CONTENT)  # it reached the other server
    assert outcome(first["nowhere"]) == (Verdict.DOWN, Reason.DNS)
    assert "app.test" in (first["nowhere"].error or "")
    assert "app.test" in nowhere_zone.queries
    assert peer_server.peers == ["127.0.0.1", "127.0.0.1"] and len(other.peers) == 2
    assert first["here"].phases.dns_ms is not None


@pytest.mark.parametrize(
    ("probe_timeout", "noticed_by"),
    [(1.0, "within 1s"), (10.0, "did not answer")],
    ids=["probe-deadline-first", "resolver-gives-up-first"],  # c-ares gives up after about 4s
)
async def test_silent_resolver_is_the_vantages_fault(
    probe_timeout: float, noticed_by: str, silent_resolver: str, peer_server: PeerServer
) -> None:
    cfg = config(f"""
        vantages:
          deaf: {{resolver: ["{silent_resolver}"]}}
        checks:
          - {{name: app, url: "http://app.test:{peer_server.port}/", timeout: {probe_timeout}}}
        """)
    started = time.monotonic()
    result = await probe_one(cfg)
    elapsed = time.monotonic() - started
    assert outcome(result) == VANTAGE, result
    assert silent_resolver in (result.error or "") and (result.error or "").endswith(noticed_by)
    assert elapsed < probe_timeout + LIVENESS_TIMEOUT  # the resolver's silence to ". NS" is awaited
    assert peer_server.peers == []
    # Closing the vantage ended its abandoned lookup: no c-ares callback outlives the pool.
    assert asyncio.all_tasks() == {asyncio.current_task()}


class RcodeZone(PeerZone):
    """Answers by the name's first label: nx… NXDOMAIN, servfail… SERVFAIL, refused… REFUSED."""

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        from dnslib import RCODE

        label = str(request.q.qname).split(".", 1)[0]
        for prefix, rcode in (
            ("nx", RCODE.NXDOMAIN),
            ("servfail", RCODE.SERVFAIL),
            ("refused", RCODE.REFUSED),
        ):
            if label.startswith(prefix):
                self.queries.append(label)
                reply = request.reply()
                reply.header.rcode = rcode
                return reply
        return super().resolve(request, handler)


@pytest.mark.parametrize(
    ("name", "expected", "says"),
    [
        ("nx", (Verdict.DOWN, Reason.DNS), "cannot resolve nx.test"),
        ("servfail", (Verdict.DOWN, Reason.DNS), "cannot resolve servfail.test"),
        # A resolver that refuses us (an access list) says nothing about the name.
        ("refused", VANTAGE, "refused to answer"),
        ("app", UP, ""),
    ],
)
async def test_a_resolver_that_answers_judges_the_name(
    name: str, expected: tuple[Verdict, Reason | None], says: str, peer_server: PeerServer
) -> None:
    from dnslib.server import DNSLogger, DNSServer

    zone = RcodeZone({"app.test": "127.0.0.1"})
    server = DNSServer(zone, port=0, address="127.0.0.1", logger=DNSLogger("-request,-reply,-recv,-send"))
    server.start_thread()
    try:
        cfg = config(f"""
            vantages:
              lab: {{resolver: ["127.0.0.1:{server.server.server_address[1]}"]}}
            checks:
              - {{name: app, url: "http://{name}.test:{peer_server.port}/"}}
            """)
        result = await probe_one(cfg)
    finally:
        server.stop()
        server.server.server_close()
    assert outcome(result) == expected, result
    assert says in (result.error or "")


async def test_a_resolver_nobody_listens_on_is_the_vantages_fault(closed_udp_port: int) -> None:
    cfg = config(f"""
        vantages:
          lab: {{resolver: ["127.0.0.1:{closed_udp_port}"]}}
        checks:
          - {{name: app, url: "http://app.test/"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == VANTAGE, result
    assert f"127.0.0.1:{closed_udp_port} could not be contacted" in (result.error or "")


@pytest.fixture
def closed_udp_port() -> int:
    """A UDP port on 127.0.0.1 where nothing listens: a query there is refused (ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("server", ["closed", "silent", "answering"])
async def test_the_system_resolver_unreachable_is_the_vantages_fault(
    server: str,
    closed_udp_port: int,
    silent_resolver: str,
    start_zone: Callable[[dict[str, str]], tuple[str, PeerZone]],
) -> None:
    # The `local` vantage asks the system's DNS servers (resolv.conf's; here, test servers in their
    # place: the test below uses the real resolv.conf). Unreachable ("Could not contact DNS servers",
    # before: down/dns for every check) or silent is the vantage's fault; a server that answers
    # NXDOMAIN still judges the name.
    address = {"closed": f"127.0.0.1:{closed_udp_port}", "silent": silent_resolver}.get(server)
    if address is None:
        address, _ = start_zone({})
    cfg = config("checks: [{name: app, url: 'http://app.test/', timeout: 2s}]")
    pool = VantagePool(system_resolver=(address,))
    await pool.sync(cfg.vantages)
    try:
        (result,) = await probe_everywhere(pool, cfg.checks[0], ())
    finally:
        await pool.close()
    if server == "answering":
        assert outcome(result) == (Verdict.DOWN, Reason.DNS), result
    else:
        assert outcome(result) == VANTAGE, result
        assert "(the system's)" in (result.error or "")


def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_unshare(), reason="needs unprivileged user and network namespaces (unshare -rn)")
def test_a_machine_without_network_opens_no_incident(tmp_path: Path) -> None:
    # `prober once` in a fresh network namespace: no interface is up, so the system's resolver
    # cannot be contacted and no address has a route. Before: every check down/dns or down/connect,
    # incidents opened (confirm: 1), exit 1. Nothing leaves the namespace.
    config_path = tmp_path / "checks.yaml"
    config_path.write_text(
        textwrap.dedent("""
        defaults: {confirm: 1, timeout: 3s}
        checks:
          - {name: by-name, url: "http://www.example.com/"}
          - {name: by-address, url: "http://192.0.2.10/"}
          - {name: loopback, url: "http://127.0.0.1:9/"}
        """)
    )
    db = tmp_path / "p.db"
    cmd = ["unshare", "-rn", sys.executable, "-m", "prober", "once", "-c", str(config_path), "--db", str(db)]
    done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    results = {r["check"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert {(r["verdict"], r["reason"]) for r in results.values()} == {("unknown", "vantage")}, results
    assert "could not be contacted" in results["by-name"]["error"]
    assert "no route from this machine" in results["by-address"]["error"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from incidents").fetchone() == (0,)


async def test_source_address_and_resolver_together(
    peer_server: PeerServer, start_zone: Callable[[dict[str, str]], tuple[str, PeerZone]]
) -> None:
    address, zone = start_zone({"app.test": "127.0.0.1"})
    cfg = config(f"""
        vantages:
          both: {{source_address: 127.0.0.3, resolver: ["{address}"]}}
        checks:
          - {{name: app, url: "http://app.test:{peer_server.port}/"}}
        """)
    result = await probe_one(cfg)
    assert outcome(result) == UP, result
    assert peer_server.peers == ["127.0.0.3"]
    assert "app.test" in zone.queries
    assert set(zone.clients) == {"127.0.0.3"}  # DNS leaves from the vantage's address too


# -- sessions ------------------------------------------------------------------------------------------


def _vantages(text: str) -> Config:
    return config(
        f"vantages:\n{textwrap.indent(textwrap.dedent(text), '  ')}checks:\n  - {{name: c, url: 'http://127.0.0.1/'}}\n"
    )


async def test_one_session_per_vantage_reused_across_probes(peer_server: PeerServer) -> None:
    cfg = config(f"""
        vantages:
          a: {{source_address: 127.0.0.2}}
        checks:
          - {{name: home, url: "{peer_server.url}"}}
        """)
    pool = VantagePool()
    await pool.sync(cfg.vantages)
    try:
        client = pool.get("a")
        session = client.session()
        for _ in range(3):
            result = await probe_check(client, cfg.checks[0], cfg.signatures_for(cfg.checks[0]))
            assert outcome(result) == UP
        assert pool.get("a") is client and client.session() is session and not session.closed
    finally:
        await pool.close()
    assert peer_server.peers == ["127.0.0.2"] * 3
    assert session.closed


async def test_sync_keeps_unchanged_vantages_and_replaces_changed_ones() -> None:
    before = _vantages("""
        same: {source_address: 127.0.0.2}
        moved: {source_address: 127.0.0.3}
        gone: {}
        """)
    after = _vantages("""
        same: {source_address: 127.0.0.2}
        moved: {source_address: 127.0.0.4}
        new: {}
        """)
    pool = VantagePool()
    try:
        await pool.sync(before.vantages)
        old = {name: pool.get(name) for name in ("same", "moved", "gone")}
        sessions = {name: client.session() for name, client in old.items()}
        await pool.sync(after.vantages)  # a reload: a new, equal configuration object for `same`
        assert pool.get("same") is old["same"] and not sessions["same"].closed
        assert pool.get("moved") is not old["moved"]
        assert pool.get("moved").vantage.source_address == "127.0.0.4"
        assert sessions["moved"].closed and sessions["gone"].closed
        assert pool.get("new").name == "new"
        with pytest.raises(KeyError):
            pool.get("gone")
    finally:
        await pool.close()


async def test_closing_the_pool_closes_every_session(
    peer_server: PeerServer,
    start_proxy: Callable[..., Awaitable[TestProxy]],
    start_zone: Callable[[dict[str, str]], tuple[str, PeerZone]],
) -> None:
    address, _ = start_zone({"app.test": "127.0.0.1"})
    proxy = await start_proxy("socks5", hosts={"app.test": "127.0.0.1"})
    cfg = config(f"""
        vantages:
          plain: {{}}
          bound: {{source_address: 127.0.0.2}}
          resolving: {{resolver: ["{address}"]}}
          socks: {{proxy: "{proxy.url}"}}
        checks:
          - {{name: app, url: "http://app.test:{peer_server.port}/", vantages: [resolving, socks]}}
          - {{name: home, url: "{peer_server.url}", vantages: [plain, bound]}}
        """)
    pool = VantagePool()
    await pool.sync(cfg.vantages)
    try:
        sessions = [pool.get(name).session() for name in cfg.vantages]
        connectors = [s.connector for s in sessions]
        for check in cfg.checks:  # every kind of vantage opens (and drops) real connections
            assert [outcome(r) for r in await probe_everywhere(pool, check, ())] == [UP, UP]
    finally:
        await pool.close()
    assert all(s.closed for s in sessions)
    assert all(c is not None and c.closed for c in connectors)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del sessions, connectors, pool
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]

    # The check above can fail: a client that is never closed is reported.
    leaked: VantageClient | None = VantageClient(cfg.vantages["plain"])
    assert leaked is not None
    leaked.session()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leaked = None
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)]


class DeadAuthorityDns(asyncio.DatagramProtocol):
    """A resolver that answers every name (A 127.0.0.1) but those starting with "dead": silence."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        from dnslib import QTYPE, RR, A, DNSRecord

        request = DNSRecord.parse(data)
        if str(request.q.qname).startswith("dead"):
            return  # the name's own servers are dead: no answer at all
        reply = request.reply()
        if request.q.qtype == QTYPE.A and str(request.q.qname) != ".":
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=0))
        self.transport.sendto(reply.pack(), addr)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["direct", "redirect"])
async def test_a_resolver_silent_for_one_name_is_the_targets_dns(path: str) -> None:
    # The 2021 outage: the target's authoritative servers were gone, resolvers timed out on its names
    # only. Before: unknown/vantage, so a target (or a redirect to such a name) hid its outage.
    async def to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    app = web.Application()
    app.router.add_get("/to", to)
    runner, port = await start_app(app)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(DeadAuthorityDns, local_addr=("127.0.0.1", 0))
    dns_port = transport.get_extra_info("sockname")[1]
    dead = f"http://dead.test:{port}/"
    url = dead if path == "direct" else f"http://app.test:{port}/to?url={dead}"
    try:
        cfg = config(f"""
            vantages:
              lab: {{resolver: ["127.0.0.1:{dns_port}"]}}
            checks:
              - {{name: app, url: "{url}", timeout: 2s}}
            """)
        result = await probe_one(cfg)
    finally:
        transport.close()
        await runner.cleanup()
    assert outcome(result) == (Verdict.DOWN, Reason.DNS), result
    assert "answers other names" in (result.error or "")


@pytest.mark.parametrize("scheme", ["http", "socks5"])
@pytest.mark.parametrize("misbehaviour", ["reset", "banner"])
@pytest.mark.parametrize("target", ["http", "https"])
async def test_a_broken_proxy_is_the_vantages_fault(scheme: str, misbehaviour: str, target: str) -> None:
    # A proxy that accepts, then resets or speaks something else, before any tunnel to the target:
    # before, down/connect or down/http_status for every target behind it.
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        if misbehaviour == "banner":
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
            await writer.drain()
            writer.close()
        else:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = config(f"""
            vantages:
              px: {{proxy: "{scheme}://127.0.0.1:{port}"}}
            checks:
              - {{name: app, url: "{target}://127.0.0.1:9/", timeout: 3s}}
            """)
        result = await probe_one(cfg)
    finally:
        server.close()
        await server.wait_closed()
    assert outcome(result) == VANTAGE, result
