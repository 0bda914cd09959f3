"""How a vantage reaches a target: source address, proxy, resolver; one session per vantage."""

from __future__ import annotations

import asyncio
import contextvars
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver

if TYPE_CHECKING:
    from prober.config import Vantage

# The TLS handshake of the probe running in the current task is recorded here: aiohttp has
# no trace signal between TCP and TLS, and `resp.connection` is gone once a small body is read.
_TLS_RECORD: contextvars.ContextVar[TlsRecord | None] = contextvars.ContextVar("tls_record", default=None)

# Resolver errors that mean the vantage's DNS server did not answer, not that the name is bad.
_RESOLVER_DOWN_CODES = frozenset({11, 12})  # ARES_ECONNREFUSED, ARES_ETIMEOUT


@dataclass(slots=True)
class TlsRecord:
    """Handshake timing and certificate expiry of one probe, filled by `_TimedSSLObject`."""

    started: float | None = None
    finished: float | None = None
    handshake_ms: float = 0.0  # summed over redirect hops
    not_after: float | None = None  # epoch seconds of the leaf certificate's expiry


class _TimedSSLObject(ssl.SSLObject):
    """An SSLObject that times its handshake and reads the peer certificate's expiry."""

    def do_handshake(self) -> None:
        record = _TLS_RECORD.get()
        if record is not None and record.started is None:
            record.started = time.perf_counter()
        super().do_handshake()  # raises SSLWantReadError until the handshake is complete
        if record is not None and record.started is not None:
            now = time.perf_counter()
            record.handshake_ms += (now - record.started) * 1000
            record.started = None
            record.finished = now
            cert = self.getpeercert()
            if cert and "notAfter" in cert:
                record.not_after = ssl.cert_time_to_seconds(str(cert["notAfter"]))


def start_tls_record() -> TlsRecord:
    """Begin recording TLS handshakes for the probe running in the current task."""
    record = TlsRecord()
    _TLS_RECORD.set(record)
    return record


def make_ssl_context() -> ssl.SSLContext:
    """A verifying client context (system CAs, or $SSL_CERT_FILE) that times handshakes."""
    context = ssl.create_default_context()
    context.sslobject_class = _TimedSSLObject
    return context


class VantageUnavailableError(OSError):
    """The vantage's own means (proxy, resolver, source address) failed, not the target."""


class _VantageResolver(AbstractResolver):
    """aiohttp's aiodns resolver, telling a silent DNS server apart from a name that does not exist."""

    def __init__(self, nameservers: tuple[str, ...], source_address: str | None = None) -> None:
        # Queries leave from the vantage's source address too: it may select the vantage's network.
        extra: dict[str, Any] = {"local_ip": source_address} if source_address else {}
        self._inner = aiohttp.AsyncResolver(nameservers=list(nameservers), timeout=1.5, tries=2, **extra)
        self._servers = ", ".join(nameservers)
        # c-ares answers from its own thread; a lookup abandoned by a probe's deadline is kept here
        # until c-ares is done with it, so closing can wait for it rather than leave a callback
        # aimed at a loop that may be closed by then.
        self._lookups: set[asyncio.Task[Any]] = set()

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
        lookup = asyncio.ensure_future(self._inner.resolve(host, port, family))
        self._lookups.add(lookup)
        lookup.add_done_callback(self._lookups.discard)
        try:
            return await asyncio.shield(lookup)
        except asyncio.CancelledError:
            lookup.add_done_callback(_retrieve)  # its outcome no longer matters to anyone
            raise
        except OSError as exc:
            code = getattr(exc.__cause__, "args", (None,))[0]
            if code in _RESOLVER_DOWN_CODES:
                raise VantageUnavailableError(f"resolver {self._servers} did not answer") from exc
            raise

    async def close(self) -> None:
        await self._inner.close()  # cancels pending lookups: c-ares reports them cancelled, soon
        if self._lookups:
            await asyncio.wait(self._lookups, timeout=2)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class VantageClient:
    """One vantage's connector and session, made inside the running loop and reused across probes."""

    def __init__(self, vantage: Vantage) -> None:
        self.vantage = vantage
        self.ssl_context = make_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._resolver: _VantageResolver | None = None  # the connector does not close what it is given

    @property
    def name(self) -> str:
        """The vantage's name."""
        return self.vantage.name

    @property
    def region(self) -> str:
        """The vantage's region."""
        return self.vantage.region

    @property
    def http_proxy(self) -> str | None:
        """The proxy to pass per request (HTTP and HTTPS proxies); SOCKS is in the connector."""
        proxy = self.vantage.proxy
        return proxy if proxy and proxy.startswith(("http://", "https://")) else None

    def session(self) -> aiohttp.ClientSession:
        """The vantage's session, created on first use inside the running loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=self._connector(),
                trace_configs=[_TRACE],
                cookie_jar=aiohttp.DummyCookieJar(),  # every probe is a first visit
                auto_decompress=True,
                timeout=aiohttp.ClientTimeout(total=None),  # the probe bounds itself
            )
        return self._session

    def _connector(self) -> aiohttp.BaseConnector:
        v = self.vantage
        # A fresh connection per probe and no DNS cache, so every phase is really measured.
        kwargs: dict[str, Any] = {
            "force_close": True,
            "use_dns_cache": False,
            "limit": 0,
            "ssl": self.ssl_context,
            "enable_cleanup_closed": False,
        }
        if v.source_address:
            kwargs["local_addr"] = (v.source_address, 0)
        if v.resolver:
            self._resolver = kwargs["resolver"] = _VantageResolver(tuple(v.resolver), v.source_address)
        if v.proxy and v.proxy.startswith(("socks4://", "socks5://")):
            connector = _socks_connector(v.proxy, rdns=not v.resolver, **kwargs)
            if self._resolver is not None:
                # aiohttp-socks swaps in a resolver that passes names through (to the proxy, or to the
                # system resolver without rdns): the vantage's resolver must answer, and be timed.
                connector._resolver = self._resolver
            return connector
        return aiohttp.TCPConnector(**kwargs)

    async def close(self) -> None:
        """Close the session and its connector."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None


