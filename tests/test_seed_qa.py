"""End to end on the seed articles with the real models: correct answers, valid citations, honest
"not found"."""

import pytest
from conftest import citation_is_valid, seed_qa, seed_texts

from articleqa.conversation import Turn
from articleqa.pipeline import QuestionError
from articleqa.text import best_em_f1

QA = seed_qa()["questions"] if True else []
ANSWERABLE = [q for q in QA if not q.get("unanswerable")]
UNANSWERABLE = [q for q in QA if q.get("unanswerable")]


@pytest.mark.parametrize("item", QA, ids=[q["id"] for q in QA])
def test_citation_invariant_on_every_answer(pipeline, item):
    answer = pipeline.ask(item["question"])
    texts = seed_texts()
    for c in answer.citations + answer.context:
        assert citation_is_valid(c, texts), c
    if answer.found:
        assert answer.citations and answer.answer == answer.citations[0].quote
    assert 0.0 <= answer.confidence <= 1.0


@pytest.mark.parametrize("item", ANSWERABLE, ids=[q["id"] for q in ANSWERABLE])
def test_answerable_questions_are_answered_from_their_sources(pipeline, item):
    answer = pipeline.ask(item["question"])
    assert answer.found, f"not found: {item['question']}"
    _, f1 = best_em_f1(answer.answer, item["answers"])
    assert f1 >= 0.8, f"{item['question']!r}: got {answer.answer!r}, expected one of {item['answers']}"
    assert answer.citations[0].file in item["sources"]


@pytest.mark.parametrize("item", UNANSWERABLE, ids=[q["id"] for q in UNANSWERABLE])
def test_unanswerable_questions_are_not_found(pipeline, item):
    answer = pipeline.ask(item["question"])
    assert not answer.found and answer.answer is None
    assert answer.message == "Not found in the articles."
    assert answer.context, "closest passages are shown as context"


def test_answer_supported_by_two_articles_cites_both(pipeline):
    answer = pipeline.ask("What was the name of the military operation the US launched off Venezuela?", top_k=8)
    files = {c.file for c in answer.citations}
    assert answer.found and "Southern Spear" in answer.answer
    assert files == {"001_a6813ebf46bda63b.txt", "002_2dd9416afd3ce74f.txt"}


def test_follow_up_uses_the_conversation_for_retrieval(pipeline):
    first = "What was the codename of the nighttime operation in Caracas?"
    a1 = pipeline.ask(first)
    follow = pipeline.ask("When did it happen?", history=[Turn(first, a1.answer)])
    assert follow.retrieval_query and first in follow.retrieval_query
    assert follow.found and "January 3" in follow.answer
    assert follow.citations[0].file == "002_2dd9416afd3ce74f.txt"


@pytest.mark.parametrize("bad", ["", "   \n\t ", "\x00\x01\x02", "x" * 1001])
def test_bad_questions_are_refused_clearly(pipeline, bad):
    with pytest.raises(QuestionError):
        pipeline.ask(bad)


def test_bad_top_k_is_refused(pipeline):
    for k in (0, -1, 10_000):
        with pytest.raises(QuestionError, match="top_k"):
            pipeline.ask("Who is the Energy Secretary?", top_k=k)


def test_timings_are_reported(pipeline):
    answer = pipeline.ask("Who is the president of Colombia?")
    assert {"embedding", "retrieval", "reading", "total"} <= set(answer.timings)
