"""Compile a checked ``MappingSpec`` into one plain Python function, generated once per file.

The generated source contains only names and statement shapes this module writes; every value
that came from the mapping file (keys, constants, tables, patterns, messages) is bound as a
constant in the namespace handed to ``exec`` and referenced by a generated name (``_k12``), so
no user text is ever parsed as code. The hot paths (dict reads, ``Decimal`` and ISO timestamp
parsing, enum checks) are inlined; everything else calls small functions from
``concord.mapping.functions``. Conversion failures become ``RecordRejected`` naming the file
and the output field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from concord.errors import MappingError, RecordRejected
from concord.mapping import functions as fn
from concord.mapping.codes import COUNTRY_CODES, CURRENCY_CODES
from concord.mapping.spec import (
    WILDCARD,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    EachHolds,
    Expr,
    MappingSpec,
    Mark,
    Not,
    SourcePath,
    Step,
)
from concord.mapping.targets import Target

Apply = Callable[[dict[str, Any]], dict[str, Any]]
_MISSING = object()
_FAST_TYPES = ("str", "decimal", "datetime", "enum")


@dataclass
class Compiled:
    """The compiled function and its generated source (for debugging).

    The paths it reads are found by ``concord.mapping.paths`` from the spec, not here.
    """

    apply: Apply
    source: str


@dataclass
class _Scope:
    """Where an expression reads from: the variable holding the current object."""

    base: str
    item: str | None = None  # the loop index variable inside ``each``


def reject(label: str, field: str, item: int | None, error: Exception) -> RecordRejected:
    """A reject naming the mapping, the output field (and list item) and the cause."""
    where = f" (item {item + 1})" if item is not None else ""
    return RecordRejected(f"{label} field '{field}'{where}: {error}", field=field)


def missing(label: str, field: str, item: int | None, what: str) -> RecordRejected:
    """A reject for a required value that is missing, naming field and item."""
    where = f" (item {item + 1})" if item is not None else ""
    return RecordRejected(f"{label} field '{field}'{where}: {what}", field=field)


def _walk(value: Any, steps: tuple[Step, ...]) -> Any:
    """Read a path with ``[*]`` steps: a flat list of every value found, or None."""
    current: list[Any] = [value]
    many = False
    for step in steps:
        found: list[Any] = []
        for item in current:
            if step is WILDCARD:
                many = True
                if isinstance(item, list):
                    found.extend(item)
            elif isinstance(step, int):
                if isinstance(item, list) and -len(item) <= step < len(item):
                    found.append(item[step])
            elif isinstance(item, dict) and step in item:
                found.append(item[step])
        current = found
    values = [v for v in current if v is not None]
    if many:
        return values
    return values[0] if values else None


def _concat(sep: str, parts: tuple[Any, ...]) -> str | None:
    texts = [fn.to_str(p) for p in parts if p is not None and p != ""]
    return sep.join(texts) if texts else None


def _join(sep: str, value: Any) -> Any:
    if isinstance(value, list):
        texts = [fn.to_str(v) for v in value if v is not None and v != ""]
        return sep.join(texts) if texts else None
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None and v != "" and v != {}]
    return [value]


def _splitter(sep: str) -> Callable[[Any], list[str] | None]:
    def split(value: Any) -> list[str] | None:
        parts = [p.strip() for p in fn.to_str(value).split(sep)]
        kept = [p for p in parts if p]
        return kept or None

    return split


def _extractor(pattern: re.Pattern[str], group: int | str) -> Callable[[Any], str | None]:
    def extract(value: Any) -> str | None:
        found = pattern.search(fn.to_str(value))
        if found is None:
            return None
        result = found.group(group)
        return result if isinstance(result, str) and result != "" else None

    return extract


def _mapper(
    table: dict[Any, Any], has_otherwise: bool, otherwise: Any, name: str | None
) -> Callable[[Any], Any]:
    what = f"lookup table '{name}'" if name else "the map"

    def apply_map(value: Any) -> Any:
        try:
            found = table.get(value, _MISSING)
        except TypeError:
            found = _MISSING
        if found is _MISSING and not isinstance(value, str):
            key = ("true" if value else "false") if isinstance(value, bool) else str(value)
            found = table.get(key, _MISSING)
        if found is _MISSING:
            if has_otherwise:
                return otherwise
            raise fn.ConversionError(f"{fn.show(value)} is not in {what}")
        return found

    return apply_map


def _comparer(compare: Compare) -> Callable[[Any], bool]:
    op, operand = compare.op, compare.operand
    if op in ("present", "empty"):
        want_empty = (op == "empty") == bool(operand)
        return lambda v: (v is None or v == "" or v == [] or v == {}) == want_empty
    if op == "matches":
        pattern = compare.pattern
        assert pattern is not None
        return lambda v: v is not None and pattern.search(fn.to_str(v)) is not None
    if op in ("eq", "ne", "in", "not_in"):
        options = operand if op in ("in", "not_in") else [operand]
        accepted: set[Any] = set()
        for option in options:
            if isinstance(option, list | dict):
                continue
            accepted.add(option)
            accepted.add(
                ("true" if option else "false")
                if isinstance(option, bool)
                else str(option)
                if option is not None
                else None
            )
        positive = op in ("eq", "in")

        def member(v: Any) -> bool:
            try:
                hit = v in accepted
            except TypeError:
                hit = False
            if not hit and v is not None and not isinstance(v, str):
                hit = fn.to_str(v) in accepted
            return hit == positive

        return member
    bound = fn.to_decimal(operand)

    def order(v: Any) -> bool:
        if v is None:
            return False
        try:
            number = fn.to_decimal(v)
        except fn.ConversionError:
            return False
        if op == "gt":
            return number > bound
        if op == "ge":
            return number >= bound
        if op == "lt":
            return number < bound
        return number <= bound

    return order


@dataclass
class _Compiler:
    """Generates the source of one mapping function and the constants it refers to."""

    spec: MappingSpec
    targets: dict[str, Target] | None
    lines: list[str] = field(default_factory=list)
    namespace: dict[str, Any] = field(default_factory=dict)
    _names: dict[tuple[type, Any], str] = field(default_factory=dict)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.label = self.spec.file.name
        self.namespace.update(
            {
                "_D": Decimal,
                "_DecErr": InvalidOperation,
                "_fromiso": datetime.fromisoformat,
                "_UTC": UTC,
                "_Conv": fn.ConversionError,
                "_fail": fn.fail,
                "_to_decimal": fn.to_decimal,
                "_to_str": fn.to_str,
                "_reject": reject,
                "_missing": missing,
                "_walk": _walk,
                "_concat": _concat,
                "_join": _join,
                "_as_list": _as_list,
                "_negate": fn.negate,
                "_stringify": fn.stringify,
                "_M": _MISSING,
                "_label": self.label,
                "_Rejected": RecordRejected,
            }
        )

    # -- helpers ------------------------------------------------------------------------------

    def const(self, value: Any) -> str:
        """A generated name bound to ``value`` in the namespace (deduplicated for scalars)."""
        key: tuple[type, Any] | None = None
        if isinstance(value, str | int | bool) or value is None:
            key = (type(value), value)
            if key in self._names:
                return self._names[key]
        self._counter += 1
        name = f"_k{self._counter}"
        self.namespace[name] = value
        if key is not None:
            self._names[key] = name
        return name

    def var(self, stem: str = "v") -> str:
        self._counter += 1
        return f"{stem}{self._counter}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def fail(self, message: str, mark: Mark, field: str) -> MappingError:
        return MappingError(
            message, file=str(self.spec.file), line=mark.line, column=mark.column, field=field
        )

    # -- whole function -----------------------------------------------------------------------

    def compile(self) -> Compiled:
        self.emit(0, "def apply(r):")
        self.emit(1, "if not isinstance(r, dict):")
        self.emit(2, "raise _Rejected(_label + ': the record is not an object')")
        self.emit(1, "o = {}")
        scope = _Scope("r")
        if self.spec.id is not None:
            id_target = Target("str", required=True, nullable=False, natural="str")
            self.output_field(self.spec.id, "id", id_target, scope, "o", 1)
        for name, expr in self.spec.fields.items():
            target = self.targets.get(name) if self.targets is not None else None
            self.output_field(expr, name, target, scope, "o", 1)
        self.emit(1, "return o")
        source = "\n".join(self.lines) + "\n"
        code = compile(source, f"<mapping {self.spec.file}>", "exec")
        exec(code, self.namespace)  # noqa: S102 - generated source, user values are constants
        apply: Apply = self.namespace["apply"]
        return Compiled(apply, source)

    def output_field(
        self, expr: Expr, name: str, target: Target | None, scope: _Scope, out: str, indent: int
    ) -> None:
        """Code that computes one output field and stores it in the dict ``out``."""
        field_name = self.const(expr.field if name != "id" else "id")
        self.emit(indent, "try:")
        value = self.expr(expr, target, scope, indent + 1)
        required = expr.required if expr.required is not None else bool(target and target.required)
        is_list = target is not None and target.kind == "list"
        if required:
            self.emit(indent + 1, f"if {value} is None{' or not ' + value if is_list else ''}:")
            self.emit(
                indent + 2,
                f"raise _missing(_label, {field_name}, {scope.item}, "
                f"{self.const(self.missing_reason(expr))})",
            )
        if self.spec.stringify:
            self.emit(indent + 1, f"{out}[{self.const(name)}] = _stringify({value})")
        elif target is not None and target.omit_if_none:
            self.emit(indent + 1, f"if {value} is not None:")
            self.emit(indent + 2, f"{out}[{self.const(name)}] = {value}")
        else:
            self.emit(indent + 1, f"{out}[{self.const(name)}] = {value}")
        self.emit(indent, "except (_Conv, _DecErr) as e:")
        self.emit(indent + 1, f"raise _reject(_label, {field_name}, {scope.item}, e) from None")

    @staticmethod
    def missing_reason(expr: Expr) -> str:
        if expr.path is not None:
            return f"required value missing (path '{expr.path.text}')"
        return "required value missing"

    # -- expressions --------------------------------------------------------------------------

    def conversion(self, expr: Expr, target: Target | None) -> str | None:
        """The conversion an expression gets: its ``type``, else what the target field implies."""
        if target is not None and target.kind == "list" and target.item is not None:
            target = target.item
        if target is not None and target.kind == "enum":
            return "enum"
        if expr.type is not None:
            return expr.type
        return target.natural if target is not None else None

    def expr(self, expr: Expr, target: Target | None, scope: _Scope, indent: int) -> str:
        """Emit code for ``expr``; returns the variable holding its value (None when empty)."""
        v = self.var()
        kind = expr.source_kind
        if kind == "object":
            return self.object_source(expr, target, scope, indent, v)
        if kind == "each":
            return self.each_source(expr, target, scope, indent, v)
        self.source(expr, scope, indent, v)
        listy = (
            bool(expr.split)
            or (expr.path is not None and WILDCARD in expr.path.steps)
            or (target is not None and target.kind == "list" and not expr.as_list)
        )
        if listy:
            if expr.extract is not None or expr.split is not None:
                self.emit(indent, f"if {v} is not None:")
            if expr.extract is not None:
                self.emit(
                    indent + 1, f"{v} = {self.const(_extractor(expr.extract, expr.group))}({v})"
                )
            if expr.split is not None:
                self.emit(indent + 1, f"{v} = {self.const(_splitter(expr.split))}({v})")
            self.emit(indent, f"if {v} is not None:")
            self.emit(indent + 1, f"if not isinstance({v}, list):")
            self.emit(indent + 2, f"{v} = [{v}]")
            items, x = self.var("l"), self.var("x")
            self.emit(indent + 1, f"{items} = []")
            self.emit(indent + 1, f"for {x} in {v}:")
            self.value_steps(expr, target, scope, indent + 2, x, skip_extract=True)
            self.emit(indent + 2, f"if {x} is not None:")
            self.emit(indent + 3, f"{items}.append({x})")
            self.emit(indent + 1, f"{v} = {items}")
        else:
            self.value_steps(expr, target, scope, indent, v, skip_extract=False)
        if expr.join is not None:
            self.emit(indent, f"{v} = _join({self.const(expr.join)}, {v})")
        if expr.as_list:
            self.emit(indent, f"{v} = _as_list({v})")
        return v

    def source(self, expr: Expr, scope: _Scope, indent: int, v: str) -> None:
        if expr.path is not None:
            self.read_path(expr.path, expr, scope, indent, v)
        elif expr.has_const:
            self.emit(indent, f"{v} = {self.const(expr.const)}")
        elif expr.coalesce is not None:
            self.coalesce(expr.coalesce, scope, indent, v)
        elif expr.concat is not None:
            parts = [self.expr(part, None, scope, indent) for part in expr.concat]
            self.emit(indent, f"{v} = _concat({self.const(expr.sep)}, ({', '.join(parts)},))")
        elif expr.when is not None:
            self.when(expr, scope, indent, v)

    def coalesce(self, parts: list[Expr], scope: _Scope, indent: int, v: str) -> None:
        first, *rest = parts
        value = self.expr(first, None, scope, indent)
        self.emit(indent, f"{v} = {value}")
        if rest:
            self.emit(indent, f"if {v} is None or {v} == '':")
            self.coalesce(rest, scope, indent + 1, v)

    def when(self, expr: Expr, scope: _Scope, indent: int, v: str) -> None:
        assert expr.when is not None
        for case in expr.when:
            flag = self.condition(case.condition, scope, indent)
            self.emit(indent, f"if {flag}:")
            value = self.expr(case.then, None, scope, indent + 1)
            self.emit(indent + 1, f"{v} = {value}")
            self.emit(indent, "else:")
            indent += 1
        if expr.else_ is not None:
            value = self.expr(expr.else_, None, scope, indent)
            self.emit(indent, f"{v} = {value}")
        else:
            self.emit(indent, f"{v} = None")

    def read_path(self, path: SourcePath, expr: Expr, scope: _Scope, indent: int, v: str) -> None:
        base = "r" if path.root else scope.base
        on_missing = expr.on_missing or self.spec.on_missing
        if WILDCARD in path.steps:
            self.emit(indent, f"{v} = _walk({base}, {self.const(path.steps)})")
            return
        strict = on_missing == "reject"
        first, *rest = path.steps
        default = ", _M" if strict else ""
        self.emit(indent, f"{v} = {base}.get({self.const(first)}{default})")
        for step in rest:
            if isinstance(step, int):
                bound = self.const(step if step >= 0 else -step)
                test = f"len({v}) > {bound}" if step >= 0 else f"len({v}) >= {bound}"
                self.emit(
                    indent,
                    f"{v} = {v}[{self.const(step)}] if isinstance({v}, list) and {test} else None",
                )
            else:
                default = ", _M" if strict else ""
                self.emit(indent, f"if isinstance({v}, dict):")
                self.emit(indent + 1, f"{v} = {v}.get({self.const(step)}{default})")
                self.emit(indent, f"elif {v} is not _M:" if strict else "else:")
                self.emit(indent + 1, f"{v} = None")
        if strict:
            reason = self.const(
                f"source path '{path.text}' is missing from the record (schema drift)"
            )
            self.emit(indent, f"if {v} is _M:")
            self.emit(
                indent + 1,
                f"raise _missing(_label, {self.const(expr.field)}, {scope.item}, {reason})",
            )
        self.emit(indent, f"if {v} == '':")
        self.emit(indent + 1, f"{v} = None")

    def value_steps(
        self,
        expr: Expr,
        target: Target | None,
        scope: _Scope,
        indent: int,
        v: str,
        *,
        skip_extract: bool,
    ) -> None:
        """extract, split, transform, map, convert, round, negate, default - in that order."""
        pre: list[str] = []
        if expr.extract is not None and not skip_extract:
            pre.append(f"{v} = {self.const(_extractor(expr.extract, expr.group))}({v})")
        for name in expr.transforms:
            if name == "company_domain":
                pre.append(f"{v} = {self.const(fn.company_domain)}({v})")
                continue
            method = {"trim": "strip", "upper": "upper", "lower": "lower", "title": "title"}[name]
            pre.append(f"{v} = {v}.{method}() if isinstance({v}, str) else {v}")
        conv = self.conversion(expr, target)
        self.check_constants(expr, conv, target)
        if expr.map is not None:
            # map values and ``otherwise`` are converted once here, so a mapped value needs no
            # conversion per record
            table = {
                k: self.converted_constant(val, conv, target, expr, "map")
                for k, val in expr.map.items()
            }
            otherwise = self.converted_constant(expr.otherwise, conv, target, expr, "otherwise")
            mapper = self.const(_mapper(table, expr.has_otherwise, otherwise, expr.lookup))
            found = self.var("t")
            pre.append(
                f"{found} = {self.const(table)}.get({v}, _M) if {v}.__class__ is str else _M"
            )
            pre.append(f"{v} = {mapper}({v}) if {found} is _M else {found}")
            conv = None
        if pre:
            self.emit(indent, f"if {v} is not None:")
            for line in pre:
                self.emit(indent + 1, line)
        steps = bool(conv) or expr.round is not None or expr.negate_if is not None
        if steps:
            self.emit(indent, f"if {v} is not None:")
            if conv:
                self.convert(conv, expr, target, indent + 1, v)
            if expr.round is not None:
                self.emit(indent + 1, f"{v} = {self.const(fn.rounder(expr.round))}({v})")
            if expr.negate_if is not None:
                flag = self.condition(expr.negate_if, scope, indent + 1)
                self.emit(indent + 1, f"if {flag}:")
                self.emit(indent + 2, f"{v} = _negate({v})")
        if expr.has_default:
            default = self.converted_constant(expr.default, conv, target, expr, "default")
            self.emit(indent, f"if {v} is None:")
            self.emit(indent + 1, f"{v} = {self.const(default)}")

    def convert(self, conv: str, expr: Expr, target: Target | None, indent: int, v: str) -> None:
        if conv == "str":
            self.emit(indent, f"if {v}.__class__ is not str:")
            self.emit(indent + 1, f"{v} = _to_str({v})")
        elif conv == "decimal":
            self.emit(indent, f"if {v}.__class__ is str:")
            self.emit(indent + 1, "try:")
            self.emit(indent + 2, f"{v} = _D({v})")
            self.emit(indent + 1, "except _DecErr:")
            self.emit(indent + 2, f"raise _fail({v}, 'decimal') from None")
            self.emit(indent + 1, f"if not {v}.is_finite():")
            self.emit(indent + 2, f"raise _fail(str({v}), 'decimal')")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"{v} = _to_decimal({v})")
        elif conv == "datetime" and expr.format is None:
            slow = self.const(fn.datetime_parser(None, fn.zone(expr.tz)))
            zone = self.const(fn.zone(expr.tz))
            self.emit(indent, f"if {v}.__class__ is str:")
            self.emit(indent + 1, "try:")
            self.emit(indent + 2, f"{v} = _fromiso({v})")
            self.emit(indent + 1, "except ValueError:")
            self.emit(indent + 2, f"raise _fail({v}, 'datetime') from None")
            self.emit(indent + 1, f"if {v}.tzinfo is None:")
            self.emit(indent + 2, f"{v} = {v}.replace(tzinfo={zone})")
            self.emit(indent + 1, f"if {v}.tzinfo is not _UTC:")
            self.emit(indent + 2, f"{v} = {v}.astimezone(_UTC)")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"{v} = {slow}({v})")
        elif conv in ("currency", "country"):
            codes = self.const(CURRENCY_CODES if conv == "currency" else COUNTRY_CODES)
            self.emit(indent, f"if {v}.__class__ is not str or {v} not in {codes}:")
            self.emit(indent + 1, f"{v} = {self.const(fn.converter(conv))}({v})")
        elif conv == "enum":
            item = target.item if target is not None and target.kind == "list" else target
            assert item is not None
            allowed = self.const(frozenset(item.enum_values))
            reason = self.const(f"is not one of: {', '.join(item.enum_values)}")
            self.emit(indent, f"if {v}.__class__ is not str:")
            self.emit(indent + 1, f"{v} = _to_str({v})")
            self.emit(indent, f"if {v} not in {allowed}:")
            self.emit(indent + 1, f"raise _Conv(repr({v}) + ' ' + {reason})")
        else:
            self.emit(indent, f"{v} = {self.const(fn.converter(conv, expr.format, expr.tz))}({v})")

    def converted_constant(
        self, value: Any, conv: str | None, target: Target | None, expr: Expr, key: str
    ) -> Any:
        """Convert a constant from the file at load time, so a bad one fails the load."""
        if value is None or conv is None:
            return value
        mark = expr.marks.get(key, expr.mark)
        try:
            if conv == "enum":
                item = target.item if target is not None and target.kind == "list" else target
                assert item is not None
                text = fn.to_str(value)
                if text not in item.enum_values:
                    raise fn.ConversionError(
                        f"{text!r} is not one of: {', '.join(item.enum_values)}"
                    )
                return text
            return fn.converter(conv, expr.format, expr.tz)(value)
        except fn.ConversionError as exc:
            raise self.fail(f"{key}: {exc}", mark, expr.field) from None

    def check_constants(self, expr: Expr, conv: str | None, target: Target | None) -> None:
        """A ``const`` must survive the field's conversion (map values are checked in place)."""
        if conv is None:
            return
        if expr.has_const and not expr.transforms and expr.map is None and not expr.split:
            self.converted_constant(expr.const, conv, target, expr, "const")

    def condition(self, cond: Condition, scope: _Scope, indent: int) -> str:
        """Emit code for a condition; returns the variable holding True or False."""
        flag = self.var("c")
        if isinstance(cond, Compare):
            subject = self.expr(cond.subject, None, scope, indent)
            self.emit(indent, f"{flag} = {self.const(_comparer(cond))}({subject})")
        elif isinstance(cond, Not):
            inner = self.condition(cond.item, scope, indent)
            self.emit(indent, f"{flag} = not {inner}")
        elif isinstance(cond, EachHolds):
            self.each_holds(cond, scope, indent, flag)
        else:
            combine = "all" if isinstance(cond, AllOf) else "any"
            assert isinstance(cond, AllOf | AnyOf)
            flags = [self.condition(item, scope, indent) for item in cond.items]
            self.emit(indent, f"{flag} = {combine}(({', '.join(flags)},))")
        return flag

    def each_holds(self, cond: EachHolds, scope: _Scope, indent: int, flag: str) -> None:
        """``any`` / ``all`` of a condition over the items of a list (``all`` of none: false)."""
        path = cond.items.path
        assert path is not None
        items = self.var("s")
        self.read_path(path, cond.items, scope, indent, items)
        wanted = cond.quantifier == "any"
        index, item = self.var("i"), self.var("it")
        self.emit(indent, f"{flag} = False")
        self.emit(indent, f"if isinstance({items}, list) and {items}:")
        self.emit(indent + 1, f"{flag} = {not wanted}")
        self.emit(indent + 1, f"for {index}, {item} in enumerate({items}):")
        self.emit(indent + 2, f"if not isinstance({item}, dict):")
        self.emit(
            indent + 3,
            f"raise _Conv('item ' + str({index} + 1) + ' of ' + "
            f"{self.const(repr(path.text))} + ' is not an object')",
        )
        inner = _Scope(item, index)
        held = self.condition(cond.item, inner, indent + 2)
        self.emit(indent + 2, f"if {'' if wanted else 'not '}{held}:")
        self.emit(indent + 3, f"{flag} = {wanted}")
        self.emit(indent + 3, "break")

    def object_source(
        self, expr: Expr, target: Target | None, scope: _Scope, indent: int, v: str
    ) -> str:
        assert expr.object is not None
        fields = (
            target.item.fields
            if target is not None and target.kind == "list" and target.item is not None
            else target.fields
            if target is not None
            else {}
        )
        obj = self.var("d")
        self.emit(indent, f"{obj} = {{}}")
        for name, sub in expr.object.items():
            self.output_field(sub, name, fields.get(name) if fields else None, scope, obj, indent)
        self.emit(indent, f"{v} = {obj} if any(x is not None for x in {obj}.values()) else None")
        if expr.as_list:
            self.emit(indent, f"{v} = _as_list({v})")
        return v

    def each_source(
        self, expr: Expr, target: Target | None, scope: _Scope, indent: int, v: str
    ) -> str:
        assert expr.each is not None and expr.each_fields is not None
        item_fields = target.item.fields if target is not None and target.item is not None else {}
        items = self.var("s")
        self.read_path(expr.each, expr, scope, indent, items)
        index, item = self.var("i"), self.var("it")
        self.emit(indent, f"{v} = []")
        self.emit(indent, f"if {items} is not None:")
        self.emit(indent + 1, f"if not isinstance({items}, list):")
        self.emit(
            indent + 2, f"raise _Conv('expected a list at ' + {self.const(repr(expr.each.text))})"
        )
        self.emit(indent + 1, f"for {index}, {item} in enumerate({items}):")
        self.emit(indent + 2, f"if not isinstance({item}, dict):")
        self.emit(
            indent + 3,
            f"raise _Conv('item ' + str({index} + 1) + ' of ' + "
            f"{self.const(repr(expr.each.text))} + ' is not an object')",
        )
        inner = _Scope(item, index)
        if expr.each_filter is not None:
            keep = self.condition(expr.each_filter, inner, indent + 2)
            self.emit(indent + 2, f"if not {keep}:")
            self.emit(indent + 3, "continue")
        obj = self.var("d")
        self.emit(indent + 2, f"{obj} = {{}}")
        for name, sub in expr.each_fields.items():
            self.output_field(
                sub, name, item_fields.get(name) if item_fields else None, inner, obj, indent + 2
            )
        self.emit(indent + 2, f"{v}.append({obj})")
        return v


def compile_mapping(spec: MappingSpec, targets: dict[str, Target] | None) -> Compiled:
    """Generate, compile and return the function for ``spec`` (``targets``: inbound model)."""
    return _Compiler(spec, targets).compile()
