"""Read: extractive QA over retrieved passages with a Hugging Face ``AutoModelForQuestionAnswering``.

The reader scores every span of every passage window and keeps, per passage, the best span with its
character offsets into the passage, plus the model's no-answer ([CLS]) score. Offsets come from the
tokenizer's offset mapping, so a span maps back to the exact characters of the article.

Example::

    reader = ExtractiveReader("models/reader")
    reader.warm_up()
    [pred] = reader.predict([("Who is the Energy Secretary?", "... Energy Secretary Chris Wright ...")])
    pred.text  # 'Chris Wright'
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from articleqa.runtime import OnnxRuntime, TorchRuntime, choose_path, load_runtime
from articleqa.types import Passage, ReadSpan

log = logging.getLogger(__name__)

#: Calibration written by ``train-reader`` next to the weights: threshold and confidence mapping.
CALIBRATION_FILE = "articleqa_reader.json"


@dataclass
class ReaderPrediction:
    """The best span of one (question, context) pair; ``margin`` = span score - no-answer score."""

    start: int
    end: int
    text: str
    span_score: float
    null_score: float

    @property
    def margin(self) -> float:
        return self.span_score - self.null_score


@dataclass
class ReaderCalibration:
    """Maps the no-answer margin to a confidence in [0, 1] (Platt scaling fitted on validation
    articles) and holds the margin below which the pipeline answers "not found"."""

    threshold: float = 0.0  # for the pipeline: best margin over the retrieved passages
    scale: float = 1.0
    bias: float = 0.0
    reader_threshold: float | None = None  # for one given paragraph (eval-reader)

    def confidence(self, margin: float) -> float:
        return float(1.0 / (1.0 + np.exp(-(self.scale * margin + self.bias))))

    @property
    def min_confidence(self) -> float:
        """The confidence at the calibrated threshold: answers below it are 'not found'."""
        return self.confidence(self.threshold)

    @classmethod
    def load(cls, model_dir: str | Path) -> "ReaderCalibration":
        return cls.from_meta(read_reader_meta(model_dir))

    @classmethod
    def from_meta(cls, meta: dict) -> "ReaderCalibration":
        """From the calibration record ``train-reader`` writes beside the weights (``{}``: defaults)."""
        cal = meta.get("calibration", {})
        threshold = float(cal.get("threshold", 0.0))
        return cls(
            threshold=threshold,
            scale=float(cal.get("scale", 1.0)),
            bias=float(cal.get("bias", 0.0)),
            reader_threshold=float(cal.get("reader_threshold", threshold)),
        )


def load_qa_tokenizer(model: str | Path, offline: bool = True):
    """The tokenizer of a QA model from a local folder or (when ``offline`` is False) a hub id.

    Local folders never touch the network; offline mode refuses hub downloads with a clear error, and an
    incomplete folder is named with what it lacks (the same for :func:`load_qa_weights`).
    """
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer.from_pretrained, model, offline)


def load_qa_weights(model: str | Path, offline: bool = True):
    """The QA model itself in fp32 (whatever dtype its files hold), in eval mode."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    return _from_pretrained(AutoModelForQuestionAnswering.from_pretrained, model, offline, dtype=torch.float32).eval()


def _from_pretrained(load, model: str | Path, offline: bool, **options):
    path = Path(model)
    local = path.is_dir()
    if local:
        missing = [f for f in ("config.json",) if not (path / f).is_file()]
        weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
        if missing or not weights:
            what = ", ".join(missing + ([] if weights else ["model weights (*.safetensors)"]))
            raise FileNotFoundError(f"reader model folder {path} is incomplete: missing {what}")
    elif offline:
        if os.sep in str(model) or str(model).startswith("."):
            raise FileNotFoundError(f"reader model folder {model} does not exist")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return load(str(model), local_files_only=local or offline, **options)
    except OSError as exc:
        hint = "" if local else " (offline mode: set ARTICLEQA_OFFLINE=0 to allow downloads from the hub)"
        raise FileNotFoundError(f"cannot load reader model {model!r}: {exc}{hint}") from exc


