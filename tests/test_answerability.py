"""The answerability model: its features on made-up spans (exact values), its file, how it decides
"not found" in the answer builder and the pipeline, and fitting it with the CLI on real SQuAD questions."""

import json
import math
import shutil

import pytest
from conftest import READER, squad_file
from typer.testing import CliRunner

from articleqa.answer import AnswerBuilder
from articleqa.answerability import FEATURES, AnswerabilityModel, answerability_features
from articleqa.cli import app
from articleqa.types import Passage, ReadSpan, ScoredPassage

PASSAGE = "President Trump ordered the strikes on Caracas. They began at 2 am on January 3, officials said."


def _span(passage: Passage, text: str, margin: float) -> ReadSpan:
    start = passage.start + passage.text.index(text)
    return ReadSpan(passage=passage, start=start, end=start + len(text), text=text, margin=margin, confidence=0.5)


def _two_passages():
    a = Passage(id=1, file="a.txt", start=100, end=100 + len(PASSAGE), text=PASSAGE)
    b = Passage(id=2, file="b.txt", start=0, end=len(PASSAGE), text=PASSAGE)
    hits = [ScoredPassage(a, 0.032, {"dense": 1, "bm25": 2}), ScoredPassage(b, 0.016, {"dense": 3})]
    return a, b, hits


def test_features_from_two_agreeing_passages():
    a, b, hits = _two_passages()
    spans = [_span(a, "President Trump", 6.0), _span(b, "Trump", 2.0)]
    f = answerability_features("Who ordered the strikes on Caracas?", spans, hits, reader_threshold=3.0)
    assert list(f) == list(FEATURES)
    assert f["margin"] == 6.0 and f["second_margin"] == 2.0 and f["mean_margin"] == 4.0
    assert f["above_threshold"] == 1 and f["passages_read"] == 2
    assert f["agreeing"] == 0  # "Trump" is not the same normalized answer as "President Trump"
    assert f["log_rank"] == 0.0 and f["log_dense_rank"] == 0.0 and f["log_bm25_rank"] == pytest.approx(math.log(2))
    assert f["top_fused"] == f["answer_fused"] == 0.032
    # content words: ordered, strikes, caracas -- all in the passage and in the span's sentence
    assert f["question_words"] == 3 and f["question_in_passage"] == 1.0 and f["question_in_sentence"] == 1.0
    assert f["names_missing"] == 0 and f["negated_question"] == 0
    assert f["span_words"] == 2 and f["span_in_question"] == 0.0
    assert f["type_mismatch"] == 0  # a "who" question and a capitalised span


def test_features_notice_a_missing_name_a_negation_and_a_wrong_kind_of_span():
    a, b, hits = _two_passages()
    spans = [_span(a, "officials", 1.0), _span(b, "officials", 0.5)]
    f = answerability_features("When did Maduro not order the strikes?", spans, hits, reader_threshold=3.0)
    assert f["names_missing"] == 1  # Maduro: the passage never mentions him
    assert f["negated_question"] == 1
    assert f["type_mismatch"] == 1  # "when", and the span holds no digit
    assert f["agreeing"] == 1 and f["above_threshold"] == 0
    # the span's sentence is the second one: "strikes" and "order" are only in the first
    assert f["question_in_sentence"] < f["question_in_passage"]


def test_no_passage_read_scores_as_low_as_it_can():
    _, _, hits = _two_passages()
    f = answerability_features("Who?", [], hits, reader_threshold=0.0)
    assert f["margin"] == f["second_margin"] == -20.0 and f["passages_read"] == 0 and f["log_rank"] == math.log(60)


def _model(threshold=0.0, **coefs) -> AnswerabilityModel:
    """A model whose score is intercept + sum(coef * feature) (mean 0, scale 1)."""
    n = len(FEATURES)
    return AnswerabilityModel(
        features=list(FEATURES),
        mean=[0.0] * n,
        scale=[1.0] * n,
        coef=[coefs.get(k, 0.0) for k in FEATURES],
        intercept=coefs.get("intercept", 0.0),
        threshold=threshold,
    )


