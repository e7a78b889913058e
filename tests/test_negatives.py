"""Hard negatives: same-article paragraphs that do not hold the answer, and questions with a swapped name, as no-answer examples."""

import re

from conftest import squad_file

from articleqa.training.negatives import hard_negatives
from articleqa.training.squad import load_squad, split_articles


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


def test_a_test_set_leaves_the_validation_articles_as_they_were():
    from articleqa.training.squad import split_articles3

    articles = load_squad(squad_file("squad-dev-v2.0-36.json"))
    _, val = split_articles(articles, 4, seed=0)
    train, val3, test = split_articles3(articles, 4, 4, seed=0)
    assert [a.title for a in val3] == [a.title for a in val] and len(test) == 4
    titles = [{a.title for a in part} for part in (train, val3, test)]
    assert not (titles[0] & titles[1]) and not (titles[0] & titles[2]) and not (titles[1] & titles[2])
    assert sum(map(len, titles)) == len(articles)


def test_distillation_loss_is_zero_for_the_teacher_itself_and_pulls_toward_it():
    import torch

    from articleqa.training.train import distill_kl

    mask = torch.tensor([[1, 1, 1, 1, 0]])
    teacher = torch.tensor([[0.0, 3.0, 1.0, -1.0, 9.0]])  # the padded position is ignored
    assert distill_kl(teacher.clone(), teacher, mask, 2.0).item() < 1e-6
    student = torch.zeros(1, 5, requires_grad=True)
    loss = distill_kl(student, teacher, mask, 2.0)
    loss.backward()
    assert loss.item() > 0.1
    assert student.grad[0, 1] < 0 < student.grad[0, 3]  # raise what the teacher likes, lower the rest
    assert student.grad[0, 4] == 0


def _changed(a: str, b: str) -> tuple[str, str]:
    """The stretch of ``a`` replaced in ``b``, and its replacement (whole words and numbers)."""
    ta, tb = re.findall(r"\w+|[^\w\s]|\s+", a), re.findall(r"\w+|[^\w\s]|\s+", b)
    head = 0
    while head < min(len(ta), len(tb)) and ta[head] == tb[head]:
        head += 1
    tail = 0
    while tail < min(len(ta), len(tb)) - head and ta[-1 - tail] == tb[-1 - tail]:
        tail += 1
    return "".join(ta[head : len(ta) - tail]).strip(), "".join(tb[head : len(tb) - tail]).strip()


def test_entity_swaps_change_one_name_to_one_the_paragraph_never_mentions():
    from articleqa.training.negatives import swapped_entity_questions

    train, _ = split_articles(load_squad(squad_file("squad-dev-v1.1-36.json")), 4, seed=0)
    questions = [q for a in train[:3] for q in a.questions]
    swaps = swapped_entity_questions(questions, per_question=1, seed=0)
    by_id = {q.id: q for q in questions}
    names = {a.title: " ".join(a.paragraphs) for a in train[:3]}
    assert len(questions) // 5 < len(swaps) <= len(questions)  # most questions name something; one twin at most
    for s in swaps:
        q = by_id[s.id.rsplit("-swap", 1)[0]]
        assert s.is_impossible and not s.answers and s.context == q.context and s.title == q.title
        # one stretch differs: what was cut is in the paragraph, what came in is not, but is in the article
        cut, came = _changed(q.question, s.question)
        assert cut and came and came.lower() not in q.context.lower(), (q.question, s.question)
        assert cut.lower() in q.context.lower(), (q.question, s.question)
        assert came in names[q.title], (q.question, s.question)
    assert swapped_entity_questions(questions, per_question=0) == []
    assert swapped_entity_questions(questions, per_question=1, seed=0) == swaps  # reproducible


