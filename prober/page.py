"""What a response says, zone by zone: its decoded text, HTML title, headings, visible text, JSON errors."""

from __future__ import annotations

import codecs
import contextlib
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prober.envelope import error_fields
from prober.model import Observation

SHORT_TEXT = 2000  # characters a page says itself (not links): past that its text is not read
# What an error page says at most, in characters of its own text (links, quotations, scripts and
# hidden elements left out): its message, a line of explanation, a reference, a footer. A page
# that says more (a reference page, a thread, a product, an article) is not an error page just
# because its title or heading reads like one; only a platform's own signature can tell.
SAYS_LITTLE = 600
# A short page can still be a content page that an error page is not: its message is its main
# content, while a song, a product, an article or a reference table has a structure of its own.
# Past this many visible headings (h1-h6) or table rows, or with media or structured data naming
# content (`_CONTENT_TYPES`), a page does not say little whatever its length.
_MAX_HEADINGS_SAID = 4
_MAX_ROWS_SAID = 4
_MAX_LINKED_HEADINGS = 3  # headings that are links: a list of results or cards (see `_Page`)
_MAX_TAGS = 1500  # elements read one by one; past that a page is long, and skimmed
_SKIM_WINDOW = 32768  # characters of a long page skimmed for h1 headings after the scan stops
_MAX_HEADINGS = 32
_MAX_JSON_LINES = 32


# --- the response, decoded once, taken apart lazily -----------------------------------------

_UNSET: Any = object()
NOT_JSON: Any = object()  # `Body.json` of a body that is not JSON


@dataclass(slots=True)
class Body:
    """The decoded body and the parts signatures look at, each computed at most once."""

    obs: Observation
    _text: str | None = None
    _json: Any = _UNSET
    _zones: dict[str, list[str]] | None = None
    _little: bool = True

    @property
    def text(self) -> str:
        """The body decoded as text (see `_decode`)."""
        if self._text is None:
            self._text = _decode(self.obs.body, self.obs.headers.get("content-type", ""))
        return self._text

    @property
    def json(self) -> Any:
        """The parsed JSON body, or NOT_JSON."""
        if self._json is _UNSET:
            self._json = NOT_JSON
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

    @property
    def says_little(self) -> bool:
        """Whether the body says as little as an error page does (see `SAYS_LITTLE`)."""
        if self._zones is None:
            self._zones = self._take_apart()
        return self._little

    def _take_apart(self) -> dict[str, list[str]]:
        text, ctype = self.text, self.obs.content_type
        head = text[:64].lstrip()
        markup = "html" in ctype or "xml" in ctype
        if not markup and head.startswith(("{", "[")):
            big = len(text) > 16384
            if (big and '"error' not in text and '"fault"' not in text) or _JSON_HINT.search(text) is None:
                return {}  # no error field anywhere (a long body with only "status": a healthy one)
            if self.json is not NOT_JSON:
                return {"json": _json_lines(self.json)}
        if markup or head.startswith("<"):
            zones, self._little = _html_zones(text, xml="xml" in ctype and "html" not in ctype)
            return zones
        said = len(text) - text.count(" ") - text.count("\n")
        said += 0 if text.isascii() else 2 * len(_WIDE.findall(text))  # as in _Page.data
        if len(text) > SHORT_TEXT * 4 or said > SHORT_TEXT:
            return {}
        self._little = said <= SAYS_LITTLE
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


def _decode(body: bytes | bytearray, content_type: str) -> str:
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


