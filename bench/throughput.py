"""Throughput under concurrency: questions per second through the HTTP API with 1, 4 and 16
concurrent clients (a bounded load generator on 127.0.0.1 against a real server process)."""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from common import DEFAULT_SHARED, OUT, ROOT, ask_loop, print_figures, save, summary_ms

from articleqa.testing import ServerProcess


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=20.0, help="duration per concurrency level")
    ap.add_argument("--max-requests", type=int, default=2000, help="bound per level")
    ap.add_argument("--questions", type=Path, default=DEFAULT_SHARED / "data" / "seed-qa-visible.json")
    ap.add_argument("--index-dir", type=Path, default=ROOT / "index", help="index to serve [default: index/ of seeds]")
    args = ap.parse_args(argv)

    questions = [q["question"] for q in json.loads(args.questions.read_text())["questions"]]
    with ServerProcess(ROOT / "seeds", args.index_dir, log_path=OUT / "throughput-server.log") as server:
        url = server.url
        levels = {}
        for n in args.clients:
            lat, errors, count = [], [0], [0]
            lock = threading.Lock()
            stop_at = time.monotonic() + args.seconds

            def may_continue():
                with lock:
                    if count[0] >= args.max_requests:
                        return False
                    count[0] += 1
                    return True

            def on_response(seconds, r, error):
                with lock:
                    lat.append(seconds)
                    errors[0] += error is not None or r.status_code != 200

            def client(i):
                ask_loop(url, questions, stop_at, on_response, first=i, step=n, may_continue=may_continue)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            levels[str(n)] = {"requests": len(lat), "errors": errors[0], "seconds": wall, "qps": len(lat) / wall, **summary_ms(lat)}
    result = {"levels": levels}
    save("throughput", result)
    print_figures(["HTTP throughput (/api/answer, seed questions):"] + [
        f"  {n:>2} clients: {v['qps']:.1f} q/s, median {v['median_ms']} ms, p95 {v['p95_ms']} ms, errors {v['errors']}/{v['requests']}"
        for n, v in levels.items()
    ])
    return result


if __name__ == "__main__":
    main()
