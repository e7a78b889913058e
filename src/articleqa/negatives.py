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

from articleqa.squad import SquadQuestion


def hard_negatives(questions: list[SquadQuestion], per_question: int = 1, seed: int = 0) -> list[SquadQuestion]:
    """Up to ``per_question`` no-answer examples per answerable question: the paragraphs of its own
    article that BM25 ranks closest to the question, skipping any that contain a reference answer."""
    if per_question <= 0:
        return []
    import bm25s

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
        tokenizer = bm25s.tokenization.Tokenizer(stopwords="en", lower=True)  # one vocabulary per article
        tokens = tokenizer.tokenize(paras, update_vocab=True, return_as="ids", show_progress=False)
        index = bm25s.BM25()
        index.index(tokens, show_progress=False)
        qs = by_title[title]
        q_tokens = tokenizer.tokenize([q.question for q in qs], update_vocab=False, return_as="ids", show_progress=False)
        ids, scores = index.retrieve(q_tokens, k=len(paras), show_progress=False, n_threads=1)
        for q, ranked, sc in zip(qs, ids, scores):
            answers = [text for text, _ in q.answers]
            ranked = [int(i) for i, s in zip(ranked, sc) if s > 0] or rng.sample(range(len(paras)), len(paras))
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
