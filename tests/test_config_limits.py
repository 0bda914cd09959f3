"""prober.config against hostile files: nesting, aliases, huge numbers, bytes; only ConfigError escapes."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prober.cli import main
from prober.config import ConfigError, load_config, parse_config
from prober.config.limits import MAX_BYTES, MAX_DEPTH

CHECK = "checks:\n  - name: a\n    url: http://127.0.0.1/\n"
# The classic: nine anchors, each nine times the one before; 9^9 = 387,420,489 "lol"s once expanded.
LAUGHS = "".join(
    [
        'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(f"l{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
        'checks: [{name: a, url: "http://127.0.0.1/", tags: *i}]\n',
    ]
)
HOSTILE = {
    "nested-500": CHECK + "    tags: " + "[" * 500 + "]" * 500 + "\n",
    "billion-laughs": LAUGHS,
    "interval": CHECK + "    interval: 999999999d\n",
    "confirm": CHECK + "    confirm: 9223372036854775808\n",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_validate_refuses_hostile_files_in_bounded_time_and_memory(tmp_path: Path, name: str) -> None:
    path = tmp_path / "checks.yaml"
    path.write_text(HOSTILE[name], encoding="utf-8")
    started = time.monotonic()
    tracemalloc.start()
    try:
        result = CliRunner().invoke(main, ["validate", "-c", str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 2, result.output
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", result.output), result.output
    assert "Traceback" not in result.output
    assert time.monotonic() - started < 10
    assert peak < 50 * 2**20


def test_the_billion_laughs_is_small_and_refused_at_the_alias() -> None:
    assert len(LAUGHS.encode()) < 500
    with pytest.raises(ConfigError) as info:
        parse_config(LAUGHS, env={})
    (issue,) = info.value.issues
    assert "aliases add more than 100,000 values to this file" in issue.message
    line = LAUGHS.splitlines()[issue.line - 1]
    assert line[issue.col - 1] == "*"  # located at the alias that crossed the limit


def test_libyaml_never_sees_a_million_levels(tmp_path: Path) -> None:
    # libyaml's composer recursed in C and crashed with SIGSEGV around 100,000 levels.
    path = tmp_path / "checks.yaml"
    path.write_text("checks: " + "[" * 1_000_000 + "]" * 1_000_000 + "\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "prober", "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr[-500:]
    # The root mapping is level 1 and the list at column 9 level 2: column 108 opens level 101.
    assert f"{path}:1:108: values are nested deeper than {MAX_DEPTH} levels" in run.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH, "nested deeper than 100 levels"),
        # Each anchor is shallow, but every alias nests the one before: the walk would recurse 30 x 40 deep.
        (
            "x-0: &l0 " + "[" * 40 + "]" * 40 + "\n"
            + "".join(f"x-{i}: &l{i} {'[' * 40}*l{i - 1}{']' * 40}\n" for i in range(1, 30))
            + "checks: []\n",
            "this alias nests values deeper than 100 levels",
        ),
    ],
    ids=["written", "through-aliases"],
)  # fmt: skip
def test_nesting_is_limited(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, env={})


def test_aliases_that_merge_defaults_into_many_checks_are_fine() -> None:
    text = "x-d: &d {timeout: 5s, tags: [a, b], expect: {status: [200, 3xx]}}\nchecks:\n" + "".join(
        f"  - {{<<: *d, name: c{i}, url: 'http://127.0.0.1/{i}'}}\n" for i in range(3000)
    )
    config = parse_config(text, env={})
    assert len(config.checks) == 3000
    assert config.checks[-1].timeout == 5.0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("interval: 999999999d", '"999999999d" is too large: it must be at most 365d'),
        ("interval: 366d", "it must be at most 365d"),
        ("interval: " + "9" * 400, "is not a duration"),  # float() of it overflows
        ("timeout: 1e999", "is not a duration"),
        ("timeout: 0", "is too small"),
        ("confirm: 9223372036854775808", "9223372036854775808 is too large: it must be at most 1000"),
        ("recover: 1001", "it must be at most 1000"),
        ("quorum: 9223372036854775808", "write an integer from 1 to 1000"),
        ("confirm: " + "9" * 5000, "cannot be read"),
        ("expect: {max_latency: 400d}", "it must be at most 365d"),
        ("expect: {cert_min_days: .inf}", "is not a finite number"),
        ("expect: {cert_min_days: 5000}", "it must be at most 3650"),
        ("body: {json: {when: 2022-12-28}}", "is not a JSON body"),
        ('expect: {json: ["' + "(" * 3000 + "a" + ")" * 3000 + '"]}', "nests too deep"),
    ],
)
def test_every_number_is_bounded(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(CHECK + "    " + line + "\n", env={})


def test_the_largest_values_still_load() -> None:
    text = CHECK + "    interval: 365d\n    timeout: 365d\n    confirm: 1000\n    quorum: 1000\n"
    config = parse_config(text + "retention: 36500d\n", env={})
    assert config.checks[0].interval == 365 * 86400.0
    assert config.checks[0].confirm == 1000
    with pytest.raises(ConfigError, match="at most 36500d"):
        parse_config(text + "retention: 36501d\n", env={})


def test_a_deeply_nested_user_signature_is_an_error() -> None:
    text = f'signatures: [{{name: s, pattern: "{"(" * 5000}a{")" * 5000}"}}]\n' + CHECK
    with pytest.raises(ConfigError, match="nests too deep"):
        parse_config(text, env={})


def test_bytes_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    path = tmp_path / "checks.yaml"
    path.write_bytes(CHECK.encode() + b"    tags: [caf\xe9]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}:4:15: the file is not UTF-8 text: byte 0xe9")


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "checks.yaml"
    with path.open("wb") as file:
        file.write(CHECK.encode())
        file.truncate(MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ConfigError, match="the file is larger than 32 MiB"):
        load_config(path, env={})


# -- only ConfigError, whatever the text ------------------------------------------------------------

SECRET = 's3cr3té"ZZ'
KEYS = [
    "checks", "defaults", "vantages", "signatures", "retention", "name", "url", "interval", "timeout",
    "confirm", "recover", "quorum", "max_body", "expect", "status", "json", "body", "headers", "method",
    "surface", "tags", "region", "proxy", "resolver", "source_address", "pattern", "verdict",
    "follow_redirects", "cert_min_days", "max_latency", "body_contains", "<<", "x-a",
    # the second stage's keys
    "browser", "wait_for", "screenshot", "alerts", "channels", "type", "send_on", "remind", "claim",
    "claims", "source", "component", "format", "maintenance", "every", "start", "duration", "timezone",
    "page", "title", "public", "display_name", "agent",
]  # fmt: skip
WORDS = [
    "30s", "999999999d", "1e400", "http://127.0.0.1/", "https://${X}/", "${X}", "$${", "${", "${1}",
    "majority", "all", "2xx", "6xx", "a", "127.0.0.1", "[::1]:53", "socks5://127.0.0.1", "GET", "web",
    "256KiB", "9223372036854775808", "2022-12-28", "x.y(", "(", ".nan", "-.inf", "!!binary", "*a",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.sampled_from(WORDS)
)
VALUES = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), kids, max_size=6)
    ),
    max_leaves=40,
)
DOCUMENTS = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {"checks": st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6), max_size=3)},
        optional={
            "defaults": VALUES,
            "vantages": VALUES,
            "signatures": VALUES,
            "retention": VALUES,
            "browser": VALUES,
            "alerts": VALUES,
            "claims": VALUES,
            "maintenance": VALUES,
            "page": VALUES,
        },
    ),
).map(lambda doc: yaml.safe_dump(doc, allow_unicode=True, default_flow_style=None))
TOKENS = [
    "checks:", "\n", "\n  ", "- ", ": ", "{", "}", "[", "]", ", ", "&a ", "*a", "<<: ", "? ", "!!set ",
    "!!binary ", "!!python/name:os.system ", "!x ", "'", '"', "|\n  ", ">-\n  ", "---\n", "...\n",
    "%YAML 1.1\n", "#", "\t", "\\", "\ufeff", "${X}", "name: a", "url: http://127.0.0.1/", "interval: ",
    "9" * 30, ".inf",
]  # fmt: skip
SOUP = st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=40).map("".join)


def _mutated(draw: st.DrawFn) -> str:
    text = draw(DOCUMENTS)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(DOCUMENTS, SOUP, st.composite(_mutated)()))
def test_parse_config_raises_only_config_error(text: str) -> None:
    try:
        parse_config(text, env={"X": SECRET})
    except ConfigError as exc:
        assert exc.issues
        assert all(re.fullmatch(r"checks\.yaml:\d+:\d+: .+", str(issue), re.DOTALL) for issue in exc.issues)
        assert SECRET not in str(exc)
