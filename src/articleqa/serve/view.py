"""The source page: the whole cited article, served from the indexed text, with the cited spans
highlighted and the page scrolled to the one that was clicked.

``GET /view/{file}?s=START-END&s=...&q=QUOTE&q=...&sha=SHA256#span-START-END``: ``s`` are the spans
of one answer in that article, ``q`` their quotes and ``sha`` the article's hash when it was cited.
When the article changed since (another hash), each span is checked like ``/api/verify`` does: a
quote that moved is highlighted where it is now, and the page says what changed. The article text is
escaped: HTML in an article shows as text. ``GET /api/articles/{file}`` stays the API for programs.
"""

from __future__ import annotations

import html
import re

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse

from articleqa.serve.answer_html import MAX_VIEW_QUOTE, MAX_VIEW_SPANS
from articleqa.serve.service import AdminError, ArticleService
from articleqa.stores import IndexStoreError
from articleqa.types import Article
from articleqa.verify import CitationRef, verify_citation

_SPAN = re.compile(r"^(\d{1,9})-(\d{1,9})$")

PAGE_CSS = """
body { font-family: system-ui, sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em; line-height: 1.55; color: #222; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1em; }
.meta { color: #666; font-size: 0.9em; }
.text { white-space: pre-wrap; }
mark { background: #ffe58a; padding: 0 2px; scroll-margin-top: 40vh; }
mark:target { background: #ffc400; outline: 2px solid #e0a800; }
.banner { background: #fff4e0; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; margin: 0.8em 0; }
.missing { background: #fdecea; border-left-color: #b00020; }
.pagebreak { display: block; text-align: center; color: #888; font-size: 0.8em; border-top: 1px dashed #ccc; margin: 0.8em 0; }
"""


def parse_spans(values: list[str], quotes: list[str]) -> list[tuple[int, int, str | None]]:
    """(start, end, quote) for each well-formed ``START-END`` (others are ignored), at most
    ``MAX_VIEW_SPANS``; the quote is None unless one was given for every span."""
    if len(quotes) != len(values):
        quotes = []
    spans = []
    for n, v in enumerate(values[:MAX_VIEW_SPANS]):
        m = _SPAN.match(v or "")
        if m and int(m.group(1)) < int(m.group(2)):
            quote = quotes[n] if quotes and len(quotes[n]) <= MAX_VIEW_QUOTE else None
            spans.append((int(m.group(1)), int(m.group(2)), quote))
    return spans


def highlighted(text: str, marks: list[tuple[int, int, str]], pages: tuple[int, ...] = ()) -> str:
    """``text`` escaped, each (start, end, id) in ``<mark id>``; overlapping spans join the first. With
    ``pages`` (a PDF's page start offsets) a page break line "page N" is shown where each page starts
    (after a mark that runs across it)."""
    out, pos = [], 0
    breaks = [(start, n) for n, start in enumerate(pages, 1) if n > 1]

    def plain(upto: int) -> None:
        nonlocal pos
        while breaks and breaks[0][0] <= upto:
            at, n = breaks.pop(0)
            out.append(html.escape(text[pos : max(pos, at)]))
            out.append(f'<span class="pagebreak" id="page-{n}" role="separator">page {n}</span>')
            pos = max(pos, at)
        out.append(html.escape(text[pos:upto]))
        pos = upto

    for start, end, ident in sorted(marks):
        if start < pos:  # overlaps the previous mark: extend it rather than nest
            continue
        plain(start)
        out.append(f'<mark id="{html.escape(ident)}">{html.escape(text[start:end])}</mark>')
        pos = end
    plain(len(text))
    return "".join(out)


def article_page(article: Article, spans: list[tuple[int, int, str | None]], sha: str | None) -> str:
    marks, notes = [], []
    for start, end, quote in spans:
        ident = f"span-{start}-{end}"
        if quote is None or sha is None or sha == article.sha256:
            if end <= len(article.text):
                marks.append((start, end, ident))
            continue
        check = verify_citation(CitationRef(file=article.file, start=start, end=end, quote=quote, sha256=sha), article)
        if check.start_now is not None:
            marks.append((check.start_now, check.end_now, ident))
        if check.status != "valid":
            notes.append(check.message)
    if sha and sha != article.sha256 and not notes:
        notes.append(f"{article.file} changed since it was cited (the highlighted spans may not be what was quoted)")
    banner = "".join(f'<p class="banner">Stale citation: {html.escape(n)}</p>' for n in notes)
    pages = f"{len(article.pages)} pages" if article.pages else None
    meta = " · ".join(
        html.escape(x)
        for x in (article.author, article.date, article.file, pages, f"sha256 {article.sha256[:12]}…")
        if x
    )
    if article.url:
        meta += f' · <a href="{html.escape(article.url)}" rel="noopener noreferrer" target="_blank">original page</a>'
    title = html.escape(article.title or article.file)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{PAGE_CSS}</style></head>'
        f'<body><header><h1>{title}</h1><p class="meta">{meta}</p></header>{banner}'
        f'<article class="text">{highlighted(article.text, marks, article.pages)}</article></body></html>'
    )


def message_page(status: int, message: str) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>articleqa</title><style>{PAGE_CSS}</style></head>'
        f'<body><p class="banner missing">{html.escape(message)}</p><p><a href="/">Back to the chat</a></p></body></html>',
        status_code=status,
    )


def add_view_route(app: FastAPI, service: ArticleService) -> None:
    @app.get("/view/{file:path}", response_class=HTMLResponse, include_in_schema=False)
    def view(
        file: str,
        s: list[str] = Query(default=[]),
        q: list[str] = Query(default=[]),
        sha: str | None = Query(default=None, max_length=64),
    ) -> HTMLResponse:
        try:
            article = service.article(file)
        except AdminError as exc:
            if exc.status == 404:
                return message_page(
                    404, f"{file} is not among the indexed articles (deleted or renamed since it was cited?)"
                )
            return message_page(exc.status, str(exc))
        except IndexStoreError as exc:
            return message_page(503, f"the index is not available: {exc}")
        return HTMLResponse(article_page(article, parse_spans(s, q), sha))
