"""articleqa side by side with a Haystack pipeline built from the same parts.

Haystack: in-memory document store holding articleqa's own passages and vectors (same chunking, same
encoder), BM25 + embedding retrieval fused by reciprocal rank fusion (``DocumentJoiner``), and
``TransformersExtractiveReader`` with the same reader weights (models/reader), top-k 5. Each question
is put to both, alternating which goes first, on the shared SQuAD 2.0 articles as an open corpus
(answerable and unanswerable questions) and on the seed questions over seeds/.

Prints per question set: median/p95 latency of each and the median of per-question ratios
(articleqa / Haystack), F1 on answerable questions (abstaining scores 0), answerable questions wrongly
refused, unanswerable questions refused, and which inference path articleqa's reader took.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from common import DEFAULT_SHARED, ROOT, fmt, percentile, pipeline_for, print_figures, save, squad_corpus_index


def haystack_pipeline(index, embedder_path: str, reader_path: str, top_k: int):
    import torch
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder
    from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

    store = InMemoryDocumentStore(embedding_similarity_function="dot_product")
    store.write_documents(
        [
            Document(
                id=str(p.id),
                content=p.text,
                meta={"file": p.file, "start": p.start},
                embedding=index.vectors[p.id].tolist(),
            )
            for p in index.passages
        ]
    )
    pipe = Pipeline()
    pipe.add_component(
        "embedder", SentenceTransformersTextEmbedder(model=embedder_path, normalize_embeddings=True, progress_bar=False)
    )
    pipe.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=top_k))
    pipe.add_component("bm25", InMemoryBM25Retriever(store, top_k=top_k))
    pipe.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=top_k))
    # fp32, as its users run it on a CPU: transformers loads weights in the dtype the config names, and a
    # reader whose config says float16 (models/reader did until 2026-11-23) runs ~4x slower on a CPU
    pipe.add_component(
        "reader",
        TransformersExtractiveReader(model=reader_path, top_k=1, no_answer=True, model_kwargs={"dtype": torch.float32}),
    )
    pipe.connect("embedder.embedding", "dense.query_embedding")
    pipe.connect("dense", "join")
    pipe.connect("bm25", "join")
    pipe.connect("join", "reader.documents")
    pipe.warm_up()

    def ask(question: str) -> str | None:
        out = pipe.run({"embedder": {"text": question}, "bm25": {"query": question}, "reader": {"query": question}})
        answers = out["reader"]["answers"]
        return answers[0].data if answers else None  # data None: the no-answer option won

    return ask


def run_set(name: str, questions: list[dict], ours, theirs) -> dict:
    from articleqa.text import best_em_f1

    rows = []
    for n, q in enumerate(questions):
        order = ("articleqa", "haystack") if n % 2 == 0 else ("haystack", "articleqa")
        got, secs = {}, {}
        for who in order:
            t = time.perf_counter()
            got[who] = ours(q["question"]) if who == "articleqa" else theirs(q["question"])
            secs[who] = time.perf_counter() - t
        row = {"unanswerable": q["unanswerable"], "seconds": secs}
        for who, answer in got.items():
            row[who] = {"answer": answer, "f1": best_em_f1(answer, q["answers"])[1] if answer and q["answers"] else 0.0}
        rows.append(row)
    result = {"questions": len(rows), "answerable": sum(not r["unanswerable"] for r in rows)}
    for who in ("articleqa", "haystack"):
        times = [1000 * r["seconds"][who] for r in rows]
        ans = [r for r in rows if not r["unanswerable"]]
        una = [r for r in rows if r["unanswerable"]]
        result[who] = {
            "median_ms": statistics.median(times),
            "p95_ms": percentile(times, 0.95),
            "answerable_f1": 100 * statistics.mean(r[who]["f1"] for r in ans) if ans else None,
            "wrongly_refused": 100 * statistics.mean(r[who]["answer"] is None for r in ans) if ans else None,
            "unanswerable_refused": 100 * statistics.mean(r[who]["answer"] is None for r in una) if una else None,
        }
    ratios = [r["seconds"]["articleqa"] / r["seconds"]["haystack"] for r in rows]
    result["ratio_median"] = statistics.median(ratios)
    result["ratio_p95"] = percentile([1000 * r["seconds"]["articleqa"] for r in rows], 0.95) / percentile(
        [1000 * r["seconds"]["haystack"] for r in rows], 0.95
    )
    result["set"] = name
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad", type=Path, default=DEFAULT_SHARED / "data" / "squad" / "squad-dev-v2.0-36.json")
    ap.add_argument("--questions", type=Path, default=DEFAULT_SHARED / "data" / "seed-qa-visible.json")
    ap.add_argument("--limit", type=int, default=300, help="SQuAD questions asked (seeded sample, answerable and not)")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument(
        "--reader-quantize",
        default="auto",
        choices=["auto", "none", "int8", "bf16"],
        help="articleqa's reader precision: auto (bf16 where the CPU has AVX512-BF16/AMX, else fp32), "
        "none (fp32: what a CPU without bf16 units runs)",
    )
    ap.add_argument(
        "--reader-backend", default="auto", choices=["auto", "onnx", "torch"], help="articleqa's reader runtime"
    )
    ap.add_argument(
        "--early-exit-passages",
        type=int,
        default=None,
        help="articleqa's early exit [default: the setting's default, 2]; 0 reads every passage",
    )
    ap.add_argument("--name", default="vs_haystack")
    args = ap.parse_args(argv)

    from articleqa.config import default_reader_model
    from articleqa.training.squad import load_squad

    results = {"top_k": args.top_k}
    sets = []
    articles_dir, index_dir, _ = squad_corpus_index(args.squad)
    squad_q = [
        {"question": q.question, "answers": [t for t, _ in q.answers], "unanswerable": q.is_impossible}
        for a in load_squad(args.squad)
        for q in a.questions
    ]
    squad_q = random.Random(0).sample(squad_q, min(args.limit, len(squad_q)))
    sets.append(("squad2_open", articles_dir, index_dir, squad_q))
    seed = json.loads(args.questions.read_text(encoding="utf-8"))["questions"]
    seed_q = [
        {"question": q["question"], "answers": q.get("answers", []), "unanswerable": bool(q.get("unanswerable"))}
        for q in seed
    ]
    seed_index = ROOT / "bench" / "out" / "vs_haystack_seed_index"
    sets.append(("seed", ROOT / "seeds", seed_index, seed_q))
    for name, articles, index_dir, questions in sets:
        early = {} if args.early_exit_passages is None else {"early_exit_passages": args.early_exit_passages}
        pipe = pipeline_for(
            index_dir,
            articles,
            top_k=args.top_k,
            reader_quantize=args.reader_quantize,
            reader_backend=args.reader_backend,
            **early,
        )
        if not pipe.store.exists():
            pipe.build_index()
        pipe.warm_up()
        index = pipe.indexes.get()
        theirs = haystack_pipeline(index, pipe.embedder.model_path, default_reader_model(), args.top_k)
        ours = lambda question: pipe.ask(question).answer  # noqa: E731
        for q in questions[:3]:  # warm both
            ours(q["question"]), theirs(q["question"])
        results[name] = run_set(name, questions, ours, theirs)
        results[name]["reader_path"] = pipe.reader.inference_path
        results[name]["early_exit_passages"] = pipe.settings.early_exit_passages
    save(args.name, results)
    lines = []
    for name in ("squad2_open", "seed"):
        r = results[name]
        a, h = r["articleqa"], r["haystack"]
        lines += [
            f"{name}: {r['questions']} questions ({r['answerable']} answerable); articleqa reader path: {r['reader_path']}, early exit {r['early_exit_passages'] or 'off'}",
            f"  latency median ms: articleqa {a['median_ms']:.1f}, haystack {h['median_ms']:.1f}; ratio (median of per-question) {r['ratio_median']:.2f}; p95 ratio {r['ratio_p95']:.2f}",
            f"  answerable F1 (abstain=0): articleqa {fmt(a['answerable_f1'])}, haystack {fmt(h['answerable_f1'])}",
            f"  answerable wrongly refused %: articleqa {fmt(a['wrongly_refused'])}, haystack {fmt(h['wrongly_refused'])}",
            f"  unanswerable refused %: articleqa {fmt(a['unanswerable_refused'])}, haystack {fmt(h['unanswerable_refused'])}",
        ]
    print_figures(lines)
    return results


if __name__ == "__main__":
    main()
