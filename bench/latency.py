"""Latency per question, split into embedding, retrieval, reading and total, at top-k 3/5/10,
over the open SQuAD corpus index (questions sampled from its articles).

``--compare-reader DIR`` (repeatable; ``DIR@key=value,...`` runs that reader with other settings, e.g. the
early-exit margin it shipped with) also measures other readers at one top-k (``--compare-top-k``, default
5): every question is asked of each reader in turn (order alternating), in one process, so the reading
times are comparable within the run; reported per reader: reading median / p95 / mean, passages read per
question, time per passage read, and the ratio of total reading time over these questions to the shipped
reader's (what the reader issue's "reading time not above today's" is measured by)."""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

from common import DEFAULT_SHARED, pipeline_for, print_figures, reader_spec, save, squad_corpus_index, summary_ms

STAGES = ("embedding", "retrieval", "reading", "total")


def passages_read(answer) -> int:
    return sum(p.margin is not None for p in answer.trace.passages) if answer.trace else 0


def compare_readers(pipes: dict, qs: list[str], top_k: int) -> dict:
    """Each question asked of every pipeline (``pipes``: reader name -> warmed pipeline, the shipped reader's
    first) in turn (order alternating): reading time and passages read."""
    rows: dict[str, list[tuple[float, int]]] = {m: [] for m in pipes}
    for i, q in enumerate(qs):
        for m in list(pipes) if i % 2 == 0 else list(reversed(pipes)):
            a = pipes[m].ask(q, top_k=top_k, explain=True)
            rows[m].append((a.timings.get("reading", 0.0), passages_read(a)))
    shipped = sum(s for s, _ in rows[next(iter(pipes))])
    out = {}
    for m, r in rows.items():
        times, read = [s for s, _ in r], [n for _, n in r]
        out[m] = {
            "inference_path": pipes[m].reader.inference_path,
            "reading": summary_ms(times),
            "reading_mean_ms": 1000 * statistics.mean(times),
            "passages_read": statistics.mean(read),
            "ms_per_passage": 1000 * sum(times) / max(1, sum(read)),
            # total reading time over the same questions (the per-question ratio is ~1 whenever both readers
            # read the same passages, so its median hides how often early exit fires)
            "reading_ratio_to_shipped": sum(times) / max(1e-9, shipped),
        }
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad", type=Path, default=DEFAULT_SHARED / "data" / "squad" / "squad-dev-v1.1-36.json")
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--top-k", type=int, nargs="+", default=[3, 5, 10])
    ap.add_argument(
        "--compare-reader",
        action="append",
        default=[],
        metavar="DIR[@key=value,...]",
        help="another reader folder, measured beside the shipped one at --compare-top-k (repeatable); after @, "
        "settings that reader runs with (e.g. @early_exit_margin=0.5)",
    )
    ap.add_argument("--compare-top-k", type=int, default=5)
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
        stage = {s: [] for s in STAGES}
        for q in qs:
            a = pipe.ask(q, top_k=k)
            for s in stage:
                stage[s].append(a.timings.get(s, 0.0))
        result["by_top_k"][str(k)] = {s: summary_ms(v) for s, v in stage.items()}
        lines.append(
            f"  top-k {k:2d}: "
            + "  ".join(f"{s} {v['median_ms']}/{v['p95_ms']}" for s, v in result["by_top_k"][str(k)].items())
        )
    if args.compare_reader:
        pipes = {"models/reader": pipe}  # the shipped reader's pipeline, already warm
        for m in args.compare_reader:
            path, settings = reader_spec(m)
            pipes[m] = pipeline_for(index_dir, articles_dir, reader_model=path, **settings)
            pipes[m].warm_up()
            for q in qs[:3]:
                pipes[m].ask(q)
        result["readers"] = {"top_k": args.compare_top_k, "by_reader": compare_readers(pipes, qs, args.compare_top_k)}
        lines.append(f"readers side by side at top-k {args.compare_top_k} (questions interleaved):")
        for m, r in result["readers"]["by_reader"].items():
            lines.append(
                f"  {m} ({r['inference_path']}): reading {r['reading']['median_ms']}/{r['reading']['p95_ms']} ms "
                f"(mean {r['reading_mean_ms']:.1f}), "
                f"{r['passages_read']:.2f} passages read, {r['ms_per_passage']:.1f} ms per passage, "
                f"reading time / shipped reader's {r['reading_ratio_to_shipped']:.2f}"
            )
    save("latency", result)
    print_figures(lines)
    return result


if __name__ == "__main__":
    main()
