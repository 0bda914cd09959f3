"""What marks a page as content, not an error page: structured data naming content, and offers."""

from __future__ import annotations

import re

__all__ = [
    "CONTENT_TYPES",
    "CONTROLS",
    "ITEMTYPE",
    "LD_CONTENT",
    "OFFER_ATTRS",
    "OG_CONTENT",
    "explains",
    "offers_text",
    "offers_with",
]

# Structured data that names what a page is (Open Graph og:type, JSON-LD or microdata types): a
# song, a product, an article, a video, a question. Generic types (WebSite, WebPage,
# Organization, BreadcrumbList) say nothing: an error page's template carries them too.
CONTENT_TYPES = (
    r"article|newsarticle|blogposting|techarticle|scholarlyarticle|report|product(?:\.\w+)?|offer|"
    r"music\.\w+|musicrecording|musicalbum|musiccomposition|musicplaylist|video\.\w+|videoobject|"
    r"movie|tvepisode|tvseries|book|books\.\w+|audiobook|podcastepisode|recipe|qapage|faqpage|question|"
    r"discussionforumposting|socialmediaposting|event|course|softwareapplication|review|howto|dataset|"
    r"profile|profilepage|place|restaurant(?:\.\w+)?|localbusiness|itemlist|collectionpage|creativework"
)
OG_CONTENT = re.compile(
    rf"""(?:property|name)\s*=\s*["']?og:type["']?[^<>]*?content\s*=\s*["']?(?:{CONTENT_TYPES})["'\s/>]"""
    rf"""|content\s*=\s*["']?(?:{CONTENT_TYPES})["']?\s+(?:property|name)\s*=\s*["']?og:type""",
    re.IGNORECASE,
)
LD_CONTENT = re.compile(
    rf'"@type"\s*:\s*\[?\s*"(?:https?://schema\.org/)?(?:{CONTENT_TYPES})"', re.IGNORECASE
)
ITEMTYPE = re.compile(rf"""itemtype\s*=\s*["']?https?://schema\.org/(?:{CONTENT_TYPES})\b""", re.IGNORECASE)

# A page that offers something is content, whatever its heading: an album called "Internal Server
# Error" has a price and an "Add to cart" button, a game called "Something Went Wrong" a rating and
# "Buy now". An error page offers only a way out ("Try again", "Go home", "Contact support").
# Checked on a page that would otherwise say little: its main lines, and its buttons and links.
_PRICE = (
    r"(?:[$£€¥₹₩₽₺฿₫]|US\$|R\$|\b(?:rs|rp)\.?) ?\d[\d.,]{0,9}(?!\d)"
    r"|\d[\d.,]{0,9} ?(?:€|zł|₽|₺|₫|đ|kr|円|元|руб\.?|tl|eur|usd|gbp)(?!\w)"
)
_RATING = r"[★☆]{3,}|\d[\d.,]* (?:reviews|ratings|avis|bewertungen|reseñas|avaliações|recensioni|отзыв\w*)\b"
_OFFER_TEXT = re.compile(rf"{_PRICE}|{_RATING}|\btrack ?list\b", re.IGNORECASE)
_OFFER_CONTROL = re.compile(
    r"\W{0,3}(?:add to (?:cart|basket|bag|wish ?list)|buy\b|pre-?order|order now|purchase|shop now|"
    r"play(?: now| trailer)?$|listen(?: now)?$|watch(?: now| trailer)?$|download(?: now| for free)?$|"
    r"read more|subscribe$|rent\b|"
    r"in den warenkorb|(?:jetzt )?kaufen|vorbestellen|ajouter au panier|acheter|"
    r"(?:añadir|agregar|adicionar) ao? carrinho|(?:añadir|agregar) al carrito|comprar|"
    r"aggiungi al carrello|acquista|in (?:de )?winkelwagen|(?:nu )?kopen|koop nu|"
    r"カートに入れる|(?:今すぐ)?購入|加入购物车|(?:立即)?购买|加入購物車|(?:立即)?購買|"
    r"장바구니|구매|바로 ?구매|купить|в корзину|sepete ekle|satın al|dodaj do koszyka|kup(?: teraz)?$|"
    r"أضف إلى السلة|اشتر(?:ِ)? الآن|कार्ट में (?:जोड़ें|डालें)|अभी खरीदें|beli(?: sekarang)?$|"
    r"(?:tambah(?:kan)? ke )?keranjang|thêm vào giỏ|mua ngay|ใส่ตะกร้า|หยิบใส่ตะกร้า|ซื้อ(?:เลย|ตอนนี้)?$)",
    re.IGNORECASE,
)
CONTROLS = frozenset({"a", "button"})  # whose labels may offer something
OFFER_ATTRS = re.compile(r"""itemprop\s*=\s*["']?(?:price|offers)\b|class\s*=\s*["']?(?:[\w-]+ )*price\b""")


