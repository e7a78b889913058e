"""Command line: a thin layer over the library (``articleqa --help``)."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help="Question answering over a folder of news articles, with exact cited spans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexDirOpt = Annotated[Optional[Path], typer.Option("--index-dir", help="Index folder [env ARTICLEQA_INDEX_DIR; default index/]")]
StoreOpt = Annotated[Optional[str], typer.Option("--store", help="Where the index lives: faiss (the index folder) or milvus:<uri>, a milvus-lite file (milvus:./index/milvus.db) or a server (milvus:http://host:19530, token in ARTICLEQA_MILVUS_TOKEN) [env ARTICLEQA_STORE; default faiss].")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "sentence_transformers", "transformers", "urllib3", "filelock", "faiss.loader", "faiss", "bm25s", "pymilvus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _version(value: bool) -> None:
    if value:
        from articleqa import __version__

        typer.echo(f"articleqa {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _setup_logging(verbose)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


ArticlesOpt = Annotated[Optional[Path], typer.Option("--articles", help="Articles folder [env ARTICLEQA_ARTICLES_DIR; default seeds/]")]


def _pipeline(**overrides):
    from articleqa.config import get_settings
    from articleqa.pipeline import QAPipeline

    try:
        settings = get_settings(**overrides)
    except Exception as exc:  # pydantic validation of env variables
        _fail(f"bad configuration: {exc}")
    return QAPipeline.from_settings(settings)


@app.command("index")
def index_cmd(
    folder: Annotated[Optional[Path], typer.Argument(help="Articles folder [default: seeds/ or ARTICLEQA_ARTICLES_DIR].")] = None,
    index_dir: IndexDirOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Re-embed everything, even unchanged files.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Fail at once if another rebuild is running.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the build report as JSON.")] = False,
    max_article_bytes: Annotated[Optional[int], typer.Option("--max-article-bytes", help="Skip larger files with a warning [env ARTICLEQA_MAX_ARTICLE_BYTES; default 5000000].")] = None,
    store: StoreOpt = None,
    embed_with: Annotated[Optional[str], typer.Option("--embed-with", help="process (default) or ray: chunk and embed as a Ray Data job, local or on --ray-address [env ARTICLEQA_EMBED_WITH; needs pip install 'articleqa[scale]'].")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster for --embed-with ray: HEAD_IP:6379 (its GCS), ray://host:10001 or auto [env RAY_ADDRESS; default: a local Ray]. With token authentication (ray start's default) set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH.")] = None,
) -> None:
    """Build or incrementally update the index of an articles folder.

    Unchanged files keep their vectors; new and changed files are embedded; deleted files are dropped.
    A different embedding model or chunking forces a full rebuild. The new version is published
    atomically: a crash never leaves a broken index behind.
    """
    from articleqa.stores import IndexStoreError

    pipeline = _pipeline(articles_dir=folder, index_dir=index_dir, max_article_bytes=max_article_bytes, store=store,
                         embed_with=embed_with, ray_address=ray_address)
    settings = pipeline.settings
    if not settings.articles_dir.is_dir():
        _fail(f"articles folder not found: {settings.articles_dir}")
    if settings.embed_with == "ray":
        from articleqa.ray_embedding import RayNotInstalled, require_ray

        try:
            require_ray()
        except RayNotInstalled as exc:
            _fail(str(exc))
    from tqdm.contrib.logging import logging_redirect_tqdm

    bars = ProgressBars(disable=json_out)
    try:  # log lines go through tqdm, so a bar is not broken in two by a line printed under it
        with logging_redirect_tqdm():
            report = pipeline.build_index(full=full, wait=not no_wait, on_progress=bars.update)
    except IndexStoreError as exc:
        _fail(str(exc), code=3)
    except OSError as exc:
        _fail(f"rebuild failed, the published index is unchanged: {exc}", code=3)
    finally:
        bars.close()
    if json_out:
        typer.echo(json.dumps(report.to_dict()))
    else:
        typer.echo(report.summary())


def _rebuild_after_adding(pipeline, json_out: bool) -> dict | None:
    """The incremental rebuild after ``add``/``feed`` saved files; exit 3 when it fails."""
    from articleqa.stores import IndexStoreError

    try:
        report = pipeline.build_index()
    except (IndexStoreError, OSError) as exc:
        _fail(f"saved, but the rebuild failed (the published index is unchanged): {exc}", code=3)
    if not json_out:
        typer.echo(report.summary())
    return report.to_dict()


@app.command("add")
def add_cmd(
    urls: Annotated[list[str], typer.Argument(help="http(s) URLs of news pages or PDFs.")],
    articles: ArticlesOpt = None,
    index_dir: IndexDirOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was saved and the rebuild report as JSON.")] = False,
) -> None:
    """Fetch news pages (or PDFs) by URL into the articles folder, then update the index.

    Each page is saved under web/<host>/, with a 'saved from url' first line, as UTF-8 (decoded by its
    declared charset, else UTF-8, else a detected encoding), and indexed as its article; its citations
    carry the URL. A PDF is saved as sent, its URL in a <name>.source.json beside it. Limits: 5 MB, 15 s, 5 redirects, HTML/PDF
    only; private and loopback addresses are refused unless ARTICLEQA_FETCH_ALLOW_PRIVATE=1. Exit 0
    when every URL was added, 1 when some failed, 2 when none could be.
    """
    from articleqa.fetch import FetchError, Fetcher, save_url

    pipeline = _pipeline(articles_dir=articles, index_dir=index_dir)
    folder = pipeline.settings.articles_dir
    if not folder.is_dir():
        _fail(f"articles folder not found: {folder}")
    fetcher = Fetcher()
    saved, errors = [], []
    for url in urls:
        try:
            name = save_url(fetcher, url, folder)
            saved.append(name)
            if not json_out:
                typer.echo(f"saved {url} -> {folder / name}")
        except FetchError as exc:
            errors.append({"url": url, "error": str(exc)})
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    report = _rebuild_after_adding(pipeline, json_out) if saved else None
    if json_out:
        typer.echo(json.dumps({"saved": saved, "errors": errors, "rebuild": report}))
    if errors:
        raise typer.Exit(1 if saved else 2)


@app.command("feed")
def feed_cmd(
    url: Annotated[str, typer.Argument(help="An RSS or Atom feed URL.")],
    articles: ArticlesOpt = None,
    index_dir: IndexDirOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the feed report as JSON.")] = False,
) -> None:
    """Add the entries of an RSS/Atom feed that are not in the articles folder yet, then update the index.

    Run it again (or `serve --feed URL --feed-every 15m`) to follow the feed: entries already saved are
    skipped. At most ARTICLEQA_FEED_MAX_NEW new entries (newest first) are fetched per run, the rest
    next run; a feed over ARTICLEQA_FEED_MAX_BYTES or one declaring XML entities is refused. Exit 0 when
    every new entry was added, 1 when some failed, 2 when the feed cannot be read or is refused.
    """
    from dataclasses import asdict

    from articleqa.fetch import FetchError, Fetcher, follow_feed

    pipeline = _pipeline(articles_dir=articles, index_dir=index_dir)
    folder = pipeline.settings.articles_dir
    if not folder.is_dir():
        _fail(f"articles folder not found: {folder}")
    try:
        report = follow_feed(Fetcher(), url, folder, max_new=pipeline.settings.feed_max_new,
                             max_bytes=pipeline.settings.feed_max_bytes)
    except FetchError as exc:
        _fail(str(exc))
    for e in report.errors:
        typer.secho(f"error: {e['error']}", err=True, fg=typer.colors.RED)
    if not json_out:
        left = f", {report.left} left for the next run (at most {pipeline.settings.feed_max_new} per run)" if report.left else ""
        typer.echo(f"{url}: {report.entries} entries, {len(report.saved)} new, {report.known} already here, "
                   f"{len(report.errors)} failed{left}")
    rebuild = _rebuild_after_adding(pipeline, json_out) if report.saved else None
    if json_out:
        typer.echo(json.dumps({**asdict(report), "rebuild": rebuild}))
    if report.errors:
        raise typer.Exit(1)


class ProgressBars:
    """One tqdm bar per build stage that has work to count: reading files, chunking, embedding."""

    STAGES = {  # stage -> (label, unit, done field, total field)
        "reading": ("reading files", "file", "files_read", "files_total"),
        "chunking": ("chunking {files_to_embed} file(s)", "file", "files_chunked", "files_to_embed"),
        "embedding": ("embedding {files_to_embed} file(s)", "passage", "passages_embedded", "passages_to_embed"),
    }

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.stage: str | None = None
        self.bar = None

    def update(self, p) -> None:
        from tqdm.auto import tqdm

        spec = self.STAGES.get(p.stage)
        if p.stage != self.stage:
            self.close()
            self.stage = p.stage
        if spec and self.bar is None and getattr(p, spec[3]):
            self.bar = tqdm(total=getattr(p, spec[3]), desc=spec[0].format(**vars(p)), unit=spec[1], disable=self.disable, leave=True)
        if self.bar is not None and spec:
            self.bar.total = getattr(p, spec[3]) or self.bar.total
            self.bar.n = getattr(p, spec[2])
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _read_questions(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(data, dict) and isinstance(data.get("questions"), list):  # the seed-qa file format
        data = [q.get("question") if isinstance(q, dict) else q for q in data["questions"]]
    if not isinstance(data, list) or not all(isinstance(q, str) for q in data):
        raise ValueError("expected one question per line or a JSON list of strings")
    return data


def _cite_line(n: int, c) -> str:
    source = f"{c.title} ({c.date})" if c.title and c.date else c.title or c.date or ""
    if c.author:
        source = f"{source}, {c.author}" if source else c.author
    page = f" (page {c.page})" if c.page else ""
    line = f"[{n}] {c.file}:{c.start}-{c.end}{page}  \"{c.quote}\"" + (f"  — {source}" if source else "")
    return line + (f"\n      {c.url}" if c.url else "")


def _print_answer(answer, explain: bool = False) -> None:
    if answer.parts:
        for n, part in enumerate(answer.parts, 1):
            typer.secho(f"({n}) {part.question}", fg=typer.colors.CYAN)
            _print_answer(part, explain)
        return
    if not answer.found:
        typer.secho(f"{answer.message} (confidence {answer.confidence:.2f})", fg=typer.colors.YELLOW)
        if answer.context:
            typer.echo("Closest passages:")
            for c in answer.context:
                snippet = " ".join(c.quote.split())[:160]
                typer.echo(f"  {c.file}:{c.start}-{c.end}  {snippet}...")
    else:
        if answer.tentative:
            typer.secho(answer.message, fg=typer.colors.YELLOW)
        typer.secho(answer.answer, bold=not answer.tentative)
        typer.echo(f"confidence {answer.confidence:.2f}" + (" (unsure)" if answer.tentative else ""))
        for n, c in enumerate(answer.citations, 1):
            typer.echo(_cite_line(n, c))
        if answer.disagreements:
            typer.secho("Sources differ:", fg=typer.colors.YELLOW)
            for d in answer.disagreements:
                typer.echo(f"  {d.answer} (confidence {d.confidence:.2f})")
                for n, c in enumerate(d.citations, 1):
                    typer.echo("    " + _cite_line(n, c))
    for w in answer.warnings:
        typer.secho(f"note: {w}", fg=typer.colors.YELLOW)
    if explain and answer.trace:
        _print_trace(answer.trace)


def _print_trace(t) -> None:
    typer.secho("Why this answer?", bold=True)
    typer.echo(f"  query: {t.retrieval_query}")
    if t.question != t.retrieval_query:
        typer.echo(f"  reader read: {t.question}")
    typer.echo(f"  decided by: {t.rule} — {t.explanation}")
    typer.echo(f"  {'#':>2} {'dense':>5} {'bm25':>5} {'fused':>8} {'margin':>7}  {'role':<15} passage -> span")
    for p in t.passages:
        margin = f"{p.margin:7.2f}" if p.margin is not None else "      -"
        typer.echo(f"  {p.rank:>2} {p.dense_rank or '-':>5} {p.bm25_rank or '-':>5} {p.fused_score:8.4f} {margin}  "
                   f"{p.role:<15} {p.file}:{p.passage_start}-{p.passage_end} -> \"{p.span}\"")


@app.command("ask")
def ask_cmd(
    question: Annotated[Optional[str], typer.Argument(help="The question.")] = None,
    questions: Annotated[Optional[Path], typer.Option("--questions", help="File of questions: one per line, or a JSON list of strings.")] = None,
    index_dir: IndexDirOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Passages to read [env ARTICLEQA_TOP_K; default 5].")] = None,
    retrieval: Annotated[Optional[str], typer.Option(help="hybrid (default), dense or bm25.")] = None,
    reader: Annotated[Optional[str], typer.Option("--reader", help="Reader model folder or hub id [default: models/reader].")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the Answer as JSON (one object per line).")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Show why: retrieval ranks, the reader's span and margin per passage, the threshold and the deciding rule.")] = False,
    store: StoreOpt = None,
) -> None:
    """Answer a question from the indexed articles, citing file and character span.

    Citations are file:start-end with offsets in Unicode characters of the article's text, with the
    article's title and date. A question with two parts ("Who ..., and when ...?") gets one answer per
    part; articles that give different answers are listed under "Sources differ".
    """
    from articleqa.pipeline import QuestionError
    from articleqa.stores import IndexStoreError

    if (question is None) == (questions is None):
        _fail("give a QUESTION or --questions FILE (one of them)")
    if questions is not None:
        if not questions.is_file():
            _fail(f"questions file not found: {questions}")
        try:
            asked = _read_questions(questions)
        except (ValueError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {questions}: {exc}")
    else:
        asked = [question]
    pipeline = _pipeline(index_dir=index_dir, top_k=top_k, retrieval=retrieval, reader_model=reader, store=store)
    try:
        pipeline.warm_up()
    except (IndexStoreError, FileNotFoundError, OSError) as exc:
        _fail(str(exc), code=3)
    failed = 0
    for q in asked:
        try:
            answer = pipeline.ask(q, explain=explain)
        except QuestionError as exc:
            failed += 1
            if json_out:
                typer.echo(json.dumps({"question": q, "error": str(exc)}))
            else:
                typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            continue
        if json_out:
            data = answer.model_dump(exclude={"context"} if answer.found else set())
            typer.echo(json.dumps(data, ensure_ascii=False))
        else:
            if len(asked) > 1:
                typer.secho(f"Q: {q}", fg=typer.colors.CYAN)
            _print_answer(answer, explain)
    if failed and len(asked) == 1:
        raise typer.Exit(2)


@app.command("verify")
def verify_cmd(
    file: Annotated[Path, typer.Argument(help="A saved answer (JSON from `ask --json` or /api/answer), a JSON list of citations, or {\"citations\": [...]}.")],
    articles: Annotated[Optional[Path], typer.Option("--articles", help="Check against the files of this folder as they are now, instead of the index.")] = None,
    index_dir: IndexDirOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    store: StoreOpt = None,
) -> None:
    """Check that saved citations still hold: valid, stale (the article changed: the quote is at the same
    span, moved to another span, or gone), missing (deleted) or invalid (never at that span).

    Against the published index by default (what the server answers from), or with --articles against
    the files on disk. Exit code 0 when every citation is valid, 1 when any is not, 2 for a bad file,
    3 when there is no index.
    """
    from articleqa.config import get_settings
    from articleqa.stores import IndexStoreError, settings_store
    from articleqa.verify import FolderArticles, citations_of, summary, verify_citations

    if not file.is_file():
        _fail(f"file not found: {file}")
    try:
        text = file.read_text(encoding="utf-8")
        data = [json.loads(line) for line in text.splitlines() if line.strip()] if file.suffix == ".jsonl" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {file}: {exc}")
    cites = [c for d in data for c in citations_of(d)] if file.suffix == ".jsonl" else citations_of(data)
    if not cites:
        _fail(f"no citations in {file}: expected an answer with \"citations\" or a list of citations")
    try:
        settings = get_settings(index_dir=index_dir, store=store)
    except Exception as exc:
        _fail(f"bad configuration: {exc}")
    if articles is not None:
        if not articles.is_dir():
            _fail(f"articles folder not found: {articles}")
        source, against = FolderArticles(articles, settings.max_article_bytes), f"the files in {articles}"
    else:
        try:
            index = settings_store(settings).load()
        except IndexStoreError as exc:
            _fail(str(exc), code=3)
        source, against = index.articles, f"index version {index.version}"
    try:
        checks = verify_citations(cites, source)
    except ValueError as exc:  # pydantic: a citation without file/start/end/quote
        _fail(f"bad citation in {file}: {exc}")
    counts = summary(checks)
    if json_out:
        typer.echo(json.dumps({"against": against, "counts": counts, "results": [c.model_dump() for c in checks]}, ensure_ascii=False))
    else:
        colors = {"valid": typer.colors.GREEN, "stale": typer.colors.YELLOW, "missing": typer.colors.RED, "invalid": typer.colors.RED}
        for c in checks:
            typer.secho(f"{c.status:<8}", fg=colors[c.status], nl=False)
            typer.echo(f" {c.file}:{c.start}-{c.end} \"{c.quote[:60]}\"  {c.message}")
        typer.echo(f"checked {len(checks)} citation(s) against {against}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    if counts["valid"] != len(checks):
        raise typer.Exit(1)


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 7860,
    index_dir: IndexDirOpt = None,
    articles: ArticlesOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Rebuild when files in the articles folder change.")] = False,
    feed: Annotated[Optional[list[str]], typer.Option("--feed", help="Follow this RSS/Atom feed (repeatable): new entries are added and indexed.")] = None,
    feed_every: Annotated[Optional[str], typer.Option("--feed-every", help="How often --feed is fetched: e.g. 15m, 1h, 90s [env ARTICLEQA_FEED_EVERY; default 15m].")] = None,
    trusted_proxies: Annotated[Optional[str], typer.Option("--trusted-proxies", help="Comma-separated proxy addresses whose X-Forwarded-For is believed [env ARTICLEQA_TRUSTED_PROXIES; default none].")] = None,
    store: StoreOpt = None,
) -> None:
    """Serve the chat UI (/) and the HTTP API (/api, docs at /docs) in one process."""
    from articleqa.config import get_settings

    try:
        settings = get_settings(index_dir=index_dir, articles_dir=articles, trusted_proxies=trusted_proxies, store=store,
                                watch=watch or None, feeds=",".join(feed) if feed else None, feed_every=feed_every)
    except Exception as exc:
        _fail(f"bad configuration: {exc}")
    from articleqa.serve.jobs import parse_interval
    from articleqa.serve.server import run_server

    try:
        parse_interval(settings.feed_every)
    except ValueError as exc:
        _fail(f"--feed-every: {exc}")
    try:
        run_server(settings, host=host, port=port)
    except (FileNotFoundError, OSError) as exc:
        _fail(str(exc), code=3)


@app.command("watch")
def watch_cmd(
    folder: Annotated[Optional[Path], typer.Argument(help="Articles folder [default: seeds/].")] = None,
    index_dir: IndexDirOpt = None,
    debounce: Annotated[float, typer.Option(help="Seconds of quiet before a rebuild starts.")] = 2.0,
    store: StoreOpt = None,
) -> None:
    """Rebuild the index whenever files in the articles folder change (Ctrl-C to stop)."""
    from articleqa.serve.jobs import watch_and_rebuild

    pipeline = _pipeline(articles_dir=folder, index_dir=index_dir, store=store)
    if not pipeline.settings.articles_dir.is_dir():
        _fail(f"articles folder not found: {pipeline.settings.articles_dir}")
    watch_and_rebuild(pipeline, debounce=debounce, on_report=lambda r: typer.echo(r.summary()))


@app.command("train-reader")
def train_reader_cmd(
    train: Annotated[list[Path], typer.Option("--train", help="SQuAD-format JSON file(s) to train on (1.1 and/or 2.0).")],
    out: Annotated[Path, typer.Option("--out", help="Where the shipped reader is written (checkpoints in OUT/checkpoint).")],
    val_articles: Annotated[int, typer.Option("--val-articles", help="Hold out this many whole articles of --train for validation.")] = 4,
    val: Annotated[Optional[list[Path]], typer.Option("--val", help="Validation SQuAD file(s) instead of held-out articles.")] = None,
    test_articles: Annotated[int, typer.Option("--test-articles", help="Also hold out this many whole articles as a test set: never trained on, never used for a choice (epoch, threshold); the final model's EM/F1 on them goes into the model card.")] = 0,
    val_title: Annotated[Optional[list[str]], typer.Option("--val-title", help="Hold out this article (by SQuAD title; repeatable) for validation instead of --val-articles.")] = None,
    test_title: Annotated[Optional[list[str]], typer.Option("--test-title", help="Hold out this article (by SQuAD title; repeatable) as the test set instead of --test-articles.")] = None,
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Encoder to start from [default: bundled all-MiniLM-L6-v2].")] = None,
    epochs: Annotated[float, typer.Option(help="Training epochs (fractions allowed).")] = 3.0,
    max_length: Annotated[int, typer.Option(help="Tokens per window (question + context).")] = 256,
    stride: Annotated[int, typer.Option(help="Overlap of consecutive windows, in tokens.")] = 96,
    lr: Annotated[float, typer.Option(help="Peak learning rate (linear warm-up and decay).")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 16,
    layer_decay: Annotated[float, typer.Option(help="Layer-wise learning-rate decay (1.0 = off).")] = 1.0,
    unanswerable_fraction: Annotated[float, typer.Option(help="Share of unanswerable training questions used as [CLS] targets.")] = 1.0,
    max_answer_tokens: Annotated[int, typer.Option(help="Longest answer span considered when decoding.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (data order, head init, split).")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps.")] = 200,
    bf16: Annotated[str, typer.Option(help="bf16 autocast: auto (AMX/AVX512-BF16 CPU or GPU), yes, no.")] = "auto",
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N steps (smoke tests); resume later continues.")] = None,
    cloze_warmup: Annotated[int, typer.Option(help="First train one epoch on up to N synthetic cloze questions from the training paragraphs (0 = off).")] = 0,
    negatives: Annotated[int, typer.Option(help="Per answerable question, this many similar paragraphs of its article without the answer, trained as no-answer (0 = off).")] = 0,
    negatives_share: Annotated[float, typer.Option(help="With --negatives: the share of answerable questions (a seeded sample) that get them.")] = 1.0,
    entity_swaps: Annotated[int, typer.Option(help="Per answerable question, this many unanswerable twins on its own paragraph: a name, year or number of the question swapped for one of its article the paragraph never mentions (0 = off).")] = 0,
    antonym_swaps: Annotated[int, typer.Option(help="Per answerable question, this many unanswerable twins on its own paragraph: a word of the question swapped for its opposite (western/eastern, largest/smallest, before/after) that the paragraph never uses (0 = off).")] = 0,
    negation_twins: Annotated[int, typer.Option(help="1 = per answerable question whose paragraph never negates anything, an unanswerable twin on that paragraph: the question negated ('Who was the first ...?' -> 'Who was not the first ...?'); 0 = off.")] = 0,
    condition_twins: Annotated[int, typer.Option(help="Per answerable question that asks no time, this many unanswerable twins on its own dated paragraph: 'in YEAR' added with a year of its article the paragraph never mentions (0 = off).")] = 0,
    passages: Annotated[int, typer.Option(help="Train on what the pipeline reads: per answerable question, the index passage (~150-word chunk) of its article holding its answer, plus this many passages of the article that BM25 ranks closest to the question and that lack the answer, as no-answer (0 = off).")] = 0,
    passages_share: Annotated[float, typer.Option(help="With --passages: the share of answerable questions (a seeded sample) that get them.")] = 1.0,
    shared_norm: Annotated[float, typer.Option(help="With --passages: weight of a loss whose span softmax spans all passages of a question at once (shared normalization), so span scores compare across passages as the pipeline compares them (0 = off).")] = 0.0,
    attention_dropout: Annotated[Optional[float], typer.Option(help="Dropout on attention weights (default: the base model's, 0.1 for BERT). 0 lets attention run PyTorch's fused kernel in training too: a third to a half of the time per step on 2 CPU cores (bench/train_step.py).")] = None,
    teacher: Annotated[Optional[Path], typer.Option(help="Self-distillation: a trained reader (same tokenizer) whose start/end distributions are learned too.")] = None,
    distill_weight: Annotated[float, typer.Option(help="With --teacher: share of the loss on the teacher's distributions.")] = 0.5,
    distill_temperature: Annotated[float, typer.Option(help="With --teacher: softmax temperature of both distributions.")] = 2.0,
    no_answer_rule: Annotated[str, typer.Option(help="Pipeline 'not found' threshold, measured through retrieval on the validation questions: refusal-budget (refuse at most --refusal-budget of the answerable ones), pipeline (best expected F1, see --unanswerable-share) or paragraph-f1 (SQuAD 2.0 F1-optimal on the validation paragraphs).")] = "refusal-budget",
    refusal_budget: Annotated[float, typer.Option(help="For --no-answer-rule refusal-budget: the largest share of answerable questions that may be answered 'not found'.")] = 0.10,
    unanswerable_share: Annotated[float, typer.Option(help="For --no-answer-rule pipeline: the share of user questions assumed to have no answer in the articles.")] = 0.25,
    keep_best: Annotated[bool, typer.Option("--keep-best/--keep-last", help="Ship the epoch with the best validation F1 (default) or the last one.")] = True,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore an existing checkpoint and start over.")] = False,
    no_export: Annotated[bool, typer.Option("--no-export", help="Keep the fp32 model in OUT/final; skip calibration and model card.")] = False,
    export_stopped: Annotated[bool, typer.Option("--export-stopped", help="With --max-steps: export the run where it stops as a stage of its own (test figure, calibration, model card; its record keeps the step it stopped at) instead of leaving the fp32 model in OUT/final for a later resume. Run again with it on a run already stopped there to export it without training.")] = False,
    tries: Annotated[Optional[Path], typer.Option(help="JSON list of earlier tries to record in the model card.")] = None,
    corpus: Annotated[Optional[list[Path]], typer.Option("--corpus", help="SQuAD file(s) whose articles (with the validation articles) form the open corpus the 'not found' threshold is calibrated on [default: every training and validation article; with the whole training set, name a smaller file such as the dev set].")] = None,
) -> None:
    """Train the extractive reader on SQuAD data and ship it (fp16 weights + calibration + model card).

    Interrupted runs resume from OUT/checkpoint when started again with the same settings.
    """
    from articleqa.config import bundled_embedding_model, get_settings
    from articleqa.training.export import export_reader
    from articleqa.training.squad import load_squad, split_articles3, split_by_titles
    from articleqa.training.train import TrainConfig, attention_dropout_options, base_run_info, cloze_warmup as run_cloze_warmup, measure_test, train_reader

    _check_no_answer_options(no_answer_rule, refusal_budget, unanswerable_share)
    if export_stopped and max_steps is None:
        _fail("--export-stopped exports a run stopped by --max-steps: give --max-steps too")
    for f in [*train, *(val or [])]:
        if not f.is_file():
            _fail(f"training/validation file not found: {f}")
    if teacher is not None and not teacher.is_dir():
        _fail(f"teacher model folder not found: {teacher}")
    if not 0.0 <= distill_weight <= 1.0 or distill_temperature <= 0:
        _fail("--distill-weight must be from 0 to 1 and --distill-temperature above 0")
    if shared_norm < 0 or (shared_norm > 0 and passages <= 0):
        _fail("--shared-norm must be 0 or more, and needs --passages")
    if attention_dropout is not None and not 0.0 <= attention_dropout < 1.0:
        _fail("--attention-dropout must be from 0 to below 1")
    if not 0.0 <= negatives_share <= 1.0 or not 0.0 <= passages_share <= 1.0:
        _fail("--negatives-share and --passages-share must be from 0 to 1")
    if (val_title or test_title) and val:
        _fail("--val-title/--test-title name held-out articles of --train; they cannot be combined with --val")
    articles = load_squad(*train)
    if val_title or test_title:
        if not val_title:
            _fail("--test-title needs --val-title too (the validation articles)")
        try:
            train_arts, val_arts, test_arts = split_by_titles(articles, val_title, test_title or [])
        except ValueError as exc:
            _fail(str(exc))
        test_articles = len(test_arts)
    elif val:
        val_arts = load_squad(*val)
        val_titles = {a.title for a in val_arts}
        train_arts, _, test_arts = split_articles3([a for a in articles if a.title not in val_titles], 0, test_articles, seed=seed)
    else:
        if not 0 < val_articles < len(articles):
            _fail(f"--val-articles must be between 1 and {len(articles) - 1}")
        train_arts, val_arts, test_arts = split_articles3(articles, val_articles, test_articles, seed=seed)
    if not val_arts or not train_arts or test_articles < 0 or len(test_arts) < test_articles:
        _fail(f"--val-articles and --test-articles must leave at least one article of {len(articles)} to train on")
    typer.echo(f"train: {len(train_arts)} articles; validation: {', '.join(a.title for a in val_arts)}"
               + (f"; test: {', '.join(a.title for a in test_arts)}" if test_arts else ""), err=True)
    cfg = TrainConfig(
        base_model=base_model or bundled_embedding_model(),
        out=str(out),
        epochs=epochs,
        max_length=max_length,
        stride=stride,
        lr=lr,
        batch_size=batch_size,
        layer_decay=layer_decay,
        unanswerable_fraction=unanswerable_fraction,
        max_answer_tokens=max_answer_tokens,
        seed=seed,
        checkpoint_every=checkpoint_every,
        bf16=bf16,
        keep_best=keep_best,
        max_steps=max_steps,
        cloze_warmup=cloze_warmup,
        negatives=negatives,
        negatives_share=negatives_share,
        entity_swaps=entity_swaps,
        antonym_swaps=antonym_swaps,
        negation_twins=negation_twins,
        condition_twins=condition_twins,
        passages=passages,
        passages_share=passages_share,
        shared_norm=shared_norm,
        attention_dropout=attention_dropout,
        teacher=str(teacher) if teacher else None,
        distill_weight=distill_weight,
        distill_temperature=distill_temperature,
    )
    try:
        attention_dropout_options(cfg)  # before the minutes of feature building
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    warm = None
    if cloze_warmup > 0:
        warm_model, warm = run_cloze_warmup(cfg, train_arts, resume=not no_resume)
        cfg.base_model = warm_model
    train_q = [q for a in train_arts for q in a.questions]
    val_q = [q for a in val_arts for q in a.questions]
    test_q = [q for a in test_arts for q in a.questions]
    record = train_reader(cfg, train_q, val_q, resume=not no_resume, test_questions=test_q)
    record["train_files"] = [f.name for f in train]
    if test_arts:
        record["test_articles"] = [a.title for a in test_arts]
    if warm:
        record["cloze_warmup"] = warm
    base_run = base_run_info(cfg.base_model)
    if base_run:
        record["base_run"] = base_run
    stopped = not record.get("finished")
    exported = not stopped or (export_stopped and max_steps is not None)
    if stopped and exported and test_q:  # a finished run read its test articles in train_reader
        record["test"] = test_figures = measure_test(out / "final", test_q, cfg.max_answer_tokens)
        typer.echo(f"stopped at step {record['steps']}; test: EM {test_figures['exact']:.1f} F1 {test_figures['f1']:.1f}", err=True)
    if exported:  # with what the run's own record.json cannot know
        (out / "record.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    if no_export or not exported:
        typer.echo(f"model (fp32) in {out / 'final'}; {'stopped early' if stopped else 'finished'}", err=True)
        return
    command = "articleqa train-reader " + " ".join(shlex.quote(a) for a in _without_option(sys.argv[2:], "--tries"))
    tries_list = json.loads(tries.read_text()) if tries else []
    meta = export_reader(out / "final", out, record, val_q, [a.title for a in val_arts], command, tries_list,
                         corpus_articles=_calibration_corpus(corpus, train_arts, val_arts), no_answer_rule=no_answer_rule,
                         unanswerable_share=unanswerable_share, settings=get_settings(), refusal_budget=refusal_budget)
    v = meta["validation"]
    figures = ", ".join(f"{name} F1 {r['f1']:.1f} ({r['ms_per_passage']:.1f} ms)" for name, r in v.items())
    typer.echo(f"validation: {figures}; inference default {meta['inference']['quantize']}; written to {out}")


def _calibration_corpus(files: list[Path] | None, train_arts: list, val_arts: list) -> list:
    """The open corpus of the pipeline calibration: the articles of ``files`` that are not held out, plus
    the validation articles (default: every training and validation article)."""
    if not files:
        return train_arts + val_arts
    from articleqa.training.squad import load_squad

    for f in files:
        if not f.is_file():
            _fail(f"corpus file not found: {f}")
    allowed = {a.title for a in train_arts}
    return [a for a in load_squad(*files) if a.title in allowed] + val_arts


def _check_no_answer_options(rule: str, refusal_budget: float, unanswerable_share: float) -> None:
    """The "not found" options of train-reader and calibrate-reader, or exit 2 saying which is wrong."""
    from articleqa.training.export import NO_ANSWER_RULES

    if rule not in NO_ANSWER_RULES:
        _fail(f"--no-answer-rule must be {' or '.join(NO_ANSWER_RULES)}, not {rule!r}")
    if not 0.0 < unanswerable_share < 1.0:
        _fail("--unanswerable-share must be between 0 and 1")
    if not 0.0 <= refusal_budget < 1.0:
        _fail("--refusal-budget must be from 0 to below 1")


def _without_option(args: list[str], name: str) -> list[str]:
    """The command line minus one option and its value (e.g. --tries, which only documents)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


