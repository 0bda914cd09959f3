"""Secrets read through ${NAME}, found in every form text can carry them, and replaced by ${NAME}.

A secret rarely reaches an error message as written: yarl percent-encodes it in a URL
(`s3cr3té"ZZ` -> `s3cr3t%C3%A9%22ZZ`), JSON escapes it (`\\"`, `\\u00e9`), HTML escapes it
(`&quot;`, `&#233;`), Python's repr escapes it (`\\xe9`), a host is lower-cased and IDNA-encoded,
and basic auth sends `user:secret` in base64. Encoders disagree on which characters they leave
alone (quote keeps `/`, quote_plus writes a space as `+`, yarl keeps `!$&'()*+,;=` in a path),
so each character of a secret is matched in any of its forms, independently of its neighbours:
whatever mix of encodings an error message uses, the secret is found. A secret may itself be
percent-encoded (a presigned URL's signature, `x%41y`): URL parsers decode some of its escapes and
re-encode others, so each escape is also matched as the character it stands for, in any form.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator, Mapping
from urllib.parse import unquote_to_bytes

# Base64 of a secret inside a longer base64 text (`user:secret`) depends on the secret's offset
# modulo 3; the characters that depend on the secret alone are found for each offset. Below this
# many characters a fragment would match ordinary words: short secrets are only matched as text.
_MIN_BASE64 = 8
_MIN_PART = 4  # the part of a secret before "#" is redacted from this length on
# A shorter secret ("a", "42") is redacted only where it stands alone, not inside ordinary words.
_MIN_INSIDE = 4
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_ALNUM = "[^\\W_]"
_HOST = re.compile(r"[\w-]+(?:\.[\w-]+)+\.?")
_JSON_SHORT = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_PYTHON_SHORT = {"'": "\\'", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HTML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _hex(number: int, digits: int) -> str:
    """A pattern for `number` in hexadecimal with `digits` digits, in either case."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{number:0{digits}x}")


def _json_units(char: str) -> str:
    """`\\uXXXX` for `char`, as a surrogate pair beyond the Basic Multilingual Plane."""
    code = ord(char)
    if code < 0x10000:
        return "\\\\u" + _hex(code, 4)
    code -= 0x10000
    return "\\\\u" + _hex(0xD800 + (code >> 10), 4) + "\\\\u" + _hex(0xDC00 + (code & 0x3FF), 4)


def _char_forms(char: str) -> str:
    """A pattern matching `char` as written or in any encoding an error message may use."""
    code = ord(char)
    utf8 = char.encode("utf-8", "surrogatepass")
    forms = {
        re.escape(char),
        "".join("%" + _hex(b, 2) for b in utf8),  # URL percent-encoding
        _json_units(char),  # JSON, JavaScript
        "&#0*" + str(code) + ";",  # HTML, decimal
        "&#[xX]0*" + _hex(code, 1 if code < 16 else len(f"{code:x}")) + ";",  # HTML, hexadecimal
        "".join("\\\\x" + _hex(b, 2) for b in utf8),  # repr() of bytes
    }
    if code < 0x100:
        forms.add("\\\\x" + _hex(code, 2))  # repr() of str
    elif code >= 0x10000:
        forms.add("\\\\U" + _hex(code, 8))
    if char == " ":
        forms.add(r"\+")  # quote_plus, form encoding
    for table in (_JSON_SHORT, _PYTHON_SHORT, _HTML_NAMED):
        if char in table:
            forms.add(re.escape(table[char]))
    for escaped in (char, _JSON_SHORT.get(char, char), _PYTHON_SHORT.get(char, char)):
        forms.add(re.escape(html.escape(escaped)))  # JSON in an HTML page: \&quot;
    # Escaped again (JSON in JSON, a repr of a repr), each backslash doubles: match any number of them.
    forms = {form.replace("\\\\", "\\\\+") for form in forms}
    return "(?:" + "|".join(sorted(forms, key=len, reverse=True)) + ")"


