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
   verdict degraded), error_page. When several match, a down one beats a degraded one, a user
   signature beats a built-in one, then the earlier in the given order wins.
5. `body_contains`, `body_not_contains` or `json` fails: down, content.
6. latency over `max_latency`: degraded, slow; then certificate expiring in less than
   `cert_min_days`: degraded, cert_expiring.
7. otherwise up.

Signatures are never run over the raw body. They are matched against parts of the response
where an error page states its error (see `prober.signatures.ZONES`): the HTML title, the main
headings (every h1 and the first h1-h3), the visible text of a short page (scripts, styles,
templates, noscript, comments, hidden elements and link texts left out; one block per line),
a short plain-text body, and the error fields of a JSON body ("errors: Over capacity"). A long
page (more than `SHORT_TEXT` visible characters) is judged by its title and main headings only:
an article that quotes "Something went wrong" is up, and its cost stays low.

Bodies are decoded with the charset of the byte order mark, the content-type header or an HTML
<meta> tag, else UTF-8, replacing invalid bytes. `classify` never raises.
"""

from __future__ import annotations

import codecs
import contextlib
import html
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import jmespath
from jmespath.exceptions import JMESPathError

from prober.model import Classification, Observation, Reason, Verdict
from prober.signatures import FLAGS, LINE_TEMPLATE, ZONES, Signature, compile_pattern

SHORT_TEXT = 2000  # visible characters: an error page says little
_MAX_TAGS = 1500  # elements read one by one; past that a page is long, and skimmed
_SKIM_WINDOW = 32768  # characters of a long page skimmed for h1 headings after the scan stops
_MAX_HEADINGS = 32
_MAX_JSON_LINES = 32

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
    matcher = _matcher(signatures) if signatures else None
    if matcher is not None and matcher.broken:  # configuration validates patterns: a bug upstream
        return Classification(Verdict.UNKNOWN, Reason.INTERNAL, None, matcher.broken)
    body = _Body(obs)
    hit = matcher.best(body) if matcher is not None else None
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
    if hit is not None:
        return Classification(hit.sig.verdict, Reason.ERROR_PAGE, name, hit.describe())
    problem = _content(body, expect)
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


# --- expectations on content ----------------------------------------------------------------


def _content(body: _Body, expect: Expectations) -> str | Classification | None:
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
    if doc is _NOT_JSON:
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
            return f"json {expr} is not true (got {_short(json.dumps(value, ensure_ascii=False), 60)})"
    return None


@lru_cache(maxsize=1024)
def _jmespath(expr: str) -> Any:
    return jmespath.compile(expr)


def _truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; 0 is true."""
    return not (value is None or value is False or (isinstance(value, str | list | dict) and not value))


# --- the response, decoded once, taken apart lazily -----------------------------------------

_UNSET: Any = object()
_NOT_JSON: Any = object()


@dataclass(slots=True)
class _Body:
    """The decoded body and the parts signatures look at, each computed at most once."""

    obs: Observation
    _text: str | None = None
    _json: Any = _UNSET
    _zones: dict[str, list[str]] | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = _decode(self.obs.body, self.obs.headers.get("content-type", ""))
        return self._text

    @property
    def json(self) -> Any:
        """The parsed JSON body, or _NOT_JSON."""
        if self._json is _UNSET:
            self._json = _NOT_JSON
            if "json" in self.obs.content_type or self.text[:64].lstrip().startswith(("{", "[")):
                with contextlib.suppress(ValueError, RecursionError):
                    self._json = json.loads(self.text)
        return self._json

    @property
    def zones(self) -> dict[str, list[str]]:
        """Zone name -> the strings of the body signatures of that zone are matched against."""
        if self._zones is None:
            self._zones = self._take_apart()
        return self._zones

    def _take_apart(self) -> dict[str, list[str]]:
        text, ctype = self.text, self.obs.content_type
        head = text[:64].lstrip()
        markup = "html" in ctype or "xml" in ctype
        if not markup and head.startswith(("{", "[")):
            big = len(text) > 16384
            if (big and '"error' not in text and '"fault"' not in text) or _JSON_HINT.search(text) is None:
                return {}  # no error field anywhere (a long body with only "status": a healthy one)
            if self.json is not _NOT_JSON:
                return {"json": _json_lines(self.json)}
        if markup or head.startswith("<"):
            return _html_zones(text, xml="xml" in ctype and "html" not in ctype)
        if len(text) > SHORT_TEXT * 4 or len(text) - text.count(" ") - text.count("\n") > SHORT_TEXT:
            return {}
        return {"text": ["\n".join(filter(None, (_clean(line) for line in text.splitlines())))]}


