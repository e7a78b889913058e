"""The Milvus store on real Milvus engines: milvus-lite 3.x in a file (pure Python),
Milvus's own engine (milvus-lite 2.5.1, native) as a gRPC server on 127.0.0.1, the code path of a
remote Milvus, and the native engine in a file (the ``lite-file`` cases run again by a pytest in the
native venv, test_the_same_tests_pass_on_the_native_engine_in_a_file): same answers and citations as the
FAISS store, incremental rebuilds, publication (a pointer row; no alias needed), versions kept, a build
killed midway, the server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

pytest.importorskip("pymilvus", reason="the Milvus store needs pip install 'articleqa[scale]'")

from conftest import READER, ROOT, SEEDS, ServerProcess, citation_is_valid, seed_qa, seed_texts  # noqa: E402

from articleqa.protocols import IndexStore, IndexVersion  # noqa: E402
from articleqa.text import best_em_f1  # noqa: E402

QA = seed_qa()["questions"]


ENGINES = ["lite-file", "native-server"]
# Set by the nested run in the native venv: the milvus-lite that a ``milvus:FILE.db`` must open there.
EXPECT_LITE = os.environ.get("ARTICLEQA_EXPECT_MILVUS_LITE")


def test_the_file_engine_is_the_expected_milvus_lite():
    from importlib.metadata import version

    if EXPECT_LITE:
        assert version("milvus-lite") == EXPECT_LITE
    else:
        assert version("milvus-lite").startswith("3.")  # the pure-Python generation of the scale extra


@pytest.mark.slow
@pytest.mark.skipif(bool(EXPECT_LITE), reason="already the nested run")
def test_the_same_tests_pass_on_the_native_engine_in_a_file(tmp_path):
    """Every ``lite-file`` case of this module again, in .venv-native, where ``milvus:FILE.db`` opens
    milvus-lite 2.5.1: Milvus's C++ engine serving the file (through a private unix socket)."""
    from articleqa.testing import native_milvus_python

    python = native_milvus_python()
    r = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            __file__,
            "-k",
            "lite-file or expected_milvus_lite",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "t"),
            "-m",
            "not browser",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        env={**os.environ, "ARTICLEQA_EXPECT_MILVUS_LITE": "2.5.1"},
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    summary = r.stdout.strip().splitlines()[-1]
    assert " failed" not in summary and int(summary.split(" passed")[0].split()[-1]) >= 17, summary


@pytest.fixture(params=ENGINES)
def engine(request):
    """milvus:<file> for milvus-lite 3.x, or milvus:http://127.0.0.1:PORT for the native engine's server
    (each test its own collection prefix on the shared server)."""
    if request.param == "native-server":
        url = request.getfixturevalue("native_milvus")
        return lambda index_dir: (f"milvus:{url}", "t" + str(abs(hash(str(index_dir))))[:12])
    return lambda index_dir: (f"milvus:{index_dir / 'milvus.db'}", "articleqa")


def make_pipeline(articles, index_dir, embedder, reader, engine=None, **settings):
    from articleqa.chunking import SentenceChunker
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    store, prefix = engine(index_dir) if engine else (f"milvus:{index_dir / 'milvus.db'}", "articleqa")
    s = Settings(
        articles_dir=articles,
        index_dir=index_dir,
        reader_model=str(READER),
        store=store,
        milvus_prefix=prefix,
        **settings,
    )
    return QAPipeline(s, embedder, SentenceChunker(s.chunk_words, s.chunk_overlap_words), reader)


@pytest.fixture(scope="module", params=ENGINES)
def milvus_pipeline(request, tmp_path_factory, embedder, reader):
    base = tmp_path_factory.mktemp("milvus-seeds")
    eng = None
    if request.param == "native-server":
        url = request.getfixturevalue("native_milvus")
        eng = lambda index_dir: (f"milvus:{url}", "seeds")  # noqa: E731
    p = make_pipeline(SEEDS, base / "index", embedder, reader, engine=eng)
    report = p.build_index()
    assert report.passages > 0 and p.store.name == "milvus"
    p.warm_up()
    yield p
    p.store.close()


