"""The task plan of a DAG: which mapped extract, map and push tasks exist, as typed items.

Items are small frozen dataclasses; Airflow expands over their ``as_dict()`` form (ids, never
data) and each task reads its own kind back with ``from_dict``, so no task tells items apart by
their keys. Extract and push items are grouped by pool: Airflow sets the pool per task, so each
pool gets its own mapped task.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Self

from concord.config import PipelineConfig

DEFAULT_POOL = "default_pool"


class TaskItem:
    """What every task item shares: its Airflow form and where it shows in reports and logs."""

    def as_dict(self) -> dict[str, Any]:
        """The item as Airflow passes it to the task (plain JSON values)."""
        data: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The item back from what Airflow passed."""
        return cls(**data)

    @property
    def scope(self) -> str:
        """The stage-report scope this item's task writes."""
        raise NotImplementedError

    @property
    def where(self) -> str:
        """What the item is, in words, for failure messages."""
        raise NotImplementedError


@dataclass(frozen=True)
class EntityItem(TaskItem):
    """One source entity (a map task, or a sharded entity to commit)."""

    source: str
    entity: str

    @property
    def scope(self) -> str:
        """``source/entity``."""
        return f"{self.source}/{self.entity}"

    @property
    def where(self) -> str:
        """``source S entity E``."""
        return f"source {self.source} entity {self.entity}"


@dataclass(frozen=True)
class ExtractItem(EntityItem):
    """One extract task: a whole entity (``shard`` None) or shard ``shard`` of ``shards``."""

    shard: int | None = None
    shards: int = 1

    @property
    def scope(self) -> str:
        """``source/entity``, with ``#i/n`` for a shard."""
        base = f"{self.source}/{self.entity}"
        return base if self.shard is None else f"{base}#{self.shard}/{self.shards}"

    @property
    def where(self) -> str:
        """``source S entity E``, with ``shard i/n``."""
        base = f"source {self.source} entity {self.entity}"
        return base if self.shard is None else f"{base} shard {self.shard}/{self.shards}"


@dataclass(frozen=True)
class ShardedEntity(EntityItem):
    """An entity pulled in ``shards`` pieces, whose watermark ``commit_shards`` advances."""

    shards: int = 1


@dataclass(frozen=True)
class PushItem(TaskItem):
    """One push task: a target."""

    target: str

    @property
    def scope(self) -> str:
        """The target's name."""
        return self.target

    @property
    def where(self) -> str:
        """``target T``."""
        return f"target {self.target}"


@dataclass(frozen=True)
class TaskPlan:
    """Which mapped tasks a DAG has; extract and push grouped by pool."""

    extract: dict[str, list[ExtractItem]]
    map: list[EntityItem]
    push: dict[str, list[PushItem]]
    sharded: list[ShardedEntity]

    @property
    def expected_scopes(self) -> dict[str, list[str]]:
        """Stage scopes a complete run reports (what ``finish`` checks)."""
        entities = [m.scope for m in self.map]
        return {
            "extract": entities,
            "map": entities,
            "resolve": ["all"],
            "build_360": ["all"],
            "push": [p.target for items in self.push.values() for p in items],
            "reconcile": ["all"],
        }


def plan_tasks(config: PipelineConfig) -> TaskPlan:
    """Mapped task items from the config: enabled sources x entities (x shards), targets."""
    extract: dict[str, list[ExtractItem]] = {}
    maps: list[EntityItem] = []
    sharded: list[ShardedEntity] = []
    for sname, scfg in config.sources.items():
        if not scfg.enabled:
            continue
        pool = scfg.pool or DEFAULT_POOL
        for ename, ecfg in scfg.entities.items():
            if not ecfg.enabled:
                continue
            spec = ecfg.shard_spec
            maps.append(EntityItem(sname, ename))
            if ecfg.derived_from is not None:
                continue  # staged by the pull of the entity it derives from
            if spec is None:
                extract.setdefault(pool, []).append(ExtractItem(sname, ename))
                continue
            sharded.append(ShardedEntity(sname, ename, spec.count))
            for i in range(spec.count):
                extract.setdefault(pool, []).append(ExtractItem(sname, ename, i, spec.count))
    push: dict[str, list[PushItem]] = {}
    for tname, tcfg in config.targets.items():
        if tcfg.enabled:
            push.setdefault(tcfg.pool or DEFAULT_POOL, []).append(PushItem(tname))
    return TaskPlan(extract, maps, push, sharded)


def task_id_for(stage: str, pool: str) -> str:
    """``extract`` for the default pool, ``extract__<pool>`` for a named one."""
    if pool == DEFAULT_POOL:
        return stage
    return f"{stage}__{re.sub(r'[^A-Za-z0-9_.-]+', '_', pool)}"
