"""Scaling of the vector index: query latency, memory and build time at 10k, 100k and 1M passages
(synthetic, clustered, unit-length 384-d vectors), for the exact flat index and the approximate IVF
index articleqa switches to above ``FLAT_MAX_PASSAGES``, with IVF's recall@10 against flat."""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import print_figures, save, summary_ms


def synthetic(n: int, dim: int = 384, clusters: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        out[s : s + m] = centers[rng.integers(0, clusters, m)] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args(argv)
    import faiss

    from articleqa.stores import FLAT_MAX_PASSAGES, build_faiss_index, ivf_params

    rows = []
    for n in args.sizes:
        x = synthetic(n)
        rng = np.random.default_rng(1)
        q = x[rng.integers(0, n, args.queries)] + 0.3 * rng.standard_normal((args.queries, x.shape[1])).astype(
            np.float32
        )
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        truth = None
        for kind in ("flat", "ivf"):
            t = time.perf_counter()
            index, _ = build_faiss_index(x, kind)
            build_s = time.perf_counter() - t
            lat, found = [], []
            for i in range(len(q)):
                t = time.perf_counter()
                _, ids = index.search(q[i : i + 1], 10)
                lat.append(time.perf_counter() - t)
                found.append(ids[0])
            found = np.array(found)
            if kind == "flat":
                truth = found
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
            mem = faiss.serialize_index(index).nbytes / 2**20
            row = {
                **summary_ms(lat),
                "passages": n,
                "index": kind,
                "build_s": build_s,
                "memory_mb": mem,
                "recall_at_10": recall,
            }
            if kind == "ivf":
                row["nlist"], row["nprobe"] = ivf_params(n)
            rows.append(row)
            del index
        del x
    result = {"rows": rows, "flat_max_passages": FLAT_MAX_PASSAGES}
    save("scaling", result)
    print_figures(
        [f"vector index scaling (auto choice: flat up to {FLAT_MAX_PASSAGES} passages, IVF above):"]
        + [
            f"  {r['passages']:>9,} {r['index']:4s}: query median {r['median_ms']} ms p95 {r['p95_ms']} ms, {r['memory_mb']:.0f} MB, build {r['build_s']:.1f}s, recall@10 {r['recall_at_10']:.3f}"
            for r in rows
        ]
    )
    return result


if __name__ == "__main__":
    main()
