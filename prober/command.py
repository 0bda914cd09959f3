"""What every `prober` command shares: exit codes, common options, output, the event loop.

Exit codes: 0 success (for `once`, nothing down), 1 something is down (`once`), 2 usage or
configuration error, 3 the database cannot be opened or written.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from prober.config import Config, ConfigError, load_config
from prober.model import ProberError
from prober.terminal import printable

EXIT_DOWN = 1
EXIT_USAGE = 2
EXIT_STORE = 3
T = TypeVar("T")

config_option = click.option(
    "-c", "--config", "config_path", type=click.Path(path_type=Path), envvar="PROBER_CONFIG",
    default="checks.yaml", show_default=True, help="Configuration file ($PROBER_CONFIG).",
)  # fmt: skip
db_option = click.option(
    "--db", "db_path", type=click.Path(path_type=Path, dir_okay=False), envvar="PROBER_DB",
    default="prober.db", show_default=True, help="SQLite database ($PROBER_DB).",
)  # fmt: skip
http_option = click.option(
    "--http", "http", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
    help="Address of the status page and API.",
)  # fmt: skip


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """Print `text` with its control characters escaped: targets choose some of what is printed."""
    click.echo(printable(text, keep="\n\t"), err=err, nl=nl)


def plural(n: int, noun: str) -> str:
    """A count and its noun: "1 check", "2 checks"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def fail(message: str, code: int) -> NoReturn:
    """Print an error on stderr and exit with `code`."""
    echo(message, err=True)
    sys.exit(code)


def read_config(path: Path) -> Config:
    """Load the configuration, or exit 2 with its located errors."""
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except ProberError as exc:
        fail(f"{path}: {exc}", EXIT_USAGE)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a new event loop (uvloop when installed, unless PROBER_LOOP=asyncio)."""
    if os.environ.get("PROBER_LOOP", "auto") != "asyncio":
        try:
            import uvloop

            return uvloop.run(coro)
        except ImportError:
            pass
    return asyncio.run(coro)
