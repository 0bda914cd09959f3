"""The classifier: the corpus of real-looking pages, the decision order, inputs it must survive."""

from __future__ import annotations

import codecs
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prober.classify import MEMO, SHORT_TEXT, classify, status_matches
from prober.config import Expect
from prober.model import Classification, Observation, Reason, Verdict
from prober.page import SAYS_LITTLE
from prober.signatures import Signature, builtin_signatures

CORPUS = Path(__file__).parent / "corpus"
MANIFEST: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
}
BUILTIN = builtin_signatures()


DEFAULT = Expect()
UP = ("up", None, None)


def EP(signature: str, verdict: str = "down") -> tuple[str, str, str]:
    """An error page: verdict, reason error_page, signature."""
    return (verdict, "error_page", signature)


SWW = EP("something-went-wrong")
RL = ("degraded", "rate_limited", "rate-limited")


def obs(
    body: bytes | str = b"",
    status: int | None = 200,
    content_type: str | None = "text/html; charset=utf-8",
    **kwargs: Any,
) -> Observation:
    """An observation of a response; `kwargs` go to Observation."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    headers = dict(kwargs.pop("headers", {}))
    if content_type is not None:
        headers.setdefault("content-type", content_type)
    return Observation(
        url="https://example.com/", status=status, headers=headers, body=raw, bytes=len(raw), **kwargs
    )


def judge(observation: Observation, expect: Expect = DEFAULT, signatures: Any = BUILTIN) -> tuple[Any, ...]:
    """verdict, reason, signature as plain strings, for compact tables."""
    c = classify(observation, expect, signatures)
    return (str(c.verdict), None if c.reason is None else str(c.reason), c.signature)


# --- the corpus -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MANIFEST), ids=sorted(MANIFEST))
def test_corpus(name: str) -> None:
    entry = MANIFEST[name]
    path = CORPUS / name
    observation = obs(
        path.read_bytes(),
        status=entry.get("status", 200),
        content_type=entry.get("content_type", CONTENT_TYPES[path.suffix]),
        latency_ms=120.0,
    )
    result = classify(observation, DEFAULT, BUILTIN)
    assert (str(result.verdict), result.reason and str(result.reason), result.signature) == (
        entry["verdict"],
        entry.get("reason"),
        entry.get("signature"),
    ), result.error


def test_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name not in ("expected.yaml", "README.md")}
    assert files == set(MANIFEST)
    healthy = [n for n, e in MANIFEST.items() if e["verdict"] == "up"]
    assert len(MANIFEST) >= 150
    assert len(healthy) * 3 >= len(MANIFEST), "healthy pages, traps among them, are at least a third"
    assert {e.get("signature") for e in MANIFEST.values()} - {None} <= {s.name for s in BUILTIN}
    new = [n for n, e in MANIFEST.items() if "source" not in e]
    assert len(new) <= 85, "pages added since the corpus had 85 say where they came from"


def test_corpus_accuracy() -> None:
    # The figures the README states: every healthy page up (no false down), 97% right overall.
    right, false_downs = 0, []
    for name, entry in MANIFEST.items():
        path = CORPUS / name
        observation = obs(
            path.read_bytes(),
            status=entry.get("status", 200),
            content_type=entry.get("content_type", CONTENT_TYPES[path.suffix]),
        )
        verdict = str(classify(observation, DEFAULT, BUILTIN).verdict)
        right += verdict == entry["verdict"]
        if entry["verdict"] == "up" and verdict == "down":
            false_downs.append(name)
    assert false_downs == []
    assert right / len(MANIFEST) >= 0.97


def test_a_body_seen_again_is_judged_the_same_from_memory() -> None:
    # The memo reuses what a body said (its signature, its content problem) by digest: the same
    # bytes under another status, or under other expectations, must be judged as if fresh.
    fresh, again = [], []
    cases = [(200, DEFAULT), (503, DEFAULT), (200, Expect(body_contains=("Status",), max_latency=0.1))]
    for name, entry in sorted(MANIFEST.items()):
        path = CORPUS / name
        ctype = entry.get("content_type", CONTENT_TYPES[path.suffix])
        for status, expect in cases:
            observation = obs(path.read_bytes(), status=status, content_type=ctype, latency_ms=150.0)
            MEMO.clear()
            fresh.append(classify(observation, expect, BUILTIN))
            hits = MEMO.hits
            again.append(classify(observation, expect, BUILTIN))
            assert MEMO.hits == hits + 1, name
    assert again == fresh
    MEMO.clear()
    body = obs("<title>Something went wrong</title>", content_type="text/html")
    assert judge(body) == SWW
    # The same bytes under another content-type are another response: not taken from memory.
    judge(obs("<title>Something went wrong</title>", content_type="text/plain"))
    assert len(MEMO) == 2


def test_the_memo_is_bounded() -> None:
    MEMO.clear()
    for i in range(MEMO.size + 50):
        classify(obs(f"<p>healthy {i}</p>"), DEFAULT, BUILTIN)
    assert len(MEMO) == MEMO.size
    MEMO.clear()


def test_x_outage_error_message_names_the_page() -> None:
    page = (CORPUS / "x-2022-12-28-login.html").read_bytes()
    result = classify(obs(page), DEFAULT, BUILTIN)
    assert result.error is not None
    assert "Something went wrong, but don't fret" in result.error
    assert "page text" in result.error


# --- decision order ---------------------------------------------------------------------------

NGINX_502 = (CORPUS / "nginx-502.html").read_bytes()
ERROR_200 = (
    "<html><title>Oops</title><body><h1>Something went wrong</h1><p>Please try again.</p></body></html>"
)
HEALTHY = (
    "<html><head><title>Welcome</title></head><body><h1>Welcome to Acme</h1><p>All good.</p></body></html>"
)


@pytest.mark.parametrize(
    ("observation", "expect", "expected"),
    [
        pytest.param(
            obs(failure=Reason.DNS, error="name not found", status=None),
            DEFAULT,
            ("down", "dns", None),
            id="dns",
        ),
        pytest.param(
            obs(failure=Reason.CONNECT, error="refused", status=None),
            DEFAULT,
            ("down", "connect", None),
            id="connect",
        ),
        pytest.param(
            obs(failure=Reason.TLS, error="certificate expired", status=None),
            DEFAULT,
            ("down", "tls", None),
            id="tls",
        ),
        pytest.param(
            obs(failure=Reason.TIMEOUT, error="no response in 10s", status=None),
            DEFAULT,
            ("down", "timeout", None),
            id="timeout",
        ),
        pytest.param(
            obs(failure=Reason.REDIRECT, error="loop", status=302),
            DEFAULT,
            ("down", "redirect", None),
            id="redirect",
        ),
        pytest.param(
            obs(failure=Reason.VANTAGE, error="proxy unreachable", status=None),
            DEFAULT,
            ("unknown", "vantage", None),
            id="vantage-unknown",
        ),
        pytest.param(
            obs(failure=Reason.INTERNAL, error="bug", status=None),
            DEFAULT,
            ("unknown", "internal", None),
            id="internal-unknown",
        ),
        pytest.param(
            obs(ERROR_200, failure=Reason.TIMEOUT, status=200),
            DEFAULT,
            ("down", "timeout", None),
            id="failure-beats-body",  # a transport failure wins over any body
        ),
        pytest.param(
            obs(HEALTHY, status=None), DEFAULT, ("unknown", "internal", None), id="no-status-no-failure"
        ),
        pytest.param(
            obs("slow down", status=429), DEFAULT, ("degraded", "rate_limited", None), id="429-rate-limited"
        ),
        pytest.param(obs("slow down", status=429), Expect(status=("2xx", "429")), UP, id="429-expected"),
        pytest.param(obs("slow down", status=429), Expect(status=("2xx", "4xx")), UP, id="429-in-4xx"),
        pytest.param(
            obs(NGINX_502, status=502), DEFAULT, ("down", "http_status", "nginx-5xx"), id="502-with-signature"
        ),
        pytest.param(
            obs(HEALTHY, status=500), DEFAULT, ("down", "http_status", None), id="500-without-signature"
        ),
        pytest.param(obs(HEALTHY, status=301), DEFAULT, UP, id="301-default-ok"),
        pytest.param(obs(HEALTHY, status=404), Expect(status=("404",)), UP, id="404-expected"),
        pytest.param(
            obs(HEALTHY, status=200),
            Expect(status=("404",)),
            ("down", "http_status", None),
            id="200-not-expected",
        ),
        pytest.param(obs(ERROR_200), DEFAULT, SWW, id="200-error-page"),
        pytest.param(
            obs(ERROR_200, latency_ms=9000, cert_days=1),
            Expect(body_contains=("Welcome",), max_latency=1, cert_min_days=14),
            SWW,
            id="error-page-beats-rest",  # over content, latency and certificate
        ),
        pytest.param(obs(HEALTHY), Expect(body_contains=("Welcome", "Acme")), UP, id="body-contains-ok"),
        pytest.param(
            obs(HEALTHY),
            Expect(body_contains=("Welcome", "Dashboard")),
            ("down", "content", None),
            id="body-contains-missing",
        ),
        pytest.param(
            obs(HEALTHY),
            Expect(body_not_contains=("All good",)),
            ("down", "content", None),
            id="body-not-contains-present",
        ),
        pytest.param(obs(HEALTHY), Expect(body_not_contains=("Exception",)), UP, id="body-not-contains-ok"),
        pytest.param(
            obs(HEALTHY, latency_ms=5000),
            Expect(body_contains=("nope",), max_latency=1),
            ("down", "content", None),
            id="content-before-slow",  # content is checked before latency
        ),
        pytest.param(
            obs(HEALTHY, latency_ms=2500), Expect(max_latency=2), ("degraded", "slow", None), id="slow"
        ),
        pytest.param(obs(HEALTHY, latency_ms=2000), Expect(max_latency=2), UP, id="latency-at-limit"),
        pytest.param(obs(HEALTHY, latency_ms=None), Expect(max_latency=2), UP, id="latency-unknown"),
        pytest.param(
            obs(HEALTHY, latency_ms=2500, cert_days=3),
            Expect(max_latency=2, cert_min_days=14),
            ("degraded", "slow", None),
            id="slow-before-cert",  # latency before the certificate
        ),
        pytest.param(
            obs(HEALTHY, cert_days=3.5),
            Expect(cert_min_days=14),
            ("degraded", "cert_expiring", None),
            id="cert-expiring",
        ),
        pytest.param(obs(HEALTHY, cert_days=30), Expect(cert_min_days=14), UP, id="cert-ok"),
        pytest.param(obs(HEALTHY, cert_days=None), Expect(cert_min_days=14), UP, id="cert-unknown"),
        pytest.param(obs(HEALTHY), DEFAULT, UP, id="up"),
    ],
)
def test_decision_order(observation: Observation, expect: Expect, expected: tuple[Any, ...]) -> None:
    assert judge(observation, expect) == expected


@pytest.mark.parametrize(
    ("observation", "expect", "error"),
    [
        pytest.param(
            obs(failure=Reason.DNS, error="example.com: name not found", status=None),
            DEFAULT,
            "example.com: name not found",
            id="failure-error",
        ),
        pytest.param(
            obs(failure=Reason.CONNECT, status=None), DEFAULT, "connect failure", id="failure-without-error"
        ),
        pytest.param(
            obs("x", status=429, headers={"retry-after": "30"}),
            DEFAULT,
            "status 429, retry after 30",
            id="429",
        ),
        pytest.param(obs(HEALTHY, status=502), DEFAULT, "status 502, expected 2xx or 3xx", id="status"),
        pytest.param(
            obs(HEALTHY, status=503),
            Expect(status=("200", "201", "3xx")),
            "status 503, expected 200, 201 or 3xx",
            id="status-list",
        ),
        pytest.param(
            obs(HEALTHY),
            Expect(body_contains=("Dashboard",)),
            'body does not contain "Dashboard"',
            id="contains",
        ),
        pytest.param(
            obs(HEALTHY),
            Expect(body_not_contains=("All good",)),
            'body contains "All good"',
            id="not-contains",
        ),
        pytest.param(
            obs(HEALTHY, truncated=True),
            Expect(body_contains=("x-end",)),
            f"(body truncated at {len(HEALTHY)} bytes)",
            id="truncated",
        ),
        pytest.param(obs(HEALTHY, latency_ms=2500), Expect(max_latency=2), "latency 2.5s over 2s", id="slow"),
        pytest.param(
            obs(HEALTHY, cert_days=3.5),
            Expect(cert_min_days=14),
            "certificate expires in 3.5 days, under 14",
            id="cert",
        ),
    ],
)
def test_error_messages(observation: Observation, expect: Expect, error: str) -> None:
    result = classify(observation, expect, BUILTIN)
    assert result.error is not None
    assert error in result.error


def test_up_has_no_reason_signature_or_error() -> None:
    assert classify(obs(HEALTHY), DEFAULT, BUILTIN) == Classification(Verdict.UP)


@pytest.mark.parametrize(
    ("code", "patterns", "expected"),
    [
        pytest.param(200, ("2xx", "3xx"), True, id="2xx"),
        pytest.param(204, ("2XX",), True, id="class-upper"),
        pytest.param(302, ("2xx", "3xx"), True, id="3xx"),
        pytest.param(404, ("2xx", "3xx"), False, id="404-not-default"),
        pytest.param(404, ("404",), True, id="code"),
        pytest.param(404, (" 404 ",), True, id="spaces"),
        pytest.param(405, ("404",), False, id="other-code"),
        pytest.param(500, ("5xx",), True, id="5xx"),
        pytest.param(500, (), False, id="none"),
        pytest.param(200, ("xxx", "2x", "abc", ""), False, id="garbage"),
        pytest.param(1000, ("1xx",), False, id="four-digits"),
        pytest.param(99, ("99",), True, id="two-digits"),
    ],
)
def test_status_matches(code: int, patterns: tuple[str, ...], expected: bool) -> None:
    assert status_matches(code, patterns) is expected


# --- JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"errors": [{"code": 130, "message": "Over capacity"}]}, EP("over-capacity"), id="twitter-130"
        ),
        pytest.param(
            {"errors": [{"code": 34, "message": "Sorry, that page does not exist."}]},
            EP("json-errors"),
            id="twitter-34",
        ),
        pytest.param({"errors": ["boom"]}, EP("json-errors"), id="errors-strings"),
        pytest.param(
            {"data": None, "errors": [{"message": "boom"}]}, EP("graphql-errors"), id="graphql-null"
        ),
        pytest.param(
            {"data": {"a": 1}, "errors": [{"message": "partial"}]},
            EP("graphql-partial", "degraded"),
            id="graphql-partial",
        ),
        pytest.param({"data": {"a": 1}, "errors": []}, UP, id="graphql-empty"),
        pytest.param({"data": {"text": "Something went wrong, but don't fret"}}, UP, id="tweet-text"),
        pytest.param({"error": "unavailable"}, EP("json-error"), id="error-string"),
        pytest.param(
            {"error": {"message": "Backend Error", "code": 503}}, EP("json-error"), id="error-object"
        ),
        pytest.param({"error": True, "message": "nope"}, EP("json-error"), id="error-true"),
        pytest.param({"error": None, "result": [1, 2]}, UP, id="error-null"),
        pytest.param({"error": False}, UP, id="error-false"),
        pytest.param({"error": ""}, UP, id="error-empty"),
        pytest.param(
            {"errorMessage": "Task timed out after 3.00 seconds", "errorType": "Runtime"},
            EP("json-error"),
            id="lambda",
        ),
        pytest.param({"fault": {"faultstring": "Rate limit quota violation"}}, RL, id="apigee-quota"),
        pytest.param(
            {"fault": {"faultstring": "The Service is temporarily unavailable"}},
            EP("json-error"),
            id="apigee-fault",
        ),
        pytest.param({"status": "error", "message": "db down"}, EP("json-status-error"), id="status-error"),
        pytest.param({"status": "fail"}, EP("json-status-error"), id="status-fail"),
        pytest.param({"status": "ok"}, UP, id="status-ok"),
        pytest.param({"success": False}, EP("json-status-error"), id="success-false"),
        pytest.param({"success": True, "items": []}, UP, id="success-true"),
        pytest.param({"message": "Internal server error"}, EP("aws-api-gateway"), id="api-gateway"),
        # throttled inside an error envelope, served with 200: the message decides, not the envelope
        pytest.param({"errors": [{"code": 88, "message": "Rate limit exceeded"}]}, RL, id="twitter-88"),
        pytest.param(
            {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}, RL, id="shopify"
        ),
        pytest.param(
            {
                "data": None,
                "errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}],
            },
            RL,
            id="github-graphql",
        ),
        pytest.param(
            {
                "message": "API rate limit exceeded for 192.0.2.1. (But here's the good news: Authenticated "
                "requests get a higher rate limit.)",
                "documentation_url": "https://docs.example/rate",
            },
            RL,
            id="github-rest",
        ),
        pytest.param(
            {"error": {"code": 403, "message": "User Rate Limit Exceeded", "errors": [{"reason": "x"}]}},
            RL,
            id="google-user-rate",
        ),
        pytest.param(
            {"detail": "Request was throttled. Expected available in 5 seconds."}, UP, id="drf-detail"
        ),
        pytest.param({"errors": [{"message": "Too Many Requests"}]}, RL, id="too-many"),
        pytest.param(
            {"data": {"a": 1}, "errors": [{"message": "You have been rate limited"}]},
            RL,
            id="partial-throttled",
        ),
        pytest.param(  # the other errors are what throttling does to the query
            {"errors": [{"message": "Rate limit exceeded"}, {"message": "Internal error"}]},
            RL,
            id="throttled-and-failed",
        ),
        pytest.param({"errors": [{"message": "Internal error"}]}, EP("json-errors"), id="errors-other"),
        pytest.param({"message": "Something went wrong"}, SWW, id="message-phrase"),
        pytest.param({"message": "Something went wrong with my order"}, UP, id="message-sentence"),
        pytest.param({"message": "Hello"}, UP, id="message-hello"),
        pytest.param({"status": "maintenance"}, EP("json-maintenance"), id="status-maintenance"),
        pytest.param(
            {"type": "about:blank", "title": "Bad Gateway", "status": 502}, EP("json-problem"), id="problem"
        ),
        pytest.param([{"id": 1, "error": None}, {"id": 2, "error": None}], UP, id="list-ok"),
        pytest.param(
            [{"errors": [{"message": "batched query failed"}], "data": None}],
            EP("graphql-errors"),
            id="graphql-batch",
        ),
        pytest.param({"user": {"error": "nested, not an error field"}}, UP, id="nested-error"),
        pytest.param(
            {"sucesso": False, "mensagem": "Erro interno"}, EP("json-status-error"), id="pt-sucesso"
        ),
        pytest.param({"erfolg": False, "nachricht": "Serverfehler"}, EP("json-status-error"), id="de-erfolg"),
        pytest.param({"berhasil": False, "pesan": "Gagal memuat"}, EP("json-status-error"), id="id-berhasil"),
        pytest.param({"sucesso": True, "mensagem": "Pedido salvo"}, UP, id="pt-sucesso-true"),
        pytest.param({"code": 1, "msg": "ok?", "sucesso": True}, UP, id="envelope-sucesso-true"),
        pytest.param("a JSON string", UP, id="string"),
        pytest.param(42, UP, id="number"),
    ],
)
def test_json_bodies(body: Any, expected: tuple[Any, ...]) -> None:
    assert judge(obs(json.dumps(body), content_type="application/json")) == expected


def test_json_detected_without_content_type() -> None:
    body = '  {"errors":[{"message":"Over capacity","code":130}]}'
    assert judge(obs(body, content_type=None)) == EP("over-capacity")
    assert judge(obs(body, content_type="text/plain")) == EP("over-capacity")


def test_large_json_with_error_field_after_data() -> None:
    data = [{"id": i, "text": "hello world " * 5, "status": "active"} for i in range(2000)]
    body = json.dumps({"data": data, "errors": [{"message": "timeout fetching 3 items"}]})
    assert len(body) > 100_000
    assert judge(obs(body, content_type="application/json")) == EP("graphql-partial", "degraded")
    assert judge(obs(json.dumps({"data": data}), content_type="application/json")) == UP


@pytest.mark.parametrize(
    ("body", "exprs", "expected", "error"),
    [
        pytest.param(
            {"status": "ok", "db": {"up": True}}, ("status == 'ok'", "db.up"), UP, None, id="truthy"
        ),
        pytest.param(
            {"status": "degraded"},
            ("status == 'ok'",),
            ("down", "content", None),
            "json status == 'ok' is not true (got false)",
            id="false",
        ),
        pytest.param(
            {"items": []},
            ("items",),
            ("down", "content", None),
            "json items is not true (got [])",
            id="empty-list",
        ),
        pytest.param({"count": 0}, ("count",), UP, None, id="zero-is-true"),  # JMESPath: 0 is true
        pytest.param({"user": None}, ("user.name",), ("down", "content", None), "got null", id="null"),
        pytest.param(
            {"n": "x"}, ("length(n) > `3`",), ("down", "content", None), "is not true", id="comparison"
        ),
        pytest.param(
            {"n": 5}, ("length(n)",), ("down", "content", None), "json length(n): ", id="type-error"
        ),
    ],
)
def test_json_expectations(
    body: Any, exprs: tuple[str, ...], expected: tuple[Any, ...], error: str | None
) -> None:
    result = classify(obs(json.dumps(body), content_type="application/json"), Expect(json=exprs), BUILTIN)
    assert (str(result.verdict), result.reason and str(result.reason), result.signature) == expected
    if error is not None:
        assert result.error is not None
        assert error in result.error


@pytest.mark.parametrize(
    ("body", "truncated", "error"),
    [
        pytest.param("<html>not json</html>", False, "body is not valid JSON", id="html"),
        pytest.param(
            '{"status": "ok", "items": [1, 2',
            True,
            "body is not valid JSON (body truncated at",
            id="truncated",
        ),
        pytest.param("", False, "body is not valid JSON", id="empty"),
    ],
)
def test_json_expectations_on_non_json(body: str, truncated: bool, error: str) -> None:
    result = classify(
        obs(body, content_type="application/json", truncated=truncated), Expect(json=("status",)), ()
    )
    assert (result.verdict, result.reason) == (Verdict.DOWN, Reason.CONTENT)
    assert result.error is not None
    assert error in result.error


def test_invalid_jmespath_is_the_probers_fault() -> None:
    result = classify(obs("{}", content_type="application/json"), Expect(json=("a[?",)), ())
    assert (result.verdict, result.reason) == (Verdict.UNKNOWN, Reason.INTERNAL)


# --- where the words sit ----------------------------------------------------------------------

FILLER = (
    "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 40 + "</p>"
)


def page(body: str, title: str = "Acme") -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        pytest.param(page("<h1>Something went wrong</h1>"), SWW, id="h1"),
        pytest.param(page("<p>Something went wrong. Please try again later.</p>"), SWW, id="paragraph"),
        pytest.param(page("<p>Oops! Something went wrong.</p>"), SWW, id="oops"),
        pytest.param(page("<p>Sorry, something went wrong.</p>"), SWW, id="sorry"),
        pytest.param(page("<p>Something<br>went wrong</p>"), UP, id="split-by-br"),
        pytest.param(page("<p>Some<b>thing</b> went <i>wrong</i>.</p>"), SWW, id="inline-tags"),
        pytest.param(page("<p>Something&nbsp;went&#32;wrong&period;</p>"), SWW, id="entities"),
        pytest.param(page("<p>Users saw “Something went wrong” for hours.</p>"), UP, id="quoted-curly"),
        pytest.param(page("<p>“Something went wrong,” the message said.</p>"), UP, id="quoted-start"),
        pytest.param(
            page("<p>Something went wrong at the launch, and we learned a lot.</p>"), UP, id="sentence"
        ),
        pytest.param(
            page("<blockquote>Something went wrong</blockquote><p>said the app.</p>"), UP, id="blockquote"
        ),
        pytest.param(page("<p><code>Something went wrong</code> is our error string.</p>"), UP, id="code"),
        pytest.param(page('<p><a href="/x">Something went wrong</a></p>'), UP, id="link"),
        pytest.param(
            page("<div hidden><p>Something went wrong</p></div><p>Welcome</p>"), UP, id="hidden-attr"
        ),
        pytest.param(page('<div style="display:none">Something went wrong</div>'), UP, id="display-none"),
        pytest.param(
            page('<p title="the hidden gems">Something went wrong</p>'), SWW, id="hidden-in-a-value"
        ),
        pytest.param(page("<p class='hidden-xs'>Something went wrong</p>"), SWW, id="hidden-xs-class"),
        pytest.param(page('<div class="alert d-none">Something went wrong</div>'), UP, id="d-none"),
        pytest.param(page('<div aria-hidden="true">Something went wrong</div>'), UP, id="aria-hidden"),
        pytest.param(
            page("<style>.zz9{display:none}</style><div class='a zz9'>Something went wrong</div>"),
            UP,
            id="style-class-hidden",
        ),
        pytest.param(
            page("<style>.zz9{display:none}</style><div class='a zz8'>Something went wrong</div>"),
            SWW,
            id="style-class-other",
        ),
        pytest.param(
            page("<div hidden><div><div></div></div></div><p>Something went wrong</p>"),
            SWW,
            id="hidden-nested-closed",
        ),
        pytest.param(
            page("<script>document.write('<h1>Something went wrong</h1>')</script>"), UP, id="script"
        ),
        pytest.param(page("<!-- <h1>Something went wrong</h1> -->"), UP, id="comment"),
        pytest.param(page("<noscript><h1>Something went wrong</h1></noscript>"), UP, id="noscript"),
        pytest.param(page("<template><h1>Something went wrong</h1></template>"), UP, id="template"),
        pytest.param(page("<svg><title>Something went wrong</title></svg><p>Hi</p>"), UP, id="svg-title"),
        pytest.param(page("<textarea>Something went wrong</textarea>"), UP, id="textarea"),
        pytest.param(page("<h1>Welcome</h1>", title="Something went wrong"), SWW, id="title"),
        pytest.param(page("<h1>Welcome</h1>", title="Oops! Something went wrong."), SWW, id="title-oops"),
        # a title with a site name after the phrase: the page itself must say it too
        pytest.param(page("<h1>Welcome</h1>", title="Something went wrong | Acme"), UP, id="title-tail"),
        pytest.param(page("<h1>Welcome</h1>", title="Service Unavailable - Acme"), UP, id="title-tail-5xx"),
        pytest.param(
            page("<h1>Something went wrong</h1>", title="Something went wrong | Acme"),
            SWW,
            id="title-tail-h1",
        ),
        pytest.param(page("<p>Something went wrong? Contact us.</p>"), UP, id="question"),
        pytest.param(
            page("<h1>Welcome</h1>", title="Something went wrong at Acme: a post-mortem"),
            UP,
            id="title-headline",
        ),
        # long pages: phrases do not count at all (an error page says little), so no generic
        # signature does; a platform's own pattern counts in the title and main headings
        pytest.param(page("<h1>Something went wrong</h1>" + FILLER), UP, id="long-h1"),
        pytest.param(page(FILLER, title="Unicorn! · GitHub"), EP("github-error"), id="long-platform-title"),
        pytest.param(page("<h1>Netflix Site Error</h1>" + FILLER), UP, id="long-platform-phrase"),
        pytest.param(page(FILLER, title="Something went wrong"), UP, id="long-title"),
        pytest.param(
            page("<h1>Post-mortem</h1><p>Something went wrong.</p>" + FILLER), UP, id="long-paragraph"
        ),
        pytest.param(
            page("<h1>Post-mortem</h1><h2>Something went wrong</h2>" + FILLER), UP, id="long-second-heading"
        ),
        pytest.param(page("<h2>Something went wrong</h2>" + FILLER), UP, id="long-first-heading"),
        pytest.param(page(FILLER + "<h1>Something went wrong</h1>"), UP, id="long-late-h1"),
        pytest.param(
            page(FILLER + "<h1>OperationalError at /orders/</h1>"),
            EP("debug-exception-page"),
            id="long-late-debug",
        ),
        pytest.param(page(FILLER + "<h1 hidden>Something went wrong</h1>"), UP, id="long-late-hidden-h1"),
        pytest.param(
            page(FILLER + "<script>var t='<h1>Something went wrong</h1>'</script>"), UP, id="long-late-script"
        ),
        pytest.param(page(FILLER + "<p>Something went wrong.</p>"), UP, id="long-late-paragraph"),
    ],
)
def test_where_the_words_sit(html: str, expected: tuple[Any, ...]) -> None:
    assert judge(obs(html)) == expected


def test_short_page_threshold() -> None:
    # what the page says, links left out: an error page says little (SAYS_LITTLE); past
    # SHORT_TEXT its text is not read at all
    def said(n: int) -> str:
        return f"<p>{'word ' * (n // 4)}</p>"

    php = "<p>Fatal error: Uncaught PDOException: could not find driver</p>"
    assert judge(obs(page("<p>Something went wrong.</p>" + said(SAYS_LITTLE - 100)))) == SWW
    assert judge(obs(page("<p>Something went wrong.</p>" + said(SAYS_LITTLE + 100)))) == UP
    links = "".join(f'<a href="/c/{i}">Category number {i}</a> ' for i in range(150))  # a site's menu
    assert judge(obs(page(f"<nav>{links}</nav><h1>Something went wrong</h1><p>Try again later.</p>"))) == SWW
    assert judge(obs(page(php + said(SAYS_LITTLE + 100)))) == EP("php-fatal-error")
    assert judge(obs(page(php + said(SHORT_TEXT + 100)))) == UP


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param("no healthy upstream", "text/plain", EP("envoy-upstream"), id="envoy"),
        pytest.param("no healthy upstream\n", None, EP("envoy-upstream"), id="envoy-no-content-type"),
        pytest.param("upstream request timeout", "text/plain", EP("envoy-upstream"), id="envoy-timeout"),
        pytest.param("Internal Server Error", "text/plain", EP("http-5xx-page"), id="500-plain"),
        pytest.param("Bad Gateway", "text/plain", EP("http-5xx-page"), id="502-plain"),
        pytest.param("ok", "text/plain", UP, id="ok"),
        pytest.param("log line: no healthy upstream for cluster x\n" * 500, "text/plain", UP, id="long-log"),
        pytest.param("Something went wrong\n" + "x" * 10_000, "text/plain", UP, id="long-text"),
    ],
)
def test_plain_text(body: str, content_type: str | None, expected: tuple[Any, ...]) -> None:
    assert judge(obs(body, content_type=content_type)) == expected


@pytest.mark.parametrize(
    ("text", "signature"),
    [
        ("Something went wrong", "something-went-wrong"),
        ("Une erreur s'est produite", "something-went-wrong"),
        ("Un problème est survenu", "something-went-wrong"),
        ("Oups ! Une erreur est survenue.", "something-went-wrong"),
        ("Algo salió mal", "something-went-wrong"),
        ("Se produjo un error", "something-went-wrong"),
        ("Lo sentimos, ha ocurrido un error.", "something-went-wrong"),
        ("Etwas ist schiefgelaufen", "something-went-wrong"),
        ("Ein Fehler ist aufgetreten", "something-went-wrong"),
        ("Es ist ein Fehler aufgetreten. Bitte versuchen Sie es erneut.", "something-went-wrong"),
        ("問題が発生しました", "something-went-wrong"),
        ("エラーが発生しました", "something-went-wrong"),
        ("申し訳ございません。エラーが発生しました。", "something-went-wrong"),
        ("Sorry, something went wrong", "something-went-wrong"),
        ("An error occurred while processing your request.", "something-went-wrong"),
        ("Over capacity", "over-capacity"),
        ("We'll be back soon!", "maintenance"),
        ("We’ll be back soon", "maintenance"),
        ("Site under maintenance", "maintenance"),
        ("Site en maintenance", "maintenance"),
        ("Le site est actuellement en maintenance.", "maintenance"),
        ("Sitio en mantenimiento", "maintenance"),
        ("Volveremos pronto", "maintenance"),
        ("Wartungsarbeiten", "maintenance"),
        ("Wir sind bald zurück!", "maintenance"),
        ("メンテナンス中", "maintenance"),
        ("ただいまメンテナンス中です。", "maintenance"),
        ("502 Bad Gateway", "http-5xx-page"),
        ("Error 503", "http-5xx-page"),
        ("Erreur interne du serveur", "http-5xx-page"),
        ("Interner Serverfehler", "http-5xx-page"),
        ("内部サーバーエラー", "http-5xx-page"),
        ("ただいまアクセスが集中しております。", "overloaded"),
        ("Our servers are overloaded", "overloaded"),
        # "Something went wrong. Try again." and "Service unavailable", as the products write them
        ("Something went wrong. Try again.", "something-went-wrong"),
        ("Une erreur s'est produite. Veuillez réessayer.", "something-went-wrong"),
        ("Se produjo un error. Vuelve a intentarlo.", "something-went-wrong"),
        ("Leider ist ein Fehler aufgetreten.", "something-went-wrong"),
        ("問題が発生しました。再読み込みしてください。", "something-went-wrong"),
        ("出了点问题。请重试。", "something-went-wrong"),
        ("出错了，请稍后重试", "something-went-wrong"),
        ("很抱歉，出错了", "something-went-wrong"),
        ("页面加载失败，请刷新重试", "something-went-wrong"),
        ("發生錯誤，請稍後再試。", "something-went-wrong"),
        ("糟糕！出了點問題", "something-went-wrong"),
        ("문제가 발생했습니다. 다시 시도해 주세요.", "something-went-wrong"),
        ("죄송합니다. 오류가 발생했습니다.", "something-went-wrong"),
        ("Algo deu errado. Tente novamente.", "something-went-wrong"),
        ("Desculpe, algo correu mal.", "something-went-wrong"),
        ("Qualcosa è andato storto. Prova a ricaricare.", "something-went-wrong"),
        ("Spiacenti, si è verificato un errore.", "something-went-wrong"),
        ("Что-то пошло не так. Повторите попытку.", "something-went-wrong"),
        ("Извините, произошла ошибка.", "something-went-wrong"),
        ("Bir şeyler ters gitti. Yeniden yüklemeyi dene.", "something-went-wrong"),
        ("Üzgünüz, bir sorun oluştu.", "something-went-wrong"),
        ("BIR HATA OLUŞTU", "something-went-wrong"),
        ("Coś poszło nie tak. Spróbuj ponownie.", "something-went-wrong"),
        ("Przepraszamy, wystąpił błąd.", "something-went-wrong"),
        ("Er is iets misgegaan. Probeer het opnieuw.", "something-went-wrong"),
        ("Oeps, er is een fout opgetreden.", "something-went-wrong"),
        ("حدث خطأ ما. يُرجى إعادة المحاولة.", "something-went-wrong"),
        ("عذرًا، حدث خطأ ما.", "something-went-wrong"),
        ("कुछ गलत हो गया. फिर से कोशिश करें.", "something-went-wrong"),
        ("क्षमा करें, कुछ गड़बड़ी हुई।", "something-went-wrong"),
        ("Terjadi kesalahan. Coba lagi.", "something-went-wrong"),
        ("Maaf, ada yang salah.", "something-went-wrong"),
        ("Đã xảy ra lỗi. Vui lòng thử lại.", "something-went-wrong"),
        ("Rất tiếc, đã xảy ra sự cố.", "something-went-wrong"),
        ("เกิดข้อผิดพลาด โปรดลองอีกครั้ง", "something-went-wrong"),
        ("ขออภัย เกิดข้อผิดพลาดบางอย่าง", "something-went-wrong"),
        ("Service temporairement indisponible", "http-5xx-page"),
        ("Servicio temporalmente no disponible", "http-5xx-page"),
        ("Dienst vorübergehend nicht verfügbar", "http-5xx-page"),
        ("サービスを利用できません", "http-5xx-page"),
        ("服务暂时不可用", "http-5xx-page"),
        ("服務無法使用", "http-5xx-page"),
        ("서비스를 일시적으로 사용할 수 없습니다", "http-5xx-page"),
        ("Serviço temporariamente indisponível", "http-5xx-page"),
        ("Servizio temporaneamente non disponibile", "http-5xx-page"),
        ("Сервис временно недоступен", "http-5xx-page"),
        ("Hizmet geçici olarak kullanılamıyor", "http-5xx-page"),
        ("Usługa jest tymczasowo niedostępna", "http-5xx-page"),
        ("Service tijdelijk niet beschikbaar", "http-5xx-page"),
        ("الخدمة غير متاحة مؤقتًا", "http-5xx-page"),
        ("सेवा उपलब्ध नहीं है", "http-5xx-page"),
        ("Layanan tidak tersedia", "http-5xx-page"),
        ("Dịch vụ tạm thời không khả dụng", "http-5xx-page"),
        ("บริการไม่พร้อมใช้งานชั่วคราว", "http-5xx-page"),
        # round eight: overload without a subject, a system error as a cause, apologies for the
        # inconvenience before a temporary error, maintenance reworded, Joomla's code prefix
        ("ただいま大変混み合っております", "overloaded"),
        ("通信エラーが発生したため、ページを表示できません。", "something-went-wrong"),
        ("불편을 드려 죄송합니다. 일시적인 시스템 오류로 요청하신 페이지를 표시할 수 없습니다.", "outage"),
        (
            "ご迷惑をおかけして申し訳ございません。一時的なシステムエラーにより、ページを表示できません。",
            "outage",
        ),
        ("由于系统临时故障，页面暂时无法显示", "outage"),
        ("We apologize for the inconvenience. Something went wrong.", "something-went-wrong"),
        ("Estamos en mantenimiento", "maintenance"),
        ("Volveremos a estar disponibles en unas horas. ¡Gracias por tu paciencia!", "maintenance"),
        ("We're under maintenance", "maintenance"),
        ("We'll be back online in a few hours.", "maintenance"),
        ("Siamo in manutenzione", "maintenance"),
        ("Wir sind bald wieder erreichbar.", "maintenance"),
        ("Estaremos de volta em breve.", "maintenance"),
        ("Error: 0 - Error displaying the error page: Application Instantiation Error: x", "joomla-error"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isascii() else None,
)
def test_languages(text: str, signature: str) -> None:
    assert judge(obs(page(f"<h1>{text}</h1>"))) == ("down", "error_page", signature)
    assert judge(obs(page(f"<p>{text}</p>"))) == ("down", "error_page", signature)


@pytest.mark.parametrize(
    "text", ["Please reduce your request rate.", "SlowDown", "ThrottlingException", "Rate exceeded"]
)
def test_aws_throttles_are_rate_limited(text: str) -> None:
    assert judge(obs(page(f"<p>{text}</p>"))) == ("degraded", "rate_limited", "rate-limited")


@pytest.mark.parametrize(
    "text",
    [
        "How to fix a 502 Bad Gateway error",
        "Scheduled maintenance on Sunday 02:00-04:00 UTC",
        "Maintenance tips for your bike",
        "Une erreur s'est produite lors du paiement ?",
        "Algo salió mal en nuestro lanzamiento",
        "Wartungsarbeiten & Inspektion",
        "Twitterで「問題が発生しました」と表示される不具合",
        "メンテナンスのお知らせ",
        "Internal Server Error after upgrading to 4.2",
        "Why you see 'Something went wrong' on Twitter",
        "微博出了点问题，网友纷纷吐槽",  # a headline: the subject comes first
        "為什麼會出現「發生錯誤」？",
        "문제가 발생했습니다 오류 해결 방법",
        "Что-то пошло не так? Напишите нам",
        "Coś poszło nie tak z zamówieniem?",
        "เกิดข้อผิดพลาด?",
        "Something went wrong? We can help.",
        "システムエラーが発生したかどうかを確認する方法",
        "週末は店内が混み合っております",
        "서비스 이용에 불편을 드려 죄송합니다",
        "Sorry for the inconvenience",
        "Estamos realizando mejoras en nuestra web",
        "How to handle S3 SlowDown errors",
    ],
)
def test_headlines_that_quote_are_not_error_pages(text: str) -> None:
    assert judge(obs(page(f"<h1>{text}</h1><p>{text}</p>", title=text))) == UP


# --- charsets ---------------------------------------------------------------------------------

MSG_JA = "<html><head>{meta}<title>エラー</title></head><body><h1>エラーが発生しました</h1></body></html>"
MSG_FR = "<html><head>{meta}<title>Erreur</title></head><body><h1>Un problème est survenu</h1></body></html>"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(
            MSG_JA.format(meta="").encode("shift_jis"), "text/html; charset=Shift_JIS", id="shift-jis"
        ),
        pytest.param(MSG_JA.format(meta="").encode("cp932"), "text/html; charset=sjis", id="sjis-alias"),
        pytest.param(
            MSG_JA.format(meta="").encode("euc_jp"), 'text/html; charset="EUC-JP"', id="euc-jp-quoted"
        ),
        pytest.param(
            MSG_JA.format(meta='<meta charset="euc-jp">').encode("euc_jp"), "text/html", id="meta-charset"
        ),
        pytest.param(
            MSG_JA.format(
                meta='<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
            ).encode("cp932"),
            "text/html",
            id="meta-http-equiv",
        ),
        pytest.param(
            MSG_JA.format(meta="").encode("utf-16"), "text/html", id="utf16-bom"
        ),  # the BOM says UTF-16
        pytest.param(
            codecs.BOM_UTF8 + MSG_JA.format(meta="").encode("utf-8"),
            "text/html; charset=iso-8859-1",
            id="utf8-bom-beats-header",
        ),
        pytest.param(
            MSG_JA.format(meta="").encode("utf-8"), "text/html; charset=no-such-charset", id="unknown-charset"
        ),
        pytest.param(
            MSG_JA.format(meta="").encode("utf-8"), "text/html; charset=hex", id="bytes-codec"
        ),  # not a charset
        pytest.param(MSG_FR.format(meta="").encode("latin-1"), "text/html; charset=ISO-8859-1", id="latin1"),
        pytest.param(MSG_FR.format(meta="").encode("cp1252"), "text/html; charset=windows-1252", id="cp1252"),
        pytest.param(
            MSG_FR.format(meta='<meta charset="iso-8859-1">').encode("latin-1"), "text/html", id="latin1-meta"
        ),
        pytest.param(MSG_FR.format(meta="").encode("utf-8"), "text/html", id="utf8"),
    ],
)
def test_charsets(body: bytes, content_type: str) -> None:
    assert judge(obs(body, content_type=content_type))[0:2] == ("down", "error_page")


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    body = b"<html><title>Oops</title><body><h1>Something went wrong \xff\xfe</h1></body></html>"
    assert judge(obs(body)) == SWW
    assert judge(obs(body), Expect(body_contains=("\ufffd",))) == (
        "down",
        "error_page",
        "something-went-wrong",
    )


# --- user signatures --------------------------------------------------------------------------

X_PAGE = (CORPUS / "x-2022-12-28-login.html").read_bytes()
NEWS = (CORPUS / "news-article-quoting-x-outage.html").read_bytes()
FRET = Signature(name="x-fret", pattern="Something went wrong, but don.t fret", verdict=Verdict.DOWN)


@pytest.mark.parametrize(
    ("body", "signatures", "expected"),
    [
        pytest.param(X_PAGE, (FRET,), EP("x-fret"), id="x-fret-alone"),
        pytest.param(
            X_PAGE, (*BUILTIN, FRET), EP("x-fret"), id="x-fret-with-builtins"
        ),  # user beats built-in
        pytest.param(NEWS, (FRET,), UP, id="news-alone"),
        pytest.param(NEWS, (*BUILTIN, FRET), UP, id="news-with-builtins"),
        pytest.param(X_PAGE, (), UP, id="no-signatures"),
        pytest.param(X_PAGE, [FRET], EP("x-fret"), id="list"),  # any sequence, not only a tuple
        pytest.param(
            HEALTHY,
            (Signature("acme-welcome", "welcome to acme", Verdict.DEGRADED),),
            EP("acme-welcome", "degraded"),
            id="degraded-user",
        ),
        pytest.param(
            page("<p>Read-only mode: posting is disabled</p><p>Something went wrong</p>"),
            (Signature("ro", "^read-only mode", Verdict.DEGRADED), *BUILTIN),
            SWW,
            id="down-beats-degraded",  # a down signature beats a degraded one
        ),
        pytest.param(
            HEALTHY,
            (Signature("bad", "([unclosed", Verdict.DOWN), Signature("ok", "all good")),
            ("unknown", "internal", None),
            id="invalid-pattern-is-the-probers-fault",
        ),
        pytest.param(
            page("<p>abcabc</p>"),
            (Signature("backref", r"(abc)\1"), Signature("other", "zzz")),
            EP("backref"),
            id="backreference",
        ),
        pytest.param(
            page("<p>foo\nbar</p>"),
            (Signature("inline-flags", r"(?s)foo.bar"),),
            EP("inline-flags"),
            id="inline-flags",
        ),
        pytest.param(
            page("<p>Maintenance</p>"),
            (Signature("json-only", "maintenance", where=("json",)),),
            UP,
            id="where-json-not-html",
        ),
        pytest.param(
            '{"error":"maintenance"}',
            (Signature("json-only", "maintenance", where=("json",)),),
            EP("json-only"),
            id="where-json",
        ),
        pytest.param(
            page("<p>x</p>", title="Acme — Down"),
            (Signature("title-only", "down$", where=("title",)),),
            EP("title-only"),
            id="where-title",
        ),
    ],
)
def test_user_signatures(body: bytes | str, signatures: Any, expected: tuple[Any, ...]) -> None:
    content_type = "application/json" if isinstance(body, str) and body.startswith("{") else "text/html"
    assert judge(obs(body, content_type=content_type), DEFAULT, signatures) == expected


def test_invalid_pattern_is_reported_after_transport_failures() -> None:
    broken = (Signature("bad", "(unclosed"),)
    result = classify(obs(HEALTHY), DEFAULT, broken)
    assert (result.verdict, result.reason) == (Verdict.UNKNOWN, Reason.INTERNAL)
    assert result.error is not None
    assert "signature bad: invalid pattern" in result.error
    assert judge(obs(failure=Reason.DNS, status=None), DEFAULT, broken) == ("down", "dns", None)


def test_signature_set_change_is_seen() -> None:
    first = (Signature("a", "^alpha$"),)
    second = (Signature("b", "^alpha$"),)
    assert judge(obs(page("<p>alpha</p>")), DEFAULT, first)[2] == "a"
    assert judge(obs(page("<p>alpha</p>")), DEFAULT, second)[2] == "b"


# --- inputs it must survive -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(bytes(range(256)) * 64, "text/html", id="bytes-html"),
        pytest.param(bytes(range(256)) * 64, "application/json", id="bytes-json"),
        pytest.param(b"\x00" * 100_000, "text/plain", id="nul"),
        pytest.param(b"[" * 200_000, "application/json", id="deep-list"),
        pytest.param(b'{"a":' * 100_000, "application/json", id="deep-object"),
        pytest.param(b'{"n": 1' + b"0" * 10_000 + b"}", "application/json", id="huge-number"),
        pytest.param(b"<" * 300_000, "text/html", id="lt"),
        pytest.param(b"<a" * 150_000, "text/html", id="unclosed-tags"),
        pytest.param(b"<a'" * 100_000, "text/html", id="unclosed-quotes"),
        pytest.param(b"<script>" * 50_000, "text/html", id="unclosed-scripts"),
        pytest.param(b"<!--" * 60_000, "text/html", id="unclosed-comments"),
        pytest.param(b"<title>" + b"x" * 300_000, "text/html", id="unclosed-title"),
        pytest.param(b"<h1>" * 60_000, "text/html", id="unclosed-h1"),
        pytest.param(b"<div hidden>" * 30_000 + b"Something went wrong", "text/html", id="nested-hidden"),
        pytest.param(b"<p>" + b"Something went wrong " * 20_000, "text/html", id="long-error-text"),
        pytest.param(b"<h1>" + b"Something went wrong " * 20_000, "text/html", id="long-heading"),
        pytest.param(b"<title>" + b"x" * 200_000 + b"</title>", "text/html", id="long-title"),
        pytest.param(b"<![CDATA[<![foo[<!bar" * 1_000, "text/html", id="marked-sections"),
        pytest.param(b"<?xml?><a><b><c>" * 20_000, "application/xml", id="xml"),
        pytest.param(b"\xef\xbb\xbf\xff\xfe\x00\x00", "text/html; charset=utf-16", id="bad-utf16"),
        pytest.param(b"\xfe\xff\x00", "text/html", id="odd-bom"),
        pytest.param(b"", "text/html; charset=; charset=\x00", id="bad-content-type"),
        pytest.param(b"<html>" + "İ".encode() * 50_000, "text/html", id="expanding-lower"),
        pytest.param(("a" * 5_000 + "\n").encode() * 1_000, "text/plain", id="huge-plain"),
    ],
)
def test_garbage_never_raises_and_stays_fast(body: bytes, content_type: str) -> None:
    expect = Expect(body_contains=("x",), json=("a.b",))
    started = time.perf_counter()
    for signatures in (BUILTIN, ()):
        result = classify(obs(body, content_type=content_type), expect, signatures)
        assert isinstance(result, Classification)
        assert not (result.error or "").startswith("classifier:")
    assert time.perf_counter() - started < 2.0


def test_large_healthy_page_is_cheap() -> None:
    body = (CORPUS / "large-product-listing.html").read_bytes()
    observation = obs(body)
    classify(observation, DEFAULT, BUILTIN)  # compile once
    started = time.perf_counter()
    for _ in range(20):
        assert classify(observation, DEFAULT, BUILTIN).verdict == Verdict.UP
    assert (time.perf_counter() - started) / 20 < 0.02  # typically about 1 ms


_HTMLISH = st.lists(
    st.sampled_from(
        [
            *"<>/!-='\" \n&#;abcdehilmnoprstuvwxy123",
            "script",
            "h1",
            "title",
            "style",
            "hidden",
            "{",
            "}",
            "[",
            "]",
            "errors",
            ":",
            "display:none",
            "Something went wrong",
            "エラーが発生しました",
        ]
    ),
    max_size=200,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(st.binary(max_size=2000), _HTMLISH.map(str.encode)),
    status=st.one_of(st.none(), st.integers(min_value=-1000, max_value=100_000)),
    headers=st.dictionaries(
        st.sampled_from(["content-type", "retry-after", "x-other"]),
        st.one_of(
            st.text(max_size=60),
            st.sampled_from(
                ["text/html; charset=shift_jis", "application/json", "text/plain; charset=utf-16"]
            ),
        ),
    ),
    failure=st.one_of(st.none(), st.sampled_from(list(Reason))),
    latency=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    cert_days=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    truncated=st.booleans(),
)
def test_classify_is_total(
    body: bytes,
    status: int | None,
    headers: dict[str, str],
    failure: Reason | None,
    latency: float | None,
    cert_days: float | None,
    truncated: bool,
) -> None:
    observation = Observation(
        url="https://example.com/",
        status=status,
        headers=headers,
        body=body,
        truncated=truncated,
        latency_ms=latency,
        cert_days=cert_days,
        failure=failure,
    )
    expect = Expect(
        status=("2xx", "404"), body_contains=("a",), json=("a",), max_latency=1.0, cert_min_days=7.0
    )
    for signatures in (BUILTIN, (FRET,)):
        result = classify(observation, expect, signatures)
        assert result.verdict in Verdict
        assert not (result.error or "").startswith("classifier:")
        assert (result.reason is None) == (result.verdict == Verdict.UP)


# --- what an error page is, beside how much it says --------------------------------------------


SWW_H1 = "<h1>Something went wrong</h1>"


def _short(body: str, head: str = "") -> str:
    return f"<html><head><title>Acme</title>{head}</head><body>{body}</body></html>"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_short("<h1>Something went wrong</h1>", '<meta property="og:type" content="music.song">'), UP),
        (_short("<h1>Something went wrong</h1>", '<meta property="og:type" content="website">'), SWW),
        (_short(SWW_H1 + '<script type="application/ld+json">{"@type": "Product"}</script>'), UP),
        (_short(SWW_H1 + '<script type="application/ld+json">{"@type": "WebSite"}</script>'), SWW),
        (_short('<div itemscope itemtype="https://schema.org/Book"><h1>Something went wrong</h1></div>'), UP),
        (_short("<h1>Something went wrong</h1><video src=v.mp4></video>"), UP),
        (_short("<h1>Something went wrong</h1>" + "<h2>x</h2>" * 4), UP),
        (_short("<h1>Something went wrong</h1>" + "<h2>x</h2>" * 3), SWW),
        (_short("<table>" + "<tr><td>503</td><td>Service Unavailable</td></tr>" * 5 + "</table>"), UP),
        (_short("<table><tr><td>503</td><td>Service Unavailable</td></tr></table>"), EP("laravel-5xx")),
        (_short("<p>Since Monday:</p><pre>502 Bad Gateway</pre><p>any idea?</p>"), UP),
        (_short("<pre>Internal Server Error</pre>"), EP("http-5xx-page")),
    ],
    ids=[
        "og-song",
        "og-website-is-no-content",
        "json-ld-product",
        "json-ld-website",
        "microdata-book",
        "video",
        "five-headings",
        "four-headings",
        "reference-table",
        "laravel-whole-page",
        "pre-quoted-in-a-thread",
        "pre-is-the-page",
    ],
)
def test_content_pages_are_not_error_pages(body: str, expected: tuple[Any, ...]) -> None:
    assert judge(obs(body)) == expected


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"code": 500, "msg": "boom", "data": None}, EP("json-code-error")),
        ({"code": "E500", "message": "boom"}, EP("json-code-error")),
        ({"code": 429, "msg": "slow down", "data": None}, RL),
        ({"resultCode": "E429", "resultMsg": "x"}, RL),
        ({"error_code": "RATE_LIMIT", "message": "x"}, RL),
        ({"code": 0, "msg": "boom", "data": None}, UP),
        ({"code": "00000", "msg": "ok"}, UP),
        ({"code": 200, "msg": "success", "data": None}, UP),
        ({"code": 3, "msg": "SUCCESS"}, UP),
        ({"code": 3, "msg": "查询成功", "data": None}, UP),
        ({"code": 10001, "msg": "boom", "data": {"id": 1}}, UP),
        ({"code": 500, "msg": "boom", "success": True}, UP),
        ({"code": 500, "data": None}, UP),
        ({"data": {"a": None, "b": None}, "errors": [{"message": "x"}]}, EP("graphql-errors")),
        ({"data": {"a": 1, "b": None}, "errors": [{"message": "x"}]}, EP("graphql-partial", "degraded")),
    ],
    ids=[
        "code-500",
        "code-string",
        "code-429",
        "code-e429",
        "code-rate-limit",
        "code-0",
        "code-zeros",
        "code-200",
        "message-success",
        "message-chenggong",
        "business-code-with-data",
        "success-true",
        "no-message",
        "graphql-all-null",
        "graphql-partial",
    ],
)
def test_code_envelopes(doc: Any, expected: tuple[Any, ...]) -> None:
    assert judge(obs(json.dumps(doc, ensure_ascii=False), content_type="application/json")) == expected


@pytest.mark.parametrize(
    ("zone", "text", "expected"),
    [
        ("h1", "HTTP Error 503 - what it means", UP),
        ("h1", "HTTP Status 500 – Internal Server Error", EP("java-server-5xx")),
        ("h1", "HTTP Error 500.19 - Internal Server Error when you open an IIS page", UP),
        ("h1", "HTTP Error 500.30 - ASP.NET Core app failed to start", EP("iis-error")),
        (
            "h1",
            "An unhandled exception occurred while processing the request.",
            EP("aspnetcore-developer-exception"),
        ),
        ("title", "GlassFish Server Open Source Edition 5.1.0 - Error report", EP("java-ee-error-report")),
        ("title", "KeyError at POST /cart", EP("debug-exception-page")),
    ],
    ids=["help-heading", "tomcat", "iis-docs-heading", "iis-500-30", "aspnetcore", "glassfish", "phoenix"],
)
def test_platform_titles_on_long_pages(zone: str, text: str, expected: tuple[Any, ...]) -> None:
    # A long page is judged by its title and main headings: only a platform's exact line counts.
    body = f"<html><head><title>{text if zone == 'title' else 'Docs'}</title></head><body>"
    body += (
        f"<h1>{text if zone == 'h1' else 'Docs'}</h1>"
        + "<p>words and more words</p>" * 200
        + "</body></html>"
    )
    assert judge(obs(body)) == expected


# --- round three: main content, phrases in sentences, vendors, JSON shapes, throttling -------


def _chrome_page(main: str, title: str = "Acme", columns: int = 5, tag: str = "h3") -> str:
    """A page with a real site's chrome around `main`: header, nav, cookie banner, footer columns."""
    nav = "".join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(8))
    cols = "".join(
        f"<div><{tag}>Column {c}</{tag}><ul>"
        + "".join(f'<li><a href="/c{c}/{i}">Link {c}.{i}</a></li>' for i in range(6))
        + "</ul></div>"
        for c in range(columns)
    )
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body>"
        f'<header role="banner"><a href="/">Acme</a><nav><ul>{nav}</ul></nav></header>'
        f'<main id="main">{main}</main>'
        f'<footer role="contentinfo">{cols}<p>© 2025 Acme Corporation. All rights reserved. '
        "Registered office: 1 Example Street, Springfield. Company number 0123456.</p></footer>"
        '<div id="cookie-consent"><h2>Your privacy</h2><p>We use cookies to improve your experience '
        "and to measure traffic. You can change your choice at any time in the settings.</p>"
        "<button>Accept all</button><button>Reject</button></div></body></html>"
    )