def offers_text(line: str) -> bool:
    """Whether a line of a page's main content shows an offer: a price, a rating, a tracklist."""
    return _OFFER_TEXT.search(line) is not None


def offers_with(label: str) -> bool:
    """Whether a button's or link's label offers something ("Add to cart", "Buy now", "Watch")."""
    return _OFFER_CONTROL.match(label) is not None


# A reference page explains a status: "The HTTP 503 Service Unavailable server error response status
# code indicates that the server is not ready", "Der Statuscode 502 bedeutet, dass...". An error page
# states its status ("503 Service Unavailable", "The server is temporarily unable to service your
# request") but never defines it: a short page whose heading is a status line and whose prose
# explains a status code is content. Each language: the status code named, then a verb of meaning.
_CODE_MEANS = (
    r"\b(?:status|response|error|http) code\b[^.\n]{0,120}?"
    r"\b(?:indicates|means|signals|signifies|is returned|is sent)\b",
    r"\b(?:indicates|means|signifies) that the (?:server|client|request|origin|gateway|upstream)\b",
    r"code (?:de statut|d'état|de réponse|http)[^.\n]{0,120}?\b(?:indique|signifie)",
    r"código (?:de estado|de respuesta|de status|de resposta|http)[^.\n]{0,120}?\b(?:indica|significa)",
    r"statuscode[^.\n]{0,120}?\b(?:bedeutet|zeigt an|gibt an|besagt|geeft aan|betekent)",
    r"codice (?:di stato|di risposta|http)[^.\n]{0,120}?\b(?:indica|significa)",
    r"ステータスコード[^。\n]{0,120}?(?:示し|示す|意味し|意味する)",
    r"(?:状态码|狀態碼|状态代码|狀態代碼)[^。\n]{0,120}?(?:表示|意味着|意味著|说明|說明)",
    r"상태 ?코드[^.\n]{0,120}?(?:나타냅니다|나타내며|의미합니다|의미하며|뜻합니다)",
    r"код (?:состояния|ответа|статуса)[^.\n]{0,120}?(?:означает|указывает|сообщает)",
    r"durum kodu[^.\n]{0,120}?(?:belirtir|gösterir|anlamına gelir|ifade eder)",
    r"kod (?:stanu|statusu|odpowiedzi)[^.\n]{0,120}?(?:oznacza|wskazuje|informuje)",
    r"رمز (?:الحالة|الاستجابة)[^.\n]{0,120}?(?:يشير|يعني|يدل)",
    r"(?:स्टेटस|स्थिति) कोड[^।\n]{0,120}?(?:दर्शाता|इंगित करता|मतलब|अर्थ)",
    r"kode (?:status|respons)[^.\n]{0,120}?\b(?:menunjukkan|berarti|menandakan)",
    r"mã (?:trạng thái|phản hồi)[^.\n]{0,120}?(?:cho biết|có nghĩa|biểu thị)",
    r"รหัส(?:สถานะ|ตอบกลับ)[^\n]{0,120}?(?:หมายความว่า|หมายถึง|บ่งบอก|แสดงว่า)",
)
_EXPLAINS = re.compile("|".join(_CODE_MEANS), re.IGNORECASE)


def explains(line: str) -> bool:
    """Whether a line of a page's main content explains a status code, as a reference page does."""
    return _EXPLAINS.search(line) is not None
