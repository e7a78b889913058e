"""Index: round trip, mismatch errors, checksums, incremental updates, atomic publish."""

import json
import shutil

import numpy as np
import pytest
from conftest import SEEDS

from articleqa.chunking import SentenceChunker
from articleqa.indexing import IndexBuilder
from articleqa.retrieval import HybridRetriever
from articleqa.stores import FaissIndexStore, IndexCorruptError, IndexMismatchError, IndexNotFoundError


def test_round_trip_gives_same_results(tmp_path, embedder, seed_index_dir):
    store = FaissIndexStore(seed_index_dir)
    a = store.load(embedder.name, None)
    b = FaissIndexStore(seed_index_dir).load(embedder.name, None)
    assert a.version == b.version and a.passages == b.passages
    assert np.array_equal(a.vectors, b.vectors)
    retriever = HybridRetriever(embedder)
    for q in ["Who is the Energy Secretary?", "explosions in Caracas"]:
        assert [h.passage.id for h in retriever.retrieve(a, q, 5)] == [
            h.passage.id for h in retriever.retrieve(b, q, 5)
        ]
    m = a.manifest
    assert m["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2" and m["dimension"] == 384
    assert set(m["files"]) == {p.name for p in SEEDS.glob("*.txt")}
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())
    assert m["chunking"]["target_words"] == 150 and m["built_at"]


def test_mismatch_is_a_clear_error(seed_index_dir, embedder):
    store = FaissIndexStore(seed_index_dir)
    with pytest.raises(IndexMismatchError, match="embedding model .*rebuild"):
        store.load("some/other-model", None)
    other = {**store.read_manifest()["chunking"], "target_words": 99}
    with pytest.raises(IndexMismatchError, match="chunking.*rebuild"):
        store.load(embedder.name, other)


def test_missing_and_corrupt_index(tmp_path, seed_index_dir, embedder):
    with pytest.raises(IndexNotFoundError, match="articleqa index"):
        FaissIndexStore(tmp_path / "none").load()
    copy = tmp_path / "copy"
    shutil.copytree(seed_index_dir, copy)
    store = FaissIndexStore(copy)
    vdir = copy / "versions" / store.current_version()
    with open(vdir / "passages.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": 999, "file": "x", "start": 0, "end": 1, "text": "hand edit"}\n')
    with pytest.raises(IndexCorruptError, match="checksum"):
        store.load(embedder.name)
    (vdir / "vectors.npy").write_bytes(b"\x93NUMPY")  # truncated
    with pytest.raises(IndexCorruptError):
        store.load(embedder.name)


def test_incremental_add_change_delete(tmp_path, embedder):
    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    builder = IndexBuilder(embedder, SentenceChunker())
    index_dir = tmp_path / "index"
    first = builder.build(articles, index_dir)
    assert first.full and first.embedded == first.passages
    assert builder.build(articles, index_dir).up_to_date

    (articles / "new.txt").write_text(
        "The harbour bridge of Port Vela was opened by mayor Ana Lima in 2031.", encoding="utf-8"
    )
    added = builder.build(articles, index_dir)
    assert added.added == ["new.txt"] and not added.full
    assert added.embedded == 1 and added.passages == first.passages + 1

    (articles / "new.txt").write_text(
        "The harbour bridge of Port Vela was opened by mayor Rui Costa in 2032.", encoding="utf-8"
    )
    changed = builder.build(articles, index_dir)
    assert changed.changed == ["new.txt"] and changed.embedded == 1
    index = FaissIndexStore(index_dir).load(embedder.name)
    assert "Rui Costa" in index.articles["new.txt"].text
    assert not any("Ana Lima" in p.text for p in index.passages)

    (articles / "000_a9d1c48ba2d92731.txt").unlink()
    removed = builder.build(articles, index_dir)
    assert removed.removed == ["000_a9d1c48ba2d92731.txt"] and removed.embedded == 0
    index = FaissIndexStore(index_dir).load(embedder.name)
    assert "000_a9d1c48ba2d92731.txt" not in index.articles
    assert all(p.file != "000_a9d1c48ba2d92731.txt" for p in index.passages)
    # vectors reused for unchanged files are the same as freshly computed ones
    fresh = embedder.encode([p.text for p in index.passages])
    assert np.allclose(fresh, index.vectors, atol=1e-5)

    full = builder.build(articles, index_dir, full=True)
    assert full.full and full.full_reason == "--full requested"
    # a change of chunking forces a full rebuild, saying why
    other = IndexBuilder(embedder, SentenceChunker(target_words=120, overlap_words=30))
    report = other.build(articles, index_dir)
    assert report.full and "chunking" in report.full_reason
    # old versions are cleaned up
    assert len(list((index_dir / "versions").iterdir())) <= 2


def test_publish_is_atomic_leftovers_are_ignored_and_cleaned(tmp_path, embedder, seed_index_dir):
    copy = tmp_path / "index"
    shutil.copytree(seed_index_dir, copy)
    store = FaissIndexStore(copy)
    before = store.current_version()
    # a rebuild that died mid-write leaves a temp folder and maybe a temp pointer: never loaded
    (copy / "versions" / ".tmp-20990101T000000-dead").mkdir()
    (copy / "versions" / ".tmp-20990101T000000-dead" / "vectors.npy").write_bytes(b"partial")
    (copy / ".CURRENT.dead.tmp").write_text("20990101T000000-dead")
    assert store.load(embedder.name).version == before
    IndexBuilder(embedder, SentenceChunker()).build(SEEDS, copy)  # up to date, but cleans leftovers
    assert not list((copy / "versions").glob(".tmp-*")) and not list(copy.glob(".CURRENT.*"))
    assert json.loads((copy / "versions" / before / "manifest.json").read_text())["version"] == before
