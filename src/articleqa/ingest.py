"""Ingest: read every article of a folder into ``Article`` values, keeping the exact decoded text.

``.txt`` and ``.md`` files are decoded (``articleqa.encoding``: a BOM, else a declared charset, else UTF-8,
else a detected encoding with a warning) and kept verbatim: citations are offsets into that text; their title is the first line that is not a date or byline. ``.html``/``.htm`` files (saved news
pages) are reduced to the article itself with trafilatura: headline, body paragraphs, and as metadata
the author, the canonical URL and the publication date (htmldate); navigation, cookie banners,
tickers, "most read" lists, ads, newsletter boxes, reader comments and footers are left out. A page
where no main text is found falls back to all its visible text (BeautifulSoup), with a warning.
``.pdf`` files are read with pdfminer.six: one paragraph per text block, lines joined, words broken
by a hyphen at a line end joined again, running headers and footers (the same line on most pages)
dropped; ``Article.pages`` records where each page starts so citations carry their page. A PDF with
no text layer (scanned) is skipped with a warning. For pages and PDFs the extracted text is what
citations point into (it is stored in the index and served by the API). Files that are binary, not
text in no encoding, or empty are skipped with a warning naming them; the rest of the folder is still read.

Example::

    articles, skipped = ArticleLoader().load("seeds")
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from articleqa.types import Article

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES
#: Default per-file limit: news articles are kilobytes; a 50 MB "article" is a mistake or an attack.
MAX_ARTICLE_BYTES = 5_000_000
#: Most pages read from one PDF (a press release or an e-paper, not a book).
MAX_PDF_PAGES = 300

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE_PATTERNS = [
    re.compile(r"\b(?:date|published|updated)[:\s]+(\d{4}-\d{2}-\d{2})\b", re.I),
    re.compile(r"\b(\d{4}-\d{2}-\d{2})\b"),
    re.compile(rf"\b((?:{_MONTHS})\s+\d{{1,2}},\s+\d{{4}})\b"),
]


@dataclass(frozen=True)
class Skipped:
    """A file that was not indexed, and why."""

    file: str
    reason: str


class IngestError(ValueError):
    """A single file cannot be turned into an article (binary, not text, empty, unsupported)."""


def read_article(path: Path, root: Path, max_bytes: int = MAX_ARTICLE_BYTES) -> Article:
    """Read one file of the articles folder ``root``; raise ``IngestError`` with a readable reason if it
    cannot be indexed (outside the folder, not a regular file, too large, unsupported, unreadable)."""
    rel = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(f"unsupported file type {suffix or '(none)'}; use .txt, .md, .html or .pdf")
    real = resolve_inside(root, path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(real, flags)  # the resolved path: no link is followed between the check and the read
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise IngestError("not a regular file")
        if info.st_size > max_bytes:
            raise IngestError(
                f"file is too large ({info.st_size:,} bytes; the limit is {max_bytes:,}, ARTICLEQA_MAX_ARTICLE_BYTES)"
            )
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise IngestError(f"file is too large (over {max_bytes:,} bytes, ARTICLEQA_MAX_ARTICLE_BYTES)")
    return parse_article(rel, raw, suffix, source=read_source(root, path) if suffix in PDF_SUFFIXES else None)


#: beside a PDF fetched by URL: where it came from (``<name>.pdf.source.json``; never indexed itself)
SOURCE_SUFFIX = ".source.json"


def read_source(root: Path, path: Path) -> dict:
    """The source record saved beside a fetched PDF (``{"url", "title", "date"}``), or {} when there is
    none or it cannot be read (a warning then; the PDF is still indexed)."""
    import json

    side = path.with_name(path.name + SOURCE_SUFFIX)
    if not side.is_file() and not side.is_symlink():
        return {}
    try:
        real = resolve_inside(root, side)
        if real.stat().st_size > 64_000:
            raise ValueError("over 64 KB")
        data = json.loads(real.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (IngestError, OSError, ValueError) as exc:
        log.warning("%s: source record ignored (%s)", side.name, exc)
        return {}
    return {k: v for k in ("url", "title", "date") if isinstance(v := data.get(k), str) and v}


def resolve_inside(root: Path, path: Path) -> Path:
    """``path`` with every link resolved, refused (``IngestError``) unless it stays inside ``root``."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # dangling link, link loop (RuntimeError before Python 3.13)
        raise IngestError(f"broken or looping link ({exc.__class__.__name__})") from None
    real_root = root.resolve()
    if real != real_root and real_root not in real.parents:
        raise IngestError("links to a file outside the articles folder (not followed)")
    return real


