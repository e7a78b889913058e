"""Shared fixtures: real models, real indexes, a real server process. Nothing is mocked."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from articleqa.testing import ServerProcess as _ServerProcess

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ARTICLEQA_SHARED", ROOT.parent / "shared")).resolve()
SEEDS = ROOT / "seeds"
READER = ROOT / "models" / "reader"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def seed_qa() -> dict:
    path = SHARED / "data" / "seed-qa-visible.json"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path} (set ARTICLEQA_SHARED)", allow_module_level=True)
    return json.loads(path.read_text(encoding="utf-8"))


def squad_file(name: str) -> Path:
    path = SHARED / "data" / "squad" / name
    if not path.is_file():
        pytest.skip(f"shared SQuAD data not found at {path}", allow_module_level=True)
    return path


@pytest.fixture(scope="session")
def embedder():
    from articleqa.embedding import Embedder

    e = Embedder()
    e.warm_up()
    return e


@pytest.fixture(scope="session")
def reader():
    from articleqa.reader import ExtractiveReader

    r = ExtractiveReader(str(READER))
    r.warm_up()
    return r


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory, embedder) -> Path:
    """An index of seeds/ built once per session by the real builder."""
    from articleqa.chunking import SentenceChunker
    from articleqa.indexing import IndexBuilder

    index_dir = tmp_path_factory.mktemp("seed-index")
    IndexBuilder(embedder, SentenceChunker()).build(SEEDS, index_dir)
    return index_dir


@pytest.fixture(scope="session")
def pipeline(seed_index_dir, embedder, reader):
    from articleqa.chunking import SentenceChunker
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    settings = Settings(articles_dir=SEEDS, index_dir=seed_index_dir, reader_model=str(READER))
    p = QAPipeline(settings, embedder, SentenceChunker(settings.chunk_words, settings.chunk_overlap_words), reader)
    p.warm_up()
    return p


class ServerProcess(_ServerProcess):
    """The real server with the shipped reader (whatever ARTICLEQA_READER_MODEL says outside)."""

    def __init__(
        self,
        articles: Path,
        index_dir: Path,
        env: dict | None = None,
        extra_args: list[str] | None = None,
        workers: int | None = None,
    ):
        super().__init__(
            articles,
            index_dir,
            env={"ARTICLEQA_READER_MODEL": str(READER), **(env or {})},
            extra_args=extra_args,
            workers=workers,
        )


@pytest.fixture(scope="session")
def server(tmp_path_factory, seed_index_dir):
    """The real server over a copy of the seed articles and index, with an admin token."""
    base = tmp_path_factory.mktemp("server")
    articles = base / "articles"
    shutil.copytree(SEEDS, articles)
    index_dir = base / "index"
    shutil.copytree(seed_index_dir, index_dir)
    srv = ServerProcess(articles, index_dir, env={"ARTICLEQA_ADMIN_TOKEN": "test-token"})
    srv.articles, srv.index_dir, srv.token = articles, index_dir, "test-token"
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def citation_is_valid(citation: dict | object, texts: dict[str, str]) -> bool:
    c = citation if isinstance(citation, dict) else citation.model_dump()
    text = texts[c["file"]]
    return (
        0 <= c["start"] < c["end"] <= len(text)
        and text[c["start"] : c["end"]] == c["quote"]
        and c["passage_start"] <= c["start"]
        and c["end"] <= c["passage_end"]
    )


def seed_texts() -> dict[str, str]:
    """text_of(file): the UTF-8 decoded file, straight from disk."""
    return {p.name: p.read_bytes().decode("utf-8") for p in SEEDS.glob("*.txt")}


# --- Milvus's own engine (milvus-lite 2.5.1, native C++), as a gRPC server on 127.0.0.1 --------------------
# It cannot share .venv with milvus-lite 3.x: the test run makes a small second venv (.venv-native, once,
# see articleqa.testing) and starts its server; the tests in .venv talk to it through pymilvus at
# milvus:http://127.0.0.1:PORT, the code path of a remote Milvus server.
@pytest.fixture(scope="session")
def native_milvus(tmp_path_factory):
    """``http://127.0.0.1:PORT`` of a running milvus-lite 2.5.1 server (Milvus's native engine)."""
    from articleqa.testing import NativeMilvusServer

    try:
        server = NativeMilvusServer(tmp_path_factory.mktemp("milvus-native")).start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server.url
    server.stop()
