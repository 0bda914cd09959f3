"""A cheap local HTTP target for bench/scale.py: worker processes on one port that count every request.

Each worker is a raw asyncio protocol (uvloop when installed) bound to the same 127.0.0.1 port
with SO_REUSEPORT, so the kernel spreads connections over the workers. Every request gets a
small healthy HTML page (its visible text numbers the request, so no two bodies are the same,
as on a real site) with `Connection: close`, and the server closes first: the
TIME_WAIT sockets then sit on the server's side, not on the clients' source ports, which a
thousand new connections a second from a few source addresses would otherwise exhaust.

Requests are counted exactly, per kind (the first path segment: /p/... for prober, /bare/...
for the bare client loop, /bb/... for blackbox_exporter), in a memory-mapped file: each worker
owns a row of counters, so no lock is needed and the parent reads the totals at any moment.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
from typing import Any

KINDS = ("prober", "bare", "blackbox", "other")
_PREFIXES = ((b"/p/", 0), (b"/bare/", 1), (b"/bb/", 2))

# A realistic small home page: a title, a heading, navigation and a few paragraphs (about 1.5 KB).
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Example - Home</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/site.css"></head>
<body><header><nav><a href="/">Home</a> <a href="/explore">Explore</a> <a href="/notifications">
Notifications</a> <a href="/messages">Messages</a> <a href="/settings">Settings</a></nav></header>
<main><h1>Welcome home</h1>
<p>Here is what is happening today: the latest posts from the people you follow, the topics
you care about and a few suggestions picked for you.</p>
<article><h2>Trending now</h2><p>Local elections, the weather this weekend, and a new record
at the marathon. Tap a topic to read more.</p></article>
<article><h2>From your network</h2><p>Three friends shared photos from the concert last night.
Two people you may know joined this week.</p></article>
<section><h2>Get the app</h2><p>Stay up to date on the go with notifications for the
conversations that matter to you.</p></section></main>
<p class="updated">Updated just now &middot; view %REQUEST%</p>
<footer><p>&copy; 2024 Example, Inc. <a href="/terms">Terms</a> <a href="/privacy">Privacy</a>
<a href="/status">Status</a></p></footer></body></html>
"""


MARK = "%REQUEST%"  # replaced by the request's number: like a real page, no two bodies are the same


def response(page: str = PAGE, number: int | None = None) -> bytes:
    """The whole HTTP response to request `number` (the page as is when None)."""
    body = page.encode() if number is None else page.replace(MARK, str(number)).encode()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Server: bench-target\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _serve(port: int, slot: int, counters_path: str, page: str) -> None:
    """One worker: answer on 127.0.0.1:`port` until SIGTERM, counting into row `slot` of the counters."""
    base = slot * len(KINDS)
    before, _, after = page.partition(MARK)
    dynamic = MARK in page
    static = response(page)
    head = "HTTP/1.1 200 OK\r\nServer: bench-target\r\nContent-Type: text/html; charset=utf-8\r\n"
    tail = "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    fixed = len(before.encode()) + len(after.encode())
    served = 0
    with open(counters_path, "r+b") as f:
        shared = mmap.mmap(f.fileno(), 0)
    counters = memoryview(shared).cast("q")

    class Http(asyncio.Protocol):
        __slots__ = ("buf", "transport")

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            if b"\r\n\r\n" not in buf:
                if len(buf) > 65536:
                    self.transport.close()
                else:
                    self.buf = buf
                return
            path = buf.split(b" ", 2)[1] if buf.count(b" ", 0, 200) >= 2 else b""
            kind = 3
            for prefix, index in _PREFIXES:
                if path.startswith(prefix):
                    kind = index
                    break
            counters[base + kind] += 1
            if dynamic:
                nonlocal served
                served += 1
                number = f"{slot}-{served}"
                self.transport.write(
                    f"{head}Content-Length: {fixed + len(number)}\r\n{tail}{before}{number}{after}".encode()
                )
            else:
                self.transport.write(static)
            self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        server = await loop.create_server(Http, sock=sock, backlog=4096)
        print("listening", flush=True)
        await stop.wait()
        server.close()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


class Target:
    """The target's worker processes; `counts()` gives the requests answered so far, per kind."""

    def __init__(self, procs: int = 1, page: str = PAGE) -> None:
        self.procs = procs
        self.page = page
        self.port = 0
        self.url = ""
        self._dir = tempfile.TemporaryDirectory(prefix="bench-target-")
        self._path = os.path.join(self._dir.name, "counters")
        with open(self._path, "wb") as f:
            f.write(bytes(8 * procs * len(KINDS)))
        with open(self._path, "r+b") as f:
            self._shared = mmap.mmap(f.fileno(), 0)
        self._counters = memoryview(self._shared).cast("q")
        self._workers: list[subprocess.Popen[bytes]] = []

    def start(self) -> Target:
        """Start the workers and wait until each one listens."""
        # Hold the port with a bound, non-listening SO_REUSEPORT socket until the workers listen on it.
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        self.port = holder.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        page_path = os.path.join(self._dir.name, "page.html")
        with open(page_path, "w") as f:
            f.write(self.page)
        try:
            for slot in range(self.procs):
                proc = subprocess.Popen(
                    [sys.executable, __file__, str(self.port), str(slot), self._path, page_path],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                )
                self._workers.append(proc)
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != b"listening":
                    raise RuntimeError(f"target worker {slot} did not start (exit {proc.wait()})")
        except BaseException:
            self.stop()
            raise
        finally:
            holder.close()
        return self

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers."""
        return [p.pid for p in self._workers]

    def counts(self) -> dict[str, int]:
        """Requests answered so far, per kind."""
        n = len(KINDS)
        c = self._counters
        return {kind: sum(c[s * n + i] for s in range(self.procs)) for i, kind in enumerate(KINDS)}

    def stop(self) -> None:
        """Stop the workers."""
        for proc in self._workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._workers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._workers.clear()

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    _port, _slot, _counters, _page = sys.argv[1:5]
    with open(_page) as _f:
        _serve(int(_port), int(_slot), _counters, _f.read())
