"""Index stores, one family: ``base`` (what they share), ``faiss`` (the index folder, the default) and
``milvus`` (a milvus-lite file or a Milvus server). This package chooses between them (``open_store``);
the pipeline sees only the ``IndexStore`` / ``IndexVersion`` contracts (``articleqa.protocols``)."""

from __future__ import annotations

from pathlib import Path

from articleqa.stores.base import (
    FORMAT_VERSION,
    FolderLock,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexStoreError,
    RebuildInProgressError,
    VersionCache,
    article_meta,
    article_meta_from,
    check_compatible,
    mismatch_reason,
)
from articleqa.stores.faiss import FLAT_MAX_PASSAGES, FaissIndexStore, LoadedIndex, build_faiss_index, ivf_params

__all__ = [
    "FORMAT_VERSION",
    "FLAT_MAX_PASSAGES",
    "FaissIndexStore",
    "FolderLock",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IndexStoreError",
    "LoadedIndex",
    "RebuildInProgressError",
    "VersionCache",
    "article_meta",
    "article_meta_from",
    "build_faiss_index",
    "check_compatible",
    "ivf_params",
    "mismatch_reason",
    "open_store",
    "settings_store",
]


def open_store(index_dir: str | Path, store: str = "faiss", token: str | None = None, prefix: str = "articleqa"):
    """The index store a setting names: ``faiss`` (the index folder) or ``milvus:<uri>`` (see
    ``articleqa.stores.milvus``); the one place a backend is chosen."""
    if store == "faiss":
        return FaissIndexStore(index_dir)
    if store.startswith("milvus:"):
        from articleqa.stores.milvus import MilvusIndexStore, milvus_uri

        return MilvusIndexStore(milvus_uri(store, Path(index_dir)), token=token, lock_dir=index_dir, prefix=prefix)
    raise IndexStoreError(f"unknown store {store!r}: use faiss or milvus:<uri>")


def settings_store(settings):
    """``open_store`` for a ``Settings``."""
    return open_store(settings.index_dir, settings.store, settings.milvus_token, settings.milvus_prefix)