def parse_article(
    rel: str, raw: bytes, suffix: str, declared: str | None = None, source: dict | None = None
) -> Article:
    """Turn raw bytes into an ``Article`` (shared by folder ingest, uploads and fetching); ``declared``
    is a charset given beside the bytes (an HTTP header), see ``articleqa.encoding``; ``source`` a PDF's
    source record (``read_source``)."""
    if not raw.strip():
        raise IngestError("empty file")
    if suffix in PDF_SUFFIXES:
        return pdf_article(rel, raw, source)
    decoded = text_of_bytes(rel, raw, suffix, declared)
    if _control_ratio(decoded) > 0.05:
        raise IngestError("binary file (too many control characters)")
    date = author = url = None
    if suffix in HTML_SUFFIXES:
        page = page_to_article(decoded)
        if page is None:
            log.warning("%s: no main article text found in the page; indexing all its visible text", rel)
            text, title, date = html_to_text(decoded)
        else:
            text, title, date, author, url = page
        kind = "html"
    else:
        text, title = decoded, text_title(decoded)
        kind = "md" if suffix in {".md", ".markdown"} else "txt"
    if not text.strip():
        raise IngestError("no text after parsing")
    return Article(
        file=rel,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        title=title,
        date=date or find_date(text),
        kind=kind,
        author=author,
        url=url,
    )


def text_of_bytes(rel: str, raw: bytes, suffix: str, declared: str | None = None) -> str:
    """The text of a text or HTML file by ``articleqa.encoding``'s rule; ``IngestError`` for binary bytes."""
    from articleqa.encoding import UndecodableError, decode_article

    if b"\x00" in raw and not raw.startswith(
        (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
    ):  # UTF-16/32 text has NULs after its BOM
        raise IngestError("binary file (contains NUL bytes)")
    try:
        decoded = decode_article(raw, rel, declared=declared, markup=suffix in HTML_SUFFIXES).text
    except UndecodableError as exc:
        raise IngestError(str(exc)) from None
    if "\x00" in decoded:
        raise IngestError("binary file (contains NUL characters)")
    return decoded


#: Below this many characters of main text, trafilatura found no article (a front page, an error page).
MIN_MAIN_TEXT = 200


def page_to_article(html: str) -> tuple[str, str, str | None, str | None, str | None] | None:
    """The article of a saved news page: (text, title, date, author, url), or None when no main text
    is found. ``text`` is the headline, then the body paragraphs, separated by blank lines."""
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            html,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            favor_precision=True,
            deduplicate=False,
            as_dict=False,
        )
    except Exception as exc:  # noqa: BLE001 - a page trafilatura cannot parse falls back to plain extraction
        log.debug("trafilatura failed: %s", exc)
        return None
    if doc is None or len((doc.text or "").strip()) < MIN_MAIN_TEXT:
        return None
    paragraphs = [" ".join(line.split()) for line in doc.text.splitlines()]
    paragraphs = [p for p in paragraphs if p]
    title = " ".join((doc.title or "").split())
    if title and (not paragraphs or paragraphs[0] != title):
        paragraphs.insert(0, title)
    date = _page_date(html) or _iso_date(doc.date)
    author = " ".join((doc.author or "").split()) or None
    url = doc.url if (doc.url or "").startswith(("http://", "https://")) else saved_from(html)
    return "\n\n".join(paragraphs), title or paragraphs[0][:200], date, author, url


_SAVED_FROM = re.compile(r"<!--\s*saved from url=\(\d+\)(\S+?)\s*-->")


def saved_from(html: str) -> str | None:
    """The URL a page was saved from: the ``<!-- saved from url=(NNNN)URL -->`` comment browsers (and
    ``articleqa add``) put first in a saved page, or None."""
    m = _SAVED_FROM.search(html[:4000])
    url = m.group(1) if m else None
    return url if url and url.startswith(("http://", "https://")) else None


def _page_date(html: str) -> str | None:
    """The publication date of a page by htmldate (metadata, then the page's own markup; never the network)."""
    from htmldate import find_date as htmldate_find

    try:
        return _iso_date(htmldate_find(html, original_date=True, extensive_search=False, outputformat="%Y-%m-%d"))
    except Exception:  # noqa: BLE001 - no date is a fine answer
        return None


def _iso_date(value: str | None) -> str | None:
    m = re.match(r"\s*(\d{4}-\d{2}-\d{2})", value or "")
    if not m:
        return None
    from datetime import datetime

    try:
        return datetime.strptime(m.group(1), "%Y-%m-%d").date().isoformat()
    except ValueError:
        return None


# --- PDF ---------------------------------------------------------------------------------------------


