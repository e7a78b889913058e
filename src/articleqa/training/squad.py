"""SQuAD data: loading, article-level splits and the standard EM/F1 metric.

The SQuAD JSON files are the only extractive-QA data on this machine; the reader is trained and
measured on them. Splits are by article (never by question), so validation articles are unseen.
"""

from __future__ import annotations

import gzip
import json
import random
import re
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
    each answerable question once plus the unanswerable ones. A ``.gz`` file is read through gzip
    (the whole training set ships that way).
    """
    articles: dict[str, SquadArticle] = {}
    seen: dict[str, SquadQuestion] = {}
    for path in paths:
        raw = gzip.decompress(Path(path).read_bytes()) if str(path).endswith(".gz") else Path(path).read_bytes()
        data = json.loads(raw.decode("utf-8"))["data"]
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
    train, val, _ = split_articles3(articles, n_val, 0, seed, prefer_unanswerable)
    return train, val


def split_articles3(
    articles: list[SquadArticle], n_val: int, n_test: int, seed: int = 0, prefer_unanswerable: bool = True
) -> tuple[list[SquadArticle], list[SquadArticle], list[SquadArticle]]:
    """Train, validation and test articles: the validation articles are those of
    ``split_articles(articles, n_val, seed)`` (so adding a test set leaves them unchanged) and the next
    ``n_test`` in the same order are the test set, never trained on nor used for any choice."""
    rng = random.Random(seed)
    titles = sorted(a.title for a in articles)
    rng.shuffle(titles)
    if prefer_unanswerable:
        has_na = {a.title for a in articles if any(q.is_impossible for q in a.questions)}
        titles.sort(key=lambda t: t not in has_na)  # stable: keeps the shuffled order inside groups
    val, test = set(titles[:n_val]), set(titles[n_val : n_val + n_test])
    return (
        [a for a in articles if a.title not in val | test],
        [a for a in articles if a.title in val],
        [a for a in articles if a.title in test],
    )


def split_by_titles(
    articles: list[SquadArticle], val_titles: list[str], test_titles: list[str]
) -> tuple[list[SquadArticle], list[SquadArticle], list[SquadArticle]]:
    """Train, validation and test articles with the held-out ones named (e.g. to keep the validation
    articles of an earlier reader while adding data). Raises ValueError naming a title not found."""
    by_title = {a.title: a for a in articles}
    missing = [t for t in [*val_titles, *test_titles] if t not in by_title]
    if missing:
        raise ValueError(f"held-out article(s) not in the training files: {', '.join(missing)}")
    held = set(val_titles) | set(test_titles)
    return (
        [a for a in articles if a.title not in held],
        [by_title[t] for t in val_titles],
        [by_title[t] for t in test_titles],
    )


def write_squad_corpus(articles: list[SquadArticle], folder: str | Path) -> dict[str, tuple[str, int, int]]:
    """Write each article as ``<title>.txt`` (paragraphs separated by blank lines), to use SQuAD as
    an open corpus. Returns where each paragraph landed: context -> (file, start, end)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    where: dict[str, tuple[str, int, int]] = {}
    for art in articles:
        name = re.sub(r"[^\w.\-]+", "_", art.title) + ".txt"
        text, starts = article_text(art.paragraphs)
        for para, pos in starts.items():
            where.setdefault(para, (name, pos, pos + len(para)))
        (folder / name).write_text(text, encoding="utf-8")
    return where


def article_text(paragraphs: list[str]) -> tuple[str, dict[str, int]]:
    """An article's text as the open corpus writes it (paragraphs separated by blank lines) and where
    each paragraph starts in it (its first occurrence)."""
    starts: dict[str, int] = {}
    pos = 0
    for para in paragraphs:
        starts.setdefault(para, pos)
        pos += len(para) + 2
    return "\n\n".join(paragraphs) + "\n", starts


def index_squad_corpus(articles: list[SquadArticle], folder: str | Path, embedder=None, chunker=None):
    """SQuAD articles as an open corpus: written as files into ``folder/corpus`` and indexed into
    ``folder/index`` (incrementally: an unchanged corpus is not embedded again).

    Returns (articles folder, index folder, paragraph -> (file, start, end)). Used by the pipeline
    calibration of ``train-reader`` and by the benchmarks, so both measure the same corpus."""
    from articleqa.chunking import SentenceChunker
    from articleqa.embedding import Embedder
    from articleqa.indexing import IndexBuilder

    folder = Path(folder)
    corpus, index_dir = folder / "corpus", folder / "index"
    where = write_squad_corpus(articles, corpus)
    IndexBuilder(embedder or Embedder(), chunker or SentenceChunker()).build(corpus, index_dir)
    return corpus, index_dir, where
