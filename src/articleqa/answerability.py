"""Answerability: should the assistant answer at all? A small logistic model over what the pipeline has
already computed decides "not found", instead of the best no-answer margin alone.

The margin (span score minus the reader's [CLS] no-answer score) is one number from one passage. Whether
the articles answer a question also shows in how the read passages agree (a second passage with the same
span, how many clear the reader's threshold), in retrieval (how high the answer's passage ranks in dense
and BM25 retrieval), and in the words (how many of the question's content words the answer's sentence
holds; a question naming something the passage never mentions). :func:`answerability_features` turns
one question's spans and retrieval hits into those numbers; :class:`AnswerabilityModel` scores them
(standardised features, a linear model: no extra reading, microseconds a question). It is fitted by
``articleqa fit-answerability`` (``articleqa.training.fit_answerability``) on the pipeline's own traces of
the reader's training articles with their SQuAD 2.0 questions, and its threshold is set on the reader's
validation articles; it ships beside the reader as ``answerability.json``. A reader without that file
(any Hugging Face QA model) refuses on the margin alone, as before.

Example::

    model = AnswerabilityModel.load("models/reader")       # None when the reader ships none
    judged = model.judge(question, spans, hits, reader_threshold=-0.45)
    refuse = judged.score <= model.threshold
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from articleqa.text import normalize_answer
from articleqa.types import Judgement, ReadSpan, ScoredPassage

#: beside the reader's weights
ANSWERABILITY_FILE = "answerability.json"

#: the features, in the order the model's coefficients follow
FEATURES = (
    "margin",  # best span's no-answer margin over the read passages
    "second_margin",  # the best margin of any other read passage
    "mean_margin",  # mean margin over the read passages
    "above_threshold",  # read passages whose margin clears the reader's threshold
    "passages_read",
    "agreeing",  # other read passages whose span is the same answer
    "log_rank",  # ln(retrieval rank) of the answer's passage
    "log_dense_rank",  # ln(dense rank), 60 where dense retrieval did not return it
    "log_bm25_rank",  # ln(BM25 rank), 60 where BM25 did not return it
    "top_fused",  # retrieval's score of its first passage
    "answer_fused",  # retrieval's score of the answer's passage
    "question_in_passage",  # share of the question's content words found in the answer's passage
    "question_in_sentence",  # ... in the sentence holding the span
    "names_missing",  # capitalised question words the passage never mentions
    "span_in_question",  # share of the span's words that the question already holds
    "span_words",
    "question_words",  # content words of the question
    "negated_question",  # not / never / n't / no ...
    "type_mismatch",  # how many / when / who asked, and the span has no digit / no digit / no capital
)

_NO_RANK = 60  # candidates per retriever in hybrid retrieval: a rank past them
_NO_MARGIN = -20.0  # stands for "no other passage read"
_STOP = frozenset(
    "a an the of in on at to for from by with and or is are was were be been being do does did what which who whom "
    "whose when where why how that this these those it its as into than then there their they he she his her him we "
    "you i not no can could would should may might will shall has have had about after before during over under "
    "between while if so such most more much many one other any some all each per also".split()
)
_WORD = re.compile(r"\w+")
_NEGATION = re.compile(r"\b(?:not|never|no|none|without|cannot)\b|n't\b", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _stem(word: str) -> str:
    return word[:5]  # crude, but "strikes"/"strike", "ordered"/"order" meet


def _content(text: str) -> list[str]:
    return [w for w in _words(text) if w not in _STOP]


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` around [start, end)."""
    before = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start))
    after = re.search(r"\.\s|\n", text[end:])
    return text[before + 1 if before >= 0 else 0 : end + after.end() if after else len(text)]


def _question_type(question: str) -> str:
    q = question.lower()
    if re.search(r"\bhow (?:many|much)\b|\bwhat (?:percentage|number|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (?:year|date|century|decade|month|day|time)\b|\bwhich (?:year|century)\b", q):
        return "date"
    if re.search(r"\bwho(?:m|se)?\b", q):
        return "person"
    return "other"


