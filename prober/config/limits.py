"""What a checks.yaml may hold: its size, nesting, alias expansion, and the range of every number.

A configuration comes from people, and on SIGHUP from whatever sits in the file: it is read in
bounded time and memory whatever it says. YAML aliases are the trap: a 445-byte file whose
anchors each repeat the previous one nine times ("billion laughs") composes into a few hundred
nodes, and expands into 10^9 values when walked. The composer below counts, at each alias, how
many values and how many levels of nesting it stands for, and refuses the file at that alias.
libyaml composes recursively in C and crashes (SIGSEGV) about 100,000 levels deep, so libyaml
only parses and PyYAML's own composer, subclassed, builds the nodes: as fast, and bounded.
"""

from __future__ import annotations

from typing import Any, NoReturn

import yaml
from yaml.composer import Composer, ComposerError

MAX_BYTES = 32 * 2**20  # 20,000 checks take about 3 MiB
MAX_DEPTH = 100  # levels of nesting, aliases expanded; checks.yaml needs 6, a JSON body a few more
# Aliases may add this many values to a file, or ten per value written if that is more: merging a
# `<<: *defaults` into each of 20,000 checks is fine, a billion laughs is refused at once.
MAX_ALIASED = 100_000
ALIAS_RATIO = 10

DAY = 86400.0
MAX_DURATION = 365 * DAY  # interval, timeout, max_latency: timedelta, asyncio and APScheduler hold it
MAX_RETENTION = 100 * 365 * DAY  # `now - retention` is still a date
MAX_COUNT = 1000  # confirm, recover, quorum: 1000 results of a 100ms check are 100 s
MAX_CERT_DAYS = 3650.0


class LimitError(ComposerError):
    """The file is beyond what prober reads (too deep, aliases expanding too far): not retried."""


class _BoundedComposer(Composer):
    """PyYAML's composer, counting the nesting and the values each alias stands for as it goes."""

    def _start_counting(self) -> None:
        self._open: list[list[int]] = []  # per collection being composed: [values, height] of its children
        self._sized: dict[int, tuple[int, int]] = {}  # anchored node -> (values, height)
        self._written = 0
        self._aliased = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """The next node, refused if it nests too deep or its aliases expand too far."""
        event = self.peek_event()  # type: ignore[attr-defined]  # the parser it is mixed with
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            values, height = self._sized.get(id(node), (1, 1))  # a recursive alias: the walk refuses it
            self._aliased += values
            limit = max(MAX_ALIASED, ALIAS_RATIO * self._written)
            if len(self._open) + height > MAX_DEPTH:
                _refuse(f"this alias nests values deeper than {MAX_DEPTH} levels", event)
            if self._aliased > limit:
                _refuse(f"aliases add more than {limit:,} values to this file (a billion laughs?)", event)
            self._child(values, height)
            return node
        if len(self._open) >= MAX_DEPTH:
            _refuse(f"values are nested deeper than {MAX_DEPTH} levels", event)
        self._open.append([0, 0])
        try:
            node = super().compose_node(parent, index)
        finally:
            values, height = self._open.pop()
        self._written += 1
        if getattr(event, "anchor", None) is not None:
            self._sized[id(node)] = (values + 1, height + 1)
        self._child(values + 1, height + 1)
        return node

    def _child(self, values: int, height: int) -> None:
        if self._open:
            self._open[-1][0] += values
            self._open[-1][1] = max(self._open[-1][1], height)


def _refuse(problem: str, event: Any) -> NoReturn:
    raise LimitError(None, None, problem, event.start_mark)


class _Loader(_BoundedComposer, yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._start_counting()


_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)
if _CSafeLoader is not None:

    class _FastLoader(_BoundedComposer, _CSafeLoader):  # type: ignore[misc]
        """libyaml's parser under PyYAML's composer (the Python methods come first in the MRO)."""

        def __init__(self, stream: str) -> None:
            _CSafeLoader.__init__(self, stream)
            Composer.__init__(self)
            self._start_counting()


def compose(text: str) -> yaml.Node | None:
    """The YAML node tree of `text`, within the limits above: parsed by libyaml when PyYAML has it
    (4x faster on 20,000 checks, same nodes and marks), and by the pure-Python parser for a file
    libyaml refuses, whose error messages are the ones users (and the tests) know."""
    if _CSafeLoader is not None:
        try:
            return yaml.compose(text, Loader=_FastLoader)
        except LimitError:
            raise
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=_Loader)
