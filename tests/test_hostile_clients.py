"""A hostile client against the real server and the real CLI, one section per class of attack:

1. questions the API accepts must never give a 500 (surrogates, token-long questions, huge history);
2. nothing outside the articles folder is indexed, served, cited or deleted (links out, loops, folders);
3. the chat's upload panel takes only bytes the browser uploaded, and checks the token first;
4. body limits hold on the bytes actually received (chunked bodies too);
5. oversized files are skipped when indexing, with progress shown;
6. every /api error has the shape {"error": ...};
7. X-Forwarded-For is believed only from configured proxies (no rate-limit bypass).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest
from conftest import READER, ROOT, SEEDS, ServerProcess, citation_is_valid

CANARY = "ZEBRA-CANARY-7731"
SECRET_TEXT = f"The secret launch code of the harbour is {CANARY}. The harbour master is Alice Quinton.\n"


def cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "articleqa.cli", *args],
        capture_output=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, "ARTICLEQA_READER_MODEL": str(READER), **(env or {})},
    )


def assert_error_shape(r: httpx.Response, status: int | tuple[int, ...]):
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert CANARY not in r.text


@pytest.fixture(scope="module", params=[None, 2], ids=["one-process", "two-workers"])
def hostile(tmp_path_factory, request):
    """An articles folder with links out of it (file, folder, loop, dangling), indexed by the real CLI,
    served by the real server with an admin token and Gradio's temp folder where the test can see it:
    once by ``articleqa serve`` (one process), once by ``uvicorn app.main:app --workers 2``."""
    base = tmp_path_factory.mktemp("hostile")
    secret_dir = base / "outside"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text(SECRET_TEXT, encoding="utf-8")
    (secret_dir / "inner.txt").write_text(SECRET_TEXT, encoding="utf-8")
    articles = base / "articles"
    shutil.copytree(SEEDS, articles)
    (articles / "outside.txt").symlink_to(secret_dir / "secret.txt")
    (articles / "loop.txt").symlink_to(articles / "loop.txt")
    (articles / "dangling.txt").symlink_to(base / "missing.txt")
    (articles / "dirlink").symlink_to(secret_dir, target_is_directory=True)
    (articles / "dirlink.txt").symlink_to(secret_dir, target_is_directory=True)
    first = sorted(SEEDS.glob("*.txt"))[0].name
    (articles / "inside-link.txt").symlink_to(articles / first)  # a link that stays inside is fine
    index = cli("index", str(articles), "--index-dir", str(base / "index"))
    assert index.returncode == 0, index.stderr.decode()
    gradio_tmp = base / "gradio-tmp"
    srv = ServerProcess(
        articles,
        base / "index",
        env={
            "ARTICLEQA_ADMIN_TOKEN": "tok",
            "GRADIO_TEMP_DIR": str(gradio_tmp),
            "ARTICLEQA_MAX_UPLOAD_BYTES": "100000",
        },
        workers=request.param,
    )
    srv.base, srv.articles, srv.secret_dir, srv.gradio_tmp, srv.index_result = (
        base,
        articles,
        secret_dir,
        gradio_tmp,
        index,
    )
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def texts_of(url: str) -> dict[str, str]:
    return {
        a["file"]: httpx.get(f"{url}/api/articles/{a['file']}").json()["text"]
        for a in httpx.get(url + "/api/articles").json()
    }


# --- 1. no 500 on questions the API accepts ------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"question": "\\ud800"}',
        '{"question": "Who is the \\udfff Energy Secretary?"}',
        '{"question": "\\ud83d"}',  # the first half of an emoji, alone
    ],
    ids=["lone-high", "low-inside", "half-emoji"],
)
def test_lone_surrogates_are_refused_with_422(hostile, raw):
    r = httpx.post(
        hostile.url + "/api/answer", content=raw.encode(), headers={"content-type": "application/json"}, timeout=60
    )
    assert_error_shape(r, 422)
    assert "surrogate" in r.json()["error"]


@pytest.mark.parametrize(
    "question",
    [
        "中" * 1000,  # 1,000 characters, ~1,000 tokens
        " ".join(["x"] * 490),  # 490 short words
        "Who is the Energy Secretary? " + "please " * 130,  # the question first, then padding
        "ø " * 499,
    ],
    ids=["cjk", "short-words", "padded", "latin"],
)
def test_questions_longer_than_the_reader_window_are_answered(hostile, question):
    r = httpx.post(hostile.url + "/api/answer", json={"question": question}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["warnings"] and "tokens" in body["warnings"][0]
    texts = texts_of(hostile.url)
    assert all(citation_is_valid(c, texts) for c in body["citations"] + body["context"])
    if question.startswith("Who is the Energy Secretary?"):
        assert body["answer"] == "Chris Wright"


@pytest.mark.parametrize(
    "history",
    [
        [{"question": "What was the codename of the nighttime operation in Caracas?", "answer": "Operation " * 999}],
        [{"question": "中" * 9000, "answer": "中" * 9000}],
        [{"question": "q", "answer": None}] * 20,
    ],
    ids=["long-answer", "cjk-turn", "twenty-turns"],
)
def test_follow_ups_with_huge_or_odd_history_are_answered(hostile, history):
    r = httpx.post(
        hostile.url + "/api/answer",
        content=json.dumps({"question": "When did it happen?", "history": history}).encode(),
        headers={"content-type": "application/json"},
        timeout=120,
    )
    assert r.status_code == 200, r.text[:300]
    texts = texts_of(hostile.url)
    assert all(citation_is_valid(c, texts) for c in r.json()["citations"])


def test_surrogates_in_history_are_refused_with_422(hostile):
    body = '{"question": "When did it happen?", "history": [{"question": "Who?", "answer": "\\ud800 broken"}]}'
    r = httpx.post(
        hostile.url + "/api/answer", content=body.encode(), headers={"content-type": "application/json"}, timeout=60
    )
    assert_error_shape(r, 422)
    assert "history.0.answer" in r.json()["error"]


def test_cli_refuses_undecodable_questions_and_reads_long_ones(hostile):
    index_dir = str(hostile.base / "index")
    bad = cli("ask", "Who is \udcff the Energy Secretary?".encode("utf-8", "surrogateescape"), "--index-dir", index_dir)
    assert bad.returncode == 2 and b"surrogate" in bad.stderr and b"Traceback" not in bad.stderr, bad.stderr
    long = cli("ask", "中" * 1000, "--index-dir", index_dir, "--json")
    assert long.returncode == 0, long.stderr.decode()[-2000:]
    assert json.loads(long.stdout)["warnings"]


# --- 2. nothing outside the articles folder -------------------------------------------------------


def test_index_skips_links_out_of_the_folder_naming_them(hostile):
    err = hostile.index_result.stderr.decode()
    for name in ("outside.txt", "loop.txt", "dangling.txt"):
        assert name in err, err
    assert "outside the articles folder" in err
    files = {a["file"] for a in httpx.get(hostile.url + "/api/articles").json()}
    assert "inside-link.txt" in files
    assert not {"outside.txt", "loop.txt", "dangling.txt", "dirlink/inner.txt", "dirlink/secret.txt"} & files
    skipped = {
        s["file"]
        for s in json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import json,pathlib; p=pathlib.Path({str(hostile.base / 'index')!r}); v=(p/'CURRENT').read_text().strip(); "
                    f"print(json.dumps(json.loads((p/'versions'/v/'manifest.json').read_text())['skipped']))",
                ],
                capture_output=True,
                text=True,
            ).stdout
        )
    }
    assert {"outside.txt", "loop.txt", "dangling.txt"} <= skipped


def test_files_behind_links_are_never_served_or_cited(hostile):
    for name in ("outside.txt", "loop.txt", "dirlink/secret.txt", "dirlink/inner.txt", "dirlink.txt"):
        r = httpx.get(f"{hostile.url}/api/articles/{name}")
        assert_error_shape(r, 404)
    r = httpx.post(
        hostile.url + "/api/answer", json={"question": "What is the secret launch code of the harbour?"}, timeout=60
    )
    assert r.status_code == 200 and CANARY not in r.text
    assert all(c["file"] in texts_of(hostile.url) for c in r.json()["citations"] + r.json()["context"])


@pytest.mark.parametrize(
    "name, words",
    [
        ("outside.txt", "link"),
        ("loop.txt", "link"),
        ("dangling.txt", "link"),
        ("dirlink", "link"),
        ("dirlink.txt", "link"),
        ("dirlink/secret.txt", "outside"),
        ("dirlink/inner.txt", "outside"),
    ],
)
def test_deleting_links_is_refused_and_touches_nothing(hostile, name, words):
    r = httpx.delete(f"{hostile.url}/api/articles/{name}?rebuild=false", headers={"Authorization": "Bearer tok"})
    assert_error_shape(r, 400)
    assert words in r.json()["error"]
    assert (hostile.secret_dir / "secret.txt").read_text(encoding="utf-8") == SECRET_TEXT
    assert (hostile.secret_dir / "inner.txt").is_file()
    assert os.path.lexists(hostile.articles / name.split("/")[0])


def test_uploads_never_write_through_a_link(hostile):
    for name in ("outside.txt", "dirlink.txt"):
        r = httpx.post(
            hostile.url + "/api/articles?rebuild=false&overwrite=true",
            files={"files": (name, b"Replaced by an attacker.")},
            headers={"Authorization": "Bearer tok"},
        )
        assert_error_shape(r, 409)
    assert (hostile.secret_dir / "secret.txt").read_text(encoding="utf-8") == SECRET_TEXT


# --- 3. the chat's upload panel takes only uploaded bytes ------------------------------------------


def gradio_call(url: str, data: list) -> str:
    """POST to Gradio's API route of the upload panel and read the whole event stream."""
    r = httpx.post(url + "/gradio_api/call/upload_and_rebuild", json={"data": data}, timeout=30)
    if r.status_code != 200:
        return r.text
    event = r.json()["event_id"]
    return httpx.get(f"{url}/gradio_api/call/upload_and_rebuild/{event}", timeout=60).text


