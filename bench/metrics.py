"""What a /metrics scrape costs: in-process renderings, and scrapes of a running `prober run`.

    python bench/metrics.py                                   # (a) micro: 1,000, 5,000, 20,000 checks x 3
    python bench/metrics.py --sizes 20000 --repeat 5          # (a) the figures of docs/metrics.md
    python bench/metrics.py --prober-path ../other-checkout   # (a) another checkout's prober (before/after)
    python bench/metrics.py --scrape --checks 2000 --duration 60     # (b) a live daemon, while it probes
    python bench/metrics.py --scrape --checks 20000 --interval 60 --duration 300 --detail full

(a) fills a `ProberMetrics` with N checks x V vantages of synthetic results (a state for each
check, no open incident) and times `exposition()` and its OpenMetrics twin (what a Prometheus
asks for first), in this process: CPU (time.process_time) and wall time, bytes and samples, for
each `metrics: {detail}` (summary, the default, and full). Beside it, the floor:
prometheus_client's own `generate_latest` over ready-made samples with the same four labels, so
the µs per sample of a rendering can be set against what the library alone takes.

(b) starts bench/_target.py's target and a `prober run --http` on bench/scale.py's generated
checks.yaml (its helpers: the same target, configuration and /proc accounting), waits one interval
so every check has a result, then scrapes /metrics `--scrapes` times, `--every` seconds apart
(more than the one-second rendering cache, so each scrape is a rendering). For each scrape: the CPU
that the prober's threads other than its event loop (the writer, and the executor thread that
renders) took during it, from /proc, minus their rate between scrapes; the whole process's CPU,
wall time and size; and the probing rate (target requests/s) during scrapes against the
rate between them. Run it at small sizes on a shared machine.

Figures are printed and written as JSON (default bench/out/metrics-YYYYmmdd-HHMMSS.json).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _process import stop  # noqa: E402

# bench/scale.py (its target, configuration writer and /proc accounting) imports prober from this
# checkout: `helpers()` imports it once the prober to measure (--prober-path) is on sys.path.
scale: ModuleType

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# A real Prometheus (2.x and 3.x) asks for OpenMetrics first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
REGIONS = ("US", "JP", "UK", "DE", "BR", "IN", "AU", "FR", "SG", "ZA")


# --- (a) in-process renderings --------------------------------------------------------------------


def helpers(prober_path: Path | None) -> None:
    """Import prober from `prober_path` (default: this checkout), then bench/scale.py beside it."""
    global scale
    root = (prober_path or HERE.parent).resolve()
    sys.path.insert(0, str(root))
    importlib.import_module("prober")  # first: scale's own import of prober.schedule finds it loaded
    import scale as module

    module.PROBER_PATH = root
    scale = module


def filled(checks: int, vantages: int, detail: str) -> Any:
    """A ProberMetrics (of the prober on sys.path) holding one result per check and vantage."""
    from prober.model import Phases, ProbeResult, State, Surface, Verdict
    from prober.web.metrics import ProberMetrics

    try:
        metrics = ProberMetrics(detail)  # type: ignore[arg-type]
    except TypeError:  # a prober from before `metrics: {detail}`: every series
        metrics = ProberMetrics()
    ts = datetime.now(UTC).replace(microsecond=0)
    for name in scale.check_names(checks):
        for v in range(vantages):
            metrics.observe(
                ProbeResult(
                    ts=ts, check=name, vantage=f"v{v + 1}", region=REGIONS[v % len(REGIONS)],
                    surface=Surface.WEB, url=f"http://127.0.0.1/p/{name}", verdict=Verdict.UP,
                    status=200, latency_ms=12.5, phases=Phases(0.1, 0.4, None, 9.0), bytes=1500,
                )
            )  # fmt: skip
        metrics.set_state(name, State.OPERATIONAL)
    metrics.set_open_incidents([])
    return metrics


def timed(render: Callable[[], bytes]) -> tuple[float, float, bytes]:
    """(CPU seconds, wall seconds, body) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    body = render()
    return time.process_time() - cpu, time.perf_counter() - wall, body


