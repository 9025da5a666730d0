"""Helpers of the deployment tests: schemas, the command line and the settings that the
compose file and the Kubernetes manifests hand to tokenrelay."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from service.cli.main import build_parser
from service.contract.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}"
)
_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>us|ms|s|m|h)")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    """Every place where ``document`` breaks ``schema``, with the validator its ``$schema``
    names (the compose schema spells draft-07's URL its own way: draft-07 is the fallback)."""
    validator_class = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft7Validator
    )
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [
        f"{error.json_path}: {error.message[:300]}"
        for error in sorted(validator.iter_errors(document), key=lambda e: e.json_path)
    ]


def interpolate(value: str) -> str:
    """Compose's interpolation with an empty environment: ``${X:-default}`` is the default,
    ``${X}`` is empty, ``$$`` is ``$``."""
    return _INTERPOLATION.sub(
        lambda m: "$" if m.group(0) == "$$" else (m.group("default") or ""), value
    )


def duration_seconds(text: str) -> float:
    """A Compose duration (``20s``, ``1m30s``) in seconds."""
    parts = list(_DURATION.finditer(text))
    assert parts and "".join(p.group(0) for p in parts) == text, f"not a duration: {text!r}"
    return sum(float(p.group("value")) * _UNIT_SECONDS[p.group("unit")] for p in parts)


def settings_from(environment: Mapping[str, str]) -> Settings:
    """The Settings a process would read from these ``TOKENRELAY_*`` variables: an unknown
    name or a bad value fails here as it would at the process's start."""
    prefix = "TOKENRELAY_"
    unknown = sorted(
        name
        for name in environment
        if name.startswith(prefix) and name[len(prefix) :].lower() not in Settings.model_fields
    )
    assert not unknown, f"not tokenrelay settings: {unknown}"
    values: dict[str, Any] = {
        name[len(prefix) :].lower(): value
        for name, value in environment.items()
        if name.startswith(prefix) and value != ""
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def parse_command(args: list[str]) -> argparse.Namespace:
    """``tokenrelay ARGS`` parsed by the real command line (its flags must exist)."""
    try:
        return build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"`tokenrelay {' '.join(args)}` does not parse") from exc


def promtool(*args: str) -> str:
    """Run promtool (Debian's `prometheus` package; `make test` installs it)."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: `apt-get install prometheus` puts it on PATH")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr
