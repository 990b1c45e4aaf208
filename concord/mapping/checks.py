"""Load-time checks of a parsed mapping against the canonical model it writes or reads.

Inbound: the entity exists, every output field exists on the model, every required field is
mapped, ``object``/``each``/``as: list`` match the field's shape, and an explicit ``type`` does not
clash with the field (``type: bool`` into a ``Decimal``). Outbound: every source path exists on
``Customer360``. Each failure is a ``MappingError`` naming file, line, column and field.
"""

from __future__ import annotations

from concord.errors import MappingError
from concord.mapping.paths import expr_reads
from concord.mapping.spec import Expr, MappingSpec, Mark, SourcePath
from concord.mapping.targets import Target, model_targets
from concord.model import ENTITY_MODELS, Customer360

ACCEPTS: dict[str, frozenset[str]] = {
    "str": frozenset({"str", "currency", "country"}),
    "decimal": frozenset({"decimal", "int", "float"}),
    "int": frozenset({"int"}),
    "float": frozenset({"float", "decimal", "int"}),
    "bool": frozenset({"bool"}),
    "datetime": frozenset({"datetime"}),
    "date": frozenset({"date"}),
    "enum": frozenset({"str"}),
}
_HINTS = {
    ("datetime", "date"): " (use type: datetime; a date-only value becomes midnight UTC)",
}


class _Checker:
    """Runs the checks for one spec; ``targets`` afterwards holds the inbound field targets."""

    def __init__(self, spec: MappingSpec) -> None:
        self.spec = spec

    def fail(self, message: str, mark: Mark | None, field: str | None) -> MappingError:
        return MappingError(
            message,
            file=str(self.spec.file),
            line=mark.line if mark else None,
            column=mark.column if mark else None,
            field=field,
        )

    def run(self) -> dict[str, Target] | None:
        spec = self.spec
        if spec.direction == "outbound":
            self.check_outbound()
            return None
        model = ENTITY_MODELS.get(spec.entity)
        if model is None:
            raise self.fail(
                f"unknown entity '{spec.entity}'; expected one of: "
                f"{', '.join(sorted(ENTITY_MODELS))}",
                spec.marks.get("entity"),
                None,
            )
        targets = model_targets(model)
        targets.pop("ref", None)
        self.check_fields(spec.fields, targets, model.__name__, spec.marks.get("fields"), "")
        return targets

    def check_fields(
        self,
        fields: dict[str, Expr],
        targets: dict[str, Target],
        model: str,
        mark: Mark | None,
        prefix: str,
    ) -> None:
        for name, expr in fields.items():
            target = targets.get(name)
            if target is None:
                known = ", ".join(n for n in targets)
                raise self.fail(
                    f"{model} has no field '{name}'; its fields are: {known}",
                    expr.marks.get("@key", expr.mark),
                    expr.field,
                )
            self.check_expr(expr, target)
        for name, target in targets.items():
            if target.required and name not in fields:
                raise self.fail(
                    f"required field '{name}' of {model} is not mapped", mark, prefix + name
                )

    def check_expr(self, expr: Expr, target: Target) -> None:
        item = target.item if target.kind == "list" and target.item is not None else None
        if expr.object is not None:
            shape = item if item is not None else target
            if shape.kind != "object":
                raise self.fail(
                    f"'object' builds an object but '{expr.field}' is a {_describe(target)}",
                    expr.marks.get("object"),
                    expr.field,
                )
            if item is not None and not expr.as_list:
                raise self.fail(
                    f"'{expr.field}' is a list of {shape.model}: add 'as: list' to "
                    "wrap the object, or use 'each' for a list of source objects",
                    expr.marks.get("object"),
                    expr.field,
                )
            self.check_fields(
                expr.object, shape.fields, shape.model, expr.marks.get("object"), expr.field + "."
            )
            return
        if expr.each is not None:
            if item is None or item.kind != "object":
                raise self.fail(
                    f"'each' builds a list of objects but '{expr.field}' is a {_describe(target)}",
                    expr.marks.get("each"),
                    expr.field,
                )
            assert expr.each_fields is not None
            self.check_fields(
                expr.each_fields,
                item.fields,
                item.model,
                expr.marks.get("fields"),
                expr.field + ".",
            )
            return
        if target.kind == "object" or (item is not None and item.kind == "object"):
            raise self.fail(
                f"'{expr.field}' is {_describe(target)}: build it with 'object:' "
                "(or 'each:' for a list)",
                expr.mark,
                expr.field,
            )
        if expr.as_list and target.kind != "list":
            raise self.fail(
                f"'as: list' but '{expr.field}' is {_describe(target)}, not a list",
                expr.marks.get("as"),
                expr.field,
            )
        if expr.join is not None and target.kind == "list":
            raise self.fail(
                f"'join' makes text but '{expr.field}' is a list",
                expr.marks.get("join"),
                expr.field,
            )
        value_target = item if item is not None else target
        if expr.type is not None and value_target.kind in ACCEPTS:
            if expr.type not in ACCEPTS[value_target.kind]:
                hint = _HINTS.get((value_target.kind, expr.type), "")
                raise self.fail(
                    f"type: {expr.type} does not fit '{expr.field}', which is "
                    f"{_describe(target)}{hint}",
                    expr.marks.get("type"),
                    expr.field,
                )
        if expr.negate_if is not None and value_target.kind not in (
            "decimal",
            "int",
            "float",
            "any",
        ):
            raise self.fail(
                f"'negate_if' needs a number but '{expr.field}' is {_describe(target)}",
                expr.marks.get("negate_if"),
                expr.field,
            )

    # -- outbound -----------------------------------------------------------------------------

    def check_outbound(self) -> None:
        root = model_targets(Customer360)
        for expr in self.spec.fields.values():
            for read in expr_reads(expr):
                if not read.nested:  # paths below an ``each`` item are not checked here
                    self.check_source_path(read.path, expr.field, root)

    def check_source_path(self, path: SourcePath, field: str, root: dict[str, Target]) -> None:
        current: Target = Target("object", fields=root, model="Customer360")
        walked: list[str] = []
        for step in path.steps:
            if current.kind == "any":
                return
            if isinstance(step, str):
                if current.kind != "object" or step not in current.fields:
                    where = ".".join(walked) or current.model
                    known = ", ".join(current.fields) if current.kind == "object" else "none"
                    raise self.fail(
                        f"path '{path.text}': {where} has no field '{step}' (fields: {known})",
                        path.mark,
                        field,
                    )
                current = current.fields[step]
                walked.append(step)
            else:
                if current.kind != "list" or current.item is None:
                    raise self.fail(
                        f"path '{path.text}': '{'.'.join(walked)}' is not a list", path.mark, field
                    )
                current = current.item


def _describe(target: Target) -> str:
    if target.kind == "list" and target.item is not None:
        inner = target.item.model or target.item.kind
        return f"a list of {inner}"
    if target.kind in ("object", "enum"):
        return f"a {target.model}"
    return f"a {target.kind}"


def check_mapping(spec: MappingSpec) -> dict[str, Target] | None:
    """Check ``spec``; returns the inbound model's field targets (None for outbound)."""
    return _Checker(spec).run()