def _decoded(escapes: str) -> Iterator[tuple[str, str | None]]:
    """(escape, the character it decodes to or None) for each UTF-8 sequence of a run of %XX escapes."""
    raw = unquote_to_bytes(escapes)
    start = 0
    while start < len(raw):
        for size in range(1, 5):
            try:
                char = raw[start : start + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            yield escapes[3 * start : 3 * (start + size)], char
            start += size
            break
        else:  # not UTF-8 (`%E9` alone): a decoder keeps it, or replaces it with U+FFFD
            yield escapes[3 * start : 3 * start + 3], None
            start += 1


def _text_pattern(secret: str) -> str:
    """The characters of `secret` in any form; a %XX escape in it also as the character it encodes."""
    parts: list[str] = []
    end = 0
    for run in _ESCAPES.finditer(secret):
        parts.extend(_written(c) for c in secret[end : run.start()])
        for escape, char in _decoded(run[0]):
            written = "".join(_char_forms(c) for c in escape)
            parts.append(f"(?:{written}|{_char_forms(char or chr(0xFFFD))})")
        end = run.end()
    parts.extend(_written(c) for c in secret[end:])
    return "".join(parts)


def _written(char: str) -> str:
    """`char` of a secret in any form; a `+`, which form decoding reads as a space, as a space too."""
    return f"(?:{_char_forms(char)}|{_char_forms(' ')})" if char == "+" else _char_forms(char)


def _base64_fragments(secret: str) -> set[str]:
    """The parts of any base64 text that contain `secret` which depend on the secret alone."""
    raw = secret.encode("utf-8", "surrogatepass")
    found = set()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).decode("ascii")
            first = -(-8 * offset // 6)  # the first character made only of the secret's bits
            last = 8 * (offset + len(raw)) // 6
            if last - first >= _MIN_BASE64:
                found.add(text[first:last])
    return found


def _secret_pattern(secret: str) -> str:
    """Every form of one secret, as a regular expression (no capturing groups)."""
    whole = {re.escape(f) for f in _base64_fragments(secret)}
    if _HOST.fullmatch(secret):  # hosts are lower-cased, and IDNA-encoded, on their way to a message
        try:
            idna = secret.lower().encode("idna").decode("ascii")
        except UnicodeError:
            idna = secret
        whole |= {f"(?i:{re.escape(secret)})", f"(?i:{re.escape(idna)})"}
    forms = [_text_pattern(secret)]
    before, hash_sign, _ = secret.partition("#")
    if hash_sign and len(before) >= _MIN_PART:  # in a URL, "#" starts the fragment, which is never sent
        forms.append(_text_pattern(before))
    pattern = "|".join([*forms, *sorted(whole)])
    if len(secret) >= _MIN_INSIDE:
        return pattern
    # Whole tokens only: not after or before a letter or digit, where the secret's own edge is one.
    before_ok = f"(?<!{_ALNUM})" if re.fullmatch(_ALNUM, secret[0]) else ""
    after_ok = f"(?!{_ALNUM})" if re.fullmatch(_ALNUM, secret[-1]) else ""
    return f"{before_ok}(?:{pattern}){after_ok}"


class Redactor:
    """Replaces every form of each secret in a text by its ${NAME} placeholder."""

    __slots__ = ("_names", "_pattern", "_secrets")

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = dict(secrets)
        # Longer secrets first: one may contain a shorter one, and the longer is the one to name.
        ordered = sorted((s for s in secrets if s), key=len, reverse=True)
        self._names = [secrets[s] for s in ordered]
        alternatives = (f"(?P<s{i}>{_secret_pattern(s)})" for i, s in enumerate(ordered))
        self._pattern = re.compile("|".join(alternatives)) if ordered else None

    def __call__(self, text: str) -> str:
        """`text` with every secret, in whatever form, replaced by ${NAME}."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._placeholder, text)

    def _placeholder(self, match: re.Match[str]) -> str:
        assert match.lastgroup is not None
        return "${" + self._names[int(match.lastgroup[1:])] + "}"

    def __reduce__(self) -> tuple[type[Redactor], tuple[dict[str, str]]]:
        return Redactor, (self._secrets,)


# Every secret any configuration of this process has read: the log formatter redacts them all,
# so a line about a check of the previous configuration, written after a reload, is redacted too.
_known: dict[str, str] = {}
_known_redactor = Redactor({})


def remember(secrets: Mapping[str, str]) -> None:
    """Add `secrets` (value -> NAME) to those redact_known() replaces."""
    global _known_redactor
    if not secrets.keys() - _known.keys():
        return
    merged = {**secrets, **_known}
    _known_redactor = Redactor(merged)  # built whole, then swapped in: another thread may be logging
    _known.update(merged)


def redact_known(text: str) -> str:
    """`text` with every secret this process has read, in any form, replaced by ${NAME}."""
    return _known_redactor(text)
