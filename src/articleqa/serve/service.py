"""Admin flows shared by every face: uploads, deletes, background rebuilds, watching the folder, and
the index status. The API and the chat call ``ArticleService``; neither writes files itself.

Rebuilds run as background jobs with observable progress. The chat keeps answering (from the
published index) while a job runs; when it publishes, the pipeline's ``IndexHolder`` switches to the
new version. Nothing outside the articles folder is read or written: upload names are reduced to a
plain file name, paths are checked component by component, and links are never followed out.

Example::

    service = ArticleService(pipeline)
    service.check_token("Bearer s3cret")                     # AdminError(401) when wrong
    service.upload([("story.txt", b"...")], rebuild=True)    # {"saved": [...], "errors": [], "rebuild": {...}}
    service.jobs.status()                                    # {"state": "running", "progress": {...}, ...}
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import socket
import stat
import threading
import time
import unicodedata
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from articleqa.indexing import BuildProgress
from articleqa.ingest import SUPPORTED_SUFFIXES, IngestError, parse_article
from articleqa.serve.shared import SharedState
from articleqa.types import Article, IndexStatus

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 120
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


class AdminError(ValueError):
    """An admin action is refused; ``status`` is the HTTP status that fits (400, 401, 403, 404, 409, 413, 415)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


UploadError = AdminError  # an upload refused: same shape, same statuses


# --- names and paths -----------------------------------------------------------------------------


def safe_filename(name: str) -> str:
    """A plain file name for ``name``: no folders, no control characters, no reserved device names,
    at most ``MAX_NAME_CHARS`` characters. Raises ``AdminError`` when nothing usable is left."""
    if not isinstance(name, str) or not name:
        raise AdminError("file name is missing")
    if "\x00" in name:
        raise AdminError("file name contains a NUL byte")
    base = name.replace("\\", "/").split("/")[-1]  # drop any folder part, including ../ and absolute paths
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base:
        raise AdminError(f"file name {name!r} has no usable characters")
    stem = base.split(".", 1)[0]  # Windows reserves CON, CON.txt, CON.tar.gz alike
    if stem.lower() in _WINDOWS_RESERVED or not stem:
        raise AdminError(f"file name {name!r} is reserved or empty")
    if len(base) > MAX_NAME_CHARS:
        raise AdminError(f"file name is too long ({len(base)} characters; at most {MAX_NAME_CHARS})")
    return base


