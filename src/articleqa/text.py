"""Answer text: the normalization that decides when two answers say the same thing, and the standard
SQuAD metric built on it (exact match and token F1). Used by the answer stage (merging citations of the
same answer), by training and evaluation, and by the benchmarks.

Example::

    normalize_answer("The Southern Spear!")    # 'southern spear'
    best_em_f1("Chris Wright", ["Energy Secretary Chris Wright"])   # (0.0, 0.8)
"""

from __future__ import annotations

import collections
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, strip punctuation and the articles a/an/the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    if not pred_tokens or not truth_tokens:  # SQuAD 2.0: both empty is a match
        return float(pred_tokens == truth_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def best_em_f1(prediction: str, truths: list[str] | tuple[str, ...]) -> tuple[float, float]:
    """EM and F1 against the best of the references; no references means 'no answer' is right."""
    if not truths:
        return (float(prediction == ""), float(prediction == ""))
    return (
        max(exact_match(prediction, t) for t in truths),
        max(f1_score(prediction, t) for t in truths),
    )
