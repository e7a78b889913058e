"""Cloze-style synthetic questions from training paragraphs: a cheap warm-up stage for the reader.

Small-data extractive QA gains from first learning "find the span this sentence is missing" on
text it will later be asked about (Dhingra et al. 2018; Lewis et al. 2019, "Unsupervised QA by
Cloze Translation"). Each question is a sentence of the paragraph with one answer-like span
(a year, a number, a capitalised name or a content phrase) cut out, a wh-word put in front and a
few words dropped, so the model must align context rather than copy a string. Only paragraphs of
the training articles are used: validation articles stay unseen.
"""

from __future__ import annotations

import random
import re

from articleqa.training.squad import SquadArticle, SquadQuestion

_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+|$)")
_WORD = re.compile(r"\S+")
_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})\b")
_NUMBER = re.compile(r"\b\d[\d,.]*(?:\s?(?:%|percent|million|billion|thousand|hundred))?")
_NAME = re.compile(r"\b[A-Z][\w'\-]+(?:(?:\s+(?:of|the|and|de|for|on))?\s+[A-Z][\w'\-]+)*")
_STOP = frozenset(
    "a an the of and or but in on at to for from by with as is are was were be been being it its this that "
    "these those which who whom whose what when where why how he she they them his her their we our you your "
    "i not no than then there here also such into onto over under about after before during between while".split()
)


def _spans(sentence: str, rng: random.Random) -> list[tuple[int, int, str]]:
    """Answer candidates in one sentence: (start, end, wh-word), typed spans first."""
    typed: list[tuple[int, int, str]] = []
    for m in _YEAR.finditer(sentence):
        typed.append((m.start(), m.end(), "when"))
    for m in _NUMBER.finditer(sentence):
        text = m.group().rstrip(",.")
        if not _YEAR.fullmatch(text):
            typed.append(
                (
                    m.start(),
                    m.start() + len(text),
                    "what percentage" if "%" in text or "percent" in text else "how many",
                )
            )
    for m in _NAME.finditer(sentence):
        if m.start() == len(sentence) - len(sentence.lstrip()) and " " not in m.group():
            continue  # a capitalised first word is usually just the start of the sentence
        typed.append((m.start(), m.end(), "who" if rng.random() < 0.3 else "what"))
    if typed:
        return typed
    words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(sentence)]
    phrases = []
    for n in (1, 2, 3):
        for i in range(len(words) - n + 1):
            chunk = words[i : i + n]
            clean = [w.strip(",;:()\"'.").lower() for _, _, w in chunk]
            if any(not c.isalpha() for c in clean) or clean[0] in _STOP or clean[-1] in _STOP:
                continue
            if any(not w[2][-1].isalnum() for w in chunk[:-1]):
                continue  # no punctuation inside the phrase
            end = chunk[-1][1] - (len(chunk[-1][2]) - len(chunk[-1][2].rstrip(",;:).\"'")))
            phrases.append((chunk[0][0], end, "what"))
    return phrases


def _question(sentence: str, start: int, end: int, wh: str, rng: random.Random, drop: float) -> str:
    left = sentence[:start].split()[-12:]
    right = sentence[end:].split()[:12]
    kept = [w for w in left + right if rng.random() >= drop]
    body = " ".join(kept).strip(" ,;:.!?")
    return f"{wh} {body}?" if body else ""


def cloze_questions(articles: list[SquadArticle], limit: int, seed: int = 0, drop: float = 0.1) -> list[SquadQuestion]:
    """Up to ``limit`` cloze questions, at most one per sentence, spread over all paragraphs."""
    rng = random.Random(seed)
    out: list[SquadQuestion] = []
    for art in articles:
        for p_i, para in enumerate(art.paragraphs):
            for s_i, m in enumerate(_SENTENCE.finditer(para)):
                sentence = m.group()
                if len(sentence.split()) < 6:
                    continue
                cands = _spans(sentence, rng)
                if not cands:
                    continue
                start, end, wh = rng.choice(cands)
                answer = sentence[start:end]
                question = _question(sentence, start, end, wh, rng, drop)
                if not answer.strip() or len(question.split()) < 4 or answer in question:
                    continue  # too little left, or the answer recurs in the sentence
                a0 = m.start() + start
                assert para[a0 : a0 + len(answer)] == answer
                out.append(
                    SquadQuestion(
                        id=f"cloze-{art.title}-{p_i}-{s_i}",
                        question=question,
                        context=para,
                        title=art.title,
                        answers=((answer, a0),),
                    )
                )
    rng.shuffle(out)
    return out[:limit]
