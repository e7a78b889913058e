"""The reader's model card (README.md beside the weights), written from its calibration record."""

from __future__ import annotations

LABELS = {"none": "fp32", "int8": "int8 dynamic quantization", "bf16": "bf16"}


def stage_summary(meta: dict) -> dict:
    """One training stage for the model card's table: its command, minutes and held-out F1.
    ``train-reader`` records the stages before a run (``base_run["stages"]``); the card adds the run itself."""
    training = meta.get("training", {})
    f1s = [e["f1"] for e in meta.get("epochs", [])]
    return {
        "command": meta.get("command"),
        "minutes": round((training.get("train_seconds") or 0) / 60),
        "validation_f1": max(f1s) if f1s else None,
        "test_f1": (training.get("test") or {}).get("f1"),
        "examples": _examples(training),
    }


def _examples(training: dict) -> dict[str, int]:
    """The made-up no-answer examples a training run recorded: count by kind (the kinds it made)."""
    return {key: training[key] for key, _, _ in _NO_ANSWER_EXAMPLES if training.get(key)}


def stage_rows(meta: dict) -> list[dict]:
    """This reader's rows of the stage table: its training run; for averaged weights (``average-readers``)
    the second reader's run with that reader's own test F1, then the average with the averaged weights' figures."""
    wa = meta.get("weight_average")
    if not wa:
        return [stage_summary(meta)]
    return [{**stage_summary(meta), "test_f1": wa.get("second_test_f1")}, _average_row(meta)]


def _average_row(meta: dict) -> dict:
    validation = (meta.get("validation") or {}).get((meta.get("inference") or {}).get("quantize")) or {}
    return {
        "command": meta["weight_average"].get("command"),
        "minutes": None,
        "validation_f1": validation.get("f1"),
        "test_f1": (meta.get("training", {}).get("test") or {}).get("f1"),
    }


def all_stages(meta: dict, earlier: list[dict] | None = None) -> list[dict]:
    """Every stage that made this reader, oldest first, one row each. Weights averaged by ``average-readers``
    carry the stages of both readers they were averaged from (``stages_before``: either may itself be an
    average or trained from one); otherwise the stages recorded before its training run (or ``earlier``)."""
    wa = meta.get("weight_average") or {}
    if "stages_before" in wa:
        return [*wa["stages_before"], _average_row(meta)]
    if earlier is None:
        earlier = (meta.get("training", {}).get("base_run") or {}).get("stages") or []
    return [*earlier, *stage_rows(meta)]


def recipe_commands(meta: dict) -> list[str]:
    """Every command that made this reader, in order: the stages before it (recorded by ``train-reader``),
    its own training, the weight average that made it (``average-readers``, with the commands that made
    both of the readers it averaged) and its recalibration."""
    wa = meta.get("weight_average") or {}
    if "commands_before" in wa:
        commands = [*wa["commands_before"], wa.get("command")]
    else:
        base = meta.get("training", {}).get("base_run") or {}
        commands = [*(base.get("commands") or [base.get("command")]), meta.get("command"), wa.get("command")]
    return [c for c in [*commands, meta.get("calibrated_by")] if c]


def lineage(first: dict, second: dict) -> dict:
    """What ``average-readers`` records of the two readers it averages: the stages and commands of both,
    each once (they share the stages before their common starting weights), oldest first. A reader without
    a record (not trained here) adds no stage."""
    stages: dict[str, dict] = {}
    for st in [*all_stages(first), *all_stages(second)]:
        if st.get("command"):
            stages.setdefault(st["command"], st)
    return {
        "stages_before": list(stages.values()),
        "commands_before": list(dict.fromkeys([*recipe_commands(first), *recipe_commands(second)])),
    }


def example_counts(meta: dict) -> dict[str, str]:
    """How many made-up no-answer examples of each kind trained this reader, as the card says it. Averaged
    weights were trained on what both readers were: each kind with its count per stage that made it
    ("13878 (runs/s9), 14009 (runs/s10)"), from the stages ``average-readers`` recorded; otherwise (or for
    an average recorded before stages carried their counts) this reader's own training run's counts."""
    wa = meta.get("weight_average") or {}
    per_stage = [st for st in wa.get("stages_before", []) if st.get("examples")]
    if not per_stage:
        return {key: str(n) for key, n in _examples(meta.get("training", {})).items()}
    counts: dict[str, list[str]] = {}
    for st in per_stage:
        out = _stage_flags(st.get("command") or "")[0]
        for key, n in st["examples"].items():
            counts.setdefault(key, []).append(f"{n} ({out})")
    return {key: ", ".join(v) for key, v in counts.items()}


