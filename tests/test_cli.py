"""The command line, run as a user runs it (subprocesses, real models)."""

import json
import os
import subprocess
import sys

from conftest import READER, ROOT, SEEDS, citation_is_valid, seed_texts

from articleqa.text import best_em_f1

COMMANDS = ["index", "ask", "serve", "watch", "train-reader", "eval-reader"]


def run_cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "articleqa.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "ARTICLEQA_READER_MODEL": str(READER), **(env or {})},
    )


def test_help_on_every_command():
    top = run_cli("--help")
    assert top.returncode == 0
    for cmd in COMMANDS:
        assert cmd in top.stdout
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout, cmd


def test_ask_json_and_batch(seed_index_dir, tmp_path):
    r = run_cli("ask", "Who is the Energy Secretary?", "--index-dir", str(seed_index_dir), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["found"] and data["answer"] == "Chris Wright"
    assert set(data) >= {"question", "answer", "found", "confidence", "citations"}
    assert all(citation_is_valid(c, seed_texts()) for c in data["citations"])

    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps(["Who is the president of Colombia?", "Who won the football world cup in 2022?", ""]))
    r = run_cli("ask", "--questions", str(qfile), "--index-dir", str(seed_index_dir), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.strip().splitlines()]
    assert len(lines) == 3
    assert best_em_f1(lines[0]["answer"], ["Gustavo Petro"])[1] >= 0.8
    assert lines[1]["answer"] is None and not lines[1]["found"]
    assert "error" in lines[2]


def test_ask_human_output_and_errors(seed_index_dir, tmp_path):
    r = run_cli("ask", "In what year did Maduro take power?", "--index-dir", str(seed_index_dir))
    assert r.returncode == 0 and "2013" in r.stdout and "000_a9d1c48ba2d92731.txt:" in r.stdout
    r = run_cli("ask", "Who?", "--index-dir", str(tmp_path / "missing"))
    assert r.returncode == 3 and "articleqa index" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("ask", "", "--index-dir", str(seed_index_dir))
    assert r.returncode == 2 and "empty" in r.stderr
    r = run_cli("index", str(tmp_path / "no-such-folder"), "--index-dir", str(tmp_path / "i"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_index_command_reports_and_is_incremental(tmp_path):
    articles = tmp_path / "a"
    articles.mkdir()
    for p in SEEDS.glob("*.txt"):
        (articles / p.name).write_bytes(p.read_bytes())
    (articles / "bad.txt").write_bytes(b"\x00\x01\xfe\xff")  # NUL bytes, no BOM: binary
    r = run_cli("index", str(articles), "--index-dir", str(tmp_path / "i"))
    assert r.returncode == 0, r.stderr
    assert "full rebuild (no index yet): 3 added" in r.stdout and "bad.txt" in r.stdout
    r = run_cli("index", str(articles), "--index-dir", str(tmp_path / "i"), "--json")
    assert json.loads(r.stdout)["up_to_date"] is True


def test_train_reader_names_a_held_out_article_it_cannot_find(tmp_path):
    from conftest import squad_file

    train = str(squad_file("squad-dev-v1.1-36.json"))
    r = run_cli(
        "train-reader",
        "--train",
        train,
        "--val-title",
        "Oxygen",
        "--test-title",
        "Not_an_article",
        "--out",
        str(tmp_path / "out"),
    )
    assert r.returncode == 2 and "Not_an_article" in r.stderr and not (tmp_path / "out").exists()
    r = run_cli("train-reader", "--train", train, "--test-title", "Oxygen", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "--val-title" in r.stderr
    r = run_cli(
        "train-reader",
        "--train",
        train,
        "--val-title",
        "Oxygen",
        "--negatives-share",
        "1.5",
        "--out",
        str(tmp_path / "out"),
    )
    assert r.returncode == 2 and "--negatives-share" in r.stderr


def test_shared_normalization_needs_retrieved_passages(tmp_path):
    from conftest import squad_file

    train = str(squad_file("squad-dev-v1.1-36.json"))
    r = run_cli("train-reader", "--train", train, "--shared-norm", "1", "--out", str(tmp_path / "out"))
    assert (
        r.returncode == 2
        and "--shared-norm" in r.stderr
        and "--passages" in r.stderr
        and not (tmp_path / "out").exists()
    )


def test_export_stopped_needs_max_steps(tmp_path):
    from conftest import squad_file

    train = str(squad_file("squad-dev-v1.1-36.json"))
    r = run_cli("train-reader", "--train", train, "--export-stopped", "--out", str(tmp_path / "out"))
    assert (
        r.returncode == 2
        and "--max-steps" in r.stderr
        and "Traceback" not in r.stderr
        and not (tmp_path / "out").exists()
    )


def test_attention_dropout_is_checked_before_training(tmp_path):
    from conftest import squad_file

    train = str(squad_file("squad-dev-v1.1-36.json"))
    r = run_cli("train-reader", "--train", train, "--attention-dropout", "1.5", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "--attention-dropout" in r.stderr and not (tmp_path / "out").exists()
    # a base model whose config has no BERT attention-dropout setting is refused before any feature is built
    other = tmp_path / "distilbert"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "distilbert"}')
    r = run_cli(
        "train-reader",
        "--train",
        train,
        "--attention-dropout",
        "0",
        "--base-model",
        str(other),
        "--out",
        str(tmp_path / "out"),
    )
    assert r.returncode == 2 and "attention_probs_dropout_prob" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
