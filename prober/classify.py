"""Pure classification: what a probe saw + what the check expects + signatures -> verdict, reason.

Decision order, first that applies wins:

1. transport failure (`obs.failure`): down with that reason (dns, connect, tls, timeout,
   redirect); `vantage` and `internal` give unknown, since the target was not judged.
   A signature whose pattern does not compile, or a `json` expression that does not parse,
   gives unknown, internal: the check itself is broken (the configuration should refuse it).
2. status 429, unless the check expects it (`429` or `4xx` in `expect.status`): degraded, rate_limited.
3. status outside `expect.status`: down, http_status; `signature` names the error page if one
   also matches (a Cloudflare 502 page: http_status with signature cloudflare-5xx).
4. an error-page signature matches, whatever the status: down (or degraded for a signature with
   verdict degraded), error_page (rate_limited for `rate-limited`: "API rate limit exceeded" in
   a 200 GraphQL `errors` list). When several match, an envelope (`fallback`, "errors: ...")
   yields to any other, a down one beats a degraded one, a user signature beats a built-in one,
   then the earlier in the given order wins.
5. `body_contains`, `body_not_contains` or `json` fails: down, content.
6. latency over `max_latency`: degraded, slow; then certificate expiring in less than
   `cert_min_days`: degraded, cert_expiring.
7. otherwise up.

Signatures are never run over the raw body. They are matched (`prober.signatures.match`) against
the parts of the response where an error page states its error (see `prober.signatures.ZONES`),
which `prober.page` takes apart: the HTML title, the main headings (every h1 and the first
h1-h3), the visible text of a short page (scripts, styles, templates, noscript, comments, hidden
elements and link texts left out; one block per line), a short plain-text body, and the error
fields of a JSON body ("errors: Over capacity"). A long page (more than `SHORT_TEXT` visible
characters of its own) is judged by its title and main headings only: an article that quotes
"Something went wrong" is up, and its cost stays low. A title matches a phrase only as a whole,
and generic signatures count only on a body that says little (`prober.signatures.match`).

Bodies are decoded with the charset of the byte order mark, the content-type header or an HTML
<meta> tag, else UTF-8, replacing invalid bytes. `classify` never raises.

What a body says (the signature it matches, what is wrong with its content) depends only on its
bytes, its content-type and the check's signatures and expectations: `_Memo` remembers it by the
body's digest, so a target that answers the same bytes every time (a health endpoint, a static
page) has them taken apart once, not at every probe.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import jmespath
from jmespath.exceptions import JMESPathError

from prober.model import Classification, Observation, Reason, Verdict
from prober.page import NOT_JSON, SHORT_TEXT, Body, short
from prober.signatures import Signature
from prober.signatures.match import Hit, Matcher, matcher_for

__all__ = ["SHORT_TEXT", "Expectations", "classify", "status_matches"]


class Expectations(Protocol):
    """What a healthy response looks like; provided by the configuration (`expect:`)."""

    @property
    def status(self) -> Sequence[str]: ...  # codes ("200") or classes ("2xx")
    @property
    def body_contains(self) -> Sequence[str]: ...
    @property
    def body_not_contains(self) -> Sequence[str]: ...
    @property
    def json(self) -> Sequence[str]: ...  # JMESPath expressions that must be truthy
    @property
    def max_latency(self) -> float | None: ...  # seconds
    @property
    def cert_min_days(self) -> float | None: ...


def classify(obs: Observation, expect: Expectations, signatures: Sequence[Signature]) -> Classification:
    """Judge one observation; total: any failure of the classifier itself is an unknown verdict."""
    try:
        return _classify(obs, expect, signatures)
    except Exception as exc:  # a bug here must not stop the prober: record it as a value
        return Classification(
            Verdict.UNKNOWN, Reason.INTERNAL, None, f"classifier: {type(exc).__name__}: {exc}"
        )


def status_matches(code: int, patterns: Sequence[str]) -> bool:
    """Whether `code` is one of `patterns`: codes like "200" or classes like "2xx"."""
    text = str(code)
    if len(text) != 3:
        return any(str(raw).strip() == text for raw in patterns)
    for raw in patterns:
        pattern = str(raw).strip().lower()
        if pattern == text or (len(pattern) == 3 and pattern.endswith("xx") and pattern[0] == text[0]):
            return True
    return False


def _classify(obs: Observation, expect: Expectations, signatures: Sequence[Signature]) -> Classification:
    if obs.failure is not None:
        unknown = obs.failure in (Reason.VANTAGE, Reason.INTERNAL)
        error = obs.error or f"{obs.failure} failure"
        return Classification(Verdict.UNKNOWN if unknown else Verdict.DOWN, obs.failure, None, error)
    if obs.status is None:
        return Classification(Verdict.UNKNOWN, Reason.INTERNAL, None, "no status and no failure recorded")
    matcher = matcher_for(signatures) if signatures else None
    if matcher is not None and matcher.broken:  # configuration validates patterns: a bug upstream
        return Classification(Verdict.UNKNOWN, Reason.INTERNAL, None, matcher.broken)
    body = Body(obs)
    said = MEMO.said(obs, matcher, expect)
    if said.hit is _UNSEEN:
        said.hit = matcher.best(body) if matcher is not None else None
    hit = said.hit
    name = hit.sig.name if hit else None
    if obs.status == 429 and not status_matches(429, expect.status):
        retry = obs.headers.get("retry-after")
        error = "status 429" + (f", retry after {retry.strip()[:40]}" if retry else "")
        return Classification(Verdict.DEGRADED, Reason.RATE_LIMITED, name, error)
    if not status_matches(obs.status, expect.status):
        wanted = [str(p) for p in expect.status] or ["nothing"]
        expected = " or ".join([", ".join(wanted[:-1]), wanted[-1]] if len(wanted) > 1 else wanted)
        return Classification(
            Verdict.DOWN, Reason.HTTP_STATUS, name, f"status {obs.status}, expected {expected}"
        )
    if hit is not None:  # reason error_page, or rate_limited for a page that says it throttles
        return Classification(hit.sig.verdict, hit.sig.reason, name, hit.describe())
    if said.problem is _UNSEEN:
        said.problem = _content(body, expect)
    problem = said.problem
    if isinstance(problem, Classification):
        return problem
    if problem is not None:
        if obs.truncated:
            problem += f" (body truncated at {len(obs.body)} bytes)"
        return Classification(Verdict.DOWN, Reason.CONTENT, None, problem)
    limit, latency = expect.max_latency, obs.latency_ms
    if limit is not None and latency is not None and latency > limit * 1000:
        error = f"latency {latency / 1000:.3g}s over {limit:g}s"
        return Classification(Verdict.DEGRADED, Reason.SLOW, None, error)
    days, min_days = obs.cert_days, expect.cert_min_days
    if days is not None and min_days is not None and days < min_days:
        error = f"certificate expires in {days:.1f} days, under {min_days:g}"
        return Classification(Verdict.DEGRADED, Reason.CERT_EXPIRING, None, error)
    return Classification(Verdict.UP)


# --- what a body said, remembered by its digest --------------------------------------------------

_UNSEEN: Any = object()


class _Said:
    """The body-dependent outcomes of one classification, filled as `_classify` reaches them."""

    __slots__ = ("hit", "problem")

    def __init__(self) -> None:
        self.hit: Hit | None = _UNSEEN
        self.problem: str | Classification | None = _UNSEEN


class _Memo:
    """The last `size` bodies' outcomes, by (matcher, expectations, content-type, digest of the bytes).

    Keys hold a 16-byte digest, never the body; the matcher and the expectations are the check's
    own objects (a reload makes new ones, so nothing judged under the old configuration is reused).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.hits = 0
        self._said: OrderedDict[tuple[Any, ...], _Said] = OrderedDict()

    def said(self, obs: Observation, matcher: Matcher | None, expect: Expectations) -> _Said:
        """The outcomes remembered for this body, or a fresh record to fill (and remember)."""
        digest = hashlib.blake2b(obs.body, digest_size=16).digest()
        key = (matcher, expect, obs.headers.get("content-type", ""), digest)
        try:
            said = self._said.get(key)
        except TypeError:  # expectations that cannot be hashed: nothing to remember them by
            return _Said()
        if said is not None:
            self.hits += 1
            self._said.move_to_end(key)
            return said
        said = self._said[key] = _Said()
        if len(self._said) > self.size:
            self._said.popitem(last=False)
        return said

    def __len__(self) -> int:
        return len(self._said)

    def clear(self) -> None:
        """Forget every body (tests; a memory-conscious caller)."""
        self._said.clear()
        self.hits = 0


