"""Retrieved passages: train the reader on what the pipeline reads, not on SQuAD's paragraphs.

SQuAD gives the reader one whole paragraph that answers the question. The pipeline gives it the top-k
passages of the index instead: sentence-aware chunks of about 150 words (``SentenceChunker``) that
start and stop at other places than the paragraphs do, most of which do not hold the answer, and it
answers with the passage whose span beats its no-answer score by the most. Measured on held-out
articles (``bench/heldout.py``), the shipped reader loses 6-7 points of F1 between its paragraph and
the best span among the top-5 passages (5-7% of the answers are not among them), and 4-6 more in
picking among them. This builds, for a sample of answerable training questions, the
examples of that setting: the article written as the open corpus writes it (paragraphs joined by
blank lines), chunked as the index chunks it; the passage holding the answer, with every reference
answer it holds at its position there, and the passages of the same article that BM25 ranks closest
to the question and that contain no reference answer anywhere, as no-answer examples (Clark & Gardner
2018 train on the paragraphs a retriever brings for the same reason).

Example::

    extra = retrieved_passages(train_questions, per_question=2, share=0.3, seed=0)
    # one answerable SquadQuestion on the passage with the answer, two unanswerable ones on passages without it
"""

from __future__ import annotations

import random
from collections import defaultdict

from articleqa.retrieval import BM25Ranker
from articleqa.training.squad import SquadQuestion, article_text


def source_question_id(example_id: str) -> str:
    """The id of the question a ``retrieved_passages`` example was made from (its passages share it)."""
    return example_id.rpartition("-psg")[0]


def retrieved_passages(
    questions: list[SquadQuestion], per_question: int = 2, share: float = 1.0, seed: int = 0, chunker=None
) -> list[SquadQuestion]:
    """For a seeded ``share`` of the answerable questions: the passage of their article that holds the
    (first) reference answer, as an answerable example with the references inside it, plus up to
    ``per_question`` other passages of the article, closest to the question by BM25 and containing no
    reference answer, as unanswerable examples. ``per_question`` 0 (or ``share`` 0) gives nothing: the flag is off."""
    if share <= 0 or per_question <= 0:
        return []
    if chunker is None:
        from articleqa.chunking import SentenceChunker

        chunker = SentenceChunker()
    rng = random.Random(seed)
    by_title: dict[str, list[SquadQuestion]] = defaultdict(list)
    paragraphs: dict[str, list[str]] = defaultdict(list)
    for q in questions:
        if q.context not in paragraphs[q.title]:
            paragraphs[q.title].append(q.context)
        if not q.is_impossible and q.answers and (share >= 1.0 or rng.random() < share):
            by_title[q.title].append(q)
    out: list[SquadQuestion] = []
    for title in sorted(by_title):
        text, offset = article_text(paragraphs[title])
        spans = chunker.spans(text)
        if not spans:
            continue
        chunks = [text[s:e] for s, e in spans]
        qs = by_title[title]
        for q, hits in zip(qs, BM25Ranker(chunks).search([q.question for q in qs], k=len(chunks))):
            base = offset[q.context]
            refs = [(t, base + s) for t, s in q.answers]
            first_text, first_at = refs[0]
            holding = [i for i, (s, e) in enumerate(spans) if s <= first_at and first_at + len(first_text) <= e]
            if not holding:  # the answer straddles a cut between passages: the pipeline cannot quote it either
                continue
            i = holding[0] if len(holding) == 1 else rng.choice(holding)
            s, e = spans[i]
            inside = tuple(sorted({(t, a - s) for t, a in refs if s <= a and a + len(t) <= e}, key=lambda r: r[1]))
            out.append(
                SquadQuestion(
                    id=f"{q.id}-psg",
                    question=q.question,
                    context=chunks[i],
                    title=title,
                    answers=inside,
                    is_impossible=False,
                )
            )
            texts = [t for t, _ in q.answers]
            picked = 0
            for j, _ in hits:
                if picked >= per_question:
                    break
                if j in holding or any(t in chunks[j] for t in texts):
                    continue
                out.append(
                    SquadQuestion(
                        id=f"{q.id}-psg{picked}",
                        question=q.question,
                        context=chunks[j],
                        title=title,
                        answers=(),
                        is_impossible=True,
                    )
                )
                picked += 1
    return out
