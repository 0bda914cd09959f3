"""Browser checks: pages rendered in Chromium through Playwright, judged by the same classifier.

The wiring (daemon, `once`, demo) makes a `Browsers` when a configuration has browser checks and
hands it to the probing code; the core never imports this package, so prober runs without
Playwright installed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from prober.browser.chromium import BrowserUnavailable, Chromium, Driver, executable_for
from prober.browser.render import Evidence, render_page
from prober.classify import classify
from prober.config import Check, Config
from prober.model import Classification, Observation, Phases, Reason, Verdict
from prober.probe import Rendered
from prober.resolver import VantageUnavailableError
from prober.signatures import Signature
from prober.vantage import VantageClient
from prober.web.metrics import BrowserFigures

__all__ = ["BrowserUnavailable", "Browsers", "browsers_for"]


def browsers_for(config: Config) -> Browsers | None:
    """A renderer for `config`'s browser checks, or None when it has none."""
    return Browsers() if any(c.browser is not None for c in config.checks) else None


class Browsers:
    """Every Chromium of this prober, and the slots bounding pages in flight across all checks.

    One Chromium serves every vantage that Chromium can use as it is (direct, or a proxy set per
    context); a vantage with a resolver gets its own, whose host resolver rules pin the names its
    checks use to the addresses that resolver gave.
    """

    def __init__(self, pages_per_browser: int = 0) -> None:
        self.driver = Driver()
        self.pages_per_browser = pages_per_browser
        self.in_flight = 0
        self.verdicts: Counter[str] = Counter()
        self._slots: dict[int, asyncio.Semaphore] = {}
        self._chromium: dict[tuple[str, str], Chromium] = {}
        self._pins: dict[str, dict[str, str]] = {}  # resolver vantage -> host -> address
        self._closed = (0, 0)  # launches and restarts of the browsers closed already

    def slot(self, check: Check) -> asyncio.Semaphore:
        """The bound on pages in flight (`browser.concurrency`), shared by every browser check."""
        assert check.browser is not None
        concurrency = check.browser.settings.concurrency
        if concurrency not in self._slots:
            self._slots[concurrency] = asyncio.Semaphore(concurrency)
        return self._slots[concurrency]

    def figures(self) -> BrowserFigures:
        """What /metrics says of the browsers."""
        restarts = self._closed[1] + sum(c.restarts for c in self._chromium.values())
        return BrowserFigures(dict(self.verdicts), self.in_flight, restarts)

    @property
    def launches(self) -> int:
        """Browser processes started so far."""
        return self._closed[0] + sum(c.launches for c in self._chromium.values())

    async def __call__(
        self, check: Check, signatures: Sequence[Signature], client: VantageClient
    ) -> Rendered:
        """Render `check`'s page once from `client`'s vantage; the browser's own failures are unknown."""
        assert check.browser is not None
        evidence = Evidence()
        self.in_flight += 1
        try:
            rendered = await self._render(check, signatures, client, evidence)
        except BrowserUnavailable as exc:
            unknown = Classification(Verdict.UNKNOWN, Reason.INTERNAL, None, str(exc))
            rendered = Rendered(Observation(url=check.display_url), unknown, evidence.to_json())
        finally:
            self.in_flight -= 1
        self.verdicts[str(rendered.verdict.verdict)] += 1
        return rendered

    async def _render(
        self, check: Check, signatures: Sequence[Signature], client: VantageClient, evidence: Evidence
    ) -> Rendered:
        vantage = client.vantage
        executable = executable_for(check.browser.settings)  # type: ignore[union-attr]
        dns_ms = None
        key = (executable, "")
        if vantage.resolver:
            host = urlsplit(check.url).hostname or ""
            started = time.perf_counter()
            failure = await self._pin(client, host, check.timeout)
            if failure is not None:
                return failure(check, evidence)
            dns_ms = None if _is_ip(host) else (time.perf_counter() - started) * 1000
            key = (executable, vantage.name)
        chromium = self._chromium.get(key)
        if chromium is None:
            chromium = self._chromium[key] = Chromium(self.driver, executable, (), self.pages_per_browser)
        if vantage.resolver:
            chromium.set_args(_resolver_rules(self._pins.get(vantage.name, {})))
        async with chromium.browser() as browser:
            rendered = await render_page(browser, check, signatures, vantage.proxy, evidence)
        if dns_ms is not None and rendered.observation.failure is None:
            # Chromium was handed the address: the lookup was made here, through the vantage's servers.
            obs = rendered.observation
            phases = Phases(dns_ms, obs.phases.connect_ms, obs.phases.tls_ms, obs.phases.ttfb_ms)
            evidence.phases = phases
            rendered = Rendered(
                replace(obs, phases=phases), rendered.verdict, evidence.to_json(), rendered.screenshot
            )
        return rendered

    async def _pin(self, client: VantageClient, host: str, within: float) -> _Failure | None:
        """Resolve `host` with the vantage's resolver and pin it; a failure to report instead, if any."""
        if _is_ip(host):
            return None
        try:
            async with asyncio.timeout(within):
                addresses = await client.addresses(host)
        except TimeoutError:
            return _Failure(Reason.DNS, f"{host}: no answer from the vantage's resolver within {within:g}s")
        except VantageUnavailableError as exc:
            return _Failure(Reason.VANTAGE, str(exc))
        except OSError as exc:
            return _Failure(Reason.DNS, f"{host}: {exc}")
        if not addresses:
            return _Failure(Reason.DNS, f"{host}: no address")
        pins = self._pins.setdefault(client.name, {})
        if pins.get(host) not in addresses:  # kept while still an answer: round-robin DNS relaunches nothing
            pins[host] = addresses[0]
        return None

    async def close(self) -> None:
        """Stop every browser and the driver."""
        for chromium in self._chromium.values():
            await chromium.close()
            self._closed = (self._closed[0] + chromium.launches, self._closed[1] + chromium.restarts)
        self._chromium.clear()
        await self.driver.stop()


class _Failure:
    """A rendered probe that ended before the browser: the vantage's resolver failed or said no."""

    def __init__(self, reason: Reason, error: str) -> None:
        self.reason, self.error = reason, error

    def __call__(self, check: Check, evidence: Evidence) -> Rendered:
        obs = Observation(url=check.display_url, failure=self.reason, error=self.error)
        return Rendered(obs, classify(obs, check.expect, ()), evidence.to_json())


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolver_rules(pins: dict[str, str]) -> tuple[str, ...]:
    """Chromium's flag mapping each pinned name to its address (IPv6 in brackets)."""
    if not pins:
        return ()
    rules = ", ".join(f"MAP {h} {'[' + a + ']' if ':' in a else a}" for h, a in sorted(pins.items()))
    return (f"--host-resolver-rules={rules}",)
