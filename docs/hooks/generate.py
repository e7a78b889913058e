"""MkDocs hooks: pages generated from the code at build time, so they cannot drift from it.

- ``<!-- cli-reference -->`` (cli.md): every ``articleqa`` command with its help and options, read from
  the typer app;
- ``<!-- settings-reference -->`` (configuration.md): every ``ARTICLEQA_*`` setting, read from
  ``articleqa.config.Settings`` (type, default, and the comment written beside it in the source);
- ``benchmarks/report.md`` and its plots: ``bench/report.md`` as ``make bench`` last wrote it;
- ``reader/model-card.md``: the shipped reader's model card, ``models/reader/README.md``.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]


def on_files(files, config):
    for path in sorted((ROOT / "bench").glob("*.png")):
        files.append(File.generated(config, f"benchmarks/{path.name}", abs_src_path=str(path)))
    files.append(File.generated(config, "benchmarks/report.md", abs_src_path=str(ROOT / "bench" / "report.md")))
    files.append(
        File.generated(config, "reader/model-card.md", abs_src_path=str(ROOT / "models" / "reader" / "README.md"))
    )
    return files


def on_page_markdown(markdown, page, config, files):
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    if "<!-- settings-reference -->" in markdown:
        markdown = markdown.replace("<!-- settings-reference -->", settings_reference())
    return markdown


def cli_reference() -> str:
    import click
    import typer.main

    from articleqa.cli import app

    group = typer.main.get_command(app)
    ctx = click.Context(group, info_name="articleqa")
    out = []
    panels: dict[str, list[str]] = {}
    for name in group.list_commands(ctx):
        panels.setdefault(getattr(group.get_command(ctx, name), "rich_help_panel", None) or "Commands", []).append(name)
    for panel, names in panels.items():
        out.append(f"## {panel}\n")
        for name in names:
            cmd = group.get_command(ctx, name)
            out.append(f"### articleqa {name}\n")
            out.append(f"```\n{_usage(cmd, ctx, name)}\n```\n")
            out.append(_clean(cmd.help or "") + "\n")
            rows = []
            for p in cmd.params:
                if p.param_type_name == "argument":
                    rows.append((p.name.upper(), "argument", getattr(p, "help", "") or ""))
                elif not p.hidden:
                    flags = " / ".join(p.opts + p.secondary_opts)
                    default = (
                        ""
                        if p.default in (None, False, ()) or p.is_flag and not p.default
                        else f" [default: {p.default}]"
                    )
                    rows.append((flags, "option", (p.help or "") + default))
            if rows:
                out.append("| | | |\n|---|---|---|")
                out += [f"| `{a}` | {kind} | {_cell(h)} |" for a, kind, h in rows]
                out.append("")
    return "\n".join(out)


def _usage(cmd, ctx, name) -> str:
    import click

    sub = click.Context(cmd, info_name=name, parent=ctx)
    return " ".join(["articleqa", name, *cmd.collect_usage_pieces(sub)])


def _clean(text: str) -> str:
    return re.sub(r"\n\s*\n", "\n\n", inspect.cleandoc(text)).replace("\b", "")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_reference() -> str:
    from articleqa.config import Settings

    comments = _field_comments(inspect.getsource(Settings))
    undocumented = [name for name in Settings.model_fields if not comments.get(name)]
    if undocumented:  # a setting without a comment in config.py fails the (strict) build
        raise ValueError(f"settings without a description in articleqa/config.py: {', '.join(undocumented)}")
    rows = ["| variable | type | default | what it does |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default is not None else "unset"
        if isinstance(default, Path):
            default = str(default)
        kind = str(field.annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
        rows.append(
            f"| `ARTICLEQA_{name.upper()}` | `{_cell(kind)}` | `{default!s}` | {_cell(comments.get(name, ''))} |"
        )
    return "\n".join(rows) + "\n"


def _field_comments(source: str) -> dict[str, str]:
    """The ``#:`` comments above each field and the ``#`` comment at the end of its line."""
    found, pending = {}, []
    for line in source.splitlines():
        s = line.strip()
        if s.startswith("#:") or (s.startswith("#") and pending):
            pending.append(s.lstrip("#:").strip())
            continue
        m = re.match(r"(\w+)\s*:\s*[^=]+(?:=\s*(.*))?$", s)
        if m and not s.startswith(("def ", "model_config", "return")):
            trailing = s.split("  # ", 1)[1] if "  # " in s else ""
            found[m.group(1)] = " ".join([*pending, trailing]).strip()
        pending = []
    return found
