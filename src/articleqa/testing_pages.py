"""News as people have it, made from plain article text: a saved page of a typical news site (the
article inside the site's chrome: navigation, cookie banner, breaking-news ticker, "most read",
ads, newsletter box, reader comments, footer) and a PDF of several pages with a running header,
page numbers and hyphenated line breaks. Used by the tests (``tests/test_pages_pdf.py``,
``tests/test_fetch.py``) to check extraction: the chrome holds facts the article does not state, so an answer taken from it is
visibly wrong.
"""

from __future__ import annotations

import html
import json

#: What the chrome claims; none of it is in the article, so none of it may be indexed.
CHROME_FACTS = {
    "ticker": "BREAKING: 40 people killed in the strikes on Caracas on January 3, officials say",
    "comment": "Maduro's wife Maria Lopez was seen at the airport. He took power in 2015, not 2013!",
    "most_read": "Most read: Celebrity chef opens floating restaurant in Lisbon",
    "newsletter": "Sign up for our Morning Briefing newsletter",
    "cookie": "We use cookies to improve your experience. Accept all cookies",
    "ad": "Advertisement: Buy the new Zephyr X phone today with 20% off",
    "footer": "© 2026 Daily Planet Media Group. All rights reserved. Terms of use",
}


def news_page(
    headline: str,
    paragraphs: list[str],
    *,
    date: str = "2026-01-03",
    author: str = "Ana Ruiz",
    url: str = "https://news.example.org/world/2026/01/03/story",
    site: str = "Daily Planet",
) -> str:
    """A saved article page of a typical news site: the headline and ``paragraphs`` inside the site's
    chrome, with Open Graph / JSON-LD metadata (headline, author, datePublished, canonical URL)."""
    e = html.escape
    ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": headline,
        "datePublished": f"{date}T08:15:00Z",
        "author": {"@type": "Person", "name": author},
        "url": url,
    }
    body = "\n".join(f"<p>{e(p)}</p>" for p in paragraphs)
    comments = "\n".join(
        f'<li class="comment"><span class="user">{u}</span><p>{e(t)}</p></li>'
        for u, t in [
            ("reader42", CHROME_FACTS["comment"]),
            ("jk_99", "Great reporting, thanks."),
            ("mvargas", "The ticker said 40 dead. Why is that not in the article?"),
        ]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(headline)} | World | {e(site)}</title>
<meta property="og:title" content="{e(headline)}">
<meta property="og:site_name" content="{e(site)}">
<meta name="author" content="{e(author)}">
<meta property="article:published_time" content="{date}T08:15:00Z">
<link rel="canonical" href="{e(url)}">
<script type="application/ld+json">{json.dumps(ld)}</script>
<script>window.dataLayer = [];</script>
</head><body>
<div id="cookie-banner" class="cookie-consent"><p>{e(CHROME_FACTS["cookie"])}</p><button>Accept</button></div>
<header class="site-header"><a class="logo" href="/">{e(site)}</a>
<nav class="main-nav"><ul><li><a href="/world">World</a></li><li><a href="/politics">Politics</a></li>
<li><a href="/business">Business</a></li><li><a href="/sport">Sport</a></li><li><a href="/opinion">Opinion</a></li></ul></nav></header>
<div class="ticker breaking-news"><span>{e(CHROME_FACTS["ticker"])}</span></div>
<main><article class="story">
<h1 class="headline">{e(headline)}</h1>
<p class="byline">By <a rel="author" href="/authors/ana">{e(author)}</a> · <time datetime="{date}T08:15:00Z">{date}</time></p>
<div class="story-body">
{body}
</div>
<aside class="ad"><p>{e(CHROME_FACTS["ad"])}</p></aside>
<div class="newsletter-signup"><h3>{e(CHROME_FACTS["newsletter"])}</h3><form><input type="email"><button>Subscribe</button></form></div>
</article>
<aside class="most-read"><h2>Most read</h2><ol><li><a href="/a">{e(CHROME_FACTS["most_read"])}</a></li>
<li><a href="/b">Stock markets close higher on tech rally</a></li></ol></aside>
<section id="comments" class="comments"><h2>Comments (3)</h2><ul>{comments}</ul></section>
</main>
<footer class="site-footer"><p>{e(CHROME_FACTS["footer"])}</p><a href="/privacy">Privacy</a></footer>
</body></html>"""


def news_pdf(
    headline: str,
    paragraphs: list[str],
    *,
    per_page: int | None = None,
    header: str = "Daily Planet — Press release",
    hyphenate: str | None = None,
) -> bytes:
    """A PDF of ``paragraphs`` on several pages (``per_page`` paragraphs each; default: split in two)
    with a running header and a "Page N" footer on every page; long lines wrap at spaces, and the first
    occurrence of the word ``hyphenate`` is broken across two lines with a hyphen ("inten-" / "sified"),
    as typesetting does. Returns the PDF bytes."""
    if hyphenate:
        for i, p in enumerate(paragraphs):
            if hyphenate in p:
                half = len(hyphenate) // 2
                paragraphs = [
                    *paragraphs[:i],
                    p.replace(hyphenate, f"{hyphenate[:half]}-\n{hyphenate[half:]}", 1),
                    *paragraphs[i + 1 :],
                ]
                break
    from fpdf import FPDF

    per_page = per_page or max(1, -(-len(paragraphs) // 2))
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    font = _unicode_font()
    if font:
        pdf.add_font("body", "", font)
    family = "body" if font else "helvetica"

    def page_frame():
        pdf.add_page()
        pdf.set_font(family, size=8)
        pdf.set_xy(15, 8)
        pdf.cell(0, 5, header)
        pdf.set_xy(15, 285)
        pdf.cell(0, 5, f"Page {pdf.page_no()}", align="C")
        pdf.set_xy(15, 20)

    for i in range(0, len(paragraphs), per_page):
        page_frame()
        if i == 0:
            pdf.set_font(family, size=16)
            pdf.multi_cell(180, 8, headline)
            pdf.ln(4)
        pdf.set_font(family, size=11)
        for p in paragraphs[i : i + per_page]:
            pdf.multi_cell(180, 5.5, p if font else p.encode("latin-1", "replace").decode("latin-1"))
            pdf.ln(3)
    return bytes(pdf.output())


def _unicode_font() -> str | None:
    from pathlib import Path

    for f in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ):
        if Path(f).is_file():
            return f
    return None
