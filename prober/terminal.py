"""What prober writes to a terminal or a log: control characters escaped, secrets redacted.

A target chooses the bytes of its status line, headers, title and error messages, and some of
them end up in an error that `prober once` prints or that the daemon logs. Printed raw, an
escape sequence retitles the terminal (`ESC ] 0 ; pwned BEL`), clears it (`ESC [ 2 J`), hides
text or, with some terminals, writes to the clipboard; a bidirectional override makes a line
read differently from what it says; a carriage return or a newline forges a log line. So every
control character (C0 and DEL, C1, bidi controls, line separators) is written as a `\\uXXXX`
escape, which is also what JSON would say, so the same text is safe in JSON output.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from prober.config.redaction import redact_known

# C0 and DEL, C1, the Arabic letter mark, LRM/RLM, line and paragraph separators, bidi embeddings,
# overrides and isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_BY_KEPT: dict[str, re.Pattern[str]] = {}


def printable(text: str, keep: str = "") -> str:
    """`text` with every control character but those in `keep` written as a \\uXXXX escape."""
    pattern = _CONTROL
    if keep:
        pattern = _BY_KEPT.get(keep) or _BY_KEPT.setdefault(
            keep, re.compile(f"(?![{re.escape(keep)}]){_CONTROL.pattern}")
        )
    return pattern.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def _printable_args(args: Any) -> Any:
    """Log arguments with their strings escaped whole: a newline in data must not start a line."""
    if isinstance(args, Mapping):
        return {k: printable(v) if isinstance(v, str) else v for k, v in args.items()}
    if isinstance(args, tuple):
        return tuple(printable(a) if isinstance(a, str) else a for a in args)
    return args


class LogFormatter(logging.Formatter):
    """Log lines whose secrets are redacted and whose control characters are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        """The line of `record`; the newlines of a traceback or a multi-line message stay."""
        if record.args:
            record = logging.makeLogRecord({**record.__dict__, "args": _printable_args(record.args)})
        return printable(redact_known(super().format(record)), keep="\n\t")


_PRIORITY: Final = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(LogFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(level: int) -> None:
    """Log to stderr, one line per event; under systemd, with syslog priority prefixes for journald."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        # journald stamps time and unit itself; "<N>" sets the priority of the line.
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))


def span(delta: timedelta | None) -> str:
    """A duration for people: 3.2s, 4m05s, 2h13m, 3d04h."""
    if delta is None:
        return "-"
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def when(ts: datetime | None) -> str:
    """A time for people: UTC to the second."""
    return "-" if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
