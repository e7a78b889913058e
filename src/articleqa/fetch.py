"""Articles from the web: fetch a page or a PDF by its URL, or the new entries of an RSS/Atom feed, and
save them into the articles folder (the next incremental rebuild indexes them).

Fetching is careful: httpx with a timeout, a size limit (the body is streamed and cut off), a
content-type check (HTML, XHTML or PDF; RSS/Atom/XML for feeds), at most ``MAX_REDIRECTS`` redirects,
and every address on the way (each redirect included) must be a public one unless private targets are
allowed (``ARTICLEQA_FETCH_ALLOW_PRIVATE=1``): a server that fetches on request must not be turned
against its own network. A page is saved only once it parses as an article (``ingest.parse_article``),
written to a temporary name and renamed, so nothing half-written is ever left in the folder.

A saved page keeps where it came from the way browsers mark saved pages, a first-line comment
``<!-- saved from url=(NNNN)URL -->``; ingest reads it when the page names no canonical URL, so
citations carry the source ``url``.

Example::

    fetcher = Fetcher(allow_private=False)
    saved = save_url(fetcher, "https://example.org/news/story", Path("articles"))   # "web/example.org/story-1a2b3c4d.html"
    new, errors = follow_feed(fetcher, "https://example.org/feed.xml", Path("articles"))
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from articleqa.ingest import IngestError, parse_article

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_FETCH_BYTES = 5_000_000
TIMEOUT_S = 15.0
USER_AGENT = "articleqa/1 (+https://github.com/articleqa)"
PAGE_TYPES = {"text/html": ".html", "application/xhtml+xml": ".html", "application/pdf": ".pdf"}
FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/xml", "text/xml", "application/rdf+xml",
              "application/feed+json", "text/plain"}
WEB_FOLDER = "web"  # fetched articles go to <articles>/web/<host>/


class FetchError(ValueError):
    """A URL could not be fetched or saved as an article; the message names the URL and why."""


@dataclass
class Fetched:
    url: str  # the URL asked for
    final_url: str  # after redirects
    content_type: str
    content: bytes


@dataclass
class FeedReport:
    feed: str
    entries: int = 0
    saved: list[str] = field(default_factory=list)
    known: int = 0  # entries already in the folder
    errors: list[dict] = field(default_factory=list)


def check_url(url: str) -> str:
    """The URL, or ``FetchError`` unless it is an absolute http(s) URL with a host."""
    if not isinstance(url, str) or len(url) > 2000:
        raise FetchError(f"{str(url)[:100]!r}: not a URL (at most 2000 characters)")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url}: only http:// and https:// URLs with a host can be fetched")
    return url.strip()


def is_public_host(host: str) -> bool:
    """True when every address ``host`` resolves to is a public (globally routable) one."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise FetchError(f"{host}: the name does not resolve ({exc.strerror})") from None
    return all(ipaddress.ip_address(info[4][0].split("%", 1)[0]).is_global for info in infos)


class Fetcher:
    """Fetches URLs with the limits above. ``allow_private`` lets it reach loopback and private
    addresses (tests, an intranet news archive); off by default."""

    def __init__(self, allow_private: bool | None = None, max_bytes: int = MAX_FETCH_BYTES, timeout: float = TIMEOUT_S,
                 max_redirects: int = MAX_REDIRECTS):
        if allow_private is None:
            allow_private = os.environ.get("ARTICLEQA_FETCH_ALLOW_PRIVATE", "") in ("1", "true", "yes")
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects

    def _guard(self, request) -> None:
        host = request.url.host
        if not self.allow_private and not is_public_host(host):
            raise FetchError(f"{request.url}: {host} is a private or loopback address; not fetched "
                             "(set ARTICLEQA_FETCH_ALLOW_PRIVATE=1 to allow)")

    def get(self, url: str, accept: set[str] | dict) -> Fetched:
        """GET ``url``; ``FetchError`` on a bad status, a type not in ``accept``, a body over the limit,
        a timeout, a redirect loop or a private address."""
        import httpx

        url = check_url(url)
        try:
            with httpx.Client(follow_redirects=True, max_redirects=self.max_redirects, timeout=self.timeout,
                              headers={"User-Agent": USER_AGENT}, event_hooks={"request": [self._guard]}) as client:
                with client.stream("GET", url) as r:
                    if r.status_code >= 400:
                        raise FetchError(f"{url}: the server answered {r.status_code} {r.reason_phrase}")
                    ctype = r.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                    if ctype not in accept:
                        raise FetchError(f"{url}: content type {ctype or '(none)'} is not {' or '.join(sorted(accept))}")
                    declared = r.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > self.max_bytes:
                        raise FetchError(f"{url}: {int(declared):,} bytes is over the {self.max_bytes:,}-byte limit")
                    body = bytearray()
                    for chunk in r.iter_bytes():
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise FetchError(f"{url}: the body is over the {self.max_bytes:,}-byte limit")
                    return Fetched(url, str(r.url), ctype, bytes(body))
        except FetchError:
            raise
        except httpx.TooManyRedirects:
            raise FetchError(f"{url}: more than {self.max_redirects} redirects (a redirect loop?)") from None
        except httpx.TimeoutException:
            raise FetchError(f"{url}: no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{url}: {exc.__class__.__name__}: {exc}") from None


