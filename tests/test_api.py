"""The HTTP API against the real server process on 127.0.0.1."""

import httpx
import pytest
from conftest import citation_is_valid, seed_qa, seed_texts

QA = seed_qa()["questions"]


def post(server, question=None, **body):
    payload = {**({"question": question} if question is not None else {}), **body}
    return httpx.post(server.url + "/api/answer", json=payload, timeout=60)


def test_answers_with_valid_citations_for_every_seed_question(server):
    texts = seed_texts()
    for item in QA:
        r = post(server, item["question"])
        assert r.status_code == 200, r.text
        a = r.json()
        assert set(a) >= {"answer", "found", "confidence", "citations", "timings"}
        for c in a["citations"]:
            assert (
                citation_is_valid(c, texts) and c["passage"] == texts[c["file"]][c["passage_start"] : c["passage_end"]]
            )
        if item.get("unanswerable"):
            assert not a["found"] and a["answer"] is None
        else:
            assert a["found"] and a["citations"][0]["file"] in item["sources"], (item, a["answer"])


def test_follow_up_through_history(server):
    first = "What was the codename of the nighttime operation in Caracas?"
    a1 = post(server, first).json()
    r = post(server, "When did it happen?", history=[{"question": first, "answer": a1["answer"]}])
    assert r.status_code == 200 and "January 3" in r.json()["answer"]


def test_health_articles_and_article_text(server):
    h = httpx.get(server.url + "/api/health").json()
    assert h["index_loaded"] and h["articles"] == 3 and h["passages"] > 3 and h["embedding_model"]
    from articleqa.runtime import bf16_is_fast

    # the inference path the machine offers: bf16 units -> the validated torch bf16, else ONNX Runtime
    assert h["reader_path"] == ("torch bf16" if bf16_is_fast() else "onnxruntime fp32")
    assert h["embedding_path"] == "onnxruntime fp32"
    assert h["reader_batching"]["batches"] >= 1 and h["reader_batching"]["questions"] >= h["reader_batching"]["batches"]
    arts = httpx.get(server.url + "/api/articles").json()
    assert {a["file"] for a in arts} == set(seed_texts())
    assert all(len(a["sha256"]) == 64 for a in arts)
    one = httpx.get(server.url + "/api/articles/002_2dd9416afd3ce74f.txt").json()
    assert one["text"] == seed_texts()["002_2dd9416afd3ce74f.txt"]
    assert httpx.get(server.url + "/docs").status_code == 200
    assert httpx.get(server.url + "/openapi.json").json()["paths"]["/api/answer"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({}, 422, "question"),
        ({"question": ""}, 422, "empty"),
        ({"question": "   "}, 422, "empty"),
        ({"question": "x" * 1001}, 422, "too long"),
        ({"question": 42}, 422, "question"),
        ({"question": "Who?", "top_k": 0}, 422, "top_k"),
        ({"question": "Who?", "top_k": -3}, 422, "top_k"),
        ({"question": "Who?", "top_k": 51}, 422, "top_k"),
        ({"question": "Who?", "top_k": "five"}, 422, "top_k"),
        ({"question": "Who?", "surprise": 1}, 422, "surprise"),
        ({"question": "Who?", "history": "nope"}, 422, "history"),
    ],
)
def test_validation_errors_are_clear(server, body, status, words):
    r = httpx.post(server.url + "/api/answer", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_invalid_json_unknown_article_and_path_tricks(server):
    r = httpx.post(server.url + "/api/answer", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()
    assert httpx.get(server.url + "/api/articles/nope.txt").status_code == 404
    for trick in ["../pyproject.toml", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a/../../b.txt"]:
        r = httpx.get(server.url + "/api/articles/" + trick)
        assert r.status_code in (400, 404), (trick, r.status_code)
        assert "root:" not in r.text
    assert httpx.get(server.url + "/api/nope").status_code == 404
    wrong = httpx.put(server.url + "/api/answer")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST" and "error" in wrong.json()
    nope = httpx.get(server.url + "/api/nope")
    assert nope.status_code == 404 and "no such API endpoint" in nope.json()["error"]


def test_admin_endpoints_need_the_token(server):
    assert httpx.post(server.url + "/api/rebuild").status_code == 401
    assert httpx.post(server.url + "/api/rebuild", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = httpx.post(server.url + "/api/articles", files={"files": ("x.txt", b"text")})
    assert r.status_code == 401
    assert httpx.delete(server.url + "/api/articles/000_a9d1c48ba2d92731.txt").status_code == 401
    # reading needs no token
    assert httpx.get(server.url + "/api/rebuild").status_code == 200
