"""HTTP API (FastAPI): a thin layer over ``QAPipeline.ask``, the index and the rebuild jobs.

Reading (answers, health, articles) is open; changing the index (upload, delete, rebuild) needs the
admin token (``ARTICLEQA_ADMIN_TOKEN``), compared in constant time. With no token configured, admin
endpoints are disabled rather than open.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import defaultdict, deque
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Header, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Match

from articleqa.conversation import Turn
from articleqa.pipeline import MAX_TOP_K, QAPipeline, QuestionError
from articleqa.rebuild import RebuildJobs
from articleqa.store import IndexStoreError, RebuildInProgressError
from articleqa.types import Answer
from articleqa.uploads import UploadError, check_article_path, check_relative_path, save_upload

log = logging.getLogger(__name__)

MAX_HISTORY = 20


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(max_length=10_000)
    answer: str | None = Field(default=None, max_length=10_000)


class AnswerRequest(BaseModel):
    """``history``: earlier turns, oldest first; used to understand follow-ups for retrieval."""

    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(description="the question (1 to ARTICLEQA_MAX_QUESTION_CHARS characters)")
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K, description="passages to read")
    history: list[HistoryTurn] = Field(default_factory=list, max_length=MAX_HISTORY)


class RebuildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    full: bool = False


class ArticleInfo(BaseModel):
    file: str
    sha256: str
    title: str
    date: str | None
    passages: int
    chars: int


class ArticleText(BaseModel):
    file: str
    sha256: str
    title: str
    text: str = Field(description="the text citations point into: quote == text[start:end]")


class RateLimiter:
    """Sliding one-minute window per client address; ``per_minute <= 0`` disables it."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._hits: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            q = self._hits[client]
            while q and now - q[0] > 60:
                q.popleft()
            if len(q) >= self.per_minute:
                return False
            q.append(now)
            return True


def error_response(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, **extra})