def check_relative_path(file: str) -> list[str]:
    """The parts of a relative article path; refuses absolute paths, drive letters, NUL, surrogates,
    '.' and '..'."""
    if (
        not isinstance(file, str)
        or not file
        or "\x00" in file
        or file.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", file)
        or any(unicodedata.category(ch) == "Cs" for ch in file)
    ):
        raise AdminError(f"invalid article path {file!r}")
    parts = file.replace("\\", "/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise AdminError(f"invalid article path {file!r}")
    return parts


def article_path(articles_dir: Path, file: str) -> Path:
    """Where ``file`` lives in ``articles_dir``. The folders on the way are resolved and must stay
    inside it; the last part is not resolved, so a link is the link itself, never its target."""
    parts = check_relative_path(file)
    root = Path(articles_dir).resolve()
    try:
        parent = root.joinpath(*parts[:-1]).resolve()
    except (OSError, RuntimeError):  # a folder link loop
        raise AdminError(f"invalid article path {file!r}: a folder on the way is a broken or looping link") from None
    if parent != root and root not in parent.parents:
        raise AdminError(f"invalid article path {file!r}: it leads outside the articles folder")
    return parent / parts[-1]


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time check of an admin token, given bare or as ``Bearer <token>``."""
    given = (given or "").strip()
    if given[:7].lower() == "bearer ":
        given = given[7:].strip()
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def save_upload(articles_dir: Path, filename: str, data: bytes, max_bytes: int, overwrite: bool = False) -> str:
    """Validate and store one uploaded article; returns its file name in the articles folder.

    The content must parse as an article (text or HTML in a declared or detectable encoding, not empty, not binary). A different
    file with the same name is only replaced when ``overwrite`` is true; an identical one is a no-op.
    The file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    name = safe_filename(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise AdminError(f"{name}: unsupported type {suffix or '(none)'}; upload .txt, .md, .html or .pdf", status=415)
    if len(data) > max_bytes:
        raise AdminError(f"{name}: the file is over the {max_bytes}-byte limit", status=413)
    try:
        parse_article(name, data, suffix)
    except IngestError as exc:
        raise AdminError(
            f"{name}: {exc}", status=415 if "binary" in str(exc) or "not text" in str(exc) else 400
        ) from None
    articles_dir.mkdir(parents=True, exist_ok=True)
    target = article_path(articles_dir, name)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise AdminError(
                f"{name}: a link or folder of that name is in the articles folder; not replaced", status=409
            )
        if target.read_bytes() == data:
            return name
        if not overwrite:
            raise AdminError(f"{name} already exists with different content; pass overwrite to replace it", status=409)
    tmp = target.with_name(f".upload-{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return name


# --- rebuild jobs --------------------------------------------------------------------------------


class RebuildJobs:
    """One background rebuild at a time across every worker serving the index.

    The job's state lives in ``SharedState`` (beside the index), so its status and progress read the same
    from every worker. A request while a rebuild runs never fails: while the running job has not read the
    articles folder yet it joins that job (``"request": "joined"``: it will see the same files); after
    that it is queued once (``"queued"``) and the worker running the job runs one more rebuild when it
    ends, however many requests came meanwhile."""

    KEY = "rebuild"
    #: a running job whose worker reported nothing for this long (and is not a live process here) is dead
    STALE_AFTER_S = 120.0

    def __init__(self, pipeline, shared: SharedState | None = None):
        self.pipeline = pipeline
        self.shared = shared or SharedState(pipeline.settings.index_dir)
        self.worker = {"host": socket.gethostname(), "pid": os.getpid()}
        self.index = str(Path(pipeline.settings.index_dir).resolve())  # a copied index folder starts with no job
        self._thread: threading.Thread | None = None
        self._last_progress = 0.0

    @property
    def running(self) -> bool:
        return self.status()["state"] == "running"

    def start(self, full: bool = False, files_changed: bool = False) -> dict:
        """Start a rebuild, join the one running or queue one behind it (see the class docstring);
        the job's status with ``request``: ``started``, ``joined`` or ``queued``. ``files_changed``
        (an upload, a delete, a fetch): the caller just changed the folder, so it joins a running job
        only before that job starts listing the folder."""

        def decide(job: dict | None):
            now = time.time()
            if job and job.get("state") == "running" and self._ours(job) and self._alive(job):
                stage = (job.get("progress") or {}).get("stage", "starting")
                joinable = ("starting",) if files_changed else ("starting", "reading")
                if stage in joinable and (job.get("full") or not full):
                    return {**job, "joined": job.get("joined", 0) + 1}, "joined"
                return {**job, "pending": True, "pending_full": bool(job.get("pending_full") or full)}, "queued"
            return self._fresh(job, full, now), "started"

        outcome = self.shared.update(self.KEY, decide)
        if outcome == "started":
            self._thread = threading.Thread(target=self._run, args=(full,), name="rebuild", daemon=True)
            self._thread.start()
        return {**self.status(), "request": outcome}

    def start_unless_running(self, full: bool = False) -> dict:
        """A rebuild after the folder changed (``start(files_changed=True)``); never refused."""
        return self.start(full=full, files_changed=True)

    def wait(self, timeout: float | None = None) -> dict:
        """Wait until no rebuild runs (in any worker), at most ``timeout`` seconds; the status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        return self.status()

    def _fresh(self, job: dict | None, full: bool, now: float) -> dict:
        return {
            "state": "running",
            "full": full,
            "progress": asdict(BuildProgress(stage="starting")),
            "report": None,
            "error": None,
            "started_at": now,
            "finished_at": None,
            "heartbeat": now,
            "worker": self.worker,
            "pending": False,
            "pending_full": False,
            "joined": 0,
            "index": self.index,
        }

    def _ours(self, job: dict) -> bool:
        return job.get("index") == self.index

    def _alive(self, job: dict) -> bool:
        worker = job.get("worker") or {}
        if worker.get("host") == self.worker["host"] and worker.get("pid"):
            try:
                os.kill(int(worker["pid"]), 0)
            except ProcessLookupError:
                return False
            except (PermissionError, OSError, ValueError):
                pass
            return True
        return time.time() - float(job.get("heartbeat") or 0) < self.STALE_AFTER_S

    def _run(self, full: bool) -> None:
        while True:
            report = error = None
            try:
                built = self.pipeline.build_index(full=full, wait=True, on_progress=self._on_progress)
                report = built.to_dict()
                self.pipeline.indexes.reload_now()
                log.info("rebuild finished: %s", built.summary())
            except Exception as exc:  # reported through status(); the published index keeps serving
                error = str(exc) or exc.__class__.__name__
                log.error("rebuild failed, the published index is unchanged: %s", error)

            def finish(job: dict | None):
                job = job or {}
                now = time.time()
                if job.get("pending"):  # requests that came after this run read the folder: once more
                    return self._fresh(job, bool(job.get("pending_full")), now), bool(job.get("pending_full"))
                return {
                    **job,
                    "state": "failed" if error else "done",
                    "report": report,
                    "error": error,
                    "finished_at": now,
                    "heartbeat": now,
                }, None

            again = self.shared.update(self.KEY, finish)
            if again is None:
                return
            full = again
            log.info("rebuild requested while the last one ran: rebuilding again")

    def _on_progress(self, progress: BuildProgress) -> None:
        now = time.monotonic()
        if progress.stage not in ("embedding", "chunking") or now - self._last_progress >= 0.5:
            self._last_progress = now
            self.shared.update(
                self.KEY, lambda job: ({**(job or {}), "progress": asdict(progress), "heartbeat": time.time()}, None)
            )

    def status(self) -> dict:
        job = self.shared.get(self.KEY) or {}
        if not self._ours(job):
            job = {"state": "idle"}
        elif job.get("state") == "running" and not self._alive(job):
            job = {**job, "state": "failed", "error": "the worker running this rebuild stopped before it finished"}
        return {
            "state": job.get("state", "idle"),
            "progress": job.get("progress"),
            "report": job.get("report"),
            "error": job.get("error"),
            "started_at": job.get("started_at"),
            "finished_at": job.get("finished_at"),
            "queued": bool(job.get("pending")),
            "worker": job.get("worker"),
        }


# --- the service both faces call -----------------------------------------------------------------


class ArticleService:
    """Index status, article texts and the admin actions (token, upload, delete, rebuild)."""

    def __init__(self, pipeline, jobs: RebuildJobs | None = None):
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.jobs = jobs or RebuildJobs(pipeline)

    @property
    def last_feed(self) -> dict | None:
        """The latest feed run (serve --feed, POST /api/feed) in any worker, for the status line."""
        return self.jobs.shared.get("last_feed")

    @last_feed.setter
    def last_feed(self, value: dict | None) -> None:
        self.jobs.shared.put("last_feed", value)

    # reading (open to everyone)

    def index_status(self) -> IndexStatus:
        """The published index (raises ``IndexStoreError`` when there is none)."""
        return self.pipeline.indexes.get().status()

    def article(self, file: str) -> Article:
        check_relative_path(file)
        article = self.pipeline.indexes.get().articles.get(file)
        if article is None:
            raise AdminError(f"article {file!r} is not in the index", status=404)
        return article

    # admin

    def check_token(self, given: str | None) -> None:
        """Raise ``AdminError`` (403 when admin actions are disabled, 401 for a missing or wrong token)."""
        expected = self.settings.admin_token
        if not expected:
            raise AdminError(
                "admin actions are disabled: set ARTICLEQA_ADMIN_TOKEN on the server to enable them", status=403
            )
        if not token_matches(expected, given):
            raise AdminError("missing or wrong admin token (send 'Authorization: Bearer <token>')", status=401)

    def upload(self, files: list[tuple[str, bytes]], overwrite: bool = False, rebuild: bool = True) -> dict:
        """Save each (name, bytes); raise ``AdminError`` when none could be saved."""
        if len(files) > self.settings.max_upload_files:
            raise AdminError(
                f"too many files in one upload ({len(files)}; at most {self.settings.max_upload_files})", status=413
            )
        saved, errors = [], []
        for name, data in files:
            try:
                saved.append(
                    save_upload(self.settings.articles_dir, name, data, self.settings.max_upload_bytes, overwrite)
                )
            except AdminError as exc:
                errors.append({"file": name, "error": str(exc), "status": exc.status})
        if errors and not saved:
            status = errors[0]["status"] if len({e["status"] for e in errors}) == 1 else 400
            exc = AdminError("; ".join(e["error"] for e in errors), status=status)
            exc.errors = errors
            raise exc
        job = self.jobs.start_unless_running() if saved and rebuild else None
        return {"saved": saved, "errors": errors, "rebuild": job}

    def delete(self, file: str, rebuild: bool = True) -> dict:
        """Delete one article file (a regular file of a supported type; never a link or a folder)."""
        path = article_path(self.settings.articles_dir, file)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            raise AdminError(f"article {file!r} is not in the articles folder", status=404) from None
        except OSError as exc:
            raise AdminError(f"article {file!r} cannot be reached ({exc.strerror})", status=400) from None
        if stat.S_ISLNK(info.st_mode):
            raise AdminError(f"{file!r} is a link, not an article file; remove it on the server", status=400)
        if stat.S_ISDIR(info.st_mode):
            raise AdminError(f"{file!r} is a folder, not an article file", status=400)
        if not stat.S_ISREG(info.st_mode) or path.suffix.lower() not in SUPPORTED_SUFFIXES or path.name.startswith("."):
            raise AdminError(f"{file!r} is not an article file (.txt, .md, .html or .pdf)", status=400)
        path.unlink()
        job = self.jobs.start_unless_running() if rebuild else None
        return {"deleted": file, "rebuild": job}

    def add_urls(self, urls: list[str], rebuild: bool = True) -> dict:
        """Fetch each URL into the articles folder (``articleqa.fetch``); ``AdminError`` when none could
        be saved (every error names its URL)."""
        from articleqa.fetch import Fetcher, FetchError, save_url

        if not isinstance(urls, list) or not urls or len(urls) > self.settings.max_upload_files:
            raise AdminError(f"give 1 to {self.settings.max_upload_files} URLs", status=400)
        fetcher = Fetcher()
        saved, errors = [], []
        for url in urls:
            try:
                saved.append(save_url(fetcher, url, self.settings.articles_dir))
            except FetchError as exc:
                errors.append({"url": str(url)[:2000], "error": str(exc)})
        if errors and not saved:
            exc = AdminError("; ".join(e["error"] for e in errors), status=400)
            exc.errors = errors
            raise exc
        job = self.jobs.start_unless_running() if saved and rebuild else None
        return {"saved": saved, "errors": errors, "rebuild": job}

    def follow_feed(self, url: str, rebuild: bool = True) -> dict:
        """Add the entries of an RSS/Atom feed that are not in the folder yet; remembered for the status line."""
        from articleqa.fetch import Fetcher, FetchError, follow_feed

        try:
            report = follow_feed(
                Fetcher(),
                url,
                self.settings.articles_dir,
                max_new=self.settings.feed_max_new,
                max_bytes=self.settings.feed_max_bytes,
            )
        except FetchError as exc:
            self.last_feed = {"feed": str(url)[:2000], "at": time.time(), "error": str(exc)}
            raise AdminError(str(exc), status=400) from None
        result = asdict(report)
        self.last_feed = {
            "feed": url,
            "at": time.time(),
            "saved": len(report.saved),
            "known": report.known,
            "errors": len(report.errors),
            "left": report.left,
        }
        result["rebuild"] = self.jobs.start_unless_running() if report.saved and rebuild else None
        return result

    def rebuild(self, full: bool = False) -> dict:
        """Start a rebuild, or join or queue behind the one running (``RebuildJobs.start``)."""
        return self.jobs.start(full=full)


# --- watching the folder -------------------------------------------------------------------------


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


def watch_in_background(service: ArticleService, debounce: float = 2.0) -> threading.Event:
    """``serve --watch``: a background rebuild job after each burst of changes; set the event to stop."""
    stop = threading.Event()

    def rebuild():
        job = service.jobs.start_unless_running()
        if job.get("error"):
            log.info("change seen while a rebuild runs; it will be picked up by the next change or rebuild")

    folder = service.settings.articles_dir
    threading.Thread(target=watch_folder, args=(folder, rebuild, debounce, stop), name="watch", daemon=True).start()
    return stop


def parse_interval(text: str) -> float:
    """Seconds of ``15m``, ``90s``, ``1h`` or a plain number of seconds (at least 10 s)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m:
        raise ValueError(f"not an interval: {text!r} (use e.g. 15m, 90s or 1h)")
    seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if seconds < 10:
        raise ValueError(f"interval {text!r} is under 10 seconds")
    return seconds


def follow_feeds_in_background(service: ArticleService, feeds: list[str], every: float) -> threading.Event:
    """``serve --feed URL --feed-every 15m``: fetch each feed now and then every ``every`` seconds,
    adding new entries (a rebuild job follows); set the event to stop."""
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            for feed in feeds:
                try:
                    r = service.follow_feed(feed)
                    log.info(
                        "feed %s: %d new, %d known, %d failed", feed, len(r["saved"]), r["known"], len(r["errors"])
                    )
                except AdminError as exc:
                    log.warning("feed %s not read: %s", feed, exc)
            stop.wait(every)

    threading.Thread(target=loop, name="feeds", daemon=True).start()
    return stop


def watch_and_rebuild(pipeline, debounce: float = 2.0, on_report: Callable | None = None, stop_event=None) -> None:
    """Build once, then rebuild in this thread after each burst of changes (``articleqa watch``)."""

    def rebuild():
        report = pipeline.build_index()
        if on_report:
            on_report(report)

    rebuild()
    watch_folder(pipeline.settings.articles_dir, rebuild, debounce, stop_event)