def test_an_entity_swap_keeps_the_question_words_and_swaps_within_a_kind():
    from articleqa.training.negatives import swapped_entity_questions
    from articleqa.training.squad import SquadQuestion

    paras = [
        "In 1998 Alice Smith founded the Harbour Trust in Leeds.",
        "Bob Jones ran the Trust from 2004, after Carol Diaz.",
    ]
    questions = [
        SquadQuestion("q1", "Where did Alice Smith found the Harbour Trust?", paras[0], "T", (("Leeds", 49),)),
        SquadQuestion("q2", "What did Alice Smith found in 1998?", paras[0], "T", (("the Harbour Trust", 25),)),
        SquadQuestion("q3", "Who ran the Trust?", paras[1], "T", (("Bob Jones", 0),)),
        SquadQuestion("q4", "Who ran it after her?", paras[1], "T", (("Bob Jones", 0),)),
    ]
    swaps = {s.id: s.question for s in swapped_entity_questions(questions, per_question=1, seed=0)}
    assert swaps["q1-swap0"] in {
        "Where did Bob Jones found the Harbour Trust?",
        "Where did Carol Diaz found the Harbour Trust?",
    }
    assert swaps["q2-swap0"] in {
        "What did Alice Smith found in 2004?",
        "What did Bob Jones found in 1998?",
        "What did Carol Diaz found in 1998?",
    }
    # never a name containing the one swapped out ("Harbour Trust" for "Trust"): that could still be answerable
    assert swaps["q3-swap0"] in {"Who ran the Alice Smith?", "Who ran the Leeds?"}
    assert "q4-swap0" not in swaps  # names nothing


def test_a_checkpoint_from_before_a_setting_existed_still_resumes():
    from dataclasses import asdict

    from articleqa.training.train import TrainConfig, _resume_key

    cfg = TrainConfig(base_model="m", out="runs/a", negatives=1)
    old = {k: v for k, v in asdict(cfg).items() if k != "entity_swaps"}  # written before --entity-swaps existed
    assert _resume_key(old) == _resume_key(asdict(cfg))
    assert _resume_key({**asdict(cfg), "out": "models/reader", "max_steps": 3}) == _resume_key(
        asdict(cfg)
    )  # moved, stopped early
    assert _resume_key(old) != _resume_key(
        asdict(TrainConfig(base_model="m", out="runs/a", negatives=1, entity_swaps=1))
    )
    assert _resume_key(old) != _resume_key(asdict(TrainConfig(base_model="m", out="runs/a", negatives=2)))


def test_antonym_swaps_turn_one_word_into_its_opposite_the_paragraph_never_uses():
    from articleqa.training.negatives import swapped_word_questions
    from articleqa.training.squad import SquadQuestion

    para = "The western half of the island was settled first, after the war; the largest town is Port Ely."
    questions = [
        SquadQuestion("q1", "Which half of the island was settled first?", para, "T", (("The western half", 0),)),
        SquadQuestion("q2", "What is the largest town on the Western side?", para, "T", (("Port Ely", 88),)),
        SquadQuestion("q3", "Who settled the island after the war?", para, "T", (("nobody", 0),)),
        SquadQuestion(
            "q4", "What happened before and after the war?", para + " Before it, nothing.", "T", (("settled", 30),)
        ),
    ]
    swaps = {s.id: s for s in swapped_word_questions(questions, per_question=1, seed=0)}
    assert swaps["q1-opp0"].question == "Which half of the island was settled last?"
    # "Western" is in the paragraph and "eastern" is not, but "largest" -> "smallest" is as good; capitals kept
    assert swaps["q2-opp0"].question in {
        "What is the smallest town on the Western side?",
        "What is the largest town on the Eastern side?",
    }
    assert swaps["q3-opp0"].question == "Who settled the island before the war?"
    assert "q4-opp0" not in swaps  # the paragraph says "before" and "after": either question could be answerable
    for s in swaps.values():
        assert (
            s.is_impossible
            and not s.answers
            and s.context == next(q.context for q in questions if s.id.startswith(q.id))
        )
    assert swapped_word_questions(questions, per_question=0) == []


