"""Index build cost: a full rebuild of the SQuAD articles as a corpus against raw
``SentenceTransformer.encode`` on the same passages in the same run, adding one article
incrementally, and the peak memory (RSS) of the process."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import DEFAULT_SHARED, peak_rss_mb, print_figures, rss_mb, save


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad", type=Path, default=DEFAULT_SHARED / "data" / "squad" / "squad-dev-v1.1-36.json")
    ap.add_argument("--articles", type=int, default=None, help="use only the first N articles")
    args = ap.parse_args(argv)

    from articleqa.chunking import SentenceChunker
    from articleqa.embedding import Embedder
    from articleqa.indexing import IndexBuilder
    from articleqa.stores import FaissIndexStore
    from articleqa.training.squad import load_squad, write_squad_corpus

    arts = load_squad(args.squad)[: args.articles or None]
    embedder = Embedder()
    embedder.warm_up()
    rss_start = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        corpus, index_dir = Path(tmp) / "corpus", Path(tmp) / "index"
        write_squad_corpus(arts[:-1], corpus)
        last = Path(tmp) / "last"
        write_squad_corpus(arts[-1:], last)
        builder = IndexBuilder(embedder, SentenceChunker())
        # full rebuild of all articles
        shutil.copy(next(last.iterdir()), corpus)
        t = time.perf_counter()
        full = builder.build(corpus, index_dir, full=True)
        full_s = time.perf_counter() - t
        index = FaissIndexStore(index_dir).load(embedder.name)
        texts = [p.text for p in index.passages]
        # raw encode of the same passages, same process, same batch size
        t = time.perf_counter()
        embedder._model.encode(
            texts, batch_size=embedder.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        raw_s = time.perf_counter() - t
        # incremental: remove the last article, rebuild, then add it back
        (corpus / next(last.iterdir()).name).unlink()
        builder.build(corpus, index_dir)
        shutil.copy(next(last.iterdir()), corpus)
        t = time.perf_counter()
        inc = builder.build(corpus, index_dir)
        inc_s = time.perf_counter() - t
    result = {
        "articles": len(arts),
        "passages": full.passages,
        "full_rebuild_s": full_s,
        "full_embed_s": full.embed_seconds,
        "build_passages_per_s": full.passages / full_s,
        "raw_encode_s": raw_s,
        "raw_encode_passages_per_s": len(texts) / raw_s,
        "build_vs_raw_ratio": (full.passages / full_s) / (len(texts) / raw_s),
        "add_one_article_s": inc_s,
        "add_one_article_passages": inc.embedded,
        "full_vs_incremental_speedup": full_s / inc_s,
        "rss_after_model_load_mb": rss_start,
        "peak_rss_mb": peak_rss_mb(),
    }
    save("build", result)
    print_figures(
        [
            f"index build: {result['articles']} articles, {result['passages']} passages",
            f"  full rebuild {full_s:.1f}s = {result['build_passages_per_s']:.1f} passages/s; raw encode {result['raw_encode_passages_per_s']:.1f} passages/s; ratio {result['build_vs_raw_ratio']:.2f}",
            f"  add 1 article (incremental, {inc.embedded} passages embedded) {inc_s:.2f}s; full/incremental {result['full_vs_incremental_speedup']:.1f}x",
            f"  peak RSS {result['peak_rss_mb']:.0f} MB",
        ]
    )
    return result


if __name__ == "__main__":
    main()
