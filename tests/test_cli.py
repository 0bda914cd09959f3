"""The command line through click's CliRunner: messages, output formats and exit codes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from conftest import Target

from prober.cli import main


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


async def ainvoke(*args: str) -> tuple[int, str, str]:
    """`invoke` in a thread, so that servers on this test's event loop keep answering."""
    return await asyncio.to_thread(invoke, *args)


def test_validate_ok(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config("checks:\n  - {name: a, url: 'http://127.0.0.1:9/'}\n")
    code, out, err = invoke("validate", "-c", str(path))
    assert (code, err) == (0, "")
    assert "1 check, 1 vantage: OK" in out  # counted in words: not "1 checks"


def test_validate_reports_every_error_located(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """\
        checks:
          - name: a
            url: http://127.0.0.1:9/
            interval: 5 minutes
          - name: a
            url: ftp://nope
            expect: {stauts: [200]}
        """
    )
    code, out, err = invoke("validate", "-c", str(path))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) >= 4, err
    for line in lines:
        file, line_no, col, _ = line.split(":", 3)
        assert file.endswith("checks.yaml") and int(line_no) > 0 and int(col) > 0, line
    assert any(":4:" in line and "checks[0].interval" in line and "5 minutes" in line for line in lines), err
    assert any("stauts" in line for line in lines), err


def test_validate_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = invoke("validate", "-c", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml" in err


def test_schema_is_json_schema() -> None:
    code, out, _ = invoke("schema")
    assert code == 0
    schema = json.loads(out)
    assert "checks" in schema["properties"]


async def test_once_prints_a_table_and_records(target: Target, write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_config(f"checks:\n  - {{name: home, url: '{target.url}/ok'}}\n")
    db = tmp_path / "p.db"
    code, out, err = await ainvoke("once", "-c", str(path), "--db", str(db))
    assert (code, err) == (0, "")
    header, _, row = out.splitlines()[:3]
    assert "verdict" in header and "dns" in header and "ttfb" in header
    assert row.split()[:4] == ["home", "local", "local", "up"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT check_name, verdict FROM results").fetchall() == [("home", "up")]


async def test_once_error_page_is_down_and_exits_1(target: Target, write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        f"""\
        checks:
          - {{name: home, url: '{target.url}/error-page'}}
          - {{name: api, surface: api, url: '{target.url}/api'}}
        """
    )
    code, out, err = await ainvoke("once", "-c", str(path), "--db", str(tmp_path / "p.db"), "--json")
    assert code == 1
    assert err == ""
    records = [json.loads(line) for line in out.splitlines()]
    by_check = {r["check"]: r for r in records}
    assert by_check["home"]["verdict"] == "down" and by_check["home"]["reason"] == "error_page"
    assert by_check["api"]["verdict"] == "up"
    for key in (
        "ts",
        "vantage",
        "region",
        "surface",
        "url",
        "signature",
        "status",
        "latency_ms",
        "bytes",
        "error",
    ):
        assert key in by_check["home"]
    assert set(by_check["home"]["phases"]) == {"dns_ms", "connect_ms", "tls_ms", "ttfb_ms"}


async def test_once_selects_checks(target: Target, write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        f"checks:\n  - {{name: a, url: '{target.url}/ok'}}\n  - {{name: b, url: '{target.url}/api'}}\n"
    )
    code, out, _ = await ainvoke(
        "once", "-c", str(path), "--db", str(tmp_path / "p.db"), "--check", "b", "--json"
    )
    assert code == 0
    assert [json.loads(line)["check"] for line in out.splitlines()] == ["b"]
    assert target.total("/ok") == 0


def test_once_unknown_check_is_a_usage_error(write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_config("checks:\n  - {name: a, url: 'http://127.0.0.1:9/'}\n")
    code, _, err = invoke("once", "-c", str(path), "--db", str(tmp_path / "p.db"), "--check", "zz")
    assert code == 2
    assert "unknown check: zz" in err


async def test_once_with_an_unusable_database_exits_3(target: Target, write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_config(f"checks:\n  - {{name: a, url: '{target.url}/ok'}}\n")
    db = tmp_path / "p.db"
    db.write_bytes(b"garbage" * 1000)
    code, out, err = await ainvoke("once", "-c", str(path), "--db", str(db))
    assert (code, out) == (3, "")
    assert "not a SQLite database" in err
    assert target.total() == 0  # nothing probed that could not be recorded


def test_usage_error_exits_2() -> None:
    code, _, err = invoke("once", "--no-such-flag")
    assert code == 2
    assert "no such option" in err.lower()
