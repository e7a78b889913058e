"""What every index store shares: the errors, the rebuild lock, per-version caches, the
compatibility check and the article metadata helpers. ``faiss.py`` and ``milvus.py`` build on it;
``articleqa.stores`` (the package) chooses between them. The arrows run one way:
base <- faiss, milvus <- package."""

from __future__ import annotations

from pathlib import Path

from articleqa.types import Article

FORMAT_VERSION = 1


class IndexStoreError(RuntimeError):
    """Base class of index problems; the message says what to do."""


class IndexNotFoundError(IndexStoreError, FileNotFoundError):
    pass


class IndexMismatchError(IndexStoreError):
    """The index was built with another embedding model or chunking settings."""


class IndexCorruptError(IndexStoreError):
    pass


class RebuildInProgressError(IndexStoreError):
    pass


class VersionCache:
    """``cached``: per-version companions (the BM25 index, fetched vectors) built once under a lock;
    the class provides ``_cache`` (dict) and ``_lock``."""

    def cached(self, key: str, build):
        """Per-version lazily built companions (the BM25 index), built once under a lock."""
        if key not in self._cache:
            with self._lock:
                if key not in self._cache:
                    self._cache[key] = build(self)
        return self._cache[key]


class FolderLock:
    """The cross-process rebuild lock of a store: a ``filelock`` file in its folder ``root``."""

    root: Path
    lock_file = ".lock"

    def lock(self, timeout: float = -1):
        """The lock (``filelock``). ``timeout=0`` fails at once if held."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / self.lock_file), timeout=timeout)

    def is_locked(self) -> bool:
        """True while some process holds the rebuild lock."""
        from filelock import Timeout

        lock = self.lock(timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False


def check_compatible(manifest: dict, embedding_model: str | None, chunking: dict | None) -> None:
    """Raise ``IndexMismatchError`` saying what differs and to rebuild."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}; rebuild with `articleqa index --full`"
        )
    reason = mismatch_reason(manifest, embedding_model, chunking)
    if reason:
        raise IndexMismatchError(f"{reason}; rebuild with `articleqa index --full`")


def mismatch_reason(manifest: dict, embedding_model: str | None, chunking: dict | None) -> str | None:
    if embedding_model is not None and manifest.get("embedding_model") != embedding_model:
        return f"index was built with embedding model {manifest.get('embedding_model')!r}, configured is {embedding_model!r}"
    if chunking is not None and manifest.get("chunking") != chunking:
        return f"index was built with chunking {manifest.get('chunking')}, configured is {chunking}"
    if manifest.get("format_version") != FORMAT_VERSION:
        return f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}"
    return None


def article_meta(a: Article) -> dict:
    """The optional metadata of an article (author, url, PDF page starts), only what it has: indexes
    written before these fields existed read back unchanged."""
    return {k: v for k, v in (("author", a.author), ("url", a.url), ("pages", list(a.pages))) if v}


def article_meta_from(d: dict) -> dict:
    return {
        "author": d.get("author") or None,
        "url": d.get("url") or None,
        "pages": tuple(int(x) for x in d.get("pages") or ()),
    }
