"""The built-in signature files and their loader."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import yaml

from prober.model import ProberError, Verdict
from prober.signatures import (
    FLAGS,
    ZONES,
    Signature,
    builtin_signatures,
    compile_pattern,
    load_signatures,
    phrase_pattern,
)

BUILTIN = builtin_signatures()
FILES = sorted(e.name for e in resources.files("prober.signatures").iterdir() if e.name.endswith(".yaml"))


def test_signature_needs_only_name_and_pattern() -> None:
    sig = Signature(name="x-fret", pattern="don.t fret", verdict=Verdict.DOWN)
    assert (sig.platform, sig.where, sig.verdict) == ("user", ZONES, Verdict.DOWN)
    assert Signature("a", "b").verdict == Verdict.DOWN
    assert hash(sig) == hash(Signature(name="x-fret", pattern="don.t fret"))


def test_builtin_signatures_are_well_formed() -> None:
    names = [s.name for s in BUILTIN]
    assert len(names) == len(set(names)), "names are unique"
    for sig in BUILTIN:
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", sig.name), sig.name
        assert sig.verdict in (Verdict.DOWN, Verdict.DEGRADED)
        assert sig.platform and sig.platform != "user"
        assert sig.where and set(sig.where) <= set(ZONES)
        compile_pattern(sig.pattern)
    assert builtin_signatures() is BUILTIN  # read once


def test_builtin_signatures_combine_into_one_pattern() -> None:
    # The classifier rules a zone out with one alternation of every pattern: no group numbers.
    combined = "|".join(f"(?:{s.pattern})" for s in BUILTIN)
    re.compile(combined, FLAGS)
    assert not any(re.search(r"\\[1-9]|\(\?P=|\(\?P<", s.pattern) for s in BUILTIN)


def test_builtin_files_have_comments_and_order() -> None:
    assert {"platforms.yaml", "cdn.yaml", "proxies.yaml", "frameworks.yaml", "maintenance.yaml", "api.yaml",
            "generic.yaml"} <= set(FILES)  # fmt: skip
    for name in FILES:
        text = resources.files("prober.signatures").joinpath(name).read_text(encoding="utf-8")
        assert text.startswith("#"), f"{name} explains itself"
        assert isinstance(yaml.safe_load(text)["order"], int)
    # specific platforms before generic phrases
    order = [s.name for s in BUILTIN]
    assert order.index("x-dont-fret") < order.index("rails-500") < order.index("something-went-wrong")
    assert order.index("over-capacity") < order.index("json-errors")


def test_required_signatures_exist() -> None:
    names = {s.name for s in BUILTIN}
    assert {
        "something-went-wrong", "nginx-5xx", "cloudflare-5xx", "cloudfront-error", "akamai-reference",
        "varnish-guru-meditation", "envoy-upstream", "rails-500", "heroku-application-error", "maintenance",
        "over-capacity", "json-errors", "graphql-errors",
    } <= names  # fmt: skip
    assert any(s.verdict == Verdict.DEGRADED for s in BUILTIN)


@pytest.mark.parametrize(
    ("line", "matches"),
    [
        ("Something went wrong", True),
        ("Something went wrong.", True),
        ("something went wrong!!", True),
        ("Oops! Something went wrong. Please try again.", True),
        ("Sorry, something went wrong", True),
        ("Something went wrong | Acme", True),
        ("Something went wrong — let's give it another shot", True),
        ("errors: Something went wrong", True),
        ("Error: Something went wrong", True),
        ("Something went wrong at the launch", False),
        ("Users saw Something went wrong", False),
        ('"Something went wrong," the app said', False),
        ("Something went wrong: inside the outage", False),
        ("Something went wrong, " + "x" * 300, False),
    ],
)
def test_phrase_template(line: str, matches: bool) -> None:
    pattern = compile_pattern(phrase_pattern(["something went wrong"]))
    assert (pattern.search(line) is not None) is matches


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("signatures: [{pattern: x}]", "is not a signature name"),
        ("signatures: [{name: Bad Name, pattern: x}]", "is not a signature name"),
        ("signatures: [{name: a}]", "needs a pattern or phrases"),
        ("signatures: [{name: a, pattern: '([a'}]", "a: "),
        ("signatures: [{name: a, pattern: x, verdict: up}]", "verdict must be down or degraded"),
        ("signatures: [{name: a, pattern: x, verdict: sideways}]", "a: "),
        ("signatures: [{name: a, pattern: x, where: [body]}]", "where must be any or some of"),
        ("signatures: [{name: a, phrases: []}]", "phrases must be a list of strings"),
        ("signatures: [{name: a, pattern: 3}]", "pattern must be a string"),
        ("signatures: [x]", "is not a mapping"),
        ("signatures: {a: b}", "expected a mapping with a list of signatures"),
        ("signatures: [", "signature file test.yaml"),
    ],
)
def test_loader_errors(text: str, error: str) -> None:
    with pytest.raises(ProberError, match=re.escape(error)):
        load_signatures(text, "test.yaml")


def test_loader_builds_patterns_and_defaults() -> None:
    (sig,) = load_signatures(
        "platform: acme\n"
        "signatures:\n"
        "  - {name: acme-down, phrases: [acme is down], pattern: '^acme-ref \\d+$',\n"
        "     where: text, verdict: degraded}\n",
        "acme.yaml",
    )
    assert (sig.platform, sig.where, sig.verdict) == ("acme", ("text",), Verdict.DEGRADED)
    regex = compile_pattern(sig.pattern)
    assert regex.search("Sorry! ACME is down.") and regex.search("x\nacme-ref 42\ny")
    assert not regex.search("They say acme is down again")
    assert load_signatures("", "empty.yaml") == ()


def test_a_trie_of_alternatives_matches_what_their_alternation_matches() -> None:
    from prober.signatures.alternation import trie

    leaves = ["ab", "ac", "a", "(?:x|y)?z", "(?:q)+r", "(?:m|n)??o", "b?c", "[de]f", "", "a(?:b|c)d"]
    plain = re.compile("|".join(f"(?:{leaf})" for leaf in leaves))
    grouped = re.compile(f"(?:{trie(leaves)})")
    samples = ["ab", "ac", "a", "xz", "yz", "z", "qr", "qqr", "mo", "no", "o", "c", "bc", "df", "ef", "",
               "abd", "acd", "ad", "b", "xyz", "r", "f"]  # fmt: skip
    for text in samples:
        assert bool(plain.fullmatch(text)) == bool(grouped.fullmatch(text)), (text, trie(leaves))


def test_a_screen_used_often_swaps_in_its_faster_twin_and_answers_the_same() -> None:
    import time

    from prober.signatures import builtin_signatures
    from prober.signatures.match import HOT, _Screen, matcher_for

    _, members = matcher_for(builtin_signatures()).zones["text"]
    screen = _Screen(members)
    texts = [
        "welcome home",
        "something went wrong, but don't fret",
        "oops! we'll be back soon",
        "a list of posts",
    ]
    before = [screen.search(t, t) for t in texts]
    slow = screen.lowered
    for _ in range(HOT):
        screen.search("welcome home", "welcome home")
    deadline = time.monotonic() + 30
    while screen.lowered is slow and time.monotonic() < deadline:
        time.sleep(0.05)
    assert screen.lowered is not slow, "the faster twin was never swapped in"
    assert [screen.search(t, t) for t in texts] == before == [False, True, True, False]
