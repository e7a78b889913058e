"""Command line: a thin layer over the library (``articleqa --help``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    help="Question answering over a folder of news articles, with exact cited spans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexDirOpt = Annotated[
    Optional[Path], typer.Option("--index-dir", help="Index folder [env ARTICLEQA_INDEX_DIR; default index/]")
]
StoreOpt = Annotated[
    Optional[str],
    typer.Option(
        "--store",
        help="Where the index lives: faiss (the index folder) or milvus:<uri>, a milvus-lite file (milvus:./index/milvus.db) or a server (milvus:http://host:19530, token in ARTICLEQA_MILVUS_TOKEN) [env ARTICLEQA_STORE; default faiss].",
    ),
]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in (
        "httpx",
        "sentence_transformers",
        "transformers",
        "urllib3",
        "filelock",
        "faiss.loader",
        "faiss",
        "bm25s",
        "pymilvus",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _version(value: bool) -> None:
    if value:
        from articleqa import __version__

        typer.echo(f"articleqa {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _setup_logging(verbose)


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


ArticlesOpt = Annotated[
    Optional[Path], typer.Option("--articles", help="Articles folder [env ARTICLEQA_ARTICLES_DIR; default seeds/]")
]


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
    folder: Annotated[
        Optional[Path], typer.Argument(help="Articles folder [default: seeds/ or ARTICLEQA_ARTICLES_DIR].")
    ] = None,
    index_dir: IndexDirOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Re-embed everything, even unchanged files.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Fail at once if another rebuild is running.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the build report as JSON.")] = False,
    max_article_bytes: Annotated[
        Optional[int],
        typer.Option(
            "--max-article-bytes",
            help="Skip larger files with a warning [env ARTICLEQA_MAX_ARTICLE_BYTES; default 5000000].",
        ),
    ] = None,
    store: StoreOpt = None,
    embed_with: Annotated[
        Optional[str],
        typer.Option(
            "--embed-with",
            help="process (default) or ray: chunk and embed as a Ray Data job, local or on --ray-address [env ARTICLEQA_EMBED_WITH; needs pip install 'articleqa[scale]'].",
        ),
    ] = None,
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            "--ray-address",
            help="Ray cluster for --embed-with ray: HEAD_IP:6379 (its GCS), ray://host:10001 or auto [env RAY_ADDRESS; default: a local Ray]. With token authentication (ray start's default) set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH.",
        ),
    ] = None,
) -> None:
    """Build or incrementally update the index of an articles folder.

    Unchanged files keep their vectors; new and changed files are embedded; deleted files are dropped.
    A different embedding model or chunking forces a full rebuild. The new version is published
    atomically: a crash never leaves a broken index behind.
    """
    from articleqa.stores import IndexStoreError

    pipeline = _pipeline(
        articles_dir=folder,
        index_dir=index_dir,
        max_article_bytes=max_article_bytes,
        store=store,
        embed_with=embed_with,
        ray_address=ray_address,
    )
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
    json_out: Annotated[
        bool, typer.Option("--json", help="Print what was saved and the rebuild report as JSON.")
    ] = False,
) -> None:
    """Fetch news pages (or PDFs) by URL into the articles folder, then update the index.

    Each page is saved under web/<host>/, with a 'saved from url' first line, as UTF-8 (decoded by its
    declared charset, else UTF-8, else a detected encoding), and indexed as its article; its citations
    carry the URL. A PDF is saved as sent, its URL in a <name>.source.json beside it. Limits: 5 MB, 15 s, 5 redirects, HTML/PDF
    only; private and loopback addresses are refused unless ARTICLEQA_FETCH_ALLOW_PRIVATE=1. Exit 0
    when every URL was added, 1 when some failed, 2 when none could be.
    """
    from articleqa.fetch import Fetcher, FetchError, save_url

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

    from articleqa.fetch import Fetcher, FetchError, follow_feed

    pipeline = _pipeline(articles_dir=articles, index_dir=index_dir)
    folder = pipeline.settings.articles_dir
    if not folder.is_dir():
        _fail(f"articles folder not found: {folder}")
    try:
        report = follow_feed(
            Fetcher(), url, folder, max_new=pipeline.settings.feed_max_new, max_bytes=pipeline.settings.feed_max_bytes
        )
    except FetchError as exc:
        _fail(str(exc))
    for e in report.errors:
        typer.secho(f"error: {e['error']}", err=True, fg=typer.colors.RED)
    if not json_out:
        left = (
            f", {report.left} left for the next run (at most {pipeline.settings.feed_max_new} per run)"
            if report.left
            else ""
        )
        typer.echo(
            f"{url}: {report.entries} entries, {len(report.saved)} new, {report.known} already here, "
            f"{len(report.errors)} failed{left}"
        )
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
            self.bar = tqdm(
                total=getattr(p, spec[3]),
                desc=spec[0].format(**vars(p)),
                unit=spec[1],
                disable=self.disable,
                leave=True,
            )
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
    line = f'[{n}] {c.file}:{c.start}-{c.end}{page}  "{c.quote}"' + (f"  — {source}" if source else "")
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
        typer.echo(
            f"  {p.rank:>2} {p.dense_rank or '-':>5} {p.bm25_rank or '-':>5} {p.fused_score:8.4f} {margin}  "
            f'{p.role:<15} {p.file}:{p.passage_start}-{p.passage_end} -> "{p.span}"'
        )


@app.command("ask")
def ask_cmd(
    question: Annotated[Optional[str], typer.Argument(help="The question.")] = None,
    questions: Annotated[
        Optional[Path], typer.Option("--questions", help="File of questions: one per line, or a JSON list of strings.")
    ] = None,
    index_dir: IndexDirOpt = None,
    top_k: Annotated[
        Optional[int], typer.Option("--top-k", help="Passages to read [env ARTICLEQA_TOP_K; default 5].")
    ] = None,
    retrieval: Annotated[Optional[str], typer.Option(help="hybrid (default), dense or bm25.")] = None,
    reader: Annotated[
        Optional[str], typer.Option("--reader", help="Reader model folder or hub id [default: models/reader].")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the Answer as JSON (one object per line).")] = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show why: retrieval ranks, the reader's span and margin per passage, the threshold and the deciding rule.",
        ),
    ] = False,
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
    file: Annotated[
        Path,
        typer.Argument(
            help='A saved answer (JSON from `ask --json` or /api/answer), a JSON list of citations, or {"citations": [...]}.'
        ),
    ],
    articles: Annotated[
        Optional[Path],
        typer.Option(
            "--articles", help="Check against the files of this folder as they are now, instead of the index."
        ),
    ] = None,
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
        data = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if file.suffix == ".jsonl"
            else json.loads(text)
        )
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {file}: {exc}")
    cites = [c for d in data for c in citations_of(d)] if file.suffix == ".jsonl" else citations_of(data)
    if not cites:
        _fail(f'no citations in {file}: expected an answer with "citations" or a list of citations')
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
        typer.echo(
            json.dumps(
                {"against": against, "counts": counts, "results": [c.model_dump() for c in checks]}, ensure_ascii=False
            )
        )
    else:
        colors = {
            "valid": typer.colors.GREEN,
            "stale": typer.colors.YELLOW,
            "missing": typer.colors.RED,
            "invalid": typer.colors.RED,
        }
        for c in checks:
            typer.secho(f"{c.status:<8}", fg=colors[c.status], nl=False)
            typer.echo(f' {c.file}:{c.start}-{c.end} "{c.quote[:60]}"  {c.message}')
        typer.echo(
            f"checked {len(checks)} citation(s) against {against}: "
            + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        )
    if counts["valid"] != len(checks):
        raise typer.Exit(1)


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 7860,
    index_dir: IndexDirOpt = None,
    articles: ArticlesOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Rebuild when files in the articles folder change.")] = False,
    feed: Annotated[
        Optional[list[str]],
        typer.Option("--feed", help="Follow this RSS/Atom feed (repeatable): new entries are added and indexed."),
    ] = None,
    feed_every: Annotated[
        Optional[str],
        typer.Option(
            "--feed-every",
            help="How often --feed is fetched: e.g. 15m, 1h, 90s [env ARTICLEQA_FEED_EVERY; default 15m].",
        ),
    ] = None,
    trusted_proxies: Annotated[
        Optional[str],
        typer.Option(
            "--trusted-proxies",
            help="Comma-separated proxy addresses whose X-Forwarded-For is believed [env ARTICLEQA_TRUSTED_PROXIES; default none].",
        ),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Serve the chat UI (/) and the HTTP API (/api, docs at /docs) in one process."""
    from articleqa.config import get_settings

    try:
        settings = get_settings(
            index_dir=index_dir,
            articles_dir=articles,
            trusted_proxies=trusted_proxies,
            store=store,
            watch=watch or None,
            feeds=",".join(feed) if feed else None,
            feed_every=feed_every,
        )
    except Exception as exc:
        _fail(f"bad configuration: {exc}")
    from articleqa.serve.server import run_server
    from articleqa.serve.service import parse_interval

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
    from articleqa.serve.service import watch_and_rebuild

    pipeline = _pipeline(articles_dir=folder, index_dir=index_dir, store=store)
    if not pipeline.settings.articles_dir.is_dir():
        _fail(f"articles folder not found: {pipeline.settings.articles_dir}")
    watch_and_rebuild(pipeline, debounce=debounce, on_report=lambda r: typer.echo(r.summary()))


# The reader lab's commands (train-reader, calibrate-reader, average-readers, fit-answerability,
# eval-reader) live beside the code they drive; they are registered here, in their own help panel.
from articleqa.training.cli import register_lab_commands  # noqa: E402  (after _fail, which they use)

register_lab_commands(app)


if __name__ == "__main__":
    app()
