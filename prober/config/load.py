"""Loading checks.yaml: read, cross-check and validate it, then build the frozen Config."""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections.abc import Iterator, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from prober.config.fields import _JsonBody
from prober.config.limits import MAX_BYTES
from prober.config.model import (
    BrowserSettings,
    Check,
    CheckBrowser,
    CheckClaim,
    ClaimSource,
    Config,
    Defaults,
    Expect,
    MaintenanceWindow,
    MetricsSettings,
    PageSettings,
    Vantage,
    _builtin_names,
)
from prober.config.redaction import remember
from prober.config.source import ConfigError, ConfigIssue, _Tree, _YamlPath
from prober.config.spec import (
    _BrowserSpec,
    _CheckBrowserSpec,
    _ConfigSpec,
    _DefaultsSpec,
    _ExpectSpec,
    _MetricsSpec,
    _PageSpec,
    located_issue,
)
from prober.model import ProberError, Surface, Verdict
from prober.signatures import Signature


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a checks.yaml; ConfigError lists every problem, ProberError if unreadable."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_BYTES + 1)  # a file of any size is read in bounded memory
    except OSError as exc:
        raise ProberError(f"cannot read configuration {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            [ConfigIssue(str(path), 1, 1, "", f"the file is larger than {MAX_BYTES >> 20} MiB")]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - raw.rfind(b"\n", 0, exc.start)
        message = f"the file is not UTF-8 text: byte 0x{raw[exc.start]:02x} ({exc.reason})"
        raise ConfigError([ConfigIssue(str(path), line, col, "", message)]) from None
    config = parse_config(text, str(path), env)
    remember(config.secret_names)  # for the logs: what they may say about this configuration
    return config


def parse_config(text: str, filename: str = "checks.yaml", env: Mapping[str, str] | None = None) -> Config:
    """Validate the text of a checks.yaml; ConfigError lists every problem, in file order."""
    tree = _Tree(filename, os.environ if env is None else env)
    data = tree.load(text)
    spec: _ConfigSpec | None = None
    if isinstance(data, dict):
        # Top-level x-* keys hold YAML anchors to merge (<<: *name) elsewhere, as in docker-compose files.
        data = {key: value for key, value in data.items() if not key.startswith("x-")}
        _cross_check(data, tree)
        alerts = _alerts(data, tree)
        try:
            spec = _ConfigSpec.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                located_issue(tree, error, data)
    if tree.issues or spec is None:
        # Every message once more through the redactor, with all the secrets now known.
        redacted = {i._replace(path=tree.redact(i.path), message=tree.redact(i.message)) for i in tree.issues}
        issues = sorted(redacted, key=lambda i: (i.line, i.col, i.path, i.message))
        raise ConfigError(issues)
    return _build(spec, tree, alerts)


def _alerts(data: dict[str, Any], tree: _Tree) -> Any:
    """The `alerts:` key, validated by prober.alerts (imported only when alerts are configured)."""
    if data.get("alerts") is None and not _mentions_alerts(data):
        return None
    from prober.alerts.settings import parse_alerts

    return parse_alerts(data, tree)


def _mentions_alerts(data: dict[str, Any]) -> bool:
    defaults = data.get("defaults")
    if isinstance(defaults, dict) and defaults.get("alerts"):
        return True
    return any(c.get("alerts") for _, c in _items(data, "checks"))


def _items(data: dict[str, Any], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    items = data.get(key)
    if isinstance(items, list):
        yield from ((i, item) for i, item in enumerate(items) if isinstance(item, dict))


def _cross_check(data: dict[str, Any], tree: _Tree) -> None:
    """The rules that relate parts of the file: unique names, and names that must exist."""
    defined = data.get("vantages")
    # With a malformed or empty `vantages:` pydantic says so; names checked against it would only repeat it.
    # `local` (direct) is always usable: DESIGN's own example lists it next to vantages it defines.
    vantages = set(defined) | {"local"} if isinstance(defined, dict) and defined else None
    vantages = {"local"} if defined is None else vantages
    defaults = data.get("defaults")
    lists: list[tuple[_YamlPath, Any]] = [
        (("checks", i, "vantages"), c.get("vantages")) for i, c in _items(data, "checks")
    ]
    if isinstance(defaults, dict):
        lists.insert(0, (("defaults", "vantages"), defaults.get("vantages")))
    for path, names in lists:
        if vantages is None or not isinstance(names, list):
            continue
        for j, name in enumerate(names):
            if isinstance(name, str) and name not in vantages:
                defined_names = ", ".join(sorted(vantages))
                tree.issue(
                    (*path, j),
                    tree.values[(*path, j)],
                    f"{tree.quote(name)} is not a vantage ({defined_names})",
                )
            elif isinstance(name, str) and name in names[:j]:
                tree.issue((*path, j), tree.values[(*path, j)], f"{tree.quote(name)} is listed twice")

    _browser_rules(data, tree)
    _maintenance_rules(data, tree)
    _claim_rules(data, tree, vantages)
    known = _builtin_names() | _unique_names(tree, data, "signatures", "is already signatures")
    _unique_names(tree, data, "checks", "is already the name of checks")
    for i, check in _items(data, "checks"):
        selection = check.get("signatures")
        for j, sig_name in enumerate(selection if isinstance(selection, list) else []):
            if isinstance(sig_name, str) and sig_name not in known:
                close = difflib.get_close_matches(sig_name, sorted(known), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                path = ("checks", i, "signatures", j)
                tree.issue(path, tree.values[path], f"{tree.quote(sig_name)} is not a known signature{hint}")


def _browser_rules(data: dict[str, Any], tree: _Tree) -> None:
    """Browser checks need Playwright, and vantages whose settings Chromium can honour."""
    defined = data.get("vantages")
    defaults = data.get("defaults")
    default_names = defaults.get("vantages") if isinstance(defaults, dict) else None
    for i, check in _items(data, "checks"):
        if check.get("browser") is None:
            continue
        path: _YamlPath = ("checks", i, "browser")
        if importlib.util.find_spec("playwright") is None:
            tree.issue(
                path,
                tree.keys.get(path) or tree.near(path),
                "a browser check needs Playwright: install it with pip install 'prober[browser]'",
            )
        names = check.get("vantages", default_names)
        if not isinstance(names, list):
            names = list(defined) if isinstance(defined, dict) and default_names is None else []
        for name in names:
            vantage = defined.get(name) if isinstance(defined, dict) and isinstance(name, str) else None
            # Chromium has no way to bind its sockets to a local address; a proxy or a resolver it can use.
            if isinstance(vantage, dict) and vantage.get("source_address") and not vantage.get("proxy"):
                tree.issue(
                    path,
                    tree.keys.get(path) or tree.near(path),
                    f"{tree.quote(name)} has only source_address, which a browser check cannot use: "
                    "probe this check from another vantage",
                )


def _maintenance_rules(data: dict[str, Any], tree: _Tree) -> None:
    """A window is one-off or recurring, not both nor neither, and names checks that exist."""
    _unique_names(tree, data, "maintenance", "is already the name of maintenance")
    checks = {name for _, c in _items(data, "checks") if isinstance(name := c.get("name"), str)}
    for i, window in _items(data, "maintenance"):
        path: _YamlPath = ("maintenance", i)
        has = [key for key in ("start", "every") if window.get(key) is not None]
        if len(has) != 1:
            where = tree.keys.get((*path, "every")) or tree.near(path)
            how = "has both start: and every:" if has else "needs start: (one-off) or every: (a cron)"
            tree.issue(path, where, f"the window {how}")
        names = window.get("checks")
        for j, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in checks:
                close = difflib.get_close_matches(name, sorted(n for n in checks if isinstance(n, str)), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                at = (*path, "checks", j)
                tree.issue(at, tree.values[at], f"{tree.quote(name)} is not a check{hint}")


def _maintenance(spec: _ConfigSpec) -> tuple[MaintenanceWindow, ...]:
    windows = []
    for m in spec.maintenance or ():
        start = m.start
        if start is not None and start.tzinfo is None:  # a wall-clock time in the window's zone
            start = start.replace(tzinfo=ZoneInfo(m.timezone))
        windows.append(
            MaintenanceWindow(
                name=m.name,
                duration=m.duration,
                checks=None if m.checks is None else tuple(m.checks),
                start=None if start is None else start.astimezone(UTC),
                every=m.every,
                timezone=m.timezone,
            )
        )
    return tuple(windows)


def _claim_rules(data: dict[str, Any], tree: _Tree, vantages: set[str] | None) -> None:
    """A check's `claim.source` names a source under `claims:`; a source's vantage is defined."""
    claims = data.get("claims")
    sources = set(claims) if isinstance(claims, dict) else set()
    for name, source in claims.items() if isinstance(claims, dict) else ():
        vantage = source.get("vantage") if isinstance(source, dict) else None
        if isinstance(vantage, str) and vantages is not None and vantage not in vantages:
            path: _YamlPath = ("claims", name, "vantage")
            tree.issue(
                path,
                tree.values[path],
                f"{tree.quote(vantage)} is not a vantage ({', '.join(sorted(vantages))})",
            )
    for i, check in _items(data, "checks"):
        claim = check.get("claim")
        source = claim.get("source") if isinstance(claim, dict) else None
        if isinstance(source, str) and source not in sources:
            path = ("checks", i, "claim", "source")
            known = f" ({', '.join(sorted(sources))})" if sources else " (there is no `claims:` section)"
            tree.issue(path, tree.values[path], f"{tree.quote(source)} is not a claims source{known}")


def _unique_names(tree: _Tree, data: dict[str, Any], key: str, already: str) -> set[str]:
    """The names in the list `key`, reporting each name used a second time at that item."""
    first: dict[str, int] = {}
    for i, item in _items(data, key):
        name = item.get("name")
        if isinstance(name, str) and name in first:
            path = (key, i, "name")
            tree.issue(path, tree.values[path], f"{tree.quote(name)} {already}[{first[name]}]")
        elif isinstance(name, str):
            first[name] = i
    return set(first)


def _build(spec: _ConfigSpec, tree: _Tree, alerts: Any = None) -> Config:
    vantages = {
        name: Vantage(
            name=name,
            region=(v.region if v and v.region else name),
            source_address=v.source_address if v else None,
            proxy=v.proxy if v else None,
            resolver=tuple(v.resolver) if v and v.resolver else None,
            canaries=tuple(v.canaries) if v and v.canaries else (),
            agent=bool(v and v.agent),
        )
        for name, v in (spec.vantages or {"local": None}).items()
    }
    d = spec.defaults or _DefaultsSpec()
    b = spec.browser or _BrowserSpec()
    browser = BrowserSettings(executable=b.executable, concurrency=b.concurrency)
    defaults = Defaults(
        interval=d.interval,
        timeout=d.timeout,
        vantages=tuple(d.vantages) if d.vantages is not None else tuple(vantages),
        confirm=d.confirm,
        recover=d.recover,
        quorum=d.quorum,
        max_body=d.max_body,
    )
    checks = []
    for i, c in enumerate(spec.checks):
        e = c.expect or _ExpectSpec()
        checks.append(
            Check(
                name=c.name,
                url=c.url,
                display_url=tree.display.get(("checks", i, "url"), c.url),
                surface=Surface(c.surface),
                method=c.method,
                headers=c.headers,
                body=c.body if isinstance(c.body, str) else None,
                json_body=c.body.value if isinstance(c.body, _JsonBody) else None,
                follow_redirects=c.follow_redirects,
                interval=defaults.interval if c.interval is None else c.interval,
                timeout=defaults.timeout if c.timeout is None else c.timeout,
                vantages=defaults.vantages if c.vantages is None else tuple(c.vantages),
                confirm=defaults.confirm if c.confirm is None else c.confirm,
                recover=defaults.recover if c.recover is None else c.recover,
                quorum=defaults.quorum if c.quorum is None else c.quorum,
                max_body=defaults.max_body if c.max_body is None else c.max_body,
                expect=Expect(
                    status=tuple(e.status),
                    body_contains=tuple(e.body_contains),
                    body_not_contains=tuple(e.body_not_contains),
                    json=tuple(e.json_),
                    max_latency=e.max_latency,
                    cert_min_days=e.cert_min_days,
                ),
                signatures=c.signatures,
                tags=tuple(c.tags),
                browser=None if c.browser is None else _check_browser(c.browser, browser),
                alerts=tuple(d.alerts or ()) if c.alerts is None else tuple(c.alerts),
                claim=None if c.claim is None else CheckClaim(c.claim.source, c.claim.component),
                display_name=c.display_name or c.name,
                description=c.description,
                public=c.public,
            )
        )
    used = {name for check in checks for name in check.vantages} | set(defaults.vantages)
    used |= {s.vantage for s in (spec.claims or {}).values() if s.vantage}
    if "local" in used and "local" not in vantages:
        vantages["local"] = Vantage("local")
    return Config(
        path=tree.filename,
        defaults=defaults,
        vantages=vantages,
        signatures=tuple(
            Signature(name=s.name, pattern=s.pattern, verdict=Verdict(s.verdict), platform="user")
            for s in spec.signatures or ()
        ),
        checks=tuple(checks),
        retention=spec.retention,
        browser=browser,
        maintenance=_maintenance(spec),
        alerts=alerts,
        claims={
            name: ClaimSource(
                name=name,
                url=s.url,
                format=s.format,
                interval=s.interval,
                timeout=s.timeout,
                vantage=s.vantage,
                max_body=s.max_body,
                open_for=s.open_for,
                display_url=tree.display.get(("claims", name, "url"), s.url),
            )
            for name, s in (spec.claims or {}).items()
        },
        page=_page(spec.page or _PageSpec()),
        metrics=MetricsSettings(detail=(spec.metrics or _MetricsSpec()).detail),
        secrets=frozenset(tree.secrets),
        secret_names=tree.secrets,
    )


def _check_browser(b: _CheckBrowserSpec, settings: BrowserSettings) -> CheckBrowser:
    return CheckBrowser(
        wait_until=b.wait_until,
        wait_for=b.wait_for,
        viewport=b.viewport,
        screenshot=b.screenshot,
        block=tuple(b.block),
        settings=settings,
    )


def _page(p: _PageSpec) -> PageSettings:
    return PageSettings(title=p.title, description=p.description, show_urls=p.show_urls, refresh=p.refresh)
