"""Rebuilds as background jobs with observable progress, shared by the API, the chat panel and
``serve --watch``. The chat keeps answering (from the published index) while a job runs; when it
publishes, the pipeline's ``IndexHolder`` switches to the new version.

Example::

    jobs = RebuildJobs(pipeline)
    jobs.start(full=False)          # raises RebuildInProgressError if one is running anywhere
    jobs.status()                   # {"state": "running", "progress": {...}, ...}
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict

from articleqa.indexing import BuildProgress
from articleqa.store import IndexStore, RebuildInProgressError

log = logging.getLogger(__name__)


class RebuildJobs:
    def __init__(self, pipeline):
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state = "idle"  # idle | running | done | failed
        self._progress: BuildProgress | None = None
        self._report: dict | None = None
        self._error: str | None = None
        self._started: float | None = None
        self._finished: float | None = None

    @property
    def running(self) -> bool:
        return self._state == "running"

    def start(self, full: bool = False) -> dict:
        """Start a rebuild in the background; one at a time (also across processes)."""
        with self._lock:
            if self.running:
                raise RebuildInProgressError("a rebuild is already running; wait for it to finish")
            if IndexStore(self.pipeline.settings.index_dir).is_locked():
                raise RebuildInProgressError("a rebuild is already running (another process); wait for it to finish")
            self._state, self._error, self._report = "running", None, None
            self._progress = BuildProgress(stage="starting")
            self._started, self._finished = time.time(), None
            self._thread = threading.Thread(target=self._run, args=(full,), name="rebuild", daemon=True)
            self._thread.start()
        return self.status()

    def wait(self, timeout: float | None = None) -> dict:
        t = self._thread
        if t is not None:
            t.join(timeout)
        return self.status()

    def _run(self, full: bool) -> None:
        settings = self.pipeline.settings
        try:
            report = self.pipeline.builder().run(
                settings.articles_dir, settings.index_dir, full=full, wait=False, on_progress=self._on_progress
            )
            self._report = report.to_dict()
            self.pipeline.indexes.reload_now()
            self._state = "done"
            log.info("rebuild finished: %s", report.summary())
        except Exception as exc:  # reported through status(); the published index keeps serving
            self._error = str(exc) or exc.__class__.__name__
            self._state = "failed"
            log.error("rebuild failed, the published index is unchanged: %s", self._error)
        finally:
            self._finished = time.time()

    def _on_progress(self, progress: BuildProgress) -> None:
        self._progress = progress

    def status(self) -> dict:
        return {
            "state": self._state,
            "progress": asdict(self._progress) if self._progress else None,
            "report": self._report,
            "error": self._error,
            "started_at": self._started,
            "finished_at": self._finished,
        }