MEMO = _Memo()


# --- expectations on content ----------------------------------------------------------------


def _content(body: Body, expect: Expectations) -> str | Classification | None:
    """What is wrong with the content, or None; a Classification when the check itself is broken."""
    text = body.text
    for wanted in expect.body_contains:
        if wanted not in text:
            return f'body does not contain "{wanted}"'
    for unwanted in expect.body_not_contains:
        if unwanted in text:
            return f'body contains "{unwanted}"'
    if not expect.json:
        return None
    doc = body.json
    if doc is NOT_JSON:
        return "body is not valid JSON"
    for expr in expect.json:
        try:
            compiled = _jmespath(expr)
        except (JMESPathError, ValueError, TypeError) as exc:
            return Classification(Verdict.UNKNOWN, Reason.INTERNAL, None, f"bad JMESPath {expr!r}: {exc}")
        try:
            value = compiled.search(doc)
        except (JMESPathError, ValueError, TypeError, RecursionError) as exc:
            return f"json {expr}: {exc}"
        if not _truthy(value):
            return f"json {expr} is not true (got {short(json.dumps(value, ensure_ascii=False), 60)})"
    return None


@lru_cache(maxsize=1024)
def _jmespath(expr: str) -> Any:
    return jmespath.compile(expr)


def _truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; 0 is true."""
    return not (value is None or value is False or (isinstance(value, str | list | dict) and not value))
