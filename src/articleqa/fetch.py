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
import json
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from articleqa.encoding import as_utf8_page
from articleqa.ingest import SOURCE_SUFFIX, IngestError, parse_article, text_of_bytes

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_FETCH_BYTES = 5_000_000
TIMEOUT_S = 15.0
USER_AGENT = "articleqa/1 (+https://github.com/articleqa)"
PAGE_TYPES = {"text/html": ".html", "application/xhtml+xml": ".html", "application/pdf": ".pdf"}
FEED_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/xml",
    "text/xml",
    "application/rdf+xml",
    "application/feed+json",
    "text/plain",
}
#: a feed is refused over this many bytes, before it is parsed (real feeds are tens to hundreds of KB)
MAX_FEED_BYTES = 2_000_000
#: new entries fetched from one feed per run, newest first (real feeds hold 10-100 entries)
MAX_FEED_NEW = 200
WEB_FOLDER = "web"  # fetched articles go to <articles>/web/<host>/


class FetchError(ValueError):
    """A URL could not be fetched or saved as an article; the message names the URL and why."""


@dataclass
class Fetched:
    url: str  # the URL asked for
    final_url: str  # after redirects
    content_type: str
    content: bytes
    charset: str | None = None  # declared in the Content-Type header
    last_modified: str | None = None  # the Last-Modified header


@dataclass
class FeedReport:
    feed: str
    entries: int = 0
    saved: list[str] = field(default_factory=list)
    known: int = 0  # entries already in the folder
    left: int = 0  # new entries over the per-run cap, left for the next run
    errors: list[dict] = field(default_factory=list)


def check_url(url: str) -> str:
    """The URL, or ``FetchError`` unless it is an absolute http(s) URL with a host."""
    if not isinstance(url, str) or len(url) > 2000:
        raise FetchError(f"{str(url)[:100]!r}: not a URL (at most 2000 characters)")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url}: only http:// and https:// URLs with a host can be fetched")
    return url.strip()


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the name looked up once)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"{host}: the name does not resolve ({exc.strerror})") from None
    return list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))


def is_public_host(host: str) -> bool:
    """True when every address ``host`` resolves to is a public (globally routable) one."""
    return all(ipaddress.ip_address(a).is_global for a in resolve(host, 80))


REDIRECTS = {301, 302, 303, 307, 308}


