"""Browser checks against a local single-page app, in Debian's chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import start_app

from prober.browser import Browsers
from prober.config import ConfigError, parse_config
from prober.model import ProbeResult, Reason, Verdict
from prober.probe import probe_everywhere
from prober.vantage import VantagePool

CHROMIUM = "/usr/bin/chromium"

pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium"),
]

FRET = "Something went wrong, but don't fret \u2014 it's not your fault"

# The shell is healthy HTML; its script bundles the error sentence and draws it only if the API fails.
SHELL = """<!doctype html><html><head><title>Home / X</title></head>
<body><div id="root">Loading\u2026</div>
<script>
const FRET = "%s";
fetch("%s").then((r) => { if (!r.ok) throw new Error("api " + r.status); return r.json(); })
  .then((data) => {
    const items = data.items.map((i) => "<li>" + i + "</li>").join("");
    const html = "<main><h1>Timeline</h1><ul id='data'>" + items + "</ul></main>";
    document.getElementById("root").innerHTML = html;
  })
  .catch(() => {
    document.getElementById("root").innerHTML = "<div role='alert'><h1>" + FRET + "</h1></div>";
  });
</script></body></html>"""

# Healthy content, then a failing analytics beacon, a console error and an uncaught exception.
NOISY = """<!doctype html><html><head><title>News</title></head>
<body><main><h1>Today's news</h1><p id="story">All systems are fine.</p></main>
<script>
fetch("/analytics/beacon").catch(() => {});
console.error("analytics unavailable");
setTimeout(() => { throw new Error("widget exploded"); }, 0);
</script></body></html>"""


@pytest.fixture
async def spa() -> AsyncIterator[str]:
    async def page(html: str) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def shell(request: web.Request) -> web.Response:
        api = "/api/fail" if request.query.get("api") == "fail" else "/api/data"
        return await page(SHELL % (FRET, api))

    async def data(request: web.Request) -> web.Response:
        return web.json_response({"items": ["hello", "world"]})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "backend unavailable"}, status=503)

    async def noisy(request: web.Request) -> web.Response:
        return await page(NOISY)

    async def beacon(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def hang(request: web.Request) -> web.Response:
        hanging.set()
        await asyncio.sleep(30)  # longer than any test waits: the browser dies first
        return await page(NOISY)

    hanging = HANGING[0] = asyncio.Event()
    app = web.Application()
    app.router.add_get("/app", shell)
    app.router.add_get("/api/data", data)
    app.router.add_get("/api/fail", fail)
    app.router.add_get("/noisy", noisy)
    app.router.add_get("/analytics/beacon", beacon)
    app.router.add_get("/hang", hang)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


HANGING: list[asyncio.Event] = [asyncio.Event()]  # set when the browser is inside /hang


def my_chromium() -> list[int]:
    """The browser processes this test process started (children of its Playwright driver)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
            if not entry.name.isdigit() or not Path(command.decode()).name.startswith("chromium"):
                continue
            parent = _ppid(int(entry.name))
            if _ppid(parent) == me:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return found


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def config(checks: str, extra: str = "") -> str:
    return textwrap.dedent(extra) + "checks:\n" + textwrap.indent(textwrap.dedent(checks), "  ")


async def probe_all(
    text: str, env: dict[str, str] | None = None, render: Browsers | None = None
) -> list[ProbeResult]:
    """Probe every check of the configuration once, sharing one pool (and one browser)."""
    cfg = parse_config(text, env=env or {})
    pool, render = VantagePool(), render or Browsers()
    await pool.sync(cfg.vantages)
    try:
        results = []
        for check in cfg.checks:
            results += await probe_everywhere(
                pool, check, cfg.signatures_for(check), cfg.redact, render=render
            )
        return results
    finally:
        await pool.close()
        await render.close()


