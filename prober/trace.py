"""What one probe sees below aiohttp's API: its phase timings, TLS handshake, addresses and redirects.

Phases come from aiohttp's trace signals, into a `PhaseClock` per request. The rest is recorded in
a `ProbeRecord` reached through a context variable, by the SSL object (aiohttp has no signal
between TCP and TLS), the vantage's resolver and connector, and the redirect hook.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.helpers import is_ip_address
from yarl import URL

from prober.redirect import AddressClassifier, FollowRedirects, RedirectGuard

# What the probe running in the current task learns below aiohttp's API is recorded here: the
# TLS handshake (aiohttp has no trace signal between TCP and TLS, and `resp.connection` is gone
# once a small body is read), the addresses its names resolved to, and its redirects.
RECORD: contextvars.ContextVar[ProbeRecord | None] = contextvars.ContextVar("probe_record", default=None)


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
        record = RECORD.get()
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
    RECORD.set(record)
    return record


def make_ssl_context() -> ssl.SSLContext:
    """A verifying client context (system CAs, or $SSL_CERT_FILE) that times handshakes."""
    context = ssl.create_default_context()
    context.sslobject_class = _TimedSSLObject
    return context


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
    record = RECORD.get()
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


TRACE = _trace_config()