@pytest.mark.parametrize(
    ("main", "expected"),
    [
        ("<h1>Something went wrong</h1><p>Please try again in a few minutes.</p>", SWW),
        ("<h1>Qualcosa è andato storto</h1><p>Riprova tra qualche minuto.</p>", SWW),
        ("<h1>Trop de requêtes</h1><p>Réessayez dans une minute.</p>", RL),
        ("<h1>メンテナンス中</h1><p>ご不便をおかけして申し訳ございません。</p>", EP("maintenance")),
        # A healthy twin: the main content is a listing of results that quote the messages.
        (
            "".join(
                f'<div><a href="/r{i}"><h3>Result {i}</h3></a><p>Oops! Something went wrong.</p></div>'
                for i in range(4)
            ),
            UP,
        ),
        # A short article with its chrome: its main content has a structure of its own.
        ("<article><h1>Something went wrong</h1>" + "<h2>Part</h2><p>Text.</p>" * 5 + "</article>", UP),
    ],
    ids=["en", "it", "fr-rate-limit", "ja-maintenance", "results-listing", "article"],
)
def test_site_chrome_does_not_make_a_content_page(main: str, expected: tuple[Any, ...]) -> None:
    # Footer column headings, navigation and a cookie banner are on every page of a site: the
    # main content decides whether the page says little.
    assert judge(obs(_chrome_page(main))) == expected
    assert judge(obs(_chrome_page(main, tag="h4", columns=6))) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Oops… something went wrong on our side", SWW),
        ("Sorry, something went wrong. Please try again later.", SWW),
        ("Whoops! An error occurred, please try again later", SWW),
        ("¡Uy! Algo ha fallado", SWW),
        ("Hier ist leider etwas schiefgelaufen.", SWW),
        ("很抱歉，伺服器發生錯誤", SWW),
        ("Yah, ada yang salah nih", SWW),
        ("Xin lỗi, đã có lỗi xảy ra", SWW),
        ("ขออภัย ระบบขัดข้องชั่วคราว", SWW),
        ("कुछ गड़बड़ हो गई", SWW),
        ("We're currently down for scheduled maintenance", EP("maintenance")),
        ("Wir führen gerade Wartungsarbeiten durch", EP("maintenance")),
        ("Something went wrong with my order", UP),
        ("Something went wrong on our end? Read the guide", UP),
    ],
)
def test_phrases_in_a_short_sentence(line: str, expected: tuple[Any, ...]) -> None:
    assert judge(obs(f"<html><body><h1>{line}</h1><p>Acme</p></body></html>")) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<h1>Database Error</h1><p>The database has encountered a problem.</p>", EP("database-error")),
        ("<p>XenForo has experienced an internal SQL error and cannot continue.</p>", EP("database-error")),
        ("<h1>Erreur</h1><p>Erreur de lecture de la base de données</p>", EP("database-error")),
        # Not Heroku's page (its is a bare title and an iframe): what the page says names it.
        ("<h1>Application error</h1><p>Error reading from database</p>", EP("database-error")),
        ("<title>Application Error</title>", EP("heroku-application-error")),
        ("<h1>This function has crashed</h1><p>TypeError at handler</p>", EP("serverless-function-error")),
        ("<title>Worker threw exception | example.com | Cloudflare</title><h1>Error 1101</h1>"
         "<p>Worker threw exception</p>", EP("serverless-function-error")),
        ("<p>Error: could not handle the request</p>", EP("serverless-function-error")),
        ("<title>Litestar exception page</title><h1>KeyError</h1>", EP("debug-exception-page")),
        ("<title>Erreur : 500</title><h1>500</h1>", EP("http-5xx-page")),
        (
            "<title>Access denied | example.com used Cloudflare to restrict access</title>"
            "<h1>Error 1015</h1><p>Ray ID: 1234</p><h2>You are being rate limited</h2>"
            "<p>Cloudflare Ray ID: 1234 • Performance &amp; security by Cloudflare</p>",
            ("degraded", "rate_limited", "cloudflare-rate-limited"),
        ),
    ],
    ids=["vbulletin", "mybb-like", "moodle-fr", "not-heroku", "heroku", "netlify", "workers",
         "cloud-functions", "litestar", "joomla-fr", "cloudflare-1015"],
)  # fmt: skip
def test_vendor_error_pages(body: str, expected: tuple[Any, ...]) -> None:
    assert judge(obs(f"<html><body>{body}</body></html>")) == expected


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"status_code": 503, "detail": "Service Unavailable"}, EP("json-status-error")),
        ({"statusCode": 500, "error": "Internal Server Error"}, EP("json-error")),
        ({"Message": "An error has occurred.", "ExceptionMessage": "Timeout"}, SWW),
        ({"ExceptionMessage": "Timeout expired", "ExceptionType": "SqlException"}, EP("json-error")),
        ({"fault": "Service temporarily unavailable"}, EP("json-error")),
        ({"status_code": 200, "detail": "ok", "items": []}, UP),
        ({"error": {"type": "rate_limit_error", "message": "Slow down a little"}}, RL),
        ({"error": "Your app sent too many requests per minute"}, RL),
        ({"ok": False, "error_code": 429, "description": "Flood wait"}, RL),
        ({"errcode": 45011, "errmsg": "api minute-quota reach limit"}, RL),
        ({"code": -1015, "msg": "Too many new orders"}, RL),
        ({"error": {"error_code": 9, "error_msg": "Flood control", "request_params": []}}, RL),
        ({"error_code": 17, "error_msg": "Open api daily request limit reached", "log_id": 1}, RL),
        ({"error": "Storage quota exceeded"}, EP("json-error")),
        ({"error": {"code": 500, "message": "Backend error", "docs": "https://x.example/rate-limits"}},
         EP("json-error")),
        ({"data": {"note": "rate limit raised to 100/s"}, "status": "ok"}, UP),
    ],
    ids=["litestar-like", "nest-like", "aspnet-webapi", "aspnet-exception", "fault-string", "status-200",
         "stripe-like", "mid-sentence", "telegram-like", "wechat-45011", "binance-1015", "vk-9", "baidu-17",
         "storage-quota", "docs-link", "healthy-data"],
)  # fmt: skip
def test_json_error_shapes_and_throttling(doc: Any, expected: tuple[Any, ...]) -> None:
    # A rate-limit signal anywhere in a failing object beats the generic envelope.
    assert judge(obs(json.dumps(doc), content_type="application/json")) == expected


