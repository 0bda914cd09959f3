"""Rendered pages per minute, CPU and memory per page: prober's browser checks vs a bare Playwright loop.

    python bench/browser.py                          # concurrency 1, 2, 4; 60 s each, both phases
    python bench/browser.py --concurrency 2 --duration 3600 --skip-bare   # memory over an hour

A local single-page app (an HTML shell whose script fetches /api/items and renders 50 rows; no
error, so every probe is up) is served from this process on 127.0.0.1. For each concurrency, one
after the other (on 2 cores, running them together would measure how they share the CPU):

- prober: `prober run` as a subprocess with more browser checks than it can render (so its
  `browser.concurrency` slots stay busy: the measure is its capacity, not the schedule), every
  check on the same app (`wait_until: networkidle`, the default);
- the ceiling: bench/_bare_browser.py, a bare Playwright loop in its own process with the same
  number of workers, each doing what prober does per probe (a fresh context, `goto` with
  `networkidle`, reading title and text, closing the context) and nothing else.

Measured per phase: pages rendered per minute; CPU seconds per page of the whole process tree
(Python, Playwright's driver, Chromium and its renderers: the tree's rusage once it has exited,
start-up included); peak memory of the tree as the sum of PSS (shared pages counted once, so
Chromium's many processes are not over-counted) sampled every second, and its first and last
minute (flat means no leak). It prints a table and writes JSON (bench/out/browser-*.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _process import stop
from aiohttp import web

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SHELL = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Items</title></head>
<body><main id="app"><p>Loading...</p></main><script>
fetch('/api/items').then(r => r.json()).then(items => {
  const app = document.getElementById('app');
  const rows = items.map(i => '<li>' + i.name + ': ' + i.price + '</li>').join('');
  app.innerHTML = '<h1>Items</h1><ul>' + rows + '</ul>';
});
</script></body></html>"""
ITEMS = [{"name": f"item {i}", "price": f"{i * 3 % 97}.99"} for i in range(50)]


def serve_app() -> tuple[str, threading.Event]:
    """The app on 127.0.0.1 in a thread of this process (its CPU is not counted); its URL and a stop flag."""
    started: list[str] = []
    stop = threading.Event()
    ready = threading.Event()

    async def shell(_: web.Request) -> web.Response:
        return web.Response(text=SHELL, content_type="text/html")

    async def items(_: web.Request) -> web.Response:
        return web.json_response(ITEMS)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/app", shell)
        app.router.add_get("/api/items", items)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        started.append(f"http://127.0.0.1:{port}/app")
        ready.set()
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    if not ready.wait(10):
        raise SystemExit("the app did not start")
    return started[0], stop


