"""The reader lab's commands: train, calibrate, average, fit the answerability model, evaluate.

They drive ``articleqa.training`` and are registered on the ``articleqa`` command by
``register_lab_commands`` (``articleqa --help`` lists them in their own panel, "Reader lab"), so every
command name and flag is the same as ever. The recipe they make the shipped reader with is in
docs/reader.md and the reader's model card.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional

import typer

LAB_PANEL = "Reader lab"


def _fail(message: str, code: int = 2) -> None:
    from articleqa.cli import _fail as fail

    fail(message, code)


def register_lab_commands(app: typer.Typer) -> None:
    """Add the lab's commands to ``app`` under the "Reader lab" help panel."""
    for name, command in (
        ("train-reader", train_reader_cmd),
        ("calibrate-reader", calibrate_reader_cmd),
        ("average-readers", average_readers_cmd),
        ("fit-answerability", fit_answerability_cmd),
        ("eval-reader", eval_reader_cmd),
    ):
        app.command(name, rich_help_panel=LAB_PANEL)(command)


def train_reader_cmd(
    train: Annotated[
        list[Path], typer.Option("--train", help="SQuAD-format JSON file(s) to train on (1.1 and/or 2.0).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Where the shipped reader is written (checkpoints in OUT/checkpoint).")
    ],
    val_articles: Annotated[
        int, typer.Option("--val-articles", help="Hold out this many whole articles of --train for validation.")
    ] = 4,
    val: Annotated[
        Optional[list[Path]], typer.Option("--val", help="Validation SQuAD file(s) instead of held-out articles.")
    ] = None,
    test_articles: Annotated[
        int,
        typer.Option(
            "--test-articles",
            help="Also hold out this many whole articles as a test set: never trained on, never used for a choice (epoch, threshold); the final model's EM/F1 on them goes into the model card.",
        ),
    ] = 0,
    val_title: Annotated[
        Optional[list[str]],
        typer.Option(
            "--val-title",
            help="Hold out this article (by SQuAD title; repeatable) for validation instead of --val-articles.",
        ),
    ] = None,
    test_title: Annotated[
        Optional[list[str]],
        typer.Option(
            "--test-title",
            help="Hold out this article (by SQuAD title; repeatable) as the test set instead of --test-articles.",
        ),
    ] = None,
    base_model: Annotated[
        Optional[str], typer.Option("--base-model", help="Encoder to start from [default: bundled all-MiniLM-L6-v2].")
    ] = None,
    epochs: Annotated[float, typer.Option(help="Training epochs (fractions allowed).")] = 3.0,
    max_length: Annotated[int, typer.Option(help="Tokens per window (question + context).")] = 256,
    stride: Annotated[int, typer.Option(help="Overlap of consecutive windows, in tokens.")] = 96,
    lr: Annotated[float, typer.Option(help="Peak learning rate (linear warm-up and decay).")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 16,
    layer_decay: Annotated[float, typer.Option(help="Layer-wise learning-rate decay (1.0 = off).")] = 1.0,
    unanswerable_fraction: Annotated[
        float, typer.Option(help="Share of unanswerable training questions used as [CLS] targets.")
    ] = 1.0,
    max_answer_tokens: Annotated[int, typer.Option(help="Longest answer span considered when decoding.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (data order, head init, split).")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps.")] = 200,
    bf16: Annotated[str, typer.Option(help="bf16 autocast: auto (AMX/AVX512-BF16 CPU or GPU), yes, no.")] = "auto",
    max_steps: Annotated[
        Optional[int], typer.Option(help="Stop after N steps (smoke tests); resume later continues.")
    ] = None,
    cloze_warmup: Annotated[
        int,
        typer.Option(
            help="First train one epoch on up to N synthetic cloze questions from the training paragraphs (0 = off)."
        ),
    ] = 0,
    negatives: Annotated[
        int,
        typer.Option(
            help="Per answerable question, this many similar paragraphs of its article without the answer, trained as no-answer (0 = off)."
        ),
    ] = 0,
    negatives_share: Annotated[
        float, typer.Option(help="With --negatives: the share of answerable questions (a seeded sample) that get them.")
    ] = 1.0,
    entity_swaps: Annotated[
        int,
        typer.Option(
            help="Per answerable question, this many unanswerable twins on its own paragraph: a name, year or number of the question swapped for one of its article the paragraph never mentions (0 = off)."
        ),
    ] = 0,
    antonym_swaps: Annotated[
        int,
        typer.Option(
            help="Per answerable question, this many unanswerable twins on its own paragraph: a word of the question swapped for its opposite (western/eastern, largest/smallest, before/after) that the paragraph never uses (0 = off)."
        ),
    ] = 0,
    negation_twins: Annotated[
        int,
        typer.Option(
            help="1 = per answerable question whose paragraph never negates anything, an unanswerable twin on that paragraph: the question negated ('Who was the first ...?' -> 'Who was not the first ...?'); 0 = off."
        ),
    ] = 0,
    condition_twins: Annotated[
        int,
        typer.Option(
            help="Per answerable question that asks no time, this many unanswerable twins on its own dated paragraph: 'in YEAR' added with a year of its article the paragraph never mentions (0 = off)."
        ),
    ] = 0,
    passages: Annotated[
        int,
        typer.Option(
            help="Train on what the pipeline reads: per answerable question, the index passage (~150-word chunk) of its article holding its answer, plus this many passages of the article that BM25 ranks closest to the question and that lack the answer, as no-answer (0 = off)."
        ),
    ] = 0,
    passages_share: Annotated[
        float, typer.Option(help="With --passages: the share of answerable questions (a seeded sample) that get them.")
    ] = 1.0,
    shared_norm: Annotated[
        float,
        typer.Option(
            help="With --passages: weight of a loss whose span softmax spans all passages of a question at once (shared normalization), so span scores compare across passages as the pipeline compares them (0 = off)."
        ),
    ] = 0.0,
    attention_dropout: Annotated[
        Optional[float],
        typer.Option(
            help="Dropout on attention weights (default: the base model's, 0.1 for BERT). 0 lets attention run PyTorch's fused kernel in training too: a third to a half of the time per step on 2 CPU cores (bench/train_step.py)."
        ),
    ] = None,
    teacher: Annotated[
        Optional[Path],
        typer.Option(
            help="Self-distillation: a trained reader (same tokenizer) whose start/end distributions are learned too."
        ),
    ] = None,
    distill_weight: Annotated[
        float, typer.Option(help="With --teacher: share of the loss on the teacher's distributions.")
    ] = 0.5,
    distill_temperature: Annotated[
        float, typer.Option(help="With --teacher: softmax temperature of both distributions.")
    ] = 2.0,
    no_answer_rule: Annotated[
        str,
        typer.Option(
            help="Pipeline 'not found' threshold, measured through retrieval on the validation questions: refusal-budget (refuse at most --refusal-budget of the answerable ones), pipeline (best expected F1, see --unanswerable-share) or paragraph-f1 (SQuAD 2.0 F1-optimal on the validation paragraphs)."
        ),
    ] = "refusal-budget",
    refusal_budget: Annotated[
        float,
        typer.Option(
            help="For --no-answer-rule refusal-budget: the largest share of answerable questions that may be answered 'not found'."
        ),
    ] = 0.10,
    unanswerable_share: Annotated[
        float,
        typer.Option(
            help="For --no-answer-rule pipeline: the share of user questions assumed to have no answer in the articles."
        ),
    ] = 0.25,
    keep_best: Annotated[
        bool,
        typer.Option(
            "--keep-best/--keep-last", help="Ship the epoch with the best validation F1 (default) or the last one."
        ),
    ] = True,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="Ignore an existing checkpoint and start over.")
    ] = False,
    no_export: Annotated[
        bool, typer.Option("--no-export", help="Keep the fp32 model in OUT/final; skip calibration and model card.")
    ] = False,
    export_stopped: Annotated[
        bool,
        typer.Option(
            "--export-stopped",
            help="With --max-steps: export the run where it stops as a stage of its own (test figure, calibration, model card; its record keeps the step it stopped at) instead of leaving the fp32 model in OUT/final for a later resume. Run again with it on a run already stopped there to export it without training.",
        ),
    ] = False,
    tries: Annotated[
        Optional[Path], typer.Option(help="JSON list of earlier tries to record in the model card.")
    ] = None,
    corpus: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--corpus",
            help="SQuAD file(s) whose articles (with the validation articles) form the open corpus the 'not found' threshold is calibrated on [default: every training and validation article; with the whole training set, name a smaller file such as the dev set].",
        ),
    ] = None,
) -> None:
    """Train the extractive reader on SQuAD data and ship it (fp16 weights + calibration + model card).

    Interrupted runs resume from OUT/checkpoint when started again with the same settings.
    """
    options = dict(locals())  # the options as given, before any other name is bound
    from articleqa.config import bundled_embedding_model, get_settings
    from articleqa.training.export import export_reader
    from articleqa.training.squad import load_squad, split_articles3, split_by_titles
    from articleqa.training.train import (
        TrainConfig,
        attention_dropout_options,
        base_run_info,
        measure_test,
        train_reader,
    )
    from articleqa.training.train import cloze_warmup as run_cloze_warmup

    _check_no_answer_options(no_answer_rule, refusal_budget, unanswerable_share)
    if export_stopped and max_steps is None:
        _fail("--export-stopped exports a run stopped by --max-steps: give --max-steps too")
    for f in [*train, *(val or [])]:
        if not f.is_file():
            _fail(f"training/validation file not found: {f}")
    if teacher is not None and not teacher.is_dir():
        _fail(f"teacher model folder not found: {teacher}")
    if not 0.0 <= distill_weight <= 1.0 or distill_temperature <= 0:
        _fail("--distill-weight must be from 0 to 1 and --distill-temperature above 0")
    if shared_norm < 0 or (shared_norm > 0 and passages <= 0):
        _fail("--shared-norm must be 0 or more, and needs --passages")
    if attention_dropout is not None and not 0.0 <= attention_dropout < 1.0:
        _fail("--attention-dropout must be from 0 to below 1")
    if not 0.0 <= negatives_share <= 1.0 or not 0.0 <= passages_share <= 1.0:
        _fail("--negatives-share and --passages-share must be from 0 to 1")
    if (val_title or test_title) and val:
        _fail("--val-title/--test-title name held-out articles of --train; they cannot be combined with --val")
    articles = load_squad(*train)
    if val_title or test_title:
        if not val_title:
            _fail("--test-title needs --val-title too (the validation articles)")
        try:
            train_arts, val_arts, test_arts = split_by_titles(articles, val_title, test_title or [])
        except ValueError as exc:
            _fail(str(exc))
        test_articles = len(test_arts)
    elif val:
        val_arts = load_squad(*val)
        val_titles = {a.title for a in val_arts}
        train_arts, _, test_arts = split_articles3(
            [a for a in articles if a.title not in val_titles], 0, test_articles, seed=seed
        )
    else:
        if not 0 < val_articles < len(articles):
            _fail(f"--val-articles must be between 1 and {len(articles) - 1}")
        train_arts, val_arts, test_arts = split_articles3(articles, val_articles, test_articles, seed=seed)
    if not val_arts or not train_arts or test_articles < 0 or len(test_arts) < test_articles:
        _fail(f"--val-articles and --test-articles must leave at least one article of {len(articles)} to train on")
    typer.echo(
        f"train: {len(train_arts)} articles; validation: {', '.join(a.title for a in val_arts)}"
        + (f"; test: {', '.join(a.title for a in test_arts)}" if test_arts else ""),
        err=True,
    )
    # every option named like a TrainConfig field is that field; the three below are converted
    cfg = TrainConfig(
        **{
            f.name: options[f.name]
            for f in fields(TrainConfig)
            if f.name in options and f.name not in ("base_model", "out", "teacher")
        },
        base_model=base_model or bundled_embedding_model(),
        out=str(out),
        teacher=str(teacher) if teacher else None,
    )
    try:
        attention_dropout_options(cfg)  # before the minutes of feature building
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    warm = None
    if cloze_warmup > 0:
        warm_model, warm = run_cloze_warmup(cfg, train_arts, resume=not no_resume)
        cfg.base_model = warm_model
    train_q = [q for a in train_arts for q in a.questions]
    val_q = [q for a in val_arts for q in a.questions]
    test_q = [q for a in test_arts for q in a.questions]
    record = train_reader(cfg, train_q, val_q, resume=not no_resume, test_questions=test_q)
    record["train_files"] = [f.name for f in train]
    if test_arts:
        record["test_articles"] = [a.title for a in test_arts]
    if warm:
        record["cloze_warmup"] = warm
    base_run = base_run_info(cfg.base_model)
    if base_run:
        record["base_run"] = base_run
    stopped = not record.get("finished")
    exported = not stopped or (export_stopped and max_steps is not None)
    if stopped and exported and test_q:  # a finished run read its test articles in train_reader
        record["test"] = test_figures = measure_test(out / "final", test_q, cfg.max_answer_tokens)
        typer.echo(
            f"stopped at step {record['steps']}; test: EM {test_figures['exact']:.1f} F1 {test_figures['f1']:.1f}",
            err=True,
        )
    if exported:  # with what the run's own record.json cannot know
        (out / "record.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    if no_export or not exported:
        typer.echo(f"model (fp32) in {out / 'final'}; {'stopped early' if stopped else 'finished'}", err=True)
        return
    command = "articleqa train-reader " + " ".join(shlex.quote(a) for a in _without_option(sys.argv[2:], "--tries"))
    tries_list = json.loads(tries.read_text()) if tries else []
    meta = export_reader(
        out / "final",
        out,
        record,
        val_q,
        [a.title for a in val_arts],
        command,
        tries_list,
        corpus_articles=_calibration_corpus(corpus, train_arts, val_arts),
        no_answer_rule=no_answer_rule,
        unanswerable_share=unanswerable_share,
        settings=get_settings(),
        refusal_budget=refusal_budget,
    )
    v = meta["validation"]
    figures = ", ".join(f"{name} F1 {r['f1']:.1f} ({r['ms_per_passage']:.1f} ms)" for name, r in v.items())
    typer.echo(f"validation: {figures}; inference default {meta['inference']['quantize']}; written to {out}")


def _calibration_corpus(files: list[Path] | None, train_arts: list, val_arts: list) -> list:
    """The open corpus of the pipeline calibration: the articles of ``files`` that are not held out, plus
    the validation articles (default: every training and validation article)."""
    if not files:
        return train_arts + val_arts
    from articleqa.training.squad import load_squad

    for f in files:
        if not f.is_file():
            _fail(f"corpus file not found: {f}")
    allowed = {a.title for a in train_arts}
    return [a for a in load_squad(*files) if a.title in allowed] + val_arts


def _check_no_answer_options(rule: str, refusal_budget: float, unanswerable_share: float) -> None:
    """The "not found" options of train-reader and calibrate-reader, or exit 2 saying which is wrong."""
    from articleqa.training.export import NO_ANSWER_RULES

    if rule not in NO_ANSWER_RULES:
        _fail(f"--no-answer-rule must be {' or '.join(NO_ANSWER_RULES)}, not {rule!r}")
    if not 0.0 < unanswerable_share < 1.0:
        _fail("--unanswerable-share must be between 0 and 1")
    if not 0.0 <= refusal_budget < 1.0:
        _fail("--refusal-budget must be from 0 to below 1")


def _without_option(args: list[str], name: str) -> list[str]:
    """The command line minus one option and its value (e.g. --tries, which only documents)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


def calibrate_reader_cmd(
    model: Annotated[Path, typer.Argument(help="A reader written by train-reader (e.g. models/reader).")],
    train: Annotated[
        list[Path],
        typer.Option(
            "--train",
            help="The SQuAD file(s) it was trained on (repeatable): its validation articles are read from them.",
        ),
    ],
    no_answer_rule: Annotated[
        str, typer.Option(help="refusal-budget, pipeline or paragraph-f1 (as in train-reader).")
    ] = "refusal-budget",
    refusal_budget: Annotated[
        float,
        typer.Option(
            help="For refusal-budget: the largest share of answerable questions that may be answered 'not found'."
        ),
    ] = 0.10,
    unanswerable_share: Annotated[
        float, typer.Option(help="For pipeline: the share of questions assumed to have no answer in the articles.")
    ] = 0.25,
    tries: Annotated[Optional[Path], typer.Option(help="JSON list of further tries to add to the model card.")] = None,
    corpus: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--corpus",
            help="SQuAD file(s) whose articles (with the validation articles) form the open corpus [default: every article of --train not held out].",
        ),
    ] = None,
    max_answer_tokens: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            help="Hold the longest answer at N tokens instead of choosing it among 12, 20 and the trained limit by validation F1.",
        ),
    ] = None,
) -> None:
    """Re-choose a trained reader's "not found" threshold, answer length and inference precision on its
    own validation articles, without retraining: the weights stay as they are; the calibration file and
    the model card are rewritten, and the card records this command after the training commands."""
    from articleqa.config import get_settings
    from articleqa.reader import CALIBRATION_FILE, read_reader_meta
    from articleqa.training.export import export_reader
    from articleqa.training.squad import load_squad

    _check_no_answer_options(no_answer_rule, refusal_budget, unanswerable_share)
    try:
        meta = read_reader_meta(model) if model.is_dir() else {}
    except FileNotFoundError as exc:
        _fail(str(exc))
    if not meta.get("validation_articles") or "training" not in meta:
        _fail(f"{model} is not a reader written by train-reader (no {CALIBRATION_FILE} with its validation articles)")
    for f in train:
        if not f.is_file():
            _fail(f"training file not found: {f}")
    articles = load_squad(*train)
    by_title = {a.title: a for a in articles}
    val_titles = meta["validation_articles"]
    missing = [t for t in val_titles if t not in by_title]
    if missing:
        _fail(f"validation articles not in the --train files: {', '.join(missing)}")
    held = {*val_titles, *meta["training"].get("test_articles", [])}
    corpus_articles = _calibration_corpus(
        corpus, [a for a in articles if a.title not in held], [by_title[t] for t in val_titles]
    )
    val_q = [q for t in val_titles for q in by_title[t].questions]
    redone = ("decode max ", "inference ")  # measured again below
    tries_list = [t for t in meta.get("tries", []) if not t["name"].startswith(redone)]
    tries_list += json.loads(tries.read_text()) if tries else []
    command = "articleqa calibrate-reader " + " ".join(shlex.quote(a) for a in _without_option(sys.argv[2:], "--tries"))
    record = {**meta["training"], "epochs": meta.get("epochs", [])}
    test_titles = record.get("test_articles") or []
    if meta.get("weight_average") and test_titles and all(t in by_title for t in test_titles):
        from articleqa.training.train import measure_test

        # averaged weights were never read on the test articles: read them once, as training does
        # (the second reader's own figure, copied with its record, stays in the card's stage table)
        meta["weight_average"].setdefault("second_test_f1", (record.get("test") or {}).get("f1"))
        record["test"] = measure_test(
            model,
            [q for t in test_titles for q in by_title[t].questions],
            record.get("config", {}).get("max_answer_tokens", 30),
        )
        typer.echo(f"test articles (the averaged weights): F1 {record['test']['f1']:.1f}")
    new = export_reader(
        model,
        model,
        record,
        val_q,
        val_titles,
        meta["command"],
        tries_list,
        corpus_articles=corpus_articles,
        no_answer_rule=no_answer_rule,
        unanswerable_share=unanswerable_share,
        settings=get_settings(),
        refusal_budget=refusal_budget,
        calibrated_by=command,
        base_model=meta["base_model"],
        weight_average=meta.get("weight_average"),
        answer_tokens=max_answer_tokens,
    )
    pc = new.get("pipeline_calibration") or {}
    na = pc.get("no_answer", {})
    typer.echo(
        f"threshold {new['calibration']['threshold']:.3f} ({no_answer_rule}): answerable validation questions refused "
        f"{pc.get('wrongly_refused', float('nan')):.1f}%, unanswerable refused {na.get('recall', float('nan')):.1f}%; "
        f"inference default {new['inference']['quantize']}; written to {model}"
    )


def average_readers_cmd(
    first: Annotated[Path, typer.Argument(help="A reader folder.")],
    second: Annotated[
        Path, typer.Argument(help="Another reader fine-tuned from the same weights (its calibration record is kept).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the averaged reader is written.")],
    weight: Annotated[float, typer.Option(help="Weight of FIRST (SECOND gets 1 - weight).")] = 0.5,
) -> None:
    """Average two readers' weights (WiSE-FT): often keeps most of a fine-tune's gain and less of its
    drift. Run `calibrate-reader OUT --train ...` next: it chooses the averaged reader's threshold."""
    from articleqa.training.export import average_readers

    for folder in (first, second):
        if not folder.is_dir():
            _fail(f"reader folder not found: {folder}")
    command = "articleqa average-readers " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    try:
        average_readers(first, second, out, weight, command)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(
        f"averaged reader ({weight:g} x {first} + {1 - weight:g} x {second}) written to {out}; "
        f"next: articleqa calibrate-reader {out} --train ..."
    )


def fit_answerability_cmd(
    model: Annotated[Path, typer.Argument(help="A reader written by train-reader (e.g. models/reader).")],
    squad: Annotated[
        list[Path],
        typer.Option(
            "--squad",
            help="SQuAD 2.0 file(s) with the reader's validation articles and training articles that have unanswerable questions (repeatable), e.g. ../shared/data/squad/squad-dev-v2.0-36.json.",
        ),
    ],
    work_dir: Annotated[
        Path,
        typer.Option(
            help="Where the SQuAD articles are written and indexed as an open corpus (kept: a second run reuses the index)."
        ),
    ] = Path("runs/answerability"),
    refusal_budget: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            max=1.0,
            help="Choose the threshold that refuses at most this share of answerable validation questions [default: the one refusing the most unanswerable validation questions with pipeline F1 and answerable refusals no worse than the margin's].",
        ),
    ] = None,
    c: Annotated[
        float, typer.Option("--c", min=1e-6, help="Inverse L2 regularisation strength of the logistic regression.")
    ] = 1.0,
    limit: Annotated[
        Optional[int], typer.Option(min=1, help="Ask only N training and N validation questions (a quick try).")
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            help="What the model learns to answer: 'answerable' (every answerable question) or 'right' (answerable questions whose best span scores F1 >= 0.5)."
        ),
    ] = "answerable",
    max_sure_wrong: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Also fit the confidence part (P(the answer given is right)) and show answers sure from the lowest confidence at which at most this share of the validation answers shown sure are wrong (0 = no confidence part: the margin's confidence and 0.5, as before).",
        ),
    ] = 0.10,
    min_right_sure: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="With the confidence part: the sure point is never above the highest that shows this share of the right validation answers sure.",
        ),
    ] = 0.7,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the figures without writing answerability.json.")
    ] = False,
) -> None:
    """Fit the answerability model that decides "not found" (articleqa.answerability): the pipeline asks
    the reader's training articles' SQuAD 2.0 questions, a logistic regression over each trace's margins,
    passage agreement, retrieval ranks and question words learns which have an answer, and the threshold
    is chosen on the reader's validation articles. Writes MODEL/answerability.json (the pipeline uses it
    unless ARTICLEQA_ANSWERABILITY=false or a no_answer_threshold is set)."""
    from articleqa.config import get_settings
    from articleqa.reader import CALIBRATION_FILE, read_reader_meta
    from articleqa.training.fit_answerability import fit_answerability

    for f in squad:
        if not f.is_file():
            _fail(f"SQuAD file not found: {f}")
    try:
        meta = read_reader_meta(model) if model.is_dir() else {}
    except FileNotFoundError as exc:
        _fail(str(exc))
    if not meta.get("validation_articles"):
        _fail(f"{model} is not a reader written by train-reader (no {CALIBRATION_FILE} with its validation articles)")
    settings = get_settings()
    settings.apply_offline()
    command = "articleqa fit-answerability " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    try:
        fitted = fit_answerability(
            model,
            squad,
            work_dir,
            refusal_budget=refusal_budget,
            limit=limit,
            C=c,
            settings=settings,
            command=command,
            target=target,
            max_sure_wrong=max_sure_wrong or None,
            min_right_sure=min_right_sure,
        )
    except ValueError as exc:
        _fail(str(exc))
    v = fitted.fitted["validation"]
    for name, f in (("margin alone", v["margin"]), ("answerability model", v["answerability"])):
        auc = f"AUC {f['auc']:.3f}, " if f["auc"] is not None else ""
        typer.echo(
            f"{name:20s} validation: {auc}answerable refused {f['wrongly_refused']:.1f}%, "
            f"unanswerable refused {f['unanswerable_refused'] if f['unanswerable_refused'] is not None else float('nan'):.1f}%, "
            f"pipeline F1 {f['pipeline_f1']:.1f}"
        )
    typer.echo(f"threshold {fitted.threshold:.3f} ({fitted.fitted['threshold_rule']})")
    if fitted.confidence_model is not None:
        cv = fitted.confidence_model["validation"]
        for name, f in (("margin's confidence", cv["margin"]), ("confidence model", cv["model"])):
            typer.echo(
                f"{name:20s} validation, sure from {f['sure']:.2f}: {f['sure_but_wrong'] or 0:.1f}% of sure answers wrong, "
                f"{f['right_shown_sure'] or 0:.1f}% of right answers shown sure, {f['tentative'] or 0:.1f}% of {f['answers']} answers tentative"
            )
    if dry_run:
        return
    path = fitted.save(model)
    from articleqa.training.fit_answerability import write_card_section

    write_card_section(model, fitted)
    typer.echo(f"written to {path} (and its section of {model / 'README.md'})")


