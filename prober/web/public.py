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
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prober.model import ProbeResult

if TYPE_CHECKING:
    from prober.config import Config

# A URL up to a space or quote, trailing punctuation left to the sentence.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:!?)\]]")
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


def _alternation(names: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(set(names), key=len, reverse=True)  # "a.b.example" before "b.example"
    return re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None


def conceal_text(text: str, names: Iterable[str]) -> str:
    """`text` with every URL and each of the host `names` replaced by a placeholder."""
    text = _URL.sub(URL_PLACEHOLDER, text)
    pattern = _alternation(names)
    return text if pattern is None else pattern.sub(HOST_PLACEHOLDER, text)


def concealer(urls: Iterable[str]) -> Callable[[ProbeResult], ProbeResult]:
    """A function that takes a result's URL and browser evidence (full of URLs) away, and conceals its
    error message: every URL, its own host and the hosts of `urls` (the configured checks')."""
    shared = _alternation(hosts(urls))

    def conceal(result: ProbeResult) -> ProbeResult:
        error = result.error
        if error:  # most results have none: nothing to scan
            error = conceal_text(error, hosts([result.url]))
            error = error if shared is None else shared.sub(HOST_PLACEHOLDER, error)
        return replace(result, url="", error=error, browser=None)

    return conceal
