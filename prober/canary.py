"""Canaries: URLs that are always up, asked whether a vantage still reaches the internet.

When a check fails from a vantage without any HTTP answer (dns, connect, tls, timeout), the
vantage's canaries are probed. If none of them reaches anything either, the vantage has lost its
network, not the target its service: the result becomes unknown/vantage, so prober losing its own
network opens no incident. A canary shows the network works when it reached a peer, whatever the
peer said: any HTTP response whatever its status, a connection made (then reset, refused TLS or
never answered), a connection refused or reset, an NXDOMAIN from the name's servers. Only failures
that show no network leave a canary unanswered: the resolver unreachable or silent, no route, a
connection attempt that timed out, a local address that cannot be used, a SERVFAIL (what a local
resolver without upstream says).

The window. A round of canary probes that answered clears a failed result only if it started
after that probe did: the network worked while the target failed. A round that failed explains the
results that started before it, and those that start up to `FRESH` seconds after it. Rounds are
shared by every result they can judge and start at least `MIN_GAP` apart, so a vantage probes its
canaries at most about once a second, however many checks fail: when the network goes away and
every check fails at once, the canaries are probed once, not once per check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from prober.config import Check
from prober.model import Observation, ProbeResult, Reason, Verdict, utcnow
from prober.terminal import printable

CANARY_TIMEOUT = 5.0  # seconds; a canary that is always up answers well within it
FRESH = timedelta(seconds=2)
MIN_GAP = timedelta(seconds=1)
_CANARY_BODY = 16 * 1024  # only the status matters

# Failures without any HTTP answer: those a vantage without network produces.
_TRANSPORT = frozenset({Reason.DNS, Reason.CONNECT, Reason.TLS, Reason.TIMEOUT})

Observe = Callable[[Check], Awaitable[Observation]]


@dataclass(frozen=True, slots=True)
class CanaryRound:
    """One round of probes of a vantage's canaries."""

    started: datetime
    answered: bool  # at least one canary reached a peer
    detail: str  # what each canary got, for the error of the results it explains


def needs_canaries(result: ProbeResult) -> bool:
    """Whether `result` failed in a way the vantage losing its network would explain."""
    return result.verdict == Verdict.DOWN and result.reason in _TRANSPORT


class Canaries:
    """The canaries of one vantage: probed on demand, one shared round at a time."""

    def __init__(self, urls: tuple[str, ...]) -> None:
        self.checks = tuple(
            Check(
                name=f"canary-{i}",
                url=url,
                timeout=CANARY_TIMEOUT,
                max_body=_CANARY_BODY,
                signatures="none",
                vantages=(),
            )
            for i, url in enumerate(urls)
        )
        self._last: CanaryRound | None = None
        self._latest = datetime.min.replace(tzinfo=UTC)  # start of the latest round begun or planned
        self._running: dict[datetime, asyncio.Task[CanaryRound]] = {}  # by start time

    async def explain(
        self, result: ProbeResult, observe: Observe, redact: Callable[[str], str] = lambda text: text
    ) -> ProbeResult:
        """`result`, or unknown/vantage if this vantage's canaries failed too in its window."""
        if not needs_canaries(result):
            return result
        canaries = await self._round_for(result.ts, observe)
        if canaries.answered:
            return result
        error = f"vantage offline: its canaries failed too ({canaries.detail}); {result.error or ''}"
        return replace(
            result,
            verdict=Verdict.UNKNOWN,
            reason=Reason.VANTAGE,
            error=printable(redact(error.rstrip("; "))),  # a canary's error may hold a target's words
        )

    async def _round_for(self, since: datetime, observe: Observe) -> CanaryRound:
        last = self._last
        if last is not None and (
            last.started >= since or (not last.answered and last.started >= since - FRESH)
        ):
            return last
        later = [started for started in self._running if started >= since]
        if later:
            task = self._running[min(later)]
        else:
            started = max(utcnow(), self._latest + MIN_GAP)
            self._latest = started
            task = asyncio.create_task(self._probe(started, observe))
            self._running[started] = task
            task.add_done_callback(lambda _: self._running.pop(started, None))
        # Shielded: a check's run being cancelled must not cancel the round others wait for.
        return await asyncio.shield(task)

    async def _probe(self, started: datetime, observe: Observe) -> CanaryRound:
        await asyncio.sleep(max((started - utcnow()).total_seconds(), 0))  # MIN_GAP after the last round
        seen = await asyncio.gather(*(observe(check) for check in self.checks))
        answered = any(obs.status is not None or obs.reached for obs in seen)
        detail = "; ".join(
            f"{check.url}: {obs.status if obs.status is not None else obs.failure} {obs.error or ''}".strip()
            for check, obs in zip(self.checks, seen, strict=True)
        )
        outcome = CanaryRound(started, answered, detail)
        if self._last is None or started >= self._last.started:
            self._last = outcome
        return outcome

    async def close(self) -> None:
        """Cancel the rounds still running."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
