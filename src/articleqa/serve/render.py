"""HTML for the chat: answers, confidence and numbered citations with the span highlighted.

All article text and file names pass through ``escape``: HTML special characters become entities
and so do Markdown's, so the chat shows article text as text, never as markup.
"""

from __future__ import annotations

from articleqa.types import Answer, Citation

_MARKDOWN_CHARS = set("\\`*_{}[]()#+-.!|~$=:")
CONTEXT_CHARS = 220


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


def _citation_html(n: int, c: Citation, highlight: bool = True) -> str:
    return (
        f'<li class="aqa-cite"><span class="aqa-file">[{n}] {escape(c.file)}</span> '
        f'<span class="aqa-span">chars {c.start}–{c.end}</span>'
        f'<div class="aqa-passage">{_passage_html(c, highlight)}</div></li>'
    )


def answer_html(answer: Answer) -> str:
    """One assistant message. No blank lines: the whole message stays one HTML block."""
    if not answer.found:
        parts = [
            '<div class="aqa-answer aqa-notfound">',
            f"<p><strong>{escape(answer.message or 'Not found in the articles.')}</strong></p>",
        ]
        if answer.context:
            parts.append("<p>Closest passages:</p><ol class=\"aqa-cites\">")
            parts += [_citation_html(n, c, highlight=False) for n, c in enumerate(answer.context, 1)]
            parts.append("</ol>")
        parts.append("</div>")
        return "".join(parts)
    parts = [
        '<div class="aqa-answer aqa-found">',
        f'<p class="aqa-text"><strong>{escape(answer.answer or "")}</strong></p>',
        f'<p class="aqa-conf">Confidence {answer.confidence:.0%}</p>',
        '<ol class="aqa-cites">',
        *[_citation_html(n, c) for n, c in enumerate(answer.citations, 1)],
        "</ol></div>",
    ]
    return "".join(parts)


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
.aqa-error { color: #b00020; }
"""
