"""Retrieve: dense (FAISS) and lexical (BM25, via ``bm25s``) search over the same passages, fused with
reciprocal rank fusion. News questions hinge on names and numbers, where BM25 helps the dense model;
``bench/retrieval.py`` measures each retriever and fusion.

Example::

    retriever = HybridRetriever(embedder)
    hits = retriever.run(index, "Who is the Energy Secretary?", top_k=5)
"""

from __future__ import annotations

import time

from articleqa.embedding import Embedder
from articleqa.store import LoadedIndex
from articleqa.types import ScoredPassage

RRF_K = 60


class DenseRetriever:
    """Nearest passages by cosine similarity of sentence embeddings."""

    name = "dense"

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def run(self, index: LoadedIndex, query: str, top_k: int = 5, timings: dict | None = None) -> list[ScoredPassage]:
        t = time.perf_counter()
        vec = self.embedder.encode([query], progress=False)
        if timings is not None:
            timings["embedding"] = timings.get("embedding", 0.0) + time.perf_counter() - t
        [hits] = index.search(vec, top_k)
        return [ScoredPassage(index.passages[i], s, {self.name: r + 1}) for r, (i, s) in enumerate(hits)]


class _BM25Index:
    """bm25s index plus its tokenizer (vocabulary), built once per index version."""

    def __init__(self, index: LoadedIndex):
        import bm25s

        self.tokenizer = bm25s.tokenization.Tokenizer(stopwords="en", lower=True)
        tokens = self.tokenizer.tokenize([_bm25_text(p) for p in index.passages], update_vocab=True, return_as="ids", show_progress=False)
        self.bm25 = bm25s.BM25()
        self.bm25.index(tokens, show_progress=False)
        self.n = len(index.passages)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        k = min(k, self.n)
        if k <= 0:
            return []
        q = self.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)
        ids, scores = self.bm25.retrieve(q, k=k, show_progress=False, n_threads=1)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]


def _bm25_text(p) -> str:
    return f"{p.title}\n{p.text}" if p.title and p.title not in p.text else p.text


class BM25Retriever:
    """Okapi BM25 over passage words (English stop words removed)."""

    name = "bm25"

    def run(self, index: LoadedIndex, query: str, top_k: int = 5, timings: dict | None = None) -> list[ScoredPassage]:
        bm25 = index.cached("bm25", _BM25Index)
        return [ScoredPassage(index.passages[i], s, {self.name: r + 1}) for r, (i, s) in enumerate(bm25.search(query, top_k))]


class HybridRetriever:
    """Reciprocal rank fusion of dense and BM25 results: score = sum of 1 / (60 + rank)."""

    name = "hybrid"

    def __init__(self, embedder: Embedder, candidates: int = 50):
        self.dense = DenseRetriever(embedder)
        self.bm25 = BM25Retriever()
        self.candidates = candidates

    def run(self, index: LoadedIndex, query: str, top_k: int = 5, timings: dict | None = None) -> list[ScoredPassage]:
        n = max(top_k, self.candidates)
        return reciprocal_rank_fusion([self.dense.run(index, query, n, timings), self.bm25.run(index, query, n)], top_k)


def reciprocal_rank_fusion(result_lists: list[list[ScoredPassage]], top_k: int, k: int = RRF_K) -> list[ScoredPassage]:
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    passages = {}
    for results in result_lists:
        for hit in results:
            pid = hit.passage.id
            passages[pid] = hit.passage
            for name, rank in hit.ranks.items():
                scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank)
                ranks.setdefault(pid, {})[name] = rank
    order = sorted(scores, key=lambda pid: (-scores[pid], pid))[:top_k]
    return [ScoredPassage(passages[pid], scores[pid], ranks[pid]) for pid in order]


def make_retriever(kind: str, embedder: Embedder):
    """``hybrid`` (default), ``dense`` or ``bm25``."""
    if kind == "hybrid":
        return HybridRetriever(embedder)
    if kind == "dense":
        return DenseRetriever(embedder)
    if kind == "bm25":
        return BM25Retriever()
    raise ValueError(f"unknown retriever {kind!r}: use hybrid, dense or bm25")