@app.command("calibrate-reader")
def calibrate_reader_cmd(
    model: Annotated[Path, typer.Argument(help="A reader written by train-reader (e.g. models/reader).")],
    train: Annotated[list[Path], typer.Option("--train", help="The SQuAD file(s) it was trained on (repeatable): its validation articles are read from them.")],
    no_answer_rule: Annotated[str, typer.Option(help="refusal-budget, pipeline or paragraph-f1 (as in train-reader).")] = "refusal-budget",
    refusal_budget: Annotated[float, typer.Option(help="For refusal-budget: the largest share of answerable questions that may be answered 'not found'.")] = 0.10,
    unanswerable_share: Annotated[float, typer.Option(help="For pipeline: the share of questions assumed to have no answer in the articles.")] = 0.25,
    tries: Annotated[Optional[Path], typer.Option(help="JSON list of further tries to add to the model card.")] = None,
    corpus: Annotated[Optional[list[Path]], typer.Option("--corpus", help="SQuAD file(s) whose articles (with the validation articles) form the open corpus [default: every article of --train not held out].")] = None,
    max_answer_tokens: Annotated[Optional[int], typer.Option(min=1, help="Hold the longest answer at N tokens instead of choosing it among 12, 20 and the trained limit by validation F1.")] = None,
) -> None:
    """Re-choose a trained reader's "not found" threshold, answer length and inference precision on its
    own validation articles, without retraining: the weights stay as they are; the calibration file and
    the model card are rewritten, and the card records this command after the training commands."""
    from articleqa.config import get_settings
    from articleqa.reader import CALIBRATION_FILE, read_reader_meta
    from articleqa.training.export import export_reader
    from articleqa.training.squad import load_squad

    _check_no_answer_options(no_answer_rule, refusal_budget, unanswerable_share)
    try:
        meta = read_reader_meta(model) if model.is_dir() else {}
    except FileNotFoundError as exc:
        _fail(str(exc))
    if not meta.get("validation_articles") or "training" not in meta:
        _fail(f"{model} is not a reader written by train-reader (no {CALIBRATION_FILE} with its validation articles)")
    for f in train:
        if not f.is_file():
            _fail(f"training file not found: {f}")
    articles = load_squad(*train)
    by_title = {a.title: a for a in articles}
    val_titles = meta["validation_articles"]
    missing = [t for t in val_titles if t not in by_title]
    if missing:
        _fail(f"validation articles not in the --train files: {', '.join(missing)}")
    held = {*val_titles, *meta["training"].get("test_articles", [])}
    corpus_articles = _calibration_corpus(corpus, [a for a in articles if a.title not in held], [by_title[t] for t in val_titles])
    val_q = [q for t in val_titles for q in by_title[t].questions]
    redone = ("decode max ", "inference ")  # measured again below
    tries_list = [t for t in meta.get("tries", []) if not t["name"].startswith(redone)]
    tries_list += json.loads(tries.read_text()) if tries else []
    command = "articleqa calibrate-reader " + " ".join(shlex.quote(a) for a in _without_option(sys.argv[2:], "--tries"))
    record = {**meta["training"], "epochs": meta.get("epochs", [])}
    test_titles = record.get("test_articles") or []
    if meta.get("weight_average") and test_titles and all(t in by_title for t in test_titles):
        from articleqa.training.train import measure_test

        # averaged weights were never read on the test articles: read them once, as training does
        # (the second reader's own figure, copied with its record, stays in the card's stage table)
        meta["weight_average"].setdefault("second_test_f1", (record.get("test") or {}).get("f1"))
        record["test"] = measure_test(model, [q for t in test_titles for q in by_title[t].questions],
                                      record.get("config", {}).get("max_answer_tokens", 30))
        typer.echo(f"test articles (the averaged weights): F1 {record['test']['f1']:.1f}")
    new = export_reader(model, model, record, val_q, val_titles, meta["command"], tries_list, corpus_articles=corpus_articles,
                        no_answer_rule=no_answer_rule, unanswerable_share=unanswerable_share, settings=get_settings(),
                        refusal_budget=refusal_budget, calibrated_by=command, base_model=meta["base_model"],
                        weight_average=meta.get("weight_average"), answer_tokens=max_answer_tokens)
    pc = new.get("pipeline_calibration") or {}
    na = pc.get("no_answer", {})
    typer.echo(f"threshold {new['calibration']['threshold']:.3f} ({no_answer_rule}): answerable validation questions refused "
               f"{pc.get('wrongly_refused', float('nan')):.1f}%, unanswerable refused {na.get('recall', float('nan')):.1f}%; "
               f"inference default {new['inference']['quantize']}; written to {model}")


