"""Hard negatives: same-article paragraphs that do not hold the answer, as no-answer examples."""

from articleqa.training.negatives import hard_negatives
from articleqa.training.squad import load_squad, split_articles
from conftest import squad_file


def test_hard_negatives_are_other_paragraphs_of_the_article_without_the_answer():
    train, _ = split_articles(load_squad(squad_file("squad-dev-v1.1-36.json")), 4, seed=0)
    questions = [q for a in train[:3] for q in a.questions]
    negatives = hard_negatives(questions, per_question=2, seed=0)
    by_id = {q.id: q for q in questions}
    paragraphs = {a.title: set(a.paragraphs) for a in train[:3]}
    assert len(negatives) > len(questions)  # nearly two per question
    for neg in negatives:
        q = by_id[neg.id.rsplit("-neg", 1)[0]]
        assert neg.is_impossible and not neg.answers and neg.question == q.question
        assert neg.title == q.title and neg.context in paragraphs[q.title]
        assert neg.context != q.context
        assert not any(text in neg.context for text, _ in q.answers)
    assert hard_negatives(questions, per_question=0) == []


def test_the_closest_paragraph_is_picked_first():
    train, _ = split_articles(load_squad(squad_file("squad-dev-v1.1-36.json")), 4, seed=0)
    questions = [q for q in train[0].questions]
    [first, *_] = hard_negatives(questions, per_question=1, seed=0)
    q = next(q for q in questions if first.id.startswith(q.id))
    # shares content words with the question (BM25 ranked it), unlike a random paragraph would need to
    words = {w.lower().strip("?,.") for w in q.question.split() if len(w) > 3}
    assert words & {w.lower().strip("?,.;:()") for w in first.context.split()}
