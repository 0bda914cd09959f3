"""How many probes a second prober sustains here, against a bare aiohttp loop and blackbox_exporter.

    python bench/scale.py                    # quick: 1,000 checks x 3 vantages every 10 s, about a minute
    python bench/scale.py --checks 20000 --vantages 3 --interval 60 --duration 120   # the README figures
    python bench/scale.py --checks 1000 --interval 60 --duration 600 --skip-bare --skip-blackbox  # memory

It starts a local target (bench/_target.py: worker processes sharing one 127.0.0.1 port, counting
every request exactly), writes a checks.yaml of N checks x V vantages (source addresses 127.0.0.2,
127.0.0.3, ...) at one interval, runs `prober run` on it as a subprocess for `--duration` seconds
and stops it with SIGTERM. Then, one after the other against the same target, at the same rate:

- the ceiling: a bare aiohttp client loop (bench/_bare.py) with prober's connection policy (a new
  connection per request: force_close, no DNS cache; one session per source address), on the
  same event loop (uvloop when installed, unless PROBER_LOOP=asyncio);
- a real peer: Debian's prometheus-blackbox-exporter (installed with apt-get when missing) probing
  the target through its /probe endpoint, driven by a scraper in this process (keep-alive to the
  exporter; the scraper's CPU is not counted, the exporter's is).

The phases run one after the other, not at once: on 2 cores, running them together would measure
how they share the CPU, not what each one costs.

Measured: probes per second achieved vs scheduled; schedule lateness (a result's `ts` is the
probe's start, its planned start is `prober.schedule.planned_time`), p50, p99, max; CPU seconds
per 1,000 probes over the steady-state window (start-up excluded, reported apart: from process
start to the "prober running" line and to the first probe); peak RSS (VmHWM); rows written per
second; results lost (requests the target answered minus rows stored: must be 0); verdicts. It
prints a table and writes JSON (default bench/out/scale-YYYYmmdd-HHMMSS.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from _pacing import at_rate  # noqa: E402
from _target import Target  # noqa: E402

from prober.schedule import phase  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
REGIONS = ("US", "JP", "UK", "DE", "BR", "IN", "AU", "FR", "SG", "ZA")
BLACKBOX = "prometheus-blackbox-exporter"


# --- process accounting ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads) so far; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of a process in KiB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss = re.search(r"VmRSS:\s+(\d+)", text)
    hwm = re.search(r"VmHWM:\s+(\d+)", text)
    return (int(rss.group(1)) if rss else 0, int(hwm.group(1)) if hwm else 0)


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Sample:
    """One sampling instant: wall time, CPU of the watched processes, target counts, rows stored."""

    t: float
    cpu: dict[str, float]
    rss_kib: dict[str, int]
    hits: dict[str, int]
    machine: tuple[float, float]
    rows: int | None = None


@dataclass
class Sampler:
    """Samples the watched processes every `period` seconds in a thread."""

    target: Target
    period: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    pids: dict[str, list[int]] = field(default_factory=dict)
    db: Path | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, name: str, pids: list[int]) -> None:
        """Add processes to sample under `name` (their CPU is summed)."""
        self.pids[name] = pids

    def sample(self) -> Sample:
        """Take one sample now (also kept in `samples`)."""
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        for name, pids in list(self.pids.items()):
            values = [cpu_seconds(p) for p in pids]
            if all(v is not None for v in values):
                cpu[name] = sum(v for v in values if v is not None)
            mem = [memory_kib(p) for p in pids]
            if all(m is not None for m in mem):
                rss[name] = sum(m[0] for m in mem if m is not None)
        rows = None
        if self.db is not None and self.db.exists():
            with contextlib.suppress(sqlite3.Error):
                conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=0.2)
                try:
                    rows = conn.execute("SELECT max(rowid) FROM results").fetchone()[0] or 0
                finally:
                    conn.close()
        s = Sample(time.time(), cpu, rss, self.target.counts(), machine_busy(), rows)
        self.samples.append(s)
        return s

    def start(self) -> None:
        """Sample until `stop`."""

        def run() -> None:
            while not self._stop.wait(self.period):
                self.sample()

        self._thread = threading.Thread(target=run, name="sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def window(self, name: str, kind: str, start: float, end: float) -> dict[str, Any]:
        """CPU and requests of `name` between the samples nearest to `start` and `end`."""
        inside = [s for s in self.samples if start <= s.t <= end and name in s.cpu]
        if len(inside) < 2:
            return {}
        a, b = inside[0], inside[-1]
        requests = b.hits[kind] - a.hits[kind]
        cpu = b.cpu[name] - a.cpu[name]
        busy = (b.machine[0] - a.machine[0]) / max(b.machine[1] - a.machine[1], 1)
        out = {
            "window_s": round(b.t - a.t, 2),
            "requests": requests,
            "requests_per_s": round(requests / (b.t - a.t), 1),
            "cpu_s": round(cpu, 2),
            "cores": round(cpu / (b.t - a.t), 3),
            "cpu_s_per_1000": round(cpu / requests * 1000, 3) if requests else None,
            "machine_busy_pct": round(busy * 100, 1),
        }
        target_cpu = b.cpu.get("target", 0) - a.cpu.get("target", 0)
        if requests and "target" in a.cpu:
            out["target_cpu_s_per_1000"] = round(target_cpu / requests * 1000, 3)
        return out


# --- the prober ---------------------------------------------------------------------------------


PROBER_PATH = ROOT  # where `python -m prober` is imported from (--prober-path)


def python_path() -> str:
    """PYTHONPATH that makes `python -m prober` this checkout's prober, whatever else is installed."""
    return os.pathsep.join([str(PROBER_PATH), *filter(None, [os.environ.get("PYTHONPATH")])])


