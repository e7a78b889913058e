"""How the "not found" threshold is chosen: the refusal budget and the expected-F1 rule, on made-up
margins (exact expectations) and through real retrieval with the shipped reader."""

import numpy as np
import pytest
from conftest import READER, squad_file

from articleqa.training.evaluate import best_threshold, budget_threshold, calibrate_pipeline
from articleqa.training.squad import load_squad


def _refused(margins, impossible, t):
    return float((margins[~impossible] <= t).mean())


def test_the_refusal_budget_refuses_the_lowest_answerable_margins_and_no_more():
    margins = np.array([-3.0, -1.0, 0.0, 2.0, 5.0, -4.0, -2.5, 1.0])
    impossible = np.array([False] * 5 + [True] * 3)
    assert budget_threshold(margins, impossible, 0.2) == -3.0  # one of five may be refused: the -3
    assert budget_threshold(margins, impossible, 0.4) == -1.0
    assert budget_threshold(margins, impossible, 0.39) == -3.0
    t0 = budget_threshold(margins, impossible, 0.0)
    assert t0 < -3.0 and _refused(margins, impossible, t0) == 0.0
    # refusal share never above the budget, threshold never lower for a larger budget
    rng = np.random.default_rng(0)
    m, imp = rng.normal(size=400).round(1), rng.random(400) < 0.4  # rounded: many ties
    last = -np.inf
    for budget in (0.0, 0.03, 0.06, 0.1, 0.3):
        t = budget_threshold(m, imp, budget)
        assert _refused(m, imp, t) <= budget and t >= last
        last = t
    # ties: two answerable at -1.0 and a budget for one refuses neither
    assert (
        _refused(
            np.array([-1.0, -1.0, 2.0, 3.0]),
            np.zeros(4, bool),
            budget_threshold(np.array([-1.0, -1.0, 2.0, 3.0]), np.zeros(4, bool), 0.25),
        )
        == 0.0
    )


def test_the_expected_f1_rule_refuses_more_when_more_questions_have_no_answer():
    rng = np.random.default_rng(1)
    impossible = rng.random(600) < 0.5
    margins = np.where(impossible, rng.normal(-1, 2, 600), rng.normal(2, 2, 600))
    correct = np.where(impossible, 0.0, (rng.random(600) < 0.8).astype(float))
    few, many = best_threshold(margins, correct, impossible, 0.1), best_threshold(margins, correct, impossible, 0.6)
    assert few < many


@pytest.mark.slow
def test_refusal_budget_through_real_retrieval_with_the_shipped_reader():
    from articleqa.reader import ExtractiveReader

    articles = load_squad(squad_file("squad-dev-v2.0-36.json"))[:3]
    questions = [q for a in articles[:1] for q in a.questions][:80]
    assert any(q.is_impossible for q in questions) and not all(q.is_impossible for q in questions)
    reader = ExtractiveReader(str(READER), quantize="none", backend="torch")
    reader.warm_up()
    runs = {
        b: calibrate_pipeline(reader.tokenizer, reader.model, articles, questions, 30, threshold=None, refusal_budget=b)
        for b in (0.05, 0.3)
    }
    for budget, cal in runs.items():
        assert cal["refusal_budget"] == budget and cal["wrongly_refused"] <= 100 * budget
        assert cal["no_answer"]["threshold"] == cal["calibration"]["threshold"]
    # a larger budget refuses more: never fewer of the unanswerable questions
    assert runs[0.3]["calibration"]["threshold"] > runs[0.05]["calibration"]["threshold"]
    assert runs[0.3]["no_answer"]["recall"] >= runs[0.05]["no_answer"]["recall"]
