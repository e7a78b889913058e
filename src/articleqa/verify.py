"""Verify: does a citation given earlier still hold against the current articles?

Each citation carries the article's ``sha256`` at indexing time. Checked against the articles now:

- ``valid``: the article is unchanged (same hash) and the quote is at the span, or, for a citation
  without a hash, the quote is at the span;
- ``stale``: the article changed since; ``quote_now`` says whether the quote is still at the same span
  (``same_span``), ``moved`` (``start_now``/``end_now`` give the occurrence nearest the old span) or
  ``gone``;
- ``missing``: the article is no longer there;
- ``invalid``: the article is unchanged but the quote was never its text at that span (a citation
  edited or made up by hand).

Example::

    checks = verify_citations(answer.citations, index.articles)
    checks[0].status      # 'valid'
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from articleqa.ingest import IngestError, read_article, resolve_inside
from articleqa.types import Article

Status = Literal["valid", "stale", "missing", "invalid"]


class CitationRef(BaseModel):
    """A citation as ``/api/answer`` returns it; only these fields are checked, others are ignored."""

    model_config = ConfigDict(extra="ignore")
    file: str = Field(max_length=1000)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote: str = Field(max_length=100_000)
    sha256: str | None = Field(default=None, max_length=64)


class CitationCheck(BaseModel):
    file: str
    start: int
    end: int
    quote: str
    status: Status
    quote_now: Literal["same_span", "moved", "gone"] | None = Field(
        default=None, description="for a stale or invalid citation: where the quote is in the article now"
    )
    start_now: int | None = Field(default=None, description="the quote's span now, when it is still in the article")
    end_now: int | None = None
    sha256: str | None = Field(default=None, description="the hash the citation carried")
    sha256_now: str | None = Field(default=None, description="the article's hash now (None when missing)")
    message: str


def verify_citation(c: CitationRef, article: Article | None) -> CitationCheck:
    base = dict(file=c.file, start=c.start, end=c.end, quote=c.quote, sha256=c.sha256)
    if article is None:
        return CitationCheck(**base, status="missing", message=f"{c.file} is no longer among the articles")
    text = article.text
    at_span = c.end >= c.start and text[c.start : c.end] == c.quote
    now = dict(base, sha256_now=article.sha256)
    if at_span:
        if c.sha256 is None or c.sha256 == article.sha256:
            return CitationCheck(
                **now, status="valid", start_now=c.start, end_now=c.end, message="the quote is at the cited span"
            )
        return CitationCheck(
            **now,
            status="stale",
            quote_now="same_span",
            start_now=c.start,
            end_now=c.end,
            message=f"{c.file} changed since it was cited; the quote is still at {c.start}–{c.end}",
        )
    status: Status = "invalid" if c.sha256 is not None and c.sha256 == article.sha256 else "stale"
    where = nearest_occurrence(text, c.quote, c.start)
    if where is None:
        message = (
            f"{c.file} is unchanged but the quote is not its text at {c.start}–{c.end}, nor anywhere in it"
            if status == "invalid"
            else f"{c.file} changed since it was cited; the quote is no longer in it"
        )
        return CitationCheck(**now, status=status, quote_now="gone", message=message)
    start, end = where
    message = (
        f"{c.file} is unchanged but the quote is at {start}–{end}, not at {c.start}–{c.end}"
        if status == "invalid"
        else f"{c.file} changed since it was cited; the quote moved to {start}–{end}"
    )
    return CitationCheck(**now, status=status, quote_now="moved", start_now=start, end_now=end, message=message)


def nearest_occurrence(text: str, quote: str, near: int) -> tuple[int, int] | None:
    """The occurrence of ``quote`` in ``text`` whose start is nearest ``near``, or None."""
    if not quote:
        return None
    best = None
    i = text.find(quote)
    while i != -1:
        if best is None or abs(i - near) < abs(best - near):
            best = i
        i = text.find(quote, i + 1)
    return None if best is None else (best, best + len(quote))


def verify_citations(
    citations: Iterable[CitationRef | dict | BaseModel], articles: Mapping[str, Article]
) -> list[CitationCheck]:
    """Check each citation against ``articles`` (file -> Article: an index version's articles, or
    ``FolderArticles`` for the files on disk)."""
    checks = []
    for c in citations:
        ref = (
            c
            if isinstance(c, CitationRef)
            else CitationRef.model_validate(c.model_dump() if isinstance(c, BaseModel) else c)
        )
        checks.append(verify_citation(ref, articles.get(ref.file)))
    return checks


def citations_of(answer: dict | list) -> list[dict]:
    """The citations in a saved answer (its citations, each disagreement's and each part's), or in a
    list of citations, or in ``{"citations": [...]}``."""
    if isinstance(answer, list):
        return [c for c in answer if isinstance(c, dict)]
    if not isinstance(answer, dict):
        return []
    if answer.get("parts"):  # the top level only repeats its parts' citations
        return [c for part in answer["parts"] for c in citations_of(part)]
    found = [c for c in answer.get("citations") or [] if isinstance(c, dict)]
    for d in answer.get("disagreements") or []:
        if isinstance(d, dict):
            found += [c for c in d.get("citations") or [] if isinstance(c, dict)]
    return found


class FolderArticles(Mapping[str, Article]):
    """The articles of a folder as they are on disk now, read on demand with the ingest rules (links
    out of the folder, non-regular and unsupported files count as missing)."""

    def __init__(self, folder: str | Path, max_bytes: int):
        self.root = Path(folder)
        self.max_bytes = max_bytes
        self._cache: dict[str, Article | None] = {}

    def get(self, file: str, default=None):
        if file not in self._cache:
            self._cache[file] = self._read(file)
        return self._cache[file] if self._cache[file] is not None else default

    def _read(self, file: str) -> Article | None:
        parts = file.split("/")
        if not file or file.startswith("/") or "\\" in file or any(p in ("", ".", "..") for p in parts):
            return None
        path = self.root / file
        try:
            resolve_inside(self.root, path)
            return read_article(path, self.root, self.max_bytes)
        except (IngestError, OSError, ValueError):
            return None

    def __getitem__(self, file: str) -> Article:
        article = self.get(file)
        if article is None:
            raise KeyError(file)
        return article

    def __iter__(self):
        return iter(k for k, v in self._cache.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self._cache.values() if v is not None)


def summary(checks: list[CitationCheck]) -> dict[str, int]:
    counts = {"valid": 0, "stale": 0, "missing": 0, "invalid": 0}
    for c in checks:
        counts[c.status] += 1
    return counts