def short(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- JSON error fields (found by prober.envelope) -------------------------------------------

_JSON_HINT = re.compile(
    r'"(?:errors?|error\w+|message|status|success|ok|fault|title|detail|type|description|Message|ExceptionMessage|\w*(?:code|Code|msg|Msg))"\s*:'
)
_MESSAGE_KEYS = ("message", "detail", "title", "description", "error_description", "msg", "reason", "error")


def _message(value: Any) -> str:
    """The human message of an error value: a string, or an object's message-like field."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _MESSAGE_KEYS:
            if isinstance(value.get(key), str) and value[key]:
                return str(value[key])
        return short(json.dumps(value, ensure_ascii=False, default=str), 200)
    if isinstance(value, list) and value:
        return _message(value[0])
    return json.dumps(value, default=str)


def _json_lines(doc: Any) -> list[str]:
    """The error fields of a JSON body, as "label: message" lines (see prober.signatures)."""
    fields = error_fields(doc)[:_MAX_JSON_LINES]
    return [f"{label}: {_clean(short(_message(value), 300))}" for label, value in fields]


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
_WIDE = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")  # CJK, kana, Hangul
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_HIDING_CLASSES = frozenset({"hidden", "d-none", "is-hidden", "visually-hidden", "sr-only", "invisible"})
_HIDING_RULE = re.compile(r"(?:^|\})\s*\.(-?[_a-zA-Z][\w-]*)\s*\{[^{}]{0,200}?display\s*:\s*none")
# Structured data that names what a page is (Open Graph og:type, JSON-LD or microdata types): a
# song, a product, an article, a video, a question. Generic types (WebSite, WebPage,
# Organization, BreadcrumbList) say nothing: an error page's template carries them too.
_CONTENT_TYPES = (
    r"article|newsarticle|blogposting|techarticle|scholarlyarticle|report|product(?:\.\w+)?|offer|"
    r"music\.\w+|musicrecording|musicalbum|musiccomposition|musicplaylist|video\.\w+|videoobject|"
    r"movie|tvepisode|tvseries|book|books\.\w+|audiobook|podcastepisode|recipe|qapage|faqpage|question|"
    r"discussionforumposting|socialmediaposting|event|course|softwareapplication|review|howto|dataset|"
    r"profile|profilepage|place|restaurant(?:\.\w+)?|localbusiness|itemlist|collectionpage|creativework"
)
_OG_CONTENT = re.compile(
    rf"""(?:property|name)\s*=\s*["']?og:type["']?[^<>]*?content\s*=\s*["']?(?:{_CONTENT_TYPES})["'\s/>]"""
    rf"""|content\s*=\s*["']?(?:{_CONTENT_TYPES})["']?\s+(?:property|name)\s*=\s*["']?og:type""",
    re.IGNORECASE,
)
_LD_CONTENT = re.compile(
    rf'"@type"\s*:\s*\[?\s*"(?:https?://schema\.org/)?(?:{_CONTENT_TYPES})"', re.IGNORECASE
)
_ITEMTYPE = re.compile(rf"""itemtype\s*=\s*["']?https?://schema\.org/(?:{_CONTENT_TYPES})\b""", re.IGNORECASE)
_MEDIA = frozenset({"audio", "video"})
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


def _html_zones(doc: str, xml: bool = False) -> tuple[dict[str, list[str]], bool]:
    """The zones of an HTML (or XML) document, and whether it says little (`SAYS_LITTLE`)."""
    window = min(len(doc), _MAIN_WINDOW)  # where <main> starts on any page: after the head and header
    has_main = not xml and any(doc.find(mark, 0, window) >= 0 for mark in _MAIN_MARKS)
    page = _Page(xml, has_main=has_main)
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
    if not page.long and (page.lines or page.shown):
        # Preformatted text is what the page shows ("502 Bad Gateway" in a thread) unless it is
        # all the page says (Express: <pre>Internal Server Error</pre>, a traceback).
        zones["text"] = ["\n".join(page.lines or page.shown)]
    return zones, not page.long and page.said <= SAYS_LITTLE and not page.content


class _Page:
    """What the scan of an HTML document has found so far; fed text runs and tags in order."""

    __slots__ = (
        "block",
        "chrome",
        "chrome_depth",
        "content",
        "counts",
        "depth",
        "has_main",
        "heading",
        "headings",
        "headings_said",
        "hidden",
        "hiding",
        "in_main",
        "level",
        "lines",
        "linked",
        "linked_headings",
        "long",
        "main_depth",
        "main_name",
        "pre",
        "quoted",
        "rows",
        "said",
        "sectioning",
        "seen_heading",
        "shown",
        "tags",
        "title",
        "total",
        "xml",
    )  # fmt: skip

    def __init__(self, xml: bool, has_main: bool = False) -> None:
        self.xml, self.long, self.title = xml, False, ""
        # What counts (text said, headings, rows) is the main content: inside <main> when the
        # page has one, never in site chrome (`_chrome`). `chrome` is the chrome element we are in.
        self.has_main, self.in_main, self.main_name, self.main_depth = has_main, False, "", 0
        self.chrome: str | None = None
        self.chrome_depth, self.sectioning, self.total = 0, 0, 0
        self.counts = not has_main  # whether what is read now is main content (kept up to date)
        self.headings: list[str] = []
        self.lines: list[str] = []
        self.shown: list[str] = []  # lines of <pre> blocks
        self.pre = 0  # how many <pre> elements are open
        self.block: list[str] = []
        self.heading: list[str] | None = None
        self.level, self.seen_heading, self.said, self.tags, self.quoted = 0, False, 0, 0, 0
        self.hidden: str | None = None  # the name of the hidden element we are in
        self.depth = 0  # how many elements of that name are open inside it
        self.hiding: set[str] = set()  # classes the page's own <style> hides, as .x{display:none}
        self.content = False  # structured data, media, many headings or rows: a content page
        self.headings_said, self.rows = 0, 0
        # Headings that are links: results of a search, cards of a listing. An error page links
        # to a way out ("Try again", "Home"), never to a list of titled pages.
        self.linked, self.linked_headings = False, 0

    def data(self, text: str) -> None:
        # Links ("Try again", menus, search results) and quotations are not what the page says.
        if self.hidden is None and self.quoted == 0:
            said = len(text) - text.count(" ") - text.count("\n")
            if not text.isascii():  # a Chinese, Japanese or Korean character says about a word
                said += 2 * len(_WIDE.findall(text))
            self.total += said
            if self.counts:
                self.said += said
            self.block.append(text)
            if self.heading is not None:
                self.heading.append(text)
            # Chrome is read too (a platform's footer names it), within a bound of its own.
            self.long = self.long or self.said > SHORT_TEXT or self.total > SHORT_TEXT * 3

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
            if name == "script" and "ld+json" in attrs and _LD_CONTENT.search(inner, 0, 4096):
                self.content = True
            if name == "title" and not self.title and self.hidden is None:
                self.title = _clean(inner[:1000])
            elif name == "style" and "none" in inner:  # utility classes that hide: .r-hvic4v{display:none}
                self.hiding.update(c.group(1) for c in _HIDING_RULE.finditer(inner))
                self.hiding = set(sorted(self.hiding)[:64]) if len(self.hiding) > 64 else self.hiding
            return close_m.end() if close_m else len(doc)
        self.long = self.long or self.tags > _MAX_TAGS  # no error page has that many elements
        if attrs and not closing and ("og:type" in attrs or "itemtype" in attrs):
            self.content = self.content or bool(_OG_CONTENT.search(attrs) or _ITEMTYPE.search(attrs))
        if self.hidden is not None:
            if name == self.hidden:
                self.depth += -1 if closing else 1
                self.hidden = None if self.depth == 0 else self.hidden
        elif (
            not closing and attrs and name not in _VOID and _is_hidden(attrs, self.hiding or _HIDING_CLASSES)
        ):
            self.hidden, self.depth = name, 1
        else:
            if (
                name in _LANDMARKS
                or name == self.chrome
                or name == self.main_name
                or (attrs and not closing and ("role" in attrs or "ookie" in attrs or "onsent" in attrs))
            ):  # the common tag decided without a call
                self.landmark(name, closing, attrs)
            if self.xml or name in _BLOCK:  # in XML every element is its own line
                self.flush()
            if name in _HEADING:
                self.end_heading()
                if not closing:
                    self.heading, self.level, self.linked = [], _HEADING[name], self.quoted > 0
            elif name in _MEDIA:
                self.content = True
            elif name == "tr" and not closing and self.counts:
                self.rows += 1
                self.content = self.content or self.rows > _MAX_ROWS_SAID
            elif name in _QUOTING and (name != "a" or closing or "href" in attrs.lower()):
                self.quoted = max(self.quoted - 1, 0) if closing else self.quoted + 1
                self.linked = self.linked or (self.heading is not None and name == "a")
            elif name == "pre":
                self.flush()
                self.pre = max(self.pre - 1, 0) if closing else self.pre + 1
        return None

    def landmark(self, name: str, closing: bool, attrs: str) -> None:
        """Follow <main> and site chrome: where the scan is, before the element is read."""
        self._landmark(name, closing, attrs)
        self.counts = self.chrome is None and (self.in_main or not self.has_main)

    def _landmark(self, name: str, closing: bool, attrs: str) -> None:
        if self.chrome is not None:
            if name == self.chrome:
                self.chrome_depth += -1 if closing else 1
                self.chrome = None if self.chrome_depth == 0 else self.chrome
            return
        if name in _SECTIONING:
            self.sectioning = max(self.sectioning - 1, 0) if closing else self.sectioning + 1
        if self.in_main:
            if name == self.main_name:
                self.main_depth += -1 if closing else 1
                self.in_main = self.main_depth > 0
        elif not closing and (name == "main" or (attrs and _ROLE_MAIN.search(attrs))):
            self.in_main, self.main_name, self.main_depth = True, name, 1
            return
        if not closing and name not in _VOID and _chrome(name, attrs, self.sectioning):
            self.chrome, self.chrome_depth = name, 1

    def flush(self) -> None:
        if self.block and not self.long:  # a long page's text is not looked at
            line = _clean("".join(self.block))
            if line:
                (self.shown if self.pre else self.lines).append(line)
        self.block.clear()

    def end_heading(self) -> None:
        """Close the heading being read: every h1, and the first h1-h3, are main headings."""
        if self.heading is not None:
            text = _clean("".join(self.heading)[:2000])[:500]  # a heading is short
            main = self.counts  # a footer's column headings are chrome, not what the page says
            if text and self.level <= 3 and (self.level == 1 or (main and not self.seen_heading)):
                self.headings.append(text)
            self.headings_said += bool(text) and main
            self.linked_headings += self.linked and main
            self.content = (
                self.content
                or self.headings_said > _MAX_HEADINGS_SAID
                or self.linked_headings >= _MAX_LINKED_HEADINGS
            )
            self.seen_heading = self.seen_heading or (bool(text) and main and self.level <= 3)
            self.heading = None


# Site chrome: what every page of a site shows around its main content (header, navigation,
# sidebars, footer with its columns of links, cookie banner). A branded error page has all of it;
# its message is the main content, and so is a healthy page's article. <header> and <footer>
# inside an article or section belong to it (HTML's banner and contentinfo rules).
_MAIN_MARKS = ("<main", 'role="main"')
_MAIN_WINDOW = 65536
_ROLE_MAIN = re.compile(r"""\brole\s*=\s*["']?main\b""", re.IGNORECASE)
_SECTIONING = frozenset({"article", "section", "main"})
_CHROME_TAGS = frozenset({"nav", "aside"})
_LANDMARKS = _SECTIONING | _CHROME_TAGS | {"header", "footer"}
_CHROME_ROLES = re.compile(
    r"""\brole\s*=\s*["']?(?:banner|contentinfo|navigation|complementary|search)\b"""
    r"""|\b(?:id|class)\s*=\s*["']?[^"'<>]{0,80}?(?:cookie|consent)""",
    re.IGNORECASE,
)


def _chrome(name: str, attrs: str, sectioning: int) -> bool:
    """Whether an element that starts here is site chrome (see `_CHROME_TAGS`, `_CHROME_ROLES`)."""
    if name in _CHROME_TAGS or (name in ("header", "footer") and sectioning == 0):
        return True
    return bool(attrs) and _CHROME_ROLES.search(attrs) is not None


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
