"""What a response says, zone by zone: its decoded text, HTML title, headings, visible text, JSON errors."""

from __future__ import annotations

import codecs
import contextlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prober.envelope import error_fields, is_feed, soap_fault
from prober.markup import SAYS_LITTLE, SHORT_TEXT, WIDE, clean, html_zones
from prober.model import Observation

__all__ = ["NOT_JSON", "SAYS_LITTLE", "SHORT_TEXT", "Body", "short"]

_MAX_JSON_LINES = 32


# --- the response, decoded once, taken apart lazily -----------------------------------------

_UNSET: Any = object()
NOT_JSON: Any = object()  # `Body.json` of a body that is not JSON


@dataclass(slots=True)
class Body:
    """The decoded body and the parts signatures look at, each computed at most once."""

    obs: Observation
    _text: str | None = None
    _json: Any = _UNSET
    _zones: dict[str, list[str]] | None = None
    _little: bool = True

    @property
    def text(self) -> str:
        """The body decoded as text (see `_decode`)."""
        if self._text is None:
            self._text = _decode(self.obs.body, self.obs.headers.get("content-type", ""))
        return self._text

    @property
    def json(self) -> Any:
        """The parsed JSON body, or NOT_JSON."""
        if self._json is _UNSET:
            self._json = NOT_JSON
            if "json" in self.obs.content_type or self.text[:64].lstrip().startswith(("{", "[")):
                with contextlib.suppress(ValueError, RecursionError):
                    self._json = json.loads(self.text)
        return self._json

    @property
    def zones(self) -> dict[str, list[str]]:
        """Zone name -> the strings of the body signatures of that zone are matched against."""
        if self._zones is None:
            self._zones = self._take_apart()
        return self._zones

    @property
    def says_little(self) -> bool:
        """Whether the body says as little as an error page does (see `SAYS_LITTLE`)."""
        if self._zones is None:
            self._zones = self._take_apart()
        return self._little

    def _take_apart(self) -> dict[str, list[str]]:
        text, ctype = self.text, self.obs.content_type
        head = text[:64].lstrip()
        markup = "html" in ctype or "xml" in ctype
        if not markup and head.startswith(("{", "[")):
            big = len(text) > 16384
            if (big and '"error' not in text and '"fault"' not in text) or _JSON_HINT.search(text) is None:
                return {}  # no error field anywhere (a long body with only "status": a healthy one)
            if self.json is not NOT_JSON:
                return {"json": _json_lines(self.json)}
        if markup or head.startswith("<"):
            xml = "xml" in ctype and "html" not in ctype
            if (xml or head.startswith("<?xml")) and "<html" not in text[:1024].lower():
                if is_feed(text):  # news and status updates: content, never the feed's own error
                    self._little = False
                    return {}
                fault = soap_fault(text)
                if fault:
                    return {"json": [f"{label}: {clean(short(value, 300))}" for label, value in fault]}
            zones, self._little = html_zones(text, xml=xml)
            return zones
        said = len(text) - text.count(" ") - text.count("\n")
        said += 0 if text.isascii() else 2 * len(WIDE.findall(text))  # as in _Page.data
        if len(text) > SHORT_TEXT * 4 or said > SHORT_TEXT:
            return {}
        self._little = said <= SAYS_LITTLE
        return {"text": ["\n".join(filter(None, (clean(line) for line in text.splitlines())))]}


# --- charset ----------------------------------------------------------------------------------

_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([\w.:-]{1,40})""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([\w.:-]{1,40})""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Labels browsers decode with a superset (WHATWG Encoding): what the user would see.
_ALIASES = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932",
    "windows-31j": "cp932", "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030",
}  # fmt: skip


@lru_cache(maxsize=256)
def _codec(label: str) -> str | None:
    name = _ALIASES.get(label.lower(), label)
    try:
        b"".decode(name)  # LookupError for unknown names and bytes-to-bytes codecs such as hex
    except LookupError:
        return None
    return name


def _decode(body: bytes | bytearray, content_type: str) -> str:
    """The body as text: BOM, then content-type charset, then <meta> charset, then UTF-8."""
    codec = None
    for bom, name in _BOMS:
        if body.startswith(bom):
            codec, body = name, body[len(bom) :]
            break
    if codec is None and (m := _CHARSET.search(content_type)):
        codec = _codec(m.group(1))
    if codec is None and (meta := _META_CHARSET.search(body[:1024])):
        codec = _codec(meta.group(1).decode("ascii", "replace"))
        codec = (
            "utf-8" if codec and codec.startswith("utf-16") else codec
        )  # a <meta> read as ASCII is not UTF-16
    try:
        return body.decode(codec or "utf-8", errors="replace")
    except (LookupError, ValueError):
        return body.decode("utf-8", errors="replace")


def short(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- JSON error fields (found by prober.envelope) -------------------------------------------

_JSON_HINT = re.compile(
    r'"(?:errors?|error\w+|message|status|success|ok|fault|title|detail|type|description|Message|ExceptionMessage|\w*(?:code|Code|msg|Msg))"\s*:'
    r'|"(?:erro|erreur|fehler|errore|fehlermeldung|estado|statut|stato|mensaje|mensagem|messaggio|nachricht|meldung'
    r"|hata|blad|kesalahan|loi|durum|trang_thai|mesaj|komunikat|wiadomosc|pesan|thong_bao"
    r"|sucesso|exito|éxito|exitoso|succes|succès|erfolg|erfolgreich|successo|basarili|başarılı|sukces|berhasil"
    r'|sukses|thanh_cong)"\s*:'
)
_MESSAGE_KEYS = ("message", "detail", "title", "description", "error_description", "msg", "reason", "error")


def _message(value: Any) -> str:
    """The human message of an error value: a string, or an object's message-like field."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _MESSAGE_KEYS:
            if isinstance(value.get(key), str) and value[key]:
                return str(value[key])
        return short(json.dumps(value, ensure_ascii=False, default=str), 200)
    if isinstance(value, list) and value:
        return _message(value[0])
    return json.dumps(value, default=str)


def _json_lines(doc: Any) -> list[str]:
    """The error fields of a JSON body, as "label: message" lines (see prober.signatures)."""
    fields = error_fields(doc)[:_MAX_JSON_LINES]
    return [f"{label}: {clean(short(_message(value), 300))}" for label, value in fields]