# --- charset ----------------------------------------------------------------------------------

_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([\w.:-]{1,40})""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([\w.:-]{1,40})""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Labels browsers decode with a superset (WHATWG Encoding): what the user would see.
_ALIASES = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932",
    "windows-31j": "cp932", "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030",
}  # fmt: skip


@lru_cache(maxsize=256)
def _codec(label: str) -> str | None:
    name = _ALIASES.get(label.lower(), label)
    try:
        b"".decode(name)  # LookupError for unknown names and bytes-to-bytes codecs such as hex
    except LookupError:
        return None
    return name


def _decode(body: bytes, content_type: str) -> str:
    """The body as text: BOM, then content-type charset, then <meta> charset, then UTF-8."""
    codec = None
    for bom, name in _BOMS:
        if body.startswith(bom):
            codec, body = name, body[len(bom) :]
            break
    if codec is None and (m := _CHARSET.search(content_type)):
        codec = _codec(m.group(1))
    if codec is None and (meta := _META_CHARSET.search(body[:1024])):
        codec = _codec(meta.group(1).decode("ascii", "replace"))
        codec = (
            "utf-8" if codec and codec.startswith("utf-16") else codec
        )  # a <meta> read as ASCII is not UTF-16
    try:
        return body.decode(codec or "utf-8", errors="replace")
    except (LookupError, ValueError):
        return body.decode("utf-8", errors="replace")


# --- text normalisation -----------------------------------------------------------------------

_FOLD = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ",
     "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\ufeff": None, "\u00ad": None}
)  # fmt: skip


def _clean(text: str) -> str:
    """Entities decoded, quotes folded, NFKC, whitespace collapsed: what signatures are written for."""
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text.translate(_FOLD))
    return " ".join(text.split())  # str.split and re's \s agree on what whitespace is


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- JSON error fields ------------------------------------------------------------------------

_JSON_HINT = re.compile(r'"(?:errors?|error\w+|message|status|success|ok|fault|title|detail|type)"\s*:')
_MESSAGE_KEYS = ("message", "detail", "title", "description", "error_description", "msg", "reason", "error")


