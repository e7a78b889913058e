"""Articles in any encoding, bounded feeds, pinned addresses, PDFs that keep their URL.

A real HTTP server on 127.0.0.1 serves news pages the way real sites do (Latin-1 and Windows-1252 with the
charset in the header only, in a ``<meta>`` only, or nowhere; Shift_JIS; a page whose header says UTF-8
over Latin-1 bytes), feeds (one declaring XML entities, one of 10,000 entries, one out of date order) and
a PDF. Pages are fetched into a folder beside Windows-1252 ``.txt`` and ``.html`` files, indexed with the
real models, and each case is asked its question: the answer is checked, and every citation's quote equals
the article's decoded text at its span, as ``verify`` re-reads it.
"""

from __future__ import annotations

import http.server
import logging
import shutil
import socket
import threading
import time

import pytest
from conftest import READER, ROOT

from articleqa.encoding import decode_article
from articleqa.fetch import Fetcher, FetchError, follow_feed, save_url
from articleqa.ingest import SOURCE_SUFFIX, ArticleLoader, IngestError, parse_article
from articleqa.testing_pages import news_page, news_pdf
from articleqa.verify import verify_citations

# (question, expected answer, paragraphs): distinct stories, names with the letters each encoding carries
STORIES = {
    "latin1-header": (
        "Who is the mayor of Orléans?",
        "Jérôme Lefèvre",
        [
            "The mayor of Orléans, Jérôme Lefèvre, announced on Monday that the city's second tramway line will open in "
            "September 2027, two years later than first planned.",
            "The line will run for eleven kilometres between the station and the university campus at La Source, and it "
            "will cost 240 million euros, the council said.",
        ],
    ),
    "cp1252-meta": (
        "Which bakery won the national baguette prize?",
        "Le Fournil",
        [
            "The bakery “Le Fournil” in Besançon won the national baguette prize on Thursday — the first time a "
            "bakery from the Doubs has taken the award.",
            "Its baker, Amélie Roussel, said she would now supply the presidential palace for a year, as every winner "
            "has done since 1994.",
        ],
    ),
    "latin1-none": (
        "How many visitors did the exhibition of Dürer prints draw?",
        "85,000",
        [
            "The exhibition of Dürer prints at the Kunsthaus in Zürich drew 85,000 visitors in its eight weeks, the "
            "museum's director, Björn Müller, said on Sunday.",
            "It closes on 12 March; the prints return to lenders in Nürnberg and Wien afterwards.",
        ],
    ),
    "shift-jis": (
        "How many tourists visited the Golden Pavilion last year?",
        "5.2 million",
        [
            "The Golden Pavilion (金閣寺, Kinkaku-ji) in Kyoto was visited by 5.2 million tourists last year, the city's "
            "tourism office said on Friday.",
            "The temple will close its garden paths for repairs from June, the office added (京都市観光協会).",
        ],
    ),
    "mislabelled": (
        "Which coach did the São Paulo club hire?",
        "Luís Araújo",
        [
            "The São Paulo football club hired the coach Luís Araújo in March, after a season in which the team "
            "finished eleventh.",
            "Araújo, who led Grêmio to the cup final in 2024, signed a contract for two seasons.",
        ],
    ),
    "folder-txt": (
        "Who was elected president of the Andalusian wine council?",
        "Begoña Núñez",
        [
            "Begoña Núñez was elected president of the Andalusian wine council on Tuesday, with 31 of the 40 votes.",
            "She promised “more exports, fewer rules” — and a new label for the sherry of Jerez.",
        ],
    ),
    "folder-html": (
        "How many tonnes of chocolate did the factory in Köln produce?",
        "12,000",
        [
            "The chocolate factory in Köln produced 12,000 tonnes last year, its owner, Jürgen Weiß, said — a record.",
            "The factory’s museum drew 650,000 visitors, most of them from outside Nordrhein-Westfalen.",
        ],
    ),
}
PDF_STORY = (
    "How many dockworkers went on strike in Rotterdam?",
    "1,200",
    [
        "The port of Rotterdam reopened on 4 May after a two-week strike by 1,200 dockworkers over pay and shift rules.",
        "The port authority said the backlog of 300 container ships would take ten days to clear.",
    ],
)


def page(key: str, meta: str | None) -> str:
    """A news page of ``STORIES[key]`` with ``<meta charset=meta>`` (no charset declaration when None)."""
    question, answer, paragraphs = STORIES[key]
    html = news_page(f"Story {key}", paragraphs, url=f"https://news.example.org/{key}")
    return html.replace('<meta charset="utf-8">', f'<meta charset="{meta}">' if meta else "")


