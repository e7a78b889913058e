"""The question-answering pipeline: retrieve -> read -> answer, over a hot-reloaded index.

The CLI, the HTTP API and the chat UI all call ``QAPipeline.ask``. ``IndexHolder`` watches the
index folder's ``CURRENT`` pointer: a newly published version is loaded in the background and swapped
in with one reference assignment, so questions in flight finish on the version they started with
and no request waits for or fails during the switch.

Example::

    pipeline = QAPipeline.from_settings(get_settings())
    answer = pipeline.ask("Who is the Energy Secretary?")
    answer.answer, answer.citations[0].file   # 'Chris Wright', '002_2dd9416afd3ce74f.txt'
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from pathlib import Path

from articleqa.answer import AnswerBuilder, same_answer
from articleqa.answerability import AnswerabilityModel
from articleqa.chunking import SentenceChunker
from articleqa.config import Settings
from articleqa.conversation import Turn, contextualize, resolve_references, split_question
from articleqa.embedding import Embedder
from articleqa.indexing import IndexBuilder
from articleqa.protocols import Chunker, IndexStore, IndexVersion, Reader, Retriever
from articleqa.protocols import Embedder as EmbedderProtocol
from articleqa.reader import ExtractiveReader
from articleqa.stores import settings_store
from articleqa.types import Answer

log = logging.getLogger(__name__)

MAX_TOP_K = 50
#: Earlier turns used for a follow-up, and how much of each is kept (a pasted essay is not a question).
MAX_HISTORY_TURNS = 20
MAX_HISTORY_CHARS = 1000


class QuestionError(ValueError):
    """The question cannot be asked (empty, too long, bad top_k)."""


def clean_text(text: str) -> str:
    """Control, format and separator characters become spaces; whitespace is collapsed."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") else ch for ch in text)
    return " ".join(cleaned.split())


def clean_question(question: str, max_chars: int) -> str:
    """Drop control characters, collapse whitespace; reject empty, over-long or malformed questions."""
    if not isinstance(question, str):
        raise QuestionError("question must be a string")
    if len(question) > max_chars:
        raise QuestionError(f"question is too long ({len(question)} characters; the limit is {max_chars})")
    if any(unicodedata.category(ch) == "Cs" for ch in question):
        raise QuestionError("question contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a character")
    cleaned = clean_text(question)
    if not cleaned:
        raise QuestionError("question is empty")
    return cleaned


def clean_history(history: list[Turn] | None) -> list[Turn]:
    """The last ``MAX_HISTORY_TURNS`` turns, each cleaned and cut to ``MAX_HISTORY_CHARS`` characters."""
    turns = []
    for t in (history or [])[-MAX_HISTORY_TURNS:]:
        answer = clean_text(t.answer)[:MAX_HISTORY_CHARS] if isinstance(t.answer, str) else None
        turns.append(Turn(clean_text(str(t.question or ""))[:MAX_HISTORY_CHARS], answer or None))
    return turns


class IndexHolder:
    """The current ``LoadedIndex``, replaced in the background when a new version is published."""

    def __init__(self, store: IndexStore, embedding_model: str, chunking: dict, check_interval: float = 1.0):
        self.store = store
        self.embedding_model = embedding_model
        self.chunking = chunking
        self.check_interval = check_interval
        self._index: IndexVersion | None = None
        self._lock = threading.Lock()
        self._loading = False
        self._last_check = 0.0
        self.last_error: str | None = None

    def get(self) -> IndexVersion:
        """The index to answer with. Loads synchronously only the first time."""
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._index = self.store.load(self.embedding_model, self.chunking)
                    log.info("index version %s loaded (%d passages)", self._index.version, len(self._index.passages))
                return self._index
        now = time.monotonic()
        if now - self._last_check >= self.check_interval:
            self._last_check = now
            current = self.store.current_version()
            if current and current != index.version and not self._loading:
                self._start_reload(current)
        return index

    def reload_now(self) -> IndexVersion:
        """Load the published version synchronously (after a rebuild in this process)."""
        new = self.store.load(self.embedding_model, self.chunking)
        self._index = new
        return new

    def _start_reload(self, version: str) -> None:
        with self._lock:
            if self._loading:
                return
            self._loading = True

        def load():
            try:
                new = self.store.load(self.embedding_model, self.chunking)
                self._index = new  # atomic swap; old references stay valid
                self.last_error = None
                log.info("switched to index version %s (%d passages)", new.version, len(new.passages))
            except Exception as exc:  # keep serving the version we have
                self.last_error = str(exc)
                log.error(
                    "cannot load index version %s, still serving %s: %s",
                    version,
                    self._index.version if self._index else None,
                    exc,
                )
            finally:
                self._loading = False

        threading.Thread(target=load, name="index-reload", daemon=True).start()