def _message(value: Any) -> str:
    """The human message of an error value: a string, or an object's message-like field."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _MESSAGE_KEYS:
            if isinstance(value.get(key), str) and value[key]:
                return str(value[key])
        return _short(json.dumps(value, ensure_ascii=False, default=str), 200)
    if isinstance(value, list) and value:
        return _message(value[0])
    return json.dumps(value, default=str)


def _json_lines(doc: Any) -> list[str]:
    """The error fields of a JSON body, as "label: message" lines (see prober.signatures)."""
    if isinstance(doc, dict):
        objects = [doc]
    elif isinstance(doc, list):  # a batch: look at its first objects
        objects = [d for d in doc[:10] if isinstance(d, dict)]
    else:
        return []
    found: list[tuple[str, Any]] = []
    for obj in objects:
        errors = obj.get("errors")
        if errors:  # a non-empty errors list (or object): JSON:API, GraphQL, Twitter v1.1
            label = "errors"
            if "data" in obj:
                label = "graphql-errors" if not obj["data"] else "graphql-partial-errors"
            items = errors if isinstance(errors, list) else [errors]
            found.extend((label, item) for item in items[:5])
        for key in ("error", "errorMessage", "error_message", "errorMsg"):
            if obj.get(key) and obj[key] is not True:
                found.append(("error", obj[key]))
            elif obj.get(key) is True:
                found.append(("error", obj.get("message", "true")))
        if isinstance(obj.get("fault"), dict) and obj["fault"]:
            found.append(("error", obj["fault"].get("faultstring", obj["fault"])))
        if isinstance(obj.get("status"), str | int) and not isinstance(obj.get("status"), bool):
            found.append(("status", obj["status"]))
        for key in ("success", "ok"):
            if obj.get(key) is False:
                found.append((key, "false"))
        if isinstance(obj.get("message"), str) and obj["message"]:
            found.append(("message", obj["message"]))
        if isinstance(obj.get("type"), str) and isinstance(obj.get("title"), str) and "status" in obj:
            found.append(("problem", obj["title"]))  # RFC 9457 problem details
    return [f"{label}: {_clean(_short(_message(value), 300))}" for label, value in found[:_MAX_JSON_LINES]]


# --- HTML -------------------------------------------------------------------------------------

# A tag, a comment opening, or a declaration. `[^<>]*` keeps every search linear.
_TOKEN = re.compile(r"<(?:(!--)|[!?][^<>]*>?|(/?)([a-zA-Z][\w:.-]*)([^<>]*)>?)")
# What the skim of a long page still looks at.
_SKIM = re.compile(
    r"<(?:(!--)|(script|style|template|noscript|svg|math|textarea|iframe|title|h1)\b([^<>]*)>?)", re.I
)
_RAW = frozenset({"script", "style", "template", "noscript", "svg", "math", "textarea", "iframe", "object"})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                   "track", "wbr", "param", "keygen"})  # fmt: skip
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "button", "caption", "center", "dd",
    "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1",
    "h2", "h3", "h4", "h5", "h6", "head", "header", "hgroup", "hr", "html", "legend", "li", "main", "nav",
    "ol", "option", "p", "pre", "section", "select", "summary", "table", "tbody", "td", "tfoot", "th",
    "thead", "title", "tr", "ul", "label", "img",
})  # fmt: skip
# Elements whose text is not what the page says: links, quotations, code samples.
_QUOTING = frozenset({"a", "blockquote", "q", "code", "kbd", "samp"})
_HEADING = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_ATTR = re.compile(r"""([^\s=/"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]*)))?""")
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_HIDING_CLASSES = frozenset({"hidden", "d-none", "is-hidden", "visually-hidden", "sr-only", "invisible"})
_HIDING_RULE = re.compile(r"(?:^|\})\s*\.(-?[_a-zA-Z][\w-]*)\s*\{[^{}]{0,200}?display\s*:\s*none")
_TAGS = re.compile(r"<[^<>]*>?")
_LINK = re.compile(r"<a\b[^<>]*>.*?</a\s*>", re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=32)
def _end_of(name: str) -> re.Pattern[str]:
    return re.compile(rf"</{name}\s*>", re.IGNORECASE)


def _is_hidden(attrs: str, hiding: frozenset[str] | set[str] = _HIDING_CLASSES) -> bool:
    """Whether a start tag's attributes hide its element: hidden, aria-hidden, display:none, a class."""
    low = attrs.lower()
    suspect = "hid" in low or "none" in low or "sr-only" in low or "invisible" in low
    if not suspect and (hiding is _HIDING_CLASSES or not any(c in attrs for c in hiding)):
        return False  # the common case, decided without parsing the attributes
    for m in _ATTR.finditer(attrs):
        name, value = m.group(1).lower(), m.group(2) or m.group(3) or m.group(4) or ""
        if (
            name == "hidden"
            or (name == "aria-hidden" and value.lower() == "true")
            or (name == "style" and _HIDING_STYLE.search(value))
            or (name == "class" and not _HIDING_CLASSES.isdisjoint(value.lower().split()))
            or (name == "class" and hiding is not _HIDING_CLASSES and not hiding.isdisjoint(value.split()))
        ):
            return True
    return False


def _html_zones(doc: str, xml: bool = False) -> dict[str, list[str]]:
    """Title, main headings and (for a short page) visible text of an HTML (or XML) document."""
    page = _Page(xml)
    pos, n = 0, len(doc)
    while pos < n and not page.long:
        for m in _TOKEN.finditer(doc, pos):
            if m.start() > pos:
                page.data(doc[pos : m.start()])
            pos = m.end()
            if page.long:
                break
            skip_to = page.tag(doc, m)
            if skip_to is not None:
                pos = skip_to  # past a comment, script, style...: restart the scan there
                break
        else:
            page.data(doc[pos:])
            pos = n
    page.flush()
    page.end_heading()
    if page.long:
        _skim(doc[pos : pos + _SKIM_WINDOW], page)
    zones = {"title": [page.title] if page.title else [], "heading": page.headings[:_MAX_HEADINGS]}
    if not page.long and page.lines:
        zones["text"] = ["\n".join(page.lines)]
    return zones


class _Page:
    """What the scan of an HTML document has found so far; fed text runs and tags in order."""

    def __init__(self, xml: bool) -> None:
        self.xml, self.long, self.title = xml, False, ""
        self.headings: list[str] = []
        self.lines: list[str] = []
        self.block: list[str] = []
        self.heading: list[str] | None = None
        self.level, self.seen_heading, self.visible, self.tags, self.quoted = 0, False, 0, 0, 0
        self.hidden: str | None = None  # the name of the hidden element we are in
        self.depth = 0  # how many elements of that name are open inside it
        self.hiding: set[str] = set()  # classes the page's own <style> hides, as .x{display:none}

    def data(self, text: str) -> None:
        if self.hidden is None:
            self.visible += len(text) - text.count(" ") - text.count("\n")
            if self.quoted == 0:  # links ("Try again", search results) and quotes are not the message
                self.block.append(text)
                if self.heading is not None:
                    self.heading.append(text)
            self.long = self.long or self.visible > SHORT_TEXT

    def tag(self, doc: str, m: re.Match[str]) -> int | None:
        """Take one tag into account; return where to resume when its content is skipped."""
        self.tags += 1
        comment, slash, raw_name, attrs = m.groups()
        if comment:
            close = doc.find("-->", m.end())
            return len(doc) if close < 0 else close + 3
        if raw_name is None:  # <!doctype>, <?xml?>
            return None
        name, closing = raw_name.lower(), slash == "/"
        if not closing and (name in _RAW or name == "title"):
            close_m = _end_of(name).search(doc, m.end())
            inner = doc[m.end() : close_m.start() if close_m else len(doc)]
            if name == "title" and not self.title and self.hidden is None:
                self.title = _clean(inner[:1000])
            elif name == "style" and "none" in inner:  # utility classes that hide: .r-hvic4v{display:none}
                self.hiding.update(c.group(1) for c in _HIDING_RULE.finditer(inner))
                self.hiding = set(sorted(self.hiding)[:64]) if len(self.hiding) > 64 else self.hiding
            return close_m.end() if close_m else len(doc)
        self.long = self.long or self.tags > _MAX_TAGS  # no error page has that many elements
        if self.hidden is not None:
            if name == self.hidden:
                self.depth += -1 if closing else 1
                self.hidden = None if self.depth == 0 else self.hidden
        elif (
            not closing and attrs and name not in _VOID and _is_hidden(attrs, self.hiding or _HIDING_CLASSES)
        ):
            self.hidden, self.depth = name, 1
        else:
            if self.xml or name in _BLOCK:  # in XML every element is its own line
                self.flush()
            if name in _HEADING:
                self.end_heading()
                if not closing:
                    self.heading, self.level = [], _HEADING[name]
            elif name in _QUOTING and (name != "a" or closing or "href" in attrs.lower()):
                self.quoted = max(self.quoted - 1, 0) if closing else self.quoted + 1
        return None

    def flush(self) -> None:
        if self.block and not self.long:  # a long page's text is not looked at
            line = _clean("".join(self.block))
            if line:
                self.lines.append(line)
        self.block.clear()

    def end_heading(self) -> None:
        """Close the heading being read: every h1, and the first h1-h3, are main headings."""
        if self.heading is not None:
            text = _clean("".join(self.heading)[:2000])[:500]  # a heading is short
            if text and self.level <= 3 and (self.level == 1 or not self.seen_heading):
                self.headings.append(text)
            self.seen_heading = self.seen_heading or (bool(text) and self.level <= 3)
            self.heading = None


def _skim(doc: str, page: _Page) -> None:
    """A window of the rest of a long page, for its title and h1 headings only."""
    pos, n = 0, len(doc)
    while pos < n and len(page.headings) < _MAX_HEADINGS:
        m = _SKIM.search(doc, pos)
        if m is None:
            break
        pos = m.end()
        if m.group(1):
            close = doc.find("-->", pos)
            pos = n if close < 0 else close + 3
            continue
        name = m.group(2).lower()
        close_m = _end_of(name).search(doc, pos)
        inner = doc[pos : close_m.start()] if close_m else ""
        pos = close_m.end() if close_m else n
        if name == "title" and not page.title:
            page.title = _clean(inner[:1000])
        elif name == "h1" and not _is_hidden(m.group(3)):
            text = _clean(_TAGS.sub("", _LINK.sub("", inner[:4000])))
            if text:
                page.headings.append(text)


# --- signature matching -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hit:
    sig: Signature
    rank: tuple[int, int, int]
    zone: str
    text: str

    def describe(self) -> str:
        where = {"title": "title", "heading": "heading", "text": "page text", "json": "JSON body"}[self.zone]
        return f'error page {self.sig.name} ({self.sig.platform}): "{_short(self.text, 120)}" in the {where}'


@dataclass(frozen=True, slots=True)
class _Entry:
    sig: Signature
    rank: tuple[int, int, int]
    regex: re.Pattern[str]


class _Matcher:
    """Signatures compiled for one signature set: per zone, a combined pre-check and the members."""

    def __init__(self, signatures: Sequence[Signature]) -> None:
        entries: list[_Entry] = []
        self.broken = ""  # why a signature cannot be used, if one cannot
        for i, sig in enumerate(signatures):
            try:
                regex = compile_pattern(sig.pattern)
            except (re.error, TypeError, ValueError, OverflowError, RecursionError) as exc:
                self.broken = self.broken or f"signature {sig.name}: invalid pattern: {exc}"
                continue
            rank = (0 if sig.verdict == Verdict.DOWN else 1, 0 if sig.platform == "user" else 1, i)
            entries.append(_Entry(sig, rank, regex))
        entries.sort(key=lambda e: e.rank)
        self.zones: dict[str, tuple[_Screen | None, tuple[_Entry, ...]]] = {}
        for zone in ZONES:
            members = tuple(e for e in entries if zone in e.sig.where)
            if members:
                self.zones[zone] = (_combine(members), members)

    def best(self, body: _Body) -> _Hit | None:
        """The best-ranked signature matching any zone of `body`, or None."""
        hit: _Hit | None = None
        for zone, strings in body.zones.items():
            compiled = self.zones.get(zone)
            if compiled is None:
                continue
            combined, members = compiled
            for text in strings:
                if combined is not None and not combined.search(text):
                    continue
                for entry in members:
                    if hit is not None and entry.rank >= hit.rank:
                        break
                    m = entry.regex.search(text)
                    if m is not None:
                        hit = _Hit(entry.sig, entry.rank, zone, _line_of(text, m))
                        break
        return hit


def _line_of(text: str, m: re.Match[str]) -> str:
    """The line of `text` where `m` starts: what the error message quotes."""
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.start())
    return text[start : end if end >= 0 else len(text)]


