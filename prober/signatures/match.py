"""Signatures compiled for matching: per zone, a combined pre-check, then the members in rank order.

Two rules weigh where a phrase appears against what the page is:

- In a title a phrase must be the whole title (`STRICT_TAIL`): "Something went wrong | Acme"
  or "502 Bad Gateway - HTTP | MDN" alone does not make an error page; its heading or text must
  say so too. Headings and lines keep the tolerance ("Something went wrong. Try again.").
- Phrases count only on a body that says little (`prober.page.SAYS_LITTLE`): a reference
  page, a thread, a tutorial, a product or a song named after an error says much more than its
  title or heading. That leaves generic signatures (platform `any`, all phrases) out of such
  pages; a platform's own `pattern` (a footer, a title format, a debugger's title) still counts.
"""

from __future__ import annotations

import contextlib
import re
import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from prober.model import Verdict
from prober.page import Body, short
from prober.signatures import FLAGS, LINE_TEMPLATE, STRICT_TAIL, TAIL, ZONES, Signature, compile_pattern
from prober.signatures.alternation import alternatives, trie


@dataclass(frozen=True, slots=True)
class Hit:
    """A signature that matched: where, and the line it matched."""

    sig: Signature
    rank: tuple[int, int, int, int]
    zone: str
    text: str

    def describe(self) -> str:
        """The verdict's error message: the signature and the line it matched, quoted."""
        where = {"title": "title", "heading": "heading", "text": "page text", "json": "JSON body"}[self.zone]
        return f'error page {self.sig.name} ({self.sig.platform}): "{short(self.text, 120)}" in the {where}'


@dataclass(frozen=True, slots=True)
class _Entry:
    sig: Signature
    rank: tuple[int, int, int, int]
    pattern: str  # what is matched: the signature's pattern, in a title without the tail tolerance
    regex: re.Pattern[str]


_Zones = dict[str, tuple["_Screen", tuple[_Entry, ...]]]


class Matcher:
    """Signatures compiled for one signature set: per zone, a combined pre-check and the members."""

    def __init__(self, signatures: Sequence[Signature]) -> None:
        entries: list[tuple[Signature, tuple[int, int, int, int]]] = []
        self.broken = ""  # why a signature cannot be used, if one cannot
        for i, sig in enumerate(signatures):
            try:
                compile_pattern(sig.pattern)
                compile_pattern(sig.pattern.replace(TAIL, STRICT_TAIL))
            except (re.error, TypeError, ValueError, OverflowError, RecursionError) as exc:
                self.broken = self.broken or f"signature {sig.name}: invalid pattern: {exc}"
                continue
            # An envelope ("errors: ...") stands aside for what its message says ("rate limited").
            verdict = 0 if sig.verdict == Verdict.DOWN else 1
            entries.append((sig, (int(sig.fallback), verdict, 0 if sig.platform == "user" else 1, i)))
        entries.sort(key=lambda e: e[1])
        self.zones: _Zones = {}  # for a body that says little
        self.wordy: _Zones = {}  # for one that says more: phrases left out
        for zone in ZONES:
            members = tuple(_entry(sig, rank, zone) for sig, rank in entries if zone in sig.where)
            if members:
                self.zones[zone] = (_combine(members), members)
            bare = ((sig, rank, _without_phrases(sig)) for sig, rank in entries if zone in sig.where)
            patterns = tuple(_entry(sig, rank, zone, pattern) for sig, rank, pattern in bare if pattern)
            if patterns:
                self.wordy[zone] = (_combine(patterns), patterns)

    def best(self, body: Body) -> Hit | None:
        """The best-ranked signature matching any zone of `body`, or None."""
        hit: Hit | None = None
        zones = body.zones  # taken apart first: that also measures how much the body says
        tables = self.zones if body.says_little else self.wordy
        for zone, strings in zones.items():
            compiled = tables.get(zone)
            if compiled is None:
                continue
            combined, members = compiled
            for text in strings:
                low = _caseless(text)
                if not combined.search(text, low):
                    continue
                # Only a better-ranked signature than the hit so far can replace it.
                limit = len(members) if hit is None else bisect_left(members, hit.rank, key=_rank)
                found = combined.first(text, low, limit)
                if found is not None:
                    entry, m = found
                    hit = Hit(entry.sig, entry.rank, zone, _line_of(text, m))
        return hit


def _rank(entry: _Entry) -> tuple[int, int, int, int]:
    return entry.rank


def _entry(sig: Signature, rank: tuple[int, int, int, int], zone: str, pattern: str = "") -> _Entry:
    """A signature as matched in `zone` (in a title, a phrase must be the whole title)."""
    pattern = pattern or sig.pattern
    pattern = pattern.replace(TAIL, STRICT_TAIL) if zone == "title" else pattern
    return _Entry(sig, rank, pattern, compile_pattern(pattern))


