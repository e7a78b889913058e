"""Fit the answerability model (``articleqa.answerability``) of a trained reader.

The pipeline, with the reader as it ships and the margin deciding, answers every SQuAD 2.0 question of
the reader's *training* articles that have unanswerable questions, from an open corpus of every article of
the SQuAD file (the way ``bench/heldout.py`` asks its held-out ones). From each answer's trace come the
features; a logistic regression (scikit-learn, standardised features) learns which questions to answer:
by default the answerable ones, or, with ``target="right"``, those whose best span would be right (F1 >= 0.5).
Then the reader's *validation* articles are asked the same way and the model's threshold is chosen there:
by default the one refusing the most unanswerable questions while the answerable ones lose nothing against
the margin's refusals (:func:`keep_answers_threshold`), counted on the answers the assistant gives (the rank
prior choosing the span, the mention rule refusing some unsure answers on top), or the one that refuses a
``refusal_budget`` share of the answerable ones. Test articles are not read.

The training articles are ones the reader was trained on, so its margins there are surer than on new
articles; the threshold is set on validation articles the reader never saw, which absorbs that shift.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from articleqa.answerability import FEATURES, AnswerabilityModel, answerability_features
from articleqa.text import best_em_f1
from articleqa.types import Judgement, Passage, ReadSpan, ScoredPassage, Trace


def spans_from_trace(trace: Trace, articles: dict) -> tuple[list[ReadSpan], list[ScoredPassage]]:
    """The read spans and retrieval hits an answer's trace records (``articles``: file -> Article)."""
    hits, spans = [], []
    for row in trace.passages:
        passage = Passage(
            id=row.rank,
            file=row.file,
            start=row.passage_start,
            end=row.passage_end,
            text=articles[row.file].text[row.passage_start : row.passage_end],
            title=row.title,
        )
        ranks = {k: v for k, v in (("dense", row.dense_rank), ("bm25", row.bm25_rank)) if v is not None}
        hits.append(ScoredPassage(passage, row.fused_score, ranks))
        if row.margin is not None:
            spans.append(
                ReadSpan(
                    passage=passage,
                    start=row.span_start,
                    end=row.span_end,
                    text=row.span,
                    margin=row.margin,
                    confidence=row.confidence,
                )
            )
    return spans, hits


class _Accept:
    """A judge that answers every question: what the assistant gives where the model accepts."""

    threshold = float("-inf")
    sure = None

    def judge(self, question, spans, hits, reader_threshold) -> Judgement:
        return Judgement(0.0)


def ask_for_features(pipe, questions, desc: str) -> dict:
    """Ask each question through ``pipe`` (explain on, the margin deciding); its features and label, and
    the answers: ``found`` / ``answer_f1``, the assistant's answer as asked (the margin deciding "not
    found"), ``accepted_found`` / ``accepted_f1``, what the assistant gives where the answerability model
    accepts the question (the rank prior picking the span, the mention rule refusing some unsure ones:
    ``accepted_found`` false), and ``f1``, the highest-margin span's F1 (the target ``right``)."""
    from tqdm.auto import tqdm

    from articleqa.answer import AnswerBuilder

    builder = pipe.answer_builder
    accepting = AnswerBuilder(
        threshold=builder.threshold,
        sure_confidence=builder.sure_confidence,
        rank_prior=builder.rank_prior,
        check_mentions=builder.check_mentions,
        judge=_Accept(),
    )
    threshold = builder.threshold
    index = pipe.indexes.get()
    rows, impossible, found, f1, answer_f1, accepted_found, accepted_f1 = [], [], [], [], [], [], []
    accepted_confidence = []
    split = 0
    for q in tqdm(questions, desc=desc, unit="question"):
        answer = pipe.ask(q.question, explain=True)
        if answer.trace is None:  # asked in two parts ("..., and when ...?"): each part is judged on its own
            split += 1
            continue
        spans, hits = spans_from_trace(answer.trace, index.articles)
        rows.append(answerability_features(answer.trace.question, spans, hits, threshold))
        impossible.append(q.is_impossible)
        golds = [t for t, _ in q.answers]

        def score(given) -> float:
            return 0.0 if q.is_impossible or not given.found else best_em_f1(given.answer, golds)[1]

        found.append(answer.found)
        answer_f1.append(score(answer))
        accepted = accepting.build(answer.trace.question, spans, hits, index)
        accepted_found.append(accepted.found)
        accepted_f1.append(score(accepted))
        accepted_confidence.append(accepted.confidence)
        best = max(spans, key=lambda s: s.margin, default=None)
        f1.append(0.0 if q.is_impossible or best is None else best_em_f1(best.text, golds)[1])
    return {
        "X": np.array([[r[k] for k in FEATURES] for r in rows], dtype=float),
        "impossible": np.array(impossible, dtype=bool),
        "found": np.array(found, dtype=bool),
        "f1": np.array(f1),
        "answer_f1": np.array(answer_f1),
        "accepted_found": np.array(accepted_found, dtype=bool),
        "accepted_f1": np.array(accepted_f1),
        "accepted_confidence": np.array(accepted_confidence),
        "split": split,
    }


