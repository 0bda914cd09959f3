"""The `prober` command: click commands that turn errors into messages and exit codes.

Exit codes: 0 success (for `once`, nothing down), 1 something is down (`once`), 2 usage or
configuration error, 3 the database cannot be opened or written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click
from tabulate import tabulate

from prober import __version__
from prober.config import Config, ConfigError, json_schema, load_config
from prober.model import ProberError, ProbeResult, Verdict

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


def setup_logging(level: int) -> None:
    """Log to stderr, one line per event; under systemd, with syslog priority prefixes for journald."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        # journald stamps time and unit itself; "<N>" sets the priority of the line.
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))


_PRIORITY: Final = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def fail(message: str, code: int) -> NoReturn:
    """Print an error on stderr and exit with `code`."""
    click.echo(message, err=True)
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prober")
def main() -> None:
    """prober: synthetic availability probes, from where your users are."""


@main.command()
@config_option
def validate(config_path: Path) -> None:
    """Check the configuration: exit 0, or 2 with FILE:LINE:COL lines on stderr."""
    config = read_config(config_path)
    click.echo(f"{config_path}: {len(config.checks)} checks, {len(config.vantages)} vantages: OK")


@main.command()
def schema() -> None:
    """Print the JSON Schema of checks.yaml (for editors and the YAML language server)."""
    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@config_option
@db_option
@click.option("--check", "checks", multiple=True, metavar="NAME", help="Only this check (repeatable).")
@click.option(
    "--vantage", "vantages", multiple=True, metavar="NAME", help="Only from this vantage (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines instead of a table.")
@click.option("-v", "--verbose", is_flag=True, help="Log verdict and state changes on stderr.")
def once(
    config_path: Path,
    db_path: Path,
    checks: tuple[str, ...],
    vantages: tuple[str, ...],
    as_json: bool,
    verbose: bool,
) -> None:
    """Probe each selected check once from each of its vantages, record and print the results.

    Exit 0 when nothing is down, 1 when something is: made for cron.
    """
    setup_logging(logging.INFO if verbose else logging.ERROR)
    from prober.once import probe_once

    config = read_config(config_path)
    unknown = [c for c in checks if c not in {x.name for x in config.checks}]
    if unknown:
        fail(f"unknown check: {', '.join(unknown)}", EXIT_USAGE)
    unknown = [v for v in vantages if v not in config.vantages]
    if unknown:
        fail(f"unknown vantage: {', '.join(unknown)}", EXIT_USAGE)
    try:
        results = run_async(probe_once(config, db_path, checks, vantages))
    except ProberError as exc:
        fail(str(exc), EXIT_STORE)
    if as_json:
        for result in results:
            click.echo(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        click.echo(results_table(results))
    if any(r.verdict == Verdict.DOWN for r in results):
        sys.exit(EXIT_DOWN)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def results_table(results: Sequence[ProbeResult]) -> str:
    """A readable table of probe results."""
    rows = [
        (
            r.check, r.vantage, r.region, r.verdict, r.reason or "", r.signature or "", r.status or "",
            _ms(r.latency_ms), _ms(r.phases.dns_ms), _ms(r.phases.connect_ms), _ms(r.phases.tls_ms),
            _ms(r.phases.ttfb_ms), (r.error or "")[:60],
        )
        for r in results
    ]  # fmt: skip
    headers = ("check", "vantage", "region", "verdict", "reason", "signature", "status",
               "total ms", "dns", "connect", "tls", "ttfb", "error")  # fmt: skip
    return tabulate(rows, headers=headers, disable_numparse=True)


@main.command()
@config_option
@db_option
@click.option("--http", "http", default=None, metavar="HOST:PORT", help="Also serve the status page and API.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
def run(config_path: Path, db_path: Path, http: str | None, quiet: bool) -> None:
    """Probe on schedule until SIGTERM or SIGINT; SIGHUP reloads the configuration."""
    setup_logging(logging.WARNING if quiet else logging.INFO)
    read_config(config_path)  # fail fast with exit 2, before anything starts
    from prober.daemon import Daemon

    async def go() -> int:
        return await Daemon(config_path, db_path, http=http).run()

    try:
        code = run_async(go())
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except ProberError as exc:
        fail(str(exc), EXIT_STORE)
    sys.exit(code)
