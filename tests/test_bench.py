"""Smoke test: every benchmark script runs on a tiny input and prints its figures last."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, SHARED, squad_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    data = json.loads(squad_file("squad-dev-v2.0-36.json").read_text(encoding="utf-8"))
    tiny = {
        "version": "v2.0",
        "data": [{"title": a["title"], "paragraphs": a["paragraphs"][:3]} for a in data["data"][:3]],
    }
    path = tmp / "tiny.json"
    path.write_text(json.dumps(tiny))
    return tmp, path


def run(script, *args, env_out):
    r = subprocess.run(
        [sys.executable, f"bench/{script}.py", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "ARTICLEQA_BENCH_OUT": str(env_out)},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()


def test_every_script_runs_on_a_tiny_input(tiny, tmp_path):
    tmp, squad = tiny
    out = tmp / "out"
    seed = SHARED / "data" / "seed-qa-visible.json"
    assert "abstention accuracy" in run("seed_qa", "--questions", seed, env_out=out)[-3]
    assert "EM" in run("reader", "--squad", squad, "--articles", "all", "--limit", "30", env_out=out)[-2]
    assert "recall hybrid" in "\n".join(run("open_squad", "--squad", squad, "--limit", "10", env_out=out))
    title = json.loads(squad.read_text())["data"][2]["title"]  # its first 8 questions: 3 answerable, 5 unanswerable
    held = "\n".join(
        run(
            "heldout",
            "--squad",
            squad,
            "--articles",
            title,
            "--limit",
            "8",
            "--compare-threshold",
            "-100",
            "--compare-threshold",
            "100",
            "--compare-chunking",
            "250/60/3",
            env_out=out,
        )
    )
    assert "reader alone EM" in held and "wrongly refused" in held and "unanswerable refused" in held
    # re-deciding at another threshold from the same run: -100 answers everything, 100 refuses everything
    assert (
        "at threshold -100.00 instead: pipeline F1" in held
        and "wrongly refused 0.0%, unanswerable refused 0.0%" in held
    )
    assert "at threshold 100.00 instead: pipeline F1 0.0, wrongly refused 100.0%, unanswerable refused 100.0%" in held
    assert "separation: margin AUC" in held and "of answerable refused" in held and "from their own paragraph" in held
    assert "F1 lost on the way: reader alone" in held and f"reader alone by article: {title}" in held
    assert "against the first reference answer only (" in held
    # the same questions over the corpus cut into 250-word passages, the top 3 read, in the same run
    assert "(250-word passages, top-k 3)" in held and "answer in the top-3 passages" in held
    measured = json.loads((out / "heldout.json").read_text())["models"]
    chunked = next(v for k, v in measured.items() if "250-word" in k)
    assert chunked["settings"]["chunk_words"] == 250 and chunked["settings"]["top_k"] == 3
    assert chunked["given"]["questions"] == 8 and chunked["given"]["passages_read"] <= 3
    f = next(iter(measured.values()))["given"]  # dev questions: one reference or more, the first never scores higher
    assert f["references_per_question"] >= 1 and f["reader_f1_first_reference"] <= f["reader_f1"]
    assert f["pipeline_f1_first_reference"] <= f["pipeline_f1"]
    latency = "\n".join(
        run(
            "latency",
            "--squad",
            squad,
            "--questions",
            "6",
            "--top-k",
            "5",
            "--compare-reader",
            ROOT / "models" / "reader",
            "--compare-reader",
            f"{ROOT / 'models' / 'reader'}@early_exit_passages=0",
            env_out=out,
        )
    )
    assert "top-k  5" in latency and "readers side by side at top-k 5" in latency
    # the same reader twice reads the same passages: its early exit is deterministic
    read = [
        float(line.split(" passages read")[0].rsplit(" ", 1)[1])
        for line in latency.splitlines()
        if "passages read" in line
    ]
    assert len(read) == 3 and read[0] == read[1], latency
    assert read[2] == 5.0, latency  # with early exit off (after @) every top-5 passage is read
    assert "ratio" in "\n".join(run("build", "--squad", squad, env_out=out))
    step = "\n".join(run("train_step", "--steps", "1", "--batch-size", "2", "--length", "64", env_out=out))
    assert (
        "base model's attention dropout (0.1)" in step and "--attention-dropout 0 (0.0)" in step and "speed-up" in step
    )
    assert "clients" in run("throughput", "--questions", seed, "--clients", "1", "2", "--seconds", "2", env_out=out)[-1]
    workers = "\n".join(
        run(
            "throughput",
            "--questions",
            seed,
            "--clients",
            "2",
            "--seconds",
            "2",
            "--rounds",
            "2",
            "--workers",
            "1",
            "2",
            "--name",
            "throughput_workers",
            env_out=out,
        )
    )
    assert "1 worker(s),  2 clients" in workers and "2 worker(s),  2 clients" in workers and "errors 0/" in workers
    assert "recall@10" in run("scaling", "--sizes", "2000", "--queries", "20", env_out=out)[-1]
    figures = "\n".join(
        run("scale_out", "--squad", squad, "--limit", "3", "--recall-limit", "5", "--sizes", "1000", env_out=out)
    )
    assert "latency / faiss" in figures and "milvus-native" in figures and "local Ray" in figures
    assert "synthetic milvus-lite 1,000: insert" in figures and "synthetic milvus-native 1,000: insert" in figures
    assert "chunk+embed cluster, 2 nodes (1 CPU each)" in figures  # (tiny: one batch, so one node embeds it)
    r = subprocess.run(
        [sys.executable, "bench/run_all.py", "--report-only"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ARTICLEQA_BENCH_OUT": str(out)},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    report = (out.parent / "report.md").read_text()
    assert "Articles the reader never saw" in report and "| margin AUC |" in report
    assert "| distinct references per question |" in report
    assert "Milvus native engine" in report and "cluster, 2 nodes" in report and "--workers N" in report
    assert "Readers side by side at top-k 5" in report and "| reading time / shipped |" in report
    assert "Reader training step" in report and "makes a step" in report
    fingerprint = json.loads((out / "seed_qa.json").read_text())["shipped_reader"]  # which reader every figure is of
    assert len(fingerprint) == 12 and f"Reader: `models/reader`, fingerprint {fingerprint} (" in report


def test_vs_haystack_runs_on_a_tiny_input(tiny):
    pytest.importorskip("haystack", reason="the Haystack comparison needs the bench extra (make bench installs it)")
    tmp, squad = tiny
    figures = "\n".join(run("vs_haystack", "--squad", squad, "--limit", "4", env_out=tmp / "out-haystack"))
    assert "ratio (median of per-question)" in figures and "unanswerable refused" in figures


def test_run_times_are_kept_across_runs_and_a_reader_can_be_compared(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "timings.json").write_text(
        json.dumps({"seed_qa": 8.2, "vs_haystack_fp32": 107.4})
    )  # as an earlier run left them
    r = subprocess.run(
        [sys.executable, "bench/run_all.py", "--report-only"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ARTICLEQA_BENCH_OUT": str(out)},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    report = (tmp_path / "report.md").read_text()
    assert "| seed_qa | 8 |" in report and "| vs_haystack_fp32 | 107 |" in report
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import run_all

    plan = dict((run_all.result_name(s, a), a) for s, a in run_all.plan(SHARED, False, [tmp_path / "old-reader"]))
    held = plan["heldout"]
    assert "--compare-margin" in held  # the report shows the shipped reader with and without its answerability model
    assert held[held.index("--compare-rank-prior") + 1] == "0"  # and choosing by the reader's own scores alone
    assert held[-4:] == ["--model", "models/reader", "--model", str(tmp_path / "old-reader")]
    assert plan["latency"][-2:] == ["--compare-reader", str(tmp_path / "old-reader")]
    assert "--model" not in dict((run_all.result_name(s, a), a) for s, a in run_all.plan(SHARED, False))["heldout"]
    # a reader of another split is only timed (with the settings it shipped with), not measured on these articles
    other = tmp_path / "other-split"
    other.mkdir()
    (other / "articleqa_reader.json").write_text(json.dumps({"validation_articles": ["Some_other_article"]}))
    plan = dict(
        (run_all.result_name(s, a), a) for s, a in run_all.plan(SHARED, False, [f"{other}@early_exit_margin=0.5"])
    )
    assert "--model" not in plan["heldout"]
    assert plan["latency"][-2:] == ["--compare-reader", f"{other}@early_exit_margin=0.5"]
    with pytest.raises(
        SystemExit, match="no such setting early_exit_margn"
    ):  # a misspelt setting is not silently ignored
        run_all.plan(SHARED, False, [f"{other}@early_exit_margn=0.5"])
    assert {"no_answer", "throughput_workers", "vs_haystack_fp32_every"} <= set(plan)


def test_a_partial_run_keeps_the_previous_reports_other_sections(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import run_all

    previous = (ROOT / "bench" / "report.md").read_text(encoding="utf-8")
    _, sections = run_all._sections(previous)
    out = tmp_path / "out"
    out.mkdir()  # no results at all: every section comes from the previous report
    (tmp_path / "report.md").write_text(previous, encoding="utf-8")

    def rewrite():
        r = subprocess.run(
            [sys.executable, "bench/run_all.py", "--report-only", "--keep-previous"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "ARTICLEQA_BENCH_OUT": str(out)},
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        return (tmp_path / "report.md").read_text(encoding="utf-8"), r.stdout

    report, printed = rewrite()
    _, kept = run_all._sections(report)
    assert list(kept) == list(sections)  # same sections, same order
    assert "carried over from the previous report: ## Seed QA" in printed
    assert "Carried over from the previous report, not re-run here" in report
    machine = next(line for line in previous.splitlines() if line.startswith("Machine: "))[len("Machine: ") :].rstrip(
        "."
    )
    reader = next(line for line in previous.splitlines() if line.startswith("Reader: "))[len("Reader: ") :].rstrip(".")
    for h, text in sections.items():
        if h != run_all.RUN_TIMES:  # every figure line kept, and the machine it was measured on named once
            assert [line for line in kept[h].splitlines() if line.startswith("|")] == [
                line for line in text.splitlines() if line.startswith("|")
            ]
            assert kept[h].count(run_all.CARRIED) == 1 and (
                f"{machine}; reader {reader}._" in kept[h] or run_all.CARRIED in text
            ), h
    assert "| heldout |" in kept[run_all.RUN_TIMES]  # run times of the scripts not run here are kept
    again, _ = rewrite()  # carried a second time: nothing added twice
    assert again.count(run_all.CARRIED) == report.count(run_all.CARRIED)
    assert again.count("Carried over from the previous report") == 1

    # a section this run measured replaces the previous one in place; the ones it did not measure stay
    new = "# articleqa benchmark report\n\nMachine: 4 cores, test CPU.\n\n## Seed QA (visible seed questions)\n\nnew figures\n\n"
    merged, carried = run_all.carry_over(previous, new)
    _, m = run_all._sections(merged)
    assert (
        list(m) == list(sections)
        and m["## Seed QA (visible seed questions)"] == "## Seed QA (visible seed questions)\n\nnew figures\n\n"
    )
    assert (
        "## Seed QA (visible seed questions)" not in carried and len(carried) == len(sections) - 2
    )  # and the run times
    assert merged.startswith("# articleqa benchmark report\n\nMachine: 4 cores, test CPU.\n\nCarried over")