async def test_js_error_page_is_down_while_the_shell_is_up(spa: str) -> None:
    http, rendered, healthy = await probe_all(
        config(
            f"""
        - {{name: shell-http, url: "{spa}/app?api=fail", timeout: 10s}}
        - {{name: shell-rendered, url: "{spa}/app?api=fail", timeout: 10s, browser: {{}}}}
        - {{name: healthy, url: "{spa}/app", timeout: 10s, browser: {{wait_for: "#data li"}}}}
        """,
            f"browser: {{executable: {CHROMIUM}, concurrency: 1}}\n",
        )
    )
    assert (http.verdict, http.reason) == (Verdict.UP, None), http
    assert http.browser is None
    assert (rendered.verdict, rendered.reason) == (Verdict.DOWN, Reason.ERROR_PAGE), rendered
    assert rendered.status == 200 and rendered.browser is not None
    assert any(f["status"] == 503 for f in rendered.browser["failed_requests"])
    assert (healthy.verdict, healthy.reason) == (Verdict.UP, None), healthy
    assert healthy.browser is not None and healthy.browser["requests"] >= 2
    assert healthy.browser["load_ms"] is not None and healthy.browser["dom_content_loaded_ms"] is not None
    line = json.loads(json.dumps(rendered.to_json()))
    assert line["browser"]["failed_requests"] and line["reason"] == "error_page"


async def test_noise_after_rendering_is_evidence_not_a_verdict(spa: str) -> None:
    (result,) = await probe_all(
        config(
            f"""
        - name: noisy
          url: "{spa}/noisy"
          timeout: 10s
          browser: {{wait_for: "#story", wait_until: load}}
          expect: {{body_contains: ["All systems are fine"]}}
        """,
            f"browser: {{executable: {CHROMIUM}}}\n",
        )
    )
    assert (result.verdict, result.reason) == (Verdict.UP, None), result
    evidence = result.browser
    assert evidence is not None
    assert any(
        f["url"].endswith("/analytics/beacon") and f["status"] == 500 for f in evidence["failed_requests"]
    )
    assert evidence["console_errors"], evidence
    assert any("widget exploded" in e for e in evidence["page_errors"]), evidence


async def test_evidence_is_redacted_and_escaped(spa: str) -> None:
    # The main document's 404 is recorded with its URL, which carries a secret of the configuration.
    (result,) = await probe_all(
        config(
            f"""
        - name: secret
          url: "{spa}/missing?token=${{TOKEN}}"
          timeout: 10s
          browser: {{wait_until: load}}
        """,
            f"browser: {{executable: {CHROMIUM}}}\n",
        ),
        env={"TOKEN": "s3cr3t-t0ken"},
    )
    assert result.verdict == Verdict.DOWN, result
    assert result.browser is not None and result.browser["failed_requests"], result
    text = json.dumps(result.browser)
    assert "s3cr3t-t0ken" not in text and "${TOKEN}" in text, text


async def test_wait_for_never_visible_is_down_render(spa: str) -> None:
    (result,) = await probe_all(
        config(
            f"""
        - {{name: missing, url: "{spa}/app", timeout: 3s, browser: {{wait_for: "#never"}}}}
        """,
            f"browser: {{executable: {CHROMIUM}}}\n",
        )
    )
    assert (result.verdict, result.reason) == (Verdict.DOWN, Reason.RENDER), result
    assert result.error is not None and "#never" in result.error


async def test_a_browser_that_cannot_start_is_unknown_internal(spa: str) -> None:
    (result,) = await probe_all(
        config(
            f"""
        - {{name: nobrowser, url: "{spa}/app", timeout: 5s, browser: {{}}}}
        """,
            "browser: {executable: /nonexistent/chromium}\n",
        )
    )
    assert (result.verdict, result.reason) == (Verdict.UNKNOWN, Reason.INTERNAL), result
    assert result.error is not None and "could not start" in result.error


