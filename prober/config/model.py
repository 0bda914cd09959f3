"""The validated configuration: frozen Config, Check, Vantage, Defaults and Expect values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

from prober.config.redaction import Redactor
from prober.model import Surface
from prober.redirect import FollowRedirects
from prober.signatures import Signature, builtin_signatures

Quorum = int | Literal["majority", "all"]
Selection = Literal["all", "none"] | tuple[str, ...]
MetricsDetail = Literal["summary", "full"]
_V = TypeVar("_V")


DEFAULT_RETENTION = 14 * 86400.0


# -- the validated configuration ---------------------------------------------------------------------


class _FrozenMap(Mapping[str, _V]):
    """A read-only mapping that, unlike MappingProxyType, can be pickled and deep-copied."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, _V]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)


@dataclass(frozen=True, slots=True)
class Vantage:
    """Where probes are sent from."""

    name: str
    region: str = ""  # default: the name
    source_address: str | None = None
    proxy: str | None = None
    resolver: tuple[str, ...] | None = None
    canaries: tuple[str, ...] = ()  # URLs that are always up, probed when a check fails from here
    agent: bool = False  # probed by a `prober agent` on another machine (prober.agents), not here

    def __post_init__(self) -> None:
        if not self.region:
            object.__setattr__(self, "region", self.name)


@dataclass(frozen=True, slots=True)
class Defaults:
    """Values every check gets unless it sets its own."""

    interval: float = 60.0
    timeout: float = 10.0
    vantages: tuple[str, ...] = ("local",)
    confirm: int = 2
    recover: int = 2
    quorum: Quorum = "majority"
    max_body: int = 262144


@dataclass(frozen=True, slots=True)
class Expect:
    """What a healthy response looks like."""

    status: tuple[str, ...] = ("2xx", "3xx")
    body_contains: tuple[str, ...] = ()
    body_not_contains: tuple[str, ...] = ()
    json: tuple[str, ...] = ()
    max_latency: float | None = None
    cert_min_days: float | None = None


@dataclass(frozen=True, slots=True)
class BrowserSettings:
    """The top-level `browser:` key: which Chromium renders pages, and how many at once."""

    executable: str | None = None  # None: $PROBER_CHROMIUM, else chromium on PATH
    concurrency: int = 2


@dataclass(frozen=True, slots=True)
class PageSettings:
    """The top-level `page:` key: what the public status page and Statuspage API say of themselves."""

    title: str = "Service status"
    description: str | None = None
    show_urls: bool = False  # a public page must not reveal internal hosts unless asked to
    refresh: float | None = None  # seconds between the page's reloads of itself (wall displays)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The top-level `metrics:` key: which series /metrics exposes."""

    # summary: per check and vantage success, per check its state; full: every series
    detail: MetricsDetail = "summary"


@dataclass(frozen=True, slots=True)
class CheckBrowser:
    """A check's `browser:` key: the check is rendered in Chromium instead of one HTTP request."""

    wait_until: Literal["load", "domcontentloaded", "networkidle"] = "networkidle"
    wait_for: str | None = None  # a CSS selector that must become visible
    viewport: tuple[int, int] | None = None  # None: 1280x800 for web, 390x844 for mobile
    screenshot: Literal["on_failure", "always", "never"] = "on_failure"
    block: tuple[str, ...] = ()
    # The top-level settings, copied in so that a probe needs nothing but its check.
    settings: BrowserSettings = field(default_factory=BrowserSettings)


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A `maintenance:` entry: a one-off (`start`) or recurring (`every`, cron) window of planned work."""

    name: str
    duration: float  # seconds
    checks: tuple[str, ...] | None = None  # None: every check
    start: datetime | None = None  # aware; a one-off window
    every: str | None = None  # a crontab expression, in `timezone`
    timezone: str = "UTC"

    def covers(self, check: str) -> bool:
        """Whether the window applies to the check named `check`."""
        return self.checks is None or check in self.checks


@dataclass(frozen=True, slots=True)
class ClaimSource:
    """A `claims:` source: the target's own status page or incident feed, polled on its own schedule."""

    name: str
    url: str
    format: Literal["statuspage", "rss", "atom"] = "statuspage"
    interval: float = 60.0
    timeout: float = 10.0
    vantage: str | None = None  # None: direct, from this machine
    max_body: int = 2097152
    open_for: float = 86400.0  # feeds: an entry that never says resolved is open this long
    display_url: str = ""  # the URL with ${NAME} left in

    def __post_init__(self) -> None:
        if not self.display_url:
            object.__setattr__(self, "display_url", self.url)