def test_milvus_store_and_version_implement_the_protocols(milvus_pipeline):
    assert isinstance(milvus_pipeline.store, IndexStore)
    index = milvus_pipeline.indexes.get()
    assert isinstance(index, IndexVersion)
    status = index.status()
    assert status.store.startswith("milvus") and status.articles == 3 and status.passages == len(index.passages)


@pytest.mark.parametrize("item", QA, ids=[q["id"] for q in QA])
def test_seed_questions_through_milvus(milvus_pipeline, item):
    answer = milvus_pipeline.ask(item["question"])
    texts = seed_texts()
    for c in answer.citations + answer.context:
        assert citation_is_valid(c, texts), c
    if item.get("unanswerable"):
        assert not answer.found
    else:
        assert answer.found, item["question"]
        assert best_em_f1(answer.answer, item["answers"])[1] >= 0.8, (item["question"], answer.answer)
        assert answer.citations[0].file in item["sources"]


def test_bm25_and_dense_run_in_milvus(milvus_pipeline):
    index = milvus_pipeline.indexes.get()
    [(pos, score)] = index.text_search("Energy Secretary Chris Wright", 1)
    assert "Chris Wright" in index.passages[pos].text and score != 0
    vec = milvus_pipeline.embedder.encode(["Who is the Energy Secretary?"], progress=False)
    dense = index.search(vec, 3)[0]
    assert len(dense) == 3 and dense[0][1] >= dense[-1][1]
    fused = index.hybrid_search(vec[0], "Who is the Energy Secretary?", 5, 50)
    assert len(fused) == 5 and all(0 < s <= 2 / 61 for _, s in fused)  # RRF scores with k=60


def test_incremental_rebuild_add_edit_delete_and_versions_kept(tmp_path, embedder, reader, engine):
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    p = make_pipeline(articles, tmp_path / "index", embedder, reader, engine=engine, keep_versions=2)
    first = p.build_index()
    assert first.embedded == first.passages
    v1 = p.store.current_version()

    (articles / "zz_new.txt").write_text(
        "Port report\n\nThe harbour master of Kelmar is Ilse Marten.\n", encoding="utf-8"
    )
    edited = (articles / "001_a6813ebf46bda63b.txt").read_text(
        encoding="utf-8"
    ) + "\nThe Kelmar ferry is named Aurora.\n"
    (articles / "001_a6813ebf46bda63b.txt").write_text(edited, encoding="utf-8")
    (articles / "000_a9d1c48ba2d92731.txt").unlink()
    second = p.build_index()
    assert second.added == ["zz_new.txt"] and second.changed == ["001_a6813ebf46bda63b.txt"]
    assert second.removed == ["000_a9d1c48ba2d92731.txt"]
    unchanged = p.store.read_manifest()["files"]["002_2dd9416afd3ce74f.txt"]["passages"]
    assert second.embedded == second.passages - unchanged  # the unchanged file's rows were carried over
    v2 = p.store.current_version()
    assert v2 != v1 and p.store.versions() == [v1, v2]

    index = p.indexes.reload_now()
    assert set(index.articles) == {"001_a6813ebf46bda63b.txt", "002_2dd9416afd3ce74f.txt", "zz_new.txt"}
    assert index.articles["001_a6813ebf46bda63b.txt"].text == edited
    assert p.ask("Who is the harbour master of Kelmar?").answer == "Ilse Marten"
    assert p.ask("What is the Kelmar ferry named?").answer == "Aurora"
    assert p.ask("Who is the Energy Secretary?").answer == "Chris Wright"  # carried-over vectors still match

    (articles / "zz_new.txt").write_text("Port report\n\nThe harbour master of Kelmar is Eva Lind.\n", encoding="utf-8")
    p.build_index()
    v3 = p.store.current_version()
    assert p.store.versions() == [v2, v3]  # ARTICLEQA_KEEP_VERSIONS=2: the oldest was dropped
    assert p.indexes.reload_now().version == v3
    assert p.ask("Who is the harbour master of Kelmar?").answer == "Eva Lind"
    p.store.close()