def tree(pid: int) -> list[int]:
    """`pid` and all its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def pss_mib(pid: int) -> float:
    """Sum of the PSS of a process tree, in MiB (0 for processes gone meanwhile)."""
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


def rss_mib(pid: int) -> float:
    """The resident set of one process (the prober itself, without Chromium), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def over_time(samples: list[tuple[float, float, float]], step: float = 600.0) -> list[dict[str, float]]:
    """Medians of the tree's PSS and the process's RSS per `step` seconds: drift shows here."""
    spans: dict[int, list[tuple[float, float]]] = {}
    for t, pss, rss in samples:
        spans.setdefault(int(t // step), []).append((pss, rss))
    return [
        {
            "from_s": k * step,
            "pss_mib": round(statistics.median(p for p, _ in v), 1),
            "rss_mib": round(statistics.median(r for _, r in v), 1),
            "rss_max_mib": round(max(r for _, r in v), 1),
        }
        for k, v in sorted(spans.items())
    ]


def run_measured(cmd: list[str], seconds: float, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run `cmd` for `seconds`, then SIGTERM; CPU of its whole tree (rusage), PSS and RSS samples."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        samples: list[tuple[float, float, float]] = []
        start = time.monotonic()
        while time.monotonic() - start < seconds and proc.poll() is None:
            samples.append((time.monotonic() - start, pss_mib(proc.pid), rss_mib(proc.pid)))
            time.sleep(1.0)
        stop(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    memory = [m for _, m, _ in samples]
    first = [m for t, m, _ in samples if t <= 60]
    last = [m for t, m, _ in samples if t >= samples[-1][0] - 60] if samples else []
    return {
        "exit": proc.returncode,
        "seconds": round(time.monotonic() - start, 1),
        "cpu_s": round(cpu, 2),
        "peak_pss_mib": round(max(memory, default=0.0), 1),
        "first_minute_median_mib": round(statistics.median(first), 1) if first else None,
        "last_minute_median_mib": round(statistics.median(last), 1) if last else None,
        "over_time": over_time(samples, 600.0 if seconds >= 1800 else 60.0),
    }


def prober_phase(url: str, concurrency: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """`prober run` with more browser checks than `concurrency` slots can render; pages and costs."""
    config, db = work / f"checks-{concurrency}.yaml", work / f"prober-{concurrency}.db"
    checks = max(4, 4 * concurrency)
    lines = [f"browser: {{executable: {args.chromium}, concurrency: {concurrency}}}", "checks:"]
    for i in range(checks):
        lines += [f"  - name: app-{i}", f"    url: {url}?check={i}", "    interval: 2s",
                  "    timeout: 15s", "    browser: {screenshot: never}"]  # fmt: skip
    config.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "prober", "run", "-c", str(config), "--db", str(db)]
    measured = run_measured(cmd, args.duration, env, work / f"prober-{concurrency}.log")
    with sqlite3.connect(db) as conn:
        verdicts = dict(conn.execute("SELECT verdict, count(*) FROM results GROUP BY verdict").fetchall())
    pages = sum(verdicts.values())
    return {**measured, "pages": pages, "verdicts": verdicts, **per_page(measured, pages)}


def bare_phase(url: str, concurrency: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The bare Playwright loop with `concurrency` workers; pages and costs."""
    cmd = [sys.executable, str(HERE / "_bare_browser.py"), url, "--workers", str(concurrency),
           "--executable", args.chromium, "--out", str(work / f"bare-{concurrency}.json")]  # fmt: skip
    measured = run_measured(cmd, args.duration, dict(os.environ), work / f"bare-{concurrency}.log")
    counted = json.loads((work / f"bare-{concurrency}.json").read_text())
    return {**measured, **counted, **per_page(measured, counted["pages"])}


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, rounded; None without both."""
    return round(a / b, 2) if a and b else None


def per_page(measured: dict[str, Any], pages: int) -> dict[str, Any]:
    """Pages per minute and CPU seconds per page."""
    return {
        "pages_per_min": round(pages / measured["seconds"] * 60, 1) if measured["seconds"] else 0.0,
        "cpu_s_per_page": round(measured["cpu_s"] / pages, 3) if pages else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--chromium", default=os.environ.get("PROBER_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    url, stop = serve_app()
    figures: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cpus", "phases": {}}
    with tempfile.TemporaryDirectory(prefix="prober-bench-browser-") as tmp:
        for c in args.concurrency:
            print(f"concurrency {c}: prober for {args.duration:g} s ...", flush=True)
            phase = {"prober": prober_phase(url, c, args, Path(tmp))}
            if not args.skip_bare:
                print(f"concurrency {c}: bare Playwright loop for {args.duration:g} s ...", flush=True)
                phase["bare"] = bare_phase(url, c, args, Path(tmp))
                p, b = phase["prober"], phase["bare"]
                phase["ratio"] = {key: ratio(p[key], b[key]) for key in ("pages_per_min", "cpu_s_per_page")}
            figures["phases"][str(c)] = phase
    stop.set()
    report(figures)
    out = args.out or HERE / "out" / f"browser-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {out}")


def report(figures: dict[str, Any]) -> None:
    """A table: one row per concurrency and runner."""
    print(f"\n{'conc':>4} {'runner':<7} {'pages/min':>9} {'CPU s/page':>10} {'peak MiB':>8} "
          f"{'1st min':>7} {'last min':>8}  verdicts")  # fmt: skip
    for c, phase in figures["phases"].items():
        for runner in ("prober", "bare"):
            if runner not in phase:
                continue
            r = phase[runner]
            first, last = r["first_minute_median_mib"], r["last_minute_median_mib"]
            memory = f"{r['peak_pss_mib']:>8} {first:>7} {last:>8}"
            print(f"{c:>4} {runner:<7} {r['pages_per_min']:>9} {r['cpu_s_per_page'] or '-':>10} {memory}  "
                  f"{r.get('verdicts', r.get('errors', ''))}")  # fmt: skip
        if "ratio" in phase:
            r = phase["ratio"]
            print(f"{c:>4} {'ratio':<7} {r['pages_per_min']:>9} {r['cpu_s_per_page']:>10}")


if __name__ == "__main__":
    main()