@dataclass(frozen=True, slots=True)
class CheckClaim:
    """A check's `claim:` key: which source, and which of its components (None: the overall status)."""

    source: str
    component: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One check, with the defaults merged in."""

    name: str
    url: str
    display_url: str = ""  # the URL with ${NAME} left in: the only form shown or stored
    surface: Surface = Surface.WEB
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    json_body: Any = None
    follow_redirects: FollowRedirects = True  # "any": into internal networks too
    interval: float = 60.0
    timeout: float = 10.0
    vantages: tuple[str, ...] = ("local",)
    confirm: int = 2
    recover: int = 2
    quorum: Quorum = "majority"
    max_body: int = 262144
    expect: Expect = field(default_factory=Expect)
    signatures: Selection = "all"
    tags: tuple[str, ...] = ()
    browser: CheckBrowser | None = None  # set: a rendered (browser) check
    alerts: tuple[str, ...] = ()  # alert channels notified of its incidents
    claim: CheckClaim | None = None  # what the target's own status page says about it
    display_name: str = ""  # what the page and the Statuspage API call it (default: the name)
    description: str | None = None  # shown under it on the page and as the component's description
    public: bool = True  # False: probed and alerted, absent from the page and the public APIs

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        if not self.display_url:
            object.__setattr__(self, "display_url", self.url)
        object.__setattr__(self, "headers", _FrozenMap(self.headers))

    def quorum_count(self, n_vantages: int) -> int:
        """How many of `n_vantages` must be down for a major outage."""
        if self.quorum == "majority":
            return n_vantages // 2 + 1
        if self.quorum == "all":
            return n_vantages
        return min(self.quorum, n_vantages)


def _builtin_names() -> set[str]:
    """Names of the built-in signatures, read at call time (only here and in Config.available_signatures)."""
    return {s.name for s in builtin_signatures()}


DEFAULT_SEND_ON = ("open", "escalate", "resolve")  # alert events notified unless `send_on` says


@dataclass(frozen=True, slots=True)
class Channel:
    """One named channel: its type and settings (secrets in them never leave the process)."""

    name: str
    type: str
    settings: Mapping[str, Any] = field(repr=False)  # repr=False: a repr in a log would show secrets
    min_interval: float = 0.0


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The validated `alerts:` key."""

    channels: Mapping[str, Channel] = field(default_factory=dict)
    send_on: frozenset[str] = frozenset(DEFAULT_SEND_ON)
    remind: float | None = None
    give_up_after: float = 86400.0
    timeout: float = 10.0  # seconds one delivery attempt may take
    status_page: str | None = None  # the status page's public URL, for links in messages


@dataclass(frozen=True, slots=True)
class Config:
    """A validated checks.yaml."""

    path: str = "checks.yaml"
    defaults: Defaults = field(default_factory=Defaults)
    vantages: Mapping[str, Vantage] = field(default_factory=lambda: {"local": Vantage("local")})
    signatures: tuple[Signature, ...] = ()  # the user's, from the top-level `signatures:`
    checks: tuple[Check, ...] = ()
    retention: float = DEFAULT_RETENTION
    browser: BrowserSettings = field(default_factory=BrowserSettings)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    alerts: AlertSettings | None = None  # the `alerts:` key, if any
    claims: Mapping[str, ClaimSource] = field(default_factory=dict)
    page: PageSettings = field(default_factory=PageSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    secrets: frozenset[str] = frozenset()  # every value substituted from ${NAME}
    secret_names: Mapping[str, str] = field(default_factory=dict, repr=False)  # value -> NAME
    _redactor: Redactor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vantages", _FrozenMap(self.vantages))
        object.__setattr__(self, "claims", _FrozenMap(self.claims))
        object.__setattr__(self, "secret_names", _FrozenMap(self.secret_names))
        names = {s: self.secret_names.get(s, "SECRET") for s in self.secrets}
        object.__setattr__(self, "_redactor", Redactor(names))

    def available_signatures(self) -> tuple[Signature, ...]:
        """Built-in signatures (a user one of the same name replaces it), then the user's."""
        mine = {s.name: s for s in self.signatures}
        builtin = tuple(mine.pop(s.name, s) for s in builtin_signatures())
        return builtin + tuple(mine.values())

    def signatures_for(self, check: Check) -> tuple[Signature, ...]:
        """The signatures `check` is classified with, per its `signatures` selection."""
        if check.signatures == "none":
            return ()
        available = self.available_signatures()
        if check.signatures == "all":
            return available
        by_name = {s.name: s for s in available}
        return tuple(by_name[name] for name in check.signatures if name in by_name)

    def redact(self, text: str) -> str:
        """`text` with every substituted secret, in any encoding, replaced by its ${NAME} placeholder."""
        return self._redactor(text)

    def probed_here(self) -> tuple[Check, ...]:
        """The checks this machine probes, each with its vantages that are not agents' (none: left out)."""
        out = []
        for check in self.checks:
            here = tuple(v for v in check.vantages if not self.vantages[v].agent)
            if here:
                out.append(check if here == check.vantages else replace(check, vantages=here))
        return tuple(out)

    def check(self, name: str) -> Check:
        """The check named `name`; KeyError if there is none."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)
