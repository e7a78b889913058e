"""Answer: turn the reader's spans into an ``Answer`` with citations, or an honest "not found".

An answer is given when the best no-answer margin clears the reader's calibrated threshold. Among the
spans that clear it, the answer is the one with the highest margin minus ``rank_prior`` x ln(retrieval
rank): a span read from the first retrieved passage needs a smaller lead than one from the fifth, as
reader and retriever scores are combined in BERTserini (Yang et al. 2019). Every other
passage whose best span says the same thing (same normalized text) is cited too, so an answer
supported by several articles cites each. Quotes are always cut from the indexed article text, so
``quote == text_of(file)[start:end]`` holds by construction.

Example::

    answer = AnswerBuilder(threshold=reader.calibration.threshold).build(question, spans, hits, index)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from articleqa.mentions import unmatched_mentions
from articleqa.protocols import AnswerabilityJudge, IndexVersion
from articleqa.text import normalize_answer
from articleqa.types import Answer, Citation, Disagreement, Passage, ReadSpan, ScoredPassage, Trace, TracePassage

NOT_FOUND = "Not found in the articles."
TENTATIVE = "The articles may not say; closest match:"
_TRIM = " \t\n\r\f\v.,;:!?\"'“”‘’«»()[]"


class AnswerBuilder:
    """Args:
    threshold: no-answer margin (span score minus [CLS] score) an answer must exceed.
    max_citations: most citations per answer.
    context_passages: closest passages shown when the answer is not found.
    max_disagreements: most other answers reported as "sources differ".
    disagreement_ratio: another article's different answer is reported when its margin clears the
        threshold, its confidence is at least this share of the main answer's and it is not tentative
        itself (``sure_confidence``); below that it is the reader picking a different fact of a passage
        that does not answer ("colectivos" for a question about the drug network, "Cartel de los Soles"
        for one about the militias), not a source that disagrees. 0.7 since stage 17's reader: read to the
        end, the seed articles give "CNN" (0.57 against "the AP" 0.91: 0.62) and "Cartel de los Soles" (0.51
        against "colectivos" 0.89: 0.57) from passages that do not answer; articles that truly disagree
        (tests/test_verify_and_disagreements.py: 2001 against 1998) stand near 1.
    sure_confidence: an answer whose confidence is below this is ``tentative``: the faces show it as "the
        articles may not say; closest match: ..." rather than as an answer. The confidence is the judge's
        P(the answer given is right) where the judge has one (the judgement's confidence), else the span's
        calibrated P(answer right | margin). None (the default): the judge's ``sure`` point where it has
        one (chosen on validation articles for how often a sure answer may be wrong), else 0.5 (more
        likely wrong than right). Span-level rules (``check_mentions``, disagreements) compare the spans'
        own confidences with ``sure_confidence``, 0.5 where it is None.
    rank_prior: weight of the retrieval rank when choosing between spans that clear the threshold
        (score = margin - rank_prior * ln(rank)); 0 ranks by margin alone. It never decides a refusal.
    check_mentions: refuse an answer below ``sure_confidence`` when the question names something (a
        name, year or number) that the answer's article never mentions ("not found", rule
        ``unmatched_mention``); a sure answer is given regardless (the names may be spelled otherwise).
    judge: an answerability model (``articleqa.answerability``): when given, it decides whether to answer
        at all (its score over the margins, retrieval ranks and question words against its own threshold;
        rule ``unanswerable``) instead of the best margin against ``threshold``. It may accept a question
        whose best margin is below ``threshold``: the answer is then the highest-margin span, shown as
        tentative when its confidence is below ``sure_confidence``. ``threshold`` still ranks the spans.
    """

    def __init__(
        self,
        threshold: float = 0.0,
        max_citations: int = 5,
        context_passages: int = 3,
        max_disagreements: int = 3,
        disagreement_ratio: float = 0.7,
        sure_confidence: float | None = None,
        rank_prior: float = 0.0,
        check_mentions: bool = True,
        judge: AnswerabilityJudge | None = None,
    ):
        self.threshold = threshold
        self.judge = judge
        self.check_mentions = check_mentions
        self.rank_prior = rank_prior
        self.sure_confidence = 0.5 if sure_confidence is None else sure_confidence
        #: the point from which the answer shown is sure (on the judge's confidence where it has one)
        self.shown_sure = sure_confidence
        if sure_confidence is None:
            judge_sure = getattr(judge, "sure", None)
            self.shown_sure = 0.5 if judge_sure is None else judge_sure
        self.disagreement_ratio = disagreement_ratio
        self.max_citations = max_citations
        self.context_passages = context_passages
        self.max_disagreements = max_disagreements

    def build(self, question: str, spans: list[ReadSpan], hits: list[ScoredPassage], index: IndexVersion) -> Answer:
        """The answer (or "not found") from the reader's spans. ``answer.trace`` is left to ``explain``."""
        return self.decide(question, spans, hits, index).answer

    def decide(
        self, question: str, spans: list[ReadSpan], hits: list[ScoredPassage], index: IndexVersion
    ) -> "Decision":
        """The answer together with the rule that decided it and each span's role (for ``explain``)."""
        rank = {h.passage.id: i for i, h in enumerate(hits, 1)}
        # refusal is decided by the best margin alone; the rank prior only chooses between answers
        top = max(spans, key=lambda s: s.margin, default=None)
        sure = [s for s in spans if s.margin > self.threshold]
        ranked = sorted(sure, key=lambda s: -(s.margin - self.rank_prior * math.log(rank.get(s.passage.id, 1))))
        judged, judgement = None, None
        if self.judge is not None and top is not None:
            judgement = self.judge.judge(question, spans, hits, self.threshold)
            judged = judgement.score
            ranked = (ranked or [top]) if judged > self.judge.threshold else []
        best = ranked[0] if ranked else top
        roles: dict[int, str] = {}
        if best is None:
            rule = "no_passages"
        elif judged is not None and not ranked:
            rule = "unanswerable"
        elif judged is None and best.margin <= self.threshold:
            rule = "below_threshold"
        elif not normalize_answer(best.text) and not best.text.strip(_TRIM):
            rule = "empty_span"
        else:
            rule = "answered"
        unmatched: list[str] = []
        if rule == "answered" and self.check_mentions and best.confidence < self.sure_confidence:
            unmatched = unmatched_mentions(question, index.articles[best.passage.file].text)
            if unmatched:
                rule = "unmatched_mention"
        if rule != "answered":
            for s in spans:
                roles[id(s)] = "below_threshold" if s.margin <= self.threshold else "other_answer"
            answer = Answer(
                question=question,
                answer=None,
                found=False,
                confidence=round(best.confidence, 4) if best else 0.0,
                context=[passage_citation(h.passage, index) for h in hits[: self.context_passages]],
                message=NOT_FOUND
                + (f" ({best.passage.file} never mentions {_quoted(unmatched)}.)" if unmatched else ""),
                index_version=index.version,
            )
            return Decision(answer, rule, best, roles, unmatched, judged)
        shown = judgement.confidence if judgement is not None else None
        confidence = best.confidence if shown is None else shown
        citations: list[Citation] = []
        seen: set[tuple[str, int, int]] = set()
        others: list[ReadSpan] = []
        for span in spans:
            if span.margin <= self.threshold:
                roles[id(span)] = "below_threshold"
        for span in ranked:
            if not same_answer(span.text, best.text):
                others.append(span)
                continue
            roles[id(span)] = "answer" if span is best else "supports"
            cite = span_citation(span, index)
            if (cite.file, cite.start, cite.end) in seen or len(citations) >= self.max_citations:
                continue  # overlapping passages read the same span twice
            seen.add((cite.file, cite.start, cite.end))
            citations.append(cite)
        # a differing answer must be one the assistant would give sure (not tentative) and close to the main one
        floor = max(best.confidence * self.disagreement_ratio, self.sure_confidence)
        disagreements = self._disagreements(others, {c.file for c in citations}, floor, index, roles)
        answer = Answer(
            question=question,
            answer=citations[0].quote,
            found=True,
            confidence=round(confidence, 4),
            tentative=confidence < self.shown_sure,
            message=TENTATIVE if confidence < self.shown_sure else "",
            citations=citations,
            disagreements=disagreements,
            index_version=index.version,
        )
        return Decision(answer, rule, best, roles, answerability=judged, shown_sure=self.shown_sure)

    def _disagreements(
        self, others: list[ReadSpan], answer_files: set[str], min_confidence: float, index: IndexVersion, roles: dict
    ) -> list[Disagreement]:
        """Other confident answers from articles that do not support the main answer. An article
        giving two different spans is the reader hesitating, not sources differing."""
        groups: list[list[ReadSpan]] = []
        for span in others:  # best first
            if span.passage.file in answer_files or span.confidence < min_confidence or not normalize_answer(span.text):
                roles[id(span)] = "other_answer"
                continue
            roles[id(span)] = "differs"
            for group in groups:
                if same_answer(span.text, group[0].text):
                    group.append(span)
                    break
            else:
                groups.append([span])
        result = []
        for group in groups[: self.max_disagreements]:
            cites, seen = [], set()
            for span in group:
                cite = span_citation(span, index)
                if (cite.file, cite.start, cite.end) not in seen and len(cites) < self.max_citations:
                    seen.add((cite.file, cite.start, cite.end))
                    cites.append(cite)
            result.append(
                Disagreement(answer=cites[0].quote, confidence=round(group[0].confidence, 4), citations=cites)
            )
        return result


