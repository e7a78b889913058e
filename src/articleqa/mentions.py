"""Names and numbers: what a question mentions, and whether an article mentions them too.

A question that names something its answer's article never mentions is about something else: "What
was Kofi Annan the Secretary General of?" asked of an article about Ban Ki-moon, "Who is the
president of Brazil?" of articles about Venezuela. The reader still finds a span of the right type
there (SQuAD 2.0's unanswerable questions are written exactly so: a name, year or number swapped), so
the answer stage refuses such an answer unless the reader is sure of it (``articleqa.answer``), and
training swaps names the same way to make unanswerable twins (``articleqa.training.negatives``).

Example::

    mentions("When did Operation Absolute Resolve start in 2026?")   # [(9, 35, 'Operation Absolute Resolve'), (45, 49, '2026')]
    unmatched_mentions("Who is the president of Brazil?", article_text)   # ['Brazil'] unless the article names it
"""

from __future__ import annotations

import functools
import re
import unicodedata

# A name (capitalised words, allowing "of"/"the"/"de" inside) or a number (a year is its own kind).
_MENTION = re.compile(
    r"(?<![\w-])(?:[A-Z][\w'’.-]*[a-zA-Z](?:\s+(?:(?:of|the|de|von|van|del)\s+)*[A-Z][\w'’.-]*[a-zA-Z])*|\d[\d,.]*\d|\d)\b"
)
_NOT_NAMES = frozenset(
    "What Which Who Whom Whose When Where Why How The A An In On At Of For By With From To And Or But If "
    "During After Before Since Under Over Between Besides Along According Is Was Were Are Did Do Does Has Have Had "
    "Can Could Would Should Will It Its This That These Those There Their They He She His Her Name".split()
)
_LINKS = frozenset("of the de von van del and".split())


def kind(mention: str) -> str:
    """ "name", "year" or "number"."""
    if mention[0].isdigit():
        return "year" if re.fullmatch(r"1\d{3}|20\d{2}", mention) else "number"
    return "name"


def mentions(text: str, mid_sentence: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, text) of the names and numbers in ``text``; a leading question word or sentence
    opener ("In June" -> "June") is dropped, and so is a mention opening the text. With
    ``mid_sentence`` only those not opening a sentence (a capital there says nothing: "Specifically, ...")."""
    out = []
    for m in _MENTION.finditer(text):
        start, words = m.start(), m.group().split()
        while words and words[0] in _NOT_NAMES:
            start = text.index(words[1], start + len(words[0])) if len(words) > 1 else m.end()
            words = words[1:]
        if not words:
            continue
        before = text[:start].rstrip()
        opens_sentence = not before or before[-1] in '.!?:;"“('
        if start == 0 or (mid_sentence and opens_sentence):
            continue
        out.append((start, m.end(), text[start : m.end()]))
    return out


def _words(text: str) -> list[str]:
    """Lower-cased, accents folded, possessive 's, dots and thousands commas dropped ("U.S." -> "us")."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()
    text = re.sub(r"['’]s\b", "", text).replace(".", "").replace(",", "")
    return re.findall(r"\w+", text)


@functools.lru_cache(maxsize=512)
def _vocabulary(text: str) -> tuple[frozenset, frozenset]:
    words = _words(text)
    # a word of 5+ letters matches on its first five ("Saharan" ~ "Sahara", "Metacritics" ~ "Metacritic");
    # a number also without a trailing s ("1950s")
    stems = {w[:5] for w in words if len(w) >= 5} | {w[:-1] for w in words if w[:1].isdigit() and w.endswith("s")}
    return frozenset(words), frozenset(stems)


def unmatched_mentions(question: str, article: str) -> list[str]:
    """The names and numbers of ``question`` that ``article`` never mentions: a mention is matched
    when every word of it (bar "of", "the", ...) occurs in the article, accents, case and possessives
    aside, a word of five letters or more by its first five."""
    words, stems = _vocabulary(article)
    out = []
    for _, _, mention in mentions(question):
        for w in _words(mention):
            if w in _LINKS or w in words or (w[:1].isdigit() and w in stems) or (len(w) >= 5 and w[:5] in stems):
                continue
            out.append(mention)
            break
    return out
