"""HTML for the chat: answers, confidence and numbered citations with the span highlighted.

All article text and file names pass through ``escape``: HTML special characters become entities
and so do Markdown's, so the chat shows article text as text, never as markup.
"""

from __future__ import annotations

from html import escape as escape_attr
from urllib.parse import quote, urlencode

from articleqa.answer import TENTATIVE
from articleqa.types import Answer, Citation

_MARKDOWN_CHARS = set("\\`*_{}[]()#+-.!|~$=:")
CONTEXT_CHARS = 220
MAX_VIEW_SPANS = 20
MAX_VIEW_QUOTE = 2000


def escape(text: str) -> str:
    """Escape for display inside the chat's Markdown+HTML renderer; newlines become <br>."""
    out = []
    for ch in text:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == '"':
            out.append("&quot;")
        elif ch == "'":
            out.append("&#39;")
        elif ch in _MARKDOWN_CHARS:
            out.append(f"&#{ord(ch)};")
        elif ch == "\n":
            out.append("<br>")
        elif ch in "\r\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _passage_html(c: Citation, highlight: bool) -> str:
    """The citing passage (trimmed around the span) with the answer span in <mark>."""
    text = c.passage
    rel_start, rel_end = c.start - c.passage_start, c.end - c.passage_start
    if not highlight:
        snippet = text if len(text) <= 3 * CONTEXT_CHARS else text[: 3 * CONTEXT_CHARS] + " …"
        return escape(" ".join(snippet.split()))
    lo = max(0, rel_start - CONTEXT_CHARS)
    hi = min(len(text), rel_end + CONTEXT_CHARS)
    before = ("… " if lo > 0 else "") + text[lo:rel_start]
    after = text[rel_end:hi] + (" …" if hi < len(text) else "")
    return f"{escape(before)}<mark>{escape(text[rel_start:rel_end])}</mark>{escape(after)}"


def source_label(c: Citation) -> str:
    """'Title · Author · 2026-01-03' (or the file name when the article has no title)."""
    return " · ".join(x for x in (c.title or c.file, c.author, c.date) if x)


def original_url(c: Citation) -> str | None:
    """The article's original web page opened at the quote: a text-fragment link (``#:~:text=``,
    https://wicg.github.io/scroll-to-text-fragment/), for http(s) URLs only."""
    if not c.url or not c.url.lower().startswith(("http://", "https://")):
        return None
    words = " ".join(c.quote.split())
    if not words:
        return c.url
    base = c.url.split("#", 1)[0]
    return f"{base}#:~:text={quote(words, safe='')}"


def source_url(c: Citation, answer_citations: list[Citation] = ()) -> str:
    """The app's page of the cited article, scrolled to this span; every span of the same answer in
    that article is highlighted, and the hash and quotes let the page say if the article changed since."""
    same = [x for x in answer_citations if x.file == c.file] or [c]
    if not any((x.start, x.end) == (c.start, c.end) for x in same):
        same = [c, *same]
    query = [("s", f"{x.start}-{x.end}") for x in same[:MAX_VIEW_SPANS]]
    query += [("q", x.quote) for x in same[:MAX_VIEW_SPANS]]
    if c.sha256:
        query.append(("sha", c.sha256))
    return f"/view/{quote(c.file)}?{urlencode(query)}#span-{c.start}-{c.end}"


def _citation_html(n: int, c: Citation, highlight: bool = True, answer_citations: list[Citation] = ()) -> str:
    link = escape_attr(source_url(c, answer_citations))
    page = f" · page {c.page}" if c.page else ""
    original = original_url(c)
    original_html = (
        f' <a class="aqa-original" href="{escape_attr(original)}" target="_blank" rel="noopener noreferrer">original page ↗</a>'
        if original
        else ""
    )
    return (
        f'<li class="aqa-cite"><span class="aqa-source">[{n}] <a class="aqa-open" href="{link}" target="_blank" rel="noopener">'
        f"{escape(source_label(c))}</a></span> "
        f'<span class="aqa-span">{escape(c.file)}{page} · chars {c.start}–{c.end}</span>{original_html}'
        f'<div class="aqa-passage">{_passage_html(c, highlight)}</div></li>'
    )


def _why_html(answer: Answer) -> str:
    """The collapsed "Why this answer?" section from ``answer.trace``."""
    t = answer.trace
    if t is None:
        return ""
    rows = []
    for p in t.passages:
        margin = f"{p.margin:.2f}" if p.margin is not None else "–"
        rows.append(
            f"<tr><td>{p.rank}</td><td>{p.dense_rank or '–'}</td><td>{p.bm25_rank or '–'}</td><td>{p.fused_score:.4f}</td>"
            f"<td>{escape(p.file)}</td><td>{escape(p.span[:80])}</td><td>{margin}</td><td>{escape(p.role)}</td></tr>"
        )
    query = f"<p>Searched for: <em>{escape(t.retrieval_query)}</em></p>" if t.retrieval_query != answer.question else ""
    return (
        '<details class="aqa-why"><summary>Why this answer?</summary>'
        f"<p>{escape(t.explanation)}.</p>{query}"
        "<table><tr><th>#</th><th>dense</th><th>BM25</th><th>fused</th><th>article</th><th>best span</th><th>margin</th><th>role</th></tr>"
        + "".join(rows)
        + "</table>"
        f"<p>{escape(_decides(t))}</p></details>"
    )


