"""Browser checks through a vantage's proxy and resolver, in real Chromium against loopback servers."""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from conftest import DnsServer, ProberProcess, wait_for
from test_browser_checks import CHROMIUM, config, probe_all, spa
from test_vantage import PROXY_EGRESS, TestProxy, start_proxy

from prober.browser.chromium import chromium_processes
from prober.model import Reason, Verdict

pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium"),
]
__all__ = ["spa", "start_proxy"]  # fixtures used here

BROWSER = f"browser: {{executable: {CHROMIUM}, concurrency: 1}}\n"


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_a_proxy_vantage_carries_the_page(
    kind: str, spa: str, start_proxy: Callable[..., Awaitable[TestProxy]]
) -> None:
    proxy = await start_proxy(kind)
    (result,) = await probe_all(
        config(
            f"""
            - {{name: proxied, url: "{spa}/app", timeout: 15s, vantages: [p],
               browser: {{wait_for: "#data li"}}}}
            """,
            f"vantages: {{p: {{proxy: '{proxy.url}'}}}}\n" + BROWSER,
        )
    )
    assert (result.verdict, result.reason) == (Verdict.UP, None), result
    port = spa.rsplit(":", 1)[1]
    # The page and the API it fetched both went through the proxy (which connects out from its egress).
    asked = " ".join(proxy.requests)
    assert f"127.0.0.1:{port}" in asked and PROXY_EGRESS != "127.0.0.1", proxy.requests
    assert proxy.connections >= 1


async def test_a_proxy_that_cannot_be_reached_is_the_vantages_fault(spa: str) -> None:
    (result,) = await probe_all(
        config(
            f"""
            - {{name: proxied, url: "{spa}/app", timeout: 10s, vantages: [p], browser: {{}}}}
            """,
            "vantages: {p: {proxy: 'http://127.0.0.1:9'}}\n" + BROWSER,
        )
    )
    assert (result.verdict, result.reason) == (Verdict.UNKNOWN, Reason.VANTAGE), result
    assert result.error is not None and "PROXY" in result.error


async def test_a_resolver_vantage_resolves_the_name_and_chromium_uses_the_answer(
    spa: str, dns_server: DnsServer
) -> None:
    port = spa.rsplit(":", 1)[1]
    results = await probe_all(
        config(
            f"""
            - {{name: named, url: "http://app.test:{port}/app", timeout: 15s, vantages: [r],
               browser: {{wait_for: "#data li"}}}}
            - {{name: unknown-name, url: "http://nowhere.test:{port}/app", timeout: 10s, vantages: [r],
               browser: {{}}}}
            - {{name: dead-resolver, url: "http://app.test:{port}/app", timeout: 10s, vantages: [dead],
               browser: {{}}}}
            """,
            f"vantages: {{r: {{resolver: ['{dns_server.address}']}}, dead: {{resolver: ['127.0.0.1:9']}}}}\n"
            + BROWSER,
        )
    )
    named, unknown_name, dead = results
    # app.test exists only in the test DNS server: Chromium reached it through the pinned address.
    assert (named.verdict, named.reason) == (Verdict.UP, None), named
    assert "app.test" in dns_server.resolver.queries
    assert named.phases.dns_ms is not None and named.phases.dns_ms > 0, named.phases
    assert named.browser is not None and named.browser["dns_ms"] == round(named.phases.dns_ms, 3)
    assert (unknown_name.verdict, unknown_name.reason) == (Verdict.DOWN, Reason.DNS), unknown_name
    assert (dead.verdict, dead.reason) == (Verdict.UNKNOWN, Reason.VANTAGE), dead


async def test_the_daemon_renders_on_schedule_serves_screenshots_and_metrics_and_stops_its_browser(
    spa: str, tmp_path: Path, prober_process: Callable[..., Awaitable[ProberProcess]]
) -> None:
    config_file, db = tmp_path / "checks.yaml", tmp_path / "p.db"
    config_file.write_text(
        config(
            f"""
            - {{name: shell, url: "{spa}/app?api=fail", interval: 2s, timeout: 10s}}
            - {{name: rendered, url: "{spa}/app?api=fail", interval: 2s, timeout: 10s, confirm: 1,
               browser: {{}}}}
            """,
            BROWSER,
        )
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    proc = await prober_process("run", "-c", str(config_file), "--db", str(db), "--http", f"127.0.0.1:{port}")
    async with aiohttp.ClientSession() as session:

        async def text(path: str) -> str:
            try:
                async with session.get(base + path) as resp:
                    return await resp.text()
            except aiohttp.ClientError:
                return ""  # not serving yet

        async def rendered_down() -> bool:
            return 'prober_browser_probes_total{verdict="down"} 2.0' in await text("/metrics")

        await wait_for(rendered_down, 60, "two rendered probes down", lambda: proc.log)
        metrics = await text("/metrics")
        assert "prober_browser_pages_in_flight" in metrics and "prober_browser_restarts_total 0.0" in metrics
        checks = {c["name"]: c for c in json.loads(await text("/api/checks"))["checks"]}
        assert checks["shell"]["state"] == "operational" and checks["rendered"]["state"] == "major_outage"
        page = await text("/")
        shot = re.search(r'<img src="api/screenshots/(\d+)\.png"', page)
        assert shot is not None, page
        async with session.get(f"{base}/api/screenshots/{shot[1]}.png") as resp:
            assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG")
    browsers = chromium_processes(proc.process.pid)
    assert browsers, "the daemon's Chromium"
    assert await proc.stop() == 0, proc.log
    await wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in browsers), 10, "Chromium to stop")
