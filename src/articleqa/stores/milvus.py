"""A Milvus index store: the same ``IndexStore``/``IndexVersion``/``Retriever`` contracts as the FAISS
folder, served by Milvus (milvus-lite in one file for tests and one machine, a standalone or
distributed Milvus in production: the same ``pymilvus`` client code).

Layout in Milvus, for a prefix ``articleqa`` (``ARTICLEQA_MILVUS_PREFIX``)::

    articleqa_p_<version>    passages: id, file, start, end, title, text (analyzed), dense vector, and a
                             sparse BM25 vector Milvus computes itself from text (a BM25 function)
    articleqa_a_<version>    article texts (what citations point into) in pieces of 16,000 characters,
                             with each file's sha256, title, date, kind and passage count
    articleqa_m_<version>    the version's manifest (JSON)
    articleqa_current_version  one row naming the published version (what publishing switches)
    articleqa_current        an alias naming the published passages collection, where the server has
                             aliases (milvus-lite's native engine answers UNIMPLEMENTED; nothing needs it)

A rebuild writes the three collections of a new version, then upserts the pointer row (one row: a
reader sees the old version or the new one) and moves the alias where there is one: until then the
old version keeps answering, and a build killed midway leaves only
unpublished collections, dropped by the next rebuild. Old versions are dropped per
``ARTICLEQA_KEEP_VERSIONS``. Hybrid retrieval runs in Milvus: a dense search and a BM25 full-text
search fused with reciprocal rank fusion (``RRFRanker(60)``), like the FAISS + bm25s path.

Example::

    store = MilvusIndexStore("./index/milvus.db")       # or "http://milvus:19530", token="user:pass"
    IndexBuilder(embedder, chunker).build("seeds", store)
    pipeline = QAPipeline(settings, embedder, chunker, reader, store=store)
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from articleqa.stores.base import (
    FORMAT_VERSION,
    FolderLock,
    IndexNotFoundError,
    IndexStoreError,
    VersionCache,
    article_meta,
    article_meta_from,
    check_compatible,
)
from articleqa.types import Article, IndexStatus, Passage, ScoredPassage

log = logging.getLogger(__name__)

TEXT_PIECE_CHARS = 16_000  # Milvus VARCHAR holds at most 65,535 bytes: 16,000 characters fit any UTF-8
MAX_PASSAGE_CHARS = 16_000
INSERT_BATCH = 2_000
RRF_K = 60
#: BM25 over lower-cased words without English stop words, like the bm25s path of the FAISS store
ANALYZER = {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": ["_english_"]}]}
_STUB = [0.0, 0.0]  # Milvus wants a vector field in every collection; article and manifest rows carry this one
#: gRPC keep-alive for Milvus servers: ping only while a call is waiting, at most once a minute (servers on
#: gRPC's default policy close connections that ping more often: GOAWAY too_many_pings)
GRPC_OPTIONS = {
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": False,
}


@contextmanager
def _quiet_pymilvus():
    """pymilvus logs every refused call as an ERROR with a traceback; for calls whose refusal is an
    answer (aliases on a server without them) that is noise."""
    pymilvus_log = logging.getLogger("pymilvus")
    level = pymilvus_log.level
    pymilvus_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        pymilvus_log.setLevel(level)


def milvus_uri(spec: str, index_dir: Path) -> str:
    """``milvus:./index/milvus.db`` -> a file path (milvus-lite); ``milvus:http://host:19530`` -> the URL."""
    uri = spec.split(":", 1)[1] if spec.startswith("milvus:") else spec
    if not uri:
        return str(Path(index_dir) / "milvus.db")
    return uri


def _require_pymilvus():
    import importlib.util

    if importlib.util.find_spec("pymilvus") is None:
        raise IndexStoreError(
            "the Milvus store needs pymilvus and milvus-lite: pip install 'articleqa[scale]'"
        ) from None


