"""Seed QA: answer quality on the visible seed questions (or any file in that format).

Prints EM/F1 on the answerable questions, citation validity and correctness, abstention accuracy on
the unanswerable ones, retrieval recall@5 of dense, BM25 and hybrid retrieval, and stage timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from common import DEFAULT_SHARED, ROOT, fmt, pipeline_for, print_figures, save, summary_ms


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--questions", type=Path, default=DEFAULT_SHARED / "data" / "seed-qa-visible.json")
    ap.add_argument(
        "--articles", type=Path, default=None, help="articles folder [default: the file's 'articles' or seeds/]"
    )
    ap.add_argument("--top-k", type=int, default=5)
    args = ap.parse_args(argv)

    from articleqa.indexing import IndexBuilder
    from articleqa.retrieval import BM25Retriever, DenseRetriever, HybridRetriever
    from articleqa.text import best_em_f1

    data = json.loads(args.questions.read_text(encoding="utf-8"))
    articles = args.articles or (ROOT / data.get("articles", "seeds"))
    texts = {p.relative_to(articles).as_posix(): p.read_bytes().decode("utf-8") for p in articles.rglob("*.txt")}
    with tempfile.TemporaryDirectory() as tmp:
        pipe = pipeline_for(Path(tmp) / "index", articles, top_k=args.top_k)
        IndexBuilder(pipe.embedder, pipe.chunker).build(articles, Path(tmp) / "index")
        pipe.warm_up()
        index = pipe.indexes.get()
        rows, ems, f1s, valid, correct, abstain = [], [], [], [], [], []
        stage = {"embedding": [], "retrieval": [], "reading": [], "total": []}
        recall = {"dense": [], "bm25": [], "hybrid": []}
        retrievers = {
            "dense": DenseRetriever(pipe.embedder),
            "bm25": BM25Retriever(),
            "hybrid": HybridRetriever(pipe.embedder),
        }
        for item in data["questions"]:
            a = pipe.ask(item["question"])
            for k in stage:
                stage[k].append(a.timings.get(k, 0.0))
            for c in a.citations:
                valid.append(texts.get(c.file, "")[c.start : c.end] == c.quote)
            if item.get("unanswerable"):
                abstain.append(not a.found)
            else:
                em, f1 = best_em_f1(a.answer or "", item["answers"])
                ems.append(em)
                f1s.append(f1)
                correct.append(bool(a.citations) and a.citations[0].file in item["sources"])
                for name, r in retrievers.items():
                    hits = r.retrieve(index, item["question"], 5)
                    recall[name].append(any(any(ans in h.passage.text for ans in item["answers"]) for h in hits))
            rows.append(
                {
                    "id": item.get("id"),
                    "question": item["question"],
                    "answer": a.answer,
                    "found": a.found,
                    "confidence": a.confidence,
                    "files": [c.file for c in a.citations],
                }
            )
    result = {
        "questions": len(data["questions"]),
        "answerable": len(ems),
        "unanswerable": len(abstain),
        "exact": 100 * statistics.mean(ems) if ems else None,
        "f1": 100 * statistics.mean(f1s) if f1s else None,
        "citation_validity": 100 * statistics.mean(valid) if valid else None,
        "citation_correctness": 100 * statistics.mean(correct) if correct else None,
        "abstention_accuracy": 100 * statistics.mean(abstain) if abstain else None,
        "recall_at_5": {k: 100 * statistics.mean(v) for k, v in recall.items() if v},
        "latency": {k: summary_ms(v) for k, v in stage.items()},
        "rows": rows,
    }
    save("seed_qa", result)
    print_figures(
        [
            f"seed QA ({result['questions']} questions, top-k {args.top_k}):",
            f"  EM {fmt(result['exact'])}  F1 {fmt(result['f1'])}  on {result['answerable']} answerable",
            f"  citation validity {fmt(result['citation_validity'])}%  correctness {fmt(result['citation_correctness'])}%",
            f"  abstention accuracy {fmt(result['abstention_accuracy'])}% on {result['unanswerable']} unanswerable",
            "  recall@5 " + "  ".join(f"{k} {fmt(v)}" for k, v in result["recall_at_5"].items()),
            "  latency median ms " + "  ".join(f"{k} {v['median_ms']}" for k, v in result["latency"].items()),
        ]
    )
    return result


if __name__ == "__main__":
    main()
