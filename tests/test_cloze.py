"""Cloze warm-up questions: exact answer spans, training articles only, no copy of the sentence."""

from conftest import squad_file

from articleqa.training.cloze import cloze_questions
from articleqa.training.squad import load_squad, split_articles


def test_cloze_questions_are_exact_spans_of_training_paragraphs():
    train, val = split_articles(load_squad(squad_file("squad-dev-v1.1-36.json")), 4, seed=0)
    questions = cloze_questions(train, 2000, seed=1)
    assert len(questions) == 2000
    assert {q.title for q in questions} <= {a.title for a in train}  # validation articles stay unseen
    assert not {q.title for q in questions} & {a.title for a in val}
    wh = ("what ", "who ", "when ", "how many ", "what percentage ")
    for q in questions:
        [(text, start)] = q.answers
        assert q.context[start : start + len(text)] == text and text.strip()
        assert q.question.startswith(wh) and q.question.endswith("?")
        assert text not in q.question  # the answer is cut out
    # deterministic for a seed, different for another
    assert [q.question for q in cloze_questions(train, 50, seed=1)] == [
        q.question for q in cloze_questions(train, 50, seed=1)
    ]
    assert [q.id for q in cloze_questions(train, 50, seed=1)] != [q.id for q in cloze_questions(train, 50, seed=2)]
