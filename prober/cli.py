"""The `prober` command: click commands that turn errors into messages and exit codes.

Exit codes: 0 success (for `once`, nothing down), 1 something is down (`once`), 2 usage or
configuration error, 3 the database cannot be opened or written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from tabulate import tabulate

from prober import __version__
from prober.agents.command import agent, collector_options, collectors
from prober.alerts.cli import alerts
from prober.command import (
    EXIT_DOWN,
    EXIT_STORE,
    EXIT_USAGE,
    config_option,
    db_option,
    echo,
    fail,
    http_option,
    plural,
    read_config,
    run_async,
)
from prober.config import ConfigError, json_schema, load_config
from prober.model import ProberError, ProbeResult, Verdict
from prober.notes.cli import incident
from prober.terminal import printable, setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prober")
def main() -> None:
    """prober: synthetic availability probes, from where your users are."""


@main.command()
@config_option
def validate(config_path: Path) -> None:
    """Check the configuration: exit 0, or 2 with FILE:LINE:COL lines on stderr."""
    config = read_config(config_path)
    checks, vantages = len(config.checks), len(config.vantages)
    echo(f"{config_path}: {plural(checks, 'check')}, {plural(vantages, 'vantage')}: OK")


@main.command()
def schema() -> None:
    """Print the JSON Schema of checks.yaml (for editors and the YAML language server)."""
    echo(json.dumps(json_schema(), indent=2))


@main.command()
@config_option
@db_option
@click.option("--check", "checks", multiple=True, metavar="NAME", help="Only this check (repeatable).")
@click.option(
    "--vantage", "vantages", multiple=True, metavar="NAME", help="Only from this vantage (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines instead of a table.")
@click.option("-v", "--verbose", is_flag=True, help="Log verdict and state changes on stderr.")
@click.option(
    "--db-timeout", "db_timeout", type=click.FloatRange(0, 3600), default=15.0, show_default=True,
    metavar="SECONDS", help="How long writing the results may wait for a locked or full database.",
)  # fmt: skip
def once(
    config_path: Path,
    db_path: Path,
    checks: tuple[str, ...],
    vantages: tuple[str, ...],
    as_json: bool,
    verbose: bool,
    db_timeout: float,
) -> None:
    """Probe each selected check once from each of its vantages, record and print the results.

    Exit 0 when nothing is down, 1 when something is, 3 when the database did not take them all
    within --db-timeout (the results are printed anyway): made for cron.
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
        done = run_async(probe_once(config, db_path, checks, vantages, db_timeout))
    except ProberError as exc:
        fail(str(exc), EXIT_STORE)
    if as_json:
        for result in done.results:
            echo(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        echo(results_table(done.results))
    if not done.saved:
        lost = f"{done.unsaved} of {len(done.results)} results"
        if done.unsaved_incidents:
            lost += (
                f" and {done.unsaved_incidents} incident change{'s' if done.unsaved_incidents > 1 else ''}"
            )
        fail(f"{lost} could not be saved within {db_timeout:g}s: {done.problem}", EXIT_STORE)
    if any(r.verdict == Verdict.DOWN for r in done.results):
        sys.exit(EXIT_DOWN)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def results_table(results: Sequence[ProbeResult]) -> str:
    """A readable table of probe results."""
    rows = [
        [
            printable(str(cell)) for cell in (
                r.check, r.vantage, r.region, r.verdict, r.reason or "", r.signature or "", r.status or "",
                _ms(r.latency_ms), _ms(r.phases.dns_ms), _ms(r.phases.connect_ms), _ms(r.phases.tls_ms),
                _ms(r.phases.ttfb_ms), (r.error or "")[:60],
            )
        ]  # a newline in a cell would split its row: nothing in a cell is printed raw
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
@click.option(
    "--max-backlog",
    type=click.IntRange(1000, 10_000_000),
    default=200_000,
    show_default=True,
    envvar="PROBER_MAX_BACKLOG",
    help="Results kept in memory while the database refuses writes; beyond it they are dropped and counted.",
)
@collector_options
def run(
    config_path: Path, db_path: Path, http: str | None, quiet: bool, max_backlog: int, **nats: Any
) -> None:
    """Probe on schedule until SIGTERM or SIGINT; SIGHUP reloads the configuration."""
    setup_logging(logging.WARNING if quiet else logging.INFO)
    config = read_config(config_path)  # fail fast with exit 2, before anything starts
    check_http(http)
    addons = collectors(nats["nats_url"], nats["nats_creds"], nats["nats_ca"], nats["nats_leaves"], config)
    from prober.daemon import Daemon

    async def go() -> int:
        daemon = Daemon(
            config_path, db_path, http=http, config=config, max_backlog=max_backlog, addons=addons
        )
        return await daemon.run()

    try:
        code = run_async(go())
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except ProberError as exc:
        fail(str(exc), EXIT_USAGE if _is_web_error(exc) else EXIT_STORE)
    sys.exit(code)


def check_http(http: str | None) -> None:
    """Exit 2 if a --http address is malformed."""
    if http is None:
        return
    from prober.web import WebError, parse_http

    try:
        parse_http(http)
    except WebError as exc:
        fail(str(exc), EXIT_USAGE)


def _is_web_error(exc: ProberError) -> bool:
    from prober.web import WebError

    return isinstance(exc, WebError)


@main.command()
@db_option
@config_option
@http_option
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
def serve(db_path: Path, config_path: Path, http: str, quiet: bool) -> None:
    """Serve the status page, the JSON API and /metrics from a database until SIGTERM or SIGINT.

    The checks, their names and `public:`, and the `page:` settings come from the configuration when
    there is one (a missing default checks.yaml is not an error: the database's checks are shown)."""
    setup_logging(logging.WARNING if quiet else logging.INFO)
    check_http(http)
    given = click.get_current_context().get_parameter_source("config_path") is not ParameterSource.DEFAULT
    config = read_config(config_path) if given or config_path.exists() else None
    if not db_path.exists():
        fail(f"{db_path}: no such database (run `prober run` or `prober once` first)", EXIT_STORE)
    from prober.store import Store
    from prober.web import create_app, start_server

    try:
        Store(db_path).open().close()  # an older database is migrated before it is read
    except ProberError as exc:
        fail(str(exc), EXIT_STORE)

    async def go() -> None:
        runner = await start_server(create_app(db_path, config=config), http)
        log = logging.getLogger("prober")
        log.info("serving %s on http://%s/%s", db_path, http, f" ({config_path})" if config else "")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            started = time.monotonic()
            await runner.cleanup()
            log.info("stopped serving in %.1fs", time.monotonic() - started)

    try:
        run_async(go())
    except ProberError as exc:
        fail(str(exc), EXIT_USAGE if _is_web_error(exc) else EXIT_STORE)


# -- report and demo -------------------------------------------------------------------------------


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Parse --since/--until: a duration back from now, an ISO date or time (UTC unless offset), or now."""
    from prober.model import utcnow
    from prober.report import parse_when

    if value is None:
        return None
    now = ctx.meta.setdefault("prober.now", utcnow())  # --since and --until share one "now"
    try:
        return parse_when(value, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@db_option
@config_option
@click.option(
    "--since", default="24h", show_default=True, metavar="WHEN", callback=_when,
    help="Start of the window: 24h, 7d, 2022-12-28, 2022-12-28T13:50 (UTC), ...",
)  # fmt: skip
@click.option("--until", metavar="WHEN", callback=_when, help="End of the window (default: now).")
@click.option("--check", "check", default=None, metavar="NAME", help="Only this check.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--rebuild", is_flag=True,
    help="First rebuild the incidents from the results, with the confirm, recover and quorum of -c FILE.",
)  # fmt: skip
def report(
    db_path: Path,
    config_path: Path,
    since: Any,
    until: Any,
    check: str | None,
    as_json: bool,
    rebuild: bool,
) -> None:
    """Availability by check, surface, region and vantage; incidents, the longest ones, and MTTR."""
    import sqlite3

    from prober import report as rep
    from prober.model import utcnow
    from prober.store import Store, StoreError, connect
    from prober.terminal import when

    now = click.get_current_context().meta.get("prober.now") or utcnow()
    until = until or now
    if since >= until:
        fail(f"--since ({when(since)}) must be before --until ({when(until)})", EXIT_USAGE)
    if rebuild:
        try:
            config = load_config(config_path)
        except ProberError as exc:
            fail(f"{exc}\n--rebuild replays the results with the confirm, recover and quorum of each "
                 "check in the configuration: pass it with -c FILE.", EXIT_USAGE)  # fmt: skip
        if check is not None and check not in {c.name for c in config.checks}:
            fail(f"--rebuild: check {check!r} is not in {config_path}", EXIT_USAGE)
        if not db_path.exists():
            fail(f"{db_path}: no such database", EXIT_STORE)
        selected = (check,) if check else ()
        try:
            with Store(db_path) as store:
                counts = store.submit(lambda db: rep.rebuild(db, config, selected)).result()
        except (StoreError, sqlite3.Error) as exc:
            fail(f"cannot rebuild incidents: {exc}", EXIT_STORE)
        echo(
            f"rebuilt {counts['incidents']} incidents of {counts['checks']} checks from "
            f"{counts['results']} results ({counts['kept_ids']} kept their id, {counts['new']} new, "
            f"{counts['removed']} removed)",
            err=True,
        )
    try:
        db = connect(db_path, readonly=True)
        try:
            data = rep.collect(db, since, until, now, check)
            from prober.claims.report import section

            claims = section(db, data)  # claimed vs measured, per official status page
        finally:
            db.conn.close()
    except StoreError as exc:
        fail(str(exc), EXIT_STORE)
    except sqlite3.Error as exc:
        fail(f"{db_path}: cannot read the database ({exc}); is it a prober database?", EXIT_STORE)
    if as_json:
        echo(json.dumps(claims.attach(rep.to_json(data)), indent=2, ensure_ascii=False))
    else:
        echo(
            rep.format_text(data, str(db_path)) + ("\n" + claims.text() if claims.summaries else ""), nl=False
        )


@main.command()
@click.option(
    "--db", "db_path", type=click.Path(path_type=Path, dir_okay=False), default="prober-demo.db",
    show_default=True, help="Where to write the demo's database (overwritten; never a non-demo one).",
)  # fmt: skip
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
    help="Length of the replay in seconds (probes every duration/60 seconds).",
)  # fmt: skip
@click.option(
    "--speed", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
    help="Play faster: --speed 2 replays the outage in half the duration.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Also log the daemon's verdict and state changes.")
def demo(db_path: Path, duration: float, speed: float, as_json: bool, quiet: bool, verbose: bool) -> None:
    """Replay an outage like the one of 2022-12-28 on loopback and show what prober made of it.

    No configuration needed: a local target with a web surface, a mobile API and a status page that
    always says "All Systems Operational", probed from US, JP and UK vantages (127.0.0.2-4).
    """
    from prober import demo as dm
    from prober.store import StoreError

    setup_logging(logging.INFO if verbose else logging.CRITICAL)
    try:
        dm.tick_for(duration / speed)
    except ValueError as exc:
        fail(f"--duration/--speed: {exc}", EXIT_USAGE)
    if not quiet:
        seconds = duration / speed
        echo(f"prober demo: replaying the outage in {seconds:g}s; database {db_path}", err=True)
    try:
        run = run_async(dm.run_demo(db_path, duration / speed, None if quiet else sys.stderr))
        found = dm.findings(run)
    except StoreError as exc:
        fail(f"prober demo: {exc}", EXIT_STORE)
    except ProberError as exc:  # the loopback aliases are missing, or --db is not a demo database
        fail(f"prober demo: {exc}", EXIT_USAGE)
    if as_json:
        echo(dm.dumps(found))
    else:
        echo(dm.format_findings(found), nl=False)


# The command groups of the capabilities.
main.add_command(agent)
main.add_command(alerts)
main.add_command(incident)
