"""The ceiling for bench/scale.py: a bare aiohttp client loop, with prober's connection policy.

    python bench/_bare.py URL --rate 1000 --duration 60 --sources 127.0.0.2,127.0.0.3

Requests start at a fixed rate (a tick every 5 ms starts every request due by then), from one
session per source address (as prober has one per vantage), each on a new connection
(`force_close`, no DNS cache), reading the whole body. No timing, classification or storage:
what is left is the cost of the HTTP client and the event loop. The event loop is the one
prober uses: uvloop when installed, unless PROBER_LOOP=asyncio. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp
from _pacing import at_rate


async def bare_loop(
    url: str, rate: float, duration: float, sources: list[str], deadline: float
) -> dict[str, Any]:
    """Hit `url` (plus /N) `rate` times a second for `duration` seconds; count outcomes."""
    sessions = []
    for source in sources or [""]:
        connector = aiohttp.TCPConnector(
            force_close=True,
            use_dns_cache=False,
            limit=0,
            enable_cleanup_closed=False,
            local_addr=(source, 0) if source else None,
        )
        sessions.append(
            aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=deadline),  # per request, as a probe
            )
        )
    ok = failed = 0
    errors: dict[str, int] = {}

    async def one(session: aiohttp.ClientSession, target: str) -> None:
        nonlocal ok, failed
        try:
            async with session.get(target) as resp:
                await resp.read()
                if resp.status == 200:
                    ok += 1
                    return
                key = f"status {resp.status}"
        except Exception as exc:  # a failure of the target is data here too
            key = type(exc).__name__
        failed += 1
        errors[key] = errors.get(key, 0) + 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    launched = await at_rate(
        rate, duration, lambda n: one(sessions[n % len(sessions)], f"{url}/{n}"), grace=deadline + 5
    )
    elapsed = loop.time() - started
    for session in sessions:
        await session.close()
    return {"requests": launched, "ok": ok, "failed": failed, "errors": errors, "elapsed_s": elapsed}


def run(coro: Any) -> tuple[Any, str]:
    """Run on prober's event loop: uvloop when installed, unless PROBER_LOOP=asyncio."""
    if os.environ.get("PROBER_LOOP", "auto") != "asyncio":
        try:
            import uvloop

            return uvloop.run(coro), "uvloop"
        except ImportError:
            pass
    return asyncio.run(coro), "asyncio"


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--sources", default="", help="comma-separated source addresses")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    sources = [s for s in args.sources.split(",") if s]
    print("bare loop ready", file=sys.stderr, flush=True)
    result, result["loop"] = run(bare_loop(args.url, args.rate, args.duration, sources, args.timeout))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
