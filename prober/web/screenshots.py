"""/api/screenshots/{id}.png: a browser check's screenshot, as stored, with a browser's care."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from prober.store.screenshots import screenshot_png
from prober.web.reader import ReadPool

# Only digits reach the handler: no path, no extension trick, no other type than the PNG we stored.
ROUTE = r"/api/screenshots/{ident:[0-9]{1,18}}.png"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A screenshot never changes once taken; pruned, it is gone (404).
    "Cache-Control": "public, max-age=86400, immutable",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def handler(
    reader: ReadPool, hidden: Callable[[], frozenset[str]]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler serving screenshots from the database read by `reader`; none of `hidden()` checks."""

    async def screenshot(request: web.Request) -> web.Response:
        ident = int(request.match_info["ident"])
        found = await reader.run(lambda db: screenshot_png(db, ident))
        if found is None or found[0] in hidden():  # a hidden check's is as absent as a pruned one
            raise web.HTTPNotFound(reason=f"no screenshot {ident}")
        png = found[1]
        disposition = f'inline; filename="screenshot-{ident}.png"'
        return web.Response(
            body=png, content_type="image/png", headers={**HEADERS, "Content-Disposition": disposition}
        )

    return screenshot
