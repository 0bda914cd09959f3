"""checks.yaml -> validated, frozen models; every error is reported at once, located as file:line:col."""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar
from urllib.parse import urlsplit

import jmespath
import yaml
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from prober.model import ProberError, Surface, Verdict
from prober.signatures import Signature, builtin_signatures

Quorum = int | Literal["majority", "all"]
Selection = Literal["all", "none"] | tuple[str, ...]
_YamlPath = tuple[str | int, ...]
_V = TypeVar("_V")

DEFAULT_RETENTION = 14 * 86400.0
NAME_PATTERN = "^[a-z0-9][a-z0-9._-]*$"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_NAME = re.compile(NAME_PATTERN)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+")
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE = re.compile(rf"({_NUMBER})([kmg]i?b|b)?", re.IGNORECASE)
_STATUS = re.compile(r"[1-5](?:\d\d|xx)", re.IGNORECASE)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VARIABLE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_DURATION_HINT = "is not a duration (write e.g. 500ms, 30s, 5m, 1h, 14d, or a number of seconds)"
_SIZE_HINT = "is not a size (write e.g. 512B, 256KiB, 1MiB, 10MB, 1GiB, or a number of bytes)"


class ConfigIssue(NamedTuple):
    """One configuration problem, located in the file."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ProberError):
    """The configuration is invalid; `issues` lists every problem found, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


# -- value parsers: each raises ValueError whose text follows the quoted value ----------------------