@dataclass(frozen=True, slots=True)
class _Screen:
    """The pre-check of one zone: does any member match? One search instead of one per member.

    `lowered`, when the combined pattern allows it (`_caseless_twin`), is the same pattern
    compiled case-sensitively, for the lower-cased text: Python's `re` skips ahead to candidate
    first characters only in case-sensitive patterns, which makes it several times faster.
    """

    pattern: re.Pattern[str]
    lowered: re.Pattern[str] | None

    def search(self, text: str) -> bool:
        """Whether some member may match `text` (exactly: no false negative, no false positive)."""
        if self.lowered is not None:
            low = _caseless(text)
            if low is not None:
                return self.lowered.search(low) is not None
        return self.pattern.search(text) is not None


def _caseless(text: str) -> str | None:
    """`text` lower-cased, if every character of it lower-cases to one canonical character; else None.

    Under that condition, and for a pattern `_caseless_twin` accepts, a case-insensitive search
    of `text` and a case-sensitive search of the result find the same matches: `re` compares
    characters by their simple lower case, plus a few equivalences ("ſ" and "s", "ı" and "i")
    that involve non-canonical characters only, which this rules out (as "İ", which lower-cases
    to two characters, and the final sigma `str.lower` produces).
    """
    low = text.lower()
    if text.isascii() or (len(low) == len(text) and low.upper().lower() == low):
        return low
    return None


