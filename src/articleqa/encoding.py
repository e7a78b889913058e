"""Decode an article's bytes: one rule for every way an article arrives.

Fetched pages, uploads, files dropped into the articles folder and ``verify``'s re-reading all decode
through :func:`decode_article`, so a citation's offsets point into the same text every time:

1. a byte-order mark (UTF-8, UTF-16, UTF-32) wins;
2. else the declared charset: the HTTP ``Content-Type`` header's (fetched pages, ``declared=``), then,
   for a page, its own ``<meta charset>`` / ``<meta http-equiv="Content-Type">`` or XML declaration;
3. else UTF-8;
4. where the chosen encoding cannot decode the bytes (a page labelled UTF-8 that is Latin-1, a
   Windows-1252 ``.txt``), charset-normalizer's best guess, with a warning naming the file and the
   encoding it chose.

Labels mean what browsers make of them (the WHATWG Encoding Standard): ``iso-8859-1``, ``latin1`` and
``us-ascii`` are read as Windows-1252, ``gb2312`` as GBK, and a page declaring UTF-16 without a BOM as
UTF-8. Bytes nothing can read as text raise ``UndecodableError``.

Example::

    decoded = decode_article(raw, "story.html", declared="iso-8859-1")
    decoded.text, decoded.encoding, decoded.how    # "...", "cp1252", "declared"
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with UTF-16 LE's
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: labels browsers read as another encoding than Python's codec of that name
_WHATWG = {
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gbk",
    "x-sjis": "shift_jis",
}
#: a charset declared in a ``<meta>`` or an XML declaration: group 1 up to the label, group 2 the label
_META_PATTERN = r"""(<meta\b[^>]*?charset\s*=\s*["']?\s*)([A-Za-z0-9_.:\-]+)"""
_XML_PATTERN = r"""^(\s*<\?xml\b[^>]*?\bencoding\s*=\s*["'])([A-Za-z0-9_.:\-]+)"""
#: compiled for bytes (reading a page's declaration) and for text (``as_utf8_page`` rewriting it)
_META, _META_TEXT = (re.compile(p, re.I) for p in (_META_PATTERN.encode(), _META_PATTERN))
_XML_DECL, _XML_TEXT = (re.compile(p, re.I) for p in (_XML_PATTERN.encode(), _XML_PATTERN))
PRESCAN_BYTES = 4096


class UndecodableError(ValueError):
    """The bytes are not text in any encoding that was declared or could be detected."""


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # Python codec name
    how: Literal["bom", "declared", "utf-8", "detected"]


def codec_for(label: str | None) -> str | None:
    """Python's codec for a charset label as browsers read it, or None for an unknown label."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    name = _WHATWG.get(label, _WHATWG.get(name, name))
    if name.startswith(("utf-16", "utf-32")):  # without a BOM an ASCII-compatible page cannot be UTF-16
        return "utf-8"
    return name


def declared_in_page(raw: bytes) -> str | None:
    """The charset a page declares in its first bytes (``<meta>`` or XML declaration), if any."""
    head = raw[:PRESCAN_BYTES]
    m = _XML_DECL.match(head) or _META.search(head)
    return m.group(2).decode("ascii") if m else None


def decode_article(raw: bytes, name: str, declared: str | None = None, markup: bool = False) -> Decoded:
    """Decode ``raw`` (the file ``name``, for warnings) by the rule above. ``declared`` is a charset
    from outside the bytes (an HTTP header); ``markup`` looks for one inside them (HTML/XML pages)."""
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            try:
                return Decoded(raw.decode(enc), enc, "bom")
            except UnicodeDecodeError:
                break  # a BOM followed by something else: detect
    label = declared or (declared_in_page(raw) if markup else None)
    enc = codec_for(label)
    how: Literal["declared", "utf-8"] = "declared" if enc else "utf-8"
    enc = enc or "utf-8"
    text = _try(raw, enc)
    if text is not None:
        return Decoded(text, enc, how)
    guessed = _detect(raw)
    if guessed is None:
        raise UndecodableError(f"not text in {label or 'UTF-8'} nor in any encoding a detector recognises")
    detected, text = guessed
    if label:
        log.warning("%s: declared %s, but the bytes are not %s; read as %s (detected)", name, label, enc, detected)
    else:
        log.warning("%s: no declared encoding and not UTF-8; read as %s (detected)", name, detected)
    return Decoded(text, detected, "detected")


def _try(raw: bytes, enc: str) -> str | None:
    try:
        return raw.decode(enc)
    except UnicodeDecodeError:
        if enc == "cp1252":  # five bytes Windows-1252 leaves undefined: as browsers do, their Latin-1 code points
            return raw.decode("latin-1")
        return None


#: what a detector may choose: the encodings of the WHATWG standard (the web's; no DOS code pages)
WEB_ENCODINGS = (
    "utf_8",
    "cp1252",
    "iso8859_15",
    "cp1251",
    "koi8_r",
    "koi8_u",
    "shift_jis",
    "euc_jp",
    "iso2022_jp",
    "gb18030",
    "gbk",
    "big5",
    "euc_kr",
    "cp1250",
    "iso8859_2",
    "cp1253",
    "iso8859_7",
    "cp1254",
    "cp1255",
    "iso8859_8",
    "cp1256",
    "iso8859_6",
    "cp1257",
    "iso8859_13",
    "cp1258",
    "cp874",
    "cp866",
    "iso8859_3",
    "iso8859_4",
    "iso8859_5",
    "iso8859_10",
    "iso8859_14",
    "iso8859_16",
    "mac_roman",
    "mac_cyrillic",
)


def _detect(raw: bytes) -> tuple[str, str] | None:
    """charset-normalizer's reading; among the encodings it finds equally clean (a Western text with a
    few accented letters reads alike in a dozen of them) the one the web uses most (``WEB_ENCODINGS``'s order)."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw, cp_isolation=list(WEB_ENCODINGS)))
    if not matches:
        return None
    cleanest = min(m.chaos for m in matches)
    tied = {e for m in matches if m.chaos <= cleanest + 0.005 for e in (m.encoding, *m.could_be_from_charset)}
    best = min(tied, key=lambda e: WEB_ENCODINGS.index(e) if e in WEB_ENCODINGS else len(WEB_ENCODINGS))
    enc = codec_for(best) or best
    text = _try(raw, enc)
    return (enc, text) if text is not None else None


def as_utf8_page(text: str) -> bytes:
    """A decoded page as UTF-8 bytes that read back as the same text: every charset it declares in a
    ``<meta>`` or its XML declaration now says utf-8."""
    text = _XML_TEXT.sub(lambda m: m.group(1) + "utf-8", text, count=1)
    text = _META_TEXT.sub(lambda m: m.group(1) + "utf-8", text)
    return text.encode("utf-8")
