"""Answers on articles a reader never saw: the reader alone and through the whole assistant.

For each ``--model`` (default models/reader) the held-out articles are its own validation and test
articles, as recorded in its calibration file (``--articles`` names others). Their SQuAD 2.0
questions, answerable and unanswerable mixed, are asked through the full pipeline: every article of
the SQuAD file indexed as an open corpus (hybrid retrieval, top-k 5, early exit as configured), the
reader at its calibrated "not found" threshold. Prints, per model and per article set:

- reader alone: EM/F1 on the answerable questions given their paragraph;
- pipeline: F1 on the answerable questions with "not found" counted 0, the share of answerable
  questions wrongly answered "not found", the share of unanswerable ones refused, and the reading
  time per question (median, p95);
- separation: how well the best span's margin tells answerable from unanswerable questions, which
  bounds what any threshold can do: its AUC, and the share of unanswerable questions refused when the
  threshold is set on these same questions to refuse 6% (10%) of the answerable ones (an oracle
  operating point: the reader's ceiling, not a figure the assistant reaches), plus, of the unanswerable
  questions answered at the reader's threshold, the share answered from their own SQuAD paragraph
  (the reader misjudged the paragraph the question was written against, rather than retrieval
  bringing a misleading one).
- where answerable F1 is lost between the reader alone and the pipeline: the share of answerable
  questions whose top-k retrieved passages contain a reference answer, the F1 of the best span among
  the passages read (had the pipeline picked the right passage), the F1 of the span it picks (the
  highest margin, never refusing), then the pipeline F1 with "not found";
- the reader alone per article (articles differ in difficulty far more than readers do);
- reader alone and pipeline F1 against the first reference answer only, with the number of distinct
  references per question: SQuAD scores a span against the best of its references, a dev-set question
  has up to four (the question writer's first, then other annotators') and a training-set question one,
  so test articles taken from the training set score lower for that alone; the first reference is what
  compares the two.

``--squad`` may be given more than once (e.g. the dev v2.0 file, then the training set for test articles
kept out of it): the open corpus is every article of the first file plus the held-out articles found
in the others (indexing all 442 training articles would take longer than the questions).

``--compare-rank-prior P`` (repeatable) asks every question again with the answer chosen among the spans
above the threshold by margin - P x ln(retrieval rank) (0: by the reader's own scores alone).

``--compare-chunking WORDS/OVERLAP/TOPK`` (repeatable) asks every question a second time over the same corpus
indexed in passages of another size (``SentenceChunker(WORDS, OVERLAP)``), reading the top TOPK, interleaved
with the others in the same run: whether longer passages, fewer of them, read better than the default.

Validation articles chose the reader's epoch and threshold, so their figures flatter; test articles
(``train-reader --test-articles``) were used for nothing. With several models the questions alternate
which model is asked first. ``--compare-threshold T`` adds the pipeline figures as they would be at
another "not found" threshold, from the same run (the decision is the best span's margin over the
read passages; early exit never changes it). Where the reader ships an answerability model
(``answerability.json``, ``articleqa fit-answerability``) it decides "not found" and its AUC is printed
beside the margin's; ``--compare-margin`` asks every question a second time with the margin deciding.
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

import numpy as np
from common import DEFAULT_SHARED, OUT, ROOT, fmt, pipeline_for, print_figures, save, summary_ms


def held_out_sets(model: Path) -> dict[str, list[str]]:
    from articleqa.reader import read_reader_meta

    meta = read_reader_meta(model)
    if not meta.get("validation_articles"):
        raise SystemExit(f"{model} records no held-out articles (not a train-reader reader): pass --articles")
    sets = {"validation": meta.get("validation_articles", [])}
    test = meta.get("training", {}).get("test_articles")
    if test:
        sets["test"] = test
    return sets


def separation(ans: list[float], un: list[float], budgets=(0.06, 0.10)) -> dict:
    """AUC of the margin, and the unanswerable questions refused at thresholds set on these questions."""
    from sklearn.metrics import roc_auc_score

    from articleqa.training.evaluate import budget_threshold

    # a question with no passage read has margin -inf: the lowest score (roc_auc_score wants finite values)
    margins = np.nan_to_num(np.asarray(ans + un, dtype=float), neginf=-1e9, posinf=1e9)
    impossible = np.asarray([False] * len(ans) + [True] * len(un))
    out: dict = {"auc": None, "unanswerable_refused_at": {}}
    if ans and un:
        out["auc"] = float(roc_auc_score(~impossible, margins))  # P(answerable margin > unanswerable one), ties half
        for b in budgets:
            t = budget_threshold(margins, impossible, b)
            out["unanswerable_refused_at"][f"{round(100 * b)}%"] = 100 * float((np.asarray(un) <= t).mean())
    return out


def _pooled(results: list):
    """EM/F1 over the questions of several ``evaluate`` results (each a mean over its own questions)."""
    from articleqa.training.evaluate import EvalResult

    n = sum(r.n for r in results)

    def mean(key: str) -> float:
        return sum(getattr(r, key) * r.n for r in results) / n if n else 0.0

    return EvalResult(exact=mean("exact"), f1=mean("f1"), n=n, first_reference_f1=mean("first_reference_f1"))


def sure_figures(rows: list) -> dict:
    """How trustworthy "sure" is: of the answers shown sure (found, not tentative), the share that is
    wrong (an unanswerable question answered, or F1 < 0.5); of the right answers (answerable, F1 >= 0.5),
    the share shown sure; and how many answers are shown tentative."""
    sure = [x for x in rows if x[13]]
    right = [x for x in rows if x[1] and not x[0] and x[2] >= 0.5]
    return {
        "sure_answers": len(sure),
        "sure_but_wrong": 100 * statistics.mean(x[0] or x[2] < 0.5 for x in sure) if sure else None,
        "right_shown_sure": 100 * statistics.mean(x[13] for x in right) if right else None,
        "tentative_answers": sum(1 for x in rows if x[1] and not x[13]),
        "answers": sum(1 for x in rows if x[1]),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--squad",
        type=Path,
        action="append",
        help="SQuAD file(s) (repeatable): the first is the open corpus, later ones add their held-out articles "
        "[default: squad-dev-v2.0-36.json]",
    )
    ap.add_argument("--model", type=Path, action="append", help="reader folder (repeatable) [default: models/reader]")
    ap.add_argument(
        "--articles", nargs="*", help="held-out article titles (default: each model's validation and test articles)"
    )
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="first N questions of each article set")
    ap.add_argument(
        "--sample",
        type=int,
        default=None,
        help="N questions of each article set drawn at random (seed 0) across all its articles, in their order",
    )
    ap.add_argument(
        "--compare-threshold",
        type=float,
        action="append",
        default=[],
        help="also report the pipeline figures at this threshold (repeatable)",
    )
    ap.add_argument("--name", default="heldout")
    ap.add_argument(
        "--compare-margin",
        action="store_true",
        help="also ask every question with the first model's margin deciding 'not found' (its answerability "
        "model off), in the same run",
    )
    ap.add_argument(
        "--allow-other-splits",
        action="store_true",
        help="compare with readers that recorded other held-out articles (e.g. the reader shipped before, "
        "which never saw the new test articles): the sets are the first model's",
    )
    ap.add_argument(
        "--compare-rank-prior",
        type=float,
        action="append",
        default=[],
        metavar="P",
        help="also ask every question of the first model with the answer chosen among the read spans by "
        "margin - P x ln(retrieval rank) (0: the reader's own scores alone), interleaved (repeatable)",
    )
    ap.add_argument(
        "--compare-chunking",
        action="append",
        default=[],
        metavar="WORDS/OVERLAP/TOPK",
        help="also ask every question of the first model over the same corpus indexed in passages of WORDS "
        "words (OVERLAP words shared), reading the top TOPK, interleaved in the same run (repeatable)",
    )
    args = ap.parse_args(argv)

    from tqdm.auto import tqdm

    from articleqa.text import best_em_f1
    from articleqa.training.evaluate import evaluate
    from articleqa.training.squad import load_squad

    models = args.model or [ROOT / "models" / "reader"]
    squad_files = args.squad or [DEFAULT_SHARED / "data" / "squad" / "squad-dev-v2.0-36.json"]
    sets = {"given": args.articles} if args.articles else held_out_sets(models[0])
    first = load_squad(squad_files[0])
    held = {t for titles in sets.values() for t in titles}
    extra = [a for a in load_squad(*squad_files[1:]) if a.title in held] if squad_files[1:] else []
    corpus = first + [a for a in extra if a.title not in {b.title for b in first}]
    articles = {a.title: a for a in corpus}
    missing = sorted(held - set(articles))
    if missing:
        raise SystemExit(f"held-out articles not in {', '.join(map(str, squad_files))}: {', '.join(missing)}")
    name = squad_files[0].stem if not extra else f"{squad_files[0].stem}+{len(extra)}-held-out"
    from articleqa.training.squad import index_squad_corpus

    articles_dir, index_dir, where = index_squad_corpus(corpus, OUT / name)
    for m in models[1:]:
        if not args.articles and not args.allow_other_splits and held_out_sets(m) != sets:
            raise SystemExit(
                f"{m} holds out other articles than {models[0]}: compare readers of the same split (or pass --articles)"
            )
    pipes = {}
    for m in models:
        pipe = pipeline_for(index_dir, articles_dir, top_k=args.top_k, reader_model=str(m))
        pipe.warm_up()
        pipes[str(m)] = pipe
    if args.compare_margin:
        pipe = pipeline_for(index_dir, articles_dir, top_k=args.top_k, reader_model=str(models[0]), answerability=False)
        pipe.warm_up()
        pipes[f"{models[0]} (margin alone)"] = pipe
    for prior in args.compare_rank_prior:
        pipe = pipeline_for(
            index_dir, articles_dir, top_k=args.top_k, reader_model=str(models[0]), answer_rank_prior=prior
        )
        pipe.warm_up()
        pipes[f"{models[0]} (rank prior {prior:g})"] = pipe
    from articleqa.chunking import SentenceChunker

    for spec in args.compare_chunking:
        try:
            words, overlap, k = (int(x) for x in spec.split("/"))
        except ValueError:
            raise SystemExit(f"--compare-chunking takes WORDS/OVERLAP/TOPK, e.g. 250/60/3, not {spec!r}") from None
        corpus_k, index_k, _ = index_squad_corpus(
            corpus, OUT / f"{name}-chunk{words}-{overlap}", chunker=SentenceChunker(words, overlap)
        )
        pipe = pipeline_for(
            index_k, corpus_k, top_k=k, reader_model=str(models[0]), chunk_words=words, chunk_overlap_words=overlap
        )
        pipe.warm_up()
        pipes[f"{models[0]} ({words}-word passages, top-k {k})"] = pipe
    result = {
        "squad": " + ".join(f.name for f in squad_files),
        "top_k": args.top_k,
        "sets": {s: titles for s, titles in sets.items()},
        "models": {},
    }
    for name, titles in sets.items():
        asked = [(t, q) for t in titles for q in articles[t].questions][: args.limit or None]
        if args.sample and args.sample < len(asked):
            keep = set(random.Random(0).sample(range(len(asked)), args.sample))
            asked = [x for i, x in enumerate(asked) if i in keep]
        questions = [q for _, q in asked]
        rows = {m: [] for m in pipes}
        for i, q in enumerate(tqdm(questions, desc=f"{name} articles", unit="question")):
            order = list(pipes) if i % 2 == 0 else list(reversed(pipes))
            for m in order:
                a = pipes[m].ask(q.question, explain=True)
                golds = [t for t, _ in q.answers]
                f1 = 0.0 if q.is_impossible or not a.found else best_em_f1(a.answer, golds)[1]
                f1_first = 0.0 if q.is_impossible or not a.found else best_em_f1(a.answer, golds[:1])[1]
                read = [p for p in (a.trace.passages if a.trace else []) if p.margin is not None]
                best = max(read, key=lambda p: p.margin) if read else None
                best_f1 = 0.0 if q.is_impossible or best is None else best_em_f1(best.span, golds)[1]
                file, start, end = where.get(q.context, ("", 0, 0))
                own = best is not None and best.file == file and start <= best.span_start < end
                texts = pipes[m].indexes.get().articles
                retrieved = [
                    texts[p.file].text[p.passage_start : p.passage_end] for p in (a.trace.passages if a.trace else [])
                ]
                in_retrieved = any(g in t for g in golds for t in retrieved)
                oracle_f1 = max((best_em_f1(p.span, golds)[1] for p in read), default=0.0) if golds else 0.0
                judged = a.trace.answerability if a.trace else None
                rows[m].append(
                    (
                        q.is_impossible,
                        a.found,
                        f1,
                        a.timings.get("reading", 0.0),
                        best.margin if best else float("-inf"),
                        best_f1,
                        own,
                        len(read),
                        in_retrieved,
                        oracle_f1,
                        judged,
                        f1_first,
                        len(golds),
                        a.found and not a.tentative,
                    )
                )
        alone_by_reader = {}  # pipelines of the same reader (margin alone, other passage sizes) read the paragraphs alike
        for m, pipe in pipes.items():
            # the paragraph given: the reader alone, the pipeline's own (loaded) reader, read once per reader
            if pipe.settings.reader_model not in alone_by_reader:
                alone_by_reader[pipe.settings.reader_model] = {
                    t: evaluate(pipe.reader, [q for u, q in asked if u == t and not q.is_impossible], calibrate=False)
                    for t in titles
                }
            by_article = alone_by_reader[pipe.settings.reader_model]
            alone = _pooled([r for r in by_article.values() if r.n])
            r = rows[m]
            ans = [x for x in r if not x[0]]
            un = [x for x in r if x[0]]
            at = {
                str(t): {
                    "pipeline_f1": 100 * statistics.mean(x[5] if x[4] > t else 0.0 for x in ans) if ans else None,
                    "wrongly_refused": 100 * statistics.mean(x[4] <= t for x in ans) if ans else None,
                    "unanswerable_refused": 100 * statistics.mean(x[4] <= t for x in un) if un else None,
                }
                for t in args.compare_threshold
            }
            judge = pipe.answer_builder.judge
            result["models"].setdefault(
                m,
                {
                    "inference_path": pipe.reader.inference_path,
                    "threshold": pipe.answer_builder.threshold,
                    "answerability_threshold": judge.threshold if judge is not None else None,
                    "settings": {
                        k: getattr(pipe.settings, k)
                        for k in (
                            "early_exit_passages",
                            "early_exit_margin",
                            "answer_rank_prior",
                            "top_k",
                            "chunk_words",
                            "chunk_overlap_words",
                        )
                    },
                },
            )[name] = {
                "questions": len(r),
                "answerable": len(ans),
                "unanswerable": len(un),
                "reader_exact": alone.exact,
                "reader_f1": alone.f1,
                # scored against the first reference answer only, as a training-set question (one reference) is
                "references_per_question": float(statistics.mean(x[12] for x in ans)) if ans else None,
                "reader_f1_first_reference": alone.first_reference_f1,
                "pipeline_f1_first_reference": 100 * statistics.mean(x[11] for x in ans) if ans else None,
                "reader_f1_by_article": {t: {"n": r.n, "f1": r.f1} for t, r in by_article.items() if r.n},
                "f1_lost": {
                    "answer_in_retrieved": 100 * statistics.mean(x[8] for x in ans) if ans else None,
                    "best_read_span_f1": 100 * statistics.mean(x[9] for x in ans) if ans else None,
                    "highest_margin_span_f1": 100 * statistics.mean(x[5] for x in ans) if ans else None,
                },
                "pipeline_f1": 100 * statistics.mean(x[2] for x in ans) if ans else None,
                "wrongly_refused": 100 * statistics.mean(not x[1] for x in ans) if ans else None,
                "unanswerable_refused": 100 * statistics.mean(not x[1] for x in un) if un else None,
                "reading": summary_ms([x[3] for x in r]),
                **sure_figures(r),
                "passages_read": statistics.mean(x[7] for x in r),
                "at_threshold": at,
                "separation": separation([x[4] for x in ans], [x[4] for x in un]),
                "answerability_separation": (
                    separation([x[10] for x in ans], [x[10] for x in un])
                    if r and all(x[10] is not None for x in r)
                    else None
                ),
                "unanswerable_answered_from_own_paragraph": (
                    100 * statistics.mean(x[6] for x in un if x[1]) if any(x[1] for x in un) else None
                ),
            }
    save(args.name, result)
    lines = [f"held-out articles, {result['squad']}, open corpus of {len(articles)} articles, top-k {args.top_k}"]
    for m, by_set in result["models"].items():
        judge = (
            f", answerability model threshold {by_set['answerability_threshold']:.2f}"
            if by_set.get("answerability_threshold") is not None
            else ", the margin decides"
        )
        lines.append(f"  {m} ({by_set['inference_path']}, threshold {by_set['threshold']:.2f}{judge})")
        for name in sets:
            f = by_set[name]
            lines.append(
                f"    {name:10s} ({f['answerable']} answerable, {f['unanswerable']} unanswerable): reader alone EM {fmt(f['reader_exact'])} "
                f"F1 {fmt(f['reader_f1'])} | pipeline F1 {fmt(f['pipeline_f1'])}, wrongly refused {fmt(f['wrongly_refused'])}%, "
                f"unanswerable refused {fmt(f['unanswerable_refused'])}%, reading median {f['reading']['median_ms']} ms "
                f"({f['passages_read']:.2f} passages read)"
            )
            lines.append(
                f"      sure answers: {f['sure_answers']} ({fmt(f['sure_but_wrong'])}% of them wrong); right answers shown "
                f"sure {fmt(f['right_shown_sure'])}%; {f['tentative_answers']} of {f['answers']} answers shown tentative"
            )
            sep = f["separation"]
            if sep["auc"] is not None:
                at = ", ".join(f"{v:.1f}% at {k}" for k, v in sep["unanswerable_refused_at"].items())
                lines.append(
                    f"      separation: margin AUC {sep['auc']:.3f}; unanswerable refused {at} of answerable refused "
                    f"(thresholds set on these questions); unanswerable answered from their own paragraph "
                    f"{fmt(f['unanswerable_answered_from_own_paragraph'])}%"
                )
                judged = f["answerability_separation"]
                if judged and judged["auc"] is not None:
                    at = ", ".join(f"{v:.1f}% at {k}" for k, v in judged["unanswerable_refused_at"].items())
                    lines.append(
                        f"      answerability model (deciding 'not found' at {by_set['answerability_threshold']:.2f}): "
                        f"AUC {judged['auc']:.3f}; unanswerable refused {at} of answerable refused"
                    )
            if f["references_per_question"] is not None:
                lines.append(
                    f"      against the first reference answer only ({f['references_per_question']:.2f} distinct references per "
                    f"answerable question here; a training-set question has 1): reader alone F1 "
                    f"{fmt(f['reader_f1_first_reference'])} | pipeline F1 {fmt(f['pipeline_f1_first_reference'])}"
                )
            lost = f["f1_lost"]
            lines.append(
                f"      F1 lost on the way: reader alone {fmt(f['reader_f1'])} -> answer in the top-{by_set['settings']['top_k']} passages "
                f"{fmt(lost['answer_in_retrieved'])}% -> best span among those read {fmt(lost['best_read_span_f1'])} -> span picked "
                f"(never refusing) {fmt(lost['highest_margin_span_f1'])} -> pipeline {fmt(f['pipeline_f1'])}"
            )
            lines.append(
                "      reader alone by article: "
                + ", ".join(f"{t} {fmt(r['f1'])} ({r['n']})" for t, r in f["reader_f1_by_article"].items())
            )
            for t, g in f["at_threshold"].items():
                lines.append(
                    f"      at threshold {float(t):.2f} instead: pipeline F1 {fmt(g['pipeline_f1'])}, wrongly refused "
                    f"{fmt(g['wrongly_refused'])}%, unanswerable refused {fmt(g['unanswerable_refused'])}%"
                )
    print_figures(lines)
    return result


if __name__ == "__main__":
    main()
