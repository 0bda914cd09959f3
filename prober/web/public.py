"""What the public may see: hidden checks left out, probed URLs and hosts concealed unless shown.

The status page and every JSON API but /metrics (an operator's scrape target) are public: a check
with `public: false` is absent from them, as if it did not exist (404 where it is named). Unless
`page.show_urls` is true, a probed URL appears nowhere in them either: not as the check's `url`,
not in a result's `url`, and not inside an error message, where the check's host name and any
URL are replaced by placeholders; a browser check's evidence is left out. A cause (reason and
signature) stays: it is what users need.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prober.model import ProbeResult

if TYPE_CHECKING:
    from prober.config import Config

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
HOST_PLACEHOLDER = "[host]"
URL_PLACEHOLDER = "[url]"


def show_urls(config: Config | None) -> bool:
    """Whether the public may see probed URLs (`page.show_urls`; false without a configuration)."""
    return config is not None and config.page.show_urls


def hidden_checks(config: Config | None) -> frozenset[str]:
    """The names of the checks with `public: false`."""
    if config is None:
        return frozenset()
    return frozenset(c.name for c in config.checks if not c.public)


def hosts(urls: Iterable[str]) -> set[str]:
    """The host names of `urls` (those that have one)."""
    out = set()
    for url in urls:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            continue
        if host:
            out.add(host)
    return out


def conceal_text(text: str, names: Iterable[str]) -> str:
    """`text` with every URL and each of the host `names` replaced by a placeholder."""
    text = _URL.sub(URL_PLACEHOLDER, text)
    for name in sorted(names, key=len, reverse=True):  # "a.b.example" before "b.example"
        text = re.sub(re.escape(name), HOST_PLACEHOLDER, text, flags=re.IGNORECASE)
    return text


def conceal(result: ProbeResult, names: Iterable[str] = ()) -> ProbeResult:
    """`result` without its URL or browser evidence (full of URLs), its error message concealed."""
    names = hosts([result.url]) | set(names)
    error = None if result.error is None else conceal_text(result.error, names)
    return replace(result, url="", error=error, browser=None)
