"""The FAISS store: FAISS vectors + passage metadata + article texts + manifest, as immutable index versions.

Layout of an index folder::

    index/
      CURRENT                 name of the published version (replaced atomically)
      versions/<version>/     manifest.json, passages.jsonl, articles.jsonl, vectors.npy, vectors.faiss
      .lock                   cross-process lock held by a rebuild

A rebuild writes a new version in ``versions/.tmp-*``, renames it into place and then swaps
``CURRENT`` with ``os.replace``: a crash at any moment leaves the previous version published and
loadable. Only JSON, ``.npy`` (loaded with ``allow_pickle=False``) and FAISS's own format are read:
nothing that can execute code. Checksums in the manifest catch truncated or hand-edited files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from articleqa.stores.base import (
    FORMAT_VERSION,
    FolderLock,
    IndexCorruptError,
    IndexNotFoundError,
    VersionCache,
    article_meta,
    article_meta_from,
    check_compatible,
)
from articleqa.types import Article, IndexStatus, Passage

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
VERSIONS = "versions"
DATA_FILES = ("passages.jsonl", "articles.jsonl", "vectors.npy")
#: Up to this many passages an exact (flat) index is used; above it IVF (see bench/scaling.py).
FLAT_MAX_PASSAGES = 200_000


@dataclass
class LoadedIndex(VersionCache):
    """One published index version in memory. Immutable: a rebuild publishes a new one, so
    questions in flight keep reading the version they started with."""

    path: Path
    manifest: dict
    passages: list[Passage]
    articles: dict[str, Article]
    vectors: np.ndarray
    faiss_index: object
    _cache: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def status(self) -> IndexStatus:
        m = self.manifest
        return IndexStatus(
            version=self.version,
            built_at=m.get("built_at"),
            articles=len(self.articles),
            passages=len(self.passages),
            index_type=m.get("index_type"),
            embedding_model=m.get("embedding_model"),
            store="faiss",
            files={f: int(info.get("passages", 0)) for f, info in m.get("files", {}).items()},
            skipped=tuple(m.get("skipped", ())),
        )

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k (passage position, inner product) per query vector."""
        k = min(k, len(self.passages))
        if k <= 0:
            return [[] for _ in range(len(query_vectors))]
        scores, ids = self.faiss_index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k)
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s) if i >= 0] for row_i, row_s in zip(ids, scores)]


def build_faiss_index(vectors: np.ndarray, kind: str = "auto"):
    """Inner-product index: exact (flat) up to ``FLAT_MAX_PASSAGES``, IVF above (see bench/scaling.py)."""
    import faiss

    n, dim = vectors.shape if vectors.ndim == 2 else (0, 0)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if kind == "auto":
        kind = "flat" if n <= FLAT_MAX_PASSAGES else "ivf"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist, nprobe = ivf_params(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)]
        index.train(sample)
        index.nprobe = nprobe
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    else:
        raise ValueError(f"unknown index type {kind!r}")
    if n:
        index.add(vectors)
    return index, kind


