"""The Gradio chat: a thin layer over ``QAPipeline.ask`` and ``ArticleService``.

Each reply shows the answer, its confidence and numbered citations (title, date, file, character
span, passage with the span highlighted; the title opens the whole article at the span), "Sources
differ" when articles disagree, one answer per part of a two-part question, and a collapsed "Why this
answer?" trace. Follow-ups use the earlier turns for retrieval; a question asked again says when the
articles its earlier answer cited have changed since. The "Add articles"
panel uploads files and rebuilds in the background while the chat keeps answering.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gradio as gr

from articleqa.conversation import Turn
from articleqa.ingest import SUPPORTED_SUFFIXES
from articleqa.pipeline import QAPipeline, QuestionError
from articleqa.serve.answer_html import answer_html, error_html, escape
from articleqa.serve.service import AdminError, ArticleService
from articleqa.stores import IndexStoreError
from articleqa.verify import citations_of, verify_citations

log = logging.getLogger(__name__)

EXAMPLES = [
    "What was the codename of the nighttime operation in Caracas?",
    "Who is the Energy Secretary?",
    "In what year did Maduro take power?",
    "Which CNN correspondent said her window was shaking after an explosion?",
]


def index_note(service: ArticleService) -> str:
    try:
        status = service.index_status()
    except IndexStoreError as exc:
        return f"**No index loaded:** {escape(str(exc))}"
    note = (
        f"Indexed: **{status.articles} articles**, **{status.passages} passages** "
        f"· built {escape(status.built_at_display())} · version {escape(status.version)}"
    )
    feed = service.last_feed
    if feed:
        import time

        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(feed["at"]))
        what = f"failed: {feed['error']}" if feed.get("error") else f"{feed['saved']} new, {feed['known']} known"
        note += f" · feed {escape(feed['feed'])} fetched {when} ({escape(what)})"
    return note


CITED_FIELDS = {"file", "start", "end", "quote", "sha256"}


def question_key(question: str) -> str:
    return " ".join(question.lower().split())


def stale_notes(pipeline: QAPipeline, earlier: list[dict] | None) -> list[str]:
    """When a question is asked again: what changed in the articles its last answer cited."""
    if not earlier:
        return []
    checks = verify_citations(earlier, pipeline.indexes.get().articles)
    return [
        f"Your earlier answer to this question cited {c.file} at {c.start}–{c.end} ({c.quote!r}): {c.status}. {c.message}."
        for c in checks
        if c.status != "valid"
    ]


def uploaded_file(path: str | Path) -> Path:
    """A file the browser uploaded: it must lie in Gradio's upload folder, never elsewhere on the server."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()).resolve()
    real = Path(path).resolve()
    if folder not in real.parents or not real.is_file():
        raise AdminError(f"{Path(path).name}: not a file uploaded through this page", status=400)
    return real


def _progress_text(status: dict) -> str:
    p = status.get("progress") or {}
    state = status["state"]
    if state == "running":
        return (
            f"Rebuilding ({p.get('stage', '...')}): {p.get('files_total', 0)} files, "
            f"{p.get('passages_embedded', 0)}/{p.get('passages_to_embed', 0)} passages embedded, "
            f"{p.get('elapsed', 0.0):.1f}s"
        )
    if state == "done":
        r = status.get("report") or {}
        if r.get("up_to_date"):
            return f"Index is up to date ({r.get('passages', 0)} passages)."
        return (
            f"Rebuilt: {len(r.get('added', []))} added, {len(r.get('changed', []))} changed, "
            f"{len(r.get('removed', []))} removed; {r.get('passages', 0)} passages in {r.get('seconds', 0):.1f}s."
            + (
                " Skipped: " + "; ".join(f"{escape(s['file'])} ({escape(s['reason'])})" for s in r.get("skipped", []))
                if r.get("skipped")
                else ""
            )
        )
    if state == "failed":
        return f"Rebuild failed, the previous index keeps serving: {escape(status.get('error') or '')}"
    return ""