# --- round four: where a page states its error ------------------------------------------------

_TRACE = "Traceback (most recent call last):\n" + '  File "/srv/app.py", line 9, in view\n    x()\n' * 30


@pytest.mark.parametrize(
    ("main", "expected"),
    [
        # Cells of a table of status codes, items of a list, a caption: a reference page.
        ("<h1>Errors</h1><table><tr><td>503 Service Unavailable</td><td>Retry later.</td></tr>"
         "<tr><td>429 Too Many Requests</td><td>Slow down.</td></tr></table>", UP),
        ("<h1>Status codes</h1><ul><li>502 Bad Gateway</li><li>504 Gateway Timeout</li></ul>", UP),
        ("<h1>Gallery</h1><figure><img src=a.png alt=''><figcaption>Service Unavailable, in ink."
         "</figcaption></figure>", UP),
        # A layout table, one message per row, is still an error page; so is one list item.
        ("<table><tr><td>Service Unavailable</td></tr><tr><td>Please come back later.</td></tr></table>",
         EP("http-5xx-page")),
        ("<ul><li>Something went wrong</li></ul>", SWW),
        # A quotation inside prose is not the page's message; the same words as a line are.
        ('<h1>Apache</h1><p>A crashed script gives "The server encountered an internal error or '
         'misconfiguration and was unable to complete your request." in the browser.</p>', UP),
        ("<p>The server encountered an internal error or misconfiguration and was unable to complete "
         "your request.</p>", EP("apache-5xx")),
        # A sample in <pre> next to prose: a reference page, a song, whatever its heading.
        ("<h1>500 Internal Server Error</h1><p>The status of a crashed handler.</p><pre>HTTP/1.1 500\n"
         "Content-Length: 0\nConnection: close</pre>", UP),
        ("<h1>Something Went Wrong</h1><h2>The Owls</h2><pre>Something went wrong\nI can't say when\n"
         "You told me then</pre>", UP),
        # A traceback is not what the page says: the heading above it decides.
        (f"<h2>500 Internal Server Error</h2><p>The server failed.</p><pre>{_TRACE}</pre>",
         EP("http-5xx-page")),
        (f"<pre>{_TRACE}</pre>", EP("stack-trace-page", "down")),
        # An issue that pastes a traceback under a title that is not an error message.
        (f"<h1>Upload fails on large files</h1><p>Log below.</p><pre>{_TRACE}</pre>", UP),
    ],
    ids=["status-table", "status-list", "caption", "layout-table", "single-item", "quoted-apache",
         "apache-line", "pre-sample", "lyrics", "heading-and-traceback", "traceback-only", "issue"],
)  # fmt: skip
def test_where_a_page_states_its_error(main: str, expected: tuple[Any, ...]) -> None:
    assert judge(obs(f"<html><body>{main}</body></html>")) == expected
    if expected == UP:  # inside a site's chrome too
        assert judge(obs(_chrome_page(main))) == expected


