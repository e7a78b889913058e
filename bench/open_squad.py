"""Open-corpus SQuAD: every paragraph of a SQuAD file indexed (each article a file), its questions
asked through the full pipeline.

Prints retrieval recall@1/5/10 of dense, BM25 and hybrid retrieval (a hit is a retrieved passage
containing a reference answer), end-to-end EM/F1, and the share of answers whose citation lies in the
question's own paragraph; end-to-end figures are also given for the reader's held-out articles only
(the other articles were its training data).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from common import DEFAULT_SHARED, heldout_titles, pipeline_for, print_figures, save, squad_corpus_index, summary_ms


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad", type=Path, default=DEFAULT_SHARED / "data" / "squad" / "squad-dev-v1.1-36.json")
    ap.add_argument("--limit", type=int, default=None, help="ask a random sample of N questions (seeded)")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--no-e2e", action="store_true", help="retrieval only")
    args = ap.parse_args(argv)

    from articleqa.retrieval import BM25Retriever, DenseRetriever, HybridRetriever
    from articleqa.text import best_em_f1
    from articleqa.training.squad import load_squad

    articles_dir, index_dir, where = squad_corpus_index(args.squad)
    questions = [q for a in load_squad(args.squad) for q in a.questions if not q.is_impossible]
    if args.limit and args.limit < len(questions):
        questions = random.Random(0).sample(questions, args.limit)
    pipe = pipeline_for(index_dir, articles_dir, top_k=args.top_k)
    pipe.warm_up()
    index = pipe.indexes.get()
    retrievers = {
        "dense": DenseRetriever(pipe.embedder),
        "bm25": BM25Retriever(),
        "hybrid": HybridRetriever(pipe.embedder),
    }
    ks = (1, 5, 10)
    recall = {name: {k: [] for k in ks} for name in retrievers}
    rtimes = {name: [] for name in retrievers}
    for q in questions:
        answers = [t for t, _ in q.answers]
        for name, r in retrievers.items():
            t = time.perf_counter()
            hits = r.retrieve(index, q.question, max(ks))
            rtimes[name].append(time.perf_counter() - t)
            contains = [any(a in h.passage.text for a in answers) for h in hits]
            for k in ks:
                recall[name][k].append(any(contains[:k]))
    result = {
        "questions": len(questions),
        "passages": len(index.passages),
        "articles": len(index.articles),
        "recall": {name: {f"@{k}": 100 * statistics.mean(v) for k, v in by_k.items()} for name, by_k in recall.items()},
        "retrieval_latency": {name: summary_ms(v) for name, v in rtimes.items()},
    }
    if not args.no_e2e:
        held = set(heldout_titles())
        rows = []
        stage = {"embedding": [], "retrieval": [], "reading": [], "total": []}
        for q in questions:
            a = pipe.ask(q.question)
            for k in stage:
                stage[k].append(a.timings.get(k, 0.0))
            em, f1 = best_em_f1(a.answer or "", [t for t, _ in q.answers])
            file, p0, p1 = where[q.context]
            own = bool(a.citations) and any(c.file == file and p0 <= c.start and c.end <= p1 for c in a.citations[:1])
            rows.append((q.title in held, em, f1, own, a.found))

        def agg(sel):
            sel = list(sel)
            if not sel:
                return None
            return {
                "n": len(sel),
                "exact": 100 * statistics.mean(r[1] for r in sel),
                "f1": 100 * statistics.mean(r[2] for r in sel),
                "own_paragraph": 100 * statistics.mean(r[3] for r in sel),
                "found": 100 * statistics.mean(r[4] for r in sel),
            }

        result["e2e"] = {"all": agg(rows), "heldout": agg(r for r in rows if r[0]), "heldout_articles": sorted(held)}
        result["latency"] = {k: summary_ms(v) for k, v in stage.items()}
    save("open_squad", result)
    lines = [
        f"open-corpus SQuAD: {result['questions']} questions over {result['passages']} passages of {result['articles']} articles"
    ]
    for name, r in result["recall"].items():
        lines.append(
            f"  recall {name:6s} @1 {r['@1']:.1f}  @5 {r['@5']:.1f}  @10 {r['@10']:.1f}  ({result['retrieval_latency'][name]['median_ms']} ms)"
        )
    if "e2e" in result:
        for part in ("all", "heldout"):
            e = result["e2e"][part]
            if e:
                lines.append(
                    f"  end-to-end ({part}, n={e['n']}): EM {e['exact']:.1f}  F1 {e['f1']:.1f}  own-paragraph citations {e['own_paragraph']:.1f}%  answered {e['found']:.1f}%"
                )
        lines.append("  latency median ms " + "  ".join(f"{k} {v['median_ms']}" for k, v in result["latency"].items()))
    print_figures(lines)
    return result


if __name__ == "__main__":
    main()
