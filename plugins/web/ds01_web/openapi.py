"""The REST API's OpenAPI 3.1 document, made from the operation table (one source of truth):
every operation's path, method, parameters with their types, its result and the error schema.

Regenerate the checked-in copy (with every shipped plugin installed, as the test env has them):
``python -m ds01_web.openapi > docs/api/openapi.json``
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ds01_core.api import Operation, Runtime, load_runtime, operation_table, to_json
from ds01_web.errors import CODES

TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array", "items": {"type": "string"}},
}
ERROR = {"$ref": "#/components/responses/Error"}


def _schema(param: Any) -> dict[str, Any]:
    schema = dict(TYPES[param.type])
    if param.default is not None:
        schema["default"] = json.loads(to_json(param.default))
    return schema


def _operation(op: Operation) -> dict[str, Any]:
    in_path = set(op.path_params)
    parameters = [
        {"name": p.name, "in": "path", "required": True, "schema": _schema(p)}
        for p in op.params
        if p.name in in_path
    ]
    rest = [p for p in op.params if p.name not in in_path]
    entry: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary or op.name,
        "x-ds01-admin": op.admin,
    }
    if op.method == "GET":
        parameters += [
            {"name": p.name, "in": "query", "required": p.required, "schema": _schema(p)}
            for p in rest
        ]
    elif rest:
        body: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {p.name: _schema(p) for p in rest},
        }
        required = [p.name for p in rest if p.required]
        if required:
            body["required"] = required
        entry["requestBody"] = {
            "required": bool(required),
            "content": {"application/json": {"schema": body}},
        }
    if parameters:
        entry["parameters"] = parameters
    if op.stream == "bytes":
        content = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    elif op.stream == "jsonl":
        content = {"application/x-ndjson": {"schema": {"type": "string"}}}
    else:
        content = {"application/json": {"schema": {}}}
    entry["responses"] = {
        "200": {"description": "the operation's result", "content": content},
        **{str(status): ERROR for status, _ in sorted(set(CODES.values()))},
    }
    return entry


def openapi_document(runtime: Runtime) -> dict[str, Any]:
    """The document for the operations ``runtime`` serves (its core and active plugins)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(operation_table(runtime), key=lambda o: (o.path, o.method)):
        paths.setdefault("/api" + op.path, {})[op.method.lower()] = _operation(op)
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["kind", "message", "code"],
                "properties": {
                    "kind": {"type": "string", "enum": sorted(CODES)},
                    "message": {"type": "string"},
                    "code": {"type": "string", "enum": sorted(c for _, c in CODES.values())},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ds01 REST API",
            "version": "1",
            "description": "ds01's operations (the same as the ds01 CLI's), run as the owner "
            "of the personal token (`ds01 token create`). Read tokens may only GET.",
        },
        "servers": [{"url": "/"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": error},
            "responses": {
                "Error": {
                    "description": "a refusal or failure: what was wrong and what to do",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
    }


def render(document: dict[str, Any]) -> str:
    """The checked-in form: sorted keys, two-space indent, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="Configuration file.")
def main(config_path: str | None) -> None:
    """Print the OpenAPI document of the operations this installation serves."""
    sys.stdout.write(render(openapi_document(load_runtime(config_path, configure=False))))


if __name__ == "__main__":
    main()
