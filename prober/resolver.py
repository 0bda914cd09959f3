"""A vantage's DNS resolver: aiohttp's aiodns one, telling a DNS server that cannot be used from a
bad name, and a silent server from a name whose own servers are dead."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiodns
import aiohttp
from aiohttp.abc import AbstractResolver

from prober.trace import RECORD

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


class VantageUnavailableError(OSError):
    """The vantage's own means (proxy, resolver, source address) failed, not the target."""


class VantageResolver(AbstractResolver):
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
        record = RECORD.get()
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
