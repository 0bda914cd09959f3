"""The field types of checks.yaml: a check for each kind of value, and its JSON schema."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import SplitResult, urlsplit

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from prober.config.limits import MAX_COUNT, MAX_DURATION, MAX_RETENTION
from prober.config.model import Quorum, Selection
from prober.config.units import _DURATION_SCHEMA, _SIZE_SCHEMA, _at_least, _at_most, _duration, _size
from prober.redirect import FollowRedirects

NAME_PATTERN = "^[a-z0-9][a-z0-9._-]*$"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_NAME = re.compile(NAME_PATTERN)
_STATUS = re.compile(r"[1-5](?:\d\d|xx)", re.IGNORECASE)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


# -- value parsers: each raises ValueError whose text follows the quoted value ----------------------


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    if not _NAME.fullmatch(value):
        raise ValueError("is not a valid name: use lowercase letters, digits, '.', '_' and '-'")
    return value


def _split(value: Any, what: str) -> tuple[str, SplitResult]:
    """A URL string and its parts, its port checked; ValueError saying it is not a valid `what`."""
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"is not a valid {what}") from None
    return value, parts


def _url(value: Any) -> str:
    text, parts = _split(value, "URL")
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", text):
        raise ValueError("is not an http:// or https:// URL with a host")
    return text


def _proxy(value: Any) -> str:
    text, parts = _split(value, "proxy URL")
    if parts.scheme not in ("http", "https", "socks4", "socks5") or not parts.hostname:
        raise ValueError("is not a proxy URL: use http://, https://, socks4:// or socks5://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("is not a proxy URL: it must not have a path, query or fragment")
    return text


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


def _follow(value: Any) -> FollowRedirects:
    if isinstance(value, bool) or value == "any":
        return value  # type: ignore[no-any-return]
    raise ValueError('is not true or false, or "any" (follow redirects into internal networks too)')


def _quorum(value: Any) -> Quorum:
    if value in ("majority", "all"):
        return str(value)  # type: ignore[return-value]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_COUNT:
        return value
    raise ValueError(f'is not a quorum: write an integer from 1 to {MAX_COUNT}, "majority" or "all"')


def _regex(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string")
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    except (RecursionError, OverflowError):  # the parser recurses once per nested group
        raise ValueError("is not a regular expression prober can compile: it nests too deep") from None
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
    except RecursionError:  # jmespath parses, and reads JSON literals, recursively
        raise ValueError("is not a JMESPath expression prober can compile: it nests too deep") from None
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
        try:  # YAML has dates, bytes and NaN, which JSON has not: refused here, not at every probe
            json.dumps(value["json"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"is not a JSON body: {exc}") from None
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


_QUORUM_SCHEMA = {
    "anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_COUNT}, {"enum": ["majority", "all"]}]
}
_STRING = {"type": "string"}
# What `_url` accepts, as editors can check it before ${NAME} is substituted: http(s) and a host.
_URL_SCHEMA = {"type": "string", "pattern": r"^(?:[hH][tT][tT][pP][sS]?://[^\s/?#]|\$\{)\S*$"}
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
# Every duration has a ceiling: an interval of 999999999d overflows timedelta and APScheduler.
_interval = _at_most(MAX_DURATION, "365d", _at_least(0.1, "100ms", _duration))
_timeout = _at_most(MAX_DURATION, "365d", _at_least(0, "1ms", _duration))
Duration = Annotated[float, _Parsed(_at_most(MAX_RETENTION, "36500d", _duration), _DURATION_SCHEMA)]
Interval = Annotated[float, _Parsed(_interval, _DURATION_SCHEMA)]
OptInterval = Annotated[float | None, _Parsed(_interval, _DURATION_SCHEMA, optional=True)]
Timeout = Annotated[float, _Parsed(_timeout, _DURATION_SCHEMA)]
OptTimeout = Annotated[float | None, _Parsed(_timeout, _DURATION_SCHEMA, optional=True)]
OptDuration = Annotated[
    float | None, _Parsed(_at_most(MAX_DURATION, "365d", _duration), _DURATION_SCHEMA, optional=True)
]
MaintenanceDuration = Annotated[
    float, _Parsed(_at_most(MAX_DURATION, "365d", _at_least(1, "1s", _duration)), _DURATION_SCHEMA)
]
MAX_BODY_LIMIT = 64 * 2**20  # every probe may hold this much in memory; a page is judged on far less
_bounded_size = _at_most(MAX_BODY_LIMIT, "64MiB", _at_least(1, "1B", _size))


def _max_body(value: Any) -> int:
    return int(_bounded_size(value))


MaxBody = Annotated[int, _Parsed(_max_body, _SIZE_SCHEMA)]
OptMaxBody = Annotated[int | None, _Parsed(_max_body, _SIZE_SCHEMA, optional=True)]
QuorumField = Annotated[Quorum, _Parsed(_quorum, _QUORUM_SCHEMA)]
OptQuorum = Annotated[Quorum | None, _Parsed(_quorum, _QUORUM_SCHEMA, optional=True)]
FollowField = Annotated[FollowRedirects, _Parsed(_follow, {"anyOf": [{"type": "boolean"}, {"const": "any"}]})]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
OptCount = Annotated[int | None, Field(ge=1, le=MAX_COUNT)]
