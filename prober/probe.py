"""One HTTP probe with phase timings: the only aiohttp client code besides the vantage's session.

A probe never raises for what happens on the network: every failure becomes an `Observation`
with a `failure` reason, which the classifier turns into a verdict.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp.helpers import is_ip_address
from aiohttp.http_exceptions import (
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
)
from multidict import CIMultiDict
from yarl import URL

from prober import __version__
from prober.classify import classify
from prober.model import Classification, Observation, Phases, ProbeResult, Reason, Verdict, utcnow
from prober.redirect import MAX_REDIRECTS, RedirectRefusedError
from prober.resolver import VantageUnavailableError
from prober.terminal import printable
from prober.trace import PhaseClock, start_probe_record
from prober.vantage import VantageClient, VantagePool, maybe_local, no_route

if TYPE_CHECKING:
    from prober.config import Check
    from prober.signatures import Signature
    from prober.web.metrics import BrowserFigures

# Errors of this machine, not of the target: never counted against the target.
_LOCAL_EXHAUSTION = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_CHUNK = 64 * 1024
_NAME_ANSWERED = frozenset({1, 4})  # c-ares: ARES_ENODATA, ARES_ENOTFOUND (NXDOMAIN)

# Realistic clients: a web check is a desktop browser, a mobile check is the mobile app's HTTP stack.
USER_AGENTS = {
    "web": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    ),
    "mobile": "ExampleApp/10.21.1 (iPhone15,2; iOS 17.5.1; Scale/3.00) CFNetwork/1496.0.7 Darwin/23.5.0",
    "api": f"prober/{__version__} (synthetic availability probe)",
}
_ACCEPT = {
    "web": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "mobile": "application/json",
    "api": "application/json, */*;q=0.5",
}


def request_headers(check: Check) -> CIMultiDict[str]:
    """The headers a probe sends: the surface's realistic client headers, overridden by the check's."""
    surface = str(check.surface)
    headers: CIMultiDict[str] = CIMultiDict(
        {"User-Agent": USER_AGENTS[surface], "Accept": _ACCEPT[surface], "Accept-Language": "en-US,en;q=0.9"}
    )
    for key, value in check.headers.items():
        headers[key] = value
    return headers


async def observe(client: VantageClient, check: Check) -> Observation:
    """Send one request for `check` through `client` and record what came back, bounded by its timeout."""
    clock = PhaseClock()
    tls = start_probe_record(check.follow_redirects, client.classify, _host(check.url))
    started = time.perf_counter()
    since = time.monotonic()
    url = check.display_url

    def phases() -> Phases:
        tls_ms = tls.handshake_ms if tls.finished is not None else None
        connect = clock.connect_ms
        if connect is not None and tls_ms is not None:
            connect = max(connect - tls_ms, 0.0)  # connection_create spans TCP and TLS
        return Phases(clock.dns_ms, connect, tls_ms, clock.ttfb_ms)

    def failed(reason: Reason, error: str, status: int | None = None, reached: bool = False) -> Observation:
        return Observation(
            url=url,
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            phases=phases(),
            failure=reason,
            error=error,
            # A connection to the target was made (the TLS handshake began on one): a peer answered.
            reached=reached or tls.connected or tls.started is not None or tls.finished is not None,
        )

    def before_tunnel() -> bool:
        # Through a proxy, nothing of the target's is seen before the tunnel is up (the SOCKS
        # handshake done, the TLS handshake begun through CONNECT) or, for http:// through an HTTP
        # proxy, before a status line: a proxy reports what happened to the target in its own
        # words (407, 502, 504; SOCKS replies 3-5); a reset or garbage instead is the proxy's fault.
        return bool(client.vantage.proxy) and not (
            tls.connected or tls.started is not None or tls.finished is not None or clock.ttfb_ms is not None
        )

    try:
        async with asyncio.timeout(check.timeout):
            async with client.session().request(
                check.method,
                check.url,
                headers=request_headers(check),
                data=check.body,
                json=check.json_body,
                allow_redirects=bool(check.follow_redirects),
                max_redirects=MAX_REDIRECTS + 1,  # aiohttp gives up on reaching it: 10 are followed
                proxy=client.http_proxy,
                trace_request_ctx=clock,
            ) as resp:
                if resp.status == 407 and client.http_proxy:  # the proxy's own answer, not the target's
                    return failed(Reason.VANTAGE, f"proxy refused the request: 407 {resp.reason}")
                body, truncated = await _read_capped(resp, check.max_body)
                latency_ms = (time.perf_counter() - started) * 1000
                not_after = tls.not_after
                return Observation(
                    url=url,
                    status=resp.status,
                    headers={k.lower(): v for k, v in resp.headers.items()},
                    body=body,
                    truncated=truncated,
                    bytes=len(body),
                    latency_ms=latency_ms,
                    phases=phases(),
                    redirects=len(resp.history),
                    final_url=str(resp.url),
                    cert_days=None if not_after is None else (not_after - time.time()) / 86400,
                )
    except TimeoutError:
        servers = client.resolver_servers
        if clock.resolving and servers is not None:
            # Silent for this name: the name's own DNS servers may be dead (the target's outage, as
            # in 2021), or the vantage's resolver may be: it tells which by answering anything.
            if await client.resolver_alive(since):
                return failed(
                    Reason.DNS,
                    f"the name did not resolve within {check.timeout:g}s; {servers} answers other names",
                )
            return failed(Reason.VANTAGE, f"resolver {servers} did not answer within {check.timeout:g}s")
        stage = _stage(clock, tls)
        return failed(Reason.TIMEOUT, f"no complete response within {check.timeout:g}s ({stage})")
    except aiohttp.TooManyRedirects as exc:
        hops = [str(r.url) for r in exc.history]
        looped = len(set(hops)) < len(hops)
        what = "redirect loop" if looped else f"more than {MAX_REDIRECTS} redirects"
        return failed(Reason.REDIRECT, f"{what}: {' -> '.join(hops[:4])}{' ...' if len(hops) > 4 else ''}")
    except RedirectRefusedError as exc:
        return failed(Reason.REDIRECT, str(exc))
    except aiohttp.NonHttpUrlRedirectClientError as exc:
        # file://, ftp://, data:...: a target must not hide an outage behind a URL we cannot fetch.
        scheme = str(exc).partition(":")[0][:20]
        return failed(Reason.REDIRECT, f"redirect to a {scheme}: URL; only http and https are followed")
    except aiohttp.InvalidUrlRedirectClientError:
        return failed(Reason.REDIRECT, "redirect to an invalid URL")
    except aiohttp.ClientHttpProxyError as exc:
        if exc.status in (502, 503, 504):  # the proxy could not reach the target
            return failed(
                Reason.CONNECT, f"proxy could not connect to the target: {exc.status} {exc.message}"
            )
        return failed(Reason.VANTAGE, f"proxy refused the request: {exc.status} {exc.message}")
    except aiohttp.ClientProxyConnectionError as exc:
        return failed(Reason.VANTAGE, f"proxy unreachable: {_os_message(exc)}")
    except aiohttp.ClientConnectorDNSError as exc:
        if isinstance(exc.os_error, VantageUnavailableError):
            return failed(Reason.VANTAGE, str(exc.os_error))
        # NXDOMAIN or no such record: the name's own servers answered, beyond this machine.
        said = getattr(exc.os_error.__cause__, "args", (None,))[0] in _NAME_ANSWERED
        return failed(Reason.DNS, f"cannot resolve {exc.host}: {_os_message(exc)}", reached=said)
    except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError) as exc:
        return failed(Reason.TLS, _tls_message(exc))
    except aiohttp.ClientConnectorError as exc:
        refused = exc.os_error.errno in (errno.ECONNREFUSED, errno.ECONNRESET) and not client.http_proxy
        return failed(*_connect_failure(exc, client, tls.addresses), reached=refused)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientConnectionError) as exc:
        if before_tunnel():
            return failed(
                Reason.VANTAGE, f"the proxy broke the connection before reaching the target: {exc!r:.120}"
            )
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return failed(Reason.CONNECT, "connection closed by the target before a complete response")
        if isinstance(exc, aiohttp.ClientOSError):
            return failed(Reason.CONNECT, f"connection lost: {_os_message(exc)}")
        # "Cannot write to closing transport": the target reset or closed the connection while the
        # request was being written (a banner-and-close server, a reset under load). Its fault.
        return failed(Reason.CONNECT, f"connection lost while sending the request: {_short(exc, 120)}")
    except aiohttp.ClientPayloadError as exc:
        return failed(*_payload_failure(exc))
    except aiohttp.ClientResponseError as exc:
        if before_tunnel():
            return failed(Reason.VANTAGE, "the proxy did not answer in HTTP before reaching the target")
        return failed(*_protocol_failure(exc))
    except aiohttp.InvalidURL as exc:
        return failed(Reason.INTERNAL, f"invalid URL: {exc}")
    except Exception as exc:  # a probe is data: whatever went wrong is recorded, never raised
        return _socks_failure(exc, failed) or failed(Reason.INTERNAL, f"{type(exc).__name__}: {_short(exc)}")


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytearray, bool]:
    """Read at most `limit` bytes of the body into one buffer; report whether there was more.

    The buffer grows as bytes arrive (`+=` on a bytearray is amortised), never by what the target
    announces: a Content-Length of 64 MiB followed by 10 bytes costs 10 bytes, not 64 MiB per probe.
    """
    buf = bytearray()
    while len(buf) < limit:
        chunk = await resp.content.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    truncated = len(buf) >= limit and not resp.content.at_eof()
    if truncated:
        # Unread data must not be drained: closing drops the connection (it is never reused).
        resp.close()
    return buf, truncated


def _stage(clock: PhaseClock, tls: Any) -> str:
    if clock.ttfb_ms is not None:
        return "reading the body"
    if clock._headers_sent:
        return "waiting for the response"
    if tls.started is not None:
        return "during the TLS handshake"
    if clock.connect_ms is None and clock._dns_end is None and clock._create_start:
        return "resolving or connecting"
    return "connecting"


def _host(url: str) -> str | None:
    try:
        return URL(url).host
    except ValueError:
        return None


def _connect_failure(
    exc: aiohttp.ClientConnectorError, client: VantageClient, addresses: Sequence[str]
) -> tuple[Reason, str]:
    """A connection that could not be made: the target's fault, or this machine's."""
    code = exc.os_error.errno
    source = client.vantage.source_address
    if code in _LOCAL_EXHAUSTION:
        return Reason.INTERNAL, f"the prober ran out of resources: {_os_message(exc)}"
    if code == errno.EADDRNOTAVAIL or (
        source
        and (
            code == errno.EINVAL
            # An IPv6 source for an IPv4-only target or the reverse (aiohappyeyeballs' and asyncio's words).
            or (code is None and "no matching local address" in str(exc.os_error))
        )
    ):
        # No local address can carry the connection: the source address is not on this machine,
        # or (without one) the local ports are exhausted.
        what = f"source address {source} unusable" if source else "no local address usable"
        return Reason.VANTAGE, f"{what}: {_os_message(exc)}"
    if code == errno.EPERM:  # only a firewall on this machine refuses a connection so
        return Reason.VANTAGE, f"this machine's firewall refused the connection to {exc.host}:{exc.port}"
    if maybe_local(code):
        if is_ip_address(exc.host):
            addresses = [exc.host]
        unroutable = no_route(addresses, source)
        if unroutable is not None:
            return Reason.VANTAGE, f"no route from this machine: {unroutable}"
    return Reason.CONNECT, f"cannot connect to {exc.host}:{exc.port}: {_os_message(exc)}"


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from, nearest first (aiohttp wraps its parser's)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8 and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _protocol_failure(exc: aiohttp.ClientResponseError) -> tuple[Reason, str]:
    """A response that could not be parsed. The target's bytes are never quoted: a redirect may have
    led to an internal service, and whatever it said must not reach the status page."""
    chain = _causes(exc)
    if any(_bad_status_line(e) for e in chain):
        # An SSH banner, a Redis error, TLS spoken to plain HTTP: the port does not serve HTTP.
        return Reason.CONNECT, "not an HTTP response: the first line is not an HTTP status line"
    return Reason.HTTP_STATUS, f"malformed HTTP response: {_parser_complaint(chain)}"


def _bad_status_line(exc: BaseException) -> bool:
    """Whether the parser refused the first line. aiohttp hands on a copy of its parser's error
    (an `HttpProcessingError`), and under uvloop the original (`BadStatusLine`) may not be chained
    to it: llhttp's own words, at the start of the copy's message, say it as well."""
    if isinstance(exc, BadStatusLine):
        return True
    return isinstance(exc, HttpProcessingError) and str(exc.message).lstrip().startswith("Bad status line")


def _payload_failure(exc: aiohttp.ClientPayloadError) -> tuple[Reason, str]:
    """A body that ended early (the connection was closed or reset mid-body) or could not be decoded."""
    chain = _causes(exc)
    # aiohttp raises "Response payload is not completed" only when the connection ends mid-body.
    if str(exc).startswith("Response payload is not completed") or any(
        isinstance(e, ContentLengthError) for e in chain
    ):
        got = re.search(r"received (\d+) of (\d+) bytes", str(exc))
        detail = f" after {got[1]} of {got[2]} bytes" if got else ""
        return Reason.CONNECT, f"connection lost in the middle of the body{detail}"
    if any(isinstance(e, ContentEncodingError) for e in chain):
        return Reason.HTTP_STATUS, "malformed body: it cannot be decoded as its Content-Encoding says"
    return Reason.HTTP_STATUS, f"malformed body: {_parser_complaint(chain)}"


_SAFE_COMPLAINT = re.compile(r"[A-Za-z][A-Za-z ,-]{0,60}")
_COMPLAINTS = {
    "LineTooLong": "a line is too long",
    "InvalidHeader": "an invalid header",
    "TransferEncodingError": "invalid chunked encoding",
}


def _parser_complaint(chain: Sequence[BaseException]) -> str:
    """What aiohttp's parser objected to, without the bytes it quotes."""
    for e in chain:
        if isinstance(e, HttpProcessingError):
            # llhttp's messages are a fixed description, then the offending bytes on later lines; a
            # one-line message (the pure-Python parser) may be nothing but the target's bytes.
            first, newline, _ = str(e.message).partition("\n")
            first = first.strip().rstrip(":")
            if newline and _SAFE_COMPLAINT.fullmatch(first):
                return first[0].lower() + first[1:]
            for cls in type(e).__mro__:
                if cls.__name__ in _COMPLAINTS:
                    return _COMPLAINTS[cls.__name__]
    return "invalid HTTP syntax"


