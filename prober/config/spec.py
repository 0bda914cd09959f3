"""The user-facing checks.yaml as pydantic models: their validation, JSON schema and located errors."""

from __future__ import annotations

import difflib
import json
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from prober.config.fields import (
    _BODY_SCHEMA,
    _SELECTION_SCHEMA,
    _STATUS_SCHEMA,
    _STRING,
    _URL_SCHEMA,
    METHODS,
    Count,
    Duration,
    FollowField,
    Interval,
    MaintenanceDuration,
    MaxBody,
    Name,
    OptCount,
    OptDuration,
    OptInterval,
    OptMaxBody,
    OptQuorum,
    OptTimeout,
    QuorumField,
    Timeout,
    _body,
    _header_name,
    _header_value,
    _ip,
    _jmespath,
    _method,
    _Parsed,
    _proxy,
    _regex,
    _resolver,
    _selection,
    _status,
    _url,
)
from prober.config.limits import MAX_CERT_DAYS, MAX_DURATION
from prober.config.model import DEFAULT_RETENTION, Selection
from prober.config.source import _Tree, _YamlPath
from prober.config.units import _DURATION_SCHEMA, _at_least, _at_most, _duration

# -- the user-facing YAML, as pydantic models: the validation and the JSON schema --------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=True)


class _DefaultsSpec(_Spec):
    model_config = ConfigDict(title="defaults")

    interval: Interval = Field(
        default=60.0,
        json_schema_extra={"default": "60s"},
        description="How often each check runs: 500ms, 30s, 5m, 1h or seconds.",
    )
    timeout: Timeout = Field(
        default=10.0,
        json_schema_extra={"default": "10s"},
        description="Deadline of one probe, from connect to the last body byte.",
    )
    vantages: list[str] | None = Field(
        default=None, description="Vantages probing each check (default: every vantage defined, or local)."
    )
    confirm: Count = Field(default=2, description="Consecutive down results before a vantage counts as down.")
    recover: Count = Field(
        default=2, description="Consecutive non-down results before it counts as up again."
    )
    quorum: QuorumField = Field(
        default="majority", description='Vantages down for major_outage: an integer, "majority" or "all".'
    )
    max_body: MaxBody = Field(
        default=262144,
        json_schema_extra={"default": "256KiB"},
        description="How much of a body is read for classification.",
    )
    alerts: list[str] | None = Field(
        default=None, description="Alert channels of every check (names under alerts.channels)."
    )


class _VantageSpec(_Spec):
    model_config = ConfigDict(title="vantage")

    region: str | None = Field(
        default=None, description="Region shown in reports (default: the vantage name)."
    )
    source_address: Annotated[str | None, _Parsed(_ip, {"type": "string"}, optional=True)] = Field(
        default=None, description="Local IP address outgoing connections are bound to."
    )
    proxy: Annotated[str | None, _Parsed(_proxy, _STRING, optional=True)] = Field(
        default=None, description="Proxy URL: http://, https://, socks4:// or socks5://HOST:PORT."
    )
    resolver: list[Annotated[str, _Parsed(_resolver, _STRING)]] | None = Field(
        default=None, min_length=1, description='DNS servers to ask, "IP" or "IP:PORT".'
    )
    canaries: list[Annotated[str, _Parsed(_url, _URL_SCHEMA)]] | None = Field(
        default=None,
        min_length=1,
        description="URLs that are always up: when a check fails from this vantage and they fail "
        "too, the vantage is offline and the result is unknown/vantage.",
    )
    agent: bool = Field(
        default=False,
        description="Probed by `prober agent --vantage NAME` on another machine, its results sent "
        "through NATS to the collector (`prober run --nats URL`).",
    )


class _SignatureSpec(_Spec):
    model_config = ConfigDict(title="signature")

    name: Name = Field(description="Unique signature name, shown in results as `signature`.")
    pattern: Annotated[str, _Parsed(_regex, _STRING)] = Field(
        description="Regular expression, case-insensitive, matched against the title, main headings, "
        "visible text of short pages, short plain-text bodies and JSON error fields."
    )
    verdict: Literal["down", "degraded"] = Field(
        default="down", description="Verdict of a page that matches."
    )