class MilvusIndexVersion(VersionCache):
    """One published version in Milvus. Passages are kept in memory (the reader and the citations need
    their text); article texts are fetched when first cited and kept; vectors are fetched only for an
    incremental rebuild."""

    def __init__(self, store: "MilvusIndexStore", version: str, manifest: dict, passages: list[Passage]):
        self.store = store
        self.manifest = manifest
        self.passages = passages
        self.articles = LazyArticles(store, version, manifest.get("files", {}))
        self._version = version
        self._cache: dict = {}
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self._version

    @property
    def collection(self) -> str:
        return self.store.passages_collection(self._version)

    def status(self) -> IndexStatus:
        m = self.manifest
        return IndexStatus(
            version=self.version,
            built_at=m.get("built_at"),
            articles=len(m.get("files", {})),
            passages=len(self.passages),
            index_type=m.get("index_type"),
            embedding_model=m.get("embedding_model"),
            store=f"milvus ({self.store.display_uri})",
            files={f: int(info.get("passages", 0)) for f, info in m.get("files", {}).items()},
            skipped=tuple(m.get("skipped", ())),
        )

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k (passage position, inner product) per query vector, searched by Milvus."""
        if k <= 0 or not self.passages:
            return [[] for _ in range(len(query_vectors))]
        res = self.store.client.search(
            self.collection,
            data=[list(map(float, v)) for v in query_vectors],
            anns_field="dense",
            limit=min(k, len(self.passages)),
            search_params={"metric_type": "IP"},
            output_fields=[],
        )
        return [[(int(hit["id"]), float(hit["distance"])) for hit in row] for row in res]

    def text_search(self, query: str, k: int) -> list[tuple[int, float]]:
        """BM25 full-text search in Milvus: (passage position, score), best first."""
        if k <= 0 or not self.passages or not query.strip():
            return []
        res = self.store.client.search(
            self.collection,
            data=[query],
            anns_field="sparse",
            limit=min(k, len(self.passages)),
            search_params={"metric_type": "BM25"},
            output_fields=[],
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in res[0]]

    def hybrid_search(self, query_vector: np.ndarray, query: str, k: int, candidates: int) -> list[tuple[int, float]]:
        """Dense and BM25 searches fused by reciprocal rank fusion inside Milvus."""
        from pymilvus import AnnSearchRequest, RRFRanker

        if k <= 0 or not self.passages:
            return []
        n = min(max(k, candidates), len(self.passages))
        requests = [
            AnnSearchRequest(
                data=[list(map(float, query_vector))], anns_field="dense", param={"metric_type": "IP"}, limit=n
            )
        ]
        if query.strip():
            requests.append(AnnSearchRequest(data=[query], anns_field="sparse", param={"metric_type": "BM25"}, limit=n))
        res = self.store.client.hybrid_search(
            self.collection, requests, ranker=RRFRanker(RRF_K), limit=min(k, n), output_fields=[]
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in res[0]]

    @property
    def vectors(self) -> np.ndarray:
        """All passage vectors by position (fetched once, for an incremental rebuild)."""
        return self.cached(
            "vectors",
            lambda _: self.store.fetch_vectors(self.collection, len(self.passages), self.manifest["dimension"]),
        )


class LazyArticles(Mapping):
    """file -> Article of one version, each fetched from Milvus when first needed."""

    def __init__(self, store: "MilvusIndexStore", version: str, files: dict):
        self.store, self.version, self.files = store, version, files
        self._cache: dict[str, Article] = {}
        self._lock = threading.Lock()

    def __getitem__(self, file: str) -> Article:
        if file not in self.files:
            raise KeyError(file)
        if file not in self._cache:
            article = self.store.fetch_article(self.version, file, self.files[file])
            with self._lock:
                self._cache[file] = article
        return self._cache[file]

    def __iter__(self):
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, file) -> bool:
        return file in self.files


class MilvusIndexStore(FolderLock):
    """Index versions in Milvus (the ``IndexStore`` of ``articleqa.protocols``).

    Args:
        uri: a milvus-lite file (``./index/milvus.db``) or a server (``http://host:19530``).
        token: ``user:password`` or an API key for a server (``ARTICLEQA_MILVUS_TOKEN``).
        lock_dir: folder of the rebuild lock (one builder at a time); default: the lite file's folder.
        prefix: collection name prefix, so several indexes share one Milvus.
    """

    name = "milvus"
    lock_file = ".milvus.lock"

    def __init__(
        self, uri: str, token: str | None = None, lock_dir: str | Path | None = None, prefix: str = "articleqa"
    ):
        _require_pymilvus()
        self.uri = uri
        self.token = token
        self.is_lite = not uri.startswith(("http://", "https://", "tcp://", "unix:"))
        if self.is_lite:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(lock_dir) if lock_dir else (Path(uri).parent if self.is_lite else Path("index"))
        self.prefix = prefix
        self.alias = f"{prefix}_current"
        self._client = None
        self._client_lock = threading.Lock()
        self._loaded: set[str] = set()
        self._no_aliases = False  # set once the server refused an alias call

    def __repr__(self) -> str:
        return f"MilvusIndexStore({self.display_uri!r})"

    @property
    def display_uri(self) -> str:
        return self.uri if self.is_lite else self.uri.split("@")[-1]

    @property
    def client(self):
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    from pymilvus import MilvusClient

                    # pymilvus pings every 10 s, idle connections included; a server on gRPC's default
                    # policy (Milvus's own engine, e.g. milvus-lite 2.5's server, and the local gRPC server
                    # milvus-lite 3.x runs for a file) answers GOAWAY too_many_pings and drops the
                    # connection: ping only while a call waits, once a minute
                    try:
                        self._client = MilvusClient(self.uri, token=self.token or "", grpc_options=GRPC_OPTIONS)
                    except Exception as exc:
                        raise IndexStoreError(f"cannot connect to Milvus at {self.display_uri}: {exc}") from None
        return self._client

    def close(self) -> None:
        """Close the connection; for milvus-lite also release the file, so another process can open it."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._loaded.clear()
        if self.is_lite:
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)
            except ImportError:
                pass

    def _ready(self, collection: str) -> str:
        """The collection, loaded into memory (Milvus searches and queries only loaded collections)."""
        if collection not in self._loaded:
            self.client.load_collection(collection)
            self._loaded.add(collection)
        return collection

    def passages_collection(self, version: str) -> str:
        return f"{self.prefix}_p_{version}"

    def _articles_collection(self, version: str) -> str:
        return f"{self.prefix}_a_{version}"

    def _manifest_collection(self, version: str) -> str:
        return f"{self.prefix}_m_{version}"

    # --- reading -------------------------------------------------------------------------------

    @property
    def pointer_collection(self) -> str:
        """One row naming the published version: what publishing switches (aliases are not on every
        Milvus: milvus-lite's native engine answers create_alias with UNIMPLEMENTED)."""
        return f"{self.prefix}_current_version"

    def current_version(self) -> str | None:
        try:
            if self.client.has_collection(self.pointer_collection):
                rows = self.client.query(
                    self._ready(self.pointer_collection),
                    filter="id == 0",
                    output_fields=["version"],
                    consistency_level="Strong",
                )
                return rows[0]["version"] if rows else None
            collection = self._alias_target()  # an index published before the pointer existed
            if collection is None:
                return None
        except IndexStoreError:
            raise
        except Exception as exc:
            raise IndexStoreError(f"Milvus at {self.display_uri} cannot be read: {exc}") from None
        return collection[len(self.passages_collection("")) :]

    def exists(self) -> bool:
        return self.current_version() is not None

    def read_manifest(self, version: str | None = None) -> dict:
        version = version or self.current_version()
        if version is None:
            raise IndexNotFoundError(
                f"no index in Milvus at {self.display_uri}: build one with `articleqa index --store milvus:...`"
            )
        rows = self.client.query(
            self._ready(self._manifest_collection(version)), filter="id == 0", output_fields=["manifest"]
        )
        if not rows:
            raise IndexStoreError(
                f"index version {version} in Milvus has no manifest; rebuild with `articleqa index --full`"
            )
        manifest = json.loads(rows[0]["manifest"])
        files = {}
        collection = self._ready(self._articles_collection(version))
        has_meta = self._has_field(collection, "meta")  # versions written before author/url/pages existed have none
        fields = ["file", "sha256", "title", "date", "kind", "passages", *(["meta"] if has_meta else [])]
        for row in self._iterate(collection, "part == 0", fields, pk="pk"):
            files[row["file"]] = {
                "sha256": row["sha256"],
                "title": row["title"],
                "date": row["date"] or None,
                "kind": row["kind"],
                "passages": int(row["passages"]),
                **(json.loads(row["meta"] or "{}") if has_meta else {}),
            }
        manifest["files"] = dict(sorted(files.items()))
        return manifest

    def load(self, embedding_model: str | None = None, chunking: dict | None = None) -> MilvusIndexVersion:
        version = self.current_version()
        manifest = self.read_manifest(version)
        check_compatible(manifest, embedding_model, chunking)
        collection = self._ready(self.passages_collection(version))
        rows = sorted(
            self._iterate(collection, "id >= 0", ["id", "file", "start", "end", "title", "text"]), key=lambda r: r["id"]
        )
        passages = [
            Passage(
                id=int(r["id"]),
                file=r["file"],
                start=int(r["start"]),
                end=int(r["end"]),
                text=r["text"],
                title=r["title"],
            )
            for r in rows
        ]
        if [p.id for p in passages] != list(range(len(passages))):
            raise IndexStoreError(
                f"index version {version} in Milvus has missing passages; rebuild with `articleqa index --full`"
            )
        return MilvusIndexVersion(self, version, manifest, passages)

    def fetch_article(self, version: str, file: str, info: dict) -> Article:
        rows = self.client.query(
            self._ready(self._articles_collection(version)),
            filter=f"file == {json.dumps(file)}",
            output_fields=["part", "text"],
        )
        text = "".join(r["text"] for r in sorted(rows, key=lambda r: r["part"]))
        return Article(
            file=file,
            text=text,
            sha256=info["sha256"],
            title=info.get("title", ""),
            date=info.get("date"),
            kind=info.get("kind", "txt"),
            **article_meta_from(info),
        )

    def _has_field(self, collection: str, name: str) -> bool:
        return any(f.get("name") == name for f in self.client.describe_collection(collection).get("fields", []))

    def fetch_vectors(self, collection: str, n: int, dim: int) -> np.ndarray:
        vectors = np.zeros((n, dim), dtype=np.float32)
        for row in self._iterate(collection, "id >= 0", ["id", "dense"]):
            vectors[int(row["id"])] = row["dense"]
        return vectors

    def _iterate(self, collection: str, filter: str, fields: list[str], pk: str = "id", batch: int = 2000):
        """Rows matching ``filter``, read in ranges of the primary key ``pk`` (0..n-1 in every collection)."""
        [row] = self.client.query(collection, filter="", output_fields=["count(*)"])
        total = int(row["count(*)"])
        for lo in range(0, total, batch):
            yield from self.client.query(
                collection, filter=f"{pk} >= {lo} and {pk} < {lo + batch} and ({filter})", output_fields=fields
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
    ) -> str:
        """Write the three collections of a new version, then point the alias at it (the caller holds the lock)."""
        from pymilvus import DataType, Function, FunctionType

        version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "_" + uuid.uuid4().hex[:6]
        dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else 384
        c = self.client
        names = [
            self.passages_collection(version),
            self._articles_collection(version),
            self._manifest_collection(version),
        ]
        try:
            schema = c.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("file", DataType.VARCHAR, max_length=4096)
            schema.add_field("start", DataType.INT64)
            schema.add_field("end", DataType.INT64)
            schema.add_field("title", DataType.VARCHAR, max_length=4096)
            schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params=ANALYZER)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["text"],
                    output_field_names=["sparse"],
                )
            )
            index_params = c.prepare_index_params()
            index_params.add_index("dense", index_type="AUTOINDEX" if not self.is_lite else "FLAT", metric_type="IP")
            index_params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            c.create_collection(names[0], schema=schema, index_params=index_params)
            rows = (
                {
                    "id": p.id,
                    "file": p.file,
                    "start": p.start,
                    "end": p.end,
                    "title": p.title[:1000],
                    "text": p.text[:MAX_PASSAGE_CHARS],
                    "dense": vectors[i].astype(np.float32).tolist(),
                }
                for i, p in enumerate(passages)
            )
            self._insert(names[0], rows)

            a_schema = c.create_schema(auto_id=False)
            a_schema.add_field("pk", DataType.INT64, is_primary=True)
            for field in ("file", "sha256", "title", "date", "kind"):
                a_schema.add_field(field, DataType.VARCHAR, max_length=4096)
            a_schema.add_field("meta", DataType.VARCHAR, max_length=65535)  # JSON: author, url, PDF page starts
            a_schema.add_field("part", DataType.INT64)
            a_schema.add_field("passages", DataType.INT64)
            a_schema.add_field("text", DataType.VARCHAR, max_length=65535)
            a_schema.add_field("stub", DataType.FLOAT_VECTOR, dim=2)
            stub_index = c.prepare_index_params()
            stub_index.add_index("stub", index_type="FLAT", metric_type="L2")
            c.create_collection(names[1], schema=a_schema, index_params=stub_index)
            counts: dict[str, int] = {}
            for p in passages:
                counts[p.file] = counts.get(p.file, 0) + 1

            def article_rows():
                pk = 0
                for a in articles:
                    pieces = [a.text[i : i + TEXT_PIECE_CHARS] for i in range(0, len(a.text), TEXT_PIECE_CHARS)] or [""]
                    for part, piece in enumerate(pieces):
                        pk += 1
                        yield {
                            "pk": pk - 1,
                            "file": a.file,
                            "sha256": a.sha256,
                            "title": a.title[:1000],
                            "date": a.date or "",
                            "kind": a.kind,
                            "meta": json.dumps(article_meta(a)) if part == 0 else "{}",
                            "part": part,
                            "passages": counts.get(a.file, 0),
                            "text": piece,
                            "stub": _STUB,
                        }

            self._insert(names[1], article_rows())

            self._create_row_collection(names[2], "manifest", 65535)
            manifest = {
                "format_version": FORMAT_VERSION,
                "version": version,
                "store": "milvus",
                "embedding_model": embedding_model,
                "dimension": dim,
                "chunking": chunking,
                "index_type": "milvus-flat" if self.is_lite else "milvus-autoindex",
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "n_articles": len(articles),
                "n_passages": len(passages),
                **(extra or {}),
            }
            manifest["skipped"] = manifest.get("skipped", [])[:200]  # the row holds 64 KB
            self._insert(
                names[2], [{"id": 0, "manifest": json.dumps(manifest, ensure_ascii=False)[:65000], "stub": _STUB}]
            )
            for name in names:
                c.flush(name)
                self._ready(name)
            self._publish(names[0])
        except BaseException:
            for name in names:
                try:
                    c.drop_collection(name)
                except Exception:
                    pass
            raise
        return version

    def _insert(self, collection: str, rows) -> None:
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= INSERT_BATCH:
                self.client.insert(collection, batch)
                batch = []
        if batch:
            self.client.insert(collection, batch)

    def _create_row_collection(self, name: str, field: str, max_length: int, **options) -> None:
        """A collection of rows ``id, <field> (text), stub`` (the manifest, the published-version pointer)."""
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field(field, DataType.VARCHAR, max_length=max_length)
        schema.add_field("stub", DataType.FLOAT_VECTOR, dim=2)
        index = self.client.prepare_index_params()
        index.add_index("stub", index_type="FLAT", metric_type="L2")
        self.client.create_collection(name, schema=schema, index_params=index, **options)

    def _alias_target(self) -> str | None:
        """The collection the alias names; None without the alias or where the server has no aliases."""
        if self._no_aliases:
            return None
        try:
            with _quiet_pymilvus():
                if self.alias not in self.client.list_aliases().get("aliases", []):
                    return None
        except Exception as exc:  # noqa: BLE001
            if "UNIMPLEMENTED" in str(exc):
                self._no_aliases = True
                return None
            raise
        return self.client.describe_alias(self.alias)["collection_name"]

    def _publish(self, collection: str) -> None:
        """Point the pointer row at the new version (one upsert: a reader sees the old version or the new
        one, never a mix), then the alias where the server has aliases (for other Milvus tools)."""
        c = self.client
        name = self.pointer_collection
        if not c.has_collection(name):
            self._create_row_collection(name, "version", 256, consistency_level="Strong")
        version = collection[len(self.passages_collection("")) :]
        c.upsert(self._ready(name), [{"id": 0, "version": version, "stub": _STUB}])
        if self._no_aliases:
            return
        try:
            with _quiet_pymilvus():
                if self.alias in c.list_aliases().get("aliases", []):
                    c.alter_alias(collection, self.alias)
                else:
                    c.create_alias(collection, self.alias)
        except Exception as exc:  # noqa: BLE001 - aliases are optional (UNIMPLEMENTED on milvus-lite's native engine)
            self._no_aliases = True
            log.info(
                "no aliases on %s (%s); the pointer collection names the version",
                self.display_uri,
                str(exc).splitlines()[0][:120],
            )

    def versions(self) -> list[str]:
        prefix = self.passages_collection("")
        return sorted(n[len(prefix) :] for n in self.client.list_collections() if n.startswith(prefix))

    def cleanup(self, keep: int = 2, min_age_seconds: float = 0.0) -> list[str]:
        """Drop versions older than the ``keep`` newest (the published one always stays) and the
        collections of interrupted builds (newer than the published one but never published)."""
        current = self.current_version()
        versions = self.versions()
        published = [v for v in versions if current is not None and v <= current]
        keepers = {current, *published[-keep:]} if keep > 0 else {current}
        removed = []
        now = time.time()
        for v in versions:
            if v in keepers:
                continue
            stamp = datetime.strptime(v.split("_")[0], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc).timestamp()
            if now - stamp < min_age_seconds:
                continue
            for name in (self.passages_collection(v), self._articles_collection(v), self._manifest_collection(v)):
                if self.client.has_collection(name):
                    self.client.drop_collection(name)
                    self._loaded.discard(name)
            removed.append(v)
        # leftovers of a build killed before it wrote its passages collection
        known = set(versions)
        for n in self.client.list_collections():
            for make in (self._articles_collection, self._manifest_collection):
                head = make("")
                if n.startswith(head) and n[len(head) :] not in known:
                    self.client.drop_collection(n)
        return removed

    def make_retriever(self, kind: str, embedder) -> "MilvusRetriever":
        return MilvusRetriever(kind, embedder)


class MilvusRetriever:
    """Retrieval inside Milvus: ``hybrid`` (dense + BM25 fused by RRF in Milvus), ``dense`` or ``bm25``."""

    def __init__(self, kind: str, embedder, candidates: int = 50):
        if kind not in ("hybrid", "dense", "bm25"):
            raise ValueError(f"unknown retriever {kind!r}: use hybrid, dense or bm25")
        self.name = kind
        self.embedder = embedder
        self.candidates = candidates

    def retrieve(
        self, index: MilvusIndexVersion, query: str, top_k: int = 5, timings: dict | None = None
    ) -> list[ScoredPassage]:
        if self.name == "bm25":
            hits = index.text_search(query, top_k)
        else:
            t = time.perf_counter()
            vec = self.embedder.encode([query], progress=False)
            if timings is not None:
                timings["embedding"] = timings.get("embedding", 0.0) + time.perf_counter() - t
            hits = (
                index.hybrid_search(vec[0], query, top_k, self.candidates)
                if self.name == "hybrid"
                else index.search(vec, top_k)[0]
            )
        return [ScoredPassage(index.passages[i], s, {self.name: r + 1}) for r, (i, s) in enumerate(hits)]
