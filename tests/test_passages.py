"""Retrieved passages: training examples cut as the index cuts the articles (the passage with the answer, and
the closest passages without it as no-answer)."""

from collections import Counter

from conftest import squad_file

from articleqa.chunking import SentenceChunker
from articleqa.training.passages import retrieved_passages
from articleqa.training.squad import SquadQuestion, load_squad, split_articles, write_squad_corpus


def test_passages_are_the_index_passages_with_the_answer_at_its_place_or_none(tmp_path):
    train, _ = split_articles(load_squad(squad_file("squad-dev-v1.1-36.json")), 4, seed=0)
    articles = train[:3]
    questions = [q for a in articles for q in a.questions]
    examples = retrieved_passages(questions, per_question=2, seed=0)
    where = write_squad_corpus(articles, tmp_path)
    chunker = SentenceChunker()
    index_passages = {}  # title -> the passages the index would hold for the article's file
    for a in articles:
        text = (tmp_path / where[a.paragraphs[0]][0]).read_text(encoding="utf-8")
        index_passages[a.title] = [text[s:e] for s, e in chunker.spans(text)]
    by_id = {q.id: q for q in questions}
    kinds = Counter()
    for ex in examples:
        qid, _, tail = ex.id.rpartition("-psg")
        q = by_id[qid]
        assert ex.question == q.question and ex.title == q.title
        assert ex.context in index_passages[q.title]
        if tail == "":  # the passage holding the answer
            assert not ex.is_impossible and ex.answers
            for text, start in ex.answers:
                assert ex.context[start : start + len(text)] == text
                assert text in {t for t, _ in q.answers}
            kinds["answer"] += 1
        else:
            assert ex.is_impossible and not ex.answers
            assert not any(text in ex.context for text, _ in q.answers)
            kinds["none"] += 1
    answerable = sum(not q.is_impossible for q in questions)
    # nearly every question gets its passage (only answers cut in two by a passage boundary are skipped)
    assert 0.95 * answerable <= kinds["answer"] <= answerable
    assert kinds["answer"] < kinds["none"] <= 2 * kinds["answer"]


def test_a_long_paragraph_cut_in_two_gives_the_answer_in_its_half_and_the_other_half_as_no_answer():
    filler = [
        f"The council met on day {i} to discuss the harbour accounts and the state of the roads." for i in range(20)
    ]
    paragraph = " ".join(filler[:15] + ["The lighthouse keeper was named Edwin Marsh."] + filler[15:])
    other = "Fishing boats leave before dawn. The market opens at six and closes at noon."
    start = paragraph.index("Edwin Marsh")
    q = SquadQuestion(
        id="q1",
        question="Who was the lighthouse keeper of the harbour?",
        context=paragraph,
        title="Harbour",
        answers=(("Edwin Marsh", start),),
    )
    filler_q = SquadQuestion(
        id="q2",
        question="When does the market open?",
        context=other,
        title="Harbour",
        answers=(("six", other.index("six")),),
    )
    examples = {ex.id: ex for ex in retrieved_passages([q, filler_q], per_question=3, seed=0)}
    article = paragraph + "\n\n" + other + "\n"
    answer = examples["q1-psg"]
    assert answer.context in article and not answer.context.startswith(paragraph)  # cut inside the paragraph
    [(text, at)] = answer.answers
    assert answer.context[at : at + len(text)] == "Edwin Marsh"
    negatives = [ex for key, ex in examples.items() if key.startswith("q1-psg") and key != "q1-psg"]
    assert negatives and all("Edwin Marsh" not in ex.context for ex in negatives)
    assert any(ex.context.startswith(filler[0]) for ex in negatives)  # the paragraph's first part
    market = examples["q2-psg"]
    assert market.context.endswith(other) and market.context[market.answers[0][1] :].startswith("six")


def test_a_share_of_the_questions_gets_passages_and_zero_means_none():
    train, _ = split_articles(load_squad(squad_file("squad-dev-v1.1-36.json")), 4, seed=0)
    questions = [q for q in train[0].questions if not q.is_impossible]
    half = {ex.id.rpartition("-psg")[0] for ex in retrieved_passages(questions, per_question=1, share=0.5, seed=1)}
    assert 0.35 * len(questions) < len(half) < 0.65 * len(questions)
    assert half == {
        ex.id.rpartition("-psg")[0] for ex in retrieved_passages(questions, per_question=1, share=0.5, seed=1)
    }
    assert retrieved_passages(questions, per_question=0) == [] and retrieved_passages(questions, share=0.0) == []


def test_a_questions_passages_are_batched_together_and_batches_without_groups_are_unchanged():
    from articleqa.training.train import Feature, batch_order

    feats = [
        Feature([1] * (10 + i % 7), [0] * (10 + i % 7), [0], [0], group=(i // 3 if i >= 60 else -1)) for i in range(120)
    ]
    batches = batch_order(feats, 8, seed=3, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(120))
    for g in range(20, 40):
        assert sum(any(feats[i].group == g for i in b) for b in batches) == 1  # all three windows in one batch
    assert all(len(b) <= 8 for b in batches)
    plain = [Feature(f.input_ids, f.token_type_ids, [0], [0]) for f in feats]
    assert [len(b) for b in batch_order(plain, 8, seed=3, epoch=0)] == [8] * 15


def test_shared_normalization_compares_spans_across_a_questions_passages():
    import torch

    from articleqa.training.train import shared_norm_nll

    mask = torch.ones(3, 5, dtype=torch.long)
    gold = torch.zeros(3, 5, dtype=torch.bool)
    gold[0, 2] = True  # the answer is in window 0 of group 7; windows 1 (same group) and 2 (no group) lack it
    gold[1, 0] = gold[2, 0] = True
    groups = torch.tensor([7, 7, -1])
    low = torch.zeros(3, 5)
    low[0, 2] = 5.0
    high = low.clone()
    high[1, 3] = 5.0  # a span as strong as the answer in the other passage of the group
    assert shared_norm_nll(high, gold, mask, groups) > shared_norm_nll(low, gold, mask, groups) + 0.5
    cls = low.clone()
    cls[:, 0] = 50.0  # [CLS] is left out of the shared softmax
    assert torch.isclose(shared_norm_nll(cls, gold, mask, groups), shared_norm_nll(low, gold, mask, groups))
    assert shared_norm_nll(low, gold, mask, torch.tensor([-1, -1, -1])) == 0  # no group: nothing to share
