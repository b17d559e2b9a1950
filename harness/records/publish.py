"""`rnnbench schema`: the JSON Schema of every file rnnbench reads and writes, from the typed
records themselves, into results/schema/, and the field tables of results/README.md (between
its schema markers) from the same declarations. A test holds both to the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel

from harness.atomic import write_text_atomic
from harness.json_values import JsonObject
from harness.markdown import Markdown, markdown_table
from harness.records import parallel_in_time, training
from harness.records.parity import ParityRecord
from harness.records.results import SCHEMA_VERSION, ResultsDocument
from harness.records.suite import SuiteFile

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "results": (
        ResultsDocument,
        f"benchmark results (`rnnbench bench`), schema version {SCHEMA_VERSION}",
    ),
    "suite": (SuiteFile, "a suite file (benchmarks/suites/*.toml)"),
    "parity": (
        ParityRecord,
        "a parity record (`rnnbench parity --json`), schema version "
        f"{ParityRecord.model_fields['schema_version'].default}",
    ),
    "parallel-in-time": (
        parallel_in_time.SweepDocument,
        "a parallel-in-time sweep (`rnnbench parallel-in-time --sweep GRID --json`), schema "
        f"version {parallel_in_time.SCHEMA_VERSION}",
    ),
    "parallel-in-time-solve": (
        parallel_in_time.SolveDocument,
        "one parallel-in-time solve (`rnnbench parallel-in-time --json`), schema version "
        f"{parallel_in_time.SCHEMA_VERSION}",
    ),
    "parallel-in-time-prediction": (
        parallel_in_time.PredictionDocument,
        "a prediction alone (`rnnbench parallel-in-time --predict --json`), schema version "
        f"{parallel_in_time.SCHEMA_VERSION}",
    ),
    "training": (
        training.TrainingDocument,
        "the trained examples' training record (benchmarks/trained/train.py), schema version "
        f"{training.SCHEMA_VERSION}",
    ),
}
BEGIN, END = "<!-- schema:begin -->", "<!-- schema:end -->"


def schema(name: str) -> JsonObject:
    model, title = SCHEMAS[name]
    out = model.model_json_schema(mode="validation")
    out["title"] = f"rnnbench {name}: {title}"
    return out


def write_schemas(folder) -> list[Path]:
    folder = Path(folder)
    written = []
    for name in SCHEMAS:
        path = folder / f"{name}.schema.json"
        write_text_atomic(path, json.dumps(schema(name), indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def tables() -> str:
    """Markdown: per file kind, one table per record type, a row per field."""
    parts = []
    for name, (model, title) in SCHEMAS.items():
        document = schema(name)
        definitions = document.get("$defs", {})
        parts += [f"### `{name}.schema.json`: {title}", ""]
        parts += _table(model.__name__, document, definitions)
        for defname in sorted(definitions):
            parts += _table(defname, definitions[defname], definitions)
    return "\n".join(parts).rstrip() + "\n"


def _table(name: str, node: dict, definitions: dict) -> list[str]:
    properties = node.get("properties")
    if not properties:
        return []
    required = set(node.get("required", []))
    rows = [  # rnnbench's own words, written as Markdown
        tuple(
            map(
                Markdown,
                (
                    f"`{field}`",
                    _type(spec),
                    "yes" if field in required else "",
                    spec.get("description") or "",
                ),
            )
        )
        for field, spec in properties.items()
    ]
    return [
        f"**{name}**",
        "",
        markdown_table(("field", "type", "required", "description"), rows),
        "",
    ]


def _type(spec: dict) -> str:
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in spec:
        return " or ".join(_type(s) for s in spec["anyOf"])
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " | ".join(f"`{v}`" for v in spec["enum"])
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {_type(spec.get('items', {}))}"
    if kind == "object" and "additionalProperties" in spec:
        extra = spec["additionalProperties"]
        return f"map to {_type(extra) if isinstance(extra, dict) else 'any'}"
    bounds = [
        f"{op} {spec[k]}" for k, op in (("minimum", ">="), ("exclusiveMinimum", ">")) if k in spec
    ]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def rewrite_readme(path) -> bool:
    """Replace the text between the schema markers of `path` by tables(); whether it changed."""
    text = Path(path).read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"{path} needs exactly one {BEGIN} ... {END} pair")
    new = re.sub(
        re.escape(BEGIN) + ".*?" + re.escape(END),
        lambda _: f"{BEGIN}\n{tables()}{END}",
        text,
        flags=re.S,
    )
    if new != text:
        write_text_atomic(path, new)
    return new != text
