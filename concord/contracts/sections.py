"""The ``concord.yaml`` sections a connector is built from: a source with its entities, a target.

Each section has the keys core reads (``type``, ``enabled``, ``mapping``, ``pool``, cursors,
``shards``, ...) as fields; every other key is the connector's own and is handed to it as
``settings``, to be checked by the connector's ``validate`` when the config loads.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from concord.utc import as_utc


class ShardSpec(BaseModel):
    """``shards`` on an entity: split its extract into ``count`` time windows (``shards: 4``).

    ``since`` is where the windows start when the entity has no watermark yet (first load);
    records older than ``since`` go to the first shard. A naive ``since`` is UTC.
    """

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=256)
    by: Literal["time"] = "time"
    since: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"count": value} if isinstance(value, int) else value

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)


class Exclusion(BaseModel):
    """``exclude`` on an entity: records whose value at ``path`` is one of ``values`` are left out.

    Values compare as text (``1`` and ``"1"`` are the same). ``reason`` is what the run report
    counts them under. A source can add exclusions of its own (``ExcludingSource``), such as the
    Tryton profile's company party.
    """

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    values: list[str] = Field(min_length=1)
    reason: str = ""

    @field_validator("values", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        if isinstance(value, str | int):
            value = [value]
        return [str(v) for v in value] if isinstance(value, list) else value

    def describe(self) -> str:
        """What the run report counts excluded records under."""
        return self.reason or f"{self.path} in {', '.join(self.values)}"


ID_SEPARATOR = "/"
"""Joins the parts of a composite record id (``id_field: [a, b, c]`` gives ``"A/B/10000"``)."""


class EntityConfig(BaseModel):
    """One entity pulled from a source: its mapping file and incremental cursor.

    ``id_field`` names the field (or a dotted path) holding the record's id, or a list of them
    for a composite key (a NAV journal line: template, batch, line number), joined with ``/``.
    ``id_prefix`` goes in front of the record id in the canonical table, so two entities of one
    source can map into the same canonical entity (Tryton's ``account.payment`` and its
    reconciled cash-journal lines both become payments) without their ids meeting.
    ``derived_from`` names another entity of the same source whose pulled records this entity
    maps too (orders and shipments from one sales-order page): it is not pulled itself.
    """

    model_config = ConfigDict(extra="allow")

    mapping: Path
    id_field: str | list[str] = "id"
    cursor_field: str | None = "updated_at"
    full_refresh: bool = False
    enabled: bool = True
    shards: ShardSpec | None = None
    exclude: list[Exclusion] = Field(default_factory=list)
    id_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")
    sweep: str = Field(
        default="on_demand",
        description="when every id is listed and vanished ids become tombstones: every_run, "
        "on_demand (concord sync --sweep) or a cron expression (UTC)",
    )

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, value: str) -> str:
        if value in ("every_run", "on_demand"):
            return value
        from croniter import croniter  # type: ignore[import-untyped]

        if len(value.split()) == 5 and croniter.is_valid(value):
            return value
        raise ValueError("sweep is every_run, on_demand or a five-field cron expression")

    derived_from: str | None = None

    @field_validator("id_field")
    @classmethod
    def _id_fields(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and (not value or any(not part for part in value)):
            raise ValueError("id_field is a field name or a non-empty list of field names")
        return value

    @property
    def id_label(self) -> str:
        """The id field(s) as a message names them (``No`` or ``a + b + c``)."""
        return " + ".join(self.id_field) if isinstance(self.id_field, list) else self.id_field

    def record_id(self, record: dict[str, Any]) -> str | None:
        """The record's id: the ``id_field`` value(s), dotted paths walked; None if one is blank."""
        single = self.id_field
        if isinstance(single, str) and type(record.get(single)) is str:  # the common case
            return str(record[single]) or None
        fields = self.id_field if isinstance(self.id_field, list) else [self.id_field]
        parts: list[str] = []
        for name in fields:
            value: Any = record.get(name) if name in record else record
            if name not in record:
                for step in name.split("."):
                    value = value.get(step) if isinstance(value, dict) else None
            if value is None or value == "" or isinstance(value, dict | list):
                return None
            parts.append(str(value))
        return ID_SEPARATOR.join(parts)

    def canonical_id(self, source_id: str) -> str:
        """The canonical row's id for a staged record's id."""
        return f"{self.id_prefix}{source_id}"

    @property
    def settings(self) -> dict[str, Any]:
        """Connector-specific keys of this entity (path, operation, records path, ...)."""
        return dict(self.model_extra or {})

    @property
    def shard_spec(self) -> ShardSpec | None:
        """The shard settings when the entity is pulled in more than one piece, else None."""
        return self.shards if self.shards is not None and self.shards.count > 1 else None


class SourceConfig(BaseModel):
    """One source section: its connector ``type``, entities, and the connector's own keys."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(default="", exclude=True)  # the section's key, set as the config loads
    type: str
    entities: dict[str, EntityConfig]
    enabled: bool = True
    pool: str | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """Connector-specific keys of the source (base URL, auth, paginator, WSDL, ...)."""
        return dict(self.model_extra or {})

    def pulled(self) -> SourceConfig:
        """This section with only the entities the connector pulls (not the ``derived_from``)."""
        if all(e.derived_from is None for e in self.entities.values()):
            return self
        copy = self.model_copy()
        copy.entities = {n: e for n, e in self.entities.items() if e.derived_from is None}
        copy.name = self.name
        return copy


class TargetConfig(BaseModel):
    """One target section: connector ``type``, outbound mappings, batch and reject limits."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(default="", exclude=True)  # the section's key, set as the config loads
    type: str
    mapping: Path
    person_mapping: Path | None = Field(
        default=None, description="Outbound mapping for customers that are persons (contacts)."
    )
    enabled: bool = True
    batch_size: int = Field(default=100, ge=1, le=1000)
    reject_ratio: float | None = Field(default=None, ge=0, le=1)
    pool: str | None = None
    retire: Literal["mark", "archive"] = Field(
        default="mark",
        description="a customer no ERP holds any more (archived or deleted): mark sets "
        "retire_property to retire_value on its CRM record; archive archives the record",
    )
    retire_property: str = "concord_status"
    retire_value: str = "archived"

    @property
    def settings(self) -> dict[str, Any]:
        """Connector-specific keys of the target (base URL, auth, object types, ...)."""
        return dict(self.model_extra or {})

    @property
    def explicit_batch_size(self) -> int | None:
        """``batch_size`` when the config sets it, None when the target's own default applies."""
        return self.batch_size if "batch_size" in self.model_fields_set else None
