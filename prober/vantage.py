"""How a vantage reaches a target: source address, proxy, resolver; one session per vantage."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiodns
import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.helpers import is_ip_address
from yarl import URL

from prober.canary import Canaries
from prober.redirect import AddressClassifier, FollowRedirects, RedirectGuard, address_class

if TYPE_CHECKING:
    from prober.config import Vantage

# What the probe running in the current task learns below aiohttp's API is recorded here: the
# TLS handshake (aiohttp has no trace signal between TCP and TLS, and `resp.connection` is gone
# once a small body is read), the addresses its names resolved to, and its redirects.
_RECORD: contextvars.ContextVar[ProbeRecord | None] = contextvars.ContextVar("probe_record", default=None)

# c-ares statuses that mean the DNS server could not be used, not that the name is bad: the
# vantage's fault. NXDOMAIN (4), SERVFAIL (3) and an empty answer (1) are the target's.
_RESOLVER_DOWN = {
    5: "does not implement the query",  # ARES_ENOTIMP
    6: "refused to answer",  # ARES_EREFUSED: we may not use it (access list), not a fault of the name
    11: "could not be contacted",  # ARES_ECONNREFUSED: "Could not contact DNS servers"; no route too
    12: "did not answer",  # ARES_ETIMEOUT
}
_ETIMEOUT = 12  # c-ares: no answer in time, from a server that may be dead or only slow for this name
# Any answer to a cheap question (". NS"; even NXDOMAIN or REFUSED) shows the DNS servers are alive.
# It is asked once a lookup has waited LIVENESS_DELAY, so that its answer is known by the time the
# probe's deadline comes: a silent resolver delays a probe by at most LIVENESS_TIMEOUT.
LIVENESS_DELAY = 0.5  # seconds
LIVENESS_TIMEOUT = 1.0
# connect() errors that may come from this machine (no route out, a local firewall) or from afar
# (an ICMP unreachable from the target's network): a route lookup tells them apart.
_MAYBE_LOCAL = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES})


@dataclass(slots=True)
class ProbeRecord:
    """What one probe saw below aiohttp: TLS handshake timing and expiry, resolved addresses, redirects."""

    started: float | None = None
    finished: float | None = None
    handshake_ms: float = 0.0  # summed over redirect hops
    not_after: float | None = None  # epoch seconds of the leaf certificate's expiry
    addresses: list[str] = field(default_factory=list)  # what the current hop's name resolved to
    guard: RedirectGuard | None = None  # None when redirects are not followed
    connected: bool = False  # a connection to the target (a tunnel through a SOCKS proxy) was made


class _TimedSSLObject(ssl.SSLObject):
    """An SSLObject that times its handshake and reads the peer certificate's expiry."""

    def do_handshake(self) -> None:
        record = _RECORD.get()
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


def start_probe_record(follow: FollowRedirects, classify: AddressClassifier, host: str | None) -> ProbeRecord:
    """Begin recording what the probe running in the current task sees, `host` being its URL's."""
    guard = RedirectGuard(follow, classify, host) if follow else None
    record = ProbeRecord(guard=guard)
    _RECORD.set(record)
    return record


def no_route(addresses: Sequence[str], source_address: str | None) -> str | None:
    """Why this machine has no route to any of `addresses`, or None if it has one to some.

    A UDP connect() only looks the route up (no packet is sent), so it fails the same way a TCP
    connect did when the fault is here (no route out, an unreachable or prohibit route, a source
    address that cannot be used) and succeeds when the refusal came from the network beyond.
    """
    reasons: list[str] = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                if source_address:
                    sock.bind((source_address, 0))
                sock.connect((address, 9))
        except OSError as exc:
            reasons.append(f"{address}: {os.strerror(exc.errno) if exc.errno else exc}")
            continue
        return None
    return "; ".join(reasons) if reasons else None


def maybe_local(code: int | None) -> bool:
    """Whether a connect() error may be this machine's (a route lookup decides) rather than the target's."""
    return code in _MAYBE_LOCAL


def make_ssl_context() -> ssl.SSLContext:
    """A verifying client context (system CAs, or $SSL_CERT_FILE) that times handshakes."""
    context = ssl.create_default_context()
    context.sslobject_class = _TimedSSLObject
    return context


class VantageUnavailableError(OSError):
    """The vantage's own means (proxy, resolver, source address) failed, not the target."""