def saved_name(url: str, suffix: str) -> str:
    """``web/<host>/<slug>-<hash>.<suffix>``: stable for a URL, so a URL (or a feed entry) already
    saved is known by its file."""
    parts = urlsplit(url)
    host = re.sub(r"[^\w.-]+", "_", (parts.hostname or "host").lower())[:80]
    tail = [p for p in parts.path.split("/") if p]
    slug = re.sub(r"\.(html?|php|aspx?|pdf)$", "", tail[-1] if tail else "index", flags=re.I)
    slug = re.sub(r"[^\w-]+", "-", slug).strip("-")[:60] or "index"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:8]
    return f"{WEB_FOLDER}/{host}/{slug}-{digest}{suffix}"


def mark_saved_from(html: bytes, url: str) -> bytes:
    """The page with a ``saved from url`` comment first (as browsers save pages)."""
    return f"<!-- saved from url=({len(url):04d}){url} -->\n".encode("utf-8") + html


def already_saved(url: str, articles_dir: Path) -> str | None:
    """The file ``url`` was saved to (as a page or a PDF), or None."""
    for suffix in (".html", ".pdf"):
        name = saved_name(check_url(url), suffix)
        if (Path(articles_dir) / name).exists():
            return name
    return None


def save_url(fetcher: Fetcher, url: str, articles_dir: Path, overwrite: bool = False) -> str:
    """Fetch ``url`` and save it into ``articles_dir``; returns the saved file's path relative to it
    (without fetching when it is there already, unless ``overwrite``). Raises ``FetchError`` (naming
    the URL) and then leaves the folder as it was."""
    known = None if overwrite else already_saved(url, articles_dir)
    if known:
        return known
    page = fetcher.get(url, PAGE_TYPES)
    suffix = PAGE_TYPES[page.content_type]
    data = mark_saved_from(page.content, page.final_url) if suffix == ".html" else page.content
    name = saved_name(url, suffix)
    try:
        parse_article(name, data, suffix)  # only what indexes is saved
    except IngestError as exc:
        raise FetchError(f"{url}: {exc}") from None
    write_atomically(Path(articles_dir), name, data)
    return name


def write_atomically(articles_dir: Path, name: str, data: bytes) -> None:
    """Write ``articles_dir/name`` through a hidden temporary file and a rename (never half a file);
    the folders on the way must stay inside ``articles_dir``."""
    root = articles_dir.resolve()
    target = Path(os.path.normpath(root / name))
    if root not in target.parents:  # checked before any folder is made
        raise FetchError(f"{name}: would be written outside the articles folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    if root not in target.parent.resolve().parents and target.parent.resolve() != root:  # a link on the way
        raise FetchError(f"{name}: would be written outside the articles folder")
    tmp = target.with_name(f".fetch-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def feed_links(fetcher: Fetcher, url: str) -> list[str]:
    """The entry links of an RSS/Atom feed, in feed order (relative links made absolute)."""
    import feedparser

    got = fetcher.get(url, FEED_TYPES | set(PAGE_TYPES) - {"application/pdf"})
    parsed = feedparser.parse(got.content)
    if not parsed.get("version") and not parsed.entries:
        reason = f" ({parsed.bozo_exception.__class__.__name__})" if parsed.get("bozo") else ""
        raise FetchError(f"{url}: not an RSS or Atom feed{reason}")
    links = []
    for entry in parsed.entries:
        link = entry.get("link") or next((x.get("href") for x in entry.get("links", []) if x.get("href")), None)
        if link:
            links.append(urljoin(got.final_url, link))
    return list(dict.fromkeys(links))


def follow_feed(fetcher: Fetcher, url: str, articles_dir: Path) -> FeedReport:
    """Save the entries of the feed at ``url`` that are not in ``articles_dir`` yet. A feed that cannot
    be read raises ``FetchError``; an entry that cannot be saved is reported in ``errors``."""
    report = FeedReport(feed=url)
    links = feed_links(fetcher, url)
    report.entries = len(links)
    for link in links:
        try:
            if already_saved(link, articles_dir):
                report.known += 1
            else:
                report.saved.append(save_url(fetcher, link, articles_dir))
        except FetchError as exc:
            report.errors.append({"url": str(link), "error": str(exc)})
    return report
