"""Helpers shared by the benchmark scripts: machine facts, timing, results on disk."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("ARTICLEQA_BENCH_OUT", ROOT / "bench" / "out"))
DEFAULT_SHARED = Path(os.environ.get("ARTICLEQA_SHARED", ROOT.parent / "shared"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT))


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


READER_FILES = ("model.safetensors", "articleqa_reader.json", "answerability.json")


def reader_fingerprint(folder: Path = ROOT / "models" / "reader") -> str:
    """12 hex digits of the sha256 over a reader's weights and calibration files (those it has): which reader a result is of."""
    import hashlib

    h = hashlib.sha256()
    for name in READER_FILES:
        f = folder / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict:
    ms = [1000 * s for s in seconds]
    return {
        "median_ms": round(statistics.median(ms), 2) if ms else None,
        "p95_ms": round(percentile(ms, 0.95), 2) if ms else None,
        "n": len(ms),
    }


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def save(name: str, result: dict) -> Path:
    """Write ``bench/out/<name>.json`` (read by run_all.py for the report)."""
    OUT.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "shipped_reader": reader_fingerprint(),
        **result,
    }
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    return path


def print_figures(lines: list[str]) -> None:
    """The figures, as the script's last lines."""
    print("\n".join(lines), flush=True)


def reader_spec(spec: str | Path) -> tuple[str, dict[str, str]]:
    """``DIR`` or ``DIR@key=value[,key=value]``: a reader folder and the settings its pipeline runs with
    beside the shipped one (e.g. ``runs/old@early_exit_margin=0.5``, the margin it shipped with)."""
    path, at, rest = str(spec).rpartition("@")
    if not at or "=" not in rest:
        return str(spec), {}
    from articleqa.config import Settings

    pairs = [kv.split("=", 1) for kv in rest.split(",") if kv]
    if any(len(kv) != 2 or not kv[0] for kv in pairs):
        raise SystemExit(f"{spec}: after @, settings as key=value[,key=value] (e.g. @early_exit_margin=0.5)")
    unknown = [
        k for k, _ in pairs if k not in Settings.model_fields
    ]  # Settings ignores unknown keys: a typo would go unseen
    if unknown:
        raise SystemExit(f"{spec}: no such setting {', '.join(unknown)} (see articleqa.config.Settings)")
    return path, dict(pairs)


def pipeline_for(index_dir: Path, articles_dir: Path | None = None, **settings):
    from articleqa.config import Settings
    from articleqa.pipeline import QAPipeline

    s = Settings(index_dir=index_dir, articles_dir=articles_dir or ROOT / "seeds", **settings)
    return QAPipeline.from_settings(s)


def squad_corpus_index(squad_file: Path, name: str | None = None) -> tuple[Path, Path, dict]:
    """SQuAD articles written as files (one per article) and indexed, cached under bench/out/<name>/
    (the same corpus ``train-reader`` calibrates on). Returns (articles folder, index folder,
    paragraph -> (file, start, end))."""
    from articleqa.training.squad import index_squad_corpus, load_squad

    return index_squad_corpus(load_squad(squad_file), OUT / (name or Path(squad_file).stem))


def ask_loop(
    url: str,
    questions: list[str],
    stop_at: float,
    on_response,
    first: int = 0,
    step: int = 1,
    may_continue=lambda: True,
) -> None:
    """One load-test client: POST /api/answer with ``questions[first], questions[first + step], ...``
    (cycling) until ``stop_at`` (time.monotonic) or ``may_continue()`` is false; calls
    ``on_response(seconds, response or None, error or None)`` after each request."""
    import httpx

    with httpx.Client(timeout=120) as c:
        k = first
        while time.monotonic() < stop_at and may_continue():
            q = questions[k % len(questions)]
            k += step
            t = time.perf_counter()
            try:
                r = c.post(url + "/api/answer", json={"question": q})
            except httpx.HTTPError as exc:
                on_response(time.perf_counter() - t, None, exc)
                continue
            on_response(time.perf_counter() - t, r, None)


def heldout_titles() -> list[str]:
    """The reader's validation articles (never trained on), from its calibration file."""
    meta = ROOT / "models" / "reader" / "articleqa_reader.json"
    if meta.is_file():
        return json.loads(meta.read_text(encoding="utf-8")).get("validation_articles", [])
    return []


def fmt(value, digits: int = 1) -> str:
    """A figure for printing; '–' where there is none."""
    return "–" if value is None else f"{value:.{digits}f}"