_SOAP11 = (
    '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>Server was unable to "
    "process request.</faultstring></soap:Fault></soap:Body></soap:Envelope>"
)
_SOAP12 = (
    '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code>'
    "<env:Value>env:Receiver</env:Value></env:Code><env:Reason><env:Text>Timeout</env:Text></env:Reason>"
    "</env:Fault></env:Body></env:Envelope>"
)
_RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Status</title><item><title>Resolved'
    "</title><description>Something went wrong on our end; all is well now.</description></item>"
    "</channel></rss>"
)
_ATOM = (
    '<feed xmlns="http://www.w3.org/2005/Atom"><title>News</title><entry><title>502 Bad Gateway'
    "</title><summary>Oops! Something went wrong.</summary></entry></feed>"
)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (_SOAP11, "text/xml; charset=utf-8", EP("soap-fault")),
        (_SOAP12, "application/soap+xml", EP("soap-fault")),
        (_SOAP11.replace("Fault", "Result"), "text/xml", UP),
        (_RSS, "application/rss+xml", UP),
        (_RSS, "text/xml", UP),
        (_ATOM, "application/atom+xml", UP),
        (_ATOM, "application/xml", UP),
    ],
    ids=["soap11", "soap12", "soap-ok", "rss", "rss-text-xml", "atom", "atom-xml"],
)
def test_xml_documents(body: str, content_type: str, expected: tuple[Any, ...]) -> None:
    # A feed is content whatever its items quote; a SOAP fault is the service saying it failed.
    assert judge(obs(body, content_type=content_type)) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("We're having trouble displaying the page", SWW),
        ("The app isn't working at the moment", SWW),
        ("Ouch! We ran into a glitch.", SWW),
        ("Something is broken. Please try again later.", SWW),
        ("Our systems are busy", SWW),
        ("Unable to load the document", SWW),
        ("Hey there! Too many requests.", RL),
        ("You have sent too many requests in a short time", RL),
        ("Exceeded 40 requests per minute for this key.", RL),
        ("Our servers are fast and friendly? Read more", UP),
        ("Something broke my heart", UP),
    ],
)
def test_paraphrases_and_throttling_wording(line: str, expected: tuple[Any, ...]) -> None:
    assert judge(obs(f"<html><body><h1>{line}</h1><p>Acme</p></body></html>")) == expected


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"estado": "error", "mensaje": "No se pudo completar la operación"}, EP("json-status-error")),
        ({"erreur": "Service indisponible"}, EP("json-error")),
        ({"fehler": "Zu viele Anfragen, bitte warten"}, RL),
        ({"errors": "Exceeded 4 calls per second for app. Lower your request rates."}, RL),
        ({"estado": "ok", "mensaje": "Pedido creado"}, UP),
    ],
    ids=["es-status", "fr-error", "de-throttle", "calls-per-second", "es-ok"],
)
def test_error_keys_in_other_languages(doc: Any, expected: tuple[Any, ...]) -> None:
    assert judge(obs(json.dumps(doc, ensure_ascii=False), content_type="application/json")) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Le service est momentanément indisponible", EP("http-5xx-page")),
        ("Die Website ist derzeit nicht erreichbar", EP("outage")),
        ("This page isn't available right now", EP("http-5xx-page")),
        ("En este momento no podemos atenderte", SWW),
        ("伺服器暫時無法處理您的請求", SWW),
        ("서비스 접속이 원활하지 않습니다", SWW),
        ("Estamos com instabilidade no momento", SWW),
        ("सर्वर में तकनीकी समस्या", SWW),
        ("Hệ thống đang bận", EP("overloaded")),
        ("Nuestros servidores están ocupados", EP("overloaded")),
        ("アクセスが制限されています", RL),
        ("您的访问已被限制", RL),
        ("Something's gone wrong", SWW),
        ("We'll be right back.", EP("maintenance")),
        # A platform is named only on its own page: its wording elsewhere is generic.
        ("Sorry, something went wrong on our end.", SWW),
        ("Application error", EP("http-5xx-page")),
        ("Le service est momentanément indisponible ? Lisez notre guide", UP),
        ("Warum die Website derzeit nicht erreichbar ist", UP),
    ],
)
def test_round_five_wording(line: str, expected: tuple[Any, ...]) -> None:
    assert judge(obs(f"<html><body><h1>{line}</h1><p>Acme</p></body></html>")) == expected