def pdf_article(rel: str, raw: bytes, source: dict | None = None) -> Article:
    """An ``Article`` from PDF bytes (see the module docstring); ``IngestError`` when it cannot be read,
    has too many pages or no text layer. ``source`` (a fetched PDF's record) gives its URL, and its title
    and date where the PDF has none."""
    text, pages, info = pdf_to_text(raw)
    if not text.strip():
        raise IngestError("PDF has no text layer (a scanned document?): not indexed")
    source = source or {}
    url = source.get("url") if str(source.get("url", "")).startswith(("http://", "https://")) else None
    title = info.get("title") or source.get("title") or text_title(text)
    return Article(
        file=rel,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        title=title,
        date=find_date(text) or info.get("date") or source.get("date"),
        kind="pdf",
        author=info.get("author"),
        url=url,
        pages=pages,
    )


def pdf_to_text(raw: bytes, max_pages: int = MAX_PDF_PAGES) -> tuple[str, tuple[int, ...], dict]:
    """(text, page start offsets, metadata) of a PDF: paragraphs separated by blank lines, pages too."""
    import io

    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer

    try:
        blocks_per_page: list[list[str]] = []
        # char_margin 4 (pdfminer: 2) keeps a justified line with wide word gaps one line; the boxes come in
        # pdfminer's reading order (boxes_flow), which follows columns
        for n, page in enumerate(extract_pages(io.BytesIO(raw), laparams=LAParams(char_margin=4.0)), 1):
            if n > max_pages:
                raise IngestError(f"PDF has more than {max_pages} pages")
            boxes = [el for el in page if isinstance(el, LTTextContainer)]
            blocks_per_page.append([b for b in (_pdf_block(el.get_text()) for el in boxes) if b])
        info = _pdf_info(raw)
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - pdfminer raises its own and builtin exception types for broken files
        raise IngestError(f"not a readable PDF ({exc.__class__.__name__})") from None
    running = _running_lines(blocks_per_page)
    parts, starts, pos = [], [], 0
    for blocks in blocks_per_page:
        kept = [b for b in blocks if _shape(b) not in running]
        page_text = "\n\n".join(kept)
        starts.append(pos)
        parts.append(page_text)
        pos += len(page_text) + 2
    return "\n\n".join(parts), tuple(starts), info


def _pdf_block(text: str) -> str:
    """One text block as one paragraph: lines joined with a space, and a line ending in a lower-case
    letter and a hyphen joined to a next line that starts in lower case, without the hyphen
    ("inter-\nnational" -> "international"; a compound broken there, "well-\nknown", becomes
    "wellknown": a line-end hyphen cannot tell the two apart; "US-\nbacked" and "-\nBerlin" keep theirs)."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out = ""
    for line in (ln for ln in lines if ln):
        if not out:
            out = line
        elif re.search(r"[a-zà-ÿ]-$", out) and line[:1].islower():
            out = out[:-1] + line
        else:
            out += " " + line
    return out


def _shape(block: str) -> str:
    """A block with its numbers blanked: "Page 3" and "Page 4" are the same running footer."""
    return re.sub(r"\d+", "#", block.strip().lower())


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Short blocks that open or close most pages (running headers, footers, page numbers)."""
    if len(pages) < 2:
        return {s for blocks in pages for s in map(_shape, blocks) if re.fullmatch(r"(page )?#( of #)?", s)}
    counts: dict[str, int] = {}
    for blocks in pages:
        edge = {_shape(b) for b in blocks[:2] + blocks[-2:] if len(b) <= 120}
        for s in edge:
            counts[s] = counts.get(s, 0) + 1
    return {s for s, c in counts.items() if c >= max(2, (len(pages) + 1) // 2)}


def _pdf_info(raw: bytes) -> dict:
    """Title, author and creation date from the PDF's document information, where set."""
    import io

    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfparser import PDFParser
    from pdfminer.utils import decode_text

    out: dict = {}
    try:
        doc = PDFDocument(PDFParser(io.BytesIO(raw)))
        info = doc.info[0] if doc.info else {}
    except Exception:  # noqa: BLE001 - metadata is optional
        return out

    def text(value) -> str:
        if isinstance(value, bytes):  # a PDF text string: UTF-16 with a byte-order mark, else PDFDocEncoding
            return decode_text(value)
        return str(value) if value is not None and not hasattr(value, "resolve") else ""

    title, author = " ".join(text(info.get("Title")).split()), " ".join(text(info.get("Author")).split())
    if title:
        out["title"] = title[:200]
    if author:
        out["author"] = author[:200]
    m = re.match(r"D:(\d{4})(\d{2})(\d{2})", text(info.get("CreationDate")))
    if m:
        out["date"] = _iso_date(f"{m.group(1)}-{m.group(2)}-{m.group(3)}")
    return out


class ArticleLoader:
    """Reads a folder (recursively) of articles. Hidden files and folders are ignored; folder links
    are not followed, file links only when they stay inside the folder.

    Args:
        max_bytes: files larger than this are skipped with a warning.
    """

    def __init__(self, max_bytes: int = MAX_ARTICLE_BYTES):
        self.max_bytes = max_bytes

    def load(
        self, folder: str | Path, on_file: Callable[[int, int], None] | None = None
    ) -> tuple[list[Article], list[Skipped]]:
        """Articles and skipped files of ``folder``; ``on_file(done, total)`` reports progress."""
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"articles folder not found: {root}")
        articles: list[Article] = []
        skipped: list[Skipped] = []
        paths = sorted(iter_article_files(root))
        for n, path in enumerate(paths, 1):
            rel = path.relative_to(root).as_posix()
            try:
                articles.append(read_article(path, root, self.max_bytes))
            except IngestError as exc:
                log.warning("skipping %s: %s", rel, exc)
                skipped.append(Skipped(rel, str(exc)))
            except OSError as exc:
                log.warning("skipping %s: cannot read (%s)", rel, exc.strerror or exc)
                skipped.append(Skipped(rel, f"cannot read: {exc.strerror or exc}"))
            if on_file:
                on_file(n, len(paths))
        return articles, skipped


def iter_article_files(root: Path) -> Iterator[Path]:
    """Entries under ``root`` named like articles, skipping hidden ones; folder links are not entered."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                yield Path(dirpath) / name


#: Where news pages state their publication date (Open Graph, schema.org, Dublin Core, <time>).
_META_DATE_NAMES = (
    "article:published_time",
    "datepublished",
    "date",
    "dc.date",
    "pubdate",
    "publish-date",
    "og:published_time",
)


def html_to_text(html: str) -> tuple[str, str, str | None]:
    """Visible text of an HTML page (scripts, styles and templates dropped), its title and its
    publication date from the page's metadata (``<meta property="article:published_time">``, ``<time
    datetime>``) as ``YYYY-MM-DD``, or None."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    date = _html_date(soup)
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name == "head":
            title_tag = tag.find("title")
            tag.replace_with(title_tag) if title_tag else tag.decompose()
        else:
            tag.decompose()
    title = ""
    heading = soup.find(["title", "h1"])
    if heading:
        title = " ".join(heading.get_text(" ").split())
    lines = [" ".join(line.split()) for line in soup.get_text("\n").splitlines()]
    text = "\n\n".join(line for line in lines if line)
    return text, title or _first_line_title(text), date


