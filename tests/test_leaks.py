"""End to end: secrets never reach the database, the output, the logs or the API, in any encoding;
a target's escape sequences never reach the terminal or the logs raw."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from conftest import start_app

from prober.cli import main
from prober.config import load_config
from prober.terminal import LogFormatter, printable

# Each secret carries two markers that appear nowhere else: neither half may show, in any form.
# SIG is pre-encoded (a presigned URL's signature): URL parsers show it decoded, "pr3Asig/n~9".
SECRETS = {"TOKEN": 's3cr3té"ZZ', "PASS": "p4ss/w0rd#x", "KEY": "k3y+val&ue=1", "SIG": "pr3%41sig%2Fn%7e9"}
MARKERS = [
    "s3cr3t",
    "p4ss",
    "w0rd",
    "k3y",
    "val&ue",
    "val%26ue",
    "val&amp;ue",
    "val\\u0026ue",
    "pr3",
    "n~9",
    "n%7e9",
]
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"  # OSC retitle, clear screen, C1 CSI, right-to-left
ESCAPED = "\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u202e"  # the same, as prober writes it


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


async def ainvoke(*args: str) -> tuple[int, str, str]:
    """`invoke` in a thread, so that the servers on this test's loop keep answering."""
    return await asyncio.to_thread(invoke, *args)


def assert_no_secret(where: str, text: str | bytes) -> None:
    blob = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for marker in MARKERS:
        assert marker.lower() not in blob.lower(), f"{marker!r} in {where}: {blob[:2000]}"


def assert_no_escape(where: str, text: str) -> None:
    for char in "\x1b\x07\x9b\u202e":
        assert char not in text, f"{char!r} in {where}: {text!r}"