class _ExpectSpec(_Spec):
    model_config = ConfigDict(title="expect")

    status: list[Annotated[str, _Parsed(_status, _STATUS_SCHEMA)]] = Field(
        default=["2xx", "3xx"], min_length=1, description='Accepted statuses: codes or classes like "2xx".'
    )
    body_contains: list[str] = Field(default=[], description="Strings that must all appear in the body.")
    body_not_contains: list[str] = Field(default=[], description="Strings that must not appear in the body.")
    json_: list[Annotated[str, _Parsed(_jmespath, _STRING)]] = Field(
        default=[], alias="json", description="JMESPath expressions that must be truthy on the JSON body."
    )
    max_latency: OptDuration = Field(default=None, description="Slower than this: degraded, reason slow.")
    cert_min_days: float | None = Field(
        default=None,
        ge=0,
        le=MAX_CERT_DAYS,
        allow_inf_nan=False,
        description="Certificate expiring sooner (days): degraded, reason cert_expiring.",
    )


def _viewport(value: Any) -> tuple[int, int]:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    width, x, height = value.strip().lower().partition("x")
    if not x or not width.isdigit() or not height.isdigit():
        raise ValueError('is not a viewport: use WIDTHxHEIGHT, like "1280x800"')
    size = (int(width), int(height))
    if not all(100 <= n <= 10000 for n in size):
        raise ValueError("is not a viewport: width and height must be between 100 and 10000 pixels")
    return size


class _BrowserSpec(_Spec):
    model_config = ConfigDict(title="browser")

    executable: str | None = Field(
        default=None,
        min_length=1,
        description="Chromium to run (default: $PROBER_CHROMIUM, else chromium on PATH).",
    )
    concurrency: int = Field(default=2, ge=1, le=64, description="Pages rendered at once, across all checks.")


class _CheckBrowserSpec(_Spec):
    model_config = ConfigDict(title="check browser")

    wait_until: Literal["load", "domcontentloaded", "networkidle"] = Field(
        default="networkidle", description="When the page counts as loaded."
    )
    wait_for: str | None = Field(
        default=None, min_length=1, description="CSS selector that must become visible within the timeout."
    )
    viewport: Annotated[tuple[int, int] | None, _Parsed(_viewport, _STRING, optional=True)] = Field(
        default=None, description="WIDTHxHEIGHT (default 1280x800 for web, 390x844 for mobile)."
    )
    screenshot: Literal["on_failure", "always", "never"] = Field(
        default="on_failure", description="When a PNG of the page is kept."
    )
    block: list[Annotated[str, Field(min_length=1)]] = Field(
        default=[], description="URL patterns never loaded (aborted), like *://*.doubleclick.net/*."
    )


# A claims source may be polled as often as once a second (DESIGN), not more.
_ClaimInterval = Annotated[
    float, _Parsed(_at_most(MAX_DURATION, "365d", _at_least(1, "1s", _duration)), _DURATION_SCHEMA)
]


class _ClaimSourceSpec(_Spec):
    model_config = ConfigDict(title="claims source")

    url: Annotated[str, _Parsed(_url, _STRING)] = Field(
        description="The official status page's summary.json, or its RSS or Atom incident feed."
    )
    format: Literal["statuspage", "rss", "atom"] = Field(
        default="statuspage", description="statuspage (Statuspage v2 summary.json), rss or atom."
    )
    interval: _ClaimInterval = Field(
        default=60.0,
        json_schema_extra={"default": "60s"},
        description="How often it is polled (at least 1s).",
    )
    timeout: Timeout = Field(
        default=10.0, json_schema_extra={"default": "10s"}, description="Deadline of one poll."
    )
    vantage: str | None = Field(default=None, description="The vantage it is polled from (default: direct).")
    max_body: MaxBody = Field(
        default=2097152,
        json_schema_extra={"default": "2MiB"},
        description="Largest answer read; a larger one gives unknown claims.",
    )
    open_for: Duration = Field(
        default=86400.0,
        json_schema_extra={"default": "24h"},
        description="Feeds: how long an entry that never says resolved counts as an open incident.",
    )


