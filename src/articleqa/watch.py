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
    return p.suffix.lower() in SUPPORTED_SUFFIXES and not any(part.startswith(".") for part in p.parts[-2:])


def watch_and_rebuild(
    pipeline,
    debounce: float = 2.0,
    on_report: Callable | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Build once, then rebuild after each burst of changes; runs until ``stop_event`` is set."""
    import watchfiles

    from articleqa.store import IndexStoreError

    settings = pipeline.settings
    builder = pipeline.builder()

    def rebuild():
        try:
            report = builder.run(settings.articles_dir, settings.index_dir)
            if on_report:
                on_report(report)
        except (IndexStoreError, OSError) as exc:
            log.error("rebuild failed, the published index is unchanged: %s", exc)

    rebuild()
    log.info("watching %s for changes (debounce %.1fs)", settings.articles_dir, debounce)
    for changes in watchfiles.watch(
        settings.articles_dir,
        watch_filter=_is_article,
        debounce=int(debounce * 1000),
        step=100,
        stop_event=stop_event,
        raise_interrupt=False,
    ):
        log.info("%d change(s) in %s: rebuilding", len(changes), settings.articles_dir)
        rebuild()