def test_a_share_of_the_questions_gets_negatives_and_the_rest_none():
    train, _ = split_articles(load_squad(squad_file("squad-dev-v1.1-36.json")), 4, seed=0)
    questions = [q for a in train[:4] for q in a.questions]
    every = hard_negatives(questions, per_question=1, seed=0)
    some = hard_negatives(questions, per_question=1, seed=0, share=0.2)
    assert 0.1 * len(every) < len(some) < 0.3 * len(every)
    assert some == hard_negatives(questions, per_question=1, seed=0, share=0.2)  # a seeded sample
    assert {n.id for n in some} <= {n.id for n in every}  # the same negative for a question that gets one
    assert hard_negatives(questions, per_question=1, share=0.0) == []


def test_the_whole_training_set_loads_from_gzip_and_named_articles_are_held_out():
    from articleqa.training.squad import split_by_titles

    articles = load_squad(squad_file("squad-train-442.json.gz"), squad_file("squad-dev-v1.1-36.json"))
    assert len(articles) == 442 + 36
    answerable = sum(not q.is_impossible for a in articles for q in a.questions)
    assert answerable > 87_000 + 8_000
    val, test = ["Oxygen", "Packet_switching"], ["The_Legend_of_Zelda:_Twilight_Princess", "Montana"]
    train, v, t = split_by_titles(articles, val, test)
    assert [a.title for a in v] == val and [a.title for a in t] == test
    assert len(train) == len(articles) - 4 and not {a.title for a in train} & {*val, *test}
    zelda = t[0]
    assert sum(q.is_impossible for q in zelda.questions) == 160  # the official SQuAD 2.0 unanswerables
    import pytest

    with pytest.raises(ValueError, match="Not_an_article"):
        split_by_titles(articles, ["Not_an_article"], [])


def test_unmatched_mentions_are_names_and_numbers_the_article_never_mentions():
    from articleqa.mentions import unmatched_mentions

    article = (
        "On January 3, 2026, explosions were heard in Caracas. The U.S. strikes, ordered by Donald Trump, "
        "followed Nicolás Maduro's 2013 rise; Saharan dust and the 1950s were not mentioned by Reuters."
    )
    assert unmatched_mentions("Who is the president of Brazil?", article) == ["Brazil"]
    assert unmatched_mentions("What did the US say about Caracas in 2026?", article) == []  # U.S. = US
    assert unmatched_mentions("When did Nicolas Maduro rise?", article) == []  # accents folded
    assert unmatched_mentions("What was Maduro's role?", article) == []  # possessive
    assert unmatched_mentions("How much Sahara dust fell in the 1950s?", article) == []  # first five letters; 1950s
    assert unmatched_mentions("What happened in 1950 according to Reuters?", article) == []
    assert unmatched_mentions("What happened in 1951 according to the AP?", article) == ["1951", "AP"]
    assert unmatched_mentions("Who ordered the strikes, Joe Trump?", article) == ["Joe Trump"]  # every word of a name