def check_names(checks: int) -> list[str]:
    """The names of the generated checks."""
    width = len(str(checks))
    return [f"c{i + 1:0{width}d}" for i in range(checks)]


def write_config(
    path: Path, target: Target, checks: int, vantages: int, interval: float, timeout: str
) -> None:
    """A checks.yaml of `checks` checks probed from `vantages` vantages at `interval` seconds."""
    lines = [
        f"defaults: {{interval: {interval:g}s, timeout: {timeout}}}",
        "vantages:",
    ]
    for i in range(vantages):
        lines.append(f"  v{i + 1}: {{region: {REGIONS[i % len(REGIONS)]}, source_address: 127.0.0.{i + 2}}}")
    lines.append("checks:")
    for name in check_names(checks):
        lines.append(f"  - {{name: {name}, url: '{target.url}/p/{name}'}}")
    path.write_text("\n".join(lines) + "\n")


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) of `values`, nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def parse_ts(text: str) -> float:
    """Epoch seconds of a stored ISO 8601 UTC time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def analyse_db(
    db: Path, names: list[str], interval: float, vantages: int, window: tuple[float, float]
) -> dict[str, Any]:
    """Lateness, verdicts, and scheduled vs achieved probes from the stored results."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT ts, check_name, verdict, reason FROM results").fetchall()
    finally:
        conn.close()
    late: list[float] = []
    in_window = 0
    phases = {name: phase(name, interval) for name in names}
    verdicts: Counter[str] = Counter()
    for ts, name, verdict, reason in rows:
        verdicts[f"{verdict}/{reason}" if reason else verdict] += 1
        offset = phases[name]
        at = parse_ts(ts)
        # A run never starts early, but a stored ts is cut to the millisecond: one that started on
        # time may look up to 1 ms early, which the modulo would turn into a whole interval late.
        lateness = (at - offset) % interval
        if lateness > interval - 0.002:
            lateness -= interval
        late.append(lateness)
        if window[0] <= at - lateness < window[1]:
            in_window += 1
    # Planned runs within the window, check by check: k with start <= offset + k * interval < end.
    scheduled = 0
    for offset in phases.values():
        first = -(-(window[0] - offset) // interval)
        last = -(-(window[1] - offset) // interval)
        scheduled += int(last - first)
    scheduled *= vantages
    span = window[1] - window[0]
    return {
        "rows": len(rows),
        "verdicts": dict(verdicts.most_common()),
        "down": sum(n for k, n in verdicts.items() if k.startswith("down")),
        "lateness_ms": {
            "p50": _ms(percentile(late, 0.50)),
            "p99": _ms(percentile(late, 0.99)),
            "max": _ms(max(late, default=None)),
            "mean": _ms(statistics.fmean(late) if late else None),
        },
        "window": {
            "seconds": round(span, 2),
            "scheduled_probes": scheduled,
            "achieved_probes": in_window,
            "scheduled_per_s": round(scheduled / span, 1) if span > 0 else None,
            "achieved_per_s": round(in_window / span, 1) if span > 0 else None,
        },
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def run_prober(args: argparse.Namespace, target: Target, sampler: Sampler, work: Path) -> dict[str, Any]:
    """Run `prober run` on a generated configuration for `args.duration` seconds and measure it."""
    config = work / "checks.yaml"
    db = work / "prober.db"
    log_path = work / "prober.log"
    write_config(config, target, args.checks, args.vantages, args.interval, args.timeout)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path()}
    if args.loop:
        env["PROBER_LOOP"] = args.loop
    cmd = [sys.executable, "-m", "prober", "run", "-c", str(config), "--db", str(db)]
    if args.quiet:
        cmd.append("-q")
    hits0 = target.counts()["prober"]
    sampler.db = db
    with log_path.open("wb") as log_file:
        spawned = time.time()
        proc = subprocess.Popen(
            cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file, env=env
        )
    sampler.watch("prober", [proc.pid])
    running_at = first_at = None
    deadline = spawned + 120
    try:
        while running_at is None or first_at is None:
            if proc.poll() is not None:
                raise RuntimeError(f"prober exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.time() > deadline:
                raise RuntimeError(f"prober did not start within 120 s:\n{log_path.read_text()[-3000:]}")
            if running_at is None and b"prober running" in log_path.read_bytes():
                running_at = time.time()
            if first_at is None and target.counts()["prober"] > hits0:
                first_at = time.time()
            time.sleep(0.02)
        print(
            f"  prober running after {running_at - spawned:.2f} s; probing for {args.duration:g} s",
            flush=True,
        )
        profiler = None
        if args.profile:
            warm = min(args.warmup, args.duration / 4)
            time.sleep(max(running_at + warm - time.time(), 0))
            span = max(int(running_at + args.duration - time.time()) - 1, 1)
            profiler = subprocess.Popen(
                ["py-spy", "record", "--pid", str(proc.pid), "--rate", "100", "--nonblocking", "--format",
                 "raw", "--duration", str(span), "-o", str(args.profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        time.sleep(max(running_at + args.duration - time.time(), 0))
        if profiler is not None:
            profiler.wait(30)
        hwm_before_stop = (memory_kib(proc.pid) or (0, 0))[1]
        sampler.sample()
        stop_at = time.time()
        proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stopped_at = time.time()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sampler.pids.pop("prober", None)
    sampler.db = None
    hits = target.counts()["prober"] - hits0
    log_text = log_path.read_text(errors="replace")
    warm = min(args.warmup, args.duration / 4)
    window = (running_at + warm, stop_at)
    steady = sampler.window("prober", "prober", *window)
    # The same, interval by interval: the first one also logs every check's first verdict.
    by_interval = []
    k = 0
    while running_at + (k + 1) * args.interval <= stop_at + 0.5 and k < 20:
        start = running_at + k * args.interval
        by_interval.append(sampler.window("prober", "prober", start, start + args.interval))
        k += 1
    db_stats = analyse_db(db, check_names(args.checks), args.interval, args.vantages, window)
    rss = [
        (s.t, s.rss_kib["prober"])
        for s in sampler.samples
        if s.rss_kib.get("prober") and running_at <= s.t <= stop_at  # a zombie has no VmRSS
    ]
    written = [(s.t, s.rows) for s in sampler.samples if s.rows is not None and window[0] <= s.t <= window[1]]
    rows_per_s = None
    if len(written) >= 2 and written[-1][0] > written[0][0]:
        rows_per_s = round((written[-1][1] - written[0][1]) / (written[-1][0] - written[0][0]), 1)
    lag = [s.hits["prober"] - hits0 - s.rows for s in sampler.samples if s.rows is not None]
    result = {
        "command": " ".join(cmd[1:]),
        "exit_code": proc.returncode,
        "startup_s": {
            "to_running": round(running_at - spawned, 2),
            "to_first_probe": round(first_at - spawned, 2),
        },
        "stop_s": round(stopped_at - stop_at, 2),
        "steady": steady,
        "by_interval": by_interval,
        "target_requests": hits,
        "rows_stored": db_stats["rows"],
        "lost": hits - db_stats["rows"],
        "rows_written_per_s": rows_per_s,
        "max_unwritten_rows": max(lag, default=None),
        "peak_rss_mib": round(max(usage.ru_maxrss, hwm_before_stop) / 1024, 1),
        "rss_mib": _rss_profile(rss),
        "warnings": {
            "behind_schedule": log_text.count("behind schedule"),
            "skipped": len(re.findall(r"run of \S+ skipped|this run skipped", log_text)),
            "late": len(re.findall(r"started [\d.]+s late", log_text)),
            "overloaded": log_text.count("prober overloaded"),
            "errors": len(re.findall(r" (?:ERROR|CRITICAL) ", log_text)),
        },
        "log_lines": log_text.count("\n"),
        **{k: v for k, v in db_stats.items() if k != "rows"},
    }
    if args.keep:
        result["work_dir"] = str(work)
    return result


def _rss_profile(samples: list[tuple[float, int]]) -> dict[str, Any]:
    """RSS (MiB) at a quarter, half and three quarters of the run, at its end, and how fast it grew
    over the second half (MiB per minute): flat memory shows as about 0."""
    if not samples:
        return {}
    n = len(samples)
    quarters = [round(samples[min(n - 1, int(n * q))][1] / 1024, 1) for q in (0.25, 0.5, 0.75)]
    (t0, r0), (t1, r1) = samples[n // 2], samples[-1]
    return {
        "at_25_50_75_pct": quarters,
        "end": round(r1 / 1024, 1),
        "max": round(max(r for _, r in samples) / 1024, 1),
        "second_half_growth_mib_per_min": round((r1 - r0) / 1024 / (t1 - t0) * 60, 2) if t1 > t0 else None,
    }


# --- the bare client loop -------------------------------------------------------------------------


def run_bare(args: argparse.Namespace, target: Target, sampler: Sampler, rate: float) -> dict[str, Any]:
    """Hit the target with the bare aiohttp loop at `rate` for `args.peer_duration` seconds."""
    sources = ",".join(f"127.0.0.{i + 2}" for i in range(args.vantages))
    env = {**os.environ, "PYTHONPATH": python_path()}
    if args.loop:
        env["PROBER_LOOP"] = args.loop
    cmd = [
        sys.executable, str(HERE / "_bare.py"), f"{target.url}/bare", "--rate", f"{rate:g}",
        "--duration", f"{args.peer_duration:g}", "--sources", sources,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    proc.stderr.readline()  # "bare loop ready": imports are done
    started = time.time()
    sampler.watch("bare", [proc.pid])
    time.sleep(max(started + args.peer_duration - 0.5 - time.time(), 0))
    sampler.sample()
    ended = time.time()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.pids.pop("bare", None)
    report = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": proc.stderr.read()}
    warm = min(args.warmup, args.peer_duration / 4) / 2
    return {
        "command": " ".join(cmd[1:]),
        "steady": sampler.window("bare", "bare", started + warm, ended),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        **report,
    }


# --- blackbox_exporter ----------------------------------------------------------------------------


def find_or_install_blackbox() -> tuple[str | None, str]:
    """The exporter's path, installing Debian's package with apt-get when missing; or None and why."""
    found = shutil.which(BLACKBOX) or (
        f"/usr/bin/{BLACKBOX}" if Path(f"/usr/bin/{BLACKBOX}").exists() else None
    )
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "apt-get not available: cannot install prometheus-blackbox-exporter"
    sudo: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"  installing {BLACKBOX} with apt-get ...", flush=True)
    install = [*sudo, "apt-get", "install", "-y", BLACKBOX]
    errors = ""
    for attempt in range(2):  # the second after an `apt-get update`, in case the index is stale
        try:
            if attempt:
                subprocess.run([*sudo, "apt-get", "update"], capture_output=True, timeout=600, env=env)
            done = subprocess.run(install, capture_output=True, text=True, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"cannot install {BLACKBOX}: {exc}"
        if done.returncode == 0:
            break
        errors = (done.stderr or done.stdout).strip()
    found = shutil.which(BLACKBOX) or (
        f"/usr/bin/{BLACKBOX}" if Path(f"/usr/bin/{BLACKBOX}").exists() else None
    )
    if found:
        return found, ""
    last = errors.splitlines()[-1] if errors else "unknown error"
    return None, f"cannot install {BLACKBOX} with apt-get: {last}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BLACKBOX_CONFIG = """modules:
  http_2xx:
    prober: http
    timeout: {timeout}
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      follow_redirects: true
"""


async def scrape(exporter: str, target: Target, rate: float, duration: float) -> dict[str, Any]:
    """Ask the exporter to probe the target `rate` times a second, as Prometheus would."""
    import aiohttp

    ok = failed = 0
    errors: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=512, use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15)) as s:

        async def one(n: int) -> None:
            nonlocal ok, failed
            params = {"module": "http_2xx", "target": f"{target.url}/bb/{n}"}
            try:
                async with s.get(f"{exporter}/probe", params=params) as resp:
                    text = await resp.text()
                if resp.status == 200 and "\nprobe_success 1" in text:
                    ok += 1
                    return
                errors[f"status {resp.status}" if resp.status != 200 else "probe_success 0"] += 1
            except Exception as exc:  # counted, not raised: the run goes on
                errors[type(exc).__name__] += 1
            failed += 1

        launched = await at_rate(rate, duration, one, grace=20)
    return {"requests": launched, "ok": ok, "failed": failed, "errors": dict(errors)}


def run_blackbox(
    args: argparse.Namespace, target: Target, sampler: Sampler, rate: float, binary: str, work: Path
) -> dict[str, Any]:
    """Run the exporter and scrape it at `rate` for `args.peer_duration` seconds."""
    config = work / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG.format(timeout=args.timeout))
    port = free_port()
    cmd = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    done = subprocess.run([binary, "--version"], capture_output=True, text=True)
    version = (done.stdout or done.stderr).strip().split("\n")[0]  # "blackbox_exporter, version 0.23.0 (...)"
    log_path = work / "blackbox.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    try:
        deadline = time.time() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"blackbox_exporter did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        sampler.watch("blackbox", [proc.pid])
        started = time.time()
        report = asyncio.run(scrape(f"http://127.0.0.1:{port}", target, rate, args.peer_duration))
        ended = time.time()
        sampler.sample()
        peak = (memory_kib(proc.pid) or (0, 0))[1]
    finally:
        sampler.pids.pop("blackbox", None)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    warm = min(args.warmup, args.peer_duration / 4) / 2
    return {
        "version": version,
        "command": " ".join(cmd),
        "steady": sampler.window("blackbox", "blackbox", started + warm, ended),
        "peak_rss_mib": round(peak / 1024, 1),
        **report,
    }


# --- the report -----------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    """The results: a Markdown table side by side, then prober's own figures."""
    p = result["prober"]
    b = result.get("bare") or {}
    x = result.get("blackbox") or {}
    ps, bs, xs = p.get("steady", {}), b.get("steady", {}), x.get("steady", {})

    def f(value: Any, fmt: str = "{:,.3f}") -> str:
        return "-" if value is None else fmt.format(value)

    def rate(steady: dict[str, Any], present: bool) -> str:
        return f"{result['rate']:,.0f} / {f(steady.get('requests_per_s'), '{:,.1f}')}" if present else "-"

    ratio = (f(result.get("ratio_to_bare"), "{:.2f}x"), "1.00x" if b else "-",
             f(result.get("blackbox_ratio_to_bare"), "{:.2f}x"))  # fmt: skip
    rows = [
        ("probes/s scheduled / achieved", rate(ps, True), rate(bs, bool(b)), rate(xs, bool(x))),
        ("CPU s per 1,000 probes", *(f(w.get("cpu_s_per_1000")) for w in (ps, bs, xs))),
        ("CPU relative to the bare loop", *ratio),
        ("cores used", *(f(w.get("cores"), "{:.2f}") for w in (ps, bs, xs))),
        ("peak RSS MiB", *(f(w.get("peak_rss_mib"), "{:,.1f}") for w in (p, b, x))),
        ("failed probes (prober: down)", f(p["down"], "{:,}"), f(b.get("failed"), "{:,}"),
         f(x.get("failed"), "{:,}")),
        ("machine busy, both cores", *(f(w.get("machine_busy_pct"), "{:.0f}%") for w in (ps, bs, xs))),
    ]  # fmt: skip
    peer = f"blackbox_exporter {x.get('version', '').split('version ')[-1].split(' ')[0]}".strip()
    head = ("", "prober", "bare aiohttp loop", peer if x else "blackbox_exporter")
    widths = [max(len(r[i]) for r in (*rows, head)) for i in range(4)]
    lines = [
        "| "
        + " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        + " |"
        for r in (head, tuple("-" * w for w in widths), *rows)
    ]
    late = p["lateness_ms"]
    window = p["window"]
    lines += [
        "",
        f"prober: {result['checks']:,} checks x {result['vantages']} vantages every {result['interval']:g} s"
        f" for {result['duration']:g} s; steady window {window['seconds']:g} s",
        f"  probes started: {window['achieved_probes']:,} of {window['scheduled_probes']:,} scheduled",
        f"  lateness ms: p50 {f(late['p50'], '{:.1f}')}, p99 {f(late['p99'], '{:.1f}')},"
        f" max {f(late['max'], '{:.1f}')}",
        f"  start-up s: {p['startup_s']['to_running']:.2f} to 'prober running',"
        f" {p['startup_s']['to_first_probe']:.2f} to the first probe; stop: {p['stop_s']:.2f}",
        f"  results: {p['target_requests']:,} requests answered, {p['rows_stored']:,} rows stored,"
        f" lost {p['lost']:,}; rows written/s {f(p['rows_written_per_s'], '{:,.1f}')}",
        f"  verdicts: {', '.join(f'{k} {v:,}' for k, v in p['verdicts'].items())}",
        f"  RSS MiB: {p['rss_mib']}",
        f"  log: {p['warnings']}",
        f"  target CPU s per 1,000 requests: {f(ps.get('target_cpu_s_per_1000'))}",
    ]
    if len(p.get("by_interval", [])) > 1:
        per = ", ".join(f(w.get("cpu_s_per_1000")) for w in p["by_interval"])
        lines.append(f"  CPU s per 1,000 probes by interval (the first logs every first verdict): {per}")
    lines += [f"note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)


def parse_seconds(text: str) -> float:
    """Seconds from "60", "60s", "500ms", "5m"."""
    m = re.fullmatch(r"\s*([\d.]+)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, default=1000, help="number of checks (default 1000)")
    parser.add_argument("--vantages", type=int, default=3, help="vantages per check (default 3)")
    parser.add_argument("--interval", type=parse_seconds, default=10.0, help="interval (default 10s)")
    parser.add_argument("--duration", type=parse_seconds, default=20.0, help="prober run time (default 20s)")
    parser.add_argument(
        "--peer-duration", type=parse_seconds, default=None,
        help="run time of the bare loop and of blackbox_exporter (default: --duration, at most 60s)",
    )  # fmt: skip
    parser.add_argument(
        "--warmup", type=parse_seconds, default=10.0,
        help="seconds after start-up left out of the CPU figures (default 10s, at most duration/4)",
    )  # fmt: skip
    parser.add_argument("--timeout", default="10s", help="probe timeout (default 10s)")
    parser.add_argument("--target-procs", type=int, default=1, help="target worker processes (default 1)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None, help="PROBER_LOOP")
    parser.add_argument("--quiet", action="store_true", help="run prober with -q (warnings only)")
    parser.add_argument("--skip-bare", action="store_true", help="do not run the bare aiohttp loop")
    parser.add_argument("--skip-blackbox", action="store_true", help="do not run blackbox_exporter")
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="PATH",
        help="record the prober's steady state with py-spy (collapsed stacks) into PATH",
    )  # fmt: skip
    parser.add_argument(
        "--prober-path", type=Path, default=None, metavar="DIR",
        help="run the prober package found in DIR (another checkout) instead of this one",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the work folder (config, database, logs)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON figures")
    parser.add_argument(
        "--runs", type=int, default=3, help="comparisons to run; medians and spread (default 3)"
    )
    parser.add_argument(
        "--max-rate", action="store_true",
        help="ramp the rate up by --ramp-step from the one given until a step does not hold (prober alone)",
    )  # fmt: skip
    parser.add_argument(
        "--ramp-step", type=float, default=250.0, help="probes/s added per step (default 250)"
    )
    parser.add_argument("--ramp-limit", type=float, default=5000.0, help="highest rate tried (default 5000)")
    parser.add_argument(
        "--max-lateness",
        type=float,
        default=250.0,
        help="p99 lateness in ms a step must stay under (default 250)",
    )
    args = parser.parse_args(argv)
    global PROBER_PATH
    if args.prober_path is not None:
        PROBER_PATH = args.prober_path.resolve()
    if args.peer_duration is None:
        args.peer_duration = min(args.duration, 60.0)
    if args.vantages > 250:
        parser.error("--vantages: at most 250 source addresses")
    rate = args.checks * args.vantages / args.interval
    out = args.json or HERE / "out" / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    binary = None
    if not args.skip_blackbox and not args.max_rate:
        binary, why = find_or_install_blackbox()
        if binary is None:
            notes.append(f"blackbox_exporter column skipped: {why}")
            print(f"note: {notes[-1]}", file=sys.stderr)
    summary: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "loop": args.loop or os.environ.get("PROBER_LOOP") or "uvloop if installed",
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": notes,
    }
    with Target(args.target_procs) as target:
        if args.max_rate:
            summary["ramp"] = ramp(args, target)
            text = ramp_table(summary["ramp"], args)
        else:
            runs = []
            for i in range(args.runs):
                print(f"run {i + 1} of {args.runs}", flush=True)
                runs.append(compare(args, target, rate, binary, notes))
                print(table(runs[-1]), flush=True)
            summary["runs"] = runs
            summary["medians"] = medians(runs)
            text = table(runs[-1]) if len(runs) == 1 else medians_table(summary["medians"], len(runs))
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print()
    print(text)
    print(f"\nJSON: {out}")
    return 0


def compare(
    args: argparse.Namespace, target: Target, rate: float, binary: str | None, notes: list[str]
) -> dict[str, Any]:
    """One comparison: prober, then the bare loop, then blackbox_exporter, at `rate` probes/s."""
    work = Path(tempfile.mkdtemp(prefix="prober-scale-"))
    result: dict[str, Any] = {
        "checks": args.checks,
        "vantages": args.vantages,
        "interval": args.interval,
        "duration": args.duration,
        "peer_duration": args.peer_duration,
        "rate": rate,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": notes,
    }
    sampler = Sampler(target)
    sampler.watch("target", target.pids)
    sampler.start()
    try:
        print(f"prober: {args.checks:,} checks x {args.vantages} vantages every {args.interval:g} s "
              f"({rate:,.0f} probes/s) for {args.duration:g} s", flush=True)  # fmt: skip
        result["prober"] = run_prober(args, target, sampler, work)
        if not args.skip_bare:
            print(f"bare aiohttp loop: {rate:,.0f} requests/s for {args.peer_duration:g} s", flush=True)
            result["bare"] = run_bare(args, target, sampler, rate)
        if binary is not None:
            print(f"blackbox_exporter: {rate:,.0f} probes/s for {args.peer_duration:g} s", flush=True)
            result["blackbox"] = run_blackbox(args, target, sampler, rate, binary, work)
    finally:
        sampler.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["target_counts"] = target.counts()
    p = result["prober"]["steady"].get("cpu_s_per_1000")
    b = (result.get("bare") or {}).get("steady", {}).get("cpu_s_per_1000")
    x = (result.get("blackbox") or {}).get("steady", {}).get("cpu_s_per_1000")
    result["ratio_to_bare"] = round(p / b, 2) if p and b else None
    result["blackbox_ratio_to_bare"] = round(x / b, 2) if x and b else None
    result["ratio_to_blackbox"] = round(p / x, 2) if p and x else None
    result["timeline"] = [
        {"t": round(s.t, 2), "cpu": s.cpu, "rss_kib": s.rss_kib, "hits": s.hits, "rows": s.rows}
        for s in sampler.samples
    ]
    return result


# The figures whose median and spread over the runs are reported: (label, path into a run's result).
SUMMED_FIGURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prober CPU ms per probe", ("prober", "steady", "cpu_s_per_1000")),
    ("bare loop CPU ms per probe", ("bare", "steady", "cpu_s_per_1000")),
    ("blackbox_exporter CPU ms per probe", ("blackbox", "steady", "cpu_s_per_1000")),
    ("prober / bare loop", ("ratio_to_bare",)),
    ("prober / blackbox_exporter", ("ratio_to_blackbox",)),
    ("blackbox_exporter / bare loop", ("blackbox_ratio_to_bare",)),
    ("prober probes/s achieved", ("prober", "steady", "requests_per_s")),
    ("prober lateness p99 ms", ("prober", "lateness_ms", "p99")),
    ("prober peak RSS MiB", ("prober", "peak_rss_mib")),
    ("bare loop peak RSS MiB", ("bare", "peak_rss_mib")),
    ("blackbox_exporter peak RSS MiB", ("blackbox", "peak_rss_mib")),
    ("prober results lost", ("prober", "lost")),
    ("prober start-up s", ("prober", "startup_s", "to_running")),
)


def _dig(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per figure: its median over the runs, its lowest and highest, and every value."""
    out = {}
    for label, path in SUMMED_FIGURES:
        values = [v for v in (_dig(r, path) for r in runs) if v is not None]
        if values:
            out[label] = {"median": statistics.median(values), "min": min(values), "max": max(values),
                          "values": values}  # fmt: skip
    return out


def medians_table(figures: dict[str, dict[str, Any]], runs: int) -> str:
    """The medians and spread as a Markdown table."""
    lines = [
        f"| figure (median of {runs} runs) | median | lowest | highest |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, f in figures.items():
        lines.append(f"| {label} | {f['median']:,.3g} | {f['min']:,.3g} | {f['max']:,.3g} |")
    return "\n".join(lines)


# --- the highest sustained rate ----------------------------------------------------------------------


def ramp(args: argparse.Namespace, target: Target) -> list[dict[str, Any]]:
    """Raise the rate step by step (more checks, same interval) until a step does not hold.

    A step holds when prober starts at least 99% of the probes scheduled in its steady window,
    its p99 lateness is under `--max-lateness`, and no result is lost. Each step is a fresh
    `prober run` of `--duration` seconds; prober alone (the peers are not run).
    """
    steps: list[dict[str, Any]] = []
    rate = args.checks * args.vantages / args.interval
    while rate <= args.ramp_limit:
        checks = max(1, round(rate * args.interval / args.vantages))
        step_args = argparse.Namespace(**{**vars(args), "checks": checks, "skip_bare": True})
        print(f"ramp: {checks:,} checks x {args.vantages} vantages every {args.interval:g} s "
              f"({rate:,.0f} probes/s) for {args.duration:g} s", flush=True)  # fmt: skip
        result = compare(step_args, target, rate, None, [])
        p = result["prober"]
        window = p["window"]
        started = window["achieved_probes"] / max(window["scheduled_probes"], 1)
        p99 = p["lateness_ms"]["p99"]
        held = started >= 0.99 and p99 is not None and p99 < args.max_lateness and p["lost"] == 0
        steps.append({
            "rate": rate, "checks": checks, "held": held, "started_share": round(started, 4),
            "lateness_ms": p["lateness_ms"], "lost": p["lost"], "steady": p["steady"],
            "peak_rss_mib": p["peak_rss_mib"], "warnings": p["warnings"],
        })  # fmt: skip
        print(f"  {'held' if held else 'did not hold'}: started {started:.1%}, p99 {p99} ms, "
              f"lost {p['lost']}, CPU {p['steady'].get('cores')} cores", flush=True)  # fmt: skip
        if not held:
            break
        rate += args.ramp_step
    return steps


def ramp_table(steps: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The ramp's steps, and the highest rate that held."""
    head = ("probes/s", "checks", "held", "probes started", "p99 lateness ms", "lost", "prober cores",
            "peak RSS MiB")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for s in steps:
        held = "yes" if s["held"] else "no"
        cells = (f"{s['rate']:,.0f}", f"{s['checks']:,}", held, f"{s['started_share']:.1%}",
                 str(s["lateness_ms"]["p99"]), f"{s['lost']:,}", str(s["steady"].get("cores")),
                 str(s["peak_rss_mib"]))  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    held = [s["rate"] for s in steps if s["held"]]
    best = f"{max(held):,.0f} probes/s" if held else "none of the steps"
    lines.append(f"\nhighest sustained rate (p99 lateness < {args.max_lateness:g} ms, nothing lost): {best}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
