"""A target that streams 1 GiB must not make the prober's memory grow past a few MB."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Target

pytestmark = pytest.mark.slow


def peak_rss_mib(args: list[str]) -> tuple[float, int, str]:
    """Run a command; return its own peak RSS (MiB), exit code and output."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read().decode()  # until the process closes it, at exit
    _, status, usage = os.wait4(proc.pid, 0)  # reaps it, with its own resource usage
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, proc.returncode, out


async def test_one_gib_body_does_not_grow_memory(target: Target, tmp_path: Path) -> None:
    def run(path: str) -> tuple[float, int, str]:
        config = tmp_path / f"{path.strip('/').split('?')[0]}.yaml"
        config.write_text(f"checks:\n  - {{name: big, url: '{target.url}{path}', timeout: 20s}}\n")
        cmd = [
            sys.executable,
            "-m",
            "prober",
            "once",
            "-c",
            str(config),
            "--db",
            str(tmp_path / "p.db"),
            "--json",
        ]
        return peak_rss_mib(cmd)

    loop = asyncio.get_running_loop()
    baseline, code, out = await loop.run_in_executor(None, run, "/ok")
    assert code == 0, out
    started = time.monotonic()
    big, code, out = await loop.run_in_executor(None, run, f"/big?size={1 << 30}")
    assert code == 0, out
    assert '"bytes": 262144' in out  # read up to max_body (256 KiB), then the connection was dropped
    assert time.monotonic() - started < 20
    print(f"peak RSS: /ok {baseline:.1f} MiB, 1 GiB body {big:.1f} MiB")
    assert big - baseline < 8, (baseline, big)


def test_the_memory_of_parsing_a_large_configuration_is_given_back() -> None:
    # Parsing 10,000 checks allocates several times what the configuration keeps; after start-up
    # the daemon hands the freed pages back (glibc keeps them otherwise), so its RSS is what it uses.
    script = """
import platform, sys
from prober.config import parse_config
from prober.heap import freeze_heap

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

checks = "".join(f"  - {{name: c{i:05d}, url: 'http://127.0.0.1:9/p/{i}'}}\\n" for i in range(10000))
config = parse_config("vantages:\\n  v1: {region: US}\\n  v2: {region: JP}\\nchecks:\\n" + checks)
before = rss()
freeze_heap()
print(platform.libc_ver()[0], before, rss(), len(config.checks))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    libc, before, after, checks = out.stdout.split()
    assert int(checks) == 10000
    if libc != "glibc":
        pytest.skip(f"the C library here is {libc or 'unknown'}: nothing to trim")
    assert float(before) - float(after) > 4, out.stdout  # about 9 MiB here
