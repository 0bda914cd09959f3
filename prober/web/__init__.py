"""The read-only web app: status page, Statuspage-compatible and native JSON APIs, /metrics, /healthz.

Handlers never touch SQLite on the event loop: each request's queries (and the rendering of the
page, which is CPU work for thousands of checks) run in a small pool of reader threads, each with
its own read-only connection, through the functions of `prober.store`. The page and the JSON
summaries are served from memory and made again in the background (`prober.web.answers`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlite_utils
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from prober.claims import findings_for
from prober.claims.web import StoredClaims, claims_body, page_sentences
from prober.config import Config, PageSettings
from prober.maintenance import statuspage as maintenance
from prober.model import ProberError, iso, utcnow
from prober.notes import notes_of
from prober.notes.timeline import timelines
from prober.store import StoreError, read
from prober.store.screenshots import incident_screenshots
from prober.web import public, screenshots, statuspage_api, strip
from prober.web.answers import JSON_HEADERS, JSON_TYPE, SECURITY_HEADERS, Answer, AnswerCache, Maker, Snapshot
from prober.web.api import check_json, dumps, narrated_json, window_json
from prober.web.live import LiveState
from prober.web.metrics import ExpositionCache, ProberMetrics, expose
from prober.web.page import environment, narrated, render
from prober.web.params import RequestError, bad, cursor, make_cursor, query, window
from prober.web.params import limit as limit_of
from prober.web.reader import ReadPool
from prober.web.view import HistoryCache

__all__ = ["LiveState", "ProberMetrics", "WebError", "create_app", "parse_http", "start_server"]

log = logging.getLogger("prober.web")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_RESULTS_WINDOW = timedelta(hours=24)
DEFAULT_INCIDENTS_WINDOW = timedelta(days=90)
MAX_INCIDENTS = 5000
# The page runs no script at all: even a probe's error message that slipped through unescaped could not.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP}
_HTTP = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]\s]*)):(?P<port>\d{1,5})$")


class WebError(ProberError):
    """The web server cannot start: a bad HOST:PORT, or the address is taken."""


class WebState:
    """What the handlers share."""

    def __init__(
        self,
        db_path: Path,
        config: Config | None,
        live: LiveState | None,
        title: str,
        cache_seconds: float,
        history_seconds: float,
        metrics_seconds: float = 1.0,
    ) -> None:
        self.reader = ReadPool(db_path)
        self.config = config
        self.live = live
        self.title = title
        self.histories = HistoryCache(history_seconds, self.reader.spawn)
        self.answers = AnswerCache(self.snapshot, cache_seconds)
        self.expositions = ExpositionCache(metrics_seconds)
        self.fresh_for = cache_seconds if cache_seconds > 0 else None  # Cache-Control: max-age
        self.env = environment()
        self.refresher: asyncio.Task[None] | None = None
        self.unsubscribe: Callable[[], None] | None = None

    def current_config(self) -> Config | None:
        """The daemon's configuration (reloads included) if live, else the one given."""
        if self.live is not None and self.live.config is not None:
            return self.live.config
        return self.config

    def page_settings(self, snap: Snapshot) -> PageSettings:
        """The `page:` settings of the snapshot's configuration; without one, the title given."""
        return snap.config.page if snap.config is not None else PageSettings(self.title)

    def snapshot(self) -> Snapshot:
        """A new snapshot of now (on the loop: the live states are copied here)."""
        if self.live is None:
            return Snapshot(utcnow(), self.current_config(), None, self.histories)
        return Snapshot(
            utcnow(), self.current_config(), self.live.states(), self.histories, self.live.open_incidents()
        )

    # -- the answers kept ready ------------------------------------------------------------------

    async def page(self, snap: Snapshot) -> Answer:
        """The status page."""

        silent = {} if self.live is None else dict(self.live.silent)  # agents (prober.agents)

        # One thread reads it all: reading the parts in parallel threads is slower, as a thread
        # fetching rows gives up the GIL for each row and waits to get it back from the others.
        def work(db: sqlite_utils.Database) -> Answer:
            overview = snap.overview(db)
            shown = {c.name for c in overview.checks}
            incidents = [i for i in snap.incidents(db) if i.check in shown]
            stories = timelines(db, narrated(overview, incidents), snap.now)
            settings = self.page_settings(snap)
            windows = maintenance.page_windows(db, overview)
            shots = incident_screenshots(db, [*overview.open_incidents, *incidents], snap.now)
            claims = page_sentences(db, [*incidents, *overview.open_incidents], overview.now)
            history = snap.history(db, ("days", "latency"))
            fine = strip.fragments(db, overview, history, snap.now)
            html = render(
                self.env, overview, history, incidents, settings.title,
                description=settings.description, timelines=stories, fine=fine, refresh=settings.refresh,
                maintenance=windows, silent=silent, screenshots=shots, claims=claims,
            )  # fmt: skip
            return Answer.of(html, "text/html; charset=utf-8", snap.now)

        return await self.reader.run(work)

    async def checks(self, snap: Snapshot) -> Answer:
        """/api/checks."""

        def work(db: sqlite_utils.Database) -> Answer:
            overview, history = snap.overview(db), snap.history(db, ("windows",))
            found = findings_for(db, [c.incident for c in overview.checks if c.incident], overview.now)
            claim = {
                c.name: found.get((c.name, c.incident.started_at)) for c in overview.checks if c.incident
            }
            body = {
                "generated_at": iso(overview.now),
                "state": str(overview.state),
                "checks": [check_json(c, history, overview.now, claim.get(c.name)) for c in overview.checks],
            }
            maintenance.decorate_checks(body, db, overview)
            return Answer.of(dumps(body), JSON_TYPE, snap.now)

        return await self.reader.run(work)

    def statuspage(self, which: statuspage_api.Which, url: str) -> Maker:
        """A Statuspage-compatible answer (/api/v2/...) for the page at `url`."""

        async def make(snap: Snapshot) -> Answer:
            def work(db: sqlite_utils.Database) -> Answer:
                title = self.page_settings(snap).title
                body = which(snap, db, title, url)
                maintenance.decorate(body, db, snap.overview(db), title, url)
                return Answer.of(dumps(body), JSON_TYPE, snap.now)

            return await self.reader.run(work)

        return make

    async def start(self) -> None:
        """Start making answers again in the background, and hearing of the daemon's state changes."""
        self.refresher = asyncio.create_task(self.answers.run())
        self.unsubscribe = self.live.subscribe(self.answers.changed) if self.live is not None else None

    async def stop(self) -> None:
        """Stop the background work, then the reader threads."""
        if self.unsubscribe is not None:
            self.unsubscribe()
        if self.refresher is not None:
            self.refresher.cancel()
            await asyncio.gather(self.refresher, return_exceptions=True)
        await self.answers.close()
        await self.expositions.close()
        await asyncio.get_running_loop().run_in_executor(None, self.reader.close)


