"""YAML loading that remembers where each value was written, for errors naming file:line:column.

Only ``yaml.SafeLoader`` is used (no Python object tags). ``LoadedYaml.locate`` turns a key path
(as pydantic reports it in a validation error) into the line and column of that value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from concord.errors import ConfigError


@dataclass
class LoadedYaml:
    """A parsed YAML document and where each of its values was written."""

    path: Path
    data: Any
    marks: dict[tuple[str | int, ...], tuple[int, int]] = field(default_factory=dict)

    def locate(self, loc: Sequence[str | int]) -> tuple[int, int] | None:
        """Line and column (1-based) of the deepest known node on ``loc``."""
        key = tuple(loc)
        while key:
            if key in self.marks:
                return self.marks[key]
            key = key[:-1]
        return self.marks.get((), None)

    def line(self, loc: Sequence[str | int]) -> int | None:
        """Line (1-based) of the deepest known node on ``loc``, for ``ConfigError``."""
        found = self.locate(loc)
        return found[0] if found else None


def _walk(
    node: yaml.Node, loc: tuple[str | int, ...], marks: dict[tuple[str | int, ...], tuple[int, int]]
) -> None:
    marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            marks[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _walk(value_node, (*loc, key), marks)
            marks[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), marks)


def load_yaml(path: Path, text: str | None = None) -> LoadedYaml:
    """Parse one YAML document; syntax errors become ConfigError with file:line:column."""
    try:
        source = path.read_text(encoding="utf-8") if text is None else text
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(path)) from exc
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
        data = yaml.safe_load(source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        col = f" column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid YAML{col}: {exc.problem}", file=str(path), line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=str(path)) from exc
    marks: dict[tuple[str | int, ...], tuple[int, int]] = {}
    if node is not None:
        _walk(node, (), marks)
    return LoadedYaml(path=path, data=data, marks=marks)
