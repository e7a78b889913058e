"""One process serving the chat at / and the API at /api (OpenAPI docs at /docs).

Example::

    app = create_app(get_settings())          # loads the models, builds the index if there is none
    uvicorn.run(app, host="127.0.0.1", port=7860)
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fastapi import FastAPI

from articleqa.config import Settings
from articleqa.pipeline import QAPipeline
from articleqa.serve.batching import BatchingReader
from articleqa.serve.service import ArticleService, follow_feeds_in_background, watch_in_background

log = logging.getLogger(__name__)


def create_app(settings: Settings, pipeline: QAPipeline | None = None, shared_chat: bool = False) -> FastAPI:
    """Load models and index (building the index first if there is none), then assemble the app.

    ``shared_chat`` (``app.main``, for ``uvicorn --workers N``): the chat is served by one process for
    all workers and this app forwards chat requests to it (``serve.shared_chat``); otherwise the chat
    is mounted here."""
    from articleqa.serve.api import RequestGuard, create_api
    from articleqa.serve.view import add_view_route

    pipeline = pipeline or QAPipeline.from_settings(settings)
    if settings.reader_batching and not isinstance(pipeline.reader, BatchingReader):
        pipeline.reader = BatchingReader(pipeline.reader, window_ms=settings.reader_batch_window_ms)
    pipeline.embedder.warm_up()
    pipeline.reader.warm_up()
    if not pipeline.store.exists():
        log.info("no index in %s: building it from %s", settings.index_dir, settings.articles_dir)
        log.info(pipeline.build_index().summary())
    pipeline.indexes.get()
    service = ArticleService(pipeline)
    api = create_api(pipeline, service)
    add_view_route(api, service)
    api.state.pipeline = pipeline
    api.state.service = service
    if shared_chat:
        from articleqa.serve.shared_chat import ChatOwner, ChatProxy

        def chat_app() -> FastAPI:
            chat = mount_chat(FastAPI(), pipeline, service)
            chat.add_middleware(RequestGuard, service=service)
            return chat

        owner = ChatOwner(settings.index_dir, chat_app)
        owner.get()  # one worker starts the chat now; the others find it
        app = api
        app.add_middleware(ChatProxy, owner=owner, is_api=is_app_path)
    else:
        app = mount_chat(api, pipeline, service)
    app.add_middleware(RequestGuard, service=service)
    return app


def mount_chat(app: FastAPI, pipeline: QAPipeline, service: ArticleService) -> FastAPI:
    """The chat (Gradio Blocks) mounted at / of ``app``."""
    import gradio as gr

    from articleqa.serve.answer_html import CSS
    from articleqa.serve.chat import build_chat

    blocks = build_chat(pipeline, service)
    app = gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        css=CSS,
        footer_links=["api"],
        show_error=False,
        max_file_size=pipeline.settings.max_upload_bytes,
    )
    # Mounted (not launched) Blocks skip Gradio's check that a file named in a request was uploaded
    # through the page (gradio.processing_utils._check_allowed returns early until has_launched), so
    # any server path could be posted as a file input. The app runs from here on: turn the check on.
    blocks.has_launched = True
    return app


def is_app_path(path: str) -> bool:
    """True for the API's own paths (``/api``, ``/docs``, ``/openapi.json``, ``/view/...``), which every
    worker answers itself; the rest is the chat."""
    return path == "/api" or path.startswith(("/api/", "/docs", "/redoc", "/openapi.json", "/view/"))


def start_watcher(app: FastAPI, debounce: float = 2.0) -> threading.Event:
    """``serve --watch``: rebuild (as a background job) when article files change."""
    return watch_in_background(app.state.service, debounce)


BACKGROUND_LOCK = ".background.lock"


def start_background_jobs(app: FastAPI) -> dict:
    """Start folder watching and feed following (the settings ``watch``, ``feeds``, ``feed_every``) in
    this process, unless another process serving the same index already runs them:
    the first to take an exclusive lock on ``<index_dir>/.background.lock`` (held while it lives) does.
    With ``uvicorn app.main:app --workers N`` they run in one worker only. Returns what was started."""
    import fcntl

    from articleqa.serve.service import parse_interval

    settings: Settings = app.state.pipeline.settings
    watch = settings.watch
    feeds = [f.strip() for f in settings.feeds.split(",") if f.strip()]
    every = parse_interval(settings.feed_every)
    started = {"watch": False, "feeds": [], "lock": None}
    if not watch and not feeds:
        return started
    Path(settings.index_dir).mkdir(parents=True, exist_ok=True)
    lock = open(Path(settings.index_dir) / BACKGROUND_LOCK, "a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        log.info("background jobs (watch, feeds) run in another worker")
        return started
    app.state.background_lock = lock  # held for the life of the process
    if watch:
        start_watcher(app)
        started["watch"] = True
    if feeds:
        follow_feeds_in_background(app.state.service, feeds, every)
        started["feeds"] = feeds
    started["lock"] = str(Path(settings.index_dir) / BACKGROUND_LOCK)
    log.info("background jobs in this worker: %s", started)
    return started


def run_server(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> None:
    """``articleqa serve``: the app and its background jobs (``settings.watch``, ``feeds``) in one process."""
    import uvicorn

    app = create_app(settings)
    start_background_jobs(app)
    trusted = [a.strip() for a in settings.trusted_proxies.split(",") if a.strip()]
    log.info(
        "serving the chat at http://%s:%d/ and the API at /api (docs /docs)%s",
        host,
        port,
        f"; trusting X-Forwarded-For from {', '.join(trusted)}" if trusted else "",
    )
    # X-Forwarded-For is believed only from configured proxies (uvicorn trusts 127.0.0.1 by default,
    # which lets any local client pick its own address and dodge the rate limit).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=bool(trusted),
        forwarded_allow_ips=",".join(trusted) if trusted else None,
    )
