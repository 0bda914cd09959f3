"""Agents and the collector logging in with `.creds` files: a real nats-server in operator mode,
trusting an operator, accounts and users made by tests/nats_auth.py as `nsc` makes them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from prober.cli import main
from tests.conftest import Target, wait_for
from tests.test_agents_e2e import (
    AGENT_SUBJECTS,
    NATS_SERVER,
    NatsServer,
    Start,
    counts,
    servers,
    write_checks,
)

pytest.importorskip("nkeys")
from tests.nats_auth import Operator, decode_claims  # needs nkeys

__all__ = ["servers"]  # the fixture, shared with the other end-to-end tests of agents

needs_server = pytest.mark.skipif(NATS_SERVER is None, reason="needs nats-server (Debian: nats-server)")


def agent_permissions(vantage: str) -> dict[str, list[str]]:
    """What deploy/nats/permissions.conf grants an agent's user, as the claims of its JWT."""
    pub = [f"prober.results.{vantage}", f"prober.heartbeat.{vantage}", *AGENT_SUBJECTS]
    return {"pub": pub, "sub": ["_INBOX.>"]}


@pytest.mark.slow
@needs_server
@pytest.mark.timeout(60)
async def test_agents_and_the_collector_log_in_with_creds_and_an_agent_cannot_publish_as_another(
    tmp_path: Path,
    target: Target,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
) -> None:
    operator = Operator()
    account = operator.account("PROBER")  # JetStream is per account in operator mode: its limits say so
    collector_creds = operator.user(account, "collector").write(tmp_path / "collector.creds")
    us = operator.user(account, "us", **agent_permissions("us"))
    assert decode_claims(us.jwt)["nats"]["pub"]["allow"][0] == "prober.results.us"
    us_creds = us.write(tmp_path / "us.creds")
    hub = await servers("hub", 'jetstream { store_dir: "STORE" }\n' + operator.server_config())
    url = f"nats://127.0.0.1:{hub.port}"  # no password: the creds file logs in

    config = write_checks(tmp_path / "checks.yaml", target, {"web": ["us", "jp"]})
    db = tmp_path / "prober.db"
    collector = await prober_process(
        "run", "-c", str(config), "--db", str(db), "--nats", url, "--nats-creds", str(collector_creds)
    )
    agent = await prober_process(
        "agent", "--nats", url, "--nats-creds", str(us_creds), "--vantage", "us", "--heartbeat", "500ms"
    )
    # The same user's creds, claiming another vantage: it reads the configuration and probes, but
    # the server refuses what it publishes as jp.
    impostor = await prober_process(
        "agent", "--nats", url, "--nats-creds", str(us_creds), "--vantage", "jp", "--heartbeat", "500ms"
    )

    def logs() -> str:
        return "\n".join(p.log[-3000:] for p in (collector, agent, impostor)) + hub.log.read_text()[-2000:]

    await wait_for(lambda: counts(db).get("us", 0) >= 2, 30, "results of the agent with creds", logs)
    refused = 'permissions violation for publish to "prober.results.jp"'
    await wait_for(lambda: refused in impostor.log, 20, "the server refusing jp's results", logs)
    assert "Publish Violation" in hub.log.read_text()
    # Results published after the refusal are stored: the collector is past where jp's would be.
    after = counts(db)["us"]
    await wait_for(lambda: counts(db).get("us", 0) >= after + 2, 20, "more results", logs)
    assert "jp" not in counts(db), counts(db)
    assert "cannot connect" not in collector.log + agent.log
    codes = await asyncio.gather(agent.stop(), impostor.stop(), collector.stop())
    assert codes == [0, 0, 0], logs()


def test_a_creds_file_is_checked_before_connecting(tmp_path: Path) -> None:
    operator = Operator()
    account = operator.account("PROBER")
    user = operator.user(account, "us")
    other = operator.user(account, "jp")
    good = user.creds()
    jwt_line = next(line for line in good.splitlines() if line.startswith("eyJ"))
    seed_line = next(line for line in good.splitlines() if line.startswith("SU"))
    not_its = "is not the one of the JWT's user"
    cases = {
        "missing.creds": (None, "no such file"),
        "empty.creds": ("", "not a NATS credentials file"),
        "password.creds": ("user: us\npassword: secret\n", "not a NATS credentials file"),
        "seedless.creds": (good.split("-----BEGIN USER NKEY SEED")[0], "no BEGIN USER NKEY SEED block"),
        "badjwt.creds": (good.replace(jwt_line, "not-a-jwt"), "the user JWT is malformed"),
        "badseed.creds": (good.replace(seed_line, "SUAAAAAA"), "the user seed is malformed"),
        "swapped.creds": (good.replace(seed_line, other.key.seed.decode()), not_its),
        "account.creds": (good.replace(seed_line, account.key.seed.decode()), not_its),
    }  # fmt: skip
    config = tmp_path / "checks.yaml"
    config.write_text("checks:\n  - {name: web, url: 'http://127.0.0.1:9/'}\n")
    runner = CliRunner()
    for name, (text, why) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        for args in (
            ["agent", "--nats", "nats://127.0.0.1:9", "--vantage", "us", "--nats-creds", str(path)],
            ["run", "-c", str(config), "--db", str(tmp_path / "p.db"), "--nats", "nats://127.0.0.1:9",
             "--nats-creds", str(path)],
        ):  # fmt: skip
            result = runner.invoke(main, args)
            assert result.exit_code == 2, (name, args[0], result.output, result.exception)
            assert why in result.output, (name, args[0], result.output)
            assert "Traceback" not in result.output
    # The good file passes the check (and is refused only by the absent server, later).
    path = user.write(tmp_path / "good.creds")
    from prober.agents.link import check_creds

    check_creds(path)


@pytest.mark.slow
@needs_server
@pytest.mark.timeout(60)
async def test_creds_the_server_does_not_trust_are_a_clear_error(
    tmp_path: Path,
    servers: Callable[[str, str], Awaitable[NatsServer]],
    prober_process: Start,
) -> None:
    trusted, stranger = Operator(), Operator("stranger")
    trusted.account("PROBER")
    creds = stranger.user(stranger.account("PROBER"), "us").write(tmp_path / "us.creds")  # well formed
    hub = await servers("hub", 'jetstream { store_dir: "STORE" }\n' + trusted.server_config())
    url = f"nats://127.0.0.1:{hub.port}"
    config = tmp_path / "checks.yaml"
    config.write_text("checks:\n  - {name: web, url: 'http://127.0.0.1:9/'}\n")
    collector = await prober_process(
        "run", "-c", str(config), "--db", str(tmp_path / "p.db"), "--nats", url, "--nats-creds", str(creds)
    )
    assert await collector.wait(20) == 3, collector.log  # what a NATS that cannot be reached gives
    assert "cannot connect to NATS at" in collector.log and "Authorization Violation" in collector.log
    assert "Traceback" not in collector.log
    # An agent waits for its server (it may start first, or be reconfigured): it says why, and tries again.
    agent = await prober_process("agent", "--nats", url, "--vantage", "us", "--nats-creds", str(creds))
    await wait_for(lambda: "Authorization Violation" in agent.log, 20, "the refusal", lambda: agent.log)
    assert "Traceback" not in agent.log
    assert await agent.stop() == 0, agent.log