def cached_features(pipe, questions, desc: str, model_dir: Path, work_dir: Path) -> dict:
    """:func:`ask_for_features`, kept in ``work_dir/traces/`` under a key of the reader's weights and
    calibration, the settings and the questions asked: fitting again (another ``C``, target or
    threshold rule) with the same reader reads them back instead of asking every question again."""
    import hashlib

    h = hashlib.sha256()
    for name in ("model.safetensors", "articleqa_reader.json"):
        f = model_dir / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
    h.update(pipe.settings.model_dump_json().encode() + repr([q.id for q in questions]).encode())
    path = work_dir / "traces" / f"{desc.replace(' ', '-')}-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path) as saved:
            return {k: (int(saved[k]) if k == "split" else saved[k]) for k in saved.files}
    asked = ask_for_features(pipe, questions, desc)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **asked)
    return asked


def fit_logistic(X: np.ndarray, refuse: np.ndarray, C: float = 1.0) -> dict:
    """Standardise, then an L2 logistic regression for "answer" (``refuse`` false); returns the model's numbers."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    lr = LogisticRegression(C=C, max_iter=5000).fit((X - mean) / scale, ~refuse)
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]),
    }


def keep_answers_threshold(
    scores: np.ndarray,
    impossible: np.ndarray,
    f1: np.ndarray,
    refused_now: np.ndarray,
    f1_now: np.ndarray | None = None,
    refused_anyway: np.ndarray | None = None,
) -> tuple[float, str]:
    """The threshold (refuse at or below it) that refuses the most unanswerable questions while the answerable
    ones lose nothing against today's refusals ``refused_now``: pipeline F1 ("not found" = 0) no lower and
    no larger share wrongly refused. ``f1``: each question's F1 where the model accepts it; ``f1_now``: its F1
    today (default: ``f1`` where not ``refused_now``); ``refused_anyway``: refused whatever the model says
    (the mention rule). Where no threshold keeps both (a model that tells them apart worse), the one that
    wrongly refuses the same share. Returns (threshold, the rule in words)."""
    answerable = ~impossible
    if not answerable.any() or not impossible.any():
        raise ValueError("choosing the threshold needs answerable and unanswerable validation questions")
    anyway = np.zeros_like(impossible) if refused_anyway is None else refused_anyway
    f1_now = float((np.where(refused_now, 0.0, f1) if f1_now is None else f1_now)[answerable].mean())
    wrong_now = float(refused_now[answerable].mean())
    lowest = float(scores.min() - 1.0)
    best = same_share = None
    for t in np.unique(np.concatenate([scores, [lowest]])):
        refused = (scores <= t) | anyway
        f1_t = float(np.where(refused, 0.0, f1)[answerable].mean())
        wrong_t = float(refused[answerable].mean())
        if wrong_t <= wrong_now + 1e-12:
            key = (float(refused[impossible].mean()), f1_t)
            if same_share is None or key > same_share[0]:
                same_share = (key, float(t))
            if f1_t >= f1_now - 1e-12 and (best is None or key > best[0]):
                best = (key, float(t))
    if best is not None:
        return best[1], (
            f"the most unanswerable validation questions refused with answerable ones kept: pipeline F1 >= "
            f"{100 * f1_now:.1f} and wrongly refused <= {100 * wrong_now:.1f}% (the margin's)"
        )
    # the forced refusals (refused_anyway) count against the share too; where they alone exceed it, refuse no more
    t = same_share[1] if same_share is not None else lowest
    return t, f"the margin's share of answerable questions refused ({100 * wrong_now:.1f}%)"


def sure_figures(confidence: np.ndarray, right: np.ndarray, sure: float) -> dict:
    """Of the answers given (``confidence`` and ``right`` one per answer), shown sure from ``sure`` on:
    the share of sure ones that are wrong, the share of right ones shown sure, the share shown tentative."""
    shown = confidence >= sure
    return {
        "sure": float(sure),
        "sure_but_wrong": 100 * float((~right[shown]).mean()) if shown.any() else None,
        "right_shown_sure": 100 * float(shown[right].mean()) if right.any() else None,
        "tentative": 100 * float((~shown).mean()) if len(shown) else None,
        "answers": int(len(shown)),
    }


def fit_confidence_model(
    train: dict, val: dict, answered: np.ndarray, max_sure_wrong: float, min_right_sure: float = 0.7, C: float = 1.0
) -> dict:
    """The answerability model's confidence part: a logistic model over the same features for "the answer the
    assistant gives is right" (F1 >= 0.5; an unanswerable question answered is wrong), fitted on the training
    articles' answers, its log-odds recalibrated (Platt) on the validation answers ``answered`` (the judge
    accepting, the mention rule not refusing), and its ``sure`` point: the lowest confidence from which at most
    ``max_sure_wrong`` of the validation answers shown sure are wrong (0.5 where none is), but never above the
    highest that still shows ``min_right_sure`` of the right validation answers sure (hedging every answer is
    not the way to be right when sure)."""
    from sklearn.linear_model import LogisticRegression

    from articleqa.answerability import linear_score

    given = train["accepted_found"]
    right = ~train["impossible"] & (train["accepted_f1"] >= 0.5)
    numbers = fit_logistic(train["X"][given], ~right[given], C)
    z = np.array([linear_score(numbers, dict(zip(FEATURES, x))) for x in val["X"][answered]])
    val_right = (~val["impossible"] & (val["accepted_f1"] >= 0.5))[answered]
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(z[:, None], val_right)
    numbers["calibration"] = {"scale": float(platt.coef_[0][0]), "bias": float(platt.intercept_[0])}
    p = platt.predict_proba(z[:, None])[:, 1]
    sure = next(
        (float(t) for t in np.unique(p) if (~val_right[p >= t]).mean() <= max_sure_wrong),
        0.5,
    )
    if val_right.any():
        ranked = np.sort(p[val_right])[::-1]
        floor = float(ranked[max(0, int(np.ceil(min_right_sure * len(ranked))) - 1)])
        sure = min(sure, floor)
    numbers["sure"] = sure
    numbers["validation"] = {
        "answer_right_auc": _auc(val_right, p),
        "max_sure_wrong": max_sure_wrong,
        "min_right_sure": min_right_sure,
        "model": sure_figures(p, val_right, sure),
        "margin": sure_figures(val["accepted_confidence"][answered], val_right, 0.5),
    }
    return numbers


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else None


#: what the model learns to tell apart: "answerable" (SQuAD 2.0's is_impossible) or "right" (answerable
#: and the highest-margin span scores F1 >= 0.5: refusing a wrong span costs no F1, refusing a right one does).
#: On the shipped reader's validation articles "answerable" separates better (AUC 0.747 vs 0.742; margin 0.720)
TARGETS = ("answerable", "right")


def fit_answerability(
    model_dir: str | Path,
    squad_files: list[Path],
    work_dir: str | Path,
    refusal_budget: float | None = None,
    limit: int | None = None,
    C: float = 1.0,
    settings=None,
    command: str = "",
    target: str = "answerable",
    max_sure_wrong: float | None = 0.10,
    min_right_sure: float = 0.7,
) -> AnswerabilityModel:
    """Fit, choose the threshold and return the model (not saved: ``AnswerabilityModel.save``). With
    ``max_sure_wrong`` it gets a confidence part too (:func:`fit_confidence_model`)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}")

    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline
    from articleqa.reader import read_reader_meta
    from articleqa.training.evaluate import budget_threshold
    from articleqa.training.squad import index_squad_corpus, load_squad

    meta = read_reader_meta(model_dir)
    validation = list(meta.get("validation_articles") or [])
    if not validation:
        raise ValueError(f"{model_dir} records no validation articles: not a reader written by train-reader")
    test = set(meta.get("training", {}).get("test_articles") or [])
    articles = load_squad(*squad_files)
    by_title = {a.title: a for a in articles}
    missing = [t for t in validation if t not in by_title]
    if missing:
        raise ValueError(f"validation articles not in {', '.join(map(str, squad_files))}: {', '.join(missing)}")
    training = [
        a
        for a in articles
        if a.title not in test and a.title not in validation and any(q.is_impossible for q in a.questions)
    ]
    if not training:
        raise ValueError("no training article with unanswerable questions (SQuAD 2.0 is_impossible) in the SQuAD files")
    corpus = [a for a in articles if a.title not in test]
    articles_dir, index_dir, _ = index_squad_corpus(corpus, Path(work_dir))
    base = settings or Settings()
    pipe = QAPipeline.from_settings(
        base.model_copy(
            update={
                "index_dir": index_dir,
                "articles_dir": articles_dir,
                "reader_model": str(model_dir),
                "answerability": False,
                "no_answer_threshold": None,
                "store": "faiss",
            }
        )
    )
    pipe.warm_up()
    train_q = [q for a in training for q in a.questions]
    val_q = [q for t in validation for q in by_title[t].questions]
    if limit:
        rng = random.Random(0)
        train_q = rng.sample(train_q, min(limit, len(train_q)))
        val_q = rng.sample(val_q, min(limit, len(val_q)))
    train = cached_features(pipe, train_q, "training articles", Path(model_dir), Path(work_dir))
    if train["impossible"].all() or not train["impossible"].any():
        raise ValueError("the training questions must include answerable and unanswerable ones")
    refuse = train["impossible"] if target == "answerable" else train["impossible"] | (train["f1"] < 0.5)
    numbers = fit_logistic(train["X"], refuse, C)
    model = AnswerabilityModel(features=list(FEATURES), threshold=0.0, retrieval=base.retrieval, **numbers)
    val = cached_features(pipe, val_q, "validation articles", Path(model_dir), Path(work_dir))
    scores = np.array([model.score_features(dict(zip(FEATURES, x))) for x in val["X"]])
    answerable = ~val["impossible"]
    if refusal_budget is not None:
        model.threshold, rule = (
            float(budget_threshold(scores, val["impossible"], refusal_budget)),
            f"refusal budget {refusal_budget:g}",
        )
    else:
        # on what the assistant gives: the rank prior's span, the mention rule on top
        model.threshold, rule = keep_answers_threshold(
            scores,
            val["impossible"],
            val["accepted_f1"],
            ~val["found"],
            f1_now=val["answer_f1"],
            refused_anyway=~val["accepted_found"],
        )
    margins = val["X"][:, FEATURES.index("margin")]
    answered = (scores > model.threshold) & val["accepted_found"]
    if max_sure_wrong is not None:
        model.confidence_model = fit_confidence_model(train, val, answered, max_sure_wrong, min_right_sure, C)

    def figures(refused: np.ndarray, score: np.ndarray, f1: np.ndarray) -> dict:
        un = val["impossible"]
        return {
            "wrongly_refused": 100 * float(refused[answerable].mean()) if answerable.any() else None,
            "unanswerable_refused": 100 * float(refused[un].mean()) if un.any() else None,
            "pipeline_f1": 100 * float(np.where(refused, 0.0, f1)[answerable].mean()) if answerable.any() else None,
            "auc": _auc(answerable, score),
        }

    model.fitted = {
        "command": command,
        "training_articles": [a.title for a in training],
        "training_questions": {
            "answerable": int((~train["impossible"]).sum()),
            "unanswerable": int(train["impossible"].sum()),
            "left_out_asked_in_parts": train["split"],
        },
        "validation_articles": validation,
        "validation_questions": {
            "answerable": int(answerable.sum()),
            "unanswerable": int(val["impossible"].sum()),
            "left_out_asked_in_parts": val["split"],
        },
        "C": C,
        "target": target,
        "threshold_rule": rule,
        "top_k": base.top_k,
        # the assistant's answers: the rank prior picks the span, the mention rule refuses some unsure ones
        "validation": {
            "margin": figures(~val["found"], margins, val["answer_f1"]),
            "answerability": figures((scores <= model.threshold) | ~val["accepted_found"], scores, val["accepted_f1"]),
        },
    }
    return model