_NEUTRAL_ESCAPES = frozenset("dDwWsSbBAZntrfv")  # classes, boundaries, controls: case plays no part


def _caseless_twin(pattern: str) -> re.Pattern[str] | None:
    """`pattern`, lower-cased, compiled case-sensitively, if that is exact on `_caseless` text; else None.

    Letter case in a case-insensitive pattern makes no difference, so its literal characters are
    lower-cased ("Something" and "something", [A-F] and [a-f] are the same pattern). It is then
    exact when every literal character (in classes and ranges too) is lower case and has no other
    lower-case form sharing its upper case ("ſ", Kelvin's "K" do), no escape can spell a letter
    (\\x41, \\u0041, \\N{...}, octal) and no inline flag turns case sensitivity back on.
    """
    out: list[str] = []
    i, n, in_class, class_at = 0, len(pattern), False, 0
    while i < n:
        c = pattern[i]
        if c == "\\":
            e = pattern[i + 1 : i + 2]
            if not e or (e.isalnum() and e not in _NEUTRAL_ESCAPES) or not e.isascii():
                return None
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class and c == "]" and i > class_at:
            in_class = False
        elif in_class and c == "-" and i > class_at and pattern[i + 1 : i + 2] not in ("]", ""):
            low, high = pattern[i - 1], pattern[i + 1]
            if pattern[i - 2 : i - 1] == "\\" or high == "\\" or ord(high) - ord(low) > 4096:
                return None  # a range from or to an escape, or a huge one: not worth proving
            if low.isascii() and high.isascii() and low.isupper() and high.isupper():
                high = high.lower()  # [A-F] is [a-f]; `low` was lower-cased as a literal
            elif not all(_plain_lower(chr(x)) for x in range(ord(low), ord(high) + 1)):
                return None
            out.append(f"-{high}")
            i += 2
            continue
        elif c == "[" and not in_class:
            in_class = True
            start = i
            i += 2 if pattern.startswith("[^", i) else 1
            class_at = i  # a "]" or "-" first is a literal; a later "-" makes a range (from "]" too)
            out.append(pattern[start:i])
            continue
        elif c == "(" and not in_class and pattern.startswith("(?", i):
            m = _GROUP_HEAD.match(pattern, i)
            if m is None:
                return None  # conditionals, backreferences, flags other than s and m
            out.append(m.group())
            i = m.end()
            continue
        else:
            lowered = _lower_literal(c)
            if lowered is None:
                return None
            c = lowered
        out.append(c)
        i += 1
    try:
        return re.compile("".join(out), FLAGS & ~re.IGNORECASE)
    except (re.error, RecursionError, OverflowError):
        return None


