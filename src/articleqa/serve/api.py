"""HTTP API (FastAPI): a thin layer over ``QAPipeline.ask`` and ``ArticleService``.

Reading (answers, health, articles) is open; changing the index (upload, delete, rebuild) needs the
admin token (``ARTICLEQA_ADMIN_TOKEN``), compared in constant time and checked before the request
body is read. With no token configured, admin endpoints are disabled rather than open.

Every /api response that is not a success has one shape, ``{"error": "..."}`` with a 4xx status:
validation, body parsing, multipart, unknown paths and methods, oversized bodies (counted on the
bytes actually received, chunked or not) alike.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from articleqa import __version__
from articleqa.conversation import Turn
from articleqa.pipeline import MAX_HISTORY_TURNS, MAX_TOP_K, QAPipeline, QuestionError
from articleqa.serve.service import AdminError, ArticleService
from articleqa.serve.shared import SharedRateLimiter
from articleqa.stores import IndexStoreError
from articleqa.types import Answer
from articleqa.verify import CitationCheck, CitationRef, summary, verify_citations

MAX_VERIFY_CITATIONS = 200

log = logging.getLogger(__name__)

API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(max_length=10_000)
    answer: str | None = Field(default=None, max_length=10_000)


class AnswerRequest(BaseModel):
    """``history``: earlier turns, oldest first; used to understand follow-ups. A question longer
    than the reader's window (``max_question_tokens``, 128 tokens for the shipped reader) is read cut
    to that many tokens, and the answer's ``warnings`` say so; retrieval uses the whole question."""

    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(description="the question (1 to ARTICLEQA_MAX_QUESTION_CHARS characters)")
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K, description="passages to read")
    history: list[HistoryTurn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    explain: bool = Field(
        default=False,
        description="add a trace: retrieval ranks, the reader's span and margin per passage, the threshold and the deciding rule",
    )


class VerifyRequest(BaseModel):
    """Citations as ``/api/answer`` returned them (other fields of each are ignored)."""

    model_config = ConfigDict(extra="forbid")
    citations: list[CitationRef] = Field(max_length=MAX_VERIFY_CITATIONS)


class VerifyResponse(BaseModel):
    index_version: str
    counts: dict[str, int] = Field(description="how many citations are valid, stale, missing, invalid")
    results: list[CitationCheck]


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
    date: str | None = None
    author: str | None = None
    url: str | None = Field(
        default=None, description="the article's web address (canonical URL, or where it was fetched from)"
    )
    pages: list[int] = Field(default_factory=list, description="PDFs: the offset in text where each page starts")


class FetchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    urls: list[str] = Field(min_length=1, max_length=20, description="http(s) URLs of news pages or PDFs")
    rebuild: bool = True


class FeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: str = Field(min_length=1, max_length=2000, description="an RSS or Atom feed URL")
    rebuild: bool = True


def error_response(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, **extra}, headers=headers)


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def is_admin_request(method: str, path: str) -> bool:
    """Uploads, fetches, deletes and rebuilds: the requests that need the admin token."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    return path in ("/api/articles", "/api/rebuild", "/api/fetch", "/api/feed") or path.startswith("/api/articles/")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body over {limit} bytes")
        self.limit = limit


#: An opaque id of this server process, sent as ``X-Articleqa-Worker`` with API responses.
WORKER_ID = uuid.uuid4().hex[:12].encode()


class RequestGuard:
    """ASGI middleware in front of the API and the chat.

    - Counts the body bytes actually received (chunked or not) and answers 413 past the limit: uploads
      may carry ``max_upload_files`` files of ``max_upload_bytes``; every other request
      ``max_request_bytes``.
    - Under /api: unknown methods (TRACE, CONNECT, ...) get a JSON 405; admin requests without the
      right token get 401/403 before their body is read.
    """

    def __init__(self, app, service: ArticleService):
        self.app = app
        self.service = service
        s = service.settings
        self.upload_limit = s.max_upload_bytes * s.max_upload_files + 65536
        self.request_limit = s.max_request_bytes

    def limit_for(self, method: str, path: str) -> int:
        if method == "POST" and (path == "/api/articles" or path.startswith("/gradio_api/upload")):
            return self.upload_limit
        return self.request_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if is_api_path(path):
            if method not in API_METHODS:
                return await error_response(
                    405, f"{method} is not allowed on {path}", headers={"Allow": ", ".join(API_METHODS)}
                )(scope, receive, send)
            if is_admin_request(method, path):
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
                try:
                    self.service.check_token(headers.get("x-admin-token") or headers.get("authorization"))
                except AdminError as exc:
                    return await error_response(exc.status, str(exc))(scope, receive, send)
        limit = self.limit_for(method, path)
        for k, v in scope.get("headers", []):
            if k.lower() == b"content-length":
                if not v.isdigit():
                    return await error_response(400, "invalid Content-Length")(scope, receive, send)
                if int(v) > limit:
                    return await error_response(413, f"request body over {limit} bytes")(scope, receive, send)
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if is_api_path(path):  # which server process answered (several workers: app.main)
                    message = {**message, "headers": [*message.get("headers", []), (b"x-articleqa-worker", WORKER_ID)]}
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await error_response(413, exc.detail)(scope, receive, send)


# --- the routes: module-level handlers on one router; what they serve comes from the app's state ------

router = APIRouter(prefix="/api")


def get_pipeline(request: Request) -> QAPipeline:
    return request.app.state.pipeline


def get_service(request: Request) -> ArticleService:
    return request.app.state.service


Pipeline = Annotated[QAPipeline, Depends(get_pipeline)]
Service = Annotated[ArticleService, Depends(get_service)]


def require_admin(
    service: Service,
    authorization: Annotated[str | None, Header()] = None,
    x_admin_token: Annotated[str | None, Header()] = None,
) -> None:
    service.check_token(x_admin_token or authorization)  # RequestGuard checked it already; kept for direct use


@router.post("/answer", response_model=Answer, summary="Answer a question with cited spans")
def answer(req: AnswerRequest, request: Request, pipeline: Pipeline) -> Answer:
    client = request.client.host if request.client else "unknown"
    if not request.app.state.limiter.allow(client):
        per_minute = pipeline.settings.rate_limit_per_minute
        raise HTTPException(429, f"rate limit: at most {per_minute} questions per minute")
    history = [Turn(t.question, t.answer) for t in req.history]
    try:
        return pipeline.ask(req.question, top_k=req.top_k, history=history, explain=req.explain)
    except QuestionError as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/verify", response_model=VerifyResponse, summary="Check citations against the current articles")
def verify(req: VerifyRequest, pipeline: Pipeline) -> VerifyResponse:
    """Each citation is ``valid``, ``stale`` (the article changed: ``quote_now`` is ``same_span``,
    ``moved`` with ``start_now``/``end_now``, or ``gone``), ``missing`` (deleted) or ``invalid`` (the
    article is unchanged but the quote was never at that span), against the published index."""
    index = pipeline.indexes.get()
    checks = verify_citations(req.citations, index.articles)
    return VerifyResponse(index_version=index.version, counts=summary(checks), results=checks)


@router.get("/health", summary="Index and model status")
def health(pipeline: Pipeline, service: Service) -> dict:
    try:
        status = service.index_status()
    except IndexStoreError as exc:
        return {"status": "no index", "index_loaded": False, "error": str(exc)}
    return {
        "status": "ok",
        "version": __version__,
        "index_loaded": True,
        "index_version": status.version,
        "built_at": status.built_at,
        "articles": status.articles,
        "passages": status.passages,
        "store": status.store,
        "index_type": status.index_type,
        "embedding_model": status.embedding_model,
        "embedding_path": getattr(pipeline.embedder, "inference_path", None),
        "reader_model": pipeline.reader.model_name,
        "reader_quantize": pipeline.reader.quantize,
        "reader_path": pipeline.reader.inference_path,
        "reader_batching": pipeline.reader.stats() if hasattr(pipeline.reader, "stats") else None,
        "retrieval": pipeline.settings.retrieval,
        "rebuild": service.jobs.status()["state"],
        "reload_error": pipeline.indexes.last_error,
    }


@router.get("/articles", response_model=list[ArticleInfo], summary="Indexed articles with content hashes")
def articles(pipeline: Pipeline) -> list[ArticleInfo]:
    index = pipeline.indexes.get()
    passages = index.status().files
    return [
        ArticleInfo(
            file=a.file,
            sha256=a.sha256,
            title=a.title,
            date=a.date,
            passages=passages.get(a.file, 0),
            chars=len(a.text),
        )
        for a in index.articles.values()
    ]


@router.get("/articles/{file:path}", response_model=ArticleText, summary="The text citations point into")
def article(file: str, service: Service) -> ArticleText:
    a = service.article(file)
    return ArticleText(
        file=a.file,
        sha256=a.sha256,
        title=a.title,
        text=a.text,
        date=a.date,
        author=a.author,
        url=a.url,
        pages=list(a.pages),
    )


@router.post("/articles", status_code=201, dependencies=[Depends(require_admin)], summary="Upload articles (admin)")
async def upload(
    service: Service,
    files: Annotated[list[UploadFile], File(description=".txt, .md, .html or .pdf files")],
    overwrite: Annotated[bool, Query(description="replace a different file with the same name")] = False,
    rebuild: Annotated[bool, Query(description="start a rebuild after saving")] = True,
) -> dict:
    received = [(f.filename or "", await f.read(service.settings.max_upload_bytes + 1)) for f in files]
    return service.upload(received, overwrite=overwrite, rebuild=rebuild)


@router.post("/fetch", status_code=201, dependencies=[Depends(require_admin)], summary="Add articles by URL (admin)")
def fetch(req: FetchRequest, service: Service) -> dict:
    """Fetch each URL (a news page or a PDF) into the articles folder and start a rebuild. Private and
    loopback targets are refused unless the server runs with ARTICLEQA_FETCH_ALLOW_PRIVATE=1."""
    return service.add_urls(req.urls, rebuild=req.rebuild)


@router.post("/feed", dependencies=[Depends(require_admin)], summary="Add a feed's new entries (admin)")
def feed(req: FeedRequest, service: Service) -> dict:
    """Read an RSS/Atom feed and add its entries that are not in the articles folder yet."""
    return service.follow_feed(req.url, rebuild=req.rebuild)


@router.delete("/articles/{file:path}", dependencies=[Depends(require_admin)], summary="Delete an article (admin)")
def delete(file: str, service: Service, rebuild: bool = True) -> dict:
    return service.delete(file, rebuild=rebuild)


@router.post("/rebuild", status_code=202, dependencies=[Depends(require_admin)], summary="Rebuild the index (admin)")
def rebuild(service: Service, req: RebuildRequest | None = None) -> dict:
    """Start a rebuild, or join the one running, or queue one behind it (``request`` says which)."""
    return service.rebuild(full=bool(req and req.full))


@router.get("/rebuild", summary="Progress of the current or last rebuild")
def rebuild_status(service: Service) -> dict:
    return service.jobs.status()


def api_fallback(request: Request, rest: str = "") -> JSONResponse:
    """Unknown /api requests get the API's JSON errors (404, or 405 with Allow), not the chat app at /."""
    scope = {"type": "http", "path": request.url.path, "method": request.method}
    allowed = sorted({m for r in router.routes if r.matches(scope)[0] == Match.PARTIAL for m in r.methods})
    if allowed:
        return error_response(
            405,
            f"{request.method} not allowed on {request.url.path}; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    return error_response(404, f"no such API endpoint: {request.url.path} (see /docs)")


# --- errors: every one as {"error": ...} with its status, never a 500 with details -----------------------


async def validation_error(request: Request, exc: RequestValidationError):
    problems = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {e.get('msg')}")
    return error_response(422, "invalid request: " + "; ".join(problems), detail=problems)


async def http_error(request: Request, exc: HTTPException):
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 400 and message == "There was an error parsing the body":
        cause = exc.__cause__
        message = f"the request body cannot be parsed ({cause.__class__.__name__ if cause else 'malformed'})"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def admin_error(request: Request, exc: AdminError):
    return error_response(exc.status, str(exc), **({"errors": exc.errors} if hasattr(exc, "errors") else {}))


async def index_error(request: Request, exc: IndexStoreError):
    return error_response(503, str(exc))


async def internal_error(request: Request, exc: Exception):  # a bug: logged, never shown to the client
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error; the server log has the details")


def create_api(pipeline: QAPipeline, service: ArticleService) -> FastAPI:
    """The HTTP API over ``pipeline`` and ``service`` (kept in the app's state for the handlers)."""
    api = FastAPI(
        title="articleqa",
        description="Extractive question answering over news articles. Every answer cites file and "
        "character span: `quote == text_of(file)[start:end]`, offsets in Unicode characters. Errors are "
        '`{"error": "..."}` with a 4xx status.',
        version=__version__,
    )
    api.state.pipeline, api.state.service = pipeline, service
    # the answer rate limit counts across workers (serve.shared)
    api.state.limiter = SharedRateLimiter(service.jobs.shared, pipeline.settings.rate_limit_per_minute)
    for exc_class, handler in (
        (RequestValidationError, validation_error),
        (HTTPException, http_error),
        (AdminError, admin_error),
        (IndexStoreError, index_error),
        (Exception, internal_error),
    ):
        api.add_exception_handler(exc_class, handler)
    api.include_router(router)
    api.add_api_route("/api", api_fallback, methods=list(API_METHODS), include_in_schema=False)
    api.add_api_route("/api/{rest:path}", api_fallback, methods=list(API_METHODS), include_in_schema=False)
    return api
