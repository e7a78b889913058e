"""Inference runtimes (torch, ONNX Runtime) and the server's request batching, on the shipped reader.

Real exports into a temporary cache, real ONNX Runtime sessions, real threads: the ONNX fp32 graph
must give the torch fp32 numbers, int8 nearly the same answers, and batched reading the same spans as
reading one question at a time.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import READER, SEEDS, squad_file

from articleqa.reader import ExtractiveReader, read_reader_meta
from articleqa.runtime import bf16_is_fast, choose_path
from articleqa.serve.batching import BatchingReader
from articleqa.types import Passage

QUESTIONS = [
    "Who ordered the strikes?",
    "What was the codename of the nighttime operation in Caracas?",
    "Which country's boats were struck?",
    "When did the operation happen?",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory, monkeypatch_module):
    path = tmp_path_factory.mktemp("cache")
    monkeypatch_module.setenv("ARTICLEQA_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def seed_passages() -> list[Passage]:
    from articleqa.chunking import SentenceChunker
    from articleqa.ingest import iter_article_files, read_article

    articles = [read_article(p, SEEDS) for p in iter_article_files(SEEDS)]
    return SentenceChunker(150, 40).chunk(articles)[:12]


@pytest.fixture(scope="module")
def onnx_fp32(cache):
    r = ExtractiveReader(str(READER), backend="onnx", quantize="none")
    r.warm_up()
    return r


@pytest.fixture(scope="module")
def torch_fp32():
    r = ExtractiveReader(str(READER), backend="torch", quantize="none")
    r.warm_up()
    return r


def test_auto_path_follows_the_machine_and_the_validated_record():
    meta = read_reader_meta(READER)
    assert meta["inference"]["quantize"] == "bf16"  # validated against fp32 on held-out articles
    assert choose_path(meta) == (("torch", "bf16") if bf16_is_fast() else ("onnx", "fp32"))
    assert choose_path(meta, quantize="none") == ("onnx", "fp32")
    assert choose_path({}, backend="torch") == ("torch", "fp32")  # a foreign model: no validated record
    assert choose_path(meta, backend="onnx", quantize="int8") == ("onnx", "int8")
    for bad in ({"backend": "tensorrt"}, {"quantize": "fp8"}):
        with pytest.raises(ValueError):
            choose_path(meta, **bad)
    if bf16_is_fast():  # bf16 is a torch path: asked of ONNX Runtime by name, it is an error, not a silent switch
        with pytest.raises(ValueError):
            choose_path(meta, backend="onnx", quantize="bf16")
    else:  # without bf16 units a bf16 request runs fp32, as before
        assert choose_path(meta, backend="onnx", quantize="bf16") == ("onnx", "fp32")


def test_onnx_fp32_gives_the_torch_numbers(onnx_fp32, torch_fp32, seed_passages, cache):
    assert onnx_fp32.inference_path == "onnxruntime fp32" and torch_fp32.inference_path == "torch fp32"
    assert list(cache.glob("onnx/*/model_fp32.onnx")), "the graph is exported once into the cache"
    for q in QUESTIONS:
        a = onnx_fp32.read(q, seed_passages)
        b = torch_fp32.read(q, seed_passages)
        assert [(s.start, s.end, s.text) for s in a] == [(s.start, s.end, s.text) for s in b]
        assert np.allclose([s.margin for s in a], [s.margin for s in b], atol=1e-3)
    # a second reader finds the exported graph in the cache instead of exporting again
    files = {p: p.stat().st_mtime_ns for p in cache.glob("onnx/*/*.onnx")}
    again = ExtractiveReader(str(READER), backend="onnx", quantize="none")
    again.warm_up()
    assert {p: p.stat().st_mtime_ns for p in cache.glob("onnx/*/*.onnx")} == files


def test_onnx_int8_answers_nearly_the_same(cache, torch_fp32):
    from articleqa.text import best_em_f1
    from articleqa.training.squad import load_squad

    int8 = ExtractiveReader(str(READER), backend="onnx", quantize="int8")
    int8.warm_up()
    assert int8.inference_path == "onnxruntime int8"
    questions = [q for a in load_squad(squad_file("squad-dev-v1.1-36.json"))[:3] for q in a.questions][:60]
    pairs = [(q.question, q.context) for q in questions]
    f1 = {}
    for name, reader in (("fp32", torch_fp32), ("int8", int8)):
        preds = reader.predict(pairs)
        f1[name] = 100 * np.mean([best_em_f1(p.text, [t for t, _ in q.answers])[1] for p, q in zip(preds, questions)])
    assert f1["int8"] >= f1["fp32"] - 4.0, f1  # 60 questions; on 774 held-out ones int8 costs 0.7 F1


def test_auto_falls_back_to_torch_when_the_export_cannot_be_written(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("ARTICLEQA_CACHE", str(blocked))
    r = ExtractiveReader(str(READER), backend="auto", quantize="none")
    with caplog.at_level("WARNING"):
        r.warm_up()
    assert r.inference_path == "torch fp32" and "running torch fp32" in caplog.text
    assert (
        r.read(QUESTIONS[0], [Passage(0, "a.txt", 0, 32, "Donald Trump ordered the strikes.")])[0].text
        == "Donald Trump"
    )
    explicit = ExtractiveReader(str(READER), backend="onnx", quantize="none")
    with pytest.raises(OSError):  # asked for onnx by name: no silent fallback
        explicit.warm_up()


def test_batching_reader_groups_concurrent_questions_and_gives_the_same_spans(onnx_fp32, seed_passages):
    batching = BatchingReader(onnx_fp32, window_ms=50)
    expected = {q: [(s.start, s.end, s.text) for s in onnx_fp32.read(q, seed_passages[:5])] for q in QUESTIONS}
    got, errors = {}, []
    barrier = threading.Barrier(len(QUESTIONS) * 2)

    def client(q, k):
        try:
            barrier.wait()
            got[(q, k)] = [(s.start, s.end, s.text) for s in batching.read(q, seed_passages[:5])]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(q, k)) for q in QUESTIONS for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(got) == 2 * len(QUESTIONS)
    assert all(got[(q, k)] == expected[q] for q, k in got)
    stats = batching.stats()
    assert stats["questions"] == 8 and stats["batches"] < 8, stats  # grouped, not one model pass each
    assert batching.inference_path == onnx_fp32.inference_path and batching.calibration is onnx_fp32.calibration


def test_batching_reader_reports_errors_to_the_callers_and_keeps_serving(onnx_fp32, seed_passages):
    batching = BatchingReader(onnx_fp32, window_ms=0)
    broken = Passage(0, "x.txt", 0, 3, None)  # text None: the tokenizer refuses it
    with pytest.raises((TypeError, ValueError)):
        batching.read("Who?", [broken])
    assert batching.read(QUESTIONS[0], seed_passages[:2])  # the reading thread lives on
    assert batching.read("Who?", []) == []


def test_onnx_encoder_gives_the_torch_vectors(cache, seed_passages):
    from articleqa.embedding import Embedder

    texts = [p.text for p in seed_passages] + QUESTIONS
    torch_e, onnx_e = Embedder(backend="torch"), Embedder(backend="onnx")
    torch_e.warm_up()
    onnx_e.warm_up()
    assert (torch_e.inference_path, onnx_e.inference_path) == ("torch fp32", "onnxruntime fp32")
    assert onnx_e.name == torch_e.name  # the same vectors: an index built by either serves the other
    a, b = torch_e.encode(texts), onnx_e.encode(texts)
    assert a.shape == b.shape and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(1).min()) >= 0.9999
    assert onnx_e.encode([]).shape == (0, torch_e.dimension)
    # a question finds the same passages through either encoder
    assert [int(i) for i in np.argsort(-(a[: len(seed_passages)] @ a[-1]))[:5]] == [
        int(i) for i in np.argsort(-(b[: len(seed_passages)] @ b[-1]))[:5]
    ]
