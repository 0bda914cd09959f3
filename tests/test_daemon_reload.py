"""SIGHUP with hostile configuration files: each is refused, the daemon lives and keeps the old one."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import ProberProcess, Target, wait_for

pytestmark = pytest.mark.slow

MEMORY_LIMIT = 2 << 30  # the daemon's address space: a file that expands without bound stops here

NESTED = "[" * 500 + "]" * 500
LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def hostile(url: str) -> dict[str, str]:
    """Configuration files that once killed the daemon on SIGHUP, each adding a check on `url`."""
    check = f"name: second, url: '{url}'"
    return {
        "a list nested 500 deep": f"checks:\n  - {{{check}, tags: {NESTED}}}\n",
        "a billion laughs": 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + LAUGHS
        + f"checks:\n  - {{{check}, tags: *i}}\n",
        "an interval of 999999999 days": f"checks:\n  - {{{check}, interval: 999999999d}}\n",
        "confirm past 2^63": f"checks:\n  - {{{check}, confirm: 9223372036854775808}}\n",
    }


def good(name: str, url: str) -> str:
    return f"defaults: {{interval: 200ms, timeout: 2s}}\nchecks:\n  - {{name: {name}, url: '{url}'}}\n"


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.fixture
async def limited_daemon(tmp_path: Path) -> AsyncIterator[tuple[Path, list[ProberProcess]]]:
    """`prober run` subprocesses with a bounded address space; killed at the end if still running."""
    started: list[ProberProcess] = []
    yield tmp_path, started
    for proc in started:
        if proc.process.returncode is None:
            proc.process.kill()
            await proc.process.wait()


async def test_hostile_reloads_are_refused_and_the_running_configuration_goes_on(
    target: Target, limited_daemon: tuple[Path, list[ProberProcess]]
) -> None:
    folder, started = limited_daemon
    config = folder / "checks.yaml"
    config.write_text(good("first", f"{target.url}/ok"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "prober", "run", "-c", str(config), "--db", str(folder / "p.db"),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "2"}, preexec_fn=limit_memory,
    )  # fmt: skip
    proc = ProberProcess(process)
    started.append(proc)
    await wait_for(lambda: target.total("/ok") >= 3, 20, "the first check")

    for n, (what, text) in enumerate(hostile(f"{target.url}/api").items(), start=1):
        config.write_text(text)
        proc.process.send_signal(signal.SIGHUP)
        await wait_for(lambda n=n: proc.log.count("reload refused") >= n, 60, f"{what} to be refused")
        assert proc.process.returncode is None, f"{what}: the daemon died\n{proc.log}"
        before = target.total("/ok")
        await wait_for(lambda b=before: target.total("/ok") >= b + 3, 10, f"probes to go on after {what}")
        assert target.total("/api") == 0, f"{what}: partly applied\n{proc.log}"

    # Still able to reload a good file afterwards.
    config.write_text(good("second", f"{target.url}/api"))
    proc.process.send_signal(signal.SIGHUP)
    await wait_for(lambda: target.total("/api") >= 2, 20, "the good reload")
    assert await proc.stop() == 0, proc.log