def eval_reader_cmd(
    squad: Annotated[Path, typer.Option("--squad", help="SQuAD 1.1 or 2.0 JSON file.")],
    model: Annotated[
        Optional[str], typer.Option("--model", help="Reader folder or hub id [default: models/reader].")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate only the first N questions.")] = None,
    quantize: Annotated[str, typer.Option(help="auto, int8, bf16 or none (fp32).")] = "auto",
    backend: Annotated[str, typer.Option(help="Inference runtime: auto, onnx (ONNX Runtime) or torch.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """EM/F1 of a reader on the given paragraphs (standard SQuAD metric); for SQuAD 2.0 files also the
    "not found" precision/recall at the reader's calibrated threshold."""
    from articleqa.config import get_settings
    from articleqa.reader import ExtractiveReader
    from articleqa.training.evaluate import evaluate
    from articleqa.training.squad import load_squad

    if not squad.is_file():
        _fail(f"SQuAD file not found: {squad}")
    settings = get_settings()
    settings.apply_offline()
    questions = [q for a in load_squad(squad) for q in a.questions][: limit or None]
    reader = ExtractiveReader(
        model or settings.reader_model_path(), quantize=quantize, backend=backend, offline=settings.offline
    )
    try:
        reader.warm_up()
    except (FileNotFoundError, OSError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    cal = reader.calibration
    res = evaluate(
        reader,
        questions,
        calibrate=False,
        threshold=cal.reader_threshold if cal.reader_threshold is not None else cal.threshold,
    )
    figures = {
        "model": reader.model_name,
        "quantize": reader.quantize,
        "inference_path": reader.inference_path,
        "questions": len(questions),
        "exact": round(res.exact, 2),
        "f1": round(res.f1, 2),
        "answerable": res.n,
        "no_answer": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.no_answer.items()},
        "seconds": round(res.seconds, 1),
    }
    if json_out:
        typer.echo(json.dumps(figures))
        return
    typer.echo(f"reader {figures['model']} ({figures['inference_path']}) on {len(questions)} questions of {squad.name}")
    typer.echo(f"EM {figures['exact']:.1f}  F1 {figures['f1']:.1f}  ({res.n} answerable)")
    if res.no_answer:
        na = res.no_answer
        typer.echo(
            f"not found: precision {na['precision']:.1f} recall {na['recall']:.1f} "
            f"at threshold {na['threshold']:.3f} ({na['n_unanswerable']} unanswerable)"
        )
