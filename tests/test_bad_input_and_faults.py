"""Hardening: bad uploads and CLI input, security rules, faults (kills, unwritable index, broken
models) and property-based checks of the citation invariant."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from conftest import READER, ROOT, SEEDS, ServerProcess
from hypothesis import given, settings
from hypothesis import strategies as st

from articleqa.answer import span_citation
from articleqa.serve.service import UploadError, safe_filename
from articleqa.stores import FaissIndexStore, IndexCorruptError
from articleqa.types import Article, Passage, ReadSpan

# --- uploads -------------------------------------------------------------------------------------

BAD_UPLOADS = [
    ("binary.txt", bytes(range(256)) * 2, 415, "binary"),
    ("garbage.txt", bytes(range(128, 256)) * 4 + b"\x81\x8d\x8f", 415, "not text"),
    ("empty.txt", b"", 400, "empty"),
    ("huge.txt", b"word " * 400, 413, "limit"),
    ("program.exe", b"MZ text", 415, "unsupported"),
    ("/etc/passwd", b"root:x:0:0", 415, "unsupported"),
    ("CON", b"text", 400, "reserved"),
    ("CON.txt", b"text", 400, "reserved"),
    ("a" * 300 + ".txt", b"text", 400, "too long"),
]


@pytest.fixture(scope="module")
def small_server(tmp_path_factory, seed_index_dir):
    base = tmp_path_factory.mktemp("small")
    shutil.copytree(SEEDS, base / "articles")
    shutil.copytree(seed_index_dir, base / "index")
    srv = ServerProcess(
        base / "articles",
        base / "index",
        env={
            "ARTICLEQA_ADMIN_TOKEN": "tok",
            "ARTICLEQA_MAX_UPLOAD_BYTES": "1000",
            "ARTICLEQA_RATE_LIMIT_PER_MINUTE": "0",
        },
    )
    srv.base = base
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.mark.parametrize("name, data, status, words", BAD_UPLOADS, ids=[u[0][:20] for u in BAD_UPLOADS])
def test_bad_uploads_are_refused(small_server, name, data, status, words):
    r = httpx.post(
        small_server.url + "/api/articles?rebuild=false",
        files={"files": (name, data)},
        headers={"X-Admin-Token": "tok"},
    )
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert sorted(p.name for p in (small_server.base / "articles").iterdir()) == sorted(p.name for p in SEEDS.iterdir())


def test_path_tricks_in_upload_names_stay_inside(small_server):
    for name in ["../escape.txt", "..\\..\\escape2.txt", "sub/../../escape3.txt"]:
        r = httpx.post(
            small_server.url + "/api/articles?rebuild=false",
            files={"files": (name, b"Plain text.")},
            headers={"X-Admin-Token": "tok"},
        )
        assert r.status_code == 201, r.text
        [saved] = r.json()["saved"]
        assert "/" not in saved and "\\" not in saved and ".." not in saved
        assert (small_server.base / "articles" / saved).is_file()
        (small_server.base / "articles" / saved).unlink()
    assert not list(small_server.base.glob("escape*")) and not list(small_server.base.parent.glob("escape*"))


def test_upload_name_rules():
    with pytest.raises(UploadError, match="NUL"):
        safe_filename("a\x00b.txt")
    with pytest.raises(UploadError):
        safe_filename("...")
    assert safe_filename("../../etc/x.txt") == "x.txt"
    assert safe_filename("naïve café.md") == "naïve café.md"
    assert safe_filename("bad\x07name<>.txt") == "badname_.txt"


def test_rate_limit_and_body_limit(tmp_path, seed_index_dir):
    shutil.copytree(seed_index_dir, tmp_path / "index")
    srv = ServerProcess(SEEDS, tmp_path / "index", env={"ARTICLEQA_RATE_LIMIT_PER_MINUTE": "3"}).wait_ready()
    try:
        codes = [
            httpx.post(
                srv.url + "/api/answer", json={"question": "Who is the Energy Secretary?"}, timeout=60
            ).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        assert httpx.get(srv.url + "/api/health").status_code == 200  # reading is not limited
        big = httpx.post(
            srv.url + "/api/answer", content=b"x" * 20_000_000, headers={"content-type": "application/json"}
        )
        assert big.status_code == 413
    finally:
        srv.stop()


def test_admin_disabled_without_a_token(tmp_path, seed_index_dir):
    shutil.copytree(seed_index_dir, tmp_path / "index")
    srv = ServerProcess(SEEDS, tmp_path / "index", env={"ARTICLEQA_ADMIN_TOKEN": ""}).wait_ready()
    try:
        for method, path in [("post", "/api/rebuild"), ("post", "/api/articles"), ("delete", "/api/articles/x.txt")]:
            r = getattr(httpx, method)(srv.url + path, headers={"Authorization": "Bearer anything"})
            assert r.status_code == 403 and "disabled" in r.json()["error"]
        assert httpx.get(srv.url + "/api/articles").status_code == 200
    finally:
        srv.stop()


# --- CLI and index folder problems -----------------------------------------------------------------


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "articleqa.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "ARTICLEQA_READER_MODEL": str(READER), **(env or {})},
    )


def test_cli_bad_input_gets_clear_messages(tmp_path, seed_index_dir):
    cases = []
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    cases.append((cli("index", str(afile), "--index-dir", str(tmp_path / "i")), 2, "articles folder not found"))
    cases.append((cli("ask", "--index-dir", str(seed_index_dir)), 2, "QUESTION or --questions"))
    cases.append((cli("ask", "Who?", "--top-k", "0", "--index-dir", str(seed_index_dir)), 2, "top_k"))
    bad = tmp_path / "q.json"
    bad.write_text('{"questions": 3}')
    cases.append((cli("ask", "--questions", str(bad), "--index-dir", str(seed_index_dir)), 2, "cannot read"))
    cases.append((cli("ask", "--questions", str(tmp_path / "none.txt")), 2, "not found"))
    cases.append(
        (
            cli("ask", "Who?", "--index-dir", str(seed_index_dir), env={"ARTICLEQA_TOP_K": "many"}),
            2,
            "bad configuration",
        )
    )
    cases.append((cli("eval-reader", "--squad", str(tmp_path / "none.json")), 2, "not found"))
    cases.append(
        (cli("train-reader", "--train", str(tmp_path / "none.json"), "--out", str(tmp_path / "o")), 2, "not found")
    )
    for r, code, words in cases:
        assert r.returncode == code, (r.args, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_broken_index_folders_get_clear_messages(tmp_path, seed_index_dir):
    def copy(name):
        d = tmp_path / name
        shutil.copytree(seed_index_dir, d)
        return d, d / "versions" / FaissIndexStore(d).current_version()

    truncated, v = copy("truncated")
    data = (v / "vectors.npy").read_bytes()
    (v / "vectors.npy").write_bytes(data[: len(data) // 2])
    edited, v2 = copy("edited")
    (v2 / "manifest.json").write_text("{ not json")
    other, v3 = copy("other")
    m = json.loads((v3 / "manifest.json").read_text())
    m["embedding_model"] = "intfloat/e5-small-v2"
    (v3 / "manifest.json").write_text(json.dumps(m))
    pickled, v4 = copy("pickled")
    np.save(v4 / "vectors.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    m = json.loads((v4 / "manifest.json").read_text())
    import hashlib

    m["checksums"]["vectors.npy"] = hashlib.sha256((v4 / "vectors.npy").read_bytes()).hexdigest()
    (v4 / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexCorruptError, match="unreadable"):
        FaissIndexStore(pickled).load()  # no pickle is ever loaded
    for folder, words in [
        (truncated, "checksum"),
        (edited, "unreadable"),
        (other, "e5-small-v2"),
        (pickled, "unreadable"),
    ]:
        r = cli("ask", "Who is the Energy Secretary?", "--index-dir", str(folder))
        assert r.returncode == 3 and words in r.stderr and "rebuild" in r.stderr and "Traceback" not in r.stderr, (
            r.stderr
        )
    # a rebuild repairs each of them
    r = cli("index", str(SEEDS), "--index-dir", str(truncated))
    assert r.returncode == 0 and "full rebuild" in r.stdout


def test_broken_models_fail_at_start_with_a_clear_message(tmp_path, seed_index_dir):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    for env, words in [
        ({"ARTICLEQA_READER_MODEL": str(empty)}, "missing model weights"),
        ({"ARTICLEQA_READER_MODEL": str(tmp_path / "nope")}, "does not exist"),
        ({"ARTICLEQA_EMBEDDING_MODEL": str(tmp_path / "no-embedder")}, "cannot load embedding model"),
    ]:
        r = cli("serve", "--port", "0", "--index-dir", str(seed_index_dir), env=env)
        assert r.returncode == 3 and words in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


# --- faults while serving --------------------------------------------------------------------------


@pytest.mark.slow
def test_killed_server_restarts_on_the_last_published_index(tmp_path, seed_index_dir):
    shutil.copytree(SEEDS, tmp_path / "articles")
    shutil.copytree(seed_index_dir, tmp_path / "index")
    env = {"ARTICLEQA_ADMIN_TOKEN": "t"}
    srv = ServerProcess(tmp_path / "articles", tmp_path / "index", env=env).wait_ready()
    stop = threading.Event()

    def ask_forever():
        while not stop.is_set():
            try:
                httpx.post(srv.url + "/api/answer", json={"question": "Who is the Energy Secretary?"}, timeout=30)
            except httpx.HTTPError:
                pass

    threads = [threading.Thread(target=ask_forever) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(2)
    (tmp_path / "articles" / "extra.txt").write_text(
        "An extra article about the harbour of Port Vela.\n", encoding="utf-8"
    )
    assert (
        httpx.post(srv.url + "/api/rebuild", json={"full": True}, headers={"Authorization": "Bearer t"}).status_code
        == 202
    )
    time.sleep(0.3)
    srv.proc.send_signal(signal.SIGKILL)  # while answering and while rebuilding
    srv.stop()
    stop.set()
    for t in threads:
        t.join(30)
    published = FaissIndexStore(tmp_path / "index").current_version()
    srv2 = ServerProcess(tmp_path / "articles", tmp_path / "index", env=env).wait_ready()
    try:
        health = httpx.get(srv2.url + "/api/health").json()
        assert health["index_version"] == published
        a = httpx.post(srv2.url + "/api/answer", json={"question": "Who is the Energy Secretary?"}, timeout=60).json()
        assert a["answer"] == "Chris Wright"
    finally:
        srv2.stop()


def test_unwritable_index_fails_the_rebuild_and_keeps_serving(pipeline, monkeypatch, tmp_path):
    from articleqa.serve.service import RebuildJobs
    from articleqa.stores import faiss as store_mod

    shutil.copytree(pipeline.settings.index_dir, tmp_path / "index")
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    p = QAPipeline(
        Settings(index_dir=tmp_path / "index", reader_model=str(READER)),
        pipeline.embedder,
        pipeline.chunker,
        pipeline.reader,
    )
    before = p.indexes.get().version

    def read_only(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(store_mod, "_write_file", read_only)
    jobs = RebuildJobs(p)
    jobs.start(full=True)
    status = jobs.wait(120)
    assert status["state"] == "failed" and "Read-only file system" in status["error"]
    assert FaissIndexStore(tmp_path / "index").current_version() == before
    assert p.ask("Who is the Energy Secretary?").answer == "Chris Wright"


# --- property-based: the citation invariant on random Unicode --------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=400), st.data())
def test_citation_invariant_on_random_unicode(text, data):
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    p0 = data.draw(st.integers(0, start))
    p1 = data.draw(st.integers(end, len(text)))
    passage = Passage(0, "f.txt", p0, p1, text[p0:p1])

    class _Index:
        articles = {"f.txt": Article("f.txt", text, "0")}

    c = span_citation(ReadSpan(passage, start, end, text[start:end], 1.0, 0.9), _Index())
    assert c.quote == text[c.start : c.end] and c.passage == text[c.passage_start : c.passage_end]
    assert p0 <= start <= c.start <= c.end <= end <= p1


@settings(max_examples=15, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300))
def test_reader_offsets_on_random_unicode(reader, text):
    [pred] = reader.predict([("What is it?", text)])
    assert text[pred.start : pred.end] == pred.text


@pytest.mark.slow
def test_load_with_a_rebuild_in_the_middle(tmp_path):
    """16 concurrent clients on 127.0.0.1 with a full rebuild halfway: zero failures, valid citations."""
    r = subprocess.run(
        [sys.executable, "bench/load.py", "--clients", "16", "--seconds", "30"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "ARTICLEQA_BENCH_OUT": str(tmp_path)},
    )
    print(r.stdout[-600:])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads((tmp_path / "load.json").read_text())
    assert result["failed"] == 0 and result["invalid_citations"] == 0 and result["requests"] > 50
    assert result["rebuild_state"] == "done" and result["index_versions_seen"] == 2
