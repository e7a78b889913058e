"""Throughput under concurrency: questions per second through the HTTP API with 1, 4 and 16
concurrent clients (a bounded load generator on 127.0.0.1 against a real server process).

With ``--workers 1 2`` the deployable app runs instead (``uvicorn app.main:app --workers N`` over the
same index), one server per worker count, all up at once and measured in turn: each concurrency level
is split into ``--rounds`` slices that alternate between the servers, so a slow patch of the machine
falls on all of them; the figures to read are the ratios to the first worker count.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from common import DEFAULT_SHARED, OUT, ROOT, ask_loop, print_figures, save, summary_ms

from articleqa.testing import ServerProcess


def measure(url: str, questions: list[str], clients: int, seconds: float, max_requests: int, first: int = 0) -> dict:
    """``clients`` threads asking in a loop for ``seconds``: latencies, errors and wall time."""
    lat, errors, count = [], [0], [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def may_continue():
        with lock:
            if count[0] >= max_requests:
                return False
            count[0] += 1
            return True

    def on_response(s, r, error):
        with lock:
            lat.append(s)
            errors[0] += error is not None or r.status_code != 200

    def client(i):
        ask_loop(url, questions, stop_at, on_response, first=first + i, step=clients, may_continue=may_continue)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": lat, "errors": errors[0], "seconds": time.perf_counter() - t0}


def level(parts: list[dict]) -> dict:
    lat = [x for p in parts for x in p["latencies"]]
    wall = sum(p["seconds"] for p in parts)
    return {
        "requests": len(lat),
        "errors": sum(p["errors"] for p in parts),
        "seconds": wall,
        "qps": len(lat) / wall,
        **summary_ms(lat),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=20.0, help="duration per concurrency level (and server)")
    ap.add_argument("--max-requests", type=int, default=2000, help="bound per level")
    ap.add_argument("--questions", type=Path, default=DEFAULT_SHARED / "data" / "seed-qa-visible.json")
    ap.add_argument("--index-dir", type=Path, default=ROOT / "index", help="index to serve [default: index/ of seeds]")
    ap.add_argument("--workers", type=int, nargs="*", help="serve app.main with these worker counts, interleaved")
    ap.add_argument("--rounds", type=int, default=4, help="with --workers: alternating slices per level")
    ap.add_argument("--name", default="throughput", help="result name (bench/out/NAME.json)")
    args = ap.parse_args(argv)

    questions = [q["question"] for q in json.loads(args.questions.read_text())["questions"]]
    if not args.workers:
        with ServerProcess(ROOT / "seeds", args.index_dir, log_path=OUT / "throughput-server.log") as server:
            levels = {
                str(n): level([measure(server.url, questions, n, args.seconds, args.max_requests)])
                for n in args.clients
            }
        result = {"levels": levels}
        save(args.name, result)
        print_figures(
            ["HTTP throughput (/api/answer, seed questions):"]
            + [
                f"  {n:>2} clients: {v['qps']:.1f} q/s, median {v['median_ms']} ms, p95 {v['p95_ms']} ms, errors {v['errors']}/{v['requests']}"
                for n, v in levels.items()
            ]
        )
        return result

    with ExitStack() as stack:
        servers = {
            w: stack.enter_context(
                ServerProcess(ROOT / "seeds", args.index_dir, workers=w, log_path=OUT / f"throughput-workers{w}.log")
            )
            for w in args.workers
        }
        parts = {w: {n: [] for n in args.clients} for w in args.workers}
        for n in args.clients:
            for r in range(args.rounds):
                order = args.workers if r % 2 == 0 else list(reversed(args.workers))
                for w in order:
                    parts[w][n].append(
                        measure(
                            servers[w].url,
                            questions,
                            n,
                            args.seconds / args.rounds,
                            args.max_requests // args.rounds,
                            first=r,
                        )
                    )
    by_workers = {str(w): {str(n): level(parts[w][n]) for n in args.clients} for w in args.workers}
    base = str(args.workers[0])
    for w, levels in by_workers.items():
        for n, v in levels.items():
            v["qps_ratio"] = v["qps"] / by_workers[base][n]["qps"] if by_workers[base][n]["qps"] else None
    result = {"workers": by_workers, "rounds": args.rounds, "entry": "uvicorn app.main:app --workers N"}
    save(args.name, result)
    lines = [
        f"HTTP throughput by server workers (uvicorn app.main:app, seed questions, {args.rounds} interleaved slices per level):"
    ]
    for w, levels in by_workers.items():
        for n, v in levels.items():
            lines.append(
                f"  {w} worker(s), {n:>2} clients: {v['qps']:.1f} q/s (x{v['qps_ratio']:.2f} of {base}), median {v['median_ms']} ms, "
                f"p95 {v['p95_ms']} ms, errors {v['errors']}/{v['requests']}"
            )
    print_figures(lines)
    return result


if __name__ == "__main__":
    main()