STATE: web.AppKey[WebState] = web.AppKey("prober_web", WebState)


# -- errors and parameters ---------------------------------------------------------------------------


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    extra = {**JSON_HEADERS, **(headers or {})}
    return web.Response(text=dumps(data), status=status, content_type="application/json", headers=extra)


async def claims(request: web.Request) -> web.Response:
    """/api/claims?since=&until=&source=: the claims sources, their current claims and past ones."""
    return _json(await claims_body(request, request.app[STATE]))


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bad parameters: 400 with a JSON error; unknown check: 404; an unreadable database: 503; a bug:
    500 saying only "internal error" (the traceback is logged)."""
    api = request.path.startswith("/api/")
    try:
        return await handler(request)
    except RequestError as exc:
        return _json({"error": str(exc), "status": exc.status}, status=exc.status)
    except web.HTTPException as exc:
        if not api or exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return _json({"error": exc.reason, "status": exc.status}, status=exc.status, headers=allow)
    except (StoreError, sqlite3.Error) as exc:
        message = f"database unavailable: {exc}"
        if "no such table" in message:
            message += " (the database predates this prober: `prober once` or `prober run` migrates it)"
        if api or request.path == "/metrics":
            return _json({"error": message, "status": 503}, status=503)
        return web.Response(text=message, status=503, headers=SECURITY_HEADERS)
    except Exception:
        # A bug of ours: its traceback goes to the log for the operator, never to the client, whose
        # answer says nothing of the internals.
        log.exception("%s %r failed", request.method, request.path)
        if api or request.path == "/metrics":
            return _json({"error": "internal error", "status": 500}, status=500)
        return web.Response(text="internal error", status=500, headers=SECURITY_HEADERS)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/"


# -- handlers ------------------------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    """The status page (query parameters ignored)."""
    s = request.app[STATE]
    answer = await s.answers.get("page", s.page)
    return answer.response(request, PAGE_HEADERS, s.fresh_for)


def statuspage_handler(
    path: str, which: statuspage_api.Which
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of /api/v2/`path` (query parameters ignored, as widgets add their own)."""

    async def handler(request: web.Request) -> web.Response:
        s, url = request.app[STATE], _base_url(request)
        answer = await s.answers.get(f"{path} {url}", s.statuspage(which, url))
        return answer.response(request, JSON_HEADERS, s.fresh_for)

    return handler


