"""docs/configuration.md is the Settings model rendered: no setting missing, none stale, each
one described."""

from __future__ import annotations

from pathlib import Path

from service.cli.settings_doc import env_name, render
from service.contract.settings import Settings

DOC = Path(__file__).resolve().parent.parent / "docs/configuration.md"


def test_every_setting_is_in_the_configuration_doc() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [
        env_name(name) for name in Settings.model_fields if f"`{env_name(name)}`" not in text
    ]
    assert not missing, f"docs/configuration.md lacks {missing}: run `make docs`"


def test_the_configuration_doc_is_what_the_settings_model_renders() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `make docs` (python -m service.cli.settings_doc)"
    )


def test_every_setting_has_a_description() -> None:
    undescribed = [
        name
        for name, field in Settings.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not undescribed, f"give these Settings fields a description=: {undescribed}"