def test_the_model_file_round_trips_and_refuses_other_features(tmp_path):
    m = _model(threshold=0.25, margin=1.0, names_missing=-3.0)
    m.fitted = {"target": "right"}
    m.save(tmp_path)
    back = AnswerabilityModel.load(tmp_path)
    assert back == m
    assert AnswerabilityModel.load(tmp_path / "nothing-here") is None
    data = json.loads((tmp_path / "answerability.json").read_text())
    data["features"] = data["features"][:-1]
    with pytest.raises(ValueError, match="features"):
        AnswerabilityModel(**data)


def _with_confidence(model: AnswerabilityModel, sure: float, **coefs) -> AnswerabilityModel:
    """``model`` with a confidence part whose log-odds are intercept + sum(coef * feature)."""
    n = len(FEATURES)
    model.confidence_model = {
        "mean": [0.0] * n,
        "scale": [1.0] * n,
        "coef": [coefs.get(k, 0.0) for k in FEATURES],
        "intercept": coefs.get("intercept", 0.0),
        "calibration": {"scale": 1.0, "bias": 0.0},
        "sure": sure,
    }
    return model


def test_the_confidence_part_sets_the_confidence_shown_and_its_sure_point(pipeline, tmp_path):
    index = pipeline.indexes.get()
    asked = "Who ordered the strikes on Venezuela?"
    hit = pipeline.retriever.retrieve(index, asked, top_k=1)[0]
    spans = pipeline.reader.read(asked, [hit.passage])
    margin = spans[0].margin
    # log-odds 0.1 x margin: confidence sigmoid(0.1 x margin), sure from 0.9
    judge = _with_confidence(_model(threshold=0.0, intercept=1.0), sure=0.9, margin=0.1)
    expected = 1 / (1 + math.exp(-0.1 * margin))
    assert judge.judge(asked, spans, [hit], margin - 1).confidence == pytest.approx(expected)
    builder = AnswerBuilder(threshold=margin - 1, judge=judge)
    assert builder.shown_sure == 0.9
    decision = builder.decide(asked, spans, [hit], index)
    a = decision.answer
    assert a.found and a.confidence == pytest.approx(expected, abs=1e-4) and a.tentative == (expected < 0.9)
    trace = decision.trace(asked, asked, "hybrid", margin - 1, spans, [hit], judge.threshold)
    assert "the sure point 0.90" in trace.explanation
    # a sure point set in the settings wins over the model's; the spans keep the reader's own confidence
    assert (
        not AnswerBuilder(threshold=margin - 1, judge=judge, sure_confidence=0.0)
        .build(asked, spans, [hit], index)
        .tentative
    )
    assert (
        AnswerBuilder(threshold=margin - 1, judge=judge, sure_confidence=1.0)
        .build(asked, spans, [hit], index)
        .tentative
    )
    # without a confidence part: the span's calibrated confidence and 0.5, as before
    plain = AnswerBuilder(threshold=margin - 1, judge=_model(threshold=0.0, intercept=1.0))
    assert plain.shown_sure == 0.5
    assert plain.build(asked, spans, [hit], index).confidence == round(spans[0].confidence, 4)
    # the file keeps the part
    judge.save(tmp_path)
    assert AnswerabilityModel.load(tmp_path) == judge and AnswerabilityModel.load(tmp_path).sure == 0.9


def test_the_sure_point_is_the_lowest_that_keeps_sure_answers_right():
    import numpy as np

    from articleqa.training.fit_answerability import fit_confidence_model

    rng = np.random.default_rng(0)
    n = 400

    def answers():
        right = rng.random(n) < 0.6
        X = rng.normal(size=(n, len(FEATURES)))
        X[:, FEATURES.index("margin")] += np.where(right, 1.5, -1.5)  # the margin tells them apart, noisily
        return {
            "X": X,
            "impossible": ~right & (rng.random(n) < 0.5),
            "accepted_found": np.ones(n, dtype=bool),
            "accepted_f1": np.where(right, 1.0, 0.0),
            "accepted_confidence": rng.random(n),
        }

    train, val = answers(), answers()
    part = fit_confidence_model(train, val, np.ones(n, dtype=bool), max_sure_wrong=0.1, min_right_sure=0.0)
    v = part["validation"]
    assert v["model"]["sure_but_wrong"] <= 10.0 and v["model"]["right_shown_sure"] > 50.0
    assert v["answer_right_auc"] > 0.8 and v["margin"]["sure"] == 0.5
    # the lowest such point: one step lower lets more than 10% wrong in
    model = _with_confidence(_model(), sure=part["sure"])
    model.confidence_model = {**part}
    p = np.array([model.confidence_features(dict(zip(FEATURES, x))) for x in val["X"]])
    right = val["accepted_f1"] >= 0.5
    assert (~right[p >= part["sure"] - 1e-9]).mean() <= 0.1
    lower = p[p < part["sure"] - 1e-9]
    if len(lower):
        assert (~right[p >= lower.max() - 1e-9]).mean() > 0.1
    # a floor on the right answers shown sure caps the sure point: hedging everything is not being sure
    strict = fit_confidence_model(train, val, np.ones(n, dtype=bool), max_sure_wrong=0.0, min_right_sure=0.0)
    capped = fit_confidence_model(train, val, np.ones(n, dtype=bool), max_sure_wrong=0.0, min_right_sure=0.9)
    assert strict["validation"]["model"]["right_shown_sure"] < 90.0
    assert capped["sure"] < strict["sure"] and capped["validation"]["model"]["right_shown_sure"] >= 90.0


