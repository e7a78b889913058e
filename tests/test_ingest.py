"""Ingest edge cases: bad files are skipped with a clear reason and nothing else is lost."""

from pathlib import Path

from conftest import SEEDS

from articleqa.ingest import ArticleLoader, find_date


def test_seed_articles_are_kept_verbatim():
    articles, skipped = ArticleLoader().load(SEEDS)
    assert not skipped
    assert {a.file for a in articles} == {p.name for p in SEEDS.glob("*.txt")}
    for a in articles:
        assert a.text == (SEEDS / a.file).read_bytes().decode("utf-8")
        assert a.title
    dates = {a.file: a.date for a in articles}
    assert dates["001_a6813ebf46bda63b.txt"] == "2026-01-03"


def test_bad_files_are_skipped_and_the_rest_indexed(tmp_path: Path, caplog):
    (tmp_path / "good.txt").write_text("A good article about the harbour.\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Café au lait, préparé à Zürich".encode("latin-1"))  # read, detected
    (tmp_path / "garbage.txt").write_bytes(bytes(range(128, 256)) * 4 + b"\x81\x8d\x8f")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_bytes(b"  \n\n ")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "naïve café notes.md").write_text("# Notes\n\nThe mayor of Zürich opened the bridge.", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("hidden", encoding="utf-8")
    articles, skipped = ArticleLoader().load(tmp_path)
    assert sorted(a.file for a in articles) == ["good.txt", "latin1.txt", "naïve café notes.md"]
    assert next(a for a in articles if a.file == "latin1.txt").text == "Café au lait, préparé à Zürich"
    reasons = {s.file: s.reason for s in skipped}
    assert "not text" in reasons["garbage.txt"]
    assert reasons["empty.txt"] == "empty file" and reasons["blank.md"] == "empty file"
    assert "binary" in reasons["binary.txt"]
    assert "image.png" not in reasons  # not an article type: ignored silently
    assert any("latin1.txt" in r.getMessage() and "read as cp1252 (detected)" in r.getMessage() for r in caplog.records)
    assert any("garbage.txt" in r.getMessage() for r in caplog.records)
    notes = next(a for a in articles if a.file.startswith("naïve"))
    assert notes.title == "Notes" and notes.kind == "md"


def test_html_is_reduced_to_visible_text(tmp_path: Path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>Harbour news</title><script>var secret = 'SCRIPT TEXT';</script>"
        "<style>p { color: red }</style></head><body><h1>Bridge opens</h1>"
        "<p>The mayor opened the <b>new bridge</b> on Monday.</p><script>alert('x')</script></body></html>",
        encoding="utf-8",
    )
    [article], skipped = ArticleLoader().load(tmp_path)
    assert not skipped
    assert "SCRIPT TEXT" not in article.text and "alert" not in article.text and "color" not in article.text
    assert "The mayor opened the" in article.text and "new bridge" in article.text
    assert article.title == "Harbour news" and article.kind == "html"


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    import pytest

    with pytest.raises(FileNotFoundError, match="articles folder not found"):
        ArticleLoader().load(tmp_path / "nope")


def test_find_date_formats():
    assert find_date(" date 2026-01-03 On January 3, ...") == "2026-01-03"
    assert find_date("Published January 9, 2026 by staff") == "2026-01-09"
    assert find_date("No date here at all") is None
