"""Error-page signatures: the built-in ones are data files in this folder, not code.

Each YAML file holds `signatures:`, a list of entries with `name`, `platform`,
`verdict` (down or degraded), `where` (the parts of a response it is matched
against, see `ZONES`) and either `pattern` (a regular expression), `phrases`
(regular expressions that must fill a whole line, see `LINE_TEMPLATE`), or both;
optionally `reason` (error_page, the default, or rate_limited) and `fallback: true`
(it stands aside when any other signature matches the same response).
Files are read in the order of their top-level `order:` key, then by name, so
that specific platforms come before the generic phrases.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import yaml

from prober.model import ProberError, Reason, Verdict

# Where a signature is looked for (see prober/page.py for how each part is extracted):
#   title    the HTML <title>
#   heading  the main headings: every <h1>, and the first <h1>-<h3> of the page
#   text     the visible text of a short page, one block (paragraph, heading, cell...) per line;
#            or a short plain-text body, one line per line
#   json     the error fields of a JSON body, one per line, as "label: message"
ZONES: tuple[str, ...] = ("title", "heading", "text", "json")

# Flags every signature pattern is compiled with: case-insensitive; ^ and $ match at line ends.
FLAGS = re.IGNORECASE | re.MULTILINE

# Wraps `phrases` so that a phrase matches only when it is (nearly) a whole line, title or
# heading: what an error page says, not a sentence that quotes it. It allows a little
# decoration before ("Oops!", "Sorry,", "Error:", "申し訳ございません。", "很抱歉，", a JSON label
# such as "errors: ") and after, but only past a separator ("Something went wrong. Please try
# again", "出错了，请稍后重试", in Thai a space): "Twitter says something went wrong" and
# "Something went wrong at Twitter" do not match, nor does a question ("Something went wrong?
# Contact us" is a help page). In a title the phrase must be the whole title (`STRICT_TAIL`,
# see `prober.signatures.match`): "502 Bad Gateway - HTTP | MDN" names a page about the status.
_LEAD = r"""^[^\w"'«»„「」『』\n]{0,3}(?:(?:errors?|graphql(?:-partial)?-errors|message|status|problem): )?"""
_SORRY = (
    "oops|whoops|uh[- ]?oh|oh (?:no|dear)|sorry|we(?:'?re| are) sorry|"
    "apologies|but|error|hmm+|ouch|yikes|whoa(?: there)?|hey(?: there)?|easy there"
    "|(?:we(?:'re| are) )?sorry for (?:the|any) inconvenience"
    "|we apologi[sz]e for (?:the|any) inconvenience",  # en
    "oups|a[ïi]e|d[ée]sol[ée]e?s?|nous sommes d[ée]sol[ée]s|erreur",  # fr
    "ups|uy|lo sentimos|lo siento|vaya|perdón|disculpa(?:s|nos)?",  # es
    "hoppla|huch|oh nein|ups|entschuldigung|es tut uns leid|leider|fehler",  # de
    "(?:大変|誠に)?申し訳(?:ありません|ございません)(?:が)?|すみません|エラー"
    # sorry for the inconvenience, before the error it is about
    "|ご(?:迷惑|不便)をおかけして(?:大変|誠に)?申し訳(?:ありません|ございません)",  # ja
    "很?抱歉|对不起|對不起|糟糕|哎呀|错误|錯誤"
    "|(?:给您)?带来(?:的)?不便[,，]?敬请谅解"
    "|(?:給您)?帶來(?:的)?不便[,，]?敬請(?:見諒|原諒)",  # zh-Hans, zh-Hant
    "죄송합니다|이런|앗|오류"
    "|(?:서비스 )?(?:이용에 |이용에 많은 )?불편을 드려 (?:대단히 |정말 )?죄송합니다",  # ko
    "desculpe|lamentamos|ops|opa|erro",  # pt
    "spiacenti|ci dispiace|errore",  # it
    "извините|к сожалению|упс|ой|ошибка",  # ru
    "üzgünüz|maalesef|hay aksi|hata",  # tr
    "przepraszamy|niestety|ojej|błąd",  # pl
    "oeps|helaas|fout",  # nl
    "عذر(?:ًا|اً|ا)|عفو(?:ًا|اً|ا)|نأسف|خطأ",  # ar
    "क्षमा करें|माफ़ करें|उफ़|त्रुटि",  # hi
    "mohon maaf|maaf|aduh|yah|waduh|ups|galat",  # id
    "rất tiếc|xin lỗi|lỗi|ôi",  # vi
    "ขออภัย|ขอโทษ|อ๊ะ|ข้อผิดพลาด",  # th
)
_PREFIX = unicodedata.normalize("NFKC", rf"(?:(?:{'|'.join(_SORRY)})[^\w\n]{{0,4}})*")
# After the phrase: trailing punctuation, or a separator and more (Thai separates sentences with
# a space); never a question ("Something went wrong? Contact us", "Ein Fehler ist aufgetreten –
# was nun?" are help pages).
# A short clause may close the message before that: "Something went wrong on our end", "...
# please try again later", "Ada yang salah nih", "Une erreur est survenue de notre côté".
_QUALIFIER = (
    r"(?: (?:on our (?:end|side)|on our servers?|right now|at the moment|at this time|for now"
    r"|(?:please )?try again(?: later| in a (?:few minutes|moment|bit))?|de notre côté|por nuestra parte"
    r"|de nuestro lado|bei uns|auf unserer seite|do nosso lado|da parte nostra|aan onze kant"
    r"|на нашей стороне|nih|ya|rồi))?"
)
TAIL = _QUALIFIER + r"(?:[^\w\n?]*$| ?[.!,;…。、।،|·•–—-][^\n]{0,200}(?<!\?)$| (?=[ก-๛])[^\n]{0,200}(?<!\?)$)"
STRICT_TAIL = r"(?:[^\w\n?]*$)"
LINE_TEMPLATE = _LEAD + _PREFIX + "(?:PHRASE)" + TAIL

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class Signature:
    """A named pattern that marks a response as an error page."""

    name: str
    pattern: str  # a regular expression, matched case-insensitively (see FLAGS)
    verdict: Verdict = Verdict.DOWN  # down or degraded
    platform: str = "user"  # who serves such pages: nginx, cloudflare, rails, ...
    where: tuple[str, ...] = ZONES  # the parts of a response it is matched against
    reason: Reason = Reason.ERROR_PAGE  # or rate_limited: the page says the client is throttled
    fallback: bool = False  # an envelope ("errors: ..."): any other signature that matches wins


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a signature pattern with the flags the classifier uses; raises re.error."""
    return re.compile(pattern, FLAGS)


def phrase_pattern(phrases: Iterable[str]) -> str:
    """The regular expression matching any of `phrases` as a whole line (see LINE_TEMPLATE)."""
    # Text is compared after NFKC (prober.page): so are phrases ("ड़" is then two characters).
    joined = "|".join(f"(?:{unicodedata.normalize('NFKC', p)})" for p in phrases)
    return LINE_TEMPLATE.replace("PHRASE", joined)


def load_signatures(text: str, source: str = "<string>") -> tuple[Signature, ...]:
    """Parse one signature file; raise ProberError naming `source` on any mistake."""
    data = _parse(text, source)
    return tuple(_entry(item, data, source) for item in data.get("signatures", []))


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ProberError(f"signature file {source}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("signatures", []), list):
        raise ProberError(f"signature file {source}: expected a mapping with a list of signatures")
    return data


def _entry(item: Any, data: dict[str, Any], source: str) -> Signature:
    if not isinstance(item, dict):
        raise ProberError(f"signature file {source}: {item!r} is not a mapping")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProberError(f"signature file {source}: {name!r} is not a signature name")
    parts: list[str] = []
    phrases = item.get("phrases")
    if phrases is not None:
        phrases = [phrases] if isinstance(phrases, str) else phrases
        if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) for p in phrases):
            raise ProberError(f"signature file {source}: {name}: phrases must be a list of strings")
        parts.append(phrase_pattern(phrases))
    pattern = item.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise ProberError(f"signature file {source}: {name}: pattern must be a string")
        parts.append(pattern)
    if not parts:
        raise ProberError(f"signature file {source}: {name}: needs a pattern or phrases")
    where = item.get("where", "any")
    where = ZONES if where == "any" else (where,) if isinstance(where, str) else tuple(where)
    if not where or any(zone not in ZONES for zone in where):
        raise ProberError(f"signature file {source}: {name}: where must be any or some of {', '.join(ZONES)}")
    full = parts[0] if len(parts) == 1 else "|".join(f"(?:{p})" for p in parts)
    try:
        compile_pattern(full)
        verdict = Verdict(item.get("verdict", "down"))
    except (re.error, ValueError) as exc:
        raise ProberError(f"signature file {source}: {name}: {exc}") from exc
    if verdict not in (Verdict.DOWN, Verdict.DEGRADED):
        raise ProberError(f"signature file {source}: {name}: verdict must be down or degraded")
    reason = item.get("reason", "error_page")
    if reason not in (Reason.ERROR_PAGE, Reason.RATE_LIMITED):
        raise ProberError(f"signature file {source}: {name}: reason must be error_page or rate_limited")
    fallback = item.get("fallback", False)
    if not isinstance(fallback, bool):
        raise ProberError(f"signature file {source}: {name}: fallback must be true or false")
    platform = item.get("platform", data.get("platform", "unknown"))
    return Signature(
        name=name, pattern=full, verdict=verdict, platform=str(platform), where=where,
        reason=Reason(reason), fallback=fallback,
    )  # fmt: skip


@cache
def builtin_signatures() -> tuple[Signature, ...]:
    """Every built-in signature, read once from the YAML files of this package, in priority order."""
    files: list[tuple[int, str, dict[str, Any]]] = []
    for entry in resources.files(__package__).iterdir():
        if entry.name.endswith(".yaml"):
            data = _parse(entry.read_text(encoding="utf-8"), entry.name)
            if not isinstance(data.get("order", 50), int):
                raise ProberError(f"signature file {entry.name}: order must be an integer")
            files.append((data.get("order", 50), entry.name, data))
    files.sort(key=lambda f: (f[0], f[1]))
    return tuple(_entry(item, data, name) for _, name, data in files for item in data["signatures"])
