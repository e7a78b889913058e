"""Retrieve: dense (FAISS) and lexical (BM25, via ``bm25s``) search over the same passages, fused with
reciprocal rank fusion. News questions hinge on names and numbers, where BM25 helps the dense model;
``bench/seed_qa.py`` measures each retriever and the fusion (recall@5 on the seed questions).

Example::

    retriever = HybridRetriever(embedder)
    hits = retriever.retrieve(index, "Who is the Energy Secretary?", top_k=5)
"""

from __future__ import annotations

import time
from typing import Sequence

from articleqa.protocols import Embedder, IndexVersion, Retriever
from articleqa.types import ScoredPassage

RRF_K = 60


class DenseRetriever:
    """Nearest passages by cosine similarity of sentence embeddings."""

    name = "dense"

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def retrieve(
        self, index: IndexVersion, query: str, top_k: int = 5, timings: dict | None = None
    ) -> list[ScoredPassage]:
        t = time.perf_counter()
        vec = self.embedder.encode([query], progress=False)
        if timings is not None:
            timings["embedding"] = timings.get("embedding", 0.0) + time.perf_counter() - t
        [hits] = index.search(vec, top_k)
        return [ScoredPassage(index.passages[i], s, {self.name: r + 1}) for r, (i, s) in enumerate(hits)]


class BM25Ranker:
    """Okapi BM25 (``bm25s``) over a list of texts: lower-cased words, English stop words removed.

    Used for the passages of an index version and, in training, for the paragraphs of one article.

    Example::

        ranker = BM25Ranker(["The bridge opened in 1998.", "Rain fell."])
        ranker.search(["When did the bridge open?"], k=1)   # [[(0, 0.98...)]]
    """

    def __init__(self, texts: Sequence[str]):
        import bm25s

        self.tokenizer = bm25s.tokenization.Tokenizer(stopwords="en", lower=True)
        tokens = self.tokenizer.tokenize(list(texts), update_vocab=True, return_as="ids", show_progress=False)
        self.bm25 = bm25s.BM25()
        self.bm25.index(tokens, show_progress=False)
        self.n = len(texts)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to ``k`` (text position, score) with a positive score, best first."""
        k = min(k, self.n)
        if k <= 0:
            return [[] for _ in queries]
        q = self.tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids", show_progress=False)
        ids, scores = self.bm25.retrieve(q, k=k, show_progress=False, n_threads=1)
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s) if s > 0] for row_i, row_s in zip(ids, scores)]


def _passage_ranker(index: IndexVersion) -> BM25Ranker:
    """The BM25 ranker of an index version's passages (built once per version, see ``IndexVersion.cached``)."""
    return BM25Ranker([_bm25_text(p) for p in index.passages])


def _bm25_text(p) -> str:
    return f"{p.title}\n{p.text}" if p.title and p.title not in p.text else p.text


class BM25Retriever:
    """Okapi BM25 over passage words (English stop words removed)."""

    name = "bm25"

    def retrieve(
        self, index: IndexVersion, query: str, top_k: int = 5, timings: dict | None = None
    ) -> list[ScoredPassage]:
        [hits] = index.cached("bm25", _passage_ranker).search([query], top_k)
        return [ScoredPassage(index.passages[i], s, {self.name: r + 1}) for r, (i, s) in enumerate(hits)]


class HybridRetriever:
    """Reciprocal rank fusion of dense and BM25 results: score = sum of 1 / (60 + rank)."""

    name = "hybrid"

    def __init__(self, embedder: Embedder, candidates: int = 50):
        self.dense = DenseRetriever(embedder)
        self.bm25 = BM25Retriever()
        self.candidates = candidates

    def retrieve(
        self, index: IndexVersion, query: str, top_k: int = 5, timings: dict | None = None
    ) -> list[ScoredPassage]:
        n = max(top_k, self.candidates)
        return reciprocal_rank_fusion(
            [self.dense.retrieve(index, query, n, timings), self.bm25.retrieve(index, query, n)], top_k
        )


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


def make_retriever(kind: str, embedder: Embedder) -> Retriever:
    """``hybrid`` (default), ``dense`` or ``bm25``."""
    if kind == "hybrid":
        return HybridRetriever(embedder)
    if kind == "dense":
        return DenseRetriever(embedder)
    if kind == "bm25":
        return BM25Retriever()
    raise ValueError(f"unknown retriever {kind!r}: use hybrid, dense or bm25")
