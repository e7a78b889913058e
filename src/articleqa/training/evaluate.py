"""Evaluate a reader: SQuAD EM/F1, "not found" precision/recall and threshold, the confidence mapping,
and the same measured where the assistant decides (through retrieval over a corpus).

Example::

    res = evaluate(reader, questions)       # EvalResult(exact=63.0, f1=72.1, n=774, no_answer={...})
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from articleqa.text import best_em_f1
from articleqa.training.squad import SquadQuestion


@dataclass
class EvalResult:
    exact: float
    f1: float
    n: int
    has_ans_exact: float = 0.0
    has_ans_f1: float = 0.0
    no_answer: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    seconds: float = 0.0
    # F1 against the first reference answer only (the question writer's): what a question of the SQuAD training
    # set, which carries one reference, is scored against; the dev set's up to four references score higher
    first_reference_f1: float = 0.0


def evaluate(
    reader, questions: list[SquadQuestion], calibrate: bool = True, threshold: float | None = None
) -> EvalResult:
    """SQuAD EM/F1 on answerable questions (the reader always answers), and, where unanswerable
    questions are present, no-answer precision/recall at the calibrated (or given) margin threshold."""
    t0 = time.perf_counter()
    preds = reader.predict([(q.question, q.context) for q in questions])
    ans = [(q, p) for q, p in zip(questions, preds) if not q.is_impossible]
    ems, f1s, firsts = [], [], []
    for q, p in ans:
        em, f1 = best_em_f1(p.text, [t for t, _ in q.answers])
        ems.append(em)
        f1s.append(f1)
        firsts.append(best_em_f1(p.text, [q.answers[0][0]])[1])
    res = EvalResult(
        exact=100 * float(np.mean(ems)) if ems else 0.0,
        f1=100 * float(np.mean(f1s)) if f1s else 0.0,
        n=len(ans),
        first_reference_f1=100 * float(np.mean(firsts)) if firsts else 0.0,
    )
    res.has_ans_exact, res.has_ans_f1 = res.exact, res.f1
    margins = np.array([p.margin for p in preds])
    impossible = np.array([q.is_impossible for q in questions], dtype=bool)
    correct = np.zeros(len(questions))
    correct[~impossible] = f1s  # each answerable question's F1, scored once above (in the same order)
    if impossible.any():
        if threshold is None and calibrate:
            threshold = best_threshold(margins, correct, impossible)
        threshold = 0.0 if threshold is None else threshold
        res.no_answer = no_answer_stats(margins, correct, impossible, threshold)
    if calibrate:
        res.calibration = fit_confidence(margins, correct, impossible)
        if threshold is not None:
            res.calibration["threshold"] = float(threshold)
    res.seconds = time.perf_counter() - t0
    return res


def best_threshold(
    margins: np.ndarray, correct: np.ndarray, impossible: np.ndarray, unanswerable_share: float | None = None
) -> float:
    """The margin threshold that maximises SQuAD 2.0 F1 (answer when margin > threshold), on the
    questions as given or, with ``unanswerable_share``, reweighted so that share of them has no answer."""
    cands = np.unique(np.concatenate([margins, [margins.min() - 1]]))
    best_t, best = 0.0, -1.0
    w = unanswerable_share
    for t in cands:
        answer = margins > t
        if w is None:
            score = np.where(answer, correct, impossible.astype(float)).mean()
        else:
            score = (1 - w) * np.where(answer, correct, 0.0)[~impossible].mean() + w * (~answer[impossible]).mean()
        if score > best:
            best, best_t = score, float(t)
    return best_t


def budget_threshold(margins: np.ndarray, impossible: np.ndarray, max_wrong_refusals: float) -> float:
    """The highest margin threshold (answer when margin > threshold) at which at most
    ``max_wrong_refusals`` of the answerable questions are refused: refuse as many unanswerable
    questions as the reader can tell apart, within a fixed budget of wrong "not found"s."""
    answerable = np.sort(margins[~impossible])
    if not len(answerable):
        return 0.0
    allowed = int(np.floor(max_wrong_refusals * len(answerable) + 1e-9))
    # refusing the `allowed` lowest margins: the threshold is the highest of them, unless it ties the next
    cands = np.unique(np.concatenate([answerable[:allowed], [np.nextafter(answerable[0], -np.inf)]]))
    refused = np.searchsorted(answerable, cands, side="right")
    ok = cands[(refused <= allowed) & np.isfinite(cands)]
    if not len(ok):  # questions refused whatever the threshold (margin -inf) already use the budget: refuse no more
        finite = answerable[np.isfinite(answerable)]
        return float(np.nextafter(finite[0], -np.inf)) if len(finite) else 0.0
    return float(ok.max())


def no_answer_stats(margins, correct, impossible, threshold) -> dict:
    abstain = margins <= threshold
    tp = float((abstain & impossible).sum())
    precision = tp / max(abstain.sum(), 1)
    recall = tp / max(impossible.sum(), 1)
    overall_f1 = np.where(abstain, impossible.astype(float), correct).mean()
    answerable = ~impossible
    has_f1 = np.where(abstain, 0.0, correct)[answerable].mean() if answerable.any() else 0.0
    return {
        "threshold": float(threshold),
        "precision": 100 * precision,
        "recall": 100 * recall,
        "squad2_f1": 100 * float(overall_f1),
        "has_ans_f1_with_abstention": 100 * float(has_f1),
        "n_unanswerable": int(impossible.sum()),
        "n_answerable": int(answerable.sum()),
    }


def fit_confidence(margins: np.ndarray, correct: np.ndarray, impossible: np.ndarray) -> dict:
    """Platt scaling with scikit-learn: P(answer is right | margin). An answer counts as right when
    its F1 is at least 0.5; for unanswerable questions none is."""
    from sklearn.linear_model import LogisticRegression

    y = (correct >= 0.5).astype(int)
    x = np.clip(np.nan_to_num(margins, neginf=-50.0, posinf=50.0), -50, 50).reshape(-1, 1)
    if len(set(y)) < 2:
        return {"scale": 1.0, "bias": 0.0}
    lr = LogisticRegression(C=1.0).fit(x, y)
    return {"scale": float(lr.coef_[0, 0]), "bias": float(lr.intercept_[0])}


def calibrate_pipeline(
    tokenizer,
    model,
    articles,
    questions: list[SquadQuestion],
    max_answer_tokens: int,
    threshold: float | None,
    settings=None,
    unanswerable_share: float = 0.25,
    compare_threshold: float | None = None,
    refusal_budget: float | None = None,
) -> dict:
    """Measure "not found" where it is decided: the best span over the top-k passages the pipeline
    retrieves from the whole corpus (every article a file), for the validation questions, at the
    paragraph-calibrated ``threshold``; fit the confidence mapping on these margins.

    ``threshold=None`` chooses it here: with ``refusal_budget`` the highest threshold that refuses at
    most that share of the answerable questions (:func:`budget_threshold`), else the best expected F1
    when ``unanswerable_share`` of the questions have no answer (SQuAD 2.0's half-unanswerable mix
    over-rewards abstaining for an assistant whose users mostly ask about their articles).

    ``settings`` (``articleqa.config.Settings``, default: the configured ones) gives the embedding
    model, the chunking, the retrieval method and top-k, so the threshold is measured the way the
    assistant will run."""
    import tempfile

    from tqdm.auto import tqdm

    from articleqa.chunking import SentenceChunker
    from articleqa.config import get_settings
    from articleqa.embedding import Embedder
    from articleqa.mentions import unmatched_mentions
    from articleqa.reader import ExtractiveReader
    from articleqa.retrieval import make_retriever
    from articleqa.stores import open_store
    from articleqa.training.squad import index_squad_corpus

    settings = settings or get_settings()
    top_k = settings.top_k
    embedder = Embedder(settings.embedding_model_path(), offline=settings.offline, backend=settings.embedding_backend)
    chunker = SentenceChunker(settings.chunk_words, settings.chunk_overlap_words)
    with tempfile.TemporaryDirectory() as tmp:
        _, index_dir, _ = index_squad_corpus(articles, tmp, embedder, chunker)
        index = open_store(index_dir).load(embedder.name, chunker.chunking_settings())
    retriever = make_retriever(settings.retrieval, embedder)
    reader = ExtractiveReader.from_loaded(tokenizer, model, max_answer_tokens=max_answer_tokens)
    margins, correct, impossible, unmatched = [], [], [], []
    for q in tqdm(questions, desc="calibrating the pipeline", unit="question"):
        spans = reader.read(q.question, [h.passage for h in retriever.retrieve(index, q.question, top_k)])
        best = max(spans, key=lambda s: s.margin)
        margins.append(best.margin)
        impossible.append(q.is_impossible)
        correct.append(0.0 if q.is_impossible else best_em_f1(best.text, [t for t, _ in q.answers])[1])
        unmatched.append(
            bool(settings.check_mentions and unmatched_mentions(q.question, index.articles[best.passage.file].text))
        )
    margins, correct, impossible = np.array(margins), np.array(correct), np.array(impossible)
    cal = fit_confidence(margins, correct, impossible)
    # an unsure answer to a question naming what its article never mentions is refused whatever the threshold
    # (articleqa.answer, check_mentions): those count as refused below, so the budget covers every refusal
    sure = float(np.clip(0.5 if settings.sure_confidence is None else settings.sure_confidence, 1e-6, 1 - 1e-6))
    sure_margin = (np.log(sure / (1 - sure)) - cal["bias"]) / cal["scale"] if cal["scale"] > 0 else np.inf
    margins_all = margins
    margins = np.where(np.array(unmatched) & (margins < sure_margin), -np.inf, margins)
    if threshold is None and refusal_budget is not None:
        threshold = budget_threshold(margins, impossible, refusal_budget)
    elif threshold is None:
        threshold = best_threshold(margins, correct, impossible, unanswerable_share) if impossible.any() else 0.0
    cal["threshold"] = threshold
    answerable = ~impossible
    return {
        "calibration": cal,
        "f1_optimal_threshold": best_threshold(margins, correct, impossible) if impossible.any() else None,
        "top_k": top_k,
        "retrieval": settings.retrieval,
        "chunking": chunker.chunking_settings(),
        "unanswerable_share": unanswerable_share,
        "refusal_budget": refusal_budget,
        "wrongly_refused": 100 * float((margins[answerable] <= threshold).mean()) if answerable.any() else None,
        "passages": len(index.passages),
        "no_answer": no_answer_stats(margins, correct, impossible, threshold) if impossible.any() else {},
        "f1_forced": 100 * float(correct[answerable].mean()) if answerable.any() else None,
        "refused_for_unmatched_mentions": {
            "answerable": 100 * float((margins[answerable] < margins_all[answerable]).mean())
            if answerable.any()
            else None,
            "unanswerable": 100 * float((margins[impossible] < margins_all[impossible]).mean())
            if impossible.any()
            else None,
        },
        **(
            {"no_answer_at_paragraph_threshold": no_answer_stats(margins, correct, impossible, compare_threshold)}
            if compare_threshold is not None and impossible.any()
            else {}
        ),
    }


def reader_latency_ms(reader, repeats: int = 20) -> float:
    """Median time to read one ~150-word passage (the pipeline's unit of work)."""
    passage = (
        "The Amazon rainforest, covering much of northwestern Brazil and extending into Colombia, Peru and "
        "other South American countries, is the world's largest tropical rainforest, famed for its "
        "biodiversity. It is crisscrossed by thousands of rivers, including the powerful Amazon. River towns, "
        "with wooden houses on stilts, and remote villages are reached by boat. The rainforest covers about "
        "5,500,000 square kilometres, and this region includes territory belonging to nine nations. The "
        "majority of the forest is contained within Brazil, with 60% of the rainforest, followed by Peru "
        "with 13%, Colombia with 10%, and with minor amounts in Venezuela, Ecuador, Bolivia, Guyana, "
        "Suriname and French Guiana. States or departments in four nations contain Amazonas in their names."
    )
    question = "How many nations control this region in total?"
    reader.predict([(question, passage)])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        reader.predict([(question, passage)])
        times.append(1000 * (time.perf_counter() - t))
    return float(np.median(times))