def _files_in(folder):
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.parametrize("token", ["", "wrong", "tok"])
def test_server_paths_posted_as_chat_uploads_are_refused(hostile, token):
    secret = hostile.secret_dir / "secret.txt"
    before = set(os.listdir(hostile.articles))
    for path in (str(secret), "/etc/hostname", str(ROOT / "pyproject.toml")):
        out = gradio_call(
            hostile.url,
            [[{"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "stolen.txt"}], token, True],
        )
        assert "saved" not in out, out
        assert CANARY not in out
    assert set(os.listdir(hostile.articles)) == before
    copied = [p for p in _files_in(hostile.gradio_tmp) if CANARY.encode() in p.read_bytes()]
    assert not copied, copied
    r = httpx.get(hostile.url + f"/gradio_api/file={secret}")
    assert r.status_code in (403, 404) and CANARY not in r.text


def test_a_real_chat_upload_still_works_and_needs_the_token(hostile, tmp_path):
    from gradio_client import Client, handle_file

    story = tmp_path / "harbour-story.txt"
    story.write_text(
        "The new harbour bridge in Tallinn opened on 3 May 2021, said mayor Mihhail Kõlvart.\n", encoding="utf-8"
    )
    client = Client(hostile.url, verbose=False)
    refused = client.predict([handle_file(str(story))], "Bearer wrong", False, api_name="/upload_and_rebuild")
    assert "token" in refused and not (hostile.articles / story.name).exists()
    done = client.predict([handle_file(str(story))], "Bearer tok", False, api_name="/upload_and_rebuild")
    assert "saved harbour-story.txt" in html.unescape(done), done
    assert (hostile.articles / story.name).read_bytes() == story.read_bytes()
    deadline = time.time() + 120
    while time.time() < deadline and "harbour-story.txt" not in {
        a["file"] for a in httpx.get(hostile.url + "/api/articles").json()
    }:
        time.sleep(1)
    for _ in range(60):  # with several workers, each loads the published version within a second or two
        with httpx.Client(timeout=60) as c:
            r = c.post(
                hostile.url + "/api/answer", json={"question": "When did the new harbour bridge in Tallinn open?"}
            ).json()
        if r["found"]:
            break
        time.sleep(1)
    assert r["answer"] == "3 May 2021" and r["citations"][0]["file"] == "harbour-story.txt"


# --- 4. bodies are bounded by the bytes received ---------------------------------------------------


def chunks(total: int, size: int = 1 << 16, multipart: bool = False):
    """``total`` bytes in pieces, sent chunked (no Content-Length); optionally the start of a valid
    multipart file part, so the parsers keep reading until the limit stops them."""
    sent = 0
    if multipart:
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/api/answer", {"content-type": "application/json"}),
        ("/api/articles", {"content-type": "multipart/form-data; boundary=x", "Authorization": "Bearer tok"}),
        ("/api/rebuild", {"content-type": "application/json", "Authorization": "Bearer tok"}),
        ("/gradio_api/upload", {"content-type": "multipart/form-data; boundary=x"}),
        ("/gradio_api/queue/join", {"content-type": "application/json"}),
    ],
)
def test_chunked_bodies_over_the_limit_get_413(hostile, path, headers):
    multipart = headers["content-type"].startswith("multipart")
    r = httpx.post(hostile.url + path, content=chunks(12_000_000, multipart=multipart), headers=headers, timeout=60)
    assert r.status_code == 413, (path, r.status_code, r.text[:200])
    if path.startswith("/api"):
        assert_error_shape(r, 413)
    assert httpx.get(hostile.url + "/api/health").status_code == 200


def test_small_chunked_bodies_still_work(hostile):
    body = json.dumps({"question": "Who is the Energy Secretary?"}).encode()
    r = httpx.post(
        hostile.url + "/api/answer",
        content=iter([body[:10], body[10:]]),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["answer"] == "Chris Wright"


def test_declared_lengths_over_the_limit_get_413_before_the_body(hostile):
    host, port = hostile.url.removeprefix("http://").split(":")
    for path in ("/api/answer", "/api/articles"):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\n"
                f"Content-Length: 50000000\r\n\r\n{{}}".encode()
            )
            reply = b""
            while b'"error"' not in reply and (chunk := sock.recv(65536)):
                reply += chunk
            reply = reply.decode("latin-1")
        assert reply.startswith("HTTP/1.1 413"), reply[:200]
        assert '"error"' in reply


# --- 5. oversized files when indexing ----------------------------------------------------------------


def test_index_skips_oversized_files_and_non_files_with_progress(tmp_path):
    folder = tmp_path / "articles"
    shutil.copytree(SEEDS, folder)
    (folder / "huge.txt").write_bytes(b"All work and no play makes Jack a dull boy. " * 140_000)  # 6.3 MB
    (folder / "medium.txt").write_bytes(b"A medium article about the harbour. " * 2000)  # 72 kB
    os.mkfifo(folder / "pipe.txt")  # reading a FIFO would block forever
    t = time.monotonic()
    r = cli("index", str(folder), "--index-dir", str(tmp_path / "index"), timeout=240)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "huge.txt" in err and "too large" in err and "pipe.txt" in err and "not a regular file" in err
    assert "reading files" in err and "embedding" in err  # progress bars
    assert time.monotonic() - t < 200
    limited = cli(
        "index",
        str(folder),
        "--index-dir",
        str(tmp_path / "index2"),
        "--max-article-bytes",
        "60000",
        "--json",
        timeout=240,
    )
    report = json.loads(limited.stdout)
    assert {s["file"] for s in report["skipped"]} == {"huge.txt", "medium.txt", "pipe.txt"}, report["skipped"]


# --- 6. one error shape for every /api response -------------------------------------------------------


def test_every_api_error_has_the_error_shape(hostile):
    u, tok = hostile.url, {"Authorization": "Bearer tok"}
    cases = [
        (
            httpx.post(u + "/api/answer", content=b"[" * 100_000, headers={"content-type": "application/json"}),
            (400, 422),
        ),
        (
            httpx.post(
                u + "/api/answer", content=b'{"question": "caf\xe9 \xff"}', headers={"content-type": "application/json"}
            ),
            (400, 422),
        ),
        (httpx.post(u + "/api/answer", content=b'{"question": "x"}', headers={"content-type": "text/plain"}), 422),
        (
            httpx.post(
                u + "/api/articles",
                content=b"--x\r\nbroken",
                headers={**tok, "content-type": "multipart/form-data; boundary=x"},
            ),
            (400, 422),
        ),
        (
            httpx.post(u + "/api/articles", content=b"plain", headers={**tok, "content-type": "multipart/form-data"}),
            (400, 422),
        ),
        (
            httpx.post(
                u + "/api/articles?rebuild=false",
                headers=tok,
                files=[("files", (f"f{i}.txt", b"text")) for i in range(25)],
            ),
            413,
        ),
        (
            httpx.post(u + "/api/rebuild", content=b"{bad", headers={**tok, "content-type": "application/json"}),
            (400, 422),
        ),
        (httpx.get(u + "/api"), 404),
        (httpx.get(u + "/api/"), 404),
        (httpx.get(u + "/api/no/such/thing"), 404),
        (httpx.request("TRACE", u + "/api/answer"), 405),
        (httpx.request("TRACE", u + "/api/nope"), 405),
        (httpx.request("FOO", u + "/api/health"), 405),
        (httpx.get(u + "/api/answer"), 405),
        (httpx.get(u + "/api/articles/%00x.txt"), 400),
        (httpx.get(u + "/api/articles/..%2F..%2Fetc%2Fpasswd"), (400, 404)),
        (httpx.delete(u + "/api/articles/nope.txt", headers=tok), 404),
        (httpx.delete(u + "/api/articles/pyproject.toml", headers=tok), 404),
    ]
    for r, status in cases:
        assert_error_shape(r, status)
        body = r.json()  # FastAPI's own {"detail": [{loc, msg, type}]} never leaks: a 422 lists its problems as text
        assert "detail" not in body or (r.status_code == 422 and all(isinstance(p, str) for p in body["detail"])), body
    assert httpx.request("TRACE", u + "/api/answer").headers.get("allow")


# --- 7. forwarded headers --------------------------------------------------------------------------------


def test_forwarded_for_does_not_bypass_the_rate_limit(tmp_path, seed_index_dir):
    shutil.copytree(seed_index_dir, tmp_path / "index")
    srv = ServerProcess(SEEDS, tmp_path / "index", env={"ARTICLEQA_RATE_LIMIT_PER_MINUTE": "2"}).wait_ready()
    try:
        codes = [
            httpx.post(
                srv.url + "/api/answer",
                json={"question": "Who is the Energy Secretary?"},
                headers={"X-Forwarded-For": f"203.0.113.{i}", "Forwarded": f"for=198.51.100.{i}"},
                timeout=60,
            ).status_code
            for i in range(4)
        ]
        assert codes == [200, 200, 429, 429]
    finally:
        srv.stop()


def test_forwarded_for_is_believed_from_a_configured_proxy(tmp_path, seed_index_dir):
    shutil.copytree(seed_index_dir, tmp_path / "index")
    srv = ServerProcess(
        SEEDS,
        tmp_path / "index",
        env={"ARTICLEQA_RATE_LIMIT_PER_MINUTE": "1", "ARTICLEQA_TRUSTED_PROXIES": "127.0.0.1"},
    ).wait_ready()
    try:

        def ask(client):
            return httpx.post(
                srv.url + "/api/answer",
                json={"question": "Who is the Energy Secretary?"},
                headers={"X-Forwarded-For": client},
                timeout=60,
            ).status_code

        assert [ask("203.0.113.1"), ask("203.0.113.2"), ask("203.0.113.1")] == [200, 200, 429]
    finally:
        srv.stop()
