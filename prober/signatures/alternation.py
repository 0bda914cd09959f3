"""Regular expressions as text: their top-level alternatives, and alternations regrouped as a trie."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

_TRIE_DEPTH = 3
_MAX_LEAVES = 4000  # expanding `(?:a|b)?` heads multiplies leaves: a bound
_SPECIAL = frozenset("\\[](){}.*+?^$|#")
_QUANTIFIERS = frozenset("?*+{")


def trie(leaves: Sequence[str], depth: int = 0, expand: bool = True) -> str:
    """The alternation of `leaves`, grouped by their leading literal characters (the same language).

    `re` tries the alternatives of a group one after the other at each place: behind the line
    template, the built-in phrases cost some 17 µs per line of text. Grouped by first character,
    then by the next ones, a place is rejected after a few dozen comparisons. Only a literal character
    that no quantifier follows is taken out of a leaf, so each leaf keeps its meaning; alternatives
    change order, which changes no answer of the screen (whether, and where first, some member
    matches).
    """
    groups: dict[str, list[str]] = {}
    others: list[str] = []
    todo = list(leaves)
    while todo:
        leaf = todo.pop(0)
        expanded = _expand_head(leaf) if expand and len(todo) < _MAX_LEAVES else None
        if expanded is not None:
            todo[:0] = expanded
            continue
        head = leaf[:1]
        if depth < _TRIE_DEPTH and head and head not in _SPECIAL and leaf[1:2] not in _QUANTIFIERS:
            groups.setdefault(head, []).append(leaf[1:])
        else:
            others.append(leaf)
    parts = [
        f"{re.escape(head) if head.isspace() else head}{_group(trie(rest, depth + 1, expand), rest)}"
        for head, rest in groups.items()
    ]
    return "|".join(parts + [f"(?:{leaf})" if "|" in leaf else leaf for leaf in others])


def _expand_head(leaf: str) -> list[str] | None:
    """`(?:a|b)?rest` as ["arest", "brest", "rest"] (the same language), or None if it does not start so.

    Only a non-capturing group without a quantifier, or with `?` (greedy or lazy), is expanded: then
    the leaves start with literal characters the trie can group by.
    """
    if not leaf.startswith("(?:"):
        return None
    close = _closing(leaf)
    if close is None:
        return None
    after = leaf[close + 1 :]
    optional = after[:1] == "?"
    if optional:
        after = after[2:] if after[1:2] == "?" else after[1:]
    if after[:1] in _QUANTIFIERS or (optional and after[:1] == "+"):
        return None
    return [alt + after for alt in alternatives(leaf[3:close])] + ([after] if optional else [])


def _closing(pattern: str) -> int | None:
    """The index of the ")" closing the group that opens `pattern`, or None."""
    return next((i for i, c, depth in _syntax(pattern) if c == ")" and depth == 0), None)


def _syntax(pattern: str) -> Iterator[tuple[int, str, int]]:
    """Each "(", ")" and "|" of `pattern` outside escapes and classes: index, character, depth after it."""
    depth, i, n = 0, 0, len(pattern)
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
        elif c in "()|":
            depth += (c == "(") - (c == ")")
            yield i, c, depth
        i += 1


def _group(alternation: str, rest: Sequence[str]) -> str:
    # One leaf left: no group needed (unless it is empty or holds a top-level "|").
    return alternation if len(rest) == 1 and "|" not in alternation else f"(?:{alternation})"


def alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression, each (?:...) wrapping all of one split too."""
    found: list[str] = []
    start, n = 0, len(pattern)
    closes_at_end = True  # the group opened at 0 closes at the very end (it wraps the whole)
    for i, c, depth in _syntax(pattern):
        if c == ")" and depth == 0 and i != n - 1:
            closes_at_end = False
        elif c == "|" and depth == 0:
            found.append(pattern[start:i])
            start = i + 1
    found.append(pattern[start:])
    if len(found) == 1 and pattern.startswith("(?:") and pattern.endswith(")") and closes_at_end:
        return alternatives(pattern[3:-1])
    return [leaf for part in found for leaf in (alternatives(part) if len(found) > 1 else [part])]
