"""prober.config: checks.yaml parsing, validation with located errors, defaults, secrets, schema."""

from __future__ import annotations

import base64
import copy
import html
import json
import math
import os
import pickle
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest
import yaml
import yarl
from hypothesis import given
from hypothesis import strategies as st

from prober.config import (
    Check,
    Config,
    ConfigError,
    ConfigIssue,
    Defaults,
    Expect,
    Vantage,
    json_schema,
    load_config,
    parse_config,
    parse_duration,
    parse_size,
)
from prober.model import ProberError, Surface, Verdict
from prober.signatures import Signature, builtin_signatures

CONFIGS = Path(__file__).parent / "configs"
DESIGN_EXAMPLE = CONFIGS / "design-example.yaml"


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(textwrap.dedent(text), "checks.yaml", env or {})


def issues(text: str, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return info.value.issues


# -- parse_duration / parse_size -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("14d", 14 * 86400.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        (" 2s ", 2.0),
        ("45", 45.0),
        (2, 2.0),
        (1.5, 1.5),
        (0, 0.0),
    ],
    ids=lambda v: repr(v),
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    ["5 minutes", "", "s", "5x", "-1s", "1e3s", "5M", -1, math.inf, math.nan, True, None, [1]],
    ids=lambda v: repr(v),
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


def test_parse_duration_message_quotes_the_value() -> None:
    with pytest.raises(ValueError, match=r'^"5 minutes" is not a duration'):
        parse_duration("5 minutes")


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("256KiB", 262144),
        ("1MiB", 1048576),
        ("10MB", 10_000_000),
        ("512B", 512),
        ("1GiB", 1 << 30),
        ("2kb", 2000),
        ("1.5KiB", 1536),
        ("100", 100),
        (4096, 4096),
        (0, 0),
    ],
    ids=lambda v: repr(v),
)
def test_parse_size(value: str | int, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    "value", ["lots", "", "KiB", "1 TiB", "1TB", "-1B", -1, 1.5, True, None], ids=lambda v: repr(v)
)
def test_parse_size_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(value)


UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(UNITS)))
def test_parse_duration_round_trip(number: int, unit: str) -> None:
    assert parse_duration(f"{number}{unit}") == pytest.approx(number * UNITS[unit])


@given(
    st.integers(min_value=0, max_value=10**9),
    st.sampled_from([("B", 1), ("KiB", 1024), ("MiB", 1 << 20), ("kB", 1000), ("MB", 10**6)]),
)
def test_parse_size_round_trip(number: int, unit: tuple[str, int]) -> None:
    assert parse_size(f"{number}{unit[0]}") == number * unit[1]


@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.booleans(), st.none()))
def test_parsers_never_crash(value: Any) -> None:
    for parser in (parse_duration, parse_size):
        try:
            result = parser(value)
        except ValueError as exc:
            assert "is not a" in str(exc)
        else:
            assert result >= 0
            assert math.isfinite(result)


# -- located errors: one kind per row, at an exact line and column ----------------------------------

