"""Chunker: exact offsets, sentence-aware sizes, overlap, never across articles."""

import re

from conftest import SEEDS
from hypothesis import example, given, settings
from hypothesis import strategies as st

from articleqa.chunking import SentenceChunker
from articleqa.ingest import ArticleLoader
from articleqa.types import Article


def _words(s: str) -> int:
    return len(s.split())


def test_seed_passages_have_exact_offsets_and_sizes():
    articles, _ = ArticleLoader().load(SEEDS)
    chunker = SentenceChunker(target_words=150, overlap_words=40)
    passages = chunker.chunk(articles)
    texts = {a.file: a.text for a in articles}
    assert [p.id for p in passages] == list(range(len(passages)))
    for p in passages:
        assert texts[p.file][p.start : p.end] == p.text
        assert _words(p.text) <= chunker.settings.max_words
    for a in articles:
        mine = [p for p in passages if p.file == a.file]
        # every word of the article is in some passage
        covered = set()
        for p in mine:
            covered.update(range(p.start, p.end))
        for m in re.finditer(r"\S+", a.text):
            assert m.start() in covered
        # consecutive passages overlap, and all but the last reach about 100 words
        for prev, nxt in zip(mine, mine[1:]):
            assert nxt.start < prev.end
            assert _words(prev.text) >= 100
        # passages end at sentence ends
        for p in mine[:-1]:
            assert p.text.rstrip()[-1] in ".!?”\"'’)" or p.end == len(a.text.rstrip())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=80), min_size=1, max_size=40), st.integers(10, 60))
@example(pieces=["\x1f0", "", ""], target=10)  # pysbd raised on an information separator before a list number
def test_offsets_hold_on_random_unicode(pieces, target):
    text = " ".join(pieces) + "\n\n" + ". ".join(pieces)
    chunker = SentenceChunker(target_words=target, overlap_words=target // 3)
    article = Article(file="x.txt", text=text, sha256="0")
    for p in chunker.chunk([article]):
        assert text[p.start : p.end] == p.text
        assert p.text == p.text.strip() and p.text
