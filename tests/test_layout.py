"""The shape of the package: one top-level package, the serving side never imports training, and every
default stage implements its declared contract (so a second backend can replace it)."""

import ast
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "src" / "articleqa"


def test_app_is_run_from_the_checkout_not_installed_as_a_package(tmp_path):
    """app/ (the ASGI entry and deployment files) lives in the checkout; the installed distribution
    holds only the library, so outside the checkout there is no module named app."""
    r = subprocess.run([sys.executable, "-c", "import app"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "No module named 'app'" in r.stderr
    assert (ROOT / "app" / "main.py").is_file()


def test_the_stores_import_one_way():
    """base <- faiss, milvus <- the package (open_store): no store module imports the package or a sibling."""
    stores = PACKAGE / "stores"
    base, faiss, milvus = (imported_modules(stores / f"{n}.py") for n in ("base", "faiss", "milvus"))
    assert not any(m.startswith("articleqa.stores") for m in base)
    for mods in (faiss, milvus):
        assert {m for m in mods if m.startswith("articleqa.stores")} <= {"articleqa.stores.base"} | {
            m for m in mods if m.startswith("articleqa.stores.base.")
        }
    assert not (PACKAGE / "store.py").exists() and not (PACKAGE / "milvus_store.py").exists()


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_core_and_serve_never_import_training():
    """Only training/ itself and the CLI on top (its train-reader and eval-reader commands) may."""
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("training/") or rel == "cli.py":
            continue
        bad = {m for m in imported_modules(path) if m == "articleqa.training" or m.startswith("articleqa.training.")}
        if bad:
            offenders[rel] = bad
    assert not offenders, offenders
    assert (PACKAGE / "serve").is_dir() and (PACKAGE / "training").is_dir()


def test_default_stages_implement_the_contracts(pipeline):
    from articleqa import protocols
    from articleqa.retrieval import BM25Retriever, DenseRetriever, HybridRetriever

    assert isinstance(pipeline.embedder, protocols.Embedder)
    assert isinstance(pipeline.chunker, protocols.Chunker)
    assert isinstance(pipeline.reader, protocols.Reader)
    assert isinstance(pipeline.store, protocols.IndexStore)
    assert isinstance(pipeline.indexes.get(), protocols.IndexVersion)
    for r in (HybridRetriever(pipeline.embedder), DenseRetriever(pipeline.embedder), BM25Retriever()):
        assert isinstance(r, protocols.Retriever)


def test_a_retriever_plugs_in_without_touching_the_pipeline(pipeline):
    """Any object with ``name`` and ``retrieve`` serves: here one that only sees the first article."""
    from articleqa.pipeline import QAPipeline
    from articleqa.retrieval import BM25Retriever

    class FirstArticleOnly:
        name = "first-article"

        def retrieve(self, index, query, top_k=5, timings=None):
            first = sorted(index.articles)[0]
            return [h for h in BM25Retriever().retrieve(index, query, 50) if h.passage.file == first][:top_k]

    p = QAPipeline(
        pipeline.settings, pipeline.embedder, pipeline.chunker, pipeline.reader, retriever=FirstArticleOnly()
    )
    answer = p.ask("Who is the Energy Secretary?")
    first = sorted(p.indexes.get().articles)[0]
    assert all(c.file == first for c in answer.citations + answer.context)


def test_index_status_is_one_typed_value(pipeline):
    status = pipeline.indexes.get().status()
    assert status.articles == len(pipeline.indexes.get().articles) and status.passages == sum(status.files.values())
    assert status.store == "faiss" and status.built_at_display().endswith("UTC")


def test_model_card_names_the_real_base_model(tmp_path):
    import json

    from articleqa.config import bundled_embedding_model
    from articleqa.training.export import describe_base_model

    assert describe_base_model(bundled_embedding_model()).startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert describe_base_model("bert-base-uncased") == "bert-base-uncased"
    stage = tmp_path / "warmup"
    (stage / "final").mkdir(parents=True)
    (stage / "record.json").write_text(json.dumps({"config": {"base_model": "bert-base-uncased"}}))
    assert describe_base_model(str(stage / "final")).startswith("bert-base-uncased, after the warm-up stage")
