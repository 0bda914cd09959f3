"""What a JSON or XML body says about an error: error fields, failing envelopes, SOAP faults, throttling."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_ERROR_OBJECT_KEYS = frozenset({"title", "description", "code", "link", "status"})
_STATUS_LINE = re.compile(r"5\d\d [A-Za-z]")  # an error object titled with a 5xx status line
# A code-and-message envelope, common in Chinese, Korean and Japanese APIs: {"code": 500, "msg":
# "系统繁忙", "data": null}, {"resultCode": "E429", "resultMessage": "..."}. It fails when its code
# is not a success code, no data came back, and its message does not say success; then it reads
# "envelope: <code>" and "message: <msg>". Business codes next to data ({"code": 10001, "data":
# {...}}) and {"code": 0, "msg": "success"} are healthy.
_CODE_KEYS = ("code", "errcode", "errCode", "err_code", "error_code", "errorCode", "resultCode",
              "result_code", "retcode", "retCode", "ret", "status_code", "statusCode")  # fmt: skip
_MSG_KEYS = ("msg", "message", "errmsg", "errMsg", "err_msg", "error_msg", "errorMsg", "resultMessage",
             "resultMsg", "result_msg", "retmsg", "desc")  # fmt: skip
_SUCCESS_CODES = frozenset({"0", "00", "000", "0000", "00000", "000000", "200", "ok", "success", "succeed",
                            "succeeded", "true", "s", "y", "none", "null", ""})  # fmt: skip
_SUCCESS_MSG = re.compile(
    r"(?:ok|success(?:ful(?:ly)?)?|succeeded|done|sucesso|éxito|exito|succès|erfolg(?:reich)?|[^\n]{0,8}"
    r"(?:成功|正常|성공|정상)[^\n]{0,8})\W*",
    re.IGNORECASE,
)


def _envelope(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    """The lines of a failing code-and-message envelope, or none (see `_CODE_KEYS`)."""
    key = next((k for k in _CODE_KEYS if k in obj), None)
    if (
        key is None
        or obj.get("data") not in (None, "", [], {})
        or any(obj.get(k) is True for k in _SUCCESS_KEYS)
    ):
        return []
    code = obj[key]
    if (
        isinstance(code, bool)
        or not isinstance(code, int | str)
        or str(code).strip().lower() in _SUCCESS_CODES
    ):
        return []
    msg = next((obj[k] for k in _MSG_KEYS if isinstance(obj.get(k), str) and obj[k]), None)
    if msg is None or _SUCCESS_MSG.fullmatch(msg.strip()):
        return []
    found: list[tuple[str, Any]] = [("envelope", str(code))]
    return found if msg == obj.get("message") else [*found, ("message", msg)]  # "message" is read anyway


_ERROR_KEYS = ("error", "errorMessage", "error_message", "errorMsg", "ExceptionMessage", "exceptionMessage",
               # as APIs write it in Spanish, Portuguese, French, German, Italian, Turkish, Polish,
               # Indonesian and Vietnamese (ASCII keys: "blad", "loi")
               "erro", "erreur", "fehler", "errore", "fehlermeldung",
               "hata", "blad", "kesalahan", "loi")  # fmt: skip
# A status or message field named in those languages: {"estado": "error", "mensaje": "..."},
# {"durum": "hata", "mesaj": "..."}, {"status": "gagal", "pesan": "..."}.
_STATUS_KEYS = ("status", "estado", "statut", "stato", "durum", "trang_thai")
_MESSAGE_KEYS = ("message", "Message", "mensaje", "mensagem", "messaggio", "nachricht", "meldung", "mesaj",
                 "komunikat", "wiadomosc", "pesan", "thong_bao")  # fmt: skip
# A success boolean named in those languages: {"sucesso": false, "mensagem": "..."}, {"exito": false},
# {"erfolg": false}, {"basarili": false}, {"berhasil": false}; read as "success: false".
_SUCCESS_KEYS = ("success", "ok", "sucesso", "exito", "éxito", "exitoso", "succes", "succès", "erfolg",
                 "erfolgreich", "successo", "basarili", "başarılı", "sukces", "berhasil", "sukses",
                 "thanh_cong")  # fmt: skip
_HTTP_STATUS_KEYS = ("status_code", "statusCode", "httpStatus", "http_status", "httpCode", "http_code")
_STATUS_5XX = re.compile(r"5\d\d")

# Throttling said anywhere in a failing object's messages or codes: a rate limit in the middle of
# a sentence ("Too many requests hit the API too quickly", "User requests out of rate limit!"),
# in a type or code ("rate_limit_error", "RESOURCE_EXHAUSTED", "ThrottlingException"). Only an
# object that reports an error is read this way: a healthy response's data is never looked at.
_THROTTLE = re.compile(
    r"rate[- _]?limit|too[ _]?many[ _]?requests|too much request|throttl|\bqps\b|request[ _]limit"
    r"|(?:requests?|calls?) per (?:second|minute|hour|day)|request rates?|request weight|flood control"
    r"|resource_exhausted"
    r"|\bslow ?down\b|(?<!storage )(?<!disk )(?<!mailbox )\bquota\b"
    r"|trop de (?:requêtes|demandes)|demasiadas (?:solicitudes|peticiones)"
    r"|zu viele (?:anfragen|anforderungen)"
    r"|слишком много запросов|troppe richieste|(?:muitas|excesso de) (?:solicitações|requisições)"
    r"|çok fazla (?:istek|talep)|zbyt (?:wiele|dużo) (?:żądań|zapytań)|te veel (?:verzoeken|aanvragen)"
    r"|频繁|頻繁|限流|リクエストが多すぎ|요청이 너무 많|quá nhiều yêu cầu|terlalu banyak permintaan"
    r"|คำขอมากเกินไป|बहुत (?:सारे|अधिक|ज़्यादा) अनुरोध|طلبات كثيرة",
    re.IGNORECASE,
)
# Vendors' throttling codes, each in the shape of its vendor's errors: WeChat's errcode 45009
# (daily quota) and 45011 (minute quota), Weibo's error_code 10022-10024 next to "error",
# Binance's code -1003 (request weight) and -1015 (orders), VK's error_code 6, 9 and 29 next to
# its "request_params", Baidu's error_code 4, 17, 18 and 19 next to its "log_id". A code 429
# next to an error says it in any shape (Telegram: {"ok": false, "error_code": 429}).
_VENDOR_CODES: tuple[tuple[str, frozenset[int], str | None], ...] = (
    ("errcode", frozenset({45009, 45011}), None),
    ("error_code", frozenset({10022, 10023, 10024}), "error"),
    ("code", frozenset({-1003, -1015}), None),
    ("error_code", frozenset({6, 9, 29}), "request_params"),
    ("error_code", frozenset({4, 17, 18, 19}), "log_id"),
)
_MAX_STRINGS = 64


def _throttled(obj: dict[str, Any]) -> str | None:
    """What says a failing object throttles the client: a message, a type or a code; else None."""
    for key, value in _values(obj, 0):
        if isinstance(value, str):
            if value.startswith(("http://", "https://", "/")):
                continue  # a link to the documentation of rate limits is not a rate limit
            if _THROTTLE.search(value[:300]):
                return value
        elif isinstance(value, int) and key in _CODE_KEYS and value == 429:
            return f"{key} {value}"
    for scope in (obj, obj.get("error")):
        if isinstance(scope, dict):
            for key, codes, beside in _VENDOR_CODES:
                code = scope.get(key)
                if (
                    isinstance(code, int)
                    and code in codes
                    and (beside is None or beside in scope or beside in obj)
                ):
                    return f"{key} {code}"
    return None


def _values(value: Any, depth: int) -> Iterator[tuple[str, Any]]:
    """(key, value) of the strings and numbers of an error object, bounded, leaving "data" out."""
    if depth > 3:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for n, (key, item) in enumerate(items):
        if n >= _MAX_STRINGS or key == "data":
            continue
        if isinstance(item, dict | list):
            yield from _values(item, depth + 1)
        else:
            yield str(key), item


def error_fields(doc: Any) -> list[tuple[str, Any]]:
    """The error fields of a JSON body as (label, value) pairs: what prober.page writes as lines."""
    if isinstance(doc, dict):
        objects = [doc]
    elif isinstance(doc, list):  # a batch: look at its first objects
        objects = [d for d in doc[:10] if isinstance(d, dict)]
    else:
        return []
    found: list[tuple[str, Any]] = []
    for obj in objects:
        before = len(found)
        errors = obj.get("errors")
        if errors:  # a non-empty errors list (or object): JSON:API, GraphQL, Twitter v1.1
            label = "errors"
            if "data" in obj:  # data whose every field is null came back empty: not partial
                data = obj["data"]
                empty = not data or (isinstance(data, dict) and all(v is None for v in data.values()))
                label = "graphql-errors" if empty else "graphql-partial-errors"
            items = errors if isinstance(errors, list) else [errors]
            found.extend((label, item) for item in items[:5])
        for key in _ERROR_KEYS:
            if obj.get(key) and obj[key] is not True:
                found.append(("error", obj[key]))
            elif obj.get(key) is True:
                found.append(("error", obj.get("message", "true")))
        fault = obj.get("fault")
        if fault and isinstance(fault, dict | str):  # SOAP, Apigee: {"fault": {"faultstring": ...}}
            found.append(("error", fault.get("faultstring", fault) if isinstance(fault, dict) else fault))
        for key in _STATUS_KEYS:
            if isinstance(obj.get(key), str | int) and not isinstance(obj.get(key), bool):
                found.append(("status", obj[key]))
                break
        # The HTTP status under another name, when it says the server failed: Litestar
        # {"status_code": 500, "detail": ...}, {"statusCode": 503, ...}, {"httpStatus": 502}.
        found.extend(("status", obj[k]) for k in _HTTP_STATUS_KEYS if _STATUS_5XX.fullmatch(str(obj.get(k))))
        for key in _SUCCESS_KEYS:
            if obj.get(key) is False:
                found.append(("ok" if key == "ok" else "success", "false"))
        message = next((obj[k] for k in _MESSAGE_KEYS if obj.get(k)), None)  # ASP.NET writes "Message"
        if isinstance(message, str) and message:
            found.append(("message", message))
        failing = _envelope(obj)
        found.extend(failing)
        if failing or len(found) > before:  # the object reports an error: does it say "slow down"?
            throttled = _throttled(obj)
            if throttled is not None:
                found.insert(0, ("throttled", throttled))
        title = obj.get("title")
        if isinstance(title, str) and (
            (isinstance(obj.get("type"), str) and "status" in obj)  # RFC 9457 problem details
            # an error object of its own (Falcon: {"title": "503 Service Unavailable"}), not a
            # document titled "500 Internal Server Error explained"
            or (_STATUS_LINE.match(title) and set(obj) <= _ERROR_OBJECT_KEYS)
        ):
            found.append(("problem", title))
    return found


# --- XML --------------------------------------------------------------------------------------

# A feed (RSS, Atom, RDF) by its root element: news and status updates, content whatever its items
# quote ("Something went wrong on our end; the service is now operating normally").
_FEED_ROOT = re.compile(
    r"\s*(?:<\?[^<>]*>\s*|<!--.*?-->\s*|<!doctype[^<>]*>\s*)*<(?:rss|feed|rdf:rdf)\b", re.I | re.S
)
# A SOAP fault: SOAP 1.1 <soap:Fault><faultcode>soap:Server</faultcode><faultstring>...; SOAP 1.2
# <env:Fault><env:Code><env:Value>env:Receiver</env:Value>...<env:Reason><env:Text>...
_FAULT = re.compile(r"<(?:[\w.-]{1,40}:)?Fault\b[^<>]*>(.{0,8000}?)</(?:[\w.-]{1,40}:)?Fault\s*>", re.S)
_FAULT_PART = re.compile(
    r"<(?:[\w.-]{1,40}:)?(faultcode|faultstring|Value|Text)\b[^<>]*>\s*([^<]{1,300}?)\s*<"
)


def is_feed(text: str) -> bool:
    """Whether an XML document is a feed (RSS, Atom, RDF), by its root element."""
    return _FEED_ROOT.match(text, 0, 4096) is not None


def soap_fault(text: str) -> list[tuple[str, str]]:
    """A SOAP envelope's fault as ("fault", "code: message"), or nothing."""
    if "Envelope" not in text[:4096]:
        return []
    m = _FAULT.search(text)
    if m is None:
        return []
    parts = {name.lower(): value for name, value in _FAULT_PART.findall(m.group(1))}
    code = parts.get("faultcode") or parts.get("value") or "fault"
    return [("fault", f"{code}: {parts.get('faultstring') or parts.get('text') or ''}".strip())]