async def checks(request: web.Request) -> web.Response:
    """/api/checks (no parameters: `?check=x` would otherwise answer every check, silently)."""
    query(request, ())
    s = request.app[STATE]
    answer = await s.answers.get("checks", s.checks)
    return answer.response(request, JSON_HEADERS, s.fresh_for)


async def _vantages(s: WebState, name: str) -> set[str]:
    """The vantages of a configured check or of one the database knows (maybe none); 404 for others."""
    config = s.current_config()
    for c in config.checks if config is not None else ():
        if c.name == name and c.public:
            return set(c.vantages)
    if name in public.hidden_checks(config):  # public APIs know nothing of it
        raise RequestError(404, f'no check named "{name}"')

    def work(db: sqlite_utils.Database) -> set[str] | None:
        seen = {r.vantage for r, _ in read.latest_results(db, check=name)}
        return seen if seen or read.check_known(db, name) else None

    found = await s.reader.run(work)
    if found is None:
        raise RequestError(404, f'no check named "{name}"')
    return found


async def check(request: web.Request) -> web.Response:
    """/api/checks/{name}?since=&until=: with a window, also the check's availability over exactly
    that window, counted from the raw results as `prober report --since --until` counts it."""
    params = query(request, ("since", "until"))
    s, name, now = request.app[STATE], request.match_info["name"], utcnow()
    span = window(params, now, DEFAULT_RESULTS_WINDOW) if params else None
    snap = s.answers.snapshot()
    overview, history = await s.reader.run(lambda db: (snap.overview(db), snap.history(db, ("windows",))))
    status = overview.find(name)
    if status is None:
        raise RequestError(404, f'no check named "{name}"')
    body = check_json(status, history, overview.now)
    if span is not None:
        since, until = span[0], span[1] or now
        rows = await s.reader.run(partial(read.verdict_counts, since=since, until=until, check=name))
        body["window"] = window_json(rows, since, until)
    return _json(body)


