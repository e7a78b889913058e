"""Index: build or incrementally update the index of an articles folder (ingest -> chunk -> embed -> store).

Unchanged files (same content hash) keep their passages and vectors; new or changed files are chunked
and embedded; deleted files disappear. A different embedding model or chunking settings forces a
full rebuild, and the report says why. One rebuild runs at a time across processes (file lock).

Example::

    report = IndexBuilder(Embedder(), SentenceChunker()).build("seeds", "index")
    print(report.summary())
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from articleqa.ingest import MAX_ARTICLE_BYTES, ArticleLoader, Skipped
from articleqa.protocols import Chunker, Embedder, IndexStore
from articleqa.stores import IndexStoreError, RebuildInProgressError, mismatch_reason, open_store
from articleqa.types import Article, Passage

log = logging.getLogger(__name__)


@dataclass
class BuildProgress:
    """Reported while a rebuild runs (CLI progress bar, API status, chat panel)."""

    stage: str  # "reading" | "chunking" | "embedding" | "writing" | "done"
    files_read: int = 0
    files_total: int = 0
    files_to_embed: int = 0
    files_chunked: int = 0
    passages_total: int = 0
    passages_embedded: int = 0
    passages_to_embed: int = 0
    elapsed: float = 0.0


@dataclass
class BuildReport:
    version: str | None
    up_to_date: bool
    full: bool
    full_reason: str | None
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    passages: int = 0
    embedded: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = [asdict(s) for s in self.skipped]
        return d

    def summary(self) -> str:
        if self.up_to_date:
            head = f"index is up to date ({self.passages} passages)"
        else:
            kind = f"full rebuild ({self.full_reason})" if self.full else "incremental update"
            head = (
                f"{kind}: {len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
                f"{self.unchanged} unchanged; {self.passages} passages ({self.embedded} embedded) in {self.seconds:.1f}s"
                f" -> version {self.version}"
            )
        if self.skipped:
            head += "\nskipped: " + "; ".join(f"{s.file} ({s.reason})" for s in self.skipped)
        return head


class IndexBuilder:
    """Args:
    embedder, chunker: the stages that turn articles into passages and vectors.
    keep_versions: index versions kept on disk after a rebuild.
    max_article_bytes: larger files are skipped with a warning.
    batch_job: chunks and embeds the new and changed articles in one job (``run(articles) ->
        (passages, vectors)``, e.g. ``RayChunkEmbedder``) instead of in this process.
    """

    def __init__(
        self,
        embedder: Embedder,
        chunker: Chunker,
        keep_versions: int = 2,
        max_article_bytes: int = MAX_ARTICLE_BYTES,
        batch_job=None,
    ):
        self.embedder = embedder
        self.chunker = chunker
        self.batch_job = batch_job  # e.g. ray_embedding.RayChunkEmbedder: chunks and embeds as a distributed job
        self.keep_versions = keep_versions
        self.max_article_bytes = max_article_bytes

    def chunking_settings(self) -> dict:
        return self.chunker.chunking_settings()

    def build(
        self,
        folder: str | Path,
        index: IndexStore | str | Path,
        full: bool = False,
        wait: bool = True,
        timeout: float = 600,
        on_progress: Callable[[BuildProgress], None] | None = None,
    ) -> BuildReport:
        """Build or update the index in ``index`` (a store, or an index folder for the default store);
        with ``wait=False`` a rebuild already running raises ``RebuildInProgressError`` at once instead
        of waiting for it. ``on_progress`` gets a ``BuildProgress`` at each step."""
        from filelock import Timeout

        store = open_store(index) if isinstance(index, (str, Path)) else index
        lock = store.lock(timeout=timeout if wait else 0)
        try:
            with lock:
                return self._run_locked(Path(folder), store, full, on_progress)
        except Timeout:
            raise RebuildInProgressError(
                f"a rebuild of {store.root} is already running; try again when it has finished"
            ) from None

    def _run_locked(self, folder: Path, store: IndexStore, full: bool, on_progress) -> BuildReport:
        t0 = time.perf_counter()
        progress = BuildProgress(stage="reading")

        def report(**changes):
            for k, v in changes.items():
                setattr(progress, k, v)
            progress.elapsed = time.perf_counter() - t0
            if on_progress:
                on_progress(BuildProgress(**asdict(progress)))

        report()
        store.cleanup(keep=self.keep_versions)  # leftovers of an interrupted rebuild
        articles, skipped = ArticleLoader(self.max_article_bytes).load(
            folder,
            on_file=lambda done, total: (
                report(files_read=done, files_total=total) if done % 20 == 0 or done == total else None
            ),
        )
        chunking = self.chunking_settings()
        model = self.embedder.name

        previous = None
        full_reason = "--full requested" if full else None
        if not full:
            if store.exists():
                try:
                    manifest = store.read_manifest()
                    full_reason = mismatch_reason(manifest, model, chunking)
                    if full_reason is None:
                        previous = store.load(model, chunking)
                except IndexStoreError as exc:
                    full_reason = f"previous index unusable: {exc}"
            else:
                full_reason = "no index yet"
        if full_reason and previous is None:
            log.info("full rebuild: %s", full_reason)

        old_files = previous.manifest["files"] if previous else {}
        new_files = {a.file: a for a in articles}
        added = [f for f in new_files if f not in old_files]
        changed = [f for f in new_files if f in old_files and old_files[f]["sha256"] != new_files[f].sha256]
        removed = [f for f in old_files if f not in new_files]
        unchanged = [f for f in new_files if f in old_files and f not in changed]

        if previous is not None and not (added or changed or removed):
            report(stage="done", files_total=len(articles), passages_total=len(previous.passages))
            return BuildReport(
                version=previous.version,
                up_to_date=True,
                full=False,
                full_reason=None,
                unchanged=len(unchanged),
                passages=len(previous.passages),
                skipped=skipped,
                seconds=time.perf_counter() - t0,
            )

        # reuse passages and vectors of unchanged files; chunk and embed the rest
        keep_rows: list[int] = []
        kept_passages: list[Passage] = []
        if previous is not None:
            keep = set(unchanged)
            for row, p in enumerate(previous.passages):
                if p.file in keep:
                    keep_rows.append(row)
                    kept_passages.append(p)
        to_embed_articles = [new_files[f] for f in new_files if previous is None or f in added or f in changed]
        if self.batch_job is not None:
            report(
                stage="embedding",
                files_total=len(articles),
                files_to_embed=len(to_embed_articles),
                passages_total=len(kept_passages),
                passages_to_embed=0,
            )
            t_embed = time.perf_counter()
            fresh, fresh_vectors = self.batch_job.run(to_embed_articles)
            embed_seconds = time.perf_counter() - t_embed
            report(
                passages_total=len(kept_passages) + len(fresh),
                passages_to_embed=len(fresh),
                passages_embedded=len(fresh),
            )
        else:
            fresh, fresh_vectors, embed_seconds = self._chunk_and_embed(
                to_embed_articles, len(articles), len(kept_passages), report
            )
        dim = self.embedder.dimension
        kept_vectors = previous.vectors[keep_rows] if previous is not None else np.zeros((0, dim), dtype=np.float32)

        # order by file so each article's passages are contiguous; renumber ids
        combined = sorted(
            [(p, kept_vectors[i]) for i, p in enumerate(kept_passages)]
            + [(p, fresh_vectors[i]) for i, p in enumerate(fresh)],
            key=lambda pv: (pv[0].file, pv[0].start),
        )
        passages = [
            Passage(id=i, file=p.file, start=p.start, end=p.end, text=p.text, title=p.title)
            for i, (p, _) in enumerate(combined)
        ]
        vectors = np.stack([v for _, v in combined]) if combined else np.zeros((0, dim), dtype=np.float32)
        ordered_articles = sorted(articles, key=lambda a: a.file)

        report(stage="writing")
        log.info("rebuild: writing a new version (%d passages)", len(passages))
        version = store.write_version(
            ordered_articles,
            passages,
            vectors,
            model,
            chunking,
            extra={"skipped": [asdict(s) for s in skipped], "articles_dir": str(folder)},
        )
        log.info("rebuild: published version %s", version)
        store.cleanup(keep=self.keep_versions)
        report(stage="done", passages_embedded=len(fresh))
        return BuildReport(
            version=version,
            up_to_date=False,
            full=previous is None,
            full_reason=full_reason if previous is None else None,
            added=added if previous is not None else list(new_files),
            changed=changed,
            removed=removed,
            unchanged=len(unchanged),
            passages=len(passages),
            embedded=len(fresh),
            skipped=skipped,
            seconds=time.perf_counter() - t0,
            embed_seconds=embed_seconds,
        )

    def _chunk_and_embed(
        self, to_embed: list[Article], files_total: int, kept: int, report
    ) -> tuple[list[Passage], np.ndarray, float]:
        """Chunk and embed in this process, reporting progress per file and per block of passages."""
        report(stage="chunking", files_to_embed=len(to_embed), files_chunked=0)
        fresh: list[Passage] = []
        for n, article in enumerate(to_embed, 1):
            fresh += self.chunker.chunk([article], start_id=len(fresh))
            report(files_chunked=n)
        log.info("rebuild: embedding %d passages of %d file(s)", len(fresh), len(to_embed))
        report(
            stage="embedding",
            files_total=files_total,
            files_to_embed=len(to_embed),
            passages_total=kept + len(fresh),
            passages_to_embed=len(fresh),
        )
        t_embed = time.perf_counter()
        blocks = []
        block = 256
        for b in range(0, len(fresh), block):
            blocks.append(self.embedder.encode([p.text for p in fresh[b : b + block]], progress=False))
            report(passages_embedded=min(b + block, len(fresh)))
        dim = self.embedder.dimension
        vectors = np.concatenate(blocks) if blocks else np.zeros((0, dim), dtype=np.float32)
        return fresh, vectors, time.perf_counter() - t_embed
