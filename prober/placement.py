"""Where a line sits on a page: in site chrome, a list, a table row, a caption, a quotation or a
traceback, the places where a page does not state its own message (see `prober.markup`)."""

from __future__ import annotations

import re
from typing import Any

# Lists and tables, their items, and captions (see `prober.markup._Page.box`). A line is left out
# when its list has two items or more, or its table row two cells or more with text ("429 Too Many Requests" |
# "Too many requests hit the API"); a layout table (one message per row) keeps its lines.
BOXES = frozenset({"ul", "ol", "dl", "menu", "table"})
ITEMS = frozenset({"li", "dt", "dd", "tr", "td", "th"})
CAPTIONS = frozenset({"figcaption", "caption"})
CAPTIONED = [2, 0]
# A traceback's first lines: Python, Java and .NET frames ("at x.y(...)"), PHP ("#0 /path(12): "),
# Go, Rust, Ruby. It says what failed; on a page that says little otherwise, it is a debug page.
TRACEBACK = re.compile(
    r"traceback \(most recent call last\)|^\s*file \"[^\"\n]{1,300}\", line \d+"
    r"|^\s*at [\w$.<>`\[\]-]{3,300}\(|^stack trace:$|^#0 [^\n]{1,300}\(\d+\): |^goroutine \d+ \["
    r"|panicked at |^\S{1,300}\.rb:\d+:in ",
    re.IGNORECASE | re.MULTILINE,
)
MAX_TRACE = 2000
# Quoted text inside a sentence of prose: 'Typical pages read "Service Unavailable"' quotes a
# message, it does not state one. The quotation (of words: not an identifier such as "Rdbms\\DBError")
# is left out when enough prose remains around it.
_QUOTED = re.compile(r'"[^"\n]{0,400} [^"\n]{0,400}"|«[^»\n]{1,400}»|„[^"“\n]{1,400}["“]|「[^」\n]{1,400}」')
_PROSE = 12  # word characters outside quotations that make a line prose


def listed(owner: list[Any] | None) -> bool:
    """Whether a line's owner (`_Page.owner`) makes it one of several items, cells or a caption."""
    if owner is None or owner[0] < 2:
        return False
    return len(owner) != 3 or owner[2][4] >= 2  # a table row's cells count in a table of rows


def unquoted(line: str) -> str:
    """`line` with the quotations inside its prose replaced by an ellipsis (see `_QUOTED`)."""
    if '"' not in line and "«" not in line and "„" not in line and "「" not in line:
        return line
    rest = _QUOTED.sub("…", line)
    if rest == line or sum(c.isalnum() for c in rest) < _PROSE:
        return line
    return rest


# Site chrome: what every page of a site shows around its main content (header, navigation,
# sidebars, footer with its columns of links, cookie banner). A branded error page has all of it;
# its message is the main content, and so is a healthy page's article. <header> and <footer>
# inside an article or section belong to it (HTML's banner and contentinfo rules).
MAIN_MARKS = ("<main", 'role="main"')
MAIN_WINDOW = 65536
ROLE_MAIN = re.compile(r"""\brole\s*=\s*["']?main\b""", re.IGNORECASE)
SECTIONING = frozenset({"article", "section", "main"})
_CHROME_TAGS = frozenset({"nav", "aside"})
LANDMARKS = SECTIONING | _CHROME_TAGS | {"header", "footer"}
_CHROME_ROLES = re.compile(
    r"""\brole\s*=\s*["']?(?:banner|contentinfo|navigation|complementary|search)\b"""
    r"""|\b(?:id|class)\s*=\s*["']?[^"'<>]{0,80}?(?:cookie|consent)""",
    re.IGNORECASE,
)


def chrome(name: str, attrs: str, sectioning: int) -> bool:
    """Whether an element that starts here is site chrome (see `_CHROME_TAGS`, `_CHROME_ROLES`)."""
    if name in _CHROME_TAGS or (name in ("header", "footer") and sectioning == 0):
        return True
    return bool(attrs) and _CHROME_ROLES.search(attrs) is not None