def page_bytes(key: str, meta: str | None, encoding: str) -> bytes:
    return page(key, meta).encode(encoding, errors="xmlcharrefreplace")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>&lol3;</title><item><title>x</title><link>/latin1-header.html</link></item></channel></rss>"""


def huge_feed(n: int) -> bytes:
    items = "".join(f"<item><title>Entry {i}</title><link>/gone/{i}.html</link></item>" for i in range(n))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Huge</title>{items}</channel></rss>'.encode()


DATED_FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Dated</title>
<item><title>Old</title><link>/latin1-header.html</link><pubDate>Mon, 05 Jan 2026 08:00:00 GMT</pubDate></item>
<item><title>Newest</title><link>/cp1252-meta.html</link><pubDate>Wed, 07 Jan 2026 08:00:00 GMT</pubDate></item>
<item><title>Middle</title><link>/shift-jis.html</link><pubDate>Tue, 06 Jan 2026 08:00:00 GMT</pubDate></item>
</channel></rss>"""


class Site(http.server.BaseHTTPRequestHandler):
    pages: dict[str, tuple[str, bytes, dict]] = {}
    seen_hosts: list[str] = []
    redirects: dict[str, str] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        Site.seen_hosts.append(self.headers.get("Host", ""))
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        if self.path not in self.pages:
            self.send_error(404, "Not Found")
            return
        ctype, body, extra = self.pages[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    Site.pages = {
        "/latin1-header.html": ("text/html; charset=iso-8859-1", page_bytes("latin1-header", None, "latin-1"), {}),
        "/cp1252-meta.html": ("text/html", page_bytes("cp1252-meta", "windows-1252", "cp1252"), {}),
        "/latin1-none.html": ("text/html", page_bytes("latin1-none", None, "latin-1"), {}),
        "/shift-jis.html": ("text/html; charset=Shift_JIS", page_bytes("shift-jis", None, "shift_jis"), {}),
        "/mislabelled.html": ("text/html; charset=utf-8", page_bytes("mislabelled", "utf-8", "latin-1"), {}),
        "/release.pdf": (
            "application/pdf",
            news_pdf("Rotterdam port reopens", PDF_STORY[2]),
            {"Last-Modified": "Tue, 05 May 2026 10:00:00 GMT"},
        ),
        "/entities.xml": ("application/rss+xml", BILLION_LAUGHS, {}),
        "/huge.xml": ("application/rss+xml", huge_feed(10_000), {}),
        "/dated.xml": ("application/rss+xml", DATED_FEED, {}),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


FETCHED = ["latin1-header", "cp1252-meta", "latin1-none", "shift-jis", "mislabelled"]


@pytest.fixture(scope="module")
def corpus(site, tmp_path_factory, embedder, reader):
    """The fetched pages, the fetched PDF and two Windows-1252 files of the folder, indexed."""
    from articleqa.chunking import SentenceChunker
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    folder = tmp_path_factory.mktemp("encodings") / "articles"
    folder.mkdir()
    fetcher = Fetcher(allow_private=True)
    files = {key: save_url(fetcher, f"{site}/{key}.html", folder) for key in FETCHED}
    files["pdf"] = save_url(fetcher, site + "/release.pdf", folder)
    q, a, paragraphs = STORIES["folder-txt"]
    (folder / "andalusia.txt").write_bytes(
        ("Wine council elects president\n\n" + "\n\n".join(paragraphs) + "\n").encode("cp1252")
    )
    (folder / "koeln.html").write_bytes(page_bytes("folder-html", None, "cp1252"))
    files["folder-txt"], files["folder-html"] = "andalusia.txt", "koeln.html"
    settings = Settings(articles_dir=folder, index_dir=folder.parent / "index", reader_model=str(READER))
    pipeline = QAPipeline(
        settings, embedder, SentenceChunker(settings.chunk_words, settings.chunk_overlap_words), reader
    )
    pipeline.build_index()
    return pipeline, folder, files


def decoded_texts(folder) -> dict[str, str]:
    """text_of(file): the folder read again from disk, as ingest and verify read it."""
    articles, skipped = ArticleLoader().load(folder)
    assert not skipped, skipped
    return {a.file: a.text for a in articles}


@pytest.mark.parametrize("key", [*STORIES, "pdf"])
def test_each_encoding_is_answered_with_exact_citations(corpus, key, site):
    pipeline, folder, files = corpus
    question, expected, _ = PDF_STORY if key == "pdf" else STORIES[key]
    answer = pipeline.ask(question)
    assert answer.found and expected in answer.answer, (key, answer.answer)
    texts = decoded_texts(folder)
    assert answer.citations and answer.citations[0].file == files[key]
    for c in answer.citations:
        assert texts[c.file][c.start : c.end] == c.quote
    assert all(check.status == "valid" for check in verify_citations(answer.citations, pipeline.indexes.get().articles))
    if key == "pdf":
        assert answer.citations[0].url == site + "/release.pdf" and answer.citations[0].date
    if key in FETCHED:  # saved as UTF-8, declaring it, and reading back as the page that was fetched
        raw = (folder / files[key]).read_bytes()
        assert raw.decode("utf-8") and b'charset="windows-1252"' not in raw
        fetched = Site.pages[f"/{key}.html"][1]
        original = parse_article(
            "x.html", fetched, ".html", declared=Site.pages[f"/{key}.html"][0].partition("charset=")[2] or None
        )
        assert texts[files[key]] == original.text


def test_the_encoding_chosen_and_its_warning(caplog):
    text = "Renée Dupont opened the café “Le Procès” — on Rue de la Paix.\n" * 3
    with caplog.at_level(logging.WARNING, logger="articleqa.encoding"):
        assert decode_article(text.encode("cp1252"), "a.txt").encoding == "cp1252"
    assert "a.txt: no declared encoding and not UTF-8; read as cp1252 (detected)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="articleqa.encoding"):
        d = decode_article(text.encode("cp1252"), "b.html", declared="utf-8")
    assert (
        d.how == "detected" and d.text == text and "b.html: declared utf-8, but the bytes are not utf-8" in caplog.text
    )
    # declared charsets as browsers read them; a BOM wins over a declaration
    assert decode_article("café".encode("cp1252"), "c.html", declared="ISO-8859-1").encoding == "cp1252"
    assert decode_article(
        b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">' + "Москва".encode("koi8-r"),
        "d.html",
        markup=True,
    ).text.endswith("Москва")
    assert decode_article(b"\xef\xbb\xbf" + "caf\u00e9".encode(), "e.txt", declared="latin-1").text == "café"
    assert decode_article("Grüße".encode("utf-16"), "f.txt").text == "Grüße"
    assert decode_article("plain".encode(), "g.txt").how == "utf-8"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"text with a NUL\x00 in it", "binary file"),
        (bytes(range(128, 256)) * 40 + b"\x81\x8d\x8f", "not text"),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08 abc" * 50, "binary file"),
    ],
)
def test_binary_and_undecodable_files_are_still_skipped(raw, reason):
    with pytest.raises(IngestError, match=reason):
        parse_article("x.txt", raw, ".txt")


