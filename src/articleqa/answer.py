"""Answer: turn the reader's spans into an ``Answer`` with citations, or an honest "not found".

The best span wins when its no-answer margin clears the reader's calibrated threshold; every other
passage whose best span says the same thing (same normalized text) is cited too, so an answer
supported by several articles cites each. Quotes are always cut from the indexed article text, so
``quote == text_of(file)[start:end]`` holds by construction.

Example::

    answer = AnswerBuilder(threshold=reader.calibration.threshold).build(question, spans, hits, index)
"""

from __future__ import annotations

from articleqa.text import normalize_answer
from articleqa.protocols import IndexVersion
from articleqa.types import Answer, Citation, Passage, ReadSpan, ScoredPassage

NOT_FOUND = "Not found in the articles."
_TRIM = " \t\n\r\f\v.,;:!?\"'“”‘’«»()[]"


class AnswerBuilder:
    """Args:
    threshold: no-answer margin (span score minus [CLS] score) an answer must exceed.
    max_citations: most citations per answer.
    context_passages: closest passages shown when the answer is not found.
    """

    def __init__(self, threshold: float = 0.0, max_citations: int = 5, context_passages: int = 3):
        self.threshold = threshold
        self.max_citations = max_citations
        self.context_passages = context_passages

    def build(self, question: str, spans: list[ReadSpan], hits: list[ScoredPassage], index: IndexVersion) -> Answer:
        ranked = sorted(spans, key=lambda s: -s.margin)
        best = ranked[0] if ranked else None
        if best is None or best.margin <= self.threshold or not normalize_answer(best.text) and not best.text.strip(_TRIM):
            return Answer(
                question=question,
                answer=None,
                found=False,
                confidence=round(best.confidence, 4) if best else 0.0,
                context=[passage_citation(h.passage, index) for h in hits[: self.context_passages]],
                message=NOT_FOUND,
                index_version=index.version,
            )
        citations: list[Citation] = []
        seen: set[tuple[str, int, int]] = set()
        for span in ranked:
            if span.margin <= self.threshold or not same_answer(span.text, best.text):
                continue
            cite = span_citation(span, index)
            if (cite.file, cite.start, cite.end) in seen:
                continue  # overlapping passages read the same span twice
            seen.add((cite.file, cite.start, cite.end))
            citations.append(cite)
            if len(citations) >= self.max_citations:
                break
        return Answer(
            question=question,
            answer=citations[0].quote,
            found=True,
            confidence=round(best.confidence, 4),
            citations=citations,
            index_version=index.version,
        )


def same_answer(a: str, b: str) -> bool:
    """Two spans give the same answer when their normalized words are equal or one contains the
    other ("Southern Spear" and "Southern Spear Operation"), so each supporting article is cited."""
    na, nb = normalize_answer(a) or a.strip(), normalize_answer(b) or b.strip()
    if not na or not nb:
        return False
    return na == nb or f" {na} " in f" {nb} " or f" {nb} " in f" {na} "


def span_citation(span: ReadSpan, index: IndexVersion) -> Citation:
    """A citation of the span, trimmed of surrounding spaces and punctuation, cut from the article."""
    text = index.articles[span.passage.file].text
    start, end = span.start, span.end
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        if text[end - 1] in ")]”’\"'" and _opens_inside(text, start, end):
            break
        end -= 1
    if start == end:
        start, end = span.start, span.end
    p = span.passage
    return Citation(
        file=p.file, start=start, end=end, quote=text[start:end], passage=text[p.start : p.end],
        passage_start=p.start, passage_end=p.end, title=p.title, score=round(span.confidence, 4),
    )


def passage_citation(p: Passage, index: IndexVersion) -> Citation:
    text = index.articles[p.file].text
    return Citation(
        file=p.file, start=p.start, end=p.end, quote=text[p.start : p.end], passage=text[p.start : p.end],
        passage_start=p.start, passage_end=p.end, title=p.title,
    )


def _opens_inside(text: str, start: int, end: int) -> bool:
    """Keep a closing bracket/quote whose opening one is inside the span, e.g. 'Caracas (Venezuela)'."""
    pairs = {")": "(", "]": "[", "”": "“", "’": "‘", '"': '"', "'": "'"}
    closing = text[end - 1]
    inner = text[start : end - 1]
    return pairs[closing] in inner
