"""A small JSON Schema validator for the keywords docs/status.schema.json uses ($ref into
$defs, const, enum, type, minimum, required, properties, additionalProperties, propertyNames,
items): jsonschema is not a dependency, and a check that names every problem is what the
status tests need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "docs" / "status.schema.json").read_text())

TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict, "array": list, "string": str, "integer": int, "number": (int, float),
    "null": type(None), "boolean": bool}


def problems(inst: Any, schema: dict[str, Any] = SCHEMA, where: str = "$") -> list[str]:
    """Every way `inst` breaks `schema`, each with where; [] when it conforms."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return problems(inst, SCHEMA["$defs"][name], where)
    out: list[str] = []
    if "const" in schema and inst != schema["const"]:
        out.append(f"{where}: {inst!r} is not {schema['const']!r}")
    if "enum" in schema and inst not in schema["enum"]:
        out.append(f"{where}: {inst!r} not in {schema['enum']}")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(isinstance(inst, TYPES[k]) and not (isinstance(inst, bool) and k != "boolean")
                   for k in kinds):
            return [*out, f"{where}: {inst!r} is not {kinds}"]
    if "minimum" in schema and isinstance(inst, (int, float)) and inst < schema["minimum"]:
        out.append(f"{where}: {inst} < {schema['minimum']}")
    if isinstance(inst, dict):
        out += [f"{where}: {k} missing" for k in schema.get("required", []) if k not in inst]
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in inst.items():
            if "propertyNames" in schema:
                out += problems(k, schema["propertyNames"], f"{where}.{k} (name)")
            if k in props:
                out += problems(v, props[k], f"{where}.{k}")
            elif extra is False:
                out.append(f"{where}: unexpected {k}")
            elif isinstance(extra, dict):
                out += problems(v, extra, f"{where}.{k}")
    if isinstance(inst, list) and "items" in schema:
        for i, v in enumerate(inst):
            out += problems(v, schema["items"], f"{where}[{i}]")
    return out
