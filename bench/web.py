"""How fast the status page and the APIs answer on months of history, and the same answers from raw results.

    python bench/web.py                      # quick: 100 checks x 3 vantages, 90 days; about 3 minutes
    python bench/web.py --checks 1000        # the full size: 1,000 checks; generation takes minutes
    python bench/web.py --db bench.db --reuse --checks 1000 --warm-seconds 70

It fills a database with bench/gen_history.py (rollups for 90 days, raw results for the last
`--raw-days`), serves it with `prober.web.create_app` from separate processes, and times, per path
(/, /api/checks, /api/v2/summary.json):

- cold: the first request to a server just started, its answer cache empty:
  `--cold-runs` fresh servers per path, each asked once (the database file is in the OS cache);
  for / also without the summaries of finished days and hours that a daemon keeps (as right after
  the migration that makes them);
- uncached: `--requests` sequential requests with the answer and history caches off, so each one
  reads and renders everything: what every background refresh costs;
- warm: the defaults (answers made again every 10 s, the rollup history re-read every 60 s, both in
  the background): requests every `--pace` ms, the paths in turn, for `--warm-seconds`, so that
  background refreshes happen while they are timed.

Requests ask for gzip, as browsers do; sizes are the body as made and as sent. Then it times, in
this process, the data behind each answer read the way the app reads it (rollups, latest_results)
and computed from raw results instead. It prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

# This checkout's prober and its generator, whatever is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gen_history import generate

from prober.model import utcnow
from prober.store import connect, history, read, schema, summaries
from prober.web.view import load_days

PATHS = ("/", "/api/checks", "/api/v2/summary.json")
GZIP = {"Accept-Encoding": "gzip"}


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def figures(took: list[float]) -> dict[str, float]:
    return {"n": len(took), "p50_ms": statistics.median(took), "p95_ms": quantile(took, 0.95),
            "max_ms": max(took)}  # fmt: skip


def serve(db: Path, port: int, cache_seconds: float, history_seconds: float) -> None:
    """The server process: the app over `db` until SIGTERM."""
    from prober.web import create_app, start_server

    async def run() -> None:
        app = create_app(db, cache_seconds=cache_seconds, history_seconds=history_seconds)
        runner = await start_server(app, f"127.0.0.1:{port}")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process over `db` (its first request may go out as soon as it is entered)."""

    def __init__(self, db: Path, cache_seconds: float, history_seconds: float) -> None:
        self.port = free_port()
        self.cmd = [sys.executable, __file__, "--serve", str(self.port), "--db", str(db), "--cache-seconds",
                    str(cache_seconds), "--history-seconds", str(history_seconds)]  # fmt: skip

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the server did not start")
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server so far (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[float, int, bool]:
    """(ms, bytes on the wire, gzipped) of one GET."""
    started = time.perf_counter()
    async with session.get(url, headers=GZIP) as response:
        body = await response.read()
        response.raise_for_status()
    took = (time.perf_counter() - started) * 1000
    return took, len(body), response.headers.get("Content-Encoding") == "gzip"


def session() -> aiohttp.ClientSession:
    # auto_decompress off: the time to get the answer, not to inflate it here.
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300), auto_decompress=False)


async def time_cold(db: Path, runs: int, paths: tuple[str, ...] = PATHS) -> dict[str, dict[str, Any]]:
    """The first request of each of `runs` fresh servers, per path."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        took = []
        for _ in range(runs):
            with Server(db, 10.0, 60.0) as server:
                async with session() as s:
                    took.append((await get(s, server.base + path))[0])
        out[path] = {**figures(took), "runs_ms": took}
    return out


def set_summaries(db_path: Path, present: bool) -> float:
    """Make the page's summaries of finished days and hours (as a daemon keeps them), or delete them
    (a database just migrated); the seconds it took."""
    started = time.perf_counter()
    db = connect(db_path)
    try:
        schema.migrate(db)  # a database generated by an older checkout
        if present:
            while summaries.refresh(db, utcnow()) >= 250:
                pass
        else:
            with db.conn:
                db.execute("DELETE FROM day_summaries")
                db.execute("DELETE FROM hour_summaries")
    finally:
        db.conn.close()
    return time.perf_counter() - started


async def time_uncached(db: Path, requests: int) -> dict[str, dict[str, Any]]:
    """Sequential requests with every cache off, after one untimed; and the answers' sizes."""
    out: dict[str, dict[str, Any]] = {}
    with Server(db, 0.0, 0.0) as server:
        base = server.base
        async with session() as s, aiohttp.ClientSession() as plain:
            for path in PATHS:
                _, wire, gzipped = await get(s, base + path)
                async with plain.get(base + path, headers={"Accept-Encoding": "identity"}) as response:
                    size = len(await response.read())
                took = [(await get(s, base + path))[0] for _ in range(requests)]
                out[path] = {**figures(took), "bytes": size, "wire_bytes": wire, "gzipped": gzipped}
    return out