def test_negated_twins_negate_the_question_only_where_the_paragraph_negates_nothing():
    from articleqa.training.negatives import negated_questions
    from articleqa.training.squad import SquadQuestion

    para = "In 1998 Alice Smith founded the Harbour Trust in Leeds. She was the first mayor of the city."
    negating = "Bob Jones ran the Trust, but he was never its mayor."
    questions = [
        SquadQuestion("q1", "Who was the first mayor of Leeds?", para, "T", (("Alice Smith", 8),)),
        SquadQuestion("q2", "Who founded the Harbour Trust?", para, "T", (("Alice Smith", 8),)),
        SquadQuestion("q3", "Which city is the Harbour Trust in?", para, "T", (("Leeds", 49),)),
        SquadQuestion(
            "q4", "Where was the Harbour Trust founded?", para, "T", (("Leeds", 49),)
        ),  # subject after the verb
        SquadQuestion("q5", "Who was Alice Smith?", para, "T", (("the first mayor", 69),)),  # a name after the verb
        SquadQuestion("q6", "Who ran the Trust?", negating, "T", (("Bob Jones", 0),)),  # "ran" is no -ed verb
        SquadQuestion("q7", "Who was the mayor?", negating, "T", (("Bob Jones", 0),)),  # the paragraph negates
        SquadQuestion("q8", "Who was not the founder?", para, "T", (("Bob", 0),)),
    ]  # already negated
    twins = {t.id: t for t in negated_questions(questions, per_question=1)}
    assert {k: t.question for k, t in twins.items()} == {
        "q1-neg": "Who was not the first mayor of Leeds?",
        "q2-neg": "Who never founded the Harbour Trust?",
        "q3-neg": "Which city is not the Harbour Trust in?",
    }
    assert all(t.is_impossible and not t.answers and t.context == para for t in twins.values())
    assert negated_questions(questions, per_question=0) == []


def test_negated_twins_of_real_questions_add_one_word_on_paragraphs_without_negation():
    from articleqa.training.negatives import negated_questions

    train, _ = split_articles(load_squad(squad_file("squad-dev-v1.1-36.json")), 4, seed=0)
    questions = [q for a in train[:6] for q in a.questions]
    twins = negated_questions(questions)
    by_id = {q.id: q for q in questions}
    assert len(questions) // 20 < len(twins) < len(questions) // 2
    for t in twins:
        q = by_id[t.id.removesuffix("-neg")]
        assert t.question.split() != q.question.split()
        assert [w for w in t.question.split() if w not in ("not", "never")] == q.question.split()
        assert not re.search(r"\b(not|never|no)\b|n't", q.context, re.IGNORECASE)


def test_condition_twins_add_a_year_of_the_article_the_paragraph_never_mentions():
    from articleqa.training.negatives import conditioned_questions
    from articleqa.training.squad import SquadQuestion

    paras = [
        "In 1998 Alice Smith founded the Harbour Trust in Leeds.",
        "Bob Jones ran the Trust from 2004.",
        "Carol Diaz chairs the Trust.",
        "The Trust moved in 2011 and again in 2015.",
    ]
    questions = [
        SquadQuestion("q1", "Who founded the Harbour Trust?", paras[0], "T", (("Alice Smith", 8),)),
        SquadQuestion("q2", "Who ran the Trust", paras[1], "T", (("Bob Jones", 0),)),  # no question mark
        SquadQuestion("q3", "When did Bob Jones run the Trust?", paras[1], "T", (("2004", 28),)),  # asks a time
        SquadQuestion("q4", "Who founded the Trust in 1998?", paras[0], "T", (("Alice Smith", 8),)),  # names a year
        SquadQuestion("q5", "Who chairs the Trust?", paras[2], "T", (("Carol Diaz", 0),)),  # undated paragraph
        SquadQuestion("q6", "In which year did the Trust first move?", paras[3], "T", (("2011", 20),)),
    ]
    twins = {t.id: t.question for t in conditioned_questions(questions, per_question=1, seed=0)}
    assert set(twins) == {"q1-cond0", "q2-cond0"}
    assert twins["q1-cond0"] in {f"Who founded the Harbour Trust in {y}?" for y in ("2004", "2011", "2015")}
    assert twins["q2-cond0"] in {f"Who ran the Trust in {y}?" for y in ("1998", "2011", "2015")}
    two = conditioned_questions(questions, per_question=2, seed=0)
    assert len(two) == 4 and len({t.question for t in two}) == 4  # two different years each
    assert conditioned_questions(questions, per_question=1, seed=0) == conditioned_questions(
        questions, per_question=1, seed=0
    )
    assert conditioned_questions(questions, per_question=0) == []
