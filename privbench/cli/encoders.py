"""``privbench encoder export|load`` and ``privbench card``: a camera as files and as a card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from privbench.api.errors import ConfigError
from privbench.cli.console import console
from privbench.cli.options import Command, Group, parse_settings

encoder_app = typer.Typer(
    cls=Group,
    help="Export an encoder (fitted or not) as JSON + safetensors, or load one back and check it.",
    no_args_is_help=True,
)

SettingsOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Config of a registered encoder (repeatable)."),
]


def _source(source: str, settings: list[str] | None):
    """(encoder, label, design history) of SOURCE: a leaderboard entry (JSON with cells), an
    exported encoder (JSON), or a registered encoder name (with --set)."""
    from privbench.api.encoder_files import load_encoder, read_encoder_file
    from privbench.api.registry import get_encoder
    from privbench.runs.entries import entry_encoder

    path = Path(source)
    if path.suffix == ".json":
        if not path.is_file():
            raise ConfigError(f"{source!r} does not exist (an entry or an exported encoder JSON).")
        if settings:
            raise ConfigError("--set configures a registered encoder name, not a JSON file.")
        try:
            is_entry = "cells" in json.loads(path.read_text())
        except (OSError, ValueError):
            is_entry = False
        if is_entry:
            encoder, entry = entry_encoder(path)
            return encoder, entry.encoder.label, entry.encoder.design_history
        record = read_encoder_file(path)
        return load_encoder(path), record.label, record.design_history
    encoder = get_encoder(source, **parse_settings(settings, example="sigma_px=4"))
    return encoder, None, []


@encoder_app.command("export", cls=Command)
def export_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A leaderboard entry (JSON, its fitted weights beside it) or a "
            "registered encoder name (initial weights)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path(
        "encoders"
    ),
    settings: SettingsOption = None,
):
    """Write NAME.json (name, config, version, hashes) and NAME.safetensors (weights)."""
    from privbench.api.encoder_files import save_encoder

    encoder, label, history = _source(source, settings)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in (label or encoder.name))
    path = save_encoder(encoder, out, stem=stem, label=label, history=history)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)


@encoder_app.command("load", cls=Command)
def load_command(
    file: Annotated[Path, typer.Argument(help="An exported encoder (NAME.json).")],
):
    """Load an exported encoder, check its weights and hashes, and describe it."""
    from privbench.api.encoder_files import load_encoder

    encoder = load_encoder(file)
    console.print(
        f"{encoder.name}: config hash {encoder.config_hash()}, weights hash "
        f"{encoder.weights_hash() or 'none'}; {encoder.describe()}",
        highlight=False,
        soft_wrap=True,
    )


def card_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A registered encoder name (with --set), an exported encoder "
            "(NAME.json) or a leaderboard entry (JSON)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for card.md and its pictures.")
    ] = Path("card"),
    settings: SettingsOption = None,
):
    """Write a Markdown card of a camera: description, PSF or kernels, levels, sample
    measurements and design curves."""
    from privbench.report.card import write_card

    encoder, label, history = _source(source, settings)
    path = write_card(encoder, out, label=label, history=history)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)
