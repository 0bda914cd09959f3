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
