"""The deployable app (issue 27): `uvicorn app.main:app --workers 2` from the checkout, over one index.
A rebuild through one worker is seen by every worker; watching the folder runs in one worker only."""

from __future__ import annotations

import re
import shutil
import time

import httpx

from conftest import SEEDS, ServerProcess


def test_two_workers_answer_and_all_see_a_rebuild_made_through_one(tmp_path, seed_index_dir):
    articles, index_dir = tmp_path / "articles", tmp_path / "index"
    shutil.copytree(SEEDS, articles)
    shutil.copytree(seed_index_dir, index_dir)
    srv = ServerProcess(articles, index_dir, workers=2,
                        env={"ARTICLEQA_ADMIN_TOKEN": "t", "ARTICLEQA_WATCH": "1", "ARTICLEQA_READER_BATCHING": "0"})
    try:
        srv.wait_ready(timeout=300)
        pids, versions = set(), set()
        deadline = time.time() + 120
        while time.time() < deadline and len(pids) < 2:  # both workers up and answering
            with httpx.Client(timeout=60) as c:  # a new connection each time: the kernel spreads them over the workers
                r = c.post(srv.url + "/api/answer", json={"question": "Who is the Energy Secretary?"})
            assert r.status_code == 200 and r.json()["answer"] == "Chris Wright"
            versions.add(r.json()["index_version"])
            pids.add(r.headers.get("x-articleqa-worker"))
        assert len(pids) == 2, pids
        old = versions.pop()
        r = httpx.post(srv.url + "/api/articles", headers={"Authorization": "Bearer t"},
                       files={"files": ("port.txt", b"Port report\n\nThe harbour master of La Guaira is Ilse Marten.\n", "text/plain")},
                       timeout=60)
        assert r.status_code == 201, r.text
        deadline, seen = time.time() + 180, {}
        while time.time() < deadline:
            with httpx.Client(timeout=60) as c:
                r = c.post(srv.url + "/api/answer", json={"question": "Who is the harbour master of La Guaira?"})
            body = r.json()
            if body["index_version"] != old and body["found"] and "Ilse Marten" in body["answer"]:
                seen[r.headers.get("x-articleqa-worker")] = body["index_version"]
            if len(seen) == 2:
                break
            time.sleep(0.2)
        assert len(seen) == 2 and len(set(seen.values())) == 1, seen  # both workers answer from the new version
        log = srv.log()
        assert len(re.findall(r"watching .* for changes", log)) == 1, log  # the folder is watched once
        assert "background jobs (watch, feeds) run in another worker" in log
    finally:
        srv.stop()


def test_deployment_files_are_well_formed():
    """The compose file parses and runs the same app; the systemd unit passes systemd-analyze (where
    installed) but for the ExecStart binary, which lives on the target machine only."""
    import shutil as sh
    import subprocess

    import yaml

    from conftest import ROOT

    deploy = ROOT / "app" / "deploy"
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    assert {"milvus", "etcd", "minio", "articleqa"} <= set(compose["services"])
    app = compose["services"]["articleqa"]
    assert app["environment"]["ARTICLEQA_STORE"] == "milvus:http://milvus:19530" and "app.main:app" in app["command"]
    assert (ROOT / app["build"]["dockerfile"]).is_file()
    unit = (deploy / "articleqa.service").read_text()
    assert "uvicorn app.main:app" in unit and "--workers 2" in unit
    if sh.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(deploy / "articleqa.service")], capture_output=True, text=True)
        problems = [line for line in (r.stdout + r.stderr).splitlines() if line.strip() and "is not executable" not in line]
        assert not problems, problems
