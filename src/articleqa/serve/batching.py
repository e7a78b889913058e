"""Group the reading of concurrent questions into shared model batches (server side).

Several requests each running the reader at once fight over the same cores. :class:`BatchingReader`
wraps any reader that offers ``read_many``: request threads hand their (question, passages) to one
reading thread, which takes every request waiting at that moment (and, once requests come together,
those arriving within ``window_ms`` of the first), reads all their passages as one stream of
length-sorted batches, and hands each request its spans. At one client nothing waits (a request alone
is read at once); under load the batches grow by themselves. Where a bigger batch costs less per passage
(a GPU, many cores) this raises throughput; on a 2-core CPU the reader is compute-bound and batch size
barely changes the cost per passage, so there it mainly keeps concurrent requests from oversubscribing
the cores.

Example::

    pipeline.reader = BatchingReader(pipeline.reader, window_ms=2)
    pipeline.ask("Who ordered the strikes?")   # unchanged for callers
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Sequence

from articleqa.types import Passage, ReadSpan

log = logging.getLogger(__name__)


class BatchingReader:
    """A :class:`~articleqa.protocols.Reader` that reads concurrent questions together.

    Args:
        reader: the reader doing the work; needs ``read_many(requests)``.
        window_ms: after the first waiting request, how long to wait for others when requests have been
            coming together (0: take only those already waiting).
        max_passages: a batch stops growing at this many passages.
    """

    def __init__(self, reader, window_ms: float = 2.0, max_passages: int = 64):
        self.reader = reader
        self.window = max(0.0, window_ms) / 1000
        self.max_passages = max_passages
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._last_size = 0
        self.batches = 0  # how many model passes ran, and for how many questions (for /api/health)
        self.questions = 0

    # the Reader protocol, delegated
    @property
    def model_name(self) -> str:
        return self.reader.model_name

    @property
    def quantize(self) -> str:
        return self.reader.quantize

    @property
    def calibration(self):
        return self.reader.calibration

    @property
    def max_question_tokens(self) -> int:
        return self.reader.max_question_tokens

    @property
    def inference_path(self) -> str:
        return self.reader.inference_path

    def warm_up(self) -> None:
        self.reader.warm_up()

    def question_tokens(self, question: str) -> int:
        return self.reader.question_tokens(question)

    def read(self, question: str, passages: Sequence[Passage]) -> list[ReadSpan]:
        if not passages:
            return []
        self._ensure_thread()
        future: Future = Future()
        self._queue.put((question, list(passages), future))
        return future.result()

    def read_many(self, requests):
        return self.reader.read_many(requests)

    def stats(self) -> dict:
        return {
            "window_ms": self.window * 1000,
            "batches": self.batches,
            "questions": self.questions,
            "questions_per_batch": round(self.questions / self.batches, 2) if self.batches else None,
        }

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="reader-batches", daemon=True)
                self._thread.start()

    def _take_batch(self) -> list:
        batch = [self._queue.get()]
        passages = len(batch[0][1])
        # wait for others only where there is company: the last batch had several questions, or more are
        # already waiting; a lone client's question is read at once
        window = self.window if (self._last_size > 1 or not self._queue.empty()) else 0.0
        deadline = time.monotonic() + window
        while passages < self.max_passages:
            try:
                remaining = deadline - time.monotonic()
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            passages += len(item[1])
        self._last_size = len(batch)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            try:
                results = self.reader.read_many([(q, p) for q, p, _ in batch])
            except BaseException as exc:  # each waiting request gets the error, the thread lives on
                for _, _, future in batch:
                    future.set_exception(exc)
                continue
            self.batches += 1
            self.questions += len(batch)
            for (_, _, future), spans in zip(batch, results):
                future.set_result(spans)
