"""Follow-up questions: make a short or pronoun-laden question self-contained.

"When did it happen?" after "What was the codename of the nighttime operation in Caracas?" (answered
"Operation Absolute Resolve") is retrieved with both questions and the previous answer, and read as
"When did Operation Absolute Resolve happen?": the referring word is replaced by the previous answer.
The answer itself is still a span of the articles.

Example::

    contextualize("Who ordered it?", [Turn("What was the codename of the operation?", "Operation Absolute Resolve")])
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REFERRING = {
    "it",
    "its",
    "he",
    "him",
    "his",
    "she",
    "her",
    "they",
    "them",
    "their",
    "this",
    "that",
    "these",
    "those",
    "there",
    "then",
    "the same",
    "also",
    "else",
}
_FOLLOW_UP_START = re.compile(r"^\s*(and|also|what about|how about|but|so|then)\b", re.I)
_WORDS = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Turn:
    """One earlier exchange: the user's question and the assistant's answer (None if not found)."""

    question: str
    answer: str | None = None


def is_follow_up(question: str) -> bool:
    words = [w.lower() for w in _WORDS.findall(question)]
    return len(words) <= 4 or bool(_FOLLOW_UP_START.match(question)) or any(w in _REFERRING for w in words)


_PRONOUN = re.compile(r"\b(it|he|she|they|him|her|them|this|that|its|his|their)\b", re.I)
_POSSESSIVE = {"its", "his", "their"}


def resolve_references(question: str, history: list[Turn] | None) -> str:
    """The question with its first referring pronoun replaced by the previous answer, if any."""
    if not history or not history[-1].answer or not is_follow_up(question):
        return question
    answer = history[-1].answer.strip()

    def sub(m: re.Match) -> str:
        return f"{answer}'s" if m.group(1).lower() in _POSSESSIVE else answer

    return _PRONOUN.sub(sub, question, count=1)


def contextualize(question: str, history: list[Turn] | None, max_turns: int = 2) -> str:
    """The retrieval query for ``question`` given the earlier turns (most recent last)."""
    if not history or not is_follow_up(question):
        return question
    parts = []
    for turn in history[-max_turns:]:
        parts.append(turn.question.strip())
        if turn.answer:
            parts.append(turn.answer.strip())
    return " ".join([*parts, question.strip()])


_QUESTION_WORDS = {"who", "whom", "whose", "what", "when", "where", "which", "why", "how"}
_FIRST_WORDS = _QUESTION_WORDS | {
    "is",
    "are",
    "was",
    "were",
    "did",
    "does",
    "do",
    "can",
    "could",
    "has",
    "have",
    "had",
    "will",
    "would",
    "should",
    "name",
    "list",
    "tell",
}
_WH = r"(?:who|whom|whose|what|when|where|which|why|how)"
_AUX = r"(?:did|does|do|is|are|was|were|will|would|can|could|has|have|had|should|many|much|long|old|often)"
#: "and" (or ";") then a question word; a bare comma only before a question word and an auxiliary
#: ("..., when did ..."), since ", which flows through Paris" is a relative clause, not a question.
_JOINS = re.compile(rf"\s*(?:[,;]?\s*\band|;)\s+(?={_WH}\b)|\s*,\s+(?={_WH}\s+{_AUX}\b)", re.I)
MIN_PART_WORDS = 3


def split_question(question: str, max_parts: int = 3) -> list[str]:
    """The parts of a question that asks two (or three) things, each a question on its own; otherwise
    ``[question]``.

    A part starts after "and" or ";" with a question word (who, what, when, where, which, why, how),
    or after a bare "," with a question word and an auxiliary ("when did"), and has at least three words, and so does the first part, which must start like a question.
    "Who ordered the strikes, and when did they happen?" -> ["Who ordered the strikes?", "When did
    they happen?"]; "Who are Tom and Jerry?" and "Where and when did it happen?" stay one question.
    """
    words = _WORDS.findall(question)
    if not words or words[0].lower() not in _FIRST_WORDS:
        return [question]
    pieces = _JOINS.split(question)
    if len(pieces) < 2 or len(pieces) > max_parts:
        return [question]
    parts = []
    for piece in pieces:
        piece = piece.strip().rstrip("?").strip().rstrip(",;").strip()
        if len(_WORDS.findall(piece)) < MIN_PART_WORDS:
            return [question]
        parts.append(piece[0].upper() + piece[1:] + "?")
    return parts