_ISE = EP("http-5xx-page")


@pytest.mark.parametrize(
    ("main", "expected"),
    [
        ("<h1>Internal Server Error</h1><p>The second album of a noise duo.</p><p>€24.90</p>", UP),
        ("<h1>Internal Server Error</h1><p>The band's LP.</p><button>Add to cart</button>", UP),
        ("<h1>Bad Gateway</h1><p>Ein Hörspiel.</p><p>12,99 €</p><button>In den Warenkorb</button>", UP),
        ("<h1>Something went wrong</h1><p>A puzzle game. ★★★★☆</p><a class=btn>Buy now</a>", UP),
        ("<h1>Something went wrong</h1><p>Season 2, episode 4.</p><a href=/w>Watch now</a>", UP),
        ("<h1>Something went wrong</h1><p>A novel.</p><p>1,204 reviews</p>", UP),
        ("<h1>Service Unavailable</h1><p>A short film.</p><span itemprop='price'>4</span>", UP),
        ("<h1>Something went wrong</h1><p>Sorry about that.</p><a href=/>Go home</a>", SWW),
        ("<h1>Something went wrong</h1><button>Try again</button><a href=/help>Contact support</a>", SWW),
        ("<h1>Internal Server Error</h1><p>Error 500. Reference 5f2a.</p>", _ISE),
        ("<h1>Something went wrong</h1><ul>" + "<li><a href=/p>Headset</a> $19.99</li>" * 3 + "</ul>", SWW),
        ("<h1>Something went wrong</h1><ul>" + "<li><a href=/p>Buy now</a></li>" * 3 + "</ul>", SWW),
    ],
    ids=[
        "price", "add-to-cart", "de-price-and-cart", "rating-and-buy", "watch-link", "review-count",
        "itemprop-price", "go-home", "try-again", "reference-number", "recommended-prices",
        "recommended-cards",
    ],
)  # fmt: skip
def test_a_page_that_offers_something_is_content(main: str, expected: tuple[Any, ...]) -> None:
    # A product, album, game or film named after an error offers something (a price, "Add to
    # cart", a rating); an error page offers only a way out, or a list of other things to buy.
    assert judge(obs(_short(main))) == expected