@app.command("average-readers")
def average_readers_cmd(
    first: Annotated[Path, typer.Argument(help="A reader folder.")],
    second: Annotated[Path, typer.Argument(help="Another reader fine-tuned from the same weights (its calibration record is kept).")],
    out: Annotated[Path, typer.Option("--out", help="Where the averaged reader is written.")],
    weight: Annotated[float, typer.Option(help="Weight of FIRST (SECOND gets 1 - weight).")] = 0.5,
) -> None:
    """Average two readers' weights (WiSE-FT): often keeps most of a fine-tune's gain and less of its
    drift. Run `calibrate-reader OUT --train ...` next: it chooses the averaged reader's threshold."""
    from articleqa.training.export import average_readers

    for folder in (first, second):
        if not folder.is_dir():
            _fail(f"reader folder not found: {folder}")
    command = "articleqa average-readers " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    try:
        average_readers(first, second, out, weight, command)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"averaged reader ({weight:g} x {first} + {1 - weight:g} x {second}) written to {out}; "
               f"next: articleqa calibrate-reader {out} --train ...")


@app.command("fit-answerability")
def fit_answerability_cmd(
    model: Annotated[Path, typer.Argument(help="A reader written by train-reader (e.g. models/reader).")],
    squad: Annotated[list[Path], typer.Option("--squad", help="SQuAD 2.0 file(s) with the reader's validation articles and training articles that have unanswerable questions (repeatable), e.g. ../shared/data/squad/squad-dev-v2.0-36.json.")],
    work_dir: Annotated[Path, typer.Option(help="Where the SQuAD articles are written and indexed as an open corpus (kept: a second run reuses the index).")] = Path("runs/answerability"),
    refusal_budget: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Choose the threshold that refuses at most this share of answerable validation questions [default: the one refusing the most unanswerable validation questions with pipeline F1 and answerable refusals no worse than the margin's].")] = None,
    c: Annotated[float, typer.Option("--c", min=1e-6, help="Inverse L2 regularisation strength of the logistic regression.")] = 1.0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Ask only N training and N validation questions (a quick try).")] = None,
    target: Annotated[str, typer.Option(help="What the model learns to answer: 'answerable' (every answerable question) or 'right' (answerable questions whose best span scores F1 >= 0.5).")] = "answerable",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the figures without writing answerability.json.")] = False,
) -> None:
    """Fit the answerability model that decides "not found" (articleqa.answerability): the pipeline asks
    the reader's training articles' SQuAD 2.0 questions, a logistic regression over each trace's margins,
    passage agreement, retrieval ranks and question words learns which have an answer, and the threshold
    is chosen on the reader's validation articles. Writes MODEL/answerability.json (the pipeline uses it
    unless ARTICLEQA_ANSWERABILITY=false or a no_answer_threshold is set)."""
    from articleqa.config import get_settings
    from articleqa.reader import CALIBRATION_FILE, read_reader_meta
    from articleqa.training.answerability import fit_answerability

    for f in squad:
        if not f.is_file():
            _fail(f"SQuAD file not found: {f}")
    try:
        meta = read_reader_meta(model) if model.is_dir() else {}
    except FileNotFoundError as exc:
        _fail(str(exc))
    if not meta.get("validation_articles"):
        _fail(f"{model} is not a reader written by train-reader (no {CALIBRATION_FILE} with its validation articles)")
    settings = get_settings()
    settings.apply_offline()
    command = "articleqa fit-answerability " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    try:
        fitted = fit_answerability(model, squad, work_dir, refusal_budget=refusal_budget, limit=limit, C=c,
                                   settings=settings, command=command, target=target)
    except ValueError as exc:
        _fail(str(exc))
    v = fitted.fitted["validation"]
    for name, f in (("margin alone", v["margin"]), ("answerability model", v["answerability"])):
        auc = f"AUC {f['auc']:.3f}, " if f["auc"] is not None else ""
        typer.echo(f"{name:20s} validation: {auc}answerable refused {f['wrongly_refused']:.1f}%, "
                   f"unanswerable refused {f['unanswerable_refused'] if f['unanswerable_refused'] is not None else float('nan'):.1f}%, "
                   f"pipeline F1 {f['pipeline_f1']:.1f}")
    typer.echo(f"threshold {fitted.threshold:.3f} ({fitted.fitted['threshold_rule']})")
    if dry_run:
        return
    path = fitted.save(model)
    from articleqa.training.answerability import write_card_section

    write_card_section(model, fitted)
    typer.echo(f"written to {path} (and its section of {model / 'README.md'})")


@app.command("eval-reader")
def eval_reader_cmd(
    squad: Annotated[Path, typer.Option("--squad", help="SQuAD 1.1 or 2.0 JSON file.")],
    model: Annotated[Optional[str], typer.Option("--model", help="Reader folder or hub id [default: models/reader].")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate only the first N questions.")] = None,
    quantize: Annotated[str, typer.Option(help="auto, int8, bf16 or none (fp32).")] = "auto",
    backend: Annotated[str, typer.Option(help="Inference runtime: auto, onnx (ONNX Runtime) or torch.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """EM/F1 of a reader on the given paragraphs (standard SQuAD metric); for SQuAD 2.0 files also the
    "not found" precision/recall at the reader's calibrated threshold."""
    from articleqa.config import get_settings
    from articleqa.reader import ExtractiveReader
    from articleqa.training.evaluate import evaluate
    from articleqa.training.squad import load_squad

    if not squad.is_file():
        _fail(f"SQuAD file not found: {squad}")
    settings = get_settings()
    settings.apply_offline()
    questions = [q for a in load_squad(squad) for q in a.questions][: limit or None]
    reader = ExtractiveReader(model or settings.reader_model_path(), quantize=quantize, backend=backend, offline=settings.offline)
    try:
        reader.warm_up()
    except (FileNotFoundError, OSError, ValueError, RuntimeError) as exc:
        _fail(str(exc))
    cal = reader.calibration
    res = evaluate(reader, questions, calibrate=False, threshold=cal.reader_threshold if cal.reader_threshold is not None else cal.threshold)
    figures = {
        "model": reader.model_name,
        "quantize": reader.quantize,
        "inference_path": reader.inference_path,
        "questions": len(questions),
        "exact": round(res.exact, 2),
        "f1": round(res.f1, 2),
        "answerable": res.n,
        "no_answer": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.no_answer.items()},
        "seconds": round(res.seconds, 1),
    }
    if json_out:
        typer.echo(json.dumps(figures))
        return
    typer.echo(f"reader {figures['model']} ({figures['inference_path']}) on {len(questions)} questions of {squad.name}")
    typer.echo(f"EM {figures['exact']:.1f}  F1 {figures['f1']:.1f}  ({res.n} answerable)")
    if res.no_answer:
        na = res.no_answer
        typer.echo(
            f"not found: precision {na['precision']:.1f} recall {na['recall']:.1f} "
            f"at threshold {na['threshold']:.3f} ({na['n_unanswerable']} unanswerable)"
        )


if __name__ == "__main__":
    app()
