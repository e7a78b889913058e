"""Answers you can audit: citations carry the article's hash and date, /api/verify and
`articleqa verify` say whether they still hold, and articles that disagree are shown as such.
Real models, real indexes, a real server and a real browser."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import httpx
import pytest
from conftest import READER, SEEDS, ServerProcess, citation_is_valid, seed_qa, seed_texts

from articleqa.verify import CitationRef, FolderArticles, citations_of, verify_citation, verify_citations

#: "Who cut the ribbon?": the name, or the name with its appositive (both are the article's span; readers differ)
RIBBON = ("Anna Brod", "The mayor, Anna Brod")
BRIDGE_A = """Harbour bridge reopens after repairs

date: 2024-03-02

The Kelmar harbour bridge, which first opened in 1998, reopened on Friday after two years of repairs. The mayor, Anna Brod, cut the ribbon.
"""
BRIDGE_B = """# Kelmar looks back on its bridge

Published: 2025-06-10

Residents of Kelmar gathered to celebrate the harbour bridge, which opened in 2001 after a decade of planning. Its architect, Paul Veen, attended. Some wrote <b>Kelmar</b> & <script>alert(1)</script> on a banner.
"""
QUESTION = "When did the Kelmar harbour bridge open?"


def write_corpus(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text(BRIDGE_A, encoding="utf-8")
    (folder / "b.md").write_text(BRIDGE_B, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, embedder, reader):
    """A two-article corpus that contradicts itself on the opening year, with its own pipeline."""
    from articleqa.chunking import SentenceChunker
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    base = tmp_path_factory.mktemp("bridge")
    articles = write_corpus(base / "articles")
    settings = Settings(articles_dir=articles, index_dir=base / "index", reader_model=str(READER))
    p = QAPipeline(settings, embedder, SentenceChunker(settings.chunk_words, settings.chunk_overlap_words), reader)
    p.build_index()
    p.warm_up()
    return p


def texts_of(folder) -> dict[str, str]:
    return {f.name: f.read_bytes().decode("utf-8") for f in folder.iterdir() if f.is_file()}


# --- citations carry hash and date ---------------------------------------------------------------


def test_citations_carry_the_file_hash_title_and_date(bridge):
    answer = bridge.ask("Who cut the ribbon?")
    assert answer.found and answer.answer in RIBBON
    [c] = answer.citations
    raw = (bridge.settings.articles_dir / "a.txt").read_bytes()
    assert c.sha256 == hashlib.sha256(raw).hexdigest()
    assert c.date == "2024-03-02" and c.title == "Harbour bridge reopens after repairs"


def test_seed_citations_carry_the_file_hash(pipeline):
    answer = pipeline.ask("Who is the Energy Secretary?")
    for c in answer.citations:
        assert c.sha256 == hashlib.sha256((SEEDS / c.file).read_bytes()).hexdigest()


def test_dates_come_from_html_metadata(tmp_path):
    from articleqa.ingest import parse_article

    page = (
        b'<html><head><title>Port news</title><meta property="article:published_time" content="2025-02-03T10:00:00Z">'
        b"</head><body><p>Written 1999-01-01 in the archive.</p></body></html>"
    )
    assert parse_article("p.html", page, ".html").date == "2025-02-03"
    timed = b'<html><body><time datetime="2024-12-31">New Year</time><p>Text of 2020-01-01.</p></body></html>'
    assert parse_article("t.html", timed, ".html").date == "2024-12-31"
    assert parse_article("n.html", b"<p>Text of 2020-01-01.</p>", ".html").date == "2020-01-01"


# --- disagreements --------------------------------------------------------------------------------


def test_contradicting_articles_yield_a_disagreement_naming_both(bridge):
    answer = bridge.ask(QUESTION)
    texts = texts_of(bridge.settings.articles_dir)
    assert answer.found and answer.answer in {"1998", "2001"}
    assert len(answer.disagreements) == 1
    other = answer.disagreements[0]
    assert {answer.answer, other.answer} == {"1998", "2001"}
    files = {answer.citations[0].file, other.citations[0].file}
    assert files == {"a.txt", "b.md"}
    for c in [*answer.citations, *other.citations]:
        assert citation_is_valid(c, texts)
        assert c.date in {"2024-03-02", "2025-06-10"}


def test_same_answer_in_one_article_is_not_a_disagreement(bridge):
    for q in ["Who cut the ribbon?", "Who was the architect of the bridge?"]:
        answer = bridge.ask(q)
        assert answer.found and not answer.disagreements, (q, answer.disagreements)


def test_seed_questions_give_exactly_one_answer_each(pipeline):
    """No false disagreements on the seed set, where the articles agree."""
    with_disagreement = []
    for item in seed_qa()["questions"]:
        answer = pipeline.ask(item["question"])
        assert not answer.parts
        if answer.disagreements:
            with_disagreement.append((item["question"], answer.answer, [d.answer for d in answer.disagreements]))
    print(f"\nseed questions with a disagreement: {len(with_disagreement)}")
    assert with_disagreement == []


def test_sources_differ_block_puts_the_newest_article_first(bridge):
    import html as html_lib

    from articleqa.serve.answer_html import answer_html

    html = html_lib.unescape(answer_html(bridge.ask(QUESTION)))
    block = html[html.index("Sources differ") :]
    assert block.index("2025-06-10") < block.index("2024-03-02")  # b.md (2001) is the newer article
    assert block.index("2001") < block.index("1998")


# --- verify ---------------------------------------------------------------------------------------


def test_verify_valid_stale_moved_gone_missing_invalid(bridge, tmp_path):
    answer = bridge.ask("Who cut the ribbon?")
    [c] = answer.citations
    index = bridge.indexes.get()
    assert verify_citations(answer.citations, index.articles)[0].status == "valid"

    forged = c.model_copy(update={"quote": "Paul Veen"})
    check = verify_citations([forged], index.articles)[0]
    assert check.status == "invalid" and check.quote_now == "gone"

    folder = tmp_path / "now"
    shutil.copytree(bridge.settings.articles_dir, folder)
    (folder / "a.txt").write_text(BRIDGE_A.replace("two years", "two long years"), encoding="utf-8")
    check = verify_citations([c], FolderArticles(folder, 10**6))[0]
    shift = len("two long years") - len("two years")
    assert check.status == "stale" and check.quote_now == "moved"
    assert (check.start_now, check.end_now) == (c.start + shift, c.end + shift)
    assert (folder / "a.txt").read_text(encoding="utf-8")[check.start_now : check.end_now] == c.quote

    (folder / "a.txt").write_text(BRIDGE_A.replace("Anna Brod", "Eva Lind"), encoding="utf-8")
    check = verify_citations([c], FolderArticles(folder, 10**6))[0]
    assert check.status == "stale" and check.quote_now == "gone" and check.start_now is None

    (folder / "a.txt").write_text(BRIDGE_A + "\nA correction was added.\n", encoding="utf-8")
    check = verify_citations([c], FolderArticles(folder, 10**6))[0]
    assert check.status == "stale" and check.quote_now == "same_span"

    (folder / "a.txt").unlink()
    assert verify_citations([c], FolderArticles(folder, 10**6))[0].status == "missing"


def test_verify_never_reads_outside_the_folder(tmp_path):
    folder = write_corpus(tmp_path / "articles")
    (tmp_path / "secret.txt").write_text("secret words", encoding="utf-8")
    (folder / "link.txt").symlink_to(tmp_path / "secret.txt")
    articles = FolderArticles(folder, 10**6)
    for name in ["../secret.txt", "/etc/hostname", "link.txt", "./a.txt", "a.txt/..", ""]:
        check = verify_citation(CitationRef(file=name, start=0, end=6, quote="secret"), articles.get(name))
        assert check.status == "missing", name


def test_moved_quote_picks_the_occurrence_nearest_the_old_span():
    from articleqa.verify import nearest_occurrence

    text = "x 1998 " + "y" * 50 + " 1998 z"
    assert nearest_occurrence(text, "1998", 40) == (58, 62)
    assert nearest_occurrence(text, "1998", 0) == (2, 6)
    assert nearest_occurrence(text, "2001", 0) is None


def test_citations_of_saved_answers(bridge):
    answer = bridge.ask("Who cut the ribbon, and who was the architect of the bridge?").model_dump()
    assert len(answer["parts"]) == 2
    ribbon, architect = [c["quote"] for c in citations_of(answer)]
    assert ribbon in RIBBON and architect == "Paul Veen"
    with_other = bridge.ask(QUESTION).model_dump()
    assert sorted(c["quote"] for c in citations_of(with_other)) == ["1998", "2001"]
    assert citations_of([{"file": "a"}]) == [{"file": "a"}] and citations_of("nonsense") == []


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "articleqa.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_cli_verify_exit_codes(bridge, tmp_path):
    saved = tmp_path / "answer.json"
    saved.write_text(bridge.ask(QUESTION).model_dump_json(), encoding="utf-8")
    index_dir = str(bridge.settings.index_dir)
    ok = _cli("verify", str(saved), "--index-dir", index_dir)
    assert ok.returncode == 0, ok.stderr
    assert "2 valid" in ok.stdout

    folder = tmp_path / "now"
    shutil.copytree(bridge.settings.articles_dir, folder)
    (folder / "b.md").write_text("# Note\n\n" + BRIDGE_B, encoding="utf-8")
    (folder / "a.txt").unlink()
    changed = _cli("verify", str(saved), "--articles", str(folder), "--json")
    assert changed.returncode == 1, changed.stderr
    report = json.loads(changed.stdout)
    by_file = {r["file"]: r for r in report["results"]}
    assert by_file["a.txt"]["status"] == "missing"
    assert by_file["b.md"]["status"] == "stale" and by_file["b.md"]["quote_now"] == "moved"
    assert by_file["b.md"]["start_now"] == by_file["b.md"]["start"] + len("# Note\n\n")

    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert _cli("verify", str(bad), "--index-dir", index_dir).returncode == 2
    empty = tmp_path / "empty.json"
    empty.write_text('{"answer": null}', encoding="utf-8")
    result = _cli("verify", str(empty), "--index-dir", index_dir)
    assert result.returncode == 2 and "no citations" in result.stderr
    assert _cli("verify", str(saved), "--index-dir", str(tmp_path / "none")).returncode == 3


# --- the server: /api/verify after a rebuild, the source page, the chat ---------------------------


@pytest.fixture(scope="module")
def bridge_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("bridge-server")
    articles = write_corpus(base / "articles")
    srv = ServerProcess(articles, base / "index", env={"ARTICLEQA_ADMIN_TOKEN": "tok"})
    srv.articles = articles
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def wait_for_rebuild(client, before: str, timeout: float = 120) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = client.get("/api/health").json()
        if health.get("index_version") != before and health["rebuild"] != "running":
            return health["index_version"]
        time.sleep(0.5)
    raise AssertionError("rebuild did not publish a new version")


def test_api_verify_and_source_page_follow_edits_and_deletes(bridge_server):
    with httpx.Client(base_url=bridge_server.url, timeout=120) as client:
        answer = client.post("/api/answer", json={"question": QUESTION}).json()
        cites = [*answer["citations"], *answer["disagreements"][0]["citations"]]
        result = client.post("/api/verify", json={"citations": cites}).json()
        assert result["counts"]["valid"] == 2, result

        by_file = {c["file"]: c for c in cites}
        page = client.get(
            f"/view/a.txt?s={by_file['a.txt']['start']}-{by_file['a.txt']['end']}&q=1998&sha={by_file['a.txt']['sha256']}"
        )
        assert page.status_code == 200 and '<mark id="span-' in page.text and "Stale" not in page.text

        before = client.get("/api/health").json()["index_version"]
        edited = BRIDGE_A.replace("The Kelmar harbour bridge", "Kelmar's old harbour bridge")
        r = client.post(
            "/api/articles?overwrite=true",
            files={"files": ("a.txt", edited.encode())},
            headers={"Authorization": "Bearer tok"},
        )
        assert r.status_code == 201, r.text
        version = wait_for_rebuild(client, before)
        r = client.request("DELETE", "/api/articles/b.md", headers={"Authorization": "Bearer tok"})
        assert r.status_code == 200, r.text
        wait_for_rebuild(client, version)

        result = client.post("/api/verify", json={"citations": cites}).json()
        checks = {c["file"]: c for c in result["results"]}
        assert checks["b.md"]["status"] == "missing"
        a = checks["a.txt"]
        assert a["status"] == "stale" and a["quote_now"] == "moved"
        assert edited[a["start_now"] : a["end_now"]] == "1998"
        assert a["sha256_now"] != a["sha256"]

        page = client.get(f"/view/a.txt?s={a['start']}-{a['end']}&q=1998&sha={a['sha256']}")
        assert "Stale citation" in page.text and f"moved to {a['start_now']}–{a['end_now']}" in page.text
        assert client.get("/view/b.md?s=0-4").status_code == 404
        assert client.get("/view/../../etc/hostname").status_code in (400, 404)

        # refused requests get the API's error shape
        for body in [
            {},
            {"citations": "x"},
            {"citations": [{"file": "a.txt"}]},
            {"citations": [{"file": "a.txt", "start": -1, "end": 2, "quote": "x"}]},
        ]:
            r = client.post("/api/verify", json=body)
            assert r.status_code == 422 and "error" in r.json(), body
        r = client.post(
            "/api/verify", json={"citations": [{"file": "a.txt", "start": 0, "end": 1, "quote": "H"}] * 201}
        )
        assert r.status_code == 422


@pytest.mark.browser
def test_chat_shows_sources_differ_with_both_sources_escaped(tmp_path_factory):
    from playwright.sync_api import sync_playwright
    from test_browser import ARGS, CHROMIUM, ask

    base = tmp_path_factory.mktemp("differ-chat")
    articles = write_corpus(base / "articles")
    (articles / "b.md").write_text(
        BRIDGE_B.replace("# Kelmar looks back", "# Kelmar <i>looks</i> back"), encoding="utf-8"
    )
    with ServerProcess(articles, base / "index") as srv, sync_playwright() as p:
        srv.wait_ready()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.goto(srv.url + "/", wait_until="load")
        page.locator("#question textarea").wait_for(timeout=60_000)
        text, _ = ask(page, QUESTION, 1)
        block = page.locator("#chat .aqa-differ").first
        items = block.locator("li").all_inner_texts()
        assert "Sources differ" in block.inner_text()
        assert len(items) == 2
        assert "2001" in items[0] and "2025-06-10" in items[0] and "Kelmar <i>looks</i> back" in items[0]
        assert "1998" in items[1] and "2024-03-02" in items[1] and "Harbour bridge reopens" in items[1]
        assert page.locator("#chat .aqa-differ i").count() == 0  # the title's HTML is shown as text
        browser.close()


def test_citations_stay_valid_on_seed_answers_with_new_fields(pipeline):
    texts = seed_texts()
    answer = pipeline.ask("What was the name of the military operation the US launched off Venezuela?", top_k=8)
    for c in answer.citations:
        assert citation_is_valid(c, texts) and c.sha256 and c.title
