"""Turn a mapping file's YAML into a ``MappingSpec``, rejecting unknown or misplaced keys.

The YAML is composed (not loaded) with PyYAML's safe loader so every key and value keeps its
line and column; each error is a ``MappingError`` naming file, line, column and output field.
This module checks the shape of the language only; checks against the canonical model are in
``concord.mapping.checks``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from concord.errors import MappingError
from concord.mapping.spec import (
    COMPARISONS,
    TRANSFORMS,
    TYPES,
    WILDCARD,
    AllOf,
    AnyOf,
    Case,
    Compare,
    Condition,
    EachHolds,
    Expr,
    MappingSpec,
    Mark,
    Not,
    SourcePath,
    Step,
    Table,
)

FILE_KEYS = frozenset(
    {
        "direction",
        "entity",
        "target",
        "source",
        "id",
        "fields",
        "stringify",
        "key",
        "on_missing",
        "tables",
        "description",
    }
)
SOURCE_KEYS = ("path", "const", "coalesce", "concat", "when", "object", "each")
STEP_KEYS = frozenset(
    {
        "on_missing",
        "extract",
        "group",
        "split",
        "transform",
        "map",
        "lookup",
        "otherwise",
        "default",
        "type",
        "format",
        "tz",
        "round",
        "negate_if",
        "join",
        "as",
        "required",
        "description",
        "sep",
        "else",
        "fields",
        "filter",
    }
)
EXPR_KEYS = frozenset(SOURCE_KEYS) | STEP_KEYS
OUTPUT_ONLY_KEYS = frozenset({"required", "as"})
ON_MISSING = ("default", "reject")

_SEGMENT = re.compile(r"[^.\[\]]+")
_INDEX = re.compile(r"\[(-?\d+|\*)\]")


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Parser:
    """Parses one mapping file; ``fail`` raises a ``MappingError`` at a node."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.tables: dict[str, Table] = {}
        self._constructor = SafeConstructor()

    def fail(self, message: str, at: Node | Mark | None, field: str | None = None) -> NoReturn:
        mark = _mark(at) if isinstance(at, Node) else at
        raise MappingError(
            message,
            file=str(self.file),
            line=mark.line if mark else None,
            column=mark.column if mark else None,
            field=field,
        )

    # -- YAML helpers -------------------------------------------------------------------------

    def value(self, node: Node, field: str | None = None) -> Any:
        """Construct plain data (scalars, lists, dicts) from a node with the safe constructor."""
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.fail(f"invalid value: {exc}", node, field)

    def pairs(self, node: Node, what: str, field: str | None) -> list[tuple[str, Node, Node]]:
        if not isinstance(node, MappingNode):
            self.fail(f"{what} must be a mapping of keys to values", node, field)
        seen: set[str] = set()
        out: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or not isinstance(key_node.value, str):
                self.fail(f"keys of {what} must be plain names", key_node, field)
            key = key_node.value
            if key in seen:
                self.fail(f"duplicate key '{key}' in {what}", key_node, field)
            seen.add(key)
            out.append((key, key_node, value_node))
        return out

    def string(self, node: Node, what: str, field: str | None) -> str:
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            self.fail(f"{what} must be a string", node, field)
        return str(node.value)

    def boolean(self, node: Node, what: str, field: str | None) -> bool:
        value = self.value(node, field)
        if not isinstance(value, bool):
            self.fail(f"{what} must be true or false", node, field)
        return value

    def choice(self, node: Node, what: str, options: tuple[str, ...], field: str | None) -> str:
        value = self.string(node, what, field)
        if value not in options:
            self.fail(
                f"unknown {what} '{value}'; expected one of: {', '.join(options)}", node, field
            )
        return value

    def sequence(self, node: Node, what: str, field: str | None) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(f"{what} must be a list", node, field)
        return list(node.value)

    # -- file ---------------------------------------------------------------------------------

    def parse(self, text: str) -> MappingSpec:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            raise MappingError(
                f"not valid YAML: {exc.problem}",
                file=str(self.file),
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            ) from None
        except yaml.YAMLError as exc:  # e.g. a ReaderError for a control character
            raise MappingError(f"not valid YAML: {exc}", file=str(self.file)) from None
        if root is None:
            raise MappingError("the mapping file is empty", file=str(self.file))
        head: dict[str, tuple[Node, Node]] = {}
        for key, key_node, value_node in self.pairs(root, "a mapping file", None):
            if key not in FILE_KEYS:
                self.fail(
                    f"unknown key '{key}' at file level; expected one of: "
                    f"{', '.join(sorted(FILE_KEYS))}",
                    key_node,
                )
            head[key] = (key_node, value_node)
        marks = {k: _mark(v[0]) for k, v in head.items()}
        if "direction" not in head:
            self.fail("missing 'direction: inbound|outbound'", root)
        direction = self.choice(head["direction"][1], "direction", ("inbound", "outbound"), None)
        name_key = "entity" if direction == "inbound" else "target"
        wrong_key = "target" if direction == "inbound" else "entity"
        if wrong_key in head:
            self.fail(
                f"'{wrong_key}' is not used by {direction} mappings; use '{name_key}'",
                head[wrong_key][0],
            )
        if name_key not in head:
            self.fail(f"missing '{name_key}' for an {direction} mapping", root)
        entity = self.string(head[name_key][1], name_key, None)
        source = self.string(head["source"][1], "source", None) if "source" in head else None
        tables = self._tables(head["tables"][1]) if "tables" in head else {}
        self.tables = tables
        on_missing = "default"
        if "on_missing" in head:
            on_missing = self.choice(head["on_missing"][1], "on_missing", ON_MISSING, None)
        id_expr: Expr | None = None
        if "id" in head:
            if direction == "outbound":
                self.fail(
                    "outbound mappings have no 'id'; map the key property under 'fields' "
                    "and name it with 'key:'",
                    head["id"][0],
                )
            id_expr = self.expr(head["id"][1], "id", output=True)
        elif direction == "inbound":
            self.fail("missing 'id': the expression giving the source record id", root, "id")
        if "fields" not in head:
            self.fail("missing 'fields'", root)
        fields = self.fields(head["fields"][1], "")
        if "id" in fields:
            self.fail(
                "'id' is set by the file-level 'id:' expression, not under fields",
                head["fields"][1],
                "id",
            )
        stringify = False
        if "stringify" in head:
            if direction == "inbound":
                self.fail("'stringify' applies to outbound mappings only", head["stringify"][0])
            stringify = self.boolean(head["stringify"][1], "stringify", None)
        key_field: str | None = None
        if "key" in head:
            if direction == "inbound":
                self.fail("'key' applies to outbound mappings only", head["key"][0])
            key_field = self.string(head["key"][1], "key", None)
            if key_field not in fields:
                self.fail(
                    f"key '{key_field}' is not one of the mapped fields", head["key"][1], key_field
                )
        description = None
        if "description" in head:
            description = self.string(head["description"][1], "description", None)
        return MappingSpec(
            file=self.file,
            direction="inbound" if direction == "inbound" else "outbound",
            entity=entity,
            source=source,
            id=id_expr,
            fields=fields,
            marks=marks,
            stringify=stringify,
            key=key_field,
            on_missing="reject" if on_missing == "reject" else "default",
            tables=tables,
            description=description,
        )

    def fields(self, node: Node, prefix: str) -> dict[str, Expr]:
        out: dict[str, Expr] = {}
        what = f"fields of '{prefix.rstrip('.')}'" if prefix else "fields"
        for name, key_node, value_node in self.pairs(node, what, prefix.rstrip(".") or None):
            if not name.isidentifier():
                self.fail(f"output field '{name}' is not a valid name", key_node, prefix + name)
            expr = self.expr(value_node, prefix + name, output=True)
            expr.marks.setdefault("@key", _mark(key_node))
            out[name] = expr
        return out

    def _tables(self, node: Node) -> dict[str, Table]:
        tables: dict[str, Table] = {}
        for name, key_node, value_node in self.pairs(node, "tables", None):
            if isinstance(value_node, MappingNode) and any(
                k.value == "csv" for k, _ in value_node.value if isinstance(k, ScalarNode)
            ):
                tables[name] = self._csv_table(name, value_node)
                continue
            data = self.value(value_node, None)
            if not isinstance(data, dict):
                self.fail(
                    f"table '{name}' must be a mapping of source value to output value, "
                    "or {csv: file, key: column, value: column}",
                    value_node,
                )
            tables[name] = Table(name, _table_keys(data), _mark(key_node))
        return tables

    def _csv_table(self, name: str, node: Node) -> Table:
        spec: dict[str, str] = {}
        for key, key_node, value_node in self.pairs(node, f"table '{name}'", None):
            if key not in ("csv", "key", "value"):
                self.fail(
                    f"unknown key '{key}' in CSV table '{name}'; expected csv, key, value", key_node
                )
            spec[key] = self.string(value_node, key, None)
        for needed in ("key", "value"):
            if needed not in spec:
                self.fail(f"CSV table '{name}' needs '{needed}: <column>'", node)
        mappings_root = self.file.parent
        csv_path = (mappings_root / spec["csv"]).resolve()
        allowed = _mappings_root(self.file)
        if allowed not in csv_path.parents:
            self.fail(f"CSV table '{name}' must be a file under {allowed}", node)
        try:
            with csv_path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except OSError as exc:
            self.fail(f"cannot read CSV table '{name}': {exc.strerror}", node)
        values: dict[str, Any] = {}
        for number, row in enumerate(rows, start=2):
            if spec["key"] not in row or spec["value"] not in row:
                self.fail(
                    f"CSV table '{name}' ({csv_path.name}) has no column "
                    f"'{spec['key']}' or '{spec['value']}'",
                    node,
                )
            k = row[spec["key"]]
            if k in values and values[k] != row[spec["value"]]:
                self.fail(f"CSV table '{name}' ({csv_path.name}:{number}) maps '{k}' twice", node)
            values[k] = row[spec["value"]]
        return Table(name, values, _mark(node))

    # -- expressions --------------------------------------------------------------------------

    def path(self, node: Node, field: str) -> SourcePath:
        text = self.string(node, "a path", field)
        return self.parse_path(text, _mark(node), field)

    def parse_path(self, text: str, mark: Mark, field: str) -> SourcePath:
        root = False
        rest = text.strip()
        if rest.startswith("$."):
            root, rest = True, rest[2:]
        steps: list[Step] = []
        pos = 0
        while pos < len(rest):
            seg = _SEGMENT.match(rest, pos)
            if seg is None:
                self.fail(
                    f"invalid path '{text}' at character {pos + 1}; expected a name", mark, field
                )
            steps.append(seg.group(0).strip())
            pos = seg.end()
            while pos < len(rest) and rest[pos] == "[":
                idx = _INDEX.match(rest, pos)
                if idx is None:
                    self.fail(
                        f"invalid path '{text}': list steps are [0], [-1] or [*]", mark, field
                    )
                index = idx.group(1)
                steps.append(WILDCARD if index == "*" else int(index))
                pos = idx.end()
            if pos < len(rest):
                if rest[pos] != "." or pos + 1 == len(rest):
                    self.fail(f"invalid path '{text}' at character {pos + 1}", mark, field)
                pos += 1
        if not steps:
            self.fail("empty path", mark, field)
        return SourcePath(text, tuple(steps), root, mark)

    def expr(self, node: Node, field: str, *, output: bool) -> Expr:
        if isinstance(node, ScalarNode):
            if node.tag != "tag:yaml.org,2002:str":
                self.fail(
                    f"a bare value is read as a path; write {{const: {node.value}}} for a constant",
                    node,
                    field,
                )
            return Expr(field=field, mark=_mark(node), path=self.path(node, field))
        items = self.pairs(node, "an expression", field)
        expr = Expr(field=field, mark=_mark(node))
        keys = {k: (kn, vn) for k, kn, vn in items}
        expr.marks = {k: _mark(kn) for k, (kn, _) in keys.items()}
        for key, (key_node, _) in keys.items():
            if key not in EXPR_KEYS:
                self.fail(
                    f"unknown key '{key}' in expression; expected one of: "
                    f"{', '.join(sorted(EXPR_KEYS))}",
                    key_node,
                    field,
                )
            if not output and key in OUTPUT_ONLY_KEYS:
                self.fail(
                    f"'{key}' applies to an output field, not to a nested expression",
                    key_node,
                    field,
                )
        sources = [k for k in SOURCE_KEYS if k in keys]
        if len(sources) != 1:
            what = "none" if not sources else ", ".join(sources)
            self.fail(
                f"an expression needs exactly one of {', '.join(SOURCE_KEYS)} (got {what})",
                node,
                field,
            )
        self._source(expr, sources[0], keys, field)
        self._steps(expr, keys, field)
        return expr

    def _requires(
        self, keys: dict[str, tuple[Node, Node]], key: str, needs: str, present: bool, field: str
    ) -> None:
        if key in keys and not present:
            self.fail(f"'{key}' is only used with {needs}", keys[key][0], field)

    def _source(
        self, expr: Expr, kind: str, keys: dict[str, tuple[Node, Node]], field: str
    ) -> None:
        node = keys[kind][1]
        if kind == "path":
            expr.path = self.path(node, field)
        elif kind == "const":
            expr.has_const, expr.const = True, self.value(node, field)
        elif kind in ("coalesce", "concat"):
            parts = [self.expr(n, field, output=False) for n in self.sequence(node, kind, field)]
            if not parts:
                self.fail(f"'{kind}' needs at least one expression", node, field)
            setattr(expr, kind, parts)
        elif kind == "when":
            expr.when = [self._case(n, field) for n in self.sequence(node, "when", field)]
            if not expr.when:
                self.fail("'when' needs at least one {if:, then:} case", node, field)
            if "else" in keys:
                expr.else_ = self.expr(keys["else"][1], field, output=False)
        elif kind == "object":
            expr.object = self.fields(node, field + ".")
        elif kind == "each":
            expr.each = self.path(node, field)
            if "fields" not in keys:
                self.fail("'each' needs 'fields:' for the objects it builds", node, field)
            expr.each_fields = self.fields(keys["fields"][1], field + ".")
            if "filter" in keys:
                expr.each_filter = self.condition(keys["filter"][1], field)
        self._requires(keys, "sep", "concat", kind == "concat", field)
        self._requires(keys, "else", "when", kind == "when", field)
        self._requires(keys, "fields", "each", kind == "each", field)
        self._requires(keys, "filter", "each", kind == "each", field)
        if kind == "concat" and "sep" in keys:
            expr.sep = self.string(keys["sep"][1], "sep", field)

    def _case(self, node: Node, field: str) -> Case:
        parts = {k: (kn, vn) for k, kn, vn in self.pairs(node, "a 'when' case", field)}
        for key, (key_node, _) in parts.items():
            if key not in ("if", "then"):
                self.fail(
                    f"unknown key '{key}' in a 'when' case; expected if, then", key_node, field
                )
        if "if" not in parts or "then" not in parts:
            self.fail("a 'when' case needs both 'if' and 'then'", node, field)
        return Case(
            self.condition(parts["if"][1], field), self.expr(parts["then"][1], field, output=False)
        )

    def condition(self, node: Node, field: str) -> Condition:
        parts = {k: (kn, vn) for k, kn, vn in self.pairs(node, "a condition", field)}
        mark = _mark(node)
        if "each" in parts:
            quantifiers = [k for k in parts if k in ("any", "all")]
            if len(quantifiers) != 1 or set(parts) != {"each", quantifiers[0]}:
                self.fail(
                    "a list condition is {each: <list path>, any: <condition>} "
                    "(or all: <condition>)",
                    node,
                    field,
                )
            quantifier = quantifiers[0]
            items_node = parts["each"][1]
            list_path = self.path(items_node, field)
            if WILDCARD in list_path.steps:
                self.fail("'each' names the list itself, without [*]", items_node, field)
            return EachHolds(
                Expr(field=field, mark=_mark(items_node), path=list_path),
                "any" if quantifier == "any" else "all",
                self.condition(parts[quantifier][1], field),
                mark,
            )
        for combinator in ("all", "any"):
            if combinator in parts:
                if len(parts) != 1:
                    self.fail(f"'{combinator}' stands alone in a condition", node, field)
                items = [
                    self.condition(n, field)
                    for n in self.sequence(parts[combinator][1], combinator, field)
                ]
                return AllOf(items, mark) if combinator == "all" else AnyOf(items, mark)
        if "not" in parts:
            if len(parts) != 1:
                self.fail("'not' stands alone in a condition", node, field)
            return Not(self.condition(parts["not"][1], field), mark)
        ops = [k for k in parts if k in COMPARISONS]
        subjects = [k for k in parts if k in ("path", "value")]
        for key, (key_node, _) in parts.items():
            if key not in COMPARISONS and key not in ("path", "value"):
                self.fail(
                    f"unknown key '{key}' in a condition; expected path or value and one "
                    f"of: {', '.join(COMPARISONS)} (or all, any, not)",
                    key_node,
                    field,
                )
        if len(ops) != 1 or len(subjects) != 1:
            self.fail(
                "a condition is {path: <path>, <comparison>: <value>} with one comparison "
                f"of: {', '.join(COMPARISONS)}",
                node,
                field,
            )
        subject_node = parts[subjects[0]][1]
        subject = (
            Expr(field=field, mark=_mark(subject_node), path=self.path(subject_node, field))
            if subjects[0] == "path"
            else self.expr(subject_node, field, output=False)
        )
        op = ops[0]
        op_node = parts[op][1]
        operand = self.value(op_node, field)
        compare = Compare(subject, op, operand, _mark(op_node))
        if op in ("in", "not_in") and not isinstance(operand, list):
            self.fail(f"'{op}' needs a list of values", op_node, field)
        if op in ("present", "empty") and not isinstance(operand, bool):
            self.fail(f"'{op}' needs true or false", op_node, field)
        if op in ("gt", "ge", "lt", "le") and (
            isinstance(operand, bool) or not isinstance(operand, int | float | str)
        ):
            self.fail(f"'{op}' needs a number", op_node, field)
        if op == "matches":
            compare.pattern = self._regex(op_node, field)
        return compare

    def _regex(self, node: Node, field: str) -> re.Pattern[str]:
        text = self.string(node, "a regular expression", field)
        try:
            return re.compile(text)
        except re.error as exc:
            self.fail(f"invalid regular expression '{text}': {exc}", node, field)

    def _steps(self, expr: Expr, keys: dict[str, tuple[Node, Node]], field: str) -> None:
        def node(key: str) -> Node:
            return keys[key][1]

        if "on_missing" in keys:
            if expr.path is None:
                self.fail(
                    "'on_missing' applies to a 'path' expression", keys["on_missing"][0], field
                )
            value = self.choice(node("on_missing"), "on_missing", ON_MISSING, field)
            expr.on_missing = "reject" if value == "reject" else "default"
        if "extract" in keys:
            expr.extract = self._regex(node("extract"), field)
            if "group" in keys:
                group = self.value(node("group"), field)
                if isinstance(group, bool) or not isinstance(group, int | str):
                    self.fail("'group' is a group number or name", node("group"), field)
                names = expr.extract.groupindex
                if (isinstance(group, int) and not 0 <= group <= expr.extract.groups) or (
                    isinstance(group, str) and group not in names
                ):
                    self.fail(f"the pattern has no group {group!r}", node("group"), field)
                expr.group = group
            elif expr.extract.groups:
                expr.group = 1
        self._requires(keys, "group", "extract", "extract" in keys, field)
        if "split" in keys:
            expr.split = self.string(node("split"), "split", field)
            if not expr.split:
                self.fail("'split' needs a non-empty separator", node("split"), field)
        if "transform" in keys:
            tnode = node("transform")
            transform_nodes = (
                [tnode]
                if isinstance(tnode, ScalarNode)
                else self.sequence(tnode, "transform", field)
            )
            expr.transforms = tuple(
                self.choice(n, "transform", TRANSFORMS, field) for n in transform_nodes
            )
        if "map" in keys and "lookup" in keys:
            self.fail("use either 'map' or 'lookup', not both", keys["lookup"][0], field)
        if "map" in keys:
            table = self.value(node("map"), field)
            if not isinstance(table, dict) or not table:
                self.fail(
                    "'map' is a non-empty mapping of source value to output value",
                    node("map"),
                    field,
                )
            expr.map = _table_keys(table)
        if "lookup" in keys:
            name = self.string(node("lookup"), "lookup", field)
            if name not in self.tables:
                known = ", ".join(sorted(self.tables)) or "none defined"
                self.fail(f"unknown lookup table '{name}' (tables: {known})", node("lookup"), field)
            expr.lookup = name
            expr.map = self.tables[name].values
        if "otherwise" in keys:
            self._requires(keys, "otherwise", "map or lookup", expr.map is not None, field)
            expr.has_otherwise, expr.otherwise = True, self.value(node("otherwise"), field)
        if "default" in keys:
            expr.has_default, expr.default = True, self.value(node("default"), field)
        if "type" in keys:
            expr.type = self.choice(node("type"), "type", TYPES, field)
        for key in ("format", "tz"):
            if key in keys:
                if expr.type not in ("date", "datetime"):
                    self.fail(f"'{key}' is used with type: date or datetime", keys[key][0], field)
                setattr(expr, key, self.string(node(key), key, field))
        if "round" in keys:
            places = self.value(node("round"), field)
            if isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= 12:
                self.fail("'round' is a number of decimal places (0-12)", node("round"), field)
            expr.round = places
        if "negate_if" in keys:
            expr.negate_if = self.condition(node("negate_if"), field)
        if "join" in keys:
            expr.join = self.string(node("join"), "join", field)
        if "as" in keys:
            self.choice(node("as"), "as", ("list",), field)
            expr.as_list = True
        if "required" in keys:
            expr.required = self.boolean(node("required"), "required", field)
        if "description" in keys:
            expr.description = self.string(node("description"), "description", field)


def _table_keys(table: dict[Any, Any]) -> dict[Any, Any]:
    """A map table that also answers for the text form of non-string keys (YAML ``1`` vs "1")."""
    out: dict[Any, Any] = {}
    for key, value in table.items():
        out[key] = value
        if isinstance(key, bool):
            out.setdefault("true" if key else "false", value)
        elif key is not None and not isinstance(key, str):
            out.setdefault(str(key), value)
    return out


def _mappings_root(file: Path) -> Path:
    """The ``mappings`` directory a file lives under (CSV tables must stay inside it)."""
    resolved = file.resolve()
    for parent in resolved.parents:
        if parent.name == "mappings":
            return parent
    return resolved.parent


def parse_mapping(file: Path, text: str) -> MappingSpec:
    """Parse the text of ``file`` into a spec, raising ``MappingError`` at the first problem."""
    return _Parser(file).parse(text)
