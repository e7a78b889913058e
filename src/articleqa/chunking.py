"""Chunk: sentence-aware passages of roughly 100-200 words with overlap, with exact article offsets.

Sentences come from pysbd (rule-based sentence boundary detection) run per paragraph, then are
packed greedily into passages of about ``target_words``; consecutive passages share up to
``overlap_words`` of whole trailing sentences. A passage never crosses articles, and
``passage.text == article.text[passage.start:passage.end]`` always holds.

Example::

    passages = SentenceChunker(target_words=150, overlap_words=40).chunk(articles)
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cached_property

from articleqa.types import Article, Passage

_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=\s*(?:\n\s*\n|\Z))", re.S)
_WORD = re.compile(r"\S+")
_INFORMATION_SEPARATORS = {c: " " for c in range(0x1C, 0x20)}  # whitespace to Python, not to int()


@dataclass(frozen=True)
class ChunkSettings:
    """Recorded in the index manifest: a change forces a full rebuild."""

    target_words: int = 150
    overlap_words: int = 40
    max_words: int = 200
    splitter: str = "pysbd-0.3"


class SentenceChunker:
    def __init__(self, target_words: int = 150, overlap_words: int = 40, max_words: int | None = None):
        if target_words < 10:
            raise ValueError("target_words must be at least 10")
        if not 0 <= overlap_words < target_words:
            raise ValueError("overlap_words must be >= 0 and smaller than target_words")
        self.settings = ChunkSettings(
            target_words=target_words,
            overlap_words=overlap_words,
            max_words=max_words or max(target_words + 50, int(target_words * 4 / 3)),
        )

    def chunking_settings(self) -> dict:
        """Recorded in the index manifest; a change forces a full rebuild."""
        return asdict(self.settings)

    @cached_property
    def _segmenter(self):
        import pysbd

        return pysbd.Segmenter(language="en", clean=False, char_span=True)

    def chunk(self, articles: list[Article], start_id: int = 0) -> list[Passage]:
        """Passages of all articles, numbered from ``start_id``."""
        passages: list[Passage] = []
        for article in articles:
            for start, end in self.spans(article.text):
                passages.append(
                    Passage(
                        id=start_id + len(passages),
                        file=article.file,
                        start=start,
                        end=end,
                        text=article.text[start:end],
                        title=article.title,
                    )
                )
        return passages

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character spans of the passages of one text."""
        units = self._units(text)
        if not units:
            return []
        s = self.settings
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(units):
            words = 0
            j = i
            while j < len(units) and (words < s.target_words or j == i):
                if j > i and words + units[j][2] > s.max_words:
                    break
                words += units[j][2]
                j += 1
            spans.append((units[i][0], units[j - 1][1]))
            if j >= len(units):
                break
            # step back over whole trailing sentences worth at most overlap_words
            back, k = 0, j
            while k - 1 > i and back + units[k - 1][2] <= s.overlap_words:
                back += units[k - 1][2]
                k -= 1
            i = k
        return spans

    def _units(self, text: str) -> list[tuple[int, int, int]]:
        """Sentences as (start, end, words); sentences longer than max_words are cut by words."""
        units: list[tuple[int, int, int]] = []
        for para in _PARAGRAPH.finditer(text):
            for start, end in self._sentences(text, para.start(), para.end()):
                words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
                if not words:
                    continue
                limit = self.settings.max_words
                for w in range(0, len(words), limit):
                    piece = words[w : w + limit]
                    units.append((piece[0][0], piece[-1][1], len(piece)))
        return units

    def _sentences(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Sentence spans inside text[start:end], trimmed of surrounding whitespace. pysbd's own
        offsets are checked against the text; if they disagree the sentence is located by search."""
        # pysbd reads "\x1c".."\x1f" as spaces (re's \s) but then int()s them with the digits of a list
        # number ("\x1f0. ") and raises: it gets them as plain spaces, same length, same offsets
        para = text[start:end].translate(_INFORMATION_SEPARATORS)
        out: list[tuple[int, int]] = []
        cursor = 0
        for seg in self._segmenter.segment(para):
            sent = seg.sent
            if para[seg.start : seg.end] == sent:
                s0 = seg.start
            else:
                found = para.find(sent.strip(), cursor)
                if found < 0:
                    continue
                s0 = found
            stripped = sent.strip()
            if not stripped:
                continue
            s0 = para.find(stripped, s0)
            if s0 < 0:
                continue
            out.append((start + s0, start + s0 + len(stripped)))
            cursor = s0 + len(stripped)
        if not out:
            out = [(start, end)]
        # close gaps pysbd may leave, so no text of the paragraph is unreachable
        merged = []
        for k, (a, b) in enumerate(out):
            nxt = out[k + 1][0] if k + 1 < len(out) else end
            tail = text[b:nxt]
            merged.append((a, b + len(tail.rstrip()) if tail.strip() else b))
        return merged
