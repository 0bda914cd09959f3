"""What an HTML or XML document says: its title, main headings and lines, and whether it says little."""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache
from typing import Any

from prober import content
from prober.content import CONTROLS, ITEMTYPE, LD_CONTENT, OFFER_ATTRS, OG_CONTENT, offers_text, offers_with
from prober.placement import (
    BOXES,
    CAPTIONED,
    CAPTIONS,
    ITEMS,
    LANDMARKS,
    MAIN_MARKS,
    MAIN_WINDOW,
    MAX_TRACE,
    ROLE_MAIN,
    SECTIONING,
    TRACEBACK,
    chrome,
    listed,
    unquoted,
)

SHORT_TEXT = 2000  # characters a page says itself (not links): past that its text is not read
# What an error page says at most, in characters of its own text (links, quotations, scripts and
# hidden elements left out): its message, a line of explanation, a reference, a footer. A page
# that says more (a reference page, a thread, a product, an article) is not an error page just
# because its title or heading reads like one; only a platform's own signature can tell.
SAYS_LITTLE = 600
# A short page can still be a content page that an error page is not: its message is its main
# content, while a song, a product, an article or a reference table has a structure of its own.
# Past this many visible headings (h1-h6) or table rows, or with media or structured data naming
# content (`CONTENT_TYPES`), a page does not say little whatever its length.
_MAX_HEADINGS_SAID = 4
_MAX_ROWS_SAID = 4
_MAX_LINKED_HEADINGS = 3  # headings that are links: a list of results or cards (see `_Page`)
_MAX_TAGS = 1500  # elements read one by one; past that a page is long, and skimmed
_SKIM_WINDOW = 32768  # characters of a long page skimmed for h1 headings after the scan stops
_MAX_HEADINGS = 32

# --- text normalisation -----------------------------------------------------------------------

_FOLD = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ",
     "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\ufeff": None, "\u00ad": None}
)  # fmt: skip


def clean(text: str) -> str:
    """Entities decoded, quotes folded, NFKC, whitespace collapsed: what signatures are written for."""
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text.translate(_FOLD))
    return " ".join(text.split())  # str.split and re's \s agree on what whitespace is


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
WIDE = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")  # CJK, kana, Hangul
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_HIDING_CLASSES = frozenset({"hidden", "d-none", "is-hidden", "visually-hidden", "sr-only", "invisible"})
_HIDING_RULE = re.compile(r"(?:^|\})\s*\.(-?[_a-zA-Z][\w-]*)\s*\{[^{}]{0,200}?display\s*:\s*none")
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


def html_zones(doc: str, xml: bool = False) -> tuple[dict[str, list[str]], bool]:
    """The zones of an HTML (or XML) document, and whether it says little (`SAYS_LITTLE`)."""
    window = min(len(doc), MAIN_WINDOW)  # where <main> starts on any page: after the head and header
    has_main = not xml and any(doc.find(mark, 0, window) >= 0 for mark in MAIN_MARKS)
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
    # Code, lyrics or a sample response in <pre> next to prose of its own: a reference page, a
    # song, a tutorial, whatever its heading (a traceback is not such a sample, see `TRACEBACK`).
    page.content = page.content or (page.pre_breaks >= 2 and page.said > page.pre_said)
    little = not page.long and page.said <= SAYS_LITTLE and not page.content
    little = little and not (page.offers or any(_offers(page, i) for i in page.said_lines))
    # A short page that explains a status code is a reference page about it (`prober.content`).
    little = little and not any(content.explains(page.lines[i]) for i in page.said_lines)
    # A line in one item of a list or table of several, or in a caption, is not the page's message:
    # "429 Too Many Requests" in a table of status codes, "Service Unavailable" under a picture.
    lines = [line for line, box in zip(page.lines, page.owners, strict=True) if not listed(box)]
    if not page.long and (lines or page.shown):
        # Preformatted text is what the page shows ("502 Bad Gateway" in a thread) unless it is
        # all the page says (Express: <pre>Internal Server Error</pre>).
        zones["text"] = ["\n".join(lines or page.shown)]
    if little and page.trace and not lines:  # a traceback is all the page says: a debug page
        zones["text"] = [page.trace]
    return zones, little