def _stage_flags(command: str) -> tuple[str, str]:
    """A stage's output folder and the flags that tell it from the others (data files and splits are
    the same in every stage, and the Reproduce section has the whole commands)."""
    import shlex

    parts = shlex.split(command)
    words, out = parts[2:], ""
    flags = [] if parts[1:2] == ["train-reader"] else parts[1:2]  # an average-readers row says so
    skip = False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w in (
            "--train",
            "--val-title",
            "--test-title",
            "--corpus",
            "--out",
            "--checkpoint-every",
            "--max-length",
            "--stride",
        ):
            skip = True
            out = words[i + 1] if w == "--out" and i + 1 < len(words) else out
            continue
        flags.append(w)
    return out, " ".join(flags)


# The made-up no-answer examples a training run may add (`articleqa.training.negatives`): the record's
# count, the card's name for them and what they are.
_NO_ANSWER_EXAMPLES = [
    (
        "n_negatives",
        "Hard negatives",
        [
            "for each answerable training question the",
            "most similar other paragraph of its article (BM25) that does not contain its answer (`--negatives`,",
            "`articleqa.training.negatives`), so the no-answer score learns what retrieval brings: same-topic passages without the answer.",
        ],
    ),
    (
        "n_entity_swaps",
        "Entity swaps",
        [
            "each an answerable training question with one",
            "name, year or number it shares with its paragraph swapped for another of its article that the paragraph never",
            "mentions (`--entity-swaps`), so the reader checks the question's names against the passage before answering.",
        ],
    ),
    (
        "n_antonym_swaps",
        "Antonym swaps",
        [
            "each an answerable training question with one",
            "word swapped for its opposite (western/eastern, largest/smallest, before/after) that its paragraph never uses (`--antonym-swaps`).",
        ],
    ),
    (
        "n_negated",
        "Negated twins",
        [
            "each an answerable training question negated",
            '("Who was the first ...?" -> "Who was not the first ...?") on its own paragraph, one that never negates anything (`--negation-twins`).',
        ],
    ),
    (
        "n_conditioned",
        "Impossible-condition twins",
        [
            "each an answerable training question",
            'that asks no time with "in YEAR" added, a year of its article its dated paragraph never mentions (`--condition-twins`).',
        ],
    ),
    (
        "n_passage_negatives",
        "Retrieved passages",
        [
            "the index passages (~150-word chunks of the",
            "article, cut as `SentenceChunker` cuts them) that BM25 ranks closest to an answerable training question without holding its",
            "answer, each trained with the passage that holds it (answerable, the answer where that passage has it) (`--passages`,",
            "`articleqa.training.passages`), so the reader learns on what the pipeline reads rather than on whole paragraphs.",
        ],
    ),
]


