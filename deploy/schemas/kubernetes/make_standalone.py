"""Write standalone-strict JSON schemas for the kinds in deploy/kubernetes/ (see README.md).

    python deploy/schemas/kubernetes/make_standalone.py SCHEMA_DIR OUT_DIR FILE...

SCHEMA_DIR is a `-local-strict` folder of the kubernetes-validate wheel (for example
kubernetes_validate/kubernetes-json-schema/v1.33.0-local-strict): per-kind files whose $refs
point into one _definitions.json. Each FILE named is written to OUT_DIR with every $ref
replaced by the definition it names, as the `-standalone-strict` folders of
yannh/kubernetes-json-schema are made, so a test needs only jsonschema and one file per kind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def inline(node: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every ``$ref`` into _definitions.json replaced by its definition."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.split("#/$defs/", 1)[1]
            if name in seen:
                raise SystemExit(f"recursive definition {name}: not supported")
            merged = dict(inline(definitions[name], definitions, (*seen, name)))
            for key, value in node.items():
                if key != "$ref":
                    merged.setdefault(key, inline(value, definitions, seen))
            return merged
        return {key: inline(value, definitions, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [inline(value, definitions, seen) for value in node]
    return node


def main() -> None:
    source, out, *names = sys.argv[1:]
    definitions = json.loads((Path(source) / "_definitions.json").read_text())["$defs"]
    Path(out).mkdir(parents=True, exist_ok=True)
    for name in names:
        schema = inline(json.loads((Path(source) / name).read_text()), definitions)
        (Path(out) / name).write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    main()