def test_an_entity_feed_is_refused_with_an_error_and_nothing_saved(site, tmp_path):
    with pytest.raises(FetchError, match="feed refused: it declares XML entities"):
        follow_feed(Fetcher(allow_private=True), site + "/entities.xml", tmp_path)
    assert not list(tmp_path.rglob("*"))


def test_the_cli_and_the_server_refuse_an_entity_feed(site, tmp_path, monkeypatch, embedder, reader):
    from test_fetch import run_cli

    from articleqa.serve.service import AdminError

    articles = tmp_path / "articles"
    articles.mkdir()
    shutil.copy(ROOT / "seeds" / "000_a9d1c48ba2d92731.txt", articles)
    r = run_cli(
        "feed",
        site + "/entities.xml",
        "--articles",
        str(articles),
        "--index-dir",
        str(tmp_path / "index"),
        env={"ARTICLEQA_FETCH_ALLOW_PRIVATE": "1"},
    )
    assert r.returncode == 2 and "feed refused: it declares XML entities" in r.stderr, r.stdout + r.stderr
    service = feed_service(tmp_path, monkeypatch, embedder, reader)
    with pytest.raises(AdminError, match="feed refused: it declares XML entities"):
        service.follow_feed(site + "/entities.xml", rebuild=False)
    assert service.last_feed["error"].endswith("feed refused: it declares XML entities")


def feed_service(tmp_path, monkeypatch, embedder, reader, **settings):
    """The ArticleService that `serve --feed` and POST /api/feed run feeds through."""
    from articleqa.chunking import SentenceChunker
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline
    from articleqa.serve.service import ArticleService

    monkeypatch.setenv("ARTICLEQA_FETCH_ALLOW_PRIVATE", "1")
    folder = tmp_path / "served"
    folder.mkdir()
    s = Settings(articles_dir=folder, index_dir=tmp_path / "served-index", reader_model=str(READER), **settings)
    return ArticleService(QAPipeline(s, embedder, SentenceChunker(s.chunk_words, s.chunk_overlap_words), reader))


def test_a_huge_feed_costs_little_and_reports_what_it_left(site, tmp_path):
    started = time.monotonic()
    report = follow_feed(Fetcher(allow_private=True), site + "/huge.xml", tmp_path, max_new=200)
    elapsed = time.monotonic() - started
    assert report.entries == 10_000 and len(report.errors) == 200 and report.left == 9_800 and not report.saved
    assert elapsed < 60, f"a 10,000-entry feed took {elapsed:.0f} s"
    assert [e["url"] for e in report.errors[:2]] == [site + "/gone/0.html", site + "/gone/1.html"]
    with pytest.raises(FetchError, match="over the 100,000-byte limit"):  # refused before it is parsed
        follow_feed(Fetcher(allow_private=True), site + "/huge.xml", tmp_path, max_bytes=100_000)


