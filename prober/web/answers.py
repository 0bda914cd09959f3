"""Answers kept ready: the page and the JSON summaries, made in the background, served from memory.

Making the page of a thousand checks takes a few hundred ms (reading each check's summary of its
finished days and hours, then rendering; see docs/performance.md); sending it from memory takes a
millisecond. So `/`, `/api/checks`,
`/api/v2/summary.json` and `/api/v2/status.json` are answered from an `AnswerCache`. The first
request for one makes it (requests arriving meanwhile share that work). After that a request never
waits on a render: it gets the answer made last, while a background task makes every answer asked
for in the last `keep` seconds again every `refresh` seconds, and soon (`settle` seconds) after a
live daemon says a check's state changed. An answer is gzip-compressed once when made, and carries
an ETag, a Last-Modified and how long it stays fresh.

Every answer of one round is made from one `Snapshot`: the checks' states read once, the rollup
history from the `HistoryCache` (re-read less often: past days do not change).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING

import sqlite_utils
from aiohttp import web

from prober.model import Incident
from prober.notes import Note, notes_of
from prober.store import read
from prober.web.page import INCIDENT_HISTORY_DAYS
from prober.web.view import History, HistoryCache, LiveIncidents, LiveStates, Overview, load_overview

# What every answer of the web server carries; JSON answers may be read from any origin (widgets).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
JSON_HEADERS = {**SECURITY_HEADERS, "Access-Control-Allow-Origin": "*"}
JSON_TYPE = "application/json; charset=utf-8"

if TYPE_CHECKING:
    from prober.config import Config

log = logging.getLogger("prober.web")

GZIP_MIN = 1024  # smaller answers are sent as they are
# Level 5 takes about half the time of 6 on the page (20 against 35-43 ms for 1.48 MiB, measured on
# a loaded 2-core machine) for a body 6% larger (135 against 127 KiB): answers are made every round.
GZIP_LEVEL = 5


@dataclass(frozen=True, slots=True)
class Answer:
    """A response body made once and sent many times."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str  # weak: the gzipped and the plain body are the same answer
    modified: datetime  # when the data it says was read
    made: float  # time.monotonic() when it was made

    @classmethod
    def of(cls, body: str | bytes, content_type: str, modified: datetime) -> Answer:
        """An answer with its compressed body and its ETag (blocking: run off the loop)."""
        data = body.encode() if isinstance(body, str) else body
        gzipped = gzip.compress(data, GZIP_LEVEL, mtime=0) if len(data) >= GZIP_MIN else None
        etag = f'W/"{hashlib.blake2b(data, digest_size=12).hexdigest()}"'
        return cls(data, gzipped, content_type, etag, modified, time.monotonic())

    def response(
        self, request: web.Request, headers: Mapping[str, str], fresh_for: float | None
    ) -> web.Response:
        """The answer for `request`: 304 if the client has it, gzipped if the client takes gzip.

        `fresh_for` is how long after it was made a client may reuse it (None: revalidate each time).
        """
        extra = {
            **headers,
            "ETag": self.etag,
            "Last-Modified": format_datetime(self.modified.replace(microsecond=0), usegmt=True),
            "Vary": "Accept-Encoding",
            "Cache-Control": "no-cache"
            if fresh_for is None
            else f"max-age={max(0, round(fresh_for - (time.monotonic() - self.made)))}",
        }
        if self.not_modified(request):
            return web.Response(status=304, headers=extra)
        body = self.body
        if self.gzipped is not None and accepts_gzip(request.headers.get("Accept-Encoding", "")):
            body, extra["Content-Encoding"] = self.gzipped, "gzip"
        return web.Response(body=body, headers={**extra, "Content-Type": self.content_type})

    def not_modified(self, request: web.Request) -> bool:
        """Whether the client's copy is this answer (If-None-Match, else If-Modified-Since)."""
        tags = request.headers.get("If-None-Match")
        if tags is not None:
            mine = self.etag.removeprefix("W/")  # weak comparison, as GET asks
            return any(t.strip().removeprefix("W/") in ("*", mine) for t in tags.split(","))
        since = request.if_modified_since
        return since is not None and self.modified.replace(microsecond=0) <= since


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (and does not refuse it with q=0)."""
    for item in header.lower().split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params.strip() or float(q) > 0
            except ValueError:
                return False
    return False


class Snapshot:
    """The checks at one moment, shared by the answers made from it; each part is read once, on first
    use, by whichever reader thread needs it first (blocking methods: run them in a reader thread)."""

    def __init__(
        self,
        now: datetime,
        config: Config | None,
        live: LiveStates | None,
        histories: HistoryCache,
        live_incidents: LiveIncidents | None = None,
    ) -> None:
        self.now = now
        self.config = config
        self.live = live
        self.live_incidents = live_incidents
        self.histories = histories
        self.made = time.monotonic()
        self._lock = threading.Lock()
        self._overview: Overview | None = None
        self._incidents: list[Incident] | None = None
        self._history: History | None = None

    def overview(self, db: sqlite_utils.Database) -> Overview:
        """Every shown check's state."""
        with self._lock:
            if self._overview is None:
                self._overview = load_overview(db, self.now, self.config, self.live, self.live_incidents)
            return self._overview

    def history(self, db: sqlite_utils.Database, parts: tuple[str, ...]) -> History:
        """The rollup history with `parts` read: the same one for every answer of the snapshot."""
        with self._lock:
            if self._history is None:
                self._history = self.histories.get(db, self.now, ())
        return self._history.load(db, *parts)  # outside the lock: parts are read side by side

    def notes(self, db: sqlite_utils.Database, incidents: Iterable[Incident]) -> dict[int, list[Note]]:
        """The operators' notes on `incidents`, by incident id."""
        return notes_of(db, (i.id for i in incidents))

    def incidents(self, db: sqlite_utils.Database) -> list[Incident]:
        """The incidents of the last 90 days, of every check (newest last)."""
        with self._lock:
            if self._incidents is None:
                self._incidents = read.incidents(db, since=self.now - timedelta(days=INCIDENT_HISTORY_DAYS))
            return self._incidents