def ivf_params(n: int) -> tuple[int, int]:
    """Cells and cells probed for an IVF index of ``n`` vectors (about sqrt(n) cells, ~5% probed)."""
    nlist = int(min(4096, max(16, round(n**0.5))))
    return nlist, max(8, nlist // 20)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class FaissIndexStore(FolderLock):
    """Reads and publishes index versions in one folder (the ``IndexStore`` of ``articleqa.protocols``)."""

    name = "faiss"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FaissIndexStore({str(self.root)!r})"

    def close(self) -> None:
        """Nothing to release: each version is read from the folder whole (the IndexStore contract)."""

    # --- reading -------------------------------------------------------------------------------

    def current_version(self) -> str | None:
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name or None

    def exists(self) -> bool:
        v = self.current_version()
        return v is not None and (self.root / VERSIONS / v / "manifest.json").is_file()

    def read_manifest(self, version: str | None = None) -> dict:
        version = version or self.current_version()
        if version is None:
            raise IndexNotFoundError(f"no index in {self.root}: build one with `articleqa index`")
        path = self.root / VERSIONS / version / "manifest.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexCorruptError(
                f"index version {version} in {self.root} has no manifest; rebuild with `articleqa index --full`"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorruptError(
                f"index manifest {path} is unreadable ({exc}); rebuild with `articleqa index --full`"
            ) from None

    def load(self, embedding_model: str | None = None, chunking: dict | None = None) -> LoadedIndex:
        """Load the published version, checking it against the configured model and settings."""
        version = self.current_version()
        if version is None:
            raise IndexNotFoundError(f"no index in {self.root}: build one with `articleqa index`")
        manifest = self.read_manifest(version)
        check_compatible(manifest, embedding_model, chunking)
        vdir = self.root / VERSIONS / version
        for name in DATA_FILES:
            p = vdir / name
            if not p.is_file():
                raise IndexCorruptError(f"index file {p} is missing; rebuild with `articleqa index --full`")
            if _sha256_file(p) != manifest.get("checksums", {}).get(name):
                raise IndexCorruptError(
                    f"index file {p} does not match its checksum (truncated or edited); rebuild with `articleqa index --full`"
                )
        try:
            passages = [_passage_from_json(json.loads(line)) for line in _read_lines(vdir / "passages.jsonl")]
            articles = {
                a.file: a
                for a in (_article_from_json(json.loads(line)) for line in _read_lines(vdir / "articles.jsonl"))
            }
            vectors = np.load(vdir / "vectors.npy", allow_pickle=False)
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(
                f"index version {version} is unreadable ({exc}); rebuild with `articleqa index --full`"
            ) from None
        if vectors.shape != (len(passages), manifest["dimension"]):
            raise IndexCorruptError(f"index version {version}: {vectors.shape} vectors for {len(passages)} passages")
        faiss_path = vdir / "vectors.faiss"
        index = None
        if faiss_path.is_file() and _sha256_file(faiss_path) == manifest.get("checksums", {}).get("vectors.faiss"):
            import faiss

            index = faiss.read_index(str(faiss_path))
            if index.ntotal != len(passages):
                index = None
        if index is None:  # FAISS file missing or stale: rebuild it from the vectors
            index, _ = build_faiss_index(vectors, manifest.get("index_type", "auto"))
        return LoadedIndex(
            path=vdir, manifest=manifest, passages=passages, articles=articles, vectors=vectors, faiss_index=index
        )

    # --- writing -------------------------------------------------------------------------------

    def write_version(
        self,
        articles: list[Article],
        passages: list[Passage],
        vectors: np.ndarray,
        embedding_model: str,
        chunking: dict,
        extra: dict | None = None,
        index_type: str = "auto",
    ) -> str:
        """Write a complete new version and publish it atomically; returns its name.

        The caller holds the lock. Every file is fsynced before the rename and before ``CURRENT``
        is replaced, so a crash leaves either the old or the new version published, never a mix.
        """
        import faiss

        versions = self.root / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        tmp = versions / f".tmp-{version}"
        tmp.mkdir()
        try:
            _write_file(
                tmp / "passages.jsonl",
                "".join(json.dumps(_passage_to_json(p), ensure_ascii=False) + "\n" for p in passages).encode("utf-8"),
            )
            _write_file(
                tmp / "articles.jsonl",
                "".join(json.dumps(_article_to_json(a), ensure_ascii=False) + "\n" for a in articles).encode("utf-8"),
            )
            with open(tmp / "vectors.npy", "wb") as f:
                np.save(f, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            index, kind = build_faiss_index(vectors, index_type)
            faiss.write_index(index, str(tmp / "vectors.faiss"))
            manifest = {
                "format_version": FORMAT_VERSION,
                "version": version,
                "embedding_model": embedding_model,
                "dimension": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
                "chunking": chunking,
                "index_type": kind,
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "n_articles": len(articles),
                "n_passages": len(passages),
                "files": {
                    a.file: {
                        "sha256": a.sha256,
                        "title": a.title,
                        "date": a.date,
                        "kind": a.kind,
                        "passages": sum(1 for p in passages if p.file == a.file),
                        **{k: v for k, v in article_meta(a).items() if k != "pages"},
                    }
                    for a in articles
                },
                "checksums": {name: _sha256_file(tmp / name) for name in (*DATA_FILES, "vectors.faiss")},
                **(extra or {}),
            }
            _write_file(tmp / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8"))
            _fsync_dir(tmp)
            final = versions / version
            os.rename(tmp, final)
            _fsync_dir(versions)
            self._publish(version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return version

    def _publish(self, version: str) -> None:
        tmp = self.root / f".{CURRENT}.{uuid.uuid4().hex[:6]}.tmp"
        _write_file(tmp, (version + "\n").encode("utf-8"))
        os.replace(tmp, self.root / CURRENT)
        _fsync_dir(self.root)

    def make_retriever(self, kind: str, embedder):
        """FAISS for dense search, bm25s for BM25, fused in Python (``articleqa.retrieval``)."""
        from articleqa.retrieval import make_retriever

        return make_retriever(kind, embedder)

    def cleanup(self, keep: int = 2, min_age_seconds: float = 0.0) -> list[str]:
        """Remove old versions (keeping the current one and ``keep - 1`` before it) and leftovers
        of interrupted rebuilds. Call while holding the lock."""
        versions = self.root / VERSIONS
        if not versions.is_dir():
            return []
        current = self.current_version()
        removed = []
        for tmp in [*versions.glob(".tmp-*"), *self.root.glob(f".{CURRENT}.*.tmp")]:
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
        published = sorted(
            (p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name
        )
        older = [p.name for p in published if p.name <= (current or "")]
        keepers = {current, *older[-keep:]} if keep > 0 else {current}
        now = time.time()
        for p in published:
            if p.name not in keepers and now - p.stat().st_mtime >= min_age_seconds:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        return removed


def _read_lines(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line


def _passage_to_json(p: Passage) -> dict:
    return {"id": p.id, "file": p.file, "start": p.start, "end": p.end, "text": p.text, "title": p.title}


def _passage_from_json(d: dict) -> Passage:
    return Passage(
        id=int(d["id"]),
        file=str(d["file"]),
        start=int(d["start"]),
        end=int(d["end"]),
        text=str(d["text"]),
        title=str(d.get("title", "")),
    )


def _article_to_json(a: Article) -> dict:
    return {
        "file": a.file,
        "sha256": a.sha256,
        "title": a.title,
        "date": a.date,
        "kind": a.kind,
        "text": a.text,
        **article_meta(a),
    }


def _article_from_json(d: dict) -> Article:
    return Article(
        file=str(d["file"]),
        text=str(d["text"]),
        sha256=str(d["sha256"]),
        title=str(d.get("title", "")),
        date=d.get("date"),
        kind=str(d.get("kind", "txt")),
        **article_meta_from(d),
    )
