"""Beyond one machine: the Milvus store (milvus-lite) against the FAISS folder, and Ray Data chunking +
embedding against the in-process builder, on the shared SQuAD articles as an open corpus.

Prints, for each store: build time, recall@5 of the hybrid retriever (a hit: a retrieved passage that
contains a reference answer), end-to-end EM/F1 on a sample, and median/p95 question latency with the
two pipelines asked question by question in turn; then chunk+embed throughput (passages/s) in process
and on a local Ray (actor start-up counted separately); then the Milvus store alone on synthetic
384-d vectors (insert time, query median/p95) at growing sizes while each fits the time budget.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from common import DEFAULT_SHARED, OUT, fmt, pipeline_for, print_figures, save, squad_corpus_index, summary_ms


def recall_at(pipe, questions, k=5) -> float:
    index = pipe.indexes.get()
    hits = []
    for q in questions:
        answers = [t for t, _ in q.answers]
        found = pipe.retriever.retrieve(index, q.question, k)
        hits.append(any(any(a in h.passage.text for a in answers) for h in found))
    return 100 * statistics.mean(hits)


def synthetic(sizes: list[int], budget_s: float, dim: int = 384) -> list[dict]:
    from articleqa.stores.milvus import MilvusIndexStore
    from articleqa.types import Article, Passage

    rows = []
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for n in sizes:
        if time.perf_counter() - started > budget_s:
            rows.append({"passages": n, "skipped": f"time budget of {budget_s:.0f} s spent"})
            continue
        folder = OUT / "scale_out" / f"synthetic-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        store = MilvusIndexStore(str(folder / "milvus.db"), lock_dir=folder)
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        passages = [Passage(id=i, file=f"f{i // 100}.txt", start=0, end=20, text=f"passage {i} word{i % 997} term{i % 101}") for i in range(n)]
        articles = [Article(file=f"f{j}.txt", text="x" * 20, sha256="0" * 64) for j in range((n + 99) // 100)]
        t = time.perf_counter()
        with store.lock():
            store.write_version(articles, passages, vectors, "synthetic", {})
        build = time.perf_counter() - t
        index = store.load()
        queries = rng.standard_normal((50, dim)).astype(np.float32)
        times = []
        for qv in queries:
            t = time.perf_counter()
            index.hybrid_search(qv, "word17 term3", 10, 50)
            times.append(time.perf_counter() - t)
        rows.append({"passages": n, "build_s": build, **summary_ms(times)})
        print(f"synthetic {n:,}: build {build:.1f} s, hybrid query median {rows[-1]['median_ms']} ms", flush=True)
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad", type=Path, default=DEFAULT_SHARED / "data" / "squad" / "squad-dev-v1.1-36.json")
    ap.add_argument("--limit", type=int, default=200, help="questions asked end to end (seeded sample)")
    ap.add_argument("--recall-limit", type=int, default=1000, help="questions for recall@5")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--synthetic-budget", type=float, default=1200, help="seconds for the synthetic runs")
    args = ap.parse_args(argv)

    from articleqa.indexing import IndexBuilder
    from articleqa.ingest import ArticleLoader
    from articleqa.ray_embedding import RayChunkEmbedder, start_local_ray
    from articleqa.text import best_em_f1
    from articleqa.training.squad import load_squad

    articles_dir, _, _ = squad_corpus_index(args.squad)
    base = OUT / "scale_out"
    shutil.rmtree(base / "faiss", ignore_errors=True)
    shutil.rmtree(base / "milvus", ignore_errors=True)
    faiss_pipe = pipeline_for(base / "faiss", articles_dir)
    milvus_pipe = pipeline_for(base / "milvus", articles_dir, store=f"milvus:{base / 'milvus' / 'milvus.db'}")
    builds = {}
    for name, pipe in (("faiss", faiss_pipe), ("milvus", milvus_pipe)):
        pipe.embedder.warm_up()
        t = time.perf_counter()
        report = pipe.build_index(full=True)
        builds[name] = {"seconds": time.perf_counter() - t, "passages": report.passages, "embed_seconds": report.embed_seconds}
        pipe.warm_up()

    all_q = [q for a in load_squad(args.squad) for q in a.questions if not q.is_impossible]
    rng = random.Random(0)
    recall_q = rng.sample(all_q, min(args.recall_limit, len(all_q)))
    e2e_q = rng.sample(all_q, min(args.limit, len(all_q)))
    stores = {}
    for name, pipe in (("faiss", faiss_pipe), ("milvus", milvus_pipe)):
        stores[name] = {"build": builds[name], "recall_at_5": recall_at(pipe, recall_q), "times": [], "em": [], "f1": []}
    for n, q in enumerate(e2e_q):  # interleaved, alternating which goes first
        order = ("faiss", "milvus") if n % 2 == 0 else ("milvus", "faiss")
        for name in order:
            pipe = faiss_pipe if name == "faiss" else milvus_pipe
            t = time.perf_counter()
            a = pipe.ask(q.question)
            stores[name]["times"].append(time.perf_counter() - t)
            em, f1 = best_em_f1(a.answer or "", [t for t, _ in q.answers])
            stores[name]["em"].append(em)
            stores[name]["f1"].append(f1)
    result = {"questions_e2e": len(e2e_q), "questions_recall": len(recall_q), "stores": {}}
    for name, s in stores.items():
        result["stores"][name] = {"build": s["build"], "recall_at_5": s["recall_at_5"], "exact": 100 * statistics.mean(s["em"]),
                                  "f1": 100 * statistics.mean(s["f1"]), **summary_ms(s["times"])}
    ratios = [m / f for m, f in zip(stores["milvus"]["times"], stores["faiss"]["times"])]
    result["milvus_vs_faiss_latency_ratio_median"] = statistics.median(ratios)
    milvus_pipe.store.close()

    # chunk + embed: in process vs a local Ray (the same articles, the same chunker and encoder)
    articles, _ = ArticleLoader().load(articles_dir)
    builder = IndexBuilder(faiss_pipe.embedder, faiss_pipe.chunker)
    t = time.perf_counter()
    passages, _, _ = builder._chunk_and_embed(articles, len(articles), 0, lambda **_: None)
    local_s = time.perf_counter() - t
    import ray

    t = time.perf_counter()
    start_local_ray()
    job = RayChunkEmbedder(faiss_pipe.embedder, faiss_pipe.chunker)
    job.run(articles[:1])  # starts the actors
    startup = time.perf_counter() - t
    t = time.perf_counter()
    ray_passages, _ = job.run(articles)
    ray_s = time.perf_counter() - t
    actors = max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)
    ray.shutdown()
    result["embedding"] = {"passages": len(passages), "in_process_s": local_s, "in_process_per_s": len(passages) / local_s,
                           "ray_s": ray_s, "ray_per_s": len(ray_passages) / ray_s, "ray_startup_s": startup, "ray_actors": actors}

    result["synthetic"] = []
    save("scale_out", result)  # the figures so far survive a synthetic run stopped midway
    print(f"faiss/milvus/ray figures saved; synthetic sizes next: {args.sizes}", flush=True)
    result["synthetic"] = synthetic(args.sizes, args.synthetic_budget)
    save("scale_out", result)
    f, m = result["stores"]["faiss"], result["stores"]["milvus"]
    e = result["embedding"]
    lines = [
        f"open corpus: {builds['faiss']['passages']} passages; {len(e2e_q)} questions end to end, {len(recall_q)} for recall",
        "store    build s  recall@5  EM     F1     median ms  p95 ms",
    ]
    for name, s in (("faiss", f), ("milvus", m)):
        lines.append(f"{name:<8} {s['build']['seconds']:7.1f}  {s['recall_at_5']:8.1f}  {s['exact']:5.1f}  {s['f1']:5.1f}  {fmt(s['median_ms'], 1):>9}  {fmt(s['p95_ms'], 1):>6}")
    lines.append(f"milvus/faiss latency, median of per-question ratios: {result['milvus_vs_faiss_latency_ratio_median']:.2f}")
    lines.append(f"chunk+embed {e['passages']} passages: in process {e['in_process_per_s']:.1f}/s, local Ray ({e['ray_actors']} actor(s)) "
                 f"{e['ray_per_s']:.1f}/s (+{e['ray_startup_s']:.1f} s start-up)")
    for row in result["synthetic"]:
        if "skipped" in row:
            lines.append(f"synthetic {row['passages']:,}: skipped ({row['skipped']})")
        else:
            lines.append(f"synthetic {row['passages']:,}: insert {row['build_s']:.1f} s, hybrid query median {row['median_ms']} ms, p95 {row['p95_ms']} ms")
    print_figures(lines)
    return result


if __name__ == "__main__":
    main()