ERRORS = [
    (
        "bad-duration",
        """\
        checks:
          - name: a
            url: https://a.test/
          - name: b
            url: https://b.test/
            interval: 5 minutes
        """,
        [(6, 15, "checks[1].interval", '"5 minutes" is not a duration')],
    ),
    (
        "interval-too-small",
        """\
        checks:
          - {name: a, url: "https://a.test/", interval: 50ms}
        """,
        [(2, 49, "checks[0].interval", '"50ms" is too small: it must be at least 100ms')],
    ),
    (
        "bad-size",
        """\
        defaults:
          max_body: lots
        checks: []
        """,
        [(2, 13, "defaults.max_body", '"lots" is not a size')],
    ),
    (
        "unknown-top-key",
        """\
        checks: []
        check: []
        """,
        [(2, 1, "check", 'unknown key "check" (did you mean "checks"?)')],
    ),
    (
        "unknown-check-key",
        """\
        checks:
          - name: a
            url: https://a.test/
            intervall: 5s
        """,
        [(4, 5, "checks[0].intervall", 'unknown key "intervall" (did you mean "interval"?)')],
    ),
    (
        "unknown-expect-key",
        """\
        checks:
          - name: a
            url: https://a.test/
            expect:
              body_contain: [ok]
        """,
        [(5, 7, "checks[0].expect.body_contain", '(did you mean "body_contains"?)')],
    ),
    (
        "unknown-vantage-key",
        """\
        vantages:
          tokyo: {region: JP, proxi: "http://127.0.0.1:3128"}
        checks: []
        """,
        [(2, 23, "vantages.tokyo.proxi", 'unknown key "proxi" (did you mean "proxy"?)')],
    ),
    (
        "unknown-defaults-key",
        """\
        defaults:
          colour: red
        checks: []
        """,
        [(2, 3, "defaults.colour", 'unknown key "colour" (known keys: interval, timeout,')],
    ),
    (
        "wrong-type-string",
        """\
        checks:
          - name: a
            url: [https://a.test/]
        """,
        [(3, 10, "checks[0].url", '["https://a.test/"] is not a string')],
    ),
    (
        "wrong-type-int",
        """\
        checks:
          - name: a
            url: https://a.test/
            confirm: two
        """,
        [(4, 14, "checks[0].confirm", '"two" is not an integer')],
    ),
    (
        "wrong-type-bool",
        """\
        checks:
          - name: a
            url: https://a.test/
            follow_redirects: maybe
        """,
        [(4, 23, "checks[0].follow_redirects", '"maybe" is not true or false')],
    ),
    (
        "wrong-type-mapping",
        """\
        checks:
          - just a string
        """,
        [(2, 5, "checks[0]", '"just a string" is not a mapping')],
    ),
    (
        "confirm-zero",
        """\
        checks:
          - {name: a, url: "https://a.test/", confirm: 0}
        """,
        [(2, 48, "checks[0].confirm", "0 is too small: it must be at least 1")],
    ),
    (
        "bad-quorum",
        """\
        defaults: {quorum: most}
        checks: []
        """,
        [(1, 20, "defaults.quorum", '"most" is not a quorum')],
    ),
    (
        "bad-surface",
        """\
        checks:
          - {name: a, url: "https://a.test/", surface: desktop}
        """,
        [(2, 48, "checks[0].surface", '"desktop" is not one of "web", "mobile" or "api"')],
    ),
    (
        "bad-method",
        """\
        checks:
          - {name: a, url: "https://a.test/", method: FETCH}
        """,
        [(2, 47, "checks[0].method", '"FETCH" is not an HTTP method')],
    ),
    (
        "bad-check-name",
        """\
        checks:
          - {name: My Check, url: "https://a.test/"}
        """,
        [(2, 12, "checks[0].name", '"My Check" is not a valid name')],
    ),
    (
        "duplicate-check-name",
        """\
        checks:
          - name: a
            url: https://a.test/
          - name: a
            url: https://b.test/
        """,
        [(4, 11, "checks[1].name", '"a" is already the name of checks[0]')],
    ),
    (
        "duplicate-yaml-key",
        """\
        checks:
          - name: a
            url: https://a.test/
            interval: 5s
            interval: 10s
        """,
        [(5, 5, "checks[0].interval", 'duplicate key "interval" (first at line 4)')],
    ),
    (
        "unknown-vantage",
        """\
        vantages:
          tokyo: {region: JP}
        checks:
          - name: a
            url: https://a.test/
            vantages: [tokyo, paris]
        """,
        [(6, 23, "checks[0].vantages[1]", '"paris" is not a vantage (local, tokyo)')],
    ),
    (
        "unknown-default-vantage",
        """\
        defaults:
          vantages: [osaka]
        checks: []
        """,
        [(2, 14, "defaults.vantages[0]", '"osaka" is not a vantage (local)')],
    ),
    (
        "vantage-listed-twice",
        """\
        checks:
          - {name: a, url: "https://a.test/", vantages: [local, local]}
        """,
        [(2, 57, "checks[0].vantages[1]", '"local" is listed twice')],
    ),
    (
        "bad-vantage-name",
        """\
        vantages:
          Tokyo: {}
        checks: []
        """,
        [(2, 3, "vantages.Tokyo", '"Tokyo" is not a valid name')],
    ),
    (
        "bad-source-address",
        """\
        vantages:
          us-east: {source_address: localhost}
        checks: []
        """,
        [(2, 29, "vantages.us-east.source_address", '"localhost" is not an IP address')],
    ),
    (
        "bad-proxy-scheme",
        """\
        vantages:
          tokyo: {proxy: "ftp://127.0.0.1:21"}
        checks: []
        """,
        [(2, 18, "vantages.tokyo.proxy", '"ftp://127.0.0.1:21" is not a proxy URL')],
    ),
    (
        "bad-proxy-port",
        """\
        vantages:
          tokyo: {proxy: "http://127.0.0.1:99999"}
        checks: []
        """,
        [(2, 18, "vantages.tokyo.proxy", '"http://127.0.0.1:99999" is not a valid proxy URL')],
    ),
    (
        "bad-resolver",
        """\
        vantages:
          london:
            resolver: ["127.0.0.1:5353", "dns.test", "127.0.0.1:0"]
        checks: []
        """,
        [
            (3, 34, "vantages.london.resolver[1]", "the host must be an IP address"),
            (3, 46, "vantages.london.resolver[2]", "the port must be 1-65535"),
        ],
    ),
    (
        "unknown-signature-name",
        """\
        signatures:
          - {name: x-fret, pattern: "don.t fret"}
        checks:
          - name: a
            url: https://a.test/
            signatures: [x-fret, x-frett]
        """,
        [(6, 26, "checks[0].signatures[1]", '"x-frett" is not a known signature (did you mean "x-fret"?)')],
    ),
    (
        "bad-signature-regex",
        """\
        signatures:
          - name: broken
            pattern: "(Something went wrong"
        checks: []
        """,
        [
            (
                3,
                14,
                "signatures[0].pattern",
                '"(Something went wrong" is not a valid regular expression: missing )',
            )
        ],
    ),
    (
        "bad-signature-verdict",
        """\
        signatures:
          - {name: s, pattern: x, verdict: up}
        checks: []
        """,
        [(2, 36, "signatures[0].verdict", '"up" is not one of "down" or "degraded"')],
    ),
    (
        "duplicate-signature-name",
        """\
        signatures:
          - {name: s, pattern: x}
          - {name: s, pattern: y}
        checks: []
        """,
        [(3, 12, "signatures[1].name", '"s" is already signatures[0]')],
    ),
    (
        "bad-jmespath",
        """\
        checks:
          - name: api
            url: https://api.test/health
            expect:
              json: ["status == 'ok'", "foo["]
        """,
        [(5, 32, "checks[0].expect.json[1]", '"foo[" is not a valid JMESPath expression')],
    ),
    (
        "bad-url-scheme",
        """\
        checks:
          - name: a
            url: ftp://a.test/
        """,
        [(3, 10, "checks[0].url", '"ftp://a.test/" is not an http:// or https:// URL with a host')],
    ),
    (
        "bad-url-no-host",
        """\
        checks:
          - name: a
            url: https:///path
        """,
        [(3, 10, "checks[0].url", "is not an http:// or https:// URL with a host")],
    ),
    (
        "bad-status",
        """\
        checks:
          - name: a
            url: https://a.test/
            expect:
              status: [200, 3xx, 6xx, 99]
        """,
        [
            (5, 26, "checks[0].expect.status[2]", '"6xx" is not a status code (100-599) or class (1xx-5xx)'),
            (5, 31, "checks[0].expect.status[3]", "99 is not a status code"),
        ],
    ),
    (
        "bad-header",
        """\
        checks:
          - name: a
            url: https://a.test/
            headers: {"Bad Name": x, X-Ok: 3, X-Flag: true}
        """,
        [
            (4, 15, 'checks[0].headers["Bad Name"]', '"Bad Name" is not a valid header name'),
            (4, 47, "checks[0].headers.X-Flag", "true is not a header value"),
        ],
    ),
    (
        "bad-body",
        """\
        checks:
          - name: a
            url: https://a.test/
            body: {jsn: {}}
        """,
        [(4, 11, "checks[0].body", '{"jsn": {}} is not a body')],
    ),
    (
        "missing-env-var",
        """\
        checks:
          - name: a
            url: https://a.test/?token=${TOKEN}
        """,
        [(3, 10, "checks[0].url", "environment variable TOKEN is not set")],
    ),
    (
        "bad-variable-reference",
        """\
        checks:
          - name: a
            url: "https://a.test/${not a name}"
        """,
        [(3, 10, "checks[0].url", '"${not a name}" is not a variable reference')],
    ),
    (
        "missing-url",
        """\
        checks:
          - name: a
            method: GET
        """,
        [(2, 5, "checks[0].url", 'required key "url" is missing')],
    ),
    (
        "missing-checks",
        """\
        defaults: {interval: 30s}
        """,
        [(1, 1, "checks", 'required key "checks" is missing')],
    ),
    (
        "checks-not-a-list",
        """\
        checks: {name: a}
        """,
        [(1, 9, "checks", '{"name": "a"} is not a list')],
    ),
    (
        "empty-vantages",
        """\
        vantages: {}
        checks: []
        """,
        [(1, 11, "vantages", "{} must not be empty")],
    ),
    (
        "yaml-syntax-error",
        """\
        checks:
          - name: a
            url: [https://a.test/
          - name: b
        """,
        [(4, 9, "", "expected ',' or ']', but got ':' (while parsing a flow sequence)")],
    ),
    (
        "yaml-tab",
        "checks:\n\t- name: a\n",
        [(2, 1, "", "found character '\\t' that cannot start any token")],
    ),
    (
        "yaml-unknown-tag",
        """\
        checks:
          - {name: !secret a, url: "https://a.test/"}
        """,
        [(2, 12, "checks[0].name", "could not determine a constructor for the tag '!secret'")],
    ),
    ("empty-file", "", [(1, 1, "", "the file is empty")]),
    ("only-comments", "# checks: []\n", [(1, 1, "", "the file is empty")]),
    ("top-level-list", "- name: a\n", [(1, 1, "", "the top level must be a mapping with a checks: list")]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_error_is_located(text: str, expected: list[tuple[int, int, str, str]]) -> None:
    found = issues(text)
    assert [(i.line, i.col, i.path) for i in found] == [e[:3] for e in expected], found
    for issue, (_, _, _, message) in zip(found, expected, strict=True):
        assert message in issue.message
        assert issue.file == "checks.yaml"


def test_issue_and_error_text() -> None:
    found = issues(
        """\
        checks:
          - name: a
            url: https://a.test/
          - name: b
            url: https://b.test/
            interval: 5 minutes
        """
    )
    assert str(found[0]).startswith('checks.yaml:6:15: checks[1].interval: "5 minutes" is not a duration')
    issue = ConfigIssue("f.yaml", 1, 2, "", "bad")
    assert str(issue) == "f.yaml:1:2: bad"
    error = ConfigError([issue, ConfigIssue("f.yaml", 3, 4, "checks", "worse")])
    assert str(error) == "f.yaml:1:2: bad\nf.yaml:3:4: checks: worse"
    assert isinstance(error, ProberError)


def test_every_error_is_reported_in_line_order() -> None:
    text = """\
        retention: forever
        vantages:
          tokyo: {proxy: "gopher://x"}
        checks:
          - name: a
            url: https://a.test/
            timeout: soon
            vantages: [paris]
          - name: a
            url: ftp://a.test/
            expect:
              status: [6xx]
        defaults:
          confirm: 0
          colour: red
        """
    found = issues(text)
    assert [(i.line, i.path) for i in found] == [
        (1, "retention"),
        (3, "vantages.tokyo.proxy"),
        (7, "checks[0].timeout"),
        (8, "checks[0].vantages[0]"),
        (9, "checks[1].name"),
        (10, "checks[1].url"),
        (12, "checks[1].expect.status[0]"),
        (14, "defaults.confirm"),
        (15, "defaults.colour"),
    ]
    assert found == sorted(found, key=lambda i: (i.line, i.col))


def test_missing_env_var_is_not_reported_twice() -> None:
    # The URL would be invalid without its host; only the cause is worth saying.
    found = issues(
        """\
        checks:
          - {name: a, url: "https://${HOST}/"}
        """
    )
    assert [i.message for i in found] == ["environment variable HOST is not set"]


def test_error_message_never_shows_a_secret() -> None:
    found = issues(
        """\
        checks:
          - {name: a, url: "ftp://a.test/?token=${TOKEN}", headers: ["Bearer ${TOKEN}"]}
        """,
        env={"TOKEN": "hunter2"},
    )
    assert len(found) == 2
    assert all("hunter2" not in str(i) for i in found)
    assert '"ftp://a.test/?token=${TOKEN}"' in found[0].message


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "checks.yaml"
    path.write_text("checks:\n  - {name: a, url: 'https://a.test/', interval: soon}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f'{path}:2:49: checks[0].interval: "soon" is not a duration')
    path.write_text("checks:\n  - {name: a, url: 'https://a.test/'}\n", encoding="utf-8")
    assert load_config(str(path), env={}).path == str(path)


def test_load_config_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ProberError, match="cannot read configuration") as info:
        load_config(tmp_path / "missing.yaml")
    assert not isinstance(info.value, ConfigError)


# -- results: defaults, merging, vantages ------------------------------------------------------------


def test_minimal_config_gets_every_default() -> None:
    config = parse("checks:\n  - {name: a, url: 'https://a.test/'}\n")
    assert config.path == "checks.yaml"
    assert config.defaults == Defaults()
    assert dict(config.vantages) == {"local": Vantage("local", region="local")}
    assert config.retention == 14 * 86400
    assert config.signatures == ()
    assert config.secrets == frozenset()
    check = config.check("a")
    assert check == Check(name="a", url="https://a.test/")
    assert (check.interval, check.timeout, check.confirm, check.recover) == (60.0, 10.0, 2, 2)
    assert (check.quorum, check.max_body, check.vantages) == ("majority", 262144, ("local",))
    assert check.surface is Surface.WEB
    assert check.method == "GET"
    assert check.display_url == "https://a.test/"
    assert check.expect == Expect(status=("2xx", "3xx"))
    assert (check.body, check.json_body, check.follow_redirects) == (None, None, True)
    assert (check.signatures, check.tags) == ("all", ())
    with pytest.raises(KeyError):
        config.check("b")


def test_defaults_merge_and_checks_override() -> None:
    config = parse(
        """\
        defaults:
          interval: 5m
          timeout: 2500ms
          confirm: 3
          recover: 1
          quorum: all
          max_body: 1MiB
        vantages:
          us-east: {region: US, source_address: 127.0.0.2}
          tokyo: {region: JP, proxy: "socks5://127.0.0.1:1080"}
          london: {resolver: ["127.0.0.1:5353", "::1", "[::1]:53"]}
        retention: 30d
        checks:
          - name: inherits
            url: https://a.test/
          - name: overrides
            surface: api
            url: https://api.a.test/v1
            method: post
            headers: {Accept: application/json, X-Retries: 3}
            body: {json: {user: me, ids: [1, 2]}}
            follow_redirects: false
            interval: 30s
            timeout: 1
            vantages: [tokyo]
            confirm: 1
            recover: 4
            quorum: 1
            max_body: 512B
            expect:
              status: [200, 3XX, "204"]
              body_contains: [ok]
              body_not_contains: [error]
              json: ["status == 'ok'"]
              max_latency: 2s
              cert_min_days: 14
            signatures: none
            tags: [api, critical]
        """
    )
    assert config.defaults == Defaults(
        interval=300.0,
        timeout=2.5,
        vantages=("us-east", "tokyo", "london"),
        confirm=3,
        recover=1,
        quorum="all",
        max_body=1 << 20,
    )
    assert config.retention == 30 * 86400
    assert config.vantages["us-east"] == Vantage("us-east", "US", source_address="127.0.0.2")
    assert config.vantages["tokyo"].proxy == "socks5://127.0.0.1:1080"
    assert config.vantages["london"] == Vantage(
        "london", "london", resolver=("127.0.0.1:5353", "::1", "[::1]:53")
    )
    assert "local" not in config.vantages

    inherits = config.check("inherits")
    assert (inherits.interval, inherits.timeout, inherits.confirm, inherits.recover) == (300.0, 2.5, 3, 1)
    assert (inherits.quorum, inherits.max_body) == ("all", 1 << 20)
    assert inherits.vantages == ("us-east", "tokyo", "london")

    over = config.check("overrides")
    assert over.surface is Surface.API
    assert over.method == "POST"
    assert dict(over.headers) == {"Accept": "application/json", "X-Retries": "3"}
    assert (over.body, over.json_body) == (None, {"user": "me", "ids": [1, 2]})
    assert over.follow_redirects is False
    assert (over.interval, over.timeout, over.vantages) == (30.0, 1.0, ("tokyo",))
    assert (over.confirm, over.recover, over.quorum, over.max_body) == (1, 4, 1, 512)
    assert over.expect == Expect(
        status=("200", "3xx", "204"),
        body_contains=("ok",),
        body_not_contains=("error",),
        json=("status == 'ok'",),
        max_latency=2.0,
        cert_min_days=14.0,
    )
    assert (over.signatures, over.tags) == ("none", ("api", "critical"))


def test_string_body() -> None:
    config = parse("checks:\n  - {name: a, url: 'https://a.test/', method: POST, body: 'q=1'}\n")
    assert (config.checks[0].body, config.checks[0].json_body) == ("q=1", None)


def test_local_stays_usable_next_to_defined_vantages() -> None:
    # DESIGN's example lists `local` in defaults.vantages while it defines other vantages.
    config = parse(
        """\
        vantages:
          tokyo: {region: JP}
        checks:
          - {name: a, url: "https://a.test/", vantages: [local, tokyo]}
        """
    )
    assert list(config.vantages) == ["tokyo", "local"]
    assert config.vantages["local"] == Vantage("local", "local")
    assert config.defaults.vantages == ("tokyo",)


@pytest.mark.parametrize(
    ("quorum", "n", "count"),
    [("majority", 3, 2), ("majority", 4, 3), ("majority", 1, 1), ("all", 3, 3), (2, 3, 2), (5, 3, 3)],
    ids=["majority-3", "majority-4", "majority-1", "all", "int", "int-capped"],
)
def test_quorum_count(quorum: int | str, n: int, count: int) -> None:
    check = parse(f"checks:\n  - {{name: a, url: 'https://a.test/', quorum: {quorum}}}\n").checks[0]
    assert check.quorum_count(n) == count


def test_results_are_frozen() -> None:
    config = parse("checks:\n  - {name: a, url: 'https://a.test/', headers: {A: b}}\n")
    check = config.checks[0]
    with pytest.raises(FrozenInstanceError):
        check.interval = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        check.headers["A"] = "c"  # type: ignore[index]
    with pytest.raises(TypeError):
        config.vantages["x"] = Vantage("x")  # type: ignore[index]


def test_results_can_be_copied_and_pickled() -> None:
    config = parse("checks:\n  - {name: a, url: 'https://a.test/', headers: {A: b}, body: {json: [1]}}\n")
    assert copy.deepcopy(config) == config
    assert pickle.loads(pickle.dumps(config)) == config
    assert hash(config.vantages["local"]) == hash(Vantage("local"))


def test_yaml_anchors_and_merge_keys() -> None:
    config = parse(
        """\
        x-slow: &slow {interval: 5m, timeout: 30s, url: "https://${HOST}/"}
        checks:
          - {<<: *slow, name: a}
          - {<<: *slow, name: b, url: "https://b.test/", timeout: 5s}
        """,
        {"HOST": "a.test"},
    )
    assert [(c.interval, c.timeout) for c in config.checks] == [(300.0, 30.0), (300.0, 5.0)]
    assert [(c.url, c.display_url) for c in config.checks] == [
        ("https://a.test/", "https://${HOST}/"),
        ("https://b.test/", "https://b.test/"),
    ]


def test_yaml_keys_stay_text() -> None:
    # `on:` is a boolean in YAML 1.1; a header name it must stay.
    config = parse("checks:\n  - {name: a, url: 'https://a.test/', headers: {on: '1', 2: x}}\n")
    assert dict(config.checks[0].headers) == {"on": "1", "2": "x"}


# -- environment variables and secrets -----------------------------------------------------------------


def test_env_substitution_and_display_url() -> None:
    env = {"TOKEN": "s3cr3t-t0ken", "HOST": "api.a.test", "CONFIRM": "3", "EMPTY": ""}
    config = parse(
        """\
        checks:
          - name: a
            url: https://${HOST}/v1?token=${TOKEN}
            headers: {Authorization: "Bearer ${TOKEN}", X-Literal: "$${TOKEN}", X-Empty: "${EMPTY}"}
            confirm: ${CONFIRM}
        """,
        env,
    )
    check = config.checks[0]
    assert check.url == "https://api.a.test/v1?token=s3cr3t-t0ken"
    assert check.display_url == "https://${HOST}/v1?token=${TOKEN}"
    assert dict(check.headers) == {
        "Authorization": "Bearer s3cr3t-t0ken",
        "X-Literal": "${TOKEN}",
        "X-Empty": "",
    }
    assert check.confirm == 3  # an unquoted ${N} is read as the YAML value it stands for
    assert config.secrets == frozenset({"s3cr3t-t0ken", "api.a.test"})  # CONFIRM became a number


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBER_TEST_HOST", "a.test")
    config = parse_config("checks:\n  - {name: a, url: 'https://${PROBER_TEST_HOST}/'}\n")
    assert config.checks[0].url == "https://a.test/"


def test_redact() -> None:
    config = parse(
        """\
        checks:
          - {name: a, url: "https://a.test/?k=${KEY}&t=${TOKEN}"}
        """,
        {"KEY": "abc", "TOKEN": "abcdef"},
    )
    assert config.redact("GET https://a.test/?k=abc&t=abcdef failed") == (
        "GET https://a.test/?k=${KEY}&t=${TOKEN} failed"
    )
    assert config.redact("nothing secret") == "nothing secret"
    assert Config().redact("abc") == "abc"


def _yarl(secret: str) -> str:
    return str(yarl.URL.build(scheme="http", host="a.test", path=f"/p/{secret}", query={"q": secret}))


ENCODINGS: dict[str, Callable[[str], str]] = {
    "as written": str,
    "quote": quote,
    "quote safe=''": lambda s: quote(s, safe=""),
    "quote_plus": quote_plus,
    "quote_plus safe='/'": lambda s: quote_plus(s, safe="/"),
    "lower-case hex": lambda s: re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote(s, safe="")),
    "yarl": _yarl,
    "json": json.dumps,
    "json unicode": lambda s: json.dumps(s, ensure_ascii=False),
    "json in json": lambda s: json.dumps(json.dumps(s))[1:-1],
    "html": html.escape,
    "html numeric": lambda s: "".join(f"&#{ord(c)};" if not c.isalnum() else c for c in s),
    "json in html": lambda s: html.escape(json.dumps(s)),
    "repr": repr,
    "ascii": ascii,
    "repr of bytes": lambda s: repr(s.encode()),
}
SECRETS = ['s3cr3té"ZZ', "a/b", "#frag", "p@ss w0rd+&=?", "k€y🔑<x>'y"]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_redact_finds_every_form_of_a_secret(secret: str, encoding: str) -> None:
    config = parse('checks:\n  - {name: a, url: "https://a.test/", headers: {X-K: "${S}"}}\n', {"S": secret})
    form = ENCODINGS[encoding](secret)
    text = f"GET {form} failed: {form}"
    redacted = config.redact(text)
    assert form not in redacted
    assert secret not in redacted
    assert redacted.count("${S}") >= 2


PRE_ENCODED = [
    "x%41y-Secret1",
    "Secr%2Fet4",
    "Sec%7eret5",
    "sig%3D%3D%2Bab",
    "t%C3%A9st%e2%82%ac-k",
    "SECRET%E9X8",
]


def _decoded_forms(secret: str) -> dict[str, tuple[str, str]]:
    """How URL parsers show a pre-encoded secret (decoded, re-encoded; path, query), and its redaction."""
    url = yarl.URL(f"http://a.test/p/{secret}?t={secret}")
    return {
        "yarl str": (str(url), "http://a.test/p/${S}?t=${S}"),
        "yarl path": (url.path, "/p/${S}"),
        "yarl query": (str(url.query), "<MultiDictProxy('t': '${S}')>"),
        "yarl raw": (url.raw_path_qs, "/p/${S}?t=${S}"),
        "unquote": (unquote(secret), "${S}"),
        "unquote_plus": (unquote_plus(secret), "${S}"),
        "re-quoted": (quote(unquote(secret), safe=""), "${S}"),
        "upper-case hex": (re.sub("%[0-9a-f]{2}", lambda m: m[0].upper(), secret), "${S}"),
        "json of decoded": (json.dumps(unquote(secret)), '"${S}"'),
    }


@pytest.mark.parametrize("secret", PRE_ENCODED)
def test_redact_finds_a_pre_encoded_secret_decoded_and_re_encoded(secret: str) -> None:
    config = parse('checks:\n  - {name: a, url: "https://a.test/?t=${S}"}\n', {"S": secret})
    for where, (form, expected) in _decoded_forms(secret).items():
        assert config.redact(f"GET {form} failed") == f"GET {expected} failed", (where, form)


def test_a_short_secret_is_redacted_only_as_a_whole_token() -> None:
    config = parse('checks:\n  - {name: a, url: "https://x.test/${X}?k=${Y}"}\n', {"X": "a", "Y": "k2"})
    assert config.redact('"two" is not an integer') == '"two" is not an integer'
    assert (
        config.redact("GET https://x.test/a?k=k2 failed: k2k") == "GET https://x.test/${X}?k=${Y} failed: k2k"
    )
    assert config.redact("a, (a) _a_ 'a' x-a-y") == "${X}, (${X}) _${X}_ '${X}' x-${X}-y"
    edges = parse('checks:\n  - {name: a, url: "https://a.test/${X}"}\n', {"X": "#!"})
    assert edges.redact("x#!y") == "x${X}y"  # no letter or digit at its edges: found anywhere


def test_a_short_secret_leaves_configuration_errors_readable(tmp_path: Path) -> None:
    path = tmp_path / "checks.yaml"
    path.write_text('checks:\n  - name: a\n    url: http://127.0.0.1:1/${X}\n    confirm: "two"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"X": "a"})
    assert '"two" is not an integer' in str(caught.value)


def test_redact_finds_a_secret_in_basic_auth_and_in_a_host_name() -> None:
    env = {"PASSWORD": "correct-horse-battery", "HOST": "Bücher.Example"}
    config = parse('checks:\n  - {name: a, url: "https://u:${PASSWORD}@${HOST}/"}\n', env)
    for prefix in ("u:", "user:", "admin:"):  # the secret's offset in the base64 text varies
        header = "Basic " + base64.b64encode(f"{prefix}correct-horse-battery".encode()).decode()
        assert header not in config.redact(header)
        assert "${PASSWORD}" in config.redact(header)
    assert config.redact("cannot connect to xn--bcher-kva.example:443") == "cannot connect to ${HOST}:443"
    assert config.redact("cannot resolve bücher.example") == "cannot resolve ${HOST}"


def test_redact_names_the_longer_of_two_secrets() -> None:
    config = parse('checks:\n  - {name: a, url: "https://a.test/${A}/${B}"}\n', {"A": "abc", "B": "abcdef"})
    assert config.redact("abcdef abc") == "${B} ${A}"
    assert pickle.loads(pickle.dumps(config)).redact("abcdef") == "${B}"
    assert copy.deepcopy(config).redact("abc") == "${A}"


def test_error_messages_never_show_a_secret_even_shortened_or_escaped() -> None:
    secret = 'tok"en-' + "x" * 70
    found = issues(
        """\
        vantages: {a: {}}
        defaults: {vantages: ["${V}"]}
        checks:
          - {name: a, url: "https://a.test/", tags: "${T}", headers: {X: ["${T}"]}}
        """,
        env={"V": 's3cr3té"ZZ', "T": secret},
    )
    assert len(found) == 3
    text = "\n".join(str(i) for i in found)
    assert "s3cr3t" not in text and "tok" not in text and "xxxxxxxxxx" not in text
    assert '"${V}" is not a vantage' in text


# -- signatures ------------------------------------------------------------------------------------------


def test_user_signatures_and_selection() -> None:
    config = parse(
        """\
        signatures:
          - name: x-fret
            pattern: "Something went wrong, but don.t fret"
          - {name: x-slow, pattern: "please wait", verdict: degraded}
        checks:
          - {name: all, url: "https://a.test/"}
          - {name: none, url: "https://a.test/", signatures: none}
          - {name: some, url: "https://a.test/", signatures: [x-slow, x-fret]}
        """
    )
    fret = Signature("x-fret", "Something went wrong, but don.t fret", Verdict.DOWN, "user")
    slow = Signature("x-slow", "please wait", Verdict.DEGRADED, "user")
    assert config.signatures == (fret, slow)
    assert config.signatures_for(config.check("all")) == (*builtin_signatures(), fret, slow)
    assert config.signatures_for(config.check("none")) == ()
    assert config.signatures_for(config.check("some")) == (slow, fret)


def test_builtin_signature_names_are_selectable() -> None:
    builtins = builtin_signatures()
    if not builtins:
        pytest.skip("no built-in signatures yet")
    first = builtins[0]
    config = parse(
        f"checks:\n  - {{name: a, url: 'https://a.test/', signatures: [{json.dumps(first.name)}]}}\n"
    )
    assert config.signatures_for(config.checks[0]) == (first,)


def test_builtins_are_read_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    nginx = Signature("nginx-502", "<center>nginx</center>", Verdict.DOWN, "nginx")
    cdn = Signature("cdn-busy", "try again later", Verdict.DEGRADED, "cdn")
    monkeypatch.setattr("prober.config.model.builtin_signatures", lambda: (nginx, cdn))
    config = parse(
        """\
        signatures:
          - {name: cdn-busy, pattern: "our own words"}
          - {name: x-fret, pattern: "fret"}
        checks:
          - {name: a, url: "https://a.test/"}
          - {name: b, url: "https://a.test/", signatures: [x-fret, nginx-502]}
        """
    )
    mine = Signature("cdn-busy", "our own words")
    fret = Signature("x-fret", "fret")
    assert config.signatures_for(config.check("a")) == (nginx, mine, fret)
    assert config.signatures_for(config.check("b")) == (fret, nginx)
    found = issues('checks:\n  - {name: a, url: "https://a.test/", signatures: [nginx-503]}\n')
    assert [i.message for i in found] == ['"nginx-503" is not a known signature (did you mean "nginx-502"?)']


# -- the DESIGN example and the JSON schema -------------------------------------------------------------


def test_design_example_validates() -> None:
    config = load_config(DESIGN_EXAMPLE, env={})
    check = config.check("x-web")
    assert check.vantages == ("us-east", "tokyo", "london")
    assert check.expect.status == ("200", "3xx")
    assert (check.interval, check.expect.max_latency, check.expect.cert_min_days) == (30.0, 2.0, 14.0)
    assert {v.region for v in config.vantages.values()} >= {"US", "JP", "UK"}
    assert [s.name for s in config.signatures] == ["x-fret"]


def test_json_schema_structure() -> None:
    schema = json_schema()
    json.dumps(schema)  # plain JSON
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["title"]
    assert schema["type"] == "object"
    assert schema["required"] == ["checks"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "defaults",
        "vantages",
        "signatures",
        "checks",
        "retention",
        "browser",
        "maintenance",
        "alerts",
        "claims",
        "page",
        "metrics",
    }
    check = schema["$defs"][schema["properties"]["checks"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert check["required"] == ["name", "url"]
    assert all(prop.get("description") for prop in check["properties"].values())
    types = json.dumps(check["properties"]["interval"])
    assert '"string"' in types and '"number"' in types
    defaults = schema["$defs"][schema["properties"]["defaults"]["anyOf"][0]["$ref"].rsplit("/", 1)[1]]
    assert defaults["properties"]["interval"]["default"] == "60s"
    refs = set(re.findall(r'"#/\$defs/([^"]+)"', json.dumps(schema)))
    assert refs and refs <= set(schema["$defs"]), refs - set(schema["$defs"])  # every reference resolves
    assert defaults["properties"]["max_body"]["default"] == "256KiB"


def test_json_schema_accepts_the_design_example_and_rejects_typos() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    example = yaml.safe_load(DESIGN_EXAMPLE.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(example)) == []
    assert list(validator.iter_errors({"checks": [], "x-anchors": {"a": 1}})) == []
    bad = {"checks": [{"name": "a", "url": "https://a.test/", "intervall": "5s", "quorum": "most"}]}
    assert len(list(validator.iter_errors(bad))) == 2
    for value, ok in [
        ("30s", True),
        (1.5, True),
        ("1h30m", True),
        ("5 minutes", False),
        ("${INTERVAL}", True),
    ]:
        errors = list(validator.iter_errors({"checks": [], "defaults": {"interval": value}}))
        assert (errors == []) is ok, value


def test_a_variable_used_as_a_number_is_not_a_secret() -> None:
    text = "defaults:\n  confirm: ${CONFIRM}\nchecks:\n  - {name: a, url: 'http://h.test/?k=${KEY}'}\n"
    config = parse_config(text, env={"CONFIRM": "3", "KEY": "s3cr3t"})
    assert config.checks[0].confirm == 3
    assert config.redact("3 attempts, key s3cr3t") == "3 attempts, key ${KEY}"


def test_a_browser_check_without_playwright_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "playwright", None)  # as if it were not installed
    with pytest.raises(ConfigError) as caught:
        parse_config("checks:\n  - name: x\n    url: http://127.0.0.1/\n    browser: {}\n", env={})
    assert "checks.yaml:4:5: checks[0].browser: a browser check needs Playwright" in str(caught.value)
    assert "pip install 'prober[browser]'" in str(caught.value)
    parse_config("checks:\n  - name: x\n    url: http://127.0.0.1/\n", env={})  # HTTP checks need nothing


def test_the_core_never_imports_the_browser_package() -> None:
    code = (
        "import sys, prober.cli, prober.daemon, prober.probe, prober.once, prober.web;"
        "print(sorted(m for m in sys.modules if m.startswith(('prober.browser', 'playwright'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