def test_the_threshold_keeps_the_answers_the_assistant_gives():
    import numpy as np

    from articleqa.training.fit_answerability import keep_answers_threshold

    # four answerable questions (F1 where accepted: 1, 1, 0, 1) and three unanswerable ones
    impossible = np.array([False, False, False, False, True, True, True])
    scores = np.array([3.0, 2.0, -1.0, 0.5, -2.0, 1.0, 0.0])
    f1 = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    refused_now = np.array([False, False, True, False, True, False, False])  # the margin refuses one of each
    t, rule = keep_answers_threshold(scores, impossible, f1, refused_now)
    # refusing at or below 0.0 turns away the wrong answer and two unanswerable questions; at 0.5 it would
    # refuse a right answer
    assert t == 0.0 and "kept" in rule
    # question 4's answer is refused whatever the model says (the mention rule), today too: counted refused
    # at every threshold, the model may refuse the last unanswerable question (score 1.0) and still keep
    # today's two answerable refusals and F1 0.5
    anyway = np.array([False, False, False, True, False, False, False])
    now = refused_now | anyway
    t, rule = keep_answers_threshold(scores, impossible, f1, now, f1_now=np.where(now, 0.0, f1), refused_anyway=anyway)
    assert t == 1.0 and "kept" in rule
    refused = (scores <= t) | anyway
    assert refused[impossible].all() and refused[~impossible].sum() == 2


def test_without_a_threshold_that_keeps_f1_the_fallback_counts_the_forced_refusals():
    import numpy as np

    from articleqa.training.fit_answerability import keep_answers_threshold

    # today's answers are better than the accepted ones (question 0: F1 1 today, 0.5 accepted), so no threshold
    # keeps pipeline F1 and the rule falls back to today's share of answerable questions refused (1 of 4)
    impossible = np.array([False, False, False, False, True, True])
    scores = np.array([-1.0, 2.0, 0.0, 3.0, 1.0, 1.5])
    f1 = np.array([0.5, 1.0, 1.0, 1.0, 0.0, 0.0])
    f1_now = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    now = np.array([False, True, False, False, False, False])
    anyway = np.array(
        [False, True, False, False, False, False]
    )  # the mention rule refuses question 1 whatever the score
    t, rule = keep_answers_threshold(scores, impossible, f1, now, f1_now=f1_now, refused_anyway=anyway)
    assert "share" in rule
    # the forced refusal already uses the share: refusing question 0 (the lowest score) on top would double it
    refused = (scores <= t) | anyway
    assert refused[~impossible].tolist() == [False, True, False, False]