class ExtractiveReader:
    """Finds the best answer span in each passage.

    Args:
        model: local folder or Hugging Face model id of an extractive QA model.
        max_length: tokens per window (question + passage); longer passages are read in windows.
        stride: tokens of overlap between windows.
        max_answer_tokens: longest span considered, in tokens (None: the model's validated choice
            from its calibration file, else 30).
        max_question_tokens: longer questions are cut to their first this-many tokens before reading
            (None: a third of ``max_length``), so every window keeps room for the passage.
        quantize: "int8" (dynamic quantization of the weights), "bf16" (torch, where the hardware has
            bf16 matrix units, else fp32), "none" (fp32), or "auto" (the precision validated in the
            model's calibration file where the machine runs it fast, else fp32).
        backend: "torch", "onnx" (ONNX Runtime; the graph is exported once into the cache) or "auto"
            (torch for bf16, else onnx where onnxruntime is installed, else torch): see
            :mod:`articleqa.runtime`.
        offline: never reach the hub (default).
    """

    def __init__(
        self,
        model: str | Path,
        max_length: int = 384,
        stride: int = 128,
        max_answer_tokens: int | None = None,
        quantize: str = "auto",
        offline: bool = True,
        batch_size: int = 32,
        max_question_tokens: int | None = None,
        backend: str = "auto",
    ):
        self.model_name = str(model)
        self.max_length = max_length
        self.max_question_tokens = max_question_tokens or max_length // 3
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self.quantize = quantize
        self.backend = backend
        self.offline = offline
        self.batch_size = batch_size
        self.tokenizer = None
        self.model = None  # the torch model, where the torch runtime runs (training, evaluation)
        self.runtime = None
        self.calibration = ReaderCalibration()

    @classmethod
    def from_loaded(cls, tokenizer, model, **kwargs) -> "ExtractiveReader":
        """Wrap an in-memory model (used by training to evaluate without saving)."""
        kwargs.setdefault("max_answer_tokens", 30)
        reader = cls(getattr(model, "name_or_path", "in-memory"), quantize="none", backend="torch", **kwargs)
        reader.tokenizer, reader.model = tokenizer, model
        reader.runtime = TorchRuntime(model, _precision_of(model))
        return reader

    @property
    def inference_path(self) -> str:
        """What runs: ``"onnxruntime int8"``, ``"torch bf16"``, ``"torch fp32"``, ..."""
        return self.runtime.name if self.runtime is not None else "not loaded"

    def warm_up(self) -> None:
        """Load the model once; later calls are no-ops."""
        if self.runtime is not None:
            return
        # first, so that a missing or incomplete model fails here with its clear error, not in the ONNX export
        tokenizer = load_qa_tokenizer(self.model_name, self.offline)
        meta = read_reader_meta(self.model_name)
        backend, precision = choose_path(meta, self.backend, self.quantize)
        self.runtime = load_runtime(
            self.model_name,
            lambda: load_qa_weights(self.model_name, self.offline),
            backend,
            precision,
            fallback=self.backend == "auto",
        )
        self.tokenizer = tokenizer
        self.model = getattr(self.runtime, "model", None)
        self.calibration = ReaderCalibration.from_meta(meta)
        recommended = meta.get("inference", {})
        if self.max_answer_tokens is None:
            self.max_answer_tokens = int(recommended.get("max_answer_tokens", 30))
        self.backend = "onnx" if isinstance(self.runtime, OnnxRuntime) else "torch"
        self.quantize = {"fp32": "none"}.get(self.runtime.precision, self.runtime.precision)
        log.info("reader %s loaded (%s)", self.model_name, self.runtime.name)

    def question_tokens(self, question: str) -> int:
        """How many tokens the question takes (without special tokens)."""
        self.warm_up()
        return len(self.tokenizer(question, add_special_tokens=False)["input_ids"])

    def fit_question(self, question: str) -> str:
        """The question cut to its first ``max_question_tokens`` tokens (at a token boundary)."""
        enc = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) <= self.max_question_tokens:
            return question
        return question[: offsets[self.max_question_tokens - 1][1]]

    def read(self, question: str, passages: Sequence[Passage]) -> list[ReadSpan]:
        """Best span per passage, with article offsets and calibrated confidence."""
        return self.read_many([(question, passages)])[0]

    def read_many(self, requests: Sequence[tuple[str, Sequence[Passage]]]) -> list[list[ReadSpan]]:
        """:meth:`read` for several questions at once: all their passages go through the model as one
        stream of length-sorted batches (the server groups concurrent questions this way)."""
        self.warm_up()
        pairs = [(question, p) for question, passages in requests for p in passages]
        preds = iter(self.predict([(q, p.text) for q, p in pairs]))
        results = []
        for _, passages in requests:
            spans = []
            for passage in passages:
                pred = next(preds)
                spans.append(
                    ReadSpan(
                        passage=passage,
                        start=passage.start + pred.start,
                        end=passage.start + pred.end,
                        text=pred.text,
                        margin=pred.margin,
                        confidence=self.calibration.confidence(pred.margin),
                    )
                )
            results.append(spans)
        return results

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[ReaderPrediction]:
        """Best non-empty span and the no-answer score for each (question, context) pair."""
        self.warm_up()
        if not pairs:
            return []
        fitted: dict[str, str] = {}
        for q, _ in pairs:
            if q not in fitted:
                fitted[q] = self.fit_question(q)
        enc = self.tokenizer(
            [fitted[q] for q, _ in pairs],
            [c for _, c in pairs],
            truncation="only_second",
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        n_features = len(enc["input_ids"])
        best: list[ReaderPrediction | None] = [None] * len(pairs)
        null: list[float] = [float("inf")] * len(pairs)
        order = sorted(range(n_features), key=lambda i: len(enc["input_ids"][i]))
        for b in range(0, n_features, self.batch_size):
            idx = order[b : b + self.batch_size]
            batch = self.tokenizer.pad(
                {k: [enc[k][i] for i in idx] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc},
                return_tensors="np",
            )
            starts, ends = self.runtime({k: np.asarray(v, dtype=np.int64) for k, v in batch.items()})
            for row, feat in enumerate(idx):
                sample = enc["overflow_to_sample_mapping"][feat]
                seq_ids = enc.sequence_ids(feat)
                offsets = enc["offset_mapping"][feat]
                s_logits, e_logits = starts[row, : len(seq_ids)], ends[row, : len(seq_ids)]
                null[sample] = min(null[sample], float(s_logits[0] + e_logits[0]))
                span = best_span(s_logits, e_logits, seq_ids, self.max_answer_tokens)
                if span is None:
                    continue
                i, j, score = span
                if best[sample] is None or score > best[sample].span_score:
                    c_start, c_end = offsets[i][0], offsets[j][1]
                    context = pairs[sample][1]
                    best[sample] = ReaderPrediction(c_start, c_end, context[c_start:c_end], score, 0.0)
        results = []
        for k, pred in enumerate(best):
            if pred is None:  # empty context: nothing to extract
                pred = ReaderPrediction(0, 0, "", float("-inf"), 0.0)
            pred.null_score = null[k] if null[k] != float("inf") else 0.0
            results.append(pred)
        return results


def best_span(
    start_logits: np.ndarray, end_logits: np.ndarray, sequence_ids: list, max_answer_tokens: int
) -> tuple[int, int, float] | None:
    """Highest start+end score over spans inside the context with 1..max_answer_tokens tokens."""
    ctx = np.array([s == 1 for s in sequence_ids])
    if not ctx.any():
        return None
    positions = np.flatnonzero(ctx)
    s = start_logits[positions]
    e = end_logits[positions]
    scores = s[:, None] + e[None, :]
    n = len(positions)
    i_idx, j_idx = np.indices((n, n))
    valid = (j_idx >= i_idx) & (j_idx - i_idx < max_answer_tokens)
    scores = np.where(valid, scores, -np.inf)
    flat = int(np.argmax(scores))
    i, j = divmod(flat, n)
    return int(positions[i]), int(positions[j]), float(scores[i, j])


def _precision_of(model) -> str:
    try:
        dtype = str(next(model.parameters()).dtype)
    except StopIteration:  # torch's dynamic int8 keeps packed weights outside parameters()
        return "int8"
    return "bf16" if "bfloat16" in dtype else "fp32"


def read_reader_meta(model_dir: str | Path) -> dict:
    """The record ``train-reader`` writes beside the weights: calibration and the validated inference
    settings (quantization, answer length); ``{}`` for other models (hub ids, foreign folders)."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileNotFoundError(f"reader calibration {path} is unreadable ({exc}); re-export the reader") from None