class _CheckClaimSpec(_Spec):
    model_config = ConfigDict(title="check claim")

    source: str = Field(description="The name of a source under `claims:`.")
    component: str | None = Field(
        default=None, min_length=1, description="Its component (default: the page's overall status)."
    )


class _PageSpec(_Spec):
    model_config = ConfigDict(title="page")

    title: str = Field(
        default="Service status", min_length=1, max_length=200, description="Heading of the status page."
    )
    description: str | None = Field(
        default=None, min_length=1, max_length=2000, description="Text under the heading."
    )
    show_urls: bool = Field(
        default=False, description="Show probed URLs on the page and in the public APIs (internal hosts)."
    )
    refresh: OptDuration = Field(
        default=None,
        description="The page reloads itself this often, for wall displays (default: never; a page "
        "that reloads itself interrupts screen readers).",
    )


class _MetricsSpec(_Spec):
    model_config = ConfigDict(title="metrics")

    detail: Literal["summary", "full"] = Field(
        default="summary",
        description="summary: per check and vantage prober_probe_success, per check its current state "
        "and, where not 0, open incidents and maintenance (4 samples per check at 3 vantages); full: "
        "every series, durations, phases, status codes, verdicts, certificates and counters (about 14 "
        "per check and vantage).",
    )


class _CheckSpec(_Spec):
    model_config = ConfigDict(title="check")

    name: Name = Field(description="Unique check name: lowercase letters, digits, '.', '_', '-'.")
    surface: Literal["web", "mobile", "api"] = Field(
        default="web", description="What kind of client the check is."
    )
    url: Annotated[str, _Parsed(_url, _URL_SCHEMA)] = Field(
        description="http:// or https:// URL; ${NAME} allowed."
    )
    method: Annotated[str, _Parsed(_method, {"enum": [*METHODS, *(m.lower() for m in METHODS)]})] = Field(
        default="GET", description="HTTP method."
    )
    headers: dict[
        Annotated[str, _Parsed(_header_name, _STRING)],
        Annotated[str, _Parsed(_header_value, {"type": ["string", "number"]})],
    ] = Field(default={}, description="Request headers.")
    body: Annotated[Any, _Parsed(_body, _BODY_SCHEMA)] = Field(
        default=None, description="Request body: a string, or json: {...}."
    )
    follow_redirects: FollowField = Field(
        default=True,
        description="Follow redirects (at most 10, http and https only); true refuses a redirect from a "
        'public address to an internal one, "any" follows it.',
    )
    interval: OptInterval = Field(default=None, description="Overrides defaults.interval.")
    timeout: OptTimeout = Field(default=None, description="Overrides defaults.timeout.")
    vantages: list[str] | None = Field(default=None, min_length=1, description="Overrides defaults.vantages.")
    confirm: OptCount = Field(default=None, description="Overrides defaults.confirm.")
    recover: OptCount = Field(default=None, description="Overrides defaults.recover.")
    quorum: OptQuorum = Field(default=None, description="Overrides defaults.quorum.")
    max_body: OptMaxBody = Field(default=None, description="Overrides defaults.max_body.")
    expect: _ExpectSpec | None = Field(default=None, description="What a healthy response looks like.")
    signatures: Annotated[Selection, _Parsed(_selection, _SELECTION_SCHEMA)] = Field(
        default="all", description="Error-page signatures to apply: all, none, or a list of names."
    )
    tags: list[str] = Field(default=[], description="Free-form labels.")
    browser: _CheckBrowserSpec | None = Field(
        default=None,
        description="Render the page in Chromium and judge what it shows (needs prober[browser]).",
    )
    alerts: list[str] | None = Field(
        default=None, description="Overrides defaults.alerts: the channels notified ([] = none)."
    )
    claim: _CheckClaimSpec | None = Field(
        default=None, description="What the target's own status page says about this check."
    )

    display_name: str | None = Field(
        default=None, min_length=1, max_length=200, description="Name on the status page (default: name)."
    )
    description: str | None = Field(
        default=None, min_length=1, max_length=2000, description="Text under it on the status page."
    )
    public: bool = Field(
        default=True, description="false: probed and alerted, but absent from the page and public APIs."
    )