def create_api(pipeline: QAPipeline, jobs: RebuildJobs) -> FastAPI:
    settings = pipeline.settings
    api = FastAPI(
        title="articleqa",
        description="Extractive question answering over news articles. Every answer cites file and "
        "character span: `quote == text_of(file)[start:end]`, offsets in Unicode characters.",
        version="0.1.0",
    )
    limiter = RateLimiter(settings.rate_limit_per_minute)
    router = APIRouter(prefix="/api")

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {e.get('msg')}")
        return error_response(422, "invalid request: " + "; ".join(problems), detail=problems)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail))

    @api.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        limit = settings.max_upload_bytes * 5 + 65536
        if length and length.isdigit() and int(length) > limit:
            return error_response(413, f"request body over {limit} bytes")
        return await call_next(request)

    def require_admin(
        authorization: Annotated[str | None, Header()] = None,
        x_admin_token: Annotated[str | None, Header()] = None,
    ) -> None:
        expected = settings.admin_token
        if not expected:
            raise HTTPException(403, "admin actions are disabled: set ARTICLEQA_ADMIN_TOKEN on the server to enable them")
        given = x_admin_token or (authorization[7:] if authorization and authorization.lower().startswith("bearer ") else "")
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            raise HTTPException(401, "missing or wrong admin token (send 'Authorization: Bearer <token>')")

    def current_index():
        try:
            return pipeline.indexes.get()
        except IndexStoreError as exc:
            raise HTTPException(503, str(exc)) from None

    @router.post("/answer", response_model=Answer, summary="Answer a question with cited spans")
    def answer(req: AnswerRequest, request: Request) -> Answer:
        client = request.client.host if request.client else "unknown"
        if not limiter.allow(client):
            raise HTTPException(429, f"rate limit: at most {settings.rate_limit_per_minute} questions per minute")
        history = [Turn(t.question, t.answer) for t in req.history]
        try:
            return pipeline.ask(req.question, top_k=req.top_k, history=history)
        except QuestionError as exc:
            raise HTTPException(422, str(exc)) from None
        except IndexStoreError as exc:
            raise HTTPException(503, str(exc)) from None

    @router.get("/health", summary="Index and model status")
    def health() -> dict:
        try:
            index = pipeline.indexes.get()
        except IndexStoreError as exc:
            return {"status": "no index", "index_loaded": False, "error": str(exc)}
        m = index.manifest
        return {
            "status": "ok",
            "index_loaded": True,
            "index_version": index.version,
            "built_at": m.get("built_at"),
            "articles": len(index.articles),
            "passages": len(index.passages),
            "index_type": m.get("index_type"),
            "embedding_model": m.get("embedding_model"),
            "reader_model": pipeline.reader.model_name,
            "reader_quantize": pipeline.reader.quantize,
            "retrieval": settings.retrieval,
            "rebuild": jobs.status()["state"],
            "reload_error": pipeline.indexes.last_error,
        }

    @router.get("/articles", response_model=list[ArticleInfo], summary="Indexed articles with content hashes")
    def articles() -> list[ArticleInfo]:
        index = current_index()
        files = index.manifest.get("files", {})
        return [
            ArticleInfo(file=a.file, sha256=a.sha256, title=a.title, date=a.date,
                        passages=files.get(a.file, {}).get("passages", 0), chars=len(a.text))
            for a in index.articles.values()
        ]

    @router.get("/articles/{file:path}", response_model=ArticleText, summary="The text citations point into")
    def article(file: str) -> ArticleText:
        _check_name(file)
        index = current_index()
        a = index.articles.get(file)
        if a is None:
            raise HTTPException(404, f"article {file!r} is not in the index")
        return ArticleText(file=a.file, sha256=a.sha256, title=a.title, text=a.text)

    @router.post("/articles", status_code=201, dependencies=[Depends(require_admin)], summary="Upload articles (admin)")
    async def upload(
        files: Annotated[list[UploadFile], File(description=".txt, .md or .html files")],
        overwrite: Annotated[bool, Query(description="replace a different file with the same name")] = False,
        rebuild: Annotated[bool, Query(description="start a rebuild after saving")] = True,
    ) -> dict:
        saved, errors = [], []
        for f in files:
            data = await f.read(settings.max_upload_bytes + 1)
            try:
                saved.append(save_upload(settings.articles_dir, f.filename or "", data, settings.max_upload_bytes, overwrite))
            except UploadError as exc:
                errors.append({"file": f.filename, "error": str(exc), "status": exc.status})
        if errors and not saved:
            status = errors[0]["status"] if len({e["status"] for e in errors}) == 1 else 400
            return error_response(status, "; ".join(e["error"] for e in errors), errors=errors)
        job = None
        if saved and rebuild:
            try:
                job = jobs.start()
            except RebuildInProgressError as exc:
                job = {"state": "running", "error": str(exc)}
        return {"saved": saved, "errors": errors, "rebuild": job}

    @router.delete("/articles/{file:path}", dependencies=[Depends(require_admin)], summary="Delete an article (admin)")
    def delete(file: str, rebuild: bool = True) -> dict:
        _check_name(file)
        path = check_article_path(settings.articles_dir, file)
        if not path.is_file():
            raise HTTPException(404, f"article {file!r} is not in the articles folder")
        path.unlink()
        job = None
        if rebuild:
            try:
                job = jobs.start()
            except RebuildInProgressError as exc:
                job = {"state": "running", "error": str(exc)}
        return {"deleted": file, "rebuild": job}

    @router.post("/rebuild", status_code=202, dependencies=[Depends(require_admin)], summary="Rebuild the index (admin)")
    def rebuild(req: RebuildRequest | None = None) -> dict:
        try:
            return jobs.start(full=bool(req and req.full))
        except RebuildInProgressError as exc:
            raise HTTPException(409, str(exc)) from None

    @router.get("/rebuild", summary="Progress of the current or last rebuild")
    def rebuild_status() -> dict:
        return jobs.status()

    api.include_router(router)

    @api.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                   include_in_schema=False)
    def api_fallback(rest: str, request: Request) -> JSONResponse:
        """Unknown /api requests get the API's JSON errors (404, or 405 with Allow), not the chat app at /."""
        scope = {"type": "http", "path": request.url.path, "method": request.method}
        allowed = sorted({m for r in router.routes if r.matches(scope)[0] == Match.PARTIAL for m in r.methods})
        if allowed:
            return JSONResponse(status_code=405, headers={"Allow": ", ".join(allowed)},
                                content={"error": f"{request.method} not allowed on {request.url.path}; use {', '.join(allowed)}"})
        return error_response(404, f"no such API endpoint: {request.url.path} (see /docs)")

    return api


def _check_name(file: str) -> None:
    try:
        check_relative_path(file)
    except UploadError as exc:
        raise HTTPException(400, str(exc)) from None
