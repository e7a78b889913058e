"""Ingest: read every article of a folder into ``Article`` values, keeping the exact decoded text.

``.txt`` and ``.md`` files are decoded as UTF-8 and kept verbatim: citations are offsets into that
text. ``.html``/``.htm`` files are reduced to their visible text with BeautifulSoup; for them the
extracted text is what citations point into (it is stored in the index and served by the API).
Files that are binary, not UTF-8, or empty are skipped with a warning naming them; the rest of the
folder is still read.

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
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES
#: Default per-file limit: news articles are kilobytes; a 50 MB "article" is a mistake or an attack.
MAX_ARTICLE_BYTES = 5_000_000

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
    """A single file cannot be turned into an article (binary, not UTF-8, empty, unsupported)."""


def read_article(path: Path, root: Path, max_bytes: int = MAX_ARTICLE_BYTES) -> Article:
    """Read one file of the articles folder ``root``; raise ``IngestError`` with a readable reason if it
    cannot be indexed (outside the folder, not a regular file, too large, unsupported, unreadable)."""
    rel = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(f"unsupported file type {suffix or '(none)'}; use .txt, .md or .html")
    real = resolve_inside(root, path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(real, flags)  # the resolved path: no link is followed between the check and the read
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise IngestError("not a regular file")
        if info.st_size > max_bytes:
            raise IngestError(f"file is too large ({info.st_size:,} bytes; the limit is {max_bytes:,}, ARTICLEQA_MAX_ARTICLE_BYTES)")
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise IngestError(f"file is too large (over {max_bytes:,} bytes, ARTICLEQA_MAX_ARTICLE_BYTES)")
    return parse_article(rel, raw, suffix)


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


def parse_article(rel: str, raw: bytes, suffix: str) -> Article:
    """Turn raw bytes into an ``Article`` (shared by folder ingest and uploads)."""
    if not raw.strip():
        raise IngestError("empty file")
    if b"\x00" in raw:
        raise IngestError("binary file (contains NUL bytes)")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"not valid UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if _control_ratio(decoded) > 0.05:
        raise IngestError("binary file (too many control characters)")
    date = None
    if suffix in HTML_SUFFIXES:
        text, title, date = html_to_text(decoded)
        kind = "html"
    else:
        text, title = decoded, _first_line_title(decoded)
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
    )


class ArticleLoader:
    """Reads a folder (recursively) of articles. Hidden files and folders are ignored; folder links
    are not followed, file links only when they stay inside the folder.

    Args:
        max_bytes: files larger than this are skipped with a warning.
    """

    def __init__(self, max_bytes: int = MAX_ARTICLE_BYTES):
        self.max_bytes = max_bytes

    def load(self, folder: str | Path, on_file: Callable[[int, int], None] | None = None) -> tuple[list[Article], list[Skipped]]:
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
_META_DATE_NAMES = ("article:published_time", "datepublished", "date", "dc.date", "pubdate", "publish-date", "og:published_time")


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
    for value in candidates:
        m = re.match(r"\s*(\d{4}-\d{2}-\d{2})", str(value))
        if m:
            from datetime import datetime

            try:
                return datetime.strptime(m.group(1), "%Y-%m-%d").date().isoformat()
            except ValueError:
                continue
    return None


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
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
