"""Latency per question, split into embedding, retrieval, reading and total, at top-k 3/5/10,
over the open SQuAD corpus index (questions sampled from its articles)."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from common import DEFAULT_SHARED, pipeline_for, print_figures, save, squad_corpus_index, summary_ms


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad", type=Path, default=DEFAULT_SHARED / "data" / "squad" / "squad-dev-v1.1-36.json")
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--top-k", type=int, nargs="+", default=[3, 5, 10])
    args = ap.parse_args(argv)

    from articleqa.training.squad import load_squad

    articles_dir, index_dir, _ = squad_corpus_index(args.squad)
    qs = [q.question for a in load_squad(args.squad) for q in a.questions]
    qs = random.Random(1).sample(qs, min(args.questions, len(qs)))
    pipe = pipeline_for(index_dir, articles_dir)
    pipe.warm_up()
    for q in qs[:3]:
        pipe.ask(q)  # warm caches (BM25, kernels)
    result = {"questions": len(qs), "passages": len(pipe.indexes.get().passages), "by_top_k": {}}
    lines = [f"latency over {len(qs)} questions, {result['passages']} passages (median / p95 ms):"]
    for k in args.top_k:
        stage = {"embedding": [], "retrieval": [], "reading": [], "total": []}
        for q in qs:
            a = pipe.ask(q, top_k=k)
            for s in stage:
                stage[s].append(a.timings.get(s, 0.0))
        result["by_top_k"][str(k)] = {s: summary_ms(v) for s, v in stage.items()}
        lines.append(f"  top-k {k:2d}: " + "  ".join(f"{s} {v['median_ms']}/{v['p95_ms']}" for s, v in result["by_top_k"][str(k)].items()))
    save("latency", result)
    print_figures(lines)
    return result


if __name__ == "__main__":
    main()