def _without_phrases(sig: Signature) -> str:
    """A built-in signature's `pattern` part, without its phrases ("" if it has none)."""
    if sig.platform == "user":
        return sig.pattern
    leaves = [leaf for leaf in alternatives(sig.pattern) if not leaf.startswith(_TEMPLATE_HEAD)]
    return leaves[0] if len(leaves) == 1 else "|".join(f"(?:{leaf})" for leaf in leaves)


def _line_of(text: str, m: re.Match[str]) -> str:
    """The line of `text` where `m` starts: what the error message quotes."""
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.start())
    return text[start : end if end >= 0 else len(text)]


class _Screen:
    """The pre-check of one zone: does any member match? One search instead of one per member.

    `lowered`, when the combined pattern allows it (`_caseless_twin`), is the same pattern
    compiled case-sensitively, for the lower-cased text: Python's `re` skips ahead to candidate
    first characters only in case-sensitive patterns, which makes it several times faster.
    Both are compiled on first use: they are the bulk of building a matcher, and a process that
    classifies a few pages (`prober once`) needs only the zones and tables those pages reach.

    A screen that keeps being used (`HOT` searches: a daemon) then compiles a faster twin in a
    thread (`alternation.trie` with leading groups expanded: three times the text, three times
    the compile time) and swaps it in; both say the same. The compile holds the GIL in slices,
    so probing goes on meanwhile, where compiling it inline would stall the event loop.
    """

    __slots__ = ("_built", "_hot", "_lowered", "_members", "_nodes", "_pattern", "_source", "_uses")

    def __init__(self, members: Sequence[_Entry], hot: bool = True) -> None:
        self._members = members
        self._hot = hot  # may compile the faster twin (halves, searched only on hits, do not)
        self._uses = 0
        self._nodes: dict[tuple[int, int], _Screen] = {}  # pre-checks of halves, quarters...: see `first`
        self._source: str | None = None  # the combined pattern, compiled case-insensitively when needed
        self._pattern: re.Pattern[str] | None = None
        self._lowered: re.Pattern[str] | None = None
        self._built = False

    def _build(self) -> None:
        # Only the twin is compiled now: most text is safe to lower-case, and compiling the
        # case-insensitive pattern too would double the first page's cost.
        self._built = True
        self._source = _combined_source(self._members)
        self._lowered = None if self._source is None else _caseless_twin(self._source)

    @property
    def lowered(self) -> re.Pattern[str] | None:
        """The case-sensitive twin for lower-cased text, if exact (compiled on first use)."""
        if not self._built:
            self._build()
        return self._lowered

    def search(self, text: str, low: str | None = None) -> bool:
        """Whether some member may match `text` (exactly: no false negative, no false positive).

        `low` is `_caseless(text)` when the caller has it already.
        """
        if not self._built:
            self._build()
        if self._lowered is not None:
            if self._hot:
                self._uses += 1
                if self._uses == HOT:
                    threading.Thread(target=self._speed_up, name="prober-matcher", daemon=True).start()
            low = _caseless(text) if low is None else low
            if low is not None:
                return self._lowered.search(low) is not None
        if self._pattern is None and self._source is not None:
            self._pattern = _compiled(self._source, self._members)
            self._source = None if self._pattern is None else self._source
        # No combined pattern could be built: no pre-check, every member is tried.
        return self._pattern is None or self._pattern.search(text) is not None

    def _speed_up(self) -> None:
        source = _combined_source(self._members, expand=True)
        faster = None if source is None else _caseless_twin(source)
        if faster is not None:
            self._lowered = faster  # one assignment: a search uses the old twin or the new one

    def first(self, text: str, low: str | None, limit: int) -> tuple[_Entry, re.Match[str]] | None:
        """The best-ranked of the first `limit` members matching `text`, and its match.

        A combined pre-check matches exactly when one of its members does, so the best member is
        found by halving: about 2 log2(n) twin searches instead of one search per member in rank
        order (some 40 a page). Only text safe to lower-case takes that path: the halves compile
        their twins alone, on first use.
        """
        if low is None or self.lowered is None:
            return self._scan(0, limit, text)
        return self._find(0, len(self._members), text, low, limit, known=limit == len(self._members))

    def _find(
        self, lo: int, hi: int, text: str, low: str, limit: int, known: bool
    ) -> tuple[_Entry, re.Match[str]] | None:
        # `known`: some member of [lo, hi) matches (the parent matched and its left half did not).
        if lo >= limit:
            return None
        if hi - lo <= _LEAF:
            return self._scan(lo, min(hi, limit), text)
        if hi <= limit and not known and not self._node(lo, hi).search(text, low):
            return None
        mid = (lo + hi) // 2
        found = self._find(lo, mid, text, low, limit, known=False)
        if found is not None:
            return found
        return self._find(mid, hi, text, low, limit, known=known and hi <= limit)

    def _node(self, lo: int, hi: int) -> _Screen:
        node = self._nodes.get((lo, hi))
        if node is None:
            node = self._nodes[(lo, hi)] = _Screen(self._members[lo:hi], hot=False)
        return node

    def _scan(self, lo: int, hi: int, text: str) -> tuple[_Entry, re.Match[str]] | None:
        for entry in self._members[lo:hi]:
            m = entry.regex.search(text)
            if m is not None:
                return entry, m
        return None