OUTAGE = EP("outage")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Our store is temporarily unavailable", OUTAGE),
        ("The app is down right now. We're on it.", OUTAGE),
        ("We are currently experiencing a partial outage", OUTAGE),
        ("Le site est momentanément indisponible", OUTAGE),
        ("Estamos experimentando problemas técnicos en este momento", OUTAGE),
        ("Estamos enfrentando uma instabilidade no momento", OUTAGE),
        ("Die Website ist derzeit nicht erreichbar", OUTAGE),
        ("Technische Störung", EP("something-went-wrong")),  # a technical fault, said by either
        ("ただいまサイトをご利用いただけません", OUTAGE),
        ("现在网站暂时无法访问", UP),
        ("网站暂时无法访问", EP("something-went-wrong")),
        ("網站目前無法連線", OUTAGE),
        ("현재 시스템 장애가 발생했습니다", OUTAGE),
        ("Il negozio è temporaneamente non disponibile", OUTAGE),
        ("Магазин временно недоступен", OUTAGE),
        ("Sitemiz şu anda erişilemiyor", OUTAGE),
        ("Sklep jest chwilowo niedostępny", OUTAGE),
        ("Er is momenteel een storing", OUTAGE),
        ("الموقع غير متاح مؤقتًا", OUTAGE),
        ("साइट अभी उपलब्ध नहीं है", OUTAGE),
        ("Kami sedang mengalami gangguan", OUTAGE),
        ("Trang web tạm thời không thể truy cập", OUTAGE),
        ("เว็บไซต์ไม่พร้อมใช้งานชั่วคราว", OUTAGE),
        ("There was a technical issue on our side. Please refresh.", EP("problem-on-our-end")),
        ("Sorry, something's not right.", EP("problem-on-our-end")),
        ("抱歉，发生了一些问题", EP("problem-on-our-end")),
        ("Is the site down right now?", UP),
        ("How we handled last week's outage", UP),
        ("Our shop is open again", UP),
        ("Something is not right with this recipe, says our chef", UP),
    ],
)
def test_outages_and_reworded_errors(line: str, expected: tuple[Any, ...]) -> None:
    # The subject of an outage is often the site, shop or app, not "the service".
    assert judge(obs(f"<html><body><h1>{line}</h1><p>Acme</p></body></html>")) == expected