def test_a_build_killed_midway_leaves_the_published_version_answering(tmp_path, embedder, reader, engine):
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    p = make_pipeline(articles, tmp_path / "index", embedder, reader, engine=engine)
    store, prefix = engine(tmp_path / "index")
    p.build_index()
    published = p.store.current_version()
    p.store.close()  # milvus-lite: one process at a time opens the file

    words = "harbour bridge council mayor river city port ship trade market school hospital road rail".split()
    for i in range(60):
        (articles / f"gen_{i:03d}.txt").write_text(
            f"Report {i}\n\n" + " ".join(words[(i * j) % len(words)] for j in range(1500)), encoding="utf-8"
        )
    log = tmp_path / "build.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "articleqa.cli",
                "index",
                str(articles),
                "--index-dir",
                str(tmp_path / "index"),
                "--store",
                store,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "ARTICLEQA_MILVUS_PREFIX": prefix},
        )
        deadline = time.monotonic() + 240
        while (
            "embedding" not in log.read_text(errors="replace") and time.monotonic() < deadline and proc.poll() is None
        ):
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    p = make_pipeline(articles, tmp_path / "index", embedder, reader, engine=engine)
    deadline = time.monotonic() + 30
    while True:  # the killed process's milvus-lite server lets go of the file
        try:
            assert p.store.current_version() == published
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert p.ask("Who is the Energy Secretary?").answer == "Chris Wright"
    report = p.build_index()  # the next build completes and publishes
    assert p.store.current_version() == report.version != published
    assert report.passages > 100
    p.store.close()


@pytest.mark.browser
def test_server_with_a_milvus_store_answers_over_http_and_in_the_chat(tmp_path):
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    store = f"milvus:{tmp_path / 'index' / 'milvus.db'}"
    with ServerProcess(articles, tmp_path / "index", extra_args=["--store", store]) as srv:
        with httpx.Client(base_url=srv.url, timeout=120) as client:
            health = client.get("/api/health").json()
            assert health["store"].startswith("milvus") and health["articles"] == 3
            answer = client.post("/api/answer", json={"question": "Who is the Energy Secretary?"}).json()
            assert answer["answer"] == "Chris Wright"
            assert citation_is_valid(answer["citations"][0], seed_texts())
            follow = client.post(
                "/api/answer",
                json={
                    "question": "When did it happen?",
                    "history": [
                        {
                            "question": "What was the codename of the nighttime operation in Caracas?",
                            "answer": "Operation Absolute Resolve",
                        }
                    ],
                },
            ).json()
            assert follow["found"] and "January 3" in follow["answer"]
            text = client.get("/api/articles/002_2dd9416afd3ce74f.txt").json()["text"]
            assert text == seed_texts()["002_2dd9416afd3ce74f.txt"]
        from playwright.sync_api import sync_playwright
        from test_browser import ARGS, CHROMIUM, ask

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            page.goto(srv.url + "/", wait_until="load")
            page.locator("#question textarea").wait_for(timeout=60_000)
            text, _ = ask(page, "Who is the Energy Secretary?", 1)
            assert "Chris Wright" in text and "002_2dd9416afd3ce74f.txt" in text
            assert page.locator("#chat mark").first.inner_text() == "Chris Wright"
            browser.close()


def test_unknown_store_is_a_clear_error(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "articleqa.cli", "ask", "Who?", "--index-dir", str(tmp_path), "--store", "elastic"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "store" in r.stderr and "Traceback" not in r.stderr