def _lower_literal(c: str) -> str | None:
    """`c` as the lower-case literal a case-insensitive pattern treats the same, or None if none is exact."""
    if _plain_lower(c):
        return c
    low = c.lower()
    return low if len(low) == 1 and low.upper() == c and _plain_lower(low) else None


def _plain_lower(c: str) -> bool:
    """Whether `c` is lower case (or caseless) and the only lower-case form of its upper case."""
    if c != c.lower():
        return False
    upper = c.upper()
    return len(upper) > 1 or upper.lower() == c  # "ß": no simple upper case, nothing shares it


_GROUP_HEAD = re.compile(r"\(\?(?::|=|!|<=|<!|P<\w+>|[sm]+:)")


def _combine(members: Sequence[_Entry]) -> _Screen | None:
    """One search ruling a zone out when no member matches it; None if it cannot be built.

    A plain alternation of the members costs one attempt per member at every character, and
    most members start with `^` and the same line template (`LINE_TEMPLATE`): their top-level
    alternatives are regrouped behind a single `^`, with the template's lead, prefix and tail
    matched once around all the phrases. The language is the same (the union of the members),
    so the pre-check never misses; at a position that does not start a line it fails at once.
    """
    pattern = _combined_pattern(members)
    return None if pattern is None else _Screen(pattern, _caseless_twin(pattern.pattern))