class QAPipeline:
    """Retrieve -> read -> answer. Each stage is a protocol of ``articleqa.protocols``; ``from_settings``
    builds the default implementations, and any other implementation can be passed in instead."""

    def __init__(
        self,
        settings: Settings,
        embedder: EmbedderProtocol,
        chunker: Chunker,
        reader: Reader,
        retriever: Retriever | None = None,
        store: IndexStore | None = None,
    ):
        self.settings = settings
        self.embedder = embedder
        self.chunker = chunker
        self.reader = reader
        self.store = store or settings_store(settings)
        self.retriever = retriever or self.store.make_retriever(settings.retrieval, embedder)
        self.indexes = IndexHolder(self.store, embedder.name, chunker.chunking_settings())
        self._answer_builder: AnswerBuilder | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "QAPipeline":
        settings.apply_offline()
        embedder = Embedder(
            settings.embedding_model_path(), offline=settings.offline, backend=settings.embedding_backend
        )
        chunker = SentenceChunker(settings.chunk_words, settings.chunk_overlap_words)
        reader = ExtractiveReader(
            settings.reader_model_path(),
            quantize=settings.reader_quantize,
            backend=settings.reader_backend,
            offline=settings.offline,
        )
        return cls(settings, embedder, chunker, reader)

    def builder(self) -> IndexBuilder:
        batch_job = None
        if self.settings.embed_with == "ray":
            from articleqa.ray_embedding import RayChunkEmbedder

            batch_job = RayChunkEmbedder(self.embedder, self.chunker, address=self.settings.ray_address)
        return IndexBuilder(
            self.embedder,
            self.chunker,
            keep_versions=self.settings.keep_versions,
            max_article_bytes=self.settings.max_article_bytes,
            batch_job=batch_job,
        )

    def build_index(self, full: bool = False, wait: bool = True, on_progress=None):
        """Build or update the index of the configured articles folder (see ``IndexBuilder.build``)."""
        return self.builder().build(
            self.settings.articles_dir, self.store, full=full, wait=wait, on_progress=on_progress
        )

    def warm_up(self) -> None:
        """Load the models and the index once (a clear error names what is missing)."""
        self.embedder.warm_up()
        self.reader.warm_up()
        self.indexes.get()

    @property
    def answer_builder(self) -> AnswerBuilder:
        if self._answer_builder is None:
            self.reader.warm_up()
            threshold = self.settings.no_answer_threshold
            if threshold is None:
                threshold = self.reader.calibration.threshold
            self._answer_builder = AnswerBuilder(
                threshold=threshold,
                sure_confidence=self.settings.sure_confidence,
                rank_prior=self.settings.answer_rank_prior,
                check_mentions=self.settings.check_mentions,
                judge=self.judge(),
            )
        return self._answer_builder

    def judge(self) -> AnswerabilityModel | None:
        """The answerability model shipped beside the reader, where the settings let it decide "not found"."""
        s = self.settings
        if not s.answerability or s.no_answer_threshold is not None or not Path(self.reader.model_name).is_dir():
            return None
        model = AnswerabilityModel.load(self.reader.model_name)
        if model is not None and model.retrieval != s.retrieval:
            log.warning(
                "the answerability model was fitted with %s retrieval, not %s: the margin decides 'not found'",
                model.retrieval,
                s.retrieval,
            )
            return None
        return model

    def ask(
        self, question: str, top_k: int | None = None, history: list[Turn] | None = None, explain: bool = False
    ) -> Answer:
        """Answer ``question`` from the indexed articles, with citations, or say it is not found.

        Raises ``QuestionError`` for a question that cannot be asked. A question longer than the
        reader's ``max_question_tokens`` is read cut to that many tokens (retrieval uses all of it),
        and the answer's ``warnings`` say so. A question with two parts ("Who ordered the strikes, and
        when did they happen?") is answered part by part (``answer.parts``). With ``explain`` each
        answer carries a ``trace``: retrieval ranks, the reader's span and margin per passage, the
        threshold and the deciding rule."""
        t0 = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        top_k = self.settings.top_k if top_k is None else top_k
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise QuestionError(f"top_k must be an integer from 1 to {MAX_TOP_K}")
        history = clean_history(history)
        index = self.indexes.get()  # this question stays on this version, whatever is published meanwhile
        parts = split_question(question)
        if len(parts) == 1:
            return self._ask_one(question, top_k, history, index, explain, t0)
        answers = []
        part_history = history
        for part in parts:
            answers.append(self._ask_one(part, top_k, part_history, index, explain, time.perf_counter()))
            # later parts refer to what the first part is about ("when did they happen?"), not to its answer
            part_history = [*history, Turn(parts[0], None)]
        return combine_parts(question, answers, time.perf_counter() - t0)

    def _read(self, question: str, hits: list) -> list:
        """The reader's spans for the retrieved passages, in retrieval order.

        Early exit (``early_exit_passages`` N, on by default): the first N passages are read. While the best
        span so far is unsure (margin below ``early_exit_margin``, or not above the "not found" threshold)
        everything else is read too, so a refusal is always decided on every passage. Once it is sure, the
        only passages skipped are further passages of articles that already agree with the answer: such an
        article is cited for it and is never a source that differs, so its other passages cannot change what
        is said. Every other article is read to the end: one passage holding nothing sure says nothing of its
        article's others (a later one may give another answer, "sources differ"), and one giving another
        answer may be contradicted or supported by the rest."""
        passages = [h.passage for h in hits]
        first = self.settings.early_exit_passages
        if not first or len(passages) <= first:
            return self.reader.read(question, passages)
        spans = self.reader.read(question, passages[:first])
        pending = passages[first:]
        sure = max(self.settings.early_exit_margin, self.answer_builder.threshold)
        while pending:
            best = max(spans, key=lambda s: s.margin)
            if best.margin <= sure:
                take = pending
            else:
                agree = {s.passage.file for s in spans if same_answer(s.text, best.text)}
                take = [p for p in pending if p.file not in agree]
            if not take:
                break
            spans = spans + self.reader.read(question, take)
            taken = {p.id for p in take}
            pending = [p for p in pending if p.id not in taken]
        order = {p.id: i for i, p in enumerate(passages)}
        return sorted(spans, key=lambda s: order[s.passage.id])

    def _ask_one(
        self, question: str, top_k: int, history: list[Turn], index: IndexVersion, explain: bool, t0: float
    ) -> Answer:
        query = contextualize(question, history)
        reader_question = resolve_references(question, history)
        warnings = []
        if self.reader.question_tokens(reader_question) > self.reader.max_question_tokens:
            warnings.append(
                f"the question is longer than {self.reader.max_question_tokens} tokens: "
                "the reader read only its beginning"
            )
        timings: dict[str, float] = {}
        t = time.perf_counter()
        hits = self.retriever.retrieve(index, query, top_k, timings=timings)
        timings["retrieval"] = time.perf_counter() - t - timings.get("embedding", 0.0)
        t = time.perf_counter()
        spans = self._read(reader_question, hits)
        timings["reading"] = time.perf_counter() - t
        builder = self.answer_builder
        decision = builder.decide(question, spans, hits, index)
        answer = decision.answer
        timings["total"] = time.perf_counter() - t0
        answer.timings = {k: round(v, 4) for k, v in timings.items()}
        answer.retrieval_query = query if query != question else None
        answer.warnings = warnings
        if explain:
            answer.trace = decision.trace(
                reader_question,
                query,
                self.retriever.name,
                builder.threshold,
                spans,
                hits,
                builder.judge.threshold if builder.judge is not None else None,
            )
        return answer


def combine_parts(question: str, parts: list[Answer], seconds: float) -> Answer:
    """One answer for a question with several parts: each part's answer in ``parts``; at the top the
    found answers joined with "; ", all their citations, and found when any part is found."""
    found = [p for p in parts if p.found]
    missing = len(parts) - len(found)
    message = ""
    if not found:
        message = parts[0].message
    elif missing:
        message = f"{missing} of {len(parts)} parts not found in the articles."
    timings: dict[str, float] = {}
    for p in parts:
        for k, v in p.timings.items():
            if k != "total":
                timings[k] = round(timings.get(k, 0.0) + v, 4)
    timings["total"] = round(seconds, 4)
    return Answer(
        question=question,
        answer="; ".join(p.answer for p in found) if found else None,
        found=bool(found),
        confidence=min(p.confidence for p in found) if found else max(p.confidence for p in parts),
        tentative=any(p.tentative for p in found),
        citations=[c for p in found for c in p.citations],
        context=[] if found else parts[0].context,
        message=message,
        warnings=[w for p in parts for w in p.warnings],
        parts=parts,
        timings=timings,
        index_version=parts[0].index_version,
    )