@dataclass
class Decision:
    """What ``AnswerBuilder.decide`` concluded: the answer, the rule and each span's role by ``id``."""

    answer: Answer
    rule: str
    best: ReadSpan | None
    roles: dict[int, str]
    unmatched: list[str] = field(default_factory=list)  # rule unmatched_mention: what the article never mentions
    answerability: float | None = None  # the judge's score, where one decided
    shown_sure: float | None = None  # an answer given: the confidence from which it is shown sure

    def trace(
        self,
        question: str,
        retrieval_query: str,
        retriever: str,
        threshold: float,
        spans: list[ReadSpan],
        hits: list[ScoredPassage],
        judge_threshold: float | None = None,
    ) -> Trace:
        best = self.best
        judged = (
            f"; the answerability model scored {self.answerability:.2f}, "
            f"{'above' if self.rule != 'unanswerable' else 'not above'} its threshold {judge_threshold:.2f}"
            if self.answerability is not None and judge_threshold is not None
            else ""
        )
        explanation = {
            "no_passages": "retrieval returned no passages, so there was nothing to read",
            "below_threshold": (
                f"the best span ({best.text!r} in {best.passage.file}) scored a margin of {best.margin:.2f}, "
                f"not above the threshold {threshold:.2f}: not found"
                if best
                else ""
            ),
            "unanswerable": (
                f"the best span ({best.text!r} in {best.passage.file}) scored a margin of {best.margin:.2f}{judged} "
                "(margins, agreement between passages, retrieval ranks, question words found): not found"
                if best
                else ""
            ),
            "empty_span": "the best span is only punctuation or spaces: not found",
            "unmatched_mention": (
                f"the best span ({best.text!r} in {best.passage.file}) scored a margin of {best.margin:.2f}, above the "
                f"threshold {threshold:.2f} but unsure (confidence {best.confidence:.2f}), and the question names "
                f"{_quoted(self.unmatched)}, which that article never mentions: not found"
                if best
                else ""
            ),
            "answered": (
                (
                    f"the best span ({best.text!r} in {best.passage.file}) scored a margin of {best.margin:.2f}{judged}"
                    if judged
                    else f"the best span ({best.text!r} in {best.passage.file}) scored a margin of "
                    f"{best.margin:.2f}, above the threshold {threshold:.2f}"
                )
                if best
                else ""
            ),
        }[self.rule]
        if self.rule == "answered" and self.shown_sure is not None:
            a = self.answer
            explanation += (
                f"; confidence {a.confidence:.2f}, {'below' if a.tentative else 'at or above'} the sure point "
                f"{self.shown_sure:.2f}: shown {'tentative' if a.tentative else 'sure'}"
            )
        top = max(spans, key=lambda s: s.margin, default=None)
        if self.rule == "answered" and top is not None and top is not best and not same_answer(top.text, best.text):
            rank = {h.passage.id: i for i, h in enumerate(hits, 1)}
            explanation += (
                f"; chosen over {top.text!r} (margin {top.margin:.2f}, passage {rank.get(top.passage.id)}) "
                f"as its passage ranks higher in retrieval ({rank.get(best.passage.id)})"
            )
        if len(spans) < len(hits) and best is not None:
            explanation += (
                f"; {len(hits) - len(spans)} retrieved passage(s) were not read (early exit): the first "
                "passages already held a sure span, and their articles had been read"
            )
        by_passage = {s.passage.id: s for s in spans}
        rows = []
        for rank, hit in enumerate(hits, 1):
            p = hit.passage
            span = by_passage.get(p.id)
            margin = None if span is None or span.margin == float("-inf") else round(span.margin, 4)
            rows.append(
                TracePassage(
                    rank=rank,
                    file=p.file,
                    title=p.title,
                    passage_start=p.start,
                    passage_end=p.end,
                    dense_rank=hit.ranks.get("dense"),
                    bm25_rank=hit.ranks.get("bm25"),
                    fused_score=round(hit.score, 6),
                    span=span.text if span else "",
                    span_start=span.start if span else p.start,
                    span_end=span.end if span else p.start,
                    margin=margin,
                    confidence=round(span.confidence, 4) if span else 0.0,
                    role=self.roles.get(id(span), "below_threshold") if span else "not_read",
                )
            )
        return Trace(
            question=question,
            retrieval_query=retrieval_query,
            retriever=retriever,
            threshold=round(threshold, 4),
            answerability=None if self.answerability is None else round(self.answerability, 4),
            answerability_threshold=None if judge_threshold is None else round(judge_threshold, 4),
            rule=self.rule,
            explanation=explanation,
            passages=rows,
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
        file=p.file,
        start=start,
        end=end,
        quote=text[start:end],
        passage=text[p.start : p.end],
        passage_start=p.start,
        passage_end=p.end,
        score=round(span.confidence, 4),
        **_article_fields(index, p.file, span.start),
    )


def passage_citation(p: Passage, index: IndexVersion) -> Citation:
    text = index.articles[p.file].text
    return Citation(
        file=p.file,
        start=p.start,
        end=p.end,
        quote=text[p.start : p.end],
        passage=text[p.start : p.end],
        passage_start=p.start,
        passage_end=p.end,
        **_article_fields(index, p.file, p.start),
    )


def _article_fields(index: IndexVersion, file: str, start: int) -> dict:
    """Title, date, author, URL and content hash of the cited article, as indexed, and the page a
    span starting at ``start`` is on (PDFs)."""
    a = index.articles[file]
    return {
        "title": a.title,
        "date": a.date,
        "sha256": a.sha256,
        "author": a.author,
        "url": a.url,
        "page": a.page_at(start),
    }


def _opens_inside(text: str, start: int, end: int) -> bool:
    """Keep a closing bracket/quote whose opening one is inside the span, e.g. 'Caracas (Venezuela)'."""
    pairs = {")": "(", "]": "[", "”": "“", "’": "‘", '"': '"', "'": "'"}
    closing = text[end - 1]
    inner = text[start : end - 1]
    return pairs[closing] in inner


def _quoted(names: list[str]) -> str:
    return ", ".join(f"“{n}”" for n in names)
