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

The other way round, ``swapped_entity_questions`` and ``swapped_word_questions`` keep the paragraph
and change the question (a name, year or number swapped for one the paragraph never mentions; a word
swapped for its opposite): unanswerable twins of the kind SQuAD 2.0's own unanswerable questions are.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

from articleqa.mentions import kind as _kind
from articleqa.mentions import mentions as _mentions
from articleqa.retrieval import BM25Ranker
from articleqa.training.squad import SquadQuestion


def hard_negatives(
    questions: list[SquadQuestion], per_question: int = 1, seed: int = 0, share: float = 1.0
) -> list[SquadQuestion]:
    """Up to ``per_question`` no-answer examples per answerable question: the paragraphs of its own
    article that BM25 ranks closest to the question, skipping any that contain a reference answer.

    ``share`` < 1 gives negatives to that share of the questions only (a seeded sample; every
    paragraph can still be picked): on the whole training set one negative per question would double
    an epoch's cost."""
    if per_question <= 0 or share <= 0:
        return []
    paragraphs: dict[str, list[str]] = defaultdict(list)
    for q in questions:
        if q.context not in paragraphs[q.title]:
            paragraphs[q.title].append(q.context)
    rng = random.Random(seed)
    out: list[SquadQuestion] = []
    by_title: dict[str, list[SquadQuestion]] = defaultdict(list)
    for q in questions:
        if not q.is_impossible and (share >= 1.0 or rng.random() < share):
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
                out.append(
                    SquadQuestion(
                        id=f"{q.id}-neg{picked}",
                        question=q.question,
                        context=para,
                        title=title,
                        answers=(),
                        is_impossible=True,
                    )
                )
                picked += 1
                if picked >= per_question:
                    break
    return out


def swapped_entity_questions(
    questions: list[SquadQuestion], per_question: int = 1, seed: int = 0
) -> list[SquadQuestion]:
    """Unanswerable twins of answerable questions, paired with the question's own paragraph.

    A name, year or number the question shares with its paragraph is replaced by another of the
    same kind from elsewhere in the article that the paragraph never mentions ("What was Ban
    Ki-moon the Secretary General of?" -> "What was Kofi Annan the Secretary General of?"). The
    paragraph still matches the question in every other word, which is what SQuAD 2.0's
    unanswerable questions and retrieval's near misses look like; the reader learns to check the
    question's names against the passage before it answers (rule-based variant of Zhu et al. 2019,
    "Learning to Ask Unanswerable Questions for Machine Reading Comprehension").
    """
    if per_question <= 0:
        return []
    rng = random.Random(seed)
    pools: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    seen_paras: set[tuple[str, str]] = set()
    for q in questions:
        if (q.title, q.context) in seen_paras:
            continue
        seen_paras.add((q.title, q.context))
        for _, _, mention in _mentions(q.context, mid_sentence=True):
            pool = pools[q.title][_kind(mention)]
            if mention not in pool:
                pool.append(mention)
    out: list[SquadQuestion] = []
    for q in questions:
        if q.is_impossible:
            continue
        context_lower = q.context.lower()
        answers = [text.lower() for text, _ in q.answers]
        shared = [
            (start, end, mention)
            for start, end, mention in _mentions(q.question)
            if mention.lower() in context_lower and not any(mention.lower() in a for a in answers)
        ]
        rng.shuffle(shared)
        made = 0
        for start, end, mention in shared:
            low = mention.lower()
            pool = [
                c
                for c in pools[q.title][_kind(mention)]
                if c.lower() not in context_lower and low not in c.lower() and c.lower() not in low
            ]
            if not pool:
                continue
            new = q.question[:start] + rng.choice(pool) + q.question[end:]
            out.append(
                SquadQuestion(
                    id=f"{q.id}-swap{made}",
                    question=new,
                    context=q.context,
                    title=q.title,
                    answers=(),
                    is_impossible=True,
                )
            )
            made += 1
            if made >= per_question:
                break
    return out


# Word pairs whose swap turns a question about the paragraph into one it cannot answer when the
# paragraph never uses the other word: SQuAD 2.0's antonym and direction questions ("the western
# half" where the paragraph says "eastern"), which the reader answered from their own paragraph most.
ANTONYMS = [
    ("north", "south"),
    ("east", "west"),
    ("northern", "southern"),
    ("eastern", "western"),
    ("northeast", "southwest"),
    ("northwest", "southeast"),
    ("upper", "lower"),
    ("first", "last"),
    ("before", "after"),
    ("earliest", "latest"),
    ("early", "late"),
    ("largest", "smallest"),
    ("biggest", "smallest"),
    ("highest", "lowest"),
    ("most", "least"),
    ("more", "less"),
    ("increase", "decrease"),
    ("increased", "decreased"),
    ("increasing", "decreasing"),
    ("rise", "fall"),
    ("larger", "smaller"),
    ("higher", "lower"),
    ("longest", "shortest"),
    ("longer", "shorter"),
    ("oldest", "newest"),
    ("older", "newer"),
    ("best", "worst"),
    ("better", "worse"),
    ("maximum", "minimum"),
    ("major", "minor"),
    ("inside", "outside"),
    ("internal", "external"),
    ("public", "private"),
    ("positive", "negative"),
    ("allowed", "forbidden"),
    ("legal", "illegal"),
    ("success", "failure"),
    ("successful", "unsuccessful"),
    ("win", "lose"),
    ("won", "lost"),
    ("start", "end"),
    ("began", "ended"),
    ("open", "closed"),
    ("opened", "closed"),
    ("rich", "poor"),
    ("wealthy", "poor"),
    ("strong", "weak"),
    ("male", "female"),
    ("men", "women"),
    ("modern", "ancient"),
    ("urban", "rural"),
    ("domestic", "foreign"),
]
_OPPOSITE = {**{a: b for a, b in ANTONYMS}, **{b: a for a, b in ANTONYMS}}


