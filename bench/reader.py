"""Reader alone: EM/F1 on given paragraphs (no retrieval) for any reader, and its speed.

By default it measures the shipped reader on the questions of its held-out articles (the others were
its training data); ``--model`` takes any folder or hub id, so readers compare on the same questions.
With a SQuAD 2.0 file it also computes "not found" precision/recall at the reader's threshold and the
threshold curve (``--curve``).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from common import DEFAULT_SHARED, ROOT, heldout_titles, print_figures, save


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(ROOT / "models" / "reader"))
    ap.add_argument("--squad", type=Path, default=DEFAULT_SHARED / "data" / "squad" / "squad-dev-v1.1-36.json")
    ap.add_argument("--articles", choices=["heldout", "all"], default="heldout")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--quantize", default="auto", help="auto, int8, bf16, none")
    ap.add_argument("--backend", default="auto", help="auto, torch, onnx (see articleqa.runtime)")
    ap.add_argument("--name", default="reader", help="result name (bench/out/<name>.json)")
    args = ap.parse_args(argv)

    from articleqa.reader import ExtractiveReader
    from articleqa.training.evaluate import evaluate, no_answer_stats, reader_latency_ms
    from articleqa.training.squad import load_squad

    arts = load_squad(args.squad)
    held = set(heldout_titles())
    if args.articles == "heldout" and held:
        arts = [a for a in arts if a.title in held]
    questions = [q for a in arts for q in a.questions]
    if args.limit and args.limit < len(questions):
        questions = random.Random(0).sample(questions, args.limit)
    reader = ExtractiveReader(args.model, quantize=args.quantize, backend=args.backend)
    reader.warm_up()
    cal = reader.calibration
    threshold = cal.reader_threshold if cal.reader_threshold is not None else cal.threshold
    res = evaluate(reader, questions, calibrate=False, threshold=threshold)
    result = {
        "model": args.model,
        "quantize": reader.quantize,
        "inference_path": reader.inference_path,
        "squad": args.squad.name,
        "articles": args.articles,
        "titles": sorted({q.title for q in questions}),
        "questions": len(questions),
        "answerable": res.n,
        "exact": res.exact,
        "f1": res.f1,
        "no_answer": res.no_answer,
        "latency_ms_150_words": reader_latency_ms(reader),
        "questions_per_second": len(questions) / res.seconds if res.seconds else None,
    }
    if res.no_answer:  # threshold curve
        preds = reader.predict([(q.question, q.context) for q in questions])
        from articleqa.text import best_em_f1

        margins = np.array([p.margin for p in preds])
        correct = np.array(
            [
                0.0 if q.is_impossible else best_em_f1(p.text, [t for t, _ in q.answers])[1]
                for q, p in zip(questions, preds)
            ]
        )
        impossible = np.array([q.is_impossible for q in questions])
        grid = np.quantile(margins, np.linspace(0.02, 0.98, 25))
        result["curve"] = [
            no_answer_stats(margins, correct, impossible, float(t)) for t in sorted(set(grid) | {threshold})
        ]
    save(args.name, result)
    lines = [
        f"reader {args.model} ({reader.inference_path}) on {len(questions)} questions of {args.squad.name} ({args.articles} articles)",
        f"  EM {res.exact:.1f}  F1 {res.f1:.1f} on {res.n} answerable; {result['latency_ms_150_words']:.1f} ms per ~150-word passage",
    ]
    if res.no_answer:
        na = res.no_answer
        lines.append(
            f"  not found: precision {na['precision']:.1f}  recall {na['recall']:.1f}  at threshold {na['threshold']:.3f}; SQuAD2 F1 {na['squad2_f1']:.1f}"
        )
    print_figures(lines)
    return result


if __name__ == "__main__":
    main()
