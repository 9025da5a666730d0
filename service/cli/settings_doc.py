"""Render docs/configuration.md from the ``Settings`` model: one row per field.

``python -m service.cli.settings_doc`` prints it; ``make docs`` writes it to
docs/configuration.md, and tests/test_configuration_doc.py fails when the file and the
model disagree (a field added, removed, renamed, re-typed or re-described).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import IPvAnyNetwork, SecretStr
from pydantic.fields import FieldInfo

from service.contract.settings import Settings

ENV_PREFIX = "TOKENRELAY_"

INTRO = """\
# Configuration

<!-- Generated from service/contract/settings.py by `make docs`
(python -m service.cli.settings_doc): edit the Field descriptions there, not this file.
tests/test_configuration_doc.py fails when the two disagree. -->

Every tokenrelay process (gateway, worker, `tokenrelay up`, `tokenrelay submit/watch`,
`tokenrelay jobs`) reads one settings model, `Settings` in
[service/contract/settings.py](../service/contract/settings.py): from the environment, with
the prefix `TOKENRELAY_`, and from a `.env` file in the working directory. Command-line flags
(`--redis-url`, `--port`, …) override it. An unknown `TOKENRELAY_*` name (a misspelt
`TOKENRELAY_API_KEY` for `TOKENRELAY_API_KEYS`, say) or a bad value stops the process with a
message naming the setting. Lists are comma-separated.

| setting | type | default | meaning |
|---|---|---|---|
"""

OUTRO = """
Not settings:

- The standard OpenTelemetry variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
  `OTEL_TRACES_EXPORTER`, `OTEL_SERVICE_NAME`, …) switch tracing on and configure it:
  [operations.md](operations.md#traces).
- The number of lanes (64) and of queue partitions (8) are part of the Redis data layout,
  so they are constants every process agrees on: [scaling.md](scaling.md#redis-layout).
"""

_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    SecretStr: "secret",
    IPvAnyNetwork: "CIDR network",
}


def env_name(field_name: str) -> str:
    """The environment variable of a field."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not NoneType]
        named = " or ".join(_type_name(member) for member in members)
        return f"{named}, optional" if len(members) < len(get_args(annotation)) else named
    if origin is list:
        (item,) = get_args(annotation)
        return f"list of {_type_name(item)}s"
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    raise ValueError(f"no documented name for the type {annotation!r}: add one to _TYPE_NAMES")


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bounds(metadata: Iterable[object]) -> list[str]:
    bounds = []
    for item in metadata:
        if isinstance(item, Ge):
            bounds.append(f"≥ {_number(item.ge)}")
        elif isinstance(item, Gt):
            bounds.append(f"> {_number(item.gt)}")
        elif isinstance(item, Le):
            bounds.append(f"≤ {_number(item.le)}")
        elif isinstance(item, Lt):
            bounds.append(f"< {_number(item.lt)}")
    return bounds


def field_type(field: FieldInfo) -> str:
    """The field's type in words, with its bounds."""
    bounds = _bounds(field.metadata)
    name = _type_name(field.annotation)
    return f"{name}, {', '.join(bounds)}" if bounds else name


def field_default(field: FieldInfo) -> str:
    """The field's default as it would be written in the environment."""
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{','.join(str(item) for item in value)}`" if value else "empty"
    if isinstance(value, float):
        return f"`{_number(value)}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    """The whole of docs/configuration.md."""
    rows = []
    for name, field in Settings.model_fields.items():
        cells = [
            f"`{env_name(name)}`",
            field_type(field),
            field_default(field),
            field.description or "",
        ]
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |\n")
    return INTRO + "".join(rows) + OUTRO


def main() -> None:
    """Print the document (``make docs`` writes it to docs/configuration.md)."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