def _start(value: Any) -> datetime:
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp itself
        return value
    if not isinstance(value, str):
        raise ValueError("is not an ISO 8601 time, like 2026-12-06T02:00:00Z")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("is not an ISO 8601 time, like 2026-12-06T02:00:00Z") from None


def _cron(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    from prober.schedule import cron_trigger  # only a file with recurring windows loads APScheduler here

    try:
        cron_trigger(value)
    except ValueError as exc:
        raise ValueError(f'is not a cron expression ("MIN HOUR DAY MONTH WEEKDAY"): {exc}') from None
    return value


def _timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError('is not a time zone: use an IANA name like "Europe/Paris" or "UTC"') from None
    return value


class _MaintenanceSpec(_Spec):
    model_config = ConfigDict(title="maintenance")

    name: Name = Field(description="Unique window name, shown on the page and in the Statuspage API.")
    checks: list[str] | None = Field(
        default=None, min_length=1, description="Checks under maintenance (default: every check)."
    )
    start: Annotated[datetime | None, _Parsed(_start, _STRING, optional=True)] = Field(
        default=None, description="A one-off window: its ISO 8601 start (without an offset: in `timezone`)."
    )
    every: Annotated[str | None, _Parsed(_cron, _STRING, optional=True)] = Field(
        default=None, description='A recurring window: a cron expression, like "0 2 * * SUN".'
    )
    timezone: Annotated[str, _Parsed(_timezone, _STRING)] = Field(
        default="UTC", description="IANA time zone of `every` and of a `start` without an offset."
    )
    duration: MaintenanceDuration = Field(description="How long each window lasts: 30m, 2h...")


class _ConfigSpec(_Spec):
    model_config = ConfigDict(title="checks.yaml")

    defaults: _DefaultsSpec | None = Field(default=None, description="Applied to every check.")
    vantages: dict[Name, _VantageSpec | None] | None = Field(
        default=None, min_length=1, description="Where checks are probed from (default: one, local, direct)."
    )
    signatures: list[_SignatureSpec] | None = Field(
        default=None, description="Error-page signatures added to the built-in ones."
    )
    checks: list[_CheckSpec] = Field(description="The checks to run.")
    retention: Duration = Field(
        default=DEFAULT_RETENTION,
        json_schema_extra={"default": "14d"},
        description="How long raw results are kept.",
    )
    browser: _BrowserSpec | None = Field(default=None, description="Chromium for browser checks.")
    maintenance: list[_MaintenanceSpec] | None = Field(
        default=None, description="Windows of planned work: probed, but no alerts and no availability."
    )
    # Validated by prober.alerts.settings (loaded only when the key is there).
    alerts: Any = Field(default=None, description="Alert channels, events and reminders.")
    claims: dict[Name, _ClaimSourceSpec] | None = Field(
        default=None, description="The target's own status pages and incident feeds, polled and compared."
    )
    page: _PageSpec | None = Field(default=None, description="The public status page.")
    metrics: _MetricsSpec | None = Field(default=None, description="Which series /metrics exposes.")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of checks.yaml as users write it, for editors and the YAML language server."""
    text = json.dumps(_ConfigSpec.model_json_schema())
    text = text.replace("_CheckBrowserSpec", "check_browser")  # before "_BrowserSpec" below matches inside it
    text = text.replace("_CheckClaimSpec", "check_claim").replace("_ClaimSourceSpec", "claims_source")
    for model in (
        "Browser",
        "Check",
        "Defaults",
        "Expect",
        "Maintenance",
        "Metrics",
        "Page",
        "Signature",
        "Vantage",
    ):  # the internal class names
        text = text.replace(f'"_{model}Spec"', f'"{model.lower()}"').replace(
            f"/_{model}Spec", f"/{model.lower()}"
        )
    schema = _untitled(json.loads(text))
    schema["patternProperties"] = {"^x-": {"description": "Ignored: a place for YAML anchors."}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "prober checks.yaml",
        "description": "prober's checks, vantages and signatures; ${NAME} in a string is read from the env.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def _untitled(node: Any) -> Any:
    """`node` without pydantic's titles of properties ("Interval" for `interval`): editors show a
    title beside the description, and one that repeats the key says nothing."""
    if isinstance(node, list):
        return [_untitled(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _untitled(v) for k, v in node.items()}
    for prop in (out.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return out


# -- pydantic errors -> located issues ---------------------------------------------------------------


def located_issue(tree: _Tree, error: Any, data: dict[str, Any]) -> None:
    """Translate one pydantic error into a located issue recorded in `tree`."""
    loc, value, is_key = error["loc"], data, False
    path: _YamlPath = ()
    rest: tuple[Any, ...] = ()
    for i, part in enumerate(loc):
        if part == "[key]":
            is_key = True
            break
        in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if in_list or (isinstance(value, dict) and part in value):
            value, path = value[part], (*path, part)
        else:
            rest = loc[i:]
            break
    if any(path[:n] in tree.bad for n in range(len(path) + 1)):
        return
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        name = str(rest[-1]) if rest else "?"
        tree.issue((*path, name), tree.near(path), f'required key "{name}" is missing')
        return
    if kind == "extra_forbidden":
        known = _known_keys(path[:-1])
        tree.issue(path, tree.keys.get(path) or tree.near(path), _unknown(str(path[-1]), known))
        return
    if is_key:
        message = f"{tree.quote(path[-1])} {_predicate(kind, ctx, error['msg'])}"
        tree.issue(path, tree.keys.get(path) or tree.near(path), message)
        return
    quoted = tree.quote(tree.display[path]) if path in tree.display else tree.quote(value)
    tree.issue(path, tree.near(path), f"{quoted} {_predicate(kind, ctx, error['msg'])}")


_PREDICATES = {
    "string_type": "is not a string",
    "int_type": "is not an integer",
    "float_type": "is not a number",
    "bool_type": "is not true or false",
    "dict_type": "is not a mapping",
    "model_type": "is not a mapping",
    "list_type": "is not a list",
    "finite_number": "is not a finite number",
}


def _predicate(kind: str, ctx: dict[str, Any], msg: str) -> str:
    if kind == "prober":
        return msg
    if kind in _PREDICATES:
        return _PREDICATES[kind]
    if kind == "literal_error":
        return f"is not one of {str(ctx.get('expected', '')).replace(chr(39), chr(34))}"
    if kind == "greater_than_equal":
        return f"is too small: it must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"is too large: it must be at most {ctx.get('le')}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters"
    return f"is invalid: {msg}"


def _known_keys(parent: _YamlPath) -> list[str]:
    kind = tuple("#" if isinstance(p, int) else p for p in parent)
    models: dict[tuple[str, ...], type[BaseModel]] = {
        (): _ConfigSpec,
        ("defaults",): _DefaultsSpec,
        ("signatures", "#"): _SignatureSpec,
        ("checks", "#"): _CheckSpec,
        ("checks", "#", "expect"): _ExpectSpec,
        ("checks", "#", "browser"): _CheckBrowserSpec,
        ("browser",): _BrowserSpec,
        ("maintenance", "#"): _MaintenanceSpec,
        ("checks", "#", "claim"): _CheckClaimSpec,
        ("page",): _PageSpec,
        ("metrics",): _MetricsSpec,
    }
    model = _VantageSpec if len(kind) == 2 and kind[0] == "vantages" else models.get(kind)
    model = _ClaimSourceSpec if len(kind) == 2 and kind[0] == "claims" else model
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f'unknown key "{key}" (did you mean "{close[0]}"?)'
    return f'unknown key "{key}" (known keys: {", ".join(known)})' if known else f'unknown key "{key}"'