CARD_HEADING = "## Answerability model (answerability.json)"


def card_section(model: AnswerabilityModel) -> str:
    """The model card's section on the answerability model (``write_card_section`` puts it in)."""
    f = model.fitted
    v = f.get("validation", {})
    lines = [
        CARD_HEADING,
        "",
        'Decides "not found" in the pipeline instead of the best margin alone (`articleqa.answerability`): a logistic',
        f"model over {len(model.features)} numbers of each answer's trace (margins, agreement between passages, retrieval",
        "ranks, question words found in the answer's passage and sentence), target "
        f"`{f.get('target')}`, fitted on the pipeline's answers to {f.get('training_questions', {}).get('answerable', 0)} "
        f"answerable and {f.get('training_questions', {}).get('unanswerable', 0)} unanswerable SQuAD 2.0 questions of "
        f"{len(f.get('training_articles', []))} training articles (C = {f.get('C')}), threshold {model.threshold:.3f} chosen on the "
        f"validation articles: {f.get('threshold_rule')}.",
        "",
        f"Command: `{f.get('command')}`",
        "",
        "| validation articles (pipeline, top-k %s) | AUC | answerable refused | unanswerable refused | pipeline F1 |"
        % f.get("top_k"),
        "|---|---|---|---|---|",
    ]
    for name, key in (("best margin > reader threshold", "margin"), ("answerability model", "answerability")):
        r = v.get(key, {})

        def fmt(x, p=""):
            return "n/a" if x is None else f"{x:.1f}{p}"

        auc = "n/a" if r.get("auc") is None else f"{r['auc']:.3f}"
        lines.append(
            f"| {name} | {auc} | {fmt(r.get('wrongly_refused'), '%')} | {fmt(r.get('unanswerable_refused'), '%')} | {fmt(r.get('pipeline_f1'))} |"
        )
    lines += [
        "",
        '(The assistant\'s answers to the validation questions, "not found" = 0 in pipeline F1, the mention rule on top; '
        "`bench/heldout.py` measures it on held-out articles.) Re-exporting or re-calibrating the reader removes this file: fit it again.",
        "",
    ]
    if model.confidence_model is not None:
        cv = model.confidence_model["validation"]
        lines += [
            'Confidence shown: a second logistic model over the same numbers for "the answer given is right" (F1 >= 0.5),',
            f"fitted on the same training answers and recalibrated on the validation answers (AUC {cv['answer_right_auc']:.3f});",
            f"an answer is shown sure from confidence {model.sure:.2f}: the lowest at which at most "
            f"{100 * cv['max_sure_wrong']:.0f}% of the validation answers shown sure are wrong, but no higher than the "
            f"highest showing {100 * cv.get('min_right_sure', 0):.0f}% of the right ones sure.",
            "",
            "| validation answers | sure from | sure but wrong | right answers shown sure | shown tentative |",
            "|---|---|---|---|---|",
        ]
        for name, key in (("margin's confidence (before)", "margin"), ("confidence model", "model")):
            r = cv[key]
            lines.append(
                f"| {name} | {r['sure']:.2f} | {r['sure_but_wrong'] or 0:.1f}% | {r['right_shown_sure'] or 0:.1f}% | {r['tentative'] or 0:.1f}% |"
            )
        lines.append("")
    return "\n".join(lines)


def with_card_section(text: str, model: AnswerabilityModel) -> str:
    """A model card's text with :func:`card_section` at its end (replacing an earlier one)."""
    if CARD_HEADING in text:
        head, _, rest = text.partition(CARD_HEADING)
        nxt = rest.find("\n## ")
        text = head + (rest[nxt + 1 :] if nxt >= 0 else "")
    return text.rstrip("\n") + "\n\n" + card_section(model)


def write_card_section(model_dir: str | Path, model: AnswerabilityModel) -> None:
    """Put :func:`card_section` into the reader's README.md (replacing an earlier one)."""
    card = Path(model_dir) / "README.md"
    card.write_text(
        with_card_section(card.read_text(encoding="utf-8") if card.is_file() else "", model), encoding="utf-8"
    )
