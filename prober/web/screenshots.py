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


def handler(reader: ReadPool) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler serving screenshots from the database read by `reader`."""

    async def screenshot(request: web.Request) -> web.Response:
        ident = int(request.match_info["ident"])
        png = await reader.run(lambda db: screenshot_png(db, ident))
        if png is None:
            raise web.HTTPNotFound(reason=f"no screenshot {ident}")
        disposition = f'inline; filename="screenshot-{ident}.png"'
        return web.Response(
            body=png, content_type="image/png", headers={**HEADERS, "Content-Disposition": disposition}
        )

    return screenshot