async def time_warm(db: Path, seconds: float, pace: float) -> dict[str, dict[str, Any]]:
    """Requests every `pace` ms, the paths in turn, for `seconds`, with the default caches; and the
    server's CPU time meanwhile (background refreshes and requests), in seconds per minute."""
    took: dict[str, list[float]] = {path: [] for path in PATHS}
    with Server(db, 10.0, 60.0) as server:
        async with session() as s:
            for path in PATHS:
                await get(s, server.base + path)  # the cold one, timed apart
            cpu, started = server.cpu_seconds(), time.monotonic()
            i = 0
            while time.monotonic() < started + seconds:
                path = PATHS[i % len(PATHS)]
                i += 1
                took[path].append((await get(s, server.base + path))[0])
                await asyncio.sleep(pace / 1000)
            busy = (server.cpu_seconds() - cpu) / (time.monotonic() - started) * 60
    return {**{path: figures(values) for path, values in took.items()}, "cpu_seconds_per_minute": busy}


# -- the same answers, from rollups and from raw results ---------------------------------------------------


def summary_rollups(db: Any, now: datetime) -> object:
    """summary.json's data as the app reads it: newest result per vantage, open incidents."""
    return read.latest_results(db), read.open_incidents(db)


def summary_raw(db: Any, now: datetime) -> object:
    """The same from raw results: the newest result of each vantage in the last hour."""
    return read.recent_results(db, now - timedelta(hours=1), 1), read.open_incidents(db)


def checks_rollups(db: Any, now: datetime) -> object:
    """/api/checks' data: newest results, open incidents, availability over 24h, 7d, 30d, 90d."""
    return summary_rollups(db, now), history.window_counts(db, now)


def checks_raw(db: Any, now: datetime) -> object:
    """The same from raw results (which hold only the retained days)."""
    day = (now - timedelta(days=89)).strftime("%Y-%m-%d")
    cuts = [(now - timedelta(hours=24)).isoformat(), (now - timedelta(days=6)).strftime("%Y-%m-%d"),
            (now - timedelta(days=29)).strftime("%Y-%m-%d"), day]  # fmt: skip
    sums = ", ".join(
        f"SUM(ts >= ? AND verdict = '{v}')" for _ in cuts for v in ("up", "degraded", "down", "unknown")
    )
    args = [c for c in cuts for _ in range(4)] + [day]
    sql = f"SELECT check_name, {sums} FROM results WHERE ts >= ? GROUP BY check_name"
    return summary_raw(db, now), db.execute(sql, args).fetchall()


def page_rollups(db: Any, now: datetime) -> object:
    """The page's data: the above, 90 daily bars, hourly p50/p95 for 24 hours, 90 days of incidents
    (finished days and hours from the summaries, the others from the rollups)."""
    return (
        checks_rollups(db, now),
        load_days(db, now),
        summaries.latency(db, now - timedelta(hours=24)),
        read.incidents(db, since=now - timedelta(days=90)),
    )


def page_raw(db: Any, now: datetime) -> object:
    """The same from raw results: counts per day, latencies of 24 hours sorted for their percentiles."""
    days = db.execute(
        "SELECT check_name, substr(ts, 1, 10), verdict, COUNT(*) FROM results WHERE ts >= ? GROUP BY 1, 2, 3",
        [(now - timedelta(days=89)).strftime("%Y-%m-%d")],
    ).fetchall()
    hours: dict[tuple[str, str], list[float]] = {}
    rows = db.execute(
        "SELECT check_name, substr(ts, 1, 13), latency_ms FROM results WHERE ts >= ? "
        "AND verdict IN ('up', 'degraded') AND latency_ms IS NOT NULL",
        [(now - timedelta(hours=24)).isoformat()],
    )
    for check, hour, latency in rows:
        hours.setdefault((check, hour), []).append(latency)
    latency = {key: (quantile(v, 0.5), quantile(v, 0.95)) for key, v in hours.items()}
    return checks_raw(db, now), days, latency, read.incidents(db, since=now - timedelta(days=90))


