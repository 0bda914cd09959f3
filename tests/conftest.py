"""Shared fixtures: real servers on loopback that misbehave on purpose."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aiohttp import web

ERROR_PAGE = """<!DOCTYPE html><html><head><title>X</title></head><body>
<div id="react-root"><h1>Something went wrong, but don’t fret — it’s not your fault.</h1>
<button>Try again</button></div></body></html>"""

HEALTHY_PAGE = """<!DOCTYPE html><html><head><title>Home</title></head><body>
<h1>Welcome home</h1><p>Here is what is happening today.</p></body></html>"""


@dataclass
class Target:
    """A misbehaving HTTP server on 127.0.0.1 that counts requests and records peers."""

    url: str
    port: int
    hits: dict[str, int] = field(default_factory=dict)
    peers: list[str] = field(default_factory=list)

    def total(self, prefix: str = "/") -> int:
        """Requests received on paths starting with `prefix`."""
        return sum(n for p, n in self.hits.items() if p.startswith(prefix))


def target_app(target: Target) -> web.Application:
    """The routes of the test target."""

    @web.middleware
    async def count(request: web.Request, handler):  # type: ignore[no-untyped-def]
        target.hits[request.path] = target.hits.get(request.path, 0) + 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            target.peers.append(peer[0])
        return await handler(request)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=HEALTHY_PAGE, content_type="text/html")

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}")

    async def error_page(request: web.Request) -> web.Response:
        return web.Response(text=ERROR_PAGE, content_type="text/html")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "0.3")))
        return web.Response(text=HEALTHY_PAGE, content_type="text/html")

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound(f"/redirect/{n - 1}" if n > 1 else "/ok")

    async def loop(request: web.Request) -> web.Response:
        nxt = "/loop/b" if request.path == "/loop/a" else "/loop/a"
        raise web.HTTPFound(nxt)

    async def api(request: web.Request) -> web.Response:
        return web.json_response({"data": {"items": [1, 2, 3], "healthy": True}})

    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", str(1 << 30)))
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        resp.content_length = size
        await resp.prepare(request)
        chunk = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"
        sent = 0
        try:
            while sent < size:
                part = chunk[: size - sent]
                await resp.write(part)
                sent += len(part)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    app = web.Application(middlewares=[count])
    app.add_routes(
        [
            web.get("/ok", ok),
            web.get("/status/{code}", status),
            web.get("/error-page", error_page),
            web.get("/slow", slow),
            web.get("/redirect/{n}", redirect),
            web.get("/loop/{x}", loop),
            web.get("/api", api),
            web.get("/big", big),
        ]
    )
    return app


async def start_app(
    app: web.Application, host: str = "127.0.0.1", ssl_context=None
) -> tuple[web.AppRunner, int]:  # type: ignore[no-untyped-def]
    """Start an aiohttp app on a free port; returns the runner and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """The misbehaving HTTP target on 127.0.0.1."""
    t = Target(url="", port=0)
    runner, port = await start_app(target_app(t))
    t.url, t.port = f"http://127.0.0.1:{port}", port
    yield t
    await runner.cleanup()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def raw_server() -> AsyncIterator[dict[str, int]]:
    """TCP servers that misbehave below HTTP: `garbage` answers noise, `reset` resets the connection."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"\x00\xffNOT HTTP AT ALL\r\n\r\n" * 10)
        await writer.drain()
        writer.close()

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    servers = {
        name: await asyncio.start_server(fn, "127.0.0.1", 0)
        for name, fn in (("garbage", garbage), ("reset", reset))
    }
    yield {name: s.sockets[0].getsockname()[1] for name, s in servers.items()}
    for s in servers.values():
        s.close()
        await s.wait_closed()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A local certificate authority."""
    return trustme.CA()


@pytest.fixture
def write_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a checks.yaml (dedented) into the test's folder and return its path."""

    def write(text: str, name: str = "checks.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PROBER_CONFIG", raising=False)
    monkeypatch.delenv("PROBER_DB", raising=False)
    yield


class ZoneResolver:
    """A dnslib resolver answering A records from a dict; every other name is NXDOMAIN."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.queries: list[str] = []

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        from dnslib import QTYPE, RCODE, RR, A

        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.queries.append(name)
        address = self.records.get(name)
        if address is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=5))
        return reply


@dataclass
class DnsServer:
    """A real DNS server on 127.0.0.1 (UDP), answering from `resolver.records`."""

    address: str
    resolver: ZoneResolver


def start_dns(records: dict[str, str], host: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    """Start a dnslib server in a thread; returns (server, DnsServer)."""
    from dnslib.server import DNSLogger, DNSServer

    resolver = ZoneResolver(records)
    server = DNSServer(
        resolver,
        port=0,
        address=host,
        logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"),
    )
    server.start_thread()
    port = server.server.server_address[1]
    return server, DnsServer(f"{host}:{port}", resolver)


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """A local DNS server knowing `app.test` (127.0.0.1); other names are NXDOMAIN."""
    server, info = start_dns({"app.test": "127.0.0.1"})
    yield info
    server.stop()
    server.server.server_close()


class ProberProcess:
    """A `python -m prober ...` subprocess whose stderr is collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log = ""
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log += line.decode()

    async def wait(self, within: float = 20) -> int:
        """Wait for the process to exit by itself; its exit code."""
        code = await asyncio.wait_for(self.process.wait(), within)
        await asyncio.wait_for(self._reader, 5)
        return code

    async def stop(self, sig: int = signal.SIGTERM, within: float = 15) -> int:
        """Send `sig` and wait for the exit; its exit code."""
        self.process.send_signal(sig)
        return await self.wait(within)


@pytest.fixture
async def prober_process() -> AsyncIterator[Callable[..., Awaitable[ProberProcess]]]:
    """Start `python -m prober ARGS...` subprocesses; any still running at the end are killed."""
    started: list[ProberProcess] = []

    async def start(*args: str, env: Mapping[str, str] | None = None) -> ProberProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "prober", *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        started.append(ProberProcess(process))
        return started[-1]

    yield start
    for proc in started:
        if proc.process.returncode is None:
            proc.process.kill()
            await proc.process.wait()


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    within: float,
    what: str,
    log: Callable[[], str] = lambda: "",
) -> float:
    """Poll `condition` (plain or async) until it holds, failing after `within` seconds; returns
    how long it took. What `log()` says then is added to the failure (a subprocess's output)."""
    started = time.monotonic()
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}\n{log()}".rstrip())
        await asyncio.sleep(0.05)
