"""Bounded load test on 127.0.0.1: N concurrent clients ask the visible seed questions for a fixed
time against a real server, with a full index rebuild in the middle. Reports failed requests, invalid
citations, and latency (median, p95). Exits non-zero if any request failed or any citation was wrong."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import DEFAULT_SHARED, ROOT, ask_loop, print_figures, save, summary_ms

from articleqa.testing import ServerProcess


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--questions", type=Path, default=DEFAULT_SHARED / "data" / "seed-qa-visible.json")
    args = ap.parse_args(argv)
    import httpx

    questions = [q["question"] for q in json.loads(args.questions.read_text())["questions"]]
    tmp = Path(tempfile.mkdtemp(prefix="articleqa-load-"))
    shutil.copytree(ROOT / "seeds", tmp / "articles")
    lat, failures, bad_citations, versions = [], [], [], set()
    lock = threading.Lock()
    texts: dict[str, str] = {}
    with ServerProcess(
        tmp / "articles", tmp / "index", env={"ARTICLEQA_ADMIN_TOKEN": "load-test"}, log_path=tmp / "server.log"
    ) as server:
        url = server.url
        for a in httpx.get(url + "/api/articles").json():
            texts[a["file"]] = httpx.get(url + "/api/articles/" + a["file"]).json()["text"]
        stop_at = time.monotonic() + args.seconds

        def on_response(seconds, r, error):
            with lock:
                if error is not None:
                    failures.append(repr(error))
                    return
                lat.append(seconds)
                if r.status_code != 200:
                    failures.append((r.status_code, r.text[:200]))
                    return
                body = r.json()
                versions.add(body.get("index_version"))
                for cit in body["citations"]:
                    if texts.get(cit["file"], "")[cit["start"] : cit["end"]] != cit["quote"]:
                        bad_citations.append(cit)

        def client(i):
            ask_loop(url, questions, stop_at, on_response, first=i)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds / 2)
        rebuild = httpx.post(url + "/api/rebuild", json={"full": True}, headers={"Authorization": "Bearer load-test"})
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        status = httpx.get(url + "/api/rebuild").json()
    result = {
        "clients": args.clients,
        "seconds": wall,
        "requests": len(lat),
        "failed": len(failures),
        "invalid_citations": len(bad_citations),
        "qps": len(lat) / wall,
        "rebuild_status": rebuild.status_code,
        "rebuild_state": status["state"],
        "index_versions_seen": len(versions),
        **summary_ms(lat),
        "failures": failures[:10],
    }
    save("load", result)
    print_figures(
        [
            f"load: {args.clients} clients for {wall:.0f}s with a full rebuild in the middle (rebuild {status['state']}, {len(versions)} index versions served)",
            f"  {len(lat)} requests, {len(failures)} failed, {len(bad_citations)} invalid citations; {result['qps']:.1f} q/s, median {result['median_ms']} ms, p95 {result['p95_ms']} ms",
        ]
    )
    shutil.rmtree(tmp, ignore_errors=True)
    if failures or bad_citations:
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