def test_config_rules_are_located() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            config(
                """
                - name: x
                  url: http://127.0.0.1/
                  browser: {viewport: 12x12000, wait_until: idle}
                """,
                "vantages: {bound: {source_address: 127.0.0.1}}\nbrowser: {concurrency: 0}\n",
            ),
            env={},
        )
    text = str(caught.value)
    for part in ('"bound" has only source_address', "wait_until", "viewport", "concurrency"):
        assert part in text, text
    assert "checks.yaml:7:" in text, text


def test_defaults() -> None:
    cfg = parse_config(config("- {name: x, url: 'http://127.0.0.1/', browser: {}}"), env={})
    b = cfg.checks[0].browser
    assert b is not None
    assert (b.wait_until, b.wait_for, b.viewport, b.screenshot, b.block) == (
        "networkidle",
        None,
        None,
        "on_failure",
        (),
    )
    assert (cfg.browser.executable, cfg.browser.concurrency) == (None, 2)


async def test_a_crash_is_unknown_internal_and_the_next_probe_relaunches(spa: str) -> None:
    cfg = parse_config(
        config(
            f"""
            - {{name: hang, url: "{spa}/hang", timeout: 20s, browser: {{}}}}
            - {{name: ok, url: "{spa}/noisy", timeout: 10s, browser: {{wait_until: load}}}}
            """,
            f"browser: {{executable: {CHROMIUM}}}\n",
        ),
        env={},
    )
    hang, ok = cfg.checks
    pool, render = VantagePool(), Browsers()
    await pool.sync(cfg.vantages)
    try:
        probing = asyncio.create_task(probe_everywhere(pool, hang, cfg.signatures_for(hang), render=render))
        async with asyncio.timeout(15):
            await HANGING[0].wait()
        killed = my_chromium()
        assert len(killed) == 1, killed
        os.kill(killed[0], signal.SIGKILL)
        async with asyncio.timeout(15):
            (crashed,) = await probing
        assert (crashed.verdict, crashed.reason) == (Verdict.UNKNOWN, Reason.INTERNAL), crashed
        assert crashed.error is not None and "crashed" in crashed.error
        (after,) = await probe_everywhere(pool, ok, cfg.signatures_for(ok), render=render)
        assert (after.verdict, after.reason) == (Verdict.UP, None), after
        assert render.launches == 2 and render.figures().restarts == 1
    finally:
        await pool.close()
        await render.close()


def test_the_documentation_yaml_validates() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "browser.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        cfg = parse_config(block, filename="docs/browser.md", env={})
        assert any(c.browser is not None for c in cfg.checks)


async def test_main_document_failures_map_to_the_reasons_of_http_checks(
    spa: str, closed_port: int, ca: trustme.CA
) -> None:
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)  # a certificate Chromium does not trust
    runner, port = await start_app(web.Application(), ssl_context=context)
    try:
        refused, untrusted, slow, missing = await probe_all(
            config(
                f"""
                - {{name: refused, url: "http://127.0.0.1:{closed_port}/", timeout: 10s, browser: {{}}}}
                - {{name: untrusted, url: "https://127.0.0.1:{port}/", timeout: 10s, browser: {{}}}}
                - {{name: slow, url: "{spa}/hang", timeout: 2s, browser: {{}}}}
                - {{name: missing, url: "{spa}/nowhere", timeout: 10s, browser: {{wait_until: load}}}}
                """,
                f"browser: {{executable: {CHROMIUM}}}\n",
            )
        )
    finally:
        await runner.cleanup()
    assert (refused.verdict, refused.reason) == (Verdict.DOWN, Reason.CONNECT), refused
    assert (untrusted.verdict, untrusted.reason) == (Verdict.DOWN, Reason.TLS), untrusted
    assert (slow.verdict, slow.reason) == (Verdict.DOWN, Reason.TIMEOUT), slow
    assert (missing.verdict, missing.reason, missing.status) == (Verdict.DOWN, Reason.HTTP_STATUS, 404), (
        missing
    )
    # Nothing was drawn: no screenshot of Chromium's own error page.
    assert refused.screenshot is None and untrusted.screenshot is None and slow.screenshot is None
