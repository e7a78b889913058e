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
    title: str = ""
    score: float | None = Field(default=None, description="reader confidence for this span")


class Answer(BaseModel):
    """The pipeline's result. ``answer`` is None when the articles do not contain the answer; then
    ``context`` holds the closest passages instead of citations."""

    question: str
    answer: str | None
    found: bool
    confidence: float = Field(ge=0.0, le=1.0)
    citations: list[Citation] = Field(default_factory=list)
    context: list[Citation] = Field(default_factory=list, description="closest passages when not found")
    message: str = ""
    retrieval_query: str | None = Field(default=None, description="query used for retrieval, if rewritten")
    warnings: list[str] = Field(default_factory=list, description="what the assistant changed about the question, e.g. cut to the reader's window")
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
