"""docs/configuration.md is generated from the config dataclasses and must be current and complete."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from app.config_doc import reference_markdown
from core import config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_reference_is_current():
    assert DOC.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/configuration.md is stale: run `python -m app.config_doc > docs/configuration.md`")


def test_every_key_has_a_meaning():
    text = reference_markdown()
    for name, cls in config.registered_sections().items():
        if cls.__module__.startswith("tests"):
            continue
        section_text = text.split(f"## [{name}]\n", 1)[1].split("\n## [", 1)[0]
        for field in dataclasses.fields(cls):
            row = next(line for line in section_text.splitlines() if line.startswith(f"| `{field.name}` |"))
            assert not row.rstrip().endswith("|  |"), f"[{name}] {field.name} has no meaning in its source comment"
