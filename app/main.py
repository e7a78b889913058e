"""The deployable application: the ASGI entry of articleqa, run from a checkout.

    uvicorn app.main:app --host 0.0.0.0 --port 7860 --workers 2

Everything is configured through ``ARTICLEQA_*`` environment variables (docs/configuration.md). With
several workers they behave as one assistant: each loads the models and the published index and answers
the API on its own, picking up a newly published index version within a second or two; the chat runs
in one of them and every worker forwards chat requests to it (``serve.shared_chat``: Gradio's queue is
per process); the rebuild job, the last feed run and the rate limit live in a shared store beside the
index (``serve.shared``), so status reads the same from every worker, rebuild requests coalesce and the
limit counts across workers. Jobs that must run once — watching the articles folder
(``ARTICLEQA_WATCH=1``) and following feeds — run in the one worker that holds the background-jobs lock
(``serve.server.start_background_jobs``). Still per worker: the reader's request batching.

This folder is not an installed package: the library is ``src/articleqa`` (``pip install -e .``);
``deploy/`` holds the files a team needs to run it as a service (see docs/deployment.md).
"""

from __future__ import annotations

import logging

from articleqa.config import get_settings
from articleqa.serve.server import create_app, start_background_jobs

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

settings = get_settings()
app = create_app(settings, shared_chat=True)  # one chat for all workers (serve.shared_chat)
background = start_background_jobs(app)
