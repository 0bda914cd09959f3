"""The real npm `statuspage.io` client (installed from the npm registry into a temporary folder) reads
prober's Statuspage API: summary, status, components, all incidents and unresolved ones."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from test_operator_page import config_of
from test_web import build_status_db

from prober.model import utcnow
from prober.notes import add_note
from prober.store import connect
from prober.web import create_app

CLIENT = "statuspage.io@3"
# The client's own calls (its README's API): getSummary, getStatus, getComponents, incidents.*.
SCRIPT = """
const { Statuspage } = require("statuspage.io");
const page = new Statuspage("prober");
page.setApiUrl(process.argv[2]);
(async () => {
  const api = page.api;
  const out = {
    summary: await api.getSummary(), status: await api.getStatus(), components: await api.getComponents(),
    all: await api.incidents.getAll(), unresolved: await api.incidents.getUnresolved(),
  };
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { process.stderr.write(String(e)); process.exit(1); });
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm"
    ),
]


@pytest.fixture(scope="module")
def client_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("statuspage-client")
    try:
        done = subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(folder), CLIENT],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip("npm install took too long (no registry?)")
    if done.returncode != 0:
        pytest.skip(f"cannot install {CLIENT} from the npm registry: {done.stderr.strip()[-300:]}")
    (folder / "read.js").write_text(SCRIPT)
    return folder


async def test_the_npm_statuspage_client_reads_prober(client_dir: Path, tmp_path: Path) -> None:
    scenario = build_status_db(tmp_path / "prober.db")
    mobile = scenario.incidents["x-mobile"]
    db = connect(scenario.path)
    try:
        add_note(db, mobile.id or 0, "identified", "A bad deploy in JP", utcnow())
    finally:
        db.conn.close()
    app = create_app(scenario.path, config=config_of(), cache_seconds=0)
    async with TestServer(app) as server:
        process = await asyncio.create_subprocess_exec(
            "node", str(client_dir / "read.js"), str(server.make_url("")).rstrip("/"),
            cwd=client_dir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    got: dict[str, Any] = json.loads(out)
    assert got["status"]["status"] == {"indicator": "major", "description": "Partial Outage"}
    assert got["summary"]["page"]["name"] == "X status"
    names = {c["id"]: c["name"] for c in got["components"]["components"] if not c["group"]}
    assert names == {"x-web": "Home timeline (web)", "x-mobile": "x-mobile", "x-api": "x-api"}
    assert [i["status"] for i in got["all"]["incidents"]] == ["identified", "resolved"]
    (open_one,) = got["unresolved"]["incidents"]
    assert open_one["id"] == str(mobile.id)
    assert open_one["incident_updates"][0]["body"] == "A bad deploy in JP"