def model_card(meta: dict) -> str:
    v = meta["validation"]
    q = meta["inference"]["quantize"]
    na = v[q].get("no_answer") or {}
    cfg = meta["training"].get("config", {})
    base = meta["training"].get("base_run")
    wa = meta.get("weight_average")
    lines = [
        "# articleqa reader: MiniLM-L6 extractive QA (offline)",
        "",
        "The default reader of articleqa: a 6-layer, 384-wide BERT encoder with a span-extraction head,",
        "trained by `articleqa train-reader` on SQuAD-format data. It loads with `local_files_only=True`.",
        "Weights are stored as fp16 safetensors; they are loaded as fp32 and, by default, quantized as",
        "recorded in `articleqa_reader.json` (`inference.quantize`).",
        "",
        "## Base model and licenses",
        f"- Base: {meta['base_model']}, license Apache-2.0.",
        *(
            [
                "- Training data: the whole SQuAD v1.1 training set (442 articles, 87,599 questions; with the 348",
                "  official SQuAD 2.0 unanswerable questions of its first 10 articles) and the SQuAD v1.1 and v2.0",
                "  development-set articles (Rajpurkar et al., 2016, 2018),",
            ]
            if any("train" in f for f in meta["training"].get("train_files", []))
            else ["- Training data: SQuAD v1.1 and v2.0 development-set articles (Rajpurkar et al., 2016, 2018),"]
        ),
        *(
            [
                "  and the SQuAD 2.0 training set's unanswerable questions on those paragraphs (41,546 questions,",
                "  official ids; `squad-train-v2.0-unanswerable.json.gz`, placed on their paragraphs from the list of",
                "  antest1/SQuAD2-CR, MIT license),",
            ]
            if any("unanswerable" in f for f in meta["training"].get("train_files", []))
            else []
        ),
        '  license CC BY-SA 4.0, https://rajpurkar.github.io/SQuAD-explorer/. Attribution: "SQuAD: 100,000+',
        '  Questions for Machine Comprehension of Text" and "Know What You Don\'t Know: Unanswerable',
        '  Questions for SQuAD", Stanford NLP. The weights are derived from that data.',
        "",
        "## Reproduce",
        *(["In this order (each stage starts from the weights its `--base-model` names):"] if base or wa else []),
        "```",
        *recipe_commands(meta),
        "```",
        *(
            [
                'The last command re-chose the "not found" threshold, answer length and precision of the trained',
                "weights (`articleqa calibrate-reader`), without retraining.",
            ]
            if meta.get("calibrated_by")
            else []
        ),
        "",
        "## Validation (held-out articles, never trained on)",
        f"Articles: {', '.join(meta['validation_articles'])}.",
        "",
        "| inference | EM | F1 | answerable questions | ms per ~150-word passage (2 cores) |",
        "|---|---|---|---|---|",
    ]
    for name, r in v.items():
        lines.append(
            f"| {LABELS.get(name, name)} | {r['exact']:.1f} | {r['f1']:.1f} | {r['n']} | {r['ms_per_passage']:.1f} |"
        )
    lines += ["", f"Inference default: **{LABELS.get(q, q)}** (the fastest variant within 1 F1 point of fp32).", ""]
    if na:
        lines += [
            "## No-answer (SQuAD 2.0 questions of the validation articles)",
            f"Calibrated margin threshold {na['threshold']:.3f} (span score minus [CLS] score; at or below it the",
            'reader answers "no answer" for a given paragraph, as `eval-reader` does): precision '
            f'{na["precision"]:.1f}, recall {na["recall"]:.1f} of "not found" over {na["n_unanswerable"]} unanswerable',
            f"and {na['n_answerable']} answerable questions; SQuAD 2.0 F1 {na['squad2_f1']:.1f}.",
            "",
        ]
    pc = meta.get("pipeline_calibration") or {}
    if pc.get("no_answer"):
        pna = pc["no_answer"]
        lines += [
            '## "Not found" in the pipeline (what the assistant uses)',
            f"The validation questions asked through retrieval (hybrid, top-{pc['top_k']}) over all {pc['passages']} passages of the",
            "training and validation articles; the best span over the retrieved passages decides. At the",
            (
                f"threshold {pna['threshold']:.3f} (chosen here: the highest that turns away at most {pc['refusal_budget']:.0%} of the"
                f" answerable questions, `--no-answer-rule refusal-budget`; {pc['wrongly_refused']:.1f}% are)"
                if pc.get("rule") == "refusal-budget"
                else f"threshold {pna['threshold']:.3f} (chosen here: the best expected F1 when {pc['unanswerable_share']:.0%} of the questions have no"
                " answer in the articles, `--no-answer-rule pipeline`)"
                if pc.get("rule") == "pipeline"
                else f"paragraph-calibrated threshold {pna['threshold']:.3f}"
            )
            + f": precision {pna['precision']:.1f}, recall {pna['recall']:.1f} of",
            f'"not found"; SQuAD 2.0 F1 {pna["squad2_f1"]:.1f}; F1 on answerable questions {pna["has_ans_f1_with_abstention"]:.1f}',
            f"with abstention, {pc['f1_forced']:.1f} without.",
        ]
        cmp_ = pc.get("no_answer_at_paragraph_threshold")
        if cmp_:
            lines += [
                f"At the paragraph-calibrated threshold {cmp_['threshold']:.3f} instead: precision {cmp_['precision']:.1f}, recall",
                f"{cmp_['recall']:.1f}, F1 on answerable questions {cmp_['has_ans_f1_with_abstention']:.1f} with abstention (tuned to",
                "SQuAD 2.0's half-unanswerable mix, it turns away too many answerable questions for an assistant).",
            ]
        um = pc.get("refused_for_unmatched_mentions")
        if um and um.get("answerable") is not None:
            lines += [
                f"Of these refusals, {um['answerable']:.1f}% of the answerable and {um['unanswerable'] or 0:.1f}% of the unanswerable questions are",
                "unsure answers to questions naming what their article never mentions (refused whatever the threshold,",
                "`check_mentions`); the budget counts them.",
            ]
        lines += [
            "The confidence shown with an answer is P(answer right | margin), fitted on these questions.",
            "",
        ]
    lines += ["## Training run", "", "| epoch | step | EM | F1 |", "|---|---|---|---|"]
    for e in meta.get("epochs", []):
        lines.append(f"| {e['epoch']} | {e['step']} | {e['exact']:.1f} | {e['f1']:.1f} |")
    best = meta["training"].get("best_epoch")
    if best:
        lines += [
            "",
            f"Shipped weights: epoch {best}, the best validation F1 (`--keep-best`). The epoch is chosen on the",
            "validation articles, so their figure is slightly optimistic; other held-out articles are the check.",
        ]
    test = meta["training"].get("test")
    if wa:
        lines += [
            "",
            f"Shipped weights: {wa['weight_first']:g} x `{wa['first']}` + {1 - wa['weight_first']:g} x `{wa['second']}` (`average-readers`,",
            "WiSE-FT); the table above is the second reader's training; validation and test figures are the averaged weights'.",
        ]
        if wa.get("second_test_f1") is not None:
            lines += ["", f"The second reader alone scored F1 {wa['second_test_f1']:.1f} on the test articles."]
    if test:
        lines += [
            "",
            f"**Test articles** ({', '.join(meta['training'].get('test_articles', []))}: held out from training and from",
            f"every choice, read once by the shipped weights): EM {test['exact']:.1f}, F1 {test['f1']:.1f} on {test['n']} answerable questions.",
        ]
    if cfg.get("teacher"):
        lines += [
            "",
            f"Self-distillation: the loss is {1 - cfg['distill_weight']:.2g} x the gold-span loss + {cfg['distill_weight']:.2g} x the KL divergence",
            f"from the start/end distributions of the teacher `{cfg['teacher']}` (temperature {cfg['distill_temperature']:g}, `--teacher`).",
        ]
    secs = meta["training"].get("train_seconds")
    warm = meta["training"].get("cloze_warmup") or (base or {}).get("cloze_warmup")
    if (base and base.get("stages")) or "stages_before" in (wa or {}):
        lines += [
            "",
            "Every stage, each from the weights its `--base-model` names, an average from the two it names (F1 on the",
            "answerable questions of the held-out articles, as each run measured its own weights; validation articles",
            "chose each stage's epoch):",
            "",
            "| stage (--out) | its flags | minutes | validation F1 | test F1 |",
            "|---|---|---|---|---|",
        ]
        for st in all_stages(meta):
            f = lambda x: "–" if x is None else f"{x:.1f}"  # noqa: E731
            out, flags = _stage_flags(st.get("command") or "")
            lines.append(
                f"| {out} | `{flags}` | {st.get('minutes') or '–'} | "
                f"{f(st.get('validation_f1'))} | {f(st.get('test_f1'))} |"
            )
    elif base:
        stage1 = ", ".join(f"epoch {e['epoch']} F1 {e['f1']:.1f}" for e in base.get("epochs", []))
        lines += [
            "",
            f"The stage before (the reader this one started from; {(base.get('train_seconds') or 0) / 60:.0f} minutes): {stage1}. "
            "The table above is the last stage.",
        ]
    counts = example_counts(meta)
    for key, label, text in _NO_ANSWER_EXAMPLES:
        if key in counts:
            first, *rest = text
            lines += ["", f"{label}: {counts[key]} no-answer examples, {first}", *rest]
    if cfg.get("shared_norm") and counts.get("n_passage_negatives"):
        lines += [
            "",
            f"Shared normalization (`--shared-norm {cfg['shared_norm']}`): each question's retrieved passages are batched together",
            "and, besides each window's own loss, one softmax over the span positions of all of them ([CLS] left out) learns to put",
            "the answer's span above every span of the passages without it (Clark & Gardner 2018), the comparison the pipeline makes.",
        ]
    if warm:
        lines += [
            "",
            f"Cloze warm-up: one epoch on {warm['questions']} synthetic cloze questions from the training paragraphs",
            f"({(warm.get('train_seconds') or 0) / 60:.0f} minutes) before the SQuAD epochs (`--cloze-warmup`, `articleqa.training.cloze`).",
        ]
    lines += [
        "",
        "Settings: " + ", ".join(f"{k}={val}" for k, val in cfg.items() if k not in ("out", "base_model")) + ".",
        f"Device: {meta['training'].get('device')}, bf16 autocast: {meta['training'].get('bf16')}"
        + (f", {secs / 60:.0f} minutes of training." if secs else "."),
        "",
    ]
    if meta.get("tries"):
        lines += [
            "## Tries (validation figures on the same held-out articles)",
            "",
            "| try | EM | F1 | note |",
            "|---|---|---|---|",
        ]
        for t in meta["tries"]:
            em, f1 = (
                "–" if t.get(k) is None else f"{t[k]:.1f}" for k in ("exact", "f1")
            )  # a try may have no EM/F1 (a decision rule)
            lines.append(f"| {t['name']} | {em} | {f1} | {t.get('note', '')} |")
        lines.append("")
    if meta.get("readers_tried"):  # whole readers compared for the choice of these weights (added after training)
        rt = meta["readers_tried"]
        lines += [f"## {rt['title']}", "", rt["intro"], ""]
        lines += ["| " + " | ".join(rt["columns"]) + " |", "|" + "---|" * len(rt["columns"])]
        lines += ["| " + " | ".join(row) + " |" for row in rt["rows"]]
        lines += ["", rt["after"], ""] if rt.get("after") else [""]
    return "\n".join(lines)
