"""The shipped reader: loads offline, reads seed passages, evaluates, and training resumes."""

import json
import os
import subprocess
import sys

import pytest
from conftest import READER, ROOT, SEEDS, seed_qa, squad_file

from articleqa.reader import CALIBRATION_FILE, ExtractiveReader
from articleqa.text import best_em_f1


def test_shipped_reader_is_complete_and_small():
    assert json.loads((READER / "config.json").read_text())["dtype"] == "float32"  # loads fp32 anywhere
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", CALIBRATION_FILE):
        assert (READER / name).is_file(), name
    assert (READER / "model.safetensors").stat().st_size < 50 * 1024 * 1024
    meta = json.loads((READER / CALIBRATION_FILE).read_text())
    assert meta["validation_articles"] and "threshold" in meta["calibration"]
    card = (READER / "README.md").read_text()
    assert "Apache-2.0" in card and "CC BY-SA 4.0" in card and "articleqa train-reader" in card
    from articleqa.answerability import AnswerabilityModel
    from articleqa.training.card import model_card
    from articleqa.training.fit_answerability import with_card_section

    # the card is what its record says: every figure in it comes from the record (and the answerability
    # model's section from answerability.json, which fit-answerability appends)
    judge = AnswerabilityModel.load(READER)
    assert card == (model_card(meta) if judge is None else with_card_section(model_card(meta), judge))


def test_reader_answers_seed_questions_from_their_passages(reader):
    from articleqa.chunking import SentenceChunker
    from articleqa.ingest import ArticleLoader

    passages = SentenceChunker().chunk(ArticleLoader().load(SEEDS)[0])
    items = [q for q in seed_qa()["questions"] if not q.get("unanswerable")][:6]
    for item in items:
        # the passage of the question's source that holds the answer, as the pipeline would read it
        passage = next(p.text for p in passages if p.file == item["sources"][0] and item["answers"][0] in p.text)
        [pred] = reader.predict([(item["question"], passage)])
        assert best_em_f1(pred.text, item["answers"])[1] >= 0.8, (item["question"], pred.text)
        assert passage[pred.start : pred.end] == pred.text


def test_reader_loads_offline_and_fails_clearly(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    code = f"from articleqa.reader import ExtractiveReader; r = ExtractiveReader({str(READER)!r}); r.warm_up(); print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="incomplete: missing model weights"):
        ExtractiveReader(str(tmp_path)).warm_up()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ExtractiveReader(str(tmp_path / "nope")).warm_up()


def test_eval_reader_on_a_small_slice():
    squad = squad_file("squad-dev-v2.0-36.json")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "articleqa.cli",
            "eval-reader",
            "--model",
            str(READER),
            "--squad",
            str(squad),
            "--limit",
            "40",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert figures["questions"] == 40 and 0 <= figures["f1"] <= 100
    assert figures["no_answer"]["n_unanswerable"] > 0 and "precision" in figures["no_answer"]


def _tiny_squad(tmp_path):
    data = json.loads(squad_file("squad-dev-v1.1-36.json").read_text(encoding="utf-8"))
    tiny = {"version": "1.1", "data": []}
    for art in data["data"][:3]:
        paras = []
        for p in art["paragraphs"][:2]:
            paras.append({"context": p["context"], "qas": p["qas"][:3]})
        tiny["data"].append({"title": art["title"], "paragraphs": paras})
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny))
    return path


