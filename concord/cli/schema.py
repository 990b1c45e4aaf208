"""``concord schema``: the JSON Schema of the canonical model, for tools and reviewers."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from pydantic.json_schema import models_json_schema

from concord import model
from concord.cli.render import err_console


def schema(
    entity: Annotated[str | None, typer.Argument(help="One model, e.g. Customer.")] = None,
) -> None:
    """Print the JSON Schema of the canonical model."""
    models: list[type[model.CanonicalModel]] = [*model.ENTITY_MODELS.values(), model.Customer360]
    if entity:
        models = [m for m in models if m.__name__.lower() == entity.lower()]
        if not models:
            err_console.print(f"[red]error:[/] unknown model {entity}")
            raise typer.Exit(1)
    _, doc = models_json_schema(
        [(m, "validation") for m in models], title="concord canonical model"
    )
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
