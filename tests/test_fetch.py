"""Articles from the web: `articleqa add URL`, `articleqa feed URL`, `serve --feed`, and the
admin API, against a real HTTP server on 127.0.0.1 serving news pages, a PDF and an RSS feed. Every bad
input gets an error naming the URL and leaves nothing in the articles folder."""

from __future__ import annotations

import html
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import READER, ROOT, SEEDS, ServerProcess

from articleqa.fetch import Fetcher, FetchError, follow_feed, save_url, saved_name
from articleqa.ingest import ArticleLoader
from articleqa.testing_pages import news_page, news_pdf


def paragraphs(name: str) -> list[str]:
    return [p.strip() for p in (SEEDS / name).read_text(encoding="utf-8").split("\n\n") if p.strip()]


class NewsSite(http.server.BaseHTTPRequestHandler):
    """A news site: two stories (no canonical link: the fetched URL is their address), a PDF, a feed,
    and the ways a fetch goes wrong."""

    pages: dict[str, tuple[str, bytes]] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
            return
        if path == "/slow":
            time.sleep(3)
        if path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(50_000_000))
            self.end_headers()
            return
        if path not in self.pages:
            self.send_error(404, "Not Found")
            return
        ctype, body = self.pages[path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _page(headline: str, name: str) -> bytes:
    html = news_page(headline, paragraphs(name))
    return (
        html.replace('<link rel="canonical" href="https://news.example.org/world/2026/01/03/story">', "")
        .replace('"url": "https://news.example.org/world/2026/01/03/story"', '"x": 1')
        .encode("utf-8")
    )


@pytest.fixture(scope="module")
def site():
    rss = """<?xml version="1.0"?><rss version="2.0"><channel><title>Daily Planet World</title>
<item><title>Explosions heard in Caracas</title><link>/world/caracas-explosions.html</link></item>
<item><title>US tells citizens to leave</title><link>/world/leave-venezuela.html</link></item>
</channel></rss>"""
    NewsSite.pages = {
        "/world/caracas-explosions.html": (
            "text/html; charset=utf-8",
            _page("Explosions heard in Caracas", "001_a6813ebf46bda63b.txt"),
        ),
        "/world/leave-venezuela.html": (
            "text/html; charset=utf-8",
            _page("US tells citizens to leave Venezuela", "002_2dd9416afd3ce74f.txt"),
        ),
        "/release.pdf": ("application/pdf", news_pdf("Maduro captured", paragraphs("000_a9d1c48ba2d92731.txt"))),
        "/feed.xml": ("application/rss+xml", rss.encode()),
        "/notfeed": ("text/html", b"<html><body><p>Just a page.</p></body></html>"),
        "/image.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        "/empty.html": ("text/html", b"<html><body></body></html>"),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NewsSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def files_in(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_private_and_loopback_targets_are_refused_unless_allowed(site, tmp_path):
    with pytest.raises(FetchError, match="private or loopback.*ARTICLEQA_FETCH_ALLOW_PRIVATE"):
        save_url(Fetcher(allow_private=False), site + "/world/caracas-explosions.html", tmp_path)
    with pytest.raises(FetchError, match="private or loopback"):
        Fetcher(allow_private=False).get("http://[::1]:9/x", {"text/html"})
    assert files_in(tmp_path) == set()


@pytest.mark.parametrize(
    "path, message",
    [
        ("/missing.html", "404"),
        ("/image.png", "content type image/png"),
        ("/big", "over the 5,000,000-byte limit"),
        ("/loop", "redirects"),
        ("/slow", "no answer within 1 s"),
        ("/empty.html", "no text"),
    ],
)
def test_a_bad_url_gets_an_error_naming_it_and_leaves_nothing(site, tmp_path, path, message):
    with pytest.raises(FetchError) as err:
        save_url(Fetcher(allow_private=True, timeout=1.0), site + path, tmp_path)
    assert site + path in str(err.value) and message in str(err.value)
    assert files_in(tmp_path) == set()
    for bad in ("ftp://example.org/x", "not a url", "file:///etc/passwd"):
        with pytest.raises(FetchError, match="only http"):
            save_url(Fetcher(allow_private=True), bad, tmp_path)


def test_a_fetched_page_is_saved_as_fetched_and_indexed_with_its_url(site, tmp_path):
    url = site + "/world/caracas-explosions.html"
    name = save_url(Fetcher(allow_private=True), url, tmp_path)
    assert name == saved_name(url, ".html") and name.startswith("web/127.0.0.1/caracas-explosions-")
    raw = (tmp_path / name).read_bytes()
    assert raw.startswith(b"<!-- saved from url=(") and raw.endswith(
        NewsSite.pages["/world/caracas-explosions.html"][1]
    )
    [article], skipped = ArticleLoader().load(tmp_path)
    assert not skipped and article.url == url and article.title == "Explosions heard in Caracas"
    pdf = save_url(Fetcher(allow_private=True), site + "/release.pdf", tmp_path)
    assert pdf.endswith(".pdf") and (tmp_path / pdf).read_bytes().startswith(b"%PDF")
    assert save_url(Fetcher(allow_private=True), url, tmp_path) == name  # already here: not fetched again


def test_a_feed_adds_only_its_new_entries(site, tmp_path):
    fetcher = Fetcher(allow_private=True)
    first = follow_feed(fetcher, site + "/feed.xml", tmp_path)
    assert first.entries == 2 and len(first.saved) == 2 and first.known == 0 and not first.errors
    again = follow_feed(fetcher, site + "/feed.xml", tmp_path)
    assert again.saved == [] and again.known == 2
    with pytest.raises(FetchError, match="not an RSS or Atom feed"):
        follow_feed(fetcher, site + "/notfeed", tmp_path)
    with pytest.raises(FetchError, match="404"):
        follow_feed(fetcher, site + "/nofeed.xml", tmp_path)
    assert len(files_in(tmp_path)) == 2


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "articleqa.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "ARTICLEQA_READER_MODEL": str(READER), **(env or {})},
    )


def test_cli_add_and_feed_then_answer_with_the_source_url(site, tmp_path):
    articles, index_dir = tmp_path / "articles", tmp_path / "index"
    articles.mkdir()
    shutil.copy(SEEDS / "000_a9d1c48ba2d92731.txt", articles)
    common = ["--articles", str(articles), "--index-dir", str(index_dir)]
    refused = run_cli("add", site + "/world/caracas-explosions.html", *common)
    assert (
        refused.returncode == 2
        and "private or loopback" in refused.stderr
        and files_in(articles) == {"000_a9d1c48ba2d92731.txt"}
    )
    allow = {"ARTICLEQA_FETCH_ALLOW_PRIVATE": "1"}
    r = run_cli("add", site + "/world/caracas-explosions.html", site + "/missing.html", *common, "--json", env=allow)
    assert r.returncode == 1, r.stderr  # one added, one failed
    out = json.loads(r.stdout)
    assert (
        len(out["saved"]) == 1
        and out["errors"][0]["url"] == site + "/missing.html"
        and out["saved"][0] in out["rebuild"]["added"]
    )
    r = run_cli("feed", site + "/feed.xml", *common, env=allow)
    assert r.returncode == 0 and "2 entries, 1 new, 1 already here" in r.stdout, r.stdout + r.stderr
    r = run_cli("feed", site + "/notfeed", *common, env=allow)
    assert r.returncode == 2 and site + "/notfeed" in r.stderr
    r = run_cli(
        "ask", "How many explosions were heard in Caracas on January 3?", "--index-dir", str(index_dir), "--json"
    )
    answer = json.loads(r.stdout)
    assert answer["found"] and "seven" in answer["answer"]
    web = [c for c in answer["citations"] if c["file"].startswith("web/")]
    assert web and web[0]["url"] == site + "/world/caracas-explosions.html"


def test_admin_api_fetch_refuses_private_targets_and_bad_bodies(server, site):
    auth = {"Authorization": "Bearer " + server.token}
    r = httpx.post(
        server.url + "/api/fetch", json={"urls": [site + "/world/caracas-explosions.html"]}, headers=auth, timeout=60
    )
    assert r.status_code == 400 and "private or loopback" in r.json()["error"]
    assert httpx.post(server.url + "/api/fetch", json={"urls": ["x"]}, timeout=60).status_code == 401
    for body in ({}, {"urls": []}, {"urls": "http://a"}, {"urls": [1]}, {"url": 5}, []):
        r = httpx.post(server.url + "/api/fetch", json=body, headers=auth, timeout=60)
        assert 400 <= r.status_code < 500 and "error" in r.json()
    r = httpx.post(server.url + "/api/feed", json={"url": site + "/feed.xml"}, headers=auth, timeout=60)
    assert r.status_code == 400 and "private or loopback" in r.json()["error"]
    assert not list(server.articles.rglob("*.html"))


def test_serve_follows_a_feed(site, tmp_path):
    articles, index_dir = tmp_path / "articles", tmp_path / "index"
    articles.mkdir()
    shutil.copy(SEEDS / "000_a9d1c48ba2d92731.txt", articles)
    srv = ServerProcess(
        articles,
        index_dir,
        env={"ARTICLEQA_FETCH_ALLOW_PRIVATE": "1", "ARTICLEQA_ADMIN_TOKEN": "t"},
        extra_args=["--feed", site + "/feed.xml", "--feed-every", "10s"],
    ).wait_ready()
    try:
        deadline = time.time() + 120
        files: set[str] = set()
        while time.time() < deadline:
            files = {a["file"] for a in httpx.get(srv.url + "/api/articles", timeout=30).json()}
            if len(files) == 3:
                break
            time.sleep(1)
        assert len([f for f in files if f.startswith("web/127.0.0.1/")]) == 2, files
        r = httpx.post(
            srv.url + "/api/feed", json={"url": site + "/feed.xml"}, headers={"Authorization": "Bearer t"}, timeout=60
        )
        assert r.status_code == 200 and r.json()["known"] == 2 and r.json()["saved"] == []
    finally:
        srv.stop()


def test_the_chat_status_line_shows_the_last_feed_fetch(site, tmp_path, monkeypatch, embedder, reader):
    from articleqa.chunking import SentenceChunker
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline
    from articleqa.serve.chat import index_note
    from articleqa.serve.service import AdminError, ArticleService

    monkeypatch.setenv("ARTICLEQA_FETCH_ALLOW_PRIVATE", "1")
    articles = tmp_path / "articles"
    articles.mkdir()
    shutil.copy(SEEDS / "000_a9d1c48ba2d92731.txt", articles)
    settings = Settings(articles_dir=articles, index_dir=tmp_path / "index", reader_model=str(READER))
    pipeline = QAPipeline(
        settings, embedder, SentenceChunker(settings.chunk_words, settings.chunk_overlap_words), reader
    )
    pipeline.build_index()
    service = ArticleService(pipeline)
    assert "feed" not in index_note(service)
    service.follow_feed(site + "/feed.xml", rebuild=False)
    note = html.unescape(index_note(service))  # the note escapes Markdown characters as entities
    assert "feed.xml" in note and "fetched" in note and "2 new, 0 known" in note
    with pytest.raises(AdminError):
        service.follow_feed(site + "/notfeed", rebuild=False)
    note = html.unescape(index_note(service))
    assert "failed" in note and "not an RSS or Atom feed" in note