Maker = Callable[[Snapshot], Awaitable[Answer]]


class AnswerCache:
    """Answers by key, made again in the background while they are asked for (see the module doc)."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        refresh: float,
        *,
        keep: float = 600.0,
        settle: float = 0.5,
        min_gap: float = 2.0,
        max_keys: int = 32,
    ) -> None:
        self.new_snapshot = snapshot
        self.refresh = refresh  # 0: no cache, every request makes its answer
        self.keep = keep
        self.settle = settle
        self.min_gap = min(min_gap, refresh)
        self.max_keys = max_keys
        self._snapshot: Snapshot | None = None
        self._entries: dict[str, Answer] = {}
        self._makers: dict[str, Maker] = {}
        self._asked: dict[str, float] = {}
        self._pending: dict[str, asyncio.Task[Answer]] = {}
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def snapshot(self) -> Snapshot:
        """The snapshot of the last round if it is recent enough, else a new one (on the loop)."""
        snap = self._snapshot
        if snap is None or self.refresh <= 0 or time.monotonic() - snap.made >= self.refresh:
            snap = self._snapshot = self.new_snapshot()
        return snap

    async def get(self, key: str, make: Maker) -> Answer:
        """The answer `key`: the one made last, or (the first time) one made now."""
        if self.refresh <= 0:
            return await make(self.snapshot())
        if key not in self._asked and len(self._asked) >= self.max_keys:
            self._forget(min(self._asked, key=self._asked.__getitem__))  # e.g. many Host headers
        self._asked[key] = time.monotonic()
        self._makers[key] = make
        answer = self._entries.get(key)
        if answer is not None:
            return answer
        return await asyncio.shield(self._start(key, make, self.snapshot()))

    def changed(self) -> None:
        """A check's state changed: make the answers again soon (callable from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_change)

    def _on_change(self) -> None:
        self._snapshot = None  # an answer made for the first time from now on says the new state
        self._changed.set()

    def _start(self, key: str, make: Maker, snap: Snapshot) -> asyncio.Task[Answer]:
        """The making of `key` under way, or a new one (a task of this cache, cancelled by `close`)."""
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.create_task(self._make(key, make, snap))
            task.add_done_callback(_retrieve)
        return task

    async def _make(self, key: str, make: Maker, snap: Snapshot) -> Answer:
        try:
            answer = await make(snap)
        except Exception:
            self._entries.pop(key, None)  # no stale answer while the database fails: say it fails
            raise
        finally:
            self._pending.pop(key, None)
        if key in self._makers:  # not forgotten meanwhile
            self._entries[key] = answer
        return answer

    def _forget(self, key: str) -> None:
        self._entries.pop(key, None)
        self._makers.pop(key, None)
        self._asked.pop(key, None)

    async def run(self) -> None:
        """Make the answers asked for again every `refresh` seconds, or soon after a change (until cancelled).

        After a change it waits `settle` seconds (a burst of changes, and their writes, land first), and
        at least `min_gap` seconds from the last round's start, so an outage of every check at once
        does not make the page again and again.
        """
        self._loop = asyncio.get_running_loop()
        if self.refresh <= 0:
            return
        last = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(max(0.0, last + self.refresh - time.monotonic())):
                    await self._changed.wait()
                await asyncio.sleep(max(self.settle, last + self.min_gap - time.monotonic()))
            except TimeoutError:
                pass
            self._changed.clear()
            last = time.monotonic()
            await self.refresh_all()

    async def refresh_all(self) -> None:
        """Make every answer asked for in the last `keep` seconds again, from one new snapshot."""
        now = time.monotonic()
        for key in [k for k, at in self._asked.items() if now - at > self.keep]:
            self._forget(key)  # nobody asked lately: stop making it
        if not self._makers:
            return
        snap = self._snapshot = self.new_snapshot()
        for key, make in list(self._makers.items()):
            if key not in self._makers:
                continue
            try:
                await asyncio.shield(self._start(key, make, snap))
            except Exception as exc:  # the next request says what is wrong; the loop goes on
                log.warning("could not make %s: %s", key, exc)

    async def close(self) -> None:
        """Cancel the makings under way."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _retrieve(task: asyncio.Task[Answer]) -> None:
    """Mark a making's failure as seen: its requests got it, or were gone."""
    if not task.cancelled():
        task.exception()
