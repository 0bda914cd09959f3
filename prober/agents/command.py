"""The command line of agents: `prober agent`, and the `--nats` options of `prober run`.

Imports nothing of NATS: `prober` without `--nats` works exactly as before, without nats-py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from prober.agents.collector import Collector
    from prober.agents.link import Link
    from prober.config import Config

F = TypeVar("F", bound=Callable[..., Any])

_creds = click.option(
    "--nats-creds",
    "nats_creds",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="PROBER_NATS_CREDS",
    default=None,
    help="NATS credentials file (user JWT and seed) ($PROBER_NATS_CREDS).",
)
_ca = click.option(
    "--nats-ca",
    "nats_ca",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="PROBER_NATS_CA",
    default=None,
    help="CA file that signed the NATS server's certificate, for tls:// ($PROBER_NATS_CA).",
)


def collector_options(fn: F) -> F:
    """The options `prober run` takes to collect agents' results from NATS."""
    fn = click.option(
        "--nats-leaf", "nats_leaves", multiple=True, metavar="DOMAIN",
        help="JetStream domain of a region's leaf node whose results stream to source (repeatable).",
    )(_ca(_creds(fn)))  # fmt: skip
    return click.option(
        "--nats",
        "nats_url",
        default=None,
        metavar="URL",
        envvar="PROBER_NATS_URL",
        help="Collect agents' results from NATS JetStream (nats://, tls://, user:password@ allowed; "
        "$PROBER_NATS_URL).",
    )(fn)


def _link(url: str, creds: Path | None, ca: Path | None) -> Link:
    try:
        from prober.agents.link import Link
    except ImportError as exc:  # nats-py is the optional extra
        raise click.UsageError(f"--nats needs nats-py: pip install 'prober[agents]' ({exc})") from None
    if creds is not None:
        from prober.agents.link import LinkError, check_creds

        try:
            check_creds(creds)
        except LinkError as exc:
            raise click.UsageError(str(exc)) from None
    return Link(url, creds, ca)


def collectors(
    url: str | None,
    creds: Path | None,
    ca: Path | None,
    leaves: tuple[str, ...] = (),
    config: Config | None = None,
) -> list[Collector]:
    """The daemon's addons for these options: a NATS collector with --nats, none without."""
    if url is None:
        if leaves:
            raise click.UsageError("--nats-leaf needs --nats")
        agents = [] if config is None else sorted(n for n, v in config.vantages.items() if v.agent)
        if agents:
            logging.getLogger("prober").warning(
                "vantages %s are probed by agents (agent: true): without --nats nothing collects their "
                "results", ", ".join(agents),
            )  # fmt: skip
        return []
    link = _link(url, creds, ca)
    from prober.agents.collector import Collector

    return [Collector(link, leaves=leaves)]


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from prober.config.units import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not 0.1 <= seconds <= 3600:
        raise click.BadParameter("must be between 100ms and 1h")
    return seconds


def _bytes(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from prober.config.units import parse_size

    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if size < 1024:
        raise click.BadParameter("must be at least 1KiB")
    return size


@click.command()
@click.option(
    "--nats",
    "nats_url",
    required=True,
    metavar="URL",
    envvar="PROBER_NATS_URL",
    help="The NATS server (nats://, tls://, user:password@ allowed; $PROBER_NATS_URL).",
)
@click.option(
    "--vantage",
    required=True,
    metavar="NAME",
    envvar="PROBER_VANTAGE",
    help="The vantage this agent probes from: `{agent: true}` in the collector's configuration.",
)
@_creds
@_ca
@click.option(
    "--heartbeat",
    default="5s",
    show_default=True,
    callback=_seconds,
    metavar="DURATION",
    help="How often the agent says it is alive; silent for 3 of them, its vantage is unknown.",
)
@click.option(
    "--hub-domain", default=None, metavar="DOMAIN",
    help="Behind a leaf node with JetStream: the hub's JetStream domain. The leaf keeps the results "
    "while the hub is away; the collector sources them with --nats-leaf.",
)  # fmt: skip
@click.option(
    "--buffer", default="16MiB", show_default=True, callback=_bytes, metavar="SIZE",
    help="Results kept while NATS is unreachable; beyond it they are counted and logged as lost.",
)  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
def agent(
    nats_url: str,
    vantage: str,
    nats_creds: Path | None,
    nats_ca: Path | None,
    heartbeat: float,
    hub_domain: str | None,
    buffer: int,
    quiet: bool,
) -> None:
    """Probe the checks of one vantage on this machine and send the results through NATS (no database)."""
    from prober.command import EXIT_USAGE, fail, run_async
    from prober.model import ProberError
    from prober.terminal import setup_logging

    setup_logging(logging.WARNING if quiet else logging.INFO)
    link = _link(nats_url, nats_creds, nats_ca)
    from prober.agents.agent import Agent

    try:
        code = run_async(Agent(link, vantage, heartbeat, hub=hub_domain, buffer=buffer).run())
    except ProberError as exc:
        fail(str(exc), EXIT_USAGE)
    raise SystemExit(code)