class _VantageResolver(AbstractResolver):
    """aiohttp's aiodns resolver, telling a DNS server that cannot be used apart from a bad name.

    Every vantage has one: without `resolver:` it asks the system's DNS servers (resolv.conf), and a
    machine whose resolver is unreachable (no network at all) is then the vantage's fault too.
    """

    def __init__(self, nameservers: tuple[str, ...] | None, source_address: str | None, system: bool) -> None:
        # Queries leave from the vantage's source address too: it may select the vantage's network.
        extra: dict[str, Any] = {"local_ip": source_address} if source_address else {}
        if nameservers:
            extra["nameservers"] = list(nameservers)
        if not system:  # the system's servers keep the system's timeout and attempts (resolv.conf)
            extra.update(timeout=1.5, tries=2)
        self._inner = aiohttp.AsyncResolver(**extra)
        self._nameservers = nameservers
        self._system = system
        # c-ares answers from its own thread; a lookup abandoned by a probe's deadline is kept here
        # until c-ares is done with it, so closing can wait for it rather than leave a callback
        # aimed at a loop that may be closed by then.
        self._lookups: set[asyncio.Task[Any]] = set()
        # When the servers last answered anything: a server that answers others while silent for
        # one name is alive, the name's own servers are dead (the target's dns), not the vantage's.
        self._last_answer = float("-inf")  # time.monotonic()
        self._liveness: asyncio.Task[bool] | None = None
        self._liveness_started = float("-inf")

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
        started = time.monotonic()
        lookup = asyncio.ensure_future(self._inner.resolve(host, port, family))
        self._lookups.add(lookup)
        lookup.add_done_callback(self._lookups.discard)
        slow = asyncio.get_running_loop().call_later(LIVENESS_DELAY, self._liveness_for, started)
        try:
            hosts = await asyncio.shield(lookup)
        except asyncio.CancelledError:
            lookup.add_done_callback(_retrieve)  # its outcome no longer matters to anyone
            raise
        except OSError as exc:
            code = getattr(exc.__cause__, "args", (None,))[0]
            if code == _ETIMEOUT and await self.alive(started):
                raise OSError(f"no answer for this name; {self.servers} answers other names") from exc
            if code in _RESOLVER_DOWN:
                raise VantageUnavailableError(f"resolver {self.servers} {_RESOLVER_DOWN[code]}") from exc
            self._last_answer = time.monotonic()  # NXDOMAIN, SERVFAIL, no data: an answer all the same
            raise
        finally:
            slow.cancel()
        self._last_answer = time.monotonic()
        record = _RECORD.get()
        if record is not None:
            record.addresses = [h["host"] for h in hosts]
        return hosts

    async def alive(self, since: float) -> bool:
        """Whether the DNS servers answered anything since `since` (monotonic), asking if need be.

        One question at a time is shared by every lookup that waits for it; its answer holds for
        lookups that started before it was asked.
        """
        task = self._liveness_for(since)
        return True if task is None else await asyncio.shield(task)

    def _liveness_for(self, since: float) -> asyncio.Task[bool] | None:
        """The question whose answer tells whether the servers lived since `since`; None: they answered."""
        if self._last_answer >= since:
            return None
        task = self._liveness
        if task is None or (task.done() and self._liveness_started < since):
            self._liveness_started = time.monotonic()
            task = self._liveness = asyncio.ensure_future(self._ask())
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)
        return task

    async def _ask(self) -> bool:
        try:
            async with asyncio.timeout(LIVENESS_TIMEOUT):
                await self._inner._resolver.query_dns(".", "NS")
        except TimeoutError:
            return False
        except aiodns.error.DNSError as exc:
            if exc.args and exc.args[0] in (_ETIMEOUT, 11, 24):  # silent, unreachable, cancelled
                return False
        self._last_answer = time.monotonic()
        return True

    @property
    def servers(self) -> str:
        """The DNS servers asked, as shown in errors."""
        servers = ", ".join(self._nameservers or self._inner._resolver.nameservers) or "-"
        return f"{servers} (the system's)" if self._system else servers

    async def close(self) -> None:
        await self._inner.close()  # cancels pending lookups: c-ares reports them cancelled, soon
        if self._lookups:
            await asyncio.wait(self._lookups, timeout=2)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class VantageClient:
    """One vantage's connector and session, made inside the running loop and reused across probes."""

    def __init__(
        self,
        vantage: Vantage,
        system_resolver: tuple[str, ...] | None = None,
        classify: AddressClassifier = address_class,
    ) -> None:
        self.vantage = vantage
        self.system_resolver = system_resolver  # None: resolv.conf's servers (tests name others)
        self.classify = classify  # what counts as an internal address, for the redirect policy
        self.canaries = Canaries(vantage.canaries) if vantage.canaries else None
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
        socks = bool(v.proxy and v.proxy.startswith(("socks4://", "socks5://")))
        if v.resolver or not socks:  # without a resolver, SOCKS5 sends names to the proxy
            system = not v.resolver
            servers = self.system_resolver if system else v.resolver
            self._resolver = kwargs["resolver"] = _VantageResolver(servers, v.source_address, system)
        if socks:
            assert v.proxy is not None
            connector = _socks_connector(v.proxy, rdns=not v.resolver, **kwargs)
            if self._resolver is not None:
                # aiohttp-socks swaps in a resolver that passes names through (to the proxy, or to the
                # system resolver without rdns): the vantage's resolver must answer, and be timed.
                connector._resolver = self._resolver
            return connector
        connector = _ProbeConnector(**kwargs)
        connector.judged = self.http_proxy is None
        return connector

    async def resolver_alive(self, since: float) -> bool:
        """Whether this vantage's DNS servers answered anything since `since` (time.monotonic())."""
        return self._resolver is not None and await self._resolver.alive(since)

    @property
    def resolver_servers(self) -> str | None:
        """The DNS servers this vantage asks, as shown in errors; None when a proxy resolves names."""
        return None if self._resolver is None else self._resolver.servers

    async def close(self) -> None:
        """Close the session and its connector."""
        if self.canaries is not None:
            await self.canaries.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None


