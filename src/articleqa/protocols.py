"""Stage contracts: what each stage of the pipeline must offer, as ``typing.Protocol``s.

The pipeline, the faces (CLI, API, chat) and the rebuild jobs depend only on these; the classes in the
stage modules are one implementation each. A second backend implements a protocol and plugs in where
the first is built (``stores.open_store``, ``retrieval.make_retriever``, ``QAPipeline.from_settings``)
without a branch in the pipeline:

=================  =====================================  ==========================================
contract           today                                  what a new one would be
=================  =====================================  ==========================================
``Embedder``       ``embedding.Embedder`` (sentence-      another encoder runtime (ONNX Runtime)
                   transformers)
``Chunker``        ``chunking.SentenceChunker``           another splitter
``IndexVersion``   ``store.LoadedIndex`` (FAISS, memory)  a collection in a vector database
``IndexStore``     ``store.FaissIndexStore`` (a folder)   a vector database (Milvus)
``Retriever``      ``retrieval.HybridRetriever`` & co.    the database's own hybrid search
``Reader``         ``reader.ExtractiveReader``            another reader model family
``QARuntime``      ``runtime.OnnxRuntime``,               another runtime of the same weights
                   ``runtime.TorchRuntime``               (OpenVINO, TensorRT)
``Answerability``  ``answerability.AnswerabilityModel``   a verifier model reading the passage
``Judge``          (a logistic model over the trace)
=================  =====================================  ==========================================

Example::

    def answer_with(retriever: Retriever, reader: Reader, index: IndexVersion, question: str):
        hits = retriever.retrieve(index, question, top_k=5)
        return reader.read(question, [h.passage for h in hits])
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from articleqa.reader import ReaderCalibration
    from articleqa.types import Article, IndexStatus, Judgement, Passage, ReadSpan, ScoredPassage


@runtime_checkable
class Embedder(Protocol):
    """Sentence vectors, unit length, so inner product is cosine similarity."""

    name: str  # recorded in the index: another name forces a full rebuild

    @property
    def dimension(self) -> int: ...

    def warm_up(self) -> None: ...

    def encode(self, texts: list[str], progress: bool | None = None) -> np.ndarray: ...


@runtime_checkable
class Chunker(Protocol):
    """Passages of articles with exact offsets: ``passage.text == article.text[start:end]``."""

    def chunking_settings(self) -> dict: ...  # recorded in the index: a change forces a full rebuild

    def chunk(self, articles: Sequence[Article], start_id: int = 0) -> list[Passage]: ...


@runtime_checkable
class IndexVersion(Protocol):
    """One published, immutable index version: passages, article texts and dense search."""

    passages: Sequence[Passage]
    articles: Mapping[str, Article]  # file -> the text citations point into

    @property
    def version(self) -> str: ...

    def status(self) -> IndexStatus: ...

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]: ...

    def cached(self, key: str, build: Callable[[Any], Any]) -> Any: ...


@runtime_checkable
class IndexStore(Protocol):
    """Where index versions live: publish a new one atomically, load the published one."""

    name: str  # "faiss", ...
    root: Path  # the index folder (lock, leftovers)

    def current_version(self) -> str | None: ...

    def exists(self) -> bool: ...

    def read_manifest(self, version: str | None = None) -> dict: ...

    def load(self, embedding_model: str | None = None, chunking: dict | None = None) -> IndexVersion: ...

    def lock(self, timeout: float = -1) -> AbstractContextManager: ...

    def is_locked(self) -> bool: ...

    def write_version(
        self,
        articles: list[Article],
        passages: list[Passage],
        vectors: np.ndarray,
        embedding_model: str,
        chunking: dict,
        extra: dict | None = None,
    ) -> str: ...

    def cleanup(self, keep: int = 2, min_age_seconds: float = 0.0) -> list[str]: ...

    def make_retriever(self, kind: str, embedder: Embedder) -> "Retriever": ...  # the retrieval this store serves best

    def close(self) -> None: ...  # release connections or files (a server's client, milvus-lite's file)


@runtime_checkable
class Retriever(Protocol):
    """The passages most likely to answer ``query``, best first, with their ranks per method."""

    name: str

    def retrieve(
        self, index: IndexVersion, query: str, top_k: int = 5, timings: dict | None = None
    ) -> list[ScoredPassage]: ...


@runtime_checkable
class QARuntime(Protocol):
    """Start and end logits of a padded batch of QA features (int64 arrays in, float32 arrays out)."""

    precision: str  # "fp32", "bf16", "int8"

    @property
    def name(self) -> str: ...  # "onnxruntime fp32", "torch bf16", ...

    def __call__(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class Reader(Protocol):
    """The best span of each passage with its no-answer margin, in article offsets."""

    model_name: str
    quantize: str  # the precision that runs: "none" (fp32), "bf16", "int8", ...
    calibration: ReaderCalibration
    max_question_tokens: int  # longer questions are cut to this many tokens for reading

    @property
    def inference_path(self) -> str: ...  # what runs, e.g. "onnxruntime fp32", "torch bf16" (in /api/health)

    def warm_up(self) -> None: ...

    def question_tokens(self, question: str) -> int: ...

    def read(self, question: str, passages: Sequence[Passage]) -> list[ReadSpan]: ...


@runtime_checkable
class AnswerabilityJudge(Protocol):
    """Whether the articles answer, judged once per question over its read spans and retrieval hits
    (``types.Judgement``): at or below ``threshold`` its score means "not found" (``answer.AnswerBuilder``);
    its confidence is P(the answer given is right), or None where the judge only decides; an answer below
    ``sure`` (None: the builder's own) is shown tentative."""

    threshold: float
    sure: float | None

    def judge(
        self, question: str, spans: Sequence[ReadSpan], hits: Sequence[ScoredPassage], reader_threshold: float
    ) -> Judgement: ...