_LEAF = 8  # members searched one by one rather than halved further
HOT = 5000  # searches of a screen after which it compiles its faster twin (seconds into a busy daemon)


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


def _combine(members: Sequence[_Entry]) -> _Screen:
    """One search ruling a zone out when no member matches it (every member is tried if it cannot be built).

    A plain alternation of the members costs one attempt per member at every character, and
    most members start with `^` and the same line template (`LINE_TEMPLATE`): their top-level
    alternatives are regrouped behind a single `^`, with the template's lead, prefix and tail
    matched once around all the phrases. The language is the same (the union of the members),
    so the pre-check never misses; at a position that does not start a line it fails at once.
    """
    return _Screen(members)


def _compiled(source: str, members: Sequence[_Entry]) -> re.Pattern[str] | None:
    """`source` compiled; failing that, the plain alternation of `members` (the same language)."""
    for pattern in (source, _plain(members)):
        with contextlib.suppress(re.error, RecursionError, OverflowError):
            return compile_pattern(pattern)
    return None


def _plain(members: Sequence[_Entry]) -> str:
    return "|".join(f"(?:{e.pattern})" for e in members)


def _combined_source(members: Sequence[_Entry], expand: bool = False) -> str | None:
    """The members regrouped behind one `^` and one line template (their plain alternation if not)."""
    patterns = [e.pattern for e in members]
    if any(_BACKREF.search(p) for p in patterns):
        return None  # group numbers would shift in the alternation
    if any(_GLOBAL_FLAGS.search(p) for p in patterns):  # (?x) would change how a pattern splits
        return _plain(members)
    phrases: dict[str, list[str]] = {tail: [] for tail in _TEMPLATE_TAILS}
    anchored: list[str] = []
    free: list[str] = []
    for pattern in patterns:
        for leaf in alternatives(pattern):
            tail = next((t for t in _TEMPLATE_TAILS if leaf.endswith(t)), None)
            if leaf.startswith(_TEMPLATE_HEAD) and tail is not None:
                phrases[tail].append(leaf[len(_TEMPLATE_HEAD) : len(leaf) - len(tail)])
            elif leaf.startswith("^"):
                anchored.append(leaf[1:])
            else:
                free.append(leaf)
    for tail, found in reversed(phrases.items()):
        if found:
            # Each `found` is a signature's "p1)|(?:p2": the head's "(?:" and the tail's ")" wrap them.
            leaves = [leaf for phrase in found for leaf in alternatives(f"(?:{phrase})")]
            anchored.insert(0, f"{_TEMPLATE_HEAD[1:]}{trie(leaves, expand=expand)}{tail}")
    parts = [f"^(?:{trie(anchored, expand=expand)})"] if anchored else []
    parts += [trie(free, expand=expand)] if free else []
    return "|".join(parts)


_BACKREF = re.compile(r"\\[1-9]|\(\?P=|\\g<|\(\?\(")
_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
# LINE_TEMPLATE around its phrases: what most built-in signatures share (in a title, its strict tail).
_TEMPLATE_HEAD = LINE_TEMPLATE.split("PHRASE")[0] + "(?:"
_TEMPLATE_TAILS = tuple(")" + LINE_TEMPLATE.split("PHRASE")[1].replace(TAIL, t) for t in (TAIL, STRICT_TAIL))
_BY_IDENTITY: dict[int, tuple[Sequence[Signature], Matcher]] = {}


def matcher_for(signatures: Sequence[Signature]) -> Matcher:
    """The compiled matcher of a signature set: by identity for tuples (cheap), else by value."""
    if isinstance(signatures, tuple):
        known = _BY_IDENTITY.get(id(signatures))
        if known is not None and known[0] is signatures:
            return known[1]
        matcher = _compile(signatures)
        if len(_BY_IDENTITY) >= 4096:  # one per check, usually
            _BY_IDENTITY.clear()
        _BY_IDENTITY[id(signatures)] = (signatures, matcher)  # keeps the tuple alive: its id stays its own
        return matcher
    return _compile(tuple(signatures))


@lru_cache(maxsize=64)
def _compile(signatures: tuple[Signature, ...]) -> Matcher:
    return Matcher(signatures)