def test_the_judge_decides_not_found_in_the_answer_builder(pipeline):
    index = pipeline.indexes.get()
    hit = pipeline.retriever.retrieve(index, "Who ordered the strikes on Venezuela?", top_k=1)[0]
    spans = pipeline.reader.read("Who ordered the strikes on Venezuela?", [hit.passage])
    margin = spans[0].margin
    # the margin alone answers (the mentions rule off); a judge that counts the missing name "Narnia" refuses
    question = "Who ordered the strikes on Narnia?"
    assert AnswerBuilder(threshold=margin - 1, check_mentions=False).build(question, spans, [hit], index).found
    judge = _model(threshold=0.0, intercept=1.0, names_missing=-2.0)
    decision = AnswerBuilder(threshold=margin - 1, check_mentions=False, judge=judge).decide(
        question, spans, [hit], index
    )
    assert not decision.answer.found and decision.rule == "unanswerable" and decision.answerability == -1.0
    trace = decision.trace(question, question, "hybrid", margin - 1, spans, [hit], judge.threshold)
    assert trace.rule == "unanswerable" and trace.answerability == -1.0 and trace.answerability_threshold == 0.0
    assert "answerability model scored -1.00, not above its threshold 0.00" in trace.explanation
    # a judge may answer below the margin threshold: the best span, its citation exact
    accepting = _model(threshold=0.0, intercept=1.0)
    asked = "Who ordered the strikes on Venezuela?"
    answer = AnswerBuilder(threshold=margin + 1, judge=accepting).build(asked, spans, [hit], index)
    assert answer.found and answer.answer == spans[0].text
    c = answer.citations[0]
    assert index.articles[c.file].text[c.start : c.end] == c.quote


def test_the_pipeline_uses_the_shipped_model_unless_told_not_to(pipeline):
    from articleqa.pipeline import QAPipeline

    assert (READER / "answerability.json").is_file()
    shipped = pipeline.judge()
    assert isinstance(shipped, AnswerabilityModel) and shipped.fitted["validation_articles"]
    a = pipeline.ask("Who ordered the strikes on Venezuela?", explain=True)
    assert a.trace.answerability is not None and a.trace.answerability_threshold == round(shipped.threshold, 4)
    base = pipeline.settings
    for update in ({"answerability": False}, {"no_answer_threshold": 0.0}, {"retrieval": "bm25"}):
        other = QAPipeline(base.model_copy(update=update), pipeline.embedder, pipeline.chunker, pipeline.reader)
        assert other.judge() is None, update
        assert other.answer_builder.judge is None


@pytest.mark.slow
def test_fit_answerability_cli_writes_a_model_the_pipeline_loads(tmp_path):
    dev = squad_file("squad-dev-v2.0-36.json")
    model = tmp_path / "reader"
    shutil.copytree(READER, model)
    (model / "answerability.json").unlink(missing_ok=True)
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["fit-answerability", str(model), "--squad", str(dev), "--work-dir", str(tmp_path / "work"), "--limit", "60"],
    )
    assert res.exit_code == 0, res.output
    assert "answerability model" in res.output and "written to" in res.output
    fitted = AnswerabilityModel.load(model)
    assert fitted is not None and fitted.fitted["target"] == "answerable"
    meta = json.loads((model / "articleqa_reader.json").read_text())
    assert fitted.fitted["validation_articles"] == meta["validation_articles"]
    assert not set(fitted.fitted["training_articles"]) & set(
        meta["validation_articles"] + meta["training"]["test_articles"]
    )
    v = fitted.fitted["validation"]
    # the default threshold loses nothing on the answerable validation questions against the margin's refusals
    # (or, where no threshold can, wrongly refuses the same share)
    assert v["answerability"]["wrongly_refused"] <= v["margin"]["wrongly_refused"] + 1e-9
    if "kept" in fitted.fitted["threshold_rule"]:
        assert v["answerability"]["pipeline_f1"] >= v["margin"]["pipeline_f1"] - 1e-9
    assert fitted.fitted["training_questions"]["unanswerable"] > 0
    assert "## Answerability model (answerability.json)" in (model / "README.md").read_text()
    # the confidence part, its sure point chosen on the validation answers
    assert (
        fitted.sure is not None and 0.0 < fitted.sure < 1.0 and "Confidence shown" in (model / "README.md").read_text()
    )
    assert "of sure answers wrong" in res.output
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    work = tmp_path / "work"
    judge = QAPipeline.from_settings(
        Settings(reader_model=str(model), index_dir=work / "index", articles_dir=work / "corpus")
    ).judge()
    assert judge == fitted
    # not a trained reader, a missing file, an unknown target: exit 2 and nothing written
    for args in (
        ["fit-answerability", str(tmp_path), "--squad", str(dev)],
        ["fit-answerability", str(model), "--squad", str(tmp_path / "none.json")],
        [
            "fit-answerability",
            str(model),
            "--squad",
            str(dev),
            "--target",
            "everything",
            "--work-dir",
            str(tmp_path / "work"),
        ],
    ):
        assert runner.invoke(app, args).exit_code == 2
    assert not (tmp_path / "answerability.json").exists()
