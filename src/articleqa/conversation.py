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
    "it", "its", "he", "him", "his", "she", "her", "they", "them", "their", "this", "that", "these",
    "those", "there", "then", "the same", "also", "else",
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
