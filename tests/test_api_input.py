"""Hostile input to the HTTP API: every query parameter of every endpoint answers 200 or 400 (or 404
for a check that does not exist), never 500; a bug in a handler answers a JSON 500 without internals."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_web import Scenario, build_status_db

from prober.web import create_app

BIG = str(2**63)  # one past the largest SQLite INTEGER


def b64(text: str | bytes) -> str:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).decode()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_status_db(tmp_path_factory.mktemp("api-input") / "prober.db")


# -- the examples of the issue, and their kin --------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "limit=²", "limit=٣", "limit=１０", "limit=" + BIG, "limit=-1", "limit=1e3", "limit= 5",
        "since=99999999999", "since=99999d", "since=99999999999d", "until=99999999999d", "since=1e400s",
        "since=9999-12-31T23:59:59-14:00", "since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31",
        "since=0001-01-01", "since=٢٠٢٢-١٢-٢٨", "since=2022-12-28T13:50:00%2B99:00", "since=20221228",
        "since=2022W01", "since=nan", "since=infd", "since=%00", "until=" + "9" * 5000 + "d",
        "cursor=" + b64(f"2022-12-28T00:00:00.000Z|{BIG}"), "cursor=" + b64("9999-12-31T23:59:59-14:00|1"),
        "cursor=" + b64("2022-12-28T00:00:00.000Z|²"), "cursor=" + b64(b"\xff\xfe|1"), "cursor=%F0%9F%92%A9",
        "cursor=" + b64("2022-12-28T00:00:00.000Z|-1"), "vantage=%ED%A0%80",
    ],
)  # fmt: skip
async def test_results_refuse_what_cannot_be_a_parameter(scenario: Scenario, query: str) -> None:
    async with TestClient(TestServer(create_app(scenario.path))) as client:
        response = await client.get(f"/api/checks/x-web/results?{query}")
        assert response.status == 400, (await response.text())[:300]
        body = await response.json()
        assert set(body) == {"error", "status"} and body["status"] == 400
        assert "Traceback" not in body["error"]


@pytest.mark.parametrize(
    "query",
    ["limit=²", "since=99999999999", "since=9999-12-31T23:59:59-14:00", "until=99999999999d",
     "limit=" + BIG, "since=0001-01-01T00:00:00%2B14:00"],
)  # fmt: skip
async def test_incidents_refuse_what_cannot_be_a_parameter(scenario: Scenario, query: str) -> None:
    async with TestClient(TestServer(create_app(scenario.path))) as client:
        response = await client.get(f"/api/incidents?{query}")
        assert response.status == 400, (await response.text())[:300]
        assert (await response.json())["status"] == 400


async def test_unknown_parameters_are_400_on_the_api_and_ignored_where_tools_poll(scenario: Scenario) -> None:
    """prober's JSON API refuses a parameter it does not know (a typo would change the answer
    silently); fixed URLs that other tools poll (page, Statuspage JSON, /metrics, /healthz) ignore
    what those tools add."""
    async with TestClient(TestServer(create_app(scenario.path))) as client:
        for path in ("/api/checks", "/api/checks/x-web", "/api/checks/x-web/results", "/api/incidents"):
            response = await client.get(f"{path}?chek=x-web")
            assert response.status == 400, (path, (await response.text())[:300])
            assert "unknown query parameter" in (await response.json())["error"]
            response = await client.get(f"{path}?_=1700000000")  # a widget's cache buster
            assert response.status == 200, (path, (await response.text())[:300])
        for path in ("/", "/api/v2/status.json", "/api/v2/summary.json", "/metrics", "/healthz"):
            response = await client.get(f"{path}?module=http_2xx&target=x&_=1")
            assert response.status == 200, (path, (await response.text())[:300])


def test_an_oversized_request_line_is_400_and_the_server_goes_on(server: tuple[str, int]) -> None:
    """aiohttp refuses a request line past 8 KiB before prober sees it (its plain-text 400, which
    quotes the line's first 100 bytes back to the sender; see the README): never a 500, never a hang."""
    status, body = get(server, "/api/checks?x=" + "A" * 9000)
    assert status == 400 and len(body) < 400, body[:400]
    assert get(server, "/healthz")[0] == 200


async def test_the_widest_window_is_served(scenario: Scenario) -> None:
    """The bounds are what SQLite and datetime hold, not what a test happened to use."""
    async with TestClient(TestServer(create_app(scenario.path))) as client:
        for path in (
            "/api/checks/x-web/results?since=1970-01-01&until=8999-12-31T23:59:59.999999%2B00:00&limit=1",
            "/api/incidents?since=1970-01-01T00:00Z&until=8999-12-31",
            "/api/checks/x-web/results?since=20000d&limit=1",
            "/api/checks/x-web/results?cursor=" + b64(f"1970-01-01T00:00:00.000Z|{2**63 - 1}"),
        ):
            response = await client.get(path)
            assert response.status == 200, (path, (await response.text())[:300])


async def test_a_bug_in_a_handler_is_a_json_500_without_internals(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(scenario.path)

    async def broken(request: web.Request) -> web.Response:
        raise OverflowError("secret internals: Python int too large to convert to SQLite INTEGER")

    app.router.add_get("/api/broken", broken)
    app.router.add_get("/broken", broken)
    with caplog.at_level(logging.ERROR, logger="prober.web"):
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/api/broken")
            assert response.status == 500
            assert await response.json() == {"error": "internal error", "status": 500}
            page = await client.get("/broken")
            assert page.status == 500 and await page.text() == "internal error"
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert len(logged) == 2 and "secret internals" in str(logged[0].exc_info[1])


# -- hypothesis: random text in every parameter of every endpoint ----------------------------------


@pytest.fixture(scope="module")
def server(scenario: Scenario) -> Iterator[tuple[str, int]]:
    """The app on 127.0.0.1 in a thread of its own, so that hypothesis can drive it with plain calls."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(scenario.path), access_log=None)

    async def start() -> int:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return int(runner.addresses[0][1])

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def get(server: tuple[str, int], path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*server, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


_OFFSETS = st.sampled_from(["", "Z", "z", "+00:00", "-14:00", "+14:00", "+23:59", "+99:99", "+0100", "+01"])
_ISO = st.builds(
    lambda ts, sep, off: ts.isoformat(sep=sep) + off,
    st.datetimes(min_value=datetime.min, max_value=datetime.max),
    st.sampled_from(["T", " ", "t"]),
    _OFFSETS,
) | st.dates().map(str)
_NUMBER = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats().map(repr),
    st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=6),  # ², ٣, １
)
_DURATION = st.builds(
    lambda n, unit: n + unit, _NUMBER, st.sampled_from(["", "ms", "s", "m", "h", "d", "w", "y", "D"])
)
_CURSOR = st.one_of(
    st.binary(max_size=64).map(b64),
    st.builds(lambda ts, n: b64(f"{ts}|{n}"), _ISO | st.text(max_size=30), _NUMBER | st.text(max_size=5)),
)
HOSTILE: st.SearchStrategy[str | bytes] = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),  # percent-encoded bytes: invalid UTF-8 too
    _NUMBER,
    _DURATION,
    _ISO,
    _CURSOR,
    st.sampled_from(["now", "NOW", "", " ", "x-web", "us-east", "24h", "1h30m"]),
)


# Half the time, a value made for the parameter it goes to: a number for limit, a time for since.
AIMED: dict[str, st.SearchStrategy[str | bytes]] = {
    "limit": _NUMBER,
    "since": _ISO | _DURATION,
    "until": _ISO | _DURATION,
    "cursor": _CURSOR,
}


def params_for(names: tuple[str, ...]) -> st.SearchStrategy[dict[str, str | bytes]]:
    """Some of `names`, each with a hostile value."""
    return st.fixed_dictionaries({}, optional={name: HOSTILE | AIMED.get(name, HOSTILE) for name in names})


def query_of(params: dict[str, str | bytes]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())


# The query parameters of each endpoint, and the answers they may give: 404 only where a check is named.
ENDPOINTS: list[tuple[str, tuple[str, ...], set[int]]] = [
    ("/api/checks/x-web/results", ("since", "until", "vantage", "limit", "cursor"), {200, 400}),
    ("/api/incidents", ("since", "until", "check", "limit"), {200, 400, 404}),
    ("/api/checks/x-web", ("since", "until"), {200, 400}),
    ("/api/checks", ("_", "x"), {200, 400}),
    ("/api/v2/status.json", ("_",), {200}),
    ("/api/v2/summary.json", ("_",), {200}),
    ("/", ("_",), {200}),
    ("/metrics", ("_",), {200}),
    ("/healthz", ("_",), {200}),
]


@pytest.mark.parametrize(("path", "names", "allowed"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_random_parameters_are_answered_200_or_400(
    server: tuple[str, int], path: str, names: tuple[str, ...], allowed: set[int]
) -> None:
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(params_for(names))
    def hammer(params: dict[str, str | bytes]) -> None:
        status, body = get(server, f"{path}?{query_of(params)}")
        assert status in allowed, (params, body[:300])
        if status >= 400:
            error: dict[str, Any] = json.loads(body)
            assert error["status"] == status and isinstance(error["error"], str)

    hammer()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=40) | st.binary(min_size=1, max_size=40))
def test_random_check_names_are_answered_200_or_404(server: tuple[str, int], name: str | bytes) -> None:
    for path in ("/api/checks/{}", "/api/checks/{}/results", "/api/incidents?check={}"):
        status, body = get(server, path.format(quote(name, safe="")))
        assert status in (200, 400, 404), (path, name, body[:300])
