"""Screenshots of browser checks: when they are taken, how big they may be, where they are stored and
served, how the status page links them, and that retention takes them away."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_browser_checks import CHROMIUM, config, probe_all, spa

from prober.browser import render
from prober.config import load_config
from prober.model import Verdict, utcnow
from prober.store import Store
from prober.store.rollup import prune
from prober.web import create_app

pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium"),
]
__all__ = ["spa"]  # a fixture used here

PNG = b"\x89PNG\r\n\x1a\n"
BROWSER = f"browser: {{executable: {CHROMIUM}, concurrency: 2}}\n"


def checks(spa: str) -> str:
    return config(
        f"""
        - {{name: down-on-failure, url: "{spa}/app?api=fail", timeout: 10s, confirm: 1, browser: {{}}}}
        - {{name: up-on-failure, url: "{spa}/app", timeout: 10s, browser: {{wait_for: "#data li"}}}}
        - {{name: up-always, url: "{spa}/app", timeout: 10s,
           browser: {{wait_for: "#data li", screenshot: always}}}}
        - {{name: down-never, url: "{spa}/app?api=fail", timeout: 10s, browser: {{screenshot: never}}}}
        """,
        BROWSER,
    )


async def test_screenshots_follow_the_policy(spa: str) -> None:
    down, up, always, never = await probe_all(checks(spa))
    assert down.verdict is Verdict.DOWN and down.screenshot is not None and down.screenshot.startswith(PNG)
    assert down.browser is not None and down.browser["screenshot"] == {
        "stored": True,
        "bytes": len(down.screenshot),
    }
    assert up.verdict is Verdict.UP and up.screenshot is None, up
    assert up.browser is not None and up.browser["screenshot"] is None
    assert (
        always.verdict is Verdict.UP and always.screenshot is not None and always.screenshot.startswith(PNG)
    )
    assert never.verdict is Verdict.DOWN and never.screenshot is None
    assert down.to_json()["screenshot"] is True and up.to_json()["screenshot"] is False


async def test_a_screenshot_over_the_limit_is_not_stored_and_says_so(
    spa: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "MAX_SCREENSHOT", 200)  # any real page is bigger than 200 bytes
    (down,) = await probe_all(
        config(f'- {{name: d, url: "{spa}/app?api=fail", timeout: 10s, browser: {{}}}}', BROWSER)
    )
    assert down.verdict is Verdict.DOWN and down.screenshot is None
    assert down.browser is not None
    shot = down.browser["screenshot"]
    assert shot["stored"] is False and shot["bytes"] > 200 and "over the limit" in shot["error"], shot


async def test_once_stores_them_and_the_page_and_api_serve_them(spa: str, tmp_path: Path) -> None:
    cfg, db = tmp_path / "checks.yaml", tmp_path / "prober.db"
    cfg.write_text(checks(spa))
    once = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "prober", "once", "--json", "-c", str(cfg), "--db", str(db),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(90):
        out, err = await once.communicate()
    assert once.returncode == 1, err.decode()  # something is down
    lines = {line["check"]: line for line in map(json.loads, out.decode().splitlines())}
    assert {c: line["screenshot"] for c, line in lines.items()} == {
        "down-on-failure": True, "up-on-failure": False, "up-always": True, "down-never": False,
    }  # fmt: skip
    with sqlite3.connect(db) as conn:
        shots = conn.execute("SELECT id, check_name, verdict, png FROM screenshots ORDER BY id").fetchall()
        linked = dict(conn.execute("SELECT check_name, screenshot_id FROM results").fetchall())
        latest = dict(conn.execute("SELECT check_name, screenshot_id FROM latest_results").fetchall())
    assert sorted((c, v) for _, c, v, _ in shots) == [("down-on-failure", "down"), ("up-always", "up")]
    ids = {c: i for i, c, _, _ in shots}
    assert linked == latest == {
        "down-on-failure": ids["down-on-failure"], "up-on-failure": None,
        "up-always": ids["up-always"], "down-never": None,
    }  # fmt: skip
    down_id = ids["down-on-failure"]
    async with TestClient(TestServer(create_app(db))) as client:
        resp = await client.get(f"/api/screenshots/{down_id}.png")
        assert resp.status == 200 and resp.content_type == "image/png"
        assert (
            resp.headers["X-Content-Type-Options"] == "nosniff" and "max-age" in resp.headers["Cache-Control"]
        )
        assert (await resp.read()) == next(png for i, _, _, png in shots if i == down_id)
        bad_paths = ("999999.png", "1.png.txt", "..%2F1.png", "-1.png", "1", "1.PNG")
        for bad in (f"/api/screenshots/{p}" for p in bad_paths):
            assert (await client.get(bad)).status == 404, bad
        page = await (await client.get("/")).text()
        # The open incident of down-on-failure (confirm: 1) shows what the page looked like.
        assert f'<img src="api/screenshots/{down_id}.png"' in page
        checks_json = await (await client.get("/api/checks")).json()
        by_name = {c["name"]: c for c in checks_json["checks"]}
        (last,) = by_name["down-on-failure"]["last_results"].values()
        assert last["screenshot"] is True and last["screenshot_id"] == down_id
    # A check hidden from the page (`public: false`) has no screenshot there either.
    cfg.write_text(checks(spa).replace("name: down-on-failure,", "name: down-on-failure, public: false,"))
    async with TestClient(TestServer(create_app(db, config=load_config(cfg, env={})))) as client:
        assert (await client.get(f"/api/screenshots/{down_id}.png")).status == 404
        assert (await client.get(f"/api/screenshots/{ids['up-always']}.png")).status == 200


async def test_retention_prunes_screenshots_with_their_results(tmp_path: Path, spa: str) -> None:
    (down,) = await probe_all(
        config(f'- {{name: d, url: "{spa}/app?api=fail", timeout: 10s, browser: {{}}}}', BROWSER)
    )
    assert down.screenshot is not None
    with Store(tmp_path / "p.db") as store:
        store.add(down)
        store.submit(lambda db: None).result()
        count = "SELECT count(*) FROM screenshots"
        assert store.submit(lambda db: db.execute(count).fetchone()[0]).result() == 1
        later = utcnow() + timedelta(days=2)
        store.submit(lambda db: prune(db, later, 86400)).result()
        assert store.submit(lambda db: db.execute(count).fetchone()[0]).result() == 0


async def test_a_screenshot_is_the_viewport_in_css_pixels(spa: str) -> None:
    web, mobile = await probe_all(
        config(
            f"""
            - {{name: w, url: "{spa}/app?api=fail", timeout: 10s, browser: {{}}}}
            - {{name: m, surface: mobile, url: "{spa}/app?api=fail", timeout: 10s, browser: {{}}}}
            """,
            BROWSER,
        )
    )
    sizes = []
    for result in (web, mobile):
        assert result.verdict is Verdict.DOWN and result.screenshot is not None, result
        header = result.screenshot[16:24]  # IHDR: width and height, big-endian
        sizes.append((int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")))
    assert sizes == [(1280, 800), (390, 844)]  # not the page's full height, not 3x for the phone