class Fetcher:
    """Fetches URLs with the limits above. ``allow_private`` lets it reach loopback and private
    addresses (tests, an intranet news archive); off by default.

    Each hop's host name is resolved once: the address that passed the private/loopback check is the one
    connected to (the request goes to that IP, with the name as its ``Host`` header and TLS server name),
    so a name that resolves to another address a moment later (DNS rebinding) cannot slip through.
    Redirects are followed here, hop by hop, under the same check."""

    def __init__(
        self,
        allow_private: bool | None = None,
        max_bytes: int = MAX_FETCH_BYTES,
        timeout: float = TIMEOUT_S,
        max_redirects: int = MAX_REDIRECTS,
    ):
        if allow_private is None:
            allow_private = os.environ.get("ARTICLEQA_FETCH_ALLOW_PRIVATE", "") in ("1", "true", "yes")
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects

    def pinned(self, url: str):
        """``(request URL with the host replaced by its checked address, Host header, SNI name)``."""
        import httpx

        u = httpx.URL(url)
        host = u.host
        port = u.port or (443 if u.scheme == "https" else 80)
        addresses = resolve(host, port)
        if not self.allow_private:
            private = [a for a in addresses if not ipaddress.ip_address(a).is_global]
            if private:
                raise FetchError(
                    f"{url}: {host} is a private or loopback address ({private[0]}); not fetched "
                    "(set ARTICLEQA_FETCH_ALLOW_PRIVATE=1 to allow)"
                )
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
        host_header = name if u.port is None else f"{name}:{u.port}"
        return u.copy_with(host=addresses[0]), host_header, host

    def get(self, url: str, accept: set[str] | dict, max_bytes: int | None = None) -> Fetched:
        """GET ``url``; ``FetchError`` on a bad status, a type not in ``accept``, a body over the limit
        (``max_bytes``, default the fetcher's), a timeout, too many redirects or a private address."""
        import httpx

        url = check_url(url)
        limit = max_bytes or self.max_bytes
        try:
            with httpx.Client(
                follow_redirects=False, timeout=self.timeout, headers={"User-Agent": USER_AGENT}
            ) as client:
                current = url
                for _hop in range(self.max_redirects + 1):
                    target, host_header, sni = self.pinned(current)
                    request = client.build_request(
                        "GET", target, headers={"Host": host_header}, extensions={"sni_hostname": sni}
                    )
                    r = client.send(request, stream=True)
                    try:
                        if r.status_code in REDIRECTS and r.headers.get("location"):
                            current = check_url(urljoin(current, r.headers["location"]))
                            continue
                        return self._read(url, current, r, accept, limit)
                    finally:
                        r.close()
                raise FetchError(f"{url}: more than {self.max_redirects} redirects (a redirect loop?)")
        except FetchError:
            raise
        except httpx.TimeoutException:
            raise FetchError(f"{url}: no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{url}: {exc.__class__.__name__}: {exc}") from None

    @staticmethod
    def _read(url: str, final_url: str, r, accept, limit: int) -> Fetched:
        if r.status_code >= 400:
            raise FetchError(f"{url}: the server answered {r.status_code} {r.reason_phrase}")
        ctype = r.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in accept:
            raise FetchError(f"{url}: content type {ctype or '(none)'} is not {' or '.join(sorted(accept))}")
        declared = r.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{url}: {int(declared):,} bytes is over the {limit:,}-byte limit")
        body = bytearray()
        for chunk in r.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise FetchError(f"{url}: the body is over the {limit:,}-byte limit")
        return Fetched(
            url, final_url, ctype, bytes(body), charset=r.charset_encoding, last_modified=r.headers.get("last-modified")
        )


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


def save_url(fetcher: Fetcher, url: str, articles_dir: Path, overwrite: bool = False, title: str | None = None) -> str:
    """Fetch ``url`` and save it into ``articles_dir``; returns the saved file's path relative to it
    (without fetching when it is there already, unless ``overwrite``). Raises ``FetchError`` (naming
    the URL) and then leaves the folder as it was.

    A page is saved as UTF-8 (decoded by ``articleqa.encoding``'s rule, the header's charset first, and
    its ``<meta>`` charset rewritten to utf-8), so it reads back as the same text. A PDF is saved as
    sent, with a source record beside it (``<name>.source.json``: its URL, ``title`` (a feed entry's)
    and the Last-Modified date) so its citations carry where it came from."""
    known = None if overwrite else already_saved(url, articles_dir)
    if known:
        return known
    page = fetcher.get(url, PAGE_TYPES)
    suffix = PAGE_TYPES[page.content_type]
    name = saved_name(url, suffix)
    source = None
    if suffix == ".html":
        try:
            text = text_of_bytes(name, page.content, suffix, declared=page.charset)
        except IngestError as exc:
            raise FetchError(f"{url}: {exc}") from None
        data = mark_saved_from(as_utf8_page(text), page.final_url)
    else:
        data = page.content
        source = {"url": page.final_url, "title": title, "date": _http_date(page.last_modified)}
    try:
        parse_article(name, data, suffix, source=source)  # only what indexes is saved
    except IngestError as exc:
        raise FetchError(f"{url}: {exc}") from None
    if source is not None:  # first, so the PDF is never indexed without it
        write_atomically(
            Path(articles_dir),
            name + SOURCE_SUFFIX,
            json.dumps({k: v for k, v in source.items() if v}, indent=1).encode("utf-8"),
        )
    write_atomically(Path(articles_dir), name, data)
    return name