def samples_in(body: bytes) -> int:
    """Sample lines of a text or OpenMetrics body."""
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def micro(checks: int, vantages: int, detail: str, repeat: int) -> dict[str, Any]:
    """Medians of `repeat` renderings, in each format, of a filled ProberMetrics."""
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    metrics = filled(checks, vantages, detail)
    gc.collect()
    out: dict[str, Any] = {
        "checks": checks,
        "vantages": vantages,
        "detail": getattr(metrics, "detail", "all"),
    }
    try:
        from prober.web.metrics import expose

        renderers: dict[str, Callable[[], bytes]] = {
            "text": metrics.exposition,
            "openmetrics": lambda: expose(openmetrics, metrics.registry),
        }
    except ImportError:  # before: prometheus_client called as is
        renderers = {"text": metrics.exposition, "openmetrics": lambda: openmetrics(metrics.registry)}
    for fmt, render in renderers.items():
        runs = [timed(render) for _ in range(repeat)]
        body = runs[-1][2]
        n = samples_in(body)
        cpu = statistics.median(r[0] for r in runs)
        out[fmt] = {
            "cpu_s": round(cpu, 3),
            "wall_s": round(statistics.median(r[1] for r in runs), 3),
            "cpu_s_spread": [round(min(r[0] for r in runs), 3), round(max(r[0] for r in runs), 3)],
            "bytes": len(body),
            "samples": n,
            "samples_per_check_and_vantage": round(n / (checks * vantages), 2),
            "us_per_sample": round(cpu / n * 1e6, 2) if n else None,
        }
    return out


