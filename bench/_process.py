"""Ending a benchmark's child process: SIGTERM, a bounded wait, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop(proc: subprocess.Popen[Any], within: float = 60.0) -> None:
    """Ask `proc` to stop (SIGTERM); kill it if it has not within `within` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