def _socks_connector(url: str, **kwargs: Any) -> aiohttp.TCPConnector:
    """aiohttp-socks' connector, made to bind its connection to the proxy to `local_addr` too."""
    from aiohttp_socks import ProxyConnector
    from aiohttp_socks.connector import _ResponseHandler
    from python_socks.async_.asyncio.v2 import Proxy

    class BoundProxyConnector(ProxyConnector):
        # aiohttp-socks drops local_addr; python-socks accepts it. Same steps as the library's
        # own _connect_via_proxy, plus the bind.
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self._bind: tuple[str, int] | None = kw.get("local_addr")

        async def _connect_via_proxy(
            self,
            host: str,
            port: int,
            ssl: ssl.SSLContext | None = None,
            timeout: float | None = None,  # noqa: ASYNC109
        ) -> tuple[Any, Any]:
            proxy = Proxy(
                proxy_type=self._proxy_type, host=self._proxy_host, port=self._proxy_port,
                username=self._proxy_username, password=self._proxy_password, rdns=self._rdns,
                proxy_ssl=self._proxy_ssl,
            )  # fmt: skip
            stream = await proxy.connect(
                dest_host=host, dest_port=port, dest_ssl=ssl, timeout=timeout, local_addr=self._bind
            )
            transport = stream.writer.transport
            protocol = _ResponseHandler(loop=self._loop, writer=stream.writer)
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            return transport, protocol

    connector: aiohttp.TCPConnector = BoundProxyConnector.from_url(url, **kwargs)
    return connector


# Phase timings through aiohttp's trace signals; the per-request context is a `PhaseClock`.
@dataclass(slots=True)
class PhaseClock:
    """Timestamps of one request's phases, summed over redirect hops."""

    dns_ms: float | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    _create_start: float = 0.0
    _dns_start: float = 0.0
    _dns_end: float | None = None
    _headers_sent: float = 0.0

    @property
    def resolving(self) -> bool:
        """Whether the current hop is still waiting for its DNS answer."""
        return bool(self._create_start) and self._dns_start >= self._create_start and self._dns_end is None


def _add(total: float | None, value: float) -> float:
    return value if total is None else total + value


async def _on_create_start(_s: Any, ctx: Any, _p: Any) -> None:
    clock: PhaseClock = ctx.trace_request_ctx
    clock._create_start = time.perf_counter()
    clock._dns_end = None


async def _on_dns_start(_s: Any, ctx: Any, _p: Any) -> None:
    ctx.trace_request_ctx._dns_start = time.perf_counter()


async def _on_dns_end(_s: Any, ctx: Any, _p: Any) -> None:
    clock: PhaseClock = ctx.trace_request_ctx
    clock._dns_end = time.perf_counter()
    clock.dns_ms = _add(clock.dns_ms, (clock._dns_end - clock._dns_start) * 1000)


async def _on_create_end(_s: Any, ctx: Any, _p: Any) -> None:
    clock: PhaseClock = ctx.trace_request_ctx
    begin = clock._dns_end if clock._dns_end is not None else clock._create_start
    clock.connect_ms = _add(clock.connect_ms, (time.perf_counter() - begin) * 1000)


async def _on_headers_sent(_s: Any, ctx: Any, _p: Any) -> None:
    ctx.trace_request_ctx._headers_sent = time.perf_counter()


async def _on_request_end(_s: Any, ctx: Any, _p: Any) -> None:
    clock: PhaseClock = ctx.trace_request_ctx
    clock.ttfb_ms = _add(clock.ttfb_ms, (time.perf_counter() - clock._headers_sent) * 1000)


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig(trace_config_ctx_factory=_TraceContext)
    trace.on_connection_create_start.append(_on_create_start)
    trace.on_dns_resolvehost_start.append(_on_dns_start)
    trace.on_dns_resolvehost_end.append(_on_dns_end)
    trace.on_connection_create_end.append(_on_create_end)
    trace.on_request_headers_sent.append(_on_headers_sent)
    trace.on_request_end.append(_on_request_end)
    trace.freeze()
    return trace


class _TraceContext(SimpleNamespace):
    """Carries the request's PhaseClock; a placeholder clock when a request has none."""

    def __init__(self, trace_request_ctx: PhaseClock | None = None) -> None:
        super().__init__()
        self.trace_request_ctx = trace_request_ctx if trace_request_ctx is not None else PhaseClock()


_TRACE = _trace_config()


class VantagePool:
    """The clients of every vantage of a configuration, kept across reloads where unchanged."""

    def __init__(self) -> None:
        self._clients: dict[str, VantageClient] = {}

    def get(self, name: str) -> VantageClient:
        """The client of vantage `name`."""
        return self._clients[name]

    async def sync(self, vantages: Mapping[str, Vantage]) -> None:
        """Match the pool to a configuration: close removed or changed vantages, add new ones."""
        for name, client in list(self._clients.items()):
            if vantages.get(name) != client.vantage:
                await client.close()
                del self._clients[name]
        for name, vantage in vantages.items():
            if name not in self._clients:
                self._clients[name] = VantageClient(vantage)

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
