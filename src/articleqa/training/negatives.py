"""Retrieved hard negatives: train the reader to say "no answer here" to the passages retrieval brings.

SQuAD pairs every question with the one paragraph that answers it, but the pipeline reads the top-k
retrieved passages, most of which are on the same topic and do not hold the answer. A reader never
shown such passages finds confident spans in them, which costs both answer accuracy (the wrong
passage wins) and honest "not found" (Clark & Gardner 2018, "Simple and Effective Multi-Paragraph
Reading Comprehension"; DPR's reader trains the same way). For each answerable training question
this adds the most similar other paragraphs of the same article (BM25 over the article's
paragraphs, via ``bm25s``) that contain none of its reference answers, as unanswerable examples.

Example::

    extra = hard_negatives(train_questions, per_question=1, seed=0)
    # SquadQuestion(is_impossible=True, context=<a paragraph that does not answer it>, ...)
"""

from __future__ import annotations

import random
from collections import defaultdict

from articleqa.retrieval import BM25Ranker
from articleqa.training.squad import SquadQuestion


def hard_negatives(questions: list[SquadQuestion], per_question: int = 1, seed: int = 0) -> list[SquadQuestion]:
    """Up to ``per_question`` no-answer examples per answerable question: the paragraphs of its own
    article that BM25 ranks closest to the question, skipping any that contain a reference answer."""
    if per_question <= 0:
        return []
    paragraphs: dict[str, list[str]] = defaultdict(list)
    for q in questions:
        if q.context not in paragraphs[q.title]:
            paragraphs[q.title].append(q.context)
    rng = random.Random(seed)
    out: list[SquadQuestion] = []
    by_title: dict[str, list[SquadQuestion]] = defaultdict(list)
    for q in questions:
        if not q.is_impossible:
            by_title[q.title].append(q)
    for title in sorted(by_title):
        paras = paragraphs[title]
        if len(paras) < 2:
            continue
        qs = by_title[title]
        ranker = BM25Ranker(paras)  # one vocabulary per article
        for q, hits in zip(qs, ranker.search([q.question for q in qs], k=len(paras))):
            answers = [text for text, _ in q.answers]
            ranked = [i for i, _ in hits] or rng.sample(range(len(paras)), len(paras))
            picked = 0
            for i in ranked:
                para = paras[i]
                if para == q.context or any(a in para for a in answers):
                    continue
                out.append(SquadQuestion(id=f"{q.id}-neg{picked}", question=q.question, context=para,
                                         title=title, answers=(), is_impossible=True))
                picked += 1
                if picked >= per_question:
                    break
    return out