class _Page:
    """What the scan of an HTML document has found so far; fed text runs and tags in order."""

    __slots__ = (
        "block",
        "block_said",
        "boxes",
        "captions",
        "chrome",
        "chrome_depth",
        "content",
        "control",
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
        "offers",
        "owners",
        "pre",
        "pre_breaks",
        "pre_fresh",
        "pre_said",
        "quoted",
        "rows",
        "said",
        "said_lines",
        "sectioning",
        "seen_heading",
        "shown",
        "tags",
        "title",
        "total",
        "trace",
        "tracing",
        "xml",
    )  # fmt: skip

    def __init__(self, xml: bool, has_main: bool = False) -> None:
        self.xml, self.long, self.title = xml, False, ""
        # What counts (text said, headings, rows) is the main content: inside <main> when the
        # page has one, never in site chrome (`chrome`). `chrome` is the chrome element we are in.
        self.has_main, self.in_main, self.main_name, self.main_depth = has_main, False, "", 0
        self.chrome: str | None = None
        self.chrome_depth, self.sectioning, self.total = 0, 0, 0
        self.counts = not has_main  # whether what is read now is main content (kept up to date)
        self.headings: list[str] = []
        self.lines: list[str] = []
        self.shown: list[str] = []  # lines of <pre> blocks
        self.pre = 0  # how many <pre> elements are open
        # <pre> text said in the main content (its characters, its line breaks), unless a traceback;
        # `pre_fresh`: no text read yet in the <pre> just opened (is it a traceback?).
        self.pre_said, self.pre_breaks, self.pre_fresh = 0, 0, False
        self.trace = ""  # the traceback a <pre> shows (raw lines, bounded), not counted as said
        self.tracing = False  # in that <pre>
        # Lists and tables open (`BOXES`): [items or rows so far, items or cells open]; each line
        # has its box in `owners` (None outside any item), `CAPTIONED` for a caption.
        self.boxes: list[list[Any]] = []
        self.owners: list[list[Any] | None] = []
        self.captions = 0
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
        # What may show an offer (`prober.content`): the lines of main content
        # (`block_said`: the block being read has some), the text of the main content's button or
        # link being read (`control`); `offers`: an offer found (a control, a price's markup).
        # Not in a list of several items: an error page may recommend products with their prices.
        self.said_lines: list[int] = []  # indexes in `lines`
        self.block_said = False
        self.control: list[str] | None = None
        self.offers = False

    def data(self, text: str) -> None:
        # Links ("Try again", menus, search results) and quotations are not what the page says.
        if self.control is not None and self.hidden is None:
            self.control.append(text)
        if self.hidden is None and self.quoted == 0:
            if self.pre and (self.pre_fresh or self.tracing):
                if self.pre_fresh and not text.isspace():
                    self.pre_fresh = False
                    self.tracing = TRACEBACK.search(text, 0, 2000) is not None
                if self.tracing:  # machine output: what failed, not what the page says
                    self.trace = self.trace or html.unescape(text[:MAX_TRACE]).strip()
                    return
            said = len(text) - text.count(" ") - text.count("\n")
            if not text.isascii():  # a Chinese, Japanese or Korean character says about a word
                said += 2 * len(WIDE.findall(text))
            self.total += said
            if self.counts:
                self.said += said
                self.block_said = True
                if self.pre:
                    self.pre_said += said
                    self.pre_breaks += text.strip().count("\n")
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
            if name == "script" and "ld+json" in attrs and LD_CONTENT.search(inner, 0, 4096):
                self.content = True
            if name == "title" and not self.title and self.hidden is None:
                self.title = clean(inner[:1000])
            elif name == "style" and "none" in inner:  # utility classes that hide: .r-hvic4v{display:none}
                self.hiding.update(c.group(1) for c in _HIDING_RULE.finditer(inner))
                self.hiding = set(sorted(self.hiding)[:64]) if len(self.hiding) > 64 else self.hiding
            return close_m.end() if close_m else len(doc)
        self.long = self.long or self.tags > _MAX_TAGS  # no error page has that many elements
        if attrs and not closing and ("og:type" in attrs or "itemtype" in attrs):
            self.content = self.content or bool(OG_CONTENT.search(attrs) or ITEMTYPE.search(attrs))
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
                name in LANDMARKS
                or name == self.chrome
                or name == self.main_name
                or (attrs and not closing and ("role" in attrs or "ookie" in attrs or "onsent" in attrs))
            ):  # the common tag decided without a call
                self.landmark(name, closing, attrs)
            if self.xml or name in _BLOCK:  # in XML every element is its own line
                self.flush()
                if name in BOXES or name in ITEMS or name in CAPTIONS:
                    self.box(name, closing)
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
                self.pre_fresh, self.tracing = not closing, False
            if name in CONTROLS:
                self.follow_control(closing)
            elif attrs and not closing and "pri" in attrs and self.counts and OFFER_ATTRS.search(attrs):
                self.offers = True
        return None

    def follow_control(self, closing: bool) -> None:
        """Read the text of a button or link of the main content: does it offer something?"""
        if not closing:  # one in a list or table is a card's (recommendations on an error page)
            self.control = [] if self.counts and self.control is None and not self.boxes else self.control
        elif self.control is not None:
            label = clean("".join(self.control)[:200])
            self.offers = self.offers or offers_with(label)
            self.control = None

    def box(self, name: str, closing: bool) -> None:
        """Follow lists, tables and captions: which item or row the lines read next belong to."""
        if name in BOXES:
            if closing and self.boxes:
                self.boxes.pop()
            elif not closing:  # items, items or cells open, the row's record, cells so far
                box: list[Any] = [0, 0, None, 0, 0]  # items, open, row, cells so far, rows
                box[2] = [0, 0, box]
                self.boxes.append(box)
        elif name in CAPTIONS:
            self.captions = max(self.captions - 1, 0) if closing else self.captions + 1
        elif self.boxes:
            box = self.boxes[-1]
            if name == "tr":
                if not closing:
                    box[2], box[4] = [0, 0, box], box[4] + 1
            elif closing:
                box[1] = max(box[1] - 1, 0)
            else:
                box[1] += 1
                box[3] += 1  # a new item or cell
                box[0] += name != "td" and name != "th"

    def owner(self) -> list[Any] | None:
        """What the line read now belongs to: a list (items), a table row (cells with text), a caption."""
        if self.captions:
            return CAPTIONED
        if not self.boxes or not self.boxes[-1][1]:
            return None
        box = self.boxes[-1]
        if box[0]:  # a list: its items
            return box
        row = box[2]  # a table: the cells of this row that say something
        if row[1] != box[3]:
            row[0], row[1] = row[0] + 1, box[3]
        return row  # type: ignore[no-any-return]

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
        if name in SECTIONING:
            self.sectioning = max(self.sectioning - 1, 0) if closing else self.sectioning + 1
        if self.in_main:
            if name == self.main_name:
                self.main_depth += -1 if closing else 1
                self.in_main = self.main_depth > 0
        elif not closing and (name == "main" or (attrs and ROLE_MAIN.search(attrs))):
            self.in_main, self.main_name, self.main_depth = True, name, 1
            return
        if not closing and name not in _VOID and chrome(name, attrs, self.sectioning):
            self.chrome, self.chrome_depth = name, 1

    def flush(self) -> None:
        if self.block and not self.long:  # a long page's text is not looked at
            line = clean("".join(self.block))
            if line and self.pre:
                self.shown.append(line)
            elif line:
                self.lines.append(unquoted(line))
                self.owners.append(self.owner())
                if self.block_said:
                    self.said_lines.append(len(self.lines) - 1)
        self.block.clear()
        self.block_said = False

    def end_heading(self) -> None:
        """Close the heading being read: every h1, and the first h1-h3, are main headings."""
        if self.heading is not None:
            text = clean("".join(self.heading)[:2000])[:500]  # a heading is short
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


def _offers(page: _Page, i: int) -> bool:
    """Whether line `i` of the main content offers something (`prober.content`), not as a list item."""
    return not listed(page.owners[i]) and offers_text(page.lines[i])


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
            page.title = clean(inner[:1000])
        elif name == "h1" and not _is_hidden(m.group(3)):
            text = clean(_TAGS.sub("", _LINK.sub("", inner[:4000])))
            if text:
                page.headings.append(text)
