"""How a vantage reaches a target: source address, proxy, resolver; one session per vantage."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from prober.canary import Canaries
from prober.redirect import AddressClassifier, address_class
from prober.resolver import VantageResolver, VantageUnavailableError
from prober.trace import RECORD, TRACE, make_ssl_context

if TYPE_CHECKING:
    from prober.config import Vantage

# connect() errors that may come from this machine (no route out, a local firewall) or from afar
# (an ICMP unreachable from the target's network): a route lookup tells them apart.
_MAYBE_LOCAL = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES})


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
        self._resolver: VantageResolver | None = None  # the connector does not close what it is given

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
                trace_configs=[TRACE],
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
            self._resolver = kwargs["resolver"] = VantageResolver(servers, v.source_address, system)
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

    async def addresses(self, host: str) -> list[str]:
        """The addresses of `host` from this vantage's resolver (for Chromium, which cannot use it).

        Raises VantageUnavailableError when the resolver cannot be used, OSError when the name fails.
        """
        self.session()  # the resolver is made with the connector
        if self._resolver is None:
            raise VantageUnavailableError(f"vantage {self.name} resolves names through its proxy")
        return [h["host"] for h in await self._resolver.resolve(host)]

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
    record = RECORD.get()
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