def answerability_features(
    question: str, spans: Sequence[ReadSpan], hits: Sequence[ScoredPassage], reader_threshold: float
) -> dict[str, float]:
    """The numbers :class:`AnswerabilityModel` weighs, from one question's read spans and retrieval hits."""
    read = sorted((s for s in spans if s.margin != float("-inf")), key=lambda s: -s.margin)
    rank = {h.passage.id: (i, h) for i, h in enumerate(hits, 1)}
    question_words = _content(question)
    names = re.findall(r"\b[A-Z][\w'-]+", question)[1:]  # the first word is capitalised anyway
    kind = _question_type(question)
    f = dict.fromkeys(FEATURES, 0.0)
    f["question_words"] = float(len(question_words))
    f["negated_question"] = float(bool(_NEGATION.search(question)))
    f["top_fused"] = float(hits[0].score) if hits else 0.0
    if not read:
        f.update(
            margin=_NO_MARGIN,
            second_margin=_NO_MARGIN,
            mean_margin=_NO_MARGIN,
            log_rank=math.log(_NO_RANK),
            log_dense_rank=math.log(_NO_RANK),
            log_bm25_rank=math.log(_NO_RANK),
        )
        return f
    best = read[0]
    f["margin"] = best.margin
    f["second_margin"] = read[1].margin if len(read) > 1 else _NO_MARGIN
    f["mean_margin"] = sum(s.margin for s in read) / len(read)
    f["above_threshold"] = float(sum(s.margin > reader_threshold for s in read))
    f["passages_read"] = float(len(read))
    answer = normalize_answer(best.text)
    f["agreeing"] = float(sum(normalize_answer(s.text) == answer for s in read[1:]))
    position, hit = rank.get(best.passage.id, (_NO_RANK, None))
    ranks = hit.ranks if hit is not None else {}
    f["log_rank"] = math.log(position)
    f["log_dense_rank"] = math.log(min(ranks.get("dense") or _NO_RANK, _NO_RANK))
    f["log_bm25_rank"] = math.log(min(ranks.get("bm25") or _NO_RANK, _NO_RANK))
    f["answer_fused"] = float(hit.score) if hit is not None else 0.0
    text = best.passage.text
    in_passage = {_stem(w) for w in _content(text)}
    sentence = _sentence(text, best.start - best.passage.start, best.end - best.passage.start)
    in_sentence = {_stem(w) for w in _content(sentence)}
    n = max(len(question_words), 1)
    f["question_in_passage"] = sum(_stem(w) in in_passage for w in question_words) / n
    f["question_in_sentence"] = sum(_stem(w) in in_sentence for w in question_words) / n
    lowered = text.lower()
    f["names_missing"] = float(sum(name.lower() not in lowered for name in names))
    span_words = _words(best.text)
    asked = {_stem(w) for w in question_words}
    f["span_words"] = float(len(span_words))
    f["span_in_question"] = sum(_stem(w) in asked for w in span_words) / max(len(span_words), 1)
    has_digit = bool(re.search(r"\d", best.text))
    f["type_mismatch"] = float(
        (kind in ("number", "date") and not has_digit) or (kind == "person" and not best.text[:1].isupper())
    )
    return f


def linear_score(numbers: dict, f: dict[str, float]) -> float:
    """A standardised linear model's log-odds (``numbers``: mean, scale, coef, intercept over FEATURES)."""
    return numbers["intercept"] + sum(
        c * (f[k] - m) / (s or 1.0) for k, m, s, c in zip(FEATURES, numbers["mean"], numbers["scale"], numbers["coef"])
    )


@dataclass
class AnswerabilityModel:
    """A logistic model over :data:`FEATURES`: ``score`` is the log-odds that the articles answer.

    ``threshold``: at or below it the pipeline answers "not found". ``retrieval`` is the retrieval the
    model was fitted with (the fused scores and ranks mean something else under another one: the
    pipeline then falls back to the margin). ``fitted`` records how it was made and what it measured.

    ``confidence_model`` (optional) is a second logistic model over the same features for the answer the
    assistant gives being right (F1 >= 0.5), recalibrated on the validation articles (``calibration``:
    scale and bias on its log-odds) and with the ``sure`` point chosen there: an answer below it is
    shown tentative. Its numbers: ``mean``, ``scale``, ``coef``, ``intercept``, ``calibration``, ``sure``."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    retrieval: str = "hybrid"
    fitted: dict = field(default_factory=dict)
    confidence_model: dict | None = None

    def __post_init__(self) -> None:
        if list(self.features) != list(FEATURES):
            raise ValueError(f"answerability model features {self.features} are not this version's {list(FEATURES)}")
        for part in (self.__dict__, self.confidence_model):
            if part is not None and not len(part["mean"]) == len(part["scale"]) == len(part["coef"]) == len(FEATURES):
                raise ValueError("answerability model: mean, scale and coef must each have one value per feature")

    def score_features(self, f: dict[str, float]) -> float:
        return linear_score(self.__dict__, f)

    def confidence_features(self, f: dict[str, float]) -> float | None:
        """P(the answer given is right) from ``confidence_model``, or None where the model has none."""
        if self.confidence_model is None:
            return None
        cal = self.confidence_model["calibration"]
        z = cal["scale"] * linear_score(self.confidence_model, f) + cal["bias"]
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    @property
    def sure(self) -> float | None:
        """The confidence from which an answer is shown sure, where the model has a confidence part."""
        return None if self.confidence_model is None else float(self.confidence_model["sure"])

    def judge(
        self, question: str, spans: Sequence[ReadSpan], hits: Sequence[ScoredPassage], reader_threshold: float
    ) -> Judgement:
        """Both parts' word on one question, from one computation of its features."""
        f = answerability_features(question, spans, hits, reader_threshold)
        return Judgement(self.score_features(f), self.confidence_features(f))

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / ANSWERABILITY_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> "AnswerabilityModel | None":
        """The model shipped beside a reader, or None (no file: a reader from elsewhere)."""
        path = Path(model_dir) / ANSWERABILITY_FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text(encoding="utf-8")))
