"""Chunking and embedding as a Ray Data pipeline: ``articleqa index --embed-with ray``.

Articles go in as rows; ``flat_map`` cuts each into passages (the same ``Chunker`` as in process), and
``map_batches`` embeds them on a pool of actors that each hold the encoder once. Locally Ray uses the
machine's cores; with ``--ray-address`` (or ``RAY_ADDRESS``) the same job runs on a Ray cluster,
whose workers need articleqa installed. Encoder actors ask for ``ACTOR_CPUS`` (less than one CPU) and
chunking tasks for the rest, so a node with one CPU runs both and every node of a cluster embeds.
A cluster with token authentication (Ray >= 2.52's default for ``ray start``) is joined with the
token the environment names (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``).
The passages and vectors come back to the builder, which writes them to whichever store is
configured (FAISS or Milvus).

Example::

    job = RayChunkEmbedder(embedder, chunker, address=None, actors=2)
    passages, vectors = job.run(articles)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from articleqa.protocols import Chunker, Embedder
from articleqa.types import Article, Passage

log = logging.getLogger(__name__)

INSTALL_HINT = "Ray is not installed: pip install 'articleqa[scale]' (or pip install 'ray[data]')"


ACTOR_CPUS = 0.75  # per encoder actor; the remaining quarter of a CPU runs chunking tasks beside it
CHUNK_CPUS = 0.25


class RayNotInstalled(RuntimeError):
    pass


class RayClusterError(ConnectionError):
    """The Ray cluster named by --ray-address / RAY_ADDRESS could not be joined."""


def ray_token_available() -> bool:
    """Whether this environment holds a Ray authentication token (the places Ray itself reads)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    candidate = Path(path).expanduser() if path else Path.home() / ".ray" / "auth_token"
    return candidate.is_file() and candidate.stat().st_size > 0


def connect_ray(address: str):
    """``ray.init(address)`` for a driver joining a cluster: token authentication is turned on when a
    token is at hand and RAY_AUTH_MODE says nothing (a node or driver must opt in, the head's default is
    on), and a refused or unreachable cluster becomes a RayClusterError that says what to check."""
    ray = require_ray()
    if "RAY_AUTH_MODE" not in os.environ and ray_token_available():
        try:  # Ray's own switch: sets RAY_AUTH_MODE=token and refreshes the config it read at import
            from ray._private.authentication.authentication_token_setup import (
                maybe_enable_token_auth_if_token_available,
            )
        except ImportError:  # a Ray before token authentication
            pass
        else:
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
            log.info("ray: joining %s with token authentication", address)
    try:
        return ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # ConnectionError, AuthenticationError, or a bare Exception from the GCS client
        ray.shutdown()
        hint = (
            "is the cluster up (ray status --address ...)? If it uses token authentication (the default of "
            "`ray start`), set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's "
            "token (`ray get-auth-token` on the head)"
        )
        raise RayClusterError(f"cannot join the Ray cluster at {address}: {exc}; {hint}") from exc


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayNotInstalled(INSTALL_HINT) from None
    return ray


class _EncoderActor:
    """Holds one encoder for the life of the actor; embeds a batch of passage texts."""

    def __init__(self, model_path: str, backend: str = "auto"):
        import ray

        from articleqa.embedding import Embedder as SentenceEmbedder

        self.embedder = SentenceEmbedder(model_path, backend=backend)
        self.embedder.warm_up()
        self.node = ray.get_runtime_context().get_node_id()  # an actor lives on one node

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        batch["vector"] = list(self.embedder.encode(texts, progress=False))
        batch["node"] = [self.node] * len(texts)
        return batch


class RayChunkEmbedder:
    """Args:
    embedder: the in-process embedder (its model path and name are used; vectors match it).
    chunker: cuts articles into passages, run in Ray tasks.
    address: a Ray cluster (``HEAD_IP:6379``, ``ray://host:10001`` or ``auto``); None: ``RAY_ADDRESS`` or a local Ray.
    actors: encoder actors, ``ACTOR_CPUS`` each (default: one per CPU of the cluster).
    batch_size: passages per encoder call.
    """

    def __init__(
        self,
        embedder: Embedder,
        chunker: Chunker,
        address: str | None = None,
        actors: int | None = None,
        batch_size: int = 128,
    ):
        require_ray()
        self.embedder = embedder
        self.chunker = chunker
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.actors = actors
        self.batch_size = batch_size

    def _init_ray(self):
        ray = require_ray()
        if not ray.is_initialized():
            if self.address:
                connect_ray(self.address)
            else:
                start_local_ray()
        return ray

    def run(self, articles: list[Article]) -> tuple[list[Passage], np.ndarray]:
        """Passages of ``articles`` (ids in the returned order) and their vectors."""
        dim = self.embedder.dimension
        if not articles:
            return [], np.zeros((0, dim), dtype=np.float32)
        ray = self._init_ray()
        chunker = self.chunker
        model_path = getattr(self.embedder, "model_path", None) or self.embedder.name
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # one actor per CPU, but no more than there will be batches (a passage is some 500+ characters)
        batches = max(1, math.ceil(sum(len(a.text) for a in articles) / 500 / self.batch_size))
        actors = self.actors or min(max(1, cpus), batches)

        def chunk(row: dict) -> list[dict]:
            article = Article(**row)
            return [asdict(p) for p in chunker.chunk([article])]

        rows = [
            {"file": a.file, "text": a.text, "sha256": a.sha256, "title": a.title} for a in articles
        ]  # what chunking reads
        ds = ray.data.from_items(rows, override_num_blocks=min(len(articles), actors * 4))
        ds = ds.flat_map(chunk, num_cpus=CHUNK_CPUS)
        ds = ds.map_batches(
            _EncoderActor,
            fn_constructor_args=(model_path, getattr(self.embedder, "backend", "auto")),
            batch_size=self.batch_size,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=ACTOR_CPUS,
            batch_format="default",
        )
        rows = ds.take_all()
        rows.sort(key=lambda r: (r["file"], int(r["start"])))
        passages = [
            Passage(
                id=i,
                file=str(r["file"]),
                start=int(r["start"]),
                end=int(r["end"]),
                text=str(r["text"]),
                title=str(r["title"]),
            )
            for i, r in enumerate(rows)
        ]
        vectors = (
            np.stack([np.asarray(r["vector"], dtype=np.float32) for r in rows])
            if rows
            else np.zeros((0, dim), dtype=np.float32)
        )
        per_node = Counter(str(r["node"]) for r in rows)
        log.info(
            "ray: %d passages of %d articles embedded on %d actor(s) on %d node(s) (%s)",
            len(passages),
            len(articles),
            actors,
            len(per_node),
            ", ".join(f"{n[:8]}: {c}" for n, c in sorted(per_node.items())),
        )
        return passages, vectors


def start_local_ray(num_cpus: int | None = None, attempts: int = 3):
    """A local Ray (no dashboard), retried: on a loaded 2-core machine its control server sometimes
    misses Ray's start-up deadlines ("Timed out waiting for file .../gcs_server_port", or "The current node
    timed out during startup": a fixed 30 s wait for the raylet to register)."""
    ray = require_ray()
    env = {
        k: v for k, v in os.environ.items() if k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
    }
    for attempt in range(1, attempts + 1):
        try:
            return ray.init(
                num_cpus=num_cpus or os.cpu_count() or 2,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": env},
            )
        except Exception as exc:  # Ray raises a bare Exception for the raylet deadline
            if attempt == attempts or "timed out" not in str(exc).lower():
                raise
            log.warning("local Ray did not start (%s); trying again", exc)
            ray.shutdown()
            time.sleep(2 * attempt)