async def results(request: web.Request) -> web.Response:
    """/api/checks/{name}/results?since=&until=&vantage=&limit=&cursor=: raw results, oldest first."""
    params = query(request, ("since", "until", "vantage", "limit", "cursor"))
    s, name, now = request.app[STATE], request.match_info["name"], utcnow()
    since, until = window(params, now, DEFAULT_RESULTS_WINDOW)
    limit = limit_of(params, DEFAULT_LIMIT, MAX_LIMIT)
    after = cursor(params["cursor"]) if "cursor" in params else None
    vantage = params.get("vantage") or None
    vantages = await _vantages(s, name)
    if vantage is not None and vantages and vantage not in vantages:
        raise bad(f'vantage: "{vantage}" is not a vantage of {name} ({", ".join(sorted(vantages))})')
    rows = await s.reader.run(
        partial(
            read.results_page, check=name, since=since, until=until, vantage=vantage, limit=limit, after=after
        )
    )
    config = s.current_config()
    urls = [c.url for c in config.checks] if config is not None else []
    shown = public.concealer(urls) if not public.show_urls(config) else lambda r: r
    next_url = None
    if len(rows) == limit:
        last_id, last = rows[-1]
        following = {k: v for k, v in params.items() if k != "cursor"}
        following.update(since=iso(since), cursor=make_cursor(last.ts, last_id))
        if until is not None:
            following["until"] = iso(until)
        next_url = str(request.rel_url.with_query(following))
    return _json(
        {
            "check": name,
            "since": iso(since),
            "until": None if until is None else iso(until),
            "vantage": vantage,
            "limit": limit,
            "count": len(rows),
            "results": [{"id": ident, **shown(r).to_json()} for ident, r in rows],
            "next": next_url,
        }
    )


async def incidents(request: web.Request) -> web.Response:
    """/api/incidents?since=&until=&check=&limit=: incidents overlapping the window, newest first."""
    params = query(request, ("since", "until", "check", "limit"))
    s, now = request.app[STATE], utcnow()
    since, until = window(params, now, DEFAULT_INCIDENTS_WINDOW)
    limit = limit_of(params, MAX_INCIDENTS, MAX_INCIDENTS)
    name = params.get("check") or None
    if name is not None:
        await _vantages(s, name)
    found = await s.reader.run(partial(read.incidents, since=since, until=until, check=name))
    hidden = public.hidden_checks(s.current_config())
    found = sorted((i for i in found if i.check not in hidden), key=lambda i: (i.started_at, i.id or 0))
    found = found[::-1][:limit]  # newest first
    notes = await s.reader.run(lambda db: notes_of(db, (i.id for i in found)))
    claims = await s.reader.run(partial(findings_for, incidents=found, now=now))
    return _json(
        {
            "since": iso(since),
            "until": None if until is None else iso(until),
            "check": name,
            "incidents": [
                narrated_json(i, now, notes.get(i.id or 0, []), claims.get((i.check, i.started_at)))
                for i in found
            ],
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """/metrics: the daemon's live metrics, or the database's newest results for `prober serve`;
    rendered at most once a second per format, whatever the number of scrapers. Query parameters are
    ignored: a Prometheus job's `params:` may add its own."""
    s = request.app[STATE]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))

    async def render() -> bytes:
        if s.live is not None:  # off the loop: thousands of series take a while to write out
            registry = s.live.metrics.registry
            return await asyncio.get_running_loop().run_in_executor(None, expose, encoder, registry)
        config, now = s.current_config(), utcnow()

        def work(db: sqlite_utils.Database) -> bytes:
            fresh = ProberMetrics()  # a registry per rendering: checks gone from the database leave no series
            fresh.fill(db, now, config)
            fresh.registry.register(StoredClaims(db, now))
            return expose(encoder, fresh.registry)

        return await s.reader.run(work)

    body = await s.expositions.get(content_type, render)
    return web.Response(body=body, headers={**SECURITY_HEADERS, "Content-Type": content_type})


async def agents(request: web.Request) -> web.Response:
    """/api/agents: the agents of a collector (`prober run --nats`): heard when, clock skew, silence."""
    s = request.app[STATE]
    source = None if s.live is None else s.live.agents
    return _json({"agents": [] if source is None else source()})


