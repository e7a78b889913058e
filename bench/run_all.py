"""Run every benchmark (each in its own process) and write bench/report.md with PNG charts.

Every number in the report comes from the JSON the scripts wrote in this run (bench/out/*.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from common import reader_fingerprint, reader_spec

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("ARTICLEQA_BENCH_OUT", HERE / "out"))
REPORT = OUT.parent  # bench/report.md and its charts (beside bench/out)


def plan(shared: Path, quick: bool, compare: list[str] = ()) -> list[tuple[str, list[str]]]:
    """The benchmarks to run, with their arguments. ``compare``: other readers (``DIR[@key=value,...]``) latency.py
    times beside the shipped one; heldout.py measures those that hold out the shipped reader's articles (a reader
    of another split may have trained on them; one whose split cannot be read is passed on for heldout.py to judge)."""
    held = []
    if compare:
        from heldout import held_out_sets

        def split(model: Path) -> dict | None:
            try:
                return held_out_sets(model)
            except SystemExit:  # no train-reader record (or no such folder)
                return None

        shipped = split(HERE.parent / "models" / "reader")
        for spec in compare:
            path, _ = reader_spec(spec)
            theirs = split(Path(path))
            if theirs is None or theirs == shipped:
                held.append(path)
            else:
                print(f"heldout: leaving out {path}: it holds out other articles than models/reader", file=sys.stderr)
    squad1 = str(shared / "data" / "squad" / "squad-dev-v1.1-36.json")
    squad2 = str(shared / "data" / "squad" / "squad-dev-v2.0-36.json")
    train = str(shared / "data" / "squad" / "squad-train-442.json.gz")
    seed = str(shared / "data" / "seed-qa-visible.json")
    q = quick
    return [
        ("seed_qa", ["--questions", seed]),
        ("reader", ["--squad", squad1] + (["--limit", "300"] if q else [])),
        ("reader", ["--squad", squad2, "--name", "no_answer"] + (["--limit", "500"] if q else [])),
        ("open_squad", ["--squad", squad1] + (["--limit", "200"] if q else [])),
        # the reader's validation articles (dev) and test articles (kept out of the training set, hence its file too)
        # --compare-margin: the shipped reader also with the margin alone deciding "not found" (its answerability model off);
        # --compare-rank-prior 0: the answer chosen by the reader's own scores alone, not margin - ln(retrieval rank)
        (
            "heldout",
            ["--squad", squad2, "--squad", train, "--compare-margin", "--compare-rank-prior", "0"]
            + (["--limit", "150"] if q else [])
            + [a for m in (["models/reader", *held] if held else []) for a in ("--model", m)],
        ),
        (
            "latency",
            ["--squad", squad1, "--questions", "30" if q else "100"]
            + [a for m in compare for a in ("--compare-reader", str(m))],
        ),
        ("build", ["--squad", squad1] + (["--articles", "8"] if q else [])),
        ("train_step", ["--steps", "2" if q else "5"]),
        ("throughput", ["--questions", seed, "--seconds", "5" if q else "20"]),
        (
            "throughput",
            [
                "--questions",
                seed,
                "--workers",
                "1",
                "2",
                "--name",
                "throughput_workers",
                "--seconds",
                "8" if q else "40",
            ],
        ),
        ("scaling", ["--sizes", "10000", "100000"] + ([] if q else ["1000000"])),
        ("load", ["--questions", seed, "--clients", "16", "--seconds", "20" if q else "60"]),
        ("vs_haystack", ["--squad", squad2, "--questions", seed] + (["--limit", "60"] if q else [])),
        (
            "vs_haystack",
            ["--squad", squad2, "--questions", seed, "--reader-quantize", "none", "--name", "vs_haystack_fp32"]
            + (["--limit", "60"] if q else []),
        ),
        (
            "vs_haystack",
            [
                "--squad",
                squad2,
                "--questions",
                seed,
                "--reader-quantize",
                "none",
                "--early-exit-passages",
                "0",
                "--name",
                "vs_haystack_fp32_every",
            ]
            + (["--limit", "60"] if q else []),
        ),
        (
            "scale_out",
            ["--squad", squad1]
            + (
                ["--limit", "40", "--recall-limit", "200", "--sizes", "10000"]
                if q
                else ["--sizes", "10000", "100000", "1000000"]
            ),
        ),
    ]


def result_name(script: str, extra: list[str]) -> str:
    """The name a script's result JSON (and its run time) goes by: its ``--name``, else the script's."""
    return extra[extra.index("--name") + 1] if "--name" in extra else script


def _early(r: dict) -> str:
    n = r.get("early_exit_passages")
    return "" if n is None else (", every passage read" if n == 0 else f", early exit after {n}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    ap.add_argument("--quick", action="store_true", help="small samples (minutes instead of ~half an hour)")
    ap.add_argument("--only", nargs="*", help="run only these scripts (others keep their last results)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from bench/out/*.json")
    ap.add_argument(
        "--keep-previous",
        action="store_true",
        help="carry over, from the bench/report.md already there, the sections (and run times) this bench/out has "
        "no results for (e.g. measured on another machine); the header names them",
    )
    ap.add_argument(
        "--compare-reader",
        action="append",
        default=[],
        metavar="DIR[@key=value,...]",
        help="another reader folder latency.py (with the settings after @, e.g. @early_exit_margin=0.5) and, if it "
        "holds out the same articles as the shipped reader, heldout.py measure beside the shipped one, "
        "questions interleaved (repeatable)",
    )
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    timings = load("timings") or {}  # every script's last run time, kept across --only runs
    if not args.report_only:
        for script, extra in plan(args.shared.resolve(), args.quick, args.compare_reader):
            if args.only and script not in args.only:
                continue
            print(f"== {script} {' '.join(extra)}", flush=True)
            t = time.perf_counter()
            r = subprocess.run([sys.executable, str(HERE / f"{script}.py"), *extra], cwd=HERE.parent)
            timings[result_name(script, extra)] = round(time.perf_counter() - t, 1)
            (OUT / "timings.json").write_text(json.dumps(timings, indent=1))
            if r.returncode != 0:
                print(f"!! {script} failed with exit code {r.returncode}", flush=True)
    previous = (
        (REPORT / "report.md").read_text(encoding="utf-8")
        if args.keep_previous and (REPORT / "report.md").is_file()
        else None
    )
    write_report(timings, args.quick)
    if previous:
        md, carried = carry_over(previous, (REPORT / "report.md").read_text(encoding="utf-8"))
        (REPORT / "report.md").write_text(md, encoding="utf-8")
        print(f"carried over from the previous report: {', '.join(carried) or 'nothing'}")
    print(f"report: {REPORT / 'report.md'}")


RUN_TIMES = "## Run time of each script"
CARRIED = "_Carried over from an earlier run, measured on:"


def _sections(md: str) -> tuple[str, dict[str, str]]:
    """A report's header (before its first ``## ``) and its sections by heading line, in order."""
    parts = re.split(r"(?m)^(?=## )", md)
    return parts[0], {p.splitlines()[0]: p for p in parts[1:]}


