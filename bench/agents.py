"""What one collector takes from NATS, how fast a result gets stored, and what an agent costs.

    python bench/agents.py                       # quick: about a minute
    python bench/agents.py --results 200000 --checks 1000 --interval 10 --duration 60

Everything runs on this machine, on loopback: a nats-server with JetStream (its own port and store
directory), the collector (`prober run --nats`) and an agent (`prober agent`) as subprocesses, and
the local target of bench/scale.py (bench/_target.py). Three phases, one after the other:

1. **Store rate.** `--results` results are published to the stream while no collector runs (the
   backlog a collector finds after an outage); then the collector starts, and the rate is the
   results stored per second from its first stored row to the last. Target: at least 5,000/s.
2. **Publish-to-stored latency.** With the collector running, results are published at `--rate`
   per second; the database is polled every 5 ms for new ids: p50 and p99 of (seen - published).
3. **Agent CPU per probe, against the local daemon.** An agent probes `--checks` checks every
   `--interval` seconds for `--duration` seconds; then `prober run` (no NATS) probes the same
   checks from a local vantage for as long. CPU seconds per 1,000 probes from /proc, start-up
   excluded; probes counted by the target.

It prints a summary and writes JSON (default bench/out/agents-YYYYmmdd-HHMMSS.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _process import stop  # noqa: E402
from _target import Target  # noqa: E402
from scale import cpu_seconds, percentile, python_path  # noqa: E402

from prober.agents.wire import result_message  # noqa: E402
from prober.model import ProbeResult, Surface, Verdict, utcnow  # noqa: E402

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def stored(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM results").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def config_text(target: Target, checks: int, interval: float, agent: bool) -> str:
    vantage = "a1: {region: US, agent: true, source_address: 127.0.0.2}" if agent else "here: {region: EU}"
    name = "a1" if agent else "here"
    lines = [
        f"defaults: {{interval: {interval:g}s, timeout: 5s, vantages: [{name}]}}",
        "vantages:",
        f"  {vantage}",
    ]
    lines.append("checks:")
    lines += [f"  - {{name: c{i}, url: '{target.url}/p/c{i}'}}" for i in range(checks)]
    return "\n".join(lines) + "\n"


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": python_path(), "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "prober", *args], stdout=out, stderr=out, env=env)


async def publish(url: str, checks: int, count: int, rate: float | None) -> list[tuple[str, float]]:
    """Publish `count` results (at `rate` per second, or as fast as possible); (id, time) of each."""
    import nats

    nc = await nats.connect(url)
    sent: list[tuple[str, float]] = []
    began = time.monotonic()
    for i in range(count):
        rid = uuid.uuid4().hex
        r = ProbeResult(
            utcnow(), f"c{i % checks}", "a1", "US", Surface.WEB, "u", Verdict.UP, status=200, latency_ms=3.2
        )
        await nc.publish("prober.results.a1", result_message(r, rid), headers={"Nats-Msg-Id": rid})
        sent.append((rid, time.time()))
        if rate is not None:
            ahead = began + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        elif i % 1000 == 999:
            await nc.flush()
    await nc.flush()
    await nc.close()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=int, default=30000, help="backlog the collector finds (phase 1)")
    parser.add_argument("--rate", type=float, default=500, help="results per second published (phase 2)")
    parser.add_argument("--seconds", type=float, default=10, help="how long phase 2 publishes")
    parser.add_argument("--checks", type=int, default=200, help="checks the agent and the daemon probe")
    parser.add_argument("--interval", type=float, default=2.0, help="their interval, seconds")
    parser.add_argument("--duration", type=float, default=20, help="how long each of them probes (phase 3)")
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    nats_log = work / "nats.log"
    with nats_log.open("ab") as out:
        server = subprocess.Popen(
            [NATS_SERVER, "-js", "-sd", str(work / "js"), "-a", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=out,
        )
    target = Target().start()
    report: dict[str, Any] = {
        "machine": os.uname().nodename,
        "cpus": os.cpu_count(),
        "when": datetime.now().isoformat(),
    }
    try:
        wait(lambda: "Server is ready" in nats_log.read_text(), 20, "nats-server")
        config = work / "checks.yaml"
        config.write_text(config_text(target, opts.checks, opts.interval, agent=True))
        db = work / "collector.db"
        log = work / "collector.log"

        # 1. the backlog: a first start makes the stream and consumer; results published; the collector again
        collector = start(["run", "-c", str(config), "--db", str(db), "--nats", url], log)
        wait(lambda: "collecting results" in log.read_text(), 60, "the collector")
        stop(collector)
        asyncio.run(publish(url, opts.checks, opts.results, None))
        collector = start(["run", "-c", str(config), "--db", str(db), "--nats", url], log)
        wait(lambda: stored(db) > 0, 60, "the first stored result")
        first = time.monotonic()
        wait(lambda: stored(db) >= opts.results, 600, f"{opts.results} results stored")
        took = time.monotonic() - first
        report["store"] = {
            "results": opts.results,
            "seconds": round(took, 2),
            "per_second": round(opts.results / took),
        }
        print(
            f"store: {opts.results} results in {took:.1f}s from the first one: "
            f"{opts.results / took:,.0f}/s (target 5,000/s)"
        )

        # 2. latency: publish at a rate, watch the database for each id
        seen: dict[str, float] = {}
        last = stored(db) and int(
            sqlite3.connect(db).execute("SELECT max(id) FROM results").fetchone()[0] or 0
        )
        count = int(opts.rate * opts.seconds)
        import threading

        done = threading.Event()

        def poll() -> None:
            nonlocal last
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)  # this thread's own
            while not done.is_set() or len(seen) < count:
                for rowid, rid in conn.execute("SELECT id, result_id FROM results WHERE id > ?", (last,)):
                    seen[rid] = time.time()
                    last = rowid
                if done.is_set() and time.monotonic() > giving_up:
                    break
                time.sleep(0.005)

        giving_up = float("inf")
        watcher = threading.Thread(target=poll)
        watcher.start()
        sent = asyncio.run(publish(url, opts.checks, count, opts.rate))
        giving_up = time.monotonic() + 60
        done.set()
        watcher.join()
        latencies = [(seen[rid] - at) * 1000 for rid, at in sent if rid in seen]
        report["latency_ms"] = {
            "results": count,
            "stored": len(latencies),
            "rate": opts.rate,
            "p50": round(percentile(latencies, 0.5) or 0, 1),
            "p99": round(percentile(latencies, 0.99) or 0, 1),
        }
        print(
            f"publish-to-stored at {opts.rate:g}/s: p50 {report['latency_ms']['p50']} ms, "
            f"p99 {report['latency_ms']['p99']} ms ({len(latencies)}/{count} seen)"
        )

        # 3. CPU per probe: the agent, then the local daemon, on the same checks
        def cpu_per_probe(proc: subprocess.Popen[bytes], ready: Any) -> dict[str, Any]:
            wait(ready, 60, "probing to start")
            time.sleep(min(2.0, opts.interval))  # start-up excluded
            cpu0, n0, t0 = cpu_seconds(proc.pid) or 0.0, target.counts()["prober"], time.monotonic()
            time.sleep(opts.duration)
            cpu1, n1, t1 = cpu_seconds(proc.pid) or 0.0, target.counts()["prober"], time.monotonic()
            stop(proc)
            probes = n1 - n0
            return {
                "probes": probes,
                "per_second": round(probes / (t1 - t0), 1),
                "cpu_s": round(cpu1 - cpu0, 2),
                "cpu_ms_per_probe": round((cpu1 - cpu0) / probes * 1000, 3) if probes else None,
            }

        agent_log = work / "agent.log"
        agent = start(["agent", "--nats", url, "--vantage", "a1", "-q"], agent_log)
        before = target.counts()["prober"]
        report["agent"] = cpu_per_probe(agent, lambda: target.counts()["prober"] > before)
        stop(collector)
        local = work / "local.yaml"
        local.write_text(config_text(target, opts.checks, opts.interval, agent=False))
        daemon = start(["run", "-c", str(local), "--db", str(work / "local.db"), "-q"], work / "daemon.log")
        before = target.counts()["prober"]
        report["daemon"] = cpu_per_probe(daemon, lambda: target.counts()["prober"] > before)
        for name in ("agent", "daemon"):
            r = report[name]
            print(
                f"{name}: {r['probes']} probes ({r['per_second']}/s), "
                f"{r['cpu_ms_per_probe']} ms CPU per probe"
            )
    finally:
        target.stop()
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    out = opts.out or HERE / "out" / f"agents-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
