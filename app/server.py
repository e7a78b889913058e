"""One process serving the chat at / and the API at /api (OpenAPI docs at /docs)."""

from __future__ import annotations

import logging
import threading

from fastapi import FastAPI

from articleqa.config import Settings
from articleqa.pipeline import QAPipeline
from articleqa.rebuild import RebuildJobs
from articleqa.store import IndexStore, RebuildInProgressError

log = logging.getLogger(__name__)


def create_app(settings: Settings, pipeline: QAPipeline | None = None) -> FastAPI:
    """Load models and index (building the index first if there is none), then assemble the app."""
    import gradio as gr

    from app.api import create_api
    from app.chat import build_chat
    from app.render import CSS

    pipeline = pipeline or QAPipeline.from_settings(settings)
    pipeline.embedder.warm_up()
    pipeline.reader.warm_up()
    if not IndexStore(settings.index_dir).exists():
        log.info("no index in %s: building it from %s", settings.index_dir, settings.articles_dir)
        report = pipeline.builder().run(settings.articles_dir, settings.index_dir)
        log.info(report.summary())
    pipeline.indexes.get()
    jobs = RebuildJobs(pipeline)
    api = create_api(pipeline, jobs)
    api.state.pipeline = pipeline
    api.state.jobs = jobs
    blocks = build_chat(pipeline, jobs)
    return gr.mount_gradio_app(api, blocks, path="/", css=CSS, footer_links=["api"], show_error=False)


def start_watcher(app: FastAPI, debounce: float = 2.0) -> threading.Event:
    """``serve --watch``: rebuild (as a background job) when article files change."""
    from articleqa.watch import watch_folder

    jobs: RebuildJobs = app.state.jobs
    stop = threading.Event()

    def rebuild():
        try:
            jobs.start()
        except RebuildInProgressError:
            log.info("change seen while a rebuild runs; it will be picked up by the next change or rebuild")

    folder = app.state.pipeline.settings.articles_dir
    threading.Thread(target=watch_folder, args=(folder, rebuild, debounce, stop), name="watch", daemon=True).start()
    return stop


def run_server(settings: Settings, host: str = "127.0.0.1", port: int = 7860, watch: bool = False) -> None:
    import uvicorn

    app = create_app(settings)
    if watch:
        start_watcher(app)
    log.info("serving the chat at http://%s:%d/ and the API at /api (docs /docs)", host, port)
    uvicorn.run(app, host=host, port=port, log_level="info")
