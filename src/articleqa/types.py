"""Typed values passed between pipeline stages.

Offsets are kept as data from ingest to answer: every ``start``/``end`` is a character offset (Unicode
code points) into the decoded text of an article, so ``article.text[start:end]`` is always the quote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Article:
    """One ingested article. ``text`` is what citations point into: the decoded file for .txt/.md,
    the parsed visible text for .html."""

    file: str  # path relative to the articles folder, with "/" separators
    text: str
    sha256: str  # hash of the raw file bytes
    title: str = ""
    date: str | None = None
    kind: str = "txt"
    author: str | None = None  # from a page's metadata (JSON-LD / meta author), when it names one
    url: str | None = None  # where the article lives on the web (canonical URL of a saved page)
    pages: tuple[int, ...] = ()  # PDFs: the offset in ``text`` where each page starts (page 1 at 0)

    def page_at(self, offset: int) -> int | None:
        """The 1-based page that holds ``offset`` (PDFs), else None."""
        if not self.pages:
            return None
        from bisect import bisect_right

        return max(1, bisect_right(self.pages, offset))


@dataclass(frozen=True)
class Passage:
    """A chunk of one article: ``text == article.text[start:end]``."""

    id: int
    file: str
    start: int
    end: int
    text: str
    title: str = ""


@dataclass(frozen=True)
class ScoredPassage:
    """A retrieved passage with its fused score and the rank each retriever gave it (1-based)."""

    passage: Passage
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    """An answerability judge's word on one question: ``score`` at or below the judge's threshold means
    "not found"; ``confidence`` is P(the answer given is right), None where the judge only decides."""

    score: float
    confidence: float | None = None


@dataclass(frozen=True)
class ReadSpan:
    """The reader's best span in one passage, in article offsets."""

    passage: Passage
    start: int
    end: int
    text: str
    margin: float  # span score minus the no-answer score
    confidence: float


class Citation(BaseModel):
    """Where an answer comes from: ``quote == text_of(file)[start:end]``."""

    file: str = Field(description="article path relative to the articles folder")
    start: int = Field(description="start offset, in Unicode characters of the decoded article")
    end: int = Field(description="end offset (exclusive)")
    quote: str = Field(description="the article's text at [start:end]")
    passage: str = Field(description="the passage the span was read from")
    passage_start: int
    passage_end: int
    title: str = Field(default="", description="the article's title")
    date: str | None = Field(default=None, description="the article's date (YYYY-MM-DD) when it states one")
    author: str | None = Field(default=None, description="the article's author, when its page names one")
    url: str | None = Field(default=None, description="the article's address on the web (canonical URL), when known")
    page: int | None = Field(default=None, description="PDFs: the 1-based page the span starts on")
    sha256: str | None = Field(
        default=None, description="sha256 of the article file's bytes when it was indexed; /api/verify compares it"
    )
    score: float | None = Field(default=None, description="reader confidence for this span")


class Disagreement(BaseModel):
    """Another answer that other retrieved articles give, with a margin above the "not found" threshold."""

    answer: str
    confidence: float = Field(ge=0.0, le=1.0)
    citations: list[Citation] = Field(default_factory=list)


class TracePassage(BaseModel):
    """One retrieved passage in an ``explain`` trace."""

    rank: int = Field(description="1-based rank after fusion")
    file: str
    title: str = ""
    passage_start: int
    passage_end: int
    dense_rank: int | None = Field(default=None, description="rank in dense retrieval (None: not among its candidates)")
    bm25_rank: int | None = Field(default=None, description="rank in BM25 retrieval (None: no matching words)")
    fused_score: float = Field(description="reciprocal rank fusion score (or the single retriever's score)")
    span: str = Field(description="the reader's best span in this passage")
    span_start: int
    span_end: int
    margin: float | None = Field(description="span score minus the no-answer score (None: no span)")
    confidence: float
    role: str = Field(
        description="answer | supports | differs | below_threshold | other_answer | not_read "
        "(early exit: an earlier passage was sure enough)"
    )


class Trace(BaseModel):
    """Why this answer (or why "not found"): what each stage saw and which rule decided."""

    question: str = Field(description="the question as read by the reader (after follow-up rewriting)")
    retrieval_query: str = Field(description="the query sent to retrieval (after follow-up rewriting)")
    retriever: str
    threshold: float = Field(description="the margin an answer must exceed; below it the answer is 'not found'")
    answerability: float | None = Field(
        default=None,
        description="the answerability model's score (log-odds that the "
        "articles answer), where one decides whether to answer",
    )
    answerability_threshold: float | None = Field(
        default=None, description="at or below it the answerability model refuses"
    )
    rule: str = Field(
        description="answered | below_threshold | unanswerable | unmatched_mention | empty_span | no_passages"
    )
    explanation: str = Field(description="the deciding rule in words")
    passages: list[TracePassage] = Field(default_factory=list)


class Answer(BaseModel):
    """The pipeline's result. ``answer`` is None when the articles do not contain the answer; then
    ``context`` holds the closest passages instead of citations."""

    question: str
    answer: str | None
    found: bool
    confidence: float = Field(ge=0.0, le=1.0)
    tentative: bool = Field(
        default=False,
        description="found, but the confidence is below the sure cut-off "
        "(P(right) < 0.5 by default): shown as 'the articles may not say; closest match: ...'",
    )
    citations: list[Citation] = Field(default_factory=list)
    context: list[Citation] = Field(default_factory=list, description="closest passages when not found")
    message: str = ""
    retrieval_query: str | None = Field(default=None, description="query used for retrieval, if rewritten")
    warnings: list[str] = Field(
        default_factory=list,
        description="what the assistant changed about the question, e.g. cut to the reader's window",
    )
    disagreements: list[Disagreement] = Field(
        default_factory=list, description="different answers other articles give (sources differ)"
    )
    parts: list["Answer"] = Field(
        default_factory=list, description="for a question with two parts, one answer per part"
    )
    trace: Trace | None = Field(default=None, description="with explain: why this answer")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    index_version: str | None = None


@dataclass(frozen=True)
class IndexStatus:
    """What a face shows about the published index: one type for the API's health, article list and the chat."""

    version: str
    built_at: str | None
    articles: int
    passages: int
    index_type: str | None
    embedding_model: str | None
    store: str = "faiss"
    files: dict[str, int] = field(default_factory=dict)  # file -> passages
    skipped: tuple[dict, ...] = ()  # files left out of the index, with the reason

    def built_at_display(self) -> str:
        """``2026-11-23 12:35 UTC`` (or the raw value when it is not ISO 8601)."""
        from datetime import datetime

        try:
            return datetime.fromisoformat(self.built_at or "").strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return self.built_at or ""
