"""A small run of bench/scale.py: prober against a healthy local target loses nothing and sees no outage.

The timing figures (lateness, CPU per probe, the bare-client ratio) depend on the machine and on
whatever else runs on it: they are printed, never asserted. What is asserted holds on any machine:
every request the target answered is a stored row, and a healthy target is never recorded down.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Target

from prober.config import parse_config
from prober.model import Observation, Verdict
from prober.page import Body as _Body
from prober.probe import probe_everywhere
from prober.signatures import Signature, builtin_signatures, compile_pattern, match
from prober.signatures.match import _caseless_twin
from prober.signatures.match import matcher_for as _matcher
from prober.vantage import VantagePool

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
BLACKBOX = "prometheus-blackbox-exporter"


@pytest.mark.slow
def test_small_scale_run_loses_nothing_and_sees_no_outage(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "scale.py"), "--checks", "300", "--vantages", "2",
        "--interval", "1", "--duration", "10", "--warmup", "2", "--peer-duration", "3", "--json", str(out),
        "--runs", "1",
    ]  # fmt: skip
    if shutil.which(BLACKBOX) is None and not Path(f"/usr/bin/{BLACKBOX}").exists():
        cmd.append("--skip-blackbox")  # the test never installs packages; bench/scale.py would
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=110, env=env, cwd=tmp_path)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    (result,) = summary["runs"]
    assert summary["medians"]["prober CPU ms per probe"]["values"] == [
        result["prober"]["steady"]["cpu_s_per_1000"]
    ]
    prober = result["prober"]
    assert prober["exit_code"] == 0, prober
    assert prober["rows_stored"] > 0
    assert prober["target_requests"] == prober["rows_stored"]  # every answered request is a row
    assert prober["lost"] == 0
    assert prober["down"] == 0, prober["verdicts"]  # the target is healthy: never down
    assert result["bare"]["failed"] == 0, result["bare"]
    if "blackbox" in result:
        assert result["blackbox"]["failed"] == 0, result["blackbox"]


@pytest.mark.slow
def test_the_ramp_raises_the_rate_until_a_step_does_not_hold(tmp_path: Path) -> None:
    out = tmp_path / "ramp.json"
    cmd = [
        sys.executable, str(ROOT / "bench" / "scale.py"), "--max-rate", "--checks", "50", "--vantages", "2",
        "--interval", "1", "--duration", "6", "--warmup", "2", "--ramp-step", "100", "--ramp-limit", "200",
        "--json", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=110, env=env, cwd=tmp_path)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = json.loads(out.read_text())["ramp"]
    assert [s["rate"] for s in steps] == [100, 200][: len(steps)]
    assert [s["checks"] for s in steps] == [50, 100][: len(steps)]
    assert all(s["held"] for s in steps[:-1])  # the ramp stops at the first step that does not hold
    assert all(s["lost"] == 0 for s in steps)
    assert "highest sustained rate" in done.stdout


async def test_probes_that_cannot_start_in_time_are_skipped_not_queued(target: Target) -> None:
    config = parse_config(f"checks:\n  - {{name: a, url: '{target.url}/ok'}}\n")
    check = config.checks[0]
    signatures = config.signatures_for(check)
    pool = VantagePool()
    await pool.sync(config.vantages)
    limit = asyncio.Semaphore(1)
    try:
        deadline = time.time() + 0.1
        async with limit:  # a saturated prober: no probe can start until its deadline has passed
            late = asyncio.ensure_future(
                probe_everywhere(
                    pool, check, signatures, limit=limit, may_start=lambda: time.time() < deadline
                )
            )
            await asyncio.sleep(0.3)
        assert await late == []  # skipped: no result, and no request made late
        assert target.total() == 0
        on_time = await probe_everywhere(pool, check, signatures, limit=limit, may_start=lambda: True)
        assert [r.verdict for r in on_time] == [Verdict.UP]
    finally:
        await pool.close()


# The classifier rules a zone out with one search (prober.signatures.match._Screen): member patterns are
# regrouped behind one `^`, and run case-sensitively on lower-cased text when that is exact. It
# must say "maybe" exactly when some member matches, on any text.
USER_SIGNATURES = (
    Signature("x-fret", "Something went wrong, but don.t fret"),
    Signature("caps", r"[A-Z]{3} ERROR \d+|^Über-Fehler$"),
    Signature("anchored", r"^(?:oops|uh oh)$|service (?:is )?down", verdict=Verdict.DEGRADED),
)
SLOW_PATH = (Signature("escaped", r"\x53omething \u0077ent wrong|\u212aelvin"),)  # no exact twin
ODD = "ſıİKßẞςΣµÉé©·–’ﬀ\u212a"


def zone_texts() -> list[str]:
    texts = ["", "Something went wrong", "Oops! Something went wrong. Please try again.", "ERR ERROR 5"]
    for path in sorted(CORPUS.iterdir()):
        body = path.read_bytes()
        for content_type in ("text/html", "application/json", "text/plain"):
            obs = Observation(url="x", status=200, headers={"content-type": content_type}, body=body)
            for strings in _Body(obs).zones.values():
                texts += strings
    texts += [line for text in list(texts) for line in text.split("\n")]
    mutated = []
    for n, text in enumerate(texts):  # odd casings and the characters case-folding treats specially
        chars = list(text)
        for i in range(0, len(chars), 3 + n % 5):
            chars[i] = chars[i].upper() if i % 2 else ODD[(i + n) % len(ODD)]
        mutated += ["".join(chars), text.upper(), text.title()]
    return texts + mutated


@pytest.mark.parametrize(
    "extra", [(), USER_SIGNATURES, SLOW_PATH], ids=["builtin", "user-signatures", "no-fast-path"]
)
def test_the_zone_pre_check_agrees_with_the_plain_alternation(extra: tuple[Signature, ...]) -> None:
    matcher = _matcher((*builtin_signatures(), *extra))
    texts = zone_texts()
    for zone, (screen, members) in [*matcher.zones.items(), *matcher.wordy.items()]:
        assert screen is not None
        assert (screen.lowered is not None) is (extra is not SLOW_PATH), zone  # the fast path, if exact
        plain = compile_pattern("|".join(f"(?:{e.pattern})" for e in members))
        wrong = [t for t in texts if screen.search(t) != (plain.search(t) is not None)]
        assert not wrong, (zone, wrong[:5])


@pytest.mark.parametrize(
    ("pattern", "twin"),
    [
        ("abc", True), ("Abc", True), ("Über", True), ("ΣΑ", True), (r"\x41", False), (r"\u0041", False),
        (r"\101", False), ("[a-z]+", True), ("[A-Z]", True), ("[A-z]", False), ("[a-\u00c5]", False),
        ("[]-À]", False), ("[]a]", True), ("(?i)a", False), ("(?-i:a)", False), ("(?s:a.b)", True),
        ("(?P<Name>a)", True), ("ſ", False), ("\u212a", False), ("İ", False), ("ß", True),
        (r"\W\d\b", True), (r"[^\w\n]", True), ("(?(1)a|b)", False),
    ],
)  # fmt: skip
def test_case_sensitive_twin_only_where_it_is_exact(pattern: str, twin: bool) -> None:
    assert (_caseless_twin(pattern) is not None) is twin


def test_a_matcher_compiles_its_zone_pre_checks_only_when_a_page_reaches_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The combined pre-checks are most of building a matcher (about 0.5 s of `prober once`).
    built: list[object] = []
    real = match._combined_source
    monkeypatch.setattr(match, "_combined_source", lambda members: built.append(members) or real(members))
    matcher = match.Matcher((*builtin_signatures(), *USER_SIGNATURES))
    assert built == []
    body = b"<title>Oops</title><h1>Something went wrong</h1>"
    obs = Observation(url="x", status=200, headers={"content-type": "text/html"}, body=body)
    hit = matcher.best(_Body(obs))
    assert hit is not None and hit.sig.name == "something-went-wrong"
    zones = [members for _, members in [*matcher.zones.values(), *matcher.wordy.values()]]
    tops = [m for m in built if any(m is members for members in zones)]  # not the halves `first` searches
    assert 0 < len(tops) <= len(_Body(obs).zones)  # one table (says little), the zones it has
    again = len(built)
    matcher.best(_Body(obs))
    assert len(built) == again  # built once


def test_a_zone_pre_check_compiles_its_case_insensitive_pattern_only_for_text_unsafe_to_lower_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The twin alone serves text that lower-cases exactly; compiling both doubled the first page's cost.
    compiled: list[str] = []
    real = match._compiled
    monkeypatch.setattr(
        match, "_compiled", lambda source, members: compiled.append(source) or real(source, members)
    )
    matcher = match.Matcher((*builtin_signatures(), *USER_SIGNATURES))
    screen, _ = matcher.zones["heading"]
    assert screen.search("Something went wrong") and not screen.search("All systems normal")
    assert compiled == []
    assert not screen.search("İstanbul")  # "İ" lower-cases to two characters: the case-insensitive pattern
    assert len(compiled) == 1
    screen.search("İzmir")
    assert len(compiled) == 1  # compiled once


def test_halving_finds_the_same_best_signature_as_trying_each_in_rank_order() -> None:
    matcher = _matcher((*builtin_signatures(), *USER_SIGNATURES))
    texts = zone_texts()
    for zone, (screen, members) in [*matcher.zones.items(), *matcher.wordy.items()]:
        for text in texts:
            low = match._caseless(text)
            for limit in {len(members), len(members) // 2, 3}:
                found = screen.first(text, low, limit)
                first = next((e for e in members[:limit] if e.regex.search(text)), None)
                assert (found and found[0]) is first, (zone, text[:80], limit)