def floor(samples: int, repeat: int) -> dict[str, Any]:
    """prometheus_client alone: µs per sample to write ready-made 4-label gauge samples."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
    from prometheus_client.registry import Collector

    family = GaugeMetricFamily(
        "prober_probe_success", "help", labels=("check", "vantage", "region", "surface")
    )
    for i in range(samples):
        family.add_metric([f"c{i // 3:05d}", f"v{i % 3 + 1}", REGIONS[i % 3], "web"], 1)

    class Ready(Collector):
        def collect(self) -> list[Metric]:
            return [family]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Ready())
    out: dict[str, Any] = {"samples": samples}
    for fmt, encoder in (("text", generate_latest), ("openmetrics", openmetrics)):
        cpu = statistics.median(timed(lambda e=encoder: e(registry))[0] for _ in range(repeat))  # type: ignore[misc]
        out[fmt] = {"us_per_sample": round(cpu / samples * 1e6, 2)}
    return out


def run_micro(args: argparse.Namespace) -> dict[str, Any]:
    """(a): every size and detail, and the floor."""
    rows = []
    for checks in args.sizes:
        for detail in args.details:
            print(f"  {checks:,} checks x {args.vantages}, detail {detail} ...", flush=True)
            rows.append(micro(checks, args.vantages, detail, args.repeat))
    return {"renderings": rows, "floor": floor(60000, args.repeat)}


def micro_table(result: dict[str, Any]) -> str:
    """The renderings as a table."""
    lines = [
        "| checks x vantages | detail | samples (per check x vantage) | text: CPU s / wall s / MB | "
        "OpenMetrics: CPU s / MB | µs per sample (text, OM) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["renderings"]:
        t, o = r["text"], r["openmetrics"]
        lines.append(
            f"| {r['checks']:,} x {r['vantages']} | {r['detail']} | {t['samples']:,} "
            f"({t['samples_per_check_and_vantage']}) | "
            f"{t['cpu_s']} / {t['wall_s']} / {t['bytes'] / 1e6:.1f} | "
            f"{o['cpu_s']} / {o['bytes'] / 1e6:.1f} | {t['us_per_sample']}, {o['us_per_sample']} |"
        )
    f = result["floor"]
    lines.append(
        f"\nprometheus_client alone ({f['samples']:,} ready 4-label samples): "
        f"{f['text']['us_per_sample']} µs per sample (text), "
        f"{f['openmetrics']['us_per_sample']} (OpenMetrics)"
    )
    return "\n".join(lines)


# --- (b) scrapes of a running daemon --------------------------------------------------------------


def get(url: str, accept: str, timeout: float) -> bytes:
    """The body of a GET (raises on an error status)."""
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


def wait_until(
    what: str, ok: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, seconds: float
) -> None:
    """Poll `ok` every 50 ms for at most `seconds`; fail with the log's tail if the prober exits."""
    deadline = time.monotonic() + seconds
    while not ok():
        if proc.poll() is not None:
            raise RuntimeError(f"prober exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def off_loop_cpu(pid: int) -> float:
    """CPU seconds of a process's threads other than its main one (the event loop): the writer,
    and the executor threads where /metrics is rendered."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name != str(pid):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended
                continue
            total += (int(fields[11]) + int(fields[12])) / scale.TICK
    return total


def run_scrapes(args: argparse.Namespace) -> dict[str, Any]:
    """(b): scrape a `prober run --http` probing N checks x V vantages, and measure both."""
    work = Path(tempfile.mkdtemp(prefix="prober-metrics-"))
    config, db, log = work / "checks.yaml", work / "prober.db", work / "prober.log"
    port = scale.free_port()
    base = f"http://127.0.0.1:{port}"
    accept = {"openmetrics": PROMETHEUS_ACCEPT, "text": "text/plain"}[args.format]
    from _target import Target

    with Target() as target:
        scale.write_config(config, target, args.checks, args.vantages, args.interval, args.timeout)
        if args.detail != "summary":  # the default; a prober from before the key would refuse it
            with config.open("a") as f:
                f.write(f"metrics: {{detail: {args.detail}}}\n")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": scale.python_path()}
        cmd = [sys.executable, "-m", "prober", "run", "-q", "-c", str(config), "--db", str(db),
               "--http", f"127.0.0.1:{port}"]  # fmt: skip
        with log.open("wb") as log_file:
            proc = subprocess.Popen(cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=log_file, env=env)  # fmt: skip
        try:
            started = time.monotonic()

            def healthy() -> bool:
                try:
                    return bool(get(f"{base}/healthz", "*/*", 2))
                except OSError:
                    return False

            wait_until("/healthz answers", healthy, proc, log, 120)
            # One interval, so that every check has a result from every vantage.
            warm = time.monotonic() + args.interval + 1
            wait_until(
                "one interval of probes", lambda: time.monotonic() >= warm, proc, log, args.interval + 5
            )
            scrapes: list[dict[str, Any]] = []
            # (seconds, process CPU, off-loop CPU, requests) between scrapes
            quiet: list[tuple[float, float, float, int]] = []
            end = started + args.duration

            def now() -> tuple[float, float, float, int]:
                return (time.monotonic(), scale.cpu_seconds(proc.pid) or 0.0, off_loop_cpu(proc.pid),
                        target.counts()["prober"])  # fmt: skip

            for _ in range(args.scrapes):
                if time.monotonic() + args.every > end:
                    break
                before = now()
                body = get(f"{base}/metrics", accept, 120)
                after = now()
                wall, cpu, off_loop, requests = (b - a for a, b in zip(before, after, strict=True))
                scrape = {"wall_s": wall, "cpu_s": cpu, "off_loop_cpu_s": off_loop, "requests": requests}
                scrapes.append({**scrape, "bytes": len(body), "samples": samples_in(body)})
                due = after[0] + args.every
                wait_until("the next scrape", lambda t=due: time.monotonic() >= t, proc, log, args.every + 5)
                quiet.append(tuple(b - a for a, b in zip(after, now(), strict=True)))  # type: ignore[arg-type]
            rss = scale.memory_kib(proc.pid)
        finally:
            stop(proc)
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    if not scrapes:
        raise RuntimeError("no scrape fitted in --duration: make it longer than an interval and --every")
    quiet_s = sum(q[0] for q in quiet)
    probing_cores = sum(q[1] for q in quiet) / quiet_s  # the prober's CPU rate when not scraped
    writer_cores = sum(q[2] for q in quiet) / quiet_s  # the same, off the loop: the writer thread
    quiet_rate = sum(q[3] for q in quiet) / quiet_s
    scrape_s = sum(s["wall_s"] for s in scrapes)
    for s in scrapes:
        # The rendering runs in an executor thread: what the threads off the loop took during the
        # scrape beyond their rate between scrapes (the loop's share, writing the body out, is left out).
        s["scrape_cpu_s"] = round(max(s["off_loop_cpu_s"] - writer_cores * s["wall_s"], 0.0), 3)
        for key in ("wall_s", "cpu_s", "off_loop_cpu_s"):
            s[key] = round(s[key], 3)
    return {
        "checks": args.checks,
        "vantages": args.vantages,
        "interval": args.interval,
        "detail": args.detail,
        "format": args.format,
        "scheduled_probes_per_s": round(args.checks * args.vantages / args.interval, 1),
        "scrapes": scrapes,
        "median": {
            "scrape_cpu_s": statistics.median(s["scrape_cpu_s"] for s in scrapes),
            "wall_s": statistics.median(s["wall_s"] for s in scrapes),
            "bytes": statistics.median(s["bytes"] for s in scrapes),
            "samples": statistics.median(s["samples"] for s in scrapes),
        },
        "probing_cores_between_scrapes": round(probing_cores, 3),
        "probes_per_s_between_scrapes": round(quiet_rate, 1),
        "probes_per_s_during_scrapes": round(sum(s["requests"] for s in scrapes) / scrape_s, 1),
        "rss_mib_at_end": round(rss[0] / 1024, 1) if rss else None,
    }


def scrape_table(r: dict[str, Any]) -> str:
    """The scrapes in a few lines."""
    m = r["median"]
    return "\n".join([
        f"{r['checks']:,} checks x {r['vantages']} every {r['interval']:g} s "
        f"({r['scheduled_probes_per_s']:,} probes/s scheduled), detail {r['detail']}, {r['format']}:",
        f"  {len(r['scrapes'])} scrapes: median {m['scrape_cpu_s']} s of CPU rendering (off the loop), "
        f"{m['wall_s']} s wall, {m['bytes'] / 1e6:.2f} MB, {m['samples']:,} samples",
        f"  probes/s: {r['probes_per_s_during_scrapes']} during scrapes, "
        f"{r['probes_per_s_between_scrapes']} between them "
        f"(probing used {r['probing_cores_between_scrapes']} cores); "
        f"RSS at the end {r['rss_mib_at_end']} MiB",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vantages", type=int, default=3, help="vantages per check (default 3)")
    parser.add_argument("--sizes", type=lambda t: [int(x) for x in t.split(",")], default=[1000, 5000, 20000],
                        help="(a) numbers of checks, comma-separated (default 1000,5000,20000)")  # fmt: skip
    parser.add_argument("--details", type=lambda t: t.split(","), default=["summary", "full"],
                        help="(a) detail levels (default summary,full)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="(a) renderings per figure, median (default 3)")
    parser.add_argument("--prober-path", type=Path, default=None, metavar="DIR",
                        help="the prober package of another checkout (for before/after)")  # fmt: skip
    parser.add_argument("--scrape", action="store_true", help="(b) scrape a running prober instead")
    parser.add_argument("--checks", type=int, default=1000, help="(b) number of checks (default 1000)")
    parser.add_argument("--interval", type=float, default=10.0, help="(b) interval, seconds (default 10)")
    parser.add_argument("--timeout", default="5s", help="(b) probe timeout (default 5s)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="(b) seconds of the whole run, start-up included (default 60)")  # fmt: skip
    parser.add_argument("--scrapes", type=int, default=10, help="(b) at most this many scrapes (default 10)")
    parser.add_argument("--every", type=float, default=3.0,
                        help="(b) seconds between a scrape's end and the next one (default 3)")  # fmt: skip
    parser.add_argument("--detail", choices=("summary", "full"), default="summary", help="(b) metrics.detail")
    parser.add_argument("--format", choices=("openmetrics", "text"), default="openmetrics",
                        help="(b) format asked for (default: OpenMetrics first, as Prometheus)")  # fmt: skip
    parser.add_argument(
        "--keep", action="store_true", help="(b) keep the work folder (config, database, log)"
    )
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON figures")
    args = parser.parse_args(argv)
    helpers(args.prober_path)
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "prober_path": str(scale.PROBER_PATH),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
    }
    if args.scrape:
        result["scrape"] = run_scrapes(args)
        text = scrape_table(result["scrape"])
    else:
        result["micro"] = run_micro(args)
        text = micro_table(result["micro"])
    out = args.json or HERE / "out" / f"metrics-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(text)
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
