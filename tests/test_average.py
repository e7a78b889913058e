"""average-readers (WiSE-FT): the weights of two readers averaged, as a shipped reader folder."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from conftest import READER, ROOT


def test_averaging_a_reader_with_a_shifted_copy_gives_the_midpoint(tmp_path):
    from articleqa.reader import load_qa_tokenizer, load_qa_weights
    from articleqa.training.export import average_readers

    shifted = tmp_path / "shifted"
    model = load_qa_weights(READER)
    with torch.no_grad():
        model.qa_outputs.bias += 2.0
    model.half().save_pretrained(shifted)
    load_qa_tokenizer(READER).save_pretrained(shifted)
    (shifted / "articleqa_reader.json").write_text((READER / "articleqa_reader.json").read_text())
    meta = average_readers(READER, shifted, tmp_path / "avg", weight=0.25)
    avg = load_qa_weights(tmp_path / "avg")
    base = load_qa_weights(READER)
    assert torch.allclose(avg.qa_outputs.bias, base.qa_outputs.bias + 0.75 * 2.0, atol=1e-2)
    assert torch.allclose(avg.qa_outputs.weight, base.qa_outputs.weight, atol=1e-3)
    assert meta["weight_average"]["weight_first"] == 0.25
    assert json.loads((tmp_path / "avg" / "articleqa_reader.json").read_text())["validation_articles"]


def test_average_readers_cli_refuses_a_missing_folder(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "articleqa.cli",
            "average-readers",
            str(READER),
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and "not found" in r.stderr and not (tmp_path / "out").exists()