def carry_over(previous: str, new: str) -> tuple[str, list[str]]:
    """``new`` with the sections of ``previous`` it lacks put back where they stood, and the run times of the scripts it
    lacks; the header names what was carried over, each carried section the machine it was measured on.
    Returns (report, carried headings)."""
    old_head, old = _sections(previous)
    head, ours = _sections(new)
    carried = [h for h in old if h not in ours and h != RUN_TIMES]
    order = list(old)  # the previous report's order; a section new in this run goes after the one it follows here
    for i, h in enumerate(ours):
        if h not in order:
            before = next((g for g in reversed(list(ours)[:i]) if g in order), None)
            order.insert(order.index(before) + 1 if before else 0, h)
    if RUN_TIMES in old:
        times = dict(re.findall(r"(?m)^\| (\S+) \| (\d+) \|$", old[RUN_TIMES]))
        times.update(re.findall(r"(?m)^\| (\S+) \| (\d+) \|$", ours.get(RUN_TIMES, "")))
        ours[RUN_TIMES] = (
            "\n".join(
                [
                    RUN_TIMES,
                    "",
                    "Each script's last run (`--only` runs keep the others' times; carried-over sections keep theirs).",
                    "",
                    "| script | seconds |",
                    "|---|---|",
                ]
                + [f"| {k} | {v} |" for k, v in times.items()]
            )
            + "\n\n"
        )
    if carried:
        said = {
            k: next((line[len(k) :].rstrip(".") for line in old_head.splitlines() if line.startswith(k)), "not stated")
            for k in ("Machine: ", "Reader: ")
        }
        machine = f"{said['Machine: ']}; reader {said['Reader: ']}"
        head = (
            head.rstrip("\n")
            + "\n\n"
            + (
                "Carried over from the previous report, not re-run here (their results were not in "
                "`bench/out`): " + ", ".join(h[3:] for h in carried) + ".\n\n"
            )
        )
        for h in carried:  # each says where it was measured (once: a section carried again keeps its first note)
            if CARRIED not in old[h]:
                old[h] = old[h].replace(h + "\n", f"{h}\n\n{CARRIED} {machine}._\n", 1)
    return head + "".join(ours.get(h) or old[h] for h in order if h in ours or h in old), carried