def _decides(t) -> str:
    """What decides whether the assistant answers, under the trace's rule."""
    if t.answerability_threshold is not None:
        return (
            f"Answers need an answerability score above {t.answerability_threshold:.2f} (a model over the margins, "
            f"retrieval ranks and question words); among the spans, those with a margin above {t.threshold:.2f} "
            "(span score minus the reader's no-answer score) come first."
        )
    return f"Answers need a margin above {t.threshold:.2f} (span score minus the reader's no-answer score)."


def _sources_differ_html(answer: Answer) -> str:
    """Each answer the articles give, newest article first, with its source and date."""
    options = [(answer.answer or "", answer.citations), *[(d.answer, d.citations) for d in answer.disagreements]]
    newest = lambda cites: max((c.date or "" for c in cites), default="")  # noqa: E731 - ISO dates sort as text
    options.sort(key=lambda o: newest(o[1]), reverse=True)
    items = []
    for text, cites in options:
        sources = "; ".join(
            f'<a class="aqa-open" href="{escape_attr(source_url(c, cites))}" target="_blank" rel="noopener">{escape(source_label(c))}</a>'
            for c in cites
        )
        items.append(f"<li><strong>{escape(text)}</strong> — {sources}</li>")
    return '<div class="aqa-differ"><p><strong>Sources differ:</strong></p><ul>' + "".join(items) + "</ul></div>"


def _single_answer_html(answer: Answer) -> str:
    if not answer.found:
        parts = [
            '<div class="aqa-answer aqa-notfound">',
            f"<p><strong>{escape(answer.message or 'Not found in the articles.')}</strong></p>",
        ]
        if answer.context:
            parts.append('<p>Closest passages:</p><ol class="aqa-cites">')
            parts += [_citation_html(n, c, highlight=False) for n, c in enumerate(answer.context, 1)]
            parts.append("</ol>")
        parts.append(_why_html(answer))
        parts.append("</div>")
        return "".join(parts)
    if answer.tentative:  # an unsure answer must not look like a sure one
        head = [
            '<div class="aqa-answer aqa-found aqa-tentative">',
            f'<p class="aqa-unsure">{escape(answer.message or TENTATIVE)}</p>',
            f'<p class="aqa-text">{escape(answer.answer or "")}</p>',
            f'<p class="aqa-conf">Confidence {answer.confidence:.0%} (unsure)</p>',
        ]
    else:
        head = [
            '<div class="aqa-answer aqa-found">',
            f'<p class="aqa-text"><strong>{escape(answer.answer or "")}</strong></p>',
            f'<p class="aqa-conf">Confidence {answer.confidence:.0%}</p>',
        ]
    parts = [
        *head,
        '<ol class="aqa-cites">',
        *[_citation_html(n, c, answer_citations=answer.citations) for n, c in enumerate(answer.citations, 1)],
        "</ol>",
        _sources_differ_html(answer) if answer.disagreements else "",
        _why_html(answer),
        "</div>",
    ]
    return "".join(parts)


def answer_html(answer: Answer, notes: list[str] = ()) -> str:
    """One assistant message. No blank lines: the whole message stays one HTML block. A question with
    two parts shows each part's question and answer."""
    head = "".join(f'<p class="aqa-stale">{escape(n)}</p>' for n in notes)
    if not answer.parts:
        return head + _single_answer_html(answer)
    body = "".join(
        f'<div class="aqa-part"><p class="aqa-part-q">{escape(p.question)}</p>{_single_answer_html(p)}</div>'
        for p in answer.parts
    )
    return f'{head}<div class="aqa-parts">{body}</div>'


def error_html(message: str) -> str:
    return f'<div class="aqa-error"><strong>Sorry, that did not work:</strong> {escape(message)}</div>'


CSS = """
.aqa-answer p { margin: 0.2em 0; }
.aqa-conf { color: #666; font-size: 0.9em; }
.aqa-cites { margin: 0.4em 0 0 1.2em; padding: 0; }
.aqa-cite { margin-bottom: 0.5em; }
.aqa-file { font-weight: 600; font-family: monospace; }
.aqa-span { color: #666; font-size: 0.85em; }
.aqa-passage { font-size: 0.9em; border-left: 3px solid #ddd; padding-left: 0.5em; margin-top: 0.2em; }
.aqa-passage mark { background: #ffe58a; padding: 0 2px; }
.aqa-notfound strong { color: #a15c00; }
.aqa-unsure { color: #a15c00; font-weight: 600; }
.aqa-tentative .aqa-text { font-style: italic; color: #555; }
.aqa-error { color: #b00020; }
.aqa-source a { font-weight: 600; }
.aqa-differ { border-left: 3px solid #e0a800; padding-left: 0.5em; margin-top: 0.4em; }
.aqa-stale { color: #a15c00; font-size: 0.9em; }
.aqa-part { margin-bottom: 0.6em; }
.aqa-part-q { font-style: italic; color: #444; }
.aqa-why { font-size: 0.85em; margin-top: 0.4em; }
.aqa-why table { border-collapse: collapse; }
.aqa-why td, .aqa-why th { padding: 1px 6px; border-bottom: 1px solid #eee; text-align: left; }
"""
