"""Follow-up questions: make a short or pronoun-laden question self-contained *for retrieval*.

"When did it happen?" after "What was the codename of the nighttime operation in Caracas?" retrieves
with both questions and the previous answer, so the right passages come back. The reader still
reads the user's own question against those passages, so the answer comes only from the articles.

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