def load(name: str) -> dict | None:
    p = OUT / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _fmt(v, nd=1):
    return "–" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


@contextmanager
def chart(
    file: str, size: tuple[float, float], xlabel: str | None = None, ylabel: str | None = None, legend: bool = True
):
    """One PNG chart beside the report: yields the axes to draw on, then labels, saves and closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    try:
        yield ax
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if legend:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(REPORT / file, dpi=110)
    finally:
        plt.close(fig)


def readers_measured() -> str:
    """Which shipped reader (``models/reader``'s fingerprint, as each result recorded it) the results in bench/out are of."""
    by = {}
    for f in sorted(OUT.glob("*.json")):
        if f.stem != "timings":
            by.setdefault(json.loads(f.read_text()).get("shipped_reader"), []).append(f.stem)

    def what(fp: str | None) -> str:
        return "`models/reader`, " + (f"fingerprint {fp}" if fp else "its fingerprint not recorded")

    if len(by) <= 1:
        told = what(next(iter(by), reader_fingerprint()))
    else:
        told = (
            "; ".join(f"{what(fp)} in {', '.join(names)}" for fp, names in by.items())
            + f" (now {reader_fingerprint()})"
        )
    return told + " (the fingerprint: sha256 of its weights and calibration files)"


def write_report(timings: dict, quick: bool) -> None:
    md = ["# articleqa benchmark report", ""]
    any_result = next(
        (
            load(n)
            for n in ("seed_qa", "reader", "open_squad", "latency", "build", "throughput", "scaling", "load")
            if load(n)
        ),
        None,
    )
    if any_result:
        m = any_result["machine"]
        md += [
            f"Machine: {m['cores']} cores, {m['cpu']}; torch {m['torch']} ({m['torch_threads']} threads), Python {m['python']}.",
            f"Reader: {readers_measured()}.",
            f"Mode: {'quick (samples)' if quick else 'full'}. Every figure below was computed by the scripts in `bench/`;",
            "ratios are only compared within one run.",
            "",
        ]

    s = load("seed_qa")
    if s:
        md += [
            "## Seed QA (visible seed questions)",
            "",
            "| EM | F1 | citation validity | citation correctness | abstention accuracy | answerable | unanswerable |",
            "|---|---|---|---|---|---|---|",
            f"| {_fmt(s['exact'])} | {_fmt(s['f1'])} | {_fmt(s['citation_validity'])}% | {_fmt(s['citation_correctness'])}% | {_fmt(s['abstention_accuracy'])}% | {s['answerable']} | {s['unanswerable']} |",
            "",
            "Retrieval recall@5 on the answerable seed questions: "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in s["recall_at_5"].items())
            + ".",
            "",
        ]

    r = load("reader")
    if r:
        md += [
            "## Reader alone (given paragraphs)",
            "",
            f"{r['model']} ({r['quantize']}) on {r['questions']} questions of {r['squad']}, {r['articles']} articles ({', '.join(r['titles'][:6])}{'…' if len(r['titles']) > 6 else ''}).",
            "",
            "| EM | F1 | ms per ~150-word passage | questions/s |",
            "|---|---|---|---|",
            f"| {_fmt(r['exact'])} | {_fmt(r['f1'])} | {_fmt(r['latency_ms_150_words'])} | {_fmt(r['questions_per_second'])} |",
            "",
        ]

    na = load("no_answer")
    if na and na.get("no_answer"):
        n = na["no_answer"]
        md += [
            "## No-answer (SQuAD 2.0, given paragraphs)",
            "",
            f"On {na['questions']} questions of {na['squad']} ({na['articles']} articles): at the reader's given-paragraph threshold {_fmt(n['threshold'], 3)} (the pipeline refuses by its own, set through retrieval), "
            f'"not found" precision {_fmt(n["precision"])}, recall {_fmt(n["recall"])} ({n["n_unanswerable"]} unanswerable, '
            f"{n['n_answerable']} answerable); SQuAD 2.0 F1 {_fmt(n['squad2_f1'])}.",
            "",
            "![no-answer curve](no_answer_curve.png)",
            "",
        ]
        curve = na.get("curve") or []
        if curve:
            with chart("no_answer_curve.png", (6, 3.5), "no-answer margin threshold", "%") as ax:
                ts = [c["threshold"] for c in curve]
                ax.plot(ts, [c["precision"] for c in curve], label="precision of 'not found'")
                ax.plot(ts, [c["recall"] for c in curve], label="recall of 'not found'")
                ax.plot(ts, [c["squad2_f1"] for c in curve], label="SQuAD 2.0 F1", linestyle="--")
                ax.axvline(n["threshold"], color="grey", linewidth=1)

    h = load("heldout")
    if h:
        md += [
            "## Articles the reader never saw (`heldout.py`)",
            "",
            f"The reader's held-out articles ({'; '.join(f'{k}: ' + ', '.join(v) for k, v in h['sets'].items())}); their SQuAD 2.0 questions asked through",
            f"the whole pipeline over all articles of {h['squad']} as an open corpus (top-k {h['top_k']}). Reader alone: the paragraph given.",
            "",
            '| reader | articles | answerable / unanswerable | reader alone EM / F1 | pipeline F1 (answerable, "not found" = 0) | wrongly refused | unanswerable refused | reading median ms |',
            "|---|---|---|---|---|---|---|---|",
        ]
        for m, by_set in h["models"].items():
            for name in h["sets"]:
                f = by_set[name]
                judge = (
                    f", answerability model {_fmt(by_set['answerability_threshold'], 2)}"
                    if by_set.get("answerability_threshold") is not None
                    else ""
                )
                md.append(
                    f"| {Path(m).name} ({by_set['inference_path']}, threshold {_fmt(by_set['threshold'], 2)}{judge}) | {name} | {f['answerable']} / {f['unanswerable']} | "
                    f"{_fmt(f['reader_exact'])} / {_fmt(f['reader_f1'])} | {_fmt(f['pipeline_f1'])} | {_fmt(f['wrongly_refused'])}% | "
                    f"{_fmt(f['unanswerable_refused'])}% | {_fmt(f['reading']['median_ms'])} |"
                )
                for t, g in f.get("at_threshold", {}).items():
                    md.append(
                        f"| same, at threshold {_fmt(float(t), 2)} instead | {name} | | | {_fmt(g['pipeline_f1'])} | {_fmt(g['wrongly_refused'])}% | "
                        f"{_fmt(g['unanswerable_refused'])}% | |"
                    )
        st = next(iter(h["models"].values())).get("settings")
        if st:
            md += [
                "",
                f"Pipeline settings: early exit after {st['early_exit_passages']} passages (margin {st['early_exit_margin']}, never below the "
                f"threshold), answer rank prior {st['answer_rank_prior']}; passages read per question: "
                + ", ".join(
                    f"{Path(m).name} {name} {by_set[name]['passages_read']:.2f}"
                    for m, by_set in h["models"].items()
                    for name in h["sets"]
                    if "passages_read" in by_set[name]
                )
                + ".",
            ]
        md += [
            "",
            "Validation articles chose the reader's epoch and threshold (their figures flatter); test articles chose nothing.",
            "",
            "Separation: how well the best span's margin tells answerable from unanswerable questions, the ceiling of any threshold:",
            "its AUC, and the unanswerable questions refused at the threshold that (set on these same questions) refuses 6% / 10% of",
            "the answerable ones; and, of the unanswerable questions the reader answered, the share answered from their own SQuAD paragraph.",
            "",
            "| reader | articles | margin AUC | unanswerable refused at 6% / 10% of answerable refused | unanswerable answered from their own paragraph |",
            "|---|---|---|---|---|",
        ]
        for m, by_set in h["models"].items():
            for name in h["sets"]:
                f = by_set[name]
                sep = f.get("separation") or {}
                if sep.get("auc") is None:
                    continue
                at = sep["unanswerable_refused_at"]
                md.append(
                    f"| {Path(m).name} | {name} | {sep['auc']:.3f} | {_fmt(at.get('6%'))}% / {_fmt(at.get('10%'))}% | "
                    f"{_fmt(f.get('unanswerable_answered_from_own_paragraph'))}% |"
                )
        firsts = [
            (m, name, by_set[name])
            for m, by_set in h["models"].items()
            for name in h["sets"]
            if by_set[name].get("references_per_question") is not None
        ]
        if firsts:
            md += [
                "",
                "Scored against the first reference answer only (the question writer's): SQuAD takes the best of a question's",
                "references, and a dev-set question has up to four while a training-set question (the test articles come from the",
                "training set) has one, so this is the figure that compares validation with test.",
                "",
                "| reader | articles | distinct references per question | reader alone F1 (all / first) | pipeline F1 (all / first) |",
                "|---|---|---|---|---|",
            ]
            for m, name, f in firsts:
                md.append(
                    f"| {Path(m).name} | {name} | {_fmt(f['references_per_question'], 2)} | {_fmt(f['reader_f1'])} / "
                    f"{_fmt(f['reader_f1_first_reference'])} | {_fmt(f['pipeline_f1'])} / {_fmt(f['pipeline_f1_first_reference'])} |"
                )
        lost = [
            (m, name, by_set[name])
            for m, by_set in h["models"].items()
            for name in h["sets"]
            if "f1_lost" in by_set[name]
        ]
        if lost:
            md += [
                "",
                "Where answerable F1 is lost between the reader alone (its paragraph given) and the pipeline: a reference answer in the",
                f"top-{h['top_k']} retrieved passages; the best span among the passages read (had the right passage been picked); the span the",
                'pipeline picks (highest margin, never refusing); the pipeline with "not found" (= 0).',
                "",
                "| reader | articles | reader alone F1 | answer in retrieved passages | best span read F1 | picked span F1 | pipeline F1 | reader alone F1 by article |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for m, name, f in lost:
                g = f["f1_lost"]
                by_article = ", ".join(f"{t} {_fmt(r['f1'])}" for t, r in f.get("reader_f1_by_article", {}).items())
                md.append(
                    f"| {Path(m).name} | {name} | {_fmt(f['reader_f1'])} | {_fmt(g['answer_in_retrieved'])}% | {_fmt(g['best_read_span_f1'])} | "
                    f"{_fmt(g['highest_margin_span_f1'])} | {_fmt(f['pipeline_f1'])} | {by_article} |"
                )
        md.append("")

    o = load("open_squad")
    if o:
        md += [
            "## Open-corpus SQuAD",
            "",
            f"{o['questions']} questions over {o['passages']} passages of {o['articles']} articles (a hit: a retrieved passage contains a reference answer).",
            "",
            "| retriever | recall@1 | recall@5 | recall@10 | median ms |",
            "|---|---|---|---|---|",
        ]
        for name, rr in o["recall"].items():
            md.append(
                f"| {name} | {_fmt(rr['@1'])} | {_fmt(rr['@5'])} | {_fmt(rr['@10'])} | {_fmt(o['retrieval_latency'][name]['median_ms'])} |"
            )
        md += ["", "![recall](recall.png)", ""]
        with chart("recall.png", (6, 3.2), ylabel="%") as ax:
            names = list(o["recall"])
            for i, k in enumerate(["@1", "@5", "@10"]):
                ax.bar(
                    [j + i * 0.27 for j in range(len(names))],
                    [o["recall"][nm][k] for nm in names],
                    width=0.27,
                    label=f"recall{k}",
                )
            ax.set_xticks([j + 0.27 for j in range(len(names))], names)
        if o.get("e2e"):
            md += [
                "End to end (top-k 5):",
                "",
                "| questions | n | EM | F1 | citation in own paragraph | answered |",
                "|---|---|---|---|---|---|",
            ]
            for part in ("all", "heldout"):
                e = o["e2e"].get(part)
                if e:
                    md.append(
                        f"| {part} | {e['n']} | {_fmt(e['exact'])} | {_fmt(e['f1'])} | {_fmt(e['own_paragraph'])}% | {_fmt(e['found'])}% |"
                    )
            md += [
                "",
                f"'heldout' are the reader's validation articles ({', '.join(o['e2e']['heldout_articles'])}); it was trained on the others.",
                "",
            ]

    lat = load("latency")
    if lat:
        md += [
            "## Latency per question",
            "",
            f"{lat['questions']} questions over {lat['passages']} passages; median / p95 in ms.",
            "",
            "| top-k | embedding | retrieval | reading | total |",
            "|---|---|---|---|---|",
        ]
        for k, st in lat["by_top_k"].items():
            md.append(
                f"| {k} | "
                + " | ".join(
                    f"{_fmt(st[s]['median_ms'])} / {_fmt(st[s]['p95_ms'])}"
                    for s in ("embedding", "retrieval", "reading", "total")
                )
                + " |"
            )
        rd = lat.get("readers")
        if rd:
            md += [
                "",
                f"Readers side by side at top-k {rd['top_k']}, the same questions asked of each in turn (order alternating, one "
                "process): reading time, passages read (early exit) and the total reading time over these questions relative to the "
                "shipped reader's.",
                "",
                "| reader | path | reading median / p95 / mean ms | passages read | ms per passage | reading time / shipped |",
                "|---|---|---|---|---|---|",
            ]
            for m, r in rd["by_reader"].items():
                md.append(
                    f"| {m} | {r['inference_path']} | {_fmt(r['reading']['median_ms'])} / "
                    f"{_fmt(r['reading']['p95_ms'])} / {_fmt(r.get('reading_mean_ms'))} | {_fmt(r['passages_read'], 2)} | {_fmt(r['ms_per_passage'])} | "
                    f"{_fmt(r['reading_ratio_to_shipped'], 2)} |"
                )
        md += ["", "![latency](latency.png)", ""]
        with chart("latency.png", (6, 3.2), "top-k", "median ms") as ax:
            ks = list(lat["by_top_k"])
            bottom = [0.0] * len(ks)
            for s in ("embedding", "retrieval", "reading"):
                vals = [lat["by_top_k"][k][s]["median_ms"] for k in ks]
                ax.bar(ks, vals, bottom=bottom, label=s)
                bottom = [b + v for b, v in zip(bottom, vals)]

    t = load("throughput")
    if t:
        md += [
            "## Throughput through the HTTP API",
            "",
            "| clients | questions/s | median ms | p95 ms | errors |",
            "|---|---|---|---|---|",
        ]
        for n, v in t["levels"].items():
            md.append(
                f"| {n} | {_fmt(v['qps'])} | {_fmt(v['median_ms'])} | {_fmt(v['p95_ms'])} | {v['errors']}/{v['requests']} |"
            )
        md += ["", "![throughput](throughput.png)", ""]
        with chart("throughput.png", (5, 3), "concurrent clients", "questions / s", legend=False) as ax:
            ax.plot([int(n) for n in t["levels"]], [v["qps"] for v in t["levels"].values()], marker="o")
            ax.set_xscale("log", base=2)

    b = load("build")
    if b:
        md += [
            "## Index build",
            "",
            f"{b['articles']} SQuAD articles, {b['passages']} passages: full rebuild {_fmt(b['full_rebuild_s'])} s "
            f"({_fmt(b['build_passages_per_s'])} passages/s) against raw `SentenceTransformer.encode` at {_fmt(b['raw_encode_passages_per_s'])} passages/s "
            f"on the same passages: ratio **{_fmt(b['build_vs_raw_ratio'], 2)}**. Adding one article incrementally: {_fmt(b['add_one_article_s'], 2)} s "
            f"({b['add_one_article_passages']} passages embedded), {_fmt(b['full_vs_incremental_speedup'])}x faster than a full rebuild. "
            f"Peak RSS {_fmt(b['peak_rss_mb'], 0)} MB.",
            "",
        ]

    ts = load("train_step")
    if ts:
        md += [
            "## Reader training step (`train_step.py`)",
            "",
            f"One `train-reader` step (forward with the span loss, backward, AdamW) at batch {ts['batch'][0]} x {ts['batch'][1]}, "
            f"bf16 autocast {'on' if ts['bf16'] else 'off'}, {ts['torch_threads']} threads; the two variants' steps interleaved, median of {ts['steps']}.",
            "",
            "| attention dropout | s per step | user CPU s | system CPU s |",
            "|---|---|---|---|",
        ]
        for name, r in ts["variants"].items():
            md.append(
                f"| {name} ({r['attention_dropout']}) | {_fmt(r['s_per_step'], 2)} | {_fmt(r['user_s'], 2)} | {_fmt(r['system_s'], 2)} |"
            )
        md += [
            "",
            f"`--attention-dropout 0` makes a step **{_fmt(ts['speedup'], 2)}x** as fast (PyTorch's fused attention kernel "
            "instead of materialised weight matrices and their dropout mask).",
            "",
        ]

    sc = load("scaling")
    if sc:
        md += [
            "## Vector index scaling (synthetic 384-d vectors)",
            "",
            "| passages | index | query median ms | p95 ms | memory MB | build s | recall@10 vs flat |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in sc["rows"]:
            md.append(
                f"| {row['passages']:,} | {row['index']}{' (nlist %d, nprobe %d)' % (row['nlist'], row['nprobe']) if row['index'] == 'ivf' else ''} | {_fmt(row['median_ms'], 2)} | {_fmt(row['p95_ms'], 2)} | {_fmt(row['memory_mb'], 0)} | {_fmt(row['build_s'])} | {_fmt(row['recall_at_10'], 3)} |"
            )
        md += [
            "",
            f"articleqa uses the exact flat index up to {sc['flat_max_passages']:,} passages and IVF above it.",
            "",
            "![scaling](scaling.png)",
            "",
        ]
        with chart("scaling.png", (5.5, 3.2), "passages", "query median ms") as ax:
            for kind in ("flat", "ivf"):
                rows = [r for r in sc["rows"] if r["index"] == kind]
                ax.plot([r["passages"] for r in rows], [r["median_ms"] for r in rows], marker="o", label=kind)
            ax.set_xscale("log")
            ax.set_yscale("log")

    ld = load("load")
    if ld:
        md += [
            "## Load with a rebuild in the middle",
            "",
            f"{ld['clients']} concurrent clients for {_fmt(ld['seconds'], 0)} s asking the seed questions, a full rebuild halfway "
            f"(rebuild {ld['rebuild_state']}, {ld['index_versions_seen']} index versions served): {ld['requests']} requests, "
            f"**{ld['failed']} failed**, {ld['invalid_citations']} invalid citations, {_fmt(ld['qps'])} q/s, "
            f"median {_fmt(ld['median_ms'])} ms, p95 {_fmt(ld['p95_ms'])} ms.",
            "",
        ]

    for name, title in (
        ("vs_haystack", "reader path as chosen (auto)"),
        ("vs_haystack_fp32", "articleqa's reader at fp32, as on a CPU without bf16 units"),
        ("vs_haystack_fp32_every", "articleqa at fp32 reading every passage (ARTICLEQA_EARLY_EXIT_PASSAGES=0)"),
    ):
        vh = load(name)
        if not vh:
            continue
        md += [
            f"## Side by side with Haystack: {title}",
            "",
            "Haystack 3: in-memory store with articleqa's passages and vectors, BM25 + embedding retrieval fused by RRF, "
            f"`TransformersExtractiveReader` with the same reader weights loaded fp32, top-k {vh['top_k']}; questions alternate which system goes first.",
            "",
            "| questions | reader path | articleqa median ms | Haystack median ms | ratio (median per question) | p95 ratio | F1 answerable (articleqa / Haystack) | wrongly refused % | unanswerable refused % |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key in ("squad2_open", "seed"):
            r = vh.get(key)
            if r:
                a, h = r["articleqa"], r["haystack"]
                md.append(
                    f"| {key} ({r['questions']}, {r['answerable']} answerable) | {r['reader_path']}{_early(r)} | {_fmt(a['median_ms'])} | {_fmt(h['median_ms'])} | "
                    f"**{_fmt(r['ratio_median'], 2)}** | {_fmt(r['ratio_p95'], 2)} | {_fmt(a['answerable_f1'])} / {_fmt(h['answerable_f1'])} | "
                    f"{_fmt(a['wrongly_refused'])} / {_fmt(h['wrongly_refused'])} | {_fmt(a['unanswerable_refused'])} / {_fmt(h['unanswerable_refused'])} |"
                )
        md.append("")

    tw = load("throughput_workers")
    if tw:
        md += [
            "## Server workers: `uvicorn app.main:app --workers N`",
            "",
            f"The same index served by 1 and 2 worker processes, both servers up, each concurrency level measured in "
            f"{tw['rounds']} slices alternating between them (seed questions).",
            "",
            "| workers | clients | questions/s | vs 1 worker | median ms | p95 ms | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        for w, levels in tw["workers"].items():
            for n, v in levels.items():
                md.append(
                    f"| {w} | {n} | {_fmt(v['qps'])} | {_fmt(v['qps_ratio'], 2)} | {_fmt(v['median_ms'])} | {_fmt(v['p95_ms'])} | {v['errors']}/{v['requests']} |"
                )
        md.append("")

    so = load("scale_out")
    if so and "labels" in so:
        md += [
            "## Beyond one machine: Milvus (both engines) vs FAISS, Ray cluster vs in process",
            "",
            f"The shared SQuAD articles as an open corpus ({next(iter(so['stores'].values()))['build']['passages']:,} passages); recall@5 of the "
            f"hybrid retriever on {so['questions_recall']} questions, end to end on {so['questions_e2e']} (the pipelines asked question by "
            "question in turn; latency ratio = median of per-question ratios to FAISS).",
            "",
            "| store | build s | recall@5 | EM | F1 | median ms | p95 ms | latency / FAISS |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, st in so["stores"].items():
            md.append(
                f"| {so['labels'][name]} | {_fmt(st['build']['seconds'])} | {_fmt(st['recall_at_5'])} | {_fmt(st['exact'])} | {_fmt(st['f1'])} | "
                f"{_fmt(st['median_ms'])} | {_fmt(st['p95_ms'])} | {_fmt(st['latency_ratio_to_faiss'], 2)} |"
            )
        if so["embedding"]:
            md += [
                "",
                "Chunk + embed through `articleqa index` (rate = passages / the report's embed time; for Ray, joining or starting "
                "Ray and the encoder actors included). The four run in turn, twice, the second time in reverse order; each keeps its "
                "fastest try. The clusters are `ray start` nodes on this 2-core machine, so 2 nodes share the same cores: the "
                "figure shows the cost of the cluster path, not a speed-up.",
                "",
                "| where | passages | passages/s (fastest) | tries, passages/s | embed s | wall s | nodes used |",
                "|---|---|---|---|---|---|---|",
            ]
            for label, r in so["embedding"].items():
                md.append(
                    f"| {label} | {r['passages']:,} | {_fmt(r['passages_per_s'])} | {', '.join(map(str, r.get('tries', [])))} | "
                    f"{_fmt(r['embed_s'])} | {_fmt(r['wall_s'])} | {r['nodes']} |"
                )
        if any(so["synthetic"].values()):
            md += [
                "",
                "| synthetic passages | engine | insert s | hybrid query median ms | p95 ms |",
                "|---|---|---|---|---|",
            ]
        else:  # the synthetic part was stopped (or not asked for) in this run
            md += [
                "",
                "Milvus alone on synthetic vectors: not in this run's `scale_out.json` "
                "(`bench/run_all.py --only scale_out` measures it).",
            ]
        for engine, rows in so["synthetic"].items():
            for row in rows:
                if "skipped" in row:
                    md.append(f"| {row['passages']:,} | {engine} | skipped: {row['skipped']} | | |")
                else:
                    md.append(
                        f"| {row['passages']:,} | {engine} | {_fmt(row['build_s'])} | {_fmt(row['median_ms'], 2)} | {_fmt(row['p95_ms'], 2)} |"
                    )
        md.append("")

    if timings:
        md += (
            [
                "## Run time of each script",
                "",
                "Each script's last run (`--only` runs keep the others' times).",
                "",
                "| script | seconds |",
                "|---|---|",
            ]
            + [f"| {k} | {v:.0f} |" for k, v in timings.items()]
            + [""]
        )
    (REPORT / "report.md").write_text("\n".join(md), encoding="utf-8")


if __name__ == "__main__":
    main()
