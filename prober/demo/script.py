"""The demo's script: the outage timed in ticks, and the local target app that plays it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TICKS = 60  # the length of the script, in probe intervals
MIN_TICK = 0.1  # the shortest interval a configuration accepts
DEFAULT_DURATION = 60.0

CLAIM = "All Systems Operational"
ERROR_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>X</title></head>
<body><div id="react-root"><main>
<h1>Something went wrong, but don’t fret — it’s not your fault.</h1>
<p>Let’s give it another shot.</p><button>Try again</button>
</main></div></body></html>
"""
_FRET = "Something went wrong, but don't fret — it's not your fault"

# The vantages: name, region, source address. The target tells them apart by the peer address.
VANTAGES = (("us", "US", "127.0.0.2"), ("jp", "JP", "127.0.0.3"), ("uk", "UK", "127.0.0.4"))
REGION_OF_PEER = {address: region for _, region, address in VANTAGES}
REGION_OF_VANTAGE = {name: region for name, region, _ in VANTAGES}


@dataclass(frozen=True)
class Route:
    """One endpoint of the target and the check that probes it."""

    check: str
    surface: str
    path: str
    label: str  # what it is, for people


ROUTES = (
    Route("web-home", "web", "/home", "web home page"),
    Route("web-login", "web", "/i/flow/login", "web login page"),
    Route("mobile-timeline", "mobile", "/2/timeline/home.json", "mobile timeline API"),
    Route("mobile-notifications", "mobile", "/2/notifications/all.json", "mobile notifications API"),
    Route("status-page", "api", "/api/v2/status.json", "the target's own status JSON"),
)


@dataclass(frozen=True)
class Window:
    """Some checks fail for some regions (None: everyone) over [start, end) ticks of the script."""

    checks: tuple[str, ...]
    regions: tuple[str, ...] | None
    start: int
    end: int
    what: str  # what the failing requests get
    begins: str  # narration when it starts
    ends: str  # narration when it ends

    def covers(self, check: str, region: str | None, tick: float) -> bool:
        """Whether a request for `check` from `region` at `tick` fails."""
        if check not in self.checks or not self.start <= tick < self.end:
            return False
        return self.regions is None or region in self.regions


WEB = ("web-home", "web-login")
SURFACE_ORDER = {"web": 0, "mobile": 1, "api": 2}
SCRIPT = (
    Window(WEB, ("US", "UK"), 15, 45, f'HTTP 200 "{_FRET}"',
           f'web pages start answering HTTP 200 "{_FRET}" to US and UK', "web pages are back for US and UK"),
    Window(WEB, ("JP",), 27, 39, "the same error page", "JP gets the error page too",
           "JP gets the web pages again"),
    Window(("mobile-notifications",), None, 33, 37, "HTTP 503 with a JSON error",
           "mobile notifications fail with HTTP 503 for everyone", "mobile notifications are back"),
)  # fmt: skip


# The rendered part, added when Chromium is present: a single-page app whose HTML shell is always
# healthy and whose script draws the error page when its data API fails, as on 2022-12-28. Both of its
# checks probe from one direct vantage (Chromium cannot use the others' source addresses).
APP = Route("web-app", "web", "/app", "web app: its HTML shell, one HTTP request")
APP_RENDERED = Route("web-app-rendered", "web", "/app", "web app rendered in Chromium")
APP_DATA = "/app/data.json"
BROWSER_VANTAGE = ("chromium", "US")
APP_WINDOW = Window((APP_RENDERED.check,), None, 15, 45, "its data API fails: its script draws an error page",
                    "the web app's data API starts failing: its shell still answers 200",
                    "the web app's data API is back")  # fmt: skip
APP_SHELL = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>X</title></head>
<body><div id="react-root">Loading…</div><script>
const FRET = "{fret}";
const draw = (html) => { document.getElementById("react-root").innerHTML = "<main>" + html + "</main>"; };
fetch("{data}").then((r) => { if (!r.ok) throw new Error("api " + r.status); return r.json(); })
  .then((d) => draw("<h1>Home</h1><p>" + d.text + "</p>"))
  .catch(() => draw("<h1>" + FRET + "</h1>"));