@pytest.fixture
async def echoing() -> AsyncIterator[str]:
    """A target whose redirects echo the URL (with the secrets in it) back, forever or broken."""

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.rel_url.update_query(again="1")))

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://[::1" + request.path_qs})

    app = web.Application()
    app.router.add_get("/loop/{rest:.*}", loop)
    app.router.add_get("/broken/{rest:.*}", broken)
    runner, port = await start_app(app)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    """A raw HTTP server (aiohttp refuses to send control characters) answering with escapes."""
    pages = {
        b"/limited": (
            b"429 Too Many Requests",
            b"Retry-After: " + ESCAPES.encode() + b"120\r\n",
            b"slow down",
        ),
        b"/page": (
            b"200 OK",
            b"Content-Type: text/html; charset=utf-8\r\n",
            f"<html><head><title>X {ESCAPES}</title></head><body><h1>Something went wrong, but don’t fret"
            f" — it’s not your fault.{ESCAPES}</h1><button>Try again</button></body></html>".encode(),
        ),
        b"/api": (
            b"200 OK",
            b"Content-Type: application/json\r\n",
            json.dumps({"errors": [{"message": ESCAPES + "internal error"}]}).encode(),
        ),
    }

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        status, headers, body = pages.get(request.split(b" ")[1], (b"404 Not Found", b"", b""))
        head = b"HTTP/1.1 " + status + b"\r\n" + headers + b"Content-Length: %d\r\n" % len(body)
        writer.write(head + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def read_api(db: Path, checks: list[str]) -> dict[str, str]:
    """What the status page, the API and /metrics serve from `db`."""
    from prober.web import create_app

    runner, port = await start_app(create_app(db))
    paths = ["/", "/api/checks", "/api/incidents", "/api/v2/summary.json", "/metrics"]
    paths += [f"/api/checks/{name}/results" for name in checks]
    try:
        async with aiohttp.ClientSession() as session:
            served = {}
            for path in paths:
                async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert resp.status == 200, path
                    served[path] = await resp.text()
            return served
    finally:
        await runner.cleanup()


async def test_secrets_reach_no_output_in_any_encoding(
    echoing: str, closed_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "checks.yaml"
    db = tmp_path / "prober.db"
    config.write_text(
        "checks:\n"
        f'  - {{name: loop, url: "{echoing}/loop/${{TOKEN}}/${{SIG}}/${{PASS}}'
        '?k=${KEY}&t=${TOKEN}&g=${SIG}"}\n'
        f'  - {{name: broken, url: "{echoing}/broken/${{TOKEN}}?p=${{PASS}}&k=${{KEY}}"}}\n'
        f'  - name: refused\n    url: "http://127.0.0.1:{closed_port}/${{TOKEN}}?k=${{KEY}}"\n'
        '    headers: {Authorization: "Bearer ${PASS}"}\n',
        encoding="utf-8",
    )
    outputs = {}
    code, out, err = await ainvoke("once", "-v", "-c", str(config), "--db", str(db))
    assert code == 1, err
    assert "redirect loop" in out and "${TOKEN}" in out + err  # the errors are there, redacted
    outputs["once"], outputs["once -v logs"] = out, err
    code, outputs["once --json"], _ = await ainvoke("once", "--json", "-c", str(config), "--db", str(db))
    assert {json.loads(line)["check"] for line in outputs["once --json"].splitlines()} == {
        "loop", "broken", "refused",
    }  # fmt: skip
    _, outputs["report"], _ = await ainvoke("report", "--db", str(db))
    _, outputs["report --json"], _ = await ainvoke("report", "--json", "--db", str(db))
    outputs.update(await read_api(db, ["loop", "broken", "refused"]))
    for where, text in outputs.items():
        assert_no_secret(where, text)
    for file in await asyncio.to_thread(lambda: list(tmp_path.glob("prober.db*"))):  # with its WAL
        assert_no_secret(file.name, await asyncio.to_thread(file.read_bytes))


async def test_escape_sequences_from_a_target_are_printed_escaped(hostile: str, tmp_path: Path) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text(
        "checks:\n"
        f"  - {{name: limited, url: '{hostile}/limited'}}\n"
        f"  - {{name: page, url: '{hostile}/page'}}\n"
        f"  - {{name: api, surface: api, url: '{hostile}/api'}}\n",
        encoding="utf-8",
    )
    db = str(tmp_path / "prober.db")
    code, table, logs = await ainvoke("once", "-v", "-c", str(config), "--db", db)
    assert code == 1, logs
    _, lines, _ = await ainvoke("once", "--json", "-c", str(config), "--db", db)
    _, report, _ = await ainvoke("report", "--db", db)
    errors = {r["check"]: r["error"] for r in map(json.loads, lines.splitlines())}
    # The probe records what the target sent escaped: the database is clean for sqlite3 and Datasette too.
    assert all(ESCAPED in errors[name] for name in ("limited", "page", "api")), errors
    stored = sqlite3.connect(db).execute("SELECT group_concat(error, ' ') FROM results").fetchone()[0]
    assert ESCAPED in stored and not any(c in stored for c in "\x1b\x07\x9b\u202e"), stored
    for where, text in {"table": table, "logs": logs, "json lines": lines, "report": report}.items():
        assert_no_escape(where, text)
    assert "retry after \\u001b]0;pwned\\u0007" in table  # the table cuts errors at 60 characters
    assert "\\u001b]0;pwned\\u0007" in logs


def test_log_lines_are_redacted_and_escaped(tmp_path: Path) -> None:
    config = tmp_path / "checks.yaml"
    config.write_text('checks:\n  - {name: a, url: "https://a.test/?k=${TOKEN}"}\n', encoding="utf-8")
    load_config(config, env={"TOKEN": SECRETS["TOKEN"]})  # the logs now know this secret
    formatter = LogFormatter("%(levelname)s %(message)s")
    try:
        raise RuntimeError(f"GET https://a.test/?k=s3cr3t%C3%A9%22ZZ failed{ESCAPES}")
    except RuntimeError:
        record = logging.LogRecord("prober", logging.ERROR, __file__, 1, "run failed: %s", ("x\ny",), None)
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert_no_secret("log line", line)
    assert_no_escape("log line", line)
    assert "${TOKEN}" in line
    assert "run failed: x\\u000ay" in line  # a newline in data forges no second line
    assert "Traceback (most recent call last):\n" in line  # the traceback keeps its lines


@pytest.mark.parametrize(
    ("text", "keep", "printed"),
    [
        ("\x1b]0;pwned\x07", "", "\\u001b]0;pwned\\u0007"),
        ("a\nb\tc\rd", "\n\t", "a\nb\tc\\u000dd"),
        ("a\nb", "", "a\\u000ab"),
        ("\x9b31m \x7f \u202eabc\u2066 \u2028", "", "\\u009b31m \\u007f \\u202eabc\\u2066 \\u2028"),
        ("café ok 日本 😀", "", "café ok 日本 😀"),
    ],
)
def test_printable(text: str, keep: str, printed: str) -> None:
    assert printable(text, keep) == printed
    assert json.loads(f'"{printable(text)}"') == text  # the escapes are JSON's