def _quote(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _parser(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The public form of a predicate parser: the ValueError names the value."""

    def parse(value: Any) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(f"{_quote(value)} {exc}") from None

    parse.__doc__ = check.__doc__
    return parse


def _duration(value: Any) -> float:
    """Seconds from "500ms", "30s", "5m", "1h", "14d", "1h30m" or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(_DURATION_HINT)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(_NUMBER, text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
        else:
            raise ValueError(_DURATION_HINT)
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("is not a duration: it must be a finite, non-negative number of seconds")
    return seconds


def _size(value: Any) -> int:
    """Bytes from "512B", "256KiB", "1MiB", "10MB", "1GiB" or a number of bytes."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(_SIZE_HINT)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("is not a size: it must not be negative")
        return value
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(_SIZE_HINT)
    number = float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()]
    if not math.isfinite(number):
        raise ValueError(_SIZE_HINT)
    return round(number)


def parse_duration(value: str | int | float) -> float:
    """Seconds from "500ms", "30s", "5m", "1h", "14d", "1h30m" or a number of seconds."""
    return float(_parser(_duration)(value))


def parse_size(value: str | int) -> int:
    """Bytes from "512B", "256KiB", "1MiB", "10MB", "1GiB" or a number of bytes."""
    return int(_parser(_size)(value))


def _at_least(minimum: float, text: str, check: Callable[[Any], float]) -> Callable[[Any], float]:
    """`check`, and the result must be positive and at least `minimum` (`text` says it to users)."""

    def bounded(value: Any) -> float:
        number = check(value)
        if number < minimum or number <= 0:
            raise ValueError(f"is too small: it must be at least {text}")
        return number

    return bounded


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    if not _NAME.fullmatch(value):
        raise ValueError("is not a valid name: use lowercase letters, digits, '.', '_' and '-'")
    return value


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        raise ValueError("is not an http:// or https:// URL with a host")
    return value


def _proxy(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("is not a valid proxy URL") from None
    if parts.scheme not in ("http", "https", "socks4", "socks5") or not parts.hostname:
        raise ValueError("is not a proxy URL: use http://, https://, socks4:// or socks5://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("is not a proxy URL: it must not have a path, query or fragment")
    return value


def _ip(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not an IP address") from None
    return value


def _resolver(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    host, port = value, "53"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError("is not a resolver address: write IP, IP:PORT or [IPv6]:PORT")
        port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("is not a resolver address: the host must be an IP address") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("is not a resolver address: the port must be 1-65535")
    return value


def _status(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return str(value)
    if isinstance(value, str) and _STATUS.fullmatch(value.strip()):
        return value.strip().lower()
    raise ValueError("is not a status code (100-599) or class (1xx-5xx)")


def _method(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in METHODS:
        raise ValueError(f"is not an HTTP method ({', '.join(METHODS)})")
    return value.upper()


def _quorum(value: Any) -> Quorum:
    if value in ("majority", "all"):
        return str(value)  # type: ignore[return-value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError('is not a quorum: write an integer of at least 1, "majority" or "all"')


def _regex(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    return value


def _jmespath(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        jmespath.compile(value)
    except JMESPathError as exc:
        detail = str(exc).splitlines()[0].removesuffix(", for expression:").rstrip(":")
        detail = re.sub(r"^(invalid|bad) jmespath expression: ", "", detail, flags=re.IGNORECASE)
        raise ValueError(f"is not a valid JMESPath expression: {detail}") from None
    return value


def _header_name(value: Any) -> str:
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise ValueError("is not a valid header name")
    return value


def _header_value(value: Any) -> str:
    # Numbers are a kindness for headers like `X-Retries: 3`; booleans are almost always a YAML surprise.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise ValueError("is not a header value (a string on one line)")
    return value


@dataclass(frozen=True, slots=True)
class _JsonBody:
    value: Any


def _body(value: Any) -> str | _JsonBody | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and list(value) == ["json"]:
        return _JsonBody(value["json"])
    raise ValueError("is not a body: write a string, or a mapping with the one key json")


def _selection(value: Any) -> Selection:
    if value in ("all", "none"):
        return str(value)  # type: ignore[return-value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError('is not a signature selection: write "all", "none" or a list of signature names')


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


class _Parsed:
    """Annotated metadata: validate with `check`, describe the user-facing YAML with `schema`."""

    def __init__(self, check: Callable[[Any], Any], schema: dict[str, Any], optional: bool = False) -> None:
        self.check = _optional(check) if optional else check
        self.schema = {"anyOf": [*schema.get("anyOf", [schema]), {"type": "null"}]} if optional else schema

    def validate(self, value: Any) -> Any:
        """Run the check; its ValueError becomes a pydantic error whose message follows the value."""
        try:
            return self.check(value)
        except ValueError as exc:
            raise PydanticCustomError("prober", "{detail}", {"detail": str(exc)}) from None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.schema)


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+|((\d+(\.\d*)?|\.\d+)(ms|s|m|h|d))+)\s*$|\$\{"},
        {"type": "number", "minimum": 0},
    ]
}
_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)([KkMmGg][Ii]?[Bb]|[Bb])?\s*$|\$\{"},
        {"type": "integer", "minimum": 0},
    ]
}
_QUORUM_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 1}, {"enum": ["majority", "all"]}]}
_STRING = {"type": "string"}
_STATUS_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 100, "maximum": 599},
        {"type": "string", "pattern": "^[1-5]([0-9][0-9]|[xX][xX])$"},
    ]
}
_JSON_BODY = {
    "type": "object",
    "properties": {"json": {"description": "Sent as JSON."}},
    "required": ["json"],
}
_BODY_SCHEMA = {
    "anyOf": [{"type": "string"}, {**_JSON_BODY, "additionalProperties": False}, {"type": "null"}]
}
_SELECTION_SCHEMA = {"anyOf": [{"enum": ["all", "none"]}, {"type": "array", "items": {"type": "string"}}]}

Name = Annotated[str, _Parsed(_name, {"type": "string", "pattern": NAME_PATTERN})]
Duration = Annotated[float, _Parsed(_duration, _DURATION_SCHEMA)]
Interval = Annotated[float, _Parsed(_at_least(0.1, "100ms", _duration), _DURATION_SCHEMA)]
OptInterval = Annotated[
    float | None, _Parsed(_at_least(0.1, "100ms", _duration), _DURATION_SCHEMA, optional=True)
]
Timeout = Annotated[float, _Parsed(_at_least(0, "1ms", _duration), _DURATION_SCHEMA)]
OptTimeout = Annotated[float | None, _Parsed(_at_least(0, "1ms", _duration), _DURATION_SCHEMA, optional=True)]
OptDuration = Annotated[float | None, _Parsed(_duration, _DURATION_SCHEMA, optional=True)]
MaxBody = Annotated[int, _Parsed(_at_least(1, "1B", _size), _SIZE_SCHEMA)]
OptMaxBody = Annotated[int | None, _Parsed(_at_least(1, "1B", _size), _SIZE_SCHEMA, optional=True)]
QuorumField = Annotated[Quorum, _Parsed(_quorum, _QUORUM_SCHEMA)]
OptQuorum = Annotated[Quorum | None, _Parsed(_quorum, _QUORUM_SCHEMA, optional=True)]
Count = Annotated[int, Field(ge=1)]
OptCount = Annotated[int | None, Field(ge=1)]


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


class _SignatureSpec(_Spec):
    model_config = ConfigDict(title="signature")

    name: Name = Field(description="Unique signature name, shown in results as `signature`.")
    pattern: Annotated[str, _Parsed(_regex, _STRING)] = Field(
        description="Regular expression matched case-insensitively against the body."
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
        default=None, ge=0, description="Certificate expiring sooner (days): degraded, reason cert_expiring."
    )


class _CheckSpec(_Spec):
    model_config = ConfigDict(title="check")

    name: Name = Field(description="Unique check name: lowercase letters, digits, '.', '_', '-'.")
    surface: Literal["web", "mobile", "api"] = Field(
        default="web", description="What kind of client the check is."
    )
    url: Annotated[str, _Parsed(_url, _STRING)] = Field(
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
    follow_redirects: bool = Field(default=True, description="Follow redirects.")
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
    follow_redirects: bool = True
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

    def __post_init__(self) -> None:
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


@dataclass(frozen=True, slots=True)
class Config:
    """A validated checks.yaml."""

    path: str = "checks.yaml"
    defaults: Defaults = field(default_factory=Defaults)
    vantages: Mapping[str, Vantage] = field(default_factory=lambda: {"local": Vantage("local")})
    signatures: tuple[Signature, ...] = ()  # the user's, from the top-level `signatures:`
    checks: tuple[Check, ...] = ()
    retention: float = DEFAULT_RETENTION
    secrets: frozenset[str] = frozenset()  # every value substituted from ${NAME}
    secret_names: Mapping[str, str] = field(default_factory=dict, repr=False)  # value -> NAME

    def __post_init__(self) -> None:
        object.__setattr__(self, "vantages", _FrozenMap(self.vantages))
        object.__setattr__(self, "secret_names", _FrozenMap(self.secret_names))

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
        """`text` with every substituted secret replaced by its ${NAME} placeholder."""
        if not self.secrets:
            return text
        values = sorted(self.secrets, key=len, reverse=True)  # a secret may contain a shorter one
        pattern = re.compile("|".join(re.escape(v) for v in values))
        return pattern.sub(lambda m: "${" + self.secret_names.get(m[0], "SECRET") + "}", text)

    def check(self, name: str) -> Check:
        """The check named `name`; KeyError if there is none."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of checks.yaml as users write it, for editors and the YAML language server."""
    text = json.dumps(_ConfigSpec.model_json_schema())
    for model in ("Check", "Defaults", "Expect", "Signature", "Vantage"):  # the internal class names
        text = text.replace(f'"_{model}Spec"', f'"{model.lower()}"').replace(
            f"/_{model}Spec", f"/{model.lower()}"
        )
    schema = json.loads(text)
    schema["patternProperties"] = {"^x-": {"description": "Ignored: a place for YAML anchors."}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "prober checks.yaml",
        "description": "prober's checks, vantages and signatures; ${NAME} in a string is read from the env.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


# -- loading: YAML nodes -> plain values + where each came from ---------------------------------------


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a checks.yaml; ConfigError lists every problem, ProberError if unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ProberError(f"cannot read configuration {path}: {reason}") from exc
    return parse_config(text, str(path), env)


def parse_config(text: str, filename: str = "checks.yaml", env: Mapping[str, str] | None = None) -> Config:
    """Validate the text of a checks.yaml; ConfigError lists every problem, in file order."""
    tree = _Tree(filename, os.environ if env is None else env)
    data = tree.load(text)
    spec: _ConfigSpec | None = None
    if isinstance(data, dict):
        # Top-level x-* keys hold YAML anchors to merge (<<: *name) elsewhere, as in docker-compose files.
        data = {key: value for key, value in data.items() if not key.startswith("x-")}
        _cross_check(data, tree)
        try:
            spec = _ConfigSpec.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                tree.pydantic_issue(error, data)
    if tree.issues or spec is None:
        issues = sorted(set(tree.issues), key=lambda i: (i.line, i.col, i.path, i.message))
        raise ConfigError(issues)
    return _build(spec, tree)


class _Tree:
    """Walks the composed YAML into plain values, remembering each key's and value's position."""

    def __init__(self, filename: str, env: Mapping[str, str]) -> None:
        self.filename = filename
        self.env = env
        self.keys: dict[_YamlPath, tuple[int, int]] = {}
        self.values: dict[_YamlPath, tuple[int, int]] = {}
        self.display: dict[_YamlPath, str] = {}  # strings with ${NAME} left in, where substituted
        self.secrets: dict[str, str] = {}  # value -> NAME
        self.bad: set[_YamlPath] = set()  # already reported: later errors there would only repeat it
        self.issues: list[ConfigIssue] = []
        self._loader = yaml.SafeLoader("")

    def issue(self, path: _YamlPath, where: tuple[int, int] | yaml.Node, message: str) -> None:
        """Record a problem at a node or position."""
        line, col = _position(where) if isinstance(where, yaml.Node) else where
        self.issues.append(ConfigIssue(self.filename, line, col, _format_path(path), message))

    def load(self, text: str) -> Any:
        """The plain value of the document, or None after recording why there is none."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = exc.problem or "invalid YAML"
            self.issue((), where, f"{problem} ({exc.context})" if exc.context else problem)
            return None
        except yaml.YAMLError as exc:
            self.issue((), (1, 1), f"invalid YAML: {exc}")
            return None
        if root is None:
            self.issue((), (1, 1), "the file is empty: it needs at least a checks: list")
            return None
        data = self._walk(root, (), frozenset())
        if not isinstance(data, dict):
            self.issue((), root, f"the top level must be a mapping with a checks: list, not {_quote(data)}")
            return None
        return data

    def _walk(self, node: yaml.Node, path: _YamlPath, stack: frozenset[int]) -> Any:
        self.values[path] = _position(node)
        self.display.pop(path, None)  # a key overriding a merged one: forget what the merged value said
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in stack:
            self.issue(path, node, "a recursive alias is not allowed")
            self.bad.add(path)
            return None
        stack |= {id(node)}
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(child, (*path, i), stack) for i, child in enumerate(node.value)]
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:  # merges first: the mapping's own keys override them
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in merged:
                    value = self._walk(source, path, stack)
                    if isinstance(value, dict):
                        out.update({k: v for k, v in value.items() if k not in out})
                    else:
                        self.issue(path, source, "<< must merge a mapping")
        own: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.issue(path, key_node, "a key must be a plain value, not a list or mapping")
                continue
            key = key_node.value  # keys stay text: `on:` or `1:` are names here, not booleans or numbers
            if key in own:
                self.issue((*path, key), key_node, f'duplicate key "{key}" (first at line {own[key][0]})')
                continue
            own[key] = self.keys[(*path, key)] = _position(key_node)
            out[key] = self._walk(value_node, (*path, key), stack)
        self.values[path] = _position(node)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: _YamlPath) -> Any:
        try:
            value = self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: a timestamp like 2022-13-45
            self.issue(path, node, f"{_quote(node.value)} cannot be read: {getattr(exc, 'problem', exc)}")
            self.bad.add(path)
            return None
        if not isinstance(value, str) or "${" not in value:
            return value
        result, display, problems = _substitute(value, self.env, self.secrets)
        for problem in problems:
            self.issue(path, node, problem)
            self.bad.add(path)
        if display == value == result:  # only $${ escapes
            return result
        self.display[path] = display
        if node.style is None:  # an unquoted ${N} may stand for a number or a boolean
            tag = self._loader.resolve(yaml.ScalarNode, result, (True, False))  # type: ignore[no-untyped-call]
            try:
                return self._loader.construct_object(yaml.ScalarNode(tag, result), deep=True)
            except (yaml.YAMLError, ValueError):
                return result
        return result

    def pydantic_issue(self, error: Any, data: dict[str, Any]) -> None:
        """Translate one pydantic error into a located issue."""
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
        if any(path[:n] in self.bad for n in range(len(path) + 1)):
            return
        kind, ctx = error["type"], error.get("ctx") or {}
        if kind == "missing":
            name = str(rest[-1]) if rest else "?"
            self.issue((*path, name), self._near(path), f'required key "{name}" is missing')
            return
        if kind == "extra_forbidden":
            known = _known_keys(path[:-1])
            self.issue(path, self.keys.get(path) or self._near(path), _unknown(str(path[-1]), known))
            return
        if is_key:
            message = f"{_quote(path[-1])} {_predicate(kind, ctx, error['msg'])}"
            self.issue(path, self.keys.get(path) or self._near(path), message)
            return
        quoted = _quote(self.display[path]) if path in self.display else _redact(_quote(value), self.secrets)
        self.issue(path, self._near(path), f"{quoted} {_predicate(kind, ctx, error['msg'])}")

    def _near(self, path: _YamlPath) -> tuple[int, int]:
        for n in range(len(path), -1, -1):
            if path[:n] in self.values:
                return self.values[path[:n]]
        return (1, 1)


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _format_path(path: _YamlPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def _substitute(text: str, env: Mapping[str, str], secrets: dict[str, str]) -> tuple[str, str, list[str]]:
    """(value, display, problems): ${NAME} replaced from env in value, kept in display; $${ is ${."""
    value: list[str] = []
    display: list[str] = []
    problems: list[str] = []
    end = 0
    for match in _VARIABLE.finditer(text):
        value.append(text[end : match.start()])
        display.append(text[end : match.start()])
        end = match.end()
        name = match[1]
        if match[0] == "$${":
            value.append("${")
            display.append("${")
        elif name is None or not _VARIABLE_NAME.fullmatch(name):
            problems.append(
                f"{_quote(match[0])} is not a variable reference: write ${{NAME}}, or $${{ for ${{"
            )
        elif name not in env:
            problems.append(f"environment variable {name} is not set")
        else:
            value.append(env[name])
            display.append(match[0])
            if env[name]:
                secrets.setdefault(env[name], name)
    value.append(text[end:])
    display.append(text[end:])
    return "".join(value), "".join(display), problems


def _redact(text: str, secrets: Mapping[str, str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "${" + secrets[secret] + "}")
    return text


_PREDICATES = {
    "string_type": "is not a string",
    "int_type": "is not an integer",
    "float_type": "is not a number",
    "bool_type": "is not true or false",
    "dict_type": "is not a mapping",
    "model_type": "is not a mapping",
    "list_type": "is not a list",
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
    if kind == "too_short":
        return "must not be empty"
    return f"is invalid: {msg}"


def _known_keys(parent: _YamlPath) -> list[str]:
    kind = tuple("#" if isinstance(p, int) else p for p in parent)
    models: dict[tuple[str, ...], type[BaseModel]] = {
        (): _ConfigSpec,
        ("defaults",): _DefaultsSpec,
        ("signatures", "#"): _SignatureSpec,
        ("checks", "#"): _CheckSpec,
        ("checks", "#", "expect"): _ExpectSpec,
    }
    model = _VantageSpec if len(kind) == 2 and kind[0] == "vantages" else models.get(kind)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _unknown(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f'unknown key "{key}" (did you mean "{close[0]}"?)'
    return f'unknown key "{key}" (known keys: {", ".join(known)})' if known else f'unknown key "{key}"'


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
                    (*path, j), tree.values[(*path, j)], f"{_quote(name)} is not a vantage ({defined_names})"
                )
            elif isinstance(name, str) and name in names[:j]:
                tree.issue((*path, j), tree.values[(*path, j)], f"{_quote(name)} is listed twice")

    mine: dict[str, int] = {}
    for i, sig in _items(data, "signatures"):
        name = sig.get("name")
        if isinstance(name, str) and name in mine:
            where = tree.values[("signatures", i, "name")]
            tree.issue(
                ("signatures", i, "name"), where, f"{_quote(name)} is already signatures[{mine[name]}]"
            )
        elif isinstance(name, str):
            mine[name] = i
    known = {s.name for s in builtin_signatures()} | set(mine)

    seen: dict[str, int] = {}
    for i, check in _items(data, "checks"):
        name = check.get("name")
        if isinstance(name, str) and name in seen:
            where = tree.values[("checks", i, "name")]
            tree.issue(
                ("checks", i, "name"), where, f"{_quote(name)} is already the name of checks[{seen[name]}]"
            )
        elif isinstance(name, str):
            seen[name] = i
        selection = check.get("signatures")
        for j, sig_name in enumerate(selection if isinstance(selection, list) else []):
            if isinstance(sig_name, str) and sig_name not in known:
                close = difflib.get_close_matches(sig_name, sorted(known), n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                path = ("checks", i, "signatures", j)
                tree.issue(path, tree.values[path], f"{_quote(sig_name)} is not a known signature{hint}")


def _build(spec: _ConfigSpec, tree: _Tree) -> Config:
    vantages = {
        name: Vantage(
            name=name,
            region=(v.region if v and v.region else name),
            source_address=v.source_address if v else None,
            proxy=v.proxy if v else None,
            resolver=tuple(v.resolver) if v and v.resolver else None,
        )
        for name, v in (spec.vantages or {"local": None}).items()
    }
    d = spec.defaults or _DefaultsSpec()
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
            )
        )
    used = {name for check in checks for name in check.vantages} | set(defaults.vantages)
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
        secrets=frozenset(tree.secrets),
        secret_names=tree.secrets,
    )