def test_the_cap_takes_the_newest_entries_first_and_the_rest_next_run(site, tmp_path, monkeypatch, embedder, reader):
    service = feed_service(tmp_path, monkeypatch, embedder, reader, feed_max_new=1)
    first = service.follow_feed(site + "/dated.xml", rebuild=False)
    assert (
        first["entries"] == 3 and len(first["saved"]) == 1 and "cp1252-meta" in first["saved"][0] and first["left"] == 2
    )
    second = service.follow_feed(site + "/dated.xml", rebuild=False)
    assert "shift-jis" in second["saved"][0] and second["known"] == 1 and second["left"] == 1
    third = service.follow_feed(site + "/dated.xml", rebuild=False)
    assert "latin1-header" in third["saved"][0] and third["known"] == 2 and third["left"] == 0


def test_a_fetched_pdf_keeps_its_url_title_and_date(site, tmp_path):
    name = save_url(Fetcher(allow_private=True), site + "/release.pdf", tmp_path, title="Rotterdam port reopens")
    assert (tmp_path / (name + SOURCE_SUFFIX)).is_file()
    [article], skipped = ArticleLoader().load(tmp_path)  # the source record itself is never an article
    assert not skipped and article.url == site + "/release.pdf" and article.kind == "pdf"
    assert article.date and article.title == "Rotterdam port reopens"  # the PDF's own date first, else Last-Modified


def test_the_address_checked_is_the_address_connected_to(site, monkeypatch):
    """One lookup per hop: a name that answers a public address to the check and loopback afterwards
    (DNS rebinding) is connected to at the public address, never at loopback."""
    port = int(site.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"] + ["127.0.0.1"] * 10)
    lookups = []

    def rebinding(host, *args, **kwargs):
        if host == "news.rebind.test":
            lookups.append(host)
            ip = next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    Site.seen_hosts.clear()
    with pytest.raises(FetchError):
        Fetcher(allow_private=False, timeout=2).get(f"http://news.rebind.test:{port}/latin1-header.html", {"text/html"})
    assert lookups == ["news.rebind.test"] and Site.seen_hosts == []  # loopback never reached
    # a name that resolves to loopback from the start is refused before any connection
    answers = iter(["127.0.0.1"] * 10)
    with pytest.raises(FetchError, match="private or loopback"):
        Fetcher(allow_private=False).get(f"http://news.rebind.test:{port}/latin1-header.html", {"text/html"})
    assert Site.seen_hosts == []
    # allowed, the request goes to the checked address with the name as its Host
    fetched = Fetcher(allow_private=True).get(f"http://news.rebind.test:{port}/latin1-header.html", {"text/html"})
    assert fetched.final_url == f"http://news.rebind.test:{port}/latin1-header.html" and fetched.charset == "iso-8859-1"
    assert Site.seen_hosts == [f"news.rebind.test:{port}"]


def test_a_redirect_is_resolved_and_checked_at_every_hop(site, monkeypatch):
    """httpx's own redirect following is off: each Location is looked up once, checked, and connected to
    at that address with its own name as the Host."""
    port = int(site.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    lookups = []

    def resolver(host, *args, **kwargs):
        if host.endswith(".rebind.test"):
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    Site.pages["/moved"] = ("text/html", b"", {})
    Site.redirects = {"/moved": f"http://other.rebind.test:{port}/latin1-header.html"}
    Site.seen_hosts.clear()
    fetched = Fetcher(allow_private=True).get(site + "/moved", {"text/html"})
    assert fetched.final_url == f"http://other.rebind.test:{port}/latin1-header.html"
    assert lookups == ["other.rebind.test"] and Site.seen_hosts == [f"127.0.0.1:{port}", f"other.rebind.test:{port}"]
    with pytest.raises(FetchError, match="private or loopback"):  # the second hop's address is checked too
        Fetcher(allow_private=False).pinned(f"http://other.rebind.test:{port}/latin1-header.html")


def test_an_upload_in_windows_1252_is_stored_as_sent_and_read_the_same_way(tmp_path):
    from articleqa.serve.service import save_upload

    q, a, paragraphs = STORIES["folder-txt"]
    raw = ("Wine council elects president\n\n" + "\n\n".join(paragraphs)).encode("cp1252")
    name = save_upload(tmp_path, "andalusia.txt", raw, max_bytes=100_000)
    assert (tmp_path / name).read_bytes() == raw
    [article], _ = ArticleLoader().load(tmp_path)
    assert "Begoña Núñez" in article.text and article.text == raw.decode("cp1252")
