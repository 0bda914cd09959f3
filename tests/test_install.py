"""Installing and running prober for real: the README's first commands, the systemd unit, the test
script's Debian packages, and what `prober serve` says when it stops."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import ProberProcess, wait_for

from prober.store import Store

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")  # the systemd section
UNIT = (ROOT / "deploy" / "prober.service").read_text(encoding="utf-8")
TEST_ALL = (ROOT / "scripts" / "test-all").read_text(encoding="utf-8")


def first_sh_block(text: str) -> str:
    match = re.search(r"```sh\n(.*?)```", text, re.S)
    assert match is not None
    return match[1]


def test_the_first_command_installs_in_a_virtual_environment() -> None:
    first = first_sh_block(README).splitlines()[0]
    # Debian 12 refuses a system-wide `pip install .` (externally managed): a venv, then pip.
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install .")
    assert "Python 3.11" in README and "pipx install ." in README


def test_the_unit_runs_the_prober_the_readme_installs() -> None:
    commands = re.findall(r"^Exec\w*=(\S+)", UNIT, re.M)
    probers = {c for c in commands if c.endswith("/prober")}
    assert probers == {"/opt/prober/bin/prober"}, commands
    assert "sudo python3 -m venv /opt/prober && sudo /opt/prober/bin/pip install ." in COMMANDS
    assert "/usr/local/bin" not in UNIT


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_unit_verifies_cleanly(tmp_path: Path) -> None:
    # The unit as installed, its prober being an executable where the venv would put it.
    fake = tmp_path / "opt" / "bin" / "prober"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    unit = tmp_path / "prober.service"
    unit.write_text(UNIT.replace("/opt/prober/bin/prober", str(fake)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_chromium_is_installed_quietly_without_recommends() -> None:
    install = next(line for line in TEST_ALL.splitlines() if "apt-get install" in line)
    assert "--no-install-recommends" in install and "-qq" in install
    assert "fonts-liberation" in TEST_ALL  # a font, which was a recommend


async def test_serve_says_when_it_starts_and_stops(
    tmp_path: Path, prober_process: Callable[..., Awaitable[ProberProcess]]
) -> None:
    Store(tmp_path / "prober.db").open().close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ("serve", "--db", str(tmp_path / "prober.db"), "-c", str(tmp_path / "none.yaml"))
    proc = await prober_process(*args, "--http", f"127.0.0.1:{port}")
    assert await proc.wait() == 2 and "none.yaml" in proc.log  # a configuration asked for must exist
    proc = await prober_process("serve", "--db", str(tmp_path / "prober.db"), "--http", f"127.0.0.1:{port}")
    await wait_for(lambda: "serving" in proc.log, 20, "the serving line", lambda: proc.log)
    assert await proc.stop() == 0
    assert re.search(r"stopped serving in \d+\.\ds", proc.log), proc.log