@pytest.mark.slow
def test_training_resumes_from_its_checkpoint(tmp_path):
    tiny = _tiny_squad(tmp_path)
    out = tmp_path / "reader"
    args = [
        sys.executable,
        "-m",
        "articleqa.cli",
        "train-reader",
        "--train",
        str(tiny),
        "--val-articles",
        "1",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-length",
        "128",
        "--stride",
        "48",
        "--checkpoint-every",
        "100",
        "--seed",
        "3",
        "--cloze-warmup",
        "8",
    ]
    first = subprocess.run([*args, "--max-steps", "2"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert (out / "checkpoint" / "state.pt").is_file() and not (out / "model.safetensors").exists()
    second = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert second.returncode == 0, second.stderr
    assert "resumed from" in second.stderr and "cloze warm-up already done" in second.stderr
    record = json.loads((out / "record.json").read_text())
    assert record["resumed_at_step"] == 2 and record["finished"]
    meta = json.loads((out / CALIBRATION_FILE).read_text())
    assert (
        meta["validation"]["none"]["n"] > 0
        and meta["inference"]["quantize"] in meta["validation"]
        and meta["command"].startswith("articleqa train-reader")
    )
    assert meta["training"]["cloze_warmup"]["questions"] == 8 and meta["training"]["train_seconds"] > 0
    assert (out / "model.safetensors").is_file() and "Cloze warm-up" in (out / "README.md").read_text()
    # fp16 on disk, fp32 in the config: plain transformers users (Haystack's reader) load it fp32 on a CPU
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"
    reader = ExtractiveReader(str(out))
    reader.warm_up()
    assert len(reader.predict([("Who?", "Nobody knows.")])) == 1
    assert (
        meta["pipeline_calibration"]["rule"] == "refusal-budget"
        and meta["pipeline_calibration"]["wrongly_refused"] <= 10
    )

    # calibrate-reader re-chooses the threshold of the trained weights without retraining (and leaves them as they are)
    weights = (out / "model.safetensors").read_bytes()
    recal = subprocess.run(
        [
            sys.executable,
            "-m",
            "articleqa.cli",
            "calibrate-reader",
            str(out),
            "--train",
            str(tiny),
            "--refusal-budget",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert recal.returncode == 0, recal.stderr
    meta_r = json.loads((out / CALIBRATION_FILE).read_text())
    pc = meta_r["pipeline_calibration"]
    assert (
        pc["refusal_budget"] == 0.5
        and 0 < pc["wrongly_refused"] <= 50
        and meta_r["calibration"]["threshold"] == pc["calibration"]["threshold"]
    )
    assert meta_r["calibration"]["threshold"] > meta["calibration"]["threshold"]  # a larger budget: a higher threshold
    assert (out / "model.safetensors").read_bytes() == weights and meta_r["command"] == meta["command"]
    assert [t["name"] for t in meta_r["tries"]] == [t["name"] for t in meta["tries"]]  # re-measured, not repeated
    assert "calibrate-reader" in meta_r["calibrated_by"] and meta_r["calibrated_by"] in (out / "README.md").read_text()
    fresh = ExtractiveReader(str(out))
    fresh.warm_up()
    assert fresh.calibration.threshold == meta_r["calibration"]["threshold"]
    # ... and holds the answer length where told to, instead of choosing it (a copy: the stages below start from this reader)
    import shutil

    held = tmp_path / "held"
    shutil.copytree(out, held, ignore=shutil.ignore_patterns("checkpoint", "best", "final", "warmup"))
    recal5 = subprocess.run(
        [
            sys.executable,
            "-m",
            "articleqa.cli",
            "calibrate-reader",
            str(held),
            "--train",
            str(tiny),
            "--max-answer-tokens",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert recal5.returncode == 0, recal5.stderr
    meta_5 = json.loads((held / CALIBRATION_FILE).read_text())
    assert meta_5["inference"]["max_answer_tokens"] == 5 and "--max-answer-tokens 5" in meta_5["calibrated_by"]
    assert [t["name"] for t in meta_5["tries"] if t["name"].startswith("decode")] == ["decode max 5 tokens"]
    bad = subprocess.run(
        [sys.executable, "-m", "articleqa.cli", "calibrate-reader", str(tmp_path), "--train", str(tiny)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr

    # stage 2: hard negatives and entity swaps, starting from that reader; the run folder is moved before it resumes
    # (and self-distillation from it, with a third article held out as a test set; seed 6 trains on
    # Apollo_program, whose questions name things its other paragraph does not, and say "first": swaps to make)
    stage2 = [
        sys.executable,
        "-m",
        "articleqa.cli",
        "train-reader",
        "--train",
        str(tiny),
        "--val-articles",
        "1",
        "--base-model",
        str(out / "final"),
        "--negatives",
        "1",
        "--entity-swaps",
        "1",
        "--antonym-swaps",
        "1",
        "--negation-twins",
        "1",
        "--condition-twins",
        "1",
        "--passages",
        "1",
        "--shared-norm",
        "1",
        "--attention-dropout",
        "0",
        "--no-answer-rule",
        "pipeline",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-length",
        "128",
        "--stride",
        "48",
        "--seed",
        "6",
        "--teacher",
        str(out / "final"),
        "--test-articles",
        "1",
    ]
    third = subprocess.run(
        [*stage2, "--out", str(tmp_path / "moving"), "--max-steps", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert third.returncode == 0, third.stderr
    assert "hard negatives" in third.stderr and " 0 hard negatives" not in third.stderr
    assert (
        "entity swaps" in third.stderr
        and " 0 entity swaps" not in third.stderr
        and " 0 antonym swaps" not in third.stderr
    )
    assert (
        "conditioned twins" in third.stderr
        and " 0 negated" not in third.stderr
        and " 0 conditioned" not in third.stderr
    )
    assert "retrieved passages" in third.stderr and " 0 retrieved passages" not in third.stderr
    assert "distilling from" in third.stderr and "; test: " in third.stderr
    # a copy of the stopped run exported where it stopped (--export-stopped): no more steps, a stage of its own
    shutil.copytree(tmp_path / "moving", tmp_path / "stopped")
    stopped = subprocess.run(
        [*stage2, "--out", str(tmp_path / "stopped"), "--max-steps", "1", "--export-stopped"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert stopped.returncode == 0, stopped.stderr
    assert "resumed from" in stopped.stderr and "stopped at step 1; test: " in stopped.stderr
    meta_s = json.loads((tmp_path / "stopped" / CALIBRATION_FILE).read_text())
    assert (
        meta_s["training"]["finished"] is False and meta_s["training"]["steps"] == 1 < meta_s["training"]["total_steps"]
    )
    assert "--max-steps 1 --export-stopped" in meta_s["command"] and meta_s["training"]["test"]["n"] > 0
    assert (
        meta_s["validation"][meta_s["inference"]["quantize"]]["n"] > 0
        and (tmp_path / "stopped" / "model.safetensors").is_file()
    )
    (tmp_path / "moving").rename(tmp_path / "stage2")
    fourth = subprocess.run(
        [*stage2, "--out", str(tmp_path / "stage2")], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert fourth.returncode == 0, fourth.stderr
    assert "resumed from" in fourth.stderr
    meta2 = json.loads((tmp_path / "stage2" / CALIBRATION_FILE).read_text())
    assert meta2["training"]["n_negatives"] > 0 and meta2["training"]["base_run"]["command"] == meta["command"]
    assert (
        meta2["training"]["n_entity_swaps"] > 0
        and "--entity-swaps 1" in meta2["command"]
        and meta2["training"]["n_antonym_swaps"] > 0
    )
    card = (tmp_path / "stage2" / "README.md").read_text()
    assert (
        card.index(meta["command"]) < card.index(meta2["command"])
        and "Hard negatives" in card
        and "Entity swaps" in card
        and "Antonym swaps" in card
    )
    assert "Negated twins" in card and "Impossible-condition twins" in card and meta2["training"]["n_negated"] > 0
    assert (
        "Retrieved passages" in card
        and meta2["training"]["n_passage_answers"] > 0
        and meta2["training"]["n_passage_negatives"] > 0
    )
    assert "Shared normalization (`--shared-norm 1.0`)" in card and meta2["training"]["config"]["shared_norm"] == 1.0
    # trained without attention dropout (the stage-1 reader had BERT's 0.1), and its config says so
    assert json.loads((out / "final" / "config.json").read_text())["attention_probs_dropout_prob"] == 0.1
    assert json.loads((tmp_path / "stage2" / "config.json").read_text())["attention_probs_dropout_prob"] == 0.0
    assert meta2["training"]["config"]["attention_dropout"] == 0.0 and "attention_dropout=0.0" in card
    # every stage with its own held-out figure: the first (from its record) and this one
    [first_stage] = meta2["training"]["base_run"]["stages"]
    assert first_stage["command"] == meta["command"] and first_stage["validation_f1"] == max(
        e["f1"] for e in meta["epochs"]
    )
    assert f"| {out} | `--val-articles 1 --epochs 1 --batch-size 4 --seed 3 --cloze-warmup 8` |" in card
    assert f"| {tmp_path / 'stage2'} | `--val-articles 1 --base-model {out / 'final'} --negatives 1" in card
    test = meta2["training"]["test"]
    assert test["n"] > 0 and 0 <= test["f1"] <= 100 and "Test articles" in card and "Self-distillation" in card
    held = {*meta2["validation_articles"], *meta2["training"]["test_articles"]}
    assert len(held) == 2  # validation and test articles are different ones; the third is trained on

    # the two stages' weights averaged (WiSE-FT), then calibrated: the card gives the average command and the
    # averaged weights' own test figure (read again: no training run measured them)
    avg = tmp_path / "avg"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "articleqa.cli",
            "average-readers",
            str(out),
            str(tmp_path / "stage2"),
            "--out",
            str(avg),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "articleqa.cli", "calibrate-reader", str(avg), "--train", str(tiny)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert "test articles (the averaged weights)" in r.stdout
    meta_a = json.loads((avg / CALIBRATION_FILE).read_text())
    assert meta_a["weight_average"]["weight_first"] == 0.5 and meta_a["training"]["test"]["n"] == test["n"]
    card_a = (avg / "README.md").read_text()
    assert (
        card_a.index(meta2["command"])
        < card_a.index("articleqa average-readers")
        < card_a.rindex("articleqa calibrate-reader")
    )
    assert "Shipped weights: 0.5 x" in card_a and f"F1 {meta_a['training']['test']['f1']:.1f}" in card_a
    # the stage table: the second reader with its own test F1, then the average with the averaged weights'
    rows = [line for line in card_a.splitlines() if line.startswith("| ")]
    assert meta_a["weight_average"]["second_test_f1"] == test["f1"]
    assert any(
        r.startswith(f"| {tmp_path / 'stage2'} | `--val-articles 1") and r.endswith(f"| {test['f1']:.1f} |")
        for r in rows
    )
    assert any(
        r.startswith(f"| {avg} | `average-readers {out} {tmp_path / 'stage2'}")
        and r.endswith(f"| {meta_a['training']['test']['f1']:.1f} |")
        for r in rows
    )
    # a stage trained from the averaged weights records the average among its stages and commands
    from articleqa.training.train import base_run_info

    info = base_run_info(str(avg))
    assert [st["command"].split()[1] for st in info["stages"]][-2:] == ["train-reader", "average-readers"]
    assert info["commands"].index(meta2["command"]) < info["commands"].index(meta_a["weight_average"]["command"])
    # an average of that average and the second stage again (a soup of three, as the shipped reader's): the record
    # keeps both readers' stages and commands, each once, oldest first, so the card still has the whole recipe
    avg2 = tmp_path / "avg2"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "articleqa.cli",
            "average-readers",
            str(avg),
            str(tmp_path / "stage2"),
            "--out",
            str(avg2),
            "--weight",
            "0.75",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    from articleqa.training.card import model_card, recipe_commands

    meta_b = json.loads((avg2 / CALIBRATION_FILE).read_text())
    rows = [
        line.split(" | ")[0][2:]
        for line in model_card(meta_b).splitlines()
        if line.startswith(f"| {tmp_path}") or line.startswith(f"| {out} |")
    ]
    assert rows == [str(out), str(tmp_path / "stage2"), str(avg), str(avg2)]
    commands = recipe_commands(meta_b)
    assert len(commands) == len(set(commands)) and commands[0] == meta["command"]
    assert (
        commands.index(meta2["command"])
        < commands.index(meta_a["weight_average"]["command"])
        < commands.index(meta_b["weight_average"]["command"])
    )
    # averaged weights were trained on what both readers were: with the reader that made the twins first (whose
    # record average-readers does not keep), the card still names them, with the stage that made them
    avg3 = tmp_path / "avg3"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "articleqa.cli",
            "average-readers",
            str(tmp_path / "stage2"),
            str(out),
            "--out",
            str(avg3),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    card_c = model_card(json.loads((avg3 / CALIBRATION_FILE).read_text()))
    for key, label in [
        ("n_negatives", "Hard negatives"),
        ("n_negated", "Negated twins"),
        ("n_passage_negatives", "Retrieved passages"),
    ]:
        assert f"{label}: {meta2['training'][key]} ({tmp_path / 'stage2'}) no-answer examples" in card_c


@pytest.mark.slow
def test_training_keeps_the_best_epoch(tmp_path):
    from safetensors.numpy import load_file

    from articleqa.config import bundled_embedding_model
    from articleqa.training.squad import load_squad, split_articles
    from articleqa.training.train import TrainConfig, train_reader

    train_arts, val_arts = split_articles(load_squad(_tiny_squad(tmp_path)), 1, seed=3)
    cfg = TrainConfig(
        base_model=bundled_embedding_model(),
        out=str(tmp_path / "run"),
        epochs=3,
        batch_size=4,
        max_length=128,
        stride=48,
        lr=3e-4,
        checkpoint_every=0,
        seed=3,
    )
    record = train_reader(
        cfg, [q for a in train_arts for q in a.questions], [q for a in val_arts for q in a.questions], progress=False
    )
    f1s = [e["f1"] for e in record["epochs"]]
    assert len(f1s) == 3 and record["best_f1"] == max(f1s) and record["best_epoch"] == f1s.index(max(f1s)) + 1
    final = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    best = load_file(str(tmp_path / "run" / "best" / "model.safetensors"))
    assert final.keys() == best.keys() and all((final[k] == best[k]).all() for k in final)


def test_evaluation_scores_the_first_reference_apart(reader):
    """SQuAD F1 takes the best of a question's references; the first alone is what a one-reference question gets."""
    from dataclasses import replace

    from articleqa.training.evaluate import evaluate
    from articleqa.training.squad import load_squad

    questions = [q for q in load_squad(squad_file("squad-dev-v1.1-36.json"))[0].questions if len(q.answers) > 1][:30]
    res = evaluate(reader, questions, calibrate=False)
    assert res.n == 30 and res.first_reference_f1 <= res.f1
    q = questions[0]
    span = reader.predict([(q.question, q.context)])[0].text
    only_second = replace(
        q, answers=(("Qwxz", 0), (span, q.context.find(span)))
    )  # the span matches the second reference only
    res = evaluate(reader, [only_second], calibrate=False)
    assert res.f1 == 100.0 and res.first_reference_f1 == 0.0
    # no questions at all (heldout.py --limit can leave an article none): nothing scored, nothing raised
    res = evaluate(reader, [], calibrate=False)
    assert res.n == 0 and res.f1 == 0.0 and not res.no_answer
