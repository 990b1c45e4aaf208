"""The identity overrides file (``identity.overrides``): record pairs to join or keep apart.

Each entry names two record keys (``source:id``) and a reason; every error in the file names
file, line and key, and the file is read when the config loads, before any I/O. The identity
stage enforces the pairs (``concord.identity.constraints``); ``concord customers explain``
quotes them with the ``file:line`` they were written at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from concord.errors import ConfigError
from concord.yamlfile import load_yaml


@dataclass(frozen=True, slots=True)
class OverridePair:
    """Two record keys, the reason given, and ``file:line`` where the pair is written."""

    a: str
    b: str
    reason: str
    where: str


@dataclass(frozen=True, slots=True)
class Overrides:
    """Manual decisions that win over rules: record keys ``source:id`` to join or keep apart."""

    force_merge: tuple[OverridePair, ...] = ()
    never_merge: tuple[OverridePair, ...] = ()

    def never(self, a: str, b: str) -> OverridePair | None:
        """The never-merge entry for records ``a`` and ``b``, if there is one."""
        return next((p for p in self.never_merge if {p.a, p.b} == {a, b}), None)

    def forced(self, a: str, b: str) -> OverridePair | None:
        """The force-merge entry for records ``a`` and ``b``, if there is one."""
        return next((p for p in self.force_merge if {p.a, p.b} == {a, b}), None)


def load_overrides(path: Path | None) -> Overrides:
    """Read the overrides file; every error names file, line and key. No file means none."""
    if path is None:
        return Overrides()
    if not path.is_file():
        raise ConfigError(f"identity overrides file not found: {path}", file=str(path))
    doc = load_yaml(path)
    data = doc.data or {}
    if not isinstance(data, dict) or set(data) - {"force_merge", "never_merge"}:
        raise ConfigError(
            "overrides file must be a mapping with only force_merge and never_merge lists",
            file=str(path),
            line=1,
        )
    parsed: dict[str, list[OverridePair]] = {"force_merge": [], "never_merge": []}
    for kind in parsed:
        items = data.get(kind) or []
        if not isinstance(items, list):
            raise ConfigError("must be a list", file=str(path), line=doc.line((kind,)), key=kind)
        for i, item in enumerate(items):
            line = doc.line((kind, i))
            records = item.get("records") if isinstance(item, dict) else item
            if (
                not isinstance(records, list)
                or len(records) != 2
                or not all(isinstance(r, str) and ":" in r for r in records)
            ):
                raise ConfigError(
                    "each entry needs records: [source:id, source:id]",
                    file=str(path),
                    line=line,
                    key=f"{kind}.{i}",
                )
            reason = str(item.get("reason", "")) if isinstance(item, dict) else ""
            parsed[kind].append(OverridePair(records[0], records[1], reason, f"{path}:{line}"))
    clash = {frozenset((p.a, p.b)) for p in parsed["force_merge"]} & {
        frozenset((p.a, p.b)) for p in parsed["never_merge"]
    }
    if clash:
        pair = sorted(next(iter(clash)))
        raise ConfigError(
            f"records {pair[0]} and {pair[-1]} are in both force_merge and never_merge",
            file=str(path),
        )
    return Overrides(tuple(parsed["force_merge"]), tuple(parsed["never_merge"]))


def overrides_path(configured: Path | None, base: Path | None = None) -> Path | None:
    """The overrides file, relative paths taken from the config file's folder (``base``)."""
    if configured is None:
        return None
    if configured.is_absolute() or base is None:
        return configured
    return base / configured