def build_chat(pipeline: QAPipeline, service: ArticleService) -> gr.Blocks:
    jobs = service.jobs

    def respond(message: str, chat: list, turns: list, asked: dict):
        message = message or ""
        if not message.strip():
            return "", chat, turns, asked
        chat = [*chat, {"role": "user", "content": escape(message)}]
        history = [Turn(q, a) for q, a in turns]
        try:
            notes = stale_notes(pipeline, asked.get(question_key(message)))
            answer = pipeline.ask(message, history=history, explain=True)
            reply = answer_html(answer, notes)
            turns = [*turns, [message, answer.answer]]
            asked = {
                **asked,
                question_key(message): [{k: c[k] for k in CITED_FIELDS} for c in citations_of(answer.model_dump())],
            }
        except QuestionError as exc:
            reply = error_html(str(exc))
        except IndexStoreError as exc:
            reply = error_html(f"the index is not available ({exc})")
        except Exception:
            log.exception("chat failed on %r", message[:200])
            reply = error_html("the assistant failed to answer; the server log has the details")
        return "", [*chat, {"role": "assistant", "content": reply}], turns, asked

    def clear():
        return [], [], {}

    def upload_and_rebuild(files, token: str, overwrite: bool):
        try:
            service.check_token(token)  # before any file is looked at
            received = []
            for f in files or []:
                path = uploaded_file(f if isinstance(f, str) else f.name)
                with open(path, "rb") as fh:
                    received.append((path.name, fh.read(service.settings.max_upload_bytes + 1)))
            result = service.upload(received, overwrite=overwrite, rebuild=True)
        except AdminError as exc:
            yield f"Refused: {escape(str(exc))}"
            return
        messages = [f"saved {escape(n)}" for n in result["saved"]] + [
            f"refused: {escape(e['error'])}" for e in result["errors"]
        ]
        head = ("; ".join(messages) + ". ") if messages else ""
        if (result["rebuild"] or {}).get("error"):
            yield head + escape(result["rebuild"]["error"])
            return
        while jobs.running:
            yield head + _progress_text(jobs.status())
            time.sleep(0.5)
        yield head + _progress_text(jobs.status())

    with gr.Blocks(title="articleqa") as demo:
        gr.Markdown("## articleqa: answers from your news articles, with exact citations")
        note = gr.Markdown(index_note(service), elem_id="index-note")
        chatbot = gr.Chatbot(
            label="Chat",
            height=520,
            elem_id="chat",
            sanitize_html=True,
            render_markdown=True,
            buttons=["copy"],
            feedback_options=None,
            placeholder="Ask a question about the articles. Answers quote the article and cite file and character span.",
        )
        turns = gr.State([])
        asked = gr.State({})  # question -> the citations of its last answer, checked when it is asked again
        with gr.Row():
            box = gr.Textbox(placeholder="Ask a question…", show_label=False, scale=8, elem_id="question", max_lines=3)
            send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            reset = gr.Button("New chat", scale=1)
        gr.Examples(EXAMPLES, inputs=[box], label="Example questions")
        with gr.Accordion("Add articles and rebuild the index", open=False):
            gr.Markdown(
                "Upload `.txt`, `.md` or `.html` files (at most "
                f"{service.settings.max_upload_files} at a time); they are stored in the articles folder and the index is "
                "rebuilt in the background (the chat keeps answering). Needs the admin token."
            )
            files = gr.File(
                file_count="multiple", file_types=sorted(SUPPORTED_SUFFIXES), type="filepath", label="Articles"
            )
            with gr.Row():
                token = gr.Textbox(label="Admin token", type="password", scale=3)
                overwrite = gr.Checkbox(label="Replace files with the same name", value=False, scale=1)
            go = gr.Button("Upload and rebuild", elem_id="rebuild")
            progress = gr.Markdown(elem_id="rebuild-progress")
        timer = gr.Timer(5.0)

        send.click(
            respond,
            [box, chatbot, turns, asked],
            [box, chatbot, turns, asked],
            concurrency_limit=4,
            concurrency_id="chat",
        )
        box.submit(
            respond,
            [box, chatbot, turns, asked],
            [box, chatbot, turns, asked],
            concurrency_limit=4,
            concurrency_id="chat",
        )
        reset.click(clear, None, [chatbot, turns, asked])
        go.click(
            upload_and_rebuild, [files, token, overwrite], [progress], concurrency_limit=1, concurrency_id="rebuild"
        )
        timer.tick(lambda: index_note(service), None, [note], show_progress="hidden")
    return demo