async def healthz(request: web.Request) -> web.Response:
    """/healthz: whether the database can be read and, in a daemon, written; 503 if not.

    Query parameters are ignored: a load balancer's probe may add its own, and a 400 would take
    a healthy prober out of rotation.

    A daemon adds its store's figures (backlog, write failures, dropped results) and skipped probes.
    """
    s = request.app[STATE]
    try:
        await s.reader.run(lambda db: db.execute("SELECT 1").fetchone())
        database = "ok"
    except (StoreError, sqlite3.Error) as exc:
        database = f"error: {exc}"
    body: dict[str, Any] = {"status": "ok", "database": database, "live": s.live is not None}
    source = None if s.live is None else s.live.health
    if source is not None:
        health = await asyncio.get_running_loop().run_in_executor(None, source)  # it stats the file
        store = health.store
        if not store.ok and database == "ok":
            database = body["database"] = f"error: {store.file_problem or store.last_error}"
        body["store"] = {
            "writable": store.ok,
            "backlog": store.backlog,
            "max_backlog": store.max_backlog,
            "written": store.written,
            "write_errors": store.write_errors,
            "last_error": store.last_error,
            "failing_since": None if store.failing_since is None else iso(store.failing_since),
            "file_problem": store.file_problem,
            "dropped": store.dropped,
            "unsaved": store.unsaved,
        }
        body["probes"] = {"made": health.probes, "skipped": health.probes_skipped}
        if health.outbox is not None:
            body["outbox"] = {k: health.outbox[k] for k in ("pending", "failed", "oldest_pending_seconds")}
    if database != "ok":
        body["status"] = "failing"
    body["time"] = iso(utcnow())
    return _json(body, status=200 if database == "ok" else 503)


# -- the app -------------------------------------------------------------------------------------------


def create_app(
    db_path: Path,
    *,
    config: Config | None = None,
    live: LiveState | None = None,
    title: str = "Service status",
    cache_seconds: float = 10.0,
    history_seconds: float = 60.0,
    metrics_seconds: float = 1.0,
) -> web.Application:
    """The web app over the database at `db_path`.

    `config` names the checks to show with their surfaces and regions (without it, the checks the
    database heard from in the last 14 days); `live` is the running daemon's state, whose confirmed
    states and metrics are used instead of the database's view, and whose state changes make the
    answers again at once. The page, /api/checks and the Statuspage JSON are made again every
    `cache_seconds` while they are asked for, and served from memory in between (0: made for each
    request); the rollup history behind them (uptime bars, charts, availability) is read again every
    `history_seconds`. /metrics is rendered at most once every `metrics_seconds`.
    """
    app = web.Application(middlewares=[errors])
    state = WebState(Path(db_path), config, live, title, cache_seconds, history_seconds, metrics_seconds)
    app[STATE] = state
    app.router.add_get("/", index)
    for path, which in statuspage_api.ROUTES.items():
        app.router.add_get(f"/api/v2/{path}", statuspage_handler(path, which))
    app.router.add_get("/api/checks", checks)
    app.router.add_get("/api/checks/{name}", check)
    app.router.add_get("/api/checks/{name}/results", results)
    app.router.add_get("/api/incidents", incidents)
    app.router.add_get("/api/agents", agents)
    shown = screenshots.handler(state.reader, lambda: public.hidden_checks(state.current_config()))
    app.router.add_get(screenshots.ROUTE, shown)
    app.router.add_get("/api/claims", claims)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    maintenance.register(app, state)

    async def start(app: web.Application) -> None:
        await state.start()

    async def stop(app: web.Application) -> None:
        await state.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def parse_http(http: str) -> tuple[str, int]:
    """("host", port) from "HOST:PORT", "[::1]:PORT" or ":PORT" (all interfaces); WebError if malformed."""
    match = _HTTP.match(http.strip())
    if match is None or int(match["port"]) > 65535:
        raise WebError(f'--http: "{http}" is not HOST:PORT (e.g. 127.0.0.1:8080)')
    return match["v6"] or match["host"] or "0.0.0.0", int(match["port"])


async def start_server(app: web.Application, http: str) -> web.AppRunner:
    """Serve `app` on "HOST:PORT" until `await runner.cleanup()`; WebError if the address is bad or taken."""
    host, port = parse_http(http)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise WebError(f"cannot serve on {http}: {exc.strerror or exc}") from exc
    return runner
