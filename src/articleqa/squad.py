"""SQuAD data: loading, article-level splits and the standard EM/F1 metric.

The SQuAD JSON files are the only extractive-QA data on this machine; the reader is trained and
measured on them. Splits are by article (never by question), so validation articles are unseen.
"""

from __future__ import annotations

import collections
import json
import random
import re
import string
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SquadQuestion:
    """One question on one paragraph; ``answers`` holds (text, char_start) of every distinct reference."""

    id: str
    question: str
    context: str
    title: str
    answers: tuple[tuple[str, int], ...] = ()
    is_impossible: bool = False


@dataclass
class SquadArticle:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    questions: list[SquadQuestion] = field(default_factory=list)


def load_squad(*paths: str | Path) -> list[SquadArticle]:
    """Load one or more SQuAD 1.1/2.0 files, merging articles by title and questions by id.

    SQuAD 2.0 dev reuses the 1.1 ids for its answerable questions, so loading both files yields
    each answerable question once plus the unanswerable ones.
    """
    articles: dict[str, SquadArticle] = {}
    seen: dict[str, SquadQuestion] = {}
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
        for art in data:
            article = articles.setdefault(art["title"], SquadArticle(art["title"]))
            for para in art["paragraphs"]:
                context = para["context"]
                if context not in article.paragraphs:
                    article.paragraphs.append(context)
                for qa in para["qas"]:
                    if qa["id"] in seen:
                        continue
                    answers = _distinct_answers(context, qa.get("answers", []))
                    impossible = bool(qa.get("is_impossible", False)) or not answers
                    q = SquadQuestion(
                        id=qa["id"],
                        question=qa["question"].strip(),
                        context=context,
                        title=art["title"],
                        answers=() if impossible else answers,
                        is_impossible=impossible,
                    )
                    seen[qa["id"]] = q
                    article.questions.append(q)
    return list(articles.values())


def _distinct_answers(context: str, answers: list[dict]) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for a in answers:
        text, start = a["text"], int(a["answer_start"])
        if context[start : start + len(text)] != text:  # repair an off offset if the text is present
            found = context.find(text)
            if found < 0:
                continue
            start = found
        if (text, start) not in out:
            out.append((text, start))
    return tuple(out)


def split_articles(
    articles: list[SquadArticle], n_val: int, seed: int = 0, prefer_unanswerable: bool = True
) -> tuple[list[SquadArticle], list[SquadArticle]]:
    """Hold out ``n_val`` whole articles. Articles with unanswerable questions are preferred so the
    no-answer behaviour can be measured on the held-out set too."""
    rng = random.Random(seed)
    titles = sorted(a.title for a in articles)
    rng.shuffle(titles)
    if prefer_unanswerable:
        has_na = {a.title for a in articles if any(q.is_impossible for q in a.questions)}
        titles.sort(key=lambda t: t not in has_na)  # stable: keeps the shuffled order inside groups
    val = set(titles[:n_val])
    return [a for a in articles if a.title not in val], [a for a in articles if a.title in val]


# --- the official SQuAD metric (v1.1/v2.0 evaluation script semantics) -------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, strip punctuation and the articles a/an/the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    if not pred_tokens or not truth_tokens:  # SQuAD 2.0: both empty is a match
        return float(pred_tokens == truth_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def best_em_f1(prediction: str, truths: list[str] | tuple[str, ...]) -> tuple[float, float]:
    """EM and F1 against the best of the references; no references means 'no answer' is right."""
    if not truths:
        return (float(prediction == ""), float(prediction == ""))
    return (
        max(exact_match(prediction, t) for t in truths),
        max(f1_score(prediction, t) for t in truths),
    )


def write_squad_corpus(articles: list[SquadArticle], folder: str | Path) -> dict[str, tuple[str, int, int]]:
    """Write each article as ``<title>.txt`` (paragraphs separated by blank lines), to use SQuAD as
    an open corpus. Returns where each paragraph landed: context -> (file, start, end)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    where: dict[str, tuple[str, int, int]] = {}
    for art in articles:
        name = re.sub(r"[^\w.\-]+", "_", art.title) + ".txt"
        parts, pos = [], 0
        for para in art.paragraphs:
            where.setdefault(para, (name, pos, pos + len(para)))
            parts.append(para)
            pos += len(para) + 2
        (folder / name).write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return where
