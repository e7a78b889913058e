"""The deployable application: the ASGI entry of articleqa, run from a checkout.

    uvicorn app.main:app --host 0.0.0.0 --port 7860 --workers 2

Everything is configured through ``ARTICLEQA_*`` environment variables (README, "Configuration"); with
several workers each process loads the models and the published index, answers on its own, and picks
up a newly published index version within a second (``IndexHolder`` polls the store), so a rebuild
started through one worker (upload, ``POST /api/rebuild``, a feed) is seen by all. One rebuild runs at a
time across the workers (the store's lock). Jobs that must run once — watching the articles folder
(``ARTICLEQA_WATCH=1``) and following feeds (``ARTICLEQA_FEEDS``, ``ARTICLEQA_FEED_EVERY``) — run in the
one worker that holds the background-jobs lock (``serve.server.start_background_jobs``). Limits that
stay per worker: the rate limit (``ARTICLEQA_RATE_LIMIT_PER_MINUTE`` counts per process, so N workers
allow up to N times it) and the reader's request batching.

This folder is not an installed package: the library is ``src/articleqa`` (``pip install -e .``);
``deploy/`` holds the files a team needs to run it as a service (see README, "Beyond one machine").
"""

from __future__ import annotations

import logging

from articleqa.config import get_settings
from articleqa.serve.server import create_app, start_background_jobs

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

settings = get_settings()
app = create_app(settings)
background = start_background_jobs(app)
