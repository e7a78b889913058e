"""Train the offline extractive reader on SQuAD-format data.

The recipe: a BERT-style encoder (all-MiniLM-L6-v2 by default) with a fresh span head, trained on
whole training articles; every distinct reference answer is a target (marginal likelihood over the
answer positions, so several references cost no extra compute) and unanswerable questions train the
[CLS] no-answer score. Validation articles are held out whole. Runs resume from checkpoints, are seeded,
and use bf16 autocast where the CPU has AMX/AVX512-BF16 or on a GPU.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from articleqa.runtime import bf16_is_fast
from articleqa.training.card import all_stages, recipe_commands
from articleqa.training.evaluate import evaluate
from articleqa.training.negatives import (
    conditioned_questions,
    hard_negatives,
    negated_questions,
    swapped_entity_questions,
    swapped_word_questions,
)
from articleqa.training.passages import retrieved_passages, source_question_id
from articleqa.training.squad import SquadQuestion

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
WARMUP_DIR = "warmup"


@dataclass
class TrainConfig:
    base_model: str
    out: str
    epochs: float = 2.0
    max_length: int = 256
    stride: int = 96
    lr: float = 1e-4
    batch_size: int = 16
    warmup: float = 0.1
    weight_decay: float = 0.01
    layer_decay: float = 1.0
    seed: int = 0
    max_answer_tokens: int = 30
    unanswerable_fraction: float = 1.0
    checkpoint_every: int = 200
    bf16: str = "auto"
    keep_best: bool = True  # ship the best validation epoch, not necessarily the last
    max_steps: int | None = None  # stop early (for smoke tests); the schedule still spans all epochs
    cloze_warmup: int = 0  # synthetic cloze questions trained on first (a separate, resumable stage)
    negatives: int = 0  # retrieved hard negatives per answerable question, as no-answer targets
    negatives_share: float = 1.0  # share of the answerable questions that get them (a seeded sample)
    entity_swaps: int = 0  # unanswerable twins per answerable question (a name or number swapped), as no-answer targets
    antonym_swaps: int = 0  # unanswerable twins per answerable question (a word swapped for its opposite)
    negation_twins: int = 0  # unanswerable twins per answerable question (the question negated), 0 or 1
    condition_twins: int = 0  # unanswerable twins per answerable question (a year the paragraph never mentions added)
    passages: int = (
        0  # per answerable question, its answer's index passage + this many retrieved passages without it (0 = off)
    )
    passages_share: float = 1.0  # share of the answerable questions (a seeded sample) that get them
    teacher: str | None = None  # self-distillation: a trained reader whose start/end distributions are targets too
    distill_weight: float = 0.5  # share of the loss on the teacher's distributions (the rest on the gold spans)
    distill_temperature: float = 2.0
    shared_norm: float = 0.0  # with passages: weight of a span softmax shared by a question's passages (0 = off)
    attention_dropout: float | None = None  # dropout on attention weights; None keeps the base model's (BERT: 0.1)


@dataclass
class Feature:
    input_ids: list[int]
    token_type_ids: list[int]
    starts: list[int]
    ends: list[int]
    group: int = -1  # windows of one question's retrieved passages share a group (batched together); -1 = none


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_features(
    tokenizer, questions: list[SquadQuestion], max_length: int, stride: int, groups: list[int] | None = None
) -> list[Feature]:
    """Tokenize into windows; each window's targets are the token positions of every reference
    answer inside it, or [CLS] (0) when none is. ``groups`` (one per question, -1 = none) is
    copied onto the question's windows."""
    feats: list[Feature] = []
    chunk = 512
    for b in range(0, len(questions), chunk):
        qs = questions[b : b + chunk]
        enc = tokenizer(
            [q.question for q in qs],
            [q.context for q in qs],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        for i in range(len(enc["input_ids"])):
            qi = enc["overflow_to_sample_mapping"][i]
            q = qs[qi]
            seq = enc.sequence_ids(i)
            offsets = enc["offset_mapping"][i]
            ctx = [k for k, s in enumerate(seq) if s == 1]
            starts, ends = [], []
            if ctx:
                c0, c1 = ctx[0], ctx[-1]
                for text, cs in q.answers:
                    ce = cs + len(text)
                    if offsets[c0][0] > cs or offsets[c1][1] < ce:
                        continue
                    ts = c0
                    while ts <= c1 and offsets[ts][1] <= cs:
                        ts += 1
                    te = c1
                    while te >= c0 and offsets[te][0] >= ce:
                        te -= 1
                    if ts <= te:
                        starts.append(ts)
                        ends.append(te)
            if not starts:
                starts, ends = [0], [0]
            feats.append(
                Feature(
                    enc["input_ids"][i],
                    enc["token_type_ids"][i] if "token_type_ids" in enc else [0] * len(enc["input_ids"][i]),
                    sorted(set(starts)),
                    sorted(set(ends)),
                    groups[b + qi] if groups is not None else -1,
                )
            )
    return feats


def batch_order(features: list[Feature], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-grouped random batches (little padding), deterministic for (seed, epoch). The windows
    of a group (one question's retrieved passages) go into one batch together, which may then hold
    up to a group's size less than ``batch_size`` windows; without groups every batch but the last
    of each length bucket holds exactly ``batch_size``."""
    rng = random.Random(seed * 1000 + epoch)
    units: list[list[int]] = []
    by_group: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        if f.group < 0:
            units.append([i])
        elif f.group in by_group:
            by_group[f.group].append(i)
        else:
            by_group[f.group] = [i]
            units.append(by_group[f.group])
    rng.shuffle(units)
    bucket = batch_size * 50
    batches = []
    for g in range(0, len(units), bucket):
        part = sorted(units[g : g + bucket], key=lambda u: max(len(features[i].input_ids) for i in u))
        batch: list[int] = []
        for u in part:
            if batch and len(batch) + len(u) > batch_size:
                batches.append(batch)
                batch = []
            batch += u
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def collate(features: list[Feature], pad_id: int):
    import torch

    n = max(len(f.input_ids) for f in features)
    n = -(-n // 32) * 32  # few distinct shapes: oneDNN/AMX kernels are built once per shape
    B = len(features)
    ids = torch.full((B, n), pad_id, dtype=torch.long)
    tt = torch.zeros((B, n), dtype=torch.long)
    am = torch.zeros((B, n), dtype=torch.long)
    gs = torch.zeros((B, n), dtype=torch.bool)
    ge = torch.zeros((B, n), dtype=torch.bool)
    grp = torch.tensor([f.group for f in features], dtype=torch.long)
    for r, f in enumerate(features):
        L = len(f.input_ids)
        ids[r, :L] = torch.tensor(f.input_ids)
        tt[r, :L] = torch.tensor(f.token_type_ids)
        am[r, :L] = 1
        gs[r, f.starts] = True
        ge[r, f.ends] = True
    return ids, tt, am, gs, ge, grp


def marginal_nll(logits, gold, mask):
    """-log of the probability mass on all gold positions (several references = one target set)."""
    import torch

    logits = logits.float().masked_fill(~mask.bool(), -1e4)
    return (torch.logsumexp(logits, -1) - torch.logsumexp(logits.masked_fill(~gold, -1e4), -1)).mean()


def attention_dropout_options(cfg: TrainConfig) -> dict:
    """The model option that sets dropout on the attention weights, when the run sets it. At 0, PyTorch's
    scaled-dot-product attention runs its fused kernel in training too, instead of materialising every
    batch x heads x length x length weight matrix (and a dropout mask of it): on 2 CPU cores a 16 x 384
    step takes a third to a half of the time (``bench/train_step.py``). The value is saved in the trained reader's config (it only acts in training)."""
    if cfg.attention_dropout is None:
        return {}
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(cfg.base_model, local_files_only=True)
    if not hasattr(config, "attention_probs_dropout_prob"):
        raise ValueError(
            f"--attention-dropout: {cfg.base_model} ({config.model_type}) has no attention_probs_dropout_prob setting"
        )
    return {"attention_probs_dropout_prob": cfg.attention_dropout}


def shared_norm_nll(logits, gold, mask, groups):
    """Shared normalization (Clark & Gardner 2018): for each group of windows in the batch (one
    question's passages: the one holding its answer and retrieved ones without it), -log of the
    probability mass on the gold positions under one softmax over every token of all its windows,
    [CLS] left out. The per-window loss only compares a span with its own window's no-answer score;
    this makes span scores of different passages comparable, which is how the pipeline picks its
    answer among the passages it reads. Groups without a gold token (the answer cut by a window
    edge) are skipped; 0 when no group is left."""
    import torch

    logits = logits.float()
    keep = mask.bool().clone()
    keep[:, 0] = False
    gold = gold & keep
    losses = []
    for g in torch.unique(groups[groups >= 0]).tolist():
        rows = groups == g
        if int(rows.sum()) < 2 or not bool(gold[rows].any()):
            continue
        lg, k, gd = logits[rows], keep[rows], gold[rows]
        losses.append(torch.logsumexp(lg[k], 0) - torch.logsumexp(lg[gd], 0))
    return torch.stack(losses).mean() if losses else logits.new_zeros(())


def distill_kl(student, teacher, mask, temperature: float):
    """KL(teacher || student) of the softened start (or end) distributions over a window's tokens,
    times T^2 so its gradients keep their scale as T changes (Hinton et al., 2015)."""
    import torch

    m = ~mask.bool()
    s = torch.log_softmax(student.float().masked_fill(m, -1e4) / temperature, -1)
    t = torch.log_softmax(teacher.float().masked_fill(m, -1e4) / temperature, -1)
    return (t.exp() * (t - s)).sum(-1).mean() * temperature**2


def load_teacher(path: str, tokenizer, device: str):
    """The distillation teacher, frozen; it must read the same tokens as the student."""
    from articleqa.reader import load_qa_tokenizer, load_qa_weights

    if load_qa_tokenizer(path).get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"teacher {path} has another vocabulary than the model being trained")
    return load_qa_weights(path).to(device).requires_grad_(False)


def param_groups(model, lr: float, weight_decay: float, layer_decay: float):
    """AdamW groups with layer-wise learning-rate decay: lower layers move less."""
    n_layers = model.config.num_hidden_layers
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if ".embeddings." in name or name.startswith("embeddings."):
            depth = 0
        elif ".layer." in name:
            depth = int(name.split(".layer.")[1].split(".")[0]) + 1
        else:
            depth = n_layers + 1
        scale = layer_decay ** (n_layers + 1 - depth)
        wd = 0.0 if (p.ndim == 1 or "LayerNorm" in name) else weight_decay
        groups.setdefault((lr * scale, wd), []).append(p)
    return [{"params": ps, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), ps in groups.items()]


def _save_model(model, tokenizer, path: Path) -> None:
    """Write a loadable model folder (fp32 safetensors + tokenizer), replacing what was there."""
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    device = next(model.parameters()).device
    model.to("cpu").save_pretrained(tmp, safe_serialization=True)
    model.to(device)
    tokenizer.save_pretrained(tmp)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def _resume_key(config: dict) -> dict:
    """The settings a checkpoint must share to be resumed: all but where it lives and when to stop
    (a run folder may be moved, e.g. from runs/ into models/, before the export step). A setting
    added after the checkpoint was written counts as its default (which is what that run used)."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    return {k: v for k, v in {**defaults, **config}.items() if k not in ("max_steps", "out")}


def _save_checkpoint(path: Path, state: dict) -> None:
    import torch

    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "state.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path / "state.pt")


def _load_checkpoint(path: Path):
    import torch

    f = path / "state.pt"
    if not f.is_file():
        return None
    return torch.load(f, map_location="cpu", weights_only=True)


def train_reader(
    cfg: TrainConfig,
    train_questions: list[SquadQuestion],
    val_questions: list[SquadQuestion],
    progress: bool = True,
    resume: bool = True,
    test_questions: list[SquadQuestion] | None = None,
) -> dict:
    """Train, evaluate each epoch on the validation questions, and return the run's record.

    Checkpoints go to ``cfg.out/checkpoint`` (resumable); the trained model (fp32) to ``cfg.out/final``,
    which ``export_reader`` turns into the shipped fp16 form. With ``cfg.teacher`` the loss is
    ``(1 - w) * gold + w * KL(teacher || student)`` on softened start/end distributions (self-distillation).
    ``test_questions`` (articles held out from training and from every choice) are read once by the
    final model: ``record["test"]``.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, get_linear_schedule_with_warmup

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))  # all cores unless limited
    set_seed(cfg.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    use_bf16 = {"auto": bf16_is_fast(), "yes": True, "no": False}[cfg.bf16]

    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model, local_files_only=True)
    model = AutoModelForQuestionAnswering.from_pretrained(
        cfg.base_model, local_files_only=True, dtype=torch.float32, **attention_dropout_options(cfg)
    )
    model.to(device)
    teacher = load_teacher(cfg.teacher, tokenizer, device) if cfg.teacher else None

    rng = random.Random(cfg.seed)
    answerable = [q for q in train_questions if not q.is_impossible]
    unanswerable = [q for q in train_questions if q.is_impossible]
    if cfg.unanswerable_fraction < 1.0:
        unanswerable = rng.sample(unanswerable, int(len(unanswerable) * cfg.unanswerable_fraction))
    negatives = hard_negatives(answerable, cfg.negatives, seed=cfg.seed, share=cfg.negatives_share)
    swaps = swapped_entity_questions(train_questions, cfg.entity_swaps, seed=cfg.seed)
    opposites = swapped_word_questions(train_questions, cfg.antonym_swaps, seed=cfg.seed)
    negated = negated_questions(train_questions, cfg.negation_twins)
    conditioned = conditioned_questions(train_questions, cfg.condition_twins, seed=cfg.seed)
    passages = (
        retrieved_passages(train_questions, cfg.passages, share=cfg.passages_share, seed=cfg.seed)
        if cfg.passages > 0
        else []
    )
    n_passage_answers = sum(not q.is_impossible for q in passages)
    others = answerable + unanswerable + negatives + swaps + opposites + negated + conditioned
    groups = None
    if cfg.shared_norm > 0 and passages:
        keys: dict[str, int] = {}
        groups = [-1] * len(others) + [keys.setdefault(source_question_id(q.id), len(keys)) for q in passages]
    features = build_features(tokenizer, others + passages, cfg.max_length, cfg.stride, groups)
    steps_per_epoch = len(batch_order(features, cfg.batch_size, cfg.seed, 0))
    total_steps = math.ceil(steps_per_epoch * cfg.epochs)
    log.info(
        "training on %d answerable + %d unanswerable questions + %d hard negatives + %d entity swaps + %d antonym swaps"
        " + %d negated + %d conditioned twins + %d retrieved passages (%d with the answer) -> %d windows, %d steps (%s, bf16=%s%s)",
        len(answerable),
        len(unanswerable),
        len(negatives),
        len(swaps),
        len(opposites),
        len(negated),
        len(conditioned),
        len(passages),
        n_passage_answers,
        len(features),
        total_steps,
        device,
        use_bf16,
        f", distilling from {cfg.teacher} at weight {cfg.distill_weight}" if teacher is not None else "",
    )
    if cfg.shared_norm > 0 and groups is None:
        log.warning("--shared-norm needs --passages: no passages to share a softmax, so it is off")

    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.weight_decay, cfg.layer_decay), lr=cfg.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup * total_steps), total_steps)
    record: dict = {
        "config": asdict(cfg),
        "epochs": [],
        "n_questions": len(answerable) + len(unanswerable),
        "n_negatives": len(negatives),
        "n_entity_swaps": len(swaps),
        "n_antonym_swaps": len(opposites),
        "n_negated": len(negated),
        "n_conditioned": len(conditioned),
        "n_passage_answers": n_passage_answers,
        "n_passage_negatives": len(passages) - n_passage_answers,
        "n_windows": len(features),
        "device": device,
        "bf16": use_bf16,
    }
    global_step = 0
    ckpt_dir = out / CHECKPOINT_DIR
    state = _load_checkpoint(ckpt_dir) if resume else None
    if state is not None:
        if _resume_key(state["config"]) != _resume_key(asdict(cfg)):
            raise ValueError(f"checkpoint in {ckpt_dir} was made with other settings; remove it or use the same ones")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        global_step = int(state["global_step"])
        record = json.loads(state["record"])
        log.info("resumed from %s at step %d", ckpt_dir, global_step)
    record["resumed_at_step"] = global_step if state is not None else None
    seconds_before = float(record.get("train_seconds", 0.0))  # time spent by earlier, interrupted runs

    def save(step: int) -> None:
        record["train_seconds"] = seconds_before + time.perf_counter() - t0
        _save_checkpoint(
            ckpt_dir,
            {
                "config": {k: v for k, v in asdict(cfg).items() if k != "max_steps"},
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "global_step": step,
                "record": json.dumps(record),
            },
        )

    stop_at = total_steps if cfg.max_steps is None else min(total_steps, cfg.max_steps)
    bar = tqdm(total=stop_at, initial=global_step, desc="train-reader", unit="step", disable=not progress)
    t0 = time.perf_counter()
    epoch = global_step // steps_per_epoch
    while global_step < stop_at:
        batches = batch_order(features, cfg.batch_size, cfg.seed, epoch)
        start_in_epoch = global_step - epoch * steps_per_epoch
        model.train()
        for bi in range(start_in_epoch, len(batches)):
            if global_step >= stop_at:
                break
            ids, tt, am, gs, ge, grp = (
                t.to(device) for t in collate([features[i] for i in batches[bi]], tokenizer.pad_token_id)
            )
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
                outp = model(input_ids=ids, token_type_ids=tt, attention_mask=am)
                if teacher is not None:
                    with torch.no_grad():
                        tout = teacher(input_ids=ids, token_type_ids=tt, attention_mask=am)
            loss = (marginal_nll(outp.start_logits, gs, am) + marginal_nll(outp.end_logits, ge, am)) / 2
            if groups is not None:
                loss = (
                    loss
                    + cfg.shared_norm
                    * (shared_norm_nll(outp.start_logits, gs, am, grp) + shared_norm_nll(outp.end_logits, ge, am, grp))
                    / 2
                )
            if teacher is not None:
                T, w = cfg.distill_temperature, cfg.distill_weight
                kl = (
                    distill_kl(outp.start_logits, tout.start_logits, am, T)
                    + distill_kl(outp.end_logits, tout.end_logits, am, T)
                ) / 2
                loss = (1 - w) * loss + w * kl
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", epoch=epoch + 1)
            if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0:
                save(global_step)
        epoch_done = global_step >= (epoch + 1) * steps_per_epoch or global_step >= total_steps
        if epoch_done and val_questions:
            model.eval()
            ev = evaluate(_eval_reader(tokenizer, model, cfg.max_answer_tokens), val_questions)
            record["epochs"].append({"epoch": epoch + 1, "step": global_step, **asdict(ev)})
            if cfg.keep_best and ev.f1 > record.get("best_f1", -1.0):
                _save_model(model, tokenizer, out / BEST_DIR)
                record.update(best_epoch=epoch + 1, best_f1=ev.f1)
            log.info("epoch %d: EM %.1f F1 %.1f (val %d answerable)", epoch + 1, ev.exact, ev.f1, ev.n)
            bar.write(f"epoch {epoch + 1}: EM {ev.exact:.1f} F1 {ev.f1:.1f} no-answer {ev.no_answer}")
        if epoch_done:
            save(global_step)
        epoch += 1
    bar.close()
    if global_step < total_steps:  # stopped by max_steps: leave a checkpoint to resume from
        save(global_step)
    record["train_seconds"] = seconds_before + time.perf_counter() - t0
    record["finished"] = global_step >= total_steps
    record["steps"], record["total_steps"] = global_step, total_steps
    final = out / "final"
    best = out / BEST_DIR
    if cfg.keep_best and record["finished"] and record.get("best_epoch") and best.is_dir():
        if record["best_epoch"] != record["epochs"][-1]["epoch"]:
            log.info("keeping epoch %d (F1 %.1f), the best on validation", record["best_epoch"], record["best_f1"])
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(best, final)
    else:
        _save_model(model, tokenizer, final)
    if test_questions and record["finished"]:
        record["test"] = test = measure_test(final, test_questions, cfg.max_answer_tokens)
        log.info("test articles: EM %.1f F1 %.1f (%d answerable)", test["exact"], test["f1"], test["n"])
    (out / "record.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def measure_test(model_dir: str | Path, test_questions: list[SquadQuestion], max_answer_tokens: int = 30) -> dict:
    """EM/F1 of the weights in ``model_dir`` on the test articles' questions (F1 over the answerable ones):
    read once at the end of training, and again by ``calibrate-reader`` for weights that changed after it
    (``average-readers``)."""
    from articleqa.reader import load_qa_tokenizer, load_qa_weights

    return asdict(
        evaluate(
            _eval_reader(load_qa_tokenizer(model_dir), load_qa_weights(model_dir), max_answer_tokens), test_questions
        )
    )


def _eval_reader(tokenizer, model, max_answer_tokens: int):
    """The reader that validation and test figures are measured with (the shipped windows: 384 / 128)."""
    from articleqa.reader import ExtractiveReader

    return ExtractiveReader.from_loaded(
        tokenizer, model, max_length=384, stride=128, max_answer_tokens=max_answer_tokens
    )


def cloze_warmup(
    cfg: TrainConfig, train_articles: list, progress: bool = True, resume: bool = True
) -> tuple[str, dict]:
    """Stage 1 of a ``cloze_warmup`` run: one epoch on synthetic cloze questions made from the
    training paragraphs, in ``cfg.out/warmup``. Returns the model folder the main stage starts from
    and a summary for the record. Resumable like the main stage; skipped once finished."""
    from articleqa.training.cloze import cloze_questions

    out = Path(cfg.out) / WARMUP_DIR
    wcfg = replace(
        cfg,
        out=str(out),
        epochs=1.0,
        keep_best=False,
        max_steps=None,
        negatives=0,
        entity_swaps=0,
        antonym_swaps=0,
        negation_twins=0,
        condition_twins=0,
        passages=0,
        teacher=None,
    )
    record_file = out / "record.json"
    if resume and record_file.is_file() and (out / "final").is_dir():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        if record.get("finished") and _resume_key(record["config"]) == _resume_key(asdict(wcfg)):
            log.info("cloze warm-up already done in %s", out)
            return str(out / "final"), _warmup_summary(record)
    questions = cloze_questions(train_articles, cfg.cloze_warmup, seed=cfg.seed)
    log.info("cloze warm-up on %d synthetic questions", len(questions))
    record = train_reader(wcfg, questions, [], progress=progress, resume=resume)
    return str(out / "final"), _warmup_summary(record)


def _reader_meta(base_model: str) -> dict | None:
    meta_file = Path(base_model).parent / "articleqa_reader.json"
    if not meta_file.is_file():  # a shipped reader folder (models/reader or a copy) rather than a run's final/
        meta_file = Path(base_model) / "articleqa_reader.json"
    return json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else None


def earlier_stages(meta: dict, depth: int = 10) -> list[dict]:
    """The stages before ``meta``'s reader, oldest first: as recorded, or (readers trained before the
    record kept them) by following base models that are still on this machine."""
    training = meta.get("training", {})
    recorded = (training.get("base_run") or {}).get("stages")
    if recorded is not None:
        return recorded
    base = _reader_meta(training.get("config", {}).get("base_model") or "") if depth else None
    return all_stages(base, earlier_stages(base, depth - 1)) if base else []


def base_run_info(base_model: str) -> dict | None:
    """When training starts from a reader exported by an earlier ``train-reader`` run, that run's
    command and figures, so the model card can show the whole recipe (stage 1, then this stage)."""
    meta = _reader_meta(base_model)
    if meta is None:
        return None
    training = meta.get("training", {})
    return {
        "command": meta.get("command"),
        "commands": recipe_commands(meta),
        "base_model": meta.get("base_model"),
        "cloze_warmup": training.get("cloze_warmup"),
        "train_seconds": training.get("train_seconds"),
        "epochs": meta.get("epochs", []),
        "stages": all_stages(meta, earlier_stages(meta)),
    }


def _warmup_summary(record: dict) -> dict:
    return {
        "questions": record.get("n_questions"),
        "windows": record.get("n_windows"),
        "train_seconds": record.get("train_seconds"),
    }