def swapped_word_questions(questions: list[SquadQuestion], per_question: int = 1, seed: int = 0) -> list[SquadQuestion]:
    """Unanswerable twins of answerable questions, paired with their own paragraph: one word the
    question shares with the paragraph is replaced by its opposite ("western" -> "eastern",
    "largest" -> "smallest", "after" -> "before"), when the paragraph never uses the opposite."""
    if per_question <= 0:
        return []
    rng = random.Random(seed)
    out: list[SquadQuestion] = []
    for q in questions:
        if q.is_impossible:
            continue
        context_words = set(re.findall(r"[a-z]+", q.context.lower()))
        answers = " ".join(text.lower() for text, _ in q.answers)
        found = [
            m
            for m in re.finditer(r"[A-Za-z]+", q.question)
            if m.group().lower() in _OPPOSITE
            and m.group().lower() in context_words
            and _OPPOSITE[m.group().lower()] not in context_words
            and m.group().lower() not in answers
        ]
        rng.shuffle(found)
        for made, m in enumerate(found[:per_question]):
            new = _OPPOSITE[m.group().lower()]
            if m.group()[0].isupper():
                new = new.capitalize()
            out.append(
                SquadQuestion(
                    id=f"{q.id}-opp{made}",
                    question=q.question[: m.start()] + new + q.question[m.end() :],
                    context=q.context,
                    title=q.title,
                    answers=(),
                    is_impossible=True,
                )
            )
    return out


_NEGATION = re.compile(r"\b(?:not|never|no|nor|neither|none|nobody|nothing|cannot|without|unlike)\b|n't", re.IGNORECASE)
# "Who was the first ...", "Which city is ...", "What can cause ...": the question word is the subject, so
# "not" goes right after the verb. Adverbial question words (where, how, ...) put the subject after
# the verb ("Where were the rocks found?"), so they are left out, and so is a capitalised word after
# the verb ("Who was Unicode developed with?", "What has Estonian as ...": a subject or a main verb).
_AUX_QUESTION = re.compile(
    r"^((?:what|who|which)(?: [\w'-]+){0,2}) (is|was|are|were|can|could|will|would|should|may|might|must"
    r"|has been|have been|had been) (?=(?-i:[a-z]))",
    re.IGNORECASE,
)
# "Who founded ...", "What caused ...": "never" goes before the verb.
_PAST_QUESTION = re.compile(r"^(what|who|which) ([a-z]+ed) (?=(?-i:[a-z]))", re.IGNORECASE)


def negated_questions(questions: list[SquadQuestion], per_question: int = 1) -> list[SquadQuestion]:
    """Unanswerable twins of answerable questions, paired with their own paragraph: the question is
    negated ("Who was the first ...?" -> "Who was not the first ...?", "Who founded ...?" -> "Who never
    founded ...?"), SQuAD 2.0's negation kind. Only for paragraphs that never negate anything
    ("not", "never", "n't", "without", ...), so the twin cannot be answered from a sentence that does.
    One twin at most per question (there is one way to negate it), so nothing is drawn at random."""
    if per_question <= 0:
        return []
    out: list[SquadQuestion] = []
    for q in questions:
        if q.is_impossible or _NEGATION.search(q.question) or _NEGATION.search(q.context):
            continue
        if m := _AUX_QUESTION.match(q.question):
            new = f"{m.group(1)} {m.group(2)} not {q.question[m.end() :]}"
        elif m := _PAST_QUESTION.match(q.question):
            new = f"{m.group(1)} never {m.group(2)} {q.question[m.end() :]}"
        else:
            continue
        out.append(
            SquadQuestion(
                id=f"{q.id}-neg", question=new, context=q.context, title=q.title, answers=(), is_impossible=True
            )
        )
    return out


_YEAR = re.compile(r"\b(?:1[5-9]\d{2}|20\d{2})\b")
_ASKS_WHEN = re.compile(r"\b(?:when|year|years|date|century|decade|how long|how old|age)\b", re.IGNORECASE)


def conditioned_questions(questions: list[SquadQuestion], per_question: int = 1, seed: int = 0) -> list[SquadQuestion]:
    """Unanswerable twins of answerable questions, paired with their own paragraph: a condition the
    paragraph cannot meet is added, "in YEAR" with a year of the article that the paragraph never
    mentions ("Who led the party?" -> "Who led the party in 1912?"), SQuAD 2.0's impossible-condition
    kind. Only for questions that name no year and ask no time, on paragraphs that date what they say
    (they mention a year), so the added year contradicts the paragraph rather than adding to it."""
    if per_question <= 0:
        return []
    rng = random.Random(seed)
    years: dict[str, set[str]] = defaultdict(set)
    for q in questions:
        years[q.title].update(_YEAR.findall(q.context))
    out: list[SquadQuestion] = []
    for q in questions:
        if q.is_impossible or _YEAR.search(q.question) or _ASKS_WHEN.search(q.question):
            continue
        own = set(_YEAR.findall(q.context))
        if not own or any(_YEAR.search(text) for text, _ in q.answers):
            continue
        pool = sorted(y for y in years[q.title] - own)
        if not pool:
            continue
        stem = q.question.rstrip().rstrip("?").rstrip()
        for made, year in enumerate(rng.sample(pool, min(per_question, len(pool)))):
            out.append(
                SquadQuestion(
                    id=f"{q.id}-cond{made}",
                    question=f"{stem} in {year}?",
                    context=q.context,
                    title=q.title,
                    answers=(),
                    is_impossible=True,
                )
            )
    return out
