"""Watch an articles folder and rebuild the index when files change (debounced, via ``watchfiles``)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from articleqa.ingest import SUPPORTED_SUFFIXES

log = logging.getLogger(__name__)


def _is_article(change, path: str) -> bool:
    p = Path(path)
    return p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.startswith(".")


def watch_folder(
    folder: str | Path,
    rebuild: Callable[[], None],
    debounce: float = 2.0,
    stop_event: threading.Event | None = None,
) -> None:
    """Call ``rebuild`` after each burst of changes to article files; runs until ``stop_event``."""
    import watchfiles

    log.info("watching %s for changes (debounce %.1fs)", folder, debounce)
    for changes in watchfiles.watch(
        folder,
        watch_filter=_is_article,
        debounce=int(debounce * 1000),
        step=100,
        stop_event=stop_event,
        raise_interrupt=False,
    ):
        log.info("%d change(s) in %s: rebuilding", len(changes), folder)
        try:
            rebuild()
        except Exception as exc:  # keep watching; the published index keeps serving
            log.error("rebuild failed, the published index is unchanged: %s", exc)


def watch_and_rebuild(pipeline, debounce: float = 2.0, on_report: Callable | None = None, stop_event=None) -> None:
    """Build once, then rebuild in this thread after each burst of changes (``articleqa watch``)."""
    settings = pipeline.settings
    builder = pipeline.builder()

    def rebuild():
        report = builder.run(settings.articles_dir, settings.index_dir)
        if on_report:
            on_report(report)

    rebuild()
    watch_folder(settings.articles_dir, rebuild, debounce, stop_event)
