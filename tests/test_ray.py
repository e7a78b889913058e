"""Chunking and embedding as a Ray Data job, on a real local Ray with 2 CPUs."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ray", reason="the Ray job needs pip install 'articleqa[scale]'")

from conftest import READER, ROOT, SEEDS  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from articleqa.ray_embedding import start_local_ray

    start_local_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def test_ray_build_matches_the_in_process_build(tmp_path, embedder, local_ray):
    from articleqa.chunking import SentenceChunker
    from articleqa.indexing import IndexBuilder
    from articleqa.ray_embedding import RayChunkEmbedder
    from articleqa.stores import FaissIndexStore

    chunker = SentenceChunker()
    IndexBuilder(embedder, chunker).build(SEEDS, tmp_path / "local")
    IndexBuilder(embedder, chunker, batch_job=RayChunkEmbedder(embedder, chunker)).build(SEEDS, tmp_path / "ray")
    local = FaissIndexStore(tmp_path / "local").load()
    remote = FaissIndexStore(tmp_path / "ray").load()
    assert remote.passages == local.passages  # same files, offsets, texts, ids
    cosine = np.sum(local.vectors * remote.vectors, axis=1) / (
        np.linalg.norm(local.vectors, axis=1) * np.linalg.norm(remote.vectors, axis=1)
    )
    assert cosine.min() >= 0.999, cosine.min()


def test_ray_build_into_milvus_answers(tmp_path, embedder, reader, local_ray):
    pytest.importorskip("pymilvus")
    from articleqa.chunking import SentenceChunker
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    articles = tmp_path / "articles"
    shutil.copytree(SEEDS, articles)
    s = Settings(
        articles_dir=articles,
        index_dir=tmp_path / "index",
        reader_model=str(READER),
        embed_with="ray",
        store=f"milvus:{tmp_path / 'index' / 'milvus.db'}",
    )
    p = QAPipeline(s, embedder, SentenceChunker(s.chunk_words, s.chunk_overlap_words), reader)
    report = p.build_index()
    assert report.embedded == report.passages > 0
    (articles / "zz_new.txt").write_text(
        "Port report\n\nThe harbour master of Kelmar is Ilse Marten.\n", encoding="utf-8"
    )
    report = p.build_index()
    assert report.added == ["zz_new.txt"] and report.embedded == 1  # incremental: only the new file went to Ray
    p.indexes.reload_now()
    assert p.ask("Who is the harbour master of Kelmar?").answer == "Ilse Marten"
    assert p.ask("Who is the Energy Secretary?").answer == "Chris Wright"
    p.store.close()


def test_without_ray_the_index_command_says_how_to_install(tmp_path):
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'): raise ImportError('no ray here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from articleqa.cli import app\n"
        "sys.argv = ['articleqa'] + sys.argv[1:]\n"
        "app()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", blocker, "index", str(SEEDS), "--index-dir", str(tmp_path / "i"), "--embed-with", "ray"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 2, r.stderr
    assert "pip install 'articleqa[scale]'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "i" / "CURRENT").exists()
