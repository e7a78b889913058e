"""Rebuilds under faults and load: SIGKILL at several points, concurrent rebuilds, questions during
the switch, and add/change/delete through the API."""

import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import READER, ROOT, SEEDS, ServerProcess, citation_is_valid, squad_file

from articleqa.chunking import SentenceChunker
from articleqa.indexing import IndexBuilder
from articleqa.stores import FaissIndexStore
from articleqa.training.squad import load_squad, write_squad_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Seeds plus 12 SQuAD articles: big enough that a rebuild takes a few seconds."""
    folder = tmp_path_factory.mktemp("corpus")
    articles = load_squad(squad_file("squad-dev-v1.1-36.json"))[:12]
    write_squad_corpus(articles, folder)
    for p in SEEDS.glob("*.txt"):
        shutil.copy(p, folder / p.name)
    return folder


def _index_cli(articles, index_dir, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "articleqa.cli", "-v", "index", str(articles), "--index-dir", str(index_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def _assert_index_answers(index_dir, pipeline_factory):
    p = pipeline_factory(index_dir)
    a = p.ask("Who is the Energy Secretary?")
    assert a.found and a.answer == "Chris Wright"


@pytest.fixture(scope="module")
def pipeline_factory(embedder, reader):
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    def make(index_dir):
        s = Settings(index_dir=index_dir, reader_model=str(READER))
        return QAPipeline(s, embedder, SentenceChunker(), reader)

    return make


@pytest.mark.parametrize(
    "marker", ["full rebuild", "rebuild: embedding", "rebuild: writing", "rebuild: published", None]
)
def test_sigkill_at_any_point_leaves_a_loadable_index(tmp_path, corpus, embedder, pipeline_factory, marker):
    index_dir = tmp_path / "index"
    IndexBuilder(embedder, SentenceChunker()).build(SEEDS, index_dir)
    before = FaissIndexStore(index_dir).current_version()
    proc = _index_cli(corpus, index_dir, "--full")
    seen = []
    if marker is None:
        time.sleep(1.0)  # early: while loading models
    else:
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    store = FaissIndexStore(index_dir)
    assert store.current_version() is not None
    index = store.load(embedder.name)
    assert index.version in (before, *[v.name for v in (index_dir / "versions").iterdir()])
    _assert_index_answers(index_dir, pipeline_factory)
    # the next rebuild cleans up whatever the killed one left behind, and succeeds
    report = IndexBuilder(embedder, SentenceChunker()).build(corpus, index_dir)
    assert not list((index_dir / "versions").glob(".tmp-*"))
    assert FaissIndexStore(index_dir).load(embedder.name).version == report.version
    _assert_index_answers(index_dir, pipeline_factory)


def test_write_failure_keeps_the_published_version(tmp_path, embedder, monkeypatch):
    import faiss

    index_dir = tmp_path / "index"
    IndexBuilder(embedder, SentenceChunker()).build(SEEDS, index_dir)
    before = FaissIndexStore(index_dir).current_version()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", disk_full)
    with pytest.raises(OSError, match="No space left"):
        IndexBuilder(embedder, SentenceChunker()).build(SEEDS, index_dir, full=True)
    assert FaissIndexStore(index_dir).current_version() == before
    assert not list((index_dir / "versions").glob(".tmp-*"))
    assert FaissIndexStore(index_dir).load(embedder.name).version == before


def test_two_rebuilds_at_once(tmp_path, corpus, embedder):
    index_dir = tmp_path / "index"
    first = _index_cli(corpus, index_dir, "--full")
    for line in first.stdout:
        if "rebuild: embedding" in line or "full rebuild" in line:
            break
    refused = subprocess.run(
        [sys.executable, "-m", "articleqa.cli", "index", str(corpus), "--index-dir", str(index_dir), "--no-wait"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    waiting = _index_cli(corpus, index_dir)
    first.communicate(timeout=300)
    out, _ = waiting.communicate(timeout=300)
    assert first.returncode == 0
    assert refused.returncode == 3 and "already running" in refused.stderr
    assert waiting.returncode == 0 and "up to date" in out  # waited for the lock, then found nothing to do
    FaissIndexStore(index_dir).load(embedder.name)


def test_questions_during_rebuild_never_fail(tmp_path, corpus, embedder):
    articles = tmp_path / "articles"
    shutil.copytree(corpus, articles)
    index_dir = tmp_path / "index"
    IndexBuilder(embedder, SentenceChunker()).build(articles, index_dir)
    srv = ServerProcess(articles, index_dir, env={"ARTICLEQA_ADMIN_TOKEN": "t"}).wait_ready()
    failures, versions, answered = [], set(), [0]
    stop = threading.Event()

    def hammer():
        with httpx.Client(timeout=60) as c:
            while not stop.is_set():
                try:
                    r = c.post(srv.url + "/api/answer", json={"question": "Who is the president of Colombia?"})
                    if r.status_code != 200 or "Gustavo Petro" not in (r.json()["answer"] or ""):
                        failures.append((r.status_code, r.text[:200]))
                    else:
                        versions.add(r.json()["index_version"])
                        answered[0] += 1
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1)
        r = httpx.post(srv.url + "/api/rebuild", json={"full": True}, headers={"Authorization": "Bearer t"})
        assert r.status_code == 202, r.text
        r2 = httpx.post(srv.url + "/api/rebuild", json={"full": True}, headers={"Authorization": "Bearer t"})
        # a second request while it runs is not refused: it joins the job (or is queued once behind it)
        assert r2.status_code == 202 and r2.json()["request"] in ("joined", "queued"), r2.text
        assert r2.json()["started_at"] == r.json()["started_at"] and r2.json()["state"] == "running"
        expected_versions = 2 if r2.json()["request"] == "joined" else 3
        deadline = time.time() + 300
        while time.time() < deadline:
            status = httpx.get(srv.url + "/api/rebuild").json()
            if status["state"] != "running":
                break
            time.sleep(0.5)
        assert status["state"] == "done", status
        time.sleep(3)  # keep asking after the switch
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        srv.stop()
    assert not failures, failures[:5]
    assert answered[0] > 10 and len(versions) == expected_versions, (answered, versions)


def test_add_change_delete_through_the_api(tmp_path, embedder):
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    index_dir = tmp_path / "index"
    IndexBuilder(embedder, SentenceChunker()).build(articles, index_dir)
    srv = ServerProcess(articles, index_dir, env={"ARTICLEQA_ADMIN_TOKEN": "t"}).wait_ready()
    auth = {"Authorization": "Bearer t"}
    q = "Who opened the Port Vela harbour bridge?"

    def wait_rebuilt():
        for _ in range(240):
            s = httpx.get(srv.url + "/api/rebuild").json()
            if s["state"] != "running":
                assert s["state"] == "done", s
                return s
            time.sleep(0.5)
        raise AssertionError("rebuild did not finish")

    def ask():
        time.sleep(1.5)  # the server checks for a new version every second
        return httpx.post(srv.url + "/api/answer", json={"question": q}, timeout=60).json()

    try:
        text = "Port Vela news. The new harbour bridge of Port Vela was opened by mayor Ana Lima on Monday.\n"
        r = httpx.post(srv.url + "/api/articles", files={"files": ("port vela.txt", text.encode())}, headers=auth)
        assert r.status_code == 201 and r.json()["saved"] == ["port vela.txt"], r.text
        wait_rebuilt()
        a = ask()
        assert a["found"] and "Ana Lima" in a["answer"] and a["citations"][0]["file"] == "port vela.txt"
        served = httpx.get(srv.url + "/api/articles/port vela.txt").json()["text"]
        assert all(citation_is_valid(c, {"port vela.txt": served}) for c in a["citations"])

        # same name, different content: refused without overwrite
        changed = text.replace("Ana Lima", "Rui Costa")
        r = httpx.post(srv.url + "/api/articles", files={"files": ("port vela.txt", changed.encode())}, headers=auth)
        assert r.status_code == 409
        r = httpx.post(
            srv.url + "/api/articles?overwrite=true", files={"files": ("port vela.txt", changed.encode())}, headers=auth
        )
        assert r.status_code == 201
        wait_rebuilt()
        a = ask()
        assert "Rui Costa" in a["answer"] and all("Ana Lima" not in c["quote"] for c in a["citations"])

        r = httpx.delete(srv.url + "/api/articles/port vela.txt", headers=auth)
        assert r.status_code == 200
        wait_rebuilt()
        a = ask()
        assert all(c["file"] != "port vela.txt" for c in a["citations"] + a["context"])
        assert httpx.get(srv.url + "/api/articles/port vela.txt").status_code == 404
    finally:
        srv.stop()


def test_serve_watch_rebuilds_when_files_change(tmp_path, embedder):
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    index_dir = tmp_path / "index"
    IndexBuilder(embedder, SentenceChunker()).build(articles, index_dir)
    srv = ServerProcess(articles, index_dir, extra_args=["--watch"]).wait_ready()
    try:
        before = httpx.get(srv.url + "/api/health").json()["index_version"]
        time.sleep(1)
        (articles / "harbour.txt").write_text(
            "Harbour news. The Port Vela bridge was opened by mayor Ana Lima.\n", encoding="utf-8"
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            h = httpx.get(srv.url + "/api/health").json()
            if h["index_version"] != before:
                break
            time.sleep(0.5)
        assert h["index_version"] != before and h["articles"] == 4
        a = httpx.post(
            srv.url + "/api/answer", json={"question": "Who opened the Port Vela bridge?"}, timeout=60
        ).json()
        assert a["found"] and a["citations"][0]["file"] == "harbour.txt"
    finally:
        srv.stop()