QUOTA = ("degraded", "rate_limited", "quota-reached")


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ('{"durum": "hata", "mesaj": "Sunucu hatası"}', "application/json", EP("json-status-error")),
        ('{"durum": "basarili", "mesaj": "Sipariş alındı"}', "application/json", UP),
        ('{"status": "gagal", "pesan": "Terlalu banyak permintaan"}', "application/json", RL),
        ('{"kesalahan": "Server sedang sibuk"}', "application/json", EP("overloaded")),
        ('{"status": "error", "message": "本日のAPI呼び出し回数が上限に達しました"}', "application/json",
         QUOTA),
        ("Connection failed: could not find driver", "text/html", EP("php-db-connection-failed")),
        ("Connection failed: SQLSTATE[HY000] [2002] Connection refused", "text/html", EP("sql-error")),
        ("<h1>PDO tutorial</h1><p>If the driver is missing you will see <code>Connection failed: "
         "could not find driver</code> instead of your data; install php-mysql.</p>", "text/html", UP),
    ],
    ids=["tr-status", "tr-ok", "id-throttle", "id-error", "ja-quota", "pdo-driver", "pdo-refused",
         "pdo-tutorial"],
)  # fmt: skip
def test_error_keys_quotas_and_php_connection(
    body: str, content_type: str, expected: tuple[Any, ...]
) -> None:
    assert judge(obs(body, content_type=content_type)) == expected