def _os_message(exc: aiohttp.ClientConnectorError | aiohttp.ClientOSError) -> str:
    os_error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if os_error.errno:  # "Connection refused" says more than asyncio's "Connect call failed"
        return os.strerror(os_error.errno)
    return os_error.strerror or str(os_error) or type(os_error).__name__


def _tls_message(exc: BaseException) -> str:
    cert_error = getattr(exc, "certificate_error", None)
    if cert_error is not None:
        return f"certificate: {getattr(cert_error, 'verify_message', None) or cert_error}"
    return f"TLS handshake failed: {_short(exc)}"


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _socks_failure(exc: Exception, failed: Callable[[Reason, str], Observation]) -> Observation | None:
    """Map aiohttp-socks errors: the proxy unreachable is the vantage's fault, a refused target is not."""
    try:
        import aiohttp_socks
        import python_socks
    except ImportError:  # pragma: no cover - aiohttp-socks is a dependency
        return None
    # aiohttp-socks 0.12 raises its own classes, not python-socks' ones as older versions did.
    unreachable = (
        aiohttp_socks.ProxyConnectionError,
        aiohttp_socks.ProxyTimeoutError,
        python_socks.ProxyConnectionError,
        python_socks.ProxyTimeoutError,
    )
    if isinstance(exc, unreachable):
        return failed(Reason.VANTAGE, f"proxy unreachable: {_short(exc)}")
    if isinstance(exc, aiohttp_socks.ProxyError | python_socks.ProxyError):
        # SOCKS5 replies 3, 4, 5: network unreachable, host unreachable, connection refused.
        if getattr(exc, "error_code", None) in (3, 4, 5):
            return failed(Reason.CONNECT, f"proxy could not connect to the target: {_short(exc)}")
        return failed(Reason.VANTAGE, f"proxy error: {_short(exc)}")
    return None


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a renderer saw of a browser check: the page as an observation, its verdict, its evidence."""

    observation: Observation
    verdict: Classification
    evidence: dict[str, Any]
    screenshot: bytes | None = None  # PNG


class Renderer(Protocol):
    """Renders browser checks (`prober.browser.Browsers`); the wiring hands one to the probing code."""

    async def __call__(
        self, check: Check, signatures: Sequence[Signature], client: VantageClient
    ) -> Rendered: ...  # pragma: no cover - a protocol

    def slot(self, check: Check) -> asyncio.Semaphore:
        """The bound on pages in flight that a probe of `check` waits on before it is rendered."""
        ...  # pragma: no cover - a protocol

    def figures(self) -> BrowserFigures:
        """Its figures for /metrics."""
        ...  # pragma: no cover - a protocol

    async def close(self) -> None:
        """Stop its browsers."""
        ...  # pragma: no cover - a protocol


async def probe_check(
    client: VantageClient,
    check: Check,
    signatures: Sequence[Signature],
    redact: Callable[[str], str] = lambda text: text,
    now: Callable[[], datetime] = utcnow,
    render: Renderer | None = None,
) -> ProbeResult:
    """Probe `check` once from `client`'s vantage and classify what came back.

    A browser check goes to `render`; without one, it is unknown/internal (nothing renders here).
    """
    ts = now()
    evidence: dict[str, Any] | None = None
    screenshot: bytes | None = None
    try:
        if check.browser is not None:
            if render is None:
                raise RuntimeError("this prober has no browser to render the check with")
            rendered = await render(check, signatures, client)
            obs, verdict, evidence = rendered.observation, rendered.verdict, rendered.evidence
            screenshot = rendered.screenshot
        else:
            obs = await observe(client, check)
            verdict = classify(obs, check.expect, signatures)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the prober's own fault: recorded as unknown, never raised
        obs = Observation(url=check.display_url)
        verdict = Classification(Verdict.UNKNOWN, Reason.INTERNAL, None, f"{type(exc).__name__}: {exc}")
    error = verdict.error if verdict.error is not None else obs.error
    return ProbeResult(
        ts=ts,
        check=check.name,
        vantage=client.name,
        region=client.region,
        surface=check.surface,
        url=check.display_url,
        verdict=verdict.verdict,
        reason=verdict.reason,
        signature=verdict.signature,
        status=obs.status,
        latency_ms=obs.latency_ms,
        phases=obs.phases,
        bytes=obs.bytes,
        # The target chooses some of these words (a Retry-After, a title): no control character
        # reaches the database, the page or a terminal.
        error=None if error is None else printable(redact(error)),
        cert_days=obs.cert_days,
        browser=None if evidence is None else _cleaned(evidence, redact),
        screenshot=screenshot,
    )


def _cleaned(value: Any, redact: Callable[[str], str]) -> Any:
    """The browser's evidence with every string redacted and escaped, as errors are: its URLs and
    messages come from the page (a failed request's URL may carry a `${NAME}` secret)."""
    if isinstance(value, str):
        return printable(redact(value))
    if isinstance(value, dict):
        return {k: _cleaned(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v, redact) for v in value]
    return value


async def probe_everywhere(
    pool: VantagePool,
    check: Check,
    signatures: Sequence[Signature],
    redact: Callable[[str], str] = lambda text: text,
    limit: asyncio.Semaphore | None = None,
    may_start: Callable[[], bool] | None = None,
    render: Renderer | None = None,
) -> list[ProbeResult]:
    """Probe `check` once from each of its vantages concurrently; results in vantage order.

    A transport failure from a vantage with `canaries:` is checked against them (`prober.canary`):
    if they fail too, the result is the vantage's (unknown/vantage), not the target's.

    `may_start` is asked when a probe gets its slot in `limit`: if it says no (the probe would
    start too late and stretch the check's interval; the prober is stopping), the probe is not
    made. An overloaded prober then sheds probes instead of queueing ever more of them. Probes
    not made have no result: fewer results than vantages come back, and the caller counts the
    difference as skipped.

    A browser check's probe waits for a page slot of `render` instead of `limit`, and `may_start`
    is asked when it gets one.
    """

    async def one(vantage: str) -> ProbeResult | None:
        client = pool.get(vantage)
        slot = limit
        if check.browser is not None and render is not None:
            slot = render.slot(check)  # pages are far dearer than requests: their own bound
        if slot is None:
            result = await probe_check(client, check, signatures, redact, render=render)
        else:
            async with slot:
                if may_start is not None and not may_start():
                    return None
                result = await probe_check(client, check, signatures, redact, render=render)
        if client.canaries is None:
            return result
        # Outside the limit: a round of canaries is shared by every check failing at that time.
        return await client.canaries.explain(result, partial(observe, client), redact)

    return [r for r in await asyncio.gather(*(one(v) for v in check.vantages)) if r is not None]