</script></body></html>""".replace("{fret}", _FRET).replace("{data}", APP_DATA)


def failing(check: str, region: str | None, tick: float, script: Sequence[Window] = SCRIPT) -> bool:
    """Whether the script makes a request for `check` from `region` fail at `tick`."""
    return any(w.covers(check, region, tick) for w in script)


# -- the target ----------------------------------------------------------------------------------


@dataclass
class Target:
    """The scripted target: its clock starts with `start()`."""

    tick: float
    script: Sequence[Window] = SCRIPT
    started: float = 0.0  # time.monotonic() at tick 0
    origin: float = 0.0  # time.time() at tick 0
    shifts: dict[str, float] = field(default_factory=dict)  # check -> seconds its ticks come after the origin

    def start(self, origin: float) -> None:
        """Start the script's clock at `origin` (epoch seconds, at most a few seconds from now)."""
        from prober.schedule import phase

        self.origin = origin
        self.started = time.monotonic() + (origin - time.time())
        # The daemon probes each check at fixed phases of the wall clock. Each check's ticks are moved
        # (by at most half of one) to fall half-way between two of its probes: a probe is never a hair
        # before or after a change, so every vantage sees the same number of failures in every run.
        half = self.tick / 2
        for route in ROUTES:
            halfway = phase(route.check, self.tick) + half
            self.shifts[route.check] = (halfway - origin + half) % self.tick - half

    def elapsed(self) -> float:
        """Seconds since the script started."""
        return time.monotonic() - self.started

    def app(self) -> web.Application:
        """The aiohttp application serving every route of the target (and the web app's)."""
        app = web.Application()
        for route in ROUTES:
            app.router.add_get(route.path, self._handler(route))
        app.router.add_get(APP.path, self._app_shell)
        app.router.add_get(APP_DATA, self._handler(APP_RENDERED))
        return app

    async def _app_shell(self, request: web.Request) -> web.Response:
        return web.Response(text=APP_SHELL, content_type="text/html")

    def _handler(self, route: Route) -> Any:
        async def handle(request: web.Request) -> web.Response:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            region = REGION_OF_PEER.get(peer[0]) if peer else None
            tick = (time.time() - self.origin - self.shifts.get(route.check, 0.0)) / self.tick
            return _respond(route, failing(route.check, region, tick, self.script))

        return handle


def _respond(route: Route, broken: bool) -> web.Response:
    if route is APP_RENDERED:  # the web app's data
        if broken:
            return web.json_response({"errors": [{"code": 131, "message": "Internal error"}]}, status=503)
        return web.json_response({"text": "What is happening today."})
    if route.check == "status-page":
        # The Atlassian Statuspage shape; it never changes, which is the point.
        return web.json_response(
            {
                "page": {"id": "demo", "name": "Demo", "url": "http://127.0.0.1/", "time_zone": "Etc/UTC"},
                "status": {"indicator": "none", "description": CLAIM},
                "components": [{"name": n, "status": "operational"} for n in ("Web", "Mobile API")],
                "incidents": [],
            }
        )
    if route.surface == "web":
        if broken:  # what desktop users got: an error page, with status 200
            return web.Response(text=ERROR_PAGE, content_type="text/html")
        title = "Home" if route.check == "web-home" else "Log in"
        page = f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
        return web.Response(
            text=page + "<p>What is happening today.</p></body></html>", content_type="text/html"
        )
    if broken:
        body = {"errors": [{"code": 131, "message": "Internal error"}]}
        return web.json_response(body, status=503)
    if route.check == "mobile-timeline":
        return web.json_response(
            {"data": {"timeline": [{"id": "1", "text": "gm"}, {"id": "2", "text": "gn"}]}}
        )
    return web.json_response({"data": {"notifications": [], "cursor": "0"}})


def config_yaml(port: int, tick: float, rendered: bool = False) -> str:
    """The demo's checks.yaml: three vantages, every route a check, one tick per interval; with
    `rendered`, the web app's shell and its rendering from a fourth, direct vantage."""
    vantages = "".join(
        f"  {name}: {{region: {region}, source_address: {address}}}\n" for name, region, address in VANTAGES
    )
    app = ""
    if rendered:
        vantages += f"  {BROWSER_VANTAGE[0]}: {{region: {BROWSER_VANTAGE[1]}}}\n"
        # A page costs far more than a request: every tenth tick (at least 2 s), from one vantage.
        every = f"interval: {max(10 * tick, 2.0):.3f}s, timeout: 10s, vantages: [{BROWSER_VANTAGE[0]}]"
        url = f"'http://127.0.0.1:{port}{APP.path}'"
        app = (
            f"  - {{name: {APP.check}, surface: web, url: {url}, {every}, expect: {{status: [200]}}}}\n"
            f"  - {{name: {APP_RENDERED.check}, surface: web, url: {url}, {every},\n"
            "     browser: {wait_until: load, wait_for: main}}\n"
        )
    expect = {
        "web-home": "{status: [200]}",
        "web-login": "{status: [200]}",
        "mobile-timeline": '{json: ["data.timeline"]}',
        "mobile-notifications": '{json: ["data"]}',
        "status-page": "{json: [\"status.indicator == 'none'\"]}",
    }
    # Web and mobile checks are held against what the status page claims, polled by prober.claims.
    claim = {
        "web": ", claim: {source: official}",
        "mobile": ", claim: {source: official, component: Mobile API}",
    }
    checks = "".join(
        f"  - {{name: {r.check}, surface: {r.surface}, url: 'http://127.0.0.1:{port}{r.path}',"
        f" expect: {expect[r.check]}{claim.get(r.surface, '')}}}\n"
        for r in ROUTES
    )
    status = next(r.path for r in ROUTES if r.check == "status-page")
    poll = max(1.0, tick)  # the shortest interval of a claims source
    claims = f"  official: {{url: 'http://127.0.0.1:{port}{status}', interval: {poll:.3f}s, timeout: 2s}}\n"
    return (
        "# Generated by `prober demo`.\n"
        f"defaults: {{interval: {tick:.3f}s, timeout: 2s, confirm: 2, recover: 2, quorum: majority,"
        f" vantages: [{', '.join(v[0] for v in VANTAGES)}]}}\n"
        f"vantages:\n{vantages}claims:\n{claims}checks:\n{checks}{app}"
    )
