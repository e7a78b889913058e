"""Adding articles by upload: safe names, size and type checks, no silent overwrite.

Example::

    saved = save_upload(Path("seeds"), "new story.txt", data, max_bytes=2_000_000)
"""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from pathlib import Path

from articleqa.ingest import SUPPORTED_SUFFIXES, IngestError, parse_article

MAX_NAME_CHARS = 120
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


class UploadError(ValueError):
    """The upload is refused; ``status`` is the HTTP status that fits (400, 409, 413, 415)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def safe_filename(name: str) -> str:
    """A plain file name for ``name``: no folders, no control characters, no reserved device names,
    at most ``MAX_NAME_CHARS`` characters. Raises ``UploadError`` when nothing usable is left."""
    if not isinstance(name, str) or not name:
        raise UploadError("file name is missing")
    if "\x00" in name:
        raise UploadError("file name contains a NUL byte")
    base = name.replace("\\", "/").split("/")[-1]  # drop any folder part, including ../ and absolute paths
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base:
        raise UploadError(f"file name {name!r} has no usable characters")
    stem = base.split(".", 1)[0]  # Windows reserves CON, CON.txt, CON.tar.gz alike
    if stem.lower() in _WINDOWS_RESERVED or not stem:
        raise UploadError(f"file name {name!r} is reserved or empty")
    if len(base) > MAX_NAME_CHARS:
        raise UploadError(f"file name is too long ({len(base)} characters; at most {MAX_NAME_CHARS})")
    return base


def check_relative_path(file: str) -> list[str]:
    """The parts of a relative article path; refuses absolute paths, drive letters, NUL, '.' and '..'."""
    if not file or "\x00" in file or file.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", file):
        raise UploadError(f"invalid article path {file!r}")
    parts = file.replace("\\", "/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UploadError(f"invalid article path {file!r}")
    return parts


def check_article_path(articles_dir: Path, file: str) -> Path:
    """Resolve ``file`` inside ``articles_dir``; refuse absolute paths and anything escaping it."""
    parts = check_relative_path(file)
    root = articles_dir.resolve()
    path = (root / Path(*parts)).resolve()
    if root not in path.parents:
        raise UploadError(f"invalid article path {file!r}")
    return path


def save_upload(articles_dir: Path, filename: str, data: bytes, max_bytes: int, overwrite: bool = False) -> str:
    """Validate and store one uploaded article; returns its file name in the articles folder.

    The content must parse as an article (UTF-8 text or HTML, not empty, not binary). A different
    file with the same name is only replaced when ``overwrite`` is true; an identical one is a no-op.
    The file is written to a temporary name and renamed, so a reader never sees half a file.
    """
    name = safe_filename(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadError(f"{name}: unsupported type {suffix or '(none)'}; upload .txt, .md or .html", status=415)
    if len(data) > max_bytes:
        raise UploadError(f"{name}: the file is over the {max_bytes}-byte limit", status=413)
    try:
        parse_article(name, data, suffix)
    except IngestError as exc:
        raise UploadError(f"{name}: {exc}", status=415 if "binary" in str(exc) or "UTF-8" in str(exc) else 400) from None
    articles_dir.mkdir(parents=True, exist_ok=True)
    target = check_article_path(articles_dir, name)
    if target.exists():
        if target.read_bytes() == data:
            return name
        if not overwrite:
            raise UploadError(f"{name} already exists with different content; pass overwrite to replace it", status=409)
    tmp = target.with_name(f".upload-{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return name