def time_queries(db_path: Path, fn: Callable[[Any, datetime], object], repeat: int) -> dict[str, float]:
    db = connect(db_path, readonly=True)
    try:
        took = []
        for _ in range(repeat):
            started = time.perf_counter()
            fn(db, utcnow())
            took.append((time.perf_counter() - started) * 1000)
        return {"p50_ms": statistics.median(took), "p95_ms": quantile(took, 0.95)}
    finally:
        db.conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--raw-days", type=int, default=14)
    parser.add_argument("--db", type=Path, default=Path("bench-web.db"))
    parser.add_argument("--reuse", action="store_true", help="use --db as it is instead of generating it")
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh servers per path for the cold figure")
    parser.add_argument("--requests", type=int, default=10, help="timed uncached requests per path")
    parser.add_argument("--warm-seconds", type=float, default=25.0, help="how long warm requests go on")
    parser.add_argument("--pace", type=float, default=50.0, help="ms between warm requests")
    parser.add_argument("--raw-repeat", type=int, default=2, help="timed runs of each raw computation")
    parser.add_argument(
        "--json", type=Path, default=Path("bench-web.json"), help="where to write the figures"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache-seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--history-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.db, args.serve, args.cache_seconds, args.history_seconds)
        return 0

    if args.reuse and args.db.exists():
        generated: dict[str, Any] = {"reused": str(args.db)}
    else:
        print(
            f"generating {args.checks} checks x 3 vantages, {args.days} days ({args.raw_days} raw) ...",
            flush=True,
        )
        generated = generate(args.db, args.checks, args.days, args.raw_days, 60, 1, 2)
        print(f"  {generated['results']:,} raw results, {generated['rollup_hourly']:,} hourly and "
              f"{generated['rollup_daily']:,} daily rollup rows, {generated['bytes'] / 2**20:,.0f} MiB "
              f"in {generated['seconds']:.0f} s", flush=True)  # fmt: skip
    db = connect(args.db, readonly=True)
    oldest = db.execute("SELECT MIN(ts) FROM results").fetchone()[0]
    checks = db.execute("SELECT COUNT(DISTINCT check_name) FROM latest_results").fetchone()[0]
    db.conn.close()
    raw_days = (
        0.0 if oldest is None else (utcnow() - datetime.fromisoformat(oldest.replace("Z", "+00:00"))).days
    )
    print(f"{checks} checks; timing cold, uncached, then warm requests ...", flush=True)
    set_summaries(args.db, False)
    bare = asyncio.run(time_cold(args.db, args.cold_runs, ("/",)))["/"]
    made = set_summaries(args.db, True)
    cold = asyncio.run(time_cold(args.db, args.cold_runs))
    uncached = asyncio.run(time_uncached(args.db, args.requests))
    warm = asyncio.run(time_warm(args.db, args.warm_seconds, args.pace))
    pairs = {
        "/": (page_rollups, page_raw),
        "/api/checks": (checks_rollups, checks_raw),
        "/api/v2/summary.json": (summary_rollups, summary_raw),
    }
    data = {}
    for path, (fast, slow) in pairs.items():
        data[path] = {
            "rollups": time_queries(args.db, fast, max(args.raw_repeat, 5)),
            "raw": time_queries(args.db, slow, args.raw_repeat),
        }

    header = ("path", "cold p50", "cold max", "uncached p50", "uncached p95", "warm p50", "warm p95",
              "warm max", "size", "sent", "data: rollups", "data: raw", "x")  # fmt: skip
    rows = []
    for path in PATHS:
        fast, slow = data[path]["rollups"]["p50_ms"], data[path]["raw"]["p50_ms"]
        u = uncached[path]
        rows.append((path, _ms(cold[path]["p50_ms"]), _ms(cold[path]["max_ms"]), _ms(u["p50_ms"]),
                     _ms(u["p95_ms"]), _ms(warm[path]["p50_ms"]), _ms(warm[path]["p95_ms"]),
                     _ms(warm[path]["max_ms"]), _size(u["bytes"]),
                     _size(u["wire_bytes"]) + (" gz" if u["gzipped"] else ""), _ms(fast), _ms(slow),
                     f"{slow / fast:.0f}x" if fast else "-"))  # fmt: skip
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    n_warm = sum(int(warm[path]["n"]) for path in PATHS)
    print(f"({checks} checks; cold: first request of {args.cold_runs} fresh servers per path; uncached: "
          f"{args.requests} sequential requests per path with the caches off; warm: {n_warm} requests "
          f"over {args.warm_seconds:.0f} s, one every {args.pace:.0f} ms, background refreshes included; "
          f"raw: the {raw_days:.0f} days of raw results present; the rollups cover {args.days})")  # fmt: skip
    print(f"server CPU while warm: {warm['cpu_seconds_per_minute']:.1f} s a minute (refreshes and requests)")
    print(f"/ cold without the summaries of finished days and hours (a database just migrated): "
          f"p50 {_ms(bare['p50_ms'])}, max {_ms(bare['max_ms'])}; making them took {made:.1f} s")  # fmt: skip
    report = {
        "generated": generated,
        "checks": checks,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "raw_days_present": raw_days,
        "http_cold": cold,
        "http_cold_without_summaries": bare,
        "summaries_seconds": made,
        "http_uncached": uncached,
        "http_warm": warm,
        "warm_seconds": args.warm_seconds,
        "pace_ms": args.pace,
        "data": data,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


def _ms(value: float) -> str:
    return (
        f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    )


def _size(n: float) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


if __name__ == "__main__":
    sys.exit(main())