def _http_date(value: str | None) -> str | None:
    """An HTTP date (``Last-Modified``) as YYYY-MM-DD, or None."""
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).date().isoformat() if value else None
    except (TypeError, ValueError):
        return None


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


@dataclass
class FeedEntry:
    link: str
    title: str | None = None
    published: tuple | None = None  # time.struct_time-like, for newest-first order


def refuse_xml_declarations(url: str, content: bytes) -> None:
    """``FetchError`` when an XML document declares entities (the "billion laughs" shape) or external
    references (defusedxml); a document that is not well-formed XML is left to feedparser's lenient parser."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as safe_xml
    from defusedxml import DefusedXmlException

    if not content.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return  # a JSON feed
    try:
        safe_xml.fromstring(content, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        kind = "external references" if "External" in exc.__class__.__name__ else "XML entities"
        raise FetchError(f"{url}: feed refused: it declares {kind}") from None
    except ParseError:
        pass


def feed_entries(fetcher: Fetcher, url: str, max_bytes: int = MAX_FEED_BYTES) -> list[FeedEntry]:
    """The entries of an RSS/Atom feed, newest first where they are dated (else in feed order), relative
    links made absolute, each link once. A feed over ``max_bytes`` is refused before it is parsed, one
    that declares XML entities too."""
    import feedparser

    got = fetcher.get(url, FEED_TYPES | set(PAGE_TYPES) - {"application/pdf"}, max_bytes=max_bytes)
    refuse_xml_declarations(url, got.content)
    parsed = feedparser.parse(got.content)
    if not parsed.get("version") and not parsed.entries:
        reason = f" ({parsed.bozo_exception.__class__.__name__})" if parsed.get("bozo") else ""
        raise FetchError(f"{url}: not an RSS or Atom feed{reason}")
    entries: dict[str, FeedEntry] = {}
    for entry in parsed.entries:
        link = entry.get("link") or next((x.get("href") for x in entry.get("links", []) if x.get("href")), None)
        if link:
            link = urljoin(got.final_url, link)
            published = entry.get("published_parsed") or entry.get("updated_parsed")
            entries.setdefault(
                link, FeedEntry(link, entry.get("title") or None, tuple(published) if published else None)
            )
    # newest first; undated entries keep their feed order, after the dated ones (sorted() is stable)
    return sorted(entries.values(), key=lambda e: (e.published is None, tuple(-x for x in e.published or ())[:6]))


def feed_links(fetcher: Fetcher, url: str) -> list[str]:
    """The entry links of an RSS/Atom feed, newest first (see ``feed_entries``)."""
    return [e.link for e in feed_entries(fetcher, url)]


def follow_feed(
    fetcher: Fetcher, url: str, articles_dir: Path, max_new: int = MAX_FEED_NEW, max_bytes: int = MAX_FEED_BYTES
) -> FeedReport:
    """Save the entries of the feed at ``url`` that are not in ``articles_dir`` yet, newest first, at most
    ``max_new`` of them in this run (the rest are counted in ``left`` for the next run). A feed that cannot
    be read or is refused raises ``FetchError``; an entry that cannot be saved is reported in ``errors``."""
    report = FeedReport(feed=url)
    entries = feed_entries(fetcher, url, max_bytes=max_bytes)
    report.entries = len(entries)
    tried = 0
    for entry in entries:
        try:
            if already_saved(entry.link, articles_dir):
                report.known += 1
                continue
        except FetchError as exc:
            report.errors.append({"url": str(entry.link), "error": str(exc)})
            continue
        if tried >= max_new:
            report.left += 1
            continue
        tried += 1
        try:
            report.saved.append(save_url(fetcher, entry.link, articles_dir, title=entry.title))
        except FetchError as exc:
            report.errors.append({"url": str(entry.link), "error": str(exc)})
    if report.left:
        log.warning(
            "%s: %d new entries left for the next run (at most %d are fetched per run, ARTICLEQA_FEED_MAX_NEW)",
            url,
            report.left,
            max_new,
        )
    return report