def _html_date(soup) -> str | None:
    candidates = []
    for meta in soup.find_all("meta"):
        name = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        if name in _META_DATE_NAMES and meta.get("content"):
            candidates.append(meta["content"])
    time_tag = soup.find("time", attrs={"datetime": True})
    if time_tag:
        candidates.append(time_tag["datetime"])
    return next((d for d in map(_iso_date, map(str, candidates)) if d), None)


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
    return ""


#: A line that is metadata, not a headline: a date ("date 2026-01-03", "January 3, 2026"), a byline
#: ("By Ana Ruiz"), or such a prefix before the first sentence of a file that has no title line.
_META_PREFIX = re.compile(
    rf"^\s*(?:(?:date|published|updated)\s*:?\s*)?(?:\d{{4}}-\d{{2}}-\d{{2}}|(?:{_MONTHS})\s+\d{{1,2}},\s+\d{{4}})\b[\s,.:;|·-]*",
    re.I,
)
_BYLINE = re.compile(r"^\s*[Bb]y\s+[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,3}\s*$")


def text_title(text: str) -> str:
    """The title of a plain-text article: its first line that is not a date or byline line; a date
    prefix before the first sentence ("date 2026-01-03 On January 3, ...") is not part of it, and a
    first line that is a whole paragraph gives its first sentence."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if not line or _BYLINE.match(line):
            continue
        rest = _META_PREFIX.sub("", line, count=1).strip()
        if not rest:
            continue  # a date line
        if len(rest) > 100:  # a paragraph, not a headline: its first sentence
            m = re.match(r"(.{20,200}?[.!?])(?:\s|$)", rest)
            rest = m.group(1) if m else rest[:200].rsplit(" ", 1)[0] + "…"
        return rest[:200]
    return ""


def find_date(text: str) -> str | None:
    """A date the article states near its top (ISO ``YYYY-MM-DD`` when it can be parsed)."""
    head = text[:600]
    for pattern in _DATE_PATTERNS:
        m = pattern.search(head)
        if m:
            value = m.group(1)
            try:
                from datetime import datetime

                if "-" in value:
                    return datetime.strptime(value, "%Y-%m-%d").date().isoformat()
                return datetime.strptime(value.replace(",", ""), "%B %d %Y").date().isoformat()
            except ValueError:
                continue
    return None


def _control_ratio(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f")
    return bad / len(sample)
