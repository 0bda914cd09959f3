"""One figure for one window: the API, the page and `prober report` count and write availability alike."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from test_web import Scenario, build_status_db

from prober import report as rep
from prober.cli import main
from prober.model import Counts, iso
from prober.web import create_app
from prober.web.page import pct


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_status_db(tmp_path_factory.mktemp("figures") / "prober.db")


def reported(scenario: Scenario, check: str, since: str, until: str) -> dict[str, Any]:
    """The check's line of `prober report --json` for [since, until)."""
    args = [
        "report",
        "--db",
        str(scenario.path),
        "--since",
        since,
        "--until",
        until,
        "--check",
        check,
        "--json",
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    (line,) = json.loads(result.stdout)["availability"]["checks"]
    return dict(line)


@pytest.mark.parametrize("check", ["x-web", "x-mobile", "x-api"])
async def test_the_api_counts_a_window_as_the_report_does(scenario: Scenario, check: str) -> None:
    start, end = scenario.outage
    windows = [
        (start, end),  # the outage exactly
        (
            start - timedelta(minutes=7, seconds=30),
            end + timedelta(minutes=2, milliseconds=1),
        ),  # ragged edges
        (scenario.now - timedelta(hours=26, minutes=13), scenario.now),  # not whole hours: not the rollups
        (scenario.mobile_since - timedelta(seconds=1), scenario.now),
    ]
    async with TestClient(TestServer(create_app(scenario.path))) as client:
        for low, high in windows:
            since, until = iso(low), iso(high)
            response = await client.get(f"/api/checks/{check}", params={"since": since, "until": until})
            body = await response.json()
            assert response.status == 200, body
            window = body["window"]
            line = reported(scenario, check, since, until)
            counts = Counts(line["up"], line["degraded"], line["down"], line["unknown"])
            assert (window["since"], window["until"]) == (since, until)
            assert {k: window[k] for k in ("up", "degraded", "down", "unknown")} == counts.to_json()
            assert window["availability"] == line["availability"]
            assert window["percent"] == rep.percent(counts)
            assert {r: v["availability"] for r, v in window["regions"].items()} == line["regions"]


async def test_without_a_window_a_check_keeps_its_shape(scenario: Scenario) -> None:
    async with TestClient(TestServer(create_app(scenario.path))) as client:
        body = await (await client.get("/api/checks/x-web")).json()
        assert "window" not in body and body["availability"]["24h"] is not None
        since_only = await (await client.get("/api/checks/x-web?since=30m")).json()
        assert since_only["window"]["until"] >= since_only["window"]["since"]


@pytest.mark.parametrize(
    ("counts", "text"),
    [
        (Counts(up=57, down=43), "57.00%"),  # floor(0.57 * 10000) is 5699: the page said 56.99%
        (Counts(up=2, down=1), "66.67%"),
        (Counts(up=99999, down=1), ">99.99%"),
        (Counts(up=5, degraded=5), "100%"),
        (Counts(unknown=3), "no data"),
    ],
)
def test_the_page_writes_the_report_figure(counts: Counts, text: str) -> None:
    assert pct(counts) == text


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_the_page_and_the_report_write_every_figure_alike(up: int, degraded: int, down: int) -> None:
    counts = Counts(up=up, degraded=degraded, down=down)
    assert pct(counts) == (rep.percent(counts) if counts.judged else "no data")
    if down:
        assert pct(counts) != "100%"