async def _guarded_connect(
    connect: Callable[..., Awaitable[tuple[asyncio.Transport, Any]]],
    *args: Any,
    addr_infos: list[Any],
    judged: bool,
    through_proxy: bool = False,
    **kwargs: Any,
) -> tuple[asyncio.Transport, Any]:
    """Connect for the probe running in this task, only to addresses its redirect policy allows.

    `judged`: the addresses are the target's (not an HTTP proxy's). Judged here, on what the
    connection is really made to, the policy holds however a redirect spelled its host.
    `through_proxy`: a SOCKS proxy was asked to reach the first address; the peer is the proxy.
    """
    record = _RECORD.get()
    guard = None if record is None or not judged else record.guard
    if guard is not None and guard.hops:
        allowed = set(guard.admit([info[4][0] for info in addr_infos]))
        addr_infos = [info for info in addr_infos if info[4][0] in allowed]
    transport, protocol = await connect(*args, addr_infos=addr_infos, **kwargs)
    if record is not None and judged:
        record.connected = True
        if guard is not None:
            peer = None if through_proxy else transport.get_extra_info("peername")
            guard.connected(peer[0] if peer else addr_infos[0][4][0])
    return transport, protocol


class _ProbeConnector(aiohttp.TCPConnector):
    """aiohttp's connector, connecting only where the probe's redirect policy allows."""

    judged = True  # False with an HTTP proxy: every connection goes to the proxy

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> tuple[asyncio.Transport, Any]:
        return await _guarded_connect(super()._wrap_create_connection, *args, judged=self.judged, **kwargs)


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

        async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> tuple[asyncio.Transport, Any]:
            # The peer is the proxy; the address judged is the one the proxy was asked to reach.
            connect = super()._wrap_create_connection
            return await _guarded_connect(connect, *args, judged=True, through_proxy=True, **kwargs)

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


async def _on_redirect(_s: Any, _ctx: Any, params: aiohttp.TraceRequestRedirectParams) -> None:
    # Called before aiohttp follows a redirect: the next hop's host is known, its address not yet.
    record = _RECORD.get()
    if record is None or record.guard is None:
        return
    location = params.response.headers.get("Location")
    try:
        target = URL(location) if location else None
    except ValueError:
        return  # aiohttp refuses it next, as an invalid redirect
    if target is not None and target.scheme not in ("http", "https", ""):
        return  # and this one as a redirect to another scheme
    host = target.host if target is not None and target.absolute else None
    try:
        record.guard.redirected(params.url.host or "", host, is_ip_address(host))
    except BaseException:
        params.response.close()  # aiohttp would have released it on following
        raise


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
    trace.on_request_redirect.append(_on_redirect)
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

    def __init__(
        self, system_resolver: tuple[str, ...] | None = None, classify: AddressClassifier = address_class
    ) -> None:
        self._clients: dict[str, VantageClient] = {}
        # For tests: other servers than resolv.conf's for vantages without a resolver (pycares'
        # `resolvconf_path` frees its string before c-ares reads it), other address classes.
        self._options = (system_resolver, classify)

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
                self._clients[name] = VantageClient(vantage, *self._options)

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