def _combined_pattern(members: Sequence[_Entry]) -> re.Pattern[str] | None:
    patterns = [e.sig.pattern for e in members]
    if any(_BACKREF.search(p) for p in patterns):
        return None  # group numbers would shift in the alternation
    plain = "|".join(f"(?:{p})" for p in patterns)
    if not any(_GLOBAL_FLAGS.search(p) for p in patterns):  # (?x) would change how a pattern splits
        phrases: list[str] = []
        anchored: list[str] = []
        free: list[str] = []
        for pattern in patterns:
            for leaf in _alternatives(pattern):
                if leaf.startswith(_TEMPLATE_HEAD) and leaf.endswith(_TEMPLATE_TAIL):
                    phrases.append(leaf[len(_TEMPLATE_HEAD) : len(leaf) - len(_TEMPLATE_TAIL)])
                elif leaf.startswith("^"):
                    anchored.append(leaf[1:])
                else:
                    free.append(leaf)
        if phrases:
            anchored.insert(0, f"{_TEMPLATE_HEAD[1:]}{'|'.join(phrases)}{_TEMPLATE_TAIL}")
        parts = [f"^(?:{'|'.join(f'(?:{a})' for a in anchored)})"] if anchored else []
        parts += [f"(?:{f})" for f in free]
        with contextlib.suppress(re.error, RecursionError, OverflowError):
            return compile_pattern("|".join(parts))
    try:
        return compile_pattern(plain)
    except (re.error, RecursionError, OverflowError):
        return None


def _alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression, each (?:...) wrapping all of one split too."""
    found: list[str] = []
    depth, start, i, n = 0, 0, 0, len(pattern)
    closes_at_end = True  # the group opened at 0 closes at the very end (it wraps the whole)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":  # a class: skip to its end; "]" right after "[" or "[^" is a literal
            i += 2 if pattern.startswith("[^", i) else 1
            i += 1 if pattern.startswith("]", i) else 0
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0 and i != n - 1:
                closes_at_end = False
        elif c == "|" and depth == 0:
            found.append(pattern[start:i])
            start = i + 1
        i += 1
    found.append(pattern[start:])
    if len(found) == 1 and pattern.startswith("(?:") and pattern.endswith(")") and closes_at_end:
        return _alternatives(pattern[3:-1])
    return [leaf for part in found for leaf in (_alternatives(part) if len(found) > 1 else [part])]


_BACKREF = re.compile(r"\\[1-9]|\(\?P=|\\g<|\(\?\(")
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
# LINE_TEMPLATE around its phrases: what most built-in signatures share.
_TEMPLATE_HEAD, _TEMPLATE_TAIL = LINE_TEMPLATE.split("PHRASE")
_TEMPLATE_HEAD += "(?:"
_TEMPLATE_TAIL = ")" + _TEMPLATE_TAIL
_BY_IDENTITY: dict[int, tuple[Sequence[Signature], _Matcher]] = {}


def _matcher(signatures: Sequence[Signature]) -> _Matcher:
    """The compiled matcher of a signature set: by identity for tuples (cheap), else by value."""
    if isinstance(signatures, tuple):
        known = _BY_IDENTITY.get(id(signatures))
        if known is not None and known[0] is signatures:
            return known[1]
        matcher = _matcher_for(signatures)
        if len(_BY_IDENTITY) >= 4096:  # one per check, usually
            _BY_IDENTITY.clear()
        _BY_IDENTITY[id(signatures)] = (signatures, matcher)  # keeps the tuple alive: its id stays its own
        return matcher
    return _matcher_for(tuple(signatures))


@lru_cache(maxsize=64)
def _matcher_for(signatures: tuple[Signature, ...]) -> _Matcher:
    return _Matcher(signatures)
